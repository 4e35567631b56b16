/* PostgreSQL 15's settings and their contexts (user/guc.c): the table is sorted and
 * consistent, lookups fold case, and the settings the guardrail superuser_settings is about
 * have the context the server gives them. tests/integration/gucdiff.py compares the whole
 * table with the server's own. */
#include <string.h>

#include "check.h"
#include "pgward/guc.h"

static const struct {
	const char *name;
	enum pw_guc_context want;
} cases[] = {
    /* what an agent must not make with the login's superuser rights */
    {"session_replication_role", PW_GUC_SUSET},
    {"log_statement", PW_GUC_SUSET},
    {"log_min_messages", PW_GUC_SUSET},
    {"lc_messages", PW_GUC_SUSET},
    {"allow_system_table_mods", PW_GUC_SUSET},
    {"log_connections", PW_GUC_SU_BACKEND},
    {"ignore_system_indexes", PW_GUC_BACKEND},
    {"post_auth_delay", PW_GUC_BACKEND},
    {"fsync", PW_GUC_SIGHUP},
    {"shared_buffers", PW_GUC_POSTMASTER},
    {"is_superuser", PW_GUC_INTERNAL},
    {"server_version", PW_GUC_INTERNAL},
    /* what every driver sends */
    {"application_name", PW_GUC_USERSET},
    {"client_encoding", PW_GUC_USERSET},
    {"DateStyle", PW_GUC_USERSET},
    {"datestyle", PW_GUC_USERSET},
    {"TimeZone", PW_GUC_USERSET},
    {"extra_float_digits", PW_GUC_USERSET},
    {"search_path", PW_GUC_USERSET},
    {"statement_timeout", PW_GUC_USERSET},
    {"WORK_MEM", PW_GUC_USERSET},
    /* the ones pg_settings does not show */
    {"role", PW_GUC_USERSET},
    {"session_authorization", PW_GUC_USERSET},
    {"seed", PW_GUC_USERSET},
    {"sort_mem", PW_GUC_USERSET},
    {"vacuum_mem", PW_GUC_USERSET},
    /* not settings */
    {"", PW_GUC_UNKNOWN},
    {"app.tenant", PW_GUC_UNKNOWN},
    {"no_such_setting", PW_GUC_UNKNOWN},
    {"log_statement ", PW_GUC_UNKNOWN},
    {"log_statement_", PW_GUC_UNKNOWN},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     PW_GUC_UNKNOWN},
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum pw_guc_context got = pw_guc_context(cases[i].name);
		CHECK(got == cases[i].want, "\"%s\": context %s (got %s)", cases[i].name,
		      pw_guc_context_name(cases[i].want), pw_guc_context_name(got));
	}
	/* sorted, unique, lower case, every entry found by its own name with its context */
	size_t n = pw_guc_count(), bad = 0, users = 0, hidden = 0;
	const char *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		enum pw_guc_context c;
		bool shown;
		const char *name = pw_guc_at(i, &c, &shown);
		bool lower = true;
		for (const char *p = name; *p; p++)
			lower &= !(*p >= 'A' && *p <= 'Z');
		if (!lower || (prev && strcmp(prev, name) >= 0) || pw_guc_context(name) != c ||
		    c == PW_GUC_UNKNOWN)
			bad++;
		users += c == PW_GUC_USERSET;
		hidden += !shown;
		prev = name;
	}
	CHECK(bad == 0 && n > 300,
	      "the table: %zu settings sorted, lower case, each found (%zu bad)", n, bad);
	CHECK(users > 100 && hidden == 8, "%zu of them \"user\", %zu not shown by pg_settings",
	      users, hidden);
	CHECK(pw_guc_at(n, NULL, NULL) == NULL, "past the end: NULL");
	CHECK(pw_guc_is_custom("app.tenant") && pw_guc_is_custom("plpgsql.variable_conflict") &&
	          !pw_guc_is_custom("work_mem"),
	      "custom names are the dotted ones");
	CHECK(strcmp(pw_guc_context_name(PW_GUC_SU_BACKEND), "superuser-backend") == 0 &&
	          strcmp(pw_guc_context_name(PW_GUC_USERSET), "user") == 0,
	      "context names as pg_settings spells them");
	return check_done();
}
