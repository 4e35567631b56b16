/* A session's evidence. See include/pgward/evidence.h. */
#include <stdio.h>

#include "pgward/audit.h"
#include "pgward/audit_events.h"
#include "pgward/audit_session.h"
#include "pgward/evidence.h"
#include "pgward/record.h"

/* The recording, from here: what the client sent that is not forwarded yet, and every byte
 * after; what is on its way to the client already (the end of its login) is not. */
static void record_start(struct pw_evidence *ev, const struct pw_opening *op, struct pw_sock *cl,
                         const struct pw_buf *cbuf, const struct pw_buf *ubuf)
{
	struct pw_record_meta m = {.session = op->io.serial,
	                           .identity = op->client.id->name,
	                           .user = op->client.user,
	                           .database = op->client.database,
	                           .client = op->io.peer};
	if (!(ev->rec = pw_record_open(&m)))
		return;
	pw_record_skip(ev->rec, 'B', pw_buf_pending(ubuf));
	pw_record_bytes(ev->rec, 'F', pw_buf_at_scan(cbuf), pw_buf_unscanned(cbuf));
	cl->tap = pw_record_tap;
	cl->tap_arg = ev->rec;
}

int pw_evidence_start(struct pw_evidence *ev, const struct pw_opening *op, struct pw_sock *cl,
                      const struct pw_buf *cbuf, const struct pw_buf *ubuf, struct pw_relay *r,
                      uint64_t now)
{
	ev->ready_ms = now;
	if (pw_audit_on()) {
		if (!(ev->audit = pw_audit_session_new(op->io.serial, op->client.id->name,
		                                       op->rfq_pending)))
			return -1;
		pw_relay_tracking(r, true);
		pw_opening_audit(op, cl->ssl != NULL);
		ev->audited = true;
	}
	if (op->client.id->record)
		record_start(ev, op, cl, cbuf, ubuf);
	return 0;
}

void pw_evidence_fatal(struct pw_evidence *ev, const struct pw_opening *op, bool opening,
                       const char *sqlstate, const char *message)
{
	if (opening)
		pw_audit_session_refused(op->io.serial, op->io.peer, op->client.id, op->kf,
		                         sqlstate, message);
	else if (!ev->end_why[0])
		snprintf(ev->end_why, sizeof(ev->end_why), "FATAL %s: %.140s", sqlstate, message);
}

void pw_evidence_end(struct pw_evidence *ev, const struct pw_opening *op, struct pw_sock *cl,
                     const char *why, uint64_t now)
{
	if (!ev->audited && !ev->rec)
		return;
	char path[PATH_MAX + 96] = "", sha[65] = "";
	struct pw_audit_end e = {
	    .serial = op->io.serial,
	    .identity = op->client.id ? op->client.id->name : NULL,
	    .reason = ev->end_why[0] ? ev->end_why
	              : why          ? why
	                             : "the client closed",
	    .bytes_in = cl->bytes_in,
	    .bytes_out = cl->bytes_out,
	    .duration_us = (now - ev->ready_ms) * 1000,
	};
	if (ev->rec) {
		pw_record_close(ev->rec, e.reason, path, sizeof(path), sha, &e.recording_truncated);
		ev->rec = NULL;
		cl->tap = NULL;
		e.recording = path;
		e.recording_sha256 = sha;
	}
	e.statements = pw_audit_session_free(ev->audit);
	ev->audit = NULL;
	if (ev->audited)
		pw_audit_session_end(&e);
	ev->audited = false;
}

void pw_evidence_free(struct pw_evidence *ev)
{
	pw_audit_session_free(ev->audit);
	ev->audit = NULL;
	pw_record_close(ev->rec, "freed", NULL, 0, NULL, NULL);
	ev->rec = NULL;
}
