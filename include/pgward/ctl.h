/* pgwardctl's shared pieces, in bpftool's manner: OBJECT COMMAND with one command table per
 * object and one file per object (user/ctl_<object>.c); every command fills one info struct
 * and prints it with a _plain or a _json twin; every error goes through pw_ctl_err. */
#ifndef PGWARD_CTL_H
#define PGWARD_CTL_H

#include <stdbool.h>

#include <jansson.h>

/* The one place pgward's version is said (pgwardctl version; pgwardd may print it too). */
#define PW_VERSION "0.1.0"

/* Exit statuses of every command. */
#define PW_CTL_OK      0
#define PW_CTL_FAILED  1 /* the command ran and found something wrong, or could not run */
#define PW_CTL_USAGE   2
#define PW_CTL_REFUSED 3 /* policy explain / startup: the last text or setting is refused */
#define PW_CTL_DENIED  4 /* pgwardd (or the control socket's mode) does not let this user */

struct pw_ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args; /* after "pgwardctl OBJECT NAME": its usage */
	const char *what; /* what it does, for help */
};

/* An object: its function, and whether it takes a command from a table (stats and version take
 * none: "pgwardctl stats"). An object with commands hands its argc and argv straight to
 * pw_ctl_run_table, so that its table is found without running anything (pw_ctl_object_cmds). */
struct pw_ctl_object {
	const char *name;
	int (*fn)(int argc, char **argv);
	bool commands;
	const char *what;
};

/* Every object, in the order help lists them, ended by a NULL name: what help, the grammar,
 * "pgwardctl __tables" and through it the man page and the completion are made of. */
extern const struct pw_ctl_object pw_ctl_objects[];
/* The command table of o (NULL for one that takes no command). */
const struct pw_ctl_cmd *pw_ctl_object_cmds(const struct pw_ctl_object *o);

/* -j (or -p): print JSON; -p: indented. Set once by main() before any command runs. */
extern bool pw_ctl_json;
extern bool pw_ctl_pretty;

/* argv[0] (an exact name, or a prefix of exactly one) run from the table t of object obj;
 * "help" or nothing lists the table. While pw_ctl_object_cmds asks, it only notes t. */
int pw_ctl_run_table(const struct pw_ctl_cmd *t, const char *obj, int argc, char **argv);
/* The one error helper: "Error: ..." on stderr, or {"error": "..."} on stdout under -j.
 * Returns status, so that a command can end with return pw_ctl_err(PW_CTL_USAGE, ...). */
__attribute__((format(printf, 2, 3))) int pw_ctl_err(int status, const char *fmt, ...);
/* The usage of command name of table t, as an error; returns PW_CTL_USAGE. */
int pw_ctl_usage(const struct pw_ctl_cmd *t, const char *obj, const char *name);
/* The same by the object's name, for a command whose table is in another file. */
int pw_ctl_usage_of(const char *obj, const char *name);
/* "pgwardctl OBJ NAME help" (or -h, --help as the only argument): that command's usage and
 * what it does on stdout, and true; false when argv asks for something else. name NULL: the
 * object's own (one that takes no command). */
bool pw_ctl_cmd_help(const char *obj, const char *name, int argc, char **argv);
/* Prints one JSON document (compact, or indented under -p) and releases j. */
void pw_ctl_print_json(json_t *j);
/* A string, or JSON null when s is NULL or empty: absent values are null, never missing. */
json_t *pw_ctl_json_str(const char *s);
/* s as a whole decimal integer from lo to hi into *out; else an error naming what (returns
 * false): strict, unlike atoi ("12x", "", " 1" and overflow are refused). */
bool pw_ctl_parse_int(const char *what, const char *s, long long lo, long long hi, long long *out);

/* objects */
int pw_ctl_approval(int argc, char **argv);
int pw_ctl_audit(int argc, char **argv);
int pw_ctl_cgroup(int argc, char **argv);
int pw_ctl_config(int argc, char **argv);
int pw_ctl_event(int argc, char **argv);
int pw_ctl_identity(int argc, char **argv);
int pw_ctl_map(int argc, char **argv);
int pw_ctl_policy(int argc, char **argv);
int pw_ctl_prog(int argc, char **argv);
int pw_ctl_scram(int argc, char **argv);
int pw_ctl_session(int argc, char **argv);
int pw_ctl_stats(int argc, char **argv);
int pw_ctl_version(int argc, char **argv);

/* config check and policy check: one check, one report (ctl_config.c) */
int pw_ctl_check_file(const char *file);

#endif
