/* Policy decisions on analysed statements. See include/pgward/policy.h. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/guc.h"
#include "pgward/policy.h"
#include "pgward/policy_session.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

const char *pw_action_name(enum pw_action a)
{
	static const char *const names[] = {"allow", "deny", "approve", "mask"};
	return (unsigned)a < N_ELEMS(names) ? names[a] : "?";
}

const char *pw_decided_by_name(enum pw_decided_by b)
{
	static const char *const names[] = {[PW_BY_DEFAULT] = "default",
	                                    [PW_BY_RULE] = "rule",
	                                    [PW_BY_GUARDRAIL] = "guardrail",
	                                    [PW_BY_REFUSAL] = "refusal",
	                                    [PW_BY_WINDOW] = "window"};
	return (unsigned)b < N_ELEMS(names) ? names[b] : "?";
}

/* ---- matching ------------------------------------------------------------------------ */

/* An unresolved name may live in any schema: only the glob's name part can be compared,
 * which is enough to restrict and never enough to allow. */
static bool rel_glob(const char *glob, const struct pw_sql_rel *r, bool unresolved)
{
	char full[2 * PW_SQL_NAMELEN + 2];

	if (unresolved) {
		const char *dot = strchr(glob, '.');
		return dot && fnmatch(dot + 1, r->name, 0) == 0;
	}
	snprintf(full, sizeof(full), "%s.%s", r->schema, r->name);
	return fnmatch(glob, full, 0) == 0;
}

static bool rel_any(const struct pw_rule *ru, const struct pw_sql_rel *r, bool unresolved)
{
	for (int g = 0; g < ru->n_relations; g++)
		if (rel_glob(ru->relations[g], r, unresolved))
			return true;
	return false;
}

static bool func_any(const struct pw_rule *ru, const struct pw_sql_func *f,
                     const struct pw_policy_session *ps, bool allow)
{
	for (int g = 0; g < ru->n_functions; g++)
		if (pw_policy_call_matches(ps, f, ru->functions[g], allow))
			return true;
	return false;
}

/* The classes a statement runs, as rules see them: PREPARE and EXECUTE are judged by what
 * they prepare or run; EXPLAIN without ANALYZE runs nothing but itself. */
static uint32_t effective_classes(const struct pw_sql_stmt *st)
{
	uint32_t e;

	if (st->cls == PW_SQL_EXPLAIN && (st->flags & PW_SQL_F_NOT_EXECUTED))
		return 1u << PW_SQL_EXPLAIN;
	e = st->runs | (1u << st->cls);
	if (st->cls == PW_SQL_PREPARE)
		e &= ~(1u << PW_SQL_PREPARE);
	if (st->cls == PW_SQL_EXECUTE || (st->cls == PW_SQL_EXPLAIN && st->inner == PW_SQL_EXECUTE))
		e &= ~(1u << PW_SQL_EXECUTE);
	return e;
}

/* The class a message names: the most consequential one the statement runs. */
static enum pw_sql_class primary_class(const struct pw_sql_stmt *st, uint32_t among)
{
	static const enum pw_sql_class order[] = {
	    PW_SQL_DELETE,    PW_SQL_UPDATE, PW_SQL_INSERT, PW_SQL_MERGE, PW_SQL_TRUNCATE,
	    PW_SQL_COPY_FROM, PW_SQL_DDL,    PW_SQL_DCL,    PW_SQL_CALL,  PW_SQL_DO,
	};
	enum pw_sql_class c = st->cls;

	for (size_t i = 0; i < N_ELEMS(order); i++)
		if (among & (1u << order[i]))
			return order[i];
	if ((c == PW_SQL_EXECUTE || c == PW_SQL_PREPARE) && st->inner)
		c = st->inner;
	if (!(among & (1u << c)))
		for (int k = 0; k <= PW_SQL_EXPLAIN; k++)
			if (among & (1u << k))
				return (enum pw_sql_class)k;
	return c;
}

static const char *verb(enum pw_sql_class c)
{
	switch (c) {
	case PW_SQL_SELECT:
		return "SELECT";
	case PW_SQL_INSERT:
		return "INSERT";
	case PW_SQL_UPDATE:
		return "UPDATE";
	case PW_SQL_DELETE:
		return "DELETE";
	case PW_SQL_MERGE:
		return "MERGE";
	case PW_SQL_COPY_TO:
		return "COPY TO";
	case PW_SQL_COPY_FROM:
		return "COPY FROM";
	case PW_SQL_DDL:
		return "run DDL on";
	case PW_SQL_DCL:
		return "run GRANT/REVOKE/role commands on";
	case PW_SQL_TRUNCATE:
		return "TRUNCATE";
	case PW_SQL_CALL:
		return "CALL";
	case PW_SQL_DO:
		return "run DO";
	case PW_SQL_SET:
		return "SET";
	case PW_SQL_TRANSACTION:
		return "run transaction control";
	case PW_SQL_PREPARE:
		return "PREPARE";
	case PW_SQL_EXECUTE:
		return "EXECUTE";
	case PW_SQL_EXPLAIN:
		return "EXPLAIN";
	default:
		return "run a utility command on";
	}
}

struct ctx {
	const struct pw_identity *id;
	const struct pw_policy_session *ps;
	const struct pw_sql_result *r;
	int i; /* statement index */
	const struct pw_sql_stmt *st;
	uint32_t classes;
	bool startup; /* a setting of the startup packet, judged as the set_config it is */
};

/* A rule without any condition allows (or refuses) everything, write calls included. */
static bool unconditional(const struct pw_rule *ru)
{
	return !ru->classes && !ru->n_relations && !ru->n_functions && !ru->facts;
}

/* Does rule ru match statement i? *rel / *func name the part that decided (an index, -1 for
 * none): for a restricting rule the part it matched, for an allowing rule that does not match
 * the first part it does not cover (the message then names it). */
static bool rule_matches(const struct ctx *x, const struct pw_rule *ru, int *rel, int *func)
{
	bool allow = ru->action == PW_ACT_ALLOW;
	const struct pw_sql_result *r = x->r;

	*rel = *func = -1;
	if (ru->classes && (allow ? (x->classes & ~ru->classes) != 0 : !(x->classes & ru->classes)))
		return false;
	if (ru->facts && !(x->st->flags & ru->facts))
		return false;
	if (ru->n_relations && allow && (x->classes & ((1u << PW_SQL_DDL) | (1u << PW_SQL_DCL)))) {
		/* DDL and DCL act on objects the analysis may not list (schemas, databases,
		 * roles, comments): a rule scoped to relations allows them only when they name
		 * relations, all of them covered */
		bool named = false;
		for (int k = 0; k < r->nrels && !named; k++)
			named = r->rels[k].stmt == x->i;
		if (!named)
			return false;
	}
	if (ru->n_relations) {
		bool any = false;
		for (int k = 0; k < r->nrels; k++) {
			const struct pw_sql_rel *rl = &r->rels[k];
			if (rl->stmt != x->i)
				continue;
			/* an allowing rule covers only the accesses it names: a statement that
			 * also writes (or locks rows) is not covered by "read" */
			if (!(rl->access & ru->access)) {
				if (allow) {
					*rel = k;
					return false;
				}
				continue;
			}
			bool unres = pw_policy_rel_unresolved(x->ps, rl);
			if (allow) {
				if (unres || !rel_any(ru, rl, false)) {
					*rel = k;
					return false;
				}
			} else if (rel_any(ru, rl, unres)) {
				*rel = k;
				any = true;
				break;
			}
		}
		if (!allow && !any)
			return false;
	}
	if (allow && !unconditional(ru)) {
		/* reads are covered by every allowing rule; a call that writes only by one that
		 * names it and allows writing */
		for (int k = 0; k < r->nfuncs; k++) {
			const struct pw_sql_func *f = &r->funcs[k];
			if (f->stmt != x->i || !pw_policy_call_writes(x->ps, f, NULL, 0))
				continue;
			if (!ru->n_functions || !(ru->access & PW_SQL_WRITE) ||
			    !func_any(ru, f, x->ps, true)) {
				*func = k;
				return false;
			}
		}
	} else if (!allow && ru->n_functions) {
		bool any = false;
		for (int k = 0; k < r->nfuncs && !any; k++) {
			const struct pw_sql_func *f = &r->funcs[k];
			if (f->stmt == x->i && func_any(ru, f, x->ps, false)) {
				*func = k;
				any = true;
			}
		}
		if (!any)
			return false;
	}
	return true;
}

/* The relation a message about statement i names: the first written, else the first locked,
 * else the first. */
static int some_rel(const struct ctx *x)
{
	int first = -1, locked = -1;
	for (int k = 0; k < x->r->nrels; k++) {
		if (x->r->rels[k].stmt != x->i)
			continue;
		if (x->r->rels[k].access & PW_SQL_WRITE)
			return k;
		if (locked < 0 && (x->r->rels[k].access & PW_SQL_LOCK))
			locked = k;
		if (first < 0)
			first = k;
	}
	return locked >= 0 ? locked : first;
}

static void rel_text(const struct ctx *x, int k, char *out, size_t len)
{
	const struct pw_sql_rel *rl = &x->r->rels[k];
	if (pw_policy_rel_unresolved(x->ps, rl))
		snprintf(out, len, "%s (not schema-qualified, and search_path is unknown)",
		         rl->name);
	else
		snprintf(out, len, "%s.%s", rl->schema, rl->name);
}

static bool reads_only(enum pw_sql_class c)
{
	return c == PW_SQL_SELECT || c == PW_SQL_COPY_TO || c == PW_SQL_EXPLAIN ||
	       c == PW_SQL_EXECUTE || c == PW_SQL_PREPARE || c == PW_SQL_OTHER;
}

/* reason: "may not DELETE public.orders", "may not lock rows of public.orders", "may not call
 * public.f() (a function defined in the database)", "may not run NOTIFY": the statement and
 * the part that decided. */
static void describe(const struct ctx *x, enum pw_action act, uint32_t among, int rel, int func,
                     char *out, size_t len)
{
	char obj[2 * PW_SQL_NAMELEN + 64] = "", why[128] = "";
	enum pw_sql_class c = primary_class(x->st, among ? among : x->classes);
	const char *lead = act == PW_ACT_APPROVE ? "needs approval to" : "may not";

	if (func >= 0) {
		const struct pw_sql_func *f = &x->r->funcs[func];
		if (pw_policy_call_writes(x->ps, f, why, sizeof(why)) && act == PW_ACT_DENY)
			snprintf(out, len, "%s call %s%s%s() (%s)", lead, f->schema,
			         f->schema[0] ? "." : "", f->name, why);
		else
			snprintf(out, len, "%s call %s%s%s()", lead, f->schema,
			         f->schema[0] ? "." : "", f->name);
		return;
	}
	if (rel < 0)
		rel = some_rel(x);
	if (rel < 0) {
		/* nothing named: the command itself, as the server names it */
		if (c == PW_SQL_OTHER || c == PW_SQL_DDL || c == PW_SQL_DCL || !x->st->tag[0])
			snprintf(out, len, "%s run %s", lead, x->st->tag[0] ? x->st->tag : "it");
		else
			snprintf(out, len, "%s %s", lead, verb(c));
		return;
	}
	rel_text(x, rel, obj, sizeof(obj));
	const struct pw_sql_rel *rl = &x->r->rels[rel];
	if (strcmp(x->st->tag, "LOCK TABLE") == 0)
		snprintf(out, len, "%s LOCK TABLE %s", lead, obj);
	else if ((rl->access & PW_SQL_LOCK) && !(rl->access & PW_SQL_WRITE))
		snprintf(out, len, "%s lock rows of %s (FOR UPDATE/SHARE)", lead, obj);
	else if ((rl->access & PW_SQL_WRITE) && reads_only(c))
		snprintf(out, len, "%s write to %s", lead, obj);
	else if (c == PW_SQL_OTHER && x->st->tag[0])
		snprintf(out, len, "%s run %s on %s", lead, x->st->tag, obj);
	else
		snprintf(out, len, "%s %s %s", lead, verb(c), obj);
}

static void set_decision(struct pw_decision *d, enum pw_action act, enum pw_decided_by by, int rule,
                         int stmt, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void set_decision(struct pw_decision *d, enum pw_action act, enum pw_decided_by by, int rule,
                         int stmt, const char *fmt, ...)
{
	va_list ap;

	memset(d, 0, sizeof(*d));
	d->action = act;
	d->by = by;
	d->rule = rule;
	d->stmt = stmt;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

/* Names of functions the guardrails refuse, matched whatever schema they are called in. */
static const char *const file_funcs[] = {
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
};
static const char *const kill_funcs[] = {"pg_terminate_backend", "pg_cancel_backend"};
static const char *const dblink_funcs[] = {"dblink*"};
/* Functions that run SQL (or read whole tables, schemas, the database) given as text: what
 * they run is out of the analysis' sight, so they are code as much as DO is. */
static const char *const sql_text_funcs[] = {
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    /* contrib: tablefunc's crosstab and connectby, xml2's xpath_table */
    "crosstab*",
    "connectby",
    "xpath_table",
};

/* The first call of statement i whose name matches one of the globs (whatever its schema). */
static int find_func(const struct ctx *x, const char *const *globs, size_t n)
{
	for (int k = 0; k < x->r->nfuncs; k++) {
		const struct pw_sql_func *f = &x->r->funcs[k];
		if (f->stmt != x->i)
			continue;
		for (size_t j = 0; j < n; j++)
			if (fnmatch(globs[j], f->name, 0) == 0)
				return k;
		/* ts_rewrite(query, 'SELECT ...') runs the text it is given; the 3-argument form
		 * does not */
		if (globs == sql_text_funcs && strcmp(f->name, "ts_rewrite") == 0 && f->nargs != 3)
			return k;
	}
	return -1;
}

/* A boolean setting's value that keeps it on (the spellings of PostgreSQL's parse_bool that
 * clients use; anything else is taken as a change). */
static bool is_on(const char *v)
{
	return !strcasecmp(v, "on") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
	       !strcmp(v, "1");
}

/* The checks no policy can switch off: without them the analysis itself is not reliable. */
static bool refusal(const struct ctx *x, const struct pw_config *cfg, struct pw_decision *d)
{
	const struct pw_sql_stmt *st = x->st;

	if (st->flags & PW_SQL_F_UNKNOWN_PREPARED) {
		set_decision(d, PW_ACT_DENY, PW_BY_REFUSAL, 0, x->i,
		             "may not EXECUTE %s: pgward did not see it prepared in this session",
		             st->object);
		return true;
	}
	if (st->flags & PW_SQL_F_SET_CONFIG_DYNAMIC) {
		set_decision(d, PW_ACT_DENY, PW_BY_REFUSAL, 0, x->i,
		             "may not call set_config() with a computed setting name");
		return true;
	}
	for (int k = 0; k < x->r->nsets; k++) {
		const struct pw_sql_setting *s = &x->r->sets[k];
		if (s->stmt != x->i)
			continue;
		if (strcmp(s->name, "standard_conforming_strings") == 0 &&
		    s->how != PW_SQL_SET_RESET && !(s->value_known && is_on(s->value))) {
			set_decision(d, PW_ACT_DENY, PW_BY_REFUSAL, 0, x->i,
			             "may not change standard_conforming_strings (pgward reads "
			             "statements as the server does only with it on)");
			return true;
		}
		if ((strcmp(s->name, "client_encoding") == 0 || strcmp(s->name, "names") == 0) &&
		    s->how != PW_SQL_SET_RESET &&
		    !(s->value_known && s->value_len &&
		      (!cfg || pw_config_encoding_allowed(cfg, s->value)))) {
			set_decision(
			    d, PW_ACT_DENY, PW_BY_REFUSAL, 0, x->i,
			    "may not set client_encoding to %s (allowed: %s%s)",
			    s->value_known && s->value_len ? s->value : "a computed value",
			    cfg && cfg->n_client_encodings ? cfg->client_encodings[0] : "UTF8",
			    cfg && cfg->n_client_encodings > 1 ? " and others configured" : "");
			return true;
		}
	}
	return false;
}

/* SET forms that name no setting of their own: they set transaction_isolation,
 * transaction_read_only, transaction_deferrable (all "user") or import a snapshot. */
static const char *const set_multi[] = {"transaction", "session characteristics",
                                        "transaction snapshot"};

/* The first setting statement i makes that an ordinary user may not make (guardrail
 * superuser_settings), why in why; -1 for none. A RESET returns to what the session started
 * with; a custom (dotted) name is the application's own in a session, but at start-up it is
 * made with the login role's rights, which the server keeps should an extension later define
 * it as a superuser-only setting. */
static int superuser_setting(const struct ctx *x, char *why, size_t len)
{
	for (int k = 0; k < x->r->nsets; k++) {
		const struct pw_sql_setting *s = &x->r->sets[k];
		if (s->stmt != x->i || s->how == PW_SQL_SET_RESET)
			continue;
		bool multi = false;
		for (size_t m = 0; m < N_ELEMS(set_multi) && !multi; m++)
			multi = strcmp(s->name, set_multi[m]) == 0;
		enum pw_guc_context c = pw_guc_context(s->name);
		if (multi || c == PW_GUC_USERSET)
			continue;
		if (c != PW_GUC_UNKNOWN)
			snprintf(why, len,
			         "PostgreSQL context \"%s\": only \"user\" settings may be made",
			         pw_guc_context_name(c));
		else if (!pw_guc_is_custom(s->name))
			snprintf(why, len, "not a setting PostgreSQL 15 has");
		else if (x->startup)
			snprintf(why, len,
			         "a custom setting made at start-up gets the login role's rights: "
			         "SET it "
			         "after connecting");
		else
			continue;
		return k;
	}
	return -1;
}

static bool guardrail(const struct ctx *x, struct pw_decision *d)
{
	char why[128];
	const struct pw_policy *p = &x->id->policy;
	const struct pw_sql_stmt *st = x->st;
	int f;

#define ON(g) (!p->guardrail_off[g])
#define HIT(g, act, ...)                                                                           \
	do {                                                                                       \
		set_decision(d, act, PW_BY_GUARDRAIL, 0, x->i, __VA_ARGS__);                       \
		d->guardrail = g;                                                                  \
		return true;                                                                       \
	} while (0)
	if (ON(PW_GR_ROLE_ESCAPE) && (st->flags & PW_SQL_F_ROLE_ESCAPE) &&
	    strcmp(st->tag, "DISCARD ALL") == 0)
		HIT(PW_GR_ROLE_ESCAPE, PW_ACT_DENY,
		    "may not run DISCARD ALL (it resets the session's role and authorization; "
		    "DISCARD PLANS, SEQUENCES and TEMP may be allowed)");
	if (ON(PW_GR_ROLE_ESCAPE) && (st->flags & PW_SQL_F_ROLE_ESCAPE))
		HIT(PW_GR_ROLE_ESCAPE, PW_ACT_DENY,
		    "may not change the session's role (SET ROLE, SESSION AUTHORIZATION)");
	if (ON(PW_GR_SERVER_COPY) && (st->flags & PW_SQL_F_COPY_PROGRAM))
		HIT(PW_GR_SERVER_COPY, PW_ACT_DENY, "may not run COPY ... PROGRAM on the server");
	if (ON(PW_GR_SERVER_COPY) && (st->flags & PW_SQL_F_COPY_FILE))
		HIT(PW_GR_SERVER_COPY, PW_ACT_DENY, "may not COPY to or from a file on the server");
	if (ON(PW_GR_SERVER_FILES) && (f = find_func(x, file_funcs, N_ELEMS(file_funcs))) >= 0)
		HIT(PW_GR_SERVER_FILES, PW_ACT_DENY, "may not call %s() (server files)",
		    x->r->funcs[f].name);
	if (ON(PW_GR_ALTER_SYSTEM) && (st->flags & PW_SQL_F_ALTER_SYSTEM))
		HIT(PW_GR_ALTER_SYSTEM, PW_ACT_DENY, "may not ALTER SYSTEM");
	if (ON(PW_GR_SUPERUSER_SETTINGS) && (f = superuser_setting(x, why, sizeof(why))) >= 0)
		HIT(PW_GR_SUPERUSER_SETTINGS, PW_ACT_DENY, "may not set %s%s (%s)",
		    x->r->sets[f].name, x->startup ? " at start-up" : "", why);
	if (ON(PW_GR_DROP_DATABASE) && (st->flags & PW_SQL_F_DROP_DATABASE))
		HIT(PW_GR_DROP_DATABASE, PW_ACT_DENY, "may not DROP DATABASE %s", st->object);
	if (ON(PW_GR_CREATE_EXTENSION) && (st->flags & PW_SQL_F_CREATE_EXTENSION))
		HIT(PW_GR_CREATE_EXTENSION, PW_ACT_DENY, "may not CREATE EXTENSION %s", st->object);
	if (ON(PW_GR_DBLINK) && (f = find_func(x, dblink_funcs, N_ELEMS(dblink_funcs))) >= 0)
		HIT(PW_GR_DBLINK, PW_ACT_DENY, "may not call %s()", x->r->funcs[f].name);
	if (ON(PW_GR_TERMINATE_BACKEND) && (f = find_func(x, kill_funcs, N_ELEMS(kill_funcs))) >= 0)
		HIT(PW_GR_TERMINATE_BACKEND, PW_ACT_DENY, "may not call %s()", x->r->funcs[f].name);
	if (ON(PW_GR_CODE) && (f = find_func(x, sql_text_funcs, N_ELEMS(sql_text_funcs))) >= 0)
		HIT(PW_GR_CODE, PW_ACT_DENY, "may not call %s() (it runs SQL given as text)",
		    x->r->funcs[f].name);
	if (ON(PW_GR_CODE) && (st->flags & PW_SQL_F_BODY))
		HIT(PW_GR_CODE, PW_ACT_DENY, "may not %s (language %s)",
		    st->cls == PW_SQL_DO ? "run DO blocks" : "create functions or procedures",
		    st->lang);
#undef ON
#undef HIT
	return false;
}

/* UPDATE/DELETE without WHERE: what the rules allow still needs a human's approval. */
static bool needs_approval(const struct ctx *x, struct pw_decision *d)
{
	const struct pw_sql_stmt *st = x->st;
	char what[200];

	if (x->id->policy.guardrail_off[PW_GR_NO_WHERE] || !(st->flags & PW_SQL_F_NO_WHERE) ||
	    (st->cls == PW_SQL_EXPLAIN && (st->flags & PW_SQL_F_NOT_EXECUTED)))
		return false;
	describe(x, PW_ACT_APPROVE, x->classes & ((1u << PW_SQL_UPDATE) | (1u << PW_SQL_DELETE)),
	         -1, -1, what, sizeof(what));
	set_decision(d, PW_ACT_APPROVE, PW_BY_GUARDRAIL, 0, x->i, "%s without WHERE", what);
	d->guardrail = PW_GR_NO_WHERE;
	return true;
}

static void decide_one(const struct ctx *x, const struct pw_config *cfg, struct pw_decision *d)
{
	const struct pw_policy *p = &x->id->policy;

	if ((!p->guardrail_off[PW_GR_PARSER_INTEGRITY] && refusal(x, cfg, d)) || guardrail(x, d))
		return;
	/* what the allowing rules did not cover, for the message: a call when some rule covered
	 * all the relations (it came closest), else the first relation one did not */
	int miss_rel = -1, miss_func = -1;
	for (int n = 0; n < p->n_rules; n++) {
		const struct pw_rule *ru = &p->rules[n];
		int rel, func;
		if (ru->action == PW_ACT_MASK)
			continue; /* says what is masked (mask.h), never which statements run */
		if (!rule_matches(x, ru, &rel, &func)) {
			if (ru->action == PW_ACT_ALLOW && miss_func < 0 && func >= 0)
				miss_func = func;
			if (ru->action == PW_ACT_ALLOW && miss_rel < 0 && rel >= 0)
				miss_rel = rel;
			continue;
		}
		if (ru->action == PW_ACT_ALLOW) {
			if (!needs_approval(x, d))
				set_decision(d, PW_ACT_ALLOW, PW_BY_RULE, n + 1, x->i, "allowed");
			return;
		}
		set_decision(d, ru->action, PW_BY_RULE, n + 1, x->i, "%s", "");
		describe(x, ru->action, ru->classes & x->classes, rel, func, d->reason,
		         sizeof(d->reason));
		return;
	}
	set_decision(d, PW_ACT_DENY, PW_BY_DEFAULT, 0, x->i, "%s", "");
	describe(x, PW_ACT_DENY, 0, miss_func >= 0 ? -1 : miss_rel, miss_func, d->reason,
	         sizeof(d->reason));
}

static void compose(const struct pw_identity *id, const struct pw_policy *p, int nstmts,
                    struct pw_decision *d)
{
	char label[PW_NAME_MAX + 64], tail[160] = "";

	if (d->action == PW_ACT_ALLOW) {
		d->message[0] = 0;
		d->sqlstate[0] = 0;
		return;
	}
	switch (d->by) {
	case PW_BY_RULE:
		if (p->rules[d->rule - 1].name[0])
			snprintf(label, sizeof(label), "rule %d \"%s\"", d->rule,
			         p->rules[d->rule - 1].name);
		else
			snprintf(label, sizeof(label), "rule %d", d->rule);
		break;
	case PW_BY_GUARDRAIL:
		snprintf(label, sizeof(label), "guardrail %s", pw_guardrail_name(d->guardrail));
		break;
	case PW_BY_REFUSAL:
		snprintf(label, sizeof(label), "refused");
		break;
	case PW_BY_WINDOW:
		snprintf(label, sizeof(label), "time window");
		break;
	default:
		snprintf(label, sizeof(label), "no rule allows it");
		break;
	}
	if (nstmts > 1)
		snprintf(tail + strlen(tail), sizeof(tail) - strlen(tail),
		         "; statement %d of %d, none of them ran", d->stmt + 1, nstmts);
	snprintf(d->sqlstate, sizeof(d->sqlstate), "42501");
	snprintf(d->message, sizeof(d->message), "pgward: identity %s %s (%s)%s", id->name,
	         d->reason, label, tail);
}

void pw_policy_decide(const struct pw_config *cfg, const struct pw_identity *id,
                      const struct pw_policy_session *ps, const struct pw_sql_result *r, time_t now,
                      struct pw_decision *d, struct pw_decision *per_stmt)
{
	const struct pw_policy *p = &id->policy;
	struct pw_decision one;
	bool decided = false;

	set_decision(d, PW_ACT_ALLOW, PW_BY_RULE, 0, -1, "allowed");
	if (p->n_windows && !pw_policy_in_window(p, now)) {
		set_decision(d, PW_ACT_DENY, PW_BY_WINDOW, 0, -1,
		             "may run statements only within its time windows");
		for (int i = 0; per_stmt && i < r->nstmts; i++)
			per_stmt[i] = *d;
		compose(id, p, 1, d);
		return;
	}
	for (int i = 0; i < r->nstmts; i++) {
		struct ctx x = {.id = id, .ps = ps, .r = r, .i = i, .st = &r->stmts[i]};
		x.classes = effective_classes(x.st);
		decide_one(&x, cfg, &one);
		compose(id, p, 1, &one);
		if (per_stmt)
			per_stmt[i] = one;
		if (one.action != PW_ACT_ALLOW &&
		    (!decided || (d->action == PW_ACT_APPROVE && one.action == PW_ACT_DENY))) {
			/* a deny anywhere in the text wins over an approve before it: approving
			 * the text must never let a refused statement of it run */
			*d = one;
			decided = true;
		} else if (!decided && (i == 0 || (d->by == one.by && d->rule == one.rule))) {
			/* allowed so far by one rule: the text is allowed by it (the trail says so)
			 */
			d->by = one.by;
			d->rule = one.rule;
			d->guardrail = one.guardrail;
		} else if (!decided) {
			d->by = PW_BY_RULE; /* by several rules: none is the text's */
			d->rule = 0;
		}
	}
	if (decided)
		compose(id, p, r->nstmts, d);
	else if (r->nstmts == 0)
		d->rule = 0; /* an empty query: nothing to judge, the server answers it */
}

void pw_policy_startup_setting(const struct pw_config *cfg, const struct pw_identity *id,
                               const char *name, const char *value, struct pw_decision *d)
{
	const struct pw_policy *p = &id->policy;
	size_t cap = 2 * (strlen(name) + strlen(value)) + 64, o = 0;
	char *sql = malloc(cap), err[256];
	struct pw_sql_result *r = malloc(sizeof(*r));

	set_decision(d, PW_ACT_ALLOW, PW_BY_RULE, 0, -1, "allowed");
	if (!sql || !r) {
		set_decision(d, PW_ACT_DENY, PW_BY_REFUSAL, 0, -1, "may not start: out of memory");
		goto out;
	}
	/* what the server does with it is set_config(name, value): analyse exactly that */
	o += (size_t)snprintf(sql, cap, "SELECT pg_catalog.set_config('");
	for (const char *s = name; *s; s++) {
		if (*s == '\'')
			sql[o++] = '\'';
		sql[o++] = *s;
	}
	o += (size_t)snprintf(sql + o, cap - o, "', '");
	for (const char *s = value; *s; s++) {
		if (*s == '\'')
			sql[o++] = '\'';
		sql[o++] = *s;
	}
	snprintf(sql + o, cap - o, "', false)");
	if (pw_sql_analyse(sql, strlen(sql), NULL, r, err, sizeof(err)) < 0 || r->nstmts != 1) {
		set_decision(d, PW_ACT_DENY, PW_BY_REFUSAL, 0, -1,
		             "may not set %.64s at start-up (pgward cannot read it: %.100s)", name,
		             err);
		goto out;
	}
	struct ctx x = {.id = id, .r = r, .i = 0, .st = &r->stmts[0], .startup = true};
	x.classes = 1u << PW_SQL_SET;
	if (((!p->guardrail_off[PW_GR_PARSER_INTEGRITY] && refusal(&x, cfg, d)) ||
	     guardrail(&x, d)) &&
	    !strstr(d->reason, " at start-up")) {
		size_t l = strlen(d->reason);
		snprintf(d->reason + l, sizeof(d->reason) - l, " at start-up");
	}
out:
	if (d->action != PW_ACT_ALLOW)
		compose(id, p, 1, d);
	free(sql);
	free(r);
}

void pw_policy_function_call(const struct pw_identity *id, struct pw_decision *d)
{
	if (id->policy.guardrail_off[PW_GR_SERVER_FILES]) {
		set_decision(d, PW_ACT_ALLOW, PW_BY_GUARDRAIL, 0, -1, "allowed");
		return;
	}
	set_decision(d, PW_ACT_DENY, PW_BY_GUARDRAIL, 0, -1,
	             "may not use the FunctionCall message (it calls functions, such as "
	             "lo_import, by OID without any SQL to judge)");
	d->guardrail = PW_GR_SERVER_FILES;
	compose(id, &id->policy, 1, d);
}

void pw_policy_unreadable(const struct pw_identity *id, const char *why, int error_pos,
                          struct pw_decision *d)
{
	bool complex = strncmp(why, "statement too complex", 21) == 0 ||
	               strncmp(why, "statement text longer", 21) == 0;

	set_decision(d, PW_ACT_DENY, PW_BY_REFUSAL, 0, -1, "%s", why);
	snprintf(d->sqlstate, sizeof(d->sqlstate), complex ? "54001" : "42601");
	(void)error_pos; /* the parser's message already names the position */
	snprintf(d->message, sizeof(d->message),
	         "pgward: cannot analyse the statement of identity %s: %s; it was not run",
	         id ? id->name : "?", why);
}
