/* Masking on the wire (mask_wire.h), as tables: each strategy on a DataRow cell in text and in
 * binary (the binary replacement decoded back as its type), detectors inside cells, hashes
 * alike in both formats; COPY OUT rows in text, CSV and binary, with their header and trailer;
 * ErrorResponse scrubbing; and malformed messages, which must fail closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/mask_wire.h"
#include "pgward/proto.h"

#define S(x)    x, (int)sizeof(x) - 1 /* a literal and its length (it may hold NUL bytes) */
#define NUL_    NULL, -1              /* SQL NULL */
#define PEM_KEY "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"

static const struct pw_mask_key key = {.k = "0123456789abcdef0123456789abcdef", .len = 32};
static const struct pw_mask_detectors det = {
    .set = 1u << PW_DET_EMAIL | 1u << PW_DET_SSN | 1u << PW_DET_PEM_KEY | 1u << PW_DET_CARD |
           1u << PW_DET_PHONE,
    .strategy = {[PW_DET_EMAIL] = PW_MASK_EMAIL,
                 [PW_DET_SSN] = PW_MASK_REDACT,
                 [PW_DET_PEM_KEY] = PW_MASK_REDACT,
                 [PW_DET_CARD] = PW_MASK_PARTIAL,
                 [PW_DET_PHONE] = PW_MASK_NULL},
    .keep = {[PW_DET_CARD] = 4},
};
static const struct pw_mask_ctx ctx = {&key, &det};

/* ---- message helpers ---------------------------------------------------------------------- */

struct msg {
	uint8_t d[4096];
	size_t n;
};

static void m_begin(struct msg *m, char type)
{
	m->d[0] = (uint8_t)type;
	m->n = PW_HDR;
}
static void m_bytes(struct msg *m, const void *p, size_t n)
{
	memcpy(m->d + m->n, p, n);
	m->n += n;
}
static void m_i16(struct msg *m, int v)
{
	m->d[m->n++] = (uint8_t)((unsigned)v >> 8);
	m->d[m->n++] = (uint8_t)v;
}
static void m_i32(struct msg *m, int32_t v)
{
	pw_put_be32(m->d + m->n, (uint32_t)v);
	m->n += 4;
}
/* A cell: n bytes, or NULL for n == -1. */
static void m_cell(struct msg *m, const char *v, int n)
{
	m_i32(m, n);
	if (n > 0)
		m_bytes(m, v, (size_t)n);
}
static const uint8_t *m_end(struct msg *m)
{
	pw_put_be32(m->d + 1, (uint32_t)(m->n - 1));
	return m->d;
}
static const uint8_t *m_whole(struct msg *m, char type, const char *body, size_t n)
{
	m_begin(m, type);
	m_bytes(m, body, n);
	return m_end(m);
}

/* The output's framing: its type and a length field that counts its bytes. */
static bool framed(const struct pw_mask_out *o, char type)
{
	return o->len >= PW_HDR && o->data[0] == (uint8_t)type &&
	       pw_be32(o->data + 1) == o->len - 1;
}

/* Cell k of a DataRow (or of a binary COPY tuple at body offset off): its length (-1 NULL). */
static bool row_cell(const uint8_t *m, size_t len, size_t off, int k, const uint8_t **v, int32_t *l)
{
	size_t i = off + 2;
	for (int j = 0; j <= k; j++) {
		if (i + 4 > len)
			return false;
		*l = (int32_t)pw_be32(m + i);
		*v = m + i + 4;
		i += 4 + (*l > 0 ? (size_t)*l : 0);
		if (i > len)
			return false;
	}
	return true;
}

static bool same_cell(const uint8_t *v, int32_t l, const char *want, int wn)
{
	return l == wn && (wn <= 0 || !memcmp(v, want, (size_t)wn));
}

/* ---- DataRow: each strategy, text and binary ---------------------------------------------- */

struct cellcase {
	const char *name;
	enum pw_mask_strategy s;
	int keep;
	uint32_t type;
	int16_t format;
	const char *in;
	int in_len;
	int rc;
	const char *want; /* the masked cell in its format */
	int want_len;
};

static const struct cellcase cellcases[] = {
    {"text: redact a text", PW_MASK_REDACT, 0, 25, 0, S("jane@example.com"), 1, S("[redacted]")},
    {"text: partial of a varchar", PW_MASK_PARTIAL, 4, 1043, 0, S("4111111111111111"), 1,
     S("****1111")},
    {"text: email keeps the domain", PW_MASK_EMAIL, 0, 25, 0, S("jane@example.com"), 1,
     S("****@example.com")},
    {"text: null", PW_MASK_NULL, 0, 25, 0, S("secret"), 1, NUL_},
    {"text: redact an int4 to 0", PW_MASK_REDACT, 0, 23, 0, S("123456"), 1, S("0")},
    {"text: redact a uuid", PW_MASK_REDACT, 0, 2950, 0, S("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
     1, S("00000000-0000-0000-0000-000000000000")},
    {"text: unknown type (0) becomes NULL", PW_MASK_REDACT, 0, 0, 0, S("x"), 1, NUL_},
    {"text: a type without a replacement (point) becomes NULL", PW_MASK_HASH, 0, 600, 0, S("(1,2)"),
     1, NUL_},
    {"text: an empty string is masked too", PW_MASK_REDACT, 0, 25, 0, S(""), 1, S("[redacted]")},
    {"text: a NULL stays NULL, unchanged", PW_MASK_REDACT, 0, 25, 0, NUL_, 0, NUL_},
    {"binary: redact a text", PW_MASK_REDACT, 0, 25, 1, S("jane"), 1, S("[redacted]")},
    {"binary: partial of a bpchar", PW_MASK_PARTIAL, 2, 1042, 1, S("abcdef"), 1, S("****ef")},
    {"binary: email of a name", PW_MASK_EMAIL, 0, 19, 1, S("bob@corp.io"), 1, S("****@corp.io")},
    {"binary: null", PW_MASK_NULL, 0, 23, 1, S("\0\0\0\7"), 1, NUL_},
    {"binary: redact an int2", PW_MASK_REDACT, 0, 21, 1, S("\x01\x02"), 1, S("\0\0")},
    {"binary: redact an int4", PW_MASK_REDACT, 0, 23, 1, S("\x07\x5b\xcd\x15"), 1, S("\0\0\0\0")},
    {"binary: redact an int8", PW_MASK_REDACT, 0, 20, 1, S("\0\0\0\0\0\0\1\0"), 1,
     S("\0\0\0\0\0\0\0\0")},
    {"binary: redact an oid", PW_MASK_REDACT, 0, 26, 1, S("\xff\0\0\1"), 1, S("\0\0\0\0")},
    {"binary: partial of an int4 redacts it", PW_MASK_PARTIAL, 4, 23, 1, S("\0\0\0\x2a"), 1,
     S("\0\0\0\0")},
    {"binary: redact a bool: one byte, false", PW_MASK_REDACT, 0, 16, 1, S("\1"), 1, S("\0")},
    {"binary: redact a uuid: 16 zero bytes", PW_MASK_REDACT, 0, 2950, 1,
     S("\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11"), 1,
     S("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")},
    {"binary: redact a float4: zero", PW_MASK_REDACT, 0, 700, 1, S("\x3f\x80\0\0"), 1,
     S("\0\0\0\0")},
    {"binary: redact a float8: zero", PW_MASK_REDACT, 0, 701, 1, S("\x3f\xf0\0\0\0\0\0\0"), 1,
     S("\0\0\0\0\0\0\0\0")},
    {"binary: a numeric has no binary replacement: NULL", PW_MASK_REDACT, 0, 1700, 1,
     S("\0\1\0\0\0\0\0\0\0\1"), 1, NUL_},
    {"binary: a date: NULL", PW_MASK_REDACT, 0, 1082, 1, S("\0\0\0\0"), 1, NUL_},
    {"binary: unknown type: NULL", PW_MASK_REDACT, 0, 0, 1, S("abc"), 1, NUL_},
    {"binary: hash of a bool (no text form hashed): NULL", PW_MASK_HASH, 0, 16, 1, S("\1"), 1,
     NUL_},
    {"binary: an int4 of 3 bytes is not an int4: fail closed", PW_MASK_REDACT, 0, 23, 1,
     S("\0\0\1"), -1, NUL_},
    {"binary: a uuid of 15 bytes: fail closed", PW_MASK_HASH, 0, 2950, 1,
     S("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"), -1, NUL_},
};

/* A two-column row (an unmasked int4 "7", then the case's cell) masked under the case. */
static void datarow_cells(void)
{
	struct pw_mask_out out = {0};
	for (size_t i = 0; i < sizeof(cellcases) / sizeof(cellcases[0]); i++) {
		const struct cellcase *c = &cellcases[i];
		struct pw_mask_col cols[2] = {{.type_oid = 23},
		                              {.mask = true,
		                               .strategy = c->s,
		                               .keep = c->keep,
		                               .type_oid = c->type,
		                               .format = c->format}};
		struct msg m;
		m_begin(&m, 'D');
		m_i16(&m, 2);
		m_cell(&m, "7", 1);
		m_cell(&m, c->in, c->in_len);
		int rc = pw_mask_datarow(cols, 2, &ctx, m_end(&m), m.n, &out);
		const uint8_t *v0, *v1;
		int32_t l0, l1;
		bool ok = rc == c->rc;
		if (ok && rc == 1)
			ok = framed(&out, 'D') &&
			     row_cell(out.data, out.len, PW_HDR, 0, &v0, &l0) &&
			     row_cell(out.data, out.len, PW_HDR, 1, &v1, &l1) &&
			     v1 + (l1 > 0 ? l1 : 0) == out.data + out.len &&
			     same_cell(v0, l0, "7", 1) && same_cell(v1, l1, c->want, c->want_len);
		if (ok && rc != 1)
			ok = out.len == 0;
		CHECK(ok, "datarow %s (rc %d)", c->name, rc);
	}
	pw_mask_out_free(&out);
}

/* ---- hashes: the same in text and binary ------------------------------------------------------
 */

/* The one cell of a one-column row masked under hash (format 0 or 1): copied into v. */
static int32_t hash_cell(uint32_t type, int16_t format, const char *in, int n, uint8_t *v)
{
	struct pw_mask_col col = {
	    .mask = true, .strategy = PW_MASK_HASH, .type_oid = type, .format = format};
	struct pw_mask_out out = {0};
	struct msg m;
	m_begin(&m, 'D');
	m_i16(&m, 1);
	m_cell(&m, in, n);
	const uint8_t *c;
	int32_t l = -2;
	if (pw_mask_datarow(&col, 1, &ctx, m_end(&m), m.n, &out) == 1 &&
	    row_cell(out.data, out.len, PW_HDR, 0, &c, &l) && l > 0 && l < 100)
		memcpy(v, c, (size_t)l);
	pw_mask_out_free(&out);
	return l;
}

static long long be_int(const uint8_t *v, int32_t n)
{
	unsigned long long x = 0;
	for (int i = 0; i < n; i++)
		x = x << 8 | v[i];
	if (n < 8 && x >> (8 * n - 1))
		x -= 1ull << (8 * n); /* sign */
	return (long long)x;
}

static void hashes(void)
{
	uint8_t t[128] = {0}, b[128] = {0};
	int32_t lt = hash_cell(23, 0, S("42"), t), lb = hash_cell(23, 1, S("\0\0\0\x2a"), b);
	long long tv = lt > 0 ? strtoll((char *)t, NULL, 10) : -1;
	CHECK(lt > 0 && lb == 4 && be_int(b, 4) == tv && tv >= 0 && tv <= 2147483647,
	      "hash of int4 42: the binary cell is the int4 of the text cell's number (%lld)", tv);
	lt = hash_cell(23, 0, S("-5"), t);
	lb = hash_cell(23, 1, S("\xff\xff\xff\xfb"), b);
	tv = lt > 0 ? strtoll((char *)t, NULL, 10) : -1;
	CHECK(lt > 0 && lb == 4 && be_int(b, 4) == tv, "hash of int4 -5: text and binary agree");
	memset(t, 0, sizeof(t));
	lt = hash_cell(20, 0, S("9876543210"), t);
	lb = hash_cell(20, 1, S("\0\0\0\x02\x4c\xb0\x16\xea"), b);
	tv = lt > 0 ? strtoll((char *)t, NULL, 10) : -1;
	CHECK(lt > 0 && lb == 8 && be_int(b, 8) == tv && tv >= 0,
	      "hash of int8 9876543210: text and binary agree");
	memset(t, 0, sizeof(t));
	lt = hash_cell(21, 0, S("300"), t);
	lb = hash_cell(21, 1, S("\x01\x2c"), b);
	tv = lt > 0 ? strtoll((char *)t, NULL, 10) : -1;
	CHECK(lt > 0 && lb == 2 && be_int(b, 2) == tv && tv >= 0 && tv <= 32767,
	      "hash of int2 300: text and binary agree, still an int2");
	memset(t, 0, sizeof(t));
	lt = hash_cell(26, 0, S("4278190081"), t);
	lb = hash_cell(26, 1, S("\xff\0\0\1"), b);
	tv = lt > 0 ? strtoll((char *)t, NULL, 10) : -1;
	CHECK(lt > 0 && lb == 4 && (long long)pw_be32(b) == tv, "hash of an oid above 2^31 agrees");
	lt = hash_cell(25, 0, S("alice"), t);
	lb = hash_cell(25, 1, S("alice"), b);
	CHECK(lt == 64 && lb == 64 && !memcmp(t, b, 64),
	      "hash of text 'alice': same in both formats");
	lt = hash_cell(2950, 0, S("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), t);
	lb = hash_cell(2950, 1,
	               S("\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11"), b);
	char hex[40] = "";
	for (int i = 0, o = 0; lb == 16 && i < 16; i++)
		o += snprintf(hex + o, sizeof(hex) - (size_t)o, "%s%02x",
		              i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", b[i]);
	CHECK(lt == 36 && lb == 16 && !memcmp(t, hex, 36),
	      "hash of a uuid: the binary 16 bytes are the text cell's uuid (%s)", hex);
	uint8_t t2[128];
	hash_cell(25, 0, S("alicf"), t2);
	CHECK(memcmp(t, t2, 36) != 0, "hash: another value, another output");
}

/* ---- DataRow: detectors in cells ------------------------------------------------------------ */

struct detcase {
	const char *name;
	uint32_t type;
	int16_t format;
	bool detect;
	const char *in;
	int in_len;
	int rc;
	const char *want;
	int want_len;
};

static const struct detcase detcases[] = {
    {"an email inside free text", 25, 0, true, S("write to jane.doe@mail.example.com today"), 1,
     S("write to ****@mail.example.com today")},
    {"an email and an SSN in one cell", 25, 0, true, S("a@b.io or 123-45-6789."), 1,
     S("****@b.io or [redacted].")},
    {"a card: partial keeps the last four", 1043, 0, true, S("paid 4111 1111 1111 1111 ok"), 1,
     S("paid ****1111 ok")},
    {"a PEM key in a text cell", 25, 0, true, S("k=" PEM_KEY " tail"), 1, S("k=[redacted] tail")},
    {"a detector whose strategy is null makes the cell NULL", 25, 0, true,
     S("call +14155550123 now"), 1, NUL_},
    {"a binary text cell is searched too", 25, 1, true, S("x jane@example.com"), 1,
     S("x ****@example.com")},
    {"a text-format jsonb cell is searched (any type in text)", 3802, 0, true,
     S("{\"ssn\": \"123-45-6789\"}"), 1, S("{\"ssn\": \"[redacted]\"}")},
    {"a binary jsonb cell with a match goes NULL (it cannot be edited in place)", 3802, 1, true,
     S("\1{\"e\": \"a@b.io\"}"), 1, NULL, -1},
    {"a binary jsonb cell without one passes", 3802, 1, true, S("\1{\"e\": 1}"), 0,
     S("\1{\"e\": 1}")},
    {"nothing found: unchanged", 25, 0, true, S("nothing to see here"), 0,
     S("nothing to see here")},
    {"detect off: unchanged", 25, 0, false, S("jane@example.com"), 0, S("jane@example.com")},
};

static void datarow_detect(void)
{
	struct pw_mask_out out = {0};
	for (size_t i = 0; i < sizeof(detcases) / sizeof(detcases[0]); i++) {
		const struct detcase *c = &detcases[i];
		struct pw_mask_col cols[2] = {
		    {.detect = true, .type_oid = 25},
		    {.detect = c->detect, .type_oid = c->type, .format = c->format}};
		struct msg m;
		m_begin(&m, 'D');
		m_i16(&m, 2);
		m_cell(&m, "id 1", 4);
		m_cell(&m, c->in, c->in_len);
		int rc = pw_mask_datarow(cols, 2, &ctx, m_end(&m), m.n, &out);
		const uint8_t *v;
		int32_t l;
		bool ok = rc == c->rc;
		if (ok && rc == 1)
			ok = framed(&out, 'D') && row_cell(out.data, out.len, PW_HDR, 1, &v, &l) &&
			     same_cell(v, l, c->want, c->want_len);
		CHECK(ok && (rc == 1 || out.len == 0), "datarow detect: %s (rc %d)", c->name, rc);
	}
	pw_mask_out_free(&out);
}

/* ---- DataRow: malformed, unchanged ---------------------------------------------------------- */

static void datarow_bad(void)
{
	struct pw_mask_col cols[2] = {{.type_oid = 23},
	                              {.mask = true, .strategy = PW_MASK_REDACT, .type_oid = 25}};
	struct pw_mask_col plain[2] = {{.type_oid = 23}, {.detect = true, .type_oid = 25}};
	struct pw_mask_out out = {0};
	struct msg m;
	const uint8_t *p;

	m_begin(&m, 'D');
	m_i16(&m, 2);
	m_cell(&m, "1", 1);
	m_cell(&m, "plain text", 10);
	p = m_end(&m);
	CHECK(pw_mask_datarow(plain, 2, &ctx, p, m.n, &out) == 0 && out.len == 0,
	      "an unchanged row returns 0 and copies nothing");
	CHECK(pw_mask_datarow(cols, 2, NULL, p, m.n, &out) == 1 && framed(&out, 'D'),
	      "no context: still masked (a hash would redact)");
	CHECK(pw_mask_datarow(cols, 3, &ctx, p, m.n, &out) == -1 && out.len == 0,
	      "a column count other than the plan's: -1");
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n - 1, &out) == -1,
	      "a message shorter than its length field: -1");
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, 3, &out) == -1,
	      "a message shorter than a header: -1");
	p = m_whole(&m, 'D',
	            "\0\2\0\0\0\1"
	            "1"
	            "\0\0\0\x64"
	            "abc",
	            13);
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1, "a cell length past the end: -1");
	p = m_whole(&m, 'D',
	            "\0\2\0\0\0\1"
	            "1"
	            "\xff\xff\xff\xfe",
	            11);
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1, "a cell length of -2: -1");
	p = m_whole(&m, 'D',
	            "\0\2\0\0\0\1"
	            "1"
	            "\0\0",
	            9);
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1, "a length field cut short: -1");
	p = m_whole(&m, 'D',
	            "\0\2\0\0\0\1"
	            "1"
	            "\xff\xff\xff\xff"
	            "xy",
	            13);
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1, "bytes after the last cell: -1");
	p = m_whole(&m, 'D', "\xff\xfe", 2);
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1, "a negative column count: -1");
	p = m_whole(&m, 'T',
	            "\0\2\0\0\0\1"
	            "1"
	            "\xff\xff\xff\xff",
	            11);
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1, "not a DataRow: -1");
	p = m_whole(&m, 'D',
	            "\0\2\0\0\0\1"
	            "1"
	            "\xff\xff\xff\xff",
	            11);
	m.d[4]++; /* the length field says one byte more than there is */
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == -1,
	      "a length field pointing beyond the end: -1");
	m.d[4]--;
	CHECK(pw_mask_datarow(cols, 2, &ctx, p, m.n, &out) == 0,
	      "a masked column's NULL: unchanged");
	pw_mask_out_free(&out);
}

/* ---- COPY text and CSV ------------------------------------------------------------------------
 */

/* Three columns: an int4 left alone, a text masked under the case's strategy, a text searched. */
struct copycase {
	const char *name;
	int kind;
	enum pw_mask_strategy s;
	int keep;
	const char *in;
	int rc;
	const char *want; /* NULL: the input (unchanged) */
};

static const struct copycase copycases[] = {
    {"text: the masked field redacted", PW_COPY_TEXT, PW_MASK_REDACT, 0,
     "1\tjane@example.com\tnote\n", 1, "1\t[redacted]\tnote\n"},
    {"text: a NULL (\\N) stays", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\t\\N\t\\N\n", 0, NULL},
    {"text: null strategy writes \\N", PW_COPY_TEXT, PW_MASK_NULL, 0, "1\tsecret\tx\n", 1,
     "1\t\\N\tx\n"},
    {"text: a PEM key with escaped newlines, found and re-escaped", PW_COPY_TEXT, PW_MASK_NULL, 0,
     "1\t\\N\tk=-----BEGIN RSA PRIVATE KEY-----\\nMIIB\\n-----END RSA PRIVATE KEY-----\\n tail\n",
     1, "1\t\\N\tk=[redacted]\\n tail\n"},
    {"text: a partial re-escapes what it keeps", PW_COPY_TEXT, PW_MASK_PARTIAL, 3,
     "1\tabc\\tx\\ny\tz\n", 1, "1\t****x\\ny\tz\n"},
    {"text: an email after an escaped tab in the searched field", PW_COPY_TEXT, PW_MASK_NULL, 0,
     "1\t\\N\tto:\\tbob@corp.io\n", 1, "1\t\\N\tto:\\t****@corp.io\n"},
    {"text: two rows in one message", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\ta\tb\n2\tc\td\n", 1,
     "1\t[redacted]\tb\n2\t[redacted]\td\n"},
    {"text: nothing to mask: unchanged", PW_COPY_TEXT, PW_MASK_NULL, 0, "1\t\\N\tplain\n", 0, NULL},
    {"text: too few fields", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\n", -1, NULL},
    {"text: too many fields", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\ty\tz\n", -1, NULL},
    {"text: a row cut across messages", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\ty", -1, NULL},
    {"text: a bad escape", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\\q\ty\n", -1, NULL},
    {"text: \\N inside a value", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\\Ny\ty\n", -1, NULL},
    {"text: garbage after the last row", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\ty\nabc", -1, NULL},
    {"text: a backslash ending the message", PW_COPY_TEXT, PW_MASK_REDACT, 0, "1\tx\ty\\", -1,
     NULL},
    {"csv: the masked field redacted", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,\"jane, doe\",note\n", 1,
     "1,[redacted],note\n"},
    {"csv: a quoted value with a newline and doubled quotes; the kept part re-quoted", PW_COPY_CSV,
     PW_MASK_PARTIAL, 4, "1,\"line1\nsaid \"\"hi\"\"\",x\n", 1, "1,\"****\"\"hi\"\"\",x\n"},
    {"csv: a replacement holding the delimiter is quoted", PW_COPY_CSV, PW_MASK_PARTIAL, 3,
     "1,\"ab,cd\",x\n", 1, "1,\"****,cd\",x\n"},
    {"csv: an unquoted empty field is NULL and stays", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,,\n", 0,
     NULL},
    {"csv: a quoted empty field is a value", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,\"\",\n", 1,
     "1,[redacted],\n"},
    {"csv: null strategy writes the null string", PW_COPY_CSV, PW_MASK_NULL, 0, "1,abc,\n", 1,
     "1,,\n"},
    {"csv: an email in a quoted searched field with a newline", PW_COPY_CSV, PW_MASK_NULL, 0,
     "1,,\"to\na@b.io, ok\"\n", 1, "1,,\"to\n****@b.io, ok\"\n"},
    {"csv: bytes after a closing quote", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,\"ab\"c,x\n", -1, NULL},
    {"csv: an unterminated quote", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,\"ab,x\n", -1, NULL},
    {"csv: a quote inside an unquoted field", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,a\"b,x\n", -1,
     NULL},
    {"csv: too few fields", PW_COPY_CSV, PW_MASK_REDACT, 0, "1,x\n", -1, NULL},
};

/* A masked body for a check's name: one line, its control bytes as \xNN. */
static const char *printable(const struct pw_mask_out *o, int rc)
{
	static char buf[512];
	size_t k = 0;
	for (size_t i = PW_HDR; rc == 1 && i < o->len && k + 5 < sizeof(buf); i++)
		k += (size_t)snprintf(buf + k, sizeof(buf) - k,
		                      o->data[i] < 0x20 ? "\\x%02x" : "%c", o->data[i]);
	buf[k] = 0;
	return buf;
}

static void copy_rows(void)
{
	struct pw_mask_out out = {0};
	for (size_t i = 0; i < sizeof(copycases) / sizeof(copycases[0]); i++) {
		const struct copycase *c = &copycases[i];
		struct pw_mask_col cols[3] = {
		    {.type_oid = 23},
		    {.mask = true, .strategy = c->s, .keep = c->keep, .type_oid = 25},
		    {.detect = true, .type_oid = 25}};
		struct pw_copy_fmt f;
		struct pw_copy_state st = {0};
		struct msg m;
		pw_copy_fmt_default(&f, c->kind);
		const uint8_t *p = m_whole(&m, 'd', c->in, strlen(c->in));
		int rc = pw_mask_copydata(cols, 3, &f, &st, &ctx, p, m.n, &out);
		bool ok = rc == c->rc;
		if (ok && rc == 1)
			ok = framed(&out, 'd') && out.len - PW_HDR == strlen(c->want) &&
			     !memcmp(out.data + PW_HDR, c->want, out.len - PW_HDR);
		else if (ok)
			ok = out.len == 0;
		CHECK(ok, "copy %s (rc %d: %s)", c->name, rc, printable(&out, rc));
	}
	pw_mask_out_free(&out);
}

/* One text/CSV COPY message under a plan of one masked column; the masked body. */
static int copy_one(int kind, const struct pw_copy_fmt *fmt, struct pw_copy_state *st,
                    const struct pw_mask_col *col, const char *body, char *got)
{
	struct pw_copy_fmt f;
	struct pw_mask_out out = {0};
	struct msg m;
	if (fmt)
		f = *fmt;
	else
		pw_copy_fmt_default(&f, kind);
	const uint8_t *p = m_whole(&m, 'd', body, strlen(body));
	int rc = pw_mask_copydata(col, 1, &f, st, &ctx, p, m.n, &out);
	got[0] = 0;
	if (rc == 1 && framed(&out, 'd')) {
		memcpy(got, out.data + PW_HDR, out.len - PW_HDR);
		got[out.len - PW_HDR] = 0;
	}
	pw_mask_out_free(&out);
	return rc;
}

static void copy_more(void)
{
	struct pw_mask_col hash = {.mask = true, .strategy = PW_MASK_HASH, .type_oid = 25};
	struct pw_mask_col red = {.mask = true, .strategy = PW_MASK_REDACT, .type_oid = 25};
	struct pw_copy_state st = {0};
	char got[512], want[512];
	uint8_t cell[128] = {0};

	int32_t l = hash_cell(25, 0, S("ABC"), cell);
	snprintf(want, sizeof(want), "%.*s\n", (int)l, (char *)cell);
	CHECK(copy_one(PW_COPY_TEXT, NULL, &st, &hash, "\\101B\\x43\n", got) == 1 &&
	          !strcmp(got, want),
	      "copy text: a hash hashes the unescaped value (octal, hex), as a DataRow's");
	CHECK(copy_one(PW_COPY_CSV, NULL, &st, &hash, "\"ABC\"\n", got) == 1 && !strcmp(got, want),
	      "copy csv: a hash hashes the unquoted value, as a DataRow's");

	struct pw_copy_fmt f;
	pw_copy_fmt_default(&f, PW_COPY_TEXT);
	f.header = true;
	st = (struct pw_copy_state){0};
	CHECK(copy_one(0, &f, &st, &red, "ssn\n", got) == 0 && st.header_seen,
	      "copy text HEADER: the column names pass as they are");
	CHECK(copy_one(0, &f, &st, &red, "123-45-6789\n", got) == 1 && !strcmp(got, "[redacted]\n"),
	      "copy text HEADER: the rows after it are masked");
	pw_copy_fmt_default(&f, PW_COPY_CSV);
	f.header = true;
	st = (struct pw_copy_state){0};
	CHECK(copy_one(0, &f, &st, &red, "\"s,s\nn\"\n", got) == 0 && st.header_seen,
	      "copy csv HEADER: a quoted name with a delimiter and a newline passes");
	CHECK(copy_one(0, &f, &st, &red, "x\n", got) == 1 && !strcmp(got, "[redacted]\n"),
	      "copy csv HEADER: then rows are masked");

	pw_copy_fmt_default(&f, PW_COPY_TEXT);
	f.delim = '|';
	memcpy(f.null_str, "NULL", 4);
	f.null_len = 4;
	struct pw_mask_col cols2[2] = {
	    {.mask = true, .strategy = PW_MASK_PARTIAL, .keep = 3, .type_oid = 25},
	    {.type_oid = 25}};
	struct pw_mask_out out = {0};
	struct msg m;
	const uint8_t *p = m_whole(&m, 'd', "ab\\|cd|NULL\n", 12);
	int rc = pw_mask_copydata(cols2, 2, &f, &st, &ctx, p, m.n, &out);
	CHECK(rc == 1 && out.len - PW_HDR == 14 &&
	          !memcmp(out.data + PW_HDR, "****\\|cd|NULL\n", 14),
	      "copy text with '|': an escaped delimiter unescaped, kept and escaped again");
	pw_copy_fmt_default(&f, PW_COPY_CSV);
	memcpy(f.null_str, "[redacted]", 10);
	f.null_len = 10;
	CHECK(copy_one(0, &f, &st, &red, "abc\n", got) == 1 && !strcmp(got, "\"[redacted]\"\n"),
	      "copy csv: a replacement that reads as the null string is quoted");
	pw_copy_fmt_default(&f, PW_COPY_CSV);
	f.escape = '\\';
	struct pw_mask_col part = {
	    .mask = true, .strategy = PW_MASK_PARTIAL, .keep = 4, .type_oid = 25};
	CHECK(copy_one(0, &f, &st, &part, "\"a\\\"b\\\\c\"\n", got) == 1 &&
	          !strcmp(got, "\"****\\\"b\\\\c\"\n"),
	      "copy csv ESCAPE '\\': escaped quote and escape read, and written so again");
	part.keep = 3;
	CHECK(copy_one(0, &f, &st, &part, "\"xa\\\"b\\\\\"\n", got) == 1 &&
	          !strcmp(got, "\"****\\\"b\\\\\"\n"),
	      "copy csv ESCAPE '\\': an escaped escape just before the closing quote");
	f.delim = 'x';
	f.kind = PW_COPY_TEXT;
	CHECK(copy_one(0, &f, &st, &red, "abc\n", got) == -1,
	      "copy text: a delimiter PostgreSQL refuses: -1");
	pw_copy_fmt_default(&f, PW_COPY_TEXT);
	CHECK(f.delim == '\t' && f.null_len == 2 && !memcmp(f.null_str, "\\N", 2),
	      "text defaults: tab, \\N");
	pw_copy_fmt_default(&f, PW_COPY_CSV);
	CHECK(f.delim == ',' && f.quote == '"' && f.escape == '"' && f.null_len == 0,
	      "csv defaults: comma, double quote, empty null");
	pw_mask_out_free(&out);
}

/* ---- COPY binary ---------------------------------------------------------------------------- */

static void m_copy_header(struct msg *m, uint32_t flags)
{
	m_bytes(m, "PGCOPY\n\377\r\n\0", 11);
	m_i32(m, (int32_t)flags);
	m_i32(m, 0);
}

static void copy_binary(void)
{
	struct pw_mask_col cols[3] = {{.mask = true, .strategy = PW_MASK_REDACT, .type_oid = 23},
	                              {.mask = true, .strategy = PW_MASK_EMAIL, .type_oid = 25},
	                              {.detect = true, .type_oid = 25}};
	struct pw_copy_fmt f;
	struct pw_copy_state st = {0};
	struct pw_mask_out out = {0};
	struct msg m;
	const uint8_t *v;
	int32_t l;
	pw_copy_fmt_default(&f, PW_COPY_BINARY);

	m_begin(&m, 'd');
	m_copy_header(&m, 0);
	m_i16(&m, 3);
	m_cell(&m, "\0\0\0\x2a", 4);
	m_cell(&m, "jane@example.com", 16);
	m_cell(&m, "ssn 123-45-6789", 15);
	int rc = pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out);
	bool ok = rc == 1 && framed(&out, 'd') && !memcmp(out.data + PW_HDR, m.d + PW_HDR, 19);
	ok = ok && row_cell(out.data, out.len, PW_HDR + 19, 0, &v, &l) &&
	     same_cell(v, l, "\0\0\0\0", 4);
	ok = ok && row_cell(out.data, out.len, PW_HDR + 19, 1, &v, &l) &&
	     same_cell(v, l, S("****@example.com"));
	ok = ok && row_cell(out.data, out.len, PW_HDR + 19, 2, &v, &l) &&
	     same_cell(v, l, S("ssn [redacted]")) && v + l == out.data + out.len;
	CHECK(ok && st.binary_header_seen, "copy binary: header and first tuple in one message");

	m_begin(&m, 'd');
	m_i16(&m, 3);
	m_cell(&m, "\0\0\0\1", 4);
	m_cell(&m, NULL, -1);
	m_cell(&m, "plain", 5);
	rc = pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out);
	ok = rc == 1 && row_cell(out.data, out.len, PW_HDR, 0, &v, &l) &&
	     same_cell(v, l, "\0\0\0\0", 4);
	ok = ok && row_cell(out.data, out.len, PW_HDR, 1, &v, &l) && l == -1;
	CHECK(ok, "copy binary: a later tuple, its NULL kept");
	m_begin(&m, 'd');
	m_i16(&m, 3);
	m_cell(&m, "\0\0\0\1", 3);
	m_cell(&m, NULL, -1);
	m_cell(&m, NULL, -1);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1,
	      "copy binary: an int4 of 3 bytes: -1");
	m_begin(&m, 'd');
	m_i16(&m, 2);
	m_cell(&m, NULL, -1);
	m_cell(&m, NULL, -1);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1,
	      "copy binary: a field count other than the plan's: -1");
	m_begin(&m, 'd');
	m_i16(&m, 3);
	m_cell(&m, NULL, -1);
	m_i32(&m, 9);
	m_bytes(&m, "abc", 3);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1,
	      "copy binary: a tuple cut short: -1");
	m_begin(&m, 'd');
	m_i16(&m, -1);
	m_bytes(&m, "x", 1);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1 &&
	          !st.trailer_seen,
	      "copy binary: bytes after the trailer: -1, the state unmoved");
	m_begin(&m, 'd');
	m_i16(&m, -1);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == 0 &&
	          st.trailer_seen,
	      "copy binary: the trailer alone passes");
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m.d, m.n, &out) == -1,
	      "copy binary: anything after the trailer: -1");

	st = (struct pw_copy_state){0};
	m_begin(&m, 'd');
	m_copy_header(&m, 0);
	m_i16(&m, -1);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == 0 &&
	          st.trailer_seen,
	      "copy binary: an empty result, header and trailer in one message");
	st = (struct pw_copy_state){0};
	m_begin(&m, 'd');
	m_copy_header(&m, 1u << 16);
	m_i16(&m, -1);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1,
	      "copy binary: OIDs in the header: -1");
	st = (struct pw_copy_state){0};
	m_begin(&m, 'd');
	m_bytes(&m, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\x64\xff\xff", 21);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1,
	      "copy binary: a header extension longer than the message: -1");
	st = (struct pw_copy_state){0};
	m_begin(&m, 'd');
	m_bytes(&m, "PGCOPY\n\377\r\n\1\0\0\0\0\0\0\0\0\xff\xff", 21);
	CHECK(pw_mask_copydata(cols, 3, &f, &st, &ctx, m_end(&m), m.n, &out) == -1 &&
	          !st.binary_header_seen,
	      "copy binary: a wrong signature: -1");
	pw_mask_out_free(&out);
}

/* ---- ErrorResponse / NoticeResponse -------------------------------------------------------- */

/* Field code of an ErrorResponse body: its value, or NULL. */
static const char *field(const struct pw_mask_out *o, char code)
{
	for (size_t i = PW_HDR; i < o->len && o->data[i];) {
		const char *v = (const char *)o->data + i + 1;
		if (o->data[i] == (uint8_t)code)
			return v;
		i += 2 + strlen(v);
	}
	return NULL;
}

/* A well-formed ErrorResponse: fields each ended by a NUL, then the final 0. */
static bool notice_ok(const struct pw_mask_out *o, char type)
{
	size_t i = PW_HDR;
	if (!framed(o, type))
		return false;
	while (i < o->len && o->data[i]) {
		const uint8_t *z = memchr(o->data + i + 1, 0, o->len - i - 1);
		if (!z)
			return false;
		i = (size_t)(z - o->data) + 1;
	}
	return i == o->len - 1;
}

static const uint8_t *error_msg(struct msg *m, char type, const char *const *f)
{
	m_begin(m, type);
	for (; *f; f++)
		m_bytes(m, *f, strlen(*f) + 1);
	m->d[m->n++] = 0;
	return m_end(m);
}

static void notices(void)
{
	static const char *const syntax[] = {
	    "SERROR", "VERROR",
	    "C22P02", "Minvalid input syntax for type integer: \"123-45-6789\"",
	    "P8",     "Fnumutils.c",
	    "L232",   "Rpg_strtoint32",
	    NULL};
	static const char *const unique[] = {
	    "SERROR",
	    "C23505",
	    "Mduplicate key value violates unique constraint \"u_ssn\"",
	    "DKey (ssn)=(123-45-6789) already exists.",
	    "Hcall jane@example.com",
	    "WSQL function \"f\"",
	    "qselect 1",
	    "spublic",
	    "tusers",
	    "ncustomers_ssn_key",
	    NULL};
	static const char *const keyed[] = {"SERROR", "MKey (ssn)=(123-45-6789) already exists.",
	                                    NULL};
	static const char *const paren[] = {"SERROR", "MKey (k)=(a) b) already exists.", NULL};
	static const char *const quiet[] = {"SNOTICE", "Mtable \"t\" does not exist, skipping",
	                                    NULL};
	static const char *const named[] = {"SERROR",
	                                    "C42703",
	                                    "Mcolumn \"ssn2\" does not exist",
	                                    "P8",
	                                    "HPerhaps you meant \"ssn\"",
	                                    NULL};
	static const char *const runtime42[] = {"SERROR", "C42883",
	                                        "Moperator does not exist: x827364", NULL};
	struct pw_mask_out out = {0};
	struct msg m;
	const uint8_t *p;
	const char *v;

	p = error_msg(&m, 'E', syntax);
	CHECK(pw_mask_scrub_notice(p, m.n, false, &ctx, &out) == 1 && notice_ok(&out, 'E') &&
	          (v = field(&out, 'M')) &&
	          !strcmp(v, "invalid input syntax for type integer: \"[redacted]\"") &&
	          !strcmp(field(&out, 'C'), "22P02") && !strcmp(field(&out, 'R'), "pg_strtoint32"),
	      "error, untainted: the SSN in the message found and redacted, the rest kept");
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 && notice_ok(&out, 'E') &&
	          (v = field(&out, 'M')) &&
	          !strcmp(v, "pgward: withheld (an error of SQLSTATE 22P02 in a statement that "
	                     "read masked columns)") &&
	          !strcmp(field(&out, 'P'), "8") && !strcmp(field(&out, 'L'), "232"),
	      "error, tainted, a data exception: the message withheld, its SQLSTATE said");
	p = error_msg(&m, 'E', keyed);
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 && notice_ok(&out, 'E') &&
	          strstr(field(&out, 'M'), "withheld (an error of SQLSTATE ?"),
	      "error, tainted, no SQLSTATE: the message withheld");
	p = error_msg(&m, 'E', paren);
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == 0,
	      "error, untainted, nothing a detector finds: unchanged");
	p = error_msg(&m, 'E', named);
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 && notice_ok(&out, 'E') &&
	          !strcmp(field(&out, 'M'), "column \"ssn2\" does not exist") &&
	          !strcmp(field(&out, 'H'), PW_MASK_WITHHELD),
	      "error, tainted, class 42 pointing into the text (parse analysis): the message kept "
	      "(what it quotes is the statement's own text)");
	p = error_msg(&m, 'E', runtime42);
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 &&
	          strstr(field(&out, 'M'), "withheld (an error of SQLSTATE 42883"),
	      "error, tainted, class 42 at run time (no position): withheld ('x' || "
	      "salary)::regoper");
	p = error_msg(&m, 'E', unique);
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 && notice_ok(&out, 'E') &&
	          strstr(field(&out, 'M'), "withheld (an error of SQLSTATE 23505") &&
	          !strcmp(field(&out, 'D'), PW_MASK_WITHHELD) &&
	          !strcmp(field(&out, 'H'), PW_MASK_WITHHELD) &&
	          !strcmp(field(&out, 'W'), PW_MASK_WITHHELD) &&
	          !strcmp(field(&out, 'q'), PW_MASK_WITHHELD) &&
	          !strcmp(field(&out, 's'), "public") && !strcmp(field(&out, 't'), "users") &&
	          !strcmp(field(&out, 'n'), "customers_ssn_key"),
	      "error, tainted: detail, hint, context, query withheld; names kept");
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == 1 && notice_ok(&out, 'E') &&
	          !strcmp(field(&out, 'D'), "Key (ssn)=([redacted]) already exists.") &&
	          !strcmp(field(&out, 'H'), "call [redacted]") &&
	          !strcmp(field(&out, 'W'), "SQL function \"f\""),
	      "error, untainted: detectors in the detail and the hint");
	p = error_msg(&m, 'N', quiet);
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == 0 && out.len == 0,
	      "notice with nothing sensitive, untainted: unchanged");
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 && notice_ok(&out, 'N') &&
	          strstr(field(&out, 'M'), "withheld"),
	      "notice, tainted (a RAISE NOTICE could say anything): withheld");
	p = m_whole(&m, 'E', "SERROR\0Mabc", 11);
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == -1, "a field without its NUL: -1");
	p = m_whole(&m, 'E', "SERROR\0", 7);
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == -1, "no final 0: -1");
	p = m_whole(&m, 'E', "SERROR\0\0Mx\0", 11);
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == -1, "bytes after the final 0: -1");
	p = m_whole(&m, 'D', "SERROR\0\0", 8);
	CHECK(pw_mask_scrub_notice(p, m.n, false, NULL, &out) == -1,
	      "not an error or a notice: -1");
	p = m_whole(&m, 'E', "C57014\0Mx\"1\0\0", 13);
	CHECK(pw_mask_scrub_notice(p, m.n, true, NULL, &out) == 1 &&
	          !strcmp(field(&out, 'M'), "x\"***"),
	      "tainted, a kept class without a position: an unclosed quote hides the rest");
	pw_mask_out_free(&out);
}

int main(void)
{
	datarow_cells();
	hashes();
	datarow_detect();
	datarow_bad();
	copy_rows();
	copy_more();
	copy_binary();
	notices();
	return check_done();
}
