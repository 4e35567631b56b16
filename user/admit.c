/* Admission at start-up. See include/pgward/admit.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/admit.h"
#include "pgward/jit.h"
#include "pgward/log.h"
#include "pgward/options.h"
#include "pgward/policy.h"
#include "pgward/policy_session.h"
#include "pgward/sql.h"

int pw_admit_upstream(const struct pw_config *cfg, const struct pw_identity *id,
                      const struct sockaddr *dialled, struct pw_deny *why)
{
	if (id->upstream >= 0)
		return id->upstream;
	if (!dialled)
		return pw_deny_set(
		    why, "28000",
		    "pgward: identity %s takes its upstream from the address a steered "
		    "client dialled, and this connection was not steered",
		    id->name);
	int idx = pw_config_upstream_for(cfg, dialled);
	if (idx < 0) {
		char d[80];
		pw_format_addr(dialled, d, sizeof(d));
		return pw_deny_set(
		    why, "28000",
		    "pgward: no upstream is configured for %s, the address the client "
		    "dialled",
		    d);
	}
	return idx;
}

struct startup_judge {
	const struct pw_config *cfg;
	const struct pw_identity *id;
	struct pw_decision d;
	bool refused;
};

/* A setting the options parameter makes, judged as a startup parameter is. */
static int judge_option(void *arg, const char *name, const char *value)
{
	struct startup_judge *j = arg;
	pw_policy_startup_setting(j->cfg, j->id, name, value, &j->d);
	j->refused = j->d.action != PW_ACT_ALLOW;
	return j->refused ? 1 : 0;
}

/* Every setting the startup packet makes, as the server would make it, judged as the same
 * set_config() would be (options.h, pw_policy_startup_setting). */
static int startup_settings(const struct pw_config *cfg, const struct pw_identity *id,
                            const struct pw_startup *st, struct pw_deny *why)
{
	struct startup_judge j = {.cfg = cfg, .id = id};
	char err[512];

	for (int i = 0; i < st->n; i++) {
		const char *k = st->key[i], *v = st->val[i];
		if (!strcmp(k, "user") || !strcmp(k, "database") || !strcmp(k, "replication") ||
		    !strncmp(k, "_pq_.", 5))
			continue; /* not settings: who connects, and protocol extensions */
		if (!strcmp(k, "options")) {
			/* what the server cannot read ends the connection there: so it does here */
			if (pw_options_parse(v, judge_option, &j, err, sizeof(err)) < 0)
				return pw_deny_set(why, "42601", "%s", err);
		} else {
			judge_option(&j, k, v);
		}
		if (j.refused)
			return pw_deny_set(why, j.d.sqlstate[0] ? j.d.sqlstate : "42501", "%s",
			                   j.d.message);
	}
	return 0;
}

/* The set-up's last statement: what the server says of the session once the role is in place:
 * its search_path with role and database defaults applied, its current role, and which of the
 * path's schemas exist. Every name is qualified: it runs under the session's own search_path.
 * An upstream search_path is imposed first. */
static int setup_with(const struct pw_upstream *u, struct pw_admission *a, const char *last,
                      struct pw_deny *why);

static int truth_setup(const struct pw_upstream *u, struct pw_admission *a, struct pw_deny *why)
{
	static const char truth[] =
	    "SELECT pg_catalog.current_setting('search_path'), CURRENT_USER, "
	    "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(n), ',') "
	    "FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) AS n)";
	return setup_with(u, a, truth, why);
}

/* The set-up (a role set up before, if any) with the upstream's search_path imposed, then
 * last (NULL: none). */
static int setup_with(const struct pw_upstream *u, struct pw_admission *a, const char *last,
                      struct pw_deny *why)
{
	size_t cap = (a->setup_sql ? strlen(a->setup_sql) : 0) + (last ? strlen(last) : 0) + 64 +
	             (size_t)u->n_search_path * (2 * PW_NAME_MAX + 4);
	char *sql = malloc(cap), id[2 * PW_NAME_MAX + 4];
	size_t o = 0;

	if (!sql)
		return pw_deny_set(why, "53200", "pgward: out of memory");
	if (a->setup_sql)
		o += (size_t)snprintf(sql + o, cap - o, "%s; ", a->setup_sql);
	if (u->n_search_path) {
		o += (size_t)snprintf(sql + o, cap - o, "SET search_path TO ");
		for (int i = 0; i < u->n_search_path; i++) {
			if (pw_sql_quote_ident(u->search_path[i], id, sizeof(id)) < 0) {
				free(sql);
				return pw_deny_set(
				    why, "42501",
				    "pgward: upstream %s has a search_path pgward cannot "
				    "quote",
				    u->name);
			}
			o += (size_t)snprintf(sql + o, cap - o, "%s%s", i ? ", " : "", id);
		}
		o += (size_t)snprintf(sql + o, cap - o, "; ");
	}
	snprintf(sql + o, cap - o, "%s", last ? last : "");
	free(a->setup_sql);
	a->setup_sql = sql;
	a->truth_wanted = last != NULL;
	return 0;
}

/* The role the upstream session runs as: the identity's, or one made for this session. */
static int role_setup(const struct pw_identity *id, const struct pw_upstream *u,
                      const char *database, uint64_t serial, struct pw_admission *a,
                      struct pw_deny *why)
{
	const struct pw_policy *p = &id->policy;
	if (p->role[0]) {
		char sql[2 * PW_NAME_MAX + 16];
		snprintf(a->role, sizeof(a->role), "%s", p->role);
		if (pw_role_setup_sql(p->role, sql, sizeof(sql)) < 0)
			return pw_deny_set(why, "42501",
			                   "pgward: identity %s has a role name pgward cannot use",
			                   id->name);
		a->setup_sql = strdup(sql);
	} else if (p->jit) {
		/* every name is at most 63 bytes, doubled by quoting: this bounds the script */
		size_t cap = 2048 + (size_t)(p->n_grants + p->n_member_of) * 640;
		char *sql = malloc(cap);
		pw_jit_role_name(serial, a->role);
		int n = sql ? pw_jit_setup_sql(id, a->role, u->database[0] ? u->database : database,
		                               sql, cap)
		            : -1;
		if (n < 0) {
			free(sql);
			return pw_deny_set(
			    why, "42501",
			    "pgward: cannot build the just-in-time role of identity %s", id->name);
		}
		a->setup_sql = sql;
		a->jit = true;
	}
	if ((p->role[0] || p->jit) && !a->setup_sql)
		return pw_deny_set(why, "53200", "pgward: out of memory");
	return 0;
}

int pw_admit_session(const struct pw_config *cfg, const struct pw_identity *id,
                     const struct pw_upstream *u, int ups_idx, const struct pw_startup *st,
                     const char *database, uint64_t serial, time_t now, struct pw_admission *a,
                     struct pw_deny *why)
{
	const struct pw_policy *p = &id->policy;
	char msg[512];

	memset(a, 0, sizeof(*a));
	if (startup_settings(cfg, id, st, why) < 0)
		return -1;
	if (pw_policy_admit(id, cfg, database, ups_idx, now, msg, sizeof(msg)) < 0)
		return pw_deny_set(why, "42501", "%s", msg);
	if (!pw_policy_session_acquire(id->name, p->max_sessions))
		return pw_deny_set(why, "53300",
		                   "pgward: identity %s has reached its max_sessions (%d)",
		                   id->name, p->max_sessions);
	a->counted = true;
	if (role_setup(id, u, database, serial, a, why) < 0)
		return -1;
	a->allow_all = p->allow_all;
	if (p->allow_all) /* nothing is decided from the analysis: no need to ask the server */
		return u->n_search_path ? setup_with(u, a, NULL, why) : 0;
	return truth_setup(u, a, why);
}

/* Append a string with its NUL at *off; false when it does not fit (one byte is kept for the
 * packet's last NUL). */
static bool put(uint8_t *pkt, size_t cap, size_t *off, const char *str)
{
	size_t l = strlen(str) + 1;
	if (*off + l + 1 > cap)
		return false;
	memcpy(pkt + *off, str, l);
	*off += l;
	return true;
}

int pw_admit_startup_packet(const struct pw_startup *st, const char *user, const char *database,
                            uint8_t **out, size_t *len)
{
	uint8_t pkt[16384];
	size_t off = 8;
	bool have_db = false;
	for (int i = 0; i < st->n; i++) {
		const char *k = st->key[i], *v = st->val[i];
		if (strcmp(k, "user") == 0)
			v = user;
		else if (strcmp(k, "database") == 0) {
			v = database;
			have_db = true;
		}
		if (!put(pkt, sizeof(pkt), &off, k) || !put(pkt, sizeof(pkt), &off, v))
			return -1;
	}
	if (!have_db &&
	    (!put(pkt, sizeof(pkt), &off, "database") || !put(pkt, sizeof(pkt), &off, database)))
		return -1;
	pkt[off++] = 0;
	pw_put_be32(pkt, (uint32_t)off);
	pw_put_be32(pkt + 4, st->version);
	if (!(*out = malloc(off)))
		return -1;
	memcpy(*out, pkt, off);
	*len = off;
	return 0;
}
