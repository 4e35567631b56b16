/* The catalog snapshots (user/catalog.c) and how a call is judged from them
 * (pw_policy_call_writes): built-ins that only read, volatile ones, user-defined functions and
 * overloads of a built-in's name, SECURITY DEFINER, names the catalog does not know, schemas
 * of the search_path that exist or not; and the registry's answer when an upstream cannot be
 * reached. The live server's catalog is read by tests/integration/policy.sh. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pgward/catalog.h"
#include "pgward/policy_session.h"
#include "pgward/runtime.h"

#define F(schema, name, nargs, vol, builtin)                                                       \
	{                                                                                          \
		schema, name, "internal", "postgres", 0, nargs, 0, false, false, builtin, vol,     \
		    'f', false                                                                     \
	}

static const struct pw_cat_func funcs[] = {
    F("pg_catalog", "lower", 1, 'i', true),
    F("pg_catalog", "count", 0, 'i', true),
    F("pg_catalog", "count", 1, 'i', true),
    F("pg_catalog", "now", 0, 's', true),
    F("pg_catalog", "random", 0, 'v', true),
    F("pg_catalog", "nextval", 1, 'v', true),
    F("pg_catalog", "pg_notify", 2, 'v', true),
    F("pg_catalog", "pg_stat_get_activity", 1, 's', true),
    F("pg_catalog", "txid_current", 0, 's', true),
    F("pg_catalog", "length", 1, 'i', true),
    F("public", "length", 1, 'i', false), /* an overload a user made */
    F("public", "safe_fn", 0, 'i', false),
    F("app", "report", 0, 's', false), /* in a schema not on the path */
    F("pg_catalog", "ts_rewrite", 2, 'v', true),
    F("pg_catalog", "ts_rewrite", 3, 'i', true),
    F("pg_catalog", "concat", 1, 's', true),
};

static struct pw_sql_func call(const char *schema, const char *name, int nargs)
{
	struct pw_sql_func f = {.nargs = (int16_t)nargs};
	snprintf(f.schema, sizeof(f.schema), "%s", schema);
	snprintf(f.name, sizeof(f.name), "%s", name);
	return f;
}

int main(void)
{
	static const char *const schemas[] = {"pg_catalog", "public", "app", "information_schema"};
	struct pw_cat_func fs[sizeof(funcs) / sizeof(funcs[0])];
	memcpy(fs, funcs, sizeof(fs));
	fs[11].secdef = false;
	struct pw_cat_func definer = F("public", "definer", 0, 's', false);
	definer.secdef = true;
	struct pw_cat_func all[sizeof(fs) / sizeof(fs[0]) + 1];
	memcpy(all, fs, sizeof(fs));
	all[sizeof(fs) / sizeof(fs[0])] = definer;
	struct pw_catalog *cat = pw_catalog_build(all, sizeof(all) / sizeof(all[0]), schemas, 4);
	CHECK(cat && pw_catalog_size(cat) == sizeof(all) / sizeof(all[0]), "a snapshot is built");
	const struct pw_cat_func *first;
	CHECK(pw_catalog_lookup(cat, "count", &first) == 2 && strcmp(first->name, "count") == 0,
	      "lookup finds every function of a name");
	CHECK(pw_catalog_lookup(cat, "nope", &first) == 0 && !first, "and none of an unknown name");
	CHECK(pw_catalog_has_schema(cat, "app") && !pw_catalog_has_schema(cat, "agent"),
	      "schemas: app exists, agent does not");
	/* relations and their columns, as masking will name result columns */
	const char *ocols[] = {"id", NULL, "email"}, *vcols[] = {"n"};
	struct pw_cat_rel rels[] = {{24601, "public", "orders", 'r', 3, ocols, NULL, 0, NULL, NULL},
	                            {16999, "app", "v", 'v', 1, vcols, NULL, 0, NULL, NULL},
	                            {17000, "app", "empty", 'r', 0, NULL, NULL, 0, NULL, NULL}};
	CHECK(pw_catalog_set_relations(cat, rels, 3) == 0, "relations set");
	const struct pw_cat_rel *rl = pw_catalog_relation(cat, 24601);
	CHECK(rl && !strcmp(rl->schema, "public") && !strcmp(rl->name, "orders") &&
	          rl->ncols == 3 && !strcmp(rl->cols[0], "id") && !rl->cols[1] &&
	          !strcmp(rl->cols[2], "email"),
	      "table OID 24601, column 3: public.orders.email (column 2 dropped)");
	rl = pw_catalog_relation(cat, 16999);
	CHECK(rl && rl->kind == 'v' && !strcmp(rl->cols[0], "n"), "a view's columns");
	CHECK(pw_catalog_relation(cat, 17000) && !pw_catalog_relation(cat, 1),
	      "a relation without columns; no relation of an unknown OID");

	struct pw_policy_session ps;
	pw_policy_session_init(&ps, "\"$user\", public", "agent", "pg_catalog,public");
	pw_policy_session_catalog(&ps, cat);
	static const struct {
		const char *schema, *name;
		int nargs;
		bool writes;
		const char *why;
	} cases[] = {
	    {"", "lower", 1, false, NULL},
	    {"pg_catalog", "lower", 1, false, NULL},
	    {"", "count", 0, false, NULL},
	    {"", "now", 0, false, NULL},
	    {"", "random", 0, false, NULL}, /* volatile, on the read-safe list */
	    {"", "nextval", 1, true, "side effects"},
	    {"", "pg_notify", 2, true, "side effects"},
	    {"", "txid_current", 0, true, "side effects"},
	    {"", "pg_stat_get_activity", 1, true, "other sessions"},
	    {"", "length", 1, true, "defined in the database"}, /* the overload may be picked */
	    {"pg_catalog", "length", 1, false, NULL},           /* not when the call says which */
	    {"", "safe_fn", 0, true, "defined in the database"},
	    {"", "definer", 0, true, "SECURITY DEFINER"},
	    {"", "report", 0, true, "knows"}, /* app is not on the path */
	    {"app", "report", 0, true, "defined in the database"},
	    {"", "nope", 0, true, "knows"},
	    {"", "ts_rewrite", 3, false, NULL}, /* by the number of arguments */
	    {"", "ts_rewrite", 2, true, "side effects"},
	    {"", "lower", 2, true, "knows"}, /* no such overload: not a function it knows */
	    {"", "concat", 5, true, "knows"},
	    {"pg_temp", "lower", 1, true, "knows"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pw_sql_func f = call(cases[i].schema, cases[i].name, cases[i].nargs);
		char why[128] = "";
		bool w = pw_policy_call_writes(&ps, &f, why, sizeof(why));
		CHECK(w == cases[i].writes && (!w || strstr(why, cases[i].why)),
		      "%s%s%s(%d args): %s (%s)", cases[i].schema, cases[i].schema[0] ? "." : "",
		      cases[i].name, cases[i].nargs, w ? "writes" : "reads", why);
	}
	/* a path pgward cannot know: every schema may hold the function */
	struct pw_policy_session unk;
	pw_policy_session_init(&unk, "\"$user\", public", "agent", NULL);
	unk.path_unknown = true;
	pw_policy_session_catalog(&unk, cat);
	struct pw_sql_func r = call("", "report", 0);
	CHECK(pw_policy_call_writes(&unk, &r, NULL, 0), "unknown path: app.report is a candidate");
	/* no catalog: every call needs a rule naming it */
	struct pw_policy_session none;
	pw_policy_session_init(&none, NULL, "agent", NULL);
	struct pw_sql_func l = call("", "lower", 1);
	char why[128];
	CHECK(pw_policy_call_writes(&none, &l, why, sizeof(why)) && strstr(why, "no catalog"),
	      "without a catalog a call writes (%s)", why);
	pw_policy_session_free(&ps);
	pw_policy_session_free(&unk);
	pw_policy_session_free(&none);
	pw_catalog_release(cat);

	/* the registry: an upstream that cannot be reached fails the session, never blocks it */
	char path[] = "/tmp/pgward-test-catalog-XXXXXX";
	int fd = mkstemp(path);
	const char conf[] =
	    "{\"listen\": [{\"host\": \"127.0.0.1\", \"port\": 1}],"
	    " \"upstreams\": {\"u\": {\"host\": \"127.0.0.1\", \"port\": 9, \"user\": \"x\","
	    " \"sslmode\": \"disable\", \"connect_timeout_seconds\": 1}},"
	    " \"identities\": [{\"name\": \"a\", \"auth\": \"trust\", \"upstream\": \"u\","
	    " \"rules\": [{\"action\": \"allow\"}]}]}";
	CHECK(fd >= 0 && write(fd, conf, sizeof(conf) - 1) == (ssize_t)(sizeof(conf) - 1),
	      "a configuration with an unreachable upstream");
	close(fd);
	char err[512];
	struct pw_runtime *rt = pw_runtime_load(path, err, sizeof(err));
	unlink(path);
	CHECK(rt != NULL, "loaded (%s)", rt ? "ok" : err);
	struct pw_catalog *c = NULL;
	enum pw_cat_state st =
	    rt ? pw_catalog_acquire(rt, 0, "db", &c, err, sizeof(err)) : PW_CAT_FAILED;
	CHECK(st == PW_CAT_LOADING && !c, "the first acquire queues a load and does not wait");
	for (int i = 0; i < 100 && st == PW_CAT_LOADING; i++) {
		usleep(50000);
		st = pw_catalog_acquire(rt, 0, "db", &c, err, sizeof(err));
	}
	CHECK(st == PW_CAT_FAILED && strstr(err, "connect"), "then it fails, saying why (%s)", err);
	uint64_t loads, failures;
	pw_catalog_stats(&loads, &failures);
	CHECK(loads == 0 && failures >= 1, "counted: %llu loads, %llu failures",
	      (unsigned long long)loads, (unsigned long long)failures);
	pw_catalog_stop();
	if (rt)
		pw_runtime_unref(rt);
	return check_done();
}
