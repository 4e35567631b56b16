/* Masking along one session's protocol (issue: inline masking): the plans of mask.h follow
 * their statements across the wire (a Query's statements in turn; protocol statements and
 * portals across Parse, Bind, Describe and Execute, row limits and PortalSuspended; SQL
 * cursors and prepared statements by name), and every message of the server that can carry a
 * value is rewritten on its way to the client (mask_wire.h): DataRow in text and binary,
 * COPY OUT's CopyData in text, CSV and binary, ErrorResponse, NoticeResponse and
 * NotificationResponse. Whatever arrives that the state cannot place fails the session:
 * masking fails closed. Memory: one message at a time, and the names the session made.
 *
 * The struct lives with the session (one worker); only mask_session.c touches it. */
#ifndef PGWARD_MASK_SESSION_H
#define PGWARD_MASK_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "pgward/inspect.h"
#include "pgward/mask.h"

struct pw_mask_session;

/* sc is copied (its pointers must outlive the session: the session's configuration
 * reference, identity and policy session). NULL on no memory. */
struct pw_mask_session *pw_mask_session_new(const struct pw_mask_scope *sc);
void pw_mask_session_free(struct pw_mask_session *ms); /* NULL is fine */

/* The client's messages, in the order they go to the server, after the policy's verdict:
 * a Query (allowed: its plans are taken; refused: plans NULL) or a FunctionCall refused
 * (answered like a Query); an allowed Parse (its plan taken) or Bind (its body); Describe,
 * Execute, Sync and Close (whole messages). -1 with d: fail the session. */
int pw_mask_on_query(struct pw_mask_session *ms, struct pw_inspect_plans *plans, struct pw_deny *d);
int pw_mask_on_parse(struct pw_mask_session *ms, const char *name, struct pw_inspect_plans *plans,
                     struct pw_deny *d);
int pw_mask_on_bind(struct pw_mask_session *ms, const uint8_t *body, size_t len, struct pw_deny *d);
int pw_mask_on_client(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                      struct pw_deny *d);

/* A whole message of the server (type byte and length included). 0: pass it on as it is;
 * 1: pass *out (*outlen bytes) instead; -1 with d: fail the session. */
int pw_mask_upstream(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                     const uint8_t **out, size_t *outlen, struct pw_deny *d);

/* Counters for logs and tests: values masked, rows rewritten. */
void pw_mask_session_counts(const struct pw_mask_session *ms, uint64_t *rows, uint64_t *cells);

#endif
