/* Identity matching. See include/pgward/match.h. */
#include <fnmatch.h>

#include "pgward/match.h"

static bool glob_ok(const char *glob, const char *s)
{
	return glob[0] == '\0' || fnmatch(glob, s ? s : "", 0) == 0;
}

const struct pw_identity *pw_config_match(const struct pw_config *c, const char *user,
                                          const char *database, const char *app)
{
	return pw_config_match_facts(c, user, database, app, NULL);
}

static bool any_glob(const char *glob, const char *const *vals, int n)
{
	if (!glob[0])
		return true;
	for (int i = 0; i < n; i++)
		if (vals[i] && fnmatch(glob, vals[i], 0) == 0)
			return true;
	return false;
}

const struct pw_identity *pw_config_match_facts(const struct pw_config *c, const char *user,
                                                const char *database, const char *app,
                                                const struct pw_facts *f)
{
	return pw_config_match_ex(c, 0, user, database, app, f, NULL);
}

static bool claims_ok(const struct pw_identity *id, const struct pw_jwt_claims *cl)
{
	if (!glob_ok(id->match_sub, cl->sub))
		return false;
	if (!id->match_group[0])
		return true;
	for (int i = 0; i < cl->n_groups; i++)
		if (fnmatch(id->match_group, cl->groups[i], 0) == 0)
			return true;
	return false;
}

const struct pw_identity *pw_config_match_ex(const struct pw_config *c, int from, const char *user,
                                             const char *database, const char *app,
                                             const struct pw_facts *f,
                                             const struct pw_jwt_claims *claims)
{
	for (int i = from < 0 ? 0 : from; i < c->n_identities; i++) {
		const struct pw_identity *id = &c->identities[i];
		if (!glob_ok(id->match_user, user) || !glob_ok(id->match_database, database) ||
		    !glob_ok(id->match_application_name, app))
			continue;
		if (claims && (id->auth != PW_CLIENT_AUTH_JWT || !claims_ok(id, claims)))
			continue;
		if (!id->needs_kernel)
			return id;
		/* kernel facts: only what the kernel told us about a steered connection */
		if (!f)
			continue;
		if (glob_ok(id->match_cgroup, f->cgroup) && glob_ok(id->match_exe, f->exe) &&
		    glob_ok(id->match_comm, f->comm) &&
		    (id->match_uid < 0 || id->match_uid == f->uid) &&
		    (id->match_gid < 0 || id->match_gid == f->gid) &&
		    any_glob(id->match_ancestor_comm, f->anc_comm, f->n_ancestors) &&
		    any_glob(id->match_ancestor_exe, f->anc_exe, f->n_ancestors))
			return id;
	}
	return NULL;
}
