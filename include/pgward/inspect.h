/* The one place that sees every SQL text a client sends (Query and Parse) and every Bind,
 * before it is forwarded. It may allow the message or deny it with an ErrorResponse; the
 * session then keeps the protocol in step (a denied Query is answered with the error and
 * ReadyForQuery, a denied Parse/Bind discards to Sync exactly as the server would). The
 * policy engine plugs in here; the core allows everything and counts. */
#ifndef PGWARD_INSPECT_H
#define PGWARD_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "pgward/config.h"

struct pw_stmt {
	uint8_t type;	   /* 'Q', 'P' or 'B' */
	const char *sql;   /* Q, P: the statement text (NUL-terminated inside the message) */
	size_t sql_len;
	const char *name;  /* P: prepared statement name; B: portal name */
	const char *stmt;  /* B: source statement name */
	const uint8_t *body; /* the whole message body (after the length) */
	size_t len;
};

struct pw_deny {
	char sqlstate[6];
	char message[512];
};

enum pw_verdict { PW_ALLOW = 0, PW_DENY = 1 };

/* Who is asking: what the session knows of its client. */
struct pw_caller {
	const struct pw_identity *identity;
	const char *user;
	const char *database;
};

enum pw_verdict pw_inspect(const struct pw_caller *c, const struct pw_stmt *m, struct pw_deny *d);

/* Per-worker counters (thread-local: each worker counts its own, without sharing). */
struct pw_inspect_stats {
	uint64_t queries, parses, binds, allowed, denied;
};
const struct pw_inspect_stats *pw_inspect_stats_local(void);

#endif
