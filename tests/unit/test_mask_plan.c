/* Masking plans as a table (mask.h): for each statement, what each result column carries
 * (c clean, M a masked column as stored, D derived from masked data; * the columns cannot be
 * told apart, so all are masked; - no rows) or the refusal it gets, read against a small
 * catalog: public.people(id, name, ssn, email, salary) with ssn, salary masked and email
 * masked but allowed in predicates, public.orders, a view over people and one that leaves
 * the masked columns out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/catalog.h"
#include "pgward/config.h"
#include "pgward/inspect.h"
#include "pgward/mask.h"
#include "pgward/policy_session.h"
#include "pgward/sql.h"

static const char config_json[] =
    "{\"listen\": [{\"host\": \"127.0.0.1\", \"port\": 1}],"
    " \"upstreams\": {\"u\": {\"host\": \"127.0.0.1\", \"user\": \"x\"}},"
    " \"identities\": [{\"name\": \"agent\", \"auth\": \"trust\", \"upstream\": \"u\","
    "  \"unmask\": [\"public.people.name\"],"
    "  \"rules\": ["
    "   {\"name\": \"ssn\", \"action\": \"mask\", \"columns\": \"public.people.ssn\","
    "    \"strategy\": \"partial\", \"keep\": 4},"
    "   {\"name\": \"pii\", \"action\": \"mask\", \"columns\": [\"public.*.salary\","
    "    \"public.people.name\"], \"strategy\": \"redact\"},"
    "   {\"name\": \"email\", \"action\": \"mask\", \"columns\": \"public.people.email\","
    "    \"strategy\": \"email\", \"predicates\": true},"
    "   {\"action\": \"allow\"}]}]}";

static const struct {
	const char *sql, *want;
} cases[] = {
    /* columns, aliases, stars */
    {"SELECT * FROM people", "ccMMM"},
    {"SELECT id, name FROM people", "cc"},
    {"SELECT ssn AS x, p.ssn, p.salary FROM people p", "MMM"},
    {"SELECT ssn FROM people p, people q", "D"},
    {"SELECT \"ssn\", U&\"\\0073sn\" FROM people", "MM"},
    {"SELECT p.* , o.* FROM people p, orders o", "ccMMMccc"},
    {"SELECT o.*, 1 FROM orders o, people p", "cccc"},
    {"SELECT * FROM orders JOIN people USING (id)", "ccccMMM"},
    {"SELECT * FROM public.people", "ccMMM"},
    /* expressions are masked whole */
    {"SELECT lower(ssn), ssn || 'x', ssn::text, length(ssn), id + salary FROM people", "DDDDD"},
    {"SELECT CASE WHEN id = 1 THEN ssn END, coalesce(ssn, name) FROM people", "DD"},
    {"SELECT CASE WHEN ssn IS NULL THEN 'a' END FROM people", "deny:CASE condition"},
    {"SELECT CASE ssn WHEN '1' THEN 1 END FROM people", "deny:CASE condition"},
    {"SELECT max(ssn), count(salary), string_agg(name, ',') FROM people", "DDc"},
    {"SELECT row_to_json(p), p, (p).ssn, json_build_object('s', ssn) FROM people p", "DDMD"},
    {"SELECT (p).id, (ssn).x FROM people p", "cD"},
    {"SELECT ARRAY[ssn], ROW(id, ssn) FROM people", "DD"},
    {"SELECT lag(ssn) OVER (ORDER BY id) FROM people", "D"},
    /* subqueries, CTEs, set operations, views */
    {"SELECT x FROM (SELECT ssn AS x FROM people) s", "M"},
    {"SELECT y FROM (SELECT ssn FROM people) s(y)", "M"},
    {"SELECT ssn FROM (SELECT ssn FROM people) s", "M"},
    {"SELECT upper FROM (SELECT upper(ssn) FROM people) s", "D"},
    {"SELECT (SELECT ssn FROM people LIMIT 1), 1", "Dc"},
    {"WITH c AS (SELECT ssn, id FROM people) SELECT * FROM c", "Mc"},
    {"WITH RECURSIVE r(n, s) AS (SELECT 1, ssn FROM people UNION ALL SELECT n + 1, s FROM r "
     "WHERE n < 3) SELECT * FROM r",
     "cD"},
    {"SELECT name FROM people UNION ALL SELECT ssn FROM people", "D"},
    {"SELECT id FROM orders UNION SELECT id FROM people", "c"},
    {"SELECT * FROM people_v", "cM"},
    {"SELECT * FROM people_safe", "c"},
    {"SELECT * FROM generate_series(1, 3) g, people", "*"},
    {"SELECT * FROM generate_series(1, 3) g", "*c"},
    {"SELECT p.id, s.ssn FROM people p, LATERAL (SELECT p.ssn) s", "cM"},
    {"VALUES (1, 'a')", "cc"},
    /* DML returning */
    {"UPDATE people SET id = id WHERE id = 1 RETURNING ssn, id", "Mc"},
    {"DELETE FROM people WHERE id = 1 RETURNING *", "ccMMM"},
    {"INSERT INTO orders (id) VALUES (9) RETURNING id", "c"},
    {"DELETE FROM people WHERE id = 9 RETURNING salary", "M"},
    {"COPY people TO STDOUT", "ccMMM"},
    {"COPY people (ssn, id) TO STDOUT WITH (FORMAT csv)", "Mc"},
    {"COPY (SELECT lower(ssn) FROM people) TO STDOUT", "D"},
    {"SHOW search_path", "-"},
    {"BEGIN", "-"},
    /* predicates */
    {"SELECT id FROM people WHERE ssn = '1'", "deny:WHERE"},
    {"SELECT id FROM people WHERE email = 'a@b'", "c"},
    {"SELECT id FROM people ORDER BY ssn", "deny:ORDER BY"},
    {"SELECT ssn AS s FROM people ORDER BY s", "deny:ORDER BY"},
    {"SELECT ssn FROM people ORDER BY 1", "deny:ORDER BY"},
    {"SELECT count(*) FROM people GROUP BY salary", "deny:GROUP BY"},
    {"SELECT count(*) FROM people HAVING max(salary) > 1", "deny:HAVING"},
    {"SELECT DISTINCT ssn FROM people", "deny:DISTINCT"},
    {"SELECT DISTINCT ON (ssn) id FROM people", "deny:DISTINCT"},
    {"SELECT rank() OVER (PARTITION BY ssn) FROM people", "deny:PARTITION BY"},
    {"SELECT * FROM people p JOIN orders o ON o.amount = p.salary", "deny:JOIN"},
    {"SELECT * FROM people NATURAL JOIN orders", "ccMMMcc"},
    {"SELECT id FROM orders WHERE EXISTS (SELECT 1 FROM people WHERE ssn LIKE '1%')", "deny:WHERE"},
    {"SELECT count(*) FILTER (WHERE salary > 10) FROM people", "deny:FILTER"},
    {"SELECT string_agg(id::text, ',' ORDER BY ssn) FROM people", "deny:aggregate's ORDER BY"},
    {"SELECT id FROM people LIMIT (SELECT max(salary) FROM people)", "deny:LIMIT"},
    {"UPDATE people SET id = 2 WHERE ssn = 'x'", "deny:WHERE"},
    {"DELETE FROM people WHERE salary > 1", "deny:WHERE"},
    {"SELECT * FROM people_v WHERE ssn = '1'", "deny:WHERE"},
    /* copies, calls, catalog views, code */
    {"INSERT INTO orders SELECT salary, 1, 1 FROM people", "deny:INSERT ... SELECT"},
    {"INSERT INTO orders (id) VALUES ((SELECT salary FROM people LIMIT 1))",
     "deny:INSERT ... SELECT"},
    {"CREATE TABLE t AS SELECT ssn FROM people", "deny:CREATE TABLE AS"},
    {"SELECT ssn INTO t FROM people", "deny:SELECT INTO"},
    {"CREATE VIEW v AS SELECT lower(ssn) FROM people", "deny:view"},
    {"UPDATE people SET name = ssn", "deny:UPDATE ... SET"},
    {"MERGE INTO orders o USING people p ON o.id = p.id WHEN MATCHED THEN DELETE", "deny:MERGE"},
    {"SELECT pg_notify('c', ssn) FROM people", "deny:pg_notify"},
    {"SELECT set_config('a.b', salary::text, false) FROM people", "deny:set_config"},
    {"SELECT leak(ssn) FROM people", "deny:leak"},
    {"SELECT leak('x')", "D"},
    {"SELECT * FROM pg_stats", "deny:pg_stats"},
    {"SELECT query FROM pg_catalog.pg_stat_activity", "deny:pg_stat_activity"},
    {"SELECT query_to_xml('select * from people', true, true, '')", "deny:query_to_xml"},
    {"DO $$BEGIN NULL; END$$", "deny:DO"},
    {"ALTER TABLE people RENAME COLUMN ssn TO x", "deny:rename"},
    {"ALTER TABLE people ADD COLUMN z int", "deny:alter"},
    {"ALTER TABLE orders ADD COLUMN z int", "-"},
    {"COPY people TO '/tmp/x'", "deny:server file"},
    {"COPY (SELECT ssn FROM people) TO STDOUT WITH (ENCODING 'LATIN1')", "deny:COPY option"},
    {"EXPLAIN ANALYZE SELECT id FROM people WHERE ssn = '1'", "deny:WHERE"},
    {"CREATE RULE r AS ON INSERT TO orders DO ALSO INSERT INTO orders SELECT salary, 1, 1 "
     "FROM people",
     "deny:rule"},
    {"CREATE TABLE t AS EXECUTE p", "deny:CREATE TABLE AS"},
    {"ALTER TABLE orders ATTACH PARTITION people DEFAULT", "deny:attach"},
    {"CREATE INDEX ON people ((ssn::int))", "deny:index"},
    {"SELECT p.id, count(*) FROM people p, generate_series(1, p.salary) g GROUP BY p.id",
     "deny:set-returning"},
    {"SELECT id, generate_series(1, salary) FROM people", "deny:set-returning"},
    {"SELECT lower(ssn) FROM people INTERSECT SELECT '078'", "deny:INTERSECT"},
    {"SELECT ssn FROM people UNION SELECT ssn FROM people", "deny:UNION"},
    {"INSERT INTO people (id, ssn) VALUES (9, '078-05-1120')", "deny:writing a masked"},
    {"INSERT INTO people (id, name) VALUES (9, 'x') ON CONFLICT (id) DO UPDATE SET salary = 1",
     "deny:writing a masked"},
    {"UPDATE people SET ssn = 'x' WHERE id = 1", "deny:writing a masked"},
    {"UPDATE people SET name = 'x' WHERE id = 1", "-"},
    {"COPY people TO STDOUT (HEADER 0)", "ccMMM"},
    {"COPY people TO STDOUT (HEADER 2)", "deny:HEADER"},
    {"COPY people TO STDOUT (FORMAT 'CSV')", "deny:format"},
    {"EXPLAIN SELECT * FROM people", "-"},
    /* the second review's */
    {"WITH people AS (SELECT id, lower(ssn) s FROM people) SELECT * FROM people", "cD"},
    {"WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT ssn, salary FROM people) "
     "SELECT lower(ssn), salary FROM a",
     "DM"},
    {"SELECT (SELECT s.v FROM (SELECT 'clean' AS ssn) c, (SELECT lower(ssn) AS v) s) FROM "
     "people",
     "D"},
    {"UPDATE pg_attribute SET attname = 'zz' WHERE attnum = 3", "deny:pg_catalog"},
    {"SELECT lower(zz) FROM people", "D"},
    {"SELECT ctid, id FROM people", "cc"},
    {"EXPLAIN ANALYZE SELECT lower(ssn) FROM people", "deny:EXPLAIN ANALYZE"},
    {"EXPLAIN (ANALYZE false) SELECT lower(ssn) FROM people", "-"},
    {"EXPLAIN ANALYZE SELECT id FROM orders", "-"},
    {"SELECT p.id FROM people p, XMLTABLE('/r' PASSING xmlelement(name r, p.ssn) COLUMNS a "
     "int) x",
     "deny:table function"},
    {"COPY (SELECT id, salary FROM people) TO STDOUT (NULL '918273')", "deny:null"},
    {"COPY (SELECT id, salary FROM people) TO STDOUT (FORMAT csv, NULL 'x')", "cM"},
    {"COPY (SELECT id FROM orders) TO STDOUT (NULL 'x')", "c"},
    /* the third review's */
    {"SELECT lower(j.email) FROM people p JOIN people q USING (email) AS j", "D"},
    {"SELECT lower(zz.ssn) FROM people p", "D"},
    {"SELECT p.ctid, p.xmin FROM people p", "cc"},
    {"CREATE TABLE probe (s text REFERENCES people (ssn))", "deny:references"},
    {"CREATE TEMP TABLE people (id int, ssn text)", "-"},
    {"EXPLAIN ANALYZE EXECUTE s", "deny:EXPLAIN ANALYZE"},
};

static void plan_str(const struct pw_mask_plan *p, char *out, size_t cap)
{
	size_t k = 0;
	if (!p->mapped) {
		snprintf(out, cap, "*%s", p->touches ? "" : "c");
		return;
	}
	if (p->n == 0) {
		snprintf(out, cap, "-");
		return;
	}
	for (int i = 0; i < p->n && k + 1 < cap; i++)
		out[k++] = "cMD"[p->cols[i].kind];
	out[k] = 0;
}

int main(void)
{
	struct pw_config *cfg;
	char err[512];
	if (pw_config_load_string(config_json, "test.json", &cfg, err, sizeof(err)) < 0) {
		printf("not ok 1 - config: %s\n1..1\n", err);
		return 1;
	}
	CHECK(cfg->identities[0].policy.has_masks, "an identity with mask rules has masks");

	struct pw_cat_func fs[] = {
	    {"pg_catalog", "lower", "internal", "postgres", 870, 1, 0, false, false, true, 'i', 'f',
	     false},
	    {"pg_catalog", "upper", "internal", "postgres", 871, 1, 0, false, false, true, 'i', 'f',
	     false},
	    {"pg_catalog", "length", "internal", "postgres", 1317, 1, 0, false, false, true, 'i',
	     'f', false},
	    {"pg_catalog", "max", "internal", "postgres", 2129, 1, 0, false, false, true, 'i', 'a',
	     false},
	    {"pg_catalog", "count", "internal", "postgres", 2147, 1, 0, false, false, true, 'i',
	     'a', false},
	    {"pg_catalog", "string_agg", "internal", "postgres", 3538, 2, 0, false, false, true,
	     'i', 'a', false},
	    {"pg_catalog", "row_to_json", "internal", "postgres", 3155, 1, 0, false, false, true,
	     's', 'f', false},
	    {"pg_catalog", "json_build_object", "internal", "postgres", 3200, 1, 0, true, false,
	     true, 's', 'f', false},
	    {"pg_catalog", "lag", "internal", "postgres", 3106, 1, 0, false, false, true, 'i', 'w',
	     false},
	    {"pg_catalog", "rank", "internal", "postgres", 3101, 0, 0, false, false, true, 'i', 'w',
	     false},
	    {"pg_catalog", "generate_series", "internal", "postgres", 1067, 2, 0, false, false,
	     true, 'i', 'f', true},
	    {"pg_catalog", "pg_notify", "internal", "postgres", 3036, 2, 0, false, false, true, 'v',
	     'f', false},
	    {"pg_catalog", "set_config", "internal", "postgres", 2078, 3, 0, false, false, true,
	     'v', 'f', false},
	    {"public", "leak", "plpgsql", "postgres", 20001, 1, 0, false, false, false, 'v', 'f',
	     false},
	};
	const char *schemas[] = {"pg_catalog", "public"};
	struct pw_catalog *cat = pw_catalog_build(fs, sizeof(fs) / sizeof(fs[0]), schemas, 2);
	const char *pcols[] = {"id", "name", "ssn", "email", "salary"};
	const uint32_t ptypes[] = {23, 25, 25, 25, 23};
	const char *ocols[] = {"id", "person_id", "amount"};
	const char *vcols[] = {"id", "ssn"}, *scols[] = {"n"};
	const uint32_t vdeps[] = {16400, 1, 16400, 3}, sdeps[] = {16400, 1};
	struct pw_cat_rel rels[] = {
	    {16400, "public", "people", 'r', 5, pcols, ptypes, 0, NULL, NULL},
	    {16410, "public", "orders", 'r', 3, ocols, NULL, 0, NULL, NULL},
	    {16420, "public", "people_v", 'v', 2, vcols, NULL, 2, vdeps,
	     "SELECT people.id, people.ssn FROM public.people"},
	    {16430, "public", "people_safe", 'v', 1, scols, NULL, 1, sdeps,
	     "SELECT people.id AS n FROM public.people"},
	};
	CHECK(cat && pw_catalog_set_relations(cat, rels, 4) == 0, "a catalog with relations");

	struct pw_policy_session ps = {0};
	pw_policy_session_init(&ps, NULL, "agent", NULL);
	pw_policy_session_catalog(&ps, cat);
	struct pw_mask_scope sc = {.cfg = cfg, .id = &cfg->identities[0], .ps = &ps};
	static struct pw_sql_result r;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *sql = cases[i].sql, *want = cases[i].want;
		struct pw_mask_plan *plans[PW_SQL_MAX_STMTS];
		struct pw_deny d = {0};
		char got[600] = "";
		if (pw_sql_analyse(sql, strlen(sql), &ps.sql, &r, err, sizeof(err)) < 0) {
			CHECK(0, "%s: analysed (%s)", sql, err);
			continue;
		}
		if (pw_mask_plan_text(&sc, sql, strlen(sql), &r, plans, &d) < 0) {
			snprintf(got, sizeof(got), "deny: %s", d.message);
		} else {
			plan_str(plans[0], got, sizeof(got));
			for (int k = 0; k < r.nstmts; k++)
				pw_mask_plan_unref(plans[k]);
		}
		bool ok = strncmp(want, "deny:", 5) == 0
		              ? strncmp(got, "deny:", 5) == 0 && strstr(got, want + 5) &&
		                    strcmp(d.sqlstate, "42501") + strcmp(d.sqlstate, "0A000") != 0
		              : strcmp(got, want) == 0;
		CHECK(ok, "%s -> %s (got %s)", sql, want, got);
	}

	/* what a column of a plan becomes */
	{
		const char *sql = "SELECT id, ssn, lower(ssn), salary FROM people";
		struct pw_mask_plan *plans[PW_SQL_MAX_STMTS];
		struct pw_deny d;
		struct pw_mask_col c[4];
		pw_sql_analyse(sql, strlen(sql), &ps.sql, &r, err, sizeof(err));
		CHECK(pw_mask_plan_text(&sc, sql, strlen(sql), &r, plans, &d) == 0, "%s planned",
		      sql);
		for (int i = 0; i < 4; i++)
			pw_mask_column(&sc, plans[0], i, 4, 0, 0, i == 0 || i == 3 ? 23 : 25, 0,
			               &c[i]);
		CHECK(!c[0].mask, "id passes");
		CHECK(c[1].mask && c[1].strategy == PW_MASK_PARTIAL && c[1].keep == 4,
		      "ssn: the rule's partial, keep 4");
		CHECK(c[2].mask && c[2].strategy == PW_MASK_REDACT, "lower(ssn): redacted whole");
		CHECK(c[3].mask && c[3].strategy == PW_MASK_REDACT && c[3].type_oid == 23,
		      "salary: redact as int4");
		pw_mask_column(&sc, plans[0], 0, 5, 0, 0, 23, 0, &c[0]);
		CHECK(c[0].mask, "a result of another width than planned: every column masked");
		pw_mask_column(&sc, plans[0], 0, 4, 16400, 3, 25, 0, &c[0]);
		CHECK(c[0].mask && c[0].strategy == PW_MASK_PARTIAL,
		      "a column the RowDescription says is people.ssn is masked whatever the plan");
		pw_mask_plan_unref(plans[0]);
		pw_mask_column(&sc, NULL, 0, 1, 0, 0, 25, 1, &c[0]);
		CHECK(c[0].mask, "no plan: masked");
	}
	pw_policy_session_free(&ps);
	pw_catalog_release(cat);
	pw_config_unref(cfg);
	return check_done();
}
