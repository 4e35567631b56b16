/* The established phase's scanners. See include/pgward/relay.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "pgward/audit_session.h"
#include "pgward/proto.h"
#include "pgward/relay.h"

static const char *const outcome_names[] = {
    [PW_RELAY_MORE] = "more",       [PW_RELAY_WAIT] = "wait",
    [PW_RELAY_JUDGE] = "judge",     [PW_RELAY_REFUSED] = "refused",
    [PW_RELAY_HELD] = "held",       [PW_RELAY_UP_PARAM] = "up-param",
    [PW_RELAY_UP_KEY] = "up-key",   [PW_RELAY_UP_MSG] = "up-msg",
    [PW_RELAY_UP_BIG] = "up-big",   [PW_RELAY_FAIL] = "fail",
    [PW_RELAY_NOTE] = "note",       [PW_RELAY_UP_MASK] = "up-mask",
    [PW_RELAY_UP_NOTE] = "up-note", [PW_RELAY_UP_REFUSAL] = "up-refusal",
};

const char *pw_relay_outcome_name(enum pw_relay_outcome o)
{
	return (unsigned)o < sizeof(outcome_names) / sizeof(outcome_names[0]) && outcome_names[o]
	           ? outcome_names[o]
	           : "?";
}

/* Fail the session: why in r->fail. */
__attribute__((format(printf, 3, 4))) static enum pw_relay_outcome
fail(struct pw_relay *r, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pw_deny_vset(&r->fail, sqlstate, fmt, ap);
	va_end(ap);
	return PW_RELAY_FAIL;
}

void pw_relay_start(struct pw_relay *r, const struct pw_relay_limits *lim, bool rfq_pending,
                    char tx, bool hold_terminate)
{
	memset(r, 0, sizeof(*r));
	r->lim = *lim;
	r->rfq_owed = 1;
	r->rfq_seen = rfq_pending ? 0 : 1;
	r->tx_status = tx;
	r->hold_terminate = hold_terminate;
}

void pw_relay_each_upstream(struct pw_relay *r, bool on)
{
	r->each_upstream = on;
}

void pw_relay_masking(struct pw_relay *r, bool on)
{
	r->masking = on;
}

void pw_relay_tracking(struct pw_relay *r, bool on)
{
	r->tracking = on;
}

int pw_relay_replace(struct pw_relay *r, struct pw_buf *b, const void *p, size_t n)
{
	pw_buf_cut(b, r->total);
	return pw_buf_insert(b, p, n);
}

/* Masking follows the client's Describe, Execute, Sync and Close (NOTE): the message at scan,
 * whole, once; MORE while it is not whole, FAIL when it cannot be. */
static enum pw_relay_outcome note(struct pw_relay *r, struct pw_buf *b, size_t total)
{
	if (total > PW_RELAY_SMALL_MAX)
		return fail(r, "54000",
		            "pgward: a %c message of %zu bytes is more than pgward follows",
		            pw_buf_at_scan(b)[0], total);
	if (pw_buf_unscanned(b) < total) {
		if (pw_buf_reserve_at_scan(b, total) < 0)
			return fail(r, "53200", "pgward: out of memory");
		return PW_RELAY_MORE;
	}
	r->noted = true;
	r->total = total;
	return PW_RELAY_NOTE;
}

static bool noted_type(uint8_t t)
{
	return t == 'D' || t == 'E' || t == 'S' || t == 'C';
}

bool pw_relay_quiet(const struct pw_relay *r)
{
	return r->tx_status == 'I' && r->rfq_seen == r->rfq_owed && !r->ref_n && !r->copy_in &&
	       !r->c_discard && !r->c_remaining && !r->u_remaining;
}

/* How many of the next n bytes at scan are in the buffer already. */
static size_t here(const struct pw_buf *b, size_t n)
{
	return pw_buf_unscanned(b) < n ? pw_buf_unscanned(b) : n;
}

/* Take the total bytes of the message at scan (all of it that is here): decided as they are;
 * the rest, *remaining, follows as it comes. */
static void take(struct pw_buf *b, size_t total, size_t *remaining)
{
	size_t n = here(b, total);
	pw_buf_advance(b, n);
	*remaining = total - n;
}

/* ---- client -> upstream ---- */

/* Replace the client message at scan (total bytes, of which some may not be here yet) by its
 * sentinel: a Query for a Query or FunctionCall, a Parse (of a statement named after the
 * nonce, so the unnamed one is left alone) for a Parse or Bind, whose group the client's
 * messages up to Sync are then dropped from. */
static enum pw_relay_outcome refuse(struct pw_relay *r, struct pw_buf *b, uint8_t type,
                                    size_t total, const struct pw_deny *d)
{
	uint8_t msg[128];
	size_t n;
	if (!r->nonce[0]) {
		uint8_t rnd[8];
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return fail(r, "53200", "pgward: no randomness for a refusal");
		n = (size_t)snprintf(r->nonce, sizeof(r->nonce), "pgward_refused_");
		for (int i = 0; i < 8; i++)
			n += (size_t)snprintf(r->nonce + n, sizeof(r->nonce) - n, "%02x", rnd[i]);
	}
	size_t nl = strlen(r->nonce) + 1;
	struct pw_relay_refusal *rf = &r->ref[(r->ref_head + r->ref_n) % PW_RELAY_MAX_REFUSALS];
	memcpy(rf->sqlstate, d->sqlstate, sizeof(rf->sqlstate));
	snprintf(rf->message, sizeof(rf->message), "%s", d->message);
	if (type == 'Q' || type == 'F') {
		msg[0] = 'Q';
		memcpy(msg + PW_HDR, r->nonce, nl);
		n = PW_HDR + nl;
		r->rfq_owed++; /* it is answered like the Query it stands for */
		r->syncs_since_exec = 0;
		rf->at = r->rfq_owed;
	} else {
		msg[0] = 'P';
		memcpy(msg + PW_HDR, r->nonce, nl);
		memcpy(msg + PW_HDR + nl, r->nonce, nl);
		msg[PW_HDR + 2 * nl] = msg[PW_HDR + 2 * nl + 1] = 0; /* no parameter types */
		n = PW_HDR + 2 * nl + 2;
		rf->at = UINT64_MAX;
		r->c_discard = true;
	}
	pw_put_be32(msg + 1, (uint32_t)(n - 1));
	r->ref_n++;
	size_t have = here(b, total);
	pw_buf_cut(b, have);
	r->c_remaining = total - have;
	r->c_dropping = r->c_remaining > 0;
	if (pw_buf_insert(b, msg, n) < 0)
		return fail(r, "53200", "pgward: out of memory");
	return PW_RELAY_MORE;
}

/* A Query, Parse or Bind at scan, whole: its strings located (JUDGE), or FAIL. */
static enum pw_relay_outcome statement(struct pw_relay *r, const uint8_t *p, uint32_t len)
{
	uint8_t t = p[0];
	struct pw_stmt m = {.type = t, .body = p + PW_HDR, .len = len - 4};
	const char *body = (const char *)m.body, *end = body + m.len;
	const char *z, *z2;
	if (t == 'Q') {
		if (!(z = memchr(body, 0, m.len)))
			return fail(r, "08P01", "invalid Query message: unterminated string");
		m.sql = body;
		m.sql_len = (size_t)(z - body);
	} else {
		/* Parse: name, query; Bind: portal, statement */
		if (!(z = memchr(body, 0, m.len)) ||
		    !(z2 = memchr(z + 1, 0, (size_t)(end - z - 1))))
			return fail(r, "08P01", "invalid %s message: unterminated string",
			            t == 'P' ? "Parse" : "Bind");
		m.name = body;
		if (t == 'P') {
			m.sql = z + 1;
			m.sql_len = (size_t)(z2 - z - 1);
		} else {
			m.stmt = z + 1;
		}
	}
	r->stmt = m;
	r->total = (size_t)len + 1;
	return PW_RELAY_JUDGE;
}

/* A statement at scan (type t, total bytes): JUDGE once it is whole, unless it is over its
 * limit (REFUSED in place) or refusals fill the ring (WAIT). MORE: not whole yet. */
static enum pw_relay_outcome client_statement(struct pw_relay *r, struct pw_buf *b, uint8_t t,
                                              uint32_t len)
{
	size_t total = (size_t)len + 1;
	if (r->ref_n == PW_RELAY_MAX_REFUSALS)
		return PW_RELAY_WAIT;
	if (t == 'F') {
		/* judged by its header: what it calls is decided by the identity alone */
		r->stmt = (struct pw_stmt){
		    .type = 'F', .body = pw_buf_at_scan(b) + PW_HDR, .len = len - 4};
		r->total = total;
		return PW_RELAY_JUDGE;
	}
	size_t limit = t == 'B' ? r->lim.max_bind : r->lim.max_statement;
	if (total > limit + PW_HDR + 64) {
		struct pw_deny d;
		snprintf(d.sqlstate, sizeof(d.sqlstate), "54000");
		snprintf(d.message, sizeof(d.message),
		         "pgward: %s message of %zu bytes exceeds limits.%s (%zu)",
		         t == 'B'   ? "Bind"
		         : t == 'P' ? "Parse"
		                    : "Query",
		         total, t == 'B' ? "max_bind_bytes" : "max_statement_bytes", limit);
		enum pw_relay_outcome o = refuse(r, b, t, total, &d);
		if (o != PW_RELAY_MORE)
			return o;
		r->stmt = (struct pw_stmt){.type = t};
		r->fail = d;
		return PW_RELAY_REFUSED;
	}
	if (pw_buf_unscanned(b) < total) {
		if (pw_buf_reserve_at_scan(b, total) < 0)
			return fail(r, "53200", "pgward: out of memory");
		return PW_RELAY_MORE; /* wait for the whole message */
	}
	return statement(r, pw_buf_at_scan(b), len);
}

/* Any other client message at scan: the protocol's bookkeeping, then passed on. */
static enum pw_relay_outcome client_other(struct pw_relay *r, struct pw_buf *b, uint8_t t,
                                          size_t total)
{
	switch (t) {
	case 'S':
		r->rfq_owed++;
		r->syncs_since_exec++;
		break;
	case 'E':
		r->syncs_since_exec = 0;
		break;
	case 'd':
	case 'c':
	case 'f':
		if (!r->copy_in) {
			/* the server ignores Sync while in COPY IN: the Syncs a client pipelined
			 * after the Execute that started the COPY get no answer */
			r->copy_in = true;
			r->rfq_owed -= r->syncs_since_exec;
			r->syncs_ignored += r->syncs_since_exec;
			r->syncs_since_exec = 0;
		}
		if (t != 'd')
			r->copy_in = false;
		break;
	case 'X':
		r->c_terminated = true;
		if (r->hold_terminate) {
			pw_buf_cut(b, here(b, total));
			return PW_RELAY_HELD;
		}
		break;
	}
	take(b, total, &r->c_remaining);
	return PW_RELAY_MORE;
}

enum pw_relay_outcome pw_relay_scan_client(struct pw_relay *r, struct pw_buf *b)
{
	while (pw_buf_unscanned(b)) {
		if (r->c_remaining) {
			/* the rest of a message already decided: passed on, or dropped */
			if (r->c_dropping) {
				size_t n = here(b, r->c_remaining);
				pw_buf_cut(b, n);
				r->c_remaining -= n;
			} else {
				take(b, r->c_remaining, &r->c_remaining);
			}
			continue;
		}
		r->c_dropping = false;
		if (r->c_terminated) {
			pw_buf_truncate(b); /* nothing is read after Terminate */
			break;
		}
		if (pw_buf_unscanned(b) < PW_HDR) {
			if (pw_buf_reserve_at_scan(b, PW_HDR) < 0)
				return fail(r, "53200", "pgward: out of memory");
			break;
		}
		const uint8_t *p = pw_buf_at_scan(b);
		uint8_t t = p[0];
		uint32_t len = pw_be32(p + 1);
		if (!pw_frontend_type_valid(t))
			return fail(r, "08P01", "invalid frontend message type %d", t);
		if (len < 4 || len > r->lim.max_message)
			return fail(r, "08P01", "invalid message length %u for message type '%c'",
			            len, t);
		size_t total = (size_t)len + 1;
		if (r->c_discard) {
			if (t != 'S') {
				r->c_dropping = true;
				r->c_remaining = total;
				continue;
			}
			/* the Sync that ends the refused group: the server answers it, and the
			 * refusal's sentinel error (if the group had not failed before) comes
			 * first */
			if ((r->masking || r->tracking) && !r->noted)
				return note(r, b, total);
			r->noted = false;
			r->c_discard = false;
			r->rfq_owed++;
			r->syncs_since_exec = 0;
			r->ref[(r->ref_head + r->ref_n - 1) % PW_RELAY_MAX_REFUSALS].at =
			    r->rfq_owed;
			r->c_remaining = total;
			continue;
		}
		if (t == 'Q' || t == 'P' || t == 'B' || t == 'F')
			return client_statement(r, b, t, len); /* MORE: not whole yet */
		if ((r->masking || r->tracking) && noted_type(t) && !r->noted)
			return note(r, b, total);
		r->noted = false;
		enum pw_relay_outcome o = client_other(r, b, t, total);
		if (o != PW_RELAY_MORE)
			return o;
	}
	return PW_RELAY_MORE;
}

enum pw_relay_outcome pw_relay_decide(struct pw_relay *r, struct pw_buf *b, bool deny,
                                      const struct pw_deny *d)
{
	uint8_t t = r->stmt.type;
	if (deny)
		return refuse(r, b, t, r->total, d);
	if (t == 'Q' || t == 'F') {
		r->rfq_owed++;
		r->syncs_since_exec = 0;
	}
	take(b, r->total, &r->c_remaining);
	return PW_RELAY_MORE;
}

/* ---- upstream -> client ---- */

/* An ErrorResponse at scan while refusals are on their way: the one its sentinel caused
 * becomes the refusal. -1 FAIL, 0 not whole yet, 1 not a sentinel's (left as it is), 2
 * replaced (the refusal is in its place, scanned). */
static int sentinel_error(struct pw_relay *r, struct pw_buf *b, uint32_t len)
{
	size_t total = (size_t)len + 1;
	if (len > PW_RELAY_SMALL_MAX)
		return 1; /* not one of ours: those are short */
	if (pw_buf_unscanned(b) < total) {
		if (pw_buf_reserve_at_scan(b, total) < 0) {
			fail(r, "53200", "pgward: out of memory");
			return -1;
		}
		return 0;
	}
	const char *m = pw_error_field(pw_buf_at_scan(b) + PW_HDR, len - 4, 'M');
	if (!m || !strstr(m, r->nonce))
		return 1;
	struct pw_relay_refusal *rf = &r->ref[r->ref_head];
	pw_buf_cut(b, total);
	if (pw_msg_error(b, 'E', "ERROR", rf->sqlstate, rf->message, NULL) < 0) {
		fail(r, "53200", "pgward: out of memory");
		return -1;
	}
	r->ref_head = (r->ref_head + 1) % PW_RELAY_MAX_REFUSALS;
	r->ref_n--;
	return 2;
}

/* Is the message at scan whole? If not, make room for it and say so. */
static bool whole(struct pw_buf *b, size_t total)
{
	if (pw_buf_unscanned(b) >= total)
		return true;
	pw_buf_reserve_at_scan(b, total);
	return false;
}

enum pw_relay_outcome pw_relay_scan_upstream(struct pw_relay *r, struct pw_buf *b)
{
	while (pw_buf_unscanned(b)) {
		if (r->u_remaining) {
			take(b, r->u_remaining, &r->u_remaining); /* the rest of a message */
			continue;
		}
		if (pw_buf_unscanned(b) < PW_HDR) {
			/* a header is all a message needs to be passed on: ParseComplete and its
			 * kin are nothing more, and after a Flush nothing else may follow */
			pw_buf_reserve_at_scan(b, PW_HDR + 8);
			break;
		}
		const uint8_t *p = pw_buf_at_scan(b);
		uint32_t len = pw_be32(p + 1);
		if (len < 4)
			return fail(r, "08P01", "pgward: upstream sent an invalid message length");
		size_t total = (size_t)len + 1;
		r->total = total;
		if (r->masking) {
			/* every message whole: a value may be in any of them */
			if (total > r->lim.max_message + 1)
				return fail(r, "54000",
				            "pgward: upstream message of %zu bytes exceeds "
				            "limits.max_message_bytes in a masked session",
				            total);
			if (!whole(b, total))
				return pw_buf_unscanned(b) < total && b->cap - b->scan < total
				           ? fail(r, "53200", "pgward: out of memory")
				           : PW_RELAY_MORE;
		}
		if (r->each_upstream && total > PW_RELAY_SMALL_MAX) {
			r->each_upstream = false;
			return PW_RELAY_UP_BIG;
		}
		if (r->each_upstream && !whole(b, total))
			return PW_RELAY_MORE;
		switch (p[0]) {
		case 'S':
			if (len > PW_RELAY_SMALL_MAX)
				return fail(r, "08P01",
				            "pgward: upstream sent an oversized ParameterStatus");
			return whole(b, total) ? PW_RELAY_UP_PARAM : PW_RELAY_MORE;
		case 'K':
			if (len != 12)
				return fail(r, "08P01",
				            "pgward: upstream sent a malformed BackendKeyData");
			return whole(b, total) ? PW_RELAY_UP_KEY : PW_RELAY_MORE;
		case 'Z':
			if (len != 5)
				return fail(r, "08P01",
				            "pgward: upstream sent a malformed ReadyForQuery");
			if (!whole(b, total))
				return PW_RELAY_MORE;
			r->tx_status = (char)p[5];
			r->rfq_seen++;
			/* a group that had failed before its sentinel: the server discarded the
			 * sentinel with the rest, and gave the one error it gives, as it would */
			while (r->ref_n && r->ref[r->ref_head].at <= r->rfq_seen) {
				r->ref_head = (r->ref_head + 1) % PW_RELAY_MAX_REFUSALS;
				r->ref_n--;
			}
			break;
		case 'E':
			if (r->ref_n) {
				int rc = sentinel_error(r, b, len);
				if (rc < 0)
					return PW_RELAY_FAIL;
				if (rc == 0)
					return PW_RELAY_MORE;
				if (rc == 2 && r->tracking)
					return PW_RELAY_UP_REFUSAL;
				if (rc == 2)
					continue; /* replaced by the refusal, already decided */
			}
			break;
		}
		if (r->each_upstream)
			return PW_RELAY_UP_MSG;
		if (r->masking)
			return PW_RELAY_UP_MASK;
		if (r->tracking && pw_audit_tracked(p[0])) {
			if (total > r->lim.max_message + 1)
				return fail(r, "54000",
				            "pgward: upstream message of %zu bytes exceeds "
				            "limits.max_message_bytes",
				            total);
			if (!whole(b, total))
				return pw_buf_unscanned(b) < total && b->cap - b->scan < total
				           ? fail(r, "53200", "pgward: out of memory")
				           : PW_RELAY_MORE;
			return PW_RELAY_UP_NOTE;
		}
		take(b, total, &r->u_remaining);
	}
	return PW_RELAY_MORE;
}

void pw_relay_pass(struct pw_relay *r, struct pw_buf *b)
{
	take(b, r->total, &r->u_remaining);
}
