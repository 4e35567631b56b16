/* The sections of the live control plane: "control" (the socket, docs/control.md), "metrics"
 * (the Prometheus endpoint), "approvals" (held statements, docs/approvals.md) and an
 * identity's "approvals" (who decides its held statements). Users and groups are names or
 * numbers, resolved when the file is read: a name that does not exist is an error. */
#include <ctype.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_parse.h"

/* A user or group: a whole decimal number, or a name the system knows. */
static int resolve_id(struct pw_jp *x, const char *jp, const char *s, bool group, unsigned *out)
{
	char q[PW_JP_QUOTE_MAX], buf[16384];
	const char *p = s;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*s && !*p && p - s <= 9) {
		*out = (unsigned)strtoul(s, NULL, 10);
		return 0;
	}
	if (group) {
		struct group g, *res = NULL;
		if (getgrnam_r(s, &g, buf, sizeof(buf), &res) == 0 && res) {
			*out = (unsigned)res->gr_gid;
			return 0;
		}
		return pw_jp_fail(x, jp, "no group named %s on this system", pw_jp_quote(q, s));
	}
	struct passwd pw, *res = NULL;
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) == 0 && res) {
		*out = (unsigned)res->pw_uid;
		return 0;
	}
	return pw_jp_fail(x, jp, "no user named %s on this system", pw_jp_quote(q, s));
}

/* A list of users or groups at key of obj into ids (at most max). 0 when absent. */
static int id_list(struct pw_jp *x, const json_t *obj, const char *base, const char *key,
                   bool group, unsigned *ids, int max, int *n)
{
	char jp[PW_JP_PATH_MAX], ejp[PW_JP_PATH_MAX];
	char(*names)[64] = NULL;
	int k = 0;
	*n = 0;
	if (!pw_jp_member(obj, key))
		return 0;
	if (pw_jp_names(x, obj, base, key, 64, max, (char **)&names, &k) < 0) {
		free(names);
		return -1;
	}
	pw_jp_key(jp, base, key);
	for (int i = 0; i < k; i++) {
		pw_jp_index(ejp, jp, (size_t)i);
		if (resolve_id(x, ejp, names[i], group, &ids[i]) < 0) {
			free(names);
			return -1;
		}
	}
	free(names);
	*n = k;
	return 0;
}

/* One user or group at key (absent: *out stays). */
static int one_id(struct pw_jp *x, const json_t *obj, const char *base, const char *key, bool group,
                  long long *out)
{
	char s[64], jp[PW_JP_PATH_MAX];
	unsigned id;
	int rc = pw_jp_str(x, obj, base, key, s, sizeof(s), PW_JP_NONEMPTY);
	if (rc <= 0)
		return rc;
	pw_jp_key(jp, base, key);
	if (resolve_id(x, jp, s, group, &id) < 0)
		return -1;
	*out = id;
	return 0;
}

static int parse_control(struct pw_jp *x, const json_t *root, struct pw_config *cfg)
{
	static const char *const keys[] = {"socket",  "mode",      "owner", "group",
	                                   "readers", "operators", NULL};
	struct pw_control_config *c = &cfg->control;
	const char *base = "$.control";
	char mode[8], q[PW_JP_QUOTE_MAX];
	bool bad = false;
	int rc;
	*c = (struct pw_control_config){.mode = 0600, .owner = -1, .group = -1};
	snprintf(c->socket, sizeof(c->socket), "/run/pgward/control.sock");
	json_t *o = pw_jp_container(x, root, "$", "control", false, false, &rc);
	if (!o)
		return rc;
	if (pw_jp_check_keys(x, o, base, keys))
		return -1;
	STEP(x, bad, pw_jp_str(x, o, base, "socket", c->socket, sizeof(c->socket), PW_JP_NONEMPTY));
	if (c->socket[0] != '/')
		STEP(x, bad,
		     pw_jp_fail(x, "$.control.socket", "expected an absolute path, got %s",
		                pw_jp_quote(q, c->socket)));
	rc = pw_jp_str(x, o, base, "mode", mode, sizeof(mode), PW_JP_NONEMPTY);
	STEP(x, bad, rc);
	if (rc > 0) {
		char *end;
		long m = strtol(mode, &end, 8);
		if (*end || mode[0] != '0' || m < 0 || m > 0777)
			STEP(x, bad,
			     pw_jp_fail(x, "$.control.mode",
			                "expected an octal mode from \"0000\" to \"0777\", got %s",
			                pw_jp_quote(q, mode)));
		else
			c->mode = (int)m;
	}
	STEP(x, bad, one_id(x, o, base, "owner", false, &c->owner));
	STEP(x, bad, one_id(x, o, base, "group", true, &c->group));
	STEP(x, bad,
	     id_list(x, o, base, "readers", true, c->readers, PW_CONTROL_GROUPS, &c->n_readers));
	STEP(x, bad,
	     id_list(x, o, base, "operators", true, c->operators, PW_CONTROL_GROUPS,
	             &c->n_operators));
	c->enabled = !bad;
	return bad ? -1 : 0;
}

static int parse_metrics(struct pw_jp *x, const json_t *root, struct pw_config *cfg)
{
	static const char *const keys[] = {"host", "port", NULL};
	struct pw_metrics_config *m = &cfg->metrics;
	bool bad = false;
	long long n;
	int rc;
	*m = (struct pw_metrics_config){.port = 9187};
	snprintf(m->host, sizeof(m->host), "127.0.0.1");
	json_t *o = pw_jp_container(x, root, "$", "metrics", false, false, &rc);
	if (!o)
		return rc;
	if (pw_jp_check_keys(x, o, "$.metrics", keys))
		return -1;
	STEP(x, bad,
	     pw_jp_str(x, o, "$.metrics", "host", m->host, sizeof(m->host), PW_JP_NONEMPTY));
	STEP(x, bad, rc = pw_jp_int(x, o, "$.metrics", "port", 1, 65535, 0, &n));
	if (rc > 0)
		m->port = (int)n;
	m->enabled = !bad;
	return bad ? -1 : 0;
}

/* "database": {"upstream", "database", "schema"}: the control database of a fleet. */
static int parse_approval_db(struct pw_jp *x, const json_t *o, struct pw_config *cfg)
{
	static const char *const keys[] = {"upstream", "database", "schema", NULL};
	struct pw_approvals_config *a = &cfg->approvals;
	const char *base = "$.approvals.database";
	char up[PW_NAME_MAX], q[PW_JP_QUOTE_MAX];
	int rc;
	json_t *d = pw_jp_container(x, o, "$.approvals", "database", false, false, &rc);
	if (!d)
		return rc;
	if (pw_jp_check_keys(x, d, base, keys) ||
	    pw_jp_str(x, d, base, "upstream", up, sizeof(up), PW_JP_REQUIRED | PW_JP_NONEMPTY) <
	        0 ||
	    pw_jp_str(x, d, base, "database", a->db_database, sizeof(a->db_database),
	              PW_JP_NONEMPTY) < 0 ||
	    pw_jp_str(x, d, base, "schema", a->db_schema, sizeof(a->db_schema), PW_JP_NONEMPTY) < 0)
		return -1;
	for (const char *p = a->db_schema; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_') ||
		    (p == a->db_schema && isdigit((unsigned char)*p)))
			return pw_jp_fail(
			    x, "$.approvals.database.schema",
			    "expected a plain lower-case name ([a-z_][a-z0-9_]*), got %s",
			    pw_jp_quote(q, a->db_schema));
	for (int i = 0; i < cfg->n_upstreams; i++)
		if (strcmp(cfg->upstreams[i].name, up) == 0)
			a->db_upstream = i;
	if (a->db_upstream < 0)
		return pw_jp_fail(x, "$.approvals.database.upstream", "no upstream named %s",
		                  pw_jp_quote(q, up));
	if (!a->db_database[0])
		snprintf(a->db_database, sizeof(a->db_database), "%s",
		         cfg->upstreams[a->db_upstream].database[0]
		             ? cfg->upstreams[a->db_upstream].database
		             : "postgres");
	return 0;
}

static int parse_approvals(struct pw_jp *x, const json_t *root, struct pw_config *cfg)
{
	static const char *const keys[] = {
	    "timeout_seconds", "notify", "notify_timeout_seconds", "node", "database", NULL};
	struct pw_approvals_config *a = &cfg->approvals;
	const char *base = "$.approvals";
	bool bad = false;
	long long n;
	int rc;
	*a = (struct pw_approvals_config){
	    .timeout_s = 300, .notify_timeout_s = 30, .db_upstream = -1};
	snprintf(a->db_schema, sizeof(a->db_schema), "pgward");
	if (gethostname(a->node, sizeof(a->node)) != 0 || !a->node[0])
		snprintf(a->node, sizeof(a->node), "localhost");
	a->node[sizeof(a->node) - 1] = 0;
	json_t *o = pw_jp_container(x, root, "$", "approvals", false, false, &rc);
	if (!o)
		return rc;
	if (pw_jp_check_keys(x, o, base, keys))
		return -1;
	STEP(x, bad, rc = pw_jp_int(x, o, base, "timeout_seconds", 1, 7 * 86400, 0, &n));
	if (rc > 0)
		a->timeout_s = (int)n;
	STEP(x, bad, rc = pw_jp_int(x, o, base, "notify_timeout_seconds", 1, 3600, 0, &n));
	if (rc > 0)
		a->notify_timeout_s = (int)n;
	STEP(x, bad, pw_jp_str(x, o, base, "node", a->node, sizeof(a->node), PW_JP_NONEMPTY));
	if (pw_jp_member(o, "notify")) {
		char(*argv)[512] = NULL;
		int k = 0;
		if (pw_jp_names(x, o, base, "notify", 512, PW_NOTIFY_ARGS, (char **)&argv, &k) <
		    0) {
			bad = true;
		} else if (argv[0][0] != '/') {
			char q[PW_JP_QUOTE_MAX];
			bad = true;
			pw_jp_fail(x, "$.approvals.notify[0]",
			           "expected the command's absolute path, got %s",
			           pw_jp_quote(q, argv[0]));
		} else {
			for (int i = 0; i < k; i++)
				memcpy(a->notify[i], argv[i], sizeof(a->notify[i]));
			a->n_notify = k;
		}
		free(argv);
		if (bad && pw_jp_stop(x))
			return -1;
	}
	STEP(x, bad, parse_approval_db(x, o, cfg));
	return bad ? -1 : 0;
}

int pw_cfg_parse_control(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	bool bad = false;
	STEP(x, bad, parse_control(x, root, c));
	STEP(x, bad, parse_metrics(x, root, c));
	STEP(x, bad, parse_approvals(x, root, c));
	return bad ? -1 : 0;
}

int pw_cfg_identity_approvals(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p)
{
	static const char *const keys[] = {"users", "groups", "timeout_seconds", NULL};
	char base[PW_JP_PATH_MAX];
	bool bad = false;
	long long n;
	int rc;
	json_t *o = pw_jp_container(x, e, jp, "approvals", false, false, &rc);
	if (!o)
		return rc;
	pw_jp_key(base, jp, "approvals");
	if (pw_jp_check_keys(x, o, base, keys))
		return -1;
	STEP(x, bad,
	     id_list(x, o, base, "users", false, p->approver_uids, PW_MAX_APPROVERS,
	             &p->n_approver_uids));
	STEP(x, bad,
	     id_list(x, o, base, "groups", true, p->approver_gids, PW_MAX_APPROVERS,
	             &p->n_approver_gids));
	STEP(x, bad, rc = pw_jp_int(x, o, base, "timeout_seconds", 1, 7 * 86400, 0, &n));
	if (rc > 0)
		p->approval_timeout_s = (int)n;
	return bad ? -1 : 0;
}
