/* Who decides each client message the relay stops at (relay.h): the policy, inline
 * (inspect.h), or, for a text long enough to stall the worker's loop, an analysis thread
 * (analysis.h) while the session waits with nothing more read from its client. Refusals are
 * logged here; the decision goes back to the relay. The struct lives inside the session. */
#ifndef PGWARD_JUDGE_H
#define PGWARD_JUDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/analysis.h"
#include "pgward/approval.h"
#include "pgward/buf.h"
#include "pgward/inspect.h"
#include "pgward/loop.h"
#include "pgward/relay.h"

#define PW_JUDGE_TEXT_MAX  4096 /* the last text kept for session show */
#define PW_JUDGE_NAMED_MAX 32   /* named statements approved for one execution, at most */

/* A prepared statement (named, or the unnamed one: name "") whose Parse a person approved:
 * the approval covers one execution (its first Bind); each later Bind asks again, as the same
 * text parsed again would. */
struct pw_judge_named {
	char *name, *text;
	size_t len;
	int credit;                    /* executions still covered: 1 after the approval */
	struct pw_inspect_facts facts; /* the decision that asked for approval */
	char approval[PW_APPROVAL_ID_MAX];
};

struct pw_judge {
	bool away;      /* the message at the scan is with an analysis thread: its owner waits */
	bool held;      /* the message at the scan waits for a person's decision (approval.h) */
	bool ready;     /* its verdict is back, for that message */
	bool by_person; /* ready: the verdict is a person's refusal (or a withdrawal) */
	bool approved_once;    /* the message at the scan was approved: judged as allowed */
	bool approved_session; /* scope "session": every approval of this session is given */
	char session_approval[PW_APPROVAL_ID_MAX]; /* the request that gave it */
	char approval[PW_APPROVAL_ID_MAX]; /* held: the request; then the last one decided */
	enum pw_verdict verdict;
	struct pw_deny d;
	struct pw_inspect_plans plans; /* with the verdict: masking's plans */
	struct pw_inspect_facts facts; /* with the verdict: what decided, for the trail */
	uint64_t syncs_ignored;        /* the relay's, as the trail was last told */
	uint64_t t0_ns;                /* when the message at the scan came whole (latency) */
	struct pw_judge_named named[PW_JUDGE_NAMED_MAX];
	int n_named;
	char exec_text[160]; /* a Bind judged as the EXECUTE it amounts to: that text */
	/* for the control plane (session show): the last text judged, when, and how many */
	char *last;
	size_t last_len, last_cap;
	uint64_t last_ms, judged;
};

/* Walk the client's messages in b: each one the relay stops at is judged for who and decided.
 * A long text goes away (job owner: owner, on worker w) and the walk stops until
 * pw_judge_back. False when the relay failed (r->fail says how). peer: for the log. */
bool pw_judge_client(struct pw_judge *jg, struct pw_relay *r, struct pw_buf *b,
                     const struct pw_caller *who, struct pw_worker *w, void *owner,
                     const char *peer);
/* The analysis thread's verdict on job j (which is freed). */
void pw_judge_back(struct pw_judge *jg, struct pw_analysis_job *j);
/* A person's decision on the held message (approval.h); the owner runs the walk again. */
void pw_judge_decided(struct pw_judge *jg, const struct pw_approval_verdict *v);
/* Is the walk parked (analysis or approval) on the message at the scan? */
static inline bool pw_judge_parked(const struct pw_judge *jg)
{
	return jg->away || jg->held;
}
void pw_judge_free(struct pw_judge *jg);
#endif
