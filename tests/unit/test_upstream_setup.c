/* What the server says of a session (upstream_setup.h), as tables: each ParameterStatus a
 * server may send and whether the session goes on, and the set-up's last row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/upstream_setup.h"

struct prow {
	const char *name;
	const char *param, *value;
	const char *role;
	bool established, guardrails_off, parser_off;
	const char *sqlstate; /* "" = the session goes on */
};

static const struct prow prows[] = {
    {"standard_conforming_strings on", "standard_conforming_strings", "on", "", true, false, false,
     ""},
    {"standard_conforming_strings off ends the session", "standard_conforming_strings", "off", "",
     true, false, false, "0A000"},
    {"a client_encoding of the configured list", "client_encoding", "UTF8", "", true, false, false,
     ""},
    {"client_encoding written another way (utf-8) is the same encoding", "client_encoding", "utf-8",
     "", true, false, false, ""},
    {"SJIS (a quote can hide in a character) ends the session", "client_encoding", "SJIS", "", true,
     false, false, "0A000"},
    {"is_superuser on under a fixed role: the session left it", "is_superuser", "on", "reader",
     true, false, false, "42501"},
    {"is_superuser on during the set-up is the login's, not the session's", "is_superuser", "on",
     "reader", false, false, false, ""},
    {"is_superuser on without a role of pgward's: the login's own", "is_superuser", "on", "", true,
     false, false, ""},
    {"is_superuser off", "is_superuser", "off", "reader", true, false, false, ""},
    {"the role_escape guardrail off lets is_superuser on pass", "is_superuser", "on", "reader",
     true, true, false, ""},
    {"parser_integrity off: nothing depends on reading statements right", "client_encoding", "SJIS",
     "", true, false, true, ""},
    {"other settings pass", "application_name", "x", "", true, false, false, ""},
};

static void params(void)
{
	struct pw_config *cfg = calloc(1, sizeof(*cfg));
	struct pw_identity *id = calloc(1, sizeof(*id));
	if (!cfg || !id)
		abort();
	snprintf(cfg->client_encodings[0], PW_NAME_MAX, "UTF8");
	cfg->n_client_encodings = 1;
	snprintf(id->name, sizeof(id->name), "agent");
	for (size_t i = 0; i < sizeof(prows) / sizeof(prows[0]); i++) {
		const struct prow *r = &prows[i];
		id->policy.guardrail_off[PW_GR_ROLE_ESCAPE] = r->guardrails_off;
		id->policy.guardrail_off[PW_GR_PARSER_INTEGRITY] = r->parser_off;
		struct pw_deny why = {.sqlstate = ""};
		int rc = pw_setup_param_judge(cfg, id, r->role, r->established, r->param, r->value,
		                              &why);
		CHECK((rc == 0) == (r->sqlstate[0] == 0) &&
		          (rc == 0 || !strcmp(why.sqlstate, r->sqlstate)),
		      "%s (%s)", r->name, rc ? why.sqlstate : "goes on");
	}
	free(cfg);
	free(id);

	const char *n, *v;
	struct pw_deny why;
	static const uint8_t ok[] = "TimeZone\0UTC";
	static const uint8_t bad[] = {'T', 'i', 'm', 'e', 0, 'U'};
	CHECK(pw_setup_param(ok, sizeof(ok), &n, &v, &why) == 0 && !strcmp(n, "TimeZone") &&
	          !strcmp(v, "UTC"),
	      "a ParameterStatus gives its name and value");
	CHECK(pw_setup_param(bad, sizeof(bad), &n, &v, &why) < 0 && !strcmp(why.sqlstate, "08P01"),
	      "a ParameterStatus without its value's NUL is malformed (08P01)");
}

/* a DataRow body of three text columns (len -1: NULL) */
static size_t row(uint8_t *out, int ncols, const char *const *vals)
{
	size_t p = 0;
	out[p++] = 0;
	out[p++] = (uint8_t)ncols;
	for (int i = 0; i < ncols; i++) {
		uint32_t l = vals[i] ? (uint32_t)strlen(vals[i]) : 0xffffffffu;
		out[p++] = (uint8_t)(l >> 24), out[p++] = (uint8_t)(l >> 16);
		out[p++] = (uint8_t)(l >> 8), out[p++] = (uint8_t)l;
		if (vals[i]) {
			memcpy(out + p, vals[i], strlen(vals[i]));
			p += strlen(vals[i]);
		}
	}
	return p;
}

static void truth(void)
{
	uint8_t b[4096];
	struct pw_truth t;
	const char *good[] = {"\"$user\", public", "app", "pg_catalog,public"};
	size_t n = row(b, 3, good);
	CHECK(pw_setup_truth_row(b, n, &t) && !strcmp(t.path, good[0]) && !strcmp(t.user, "app") &&
	          !strcmp(t.schemas, good[2]),
	      "the set-up's row: search_path, current user, schemas");
	const char *null_user[] = {"public", NULL, "public"};
	n = row(b, 3, null_user);
	CHECK(!pw_setup_truth_row(b, n, &t), "a NULL column is not that row");
	n = row(b, 2, good);
	CHECK(!pw_setup_truth_row(b, n, &t), "two columns are not that row");
	n = row(b, 3, good);
	CHECK(!pw_setup_truth_row(b, n + 1, &t) && !pw_setup_truth_row(b, n - 1, &t),
	      "a row with a byte too many or too few is not that row");
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	const char *too_long[] = {big, "app", "public"};
	n = row(b, 3, too_long);
	CHECK(!pw_setup_truth_row(b, n, &t), "a search_path longer than pgward keeps is refused, "
	                                     "not cut");
}

int main(void)
{
	params();
	truth();
	return check_done();
}
