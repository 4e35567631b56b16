/* pgwardctl: inspect and steer pgward, with bpftool's grammar: pgwardctl [-j] OBJECT COMMAND.
 * One command table per object; -j prints JSON. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "pgward/auth.h"
#include "pgward/config.h"
#include "pgward/ctl.h"

bool pw_ctl_json; /* written by main() before any command runs */

int pw_ctl_run_table(const struct pw_ctl_cmd *t, const char *obj, int argc, char **argv)
{
	if (argc < 1 || strcmp(argv[0], "help") == 0) {
		for (; t->name; t++)
			printf("pgwardctl %s %s\n", obj, t->help);
		return argc < 1 ? 2 : 0;
	}
	for (; t->name; t++)
		if (strcmp(t->name, argv[0]) == 0)
			return t->fn(argc - 1, argv + 1);
	fprintf(stderr, "pgwardctl: unknown command \"%s %s\" (try \"pgwardctl %s help\")\n", obj,
	        argv[0], obj);
	return 2;
}

void pw_ctl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(0) | JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (s)
		puts(s);
	free(s);
	json_decref(j);
}

/* config check FILE */
static int do_config_check(int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "usage: pgwardctl config check FILE\n");
		return 2;
	}
	struct pw_config *cfg;
	char err[1024];
	int rc = pw_config_load(argv[0], &cfg, err, sizeof(err));
	if (pw_ctl_json) {
		json_t *j = json_object();
		json_object_set_new(j, "file", json_string(argv[0]));
		json_object_set_new(j, "valid", json_boolean(rc == 0));
		if (rc < 0)
			json_object_set_new(j, "error", json_string(err));
		pw_ctl_print_json(j);
	} else if (rc < 0) {
		fprintf(stderr, "%s\n", err);
	} else {
		printf("%s: OK\n", argv[0]);
	}
	if (rc == 0)
		pw_config_unref(cfg);
	return rc < 0 ? 1 : 0;
}

/* scram verifier [--iterations N]: password from stdin (first line) */
static int do_scram_verifier(int argc, char **argv)
{
	int iterations = 4096;
	if (argc == 2 && strcmp(argv[0], "--iterations") == 0) {
		iterations = atoi(argv[1]);
	} else if (argc != 0) {
		fprintf(stderr, "usage: pgwardctl scram verifier [--iterations N] < password\n");
		return 2;
	}
	if (iterations < 1) {
		fprintf(stderr, "pgwardctl: iterations must be a positive number\n");
		return 2;
	}
	char pw[1024];
	if (!fgets(pw, sizeof(pw), stdin)) {
		fprintf(stderr, "pgwardctl: no password on standard input\n");
		return 1;
	}
	pw[strcspn(pw, "\r\n")] = 0;
	char out[512];
	if (pw_scram_make_verifier(pw, iterations, NULL, 0, out, sizeof(out)) < 0) {
		fprintf(stderr, "pgwardctl: cannot build the verifier\n");
		return 1;
	}
	if (pw_ctl_json) {
		json_t *j = json_object();
		json_object_set_new(j, "scram_verifier", json_string(out));
		pw_ctl_print_json(j);
	} else {
		puts(out);
	}
	return 0;
}

static const struct pw_ctl_cmd config_cmds[] = {
    {"check", do_config_check, "check FILE      validate a pgwardd configuration"},
    {NULL, NULL, NULL}};
static const struct pw_ctl_cmd scram_cmds[] = {
    {"verifier", do_scram_verifier,
     "verifier [--iterations N] < PASSWORD   print a SCRAM-SHA-256 verifier for the config"},
    {NULL, NULL, NULL}};

static int do_config(int argc, char **argv)
{
	return pw_ctl_run_table(config_cmds, "config", argc, argv);
}
static int do_scram(int argc, char **argv)
{
	return pw_ctl_run_table(scram_cmds, "scram", argc, argv);
}

static const struct pw_ctl_cmd objects[] = {{"config", do_config, "{ check | help }"},
                                            {"policy", pw_ctl_policy, "{ check | explain | help }"},
                                            {"scram", do_scram, "{ verifier | help }"},
                                            {NULL, NULL, NULL}};

int main(int argc, char **argv)
{
	int c;
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	while ((c = getopt_long(argc, argv, "+jh", opts, NULL)) != -1) {
		if (c == 'j')
			pw_ctl_json = true;
		else {
			printf("Usage: pgwardctl [-j] OBJECT { COMMAND | help }\n");
			for (const struct pw_ctl_cmd *t = objects; t->name; t++)
				printf("       pgwardctl %s %s\n", t->name, t->help);
			return c == 'h' ? 0 : 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		fprintf(stderr, "Usage: pgwardctl [-j] OBJECT { COMMAND | help }\n");
		return 2;
	}
	return pw_ctl_run_table(objects, "", argc, argv);
}
