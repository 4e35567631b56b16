/* Approvals shared by a fleet (docs/approvals.md, "Fleets"): the control database, a
 * PostgreSQL every node reaches as one of its upstreams ("approvals": {"database": {...}}).
 * pgwardd creates its schema (idempotently, under an advisory lock); each request is a row;
 * a decision is a conditional UPDATE of the row (pending -> decided), made by any node's
 * pgwardctl or by any tool that writes the row; a trigger NOTIFYs the channel
 * "pgward_approvals" with the row's id, which wakes the node that holds the session (it also
 * polls, so that a notification lost with a connection is not a decision lost). Another
 * trigger keeps a decided row decided (its state cannot change again, SQLSTATE 55000) and
 * fills decided_at (now) and decided_by (the database user) when a tool leaves them out.
 *
 * Threads: one listener thread of this module owns a connection (LISTEN, inserts, the
 * holding node's updates) and calls approval.c's pw_approval_apply for rows of this node that
 * were decided elsewhere; the control thread's calls below use a second connection of their
 * own, each bounded by a timeout. When the database cannot be reached, requests stay local to
 * the node (logged), never undecidable. */
#ifndef PGWARD_APPROVAL_DB_H
#define PGWARD_APPROVAL_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgward/approval_types.h" /* its vocabulary: ids, scopes, states */
#include "pgward/config.h"
#include "pgward/jw.h"
#include "pgward/runtime.h"

/* A row as the module reads and writes it. */
struct pw_approval_row {
	char id[PW_APPROVAL_ID_MAX];
	char node[PW_NAME_MAX];
	char identity[PW_NAME_MAX];
	enum pw_approval_state state;
	bool has_agent_uid;
	uid_t agent_uid;
	int n_uids, n_gids;
	unsigned uids[PW_MAX_APPROVERS], gids[PW_MAX_APPROVERS];
	/* decided */
	char decided_by[64];
	long long decided_uid;
	enum pw_approval_scope scope;
	int for_s;
	char reason[256];
	char *request; /* the request as JSON (approval show's object), malloc'd; may be NULL */
};
void pw_approval_row_free(struct pw_approval_row *r);

/* Start the listener thread for rt's "approvals.database" (nothing when none is configured:
 * returns 0 and pw_approval_db_on() stays false). The first connection, and the schema, are
 * made before it returns: -1 with err set when that fails (pgwardd does not start: a fleet
 * that cannot share its approvals is a configuration error, not a degraded mode). */
int pw_approval_db_start(const struct pw_runtime *rt, char *err, size_t errlen);
void pw_approval_db_stop(void);
bool pw_approval_db_on(void);

/* ---- the holding node's writes (any thread: queued for the listener thread) ---- */

/* A new request: its row (state pending, the request's JSON, who may approve). Its node is
 * r->node ("": this node's); session, created and expires are read from the JSON. */
void pw_approval_db_insert(const struct pw_approval_row *r);
/* A request given up here (withdrawn: the client left or cancelled): its row, if still
 * pending, says so. */
void pw_approval_db_withdraw(const char *id, const char *why);
/* Any decision made here that the row must say too, when it is still pending (a decision
 * taken while the database could not be reached; pw_approval_db_withdraw is this with
 * "withdrawn" by "pgwardd"). When the row was decided otherwise first, the log says so. */
void pw_approval_db_settle(const char *id, enum pw_approval_state st, const char *by, long long uid,
                           enum pw_approval_scope scope, int for_s, const char *reason);
/* The queue of these writes holds 4096; beyond, a write is logged and dropped (the request
 * is still decided here). pw_approval_db_stop gives what is queued 2 s: call it after
 * pw_approval_stop, whose withdrawals are such writes. */

/* ---- the control thread's (blocking, bounded) ---- */

/* Decide row id: UPDATE ... SET state, decided_* WHERE id = $id AND state = 'pending'.
 * 0: decided (*row gets the row after it); 1: not pending any more (*row says how it was
 * decided); 2: no such row; -1: the database cannot be reached (err set). A person's decision
 * (approved, denied) on a row more than 5 s past its expiry comes too late: the row is marked
 * timed_out (its node is gone or did not say) and the answer is 1. *row: zero-initialised or
 * filled by an earlier call (its request is freed); row->request is approval show's object.
 * Each call waits 5 s at most per step (connect, TLS, log-in, the query); after a failed
 * connection, calls fail at once for 5 s. */
int pw_approval_db_decide(const char *id, enum pw_approval_state st, const char *by, long long uid,
                          enum pw_approval_scope scope, int for_s, const char *reason,
                          struct pw_approval_row *row, char *err, size_t errlen);
/* Read one row: 0 (filled), 2 (none), -1 (err set). */
int pw_approval_db_get(const char *id, struct pw_approval_row *row, char *err, size_t errlen);
/* The rows of other nodes (pending ones not past their expiry; all: the decided ones too;
 * the newest 256, oldest first) as elements of the array open in w (approval show's
 * objects, with their state). -1: err set (nothing written). */
int pw_approval_db_list(struct pw_jw *w, bool all, char *err, size_t errlen);

/* ---- approval.c's side, called by the listener thread ---- */

/* A row of this node was decided in the database: apply the decision to the local request
 * (if it is still pending here). Implemented in approval.c. */
void pw_approval_apply(const struct pw_approval_row *row);

#endif
