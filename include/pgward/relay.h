/* The established phase of a session: the two scanners that walk the client's and the
 * upstream's messages in their direction buffers (buf.h) and decide each by byte range, and
 * the protocol bookkeeping that keeps a refused message in step with the server (sentinels,
 * discard to Sync, ReadyForQuery counting around pipelines and COPY).
 *
 * Pure: no sockets, no threads, no logging; the session (session.c) owns the buffers and the
 * I/O, asks the scanners what is next, and acts on each outcome. Masking, recording and
 * approvals plug in here, at the outcomes. The struct lives inside the session; only relay.c
 * and the functions below touch its fields. */
#ifndef PGWARD_RELAY_H
#define PGWARD_RELAY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/buf.h"
#include "pgward/inspect.h"

#define PW_RELAY_MAX_REFUSALS 8    /* refusals on their way through the server at once */
#define PW_RELAY_SMALL_MAX    8192 /* a sentinel's error, a start-up message: never more */

/* A refused message, replaced by its sentinel: a statement the server cannot parse, named
 * with the session's nonce. The server fails it exactly where the refused message stood (its
 * transaction aborted, the rest of an extended group discarded, the error flushed at once, as
 * for any error of its own), and that error is rewritten into the refusal on the way back. */
struct pw_relay_refusal {
	uint64_t at; /* the ReadyForQuery that ends its group; UINT64_MAX until its Sync came */
	char sqlstate[6];
	char message[512];
};

struct pw_relay_limits {
	size_t max_message;   /* any client message (limits.max_message_bytes) */
	size_t max_statement; /* Query and Parse (limits.max_statement_bytes) */
	size_t max_bind;      /* Bind (limits.max_bind_bytes) */
};

struct pw_relay {
	struct pw_relay_limits lim;
	/* client -> upstream */
	size_t c_remaining; /* bytes of the current client message still to pass or drop */
	bool c_dropping;
	bool c_discard;      /* a Parse/Bind was refused: drop everything up to Sync */
	bool c_terminated;   /* the client sent Terminate */
	bool hold_terminate; /* the owner keeps the upstream: a Terminate is cut, not passed */
	uint32_t syncs_since_exec;
	uint64_t syncs_ignored; /* Syncs the server ignored in COPY IN, in total (the trail) */
	bool copy_in;
	/* upstream -> client */
	size_t u_remaining;
	bool each_upstream; /* the owner wants every upstream message, whole (PW_RELAY_UP_MSG) */
	/* masking (mask_session.h): every upstream message whole (UP_MASK), and the client's
	 * Describe, Execute, Sync and Close (NOTE); noted: the one at scan was */
	bool masking, noted;
	/* the audit trail (audit_session.h): the client's Describe, Execute, Sync and Close
	 * (NOTE) and the server's answers to them whole (UP_NOTE, UP_REFUSAL) */
	bool tracking;
	uint64_t rfq_owed; /* ReadyForQuery messages the upstream owes us, in total */
	uint64_t rfq_seen;
	char tx_status;
	struct pw_relay_refusal ref[PW_RELAY_MAX_REFUSALS];
	int ref_head, ref_n;
	char nonce[48]; /* "pgward_refused_<16 hex>": the sentinels' name, made at the first */
	/* filled for the outcome that asks for it */
	struct pw_stmt stmt; /* PW_RELAY_JUDGE: the message at scan, whole */
	size_t total;        /* JUDGE, UP_*: the message's size, type byte included */
	struct pw_deny fail; /* PW_RELAY_FAIL: what the session fails with */
};

enum pw_relay_outcome {
	PW_RELAY_MORE,       /* everything here is decided, or a message is not whole yet */
	PW_RELAY_WAIT,       /* a statement waits for the refusals on their way to come back */
	PW_RELAY_JUDGE,      /* client: a statement at scan (stmt): call pw_relay_decide */
	PW_RELAY_REFUSED,    /* client: a statement over its limit was refused in place (its type
	                      * in stmt.type, why in fail); scan on */
	PW_RELAY_HELD,       /* client: Terminate cut (hold_terminate): the upstream stays */
	PW_RELAY_UP_PARAM,   /* upstream: a ParameterStatus at scan, whole: pw_relay_pass after */
	PW_RELAY_UP_KEY,     /* upstream: a BackendKeyData at scan, whole: pw_relay_pass after */
	PW_RELAY_UP_MSG,     /* upstream (each_upstream): a whole message at scan: pw_relay_pass */
	PW_RELAY_UP_BIG,     /* upstream (each_upstream): a message too big to keep whole; from
	                      * here on each_upstream is off and it is passed as any other */
	PW_RELAY_FAIL,       /* fail the session with fail.sqlstate, fail.message */
	PW_RELAY_NOTE,       /* client (masking): a Describe, Execute, Sync or Close at scan,
	                      * whole (total bytes): scan on, and it is passed */
	PW_RELAY_UP_MASK,    /* upstream (masking): a whole message at scan (total bytes):
	                      * pw_relay_pass or pw_relay_replace */
	PW_RELAY_UP_NOTE,    /* upstream (tracking): a whole message the trail follows (a command
	                      * tag, an error, ReadyForQuery...) at scan: pw_relay_pass after */
	PW_RELAY_UP_REFUSAL, /* upstream (tracking): a refusal came back in its sentinel's
	                      * error's place (already passed): scan on */
};
/* The outcome's name, for logs and tests. */
const char *pw_relay_outcome_name(enum pw_relay_outcome o);

/* Established, in step with the server: its start-up's ReadyForQuery, with transaction status
 * tx, already passed, or (rfq_pending) still to come through the relay. hold_terminate: the
 * owner keeps the upstream connection when the client leaves (a Terminate is cut). */
void pw_relay_start(struct pw_relay *r, const struct pw_relay_limits *lim, bool rfq_pending,
                    char tx, bool hold_terminate);
/* Hand every upstream message to the owner whole (UP_MSG), or stop doing so. */
void pw_relay_each_upstream(struct pw_relay *r, bool on);
/* Masking on: UP_MASK for every upstream message, NOTE for the client's that place results. */
void pw_relay_masking(struct pw_relay *r, bool on);
/* The audit trail on: NOTE for the client's messages that place answers, UP_NOTE and
 * UP_REFUSAL for the server's answers (pw_audit_tracked). */
void pw_relay_tracking(struct pw_relay *r, bool on);
/* The upstream message of the last UP_MASK replaced by n bytes at p (decided). -1: no
 * memory. */
int pw_relay_replace(struct pw_relay *r, struct pw_buf *b, const void *p, size_t n);

/* Walk the client's messages in b from scan. JUDGE leaves the message at scan until
 * pw_relay_decide; HELD and WAIT stop until the owner acts. */
enum pw_relay_outcome pw_relay_scan_client(struct pw_relay *r, struct pw_buf *b);
/* The verdict on the statement of the last JUDGE: passed on, or replaced by its sentinel
 * (d: the refusal the client gets). MORE, or FAIL (out of memory or randomness). */
enum pw_relay_outcome pw_relay_decide(struct pw_relay *r, struct pw_buf *b, bool deny,
                                      const struct pw_deny *d);

/* Walk the upstream's messages in b from scan. */
enum pw_relay_outcome pw_relay_scan_upstream(struct pw_relay *r, struct pw_buf *b);
/* Pass the upstream message of the last UP_* outcome on as it is. */
void pw_relay_pass(struct pw_relay *r, struct pw_buf *b);

/* Is a statement running (an answer owed, or COPY IN)? */
static inline bool pw_relay_busy(const struct pw_relay *r)
{
	return r->rfq_seen < r->rfq_owed || r->copy_in;
}
/* Idle between messages both ways, outside a transaction, nothing refused on its way: the
 * upstream connection could serve another client. */
bool pw_relay_quiet(const struct pw_relay *r);
/* Is an upstream message half passed (nothing may be inserted towards the client now)? */
static inline bool pw_relay_mid_upstream(const struct pw_relay *r)
{
	return r->u_remaining != 0;
}
static inline bool pw_relay_terminated(const struct pw_relay *r)
{
	return r->c_terminated;
}
static inline char pw_relay_tx_status(const struct pw_relay *r)
{
	return r->tx_status;
}
#endif
