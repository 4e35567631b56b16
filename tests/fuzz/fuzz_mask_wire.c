/* libFuzzer harness: masking on the wire (user/mask_wire.c pw_mask_datarow, pw_mask_copydata,
 * pw_mask_scrub_notice), over hostile messages and arbitrary plans.
 *
 * The input: byte 0 chooses the function (its low 3 bits mod 5: DataRow, COPY text, COPY CSV, COPY
 * binary, ErrorResponse) and options (0x08: the rest is a whole message as it is, framing and
 * all, rather than a body the harness frames; 0x10: COPY HEADER, or a tainted error; 0x20: a
 * binary COPY whose file header went by already; 0x40: COPY text with '|' as the delimiter,
 * CSV with '\' as the escape); byte 1 mod 9 the column count; then three bytes per column
 * (flags: mask, detect, binary format, and the strategy; keep; the type from a list that
 * includes unknown ones); then the message. It is copied into a buffer of exactly its size,
 * so that any read past the end is an ASan report. The detectors are all of them, each under
 * another strategy, and the hash key is fixed.
 *
 * Invariants (abort() when broken): the result is 1, 0 or -1 (never out of memory on inputs
 * this small); out is empty unless 1; a rewritten message keeps the type byte and its length
 * field counts its bytes; rewriting it again under the same plan (from the same COPY state)
 * does not find it malformed; a refused COPY message leaves the state as it was; the same
 * input gives the same output (no hidden state).
 *
 * Seeds: PGWARD_FUZZ_MKSEEDS=DIR build/fuzz/fuzz_mask_wire writes them into DIR.
 * PGWARD_FUZZ_VERBOSE=1 prints what each input gave (to check a new seed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/mask_wire.h"
#include "pgward/proto.h"
#include "fuzzlib.h"

enum op { OP_DATAROW, OP_COPY_TEXT, OP_COPY_CSV, OP_COPY_BINARY, OP_NOTICE, OP_N };
#define O_RAW         0x08
#define O_HEADER      0x10 /* COPY HEADER; a tainted error */
#define O_BIN_STARTED 0x20
#define O_OTHER_FMT   0x40
#define MAX_COLS      8

static const uint32_t types[] = {25, 1043, 1042, 19,   705,  16,   21,   23, 20,
                                 26, 700,  701,  2950, 1700, 1082, 3802, 0,  600};
static const struct pw_mask_key key = {.k = "fuzz-mask-wire-key-0123456789abc", .len = 32};
static struct pw_mask_detectors det;
static bool verbose;
static const struct pw_mask_ctx ctx = {&key, &det};

static void fail(const char *what, size_t size)
{
	fprintf(stderr, "fuzz_mask_wire: %s (input of %zu bytes)\n", what, size);
	abort();
}

struct plan {
	enum op op;
	unsigned opts;
	int ncols;
	struct pw_mask_col cols[MAX_COLS];
	struct pw_copy_fmt fmt;
	struct pw_copy_state st;
};

/* The plan from the input's first bytes; the bytes it used. 0: too short. */
static size_t read_plan(const uint8_t *d, size_t n, struct plan *p)
{
	memset(p, 0, sizeof(*p));
	if (n < 2)
		return 0;
	p->op = (enum op)((d[0] & 7) % OP_N);
	p->opts = d[0];
	p->ncols = d[1] % (MAX_COLS + 1);
	if (n < 2 + 3 * (size_t)p->ncols)
		return 0;
	for (int i = 0; i < p->ncols; i++) {
		const uint8_t *c = d + 2 + 3 * i;
		p->cols[i] = (struct pw_mask_col){
		    .mask = c[0] & 1,
		    .detect = c[0] & 2,
		    .format = c[0] & 4 ? 1 : 0,
		    .strategy = (enum pw_mask_strategy)((c[0] >> 3) % PW_MASK_N),
		    .keep = (int8_t)c[1],
		    .type_oid = types[c[2] % (sizeof(types) / sizeof(types[0]))],
		};
	}
	int kind = p->op == OP_COPY_CSV      ? PW_COPY_CSV
	           : p->op == OP_COPY_BINARY ? PW_COPY_BINARY
	                                     : PW_COPY_TEXT;
	pw_copy_fmt_default(&p->fmt, kind);
	p->fmt.header = p->opts & O_HEADER;
	if (p->opts & O_OTHER_FMT) {
		if (kind == PW_COPY_TEXT)
			p->fmt.delim = '|';
		else
			p->fmt.escape = '\\';
	}
	p->st.binary_header_seen = p->opts & O_BIN_STARTED;
	return 2 + 3 * (size_t)p->ncols;
}

static int run(const struct plan *p, struct pw_copy_state *st, const uint8_t *m, size_t n,
               struct pw_mask_out *out)
{
	if (p->op == OP_DATAROW)
		return pw_mask_datarow(p->cols, p->ncols, &ctx, m, n, out);
	if (p->op == OP_NOTICE)
		return pw_mask_scrub_notice(m, n, p->opts & O_HEADER, &ctx, out);
	return pw_mask_copydata(p->cols, p->ncols, &p->fmt, st, &ctx, m, n, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan p;
	size_t used = read_plan(data, size, &p);
	if (!used)
		return 0;
	const uint8_t *rest = data + used;
	size_t n = size - used, len = p.opts & O_RAW ? n : n + PW_HDR;
	uint8_t *msg = malloc(len ? len : 1);
	if (!msg)
		return 0;
	if (p.opts & O_RAW) {
		if (n)
			memcpy(msg, rest, n);
	} else {
		static const char type[OP_N] = {'D', 'd', 'd', 'd', 'E'};
		msg[0] = (uint8_t)type[p.op];
		pw_put_be32(msg + 1, (uint32_t)(n + 4));
		if (n)
			memcpy(msg + PW_HDR, rest, n);
	}

	struct pw_mask_out out = {0}, again = {0};
	struct pw_copy_state st = p.st, st2 = p.st;
	int rc = run(&p, &st, msg, len, &out);
	if (verbose)
		fprintf(stderr, "fuzz_mask_wire: op %d, %d columns, %zu bytes: %d\n", p.op, p.ncols,
		        len, rc);
	if (rc < -1 || rc > 1)
		fail("a result other than 1, 0 or -1", size);
	if (rc != 1 && out.len)
		fail("output left behind without a rewrite", size);
	if (rc == -1 && memcmp(&st, &p.st, sizeof(st)))
		fail("a refused COPY message moved the state", size);
	if (run(&p, &st2, msg, len, &again) != rc || again.len != out.len ||
	    (out.len && memcmp(again.data, out.data, out.len)))
		fail("the same input gave another output", size);
	if (rc == 1) {
		if (out.len < PW_HDR || out.data[0] != msg[0] ||
		    pw_be32(out.data + 1) != out.len - 1)
			fail("a rewritten message framed wrongly", size);
		uint8_t *copy = malloc(out.len);
		if (!copy)
			abort();
		memcpy(copy, out.data, out.len);
		st2 = p.st;
		if (run(&p, &st2, copy, out.len, &again) == -1)
			fail("a rewritten message is malformed under its own plan", size);
		free(copy);
	}
	pw_mask_out_free(&out);
	pw_mask_out_free(&again);
	free(msg);
	return 0;
}

/* ---- seeds ---------------------------------------------------------------------------------- */

struct seed {
	uint8_t d[1024];
	size_t n;
};

static void s_bytes(struct seed *s, const void *p, size_t n)
{
	if (n)
		memcpy(s->d + s->n, p, n);
	s->n += n;
}
static void s_i16(struct seed *s, int v)
{
	uint8_t b[2] = {(uint8_t)((unsigned)v >> 8), (uint8_t)v};
	s_bytes(s, b, 2);
}
static void s_cell(struct seed *s, const char *v, int n)
{
	uint8_t b[4];
	pw_put_be32(b, (uint32_t)n);
	s_bytes(s, b, 4);
	if (n > 0)
		s_bytes(s, v, (size_t)n);
}
/* The plan: op and options, then per column flags, keep, type index. */
static void s_plan(struct seed *s, unsigned opts, int ncols, const uint8_t *cols)
{
	s->n = 0;
	s->d[s->n++] = (uint8_t)opts;
	s->d[s->n++] = (uint8_t)ncols;
	s_bytes(s, cols, 3 * (size_t)ncols);
}
static void s_text(struct seed *s, const char *t)
{
	s_bytes(s, t, strlen(t));
}

#define MASK(strategy)     (uint8_t)(1 | (strategy) << 3)
#define MASK_BIN(strategy) (uint8_t)(1 | 4 | (strategy) << 3)

static void make_seeds(void)
{
	struct seed s;
	/* columns: int4 (type 7) redacted; text (0) hashed; text searched; uuid (12) binary hash */
	const uint8_t cols[] = {MASK(PW_MASK_REDACT),   0, 7, MASK(PW_MASK_HASH), 0, 0, 2, 0, 0,
	                        MASK_BIN(PW_MASK_HASH), 0, 12};

	s_plan(&s, OP_DATAROW, 4, cols);
	s_i16(&s, 4);
	s_cell(&s, "42", 2);
	s_cell(&s, "alice", 5);
	s_cell(&s, "mail jane@example.com, ssn 123-45-6789", 38);
	s_cell(&s, "\xa0\xee\xbc\x99\x9c\x0b\x4e\xf8\xbb\x6d\x6b\xb9\xbd\x38\x0a\x11", 16);
	pwfuzz_seed("datarow", s.d, s.n);

	const uint8_t bin[] = {MASK_BIN(PW_MASK_HASH),   0, 7, MASK_BIN(PW_MASK_PARTIAL), 4, 1,
	                       MASK_BIN(PW_MASK_REDACT), 0, 5, MASK_BIN(PW_MASK_REDACT),  0, 11};
	s_plan(&s, OP_DATAROW, 4, bin);
	s_i16(&s, 4);
	s_cell(&s, "\0\0\0\x2a", 4);
	s_cell(&s, "4111111111111111", 16);
	s_cell(&s, "\1", 1);
	s_cell(&s, NULL, -1);
	pwfuzz_seed("datarow-binary", s.d, s.n);

	const uint8_t three[] = {0, 0, 7, MASK(PW_MASK_PARTIAL), 3, 0, 2, 0, 0};
	s_plan(&s, OP_COPY_TEXT, 3, three);
	s_text(&s,
	       "1\tab\\tc\\\\d\\101\\x41\t-----BEGIN RSA PRIVATE KEY-----\\nMIIB\\n-----END RSA "
	       "PRIVATE KEY-----\n2\t\\N\ta@b.io\n");
	pwfuzz_seed("copy-text", s.d, s.n);

	s_plan(&s, OP_COPY_TEXT | O_HEADER, 3, three);
	s_text(&s, "id\tname\tnote\n");
	pwfuzz_seed("copy-text-header", s.d, s.n);

	s_plan(&s, OP_COPY_CSV, 3, three);
	s_text(&s, "1,\"jane, \"\"doe\"\"\nx\",\"call +14155550123\"\n2,,\"\"\n");
	pwfuzz_seed("copy-csv", s.d, s.n);

	s_plan(&s, OP_COPY_CSV | O_OTHER_FMT, 3, three);
	s_text(&s, "1,\"a\\\"b\\\\\",c\n");
	pwfuzz_seed("copy-csv-escape", s.d, s.n);

	const uint8_t bcols[] = {MASK(PW_MASK_HASH), 0, 7, MASK(PW_MASK_EMAIL), 0, 0, 2, 0, 0};
	s_plan(&s, OP_COPY_BINARY, 3, bcols);
	s_bytes(&s, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
	s_i16(&s, 3);
	s_cell(&s, "\xff\xff\xff\xfb", 4);
	s_cell(&s, "jane@example.com", 16);
	s_cell(&s, "ssn 123-45-6789", 15);
	pwfuzz_seed("copy-binary-first", s.d, s.n);

	s_plan(&s, OP_COPY_BINARY | O_BIN_STARTED, 3, bcols);
	s_i16(&s, -1);
	pwfuzz_seed("copy-binary-trailer", s.d, s.n);

	static const char error[] = "SERROR\0C23505\0Mduplicate key value violates unique "
	                            "constraint \"u\"\0DKey (ssn)=(123-45-6789) already exists.\0"
	                            "Hmail jane@example.com\0Wfn \"f\"\0qselect 1\0ssch\0tusers\0";
	s_plan(&s, OP_NOTICE, 0, NULL);
	s_bytes(&s, error, sizeof(error)); /* its own NUL is the final 0 */
	pwfuzz_seed("error", s.d, s.n);
	s_plan(&s, OP_NOTICE | O_HEADER, 0, NULL);
	s_bytes(&s, error, sizeof(error));
	pwfuzz_seed("error-tainted", s.d, s.n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	verbose = getenv("PGWARD_FUZZ_VERBOSE") != NULL;
	det.set = PW_DET_ALL;
	for (int d = 0; d < PW_DET_N; d++) {
		det.strategy[d] = (enum pw_mask_strategy)(d % PW_MASK_N);
		det.keep[d] = d % 5;
	}
	if (pwfuzz_seed_dir()) {
		make_seeds();
		exit(0);
	}
	return 0;
}
