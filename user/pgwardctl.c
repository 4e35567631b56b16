/* pgwardctl: inspect and steer pgward, with bpftool's grammar: pgwardctl [-j] OBJECT COMMAND.
 * This file is main(), the objects' table and what every command shares (the table runner, the
 * error helper, JSON printing, strict numbers); each object is a ctl_<object>.c. The tables
 * are the one source of help, of the grammar and, through the hidden "pgwardctl __tables", of
 * the man page and the bash completion (scripts/gen-ctl-docs.sh). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

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
		json_t *j = json_object(), *m = json_string(msg);
		if (!m) { /* not UTF-8 (or cut inside a character): the bytes past ASCII as \xNN */
			char ascii[sizeof(msg) * 4];
			size_t o = 0;
			for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
				o += (size_t)snprintf(ascii + o, sizeof(ascii) - o,
				                      *p < 0x80 ? "%c" : "\\x%02x", *p);
			m = json_string(ascii);
		}
		json_object_set_new(j, "error", m);
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

/* While set, pw_ctl_run_table records the table it is given instead of running a command:
 * the objects' tables stay static in their files and are still found from here. */
static bool probing;
static const struct pw_ctl_cmd *probed;

const struct pw_ctl_cmd *pw_ctl_object_cmds(const struct pw_ctl_object *o)
{
	if (!o->commands)
		return NULL;
	probing = true;
	probed = NULL;
	o->fn(0, NULL);
	probing = false;
	return probed;
}

static const struct pw_ctl_object *find_object(const char *name)
{
	for (const struct pw_ctl_object *o = pw_ctl_objects; o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
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

int pw_ctl_usage_of(const char *obj, const char *name)
{
	const struct pw_ctl_object *o = find_object(obj);
	const struct pw_ctl_cmd *t = o ? pw_ctl_object_cmds(o) : NULL;
	if (!t)
		return pw_ctl_err(PW_CTL_USAGE, "usage: pgwardctl %s", obj);
	return pw_ctl_usage(t, obj, name);
}

static bool asks_help(int argc, char **argv)
{
	return argc == 1 && (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "-h") == 0 ||
	                     strcmp(argv[0], "--help") == 0);
}

bool pw_ctl_cmd_help(const char *obj, const char *name, int argc, char **argv)
{
	if (!asks_help(argc, argv))
		return false;
	const struct pw_ctl_object *o = find_object(obj);
	const struct pw_ctl_cmd *t = o ? pw_ctl_object_cmds(o) : NULL;
	if (o && !name)
		printf("pgwardctl %s\n    %s\n", obj, o->what);
	for (; t && name && t->name; t++)
		if (strcmp(t->name, name) == 0)
			print_help((const struct pw_ctl_cmd[]){*t, {NULL, NULL, NULL, NULL}}, obj);
	return true;
}

int pw_ctl_run_table(const struct pw_ctl_cmd *t, const char *obj, int argc, char **argv)
{
	bool ambiguous;
	if (probing) {
		probed = t;
		return PW_CTL_OK;
	}
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

const struct pw_ctl_object pw_ctl_objects[] = {
    {"approval", pw_ctl_approval, true,
     "statements held for a person: list them, approve or deny one (pgwardd)"},
    {"audit", pw_ctl_audit, true, "the audit trail: verify its chain, print its records"},
    {"cgroup", pw_ctl_cgroup, true, "the cgroups steered to pgwardd: show, add, remove (pgwardd)"},
    {"config", pw_ctl_config, true, "a pgwardd configuration file"},
    {"event", pw_ctl_event, true, "the kernel programs' events as they come (pgwardd)"},
    {"identity", pw_ctl_identity, true, "the identities pgwardd knows (pgwardd)"},
    {"map", pw_ctl_map, true, "pgward's BPF maps: show them, dump one decoded (pgwardd)"},
    {"policy", pw_ctl_policy, true,
     "decisions as pgwardd makes them, without connecting anywhere; the running policy:\n"
     "    show it, reload it (pgwardd)"},
    {"prog", pw_ctl_prog, true, "pgward's BPF programs and where they are attached (pgwardd)"},
    {"scram", pw_ctl_scram, true, "SCRAM-SHA-256 verifiers for the config"},
    {"session", pw_ctl_session, true,
     "sessions: the live ones (show, kill, watch; pgwardd), a recorded one (replay)"},
    {"stats", pw_ctl_stats, false, "pgwardd's counters (pgwardd)"},
    {"version", pw_ctl_version, false, "pgwardctl's version and its libraries'"},
    {NULL, NULL, false, NULL}};

/* The global options: what getopt reads, and what __tables tells the man page. */
static const struct {
	char c;
	const char *name, *arg, *what;
} options[] = {
    {'j', "json", NULL,
     "print JSON: a command's result (for pgwardd's commands exactly the \"result\" it answers;\n"
     "    a stream's lines as they come), or {\"error\": ...}"},
    {'p', "pretty", NULL, "print JSON, indented (implies -j)"},
    {'s', "socket", "PATH",
     "pgwardd's control socket (else $" PW_CTL_SOCKET_ENV ", else " PW_CTL_SOCKET_DEFAULT ")"},
    {'h', "help", NULL, "print the usage and every object"},
    {'V', "version", NULL, "print pgwardctl's version (as pgwardctl version)"},
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static const struct {
	int status;
	const char *what;
} statuses[] = {
    {PW_CTL_OK, "success"},
    {PW_CTL_FAILED, "the command ran and found something wrong (a chain that does not verify, an "
                    "invalid file), or could not do what it was asked: pgwardd cannot be reached "
                    "or answers not_found, failed, busy or unavailable"},
    {PW_CTL_USAGE, "a usage error: an unknown or ambiguous object or command, a bad argument "
                   "(pgwardd's error code usage, too)"},
    {PW_CTL_REFUSED, "policy explain and policy startup: the last statement or setting is refused"},
    {PW_CTL_DENIED, "pgwardd refused the command to this user (error code permission), or the "
                    "control socket's mode keeps the user out"},
};

/* "{ show | kill | help }" of a table */
static void print_commands(FILE *f, const struct pw_ctl_cmd *t)
{
	fputs("{", f);
	for (; t && t->name; t++)
		fprintf(f, " %s |", t->name);
	fputs(" help }", f);
}

static int usage(FILE *f, int status)
{
	fprintf(f, "Usage: pgwardctl [OPTIONS] OBJECT { COMMAND | help }\n"
	           "       pgwardctl help\n"
	           "       pgwardctl version\n"
	           "\n"
	           "       OBJECT := {");
	for (const struct pw_ctl_object *o = pw_ctl_objects; o->name; o++)
		fprintf(f, " %s%s", o->name, o[1].name ? " |" : " }\n");
	fprintf(f, "       OPTIONS := { -j|--json [-p|--pretty] | -s|--socket PATH | -h|--help |\n"
	           "                    -V|--version }\n"
	           "\n");
	for (const struct pw_ctl_object *o = pw_ctl_objects; f == stdout && o->name; o++) {
		printf("pgwardctl %s", o->name);
		if (o->commands) {
			putchar(' ');
			print_commands(stdout, pw_ctl_object_cmds(o));
		}
		printf("\n    %s\n", o->what);
	}
	return status;
}

/* pgwardctl __tables (hidden): every option, object, command and exit status as JSON, which
 * scripts/gen-ctl-docs.sh makes the man page and the completion of. */
static int print_tables(void)
{
	json_t *j = json_object(), *opts = json_array(), *objs = json_array(), *st = json_array();
	json_object_set_new(j, "program", json_string("pgwardctl"));
	json_object_set_new(j, "version", json_string(PW_VERSION));
	json_object_set_new(j, "socket_default", json_string(PW_CTL_SOCKET_DEFAULT));
	json_object_set_new(j, "socket_env", json_string(PW_CTL_SOCKET_ENV));
	for (size_t i = 0; i < N_OPTIONS; i++) {
		char c[2] = {options[i].c, 0};
		json_array_append_new(opts, json_pack("{s:s, s:s, s:o, s:s}", "short", c, "long",
		                                      options[i].name, "arg",
		                                      pw_ctl_json_str(options[i].arg), "what",
		                                      options[i].what));
	}
	for (const struct pw_ctl_object *o = pw_ctl_objects; o->name; o++) {
		const struct pw_ctl_cmd *t = pw_ctl_object_cmds(o);
		json_t *cmds = o->commands ? json_array() : json_null();
		for (; t && t->name; t++)
			json_array_append_new(cmds, json_pack("{s:s, s:s, s:s}", "name", t->name,
			                                      "args", t->args, "what", t->what));
		json_array_append_new(objs, json_pack("{s:s, s:s, s:o}", "name", o->name, "what",
		                                      o->what, "commands", cmds));
	}
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		json_array_append_new(st, json_pack("{s:i, s:s}", "status", statuses[i].status,
		                                    "what", statuses[i].what));
	json_object_set_new(j, "options", opts);
	json_object_set_new(j, "objects", objs);
	json_object_set_new(j, "exit_statuses", st);
	pw_ctl_print_json(j);
	return PW_CTL_OK;
}

/* Does object o take what argv says after its name? One with commands when the next word
 * names exactly one of them; one without (stats, version) never settles an ambiguous prefix:
 * "pgwardctl s" alone is ambiguous, not stats. */
static bool takes(const struct pw_ctl_object *o, int argc, char **argv)
{
	bool ambiguous;
	if (!o->commands)
		return false;
	return argc > 1 && lookup(pw_ctl_object_cmds(o), argv[1], &ambiguous);
}

/* The object argv[0] names: exactly, as a prefix of one object, or as a prefix of several of
 * which the next word leaves one ("pgwardctl s sh": scram, session and stats start with "s",
 * and only session has a command "sh" names). NULL: an error was printed. */
static const struct pw_ctl_object *resolve(int argc, char **argv)
{
	const struct pw_ctl_object *hit = NULL, *kept = NULL;
	size_t len = strlen(argv[0]);
	int n = 0, n_kept = 0;
	char names[256] = "";
	if ((hit = find_object(argv[0])))
		return hit;
	for (const struct pw_ctl_object *o = pw_ctl_objects; len && o->name; o++) {
		if (strncmp(o->name, argv[0], len) != 0)
			continue;
		hit = o;
		n++;
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
		         names[0] ? ", " : "", o->name);
		if (takes(o, argc, argv)) {
			kept = o;
			n_kept++;
		}
	}
	if (n == 1)
		return hit;
	if (n_kept == 1)
		return kept;
	if (n == 0)
		pw_ctl_err(PW_CTL_USAGE, "unknown command \"%s\" (try \"pgwardctl help\")",
		           argv[0]);
	else
		pw_ctl_err(PW_CTL_USAGE, "ambiguous object \"%s\": %s (try \"pgwardctl help\")",
		           argv[0], names);
	return NULL;
}

int main(int argc, char **argv)
{
	struct option opts[N_OPTIONS + 1];
	char shorts[2 * N_OPTIONS + 2] = "+", *sp = shorts + 1;
	for (size_t i = 0; i < N_OPTIONS; i++) {
		opts[i] = (struct option){options[i].name,
		                          options[i].arg ? required_argument : no_argument, NULL,
		                          options[i].c};
		*sp++ = options[i].c;
		if (options[i].arg)
			*sp++ = ':';
	}
	opts[N_OPTIONS] = (struct option){NULL, 0, NULL, 0};
	*sp = 0;
	int c;
	bool version = false;
	opterr = 0; /* its messages are not ours: one error helper says what was wrong */
	while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		if (c == 'j') {
			pw_ctl_json = true;
		} else if (c == 'p') {
			pw_ctl_json = pw_ctl_pretty = true;
		} else if (c == 's') {
			pw_ctl_socket = optarg;
		} else if (c == 'V') {
			version = true;
		} else if (c == 'h') {
			return usage(stdout, PW_CTL_OK);
		} else if (optopt && strchr(shorts, optopt)) { /* its value is missing */
			return pw_ctl_err(PW_CTL_USAGE,
			                  "option \"%s\" needs a value (try \"pgwardctl "
			                  "help\")",
			                  argv[optind - 1]);
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
	if (strcmp(argv[0], "__tables") == 0)
		return print_tables();
	const struct pw_ctl_object *o = resolve(argc, argv);
	return o ? o->fn(argc - 1, argv + 1) : PW_CTL_USAGE;
}
