/* The analysis cache's invariant, as a check shared by tests/unit/test_sqlkey.c (a bounded
 * differential run in make check) and tests/fuzz/fuzz_sql.c (libFuzzer, make fuzz):
 *   1. a text's normalised cache key, when one is made, equals the key built from the tokens
 *      of the server's own scanner (libpg_query's pg_query_scan: PostgreSQL's scan.l);
 *   2. the analysis a text gets through the cache (possibly the entry of another text with
 *      the same key) equals a fresh parse of that text.
 * Include once per program, after check.h if CHECK is wanted (this header does not report). */
#ifndef PGWARD_TEST_SQLKEY_H
#define PGWARD_TEST_SQLKEY_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "pgward/sql.h"

size_t pw_sql__key(const char *s, size_t n, char *out, size_t *starts, size_t *ends, char *kinds,
                   size_t maxspans, size_t *nspans);

struct sqlkey_stats {
	unsigned long texts, keyed, ref_keyed, hits, analysed, refused;
	unsigned long key_mismatch, cache_mismatch;
};

/* Two analyses alike in all a decision reads (statement spans aside). */
static bool sqlkey_same_analysis(const struct pw_sql_result *a, const struct pw_sql_result *b)
{
	if (a->nstmts != b->nstmts || a->nrels != b->nrels || a->nfuncs != b->nfuncs ||
	    a->nsets != b->nsets)
		return false;
	for (int i = 0; i < a->nstmts; i++) {
		const struct pw_sql_stmt *x = &a->stmts[i], *y = &b->stmts[i];
		if (x->cls != y->cls || x->inner != y->inner || x->flags != y->flags ||
		    x->runs != y->runs || strcmp(x->lang, y->lang) ||
		    strcmp(x->object, y->object) || strcmp(x->tag, y->tag))
			return false;
	}
	for (int i = 0; i < a->nrels; i++)
		if (strcmp(a->rels[i].schema, b->rels[i].schema) ||
		    strcmp(a->rels[i].name, b->rels[i].name) ||
		    a->rels[i].access != b->rels[i].access ||
		    a->rels[i].flags != b->rels[i].flags || a->rels[i].stmt != b->rels[i].stmt)
			return false;
	for (int i = 0; i < a->nfuncs; i++)
		if (strcmp(a->funcs[i].schema, b->funcs[i].schema) ||
		    strcmp(a->funcs[i].name, b->funcs[i].name) ||
		    a->funcs[i].stmt != b->funcs[i].stmt || a->funcs[i].nargs != b->funcs[i].nargs)
			return false;
	for (int i = 0; i < a->nsets; i++)
		if (strcmp(a->sets[i].name, b->sets[i].name) || a->sets[i].how != b->sets[i].how ||
		    a->sets[i].value_known != b->sets[i].value_known ||
		    a->sets[i].value_len != b->sets[i].value_len ||
		    memcmp(a->sets[i].value, b->sets[i].value, a->sets[i].value_len))
			return false;
	return true;
}

/* The key as the server's scanner sees the text (NUL-terminated): every ICONST, FCONST and
 * plain '...' SCONST token replaced by the marker the analyser uses (1, 3, 2), everything
 * else byte for byte. 0 when the scanner fails, finds no such literal, or finds a literal the
 * analyser never keys (E'', U&'', B'', X'' strings). */
static __attribute__((unused)) size_t sqlkey_reference(const char *t, size_t n, char *out)
{
	PgQueryScanResult sr = pg_query_scan(t);
	PgQuery__ScanResult *toks = NULL;
	size_t o = 0, pos = 0, nlit = 0;
	bool ok = !sr.error;

	if (ok)
		toks =
		    pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	ok = ok && toks;
	out[o++] = 1;
	for (size_t k = 0; ok && k < toks->n_tokens; k++) {
		const PgQuery__ScanToken *tk = toks->tokens[k];
		size_t a = (size_t)tk->start, b = (size_t)tk->end;
		char mark = 0;

		if (a < pos || b > n || a > b) {
			ok = false;
			break;
		}
		memcpy(out + o, t + pos, a - pos);
		o += a - pos;
		switch (tk->token) {
		case PG_QUERY__TOKEN__ICONST: {
			/* the grammar checks some integers' ranges: 0, 1..53, ..32767, more */
			long long v = strtoll(t + a, NULL, 10);
			mark = v == 0 ? 4 : v <= 53 ? 1 : v <= 32767 ? 5 : 6;
			break;
		}
		case PG_QUERY__TOKEN__FCONST:
			mark = 3;
			break;
		case PG_QUERY__TOKEN__SCONST:
			if (t[a] != '\'')
				ok = false; /* E'...' */
			mark = 2;
			break;
		case PG_QUERY__TOKEN__USCONST:
		case PG_QUERY__TOKEN__BCONST:
		case PG_QUERY__TOKEN__XCONST:
			ok = false;
			break;
		default:
			break;
		}
		if (mark) {
			out[o++] = mark;
			nlit++;
		} else {
			memcpy(out + o, t + a, b - a);
			o += b - a;
		}
		pos = b;
	}
	if (ok) {
		memcpy(out + o, t + pos, n - pos);
		o += n - pos;
	}
	if (toks)
		pg_query__scan_result__free_unpacked(toks, NULL);
	pg_query_free_scan_result(sr);
	return ok && nlit ? o : 0;
}

static __attribute__((unused)) void sqlkey_show(FILE *f, const char *what, const char *t, size_t n)
{
	fprintf(f, "#   %s: \"", what);
	for (size_t i = 0; i < n && i < 400; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '\\' || c == '"')
			fprintf(f, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
	fprintf(f, "%s\"\n", n > 400 ? "..." : "");
}

/* Scratch for sqlkey_check: results are large, keep them off the stack. */
static struct pw_sql_result sqlkey_cached, sqlkey_fresh;

/* Check one text (no NUL inside; t[n] must be NUL). Returns false on a violation, described
 * on f (may be NULL). */
static __attribute__((unused)) bool sqlkey_check(const char *t, size_t n, struct sqlkey_stats *st,
                                                 FILE *f)
{
	static char *fast, *ref;
	static size_t cap;
	size_t starts[1], ends[1], nspans;
	char kinds[1], err[512], err2[512];
	bool good = true;

	if (n + 2 > cap) {
		free(fast);
		free(ref);
		cap = (n + 2) * 2;
		fast = malloc(cap);
		ref = malloc(cap);
		if (!fast || !ref)
			abort();
	}
	st->texts++;
	size_t flen = pw_sql__key(t, n, fast, starts, ends, kinds, 0, &nspans);
	if (flen) {
		size_t rlen = sqlkey_reference(t, n, ref);
		st->keyed++;
		st->ref_keyed += rlen != 0;
		if (rlen != flen || memcmp(fast, ref, flen) != 0) {
			st->key_mismatch++;
			good = false;
			if (f) {
				fprintf(f, "# key differs from the server scanner's\n");
				sqlkey_show(f, "text", t, n);
				sqlkey_show(f, "key", fast, flen);
				sqlkey_show(f, "scanner", ref, rlen);
			}
		}
	}
	unsigned long hits0 = pw_sql_cache_stats_local()->hits;
	int rc1 = pw_sql_analyse(t, n, NULL, &sqlkey_cached, err, sizeof(err));
	bool hit = pw_sql_cache_stats_local()->hits > hits0;
	int rc2 = pw_sql_analyse_uncached(t, n, NULL, &sqlkey_fresh, err2, sizeof(err2));
	st->hits += hit;
	st->analysed += rc1 == 0;
	st->refused += rc1 != 0;
	if (rc1 != rc2 || (rc1 == 0 && !sqlkey_same_analysis(&sqlkey_cached, &sqlkey_fresh))) {
		st->cache_mismatch++;
		good = false;
		if (f) {
			fprintf(
			    f,
			    "# cached analysis differs from a fresh parse (%s; cached rc %d%s%s, "
			    "fresh rc %d%s%s)\n",
			    hit ? "cache hit" : "miss", rc1, rc1 ? ": " : "", rc1 ? err : "", rc2,
			    rc2 ? ": " : "", rc2 ? err2 : "");
			sqlkey_show(f, "text", t, n);
		}
	}
	return good;
}

#endif
