/* Masking on the wire: ErrorResponse and NoticeResponse scrubbed. See include/pgward/mask_wire.h.
 */
#include <stdio.h>
#include <string.h>

#include "mask_wire_int.h"
#include "pgward/detect.h"
#include "pgward/proto.h"

/* ---- ErrorResponse, NoticeResponse -------------------------------------------------------- */

/* Every detector's match in v replaced by "[redacted]", into o. */
static int redact_matches(const uint8_t *v, size_t n, struct pw_mask_out *o)
{
	struct pw_detect_match m;
	size_t from = 0, last = 0;
	int rc = 0;
	while (!rc && from < n && pw_detect_next(v, n, from, PW_DET_ALL, &m)) {
		if (m.off < from || m.off > n || m.len > n - m.off)
			return PW_MASK_BAD;
		rc = mw_put(o, v + last, m.off - last);
		if (!rc)
			rc = mw_put(o, REDACTED, strlen(REDACTED));
		last = m.off + m.len;
		from = m.off + (m.len ? m.len : 1);
	}
	return rc ? rc : mw_put(o, v + last, n - last);
}

/* A message that quotes what the statement read: each "..." and each =(...) made ***. A
 * value may hold parentheses itself, so =( runs to the field's last ')'; an unclosed run to
 * the end. */
static int hide_quoted(const uint8_t *v, size_t n, struct pw_mask_out *o)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < n;) {
		const uint8_t *close;
		if (v[i] == '"') {
			close = memchr(v + i + 1, '"', n - i - 1);
			rc = mw_put(o, "\"***", 4);
		} else if (v[i] == '=' && i + 1 < n && v[i + 1] == '(') {
			close = memrchr(v + i + 2, ')', n - i - 2);
			rc = mw_put(o, "=(***", 5);
		} else {
			rc = mw_put(o, v + i++, 1);
			continue;
		}
		if (!close)
			break;
		if (!rc)
			rc = mw_put(o, close, 1);
		i = (size_t)(close - v) + 1;
	}
	return rc;
}

/* The fields that may quote data: message, detail, hint, context, internal query, and any
 * code this list does not know. */
static bool scrubbed(uint8_t code)
{
	return !memchr("SVCPpFLRstcdn", code, 13);
}

/* SQLSTATE classes whose errors come before any row is read, or say nothing of one (syntax and
 * names, connections, transactions, resources, operator intervention): their message stays,
 * scrubbed of detector matches. Any other error of a statement that read masked data (a data
 * exception, a constraint, a RAISE) may carry a value anywhere in its text, quoted or not:
 * its message is withheld. */
static bool names_only(const char *state, bool positioned)
{
	/* never a value: connections, transaction state, serialization, resources, operator
	 * intervention */
	static const char *const classes[] = {"08", "25", "40", "53", "57"};
	for (size_t i = 0; state && i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(state, classes[i], 2) == 0)
			return true;
	/* syntax, names, features: only when the error points into the statement's text (P),
	 * as parse analysis reports them, before any row is read; at run time the same classes
	 * can be made to quote a value (('x' || salary)::regoper) */
	return positioned && state &&
	       (strncmp(state, "42", 2) == 0 || strncmp(state, "0A", 2) == 0);
}

/* Field code's value v (no NUL) scrubbed into b (a: scratch); CELL_SAME when it is as it was.
 * state: the message's SQLSTATE (NULL: none). */
static int scrub_field(uint8_t code, bool tainted, const char *state, bool positioned,
                       const uint8_t *v, size_t n, struct pw_mask_out *a, struct pw_mask_out *b)
{
	const uint8_t *s = v;
	size_t sn = n;
	int rc = 0;
	a->len = b->len = 0;
	if (tainted && code == 'M' && !names_only(state, positioned)) {
		char msg[160];
		int l =
		    snprintf(msg, sizeof(msg),
		             "pgward: withheld (an error of SQLSTATE %.5s in a statement that read "
		             "masked columns)",
		             state ? state : "?");
		rc = mw_put(b, msg, (size_t)l);
	} else if (tainted && code != 'M')
		rc = mw_put(b, PW_MASK_WITHHELD, strlen(PW_MASK_WITHHELD));
	else {
		/* what parse analysis quotes is the statement's own text (its position says so);
		 * anything else in quotes may be made of a value: ('x' || ssn)::regclass */
		if (tainted && !positioned) {
			rc = hide_quoted(v, n, a);
			s = a->data ? a->data : (const uint8_t *)"";
			sn = a->len;
		}
		if (!rc)
			rc = redact_matches(s, sn, b);
	}
	if (rc)
		return rc;
	return b->len == n && (!n || !memcmp(b->data, v, n)) ? CELL_SAME : CELL_NEW;
}

int pw_mask_scrub_notice(const uint8_t *msg, size_t len, bool tainted,
                         const struct pw_mask_ctx *ctx, struct pw_mask_out *out)
{
	(void)ctx;
	if (!out)
		return PW_MASK_BAD;
	out->len = 0;
	if (!mw_framed(msg, len, "EN"))
		return PW_MASK_BAD;
	struct wr w = {out, msg, len, 0, false};
	struct pw_mask_out a = {0}, b = {0};
	size_t i = PW_HDR;
	char state[6] = "";
	bool positioned = false;
	/* the SQLSTATE first: it says how much of the rest may stay */
	for (size_t k = PW_HDR; k < len && msg[k];) {
		const uint8_t *z = memchr(msg + k + 1, 0, len - k - 1);
		if (!z)
			break;
		if (msg[k] == 'C')
			snprintf(state, sizeof(state), "%.*s", (int)(z - msg - k - 1),
			         (const char *)msg + k + 1);
		positioned |= msg[k] == 'P';
		k = (size_t)(z - msg) + 1;
	}
	int rc = 0;
	for (;;) {
		if (i >= len) {
			rc = PW_MASK_BAD; /* no terminator */
			break;
		}
		uint8_t code = msg[i++];
		if (!code) {
			rc = i == len ? 0 : PW_MASK_BAD;
			break;
		}
		const uint8_t *z = memchr(msg + i, 0, len - i);
		if (!z) {
			rc = PW_MASK_BAD;
			break;
		}
		size_t vs = i, ve = (size_t)(z - msg);
		i = ve + 1;
		if (!scrubbed(code))
			continue;
		rc = scrub_field(code, tainted, state[0] ? state : NULL, positioned, msg + vs,
		                 ve - vs, &a, &b);
		if (rc == CELL_NEW) {
			rc = mw_wr_cut(&w, vs, ve);
			if (!rc)
				rc = mw_put(out, b.data, b.len);
		}
		if (rc < 0)
			break;
	}
	pw_mask_out_free(&a);
	pw_mask_out_free(&b);
	if (!rc)
		rc = mw_wr_end(&w);
	if (rc != PW_MASK_CHANGED)
		out->len = 0;
	return rc;
}
