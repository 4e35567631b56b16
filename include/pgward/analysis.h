/* Analysis off the event loop. Parsing a statement costs about 1 to 4 ms per KiB of text (a
 * 1 MiB one seconds), and a worker parsing stalls every other session on its loop. Texts of
 * PW_ANALYSIS_AWAY_BYTES or more are therefore judged by a small pool of analysis threads with
 * the very same function (pw_inspect_judge: analysis, its per-thread cache, decision) while
 * their session is parked (nothing read from its client); the verdict comes back to the
 * session's worker through its wake-up eventfd. */
#ifndef PGWARD_ANALYSIS_H
#define PGWARD_ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/inspect.h"

#define PW_ANALYSIS_AWAY_BYTES 1024

struct pw_worker;

struct pw_analysis_job {
	struct pw_analysis_job *next;
	struct pw_worker *w; /* the worker that gets the verdict back */
	void *owner;         /* the session */
	/* in: who asks (its policy session is the job's alone until the verdict is back: the
	 * session is parked), and the message, its text copied (the session's buffer moves) */
	struct pw_caller who;
	struct pw_stmt m;
	char *text;
	/* out */
	enum pw_verdict v;
	struct pw_deny d;
	bool unreadable;
	struct pw_inspect_plans plans; /* masking's, taken by the session or freed with j */
	struct pw_inspect_facts facts; /* what decided, for the trail */
};

/* Start n analysis threads (from the main thread, before the workers run); each judged job is
 * handed to give_back(j->w, j) on the analysis thread. 0 or -1. */
int pw_analysis_start(int n, void (*give_back)(struct pw_worker *w, struct pw_analysis_job *j));
/* A job for message m of owner's, asked by who on worker w: the message's text is copied
 * (the session's buffer may move meanwhile). NULL when out of memory. */
struct pw_analysis_job *pw_analysis_job_new(struct pw_worker *w, void *owner,
                                            const struct pw_caller *who, const struct pw_stmt *m);
/* Hand a job to the pool; false when there is no pool: j is freed, the caller judges
 * inline. */
bool pw_analysis_submit(struct pw_analysis_job *j);
/* A job is done with (its worker): freed, its text counted for pw_analysis_bytes. */
void pw_analysis_free(struct pw_analysis_job *j);
/* Bytes of text the analysis threads have judged since start. Any thread. */
uint64_t pw_analysis_bytes(void);
/* Stop the threads once every worker is done (no job is in flight then). */
void pw_analysis_stop(void);

#endif
