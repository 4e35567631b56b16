/* identity show and policy show: the running configuration as the control socket shows it
 * (docs/control.md). Read from the configuration the request holds a reference to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/audit_events.h"
#include "pgward/control.h"
#include "pgward/mask.h"
#include "pgward/policy.h"
#include "pgward/sql_class.h"

enum pw_control_status pw_control_identity_show(const struct pw_control_req *rq, struct pw_jw *w,
                                                struct pw_control_sub *sub, char *err,
                                                size_t errlen);
enum pw_control_status pw_control_policy_show(const struct pw_control_req *rq, struct pw_jw *w,
                                              struct pw_control_sub *sub, char *err, size_t errlen);

static const struct pw_identity *find_identity(const struct pw_config *c, const char *name)
{
	for (int i = 0; i < c->n_identities; i++)
		if (strcmp(c->identities[i].name, name) == 0)
			return &c->identities[i];
	return NULL;
}

static void ids(struct pw_jw *w, const char *key, const unsigned *v, int n)
{
	pw_jw_arr(w, key);
	for (int i = 0; i < n; i++)
		pw_jw_uint(w, NULL, v[i]);
	pw_jw_arr_end(w);
}

static void identity(struct pw_jw *w, const struct pw_config *c, const struct pw_identity *id,
                     int sessions)
{
	const struct pw_policy *p = &id->policy;
	pw_jw_obj(w, NULL);
	pw_jw_str(w, "name", id->name);
	pw_audit_matched(w, "match", id);
	pw_jw_str(w, "auth", pw_client_auth_name(id->auth));
	pw_jw_str(w, "upstream", id->upstream >= 0 ? c->upstreams[id->upstream].name : NULL);
	pw_jw_str(w, "role", p->role[0] ? p->role : NULL);
	pw_jw_bool(w, "jit", p->jit);
	pw_jw_bool(w, "record", id->record);
	pw_jw_int(w, "rules", p->n_rules);
	pw_jw_bool(w, "masks", p->has_masks);
	pw_jw_arr(w, "guardrails_off");
	for (int g = 0; g < PW_GR_COUNT; g++)
		if (p->guardrail_off[g])
			pw_jw_str(w, NULL, pw_guardrail_name((enum pw_guardrail)g));
	pw_jw_arr_end(w);
	pw_jw_obj(w, "approvers");
	ids(w, "uids", p->approver_uids, p->n_approver_uids);
	ids(w, "gids", p->approver_gids, p->n_approver_gids);
	pw_jw_obj_end(w);
	pw_jw_int(w, "approval_timeout_seconds",
	          p->approval_timeout_s ? p->approval_timeout_s : c->approvals.timeout_s);
	if (sessions >= 0)
		pw_jw_int(w, "sessions", sessions);
	else
		pw_jw_null(w, "sessions");
	pw_jw_obj_end(w);
}

enum pw_control_status pw_control_identity_show(const struct pw_control_req *rq, struct pw_jw *w,
                                                struct pw_control_sub *sub, char *err,
                                                size_t errlen)
{
	(void)sub;
	const struct pw_config *c = rq->cfg;
	const char *name;
	if (pw_control_arg_str(rq, "name", &name, err, errlen) < 0)
		return PW_CS_USAGE;
	if (name && !find_identity(c, name))
		return snprintf(err, errlen, "no identity \"%.64s\"", name), PW_CS_NOT_FOUND;
	int *counts = calloc((size_t)c->n_identities + 1, sizeof(int));
	if (!counts)
		return snprintf(err, errlen, "out of memory"), PW_CS_FAILED;
	bool counted = pw_control_identity_sessions(c, counts) == 0;
	pw_jw_arr(w, "result");
	for (int i = 0; i < c->n_identities; i++)
		if (!name || strcmp(c->identities[i].name, name) == 0)
			identity(w, c, &c->identities[i], counted ? counts[i] : -1);
	pw_jw_arr_end(w);
	free(counts);
	return PW_CS_OK;
}

static void names(struct pw_jw *w, const char *key, const char (*v)[PW_GLOB_MAX], int n)
{
	pw_jw_arr(w, key);
	for (int i = 0; i < n; i++)
		pw_jw_str(w, NULL, v[i]);
	pw_jw_arr_end(w);
}

static void rule(struct pw_jw *w, const struct pw_rule *r, int n)
{
	pw_jw_obj(w, NULL);
	pw_jw_int(w, "n", n);
	pw_jw_str(w, "name", r->name[0] ? r->name : NULL);
	pw_jw_str(w, "action", pw_action_name(r->action));
	pw_jw_arr(w, "classes");
	for (int k = 0; k < 32; k++)
		if (r->classes & (1u << k))
			pw_jw_str(w, NULL, pw_sql_class_name((enum pw_sql_class)k));
	pw_jw_arr_end(w);
	names(w, "relations", (const char(*)[PW_GLOB_MAX])r->relations, r->n_relations);
	names(w, "functions", (const char(*)[PW_GLOB_MAX])r->functions, r->n_functions);
	pw_jw_arr(w, "facts");
	for (int k = 0; k < 32; k++)
		if ((r->facts & (1u << k)) && pw_sql_fact_name(k))
			pw_jw_str(w, NULL, pw_sql_fact_name(k));
	pw_jw_arr_end(w);
	pw_jw_arr(w, "columns");
	for (int i = 0; i < r->n_columns; i++)
		pw_jw_str(w, NULL, r->columns[i]);
	pw_jw_arr_end(w);
	pw_jw_obj_end(w);
}

enum pw_control_status pw_control_policy_show(const struct pw_control_req *rq, struct pw_jw *w,
                                              struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	const struct pw_config *c = rq->cfg;
	const char *name;
	if (pw_control_arg_str(rq, "identity", &name, err, errlen) < 0)
		return PW_CS_USAGE;
	if (name && !find_identity(c, name))
		return snprintf(err, errlen, "no identity \"%.64s\"", name), PW_CS_NOT_FOUND;
	pw_jw_obj(w, "result");
	pw_jw_str(w, "config", c->path);
	pw_jw_arr(w, "identities");
	for (int i = 0; i < c->n_identities; i++) {
		const struct pw_identity *id = &c->identities[i];
		if (name && strcmp(id->name, name) != 0)
			continue;
		pw_jw_obj(w, NULL);
		pw_jw_str(w, "name", id->name);
		pw_jw_arr(w, "rules");
		for (int k = 0; k < id->policy.n_rules; k++)
			rule(w, &id->policy.rules[k], k + 1);
		pw_jw_arr_end(w);
		pw_jw_obj(w, "guardrails");
		for (int g = 0; g < PW_GR_COUNT; g++)
			pw_jw_bool(w, pw_guardrail_name((enum pw_guardrail)g),
			           !id->policy.guardrail_off[g]);
		pw_jw_obj_end(w);
		pw_jw_obj_end(w);
	}
	pw_jw_arr_end(w);
	pw_jw_obj_end(w);
	return PW_CS_OK;
}
