/* Statement analyser over libpg_query's protobuf tree. See include/pgward/sql.h.
 *
 * Flow: the text is parsed on a big private stack (sql_parse.c: deep expressions make the
 * parser, the protobuf packer and the walk recurse once per level), walked (sql_walk.c) into a
 * session-independent "raw" result (unqualified names left unqualified, EXECUTE not expanded)
 * which the per-thread cache keeps (sql_cache.c, keyed by sql_key.c's normalised keys), and
 * only then, here, resolved against the session (search_path, prepared store in
 * sql_prepared.c). */
#include "pgward/sql.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/sql_cache.h"
#include "pgward/sql_key.h"
#include "pgward/sql_parse.h"
#include "pgward/sql_prepared.h"

/* Raw analysis: thread-local scratch so that worker stacks don't carry ~80 KiB results. */
static __thread struct pw_sql_result raw;

/* ---- resolution -------------------------------------------------------------------------- */

static const char *const default_path[] = {"$user", "public"};

static int push_rel(struct pw_sql_result *out, const struct pw_sql_rel *src, const char *schema,
                    uint8_t flags)
{
	struct pw_sql_rel *rel;

	if (out->nrels >= PW_SQL_MAX_RELS)
		return -1;
	rel = &out->rels[out->nrels++];
	*rel = *src;
	snprintf(rel->schema, sizeof(rel->schema), "%s", schema);
	rel->flags |= flags;
	return 0;
}

/* An unqualified name resolves, as the server searches: pg_temp first (unless listed in the
 * path, or known empty), then pg_catalog (unless listed; only "pg_*" names can be there: its
 * relations are fixed by the server release), then the path with "$user" expanded. Every
 * candidate is reported; more than one makes the name ambiguous. */
static int resolve(const struct pw_sql_rel *src, const struct pw_sql_session *sess,
                   struct pw_sql_result *out)
{
	const char *const *path = sess && sess->search_path ? sess->search_path : default_path;
	size_t npath = sess && sess->search_path ? sess->n_search_path : 2;
	const char *user = sess ? sess->user : NULL;
	const char *cand[PW_SQL_MAX_RELS];
	bool temp_listed = false, cat_listed = false;
	size_t n = 0;

	for (size_t i = 0; i < npath; i++) {
		temp_listed |= strcmp(path[i], "pg_temp") == 0;
		cat_listed |= strcmp(path[i], "pg_catalog") == 0;
	}
	if (!temp_listed && !(sess && sess->no_temp_tables))
		cand[n++] = "pg_temp";
	if (!cat_listed && strncmp(src->name, "pg_", 3) == 0)
		cand[n++] = "pg_catalog";
	for (size_t i = 0; i < npath && n < PW_SQL_MAX_RELS; i++) {
		const char *p = path[i];

		if (strcmp(p, "$user") == 0)
			p = user;
		if (!p || !*p)
			continue;
		if (strcmp(p, "pg_temp") == 0 && sess && sess->no_temp_tables)
			continue;
		if (strcmp(p, "pg_catalog") == 0 && strncmp(src->name, "pg_", 3) != 0)
			continue;
		if (sess && sess->schema_exists && strcmp(p, "pg_temp") != 0 &&
		    strcmp(p, "pg_catalog") != 0 && !sess->schema_exists(sess->schema_arg, p))
			continue; /* no such schema: the server skips it */
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(cand[k], p) == 0;
		if (!dup)
			cand[n++] = p;
	}
	if (n == 0)
		return push_rel(out, src, "", PW_SQL_R_UNQUALIFIED | PW_SQL_R_UNRESOLVED);
	for (size_t k = 0; k < n; k++)
		if (push_rel(out, src, cand[k],
		             PW_SQL_R_UNQUALIFIED | (n > 1 ? PW_SQL_R_AMBIGUOUS : 0)) != 0)
			return -1;
	if (n > 1)
		out->stmts[src->stmt].flags |= PW_SQL_F_AMBIGUOUS;
	return 0;
}

static int same_string_prepared(struct pw_sql_result *out, int i, int j, bool explain)
{
	struct pw_sql_stmt *st = &out->stmts[i];
	int nrels = out->nrels;

	if (!explain)
		st->inner = out->stmts[j].inner;
	st->flags |= out->stmts[j].flags & ~(uint32_t)PW_SQL_F_NOT_EXECUTED;
	st->runs |= (out->stmts[j].runs & ~(1u << PW_SQL_PREPARE)) | (1u << out->stmts[j].inner);
	for (int k = 0; k < nrels; k++) {
		if (out->rels[k].stmt != j)
			continue;
		if (out->nrels >= PW_SQL_MAX_RELS)
			return -1;
		out->rels[out->nrels] = out->rels[k];
		out->rels[out->nrels].stmt = (uint16_t)i;
		if (explain && (st->flags & PW_SQL_F_NOT_EXECUTED))
			out->rels[out->nrels].access = PW_SQL_READ;
		out->nrels++;
	}
	return 0;
}

static int finish(const struct pw_sql_result *r, const struct pw_sql_session *sess,
                  struct pw_sql_result *out, char *err, size_t errlen)
{
	out->nstmts = r->nstmts;
	out->nfuncs = r->nfuncs;
	out->nsets = r->nsets;
	out->nrels = 0;
	out->error_pos = 0;
	memcpy(out->stmts, r->stmts, sizeof(r->stmts[0]) * (size_t)r->nstmts);
	memcpy(out->funcs, r->funcs, sizeof(r->funcs[0]) * (size_t)r->nfuncs);
	memcpy(out->sets, r->sets, sizeof(r->sets[0]) * (size_t)r->nsets);
	for (int i = 0; i < r->nrels; i++) {
		int rc = r->rels[i].schema[0] ? push_rel(out, &r->rels[i], r->rels[i].schema, 0)
		                              : resolve(&r->rels[i], sess, out);
		if (rc != 0)
			goto full;
	}
	/* EXECUTE runs what PREPARE stored */
	for (int i = 0; i < out->nstmts; i++) {
		struct pw_sql_stmt *st = &out->stmts[i];
		const struct pw_sql_prepared *p;

		bool explain = st->cls == PW_SQL_EXPLAIN && st->inner == PW_SQL_EXECUTE;

		if (st->cls != PW_SQL_EXECUTE && !explain)
			continue;
		/* a PREPARE earlier in the same string wins over the store */
		int j = i - 1;
		while (j >= 0 && !(out->stmts[j].cls == PW_SQL_PREPARE &&
		                   strcmp(out->stmts[j].object, st->object) == 0))
			j--;
		if (j >= 0) {
			if (same_string_prepared(out, i, j, explain) != 0)
				goto full;
			continue;
		}
		p = pw_sql_prepared_lookup(sess, st->object);
		if (!p) {
			st->flags |= PW_SQL_F_UNKNOWN_PREPARED;
			continue;
		}
		int rc = pw_sql_prepared_expand(p, out, i, explain);
		if (rc == -1)
			goto full;
		if (rc < 0) {
			snprintf(err, errlen, "statement too complex: too many functions");
			return -1;
		}
	}
	return 0;
full:
	snprintf(err, errlen, "statement too complex: more than %d relations", PW_SQL_MAX_RELS);
	return -1;
}

static int analyse(const char *sql, size_t len, const struct pw_sql_session *sess,
                   struct pw_sql_result *out, char *err, size_t errlen, bool use_cache)
{
	bool value_sensitive = false, normalized = false;
	size_t klen = 0;
	char *keybuf = NULL, *text;
	int rc;

	out->nstmts = out->nrels = out->nfuncs = out->nsets = 0;
	out->error_pos = 0;
	out->spans_approx = false;
	if (errlen)
		err[0] = 0;
	if (len > PW_SQL_MAX_TEXT) {
		snprintf(err, errlen, "statement text longer than %u bytes", PW_SQL_MAX_TEXT);
		return -1;
	}
	if (memchr(sql, 0, len)) {
		snprintf(err, errlen, "statement text contains a NUL byte");
		return -1;
	}
	if (pw_sql_cache_open() != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (use_cache) {
		keybuf = pw_sql_cache_keybuf(len + 2);
		if (keybuf)
			klen = pw_sql_key(sql, len, keybuf);
		if (pw_sql_cache_get(keybuf, klen, sql, len, &raw, &normalized)) {
			rc = finish(&raw, sess, out, err, errlen);
			/* statement spans are those of the text first cached under this key */
			out->spans_approx = normalized;
			return rc;
		}
	}
	text = malloc(len + 1);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(text, sql, len);
	text[len] = 0;
	memset(&raw, 0, offsetof(struct pw_sql_result, stmts));
	memset(raw.stmts, 0, sizeof(raw.stmts));
	rc = pw_sql_parse(text, len, &raw, &value_sensitive, err, errlen);
	free(text);
	if (rc != 0) {
		out->error_pos = raw.error_pos;
		return -1;
	}
	if (use_cache && klen && !value_sensitive)
		pw_sql_cache_put(keybuf, klen, true, &raw);
	else if (use_cache)
		pw_sql_cache_put(sql, len, false, &raw);
	return finish(&raw, sess, out, err, errlen);
}

int pw_sql_analyse(const char *sql, size_t len, const struct pw_sql_session *sess,
                   struct pw_sql_result *out, char *err, size_t errlen)
{
	return analyse(sql, len, sess, out, err, errlen, true);
}

int pw_sql_analyse_uncached(const char *sql, size_t len, const struct pw_sql_session *sess,
                            struct pw_sql_result *out, char *err, size_t errlen)
{
	return analyse(sql, len, sess, out, err, errlen, false);
}
