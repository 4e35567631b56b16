/* The policy part of the configuration: identities, how they are matched and authenticated,
 * and each one's policy (databases, upstreams, roles, windows, guardrails, statement rules),
 * which policy.c decides by. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stddef.h>

#include "config_parse.h"
#include "pgward/sql.h"

static const char *const auth_names[] = {"trust", "password", "jwt"};

const char *pw_client_auth_name(enum pw_client_auth a)
{
	return (unsigned)a < N_ELEMS(auth_names) ? auth_names[a] : "?";
}

/* The one table of statement facts: bit k is PW_SQL_F_* (1u << k) of sql.h; "rule" says a
 * rule's "facts" may name it (the others are what the analysis needs, not policy). */
static const struct {
	const char *name;
	bool rule;
} facts[] = {
    {"no_where", true},
    {"cte_dml", true},
    {"explain_analyze", true},
    {"not_executed", false},
    {"select_into", true},
    {"create_table_as", true},
    {"copy_program", true},
    {"copy_file", true},
    {"body", true},
    {"role_escape", true},
    {"alter_system", true},
    {"drop_database", true},
    {"create_extension", true},
    {"scs_change", false},
    {"encoding_change", false},
    {"set_config_dynamic", false},
    {"reset_all", false},
    {"ambiguous", true},
    {"unknown_prepared", false},
    {"creates_temp", true},
    {"forget_prepared", false},
};

const char *pw_sql_fact_name(int bit)
{
	return bit >= 0 && (size_t)bit < N_ELEMS(facts) ? facts[bit].name : NULL;
}

_Static_assert(N_ELEMS(facts) == 21 && PW_SQL_F_FORGET_PREPARED == 1u << 20,
               "a PW_SQL_F_* flag without a name");

const char *pw_fact_name(uint32_t flag)
{
	for (size_t k = 0; k < N_ELEMS(facts); k++)
		if (flag == 1u << k)
			return facts[k].name;
	return NULL;
}

/* "schema.name" globs: both parts present, so that a rule cannot be read two ways. */
static int check_qualified(struct pw_jp *x, const char *base, const char *key, const char *globs,
                           int n, bool may_be_bare)
{
	char jp[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	pw_jp_key(jp, base, key);
	for (int i = 0; i < n; i++) {
		const char *g = globs + (size_t)i * PW_GLOB_MAX;
		const char *dot = strchr(g, '.');
		if (dot ? dot == g || !dot[1] || strchr(dot + 1, '.') : !may_be_bare) {
			pw_jp_index(sub, jp, (size_t)i);
			return pw_jp_fail(
			    x, sub,
			    "expected %s\"schema.name\" (globs allowed, as \"public.*\"), got %s",
			    may_be_bare ? "\"name\" or " : "", pw_jp_quote(q, g));
		}
	}
	return 0;
}

const char *pw_guardrail_name(enum pw_guardrail g)
{
	static const char *const names[PW_GR_COUNT] = {
	    [PW_GR_ROLE_ESCAPE] = "role_escape",
	    [PW_GR_SERVER_COPY] = "server_copy",
	    [PW_GR_SERVER_FILES] = "server_files",
	    [PW_GR_ALTER_SYSTEM] = "alter_system",
	    [PW_GR_DROP_DATABASE] = "drop_database",
	    [PW_GR_CREATE_EXTENSION] = "create_extension",
	    [PW_GR_DBLINK] = "dblink",
	    [PW_GR_TERMINATE_BACKEND] = "terminate_backend",
	    [PW_GR_CODE] = "code",
	    [PW_GR_NO_WHERE] = "no_where",
	    [PW_GR_SUPERUSER_SETTINGS] = "superuser_settings",
	    [PW_GR_PARSER_INTEGRITY] = "parser_integrity",
	};
	return (unsigned)g < PW_GR_COUNT ? names[g] : "?";
}

/* access: "any" (the default), or one or a list of read, lock, write; write implies lock (a
 * role that may change rows may lock them, as the server's UPDATE privilege does) */
static int rule_access(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	static const char *const accesses[] = {"any", "read", "lock", "write"};
	static const uint8_t bits[] = {PW_SQL_READ | PW_SQL_LOCK | PW_SQL_WRITE, PW_SQL_READ,
	                               PW_SQL_LOCK, PW_SQL_WRITE | PW_SQL_LOCK};
	char jp2[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX], *list = NULL;
	int n, rc = 0;

	r->access = PW_SQL_READ | PW_SQL_LOCK | PW_SQL_WRITE;
	if (!pw_jp_member(e, "access"))
		return 0;
	if (pw_jp_names(x, e, jp, "access", PW_NAME_MAX, 4, &list, &n) < 0) {
		free(list);
		return -1;
	}
	r->access = 0;
	pw_jp_key(jp2, jp, "access");
	for (int i = 0; i < n && rc == 0; i++) {
		const char *a = list + (size_t)i * PW_NAME_MAX;
		size_t k;
		for (k = 0; k < N_ELEMS(accesses) && strcmp(a, accesses[k]); k++)
			;
		if (k == N_ELEMS(accesses)) {
			pw_jp_index(sub, jp2, (size_t)i);
			rc = pw_jp_fail(
			    x, n == 1 && json_is_string(pw_jp_member(e, "access")) ? jp2 : sub,
			    "expected one of any, read, lock, write, got %s", pw_jp_quote(q, a));
		} else {
			r->access |= bits[k];
		}
	}
	free(list);
	return rc;
}

/* A list of names, each one of names[] (NULL entries are not accepted), into bits 1u << index:
 * the rule keys "class" and "facts" */
static int names_to_bits(struct pw_jp *x, const json_t *e, const char *jp, const char *key,
                         const char *what, const char *const *names, size_t n_names, uint32_t *bits)
{
	char jp2[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX], *list = NULL;
	int n, rc = 0;

	if (pw_jp_names(x, e, jp, key, PW_NAME_MAX, 32, &list, &n) < 0) {
		free(list);
		return -1;
	}
	pw_jp_key(jp2, jp, key);
	for (int i = 0; i < n && rc == 0; i++) {
		const char *name = list + (size_t)i * PW_NAME_MAX;
		size_t k, m = 0;
		for (k = 0; k < n_names; k++)
			if (names[k] && strcmp(name, names[k]) == 0)
				break;
		if (k < n_names) {
			*bits |= 1u << k;
			continue;
		}
		const char *known[32];
		char all[512];
		for (k = 0; k < n_names; k++)
			if (names[k])
				known[m++] = names[k];
		pw_jp_join(all, sizeof(all), known, m);
		pw_jp_index(sub, jp2, (size_t)i);
		rc = pw_jp_fail(x, sub, "unknown %s %s (expected one of %s)", what,
		                pw_jp_quote(q, name), all);
	}
	free(list);
	return rc;
}

static int rule_classes(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	const char *names[PW_SQL_EXPLAIN + 1];
	for (int k = 0; k <= PW_SQL_EXPLAIN; k++)
		names[k] = pw_sql_class_name((enum pw_sql_class)k);
	return names_to_bits(x, e, jp, "class", "command class", names, N_ELEMS(names),
	                     &r->classes);
}

/* only the facts a rule may name */
static int rule_facts(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	const char *names[N_ELEMS(facts)];
	for (size_t k = 0; k < N_ELEMS(facts); k++)
		names[k] = facts[k].rule ? facts[k].name : NULL;
	return names_to_bits(x, e, jp, "facts", "fact", names, N_ELEMS(names), &r->facts);
}

static int parse_rule(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	static const char *const keys[] = {
	    "name",    "action",    "class",    "relations", "access",     "functions", "facts",
	    "columns", "detectors", "strategy", "keep",      "predicates", NULL};
	static const char *const actions[] = {"allow", "deny", "approve", "mask"};
	char sub[PW_JP_PATH_MAX];
	int act = 0;

	if (!json_is_object(e))
		return pw_jp_fail(x, jp, "expected an object, got %s", pw_jp_type_name(e));
	if (pw_jp_check_keys(x, e, jp, keys) ||
	    pw_jp_str(x, e, jp, "name", r->name, sizeof(r->name), PW_JP_NONEMPTY) < 0 ||
	    pw_jp_enum(x, e, jp, "action", actions, N_ELEMS(actions), PW_JP_REQUIRED, &act) < 0)
		return -1;
	r->action = (enum pw_action)act;
	if (pw_cfg_mask_rule(x, e, jp, r) < 0)
		return -1;
	if (rule_access(x, e, jp, r) < 0 || rule_classes(x, e, jp, r) < 0 ||
	    rule_facts(x, e, jp, r) < 0)
		return -1;
	if (pw_jp_names(x, e, jp, "relations", PW_GLOB_MAX, 256, (char **)&r->relations,
	                &r->n_relations) < 0 ||
	    check_qualified(x, jp, "relations", (const char *)r->relations, r->n_relations, false) <
	        0 ||
	    pw_jp_names(x, e, jp, "functions", PW_GLOB_MAX, 256, (char **)&r->functions,
	                &r->n_functions) < 0 ||
	    check_qualified(x, jp, "functions", (const char *)r->functions, r->n_functions, true) <
	        0)
		return -1;
	if (pw_jp_member(e, "access") && !r->n_relations && !r->n_functions) {
		pw_jp_key(sub, jp, "access");
		return pw_jp_fail(x, sub, "only meaningful with \"relations\" or \"functions\"");
	}
	return 0;
}

static int parse_time_of_day(struct pw_jp *x, const json_t *w, const char *jp, const char *key,
                             int *out)
{
	char buf[16], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	int h, m, end = 0;
	if (pw_jp_str(x, w, jp, key, buf, sizeof(buf), PW_JP_REQUIRED) < 0)
		return -1;
	if (sscanf(buf, "%2d:%2d%n", &h, &m, &end) != 2 || buf[end] || end != 5 || h < 0 || m < 0 ||
	    m > 59 || h > 24 || (h == 24 && m != 0)) {
		pw_jp_key(sub, jp, key);
		return pw_jp_fail(x, sub, "expected a time as \"HH:MM\" (00:00 to 24:00), got %s",
		                  pw_jp_quote(q, buf));
	}
	*out = h * 60 + m;
	return 0;
}

static int parse_window(struct pw_jp *x, const json_t *w, const char *jp, struct pw_window *win)
{
	static const char *const keys[] = {"days", "from", "to", "timezone", NULL};
	static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
	static const char *const zones[] = {"UTC", "local"};
	char *list = NULL, jp2[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	int n, zone = 0;

	if (!json_is_object(w))
		return pw_jp_fail(x, jp, "expected an object, got %s", pw_jp_type_name(w));
	if (pw_jp_check_keys(x, w, jp, keys) ||
	    parse_time_of_day(x, w, jp, "from", &win->from_min) < 0 ||
	    parse_time_of_day(x, w, jp, "to", &win->to_min) < 0 ||
	    pw_jp_enum(x, w, jp, "timezone", zones, N_ELEMS(zones), 0, &zone) < 0)
		return -1;
	win->utc = zone == 0;
	if (win->from_min == win->to_min) {
		pw_jp_key(sub, jp, "to");
		return pw_jp_fail(x, sub, "an empty window (from equals to)");
	}
	if (pw_jp_names(x, w, jp, "days", 16, 7, &list, &n) < 0) {
		free(list);
		return -1;
	}
	if (n == 0)
		win->days = 0x7f;
	pw_jp_key(jp2, jp, "days");
	for (int i = 0; i < n; i++) {
		const char *d = list + (size_t)i * 16;
		int a = -1, b = -1;
		for (int k = 0; k < 7; k++) {
			if (strncmp(d, days[k], 3) == 0 && (d[3] == 0 || d[3] == '-'))
				a = k;
			if (d[3] == '-' && strcmp(d + 4, days[k]) == 0)
				b = k;
		}
		if (a < 0 || (d[3] == '-' && b < 0)) {
			pw_jp_index(sub, jp2, (size_t)i);
			pw_jp_fail(
			    x, sub,
			    "expected a day (mon .. sun) or a range such as \"mon-fri\", got %s",
			    pw_jp_quote(q, d));
			free(list);
			return -1;
		}
		if (b < 0)
			b = a;
		for (int k = a;; k = (k + 1) % 7) {
			win->days |= (uint8_t)(1u << k);
			if (k == b)
				break;
		}
	}
	free(list);
	return 0;
}

/* PostgreSQL identifiers the JIT role SQL quotes; privilege names from a fixed list. */
static int parse_grant(struct pw_jp *x, const json_t *g, const char *jp, struct pw_grant *gr)
{
	static const char *const keys[] = {"privileges", "table", "schema", NULL};
	static const char *const privs[] = {"SELECT",   "INSERT",     "UPDATE",  "DELETE",
	                                    "TRUNCATE", "REFERENCES", "TRIGGER", "ALL"};
	char *list = NULL, jp2[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX],
	     table[2 * PW_NAME_MAX];
	int n, rt, rs;

	if (!json_is_object(g))
		return pw_jp_fail(x, jp, "expected an object, got %s", pw_jp_type_name(g));
	if (pw_jp_check_keys(x, g, jp, keys))
		return -1;
	if (pw_jp_names(x, g, jp, "privileges", 16, PW_MAX_GRANT_PRIVS, &list, &n) < 0) {
		free(list);
		return -1;
	}
	if (n == 0) {
		pw_jp_key(sub, jp, "privileges");
		return pw_jp_missing(x, g, sub, "privileges", "a list such as [\"SELECT\"]");
	}
	pw_jp_key(jp2, jp, "privileges");
	for (int i = 0; i < n; i++) {
		const char *p = list + (size_t)i * 16;
		size_t k;
		for (k = 0; k < N_ELEMS(privs); k++)
			if (strcasecmp(p, privs[k]) == 0)
				break;
		if (k == N_ELEMS(privs)) {
			char all[160];
			pw_jp_join(all, sizeof(all), privs, N_ELEMS(privs));
			pw_jp_index(sub, jp2, (size_t)i);
			pw_jp_fail(x, sub, "expected a table privilege (%s), got %s", all,
			           pw_jp_quote(q, p));
			free(list);
			return -1;
		}
		snprintf(gr->privileges[gr->n_privileges++], sizeof(gr->privileges[0]), "%s",
		         privs[k]);
	}
	free(list);
	rt = pw_jp_str(x, g, jp, "table", table, sizeof(table), PW_JP_NONEMPTY);
	rs = pw_jp_str(x, g, jp, "schema", gr->schema, sizeof(gr->schema), PW_JP_NONEMPTY);
	if (rt < 0 || rs < 0)
		return -1;
	if (rt == rs)
		return pw_jp_fail(x, jp,
		                  "expected exactly one of \"table\" (\"schema.table\") or "
		                  "\"schema\" (all its tables)");
	if (rt) {
		char *dot = strchr(table, '.');
		pw_jp_key(sub, jp, "table");
		if (!dot || dot == table || !dot[1] || strchr(dot + 1, '.') ||
		    (size_t)(dot - table) >= PW_NAME_MAX || strlen(dot + 1) >= PW_NAME_MAX)
			return pw_jp_fail(x, sub, "expected \"schema.table\", got %s",
			                  pw_jp_quote(q, table));
		memcpy(gr->schema, table, (size_t)(dot - table));
		gr->schema[dot - table] = 0;
		strcpy(gr->table, dot + 1);
	}
	return 0;
}

/* databases (globs) and upstreams (by name) an identity may use */
static int policy_targets(struct pw_jp *x, const json_t *e, const char *jp,
                          const struct pw_config *c, struct pw_policy *p)
{
	char sub[PW_JP_PATH_MAX], jp2[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX], *list = NULL;
	int n, rc = 0;

	if (pw_jp_names(x, e, jp, "databases", PW_NAME_MAX, 256, (char **)&p->databases,
	                &p->n_databases) < 0)
		return -1;
	if (pw_jp_names(x, e, jp, "upstreams", PW_NAME_MAX, 256, &list, &n) < 0) {
		free(list);
		return -1;
	}
	if (n && !(p->upstreams = calloc((size_t)n, sizeof(int)))) {
		free(list);
		return pw_jp_fail(x, jp, "out of memory");
	}
	pw_jp_key(jp2, jp, "upstreams");
	for (int i = 0; i < n && rc == 0; i++) {
		const char *u = list + (size_t)i * PW_NAME_MAX;
		int k;
		for (k = 0; k < c->n_upstreams && strcmp(c->upstreams[k].name, u) != 0; k++)
			;
		pw_jp_index(sub, jp2, (size_t)i);
		if (k == c->n_upstreams)
			rc = pw_jp_fail(x, sub, "no upstream named %s", pw_jp_quote(q, u));
		else
			p->upstreams[p->n_upstreams++] = k;
	}
	free(list);
	return rc;
}

/* role (fixed) or jit_role (made per session) */
static int policy_role(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p)
{
	static const char *const keys[] = {"grants", "member_of", NULL};
	char sub[PW_JP_PATH_MAX], jp2[PW_JP_PATH_MAX];
	bool bad = false;
	int rc;

	if (pw_jp_str(x, e, jp, "role", p->role, sizeof(p->role), PW_JP_NONEMPTY) < 0)
		return -1;
	json_t *jit = pw_jp_container(x, e, jp, "jit_role", false, false, &rc);
	if (!jit)
		return rc;
	pw_jp_key(sub, jp, "jit_role");
	if (p->role[0])
		return pw_jp_fail(x, sub, "a fixed \"role\" and \"jit_role\" exclude each other");
	if (pw_jp_check_keys(x, jit, sub, keys) ||
	    pw_jp_names(x, jit, sub, "member_of", PW_NAME_MAX, 64, (char **)&p->member_of,
	                &p->n_member_of) < 0)
		return -1;
	p->jit = true;
	json_t *gs = pw_jp_container(x, jit, sub, "grants", true, false, &rc);
	if (rc)
		return -1;
	if (gs && json_array_size(gs) > 256)
		return pw_jp_fail(x, sub, "at most 256 grants");
	if (gs && json_array_size(gs) &&
	    !(p->grants = calloc(json_array_size(gs), sizeof(*p->grants))))
		return pw_jp_fail(x, sub, "out of memory");
	size_t i;
	json_t *g;
	pw_jp_key(jp2, sub, "grants");
	json_array_foreach(gs, i, g)
	{
		char gp[PW_JP_PATH_MAX];
		pw_jp_index(gp, jp2, i);
		p->n_grants++;
		STEP(x, bad, parse_grant(x, g, gp, &p->grants[i]));
	}
	return bad ? -1 : 0;
}

static int policy_windows(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p)
{
	char sub[PW_JP_PATH_MAX], jp2[PW_JP_PATH_MAX];
	bool bad = false;
	int rc;
	json_t *ws = pw_jp_container(x, e, jp, "windows", true, false, &rc);
	if (!ws)
		return rc;
	pw_jp_key(jp2, jp, "windows");
	if (json_array_size(ws) == 0 || json_array_size(ws) > 64)
		return pw_jp_fail(x, jp2,
		                  "expected 1 to 64 windows (leave the key out for always)");
	if (!(p->windows = calloc(json_array_size(ws), sizeof(*p->windows))))
		return pw_jp_fail(x, jp2, "out of memory");
	size_t i;
	json_t *w;
	json_array_foreach(ws, i, w)
	{
		pw_jp_index(sub, jp2, i);
		p->n_windows++;
		STEP(x, bad, parse_window(x, w, sub, &p->windows[i]));
	}
	return bad ? -1 : 0;
}

/* every guardrail is on unless switched off by name ("all": false switches off the rest) */
static int policy_guardrails(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p)
{
	const char *names[PW_GR_COUNT + 2];
	char jp2[PW_JP_PATH_MAX];
	bool all = true;
	int rc;
	json_t *gr = pw_jp_container(x, e, jp, "guardrails", false, false, &rc);
	if (!gr)
		return rc;
	names[0] = "all";
	for (int i = 0; i < PW_GR_COUNT; i++)
		names[i + 1] = pw_guardrail_name((enum pw_guardrail)i);
	names[PW_GR_COUNT + 1] = NULL;
	pw_jp_key(jp2, jp, "guardrails");
	if (pw_jp_check_keys(x, gr, jp2, names) || pw_jp_bool(x, gr, jp2, "all", &all) < 0)
		return -1;
	for (int i = 0; i < PW_GR_COUNT; i++) {
		bool on = all;
		if (pw_jp_bool(x, gr, jp2, names[i + 1], &on) < 0)
			return -1;
		p->guardrail_off[i] = !on;
	}
	return 0;
}

static int policy_rules(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p)
{
	char sub[PW_JP_PATH_MAX], jp2[PW_JP_PATH_MAX];
	bool bad = false;
	int rc;
	json_t *rs = pw_jp_container(x, e, jp, "rules", true, false, &rc);
	if (!rs)
		return rc;
	pw_jp_key(jp2, jp, "rules");
	if (json_array_size(rs) > 4096)
		return pw_jp_fail(x, jp2, "at most 4096 rules");
	if (json_array_size(rs) && !(p->rules = calloc(json_array_size(rs), sizeof(*p->rules))))
		return pw_jp_fail(x, jp2, "out of memory");
	size_t i;
	json_t *r;
	json_array_foreach(rs, i, r)
	{
		pw_jp_index(sub, jp2, i);
		p->n_rules++; /* counted before parsing so that a failure frees its arrays */
		STEP(x, bad, parse_rule(x, r, sub, &p->rules[i]));
	}
	return bad ? -1 : 0;
}

static bool allows_everything(const struct pw_policy *p)
{
	return p->n_rules == 1 && p->rules[0].action == PW_ACT_ALLOW && !p->rules[0].classes &&
	       !p->rules[0].n_relations && !p->rules[0].n_functions && !p->rules[0].facts;
}

static int parse_policy(struct pw_jp *x, const json_t *e, const char *jp, struct pw_config *c,
                        struct pw_policy *p)
{
	char sub[PW_JP_PATH_MAX];
	bool bad = false;
	long long v;
	int rc;

	STEP(x, bad, policy_targets(x, e, jp, c, p));
	STEP(x, bad, policy_role(x, e, jp, p));
	STEP(x, bad, policy_windows(x, e, jp, p));
	STEP(x, bad, rc = pw_jp_int(x, e, jp, "max_sessions", 1, 1000000, 0, &v));
	if (rc > 0)
		p->max_sessions = (int)v;
	STEP(x, bad, policy_guardrails(x, e, jp, p));
	STEP(x, bad, policy_rules(x, e, jp, p));
	STEP(x, bad, pw_cfg_mask_policy(x, e, jp, p));
	/* without a reliable analysis only a policy that does not depend on it is sound */
	if (!bad && p->guardrail_off[PW_GR_PARSER_INTEGRITY] && !allows_everything(p)) {
		pw_jp_key(sub, jp, "guardrails");
		return pw_jp_fail(x, sub,
		                  "parser_integrity can be switched off only for an identity whose "
		                  "rules allow everything (exactly [{\"action\": \"allow\"}])");
	}
	p->allow_all = allows_everything(p);
	for (int i = 0; i < PW_GR_COUNT; i++)
		p->allow_all &= p->guardrail_off[i];
	return bad ? -1 : 0;
}
void pw_cfg_policy_free(struct pw_policy *p)
{
	free(p->databases);
	free(p->upstreams);
	free(p->grants);
	free(p->member_of);
	free(p->windows);
	for (int i = 0; i < p->n_rules; i++) {
		free(p->rules[i].relations);
		free(p->rules[i].functions);
		free(p->rules[i].columns);
	}
	free(p->rules);
	free(p->unmask);
}

/* ---- identities ---- */

/* The one table of an identity's "match" keys that are globs: where each is kept, and whether
 * it is a kernel fact (only steered connections have those) or a token claim. uid and gid are
 * integers, read apart. */
enum match_kind { M_STARTUP, M_KERNEL, M_CLAIM };
static const struct {
	const char *key;
	size_t off, size;
	enum match_kind kind;
} match_globs[] = {
#define M(key, field, kind)                                                                        \
	{                                                                                          \
		key, offsetof(struct pw_identity, field),                                          \
		    sizeof(((struct pw_identity *)0)->field), kind                                 \
	}
    M("user", match_user, M_STARTUP),
    M("database", match_database, M_STARTUP),
    M("application_name", match_application_name, M_STARTUP),
    M("cgroup", match_cgroup, M_KERNEL),
    M("exe", match_exe, M_KERNEL),
    M("comm", match_comm, M_KERNEL),
    M("ancestor_comm", match_ancestor_comm, M_KERNEL),
    M("ancestor_exe", match_ancestor_exe, M_KERNEL),
    M("sub", match_sub, M_CLAIM),
    M("group", match_group, M_CLAIM),
#undef M
};

static int parse_match(struct pw_jp *x, const json_t *e, const char *jp, const struct pw_config *c,
                       struct pw_identity *id)
{
	const char *keys[N_ELEMS(match_globs) + 3];
	char sub[PW_JP_PATH_MAX];
	long long v;
	int rc;

	id->match_uid = id->match_gid = -1;
	json_t *m = pw_jp_container(x, e, jp, "match", false, false, &rc);
	if (!m)
		return rc;
	for (size_t k = 0; k < N_ELEMS(match_globs); k++)
		keys[k] = match_globs[k].key;
	keys[N_ELEMS(match_globs)] = "uid";
	keys[N_ELEMS(match_globs) + 1] = "gid";
	keys[N_ELEMS(match_globs) + 2] = NULL;
	pw_jp_key(sub, jp, "match");
	if (pw_jp_check_keys(x, m, sub, keys))
		return -1;
	for (size_t k = 0; k < N_ELEMS(match_globs); k++) {
		char *dst = (char *)id + match_globs[k].off;
		if (pw_jp_str(x, m, sub, match_globs[k].key, dst, match_globs[k].size, 0) < 0)
			return -1;
		id->needs_kernel |= match_globs[k].kind == M_KERNEL && dst[0];
	}
	if ((rc = pw_jp_int(x, m, sub, "uid", 0, 4294967294LL, 0, &v)) < 0)
		return -1;
	if (rc)
		id->match_uid = v;
	if ((rc = pw_jp_int(x, m, sub, "gid", 0, 4294967294LL, 0, &v)) < 0)
		return -1;
	if (rc)
		id->match_gid = v;
	id->needs_kernel |= id->match_uid >= 0 || id->match_gid >= 0;
	if (id->needs_kernel && !c->redirect.enabled) {
		const char *kernel[N_ELEMS(match_globs) + 2];
		char list[256];
		size_t n = 0;
		for (size_t k = 0; k < N_ELEMS(match_globs); k++)
			if (match_globs[k].kind == M_KERNEL)
				kernel[n++] = match_globs[k].key;
		kernel[n++] = "uid";
		kernel[n++] = "gid";
		pw_jp_join(list, sizeof(list), kernel, n);
		return pw_jp_fail(x, sub, "kernel facts (%s) need the \"redirect\" section", list);
	}
	return 0;
}

/* auth, with its scram_verifier, and what it needs of the rest */
static int parse_auth(struct pw_jp *x, const json_t *e, const char *jp, const struct pw_config *c,
                      struct pw_identity *id)
{
	char sub[PW_JP_PATH_MAX];
	int auth = 0;

	if (pw_jp_enum(x, e, jp, "auth", auth_names, N_ELEMS(auth_names), PW_JP_REQUIRED, &auth) <
	    0)
		return -1;
	id->auth = (enum pw_client_auth)auth;
	pw_jp_key(sub, jp, "scram_verifier");
	json_t *ver = pw_jp_member(e, "scram_verifier");
	if (id->auth == PW_CLIENT_AUTH_PASSWORD) {
		char why[256] = "";
		if (!ver)
			return pw_jp_missing(
			    x, e, sub, "scram_verifier",
			    "a SCRAM-SHA-256 verifier, required by auth \"password\"");
		if (!json_is_string(ver))
			return pw_jp_fail(x, sub, "expected a string, got %s",
			                  pw_jp_type_name(ver));
		if (pw_scram_parse_verifier(json_string_value(ver), &id->verifier, why,
		                            sizeof(why)) != 0)
			return pw_jp_fail(x, sub, "invalid SCRAM-SHA-256 verifier: %s", why);
	} else if (ver) {
		/* a verifier next to "trust" suggests the operator believes it is checked */
		return pw_jp_fail(x, sub,
		                  "not used with auth \"%s\"; remove it or use auth \"password\"",
		                  auth_names[id->auth]);
	}
	if (id->auth == PW_CLIENT_AUTH_JWT && !c->jwt.enabled) {
		pw_jp_key(sub, jp, "auth");
		return pw_jp_fail(x, sub,
		                  "auth \"jwt\" needs the \"jwt\" section (jwks_file, issuer, "
		                  "audience)");
	}
	if (id->auth != PW_CLIENT_AUTH_JWT && (id->match_sub[0] || id->match_group[0])) {
		pw_jp_key(sub, jp, "match");
		return pw_jp_fail(x, sub, "sub and group are token claims: they need auth \"jwt\"");
	}
	return 0;
}

static int parse_upstream_ref(struct pw_jp *x, const json_t *e, const char *jp,
                              const struct pw_config *c, struct pw_identity *id)
{
	char sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX], upstream[PW_NAME_MAX];

	if (c->redirect.enabled && !pw_jp_member(e, "upstream")) {
		/* steered sessions: the upstream whose address is the original destination */
		id->upstream = -1;
		return 0;
	}
	if (pw_jp_str(x, e, jp, "upstream", upstream, sizeof(upstream),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0) {
		/* a name too long for the buffer cannot name an upstream either: report that */
		json_t *u = pw_jp_member(e, "upstream");
		if (!u || !json_is_string(u) || json_string_length(u) < sizeof(upstream))
			return -1;
		pw_jp_key(sub, jp, "upstream");
		return pw_jp_fail(x, sub, "no upstream named %s",
		                  pw_jp_quote(q, json_string_value(u)));
	}
	for (int j = 0; j < c->n_upstreams; j++) {
		if (strcmp(c->upstreams[j].name, upstream) == 0) {
			id->upstream = j;
			return 0;
		}
	}
	pw_jp_key(sub, jp, "upstream");
	return pw_jp_fail(x, sub, "no upstream named %s", pw_jp_quote(q, upstream));
}

static int parse_identity(struct pw_jp *x, const json_t *e, const char *jp, struct pw_config *c,
                          struct pw_identity *id)
{
	static const char *const keys[] = {
	    "name",         "match",      "auth",  "scram_verifier", "upstream",
	    "databases",    "upstreams",  "role",  "jit_role",       "windows",
	    "max_sessions", "guardrails", "rules", "unmask",         "record",
	    "approvals",    NULL};
	char sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	bool bad = false;

	id->match_uid = id->match_gid = -1;
	if (!json_is_object(e))
		return pw_jp_fail(x, jp, "expected an object, got %s", pw_jp_type_name(e));
	if (pw_jp_check_keys(x, e, jp, keys))
		return -1;
	STEP(x, bad,
	     pw_jp_str(x, e, jp, "name", id->name, sizeof(id->name),
	               PW_JP_REQUIRED | PW_JP_NONEMPTY));
	for (int j = 0; id->name[0] && j < c->n_identities - 1; j++) { /* the last is id */
		if (strcmp(c->identities[j].name, id->name) == 0) {
			pw_jp_key(sub, jp, "name");
			STEP(x, bad,
			     pw_jp_fail(x, sub,
			                "duplicate identity name %s (also $.identities[%d])",
			                pw_jp_quote(q, id->name), j));
			break;
		}
	}
	STEP(x, bad, parse_match(x, e, jp, c, id));
	STEP(x, bad, parse_auth(x, e, jp, c, id));
	STEP(x, bad, parse_policy(x, e, jp, c, &id->policy));
	STEP(x, bad, parse_upstream_ref(x, e, jp, c, id));
	STEP(x, bad, pw_cfg_identity_approvals(x, e, jp, &id->policy));
	STEP(x, bad, pw_jp_bool(x, e, jp, "record", &id->record));
	if (id->record && !c->recording.enabled) {
		pw_jp_key(sub, jp, "record");
		STEP(x, bad,
		     pw_jp_fail(x, sub,
		                "a recorded identity needs a \"recording\" section (where "
		                "the recordings go)"));
	}
	return bad ? -1 : 0;
}

int pw_cfg_parse_identities(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	bool bad = false;
	json_t *arr;
	if (!(c->identities = pw_cfg_section(x, root, "identities", true, "identity",
	                                     sizeof(*c->identities), &arr)))
		return -1;

	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char jp[PW_JP_PATH_MAX];
		pw_jp_index(jp, "$.identities", i);
		/* counted first: the policy arrays of a failed one are freed with the rest */
		c->n_identities++;
		STEP(x, bad, parse_identity(x, e, jp, c, &c->identities[i]));
	}
	return bad ? -1 : 0;
}
