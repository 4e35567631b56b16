/* Unit tests for user/record_read.c (reading a recording: gzip, header, metadata, frames,
 * messages reassembled across frames; psql's text rules) and, through the pgwardctl binary
 * built next to this test (BUILD/pgwardctl), for pgwardctl session replay (user/ctl_session.c):
 * recordings are written here as pgwardd writes them (docs/recording.md), the messages cut at
 * awkward places; malformed ones must give errors, never crashes; rendered sessions are
 * compared with what psql 15 printed for the same server messages (captured by hand with
 * psql -X -e -c ... 2>&1 against PostgreSQL 15 on Debian 12); and 10,000 random mutations of
 * a valid recording go through the reader and the printers (and, as mutated messages in fewer
 * recordings, through the replay binary), to be run under ASan/UBSan too. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include "pgward/record_read.h"
#include "check.h"

/* what went wrong, as TAP comments, when a check failed */
static void diag(int failed_before, const char *out)
{
	for (const char *l = out; check_failed > failed_before && l && *l;) {
		const char *e = strchr(l, '\n');
		printf("# %.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
		l = e ? e + 1 : NULL;
	}
}

/* CHECK, and out as TAP comments when it failed */
#define CHECK_OUT(out, cond, ...)                                                                  \
	do {                                                                                       \
		int f0_ = check_failed;                                                            \
		CHECK(cond, __VA_ARGS__);                                                          \
		diag(f0_, out);                                                                    \
	} while (0)

struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_be(struct buf *b, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		put(b, &(uint8_t){(uint8_t)(v >> (8 * i))}, 1);
}

/* ---- recordings as pgwardd writes them ---- */

static struct buf rec;  /* the decompressed recording being made */
static struct buf msgs; /* messages gathered for the next frame */
static uint64_t now_us;

static void rec_start(void)
{
	static const char meta[] = "{\"session\":12,\"identity\":\"agent\",\"user\":\"agent\","
	                           "\"database\":\"app\",\"client\":\"127.0.0.1:40112\","
	                           "\"started\":\"2026-12-01T07:23:31.123456Z\","
	                           "\"pgwardd_pid\":4242,\"host\":\"db-node-1\"}\n";
	rec.n = msgs.n = 0;
	now_us = 1000;
	put(&rec, "PGWREC 1\n", 9);
	put(&rec, meta, strlen(meta));
}

static void frame(char kind, const void *p, size_t n)
{
	put(&rec, &kind, 1);
	put_be(&rec, now_us, 8);
	put_be(&rec, n, 4);
	put(&rec, p, n);
	now_us += 250;
}

static void end_frame(char kind, const char *reason)
{
	char j[128];
	snprintf(j, sizeof(j), "{\"reason\":\"%s\"}", reason);
	frame(kind, j, strlen(j));
}

/* the gathered messages as frames of at most cut bytes (0: one frame) */
static void flush(char kind, size_t cut)
{
	for (size_t o = 0; o < msgs.n; o += cut ? cut : msgs.n)
		frame(kind, msgs.p + o, cut && msgs.n - o > cut ? cut : msgs.n - o);
	msgs.n = 0;
}

static size_t m_at;
static void m_begin(char type)
{
	m_at = msgs.n;
	put(&msgs, &type, 1);
	put_be(&msgs, 0, 4);
}
static void m_str(const char *s)
{
	put(&msgs, s, strlen(s) + 1);
}
static void m_end(void)
{
	uint32_t len = (uint32_t)(msgs.n - m_at - 1);
	for (int i = 0; i < 4; i++)
		msgs.p[m_at + 1 + i] = (uint8_t)(len >> (24 - 8 * i));
}

static void Q(const char *sql)
{
	m_begin('Q');
	m_str(sql);
	m_end();
	flush('F', 0);
}

/* RowDescription: n (name, type oid) pairs */
static void T(int n, ...)
{
	va_list ap;
	va_start(ap, n);
	m_begin('T');
	put_be(&msgs, (uint64_t)n, 2);
	for (int i = 0; i < n; i++) {
		m_str(va_arg(ap, const char *));
		put_be(&msgs, 0, 6);
		put_be(&msgs, va_arg(ap, unsigned), 4);
		put_be(&msgs, 0, 8);
	}
	m_end();
	va_end(ap);
}

/* DataRow: n values (NULL: SQL NULL) */
static void D(int n, ...)
{
	va_list ap;
	va_start(ap, n);
	m_begin('D');
	put_be(&msgs, (uint64_t)n, 2);
	for (int i = 0; i < n; i++) {
		const char *v = va_arg(ap, const char *);
		put_be(&msgs, v ? strlen(v) : 0xffffffffu, 4);
		put(&msgs, v, v ? strlen(v) : 0);
	}
	m_end();
	va_end(ap);
}

static void C(const char *tag)
{
	m_begin('C');
	m_str(tag);
	m_end();
}

/* ErrorResponse ('E') or NoticeResponse ('N'): (field code, value) pairs, then 0 */
static void EN(char type, ...)
{
	va_list ap;
	va_start(ap, type);
	m_begin(type);
	for (int c; (c = va_arg(ap, int));) {
		put(&msgs, &(char){(char)c}, 1);
		m_str(va_arg(ap, const char *));
	}
	put(&msgs, "", 1);
	m_end();
	va_end(ap);
}

static void Z(void)
{
	m_begin('Z');
	put(&msgs, "I", 1);
	m_end();
	flush('B', 0);
}

static void simple(char type)
{
	m_begin(type);
	m_end();
}

/* gzip of b, in memory */
static uint8_t *gz(const struct buf *b, size_t *len)
{
	z_stream z = {0};
	size_t cap = compressBound(b->n) + 64;
	uint8_t *out = malloc(cap);
	if (!out || deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	z.next_in = b->p;
	z.avail_in = (uInt)b->n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	*len = z.total_out;
	deflateEnd(&z);
	return out;
}

/* as pgwardd does it: a gzip file (zlib's gzopen/gzwrite) */
static void gz_file(const char *path, const struct buf *b)
{
	gzFile f = gzopen(path, "wb1");
	if (!f || (b->n && gzwrite(f, b->p, (unsigned)b->n) != (int)b->n) || gzclose(f) != Z_OK)
		abort();
}

/* ---- reading ---- */

struct got {
	int n, rc;
	char dir[4096];
	uint8_t type[4096];
	uint64_t t[4096], t_end[4096];
	uint32_t len[4096];
	uint32_t sum[4096]; /* crc32 of the body */
	char err[300];
	struct pw_rec_end end;
};

static struct got g;

/* every message of the gzip bytes gz; g.rc: -2 when it would not open */
static void read_all(const void *z, size_t len)
{
	struct pw_rec_msg m;
	struct pw_rec_reader *r = pw_rec_open_mem(z, len, g.err, sizeof(g.err));
	g.n = 0;
	g.rc = -2;
	if (!r)
		return;
	while ((g.rc = pw_rec_next(r, &m)) > 0 && g.n < 4096) {
		g.dir[g.n] = m.dir;
		g.type[g.n] = m.type;
		g.t[g.n] = m.t_us;
		g.t_end[g.n] = m.t_end_us;
		g.len[g.n] = m.len;
		g.sum[g.n++] = (uint32_t)crc32(0, m.body, m.len);
	}
	snprintf(g.err, sizeof(g.err), "%s", pw_rec_error(r));
	g.end = *pw_rec_end(r);
	pw_rec_close(r);
}

static void read_rec(void)
{
	size_t len;
	uint8_t *z = gz(&rec, &len);
	read_all(z, len);
	free(z);
}

/* One direction's messages as written: where each starts in the stream, its type and body. */
struct stream {
	struct buf b;
	int n;
	size_t at[2048];
	uint64_t t0[2048], t1[2048];
};

static void add_msg(struct stream *s, char type, const void *body, size_t len)
{
	s->at[s->n++] = s->b.n;
	put(&s->b, &type, 1);
	put_be(&s->b, len + 4, 4);
	put(&s->b, body, len);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Both streams cut into frames: 1-byte frames, frames of several messages, random sizes;
 * each message's expected first- and last-byte frame times noted. */
static void cut_streams(struct stream *s)
{
	size_t off[2] = {0, 0};
	while (off[0] < s[0].b.n || off[1] < s[1].b.n) {
		int d = off[0] >= s[0].b.n ? 1 : off[1] >= s[1].b.n ? 0 : (int)(rnd() & 1);
		uint64_t mode = rnd() % 4;
		size_t left = s[d].b.n - off[d];
		size_t n = mode == 0   ? 1
		           : mode == 1 ? 1 + rnd() % 7
		           : mode == 2 ? 1 + rnd() % 300
		                       : left;
		n = n > left ? left : n;
		for (int k = 0; k < s[d].n; k++) {
			size_t first = s[d].at[k],
			       last = k + 1 < s[d].n ? s[d].at[k + 1] - 1 : s[d].b.n - 1;
			if (first >= off[d] && first < off[d] + n)
				s[d].t0[k] = now_us;
			if (last >= off[d] && last < off[d] + n)
				s[d].t1[k] = now_us;
		}
		frame(d ? 'B' : 'F', s[d].b.p + off[d], n);
		off[d] += n;
	}
}

static void test_reassembly(void)
{
	static struct stream s[2];
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	for (int round = 0; round < 20; round++) {
		s[0].n = s[1].n = 0;
		s[0].b.n = s[1].b.n = 0;
		for (int i = 0; i < 60; i++) {
			char q[64];
			int k = snprintf(q, sizeof(q), "select %d", i);
			add_msg(&s[0], 'Q', q, (size_t)k + 1);
			if (i % 10 == 3)
				add_msg(&s[0], 'S', "", 0); /* a message of no body */
			add_msg(&s[1], 'T', "\0\1a\0\0\0\0\0\0\0\0\0\0\27\0\4\0\0\0\0\0\0", 23);
			add_msg(&s[1], 'D', big, i % 7 == 0 ? sizeof(big) : (size_t)(i % 13));
			add_msg(&s[1], 'C', "SELECT 1", 9);
			add_msg(&s[1], 'Z', "I", 1);
		}
		rec_start();
		cut_streams(s);
		end_frame('E', "client closed");
		read_rec();
		int k[2] = {0, 0}, bad = 0;
		uint64_t last_end = 0;
		for (int i = 0; i < g.n; i++) {
			int d = g.dir[i] == 'B';
			struct stream *st = &s[d];
			int j = k[d]++;
			size_t blen = (j + 1 < st->n ? st->at[j + 1] : st->b.n) - st->at[j] - 5;
			bad +=
			    j >= st->n || g.type[i] != st->b.p[st->at[j]] || g.len[i] != blen ||
			    g.sum[i] != (uint32_t)crc32(0, st->b.p + st->at[j] + 5, (uInt)blen) ||
			    g.t[i] != st->t0[j] || g.t_end[i] != st->t1[j] || g.t_end[i] < last_end;
			last_end = g.t_end[i];
		}
		CHECK(
		    g.rc == 0 && k[0] == s[0].n && k[1] == s[1].n && !bad && g.end.ended &&
		        !g.end.mid_message && strcmp(g.end.reason, "client closed") == 0,
		    "round %d: %d+%d messages reassembled in order with their frame times (rc %d, "
		    "%d bad, %s)",
		    round, k[0], k[1], g.rc, bad, g.err);
	}
	for (int i = 0; i < 2; i++)
		free(s[i].b.p);
}

static void test_big_and_members(void)
{
	/* a 3 MiB message in 1 KiB frames; then the same recording as two gzip members */
	size_t n = 3u << 20;
	char *v = malloc(n + 1);
	memset(v, 'y', n);
	v[n] = 0;
	rec_start();
	Q("select big");
	T(1, "big", 25u);
	D(1, v);
	C("SELECT 1");
	m_begin('Z');
	put(&msgs, "I", 1);
	m_end();
	flush('B', 1024);
	end_frame('E', "closed");
	read_rec();
	CHECK(g.rc == 0 && g.n == 5 && g.type[2] == 'D' && g.len[2] == n + 6 && g.t[2] < g.t_end[2],
	      "a 3 MiB DataRow over 1 KiB frames comes whole (%d messages, len %u)", g.n, g.len[2]);

	size_t half = rec.n / 2, l1, l2;
	struct buf a = {0}, b = {0};
	put(&a, rec.p, half);
	put(&b, rec.p + half, rec.n - half);
	uint8_t *z1 = gz(&a, &l1), *z2 = gz(&b, &l2), *z = malloc(l1 + l2);
	memcpy(z, z1, l1);
	memcpy(z + l1, z2, l2);
	read_all(z, l1 + l2);
	CHECK(g.rc == 0 && g.n == 5 && g.len[2] == n + 6,
	      "a recording in two gzip members reads as one (as zcat reads it)");
	free(z1);
	free(z2);
	free(z);
	free(a.p);
	free(b.p);
	free(v);
}

/* a recording of one statement, for the malformed cases */
static void one_statement(void)
{
	rec_start();
	Q("select 1");
	T(1, "?column?", 23u);
	D(1, "1");
	C("SELECT 1");
	Z();
}

static void expect_error(const char *what, const char *needle, int msgs_before)
{
	CHECK(g.rc < 0 && strstr(g.err, needle) && (msgs_before < 0 || g.n == msgs_before),
	      "%s: an error (\"%s\"), after %d message(s)", what, g.err, g.n);
}

static void test_malformed(void)
{
	size_t len;
	one_statement();
	memcpy(rec.p, "PGWREX 1\n", 9);
	read_rec();
	expect_error("bad magic", "not a recording", 0);

	one_statement();
	rec.p[7] = '2';
	read_rec();
	expect_error("another format version", "unknown recording format", 0);

	read_all("PGWREC 1\n{}\n", 12);
	expect_error("not gzip", "not gzip", 0);
	read_all("", 0);
	expect_error("an empty file", "empty", 0);

	one_statement();
	end_frame('E', "closed");
	uint8_t *z = gz(&rec, &len);
	read_all(z, len - 20);
	expect_error("a gzip stream cut short", "cut short", -1);
	CHECK(g.n >= 1, "... what came before the cut is read (%d messages)", g.n);
	z[len - 6] ^= 0x55; /* the trailer's CRC */
	read_all(z, len);
	expect_error("a bad gzip CRC", "corrupt gzip", 5);
	free(z);

	one_statement();
	frame('B', "Z\0\0\0\5I", 6);
	rec.n -= 3; /* the last frame says 6 bytes, 3 are there */
	read_rec();
	expect_error("a frame longer than the file", "is cut", 5);

	one_statement();
	put(&rec, "B\0\0\0", 4);
	read_rec();
	expect_error("a frame header cut", "13 header bytes", 5);

	one_statement();
	frame('B', "C\0\0\0\3", 5);
	read_rec();
	expect_error("a message length under 4", "length is 3", 5);

	one_statement();
	frame('B', "D\x7f\xff\xff\xff\0\1", 7);
	read_rec();
	expect_error("a message of 2 GiB", "length is 2147483647", 5);

	one_statement();
	frame('B', "D\x3f\xff\xff\xff\0\1", 7);
	end_frame('E', "closed");
	read_rec();
	CHECK(g.rc == 0 && g.end.mid_message,
	      "a 1 GiB message announced, 2 bytes of it there: no 1 GiB allocated, mid-message");

	one_statement();
	frame('Y', "", 0);
	read_rec();
	expect_error("an unknown frame kind", "unknown frame kind 0x59", 5);

	one_statement();
	end_frame('E', "closed");
	Q("select 2");
	read_rec();
	expect_error("a frame after the end frame", "after the end frame", 5);

	one_statement();
	end_frame('X', "max_bytes");
	Q("select 2");
	read_rec();
	expect_error("data after the truncation frame", "after the truncation", 5);

	one_statement();
	frame('E', "nope", 4);
	read_rec();
	expect_error("an end frame that is no JSON", "no JSON object", 5);

	rec.n = 0;
	put(&rec, "PGWREC 1\n{\"session\":1", 21);
	read_rec();
	expect_error("a metadata line cut", "metadata line is cut", 0);
	rec.n = 0;
	put(&rec, "PGWREC 1\n[1]\n", 13);
	read_rec();
	expect_error("a metadata line not an object", "not a JSON object", 0);
}

static void test_ends(void)
{
	one_statement();
	frame('F', "Q\0\0\0\x20selec", 10); /* the client sent 10 of 33 bytes, and died */
	end_frame('E', "client vanished");
	read_rec();
	CHECK(g.rc == 0 && g.n == 5 && g.end.ended && g.end.mid_message &&
	          strcmp(g.end.reason, "client vanished") == 0,
	      "an end frame with a message incomplete: the whole ones, then mid_message");

	one_statement();
	frame('F', "Q\0\0\0\x20selec", 10);
	read_rec();
	expect_error("a message incomplete and no end frame (a cut file)", "middle of a message",
	             5);

	one_statement();
	read_rec();
	CHECK(g.rc == 0 && !g.end.ended && !g.end.truncated && g.n == 5,
	      "no end frame, no message incomplete: read whole, neither ended nor truncated");

	one_statement();
	frame('B', "D\0\0\0", 4);
	end_frame('X', "max_bytes");
	end_frame('E', "client closed");
	read_rec();
	CHECK(g.rc == 0 && g.end.truncated && g.end.ended && g.end.mid_message &&
	          strcmp(g.end.x_reason, "max_bytes") == 0 &&
	          strcmp(g.end.reason, "client closed") == 0,
	      "X then E: truncated (max_bytes) mid-message, and ended (client closed)");
}

/* ---- psql's text rules, in process ---- */

static char *mem_out(void (*fn)(FILE *, const void *), const void *arg)
{
	char *s = NULL;
	size_t n;
	FILE *f = open_memstream(&s, &n);
	fn(f, arg);
	fclose(f);
	return s;
}

struct err_case {
	const char *query, *pos, *msg, *want;
};

static void print_err(FILE *f, const void *arg)
{
	const struct err_case *c = arg;
	msgs.n = 0;
	EN('E', 'S', "ERROR", 'M', c->msg, 'P', c->pos, 0);
	pw_rec_print_error(f, msgs.p + 5, (uint32_t)msgs.n - 5, c->query, true);
}

static void test_text_rules(void)
{
	/* psql's own output for these (captured with psql 15) */
	static const char a66[] =
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	char q1[400];
	snprintf(q1, sizeof(q1), "select '%s', nosuchcol, '%s%s'", a66, a66, a66);
	static const char jp[] =
	    "日本語日本語日本語日本語日本語日本語日本語日本語日本語日本語日本語"
	    "日本語日本語日本語日本語日本語";
	char q3[400];
	snprintf(q3, sizeof(q3), "select '%s', zz", jp);
	const struct err_case cases[] = {
	    {"selec 1", "1", "syntax error at or near \"selec\"",
	     "ERROR:  syntax error at or near \"selec\"\nLINE 1: selec 1\n        ^\n"},
	    {q1, "78", "column \"nosuchcol\" does not exist",
	     "ERROR:  column \"nosuchcol\" does not exist\n"
	     "LINE 1: ...aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', nosuchcol,...\n"
	     "                                                             ^\n"},
	    {"select 1,\n2,\n\tnosuch2 from\nx", "28", "relation \"x\" does not exist",
	     "ERROR:  relation \"x\" does not exist\nLINE 4: x\n        ^\n"},
	    {q3, "60", "column \"zz\" does not exist",
	     "ERROR:  column \"zz\" does not exist\n"
	     "LINE 1: ...日本語日本語日本語日本語日本語日本語日本語日本語日本語', zz\n"
	     "                                                                    ^\n"},
	    {NULL, "15", "relation \"nosuch\" does not exist",
	     "ERROR:  relation \"nosuch\" does not exist at character 15\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = mem_out(print_err, &cases[i]);
		CHECK_OUT(out, strcmp(out, cases[i].want) == 0, "error %zu as psql prints it", i);
		free(out);
	}

	struct pw_rec_lines f = {0};
	pw_rec_format(&f, "a\tb\rc\x01\xc2\x85\ne\xcc\x81日😀");
	CHECK(f.n == 2 && strcmp(f.buf, "a       b\\rc\\x01\\u0085") == 0 && f.width[0] == 22 &&
	          strcmp(f.buf + f.start[1], "e\xcc\x81日😀") == 0 && f.width[1] == 5,
	      "pg_wcsformat: tab to 8, \\r, \\x01, \\u0085, combining 0, wide 2 (\"%s\" %d, %d)",
	      f.buf, f.width[0], f.n > 1 ? f.width[1] : -1);
	free(f.buf);
	free(f.start);
	free(f.width);

	struct pw_rec_result r = {0};
	msgs.n = 0;
	D(3, "ok\xff\xc3(x\xe2\x82", NULL, "é");
	pw_rec_result_row(&r, msgs.p + 5, (uint32_t)msgs.n - 5);
	const char *c = r.nrows ? r.rows[0] : "";
	CHECK(r.tuples && r.ncols == 3 && strcmp(c, "ok(x") == 0 && !c[5] &&
	          strcmp(c + 6, "é") == 0,
	      "a DataRow without RowDescription: invalid UTF-8 dropped as mbvalidate does, NULL "
	      "empty (\"%s\")",
	      c);
	msgs.n = 0;
	D(3, "1", "2", "3");
	msgs.n -= 2; /* the last value cut */
	pw_rec_result_row(&r, msgs.p + 5, (uint32_t)msgs.n - 5);
	CHECK(r.nrows == 2 && strcmp(r.rows[1], "1") == 0 && strcmp(r.rows[1] + 4, "") == 0,
	      "a cut DataRow: what is there, the rest empty");
	pw_rec_result_free(&r);

	char *s = NULL;
	size_t n;
	FILE *o = open_memstream(&s, &n);
	pw_rec_text(o, "ok\x1b[31m\xff\xc2\x9b\t\n", 12, false);
	pw_rec_text(o, "\t\n", 2, true);
	fclose(o);
	CHECK(strcmp(s, "ok\\x1B[31m\\xFF\\u009B\t\n\\x09\\x0A") == 0,
	      "terminal escapes come out escaped");
	free(s);
}

/* ---- pgwardctl session replay, through the binary ---- */

static char ctl[4096], tmp[64];

/* run "pgwardctl ARGS" (2>&1): its output, *status its exit status (-1: a signal) */
static char *run(int *status, const char *fmt, ...)
{
	char cmd[8192], *out = NULL;
	size_t n = 0, cap = 0;
	va_list ap;
	int k = snprintf(cmd, sizeof(cmd), "'%s' ", ctl);
	va_start(ap, fmt);
	vsnprintf(cmd + k, sizeof(cmd) - (size_t)k, fmt, ap);
	va_end(ap);
	strcat(cmd, " 2>&1");
	FILE *p = popen(cmd, "r");
	for (size_t got = 1; p && got;) {
		if (n + 4096 + 1 > cap && !(out = realloc(out, cap = (n + 4096 + 1) * 2)))
			abort();
		got = fread(out + n, 1, 4096, p);
		n += got;
	}
	if (!out)
		out = calloc(1, 1);
	out[n] = 0;
	int st = p ? pclose(p) : -1;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	return out;
}

/* out without the lines replay adds (they start with "-- ") */
static char *psql_part(const char *out)
{
	char *r = calloc(1, strlen(out) + 1), *w = r;
	for (const char *l = out; *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
		if (strncmp(l, "-- ", 3) != 0) {
			memcpy(w, l, n);
			w += n;
		}
		l += n;
	}
	return r;
}

static void replay_check(const char *name, const char *want)
{
	char path[128];
	int st;
	snprintf(path, sizeof(path), "%s/%s.pgrec", tmp, name);
	gz_file(path, &rec);
	char *out = run(&st, "session replay %s", path), *p = psql_part(out);
	CHECK_OUT(out, st == 0 && strcmp(p, want) == 0, "%s: replay prints what psql printed",
	          name);
	free(out);
	free(p);
}

static void render_commands(void)
{
	rec_start();
	Q("create table t(id int, name text, v float8)");
	C("CREATE TABLE");
	Z();
	Q("insert into t values (1,'a',1.5),(2,'héllo 日本',null)");
	C("INSERT 0 2");
	Z();
	Q("update t set v=2 where id=1");
	C("UPDATE 1");
	Z();
	Q("begin");
	C("BEGIN");
	Z();
	Q("select * from t where false");
	T(3, "id", 23u, "name", 25u, "v", 701u);
	C("SELECT 0");
	Z();
	Q("select * from t order by id");
	T(3, "id", 23u, "name", 25u, "v", 701u);
	D(3, "1", "a", "2");
	D(3, "2", "héllo 日本", NULL);
	C("SELECT 2");
	flush('B', 7); /* cut anywhere */
	Z();
	end_frame('E', "client closed");
	replay_check("commands", "create table t(id int, name text, v float8)\n"
	                         "CREATE TABLE\n"
	                         "insert into t values (1,'a',1.5),(2,'héllo 日本',null)\n"
	                         "INSERT 0 2\n"
	                         "update t set v=2 where id=1\n"
	                         "UPDATE 1\n"
	                         "begin\n"
	                         "BEGIN\n"
	                         "select * from t where false\n"
	                         " id | name | v \n"
	                         "----+------+---\n"
	                         "(0 rows)\n"
	                         "\n"
	                         "select * from t order by id\n"
	                         " id |    name    | v \n"
	                         "----+------------+---\n"
	                         "  1 | a          | 2\n"
	                         "  2 | héllo 日本 |  \n"
	                         "(2 rows)\n"
	                         "\n");
}

static void render_errors(void)
{
	rec_start();
	Q("selec 1");
	EN('E', 'S', "ERROR", 'V', "ERROR", 'C', "42601", 'M', "syntax error at or near \"selec\"",
	   'P', "1", 'F', "scan.l", 'L', "1188", 'R', "scanner_yyerror", 0);
	Z();
	Q("select * from nosuch");
	EN('E', 'S', "ERROR", 'C', "42P01", 'M', "relation \"nosuch\" does not exist", 'P', "15",
	   0);
	Z();
	Q("select 1; select 1/0; select 3");
	T(1, "?column?", 23u);
	D(1, "1");
	C("SELECT 1");
	EN('E', 'S', "ERROR", 'C', "22012", 'M', "division by zero", 0);
	Z();
	Q("do $$begin raise notice 'hello %', 1; raise warning 'w1' using detail='d1', hint='h1'; "
	  "end$$");
	EN('N', 'S', "NOTICE", 'M', "hello 1", 'W',
	   "PL/pgSQL function inline_code_block line 1 at RAISE", 0);
	EN('N', 'S', "WARNING", 'M', "w1", 'D', "d1", 'H', "h1", 'W', "PL/pgSQL function ...", 0);
	C("DO");
	Z();
	Q("do $$begin raise exception 'boom' using detail='the detail', hint='the hint'; end$$");
	EN('E', 'S', "ERROR", 'M', "boom", 'D', "the detail", 'H', "the hint", 'W',
	   "PL/pgSQL function inline_code_block line 1 at RAISE", 0);
	Z();
	Q("select f()");
	EN('E', 'S', "ERROR", 'M', "relation \"nosuch\" does not exist", 'p', "16", 'q',
	   "(select x from nosuch)", 'W', "PL/pgSQL function f() line 1 at RETURN", 0);
	Z();
	end_frame('E', "client closed");
	replay_check("errors", "selec 1\n"
	                       "ERROR:  syntax error at or near \"selec\"\n"
	                       "LINE 1: selec 1\n"
	                       "        ^\n"
	                       "select * from nosuch\n"
	                       "ERROR:  relation \"nosuch\" does not exist\n"
	                       "LINE 1: select * from nosuch\n"
	                       "                      ^\n"
	                       "select 1; select 1/0; select 3\n"
	                       " ?column? \n"
	                       "----------\n"
	                       "        1\n"
	                       "(1 row)\n"
	                       "\n"
	                       "ERROR:  division by zero\n"
	                       "do $$begin raise notice 'hello %', 1; raise warning 'w1' using "
	                       "detail='d1', hint='h1'; end$$\n"
	                       "NOTICE:  hello 1\n"
	                       "WARNING:  w1\n"
	                       "DETAIL:  d1\n"
	                       "HINT:  h1\n"
	                       "DO\n"
	                       "do $$begin raise exception 'boom' using detail='the detail', "
	                       "hint='the hint'; end$$\n"
	                       "ERROR:  boom\n"
	                       "DETAIL:  the detail\n"
	                       "HINT:  the hint\n"
	                       "CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE\n"
	                       "select f()\n"
	                       "ERROR:  relation \"nosuch\" does not exist\n"
	                       "LINE 1: (select x from nosuch)\n"
	                       "                       ^\n"
	                       "QUERY:  (select x from nosuch)\n"
	                       "CONTEXT:  PL/pgSQL function f() line 1 at RETURN\n");
}

static void build_order_and_cells(void)
{
	rec_start();
	/* psql prints a result once it holds the next: the notice comes first */
	Q("select 1; select 2; do $$begin raise notice 'x'; end$$");
	T(1, "?column?", 23u);
	D(1, "1");
	C("SELECT 1");
	T(1, "?column?", 23u);
	D(1, "2");
	C("SELECT 2");
	EN('N', 'S', "NOTICE", 'M', "x", 0);
	C("DO");
	Z();
	Q("select E'a\\nbbb' as x, 'y' as \"h1\nlonger\", 1 as n, E'tab\\there\\r' as t, "
	  "E'\\x01\\x7f' as c, 'ü' as \"日本\" union all select 'q', E'm\\nn\\no', 22, null, 'x', "
	  "'日本語'");
	T(6, "x", 25u, "h1\nlonger", 25u, "n", 23u, "t", 25u, "c", 25u, "日本", 25u);
	D(6, "a\nbbb", "y", "1", "tab\there\r", "\x01\x7f", "ü");
	D(6, "q", "m\nn\no", "22", NULL, "x", "日本語");
	C("SELECT 2");
	Z();
	Q("copy (select 1, 'a') to stdout");
	m_begin('H');
	put(&msgs, "\0\0\2\0\0\0\0", 7);
	m_end();
	m_begin('d');
	put(&msgs, "1\ta\n", 4);
	m_end();
	simple('c');
	C("COPY 1");
	Z();
	Q("");
	simple('I');
	Z();
	Q("select from generate_series(1,3)");
	T(0);
	D(0);
	D(0);
	D(0);
	C("SELECT 3");
	Z();
	Q("insert into r values (7,'r') returning id, name");
	T(2, "id", 23u, "name", 25u);
	D(2, "7", "r");
	C("INSERT 0 1");
	Z();
	Q("listen c; notify c, 'pay'; notify c");
	C("LISTEN");
	C("NOTIFY");
	C("NOTIFY");
	m_begin('A');
	put(&msgs,
	    "\0\0\x1b\x40"
	    "c\0pay",
	    10);
	m_end();
	m_begin('A');
	put(&msgs,
	    "\0\0\x1b\x40"
	    "c\0",
	    7);
	m_end();
	Z();
	end_frame('E', "client closed");
}

static const char want_order_and_cells[] =
    "select 1; select 2; do $$begin raise notice 'x'; end$$\n"
    "NOTICE:  x\n"
    " ?column? \n"
    "----------\n"
    "        1\n"
    "(1 row)\n"
    "\n"
    " ?column? \n"
    "----------\n"
    "        2\n"
    "(1 row)\n"
    "\n"
    "DO\n"
    "select E'a\\nbbb' as x, 'y' as \"h1\n"
    "longer\", 1 as n, E'tab\\there\\r' as t, E'\\x01\\x7f' as c, 'ü' as \"日本\" "
    "union all select 'q', E'm\\nn\\no', 22, null, 'x', '日本語'\n"
    "  x  |   h1  +| n  |       t        |    c     |  日本  \n"
    "     | longer |    |                |          |        \n"
    "-----+--------+----+----------------+----------+--------\n"
    " a  +| y      |  1 | tab     here\\r | \\x01\\x7F | ü\n"
    " bbb |        |    |                |          | \n"
    " q   | m     +| 22 |                | x        | 日本語\n"
    "     | n     +|    |                |          | \n"
    "     | o      |    |                |          | \n"
    "(2 rows)\n"
    "\n"
    "copy (select 1, 'a') to stdout\n"
    "1\ta\n"
    "\n"
    "select from generate_series(1,3)\n"
    "--\n"
    "(3 rows)\n"
    "\n"
    "insert into r values (7,'r') returning id, name\n"
    " id | name \n"
    "----+------\n"
    "  7 | r\n"
    "(1 row)\n"
    "\n"
    "INSERT 0 1\n"
    "listen c; notify c, 'pay'; notify c\n"
    "LISTEN\n"
    "NOTIFY\n"
    "NOTIFY\n"
    "Asynchronous notification \"c\" with payload \"pay\" received from server "
    "process with PID 6976.\n"
    "Asynchronous notification \"c\" received from server process with PID 6976.\n";

/* a statement of the extended protocol, its messages cut in 3-byte frames */
static void extended_stmt(void)
{
	m_begin('P');
	m_str("");
	m_str("select $1::int + 1 as n, $2::text as t");
	put_be(&msgs, 0, 2);
	m_end();
	m_begin('B');
	m_str("");
	m_str("");
	put(&msgs,
	    "\0\0\0\2\0\0\0\2"
	    "42\xff\xff\xff\xff\0\0",
	    16);
	m_end();
	m_begin('D');
	put(&msgs, "P", 2);
	m_end();
	m_begin('E');
	m_str("");
	put_be(&msgs, 0, 4);
	m_end();
	simple('S');
	flush('F', 3);
	simple('1');
	simple('2');
	T(2, "n", 23u, "t", 25u);
	D(2, "43", NULL);
	C("SELECT 1");
	Z();
}

/* replay's own lines, the extended protocol, the end of a recording, --raw, -j */
static void render_own_lines(void)
{
	int st;
	char path[128];
	rec_start();
	Q("delete from secrets");
	EN('E', 'S', "ERROR", 'C', "42501", 'M', "pgward: statement refused by policy", 0);
	Z();
	extended_stmt();
	Q("select pg_sleep(100)");
	T(1, "pg_sleep", 2278u);
	frame('B', "D\0\0\0\x0a\0\1\0\0", 9); /* killed mid-row */
	end_frame('E', "terminated");
	snprintf(path, sizeof(path), "%s/20261201T072331Z-4242-12.pgrec", tmp);
	gz_file(path, &rec);
	static const char want[] = "-- session 12, identity agent, user agent@app, client "
	                           "127.0.0.1:40112, started 2026-12-01T07:23:31.123456Z\n"
	                           "delete from secrets\n"
	                           "ERROR:  pgward: statement refused by policy\n"
	                           "-- refused by pgward\n"
	                           "-- time: 0.250 ms\n"
	                           "select $1::int + 1 as n, $2::text as t\n"
	                           "-- parameters: $1 = '42', $2 = NULL\n"
	                           " n  | t \n"
	                           "----+---\n"
	                           " 43 | \n"
	                           "(1 row)\n"
	                           "\n"
	                           "-- time: ";
	char *out = run(&st, "session replay %s", path);
	CHECK_OUT(out,
	          st == 0 && strncmp(out, want, strlen(want)) == 0 &&
	              strstr(out, " ms\nselect pg_sleep(100)\n-- the recording ends mid-message\n"
	                          "-- ended: terminated\n"),
	          "header, refusal marker, timing, extended protocol, mid-message end");
	free(out);

	/* the newest of two recordings of session 12, by number */
	snprintf(path, sizeof(path), "%s/20251201T000000Z-1-12.pgrec", tmp);
	gz_file(path, &rec);
	out = run(&st, "session replay --dir %s 12", tmp);
	CHECK(st == 0 && strstr(out, "note: 2 recordings of session 12") &&
	          strstr(out, "20261201T072331Z-4242-12.pgrec"),
	      "ID: the newest of DIR/*-12.pgrec, and a note saying which");
	free(out);
	out = run(&st, "session replay --dir %s 13", tmp);
	CHECK_OUT(out, st == 1 && strstr(out, "Error: no recording of session 13"), "ID not found");
	free(out);

	out = run(&st, "session replay --raw --dir %s 12", tmp);
	CHECK_OUT(out,
	          st == 0 && strstr(out, "+1.000ms F Query \"delete from secrets\"\n") &&
	              strstr(out, " B ErrorResponse ERROR 42501 \"pgward: statement refused by "
	                          "policy\"\n") &&
	              strstr(out, " B RowDescription 2 column(s) [\"n\", \"t\"]\n") &&
	              strstr(out, " B DataRow [\"43\", NULL]\n") &&
	              strstr(out, " B CommandComplete \"SELECT 1\"\n") &&
	              strstr(out, " B ReadyForQuery I\n") &&
	              strstr(out, " F Bind \"\" \"\" [\"42\", NULL]\n"),
	          "--raw: one line a message");
	free(out);
	out = run(&st, "-j session replay --raw --dir %s 12", tmp);
	CHECK(st == 0 &&
	          strstr(out, "{\"t_us\":1000,\"dir\":\"F\",\"type\":\"Query\","
	                      "\"query\":\"delete from secrets\"}\n") &&
	          strstr(out, "\"type\":\"DataRow\",\"values\":[\"43\",null]}") &&
	          strstr(out, "{\"end\":{\"ended\":true,\"reason\":\"terminated\""),
	      "-j: a JSON object a message");
	free(out);

	/* an agent's bytes never reach the terminal raw */
	rec_start();
	Q("select '\x1b]0;owned\x07'");
	T(1, "?column?\x1b[2J", 25u);
	D(1, "\x1b[31mred");
	C("SELECT 1");
	Z();
	end_frame('E', "closed\x1b[0m");
	snprintf(path, sizeof(path), "%s/esc.pgrec", tmp);
	gz_file(path, &rec);
	out = run(&st, "session replay %s", path);
	char *raw = run(&st, "session replay --raw %s", path);
	CHECK(!strchr(out, '\x1b') && !strchr(raw, '\x1b') && strstr(out, "\\x1B[31mred"),
	      "escape sequences come out escaped, rendered and raw");
	free(out);
	free(raw);
}

static void render_errors_cli(void)
{
	int st;
	char path[128];
	char *out = run(&st, "session replay %s/nosuch.pgrec", tmp);
	CHECK_OUT(out, st == 1 && strstr(out, "Error: ") && strstr(out, "No such file"),
	          "a missing file");
	free(out);
	snprintf(path, sizeof(path), "%s/plain.pgrec", tmp);
	FILE *f = fopen(path, "w");
	fputs("PGWREC 1\n{}\n", f);
	fclose(f);
	out = run(&st, "session replay %s", path);
	CHECK(st == 1 && strstr(out, "Error: ") && strstr(out, "not a recording"), "not gzip");
	free(out);

	one_statement();
	frame('F', "Q\0\0\0\x20selec", 10); /* no end frame: the file is cut */
	snprintf(path, sizeof(path), "%s/cut.pgrec", tmp);
	gz_file(path, &rec);
	out = run(&st, "session replay %s", path);
	CHECK_OUT(out,
	          st == 1 && strstr(out, "(1 row)") && strstr(out, "Error: ") &&
	              strstr(out, "middle of a message"),
	          "a message cut at the end, no end frame: what is whole, then an error");
	free(out);

	out = run(&st, "session replay --speed 0 %s", path);
	CHECK(st == 2, "--speed 0 is refused (%d)", st);
	free(out);
	out = run(&st, "session replay --speed 1000 %s", path);
	CHECK(st == 1 && strstr(out, "(1 row)"), "--speed 1000 paces and prints");
	free(out);
}

/* ---- mutations ---- */

/* a valid recording of about everything: the mutations' base */
static void build_fuzz_base(void)
{
	build_order_and_cells();
	rec.n -= 13 + 26; /* its end frame */
	extended_stmt();
	Q("select 1");
	EN('E', 'S', "FATAL", 'M', "terminating connection due to administrator command", 0);
	flush('B', 0);
	end_frame('E', "closed");
}

static void mutate(struct buf *b)
{
	int k = 1 + (int)(rnd() % 4);
	for (int i = 0; i < k && b->n; i++) {
		size_t at = rnd() % b->n;
		switch (rnd() % 6) {
		case 0:
			b->p[at] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1:
			b->p[at] = (uint8_t)rnd();
			break;
		case 2:
			b->n = at; /* cut */
			break;
		case 3: /* a byte gone */
			memmove(b->p + at, b->p + at + 1, b->n - at - 1);
			b->n--;
			break;
		case 4: /* a byte more */
			put(b, "", 1);
			memmove(b->p + at + 1, b->p + at, b->n - at - 1);
			b->p[at] = (uint8_t)rnd();
			break;
		default: /* a length word's byte */
			b->p[at] = (uint8_t[]){0, 0xff, 0x7f, 4, 5}[rnd() % 5];
		}
	}
}

/* the in-process printers on a message, as replay uses them */
static void exercise(FILE *null, const struct pw_rec_msg *m, struct pw_rec_result *res)
{
	char name[32];
	size_t o = 0;
	pw_rec_msg_name(m, name, sizeof(name));
	pw_rec_cstr(m, &o);
	pw_rec_be16(m, &o);
	if (m->type == 'T')
		pw_rec_result_desc(res, m->body, m->len);
	else if (m->type == 'D' && res->nrows < 100)
		pw_rec_result_row(res, m->body, m->len);
	else if (m->type == 'E' || m->type == 'N')
		pw_rec_print_error(null, m->body, m->len, (const char *)m->body, m->type == 'E');
	else if (m->type == 'Q' || m->type == 'd')
		pw_rec_text(null, (const char *)m->body, m->len, m->type == 'd');
	struct pw_rec_lines f = {0};
	for (size_t r = 0; m->type == 'C' && r < res->nrows; r++)
		pw_rec_format(&f, res->rows[r]);
	free(f.buf);
	free(f.start);
	free(f.width);
}

static void test_fuzz(void)
{
	FILE *null = fopen("/dev/null", "w");
	struct buf good = {0}, b = {0};
	int errors = 0, ok = 0;
	build_fuzz_base();
	put(&good, rec.p, rec.n);
	for (int i = 0; i < 10000; i++) {
		b.n = 0;
		put(&b, good.p, good.n);
		size_t len;
		uint8_t *z;
		if (i % 10 == 9) { /* the compressed bytes themselves */
			z = gz(&b, &len);
			struct buf zb = {.p = z, .n = len, .cap = len};
			mutate(&zb);
			z = zb.p;
			len = zb.n;
		} else {
			mutate(&b);
			z = gz(&b, &len);
		}
		char err[300];
		struct pw_rec_reader *r = pw_rec_open_mem(z, len, err, sizeof(err));
		struct pw_rec_msg m;
		struct pw_rec_result res = {0};
		int rc = -1;
		while (r && (rc = pw_rec_next(r, &m)) > 0)
			exercise(null, &m, &res);
		errors += rc < 0;
		ok += rc == 0;
		pw_rec_result_free(&res);
		pw_rec_close(r);
		free(z);
	}
	CHECK(ok + errors == 10000 && errors > 0,
	      "10,000 mutated recordings read and printed in process: %d whole, %d errors", ok,
	      errors);
	fclose(null);
	free(good.p);
	free(b.p);
}

/* Whole messages mutated (their framing kept), many to a recording, through the binary:
 * 50 recordings of 200 mutated messages each. */
static void test_fuzz_replay(void)
{
	struct buf good = {0};
	int bad = 0;
	build_fuzz_base();
	put(&good, rec.p, rec.n);
	size_t hdr = (size_t)((uint8_t *)memchr(good.p + 9, '\n', good.n - 9) - good.p) + 1;
	for (int i = 0; i < 50; i++) {
		char path[128];
		struct buf out = {0};
		put(&out, good.p, hdr);
		for (int k = 0; k < 200; k++) {
			/* a frame of the good recording, its payload mutated, its length fixed */
			size_t at = hdr;
			for (int skip = (int)(rnd() % 40); skip > 0 && at < good.n - 13; skip--)
				at += 13 + ((size_t)good.p[at + 9] << 24 |
				            (size_t)good.p[at + 10] << 16 |
				            (size_t)good.p[at + 11] << 8 | good.p[at + 12]);
			if (at >= good.n - 13 || good.p[at] == 'E')
				at = hdr;
			size_t n = (size_t)good.p[at + 9] << 24 | (size_t)good.p[at + 10] << 16 |
			           (size_t)good.p[at + 11] << 8 | good.p[at + 12];
			struct buf pl = {0};
			put(&pl, good.p + at + 13, n);
			mutate(&pl);
			put(&out, good.p + at, 1);
			put_be(&out, (uint64_t)k * 100, 8);
			put_be(&out, pl.n, 4);
			put(&out, pl.p, pl.n);
			free(pl.p);
		}
		put(&out, "E\0\0\0\0\0\0\0\0\0\0\0\2{}", 15);
		snprintf(path, sizeof(path), "%s/fuzz%d.pgrec", tmp, i);
		gz_file(path, &out);
		free(out.p);
		for (int mode = 0; mode < (i % 5 ? 1 : 3); mode++) {
			int st;
			char *o = run(&st, "%s session replay %s%s", mode == 2 ? "-j" : "",
			              mode ? "--raw " : "", path);
			bad += (st != 0 && st != 1) || strstr(o, "Sanitizer") ||
			       strstr(o, "runtime error");
			if ((st != 0 && st != 1) || strstr(o, "Sanitizer") ||
			    strstr(o, "runtime error"))
				printf("# %s (mode %d): status %d\n%s\n", path, mode, st, o);
			free(o);
		}
	}
	CHECK(!bad,
	      "50 recordings of 200 mutated messages each replayed (plain, --raw, -j): no "
	      "crash, no sanitizer report (%d bad)",
	      bad);
	free(good.p);
}

int main(int argc, char **argv)
{
	(void)argc;
	test_reassembly();
	test_big_and_members();
	test_malformed();
	test_ends();
	test_text_rules();
	test_fuzz();

	/* the binary next to this test's directory: BUILD/tests/test_record_read -> BUILD */
	const char *slash = strrchr(argv[0], '/');
	snprintf(ctl, sizeof(ctl), "%.*s/../pgwardctl", slash ? (int)(slash - argv[0]) : 1,
	         slash ? argv[0] : ".");
	snprintf(tmp, sizeof(tmp), "/tmp/test_record_read.XXXXXX");
	if (access(ctl, X_OK) != 0 || !mkdtemp(tmp)) {
		CHECK_SKIP("no pgwardctl built next to the test", "replay through the binary");
		return check_done();
	}
	render_commands();
	render_errors();
	build_order_and_cells();
	replay_check("order_and_cells", want_order_and_cells);
	render_own_lines();
	render_errors_cli();
	test_fuzz_replay();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmp);
	free(rec.p);
	free(msgs.p);
	return check_done();
}
