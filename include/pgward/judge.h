/* Who decides each client message the relay stops at (relay.h): the policy, inline
 * (inspect.h), or, for a text long enough to stall the worker's loop, an analysis thread
 * (analysis.h) while the session waits with nothing more read from its client. Refusals are
 * logged here; the decision goes back to the relay. The struct lives inside the session. */
#ifndef PGWARD_JUDGE_H
#define PGWARD_JUDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/analysis.h"
#include "pgward/buf.h"
#include "pgward/inspect.h"
#include "pgward/loop.h"
#include "pgward/relay.h"

struct pw_judge {
	bool away;  /* the message at the scan is with an analysis thread: its owner waits */
	bool ready; /* its verdict is back, for that message */
	enum pw_verdict verdict;
	struct pw_deny d;
	struct pw_inspect_plans plans; /* with the verdict: masking's plans */
	struct pw_inspect_facts facts; /* with the verdict: what decided, for the trail */
	uint64_t syncs_ignored;        /* the relay's, as the trail was last told */
};

/* Walk the client's messages in b: each one the relay stops at is judged for who and decided.
 * A long text goes away (job owner: owner, on worker w) and the walk stops until
 * pw_judge_back. False when the relay failed (r->fail says how). peer: for the log. */
bool pw_judge_client(struct pw_judge *jg, struct pw_relay *r, struct pw_buf *b,
                     const struct pw_caller *who, struct pw_worker *w, void *owner,
                     const char *peer);
/* The analysis thread's verdict on job j (which is freed). */
void pw_judge_back(struct pw_judge *jg, struct pw_analysis_job *j);
#endif
