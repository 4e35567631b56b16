/* libFuzzer harness: the statement analyser (user/sql.c) and its per-thread cache.
 *
 * The input is SQL text (a NUL byte, which SQL text cannot hold, reads as a space), copied into
 * a buffer of exactly its length (the analyser takes a length, not a terminator). Per input:
 *   1. pw_sql_analyse (a cache miss: it parses and fills the cache) and
 *      pw_sql_analyse_uncached must agree;
 *   2. pw_sql_analyse again (now a hit on the entry just made) must agree with (1), spans too;
 *   3. a second text, the first with every digit replaced by another ('1' -> '7', ...), so that
 *      its normalised cache key is the first's: cached and uncached analyses must agree, except
 *      for statement spans when the cached result says they are approximate (spans_approx).
 * "Agree": the same return code and, on success, the same counts and array contents, field by
 * field (names compared as strings, setting values over value_len bytes); on failure the same
 * error_pos. A disagreement prints both texts and the first difference, then abort()s. The
 * cache is emptied before and after each input, so nothing carries over between inputs.
 * The session (a search_path with "$user", pg_temp and a schema that does not exist, two
 * statements prepared by SQL PREPARE) is made once at start-up and only read afterwards. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/sql.h"
/* the key check of the bounded differential run in make check (tests/unit/test_sqlkey.c) */
#include "../unit/sqlkey.h"

/* "app" is on the path but does not exist: the server skips it, and so must the analysis */
static bool schema_exists(const void *arg, const char *schema)
{
	(void)arg;
	return strcmp(schema, "app") != 0;
}

static const char *const search_path[] = {"$user", "public", "app", "pg_temp"};
static struct pw_sql_session sess = {
    .user = "agent",
    .search_path = search_path,
    .n_search_path = 4,
    .schema_exists = schema_exists,
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char prep[] = "PREPARE q1 AS DELETE FROM orders WHERE id = $1; "
	                           "PREPARE q2 AS SELECT * FROM secret.keys";
	struct pw_sql_result *r = calloc(1, sizeof *r);
	char err[256];

	(void)argc, (void)argv;
	if (!r || pw_sql_analyse_uncached(prep, strlen(prep), &sess, r, err, sizeof err) != 0 ||
	    pw_sql_session_apply(&sess, r) != 0) {
		fprintf(stderr, "fuzz_sql: cannot prepare the session: %s\n", err);
		exit(2);
	}
	free(r);
	pw_sql_cache_clear();
	return 0;
}

static char why[512];

#define DIFF(cond, ...)                                                                            \
	do {                                                                                       \
		if (cond) {                                                                        \
			snprintf(why, sizeof why, __VA_ARGS__);                                    \
			return why;                                                                \
		}                                                                                  \
	} while (0)

/* The first difference between a (cached) and b (uncached), or NULL. */
static const char *diff(int rca, const struct pw_sql_result *a, int rcb,
                        const struct pw_sql_result *b, bool spans)
{
	DIFF(rca != rcb, "return code %d vs %d", rca, rcb);
	if (rca != 0) {
		DIFF(a->error_pos != b->error_pos, "error_pos %d vs %d", a->error_pos,
		     b->error_pos);
		return NULL;
	}
	DIFF(a->nstmts != b->nstmts, "nstmts %d vs %d", a->nstmts, b->nstmts);
	DIFF(a->nrels != b->nrels, "nrels %d vs %d", a->nrels, b->nrels);
	DIFF(a->nfuncs != b->nfuncs, "nfuncs %d vs %d", a->nfuncs, b->nfuncs);
	DIFF(a->nsets != b->nsets, "nsets %d vs %d", a->nsets, b->nsets);
	DIFF(a->nstmts < 0 || a->nstmts > PW_SQL_MAX_STMTS || a->nrels < 0 ||
	         a->nrels > PW_SQL_MAX_RELS || a->nfuncs < 0 || a->nfuncs > PW_SQL_MAX_FUNCS ||
	         a->nsets < 0 || a->nsets > PW_SQL_MAX_SETS,
	     "a count is out of its array's range");
	for (int i = 0; i < a->nstmts; i++) {
		const struct pw_sql_stmt *x = &a->stmts[i], *y = &b->stmts[i];

		DIFF(x->cls != y->cls, "stmts[%d].cls %d vs %d", i, x->cls, y->cls);
		DIFF(x->inner != y->inner, "stmts[%d].inner %d vs %d", i, x->inner, y->inner);
		DIFF(x->flags != y->flags, "stmts[%d].flags %#x vs %#x", i, x->flags, y->flags);
		DIFF(x->runs != y->runs, "stmts[%d].runs %#x vs %#x", i, x->runs, y->runs);
		DIFF(spans && x->location != y->location, "stmts[%d].location %d vs %d", i,
		     x->location, y->location);
		DIFF(spans && x->length != y->length, "stmts[%d].length %d vs %d", i, x->length,
		     y->length);
		DIFF(strncmp(x->lang, y->lang, sizeof x->lang),
		     "stmts[%d].lang \"%.*s\" vs \"%.*s\"", i, (int)sizeof x->lang, x->lang,
		     (int)sizeof y->lang, y->lang);
		DIFF(strncmp(x->object, y->object, sizeof x->object),
		     "stmts[%d].object \"%.*s\" vs \"%.*s\"", i, (int)sizeof x->object, x->object,
		     (int)sizeof y->object, y->object);
		DIFF(strncmp(x->tag, y->tag, sizeof x->tag), "stmts[%d].tag \"%.*s\" vs \"%.*s\"",
		     i, (int)sizeof x->tag, x->tag, (int)sizeof y->tag, y->tag);
	}
	for (int i = 0; i < a->nrels; i++) {
		const struct pw_sql_rel *x = &a->rels[i], *y = &b->rels[i];

		DIFF(strncmp(x->schema, y->schema, sizeof x->schema) ||
		         strncmp(x->name, y->name, sizeof x->name),
		     "rels[%d] \"%.*s\".\"%.*s\" vs \"%.*s\".\"%.*s\"", i, (int)sizeof x->schema,
		     x->schema, (int)sizeof x->name, x->name, (int)sizeof y->schema, y->schema,
		     (int)sizeof y->name, y->name);
		DIFF(x->access != y->access, "rels[%d].access %u vs %u", i, x->access, y->access);
		DIFF(x->flags != y->flags, "rels[%d].flags %#x vs %#x", i, x->flags, y->flags);
		DIFF(x->stmt != y->stmt, "rels[%d].stmt %u vs %u", i, x->stmt, y->stmt);
	}
	for (int i = 0; i < a->nfuncs; i++) {
		const struct pw_sql_func *x = &a->funcs[i], *y = &b->funcs[i];

		DIFF(strncmp(x->schema, y->schema, sizeof x->schema) ||
		         strncmp(x->name, y->name, sizeof x->name),
		     "funcs[%d] \"%.*s\".\"%.*s\" vs \"%.*s\".\"%.*s\"", i, (int)sizeof x->schema,
		     x->schema, (int)sizeof x->name, x->name, (int)sizeof y->schema, y->schema,
		     (int)sizeof y->name, y->name);
		DIFF(x->stmt != y->stmt, "funcs[%d].stmt %u vs %u", i, x->stmt, y->stmt);
		DIFF(x->nargs != y->nargs, "funcs[%d].nargs %d vs %d", i, x->nargs, y->nargs);
	}
	for (int i = 0; i < a->nsets; i++) {
		const struct pw_sql_setting *x = &a->sets[i], *y = &b->sets[i];

		DIFF(strncmp(x->name, y->name, sizeof x->name),
		     "sets[%d].name \"%.*s\" vs \"%.*s\"", i, (int)sizeof x->name, x->name,
		     (int)sizeof y->name, y->name);
		DIFF(x->how != y->how, "sets[%d].how %u vs %u", i, x->how, y->how);
		DIFF(x->stmt != y->stmt, "sets[%d].stmt %u vs %u", i, x->stmt, y->stmt);
		DIFF(x->value_known != y->value_known, "sets[%d].value_known %d vs %d", i,
		     x->value_known, y->value_known);
		DIFF(x->value_len != y->value_len, "sets[%d].value_len %u vs %u", i, x->value_len,
		     y->value_len);
		DIFF(x->value_len > sizeof x->value, "sets[%d].value_len %u over its array", i,
		     x->value_len);
		DIFF(memcmp(x->value, y->value, x->value_len), "sets[%d].value differs", i);
	}
	return NULL;
}

static void mismatch(const char *step, const char *d, const char *t1, const char *t2, size_t len)
{
	fprintf(stderr,
	        "fuzz_sql: the cached and the uncached analyses disagree (%s): %s\n"
	        "fuzz_sql: first text (%zu bytes): %.*s\n"
	        "fuzz_sql: second text (%zu bytes): %.*s\n",
	        step, d, len, (int)len, t1, t2 ? len : 0, t2 ? (int)len : 0, t2 ? t2 : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pw_sql_result *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	char *t1 = malloc(size ? size : 1), *t2 = malloc(size ? size : 1);
	char err_a[256], err_b[256];
	const char *d;
	bool digits = false;
	int rca, rcb;

	if (!a || !b || !t1 || !t2)
		goto out;
	for (size_t i = 0; i < size; i++) {
		char c = data[i] ? (char)data[i] : ' ';

		t1[i] = c;
		if (c >= '0' && c <= '9') {
			c = (char)('0' + (c - '0' + 6) % 10);
			digits = true;
		}
		t2[i] = c;
	}
	/* different filler in each result: a field one path leaves unset shows as a difference */
	memset(a, 0xa5, sizeof *a);
	memset(b, 0x5a, sizeof *b);

	pw_sql_cache_clear();
	rca = pw_sql_analyse(t1, size, &sess, a, err_a, sizeof err_a);
	rcb = pw_sql_analyse_uncached(t1, size, &sess, b, err_b, sizeof err_b);
	if ((d = diff(rca, a, rcb, b, !a->spans_approx)))
		mismatch("miss", d, t1, NULL, size);

	memset(a, 0xc3, sizeof *a);
	rca = pw_sql_analyse(t1, size, &sess, a, err_a, sizeof err_a);
	if ((d = diff(rca, a, rcb, b, true)))
		mismatch("hit on the same text", d, t1, NULL, size);

	/* 4. the normalised key equals the one built from the server scanner's tokens, and a
	 * cached analysis (of this text, or of one sharing its key) equals a fresh one */
	char *z = malloc(size + 1);
	if (z) {
		struct sqlkey_stats st = {0};
		memcpy(z, t1, size);
		z[size] = 0;
		if (!sqlkey_check(z, size, &st, stderr))
			abort();
		free(z);
	}

	if (digits) {
		memset(a, 0xa5, sizeof *a);
		memset(b, 0x5a, sizeof *b);
		rca = pw_sql_analyse(t2, size, &sess, a, err_a, sizeof err_a);
		rcb = pw_sql_analyse_uncached(t2, size, &sess, b, err_b, sizeof err_b);
		if ((d = diff(rca, a, rcb, b, !a->spans_approx)))
			mismatch("text with other digits", d, t1, t2, size);
	}
	pw_sql_cache_clear();
out:
	free(a);
	free(b);
	free(t1);
	free(t2);
	return 0;
}
