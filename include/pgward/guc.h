/* PostgreSQL 15's settings (GUCs) and who may set them: a compiled-in table of every name the
 * server knows (those pg_settings lists, plus the few it hides: role, session_authorization,
 * seed, is_superuser, the obsolete default_with_oids and ssl_renegotiation_limit, the old
 * names sort_mem and vacuum_mem) with its context. Only context "user" may be set by an
 * ordinary user in a session; the guardrail superuser_settings refuses every other one.
 * tests/integration/gucdiff.py proves the table equal to the server's own. No I/O. */
#ifndef PGWARD_GUC_H
#define PGWARD_GUC_H

#include <stdbool.h>
#include <stddef.h>

/* pg_settings.context; one name per value in pw_guc_context_name (pg_settings' spelling). */
enum pw_guc_context {
	PW_GUC_UNKNOWN,    /* not a setting PostgreSQL 15 has */
	PW_GUC_INTERNAL,   /* "internal": never set */
	PW_GUC_POSTMASTER, /* "postmaster": at server start */
	PW_GUC_SIGHUP,     /* "sighup": in the server's configuration files */
	PW_GUC_SU_BACKEND, /* "superuser-backend": by a superuser's startup packet */
	PW_GUC_BACKEND,    /* "backend": by any startup packet */
	PW_GUC_SUSET,      /* "superuser": by a superuser (or a role granted SET on it) */
	PW_GUC_USERSET,    /* "user": by anyone, at any time */
};

const char *pw_guc_context_name(enum pw_guc_context c);

/* The context of a setting, name compared case-insensitively (as the server does). */
enum pw_guc_context pw_guc_context(const char *name);

/* A custom (placeholder) name: one with a dot, such as "app.tenant" or "plpgsql.x". */
bool pw_guc_is_custom(const char *name);

/* The table, for listing: entry i (i < pw_guc_count()), its context and whether pg_settings
 * shows it. NULL past the end. */
size_t pw_guc_count(void);
const char *pw_guc_at(size_t i, enum pw_guc_context *ctx, bool *shown);

#endif
