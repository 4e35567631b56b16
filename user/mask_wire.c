/* Masking on the wire. See include/pgward/mask_wire.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_wire_int.h"
#include "pgward/mask_wire.h"
#include "pgward/proto.h"

/* What one value becomes (errors are the negative PW_MASK_* codes). */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* ---- output ----------------------------------------------------------------------------- */

void pw_mask_out_free(struct pw_mask_out *o)
{
	free(o->data);
	o->data = NULL;
	o->len = o->cap = 0;
}

int mw_reserve(struct pw_mask_out *o, size_t more)
{
	if (more <= o->cap - o->len)
		return 0;
	if (more > SIZE_MAX / 4 - o->len)
		return PW_MASK_NOMEM;
	size_t cap = o->cap ? o->cap : 256;
	while (cap - o->len < more)
		cap *= 2;
	uint8_t *d = realloc(o->data, cap);
	if (!d)
		return PW_MASK_NOMEM;
	o->data = d;
	o->cap = cap;
	return 0;
}

int mw_put(struct pw_mask_out *o, const void *p, size_t n)
{
	int rc = mw_reserve(o, n);
	if (rc)
		return rc;
	if (n)
		memcpy(o->data + o->len, p, n);
	o->len += n;
	return 0;
}

static int put_be32(struct pw_mask_out *o, uint32_t v)
{
	uint8_t b[4];
	pw_put_be32(b, v);
	return mw_put(o, b, 4);
}

/* The original up to at; the caller then writes what replaces [at, to). */
int mw_wr_cut(struct wr *w, size_t at, size_t to)
{
	w->on = true;
	int rc = mw_put(w->out, w->msg + w->done, at - w->done);
	w->done = to;
	return rc;
}

int mw_wr_end(struct wr *w)
{
	if (!w->on)
		return PW_MASK_SAME;
	int rc = mw_wr_cut(w, w->len, w->len);
	if (rc)
		return rc;
	if (w->out->len - 1 > INT32_MAX)
		return PW_MASK_BAD;
	pw_put_be32(w->out->data + 1, (uint32_t)(w->out->len - 1));
	return PW_MASK_CHANGED;
}

/* A whole message of one of types, its length field exactly the bytes given. */
bool mw_framed(const uint8_t *msg, size_t len, const char *types)
{
	return msg && len >= PW_HDR && msg[0] && strchr(types, msg[0]) &&
	       pw_be32(msg + 1) == len - 1;
}

/* ---- one value ---------------------------------------------------------------------------- */

/* The binary encodings pgward writes; others become NULL. */
enum bin { B_STRING, B_INT2, B_INT4, B_INT8, B_OID, B_BOOL, B_UUID, B_FLOAT4, B_FLOAT8, B_OTHER };
static const struct {
	size_t size;               /* 0: any */
	uint64_t neg_max, pos_max; /* integers: the magnitudes allowed */
} bins[] = {
    [B_STRING] = {0, 0, 0},
    [B_INT2] = {2, 32768, 32767},
    [B_INT4] = {4, 2147483648u, 2147483647},
    [B_INT8] = {8, (uint64_t)1 << 63, ((uint64_t)1 << 63) - 1},
    [B_OID] = {4, 0, UINT32_MAX},
    [B_BOOL] = {1, 0, 0},
    [B_UUID] = {16, 0, 0},
    [B_FLOAT4] = {4, 0, 0},
    [B_FLOAT8] = {8, 0, 0},
    [B_OTHER] = {0, 0, 0},
};

static enum bin bin_kind(uint32_t oid)
{
	switch (oid) {
	case 25:
	case 1043:
	case 1042:
	case 19:
	case 705:
		return B_STRING;
	case 21:
		return B_INT2;
	case 23:
		return B_INT4;
	case 20:
		return B_INT8;
	case 26:
		return B_OID;
	case 16:
		return B_BOOL;
	case 2950:
		return B_UUID;
	case 700:
		return B_FLOAT4;
	case 701:
		return B_FLOAT8;
	default:
		return B_OTHER;
	}
}

/* pw_mask_text's output appended to o: CELL_NEW, or CELL_NULL. */
static int mask_into(struct pw_mask_out *o, enum pw_mask_strategy s, int keep,
                     const struct pw_mask_key *key, uint32_t oid, const uint8_t *v, size_t n)
{
	size_t cap = PW_MASK_OUT_MAX + n + 1; /* a partial or an email is at most 4 + n */
	int rc = mw_reserve(o, cap);
	if (rc)
		return rc;
	long l = pw_mask_text(s, keep, key, oid, v ? v : (const uint8_t *)"", n,
	                      (char *)o->data + o->len, cap);
	if (l == -1)
		return CELL_NULL;
	if (l < 0)
		return PW_MASK_BAD;
	o->len += (size_t)l;
	return CELL_NEW;
}

/* A binary value's text form, as the server would print it (a hash hashes it, so that both
 * formats mask alike); -1 for the types pgward does not print. */
static int bin_to_text(enum bin b, const uint8_t *v, char *t, size_t cap)
{
	uint64_t x = 0;
	for (size_t i = 0; i < bins[b].size && b != B_UUID; i++)
		x = x << 8 | v[i];
	switch (b) {
	case B_INT2:
		return snprintf(t, cap, "%d", (int16_t)x);
	case B_INT4:
		return snprintf(t, cap, "%" PRId32, (int32_t)x);
	case B_INT8:
		return snprintf(t, cap, "%" PRId64, (int64_t)x);
	case B_OID:
		return snprintf(t, cap, "%" PRIu32, (uint32_t)x);
	case B_UUID: {
		int o = 0;
		for (int i = 0; i < 16; i++)
			o += snprintf(t + o, cap - (size_t)o, "%s%02x",
			              i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", v[i]);
		return o;
	}
	default:
		return -1;
	}
}

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* The masked text in o made the binary encoding of type b, in place. */
static int text_to_bin(enum bin b, struct pw_mask_out *o)
{
	uint8_t buf[16] = {0};
	const uint8_t *s = o->data, *e = o->data + o->len;
	if (b == B_UUID) {
		int d = 0;
		for (; s < e && d < 32; s++) {
			if (*s == '-')
				continue;
			if (hexval(*s) < 0)
				return PW_MASK_BAD;
			buf[d / 2] = (uint8_t)(buf[d / 2] << 4 | hexval(*s));
			d++;
		}
		if (d != 32 || s != e)
			return PW_MASK_BAD;
	} else if (b != B_BOOL && b != B_FLOAT4 && b != B_FLOAT8) { /* an integer */
		bool neg = s < e && *s == '-';
		uint64_t m = 0;
		s += neg;
		if (s == e)
			return PW_MASK_BAD;
		for (; s < e; s++) {
			if (*s < '0' || *s > '9' || m > (UINT64_MAX - 9) / 10)
				return PW_MASK_BAD;
			m = m * 10 + (uint64_t)(*s - '0');
		}
		if (m > (neg ? bins[b].neg_max : bins[b].pos_max))
			return PW_MASK_BAD;
		uint64_t x = neg ? 0 - m : m; /* two's complement, cut to the size below */
		for (size_t i = 0; i < bins[b].size; i++)
			buf[i] = (uint8_t)(x >> 8 * (bins[b].size - 1 - i));
	} /* bool false, float zero: all zero bytes */
	o->len = 0;
	int rc = mw_put(o, buf, bins[b].size);
	return rc ? rc : CELL_NEW;
}

static int mask_binary(const struct pw_mask_col *c, const struct pw_mask_key *key, const uint8_t *v,
                       size_t n, struct pw_mask_out *o)
{
	enum bin b = bin_kind(c->type_oid);
	if (b == B_OTHER)
		return CELL_NULL;
	if (b != B_STRING && n != bins[b].size)
		return PW_MASK_BAD; /* not this type's encoding: the plan or the row is wrong */
	char text[64];
	if (c->strategy == PW_MASK_HASH && b != B_STRING) {
		int l = bin_to_text(b, v, text, sizeof(text));
		if (l < 0)
			return CELL_NULL;
		v = (const uint8_t *)text;
		n = (size_t)l;
	}
	o->len = 0;
	int rc = mask_into(o, c->strategy, c->keep, key, c->type_oid, v, n);
	return rc != CELL_NEW || b == B_STRING ? rc : text_to_bin(b, o);
}

/* Every detector match in v replaced under its detector's strategy, into o. */
static int detect_cell(const struct pw_mask_ctx *ctx, const uint8_t *v, size_t n,
                       struct pw_mask_out *o)
{
	const struct pw_mask_detectors *d = ctx->det;
	struct pw_detect_match m;
	size_t from = 0, last = 0;
	o->len = 0;
	while (from < n && pw_detect_next(v, n, from, d->set, &m)) {
		if (m.off < from || m.off > n || m.len > n - m.off || (unsigned)m.what >= PW_DET_N)
			return PW_MASK_BAD;
		enum pw_mask_strategy s = d->strategy[m.what];
		if (s == PW_MASK_NULL)
			return CELL_NULL;
		int rc = mw_put(o, v + last, m.off - last);
		if (rc)
			return rc;
		rc = mask_into(o, s, d->keep[m.what], ctx->key, 25, v + m.off, m.len);
		if (rc != CELL_NEW)
			return rc;
		last = m.off + m.len;
		from = m.off + (m.len ? m.len : 1);
	}
	if (!last)
		return CELL_SAME;
	int rc = mw_put(o, v + last, n - last);
	return rc ? rc : CELL_NEW;
}

/* What the non-NULL value v of column c becomes; a new value (in the cell's format) in o. */
static int cell(const struct pw_mask_col *c, bool binary, const struct pw_mask_ctx *ctx,
                const uint8_t *v, size_t n, struct pw_mask_out *o)
{
	const struct pw_mask_key *key = ctx ? ctx->key : NULL;
	if (c->mask) {
		if (binary)
			return mask_binary(c, key, v, n, o);
		o->len = 0;
		return mask_into(o, c->strategy, c->keep, key, c->type_oid, v, n);
	}
	if (c->detect && ctx && ctx->det && ctx->det->set) {
		if (!binary || bin_kind(c->type_oid) == B_STRING)
			return detect_cell(ctx, v, n, o);
		/* another type's binary form (an array, a record): a match inside it cannot
		 * be replaced in place, so the cell goes */
		struct pw_detect_match m;
		return pw_detect_next(v, n, 0, ctx->det->set, &m) ? CELL_NULL : CELL_SAME;
	}
	return CELL_SAME;
}

/* A NULL of a masked column whose NULLs are masked too: its type's redacted value (a NULL
 * strategy, or a type without one, leaves it NULL, as every other value of it). */
static int null_cell(const struct pw_mask_col *c, bool binary, struct pw_mask_out *o)
{
	if (c->strategy == PW_MASK_NULL)
		return CELL_SAME;
	o->len = 0;
	int rc = mask_into(o, PW_MASK_REDACT, 0, NULL, c->type_oid, (const uint8_t *)"", 0);
	if (rc != CELL_NEW || !binary)
		return rc;
	enum bin b = bin_kind(c->type_oid);
	return b == B_OTHER ? CELL_NULL : b == B_STRING ? rc : text_to_bin(b, o);
}

/* Scratch buffers a rewrite reuses from row to row: per thread (each worker masks its own
 * sessions' rows), given back when the thread ends. */
struct scratch {
	struct pw_mask_out a, b;
	bool registered;
};
static __thread struct scratch scr;
static pthread_key_t scr_key;
static pthread_once_t scr_once = PTHREAD_ONCE_INIT;

static void scr_free(void *p)
{
	struct scratch *x = p;
	pw_mask_out_free(&x->a);
	pw_mask_out_free(&x->b);
}

static void scr_init(void)
{
	pthread_key_create(&scr_key, scr_free);
}

static struct scratch *scratch(void)
{
	if (!scr.registered) {
		pthread_once(&scr_once, scr_init);
		pthread_setspecific(scr_key, &scr);
		scr.registered = true;
	}
	return &scr;
}

/* ---- DataRow ------------------------------------------------------------------------------ */

/* ncols cells (int32 length, -1 for NULL, and the bytes) from *at on, rewritten into w. */
static int cells(const struct pw_mask_col *cols, int ncols, bool binary,
                 const struct pw_mask_ctx *ctx, struct wr *w, size_t *at, struct pw_mask_out *o)
{
	const uint8_t *m = w->msg;
	size_t i = *at;
	for (int k = 0; k < ncols; k++) {
		if (w->len - i < 4)
			return PW_MASK_BAD;
		int32_t l = (int32_t)pw_be32(m + i);
		size_t start = i;
		i += 4;
		const struct pw_mask_col *c = &cols[k];
		if (l == -1 && !(c->mask && c->nulls))
			continue; /* NULL stays NULL */
		if (l < -1 || (l > 0 && (size_t)l > w->len - i))
			return PW_MASK_BAD;
		int rc = l == -1 ? null_cell(c, binary || c->format != 0, o)
		                 : cell(c, binary || c->format != 0, ctx, m + i, (size_t)l, o);
		if (l == -1 && rc == CELL_NULL)
			rc = CELL_SAME;
		i += l > 0 ? (size_t)l : 0;
		if (rc < 0)
			return rc;
		if (rc == CELL_SAME)
			continue;
		if (rc == CELL_NEW && o->len > INT32_MAX)
			return PW_MASK_BAD;
		int e = mw_wr_cut(w, start, i);
		if (!e)
			e = put_be32(w->out, rc == CELL_NULL ? UINT32_MAX : (uint32_t)o->len);
		if (!e && rc == CELL_NEW)
			e = mw_put(w->out, o->data, o->len);
		if (e)
			return e;
	}
	*at = i;
	return 0;
}

int pw_mask_datarow(const struct pw_mask_col *cols, int ncols, const struct pw_mask_ctx *ctx,
                    const uint8_t *msg, size_t len, struct pw_mask_out *out)
{
	if (!out)
		return PW_MASK_BAD;
	out->len = 0;
	if (!mw_framed(msg, len, "D") || len < PW_HDR + 2 || ncols < 0 || (ncols && !cols) ||
	    (int16_t)be16(msg + PW_HDR) != ncols)
		return PW_MASK_BAD;
	struct wr w = {out, msg, len, 0, false};
	size_t at = PW_HDR + 2;
	int rc = cells(cols, ncols, false, ctx, &w, &at, &scratch()->a);
	if (!rc && at != len)
		rc = PW_MASK_BAD; /* trailing bytes */
	if (!rc)
		rc = mw_wr_end(&w);
	if (rc != PW_MASK_CHANGED)
		out->len = 0;
	return rc;
}

/* ---- COPY OUT ----------------------------------------------------------------------------- */

void pw_copy_fmt_default(struct pw_copy_fmt *f, int kind)
{
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	if (kind == PW_COPY_TEXT) {
		f->delim = '\t';
		memcpy(f->null_str, "\\N", 2);
		f->null_len = 2;
	} else if (kind == PW_COPY_CSV) {
		f->delim = ',';
		f->quote = '"';
		f->escape = '"';
	}
}

/* A format PostgreSQL could have used (its own checks in COPY's option parsing). */
static bool fmt_ok(const struct pw_copy_fmt *f)
{
	if (f->kind == PW_COPY_BINARY)
		return true;
	if (f->null_len > sizeof(f->null_str) || !f->delim || f->delim == '\n' || f->delim == '\r')
		return false;
	if (f->kind == PW_COPY_TEXT)
		return !strchr("\\.abcdefghijklmnopqrstuvwxyz0123456789", f->delim);
	return f->kind == PW_COPY_CSV && f->quote && f->escape && f->quote != f->delim &&
	       f->quote != '\n' && f->quote != '\r' && f->escape != '\n' && f->escape != '\r';
}

/* One COPY OUT message being rewritten. */
struct copy {
	const struct pw_mask_col *cols;
	int ncols;
	const struct pw_copy_fmt *f;
	const struct pw_mask_ctx *ctx;
	struct wr w;
	struct pw_mask_out o, val; /* a new value; an unescaped one */
};

/* A value escaped for COPY text, as PostgreSQL's CopyAttributeOutText does. */
static int text_put(struct pw_mask_out *o, char delim, const uint8_t *v, size_t n)
{
	int rc = mw_reserve(o, 2 * n);
	for (size_t i = 0; !rc && i < n; i++) {
		static const char ctl[] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n',
		                           ['\r'] = 'r', ['\t'] = 't', ['\v'] = 'v'};
		uint8_t c = v[i];
		char e = c < sizeof(ctl) && ctl[c]          ? ctl[c]
		         : c == '\\' || c == (uint8_t)delim ? (char)c
		                                            : 0;
		if (e)
			o->data[o->len++] = '\\';
		o->data[o->len++] = e ? (uint8_t)e : c;
	}
	return rc;
}

/* A value for CSV: quoted when it holds the delimiter, the quote, a line end, or reads as the
 * null string (or as the end-of-data marker). */
static int csv_put(struct pw_mask_out *o, const struct pw_copy_fmt *f, const uint8_t *v, size_t n)
{
	bool quote =
	    (n == f->null_len && !memcmp(v, f->null_str, n)) || (n == 2 && !memcmp(v, "\\.", 2));
	for (size_t i = 0; i < n && !quote; i++)
		quote = v[i] == (uint8_t)f->delim || v[i] == (uint8_t)f->quote || v[i] == '\r' ||
		        v[i] == '\n';
	if (!quote)
		return mw_put(o, v, n);
	int rc = mw_reserve(o, 2 * n + 2);
	if (rc)
		return rc;
	o->data[o->len++] = (uint8_t)f->quote;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == (uint8_t)f->quote || v[i] == (uint8_t)f->escape)
			o->data[o->len++] = (uint8_t)f->escape;
		o->data[o->len++] = v[i];
	}
	o->data[o->len++] = (uint8_t)f->quote;
	return 0;
}

/* The text field [fs, fe) unescaped into c->val (its escapes were checked by text_row). */
static int text_value(struct copy *c, size_t fs, size_t fe)
{
	const uint8_t *m = c->w.msg;
	c->val.len = 0;
	int rc = mw_reserve(&c->val, fe - fs);
	for (size_t i = fs; !rc && i < fe;) {
		uint8_t ch = m[i++];
		if (ch == '\\' && i < fe) {
			static const uint8_t ctl[128] = {['b'] = '\b', ['f'] = '\f', ['n'] = '\n',
			                                 ['r'] = '\r', ['t'] = '\t', ['v'] = '\v'};
			int x = 0, d = 0;
			ch = m[i++];
			if (ch == 'x') {
				for (; d < 2 && i < fe && hexval(m[i]) >= 0; d++)
					x = x * 16 + hexval(m[i++]);
				ch = (uint8_t)x;
			} else if (ch >= '0' && ch <= '7') {
				for (x = ch - '0', d = 1;
				     d < 3 && i < fe && m[i] >= '0' && m[i] <= '7'; d++)
					x = x * 8 + (m[i++] - '0');
				ch = (uint8_t)x;
			} else if (ch < 128 && ctl[ch]) {
				ch = ctl[ch];
			} /* else \\ or \<delim>: the character itself */
		}
		c->val.data[c->val.len++] = ch;
	}
	return rc;
}

/* The quoted CSV field [fs, fe) (quotes included) unquoted into c->val. */
static int csv_value(struct copy *c, size_t fs, size_t fe)
{
	const uint8_t *m = c->w.msg;
	uint8_t q = (uint8_t)c->f->quote, e = (uint8_t)c->f->escape;
	c->val.len = 0;
	int rc = mw_reserve(&c->val, fe - fs);
	for (size_t i = fs + 1; !rc && i < fe - 1; i++) {
		if (m[i] == e && i + 1 < fe - 1 && (m[i + 1] == q || m[i + 1] == e))
			i++;
		c->val.data[c->val.len++] = m[i];
	}
	return rc;
}

/* Field k of a row, [fs, fe) as it is in the message; plain: nothing to unescape (CSV: the
 * value is the field, or what lies between its quotes). */
static int copy_field(struct copy *c, int k, size_t fs, size_t fe, bool null, bool quoted,
                      bool plain)
{
	if (k >= c->ncols)
		return PW_MASK_BAD;
	const struct pw_mask_col *col = &c->cols[k];
	bool csv = c->f->kind == PW_COPY_CSV;
	if (null || !(col->mask || (col->detect && c->ctx && c->ctx->det && c->ctx->det->set)))
		return 0;
	const uint8_t *v = c->w.msg + fs + quoted;
	size_t n = fe - fs - 2 * quoted;
	if (!plain) {
		int rc = csv ? csv_value(c, fs, fe) : text_value(c, fs, fe);
		if (rc)
			return rc;
		v = c->val.data;
		n = c->val.len;
	}
	int rc = cell(col, false, c->ctx, v, n, &c->o);
	if (rc <= CELL_SAME)
		return rc;
	int e = mw_wr_cut(&c->w, fs, fe);
	if (e)
		return e;
	if (rc == CELL_NULL)
		return mw_put(c->w.out, c->f->null_str, c->f->null_len);
	return csv ? csv_put(c->w.out, c->f, c->o.data, c->o.len)
	           : text_put(c->w.out, c->f->delim, c->o.data, c->o.len);
}

/* The escape at m[i] (after a backslash) is one COPY text knows; \N is checked by the caller. */
static bool text_escape_ok(const uint8_t *m, size_t i, size_t end, char delim)
{
	uint8_t e = m[i];
	if (e == (uint8_t)delim || (e && memchr("bfnrtv\\01234567N", e, 16)))
		return true;
	return e == 'x' && i + 1 < end && hexval(m[i + 1]) >= 0;
}

/* One text-format row from *at: fields split on the delimiter, up to '\n'. header: the column
 * names, passed as they are. */
static int text_row(struct copy *c, size_t *at, bool header)
{
	const uint8_t *m = c->w.msg;
	const struct pw_copy_fmt *f = c->f;
	size_t end = c->w.len, i = *at;
	int k = 0;
	for (;;) {
		size_t fs = i;
		bool plain = true, null_escape = false;
		while (i < end && m[i] != (uint8_t)f->delim && m[i] != '\n') {
			if (m[i] != '\\') {
				i++;
				continue;
			}
			if (i + 1 >= end || !text_escape_ok(m, i + 1, end, f->delim))
				return PW_MASK_BAD;
			null_escape |= m[i + 1] == 'N';
			plain = false;
			i += 2;
		}
		if (i >= end)
			return PW_MASK_BAD; /* a row cut short */
		bool null = i - fs == f->null_len && !memcmp(m + fs, f->null_str, f->null_len);
		if (null_escape && !null)
			return PW_MASK_BAD; /* \N is the null marker or nothing */
		int rc = header ? 0 : copy_field(c, k, fs, i, null, false, plain);
		if (rc)
			return rc;
		k++;
		if (m[i++] == '\n')
			break;
	}
	if (!header && k != c->ncols)
		return PW_MASK_BAD;
	*at = i;
	return 0;
}

/* One CSV row from *at: quoted fields may hold anything (the quote doubled or escaped); an
 * unquoted one that reads as the null string is NULL. */
static int csv_row(struct copy *c, size_t *at, bool header)
{
	const uint8_t *m = c->w.msg;
	const struct pw_copy_fmt *f = c->f;
	uint8_t d = (uint8_t)f->delim, q = (uint8_t)f->quote, e = (uint8_t)f->escape;
	size_t end = c->w.len, i = *at;
	int k = 0;
	for (;;) {
		size_t fs = i;
		bool quoted = i < end && m[i] == q, plain = true;
		if (quoted) {
			for (i++;; i++) {
				if (i >= end)
					return PW_MASK_BAD;
				if (m[i] == e && i + 1 < end && (m[i + 1] == q || m[i + 1] == e)) {
					plain = false;
					i++;
				} else if (m[i] == q) {
					break;
				}
			}
			i++;
		} else {
			while (i < end && m[i] != d && m[i] != '\n' && m[i] != q)
				i++;
		}
		if (i >= end || (m[i] != d && m[i] != '\n'))
			return PW_MASK_BAD; /* cut short, or bytes after a closing quote */
		bool null =
		    !quoted && i - fs == f->null_len && !memcmp(m + fs, f->null_str, f->null_len);
		int rc = header ? 0 : copy_field(c, k, fs, i, null, quoted, plain);
		if (rc)
			return rc;
		k++;
		if (m[i++] == '\n')
			break;
	}
	if (!header && k != c->ncols)
		return PW_MASK_BAD;
	*at = i;
	return 0;
}

/* Binary COPY: the file header first (with the first tuple), tuples, the int16 -1 trailer. */
static int binary_copy(struct copy *c, struct pw_copy_state *st, size_t *at)
{
	static const uint8_t sig[11] = "PGCOPY\n\377\r\n";
	const uint8_t *m = c->w.msg;
	size_t end = c->w.len, i = *at;
	if (st->trailer_seen)
		return PW_MASK_BAD;
	if (!st->binary_header_seen) {
		if (end - i < 19 || memcmp(m + i, sig, sizeof(sig)))
			return PW_MASK_BAD;
		/* bits 0-15 must be unknown to no reader, bit 16 adds OIDs (not since 12) */
		if (pw_be32(m + i + 11) & 0x1FFFFu)
			return PW_MASK_BAD;
		uint32_t ext = pw_be32(m + i + 15);
		i += 19;
		if (ext > end - i)
			return PW_MASK_BAD;
		i += ext;
		st->binary_header_seen = true;
	}
	while (i < end) {
		if (end - i < 2)
			return PW_MASK_BAD;
		int16_t nf = (int16_t)be16(m + i);
		i += 2;
		if (nf == -1) {
			if (i != end)
				return PW_MASK_BAD;
			st->trailer_seen = true;
			break;
		}
		if (nf != c->ncols)
			return PW_MASK_BAD;
		int rc = cells(c->cols, c->ncols, true, c->ctx, &c->w, &i, &c->o);
		if (rc)
			return rc;
	}
	*at = i;
	return 0;
}

int pw_mask_copydata(const struct pw_mask_col *cols, int ncols, const struct pw_copy_fmt *f,
                     struct pw_copy_state *st, const struct pw_mask_ctx *ctx, const uint8_t *msg,
                     size_t len, struct pw_mask_out *out)
{
	if (!out)
		return PW_MASK_BAD;
	out->len = 0;
	if (!f || !st || !mw_framed(msg, len, "d") || ncols < 0 || (ncols && !cols) || !fmt_ok(f))
		return PW_MASK_BAD;
	struct scratch *x = scratch();
	struct copy c = {cols, ncols, f, ctx, {out, msg, len, 0, false}, x->a, x->b};
	struct pw_copy_state s = *st;
	size_t at = PW_HDR;
	int rc = 0;
	if (f->kind == PW_COPY_BINARY)
		rc = binary_copy(&c, &s, &at);
	while (!rc && at < len) {
		bool header = f->header && !s.header_seen;
		rc = f->kind == PW_COPY_CSV ? csv_row(&c, &at, header) : text_row(&c, &at, header);
		s.header_seen = true;
	}
	x->a = c.o; /* kept for the next row */
	x->b = c.val;
	if (!rc)
		rc = mw_wr_end(&c.w);
	if (rc >= 0)
		*st = s;
	if (rc != PW_MASK_CHANGED)
		out->len = 0;
	return rc;
}
