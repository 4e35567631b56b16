/* The relay's state machine (relay.h) driven with message sequences, as a table: what the
 * client sends, what the server answers, and what goes out each way. Messages are written
 * as tokens:
 * separated by ";":
 *   client  Q:text  P:name:text  B:portal:stmt  E (Execute)  S (Sync)  H (Flush)  F
 *           (FunctionCall)  d:data (CopyData)  c (CopyDone)  X (Terminate)  | (the bytes so
 *           far arrive, and are scanned, before the rest)  !bad-type  !bad-len  !unterminated
 *   server  Z:I  E:code:message (an ErrorResponse; the message "<sentinel>" names the
 *           session's nonce, as the server's syntax error at a sentinel does)  C:tag
 *           1 (ParseComplete)  S:name=value  K (BackendKeyData)
 * In what goes out, a sentinel (the refused message's stand-in) shows as <sentinel>.
 * The judge refuses Query and Parse texts that start with DENY, and every FunctionCall. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/proto.h"
#include "pgward/relay.h"

#define SMALL_LIMIT 64 /* max_statement_bytes and max_bind_bytes in these tests */
#define X10         "xxxxxxxxxx"
#define X150        X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10

struct row {
	const char *name;
	const char *client;    /* what the client sends */
	const char *upstream;  /* what goes upstream */
	const char *last;      /* the last outcome of the client scan */
	int owed;              /* ReadyForQuery messages owed after it, in total */
	const char *server;    /* then what the server answers (NULL: nothing) */
	const char *to_client; /* and what the client gets */
	int quiet;             /* and whether the relay is idle afterwards (-1: not checked) */
	int hold;              /* hold_terminate */
};

static const struct row rows[] = {
    {"a Query passes and is owed a ReadyForQuery", "Q:SELECT 1", "Q:SELECT 1", "more", 2,
     "C:SELECT; Z:I", "C:SELECT; Z:I", 1, 0},
    {"a refused Query becomes its sentinel, and the sentinel's error the refusal", "Q:DENY this",
     "Q:<sentinel>", "more", 2, "E:42601:<sentinel>; Z:I", "E:42501:refused by the test; Z:I", 1,
     0},
    {"the server's own errors pass as they are", "Q:SELECT x", "Q:SELECT x", "more", 2,
     "E:42703:column x does not exist; Z:I", "E:42703:column x does not exist; Z:I", 1, 0},
    {"a refused Parse: its group is dropped up to Sync, the Sync passes",
     "P::DENY; B::; E; S; Q:SELECT 2", "P::<sentinel>; S; Q:SELECT 2", "more", 3,
     "E:42601:<sentinel>; Z:I; C:SELECT; Z:I", "E:42501:refused by the test; Z:I; C:SELECT; Z:I", 1,
     0},
    {"a pipeline: the groups around a refused one pass",
     "P::SELECT 1; B::; E; S; P::DENY; B::; E; S; P::SELECT 3; B::; E; S",
     "P::SELECT 1; B::; E; S; P::<sentinel>; S; P::SELECT 3; B::; E; S", "more", 4,
     "1; C:SELECT; Z:I; E:42601:<sentinel>; Z:I; 1; C:SELECT; Z:I",
     "1; C:SELECT; Z:I; E:42501:refused by the test; Z:I; 1; C:SELECT; Z:I", 1, 0},
    {"a Flush does not end the dropping, only a Sync does", "P::DENY; H; B::; E; H; S",
     "P::<sentinel>; S", "more", 2, "E:42601:<sentinel>; Z:I", "E:42501:refused by the test; Z:I",
     1, 0},
    {"a group that failed before its sentinel: the refusal is dropped at its ReadyForQuery",
     "P::SELECT nope; B::; E; P::DENY; B::; E; S", "P::SELECT nope; B::; E; P::<sentinel>; S",
     "more", 2, "E:42703:column nope does not exist; Z:E",
     "E:42703:column nope does not exist; Z:E", 0, 0},
    {"a refused FunctionCall becomes a sentinel Query", "F", "Q:<sentinel>", "more", 2,
     "E:42601:<sentinel>; Z:I", "E:42501:refused by the test; Z:I", 1, 0},
    {"COPY IN: the Syncs pipelined after the Execute that starts it are not answered",
     "P::COPY t FROM STDIN; B::; E; S; d:abc; c; S", "P::COPY t FROM STDIN; B::; E; S; d; c; S",
     "more", 2, NULL, NULL, -1, 0},
    {"CopyFail ends COPY IN as CopyDone does", "Q:COPY t FROM STDIN; d:abc; f",
     "Q:COPY t FROM STDIN; d; f", "more", 2, "Z:I", "Z:I", 1, 0},
    {"a statement split over two reads waits for its rest", "Q:SEL|ECT 1", "Q:SELECT 1", "more", 2,
     NULL, NULL, -1, 0},
    {"a Query over max_statement_bytes is refused without being judged", "Q:SELECT '" X150 "'",
     "Q:<sentinel>", "more", 2, "E:42601:<sentinel>; Z:I",
     "E:54000:pgward: Query message of 165 bytes exceeds limits.max_statement_bytes (64); Z:I", 1,
     0},
    {"eight refusals on their way: the ninth statement waits for them",
     "Q:DENY1; Q:DENY2; Q:DENY3; Q:DENY4; Q:DENY5; Q:DENY6; Q:DENY7; Q:DENY8; Q:DENY9",
     "Q:<sentinel>; Q:<sentinel>; Q:<sentinel>; Q:<sentinel>; Q:<sentinel>; Q:<sentinel>; "
     "Q:<sentinel>; Q:<sentinel>",
     "wait", 9, NULL, NULL, -1, 0},
    {"Terminate passes, and nothing after it is read", "X; Q:SELECT 1", "X", "more", 1, NULL, NULL,
     -1, 0},
    {"Terminate is held back when the owner keeps the connection", "Q:SELECT 1; X", "Q:SELECT 1",
     "held", 2, "C:SELECT; Z:I", "C:SELECT; Z:I", 1, 1},
    {"an unknown message type fails the session with 08P01", "!bad-type", "", "fail:08P01", 1, NULL,
     NULL, -1, 0},
    {"a message length under 4 fails the session with 08P01", "!bad-len", "", "fail:08P01", 1, NULL,
     NULL, -1, 0},
    {"a Query without its terminating NUL fails the session with 08P01", "!unterminated", "",
     "fail:08P01", 1, NULL, NULL, -1, 0},
    {"ParameterStatus and BackendKeyData go to the client whole", "Q:SET x.y = 1", "Q:SET x.y = 1",
     "more", 2, "S:x.y=1; K; C:SET; Z:I", "S:x.y=1; K; C:SET; Z:I", 1, 0},
    {"inside a transaction the relay is not quiet", "Q:BEGIN", "Q:BEGIN", "more", 2, "C:BEGIN; Z:T",
     "C:BEGIN; Z:T", 0, 0},
};

/* ---- building messages ---- */

/* pw_msg_* write decided bytes (at scan): a message is made in a scratch buffer and appended
 * to b unscanned, as if it had been read */
static void append_from(struct pw_buf *b, struct pw_buf *tmp)
{
	if (pw_buf_append(b, tmp->data + tmp->start, tmp->scan - tmp->start) < 0)
		abort();
	pw_buf_free(tmp);
}

static void put(struct pw_buf *b, uint8_t type, const void *body, size_t n)
{
	struct pw_buf tmp;
	if (pw_buf_init(&tmp, 64) < 0 || pw_msg_raw(&tmp, type, body, n) < 0)
		abort();
	append_from(b, &tmp);
}

static void put_strings(struct pw_buf *b, uint8_t type, int n, ...)
{
	char body[512];
	size_t len = 0;
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++) {
		const char *s = va_arg(ap, const char *);
		size_t l = strlen(s) + 1;
		memcpy(body + len, s, l);
		len += l;
	}
	va_end(ap);
	put(b, type, body, len);
}

/* one client token at the end of b */
static void client_token(struct pw_buf *b, const char *tok)
{
	tok += strspn(tok, " ");
	char t[512];
	snprintf(t, sizeof(t), "%s", tok);
	char *a = strchr(t, ':'), *c = a ? strchr(a + 1, ':') : NULL;
	if (a)
		*a++ = 0;
	if (c)
		*c++ = 0;
	static const uint8_t zero4[4] = {0};
	if (!strcmp(t, "Q")) {
		put_strings(b, 'Q', 1, a);
	} else if (!strcmp(t, "P")) {
		char body[512];
		size_t n = (size_t)snprintf(body, sizeof(body), "%s", a) + 1;
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s", c) + 1;
		body[n++] = 0, body[n++] = 0; /* no parameter types */
		put(b, 'P', body, n);
	} else if (!strcmp(t, "B")) {
		char body[64] = {0}; /* portal, statement, no formats, params or result formats */
		put(b, 'B', body, 2 + 6);
	} else if (!strcmp(t, "E")) {
		put(b, 'E', "\0\0\0\0", 5);
	} else if (!strcmp(t, "S") || !strcmp(t, "H") || !strcmp(t, "c") || !strcmp(t, "X")) {
		put(b, (uint8_t)t[0], NULL, 0);
	} else if (!strcmp(t, "F")) {
		put(b, 'F', zero4, 4);
	} else if (!strcmp(t, "d")) {
		put(b, 'd', a, strlen(a));
	} else if (!strcmp(t, "f")) {
		put_strings(b, 'f', 1, "no");
	} else if (!strcmp(t, "!bad-type")) {
		put(b, 'z', NULL, 0);
	} else if (!strcmp(t, "!bad-len")) {
		uint8_t m[5] = {'Q', 0, 0, 0, 2};
		pw_buf_append(b, m, sizeof(m));
	} else if (!strcmp(t, "!unterminated")) {
		put(b, 'Q', "SELECT", 6);
	} else {
		fprintf(stderr, "bad token %s\n", tok);
		abort();
	}
}

static void server_token(struct pw_buf *b, const char *tok, const char *nonce)
{
	tok += strspn(tok, " ");
	char t[512];
	snprintf(t, sizeof(t), "%s", tok);
	char *a = strchr(t, ':'), *c = a ? strchr(a + 1, ':') : NULL;
	if (a)
		*a++ = 0;
	if (c)
		*c++ = 0;
	if (!strcmp(t, "Z")) {
		put(b, 'Z', a, 1);
	} else if (!strcmp(t, "E")) {
		char msg[256];
		if (!strcmp(c, "<sentinel>"))
			snprintf(msg, sizeof(msg), "syntax error at or near \"%s\"", nonce);
		else
			snprintf(msg, sizeof(msg), "%s", c);
		struct pw_buf tmp;
		if (pw_buf_init(&tmp, 64) < 0 || pw_msg_error(&tmp, 'E', "ERROR", a, msg, NULL) < 0)
			abort();
		append_from(b, &tmp);
	} else if (!strcmp(t, "C")) {
		put_strings(b, 'C', 1, a);
	} else if (!strcmp(t, "1")) {
		put(b, '1', NULL, 0);
	} else if (!strcmp(t, "S")) {
		char *eq = strchr(a, '=');
		*eq++ = 0;
		put_strings(b, 'S', 2, a, eq);
	} else if (!strcmp(t, "K")) {
		put(b, 'K', "\0\0\0\1\0\0\0\2", 8);
	} else {
		fprintf(stderr, "bad token %s\n", tok);
		abort();
	}
}

/* ---- reading what went out ---- */

static void render(const struct pw_relay *r, const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = 0;
	while (n >= PW_HDR) {
		uint32_t len = pw_be32(p + 1);
		const char *body = (const char *)p + PW_HDR;
		char tok[512];
		switch (p[0]) {
		case 'Q':
			snprintf(tok, sizeof(tok), "Q:%s",
			         r->nonce[0] && !strcmp(body, r->nonce) ? "<sentinel>" : body);
			break;
		case 'P':
			if (r->nonce[0] && !strcmp(body, r->nonce))
				snprintf(tok, sizeof(tok), "P::<sentinel>");
			else
				snprintf(tok, sizeof(tok), "P:%s:%s", body,
				         body + strlen(body) + 1);
			break;
		case 'B':
			snprintf(tok, sizeof(tok), "B::");
			break;
		case 'E':
			if (len > 4 && body[0]) { /* an ErrorResponse: fields; an Execute: portal */
				const char *code =
				    pw_error_field((const uint8_t *)body, len - 4, 'C');
				const char *m = pw_error_field((const uint8_t *)body, len - 4, 'M');
				snprintf(tok, sizeof(tok), "E:%s:%s", code ? code : "?",
				         m ? m : "?");
			} else {
				snprintf(tok, sizeof(tok), "E");
			}
			break;
		case 'Z':
			snprintf(tok, sizeof(tok), "Z:%c", body[0]);
			break;
		case 'C':
			snprintf(tok, sizeof(tok), "C:%s", body);
			break;
		case 'S':
			if (len > 4) { /* ParameterStatus (server); a client Sync is empty */
				snprintf(tok, sizeof(tok), "S:%s=%s", body,
				         body + strlen(body) + 1);
				break;
			}
			/* fall through */
		default:
			snprintf(tok, sizeof(tok), "%c", p[0]);
			break;
		}
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? "; " : "", tok);
		if (o >= outlen)
			break;
		p += len + 1;
		n -= len + 1;
	}
}

/* ---- driving ---- */

static const char *drive_client(struct pw_relay *r, struct pw_buf *b)
{
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_client(r, b);
		if (o == PW_RELAY_REFUSED)
			continue;
		if (o != PW_RELAY_JUDGE)
			return pw_relay_outcome_name(o);
		const struct pw_stmt *m = &r->stmt;
		bool deny = m->type == 'F' ||
		            ((m->type == 'Q' || m->type == 'P') && !strncmp(m->sql, "DENY", 4));
		struct pw_deny d = {.sqlstate = "42501"};
		snprintf(d.message, sizeof(d.message), "refused by the test");
		if (pw_relay_decide(r, b, deny, &d) == PW_RELAY_FAIL)
			return "fail";
	}
}

static void drive_upstream(struct pw_relay *r, struct pw_buf *b)
{
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_upstream(r, b);
		if (o == PW_RELAY_UP_PARAM || o == PW_RELAY_UP_KEY || o == PW_RELAY_UP_MSG) {
			pw_relay_pass(r, b);
			continue;
		}
		if (o != PW_RELAY_UP_BIG)
			return;
	}
}

static void run_row(const struct row *w)
{
	struct pw_relay r;
	struct pw_relay_limits lim = {
	    .max_message = 1 << 20, .max_statement = SMALL_LIMIT, .max_bind = SMALL_LIMIT};
	pw_relay_start(&r, &lim, false, 'I', w->hold);
	struct pw_buf cb, ub;
	if (pw_buf_init(&cb, 256) < 0 || pw_buf_init(&ub, 256) < 0)
		abort();

	/* the client's bytes, in one or two reads */
	char spec[1024], *save = NULL;
	snprintf(spec, sizeof(spec), "%s", w->client);
	const char *last = "more";
	char *split = strchr(spec, '|');
	struct pw_buf whole;
	if (pw_buf_init(&whole, 256) < 0)
		abort();
	if (split)
		memmove(split, split + 1, strlen(split)); /* the bar is only where to split */
	for (char *t = strtok_r(spec, ";", &save); t; t = strtok_r(NULL, ";", &save))
		client_token(&whole, t);
	size_t cut = whole.end;
	if (split) {
		/* the split falls inside the first message: its first bytes only */
		cut = PW_HDR + (size_t)(split - strchr(spec, ':') - 1);
	}
	pw_buf_append(&cb, whole.data, cut);
	last = drive_client(&r, &cb);
	if (cut < whole.end) {
		pw_buf_append(&cb, whole.data + cut, whole.end - cut);
		last = drive_client(&r, &cb);
	}
	char out[2048];
	render(&r, cb.data + cb.start, pw_buf_pending(&cb), out, sizeof(out));
	char got_last[32];
	snprintf(got_last, sizeof(got_last), "%s%s%s", last, !strcmp(last, "fail") ? ":" : "",
	         !strcmp(last, "fail") ? r.fail.sqlstate : "");
	CHECK(!strcmp(out, w->upstream) && !strcmp(got_last, w->last) && (int)r.rfq_owed == w->owed,
	      "%s (upstream: %s; %s; owed %llu)", w->name, out, got_last,
	      (unsigned long long)r.rfq_owed);
	if (w->server) {
		snprintf(spec, sizeof(spec), "%s", w->server);
		for (char *t = strtok_r(spec, ";", &save); t; t = strtok_r(NULL, ";", &save))
			server_token(&ub, t, r.nonce);
		drive_upstream(&r, &ub);
		render(&r, ub.data + ub.start, pw_buf_pending(&ub), out, sizeof(out));
		CHECK(!strcmp(out, w->to_client) &&
		          (w->quiet < 0 || pw_relay_quiet(&r) == (w->quiet == 1)) &&
		          !pw_buf_unscanned(&ub),
		      "%s: the client gets %s%s", w->name, out,
		      w->quiet < 0         ? ""
		      : pw_relay_quiet(&r) ? ", quiet"
		                           : ", not quiet");
	}
	pw_buf_free(&whole);
	pw_buf_free(&cb);
	pw_buf_free(&ub);
}

/* The start-up capture (connection reuse): every upstream message whole, until a big one. */
static void each_upstream(void)
{
	struct pw_relay r;
	struct pw_relay_limits lim = {
	    .max_message = 1 << 20, .max_statement = 1 << 20, .max_bind = 1 << 20};
	pw_relay_start(&r, &lim, true, 'I', false);
	pw_relay_each_upstream(&r, true);
	struct pw_buf b;
	if (pw_buf_init(&b, 256) < 0)
		abort();
	server_token(&b, "S:a=b", "");
	server_token(&b, "K", "");
	/* a notice too big to be kept whole */
	static char big[PW_RELAY_SMALL_MAX + 100];
	memset(big, 'n', sizeof(big) - 1);
	put(&b, 'N', big, sizeof(big));
	server_token(&b, "Z:I", "");
	char seq[256] = "";
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_upstream(&r, &b);
		strcat(seq, pw_relay_outcome_name(o));
		strcat(seq, " ");
		if (o == PW_RELAY_UP_PARAM || o == PW_RELAY_UP_KEY || o == PW_RELAY_UP_MSG)
			pw_relay_pass(&r, &b);
		else if (o != PW_RELAY_UP_BIG)
			break;
	}
	CHECK(!strcmp(seq, "up-param up-key up-big more ") && !pw_buf_unscanned(&b) &&
	          r.rfq_seen == 1,
	      "capture: ParameterStatus and BackendKeyData handed over, a big message ends the "
	      "capture and passes (%s)",
	      seq);
	pw_buf_free(&b);

	pw_relay_start(&r, &lim, true, 'I', false);
	if (pw_buf_init(&b, 256) < 0)
		abort();
	put(&b, 'S', big, 200);
	memset(big, 'x', PW_RELAY_SMALL_MAX + 50);
	put(&b, 'S', big, PW_RELAY_SMALL_MAX + 50);
	enum pw_relay_outcome o = pw_relay_scan_upstream(&r, &b);
	pw_relay_pass(&r, &b);
	o = pw_relay_scan_upstream(&r, &b);
	CHECK(o == PW_RELAY_FAIL && !strcmp(r.fail.sqlstate, "08P01"),
	      "an oversized ParameterStatus fails the session (%s %s)", pw_relay_outcome_name(o),
	      r.fail.sqlstate);
	pw_buf_free(&b);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
	each_upstream();
	return check_done();
}
