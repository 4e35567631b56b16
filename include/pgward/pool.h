/* Connection reuse (upstream.reuse_connections): what a parked upstream connection keeps for
 * its next client, and a worker's list of parked connections. Bookkeeping only: the session
 * moves the sockets, and owns what embeds these structs. */
#ifndef PGWARD_POOL_H
#define PGWARD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/buf.h"

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

/* A parked connection, as the list knows it: its key is what a new client must match (the
 * runtime it was made under, the upstream, the StartupMessage sent upstream). */
struct pw_pool_entry {
	struct pw_pool_entry *next;
	const void *rt;
	int ups_idx;
	const char *ups_name;
	const uint8_t *key;
	size_t key_len;
	uint64_t parked_ms;
	bool parked;
};
struct pw_pool {
	struct pw_pool_entry *head; /* newest first */
	int n;
};
void pw_pool_park(struct pw_pool *pl, struct pw_pool_entry *e, uint64_t now_ms);
/* Off the list (a no-op when it is not on it). */
void pw_pool_remove(struct pw_pool *pl, struct pw_pool_entry *e);
/* The newest parked entry with this key, or NULL. */
struct pw_pool_entry *pw_pool_find(const struct pw_pool *pl, const void *rt, int ups_idx,
                                   const uint8_t *key, size_t key_len);
/* The newest parked entry of the upstream named so (its slot can be given up), or NULL. */
struct pw_pool_entry *pw_pool_find_upstream(const struct pw_pool *pl, const char *ups_name);
#endif
