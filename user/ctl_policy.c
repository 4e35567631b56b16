/* pgwardctl policy: check a policy file, explain a decision without connecting anywhere. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/config.h"
#include "pgward/ctl.h"
#include "pgward/catalog.h"
#include "pgward/inspect.h"
#include "pgward/log.h"
#include "pgward/guc.h"
#include "pgward/options.h"
#include "pgward/pgconn.h"
#include "pgward/policy.h"
#include "pgward/runtime.h"
#include "pgward/sql.h"

static void warn_stderr(void *arg, const char *msg)
{
	fprintf(stderr, "%s: warning: %s\n", (const char *)arg, msg);
}

static void warn_json(void *arg, const char *msg)
{
	json_array_append_new(arg, json_string(msg));
}

/* policy check FILE */
static int do_check(int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "usage: pgwardctl policy check FILE\n");
		return 2;
	}
	char *errors = NULL;
	int n = pw_config_check_all(argv[0], &errors);
	struct pw_config *cfg = NULL;
	char err[64];
	if (n == 0 && pw_config_load(argv[0], &cfg, err, sizeof(err)) < 0)
		cfg = NULL;
	if (pw_ctl_json) {
		json_t *j = json_object(), *a = json_array(), *w = json_array();
		if (cfg)
			pw_config_warnings(cfg, warn_json, w);
		json_object_set_new(j, "warnings", w);
		json_object_set_new(j, "file", json_string(argv[0]));
		json_object_set_new(j, "valid", json_boolean(n == 0));
		for (char *line = errors, *nl; line && *line; line = nl + 1) {
			nl = strchr(line, '\n');
			if (!nl)
				nl = line + strlen(line) - 1;
			json_array_append_new(
			    a, json_stringn(line, (size_t)(nl - line + (*nl != '\n'))));
		}
		json_object_set_new(j, "errors", a);
		pw_ctl_print_json(j);
	} else if (n) {
		fputs(errors, stderr);
		if (errors[0] && errors[strlen(errors) - 1] != '\n')
			fputc('\n', stderr);
		fprintf(stderr, "%s: %d error%s\n", argv[0], n, n == 1 ? "" : "s");
	} else {
		pw_config_warnings(cfg, warn_stderr, argv[0]);
		printf("%s: OK\n", argv[0]);
	}
	pw_config_unref(cfg);
	free(errors);
	return n ? 1 : 0;
}

static const char *const fact_names[] = {
    "no_where",           "cte_dml",      "explain_analyze",
    "not_executed",       "select_into",  "create_table_as",
    "copy_program",       "copy_file",    "body",
    "role_escape",        "alter_system", "drop_database",
    "create_extension",   "scs_change",   "encoding_change",
    "set_config_dynamic", "reset_all",    "ambiguous",
    "unknown_prepared",   "creates_temp", "forget_prepared",
};

static const char *by_name(const struct pw_decision *d)
{
	switch (d->by) {
	case PW_BY_RULE:
		return "rule";
	case PW_BY_GUARDRAIL:
		return "guardrail";
	case PW_BY_REFUSAL:
		return "refusal";
	case PW_BY_WINDOW:
		return "window";
	default:
		return "default";
	}
}

static json_t *decision_json(const struct pw_identity *id, const struct pw_decision *d)
{
	json_t *j = json_object();
	json_object_set_new(j, "decision", json_string(pw_action_name(d->action)));
	json_object_set_new(j, "by", json_string(by_name(d)));
	json_object_set_new(j, "rule",
	                    d->by == PW_BY_RULE && d->rule ? json_integer(d->rule) : json_null());
	if (d->by == PW_BY_RULE && d->rule && id->policy.rules[d->rule - 1].name[0])
		json_object_set_new(j, "rule_name",
		                    json_string(id->policy.rules[d->rule - 1].name));
	if (d->by == PW_BY_GUARDRAIL)
		json_object_set_new(j, "guardrail", json_string(pw_guardrail_name(d->guardrail)));
	json_object_set_new(j, "reason",
	                    json_string(d->action == PW_ACT_ALLOW ? d->reason : d->message));
	if (d->sqlstate[0])
		json_object_set_new(j, "sqlstate", json_string(d->sqlstate));
	return j;
}

static json_t *statement_json(const char *sql, const struct pw_sql_result *r, int i,
                              const struct pw_identity *id, const struct pw_decision *d,
                              const struct pw_policy_session *ps)
{
	const struct pw_sql_stmt *st = &r->stmts[i];
	json_t *j = decision_json(id, d), *a;
	size_t len = st->length ? (size_t)st->length : strlen(sql + st->location);

	if (r->spans_approx || (size_t)st->location + len > strlen(sql))
		json_object_set_new(j, "text", json_string(sql));
	else
		json_object_set_new(j, "text", json_stringn(sql + st->location, len));
	json_object_set_new(j, "class", json_string(pw_sql_class_name(st->cls)));
	if (st->inner)
		json_object_set_new(j, "inner", json_string(pw_sql_class_name(st->inner)));
	a = json_array();
	for (int k = 0; k <= PW_SQL_EXPLAIN; k++)
		if (st->runs & (1u << k))
			json_array_append_new(a,
			                      json_string(pw_sql_class_name((enum pw_sql_class)k)));
	json_object_set_new(j, "runs", a);
	a = json_array();
	for (size_t k = 0; k < sizeof(fact_names) / sizeof(fact_names[0]); k++)
		if (st->flags & (1u << k))
			json_array_append_new(a, json_string(fact_names[k]));
	json_object_set_new(j, "facts", a);
	if (st->object[0])
		json_object_set_new(j, "object", json_string(st->object));
	if (st->flags & PW_SQL_F_BODY)
		json_object_set_new(j, "language", json_string(st->lang));
	a = json_array();
	for (int k = 0; k < r->nrels; k++) {
		const struct pw_sql_rel *rl = &r->rels[k];
		if (rl->stmt != i)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "schema", json_string(rl->schema));
		json_object_set_new(o, "name", json_string(rl->name));
		json_object_set_new(o, "access",
		                    json_string(rl->access & PW_SQL_WRITE  ? "write"
		                                : rl->access & PW_SQL_LOCK ? "lock"
		                                                           : "read"));
		if (rl->flags & PW_SQL_R_UNQUALIFIED)
			json_object_set_new(o, "unqualified", json_true());
		if (rl->flags & PW_SQL_R_AMBIGUOUS)
			json_object_set_new(o, "ambiguous", json_true());
		if (rl->flags & PW_SQL_R_UNRESOLVED)
			json_object_set_new(o, "unresolved", json_true());
		json_array_append_new(a, o);
	}
	json_object_set_new(j, "relations", a);
	a = json_array();
	json_t *calls = json_array();
	for (int k = 0; k < r->nfuncs; k++) {
		const struct pw_sql_func *f = &r->funcs[k];
		char name[2 * PW_SQL_NAMELEN + 2], why[128];
		if (f->stmt != i)
			continue;
		snprintf(name, sizeof(name), "%s%s%s", f->schema, f->schema[0] ? "." : "", f->name);
		json_array_append_new(a, json_string(name));
		json_t *o = json_object();
		bool w = pw_policy_call_writes(ps, f, why, sizeof(why));
		json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "writes", json_boolean(w));
		if (w)
			json_object_set_new(o, "why", json_string(why));
		json_array_append_new(calls, o);
	}
	json_object_set_new(j, "functions", a);
	json_object_set_new(j, "calls", calls);
	a = json_array();
	for (int k = 0; k < r->nsets; k++) {
		static const char *const hows[] = {"set", "reset", "set_config", "alter"};
		const struct pw_sql_setting *s = &r->sets[k];
		if (s->stmt != i)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(s->name));
		json_object_set_new(o, "how", json_string(hows[s->how & 3]));
		if (s->value_known && s->value_len) {
			json_t *v = json_array();
			for (size_t off = 0; off < s->value_len; off += strlen(s->value + off) + 1)
				json_array_append_new(v, json_string(s->value + off));
			json_object_set_new(o, "value", v);
		}
		json_array_append_new(a, o);
	}
	json_object_set_new(j, "settings", a);
	return j;
}

static void print_text(const struct pw_identity *id, const json_t *res)
{
	const char *dec = json_string_value(json_object_get(res, "decision"));
	printf("identity %s: %s\n", id->name, dec ? dec : "?");
	printf("  reason: %s\n", json_string_value(json_object_get(res, "reason")));
	const json_t *stmts = json_object_get(res, "statements");
	size_t i;
	json_t *s;
	json_array_foreach(stmts, i, s)
	{
		printf("  statement %zu: %s (%s)\n", i + 1,
		       json_string_value(json_object_get(s, "class")),
		       json_string_value(json_object_get(s, "decision")));
		printf("    text: %s\n", json_string_value(json_object_get(s, "text")));
		char *facts = json_dumps(json_object_get(s, "facts"), JSON_COMPACT);
		char *runs = json_dumps(json_object_get(s, "runs"), JSON_COMPACT);
		printf("    runs: %s  facts: %s\n", runs ? runs : "", facts ? facts : "");
		free(facts);
		free(runs);
		size_t k;
		json_t *o;
		json_array_foreach(json_object_get(s, "relations"), k, o)
		{
			printf("    %s %s.%s%s\n", json_string_value(json_object_get(o, "access")),
			       json_string_value(json_object_get(o, "schema")),
			       json_string_value(json_object_get(o, "name")),
			       json_object_get(o, "ambiguous") ? " (one of several candidates)"
			                                       : "");
		}
		json_array_foreach(json_object_get(s, "calls"), k, o)
		{
			const char *why = json_string_value(json_object_get(o, "why"));
			printf("    calls %s()%s%s%s\n",
			       json_string_value(json_object_get(o, "name")),
			       why ? " (writes: " : "", why ? why : "", why ? ")" : "");
		}
		if (strcmp(json_string_value(json_object_get(s, "decision")), "allow") != 0)
			printf("    why: %s\n", json_string_value(json_object_get(s, "reason")));
	}
}

/* The identity called name, or NULL (said on stderr). */
static const struct pw_identity *find_identity(const struct pw_config *cfg, const char *file,
                                               const char *name)
{
	for (int i = 0; i < cfg->n_identities; i++)
		if (strcmp(cfg->identities[i].name, name) == 0)
			return &cfg->identities[i];
	fprintf(stderr, "pgwardctl: %s: no identity named \"%s\"\n", file, name);
	return NULL;
}

/* The upstream's imposed search_path as the server's setting would read ("a", "B"), or "". */
static void imposed_path(const struct pw_upstream *u, char *out, size_t len)
{
	char q[2 * PW_NAME_MAX + 4];
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; u && i < u->n_search_path && o < len; i++)
		if (pw_sql_quote_ident(u->search_path[i], q, sizeof(q)) > 0)
			o += (size_t)snprintf(out + o, len - o, "%s%s", i ? ", " : "", q);
}

struct truth {
	char path[1024], user[PW_NAME_MAX], schemas[1024];
	bool seen;
};

static void on_truth(void *arg, int ncols, const char *const *v)
{
	struct truth *t = arg;
	if (ncols == 3 && v[0] && v[1] && v[2]) {
		snprintf(t->path, sizeof(t->path), "%s", v[0]);
		snprintf(t->user, sizeof(t->user), "%s", v[1]);
		snprintf(t->schemas, sizeof(t->schemas), "%s", v[2]);
		t->seen = true;
	}
}

/* What a session of id would start with, read from the upstream as pgwardd reads it: the
 * search_path (the upstream's imposed one, or the server's own for this login and database),
 * "$user" (the identity's role when it has one) and the function catalog. */
static int session_from_upstream(const struct pw_runtime *rt, int ui, const char *db,
                                 const struct pw_identity *id, struct pw_policy_session *ps,
                                 char *err, size_t errlen)
{
	const struct pw_upstream *u = &rt->cfg->upstreams[ui];
	struct truth t = {0};
	struct pw_pgconn *c = pw_pgconn_open(rt, ui, db, u->connect_timeout_ms, err, errlen);
	if (!c)
		return -1;
	int rc = pw_pgconn_exec(c,
	                        "SELECT pg_catalog.current_setting('search_path'), CURRENT_USER, "
	                        "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(n), ',') "
	                        "FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) AS n)",
	                        on_truth, &t, err, errlen);
	struct pw_catalog *cat = rc == 0 ? pw_catalog_load_on(c, u->name, err, errlen) : NULL;
	pw_pgconn_close(c);
	if (!cat)
		return -1;
	if (!t.seen) {
		pw_catalog_release(cat);
		pw_errf(err, errlen, "upstream \"%s\" did not say what its search_path is",
		        u->name);
		return -1;
	}
	char path[1024];
	imposed_path(u, path, sizeof(path));
	pw_policy_session_init(ps, u->n_search_path ? path : t.path,
	                       id->policy.role[0] ? id->policy.role
	                       : id->policy.jit   ? "pgward_jit_role"
	                                          : t.user,
	                       t.schemas);
	pw_policy_session_catalog(ps, cat);
	pw_catalog_release(cat);
	return 0;
}

/* policy explain --config FILE --identity NAME [--database DB] [--upstream NAME] [--offline]
 * --sql TEXT ...: the texts run in order in one simulated session (PREPARE then EXECUTE, SET
 * search_path then a query), each decided by pw_inspect_text, pgwardd's own path. */
static int do_explain(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},   {"identity", required_argument, NULL, 'i'},
	    {"sql", required_argument, NULL, 's'},      {"parse", required_argument, NULL, 'p'},
	    {"database", required_argument, NULL, 'd'}, {"upstream", required_argument, NULL, 'u'},
	    {"offline", no_argument, NULL, 'o'},        {NULL, 0, NULL, 0}};
	const char *file = NULL, *ident = NULL, *database = NULL, *upname = NULL;
	const char *texts[64];
	const char *names[64]; /* protocol statement name for --parse NAME=TEXT, else NULL */
	int n = 0, c;
	bool offline = false;

	optind = 1;
	/* getopt wants the program name first */
	char **av = calloc((size_t)argc + 2, sizeof(char *));
	if (!av)
		return 1;
	av[0] = "explain";
	memcpy(av + 1, argv, sizeof(char *) * (size_t)argc);
	while ((c = getopt_long(argc + 1, av, "", opts, NULL)) != -1) {
		if (c == 'c')
			file = optarg;
		else if (c == 'i')
			ident = optarg;
		else if (c == 'd')
			database = optarg;
		else if (c == 'u')
			upname = optarg;
		else if (c == 'o')
			offline = true;
		else if ((c == 's' || c == 'p') && n < 64) {
			names[n] = NULL;
			texts[n] = optarg;
			if (c == 'p') {
				char *eq = strchr(optarg, '=');
				if (!eq) {
					fprintf(stderr, "pgwardctl: --parse wants NAME=TEXT\n");
					free(av);
					return 2;
				}
				*eq = 0;
				names[n] = optarg;
				texts[n] = eq + 1;
			}
			n++;
		} else {
			free(av);
			goto usage;
		}
	}
	free(av);
	if (!file || !ident || n == 0)
		goto usage;

	char err[1024];
	struct pw_runtime *rt = pw_runtime_load(file, err, sizeof(err));
	if (!rt) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct pw_config *cfg = rt->cfg;
	const struct pw_identity *id = find_identity(cfg, file, ident);
	if (!id) {
		pw_runtime_unref(rt);
		return 1;
	}
	int ui = id->upstream;
	for (int i = 0; upname && i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, upname) == 0)
			ui = i;
	if (upname && (ui < 0 || strcmp(cfg->upstreams[ui].name, upname) != 0)) {
		fprintf(stderr, "pgwardctl: %s: no upstream named \"%s\"\n", file, upname);
		pw_runtime_unref(rt);
		return 1;
	}
	if (ui < 0 && cfg->n_upstreams == 1)
		ui = 0;
	const struct pw_upstream *u = ui >= 0 ? &cfg->upstreams[ui] : NULL;
	if (!database)
		database = u && u->database[0] ? u->database : u ? u->user : "";
	struct pw_policy_session ps;
	if (offline || !u) {
		/* without the server: its default search_path (or the imposed one), no catalog:
		 * every call needs a rule naming it, as in pgwardd before a catalog is read */
		char path[1024];
		imposed_path(u, path, sizeof(path));
		pw_policy_session_init(&ps, path[0] ? path : NULL,
		                       id->policy.role[0] ? id->policy.role
		                       : u                ? u->user
		                                          : "",
		                       NULL);
		if (!offline)
			fprintf(
			    stderr,
			    "pgwardctl: identity %s takes its upstream from the address a client "
			    "dials: explaining offline (pass --upstream NAME to read one)\n",
			    id->name);
	} else if (session_from_upstream(rt, ui, database, id, &ps, err, sizeof(err)) < 0) {
		fprintf(stderr, "pgwardctl: %s (use --offline to explain without the server)\n",
		        err);
		pw_runtime_unref(rt);
		return 1;
	}
	struct pw_sql_result *r = malloc(sizeof(*r));
	struct pw_decision *per = calloc(PW_SQL_MAX_STMTS, sizeof(*per));
	struct pw_caller who = {
	    .cfg = cfg, .identity = id, .user = id->name, .database = database, .ps = &ps};
	int worst = 0;
	for (int t = 0; t < n && r && per; t++) {
		struct pw_judgement j = {.per_stmt = per, .r = r};
		json_t *res;
		enum pw_verdict v = pw_inspect_text(&who, names[t] ? 'P' : 'Q', texts[t],
		                                    strlen(texts[t]), names[t], &j);
		res = decision_json(id, &j.d);
		json_t *a = json_array();
		for (int i = 0; !j.unreadable && i < r->nstmts; i++)
			json_array_append_new(a, statement_json(texts[t], r, i, id, &per[i], &ps));
		json_object_set_new(res, "statements", a);
		if (j.unreadable)
			json_object_set_new(res, "unreadable", json_true());
		json_object_set_new(res, "identity", json_string(id->name));
		json_object_set_new(res, "sql", json_string(texts[t]));
		if (v != PW_ALLOW)
			worst = 3;
		if (pw_ctl_json)
			pw_ctl_print_json(res);
		else {
			print_text(id, res);
			json_decref(res);
		}
	}
	free(r);
	free(per);
	pw_policy_session_free(&ps);
	pw_runtime_unref(rt);
	return worst;
usage:
	fprintf(stderr, "usage: pgwardctl policy explain --config FILE --identity NAME "
	                "[--database DB] [--upstream NAME] [--offline] "
	                "{ --sql TEXT | --parse NAME=TEXT } ...\n");
	return 2;
}

struct startup_out {
	const struct pw_config *cfg;
	const struct pw_identity *id;
	json_t *settings;
	struct pw_decision d;
	bool refused;
};

static int startup_setting(void *arg, const char *name, const char *value)
{
	struct startup_out *o = arg;
	json_t *e = json_object();
	json_object_set_new(e, "name", json_string(name));
	json_object_set_new(e, "value", json_string(value));
	json_array_append_new(o->settings, e);
	pw_policy_startup_setting(o->cfg, o->id, name, value, &o->d);
	o->refused = o->d.action != PW_ACT_ALLOW;
	return o->refused ? 1 : 0;
}

/* policy startup --config FILE --identity NAME NAME=VALUE ...: the startup parameters judged as
 * pgwardd judges them (options read as the server reads them); every setting they make. */
static int do_startup(int argc, char **argv)
{
	const char *file = NULL, *ident = NULL;
	int first = 0;
	while (first + 1 < argc && argv[first][0] == '-') {
		if (!strcmp(argv[first], "--config"))
			file = argv[first + 1];
		else if (!strcmp(argv[first], "--identity"))
			ident = argv[first + 1];
		else
			break;
		first += 2;
	}
	if (!file || !ident || first >= argc) {
		fprintf(stderr, "usage: pgwardctl policy startup --config FILE --identity NAME "
		                "NAME=VALUE ...\n");
		return 2;
	}
	struct pw_config *cfg;
	char err[1024];
	if (pw_config_load(file, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	const struct pw_identity *id = find_identity(cfg, file, ident);
	if (!id) {
		pw_config_unref(cfg);
		return 1;
	}
	struct startup_out o = {.cfg = cfg, .id = id, .settings = json_array()};
	const char *error = NULL;
	for (int i = first; i < argc && !o.refused && !error; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq) {
			fprintf(stderr, "pgwardctl: expected NAME=VALUE, got \"%s\"\n", argv[i]);
			json_decref(o.settings);
			pw_config_unref(cfg);
			return 2;
		}
		*eq = 0;
		if (!strcmp(argv[i], "options")) {
			if (pw_options_parse(eq + 1, startup_setting, &o, err, sizeof(err)) < 0)
				error = err;
		} else if (!strcmp(argv[i], "replication")) {
			if (pw_replication_refused(eq + 1, o.d.message, sizeof(o.d.message))) {
				snprintf(o.d.sqlstate, sizeof(o.d.sqlstate), "0A000");
				o.refused = true;
			}
		} else if (strcmp(argv[i], "user") && strcmp(argv[i], "database") &&
		           strncmp(argv[i], "_pq_.", 5)) {
			startup_setting(&o, argv[i], eq + 1);
		}
	}
	json_t *j = json_object();
	json_object_set_new(j, "identity", json_string(id->name));
	json_object_set_new(j, "decision", json_string(error || o.refused ? "deny" : "allow"));
	if (error) {
		json_object_set_new(j, "reason", json_string(error));
		json_object_set_new(j, "sqlstate", json_string("42601"));
		json_object_set_new(j, "by", json_string("server"));
	} else if (o.refused) {
		json_object_set_new(j, "reason", json_string(o.d.message));
		json_object_set_new(j, "sqlstate", json_string(o.d.sqlstate));
	}
	json_object_set_new(j, "settings", o.settings);
	int rc = error || o.refused ? 3 : 0;
	if (pw_ctl_json) {
		pw_ctl_print_json(j);
	} else {
		printf("identity %s: %s\n", id->name, error || o.refused ? "deny" : "allow");
		if (error || o.refused)
			printf("  reason: %s\n", error ? error : o.d.message);
		size_t k;
		json_t *e;
		json_array_foreach(o.settings, k, e)
		    printf("  sets %s = %s\n", json_string_value(json_object_get(e, "name")),
		           json_string_value(json_object_get(e, "value")));
		json_decref(j);
	}
	pw_config_unref(cfg);
	return rc;
}

/* policy settings: the compiled-in table of PostgreSQL 15's settings and their contexts, which
 * the guardrail superuser_settings goes by (only "user" ones may be made). */
static int do_settings(int argc, char **argv)
{
	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: pgwardctl policy settings\n");
		return 2;
	}
	json_t *a = json_array();
	enum pw_guc_context c;
	bool shown;
	const char *name;
	for (size_t i = 0; (name = pw_guc_at(i, &c, &shown)); i++) {
		if (!pw_ctl_json) {
			printf("%s %s%s\n", name, pw_guc_context_name(c), shown ? "" : " (hidden)");
			continue;
		}
		json_t *e = json_object();
		json_object_set_new(e, "name", json_string(name));
		json_object_set_new(e, "context", json_string(pw_guc_context_name(c)));
		json_object_set_new(e, "shown", json_boolean(shown));
		json_array_append_new(a, e);
	}
	if (pw_ctl_json)
		pw_ctl_print_json(a);
	else
		json_decref(a);
	return 0;
}

static const struct pw_ctl_cmd policy_cmds[] = {
    {"check", do_check, "check FILE      validate a policy (every error, with its JSON path)"},
    {"explain", do_explain,
     "explain --config FILE --identity NAME [--database DB] [--upstream NAME] [--offline]\n"
     "                 --sql TEXT [--sql TEXT | --parse NAME=TEXT ...]\n"
     "                 analyse and decide statements as pgwardd would, with the search_path\n"
     "                 and function catalog read from the upstream (exit 3: refused)"},
    {"startup", do_startup,
     "startup --config FILE --identity NAME NAME=VALUE ...\n"
     "                 judge startup parameters as pgwardd does (\"options\" read as the\n"
     "                 server reads it; every setting listed; exit 3: refused)"},
    {"settings", do_settings,
     "settings        PostgreSQL 15's settings and their contexts, as the guardrail\n"
     "                 superuser_settings knows them (only \"user\" ones may be made)"},
    {NULL, NULL, NULL}};

int pw_ctl_policy(int argc, char **argv)
{
	return pw_ctl_run_table(policy_cmds, "policy", argc, argv);
}
