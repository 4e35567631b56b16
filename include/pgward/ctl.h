/* pgwardctl's shared pieces: bpftool's grammar (OBJECT COMMAND, one command table per object,
 * one file per object: user/ctl_<object>.c) and its JSON output. */
#ifndef PGWARD_CTL_H
#define PGWARD_CTL_H

#include <stdbool.h>

#include <jansson.h>

struct pw_ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

/* -j was given: print JSON. Set once by main() before any command runs. */
extern bool pw_ctl_json;

int pw_ctl_run_table(const struct pw_ctl_cmd *t, const char *obj, int argc, char **argv);
void pw_ctl_print_json(json_t *j); /* prints one line and releases j */

/* objects */
int pw_ctl_policy(int argc, char **argv);

#endif
