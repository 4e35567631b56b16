/* pgwardctl: inspect and steer pgward, with bpftool's grammar: pgwardctl [-j] OBJECT COMMAND.
 * This file is main(), the objects' table and what every command shares (the table runner, the
 * error helper, JSON printing, strict numbers); each object is a ctl_<object>.c. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pgward/ctl.h"

bool pw_ctl_json;
bool pw_ctl_pretty;

int pw_ctl_err(int status, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (pw_ctl_json) {
		json_t *j = json_object();
		json_object_set_new(j, "error", json_string(msg));
		pw_ctl_print_json(j);
	} else {
		fprintf(stderr, "Error: %s\n", msg);
	}
	return status;
}

void pw_ctl_print_json(json_t *j)
{
	size_t flags = JSON_PRESERVE_ORDER | (pw_ctl_pretty ? JSON_INDENT(2) : JSON_COMPACT);
	char *s = json_dumps(j, flags);
	if (s)
		puts(s);
	free(s);
	json_decref(j);
}

json_t *pw_ctl_json_str(const char *s)
{
	return s && s[0] ? json_string(s) : json_null();
}

bool pw_ctl_parse_int(const char *what, const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	/* strtoll skips leading blanks and takes a sign: only digits (and a leading '-') here */
	bool digits = (s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9');
	if (!digits || *end || errno == ERANGE || v < lo || v > hi) {
		pw_ctl_err(PW_CTL_USAGE, "%s: expected an integer from %lld to %lld, got \"%s\"",
		           what, lo, hi, s);
		return false;
	}
	*out = v;
	return true;
}

/* An exact name, else a prefix of exactly one name (so "pgwardctl p ch" is policy check). */
static const struct pw_ctl_cmd *lookup(const struct pw_ctl_cmd *t, const char *name,
                                       bool *ambiguous)
{
	const struct pw_ctl_cmd *hit = NULL;
	size_t len = strlen(name);
	*ambiguous = false;
	for (; t->name; t++) {
		if (strcmp(t->name, name) == 0)
			return t;
		if (len && strncmp(t->name, name, len) == 0) {
			*ambiguous = hit != NULL;
			hit = t;
		}
	}
	return *ambiguous ? NULL : hit;
}

static void print_help(const struct pw_ctl_cmd *t, const char *obj)
{
	for (; t->name; t++)
		printf("pgwardctl %s%s%s%s%s\n    %s\n", obj, obj[0] ? " " : "", t->name,
		       t->args[0] ? " " : "", t->args, t->what);
}

int pw_ctl_usage(const struct pw_ctl_cmd *t, const char *obj, const char *name)
{
	for (; t->name && strcmp(t->name, name) != 0; t++)
		;
	return pw_ctl_err(PW_CTL_USAGE, "usage: pgwardctl %s %s%s%s", obj, name,
	                  t->name && t->args[0] ? " " : "", t->name ? t->args : "");
}

int pw_ctl_run_table(const struct pw_ctl_cmd *t, const char *obj, int argc, char **argv)
{
	bool ambiguous;
	if (argc < 1 || strcmp(argv[0], "help") == 0) {
		print_help(t, obj);
		return argc < 1 ? PW_CTL_USAGE : PW_CTL_OK;
	}
	const struct pw_ctl_cmd *c = lookup(t, argv[0], &ambiguous);
	if (c)
		return c->fn(argc - 1, argv + 1);
	return pw_ctl_err(PW_CTL_USAGE, "%s command \"%s%s%s\" (try \"pgwardctl %s%shelp\")",
	                  ambiguous ? "ambiguous" : "unknown", obj, obj[0] ? " " : "", argv[0], obj,
	                  obj[0] ? " " : "");
}

static const struct pw_ctl_cmd objects[] = {
    {"audit", pw_ctl_audit, "{ verify | tail | help }",
     "the audit trail: verify its chain, print its records"},
    {"config", pw_ctl_config, "{ check | help }", "a pgwardd configuration file"},
    {"policy", pw_ctl_policy, "{ check | explain | startup | settings | help }",
     "decisions as pgwardd makes them, without connecting anywhere"},
    {"scram", pw_ctl_scram, "{ verifier | help }", "SCRAM-SHA-256 verifiers for the config"},
    {"session", pw_ctl_session, "{ replay | help }", "recorded sessions: replay one"},
    {"version", pw_ctl_version, "", "pgwardctl's version and its libraries'"},
    {NULL, NULL, NULL, NULL}};

static int usage(FILE *f, int status)
{
	fprintf(f, "Usage: pgwardctl [OPTIONS] OBJECT { COMMAND | help }\n"
	           "       pgwardctl help\n"
	           "       pgwardctl version\n"
	           "\n"
	           "       OBJECT := {");
	for (const struct pw_ctl_cmd *t = objects; t->name; t++)
		fprintf(f, " %s%s", t->name, t[1].name ? " |" : " }\n");
	fprintf(f, "       OPTIONS := { -j|--json [-p|--pretty] | -h|--help | -V|--version }\n"
	           "\n");
	if (f == stdout)
		print_help(objects, "");
	return status;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
	                                     {"pretty", no_argument, NULL, 'p'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {NULL, 0, NULL, 0}};
	int c;
	bool version = false;
	opterr = 0; /* its messages are not ours: one error helper says what was wrong */
	while ((c = getopt_long(argc, argv, "+jphV", opts, NULL)) != -1) {
		if (c == 'j') {
			pw_ctl_json = true;
		} else if (c == 'p') {
			pw_ctl_json = pw_ctl_pretty = true;
		} else if (c == 'V') {
			version = true;
		} else if (c == 'h') {
			return usage(stdout, PW_CTL_OK);
		} else {
			char opt[3] = {'-', (char)optopt, 0};
			return pw_ctl_err(PW_CTL_USAGE,
			                  "unknown option \"%s\" (try \"pgwardctl help\")",
			                  optopt ? opt : argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (version)
		return pw_ctl_version(0, NULL);
	if (argc < 1 && pw_ctl_json)
		return pw_ctl_err(PW_CTL_USAGE, "no object given (try \"pgwardctl help\")");
	if (argc < 1)
		return usage(stderr, PW_CTL_USAGE);
	if (strcmp(argv[0], "help") == 0)
		return usage(stdout, PW_CTL_OK);
	return pw_ctl_run_table(objects, "", argc, argv);
}
