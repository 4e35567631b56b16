/* Private to the session's driver (session.c) and its control-plane side (session_ctl.c): the
 * session's struct and a worker's set of sessions. Nothing else includes this. */
#ifndef PGWARD_SESSION_INT_H
#define PGWARD_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pgward/buf.h"
#include "pgward/evidence.h"
#include "pgward/judge.h"
#include "pgward/loop.h"
#include "pgward/opening.h"
#include "pgward/pool.h"
#include "pgward/relay.h"
#include "pgward/runtime.h"
#include "pgward/sock.h"

enum state {
	ST_OPENING, /* from the client's first packet to the relay (opening.h) */
	ST_READY,   /* established: pumping */
	ST_CANCEL,  /* forwarding a CancelRequest to an upstream */
	ST_CLOSING, /* flushing a last message to the client */
};

struct pw_session {
	struct pw_session *prev, *next;
	struct pw_session *next_ready; /* on the worker's ready list (queued) */
	bool queued;
	struct pw_worker *w;
	struct pw_runtime *rt;
	uint64_t serial;
	enum state state;
	bool closed;
	uint64_t deadline_ms; /* past the opening */
	char peer[64];

	struct pw_sock cl, up;
	struct pw_buf cbuf; /* client -> upstream */
	struct pw_buf ubuf; /* upstream -> client */

	/* the opening, and what it admitted: identity, upstream, role, keys, policy state */
	struct pw_opening op;

	/* established. While a message is judged away (judge.away), nothing is read from the
	 * client and s is freed only once the verdict is back */
	struct pw_relay relay;
	struct pw_judge judge;
	bool orphan;  /* closed while judged away, and off the dead list: the job frees it */
	bool up_shut; /* the client's end was passed on to the upstream */
	/* the opening's probe (a ParameterStatus the client already has) was sent again after
	 * the client's end while a statement runs: a client that is gone answers with a reset */
	bool probe_sent;
	struct pw_mask_session *mask; /* an identity with masks: its results' masking */
	struct pw_buf mstage;         /* masking: the batch of messages being rewritten */
	struct pw_evidence ev;        /* its trail and recording (evidence.h) */

	uint8_t cancel_pkt[16]; /* ST_CANCEL: the CancelRequest to send */

	/* the control plane's view: when it began (wall clock), bytes counted into the metrics */
	struct timespec started;
	uint64_t told_in, told_out;
};

/* A worker's sessions (the loop's per-worker state, pw_worker_state): only session.c walks
 * these lists, and only on the worker's thread. */
struct session_set {
	struct pw_session *live;  /* doubly linked */
	struct pw_session *dead;  /* closed during this epoll batch, freed after it */
	struct pw_session *ready; /* yielded with work left: run again after the batch */
	struct pw_pool pool;      /* upstream connections whose clients left (reuse_connections) */
	int n_live;
};

static inline struct session_set *set_of(struct pw_worker *w)
{
	return pw_worker_state(w);
}

/* session.c: end s with a FATAL (57P01 and why) as an operator's command does. */
void pw_session_end_now(struct pw_session *s, const char *why);
/* session.c: go on with s (a decision came for it). */
void pw_session_run(struct pw_session *s);

#endif
