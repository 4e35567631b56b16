/* What the server says of a session. See include/pgward/upstream_setup.h. */
#include <string.h>

#include "pgward/policy.h"
#include "pgward/proto.h"
#include "pgward/upstream_setup.h"

int pw_setup_param(const uint8_t *body, size_t len, const char **name, const char **value,
                   struct pw_deny *why)
{
	const char *n = (const char *)body, *end = (const char *)body + len;
	const char *z = memchr(n, 0, len);
	if (!z || !memchr(z + 1, 0, (size_t)(end - z - 1)))
		return pw_deny_set(why, "08P01",
		                   "pgward: upstream sent a malformed ParameterStatus");
	*name = n;
	*value = z + 1;
	return 0;
}

int pw_setup_param_judge(const struct pw_config *cfg, const struct pw_identity *id,
                         const char *role, bool established, const char *name, const char *value,
                         struct pw_deny *why)
{
	if (role[0] && established && strcmp(name, "is_superuser") == 0 &&
	    strcmp(value, "on") == 0 && id && !id->policy.guardrail_off[PW_GR_ROLE_ESCAPE])
		/* the fixed or just-in-time role is not a superuser: the session left it */
		return pw_deny_set(
		    why, "42501",
		    "pgward: the session of identity %s left its role %s (the server "
		    "reports is_superuser = on); it ends",
		    id->name, role);
	if (id && id->policy.guardrail_off[PW_GR_PARSER_INTEGRITY])
		return 0; /* allowed everything: nothing depends on reading it right */
	if (strcmp(name, "standard_conforming_strings") == 0 && strcmp(value, "on") != 0)
		return pw_deny_set(why, "0A000",
		                   "pgward: the server reports standard_conforming_strings = %s; "
		                   "pgward reads statements as the server does only with it on, so "
		                   "the session ends",
		                   value);
	if (strcmp(name, "client_encoding") == 0 && !pw_config_encoding_allowed(cfg, value))
		return pw_deny_set(
		    why, "0A000",
		    "pgward: the server reports client_encoding = %s, which identity %s "
		    "may not use (see client_encodings); the session ends",
		    value, id ? id->name : "?");
	return 0;
}

bool pw_setup_truth_row(const uint8_t *body, size_t len, struct pw_truth *t)
{
	char *dst[3] = {t->path, t->user, t->schemas};
	size_t cap[3] = {sizeof(t->path), sizeof(t->user), sizeof(t->schemas)};
	size_t p = 2;

	if (len < 2 || (body[0] << 8 | body[1]) != 3)
		return false;
	for (int i = 0; i < 3; i++) {
		if (len - p < 4)
			return false;
		int32_t l = (int32_t)pw_be32(body + p);
		p += 4;
		if (l < 0 || (size_t)l > len - p || (size_t)l >= cap[i] ||
		    memchr(body + p, 0, (size_t)l))
			return false;
		memcpy(dst[i], body + p, (size_t)l);
		dst[i][l] = 0;
		p += (size_t)l;
	}
	return p == len;
}
