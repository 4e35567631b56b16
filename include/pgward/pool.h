/* Connection reuse (upstream.reuse_connections): a worker's pool of upstream connections
 * whose clients left. A session gives its connection up (pw_pool_park): the pool resets it
 * (DISCARD ALL) on the worker's loop by itself, keeps it while it is idle, closes it when it
 * times out or the server ends it, and hands it to a later session with the same upstream and
 * StartupMessage (pw_pool_take), with the start-up its first client saw. */
#ifndef PGWARD_POOL_H
#define PGWARD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/buf.h"
#include "pgward/cancel.h"
#include "pgward/loop.h"
#include "pgward/runtime.h"
#include "pgward/sock.h"
#include "pgward/upstream_setup.h"

/* The server's start-up messages as the first client got them (AuthenticationOk up to the
 * ReadyForQuery): a later client of the same connection gets them again, with a cancel key of
 * its own in the BackendKeyData. */
struct pw_preamble {
	uint8_t *data;
	size_t len, cap;
	size_t key_off; /* where the BackendKeyData starts; 0: none seen yet */
	bool capturing; /* between the AuthenticationOk and the ReadyForQuery */
};
/* The AuthenticationOk: capturing starts (false when it could not be kept). */
bool pw_preamble_begin(struct pw_preamble *p, const uint8_t *msg, size_t n);
/* One more whole start-up message while capturing: kept; a ReadyForQuery ends the capture, an
 * ErrorResponse (or no memory) gives it up. */
void pw_preamble_take(struct pw_preamble *p, const uint8_t *msg, size_t n);
/* Give the capture up: this connection is not kept for reuse. */
void pw_preamble_abandon(struct pw_preamble *p);
/* Captured whole, with a BackendKeyData in it: a later client can be given it. */
bool pw_preamble_complete(const struct pw_preamble *p);
/* Hand over to another owner (from is left empty). */
void pw_preamble_move(struct pw_preamble *to, struct pw_preamble *from);
void pw_preamble_free(struct pw_preamble *p);

/* Resetting a connection before it is parked: the server's answers to DISCARD ALL. */
enum pw_reset {
	PW_RESET_MORE,  /* the next answer is not whole yet */
	PW_RESET_NEXT,  /* an answer was dropped: step again */
	PW_RESET_CLEAN, /* a ReadyForQuery outside a transaction, after no error: park it */
	PW_RESET_FAIL,  /* the reset failed, or not a message a reset is answered with: close it */
};
struct pw_reset_state {
	bool failed; /* an ErrorResponse came before the ReadyForQuery */
};
/* The next answer at b's scan: read and dropped. */
enum pw_reset pw_pool_reset_step(struct pw_reset_state *rs, struct pw_buf *b);

/* An upstream connection as it moves between a session and the pool. */
struct pw_upconn {
	struct pw_sock sk;         /* its socket, TLS with it */
	int *slot;                 /* one of the upstream's max_connections (runtime.h) */
	struct pw_cancel_target t; /* its address, backend pid and real key */
	bool tls;
	struct pw_preamble pre; /* the start-up its first client saw */
	bool truth_known;       /* what the server said of the session at its start */
	struct pw_truth truth;
	uint8_t *key; /* the StartupMessage it was made with (the pool's key); owned */
	size_t key_len;
};

struct pw_parked; /* pool.c's own */
struct pw_pool {
	struct pw_worker *w;
	struct pw_parked *head; /* newest first */
	struct pw_parked *dead; /* closed or taken in this batch of events: freed after it */
	int n;
};

void pw_pool_init(struct pw_pool *pl, struct pw_worker *w);
/* Take c over (the caller's copy is left empty, its socket no longer the caller's to watch)
 * for upstream u (index ups_idx) of runtime rt (a reference is taken). False when it could
 * not be kept: c is closed. */
bool pw_pool_park(struct pw_pool *pl, struct pw_upconn *c, struct pw_runtime *rt, int ups_idx,
                  const struct pw_upstream *u);
/* The newest idle connection with this key (truth: and what the server said of its session
 * known), out of the pool into c; the caller watches its socket (pw_worker_rewatch) with a
 * handler of its own. False: none. */
bool pw_pool_take(struct pw_pool *pl, const struct pw_runtime *rt, int ups_idx, const uint8_t *key,
                  size_t key_len, bool truth, struct pw_upconn *c);
/* Close the newest parked connection of the upstream named so (its slot is wanted). False:
 * there is none. */
bool pw_pool_drop_upstream(struct pw_pool *pl, const char *ups_name);
/* Close those whose reset or idle time is over; stopping: all. */
void pw_pool_tick(struct pw_pool *pl, uint64_t now_ms, bool stopping);
/* Free the closed and taken ones (after each batch of events). */
void pw_pool_reap(struct pw_pool *pl);
/* Close and free them all (the worker ends). */
void pw_pool_close_all(struct pw_pool *pl);
/* A connection's parts, closed and freed (a session's that is not parked). */
void pw_upconn_close(struct pw_upconn *c);
#endif
