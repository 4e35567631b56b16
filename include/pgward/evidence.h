/* A session's evidence: its statements in the audit trail (audit_session.h), its
 * session_start, session_refused and session_end records (audit_events.h), and its recording
 * (record.h). The session (session.c) owns the struct and calls these at its turns; only
 * evidence.c touches the fields. */
#ifndef PGWARD_EVIDENCE_H
#define PGWARD_EVIDENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/buf.h"
#include "pgward/opening.h"
#include "pgward/relay.h"
#include "pgward/sock.h"

struct pw_audit_session;
struct pw_recorder;

struct pw_evidence {
	struct pw_audit_session *audit; /* NULL when the trail is off */
	struct pw_recorder *rec;        /* NULL when not recorded */
	bool audited;                   /* session_start written: a session_end follows */
	uint64_t ready_ms;              /* when the session was established */
	char end_why[160];              /* the first FATAL it got, if any */
};

/* The session is established (op admitted it; cl, cbuf and ubuf its client side, r its
 * relay; now in ms): the trail follows its statements from here (the relay tracks), and its
 * recording starts. -1 when memory ran out for the trail (fail the session). */
int pw_evidence_start(struct pw_evidence *ev, const struct pw_opening *op, struct pw_sock *cl,
                      const struct pw_buf *cbuf, const struct pw_buf *ubuf, struct pw_relay *r,
                      uint64_t now);
/* A FATAL for the client: before the session was established, the trail's session_refused;
 * after, the reason its session_end will give. */
void pw_evidence_fatal(struct pw_evidence *ev, const struct pw_opening *op, bool opening,
                       const char *sqlstate, const char *message);
/* The session ends (why: the session's reason, or NULL): its recording is finished and the
 * session_end written. */
void pw_evidence_end(struct pw_evidence *ev, const struct pw_opening *op, struct pw_sock *cl,
                     const char *why, uint64_t now);
/* Its memory (after pw_evidence_end, or when the session never got that far). */
void pw_evidence_free(struct pw_evidence *ev);

#endif
