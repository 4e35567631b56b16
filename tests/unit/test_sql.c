/* Statement analyser: classes, relations, functions, flags, search_path resolution, the
 * prepared store, the cache, deep nesting, and (when the sources are there) PostgreSQL's own
 * regression SQL. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "sqlkey.h"
#include "pgward/sql.h"

#include <pg_query.h>

size_t pw_sql__stack_touched(void);

static struct pw_sql_result res;
static char err[512];

static const char *const public_path[] = {"public"};
static struct pw_sql_session plain = {
    .user = "alice",
    .search_path = public_path,
    .n_search_path = 1,
    .no_temp_tables = true,
};

/* "w:public/t|r:s/u": every listed relation (access:schema/name) is reported, and no other. */
static bool rels_are(const struct pw_sql_result *r, const char *spec)
{
	char buf[512], *save = NULL, *tok;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", spec ? spec : "");
	for (tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
		uint8_t acc = tok[0] == 'w'   ? PW_SQL_WRITE
		              : tok[0] == 'l' ? PW_SQL_LOCK
		                              : PW_SQL_READ;
		char *slash = strchr(tok + 2, '/');
		bool found = false;

		if (!slash)
			return false;
		*slash = 0;
		for (int i = 0; i < r->nrels; i++)
			found |= r->rels[i].access == acc && !strcmp(r->rels[i].schema, tok + 2) &&
			         !strcmp(r->rels[i].name, slash + 1);
		if (!found) {
			printf("# missing %c:%s/%s\n", tok[0], tok + 2, slash + 1);
			return false;
		}
		n++;
	}
	if (n != r->nrels) {
		for (int i = 0; i < r->nrels; i++)
			printf("# have %c:%s/%s\n",
			       r->rels[i].access == PW_SQL_WRITE  ? 'w'
			       : r->rels[i].access == PW_SQL_LOCK ? 'l'
			                                          : 'r',
			       r->rels[i].schema, r->rels[i].name);
		return false;
	}
	return true;
}

/* "upper|pg_catalog.set_config": each listed function called (schema only if written). */
static bool funcs_have(const struct pw_sql_result *r, const char *spec)
{
	char buf[512], *save = NULL, *tok;

	if (!spec)
		return true;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
		bool found = false;

		for (int i = 0; i < r->nfuncs; i++) {
			char q[2 * PW_SQL_NAMELEN + 2];

			if (r->funcs[i].schema[0])
				snprintf(q, sizeof(q), "%s.%s", r->funcs[i].schema,
				         r->funcs[i].name);
			else
				snprintf(q, sizeof(q), "%s", r->funcs[i].name);
			found |= !strcmp(q, tok);
		}
		if (!found) {
			printf("# missing function %s\n", tok);
			return false;
		}
	}
	return true;
}

static bool set_has(const struct pw_sql_result *r, const char *name, int how)
{
	for (int i = 0; i < r->nsets; i++)
		if (!strcmp(r->sets[i].name, name) && r->sets[i].how == how)
			return true;
	return false;
}

struct case_ {
	const char *sql;
	enum pw_sql_class cls;
	uint32_t flags, noflags;
	const char *rels;  /* exact set, see rels_are */
	const char *funcs; /* subset */
	int nstmts;        /* 0: one */
};

#define R    PW_SQL_READ
#define F(x) PW_SQL_F_##x

/* trailing fields default to NULL / 0 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct case_ cases[] = {
    {"SELECT abalance FROM pgbench_accounts WHERE aid = 1", PW_SQL_SELECT, 0, F(NO_WHERE),
     "r:public/pgbench_accounts"},
    {"select 1", PW_SQL_SELECT, 0, 0, ""},
    {"SELECT * FROM s.t JOIN u ON s.t.id = u.id", PW_SQL_SELECT, 0, 0, "r:s/t|r:public/u"},
    {"SELECT * FROM a WHERE x IN (SELECT y FROM b)", PW_SQL_SELECT, 0, 0, "r:public/a|r:public/b"},
    {"SELECT (SELECT max(y) FROM b) FROM a", PW_SQL_SELECT, 0, 0, "r:public/a|r:public/b", "max"},
    {"SELECT * FROM a UNION SELECT * FROM b EXCEPT SELECT * FROM c", PW_SQL_SELECT, 0, 0,
     "r:public/a|r:public/b|r:public/c"},
    {"SELECT * FROM (SELECT * FROM inner_t) AS sub", PW_SQL_SELECT, 0, 0, "r:public/inner_t"},
    {"SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x) l", PW_SQL_SELECT, 0, 0,
     "r:public/a|r:public/b"},
    {"SELECT upper(name), pg_catalog.lower(name) FROM t", PW_SQL_SELECT, 0, 0, "r:public/t",
     "upper|pg_catalog.lower"},
    {"SELECT * FROM generate_series(1, 10) g", PW_SQL_SELECT, 0, 0, "", "generate_series"},
    {"SELECT * FROM t WHERE f(x) > myschema.g(y)", PW_SQL_SELECT, 0, 0, "r:public/t",
     "f|myschema.g"},
    {"SELECT count(*) OVER (PARTITION BY a) FROM t", PW_SQL_SELECT, 0, 0, "r:public/t", "count"},
    {"SELECT CASE WHEN a THEN lo_import('/etc/passwd') END FROM t", PW_SQL_SELECT, 0, 0,
     "r:public/t", "lo_import"},
    {"VALUES (1), (2)", PW_SQL_SELECT, 0, 0, ""},
    {"TABLE secrets", PW_SQL_SELECT, 0, 0, "r:public/secrets"},
    {"SELECT * FROM t FOR UPDATE", PW_SQL_SELECT, 0, 0, "l:public/t"},
    /* row locks: the locked FROM items (all, or those named by OF, sub-selects included) */
    {"SELECT * FROM t FOR NO KEY UPDATE", PW_SQL_SELECT, 0, 0, "l:public/t"},
    {"SELECT * FROM t FOR SHARE", PW_SQL_SELECT, 0, 0, "l:public/t"},
    {"SELECT * FROM t FOR KEY SHARE SKIP LOCKED", PW_SQL_SELECT, 0, 0, "l:public/t"},
    {"SELECT * FROM t a JOIN u b ON a.id = b.id FOR UPDATE OF a", PW_SQL_SELECT, 0, 0,
     "l:public/t|r:public/u"},
    {"SELECT * FROM t JOIN u USING (id) FOR UPDATE OF u", PW_SQL_SELECT, 0, 0,
     "r:public/t|l:public/u"},
    {"SELECT * FROM (SELECT * FROM t) s, u FOR SHARE OF s", PW_SQL_SELECT, 0, 0,
     "l:public/t|r:public/u"},
    {"SELECT * FROM (SELECT * FROM (SELECT * FROM t) x) s FOR UPDATE", PW_SQL_SELECT, 0, 0,
     "l:public/t"},
    {"SELECT * FROM u WHERE id IN (SELECT id FROM t FOR UPDATE)", PW_SQL_SELECT, 0, 0,
     "r:public/u|l:public/t"},
    {"SELECT * FROM u WHERE id IN (SELECT id FROM t) FOR UPDATE", PW_SQL_SELECT, 0, 0,
     "l:public/u|r:public/t"},
    {"WITH c AS (SELECT * FROM t FOR UPDATE) SELECT * FROM c", PW_SQL_SELECT, 0, 0, "l:public/t"},
    {"WITH c AS (SELECT * FROM t) SELECT * FROM c, u FOR UPDATE", PW_SQL_SELECT, 0, 0,
     "r:public/t|l:public/u"},
    {"EXPLAIN SELECT * FROM t FOR UPDATE", PW_SQL_EXPLAIN, PW_SQL_F_NOT_EXECUTED, 0, "r:public/t"},
    {"SELECT * FROM \"My Table\"", PW_SQL_SELECT, 0, 0, "r:public/My Table"},
    {"SELECT * FROM \"odd.schema\".\"dotted.name\"", PW_SQL_SELECT, 0, 0,
     "r:odd.schema/dotted.name"},
    {"SELECT * FROM U&\"d\\0061t\\+000061\"", PW_SQL_SELECT, 0, 0, "r:public/data"},
    {"SELECT * FROM U&\"!0073ecret\" UESCAPE '!'", PW_SQL_SELECT, 0, 0, "r:public/secret"},
    {"SELECT * FROM MiXeD", PW_SQL_SELECT, 0, 0, "r:public/mixed"},
    {"SELECT /* FROM hidden */ 1 -- FROM also_hidden\n FROM shown", PW_SQL_SELECT, 0, 0,
     "r:public/shown"},
    {"SELECT $$a;b$$; DROP TABLE t", PW_SQL_SELECT, 0, 0, "w:public/t", NULL, 2},
    {"SELECT $tag$ DROP TABLE x; $tag$", PW_SQL_SELECT, 0, 0, ""},
    {"SELECT 'it''s; DELETE FROM t'", PW_SQL_SELECT, 0, 0, ""},
    {"SELECT E'\\'; DELETE FROM t; --'", PW_SQL_SELECT, 0, 0, ""},
    {"SELECT 1; SELECT * FROM a; UPDATE b SET x = 1 WHERE y", PW_SQL_SELECT, 0, 0,
     "r:public/a|w:public/b", NULL, 3},
    /* CTEs */
    {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", PW_SQL_SELECT,
     F(CTE_DML) | F(NO_WHERE), 0, "w:public/t"},
    {"WITH c AS (SELECT * FROM base) SELECT * FROM c", PW_SQL_SELECT, 0, F(CTE_DML),
     "r:public/base"},
    {"WITH t AS (SELECT * FROM t) SELECT * FROM t", PW_SQL_SELECT, 0, 0, "r:public/t"},
    {"WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", PW_SQL_SELECT,
     0, 0, ""},
    {"WITH c AS (SELECT 1) SELECT * FROM public.c", PW_SQL_SELECT, 0, 0, "r:public/c"},
    {"WITH u AS (UPDATE acct SET b = 0 WHERE id = 1 RETURNING id) SELECT * FROM u", PW_SQL_SELECT,
     F(CTE_DML), F(NO_WHERE), "w:public/acct"},
    {"WITH i AS (INSERT INTO log VALUES (1) RETURNING *) INSERT INTO t SELECT * FROM i",
     PW_SQL_INSERT, F(CTE_DML), 0, "w:public/log|w:public/t"},
    {"SELECT * FROM (WITH x AS (SELECT * FROM q) SELECT * FROM x) s, x", PW_SQL_SELECT, 0, 0,
     "r:public/q|r:public/x"},
    /* DML */
    {"INSERT INTO t (a) VALUES (1)", PW_SQL_INSERT, 0, 0, "w:public/t"},
    {"INSERT INTO t SELECT * FROM src", PW_SQL_INSERT, 0, 0, "w:public/t|r:public/src"},
    {"INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b", PW_SQL_INSERT, 0, 0,
     "w:public/t"},
    {"INSERT INTO t VALUES (nextval('seq'))", PW_SQL_INSERT, 0, 0, "w:public/t|w:public/seq",
     "nextval"},
    {"UPDATE t SET a = 1", PW_SQL_UPDATE, F(NO_WHERE), 0, "w:public/t"},
    {"UPDATE t SET a = 1 WHERE id = 2", PW_SQL_UPDATE, 0, F(NO_WHERE), "w:public/t"},
    {"UPDATE t SET a = s.a FROM s WHERE s.id = t.id", PW_SQL_UPDATE, 0, F(NO_WHERE),
     "w:public/t|r:public/s"},
    {"DELETE FROM t", PW_SQL_DELETE, F(NO_WHERE), 0, "w:public/t"},
    {"DELETE FROM only t WHERE true", PW_SQL_DELETE, 0, F(NO_WHERE), "w:public/t"},
    {"DELETE FROM t USING u WHERE t.id = u.id RETURNING t.*", PW_SQL_DELETE, 0, 0,
     "w:public/t|r:public/u"},
    {"MERGE INTO tgt USING src ON tgt.id = src.id WHEN MATCHED THEN UPDATE SET v = src.v "
     "WHEN NOT MATCHED THEN INSERT VALUES (src.id, src.v)",
     PW_SQL_MERGE, 0, 0, "w:public/tgt|r:public/src"},
    {"TRUNCATE a, s.b", PW_SQL_TRUNCATE, 0, 0, "w:public/a|w:s/b"},
    /* SELECT INTO, CTAS */
    {"SELECT * INTO newt FROM old", PW_SQL_SELECT, F(SELECT_INTO), 0, "w:public/newt|r:public/old"},
    {"CREATE TABLE n AS SELECT * FROM o", PW_SQL_DDL, F(CREATE_TABLE_AS), 0,
     "w:public/n|r:public/o"},
    {"CREATE MATERIALIZED VIEW mv AS SELECT * FROM o", PW_SQL_DDL, F(CREATE_TABLE_AS), 0,
     "w:public/mv|r:public/o"},
    {"CREATE TEMP TABLE tt (a int)", PW_SQL_DDL, F(CREATES_TEMP), 0, "w:pg_temp/tt"},
    /* EXPLAIN */
    {"EXPLAIN ANALYZE DELETE FROM t", PW_SQL_EXPLAIN, F(EXPLAIN_ANALYZE) | F(NO_WHERE),
     F(NOT_EXECUTED), "w:public/t"},
    {"EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1 WHERE b", PW_SQL_EXPLAIN, F(EXPLAIN_ANALYZE), 0,
     "w:public/t"},
    {"EXPLAIN DELETE FROM t", PW_SQL_EXPLAIN, F(NOT_EXECUTED), F(EXPLAIN_ANALYZE), "r:public/t"},
    {"EXPLAIN (ANALYZE false) DELETE FROM t WHERE a", PW_SQL_EXPLAIN, F(NOT_EXECUTED),
     F(EXPLAIN_ANALYZE), "r:public/t"},
    {"EXPLAIN SELECT * FROM t", PW_SQL_EXPLAIN, 0, 0, "r:public/t"},
    /* COPY */
    {"COPY t TO STDOUT", PW_SQL_COPY_TO, 0, F(COPY_FILE) | F(COPY_PROGRAM), "r:public/t"},
    {"COPY t FROM STDIN", PW_SQL_COPY_FROM, 0, F(COPY_FILE), "w:public/t"},
    {"COPY t FROM '/etc/passwd'", PW_SQL_COPY_FROM, F(COPY_FILE), 0, "w:public/t"},
    {"COPY t TO '/tmp/out'", PW_SQL_COPY_TO, F(COPY_FILE), 0, "r:public/t"},
    {"COPY t TO PROGRAM 'rm -rf /'", PW_SQL_COPY_TO, F(COPY_PROGRAM), F(COPY_FILE), "r:public/t"},
    {"COPY t FROM PROGRAM 'curl x'", PW_SQL_COPY_FROM, F(COPY_PROGRAM), 0, "w:public/t"},
    {"COPY (DELETE FROM t RETURNING *) TO STDOUT", PW_SQL_COPY_TO, F(NO_WHERE), 0, "w:public/t"},
    {"COPY (SELECT * FROM a JOIN b USING (id)) TO STDOUT", PW_SQL_COPY_TO, 0, 0,
     "r:public/a|r:public/b"},
    /* DDL, DCL */
    {"CREATE TABLE x (a int REFERENCES y)", PW_SQL_DDL, 0, 0, "w:public/x|w:public/y"},
    {"DROP TABLE t", PW_SQL_DDL, 0, 0, "w:public/t"},
    {"DROP TABLE IF EXISTS s.a, b CASCADE", PW_SQL_DDL, 0, 0, "w:s/a|w:public/b"},
    {"ALTER TABLE t ADD COLUMN c int", PW_SQL_DDL, 0, 0, "w:public/t"},
    {"CREATE INDEX ON t (a)", PW_SQL_DDL, 0, 0, "w:public/t"},
    {"CREATE VIEW v AS SELECT * FROM base", PW_SQL_DDL, 0, 0, "w:public/v|r:public/base"},
    {"GRANT SELECT ON t TO bob", PW_SQL_DCL, 0, 0, "w:public/t"},
    {"REVOKE ALL ON s.t FROM bob", PW_SQL_DCL, 0, 0, "w:s/t"},
    /* relations named by a list, a trigger's function (it runs on the table's writes) */
    /* sequences named by text */
    {"SELECT nextval('S.Seq')", PW_SQL_SELECT, 0, 0, "w:s/seq", "nextval"},
    {"SELECT setval('\"S\".\"a.b\"', 1)", PW_SQL_SELECT, 0, 0, "w:S/a.b", "setval"},
    {"SELECT currval('seq')", PW_SQL_SELECT, 0, 0, "r:public/seq", "currval"},
    {"SELECT nextval(lower('S.SEQ'))", PW_SQL_SELECT, 0, 0, "w:?/?", "nextval|lower"},
    {"SELECT nextval('a.b.c')", PW_SQL_SELECT, 0, 0, "w:?/?"},
    {"COMMENT ON TABLE secret.keys IS 'x'", PW_SQL_DDL, 0, 0, "w:secret/keys"},
    {"COMMENT ON COLUMN orders.id IS 'x'", PW_SQL_DDL, 0, 0, "w:public/orders"},
    {"COMMENT ON COLUMN s.t.c IS NULL", PW_SQL_DDL, 0, 0, "w:s/t"},
    {"SECURITY LABEL ON TABLE s.t IS 'x'", PW_SQL_DDL, 0, 0, "w:s/t"},
    {"COMMENT ON SCHEMA s IS 'x'", PW_SQL_DDL, 0, 0, ""},
    {"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit.log_it()", PW_SQL_DDL,
     0, 0, "w:public/t", "audit.log_it"},
    {"GRANT admin TO bob", PW_SQL_DCL, 0, 0, ""},
    {"CREATE ROLE eve SUPERUSER", PW_SQL_DCL, 0, 0, ""},
    {"ALTER SYSTEM SET max_connections = 10", PW_SQL_OTHER, F(ALTER_SYSTEM), 0, ""},
    {"DROP DATABASE prod", PW_SQL_DDL, F(DROP_DATABASE), 0, ""},
    {"CREATE EXTENSION IF NOT EXISTS adminpack", PW_SQL_DDL, F(CREATE_EXTENSION), 0, ""},
    {"DO $$BEGIN DELETE FROM t; END$$", PW_SQL_DO, F(BODY), 0, ""},
    {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", PW_SQL_DDL, F(BODY), 0, ""},
    {"CREATE PROCEDURE p() BEGIN ATOMIC DELETE FROM t; END", PW_SQL_DDL, F(BODY), 0, "w:public/t"},
    {"CALL s.proc(1, now())", PW_SQL_CALL, 0, 0, "", "s.proc|now"},
    /* utilities */
    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", PW_SQL_OTHER, 0, 0, "w:public/t"},
    {"LOCK TABLE t IN ACCESS SHARE MODE", PW_SQL_OTHER, 0, 0, "l:public/t"},
    {"LOCK TABLE t IN ROW SHARE MODE", PW_SQL_OTHER, 0, 0, "l:public/t"},
    {"LOCK TABLE t IN ROW EXCLUSIVE MODE", PW_SQL_OTHER, 0, 0, "w:public/t"},
    {"VACUUM FULL t", PW_SQL_OTHER, 0, 0, "w:public/t"},
    {"ANALYZE t", PW_SQL_OTHER, 0, 0, "w:public/t"},
    {"SHOW search_path", PW_SQL_OTHER, 0, 0, ""},
    {"BEGIN", PW_SQL_TRANSACTION, 0, 0, ""},
    {"COMMIT", PW_SQL_TRANSACTION, 0, 0, ""},
    {"DEALLOCATE ALL", PW_SQL_OTHER, F(FORGET_PREPARED), 0, ""},
    {"DISCARD ALL", PW_SQL_OTHER, F(FORGET_PREPARED), 0, ""},
    /* settings and role escapes */
    {"SET ROLE admin", PW_SQL_SET, F(ROLE_ESCAPE), 0, ""},
    {"RESET ROLE", PW_SQL_SET, F(ROLE_ESCAPE), 0, ""},
    {"SET SESSION AUTHORIZATION postgres", PW_SQL_SET, F(ROLE_ESCAPE), 0, ""},
    {"SET search_path = evil, public", PW_SQL_SET, 0, F(ROLE_ESCAPE), ""},
    {"SELECT set_config('role', 'x', false)", PW_SQL_SELECT, F(ROLE_ESCAPE), 0, "", "set_config"},
    {"SELECT pg_catalog.set_config('ROLE'::text, 'x', false)", PW_SQL_SELECT, F(ROLE_ESCAPE), 0, "",
     "pg_catalog.set_config"},
    {"SELECT set_config('session_authorization', 'x', false)", PW_SQL_SELECT, F(ROLE_ESCAPE), 0,
     ""},
    {"SELECT set_config(name, 'x', false) FROM knobs", PW_SQL_SELECT, F(SET_CONFIG_DYNAMIC), 0,
     "r:public/knobs"},
    {"SELECT set_config('work_mem', '1MB', true)", PW_SQL_SELECT, 0,
     F(ROLE_ESCAPE) | F(SET_CONFIG_DYNAMIC), ""},
    {"SET standard_conforming_strings = off", PW_SQL_SET, F(SCS_CHANGE), 0, ""},
    {"RESET standard_conforming_strings", PW_SQL_SET, F(SCS_CHANGE), 0, ""},
    {"SET client_encoding TO 'SJIS'", PW_SQL_SET, F(ENCODING_CHANGE), 0, ""},
    {"SET NAMES 'GBK'", PW_SQL_SET, F(ENCODING_CHANGE), 0, ""},
    {"SELECT set_config('client_encoding', 'BIG5', false)", PW_SQL_SELECT, F(ENCODING_CHANGE), 0,
     ""},
    {"RESET ALL", PW_SQL_SET, F(RESET_ALL) | F(SCS_CHANGE) | F(ENCODING_CHANGE), 0, ""},
    {"ALTER ROLE x SET standard_conforming_strings = off", PW_SQL_DCL, F(SCS_CHANGE), 0, ""},
    {"ALTER DATABASE d SET client_encoding = 'SJIS'", PW_SQL_DDL, F(ENCODING_CHANGE), 0, ""},
    {"SET LOCAL statement_timeout = 0", PW_SQL_SET, 0, F(SCS_CHANGE), ""},
    /* PREPARE itself does not execute */
    {"PREPARE p1 AS DELETE FROM t WHERE id = $1", PW_SQL_PREPARE, F(NOT_EXECUTED), 0, "w:public/t"},
};
#pragma GCC diagnostic pop

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct case_ *c = &cases[i];
		int rc = pw_sql_analyse(c->sql, strlen(c->sql), &plain, &res, err, sizeof(err));
		int want = c->nstmts ? c->nstmts : 1;
		uint32_t fl = 0;

		if (rc != 0) {
			CHECK(0, "%s (error: %s)", c->sql, err);
			continue;
		}
		for (int k = 0; k < res.nstmts; k++)
			fl |= res.stmts[k].flags;
		bool ok = res.nstmts == want && res.stmts[0].cls == c->cls &&
		          (fl & c->flags) == c->flags && !(fl & c->noflags) &&
		          rels_are(&res, c->rels) && funcs_have(&res, c->funcs);
		if (!ok)
			printf("# nstmts %d class %s flags %#x\n", res.nstmts,
			       pw_sql_class_name(res.stmts[0].cls), fl);
		char name[256];
		snprintf(name, sizeof(name), "%s", c->sql);
		for (char *nl = strchr(name, '\n'); nl; nl = strchr(nl, '\n'))
			*nl = ' '; /* one TAP line per check */
		CHECK(ok, "%s", name);
	}
}

static void test_details(void)
{
	const char *q;

	q = "SELECT $$a;b$$; DROP TABLE t";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(res.nstmts == 2 && res.stmts[1].cls == PW_SQL_DDL && res.rels[0].stmt == 1,
	      "dollar quote: DROP is the second statement");
	CHECK(res.stmts[1].location == 15, "second statement location %d", res.stmts[1].location);

	q = "DO LANGUAGE plperlu $$ system('id') $$";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(res.stmts[0].flags & F(BODY) && !strcmp(res.stmts[0].lang, "plperlu"),
	      "DO language %s", res.stmts[0].lang);
	q = "DO $$ BEGIN END $$";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(!strcmp(res.stmts[0].lang, "plpgsql"), "DO default language plpgsql");
	q = "CREATE FUNCTION f() RETURNS int AS $$ select 1 $$ LANGUAGE C";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(!strcmp(res.stmts[0].lang, "c"), "CREATE FUNCTION language %s", res.stmts[0].lang);

	q = "SET SESSION AUTHORIZATION DEFAULT";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(res.stmts[0].flags & F(ROLE_ESCAPE), "SET SESSION AUTHORIZATION DEFAULT");
	q = "SET ROLE admin; RESET standard_conforming_strings";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(set_has(&res, "role", PW_SQL_SET_SET) &&
	          set_has(&res, "standard_conforming_strings", PW_SQL_SET_RESET),
	      "settings named with how");
	q = "SELECT set_config('Search_Path', 'x', false)";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(set_has(&res, "search_path", PW_SQL_SET_CONFIG), "set_config name lower-cased");
	q = "ALTER ROLE x SET role = 'admin'";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(set_has(&res, "role", PW_SQL_SET_ALTER) && res.stmts[0].flags & F(ROLE_ESCAPE),
	      "ALTER ROLE SET role");
	q = "CREATE EXTENSION plperlu";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(!strcmp(res.stmts[0].object, "plperlu"), "extension name");
	q = "DROP DATABASE \"Prod\"";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(!strcmp(res.stmts[0].object, "Prod"), "dropped database name");
	q = "EXPLAIN ANALYZE DELETE FROM t";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(res.stmts[0].inner == PW_SQL_DELETE, "EXPLAIN inner class");
	q = "COPY (DELETE FROM t RETURNING *) TO STDOUT";
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(res.stmts[0].inner == PW_SQL_DELETE, "COPY (query) inner class");
}

static void test_errors(void)
{
	const char *q = "SELECT * FROM t WHERE";
	int rc = pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));

	CHECK(rc == -1 && strstr(err, "syntax error") && res.error_pos == 22,
	      "syntax error: %s (pos %d)", err, res.error_pos);
	q = "SELECT 1; SELEC 2";
	rc = pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(rc == -1 && res.error_pos == 11, "error in the second statement: %s", err);
	rc = pw_sql_analyse("SELECT 1\0; DROP TABLE t", 23, &plain, &res, err, sizeof(err));
	CHECK(rc == -1, "embedded NUL refused: %s", err);
	/* not NUL-terminated: only len bytes count */
	rc = pw_sql_analyse("SELECT * FROM a; DROP TABLE b", 15, &plain, &res, err, sizeof(err));
	CHECK(rc == 0 && res.nstmts == 1 && rels_are(&res, "r:public/a"), "len respected");

	/* limits are errors, never truncation */
	static char big[64 * 1024];
	size_t n = (size_t)snprintf(big, sizeof(big), "SELECT 1");
	for (int i = 0; i < 70; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "; SELECT 1");
	rc = pw_sql_analyse(big, n, &plain, &res, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "statements"), "71 statements: %s", err);
	n = (size_t)snprintf(big, sizeof(big), "SELECT * FROM t0");
	for (int i = 1; i < 300; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, ", t%d", i);
	rc = pw_sql_analyse(big, n, &plain, &res, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "relation"), "300 relations: %s", err);
	n = (size_t)snprintf(big, sizeof(big), "SELECT f0()");
	for (int i = 1; i < 200; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, ", f%d()", i);
	rc = pw_sql_analyse(big, n, &plain, &res, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "function"), "200 functions: %s", err);
	char *huge = malloc(PW_SQL_MAX_TEXT + 2);
	memset(huge, ' ', PW_SQL_MAX_TEXT + 1);
	rc = pw_sql_analyse(huge, PW_SQL_MAX_TEXT + 1, &plain, &res, err, sizeof(err));
	CHECK(rc == -1, "longer than the maximum text: %s", err);
	free(huge);
}

static void test_search_path(void)
{
	static const char *const path[] = {"$user", "public"};
	struct pw_sql_session s = {.user = "alice", .search_path = path, .n_search_path = 2};
	const char *q = "SELECT * FROM accounts";

	/* temp tables possible: pg_temp first, then alice, then public; all flagged ambiguous */
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.nrels == 3 && !strcmp(res.rels[0].schema, "pg_temp") &&
	          !strcmp(res.rels[1].schema, "alice") && !strcmp(res.rels[2].schema, "public"),
	      "unqualified: pg_temp, $user, public in order");
	CHECK(res.stmts[0].flags & F(AMBIGUOUS) && res.rels[0].flags & PW_SQL_R_AMBIGUOUS &&
	          res.rels[0].flags & PW_SQL_R_UNQUALIFIED,
	      "pg_temp shadowing flagged ambiguous");

	s.no_temp_tables = true;
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.nrels == 2 && !strcmp(res.rels[0].schema, "alice") &&
	          res.stmts[0].flags & F(AMBIGUOUS),
	      "\"$user\" expands and can shadow public");

	s.user = NULL;
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.nrels == 1 && !strcmp(res.rels[0].schema, "public") &&
	          !(res.stmts[0].flags & F(AMBIGUOUS)),
	      "no user: \"$user\" skipped, not ambiguous");

	q = "SELECT * FROM pg_temp.x, pg_class";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(rels_are(&res, "r:pg_temp/x|r:pg_catalog/pg_class|r:public/pg_class"),
	      "explicit pg_temp kept; pg_* names also resolve to pg_catalog first");

	static const char *const temp_last[] = {"public", "pg_temp"};
	struct pw_sql_session t = {.search_path = temp_last, .n_search_path = 2};
	q = "SELECT * FROM accounts";
	pw_sql_analyse(q, strlen(q), &t, &res, err, sizeof(err));
	CHECK(res.nrels == 2 && !strcmp(res.rels[0].schema, "public") &&
	          !strcmp(res.rels[1].schema, "pg_temp"),
	      "pg_temp listed in the path is searched there");

	static const char *const empty[] = {""};
	struct pw_sql_session e = {
	    .search_path = empty, .n_search_path = 0, .no_temp_tables = true};
	pw_sql_analyse(q, strlen(q), &e, &res, err, sizeof(err));
	CHECK(res.nrels == 1 && res.rels[0].flags & PW_SQL_R_UNRESOLVED, "empty path: unresolved");

	/* the same text under two sessions: the cached analysis is resolved per session */
	struct pw_sql_session d = {.user = "bob"};
	pw_sql_analyse(q, strlen(q), &d, &res, err, sizeof(err));
	CHECK(rels_are(&res, "r:pg_temp/accounts|r:bob/accounts|r:public/accounts"),
	      "default path \"$user\", public with temp");
}

static void test_prepared(void)
{
	struct pw_sql_session s = plain;
	const char *q = "PREPARE wipe (int) AS DELETE FROM t WHERE id = $1; "
	                "PREPARE look AS SELECT * FROM secrets";

	s.n_prepared = 0;
	CHECK(pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err)) == 0 &&
	          res.stmts[0].cls == PW_SQL_PREPARE && res.stmts[0].inner == PW_SQL_DELETE &&
	          !strcmp(res.stmts[0].object, "wipe"),
	      "PREPARE analysed");
	CHECK(pw_sql_session_apply(&s, &res) == 0 && s.n_prepared == 2, "PREPAREs remembered");
	CHECK(pw_sql_prepared_lookup(&s, "wipe") &&
	          pw_sql_prepared_class(pw_sql_prepared_lookup(&s, "wipe")) == PW_SQL_DELETE,
	      "lookup");

	q = "EXECUTE wipe(1)";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.stmts[0].cls == PW_SQL_EXECUTE && res.stmts[0].inner == PW_SQL_DELETE &&
	          rels_are(&res, "w:public/t") && !(res.stmts[0].flags & F(NOT_EXECUTED)),
	      "EXECUTE reports what it runs");
	q = "EXPLAIN ANALYZE EXECUTE look";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.stmts[0].cls == PW_SQL_EXPLAIN && res.stmts[0].inner == PW_SQL_EXECUTE &&
	          rels_are(&res, "r:public/secrets"),
	      "EXPLAIN ANALYZE EXECUTE expanded");
	q = "EXPLAIN EXECUTE wipe(1)";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(rels_are(&res, "r:public/t"), "EXPLAIN EXECUTE (not executing) reads only");
	q = "PREPARE x AS UPDATE t2 SET a = 1; EXECUTE x";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.stmts[1].inner == PW_SQL_UPDATE && res.stmts[1].flags & F(NO_WHERE) &&
	          !(res.stmts[1].flags & F(NOT_EXECUTED)) && res.nrels == 2 &&
	          res.rels[1].stmt == 1 && res.rels[1].access == PW_SQL_WRITE,
	      "EXECUTE of a PREPARE earlier in the same string");
	q = "EXECUTE nosuch";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(res.stmts[0].flags & F(UNKNOWN_PREPARED) && res.nrels == 0, "unknown name flagged");

	q = "DEALLOCATE wipe";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	pw_sql_session_apply(&s, &res);
	CHECK(!pw_sql_prepared_lookup(&s, "wipe") && pw_sql_prepared_lookup(&s, "look"),
	      "DEALLOCATE forgets one");
	q = "DISCARD ALL";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	pw_sql_session_apply(&s, &res);
	CHECK(s.n_prepared == 0, "DISCARD ALL forgets all");
	q = "PREPARE a AS SELECT 1; PREPARE b AS SELECT 2; DEALLOCATE ALL";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	pw_sql_session_apply(&s, &res);
	CHECK(s.n_prepared == 0, "DEALLOCATE ALL after PREPAREs in one string");
	/* protocol-level: any statement under a name */
	q = "UPDATE t SET a = 1";
	pw_sql_analyse(q, strlen(q), &s, &res, err, sizeof(err));
	CHECK(pw_sql_prepared_remember(&s, "", &res, 0) == 0 &&
	          pw_sql_prepared_class(pw_sql_prepared_lookup(&s, "")) == PW_SQL_UPDATE,
	      "unnamed protocol statement remembered");
	pw_sql_session_free(&s);
	CHECK(s.n_prepared == 0, "session freed");
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void test_cache_and_speed(void)
{
	const char *q = "SELECT abalance FROM pgbench_accounts WHERE aid = 1";
	struct pw_sql_cache_stats before = *pw_sql_cache_stats_local();
	char buf[128];
	int iters = 5000;
	double t0, t1;

	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	CHECK(pw_sql_cache_stats_local()->hits >= before.hits + 1, "repeat is a cache hit");
	CHECK(rels_are(&res, "r:public/pgbench_accounts"), "hit gives the same analysis");

	/* uncached: each text differs beyond its numbers (a comment is kept in the key) */
	t0 = now_us();
	for (int i = 0; i < iters; i++) {
		int n = snprintf(buf, sizeof(buf),
		                 "SELECT abalance FROM pgbench_accounts WHERE aid = 1 /* %d */", i);
		pw_sql_analyse(buf, (size_t)n, &plain, &res, err, sizeof(err));
	}
	t1 = now_us();
	printf("# parse+analyse (miss): %.2f us per statement\n", (t1 - t0) / iters);
	t0 = now_us();
	for (int i = 0; i < iters; i++)
		pw_sql_analyse(q, strlen(q), &plain, &res, err, sizeof(err));
	t1 = now_us();
	printf("# cache hit: %.2f us per statement\n", (t1 - t0) / iters);
	const struct pw_sql_cache_stats *st = pw_sql_cache_stats_local();
	printf("# cache: %llu hits, %llu misses, %llu entries, %llu bytes\n",
	       (unsigned long long)st->hits, (unsigned long long)st->misses,
	       (unsigned long long)st->entries, (unsigned long long)st->bytes);
	CHECK(st->entries <= 1024, "cache bounded to 1024 entries");
	pw_sql_cache_clear();
	CHECK(pw_sql_cache_stats_local()->entries == 0, "cache cleared");
}

static uint64_t hits(void)
{
	return pw_sql_cache_stats_local()->hits;
}

/* Texts that differ only in literals share one cache entry, unless a decision read one;
 * nothing else does. */
static void test_normalised_keys(void)
{
	struct pw_sql_result r2;
	uint64_t h;
	const char *a = "SELECT abalance FROM pgbench_accounts WHERE aid = 40017";
	const char *b = "SELECT abalance FROM pgbench_accounts WHERE aid = 4242000";

	pw_sql_cache_clear();
	pw_sql_analyse(a, strlen(a), &plain, &res, err, sizeof(err));
	h = hits();
	CHECK(pw_sql_analyse(b, strlen(b), &plain, &r2, err, sizeof(err)) == 0 && hits() == h + 1,
	      "numbers only differ: one cache entry");
	CHECK(rels_are(&r2, "r:public/pgbench_accounts") && r2.spans_approx,
	      "the shared entry gives the same analysis, spans marked approximate");

	static const struct {
		const char *x, *y, *what;
	} distinct[] = {
	    {"SELECT * FROM t1 WHERE a = 1", "SELECT * FROM t2 WHERE a = 1", "digits in names"},
	    {"SELECT $1 FROM t", "SELECT $2 FROM t", "parameters"},
	    {"SELECT 1 FROM t", "SELECT 1.5 FROM t", "an integer and a decimal"},
	    {"SELECT 40000 FROM t3", "SELECT 4000000000 FROM t3", "an int32 and a larger integer"},
	    {"ALTER INDEX i ALTER COLUMN 1 SET STATISTICS 1",
	     "ALTER INDEX i ALTER COLUMN 0 SET STATISTICS 1", "integers the grammar checks"},
	    {"SELECT set_config('work_mem', '1', false)", "SELECT set_config('role', '1', false)",
	     "set_config names"},
	    {"SELECT 1 FROM \"t1\"", "SELECT 1 FROM \"t2\"", "quoted names"},
	    {"SELECT 1 /* 1 */ FROM a", "SELECT 1 /* 2 */ FROM a", "comments"},
	    {"SELECT E'\\x', 1 FROM a", "SELECT E'\\x', 2 FROM a", "E'' strings (exact keys)"},
	    {"SELECT $$1$$, 1 FROM a", "SELECT $$1$$, 2 FROM a", "dollar quotes (exact keys)"},
	};
	for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++) {
		pw_sql_analyse(distinct[i].x, strlen(distinct[i].x), &plain, &res, err,
		               sizeof(err));
		h = hits();
		pw_sql_analyse(distinct[i].y, strlen(distinct[i].y), &plain, &r2, err, sizeof(err));
		CHECK(hits() == h, "%s: separate cache entries", distinct[i].what);
	}
	const char *sa = "SELECT * FROM customers WHERE email = 'a@example.com' AND id > 7";
	const char *sb = "SELECT * FROM customers WHERE email = 'it''s@example.com' AND id > 8";
	pw_sql_analyse(sa, strlen(sa), &plain, &res, err, sizeof(err));
	h = hits();
	pw_sql_analyse(sb, strlen(sb), &plain, &r2, err, sizeof(err));
	CHECK(hits() == h + 1 && rels_are(&r2, "r:public/customers"),
	      "string literals only differ: one cache entry");
	const char *p1 = "SET search_path = 'secret'";
	const char *p2 = "SET search_path = 'public'";
	pw_sql_analyse(p1, strlen(p1), &plain, &res, err, sizeof(err));
	pw_sql_analyse(p2, strlen(p2), &plain, &r2, err, sizeof(err));
	CHECK(res.nsets == 1 && r2.nsets == 1 && !strcmp(res.sets[0].value, "secret") &&
	          !strcmp(r2.sets[0].value, "public"),
	      "a search_path read from a string keeps its own analysis");
	const char *c1 = "SELECT set_config('role', 'x', false)";
	const char *c2 = "SELECT set_config('work_mem', 'x', false)";
	pw_sql_analyse(c1, strlen(c1), &plain, &res, err, sizeof(err));
	pw_sql_analyse(c2, strlen(c2), &plain, &r2, err, sizeof(err));
	CHECK((res.stmts[0].flags & PW_SQL_F_ROLE_ESCAPE) &&
	          !(r2.stmts[0].flags & PW_SQL_F_ROLE_ESCAPE),
	      "set_config('role') and set_config('work_mem') keep their own analyses");
	/* an empty query (isolationtester sends them) is cached with a key of 0 bytes */
	CHECK(pw_sql_analyse("", 0, &plain, &res, err, sizeof(err)) == 0 && res.nstmts == 0,
	      "an empty text has no statement");
	h = hits();
	CHECK(pw_sql_analyse("", 0, &plain, &res, err, sizeof(err)) == 0 && hits() == h + 1 &&
	          res.nstmts == 0 && !res.spans_approx,
	      "an empty text again: a cache hit");
	const char *e0 = "EXPLAIN (ANALYZE 0) DELETE FROM t WHERE a = 1";
	const char *e1 = "EXPLAIN (ANALYZE 1) DELETE FROM t WHERE a = 1";
	pw_sql_analyse(e0, strlen(e0), &plain, &res, err, sizeof(err));
	pw_sql_analyse(e1, strlen(e1), &plain, &r2, err, sizeof(err));
	CHECK((res.stmts[0].flags & PW_SQL_F_NOT_EXECUTED) &&
	          (r2.stmts[0].flags & PW_SQL_F_EXPLAIN_ANALYZE),
	      "EXPLAIN (ANALYZE 0) and (ANALYZE 1) keep their own analyses");
	pw_sql_cache_clear();
}

/* Deep nesting: 1 MiB of `SELECT 1+1+...` (half a million levels), of parentheses and of other
 * chains is refused before the parser sees it; the deepest text admitted parses on the private
 * stack, whose use is reported. Nothing may crash. */
/* Nesting: "prefix (unit x n) middle (close x n)". Every shape, at the largest text a client
 * may send, is refused or analysed without a crash; at a depth the server itself accepts it is
 * analysed, within a third of the parse stack. */
static char *nest(const char *pre, const char *unit, int n, const char *mid, const char *close,
                  size_t *len)
{
	size_t cap = strlen(pre) + (strlen(unit) + strlen(close)) * (size_t)n + strlen(mid) + 1;
	char *q = malloc(cap), *p = q;
	p += sprintf(p, "%s", pre);
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s", unit);
	p += sprintf(p, "%s", mid);
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s", close);
	*len = (size_t)(p - q);
	return q;
}

static void test_deep(void)
{
	static const struct {
		const char *what, *pre, *unit, *mid, *close;
		int accepted; /* a depth PostgreSQL 15 parses (and plans) */
	} shapes[] = {
	    {"1+1+...", "SELECT 1", "+1", "", "", 4000},
	    {"CROSS JOIN chain", "SELECT 1 FROM (VALUES(1)) a", " CROSS JOIN (VALUES(1)) x", "", "",
	     4000},
	    {"UNION chain", "SELECT 1", " UNION SELECT 1", "", "", 4000},
	    {"sub-selects", "SELECT ", "(SELECT ", "1", ")", 2000},
	    {"function calls", "SELECT ", "f(", "1", ")", 100},
	    {"ARRAY[[[", "SELECT ARRAY", "[", "1", "]", 2000},
	    {"NOT NOT", "SELECT ", "NOT ", "true", "", 4000},
	    {"casts", "SELECT 1", "::int", "", "", 4000},
	    {"CASE", "SELECT ", "CASE WHEN true THEN ", "1", " END", 1000},
	    {"WITH", "", "WITH a AS (", "SELECT 1", ") SELECT 1", 500},
	    {"EXISTS", "SELECT ", "EXISTS (SELECT ", "1", ")", 1000},
	    {"a OR (", "SELECT 1 WHERE ", "a OR (", "true", ")", 1000},
	    {"COLLATE", "SELECT 'a'", " COLLATE \"C\"", "", "", 4000},
	    {"|| chain", "SELECT 'a'", " || 'x'", "", "", 4000},
	    /* bare parentheses make no nodes: the server takes 9000; pgward counts every one as
	     * a level that may (a call, a sub-select) and takes 2500 */
	    {"parentheses", "SELECT ", "(", "1", ")", 2000},
	    {"- - -", "SELECT ", "- ", "1", "", 4000},
	};
	size_t len, most = 0;
	char *q;
	int rc;

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		size_t per = strlen(shapes[i].unit) + strlen(shapes[i].close);
		int n = (int)((PW_SQL_MAX_TEXT - 64) / per);
		q = nest(shapes[i].pre, shapes[i].unit, n, shapes[i].mid, shapes[i].close, &len);
		double t0 = now_us();
		rc = pw_sql_analyse(q, len, &plain, &res, err, sizeof(err));
		printf("# %s, %d levels in %zu bytes: %s, %.0f ms\n", shapes[i].what, n, len,
		       rc ? err : "analysed", (now_us() - t0) / 1e3);
		CHECK(rc == -1, "%s at 1 MiB: refused, no crash", shapes[i].what);
		free(q);
		q = nest(shapes[i].pre, shapes[i].unit, shapes[i].accepted, shapes[i].mid,
		         shapes[i].close, &len);
		pw_sql__stack_touched();
		t0 = now_us();
		rc = pw_sql_analyse(q, len, &plain, &res, err, sizeof(err));
		size_t st = pw_sql__stack_touched();
		most = st > most ? st : most;
		printf("# %s, %d levels (the server parses them): %s, %.1f ms, parse stack %zu "
		       "KiB\n",
		       shapes[i].what, shapes[i].accepted, rc ? err : "analysed",
		       (now_us() - t0) / 1e3, st / 1024);
		CHECK(rc == 0, "%s, %d levels: analysed as the server parses it", shapes[i].what,
		      shapes[i].accepted);
		free(q);
	}
	/* the deepest admitted: MAX_LEVELS of chain, 10000 "+1" */
	q = nest("SELECT 1", "+1", 9990, "", "", &len);
	pw_sql__stack_touched();
	rc = pw_sql_analyse(q, len, &plain, &res, err, sizeof(err));
	size_t st = pw_sql__stack_touched();
	most = st > most ? st : most;
	printf("# the deepest admitted (9990 levels of +1): %s, parse stack %zu KiB\n",
	       rc ? err : "analysed", st / 1024);
	CHECK(rc == 0, "9990 levels of +1 analysed");
	free(q);
	CHECK(most < (96ul << 20) / 3,
	      "every admitted statement stays within a third of the parse "
	      "stack (at most %zu KiB)",
	      most / 1024);

	/* the statement that crashed pgwardd: 41,000 CROSS JOINs, well under 1 MiB */
	q = nest("SELECT 1 FROM (VALUES(1)) a", " CROSS JOIN (VALUES(1)) x", 41000, "", "", &len);
	rc = pw_sql_analyse(q, len, &plain, &res, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "too complex") && len < PW_SQL_MAX_TEXT,
	      "41,000 CROSS JOINs (%zu bytes): refused as too complex (%s)", len, err);
	free(q);
	/* what the server runs happily: a 5,000-term OR, a 200 KB VALUES list */
	q = nest("SELECT 1 FROM t WHERE a = 0", " OR a = 1", 5000, "", "", &len);
	rc = pw_sql_analyse(q, len, &plain, &res, err, sizeof(err));
	CHECK(rc == 0 && rels_are(&res, "r:public/t"), "a 5,000-term OR analysed (%s)",
	      rc ? err : "ok");
	free(q);
	q = nest("SELECT 1 FROM t WHERE a = 0", " AND b = 1 OR c = 2", 5000, "", "", &len);
	rc = pw_sql_analyse(q, len, &plain, &res, err, sizeof(err));
	CHECK(rc == 0, "5,000 ANDs within ORs analysed (%s)", rc ? err : "ok");
	free(q);
	q = malloc(PW_SQL_MAX_TEXT);
	size_t k = (size_t)snprintf(q, PW_SQL_MAX_TEXT, "INSERT INTO t VALUES (0)");
	for (int i = 1; k + 16 < 200000; i++)
		k += (size_t)snprintf(q + k, PW_SQL_MAX_TEXT - k, ", (%d)", i);
	rc = pw_sql_analyse(q, k, &plain, &res, err, sizeof(err));
	CHECK(rc == 0 && rels_are(&res, "w:public/t"), "200 KB shallow INSERT analysed (%s)",
	      rc ? err : "ok");
	free(q);
}

/* PostgreSQL's regression SQL, psql meta-command lines dropped, split by the parser (the
 * scanner when a file does not parse as a whole), every statement analysed. */
static struct pw_sql_result fresh;
static long cache_diff;

static void test_regress(void)
{
	/* tests/run.sh points this at the source scripts/pgsrc.sh fetched */
	const char *dir = getenv("PGWARD_REGRESS_SQL");
	if (!dir)
		dir = "/var/cache/pgward/postgresql-15.18/src/test/regress/sql";
	DIR *d = opendir(dir);
	struct dirent *de;
	long ok = 0, bad = 0, files = 0;

	if (!d) {
		printf("# SKIP regression corpus: %s is missing\n", dir);
		return;
	}
	while ((de = readdir(d))) {
		char path[1024];
		size_t l = strlen(de->d_name);
		FILE *f;
		char *text = NULL, *line = NULL;
		size_t tlen = 0, cap = 0;
		ssize_t got;

		if (l < 5 || strcmp(de->d_name + l - 4, ".sql"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		files++;
		/* drop psql meta-commands (and the COPY ... FROM stdin data that ends with \.) */
		FILE *m = open_memstream(&text, &tlen);
		bool in_copy_data = false;
		while ((got = getline(&line, &cap, f)) > 0) {
			if (in_copy_data) {
				in_copy_data = strncmp(line, "\\.", 2) != 0;
				continue;
			}
			if (line[0] == '\\')
				continue;
			if (strcasestr(line, "from stdin") && strstr(line, ";"))
				in_copy_data = true;
			fwrite(line, 1, (size_t)got, m);
		}
		fclose(m);
		fclose(f);
		free(line);
		PgQuerySplitResult sp = pg_query_split_with_scanner(text);
		for (int i = 0; !sp.error && i < sp.n_stmts; i++) {
			const char *s = text + sp.stmts[i]->stmt_location;
			size_t sl =
			    sp.stmts[i]->stmt_len ? (size_t)sp.stmts[i]->stmt_len : strlen(s);
			if (pw_sql_analyse(s, sl, &plain, &res, err, sizeof(err)) == 0) {
				ok++;
				/* what the cache gave (often the entry of a text that differs in
				 * literals only) must be what a fresh parse gives */
				if (pw_sql_analyse_uncached(s, sl, &plain, &fresh, err,
				                            sizeof(err)) != 0 ||
				    !sqlkey_same_analysis(&res, &fresh)) {
					if (cache_diff++ < 5)
						printf("# cache differs: %.*s\n", (int)sl, s);
				}
			} else {
				bad++;
			}
		}
		if (sp.error) {
			/* the scanner gave up (deliberately bad tokens): one statement a line
			 * group ending in ';', which is how these files are written */
			printf("# %s: cannot split (%s): by lines\n", de->d_name,
			       sp.error->message);
			for (char *p = text, *e; *p; p = e) {
				e = strstr(p, ";\n");
				e = e ? e + 2 : p + strlen(p);
				if (pw_sql_analyse(p, (size_t)(e - p), &plain, &res, err,
				                   sizeof(err)) == 0)
					ok++;
				else
					bad++;
			}
		}
		pg_query_free_split_result(sp);
		free(text);
	}
	closedir(d);
	CHECK(cache_diff == 0,
	      "every cached analysis of the corpus equals a fresh parse (%ld differ)", cache_diff);
	printf("# regression corpus: %ld files, %ld statements analysed, %ld refused "
	       "(parse errors, mostly psql variables and deliberate errors), no crash\n",
	       files, ok, bad);
	CHECK(files > 100 && ok > 10000, "regression corpus analysed without a crash");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_cases();
	test_details();
	test_errors();
	test_search_path();
	test_prepared();
	test_cache_and_speed();
	test_normalised_keys();
	test_deep();
	if (!getenv("PGWARD_SQL_NO_REGRESS"))
		test_regress();
	pw_sql_cache_clear();
	return check_done();
}
