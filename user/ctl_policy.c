/* pgwardctl policy: check a policy file, explain a decision without connecting anywhere, judge
 * startup parameters, list the settings the guardrails know. Each command fills an info struct
 * (the analysis and decisions pgwardd's own path made) and prints it with a _plain or a _json
 * twin; in -j output an absent value is null, never a missing key. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/config.h"
#include "pgward/ctl.h"
#include "pgward/ctl_client.h"
#include "pgward/catalog.h"
#include "pgward/inspect.h"
#include "pgward/mask.h"
#include "pgward/log.h"
#include "pgward/guc.h"
#include "pgward/options.h"
#include "pgward/pgconn.h"
#include "pgward/policy.h"
#include "pgward/policy_session.h"
#include "pgward/runtime.h"
#include "pgward/sql.h"

#define MAX_TEXTS 64

static int do_check(int argc, char **argv);
static int do_explain(int argc, char **argv);
static int do_startup(int argc, char **argv);
static int do_settings(int argc, char **argv);

static const struct pw_ctl_cmd policy_cmds[] = {
    {"check", do_check, "FILE",
     "validate a policy: the same check as config check (every error, with its JSON path)"},
    {"explain", do_explain,
     "--config FILE --identity NAME [--database DB] [--upstream NAME] [--offline]\n"
     "        --sql TEXT [--sql TEXT | --parse NAME=TEXT ...]",
     "analyse and decide statements as pgwardd would, with the search_path and function\n"
     "    catalog read from the upstream (exit 3: the last one is refused)"},
    {"startup", do_startup, "--config FILE --identity NAME NAME=VALUE ...",
     "judge startup parameters as pgwardd does (\"options\" read as the server reads it;\n"
     "    every setting listed; exit 3: refused)"},
    {"settings", do_settings, "",
     "PostgreSQL 15's settings and their contexts, as the guardrail superuser_settings\n"
     "    knows them (only \"user\" ones may be made)"},
    {"show", pw_ctl_policy_show, "[identity NAME]",
     "the running policy: its identities' rules and guardrails (pgwardd)"},
    {"reload", pw_ctl_policy_reload, "",
     "read the configuration again; a bad one is refused and the old one stays (pgwardd;\n"
     "    operators)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_policy(int argc, char **argv)
{
	return pw_ctl_run_table(policy_cmds, "policy", argc, argv);
}

/* policy check FILE */
static int do_check(int argc, char **argv)
{
	if (argc != 1)
		return pw_ctl_usage(policy_cmds, "policy", "check");
	return pw_ctl_check_file(argv[0]);
}

/* ---- explain: one text's analysis and decisions, printed twice over ---- */

/* What explain found for one text: the info struct both printers read. */
struct explain_info {
	const struct pw_config *cfg;
	const struct pw_identity *id;
	const char *sql;
	const struct pw_judgement *j; /* j->d overall, j->per_stmt[i], j->r the analysis */
	const struct pw_policy_session *ps;
};

static const char *by_name(const struct pw_decision *d)
{
	return pw_decided_by_name(d->by);
}

/* the client's error text, or why it was allowed */
static const char *reason_of(const struct pw_decision *d)
{
	return d->action == PW_ACT_ALLOW ? d->reason : d->message;
}

static const char *rule_name(const struct pw_identity *id, const struct pw_decision *d)
{
	return d->by == PW_BY_RULE && d->rule ? id->policy.rules[d->rule - 1].name : NULL;
}

static const char *access_name(const struct pw_sql_rel *rl)
{
	return rl->access & PW_SQL_WRITE ? "write" : rl->access & PW_SQL_LOCK ? "lock" : "read";
}

/* statement i's own text (the whole text when the spans are not exact) */
static const char *stmt_text(const struct explain_info *e, int i, size_t *len)
{
	const struct pw_sql_stmt *st = &e->j->r->stmts[i];
	size_t all = strlen(e->sql);
	*len = st->length ? (size_t)st->length : strlen(e->sql + st->location);
	if (e->j->r->spans_approx || (size_t)st->location + *len > all) {
		*len = all;
		return e->sql;
	}
	return e->sql + st->location;
}

static void func_name(const struct pw_sql_func *f, char *out, size_t len)
{
	snprintf(out, len, "%s%s%s", f->schema, f->schema[0] ? "." : "", f->name);
}

/* the classes a statement runs and its facts, as lists of names */
static json_t *runs_json(const struct pw_sql_stmt *st)
{
	json_t *a = json_array();
	for (int k = 0; k <= PW_SQL_EXPLAIN; k++)
		if (st->runs & (1u << k))
			json_array_append_new(a,
			                      json_string(pw_sql_class_name((enum pw_sql_class)k)));
	return a;
}

static json_t *facts_json(const struct pw_sql_stmt *st)
{
	json_t *a = json_array();
	for (int k = 0; k < 32; k++)
		if ((st->flags & (1u << k)) && pw_fact_name(1u << k))
			json_array_append_new(a, json_string(pw_fact_name(1u << k)));
	return a;
}

static json_t *decision_json(const struct pw_identity *id, const struct pw_decision *d)
{
	json_t *j = json_object();
	json_object_set_new(j, "decision", json_string(pw_action_name(d->action)));
	json_object_set_new(j, "by", json_string(by_name(d)));
	json_object_set_new(j, "rule",
	                    d->by == PW_BY_RULE && d->rule ? json_integer(d->rule) : json_null());
	json_object_set_new(j, "rule_name", pw_ctl_json_str(rule_name(id, d)));
	json_object_set_new(j, "guardrail",
	                    d->by == PW_BY_GUARDRAIL ? json_string(pw_guardrail_name(d->guardrail))
	                                             : json_null());
	json_object_set_new(j, "reason", json_string(reason_of(d)));
	json_object_set_new(j, "sqlstate", pw_ctl_json_str(d->sqlstate));
	return j;
}

static json_t *relations_json(const struct pw_sql_result *r, int i)
{
	json_t *a = json_array();
	for (int k = 0; k < r->nrels; k++) {
		const struct pw_sql_rel *rl = &r->rels[k];
		if (rl->stmt != i)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "schema", json_string(rl->schema));
		json_object_set_new(o, "name", json_string(rl->name));
		json_object_set_new(o, "access", json_string(access_name(rl)));
		json_object_set_new(o, "unqualified",
		                    json_boolean(rl->flags & PW_SQL_R_UNQUALIFIED));
		json_object_set_new(o, "ambiguous", json_boolean(rl->flags & PW_SQL_R_AMBIGUOUS));
		json_object_set_new(o, "unresolved", json_boolean(rl->flags & PW_SQL_R_UNRESOLVED));
		json_array_append_new(a, o);
	}
	return a;
}

/* "functions" (names) and "calls" (names, whether each writes and why) into j */
static void calls_json(const struct explain_info *e, int i, json_t *j)
{
	const struct pw_sql_result *r = e->j->r;
	json_t *names = json_array(), *calls = json_array();
	for (int k = 0; k < r->nfuncs; k++) {
		const struct pw_sql_func *f = &r->funcs[k];
		char name[2 * PW_SQL_NAMELEN + 2], why[128];
		if (f->stmt != i)
			continue;
		func_name(f, name, sizeof(name));
		json_array_append_new(names, json_string(name));
		json_t *o = json_object();
		bool w = pw_policy_call_writes(e->ps, f, why, sizeof(why));
		json_object_set_new(o, "name", json_string(name));
		json_object_set_new(o, "writes", json_boolean(w));
		json_object_set_new(o, "why", w ? json_string(why) : json_null());
		json_array_append_new(calls, o);
	}
	json_object_set_new(j, "functions", names);
	json_object_set_new(j, "calls", calls);
}

static json_t *stmt_settings_json(const struct pw_sql_result *r, int i)
{
	static const char *const hows[] = {"set", "reset", "set_config", "alter"};
	json_t *a = json_array();
	for (int k = 0; k < r->nsets; k++) {
		const struct pw_sql_setting *s = &r->sets[k];
		if (s->stmt != i)
			continue;
		json_t *o = json_object(), *v = json_null();
		json_object_set_new(o, "name", json_string(s->name));
		json_object_set_new(o, "how", json_string(hows[s->how & 3]));
		if (s->value_known && s->value_len) {
			v = json_array();
			for (size_t off = 0; off < s->value_len; off += strlen(s->value + off) + 1)
				json_array_append_new(v, json_string(s->value + off));
		}
		json_object_set_new(o, "value", v);
		json_array_append_new(a, o);
	}
	return a;
}

/* Statement i's masking plan as pgwardd would follow it: per result column what it carries
 * and what it becomes (JSON null: the identity has no masks, or the text was refused). */
static json_t *mask_json(const struct explain_info *e, int i)
{
	const struct pw_inspect_plans *pl = e->j->plans;
	if (!pl || i >= pl->n || !pl->p[i])
		return json_null();
	const struct pw_mask_plan *p = pl->p[i];
	struct pw_mask_scope sc = {.cfg = e->cfg, .id = e->id, .ps = e->ps};
	json_t *cols = json_array();
	for (int k = 0; k < p->n; k++) {
		struct pw_mask_col c;
		pw_mask_column(&sc, p, k, p->n, 0, 0, p->cols[k].type, 0, &c);
		json_t *o = json_object();
		json_object_set_new(o, "carries", json_string(pw_mask_kind_name(p->cols[k].kind)));
		json_object_set_new(o, "rule",
		                    p->cols[k].rule >= 0 &&
		                            e->id->policy.rules[p->cols[k].rule].name[0]
		                        ? json_string(e->id->policy.rules[p->cols[k].rule].name)
		                        : json_null());
		json_object_set_new(o, "masked",
		                    c.mask ? json_string(pw_mask_strategy_name(c.strategy))
		                           : json_null());
		json_object_set_new(o, "detect", json_boolean(c.detect));
		json_array_append_new(cols, o);
	}
	json_t *m = json_object();
	json_object_set_new(m, "reads_masked", json_boolean(p->touches));
	/* columns not told apart: every column of the result is masked */
	json_object_set_new(m, "columns", p->mapped ? cols : (json_decref(cols), json_null()));
	json_object_set_new(m, "copy", json_boolean(p->copy));
	return m;
}

static json_t *statement_json(const struct explain_info *e, int i)
{
	const struct pw_sql_stmt *st = &e->j->r->stmts[i];
	json_t *j = decision_json(e->id, &e->j->per_stmt[i]);
	size_t len;
	const char *text = stmt_text(e, i, &len);

	json_object_set_new(j, "text", json_stringn(text, len));
	json_object_set_new(j, "class", json_string(pw_sql_class_name(st->cls)));
	json_object_set_new(j, "inner",
	                    st->inner ? json_string(pw_sql_class_name(st->inner)) : json_null());
	json_object_set_new(j, "runs", runs_json(st));
	json_object_set_new(j, "facts", facts_json(st));
	json_object_set_new(j, "object", pw_ctl_json_str(st->object));
	json_object_set_new(j, "language",
	                    st->flags & PW_SQL_F_BODY ? json_string(st->lang) : json_null());
	json_object_set_new(j, "relations", relations_json(e->j->r, i));
	calls_json(e, i, j);
	json_object_set_new(j, "settings", stmt_settings_json(e->j->r, i));
	json_object_set_new(j, "mask", mask_json(e, i));
	return j;
}

static void explain_json(const struct explain_info *e)
{
	json_t *res = decision_json(e->id, &e->j->d), *a = json_array();
	for (int i = 0; !e->j->unreadable && i < e->j->r->nstmts; i++)
		json_array_append_new(a, statement_json(e, i));
	json_object_set_new(res, "statements", a);
	json_object_set_new(res, "unreadable", json_boolean(e->j->unreadable));
	json_object_set_new(res, "identity", json_string(e->id->name));
	json_object_set_new(res, "sql", json_string(e->sql));
	pw_ctl_print_json(res);
}

/* a list of names as JSON says it, ["a","b"] */
static void print_list(json_t *a)
{
	char *s = json_dumps(a, JSON_COMPACT);
	fputs(s ? s : "[]", stdout);
	free(s);
	json_decref(a);
}

static void statement_plain(const struct explain_info *e, int i)
{
	const struct pw_sql_result *r = e->j->r;
	const struct pw_sql_stmt *st = &r->stmts[i];
	const struct pw_decision *d = &e->j->per_stmt[i];
	size_t len;
	const char *text = stmt_text(e, i, &len);

	printf("  statement %d: %s (%s)\n", i + 1, pw_sql_class_name(st->cls),
	       pw_action_name(d->action));
	printf("    text: %.*s\n", (int)len, text);
	printf("    runs: ");
	print_list(runs_json(st));
	printf("  facts: ");
	print_list(facts_json(st));
	printf("\n");
	for (int k = 0; k < r->nrels; k++)
		if (r->rels[k].stmt == i)
			printf("    %s %s.%s%s\n", access_name(&r->rels[k]), r->rels[k].schema,
			       r->rels[k].name,
			       r->rels[k].flags & PW_SQL_R_AMBIGUOUS
			           ? " (one of several candidates)"
			           : "");
	for (int k = 0; k < r->nfuncs; k++) {
		char name[2 * PW_SQL_NAMELEN + 2], why[128];
		if (r->funcs[k].stmt != i)
			continue;
		func_name(&r->funcs[k], name, sizeof(name));
		if (pw_policy_call_writes(e->ps, &r->funcs[k], why, sizeof(why)))
			printf("    calls %s() (writes: %s)\n", name, why);
		else
			printf("    calls %s()\n", name);
	}
	json_t *m = mask_json(e, i);
	if (json_is_object(m)) {
		json_t *cols = json_object_get(m, "columns");
		printf("    mask: %s%s\n",
		       json_is_true(json_object_get(m, "reads_masked")) ? "reads masked data"
		                                                        : "reads no masked data",
		       json_is_null(cols) && json_is_true(json_object_get(m, "reads_masked"))
		           ? "; its columns cannot be told apart: every one is masked"
		           : "");
		for (size_t k = 0; json_is_array(cols) && k < json_array_size(cols); k++) {
			json_t *c = json_array_get(cols, k), *ms = json_object_get(c, "masked"),
			       *ru = json_object_get(c, "rule");
			printf("      column %zu: %s", k + 1,
			       json_string_value(json_object_get(c, "carries")));
			if (json_is_string(ms))
				printf(", masked: %s", json_string_value(ms));
			if (json_is_string(ru))
				printf(" (rule \"%s\")", json_string_value(ru));
			if (json_is_true(json_object_get(c, "detect")))
				printf(", detectors run");
			printf("\n");
		}
	}
	json_decref(m);
	if (d->action != PW_ACT_ALLOW)
		printf("    why: %s\n", reason_of(d));
}

static void explain_plain(const struct explain_info *e)
{
	printf("identity %s: %s\n", e->id->name, pw_action_name(e->j->d.action));
	printf("  reason: %s\n", reason_of(&e->j->d));
	for (int i = 0; !e->j->unreadable && i < e->j->r->nstmts; i++)
		statement_plain(e, i);
}

/* The identity called name, or NULL (said through the error helper). */
static const struct pw_identity *find_identity(const struct pw_config *cfg, const char *file,
                                               const char *name)
{
	for (int i = 0; i < cfg->n_identities; i++)
		if (strcmp(cfg->identities[i].name, name) == 0)
			return &cfg->identities[i];
	pw_ctl_err(PW_CTL_FAILED, "%s: no identity named \"%s\"", file, name);
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

/* policy explain's arguments */
struct explain_args {
	const char *file, *ident, *database, *upname;
	int n;
	const char *texts[MAX_TEXTS];
	const char *names[MAX_TEXTS]; /* protocol statement name for --parse NAME=TEXT, or NULL */
	bool offline;
};

static int explain_args(int argc, char **argv, struct explain_args *a)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},   {"identity", required_argument, NULL, 'i'},
	    {"sql", required_argument, NULL, 's'},      {"parse", required_argument, NULL, 'p'},
	    {"database", required_argument, NULL, 'd'}, {"upstream", required_argument, NULL, 'u'},
	    {"offline", no_argument, NULL, 'o'},        {NULL, 0, NULL, 0}};
	/* getopt wants the program name first */
	char **av = calloc((size_t)argc + 2, sizeof(char *));
	int c, rc = 0;
	if (!av)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	av[0] = "explain";
	memcpy(av + 1, argv, sizeof(char *) * (size_t)argc);
	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc + 1, av, "", opts, NULL)) != -1) {
		if (c == 'c')
			a->file = optarg;
		else if (c == 'i')
			a->ident = optarg;
		else if (c == 'd')
			a->database = optarg;
		else if (c == 'u')
			a->upname = optarg;
		else if (c == 'o')
			a->offline = true;
		else if ((c == 's' || c == 'p') && a->n >= MAX_TEXTS)
			rc = pw_ctl_err(PW_CTL_USAGE, "at most %d texts", MAX_TEXTS);
		else if (c == 's' || c == 'p') {
			char *eq = c == 'p' ? strchr(optarg, '=') : NULL;
			a->names[a->n] = NULL;
			a->texts[a->n] = optarg;
			if (c == 'p' && !eq) {
				rc = pw_ctl_err(PW_CTL_USAGE, "--parse wants NAME=TEXT");
			} else if (eq) {
				*eq = 0;
				a->names[a->n] = optarg;
				a->texts[a->n] = eq + 1;
			}
			a->n++;
		} else
			rc = pw_ctl_usage(policy_cmds, "policy", "explain");
	}
	free(av);
	if (rc == 0 && (!a->file || !a->ident || a->n == 0))
		rc = pw_ctl_usage(policy_cmds, "policy", "explain");
	return rc;
}

/* The session the texts run in: read from the identity's upstream, or without the server
 * (its default search_path, or the imposed one; no catalog, so every call needs a rule naming
 * it, as in pgwardd before a catalog is read). *database is settled here too. */
static int explain_session(const struct pw_runtime *rt, const struct pw_identity *id,
                           struct explain_args *a, struct pw_policy_session *ps)
{
	const struct pw_config *cfg = rt->cfg;
	char err[1024], path[1024];
	int ui = id->upstream;
	for (int i = 0; a->upname && i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, a->upname) == 0)
			ui = i;
	if (a->upname && (ui < 0 || strcmp(cfg->upstreams[ui].name, a->upname) != 0))
		return pw_ctl_err(PW_CTL_FAILED, "%s: no upstream named \"%s\"", a->file,
		                  a->upname);
	if (ui < 0 && cfg->n_upstreams == 1)
		ui = 0;
	const struct pw_upstream *u = ui >= 0 ? &cfg->upstreams[ui] : NULL;
	if (!a->database)
		a->database = u && u->database[0] ? u->database : u ? u->user : "";
	if (!a->offline && u) {
		if (session_from_upstream(rt, ui, a->database, id, ps, err, sizeof(err)) < 0)
			return pw_ctl_err(PW_CTL_FAILED,
			                  "%s (use --offline to explain without the server)", err);
		return PW_CTL_OK;
	}
	imposed_path(u, path, sizeof(path));
	pw_policy_session_init(ps, path[0] ? path : NULL,
	                       id->policy.role[0] ? id->policy.role
	                       : u                ? u->user
	                                          : "",
	                       NULL);
	if (!a->offline)
		fprintf(
		    stderr,
		    "pgwardctl: identity %s takes its upstream from the address a client dials: "
		    "explaining offline (pass --upstream NAME to read one)\n",
		    id->name);
	return PW_CTL_OK;
}

/* policy explain: the texts run in order in one simulated session (PREPARE then EXECUTE, SET
 * search_path then a query), each decided by pw_inspect_text, pgwardd's own path. */
static int do_explain(int argc, char **argv)
{
	struct explain_args a = {0};
	int rc = explain_args(argc, argv, &a);
	if (rc)
		return rc;
	char err[1024];
	struct pw_runtime *rt = pw_runtime_load(a.file, err, sizeof(err));
	if (!rt)
		return pw_ctl_err(PW_CTL_FAILED, "%s", err);
	const struct pw_identity *id = find_identity(rt->cfg, a.file, a.ident);
	struct pw_policy_session ps;
	rc = id ? explain_session(rt, id, &a, &ps) : PW_CTL_FAILED;
	if (rc) {
		pw_runtime_unref(rt);
		return rc;
	}
	struct pw_sql_result *r = malloc(sizeof(*r));
	struct pw_decision *per = calloc(PW_SQL_MAX_STMTS, sizeof(*per));
	struct pw_caller who = {
	    .cfg = rt->cfg, .identity = id, .user = id->name, .database = a.database, .ps = &ps};
	if (!r || !per)
		rc = pw_ctl_err(PW_CTL_FAILED, "out of memory");
	for (int t = 0; t < a.n && r && per; t++) {
		struct pw_inspect_plans plans = {.n = 0};
		struct pw_judgement j = {.per_stmt = per, .r = r, .plans = &plans};
		enum pw_verdict v = pw_inspect_text(&who, a.names[t] ? 'P' : 'Q', a.texts[t],
		                                    strlen(a.texts[t]), a.names[t], &j);
		struct explain_info e = {
		    .cfg = rt->cfg, .id = id, .sql = a.texts[t], .j = &j, .ps = &ps};
		if (pw_ctl_json)
			explain_json(&e);
		else
			explain_plain(&e);
		pw_inspect_plans_free(&plans);
		rc = v != PW_ALLOW ? PW_CTL_REFUSED : PW_CTL_OK; /* the last text's says it */
	}
	free(r);
	free(per);
	pw_policy_session_free(&ps);
	pw_runtime_unref(rt);
	return rc;
}

/* ---- startup ---- */

/* What policy startup found: the info struct both printers read. */
struct startup_info {
	const struct pw_config *cfg;
	const struct pw_identity *id;
	int n_settings;
	struct {
		char *name, *value;
	} * settings;
	struct pw_decision d;
	bool refused;
	const char *error; /* the server would refuse to read the options: 42601 */
};

static int startup_setting(void *arg, const char *name, const char *value)
{
	struct startup_info *o = arg;
	void *s = realloc(o->settings, sizeof(*o->settings) * (size_t)(o->n_settings + 1));
	if (!s)
		return 1;
	o->settings = s;
	o->settings[o->n_settings].name = strdup(name);
	o->settings[o->n_settings].value = strdup(value);
	o->n_settings++;
	pw_policy_startup_setting(o->cfg, o->id, name, value, &o->d);
	o->refused = o->d.action != PW_ACT_ALLOW;
	return o->refused ? 1 : 0;
}

static void startup_plain(const struct startup_info *o)
{
	printf("identity %s: %s\n", o->id->name, o->error || o->refused ? "deny" : "allow");
	if (o->error || o->refused)
		printf("  reason: %s\n", o->error ? o->error : o->d.message);
	for (int i = 0; i < o->n_settings; i++)
		printf("  sets %s = %s\n", o->settings[i].name, o->settings[i].value);
}

static void startup_json(const struct startup_info *o)
{
	json_t *j = json_object(), *a = json_array();
	json_object_set_new(j, "identity", json_string(o->id->name));
	json_object_set_new(j, "decision", json_string(o->error || o->refused ? "deny" : "allow"));
	json_object_set_new(j, "reason",
	                    o->error     ? json_string(o->error)
	                    : o->refused ? json_string(o->d.message)
	                                 : json_null());
	json_object_set_new(j, "sqlstate",
	                    o->error     ? json_string("42601")
	                    : o->refused ? pw_ctl_json_str(o->d.sqlstate)
	                                 : json_null());
	json_object_set_new(j, "by", o->error ? json_string("server") : json_null());
	for (int i = 0; i < o->n_settings; i++) {
		json_t *e = json_object();
		json_object_set_new(e, "name", json_string(o->settings[i].name));
		json_object_set_new(e, "value", json_string(o->settings[i].value));
		json_array_append_new(a, e);
	}
	json_object_set_new(j, "settings", a);
	pw_ctl_print_json(j);
}

/* One NAME=VALUE judged into o; PW_CTL_USAGE when it is not NAME=VALUE. */
static int startup_param(struct startup_info *o, char *arg, char *err, size_t errlen)
{
	char *eq = strchr(arg, '=');
	if (!eq)
		return pw_ctl_err(PW_CTL_USAGE, "expected NAME=VALUE, got \"%s\"", arg);
	*eq = 0;
	if (!strcmp(arg, "options")) {
		if (pw_options_parse(eq + 1, startup_setting, o, err, errlen) < 0)
			o->error = err;
	} else if (!strcmp(arg, "replication")) {
		if (pw_replication_refused(eq + 1, o->d.message, sizeof(o->d.message))) {
			snprintf(o->d.sqlstate, sizeof(o->d.sqlstate), "0A000");
			o->refused = true;
		}
	} else if (strcmp(arg, "user") && strcmp(arg, "database") && strncmp(arg, "_pq_.", 5)) {
		startup_setting(o, arg, eq + 1);
	}
	return PW_CTL_OK;
}

/* policy startup --config FILE --identity NAME NAME=VALUE ...: the startup parameters judged as
 * pgwardd judges them (options read as the server reads them); every setting they make. */
static int do_startup(int argc, char **argv)
{
	const char *file = NULL, *ident = NULL;
	int first = 0, rc = PW_CTL_OK;
	while (first + 1 < argc && argv[first][0] == '-') {
		if (!strcmp(argv[first], "--config"))
			file = argv[first + 1];
		else if (!strcmp(argv[first], "--identity"))
			ident = argv[first + 1];
		else
			break;
		first += 2;
	}
	if (!file || !ident || first >= argc)
		return pw_ctl_usage(policy_cmds, "policy", "startup");
	struct pw_config *cfg;
	char err[1024];
	if (pw_config_load(file, &cfg, err, sizeof(err)) < 0)
		return pw_ctl_err(PW_CTL_FAILED, "%s", err);
	struct startup_info o = {.cfg = cfg, .id = find_identity(cfg, file, ident)};
	if (!o.id)
		rc = PW_CTL_FAILED;
	for (int i = first; o.id && i < argc && !o.refused && !o.error && rc == 0; i++)
		rc = startup_param(&o, argv[i], err, sizeof(err));
	if (rc == 0 && pw_ctl_json)
		startup_json(&o);
	else if (rc == 0)
		startup_plain(&o);
	if (rc == 0 && (o.error || o.refused))
		rc = PW_CTL_REFUSED;
	for (int i = 0; i < o.n_settings; i++) {
		free(o.settings[i].name);
		free(o.settings[i].value);
	}
	free(o.settings);
	pw_config_unref(cfg);
	return rc;
}

/* ---- settings ---- */

/* policy settings: the compiled-in table of PostgreSQL 15's settings and their contexts, which
 * the guardrail superuser_settings goes by (only "user" ones may be made). The table is the
 * info both printers read. */
static void settings_plain(void)
{
	enum pw_guc_context c;
	bool shown;
	const char *name;
	for (size_t i = 0; (name = pw_guc_at(i, &c, &shown)); i++)
		printf("%s %s%s\n", name, pw_guc_context_name(c), shown ? "" : " (hidden)");
}

static void settings_json(void)
{
	json_t *a = json_array();
	enum pw_guc_context c;
	bool shown;
	const char *name;
	for (size_t i = 0; (name = pw_guc_at(i, &c, &shown)); i++) {
		json_t *e = json_object();
		json_object_set_new(e, "name", json_string(name));
		json_object_set_new(e, "context", json_string(pw_guc_context_name(c)));
		json_object_set_new(e, "shown", json_boolean(shown));
		json_array_append_new(a, e);
	}
	pw_ctl_print_json(a);
}

static int do_settings(int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return pw_ctl_usage(policy_cmds, "policy", "settings");
	if (pw_ctl_json)
		settings_json();
	else
		settings_plain();
	return PW_CTL_OK;
}
