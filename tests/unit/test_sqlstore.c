/* The analyser's two stores on their own: the per-thread cache (sql_cache.h: exact texts and
 * normalised keys kept apart, hits and misses counted, bounded by entries, bytes and text
 * length, least recently used first out) and the prepared store's expansion of EXECUTE
 * (sql_prepared.h). Tables of steps with sentence names, as test_sql.c. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pgward/sql.h"
#include "pgward/sql_cache.h"
#include "pgward/sql_prepared.h"

static struct pw_sql_result in, got;

/* A result that says which entry it came from: one statement tagged so. */
static const struct pw_sql_result *tagged(const char *tag)
{
	memset(&in, 0, offsetof(struct pw_sql_result, stmts));
	in.nstmts = 1;
	snprintf(in.stmts[0].tag, sizeof(in.stmts[0].tag), "%s", tag);
	return &in;
}

/* ---- the cache -------------------------------------------------------------------------- */

enum op { PUT_TEXT, PUT_KEY, GET_TEXT, GET_KEY_OR_TEXT, CLEAR };

struct cache_step {
	const char *name;
	enum op op;
	const char *s;   /* the text, or the key */
	const char *tag; /* PUT: the entry's tag; GET: the tag expected, NULL for a miss */
	bool normalized; /* GET: found under a key */
	uint64_t entries, hits, misses;
};

static const struct cache_step cache_steps[] = {
    {"a text never kept is a miss", GET_TEXT, "select 1", NULL, false, 0, 0, 1},
    {"a kept text is one entry", PUT_TEXT, "select 1", "exact", false, 1, 0, 1},
    {"a kept text is found by its exact text", GET_TEXT, "select 1", "exact", false, 1, 1, 1},
    {"a text that differs by a byte is a miss", GET_TEXT, "select 2", NULL, false, 1, 1, 2},
    {"a key with the bytes of a kept text is another entry", PUT_KEY, "select 1", "key", false, 2,
     1, 2},
    {"the key is looked up before the text", GET_KEY_OR_TEXT, "select 1", "key", true, 2, 2, 2},
    {"the text alone does not find the key's entry", GET_TEXT, "select 1", "exact", false, 2, 3, 2},
    {"another kept text is another entry", PUT_TEXT, "select 3", "three", false, 3, 3, 2},
    {"clear forgets every entry and the counts", CLEAR, NULL, NULL, false, 0, 0, 0},
    {"after clear a kept text is a miss", GET_TEXT, "select 1", NULL, false, 0, 0, 1},
};

static void test_cache_steps(void)
{
	pw_sql_cache_clear();
	CHECK(pw_sql_cache_open() == 0, "the cache opens");
	for (size_t i = 0; i < sizeof(cache_steps) / sizeof(cache_steps[0]); i++) {
		const struct cache_step *c = &cache_steps[i];
		const struct pw_sql_cache_stats *st;
		bool ok = true, norm = false, hit;

		switch (c->op) {
		case PUT_TEXT:
		case PUT_KEY:
			pw_sql_cache_put(c->s, strlen(c->s), c->op == PUT_KEY, tagged(c->tag));
			break;
		case GET_TEXT:
		case GET_KEY_OR_TEXT:
			memset(&got, 0, offsetof(struct pw_sql_result, stmts));
			hit = pw_sql_cache_get(c->s, c->op == GET_KEY_OR_TEXT ? strlen(c->s) : 0,
			                       c->s, strlen(c->s), &got, &norm);
			ok = c->tag ? hit && got.nstmts == 1 &&
			                  strcmp(got.stmts[0].tag, c->tag) == 0 &&
			                  norm == c->normalized
			            : !hit;
			break;
		case CLEAR:
			pw_sql_cache_clear();
			CHECK(pw_sql_cache_open() == 0, "the cache opens again after clear");
			break;
		}
		st = pw_sql_cache_stats_local();
		CHECK(ok && st->entries == c->entries && st->hits == c->hits &&
		          st->misses == c->misses,
		      "cache: %s", c->name);
	}
}

/* The bounds: CACHE_MAX_ENTRIES 1024, CACHE_MAX_BYTES 8 MiB, CACHE_MAX_TEXT 64 KiB. */
static void test_cache_bounds(void)
{
	static char big[(64u << 10) + 2];
	char t[32];
	bool norm, first, second, last;

	pw_sql_cache_clear();
	pw_sql_cache_open();
	memset(big, 'x', sizeof(big) - 1);
	pw_sql_cache_put(big, (64u << 10) + 1, false, tagged("big"));
	CHECK(pw_sql_cache_stats_local()->entries == 0, "cache: a text over 64 KiB is not kept");
	pw_sql_cache_put(big, 64u << 10, false, tagged("big"));
	CHECK(pw_sql_cache_stats_local()->entries == 1, "cache: a text of 64 KiB is kept");

	pw_sql_cache_clear();
	pw_sql_cache_open();
	for (int i = 0; i < 1024; i++) {
		snprintf(t, sizeof(t), "select %d", i);
		pw_sql_cache_put(t, strlen(t), false, tagged(t));
	}
	CHECK(pw_sql_cache_stats_local()->entries == 1024, "cache: 1024 entries are kept");
	/* "select 0" used again: "select 1" is now the least recently used */
	pw_sql_cache_get(NULL, 0, "select 0", 8, &got, &norm);
	pw_sql_cache_put("select 1024", 11, false, tagged("select 1024"));
	first = pw_sql_cache_get(NULL, 0, "select 0", 8, &got, &norm);
	second = pw_sql_cache_get(NULL, 0, "select 1", 8, &got, &norm);
	last = pw_sql_cache_get(NULL, 0, "select 1024", 11, &got, &norm);
	CHECK(pw_sql_cache_stats_local()->entries == 1024 && first && !second && last,
	      "cache: the 1025th entry pushes out the least recently used, not the oldest");

	pw_sql_cache_clear();
	pw_sql_cache_open();
	for (int i = 0; i < 200; i++) {
		snprintf(big, 16, "%015d", i);
		pw_sql_cache_put(big, 60000, false, tagged("wide"));
	}
	CHECK(pw_sql_cache_stats_local()->bytes <= (8u << 20) &&
	          pw_sql_cache_stats_local()->entries < 200 &&
	          pw_sql_cache_get(NULL, 0, big, 60000, &got, &norm),
	      "cache: 200 texts of 60 KB stay within 8 MiB, the newest kept");
	pw_sql_cache_clear();
	CHECK(pw_sql_cache_stats_local()->entries == 0 && pw_sql_cache_stats_local()->bytes == 0,
	      "cache: clear gives every byte back");
}

/* ---- the prepared store ----------------------------------------------------------------- */

struct expand_case {
	const char *name;
	const char *prepare;       /* SQL run first, into the session's store */
	const char *execute;       /* analysed without the store: its statement 0 is expanded */
	int fill_rels, fill_funcs; /* taken from out before the expansion */
	int rc;
	enum pw_sql_class inner;
	const char *rel; /* the first relation added for statement 0, "access:name" */
	uint32_t flag;   /* a flag statement 0 has after it */
};

static const struct expand_case expand_cases[] = {
    {"EXECUTE takes the class and relations of what PREPARE stored",
     "PREPARE wipe AS DELETE FROM t", "EXECUTE wipe", 0, 0, 0, PW_SQL_DELETE, "w:t", 0},
    {"EXECUTE takes the functions of what PREPARE stored", "PREPARE f AS SELECT pg_sleep(1) FROM t",
     "EXECUTE f", 0, 0, 0, PW_SQL_SELECT, "r:t", 0},
    {"EXPLAIN EXECUTE without ANALYZE reads what it plans", "PREPARE wipe AS DELETE FROM t",
     "EXPLAIN EXECUTE wipe", 0, 0, 0, PW_SQL_EXECUTE, "r:t", PW_SQL_F_NOT_EXECUTED},
    {"EXPLAIN ANALYZE EXECUTE writes what it runs", "PREPARE wipe AS DELETE FROM t",
     "EXPLAIN ANALYZE EXECUTE wipe", 0, 0, 0, PW_SQL_EXECUTE, "w:t", PW_SQL_F_EXPLAIN_ANALYZE},
    {"a stored UPDATE without WHERE keeps its flag", "PREPARE u AS UPDATE t SET a = 1", "EXECUTE u",
     0, 0, 0, PW_SQL_UPDATE, "w:t", PW_SQL_F_NO_WHERE},
    {"no room for the relations is -1", "PREPARE wipe AS DELETE FROM t", "EXECUTE wipe",
     PW_SQL_MAX_RELS, 0, -1, PW_SQL_DELETE, NULL, 0},
    {"no room for the functions is -2", "PREPARE f AS SELECT pg_sleep(1)", "EXECUTE f", 0,
     PW_SQL_MAX_FUNCS, -2, PW_SQL_SELECT, NULL, 0},
};

static void test_expand(void)
{
	static struct pw_sql_result out;
	static const char *const path[] = {"public"};
	char err[256];

	for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
		const struct expand_case *c = &expand_cases[i];
		struct pw_sql_session s = {
		    .user = "alice", .search_path = path, .n_search_path = 1};
		const struct pw_sql_prepared *p;
		int rc = -9, nrels, nfuncs;
		bool ok;

		ok = pw_sql_analyse(c->prepare, strlen(c->prepare), &s, &out, err, sizeof(err)) ==
		         0 &&
		     pw_sql_session_apply(&s, &out) == 0;
		p = ok ? pw_sql_prepared_lookup(&s, out.stmts[0].object) : NULL;
		ok = p && pw_sql_analyse(c->execute, strlen(c->execute), NULL, &out, err,
		                         sizeof(err)) == 0;
		if (ok) {
			/* the store's own view only: what the text itself named is dropped */
			out.nrels = c->fill_rels;
			out.nfuncs = c->fill_funcs;
			out.stmts[0].flags &= ~(uint32_t)PW_SQL_F_UNKNOWN_PREPARED;
			nrels = out.nrels;
			nfuncs = out.nfuncs;
			rc = pw_sql_prepared_expand(p, &out, 0, out.stmts[0].cls == PW_SQL_EXPLAIN);
			ok = rc == c->rc && out.stmts[0].inner == c->inner &&
			     (out.stmts[0].flags & c->flag) == c->flag;
			if (ok && c->rel) {
				const struct pw_sql_rel *r = &out.rels[nrels];
				uint8_t acc = c->rel[0] == 'w' ? PW_SQL_WRITE : PW_SQL_READ;

				ok = out.nrels > nrels && r->stmt == 0 && r->access == acc &&
				     strcmp(r->name, c->rel + 2) == 0;
			}
			if (ok && strstr(c->prepare, "pg_sleep") && c->rc == 0)
				ok = out.nfuncs == nfuncs + 1 &&
				     strcmp(out.funcs[nfuncs].name, "pg_sleep") == 0 &&
				     out.funcs[nfuncs].stmt == 0;
		}
		CHECK(ok, "prepared: %s (rc %d)", c->name, rc);
		pw_sql_session_free(&s);
	}
}

int main(void)
{
	test_cache_steps();
	test_cache_bounds();
	test_expand();
	pw_sql_cache_clear();
	return check_done();
}
