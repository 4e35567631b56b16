/* Unit tests for pw_config_check (user/config*.c): a check reports every error a file has, in
 * order, each with its JSON path, while the load stops at the first; and the one table of
 * statement fact names. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/config.h"
#include "pgward/sql.h"
#include "check.h"
#include "config_fixture.h"

/* pw_config_check: every error a file has, in order, each with its path; the load stops at the
 * first of them, the check goes on section by section. '|' separates the expected paths. */
static void test_check_collects(void)
{
#define UP "'upstreams': {'u': {'host': '127.0.0.1', 'user': 'x'}}"
#define LS "'listen': [{'port': 6432}]"
#define ID "{'name': 'a', 'auth': 'trust', 'upstream': 'u'}"
	static const struct {
		const char *what, *json, *paths;
	} cases[] = {
	    {"a valid file has none", "{" LS ", " UP ", 'identities': [" ID "]}", ""},
	    {"three sections, three errors",
	     "{'workers': 0, 'listen': [{'port': 70000}], 'upstreams': {'u': {'host': 'h', "
	     "'user': 'x', 'sslmode': 'requir'}}, 'identities': [" ID "]}",
	     "$.workers|$.listen[0].port|$.upstreams.u.sslmode"},
	    {"every listener",
	     "{'listen': [{'port': 0}, {'port': 1}, {'port': 1}, {'unix': ''}], " UP
	     ", 'identities': [" ID "]}",
	     "$.listen[0].port|$.listen[2]|$.listen[3].unix"},
	    {"a bad upstream still answers identities that name it",
	     "{" LS ", 'upstreams': {'u': {'host': 'h'}}, 'identities': [" ID "]}",
	     "$.upstreams.u.user"},
	    {"every part of one identity",
	     "{" LS ", " UP ", 'identities': [{'name': 'a', 'auth': 'tru', 'upstream': 'v', "
	     "'windows': [{'from': '25:00', 'to': '10:00'}], 'guardrails': {'x': true}, "
	     "'max_sessions': 0}]}",
	     "$.identities[0].auth|$.identities[0].windows[0].from|$.identities[0].max_sessions|"
	     "$.identities[0].guardrails.x|$.identities[0].upstream"},
	    {"every rule, every identity",
	     "{" LS ", " UP ", 'identities': [{'name': 'a', 'auth': 'trust', 'upstream': 'u', "
	     "'rules': [{'action': 'alow'}, {'action': 'deny', 'facts': ['huge']}]}, "
	     "{'name': 'a', 'auth': 'trust', 'upstream': 'u', 'rules': [{'action': 'deny', "
	     "'relations': ['orders']}]}]}",
	     "$.identities[0].rules[0].action|$.identities[0].rules[1].facts[0]|"
	     "$.identities[1].name|$.identities[1].rules[0].relations[0]"},
	    {"an absent jwt section and a bad one are told apart",
	     "{" LS ", " UP ", 'jwt': {'issuer': 'i'}, 'identities': [{'name': 'a', 'auth': "
	     "'jwt', 'upstream': 'u'}]}",
	     "$.jwt.jwks_file"},
	    {"a syntax error is about the file", "{" LS ",", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pw_jp_error errs[PW_CONFIG_MAX_ERRORS];
		char got[2048] = "", name[32], *load_err = NULL;
		struct pw_config *c = NULL;
		snprintf(name, sizeof(name), "collect%zu.json", i);
		const char *path = fixture_s(name, jq("%s", cases[i].json));
		int n = pw_config_check(path, errs, PW_CONFIG_MAX_ERRORS, &c);
		for (int k = 0; k < n && k < PW_CONFIG_MAX_ERRORS; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%.200s",
			         k ? "|" : "", errs[k].path);
		bool syntax = strstr(cases[i].what, "syntax") != NULL;
		CHECK(syntax ? n == 1 && !got[0] && strstr(errs[0].what, "line 1") && !c
		             : strcmp(got, cases[i].paths) == 0 && (n == 0) == (c != NULL),
		      "check: %s (%d: %s)", cases[i].what, n, got);
		/* the load refuses exactly when the check finds something, at its first error */
		int errors = pw_config_check_all(path, &load_err);
		char err[1024] = "";
		struct pw_config *l = NULL;
		int rc = pw_config_load(path, &l, err, sizeof(err));
		CHECK(errors == n && (rc == 0) == (n == 0) &&
		          (n == 0 || (load_err && strncmp(load_err, err, strlen(err)) == 0)),
		      "check: %s: the load stops at the first error", cases[i].what);
		free(load_err);
		pw_config_unref(l);
		pw_config_unref(c);
	}
#undef UP
#undef LS
#undef ID
}

/* The statement facts: one name per PW_SQL_F_* bit, no name past the last. */
static void test_fact_names(void)
{
	static const struct {
		uint32_t flag;
		const char *name;
	} cases[] = {
	    {PW_SQL_F_NO_WHERE, "no_where"},         {PW_SQL_F_NOT_EXECUTED, "not_executed"},
	    {PW_SQL_F_CREATES_TEMP, "creates_temp"}, {PW_SQL_F_FORGET_PREPARED, "forget_prepared"},
	    {PW_SQL_F_FORGET_PREPARED << 1, NULL},   {3, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = pw_fact_name(cases[i].flag);
		CHECK(cases[i].name ? got && strcmp(got, cases[i].name) == 0 : got == NULL,
		      "fact 0x%x is called %s", cases[i].flag,
		      cases[i].name ? cases[i].name : "nothing");
	}
}

int main(void)
{
	fixtures_start();
	test_check_collects();
	test_fact_names();
	fixtures_end();
	return check_done();
}
