/* One session's statements in the audit trail (docs/audit.md, type "statement"): each Query,
 * FunctionCall and Execute is followed from the client's message to the server's answer, so
 * that its record says what ran (the text, the prepared statement's for an Execute, and its
 * Bind parameters), what pgward decided and why, and what the server made of it (command
 * tags, rows, the error's SQLSTATE, the time it took). The server's answers are matched to
 * the client's messages in order, as the protocol defines them (Parse, Bind, Describe,
 * Execute, Close and Sync each have theirs; an error skips the rest of its extended group).
 *
 * Memory: the statements in flight and the prepared statements and portals the server holds
 * (up to PW_AUDIT_NAMES of each; past that the oldest is forgotten, and an Execute of it is
 * recorded without its text). Buffers are kept and reused. The struct lives with the session
 * (one worker); only audit_session.c touches it. */
#ifndef PGWARD_AUDIT_SESSION_H
#define PGWARD_AUDIT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/inspect.h"

#define PW_AUDIT_NAMES      1024
#define PW_AUDIT_PREP_BYTES (16u << 20) /* prepared statements' texts kept, per session */
#define PW_AUDIT_IN_FLIGHT  65536       /* client messages waiting for their answers */

struct pw_audit_session;

/* NULL when the trail is off or memory ran out (then nothing is recorded for it: the caller
 * fails the session when the trail is on). identity is kept (it outlives the session);
 * rfq_pending: the start-up's ReadyForQuery is still to come through the relay. */
struct pw_audit_session *pw_audit_session_new(uint64_t serial, const char *identity,
                                              bool rfq_pending);
/* The session ends: statements still waiting for the server are recorded "unfinished".
 * Returns how many statements were recorded over the session's life. NULL is fine. */
uint64_t pw_audit_session_free(struct pw_audit_session *as);

/* A client message the policy decided, in the order it goes to the server: m (Query, Parse,
 * Bind or FunctionCall), refused (d: the refusal the client gets) or allowed; f: what
 * decided (NULL: nothing to say, such as a message refused for its size). Refused with d
 * NULL: refused because the trail cannot be written; followed, not recorded. */
int pw_audit_on_statement(struct pw_audit_session *as, const struct pw_stmt *m, bool refused,
                          const struct pw_deny *d, const struct pw_inspect_facts *f);
/* A statement refused in place by the relay (over its size limit): type is the message's. */
int pw_audit_on_oversize(struct pw_audit_session *as, uint8_t type, const struct pw_deny *d);
/* The client's Describe, Execute, Sync or Close, whole (type byte and length included).
 * These and pw_audit_on_statement return -1 when the session cannot be followed any more
 * (PW_AUDIT_IN_FLIGHT messages waiting, or no memory): the caller fails the session. */
int pw_audit_on_client(struct pw_audit_session *as, const uint8_t *msg, size_t len);
/* The server ignored n Syncs the client sent after the Execute that started a COPY IN (the
 * relay counts them: pw_relay's syncs_ignored). */
void pw_audit_on_syncs_ignored(struct pw_audit_session *as, uint64_t n);
/* A message of the server, whole; those that answer nothing tracked are ignored. */
void pw_audit_on_upstream(struct pw_audit_session *as, const uint8_t *msg, size_t len);
/* The error a refused message's sentinel caused came back (rewritten into the refusal). */
void pw_audit_on_refusal_back(struct pw_audit_session *as);

/* Does the trail need type t of the server whole (pw_audit_on_upstream)? */
static inline int pw_audit_tracked(uint8_t t)
{
	return t == 'C' || t == 'E' || t == 'Z' || t == 'I' || t == 's' || t == '1' || t == '2' ||
	       t == '3' || t == 'n' || t == 'T';
}

#endif
