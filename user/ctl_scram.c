/* pgwardctl scram: SCRAM-SHA-256 verifiers for an identity's "scram_verifier". */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "pgward/auth.h"
#include "pgward/ctl.h"

struct verifier_info {
	long long iterations;
	char verifier[512];
};

static void verifier_plain(const struct verifier_info *vi)
{
	puts(vi->verifier);
}

static void verifier_json(const struct verifier_info *vi)
{
	json_t *j = json_object();
	json_object_set_new(j, "scram_verifier", json_string(vi->verifier));
	json_object_set_new(j, "iterations", json_integer(vi->iterations));
	pw_ctl_print_json(j);
}

static int do_verifier(int argc, char **argv);

static const struct pw_ctl_cmd scram_cmds[] = {
    {"verifier", do_verifier, "[--iterations N] < PASSWORD",
     "print a SCRAM-SHA-256 verifier of the first line of standard input"},
    {NULL, NULL, NULL, NULL}};

/* scram verifier [--iterations N]: the password is the first line of standard input */
static int do_verifier(int argc, char **argv)
{
	struct verifier_info vi = {.iterations = 4096};
	char pw[1024];

	if (argc == 2 && strcmp(argv[0], "--iterations") == 0) {
		if (!pw_ctl_parse_int("--iterations", argv[1], 1, INT_MAX, &vi.iterations))
			return PW_CTL_USAGE;
	} else if (argc != 0) {
		return pw_ctl_usage(scram_cmds, "scram", "verifier");
	}
	if (!fgets(pw, sizeof(pw), stdin))
		return pw_ctl_err(PW_CTL_FAILED, "no password on standard input");
	pw[strcspn(pw, "\r\n")] = 0;
	int rc = pw_scram_make_verifier(pw, (int)vi.iterations, NULL, 0, vi.verifier,
	                                sizeof(vi.verifier));
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0)
		return pw_ctl_err(PW_CTL_FAILED, "cannot build the verifier");
	if (pw_ctl_json)
		verifier_json(&vi);
	else
		verifier_plain(&vi);
	return PW_CTL_OK;
}

int pw_ctl_scram(int argc, char **argv)
{
	return pw_ctl_run_table(scram_cmds, "scram", argc, argv);
}
