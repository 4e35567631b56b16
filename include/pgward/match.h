/* Which identity a connection is: the first of the configuration's identities whose patterns
 * all match what the startup packet says, what the kernel recorded of the connecting process
 * (caller.h builds that view) and, for token identities, the verified token's claims. */
#ifndef PGWARD_MATCH_H
#define PGWARD_MATCH_H

#include "pgward/config.h"
#include "pgward/jwt.h"

/* First identity whose globs all match, or NULL. app may be NULL (treated as "").
 * Identities that need kernel facts never match here (see pw_config_match_facts). */
const struct pw_identity *pw_config_match(const struct pw_config *c, const char *user,
                                          const char *database, const char *app);

/* What the kernel told us about a steered connection's caller. */
struct pw_facts {
	const char *cgroup; /* path below the cgroup2 mount, "/" rooted */
	const char *exe;    /* may be "" when unreadable */
	const char *comm;
	long long uid, gid;
	int n_ancestors;
	const char *anc_comm[8];
	const char *anc_exe[8]; /* may be "" */
};
const struct pw_identity *pw_config_match_facts(const struct pw_config *c, const char *user,
                                                const char *database, const char *app,
                                                const struct pw_facts *f);
/* The general form: the first identity at index >= from that matches. claims NULL: the token
 * is not known yet, so an auth "jwt" identity matches on the rest (its claim conditions are
 * checked once the token is verified); with claims, only auth "jwt" identities match. */
const struct pw_identity *pw_config_match_ex(const struct pw_config *c, int from, const char *user,
                                             const char *database, const char *app,
                                             const struct pw_facts *f,
                                             const struct pw_jwt_claims *claims);
#endif
