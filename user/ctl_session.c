/* pgwardctl session replay: a recorded session (docs/recording.md, read by record_read.h)
 * printed as `psql -X -e` printed it, stderr merged, so that a test can compare the two byte
 * for byte once it drops replay's own lines (they start with "-- "); or, with --raw, one line
 * per message (-j: one JSON object per message).
 *
 * As psql 15 prints it (psql/common.c, fe_utils/print.c, libpq's fe-protocol3.c; checked
 * against psql 15): a simple Query's text and a newline (the echo), then every result of it:
 * a table (aligned, border 1: names centered, numeric types right-aligned, NULL empty,
 * multi-line cells with '+' marks, "(N rows)" and an empty line; INSERT/UPDATE/DELETE ...
 * RETURNING add their tag), a command's tag, nothing for an empty query, COPY TO STDOUT's
 * data (no tag), an error as libpq builds it (LINE display and caret, DETAIL, HINT, QUERY,
 * CONTEXT), a notice likewise without CONTEXT, notifications after the results, and after a
 * FATAL error that ended the session, libpq's and psql's "connection to server was lost"
 * lines. In psql's order: a result is printed once the next one is whole (or the statement
 * over), a notice as soon as it is read, so notices up to and right after the next result
 * come first (psql reads an answer that is all buffered so; replay assumes it always was).
 * The extended protocol (no psql to mirror): each Execute as its statement's text and
 * "-- parameters: $1 = '42', $2 = NULL", its result when whole; "-- prepare NAME" for a
 * named Parse. Replay's own lines: the header; "-- refused by pgward" after an error whose
 * message starts with "pgward: "; "-- time: 0.412 ms" after each statement (its first
 * frontend byte to its ReadyForQuery); rows that came before the recording ended, and
 * "-- the result above is incomplete"; at the end, "-- the recording ends mid-message",
 * "-- recording truncated: REASON", "-- ended: REASON" (or "-- the recording has no end
 * frame"). Text is taken as UTF-8; control characters but tab, newline and CR LF come out
 * escaped (pw_rec_text) where psql would print them raw. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"
#include "pgward/log.h"
#include "pgward/proto.h"
#include "pgward/record_read.h"

#define DEFAULT_DIR "/var/lib/pgward/recordings"
#define NAMED       64 /* prepared statements and portals remembered (then the oldest go) */

static int do_replay(int argc, char **argv);

static const struct pw_ctl_cmd session_cmds[] = {
    {"replay", do_replay, "[--raw] [--speed N] [--dir DIR] ID|FILE",
     "print a recorded session as psql -X -e printed it (lines of replay's own start with\n"
     "    \"-- \"); --raw: one line per message (-j: a JSON object per message); --speed N:\n"
     "    paced as it happened, N times faster; ID: the newest DIR/*-ID.pgrec (DIR:\n"
     "    " DEFAULT_DIR ")"},
    {"show", pw_ctl_session_show, "[id N | identity NAME]",
     "the live sessions: who, from where, to where, doing what (pgwardd)"},
    {"kill", pw_ctl_session_kill, "id N", "end a live session (pgwardd; operators)"},
    {"watch", pw_ctl_session_watch, "[id N]",
     "every statement as it is judged, of all sessions or one, until interrupted (pgwardd)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_session(int argc, char **argv)
{
	return pw_ctl_run_table(session_cmds, "session", argc, argv);
}

/* ---- the session as psql printed it ---- */

struct named {
	char *name, *text, *params;
};

struct rs {
	FILE *out;
	bool in_stmt, extended, copy_out, fatal;
	uint64_t t0;
	char *query; /* the statement's text, for the LINE display of an error */
	struct pw_rec_result cur, due, pend;
	bool has_due, has_pend;
	char *nbuf; /* notifications, printed after the statement's results */
	size_t nlen;
	FILE *nf;
	struct named named[2][NAMED]; /* prepared statements, portals */
	unsigned st_next, po_next;
};

static void text(FILE *f, const char *s)
{
	pw_rec_text(f, s, strlen(s), false);
}

/* on a line of replay's own: newlines escaped too */
static void line_text(FILE *f, const char *s)
{
	pw_rec_text(f, s, strlen(s), true);
}

static bool right_aligned(uint32_t type)
{
	/* column_type_alignment: int2 int4 int8 float4 float8 numeric oid xid xid8 cid money */
	static const uint32_t r[] = {21, 23, 20, 700, 701, 1700, 26, 28, 5069, 29, 790};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (type == r[i])
			return true;
	return false;
}

/* One row (or the header: head) of print_aligned_text, border 1, linestyle ascii: a cell's
 * lines under each other, '+' after a line with another below it; names centered and padded
 * to the end, values aligned by type and the last column's left-aligned one not padded. */
static void print_lines(FILE *out, const struct pw_rec_result *res, struct pw_rec_lines *f,
                        const int *w, bool head)
{
	int *cur = calloc((size_t)res->ncols + 1, sizeof(int));
	bool more = cur && res->ncols; /* no columns: no lines */
	while (more) {
		more = false;
		for (int j = 0; j < res->ncols; j++) {
			bool last = !head && j == res->ncols - 1;
			char al = head ? 'c' : right_aligned(res->types[j]) ? 'r' : 'l';
			int chars = w[j], pad = 0;
			fputc(' ', out);
			if (cur[j] >= f[j].n) {
				fprintf(out, "%*s", last ? 0 : w[j], "");
			} else {
				chars = f[j].width[cur[j]];
				pad = al == 'r' ? w[j] - chars : al == 'c' ? (w[j] - chars) / 2 : 0;
				fprintf(out, "%*s%s", pad, "", f[j].buf + f[j].start[cur[j]]);
				more |= ++cur[j] < f[j].n;
			}
			bool nl = cur[j] < f[j].n && cur[j] != 0;
			if (al != 'r' && (!last || nl))
				fprintf(out, "%*s", w[j] - chars - pad, "");
			fputs(nl ? "+" : last ? "" : " ", out);
			fputs(j < res->ncols - 1 ? "|" : "", out);
		}
		fputc('\n', out);
	}
	free(cur);
}

/* The widest line of each column (its name's and its cells'); -1: no memory. */
static int widths(const struct pw_rec_result *res, struct pw_rec_lines *f, int *w)
{
	const char *c = res->names;
	for (size_t r = 0; r <= res->nrows; r++) {
		if (r)
			c = res->rows[r - 1];
		for (int i = 0; i < res->ncols; c += strlen(c) + 1, i++) {
			if (pw_rec_format(&f[i], c) < 0)
				return -1;
			for (int k = 0; k < f[i].n; k++)
				w[i] = f[i].width[k] > w[i] ? f[i].width[k] : w[i];
		}
	}
	return 0;
}

/* Each cell of a row (or the names) formatted into f; false: no memory. */
static bool format_row(const struct pw_rec_result *res, struct pw_rec_lines *f, const char *c)
{
	for (int j = 0; j < res->ncols; c += strlen(c) + 1, j++)
		if (pw_rec_format(&f[j], c) < 0)
			return false;
	return true;
}

static void print_table(FILE *out, const struct pw_rec_result *res)
{
	int nc = res->ncols;
	struct pw_rec_lines *f = calloc((size_t)nc + 1, sizeof(*f));
	int *w = calloc((size_t)nc + 1, sizeof(int));
	bool ok = f && w && widths(res, f, w) == 0 && format_row(res, f, res->names);
	if (ok)
		print_lines(out, res, f, w, true);
	if (ok) { /* the rule: w dashes a column, "-+-" between them, "-" at each end */
		fputc('-', out);
		for (int i = 0; i < nc; i++)
			for (int k = i ? -3 : 0; k < w[i]; k++)
				fputc(k == -2 ? '+' : '-', out);
		fputs("-\n", out);
	}
	for (size_t r = 0; ok && r < res->nrows; r++)
		if ((ok = format_row(res, f, res->rows[r])))
			print_lines(out, res, f, w, false);
	if (ok)
		fprintf(out, "(%zu row%s)\n\n", res->nrows, res->nrows == 1 ? "" : "s");
	else
		fputs("-- out of memory printing this result\n", out);
	for (int i = 0; f && i < nc; i++) {
		free(f[i].buf);
		free(f[i].start);
		free(f[i].width);
	}
	free(f);
	free(w);
}

static void print_result(struct rs *s, const struct pw_rec_result *res)
{
	const char *tag = res->tag;
	if (res->err) {
		pw_rec_print_error(s->out, res->err, res->errlen, s->query, true);
		const char *m = pw_error_field(res->err, res->errlen, 'M');
		if (m && strncmp(m, "pgward: ", 8) == 0)
			fputs("-- refused by pgward\n", s->out);
		return;
	}
	if (res->tuples)
		print_table(s->out, res);
	if (tag && !res->copy &&
	    (!res->tuples || strncmp(tag, "INSERT", 6) == 0 || strncmp(tag, "UPDATE", 6) == 0 ||
	     strncmp(tag, "DELETE", 6) == 0)) {
		text(s->out, tag);
		fputc('\n', s->out);
	}
}

/* psql prints a result once it holds the next one: a result that completed (due) waits for
 * the next message that is not a notice or a notification; then the one before it (pend)
 * is printed, and the due one too when it is an error, else it waits in turn. all: the
 * statement is over, print what waits. */
static void settle(struct rs *s, bool all)
{
	if (s->has_due) {
		if (s->has_pend)
			print_result(s, &s->pend);
		pw_rec_result_free(&s->pend);
		s->has_pend = !s->due.err;
		if (s->due.err)
			print_result(s, &s->due);
		if (s->has_pend)
			s->pend = s->due;
		else
			pw_rec_result_free(&s->due);
		memset(&s->due, 0, sizeof(s->due));
		s->has_due = false;
	}
	if (all && s->has_pend)
		print_result(s, &s->pend);
	if (all)
		pw_rec_result_free(&s->pend);
	s->has_pend &= !all;
}

static void complete(struct rs *s)
{
	if (s->extended) { /* no psql to mirror: a result as soon as it is whole */
		print_result(s, &s->cur);
		pw_rec_result_free(&s->cur);
		return;
	}
	s->due = s->cur;
	s->has_due = true;
	memset(&s->cur, 0, sizeof(s->cur));
}

static void notification(struct rs *s, const uint8_t *b, uint32_t len)
{
	const char *chan = len > 4 ? (const char *)b + 4 : "";
	const char *pay = chan + strlen(chan) + (len > 4);
	if (pay > (const char *)b + len)
		pay = "";
	if (!s->nf && !(s->nf = open_memstream(&s->nbuf, &s->nlen)))
		return;
	fputs("Asynchronous notification \"", s->nf);
	text(s->nf, chan);
	if (*pay) {
		fputs("\" with payload \"", s->nf);
		text(s->nf, pay);
	}
	fprintf(s->nf, "\" received from server process with PID %d.\n",
	        len >= 4 ? (int)pw_be32(b) : 0);
}

static void flush_notifications(struct rs *s)
{
	if (s->nf && fclose(s->nf) == 0)
		fwrite(s->nbuf, 1, s->nlen, s->out);
	free(s->nbuf);
	s->nf = NULL;
	s->nbuf = NULL;
}

/* ReadyForQuery (end 0), or the end of the recording (end 1): what the statement left. */
static void end_stmt(struct rs *s, const struct pw_rec_msg *m, bool end)
{
	settle(s, true);
	if (end && s->cur.nrows) { /* rows the client did receive */
		print_table(s->out, &s->cur);
		fputs("-- the result above is incomplete\n", s->out);
	}
	pw_rec_result_free(&s->cur);
	flush_notifications(s);
	if (m && s->in_stmt)
		fprintf(s->out, "-- time: %.3f ms\n",
		        m->t_end_us > s->t0 ? (double)(m->t_end_us - s->t0) / 1000.0 : 0.0);
	s->in_stmt = s->copy_out = false;
	free(s->query);
	s->query = NULL;
}

static void on_backend(struct rs *s, const struct pw_rec_msg *m)
{
	const uint8_t *b = m->body;
	const char *sev;
	if (m->type != 'N' && m->type != 'A')
		settle(s, false);
	switch (m->type) {
	case 'T':
		pw_rec_result_desc(&s->cur, b, m->len);
		break;
	case 'D':
		pw_rec_result_row(&s->cur, b, m->len);
		break;
	case 'C': /* after COPY TO STDOUT, psql prints no tag */
		if (!s->copy_out && (s->cur.tag = strndup((const char *)b, m->len)))
			complete(s);
		s->copy_out = false;
		break;
	case 'E':
		pw_rec_result_free(&s->cur);
		sev = pw_error_field(b, m->len, 'S');
		s->fatal = sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
		if ((s->cur.err = malloc((size_t)m->len + 1)))
			memcpy(s->cur.err, b, (size_t)m->len + 1);
		s->cur.errlen = m->len;
		s->copy_out = false;
		/* fall through */
	case 'I': /* an empty query: nothing */
	case 's': /* PortalSuspended: the rows so far */
		complete(s);
		break;
	case 'G':
	case 'H':
		pw_rec_result_free(&s->cur);
		s->cur.copy = true;
		s->copy_out = m->type == 'H';
		complete(s);
		break;
	case 'd':
		if (s->copy_out)
			pw_rec_text(s->out, (const char *)b, m->len, false);
		break;
	case 'N':
		pw_rec_print_error(s->out, b, m->len, s->query, false);
		break;
	case 'A':
		notification(s, b, m->len);
		break;
	case 'Z':
		end_stmt(s, m, false);
		break;
	}
}

static json_t *bind_vals(const struct pw_rec_msg *m, size_t o, bool check);

static struct named *named_find(struct named *t, const char *name)
{
	for (int i = 0; i < NAMED; i++)
		if (t[i].name && strcmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

static void named_put(struct named *t, unsigned *next, const char *name, const char *txt,
                      char *params)
{
	struct named *n = named_find(t, name);
	if (!n) {
		n = &t[(*next)++ % NAMED];
		free(n->name);
		n->name = strdup(name);
	}
	free(n->text);
	free(n->params);
	n->text = strdup(txt);
	n->params = params;
}

/* A Bind's parameters as "$1 = '42', $2 = NULL" (NULL: it has none) */
static char *bind_params(const struct pw_rec_msg *m, size_t o)
{
	json_t *a = bind_vals(m, o, false), *v;
	char *buf = NULL;
	size_t len, i;
	FILE *f = json_array_size(a) ? open_memstream(&buf, &len) : NULL;
	json_array_foreach(a, i, v)
	{
		if (!f)
			break;
		const char *s = json_string_value(v), *e = s + json_string_length(v);
		fprintf(f, "%s$%zu = %s", i ? ", " : "", i + 1, s ? "'" : "NULL");
		for (; s && s < e; s++)
			fputs(*s == '\'' ? "''" : *s ? (char[2]){*s, 0} : "\\x00", f);
		fputs(s ? "'" : "", f);
	}
	if (f)
		fclose(f);
	json_decref(a);
	return buf;
}

static void on_frontend(struct rs *s, const struct pw_rec_msg *m)
{
	size_t o = 0;
	if (m->type == 'X')
		return;
	if (!s->in_stmt) {
		s->in_stmt = true;
		s->t0 = m->t_us;
		s->extended = m->type != 'Q';
	}
	if (m->type == 'Q') {
		text(s->out, (const char *)m->body); /* psql -e: puts(query) */
		fputc('\n', s->out);
		free(s->query);
		s->query = strdup((const char *)m->body);
	} else if (m->type == 'P') {
		const char *name = pw_rec_cstr(m, &o);
		named_put(s->named[0], &s->st_next, name, pw_rec_cstr(m, &o), NULL);
		if (*name) { /* a named one may be executed later: say it was made */
			fputs("-- prepare ", s->out);
			line_text(s->out, name);
			fputc('\n', s->out);
		}
	} else if (m->type == 'B') {
		const char *portal = pw_rec_cstr(m, &o);
		struct named *st = named_find(s->named[0], pw_rec_cstr(m, &o));
		named_put(s->named[1], &s->po_next, portal,
		          st ? st->text : "-- (an unknown statement)", bind_params(m, o));
	} else if (m->type == 'E') { /* the statement and its parameters, as psql -e would */
		struct named *po = named_find(s->named[1], pw_rec_cstr(m, &o));
		text(s->out, po ? po->text : "-- (an unknown portal)");
		if (po && po->params)
			fputs("\n-- parameters: ", s->out);
		if (po && po->params)
			line_text(s->out, po->params);
		fputc('\n', s->out);
		free(s->query);
		s->query = po ? strdup(po->text) : NULL;
	}
}

/* The end of the recording: what is whole of the statement, then nothing more held. */
static void rs_end(struct rs *s)
{
	bool lost = s->in_stmt && s->fatal; /* the server closed it: what libpq and psql say */
	end_stmt(s, NULL, true);
	if (lost)
		fputs(
		    "server closed the connection unexpectedly\n\tThis probably means the server "
		    "terminated abnormally\n\tbefore or while processing the request.\nconnection "
		    "to server was lost\n",
		    s->out);
	for (struct named *n = s->named[0]; n < s->named[0] + 2 * NAMED; n++) {
		free(n->name);
		free(n->text);
		free(n->params);
	}
}

/* ---- --raw: one line, or one JSON object, per message ---- */

/* Untrusted bytes as a JSON string: checked UTF-8 for -j (else escaped as pw_logqn does);
 * unchecked when the object is only read here (plain lines, the echo's parameters). */
static json_t *jstr(const char *s, size_t n, bool check)
{
	json_t *v = check ? json_stringn(s, n) : json_stringn_nocheck(s, n);
	char *b = v ? NULL : malloc(4 * n + 16);
	if (b) {
		pw_logqn(b, 4 * n + 16, s, n);
		v = json_stringn(b + 1, strlen(b) - 2);
	}
	free(b);
	return v ? v : json_null();
}

static void jcstr(json_t *j, const char *key, const struct pw_rec_msg *m, size_t *o)
{
	const char *s = pw_rec_cstr(m, o);
	json_object_set_new(j, key, jstr(s, strlen(s), pw_ctl_json));
}

static void jint(json_t *j, const char *key, long long v)
{
	json_object_set_new(j, key, json_integer(v));
}

/* n values (a length word and its bytes; -1: NULL) from o */
static json_t *jvals(const struct pw_rec_msg *m, size_t o, unsigned n, bool check)
{
	json_t *a = json_array();
	for (unsigned i = 0; i < n && o + 4 <= m->len; i++) {
		uint32_t vl = pw_be32(m->body + o);
		o += 4;
		vl = vl == 0xffffffff || vl <= m->len - o ? vl : (uint32_t)(m->len - o);
		json_array_append_new(
		    a, vl == 0xffffffff ? json_null() : jstr((const char *)m->body + o, vl, check));
		o += vl == 0xffffffff ? 0 : vl;
	}
	return a;
}

/* A Bind's parameters: their values (NULL: JSON null), the offset of the first */
static json_t *bind_vals(const struct pw_rec_msg *m, size_t o, bool check)
{
	o += 2 * (size_t)pw_rec_be16(m, &o);
	unsigned n = pw_rec_be16(m, &o);
	return jvals(m, o, n, check);
}

#define BE(t) (0x100 | (t))

/* What a message says, into j (its values checked UTF-8 under -j). */
static void describe(json_t *j, const struct pw_rec_msg *m)
{
	static const char codes[] = "SCMDHPWpq",
	                  *keys[] = {"severity",      "sqlstate", "message", "detail",
	                             "hint",          "position", "context", "internal_position",
	                             "internal_query"};
	size_t o = m->dir == 'B' && m->type && strchr("GHW", m->type) ? 1 : 0;
	unsigned n;
	switch ((m->dir == 'B') << 8 | m->type) {
	case 'P':
		jcstr(j, "statement", m, &o);
		jcstr(j, "query", m, &o);
		jint(j, "param_types", pw_rec_be16(m, &o));
		break;
	case 'Q':
		jcstr(j, "query", m, &o);
		break;
	case 'B':
		jcstr(j, "portal", m, &o);
		jcstr(j, "statement", m, &o);
		json_object_set_new(j, "params", bind_vals(m, o, pw_ctl_json));
		break;
	case 'E':
		jcstr(j, "portal", m, &o);
		jint(j, "max_rows", m->len >= o + 4 ? pw_be32(m->body + o) : 0);
		break;
	case 'D':
	case 'C':
		o = 1;
		json_object_set_new(j, "what",
		                    jstr((const char *)m->body, m->len > 0, pw_ctl_json));
		jcstr(j, "name", m, &o);
		break;
	case 'f':
		jcstr(j, "message", m, &o);
		break;
	case 'd':
	case BE('d'):
		jint(j, "bytes", m->len);
		json_object_set_new(j, "data", jstr((const char *)m->body, m->len, pw_ctl_json));
		break;
	case BE('T'):
		jint(j, "columns", n = pw_rec_be16(m, &o));
		json_t *a = json_array();
		for (unsigned i = 0; i < n && o < m->len; i++, o += 18) {
			const char *s = pw_rec_cstr(m, &o);
			json_array_append_new(a, jstr(s, strlen(s), pw_ctl_json));
		}
		json_object_set_new(j, "names", a);
		break;
	case BE('D'):
		n = pw_rec_be16(m, &o);
		json_object_set_new(j, "values", jvals(m, o, n, pw_ctl_json));
		break;
	case BE('C'):
		jcstr(j, "tag", m, &o);
		break;
	case BE('Z'):
		json_object_set_new(j, "status",
		                    jstr((const char *)m->body, m->len > 0, pw_ctl_json));
		break;
	case BE('E'):
	case BE('N'):
		for (int i = 0; i < 9; i++) {
			const char *v = pw_error_field(m->body, m->len, codes[i]);
			if (v || i < 3)
				json_object_set_new(
				    j, keys[i], jstr(v ? v : "", v ? strlen(v) : 0, pw_ctl_json));
		}
		break;
	case BE('S'):
		jcstr(j, "name", m, &o);
		jcstr(j, "value", m, &o);
		break;
	case BE('K'):
	case BE('A'):
	case BE('R'):
		jint(j, m->type == 'R' ? "code" : "pid", m->len >= 4 ? pw_be32(m->body) : 0);
		o = 4;
		if (m->type == 'A')
			jcstr(j, "channel", m, &o);
		if (m->type == 'A')
			jcstr(j, "payload", m, &o);
		break;
	case BE('t'):
		jint(j, "params", pw_rec_be16(m, &o));
		break;
	case BE('G'):
	case BE('H'):
	case BE('W'):
		json_object_set_new(j, "format",
		                    json_string(m->len && m->body[0] ? "binary" : "text"));
		jint(j, "columns", pw_rec_be16(m, &o));
		break;
	default:
		if (!pw_rec_msg_name(m, (char[32]){0}, 32))
			jint(j, "bytes", m->len);
	}
}

/* as pw_logqn quotes it, whole */
static void qout(json_t *v)
{
	size_t n = json_string_length(v);
	char *b = malloc(4 * n + 16);
	if (b)
		fputs(pw_logqn(b, 4 * n + 16, json_string_value(v), n), stdout);
	free(b);
}

static bool listed(const char *list, const char *key)
{
	char k[32];
	snprintf(k, sizeof(k), " %s ", key);
	return strstr(list, k) != NULL;
}

/* A plain line's value: a string quoted (a short word bare), a count with its unit, a list. */
static void plain_value(const char *key, json_t *v)
{
	static const char *const units[][2] = {{"columns", "column(s)"},
	                                       {"params", "param(s)"},
	                                       {"param_types", "param type(s)"},
	                                       {"bytes", "byte(s)"}};
	const char *s = json_string_value(v), *unit = NULL;
	putchar(' ');
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		unit = strcmp(key, units[i][0]) == 0 ? units[i][1] : unit;
	if (json_is_integer(v) && unit)
		printf("%lld %s", (long long)json_integer_value(v), unit);
	else if (json_is_integer(v))
		printf("%s=%lld", key, (long long)json_integer_value(v));
	else if (s && listed(" status severity sqlstate what format ", key) && *s &&
	         strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz") ==
	             strlen(s))
		fputs(s, stdout);
	else if (s)
		(listed(" detail hint position context internal_position internal_query ", key)
		     ? printf("%s=", key)
		     : 0),
		    qout(v);
	else if (json_is_array(v))
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *x = json_array_get(v, i);
			fputs(i ? ", " : "[", stdout);
			json_is_string(x) ? qout(x) : (void)fputs("NULL", stdout);
		}
	fputs(json_is_array(v) ? (json_array_size(v) ? "]" : "[]") : "", stdout);
}

static void raw_msg(const struct pw_rec_msg *m)
{
	const char *key;
	char name[32];
	json_t *j = json_object(), *v;
	if (!pw_rec_msg_name(m, name, sizeof(name)))
		snprintf(name, sizeof(name), "0x%02x", m->type);
	json_object_set_new(j, "t_us", json_integer((json_int_t)m->t_us));
	json_object_set_new(j, "dir", json_stringn(&m->dir, 1));
	json_object_set_new(j, "type", json_string(name));
	if (!pw_ctl_json)
		printf("+%llu.%03llums %c %s", (unsigned long long)m->t_us / 1000,
		       (unsigned long long)m->t_us % 1000, m->dir, name);
	describe(j, m);
	if (pw_ctl_json) {
		pw_ctl_print_json(j);
		return;
	}
	json_object_foreach(j, key, v)
	{
		if (strcmp(key, "t_us") && strcmp(key, "dir") && strcmp(key, "type"))
			plain_value(key, v);
	}
	putchar('\n');
	json_decref(j);
}

/* ---- the command ---- */

struct pacer {
	double speed; /* 0: no pacing */
	bool started;
	struct timespec t0;
};

/* --speed: wait until the message's time, N times faster, from the session's start */
static void pace(struct pacer *p, uint64_t t_us)
{
	if (p->speed <= 0)
		return;
	if (!p->started)
		clock_gettime(CLOCK_MONOTONIC, &p->t0);
	p->started = true;
	double at =
	    (double)p->t0.tv_sec + (double)p->t0.tv_nsec / 1e9 + (double)t_us / 1e6 / p->speed;
	at = at < 1e15 ? at : 1e15;
	struct timespec ts = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
	fflush(stdout);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void header_plain(const struct pw_rec_reader *r)
{
	static const char *const k[][2] = {{"-- session ", "session"}, {", identity ", "identity"},
	                                   {", user ", "user"},        {"@", "database"},
	                                   {", client ", "client"},    {", started ", "started"}};
	for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
		json_t *v = json_object_get(pw_rec_meta(r), k[i][1]);
		fputs(k[i][0], stdout);
		if (json_is_integer(v))
			printf("%lld", (long long)json_integer_value(v));
		else
			line_text(stdout, json_is_string(v) ? json_string_value(v) : "?");
	}
	putchar('\n');
}

static void end_plain(const struct pw_rec_end *e)
{
	if (e->mid_message)
		puts("-- the recording ends mid-message");
	if (e->truncated) {
		fputs("-- recording truncated: ", stdout);
		line_text(stdout, e->x_reason);
		putchar('\n');
	}
	if (e->ended) {
		fputs("-- ended: ", stdout);
		line_text(stdout, e->reason);
		putchar('\n');
	}
	if (!e->ended && !e->truncated)
		puts("-- the recording has no end frame");
}

static int replay_psql(struct pw_rec_reader *r, struct pacer *p)
{
	struct rs s = {.out = stdout};
	struct pw_rec_msg m;
	int rc;
	header_plain(r);
	while ((rc = pw_rec_next(r, &m)) > 0) {
		pace(p, m.t_end_us);
		(m.dir == 'F' ? on_frontend : on_backend)(&s, &m);
	}
	rs_end(&s);
	if (rc == 0)
		end_plain(pw_rec_end(r));
	return rc;
}

static int replay_raw(struct pw_rec_reader *r, struct pacer *p)
{
	struct pw_rec_msg m;
	const struct pw_rec_end *e = pw_rec_end(r);
	int rc;
	if (pw_ctl_json)
		pw_ctl_print_json(json_pack("{s:O}", "recording", pw_rec_meta(r)));
	else
		header_plain(r);
	while ((rc = pw_rec_next(r, &m)) > 0) {
		pace(p, m.t_end_us);
		raw_msg(&m);
	}
	if (rc == 0 && pw_ctl_json)
		pw_ctl_print_json(json_pack(
		    "{s:{s:b,s:o,s:b,s:o,s:b}}", "end", "ended", e->ended, "reason",
		    e->ended ? jstr(e->reason, strlen(e->reason), true) : json_null(), "truncated",
		    e->truncated, "truncated_reason",
		    e->truncated ? jstr(e->x_reason, strlen(e->x_reason), true) : json_null(),
		    "mid_message", e->mid_message));
	else if (rc == 0)
		end_plain(e);
	return rc;
}

/* ID: the newest DIR/<stamp>-<pid>-<ID>.pgrec (session numbers start over with pgwardd) */
static int find_recording(const char *dir, long long id, char *path, size_t cap)
{
	char suffix[32], best[256] = "";
	int n = 0;
	size_t sl = (size_t)snprintf(suffix, sizeof(suffix), "-%lld.pgrec", id);
	DIR *d = opendir(dir);
	if (!d)
		return pw_ctl_err(PW_CTL_FAILED, "%s: %s", dir, strerror(errno));
	for (struct dirent *de; (de = readdir(d));) {
		size_t l = strlen(de->d_name);
		if (l <= sl || l >= sizeof(best) || strcmp(de->d_name + l - sl, suffix) != 0 ||
		    !memchr(de->d_name, '-', l - sl))
			continue;
		n++;
		if (strcmp(de->d_name, best) > 0)
			memcpy(best, de->d_name, l + 1);
	}
	closedir(d);
	if (!n)
		return pw_ctl_err(PW_CTL_FAILED, "no recording of session %lld in %s", id, dir);
	snprintf(path, cap, "%s/%s", dir, best);
	if (n > 1)
		fprintf(stderr,
		        "note: %d recordings of session %lld in %s; replaying the newest, %s\n", n,
		        id, dir, best);
	return 0;
}

struct replay_args {
	bool raw;
	double speed;
	const char *dir, *what;
};

static int replay_args(int argc, char **argv, struct replay_args *a)
{
	static const struct option opts[] = {{"raw", no_argument, NULL, 'r'},
	                                     {"speed", required_argument, NULL, 's'},
	                                     {"dir", required_argument, NULL, 'd'},
	                                     {NULL, 0, NULL, 0}};
	char **av = calloc((size_t)argc + 2, sizeof(char *)), *end;
	int c, rc = 0;
	if (!av)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	av[0] = "replay";
	memcpy(av + 1, argv, sizeof(char *) * (size_t)argc);
	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc + 1, av, "", opts, NULL)) != -1) {
		a->raw |= c == 'r';
		a->dir = c == 'd' ? optarg : a->dir;
		if (c == 's') {
			errno = 0;
			a->speed = strtod(optarg, &end);
			if (!*optarg || *end || errno || !isfinite(a->speed) || a->speed <= 0)
				rc =
				    pw_ctl_err(PW_CTL_USAGE,
				               "--speed: expected a number above 0 (1: real time), "
				               "got \"%s\"",
				               optarg);
		} else if (c != 'r' && c != 'd') {
			rc = pw_ctl_usage(session_cmds, "session", "replay");
		}
	}
	if (rc == 0 && optind != argc)
		rc = pw_ctl_usage(session_cmds, "session", "replay");
	a->what = rc ? NULL : av[optind];
	free(av);
	return rc;
}

/* session replay [--raw] [--speed N] [--dir DIR] ID|FILE */
static int do_replay(int argc, char **argv)
{
	struct replay_args a = {.dir = DEFAULT_DIR};
	char path[4352], err[300];
	long long id;
	if (argc == 1 && (!strcmp(argv[0], "help") || !strcmp(argv[0], "--help"))) {
		printf("pgwardctl session replay %s\n    %s\n", session_cmds[0].args,
		       session_cmds[0].what);
		return PW_CTL_OK;
	}
	int rc = replay_args(argc, argv, &a);
	if (rc)
		return rc;
	/* digits alone: a session number (a file named so: ./12) */
	if (!a.what[0] || strspn(a.what, "0123456789") != strlen(a.what))
		snprintf(path, sizeof(path), "%s", a.what);
	else if (!pw_ctl_parse_int("ID", a.what, 0, INT64_MAX, &id))
		return PW_CTL_USAGE;
	else if ((rc = find_recording(a.dir, id, path, sizeof(path))))
		return rc;
	struct pw_rec_reader *r = pw_rec_open(path, err, sizeof(err));
	if (!r)
		return pw_ctl_err(PW_CTL_FAILED, "%s: %s", path, err);
	struct pacer p = {.speed = a.speed};
	rc = a.raw || pw_ctl_json ? replay_raw(r, &p) : replay_psql(r, &p);
	fflush(stdout);
	if (rc < 0)
		rc = pw_ctl_err(PW_CTL_FAILED, "%s: %s", path, pw_rec_error(r));
	pw_rec_close(r);
	return rc;
}
