/* pgwardctl approval: the statements held for a person, through pgwardd's control socket
 * (docs/control.md): list them, show one, approve one (once, for its fingerprint a while, or
 * for the rest of its session) or deny it. Request ids are strings (digits, letters, '-' and
 * ':', at most 64), as a fleet's nodes name them. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"
#include "pgward/log.h"

#define ID_MAX 64

static int do_list(int argc, char **argv);
static int do_show(int argc, char **argv);
static int do_approve(int argc, char **argv);
static int do_deny(int argc, char **argv);

static const struct pw_ctl_cmd approval_cmds[] = {
    {"list", do_list, "[--all]",
     "the pending requests, one a line; --all: the decided ones pgwardd still knows too\n"
     "    (pgwardd)"},
    {"show", do_show, "ID", "one request: who, what statement, why it is held (pgwardd)"},
    {"approve", do_approve, "ID [--for DURATION | --session] [--reason TEXT]",
     "let the statement run: once; --for: its fingerprint (the same statement but for\n"
     "    constants) in the same session for DURATION (90s, 10m, 2h, 1d or seconds);\n"
     "    --session: every statement of the session; --reason: noted with the decision\n"
     "    (pgwardd; approvers)"},
    {"deny", do_deny, "ID [--reason TEXT]",
     "refuse the statement; the client gets an error naming the reason (pgwardd;\n"
     "    approvers)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_approval(int argc, char **argv)
{
	return pw_ctl_run_table(approval_cmds, "approval", argc, argv);
}

/* ---- printing ---- */

static void put_head(json_t *r)
{
	pw_ctl_put_key(r, "id", PW_CTL_VALUE_CAP);
	printf(": ");
	pw_ctl_put_word(json_object_get(r, "state"));
	pw_ctl_put_opt(r, "identity", "identity");
	pw_ctl_put_opt(r, "session", "session");
}

/* one request, one line: for list */
static void line_plain(json_t *r)
{
	json_t *st = json_object_get(r, "statement");
	put_head(r);
	pw_ctl_put_opt(r, "user", "user");
	pw_ctl_put_opt(r, "database", "database");
	pw_ctl_put_opt(r, "expires", "expires");
	printf(": ");
	pw_ctl_put_key(st, "text", PW_CTL_TEXT_CAP);
	putchar('\n');
}

static void list_plain(json_t *a)
{
	json_t *r;
	size_t i;
	json_array_foreach(a, i, r) line_plain(r);
}

static void decided_plain(json_t *d)
{
	if (!json_is_object(d))
		return;
	printf("\tdecided ");
	pw_ctl_put_key(d, "at", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(d, "by", "by");
	pw_ctl_put_opt(d, "uid", "uid");
	pw_ctl_put_opt(d, "scope", "scope");
	pw_ctl_put_opt(d, "for_seconds", "for_seconds");
	pw_ctl_put_opt(d, "reason", "reason");
	putchar('\n');
}

/* one request, a block: for show, approve and deny */
static void block_plain(json_t *r)
{
	static const char *const skip[] = {"type", "text", "text_base64", "reason", NULL};
	json_t *st = json_object_get(r, "statement");
	put_head(r);
	pw_ctl_put_opt(r, "node", "node");
	printf("\n\tuser ");
	pw_ctl_put_key(r, "user", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(r, "database", "database");
	pw_ctl_put_opt(r, "client", "client");
	putchar('\n');
	pw_ctl_put_kernel(json_object_get(r, "kernel"));
	printf("\tstatement ");
	pw_ctl_put_key(st, "type", PW_CTL_VALUE_CAP);
	printf(": ");
	if (json_is_string(json_object_get(st, "text_base64")))
		pw_ctl_put_key(st, "text_base64", PW_CTL_TEXT_CAP);
	else
		pw_ctl_put_key(st, "text", PW_CTL_TEXT_CAP);
	putchar('\n');
	if (json_is_object(st)) {
		putchar('\t');
		pw_ctl_put_rest(st, skip, true);
		printf("\n\treason ");
		pw_ctl_put_key(st, "reason", PW_CTL_VALUE_CAP);
		putchar('\n');
	}
	printf("\tcreated ");
	pw_ctl_put_key(r, "created", PW_CTL_VALUE_CAP);
	printf("  expires ");
	pw_ctl_put_key(r, "expires", PW_CTL_VALUE_CAP);
	putchar('\n');
	decided_plain(json_object_get(r, "decided"));
}

/* ---- arguments ---- */

struct approval_args {
	const char *id;
	bool all, session, has_for, has_reason;
	const char *for_text, *reason;
};

/* argv: options of opts (" all ", " for session ", ...: "--NAME", "--NAME VALUE" or
 * "--NAME=VALUE", each once) anywhere, and an ID when want_id ("--" ends the options).
 * 0, or a usage error printed. */
static int parse(const char *cmd, const char *opts, bool want_id, int argc, char **argv,
                 struct approval_args *a)
{
	const struct {
		const char *name;
		bool *seen;
		const char **value; /* NULL: a flag */
	} known[] = {{"all", &a->all, NULL},
	             {"session", &a->session, NULL},
	             {"for", &a->has_for, &a->for_text},
	             {"reason", &a->has_reason, &a->reason}};
	bool options = true;
	for (int i = 0; i < argc; i++) {
		const char *w = argv[i], *eq = strchr(w, '=');
		size_t k = 0, len = eq ? (size_t)(eq - w - 2) : strlen(w) - 2;
		char name[18];
		if (options && strcmp(w, "--") == 0) {
			options = false;
			continue;
		}
		if (!options || strncmp(w, "--", 2) != 0) {
			if (!want_id || a->id)
				return pw_ctl_usage_of("approval", cmd);
			a->id = w;
			continue;
		}
		snprintf(name, sizeof(name), " %.*s ", len < 10 ? (int)len : 10, w + 2);
		while (k < sizeof(known) / sizeof(known[0]) &&
		       (strlen(known[k].name) != len || strncmp(known[k].name, w + 2, len) != 0))
			k++;
		if (k == sizeof(known) / sizeof(known[0]) || !strstr(opts, name) ||
		    *known[k].seen || (eq && !known[k].value) ||
		    (known[k].value && !eq && i + 1 >= argc))
			return pw_ctl_usage_of("approval", cmd);
		*known[k].seen = true;
		if (known[k].value)
			*known[k].value = eq ? eq + 1 : argv[++i];
	}
	if (want_id && !a->id)
		return pw_ctl_usage_of("approval", cmd);
	size_t n = a->id ? strlen(a->id) : 0;
	if (a->id && (n == 0 || n > ID_MAX ||
	              strspn(a->id, "0123456789abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ-:") != n))
		return pw_ctl_err(
		    PW_CTL_USAGE,
		    "approval id: expected up to %d letters, digits, '-' or ':', got %s", ID_MAX,
		    PW_Q(a->id));
	return 0;
}

/* DURATION: 90s, 10m, 2h, 1d or plain seconds, at least 1 s (pgwardd says how long it
 * lets one be); -1: a usage error was printed. */
static long long duration(const char *s)
{
	static const struct {
		char unit;
		long long seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	size_t digits = strspn(s, "0123456789");
	long long mult = s[digits] == 0 ? 1 : 0, v = 0;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (s[digits] == units[i].unit && s[digits + 1] == 0)
			mult = units[i].seconds;
	if (digits && digits <= 10 && mult)
		v = strtoll(s, NULL, 10) * mult;
	if (v < 1 || v > INT_MAX) {
		pw_ctl_err(PW_CTL_USAGE,
		           "--for: expected a duration (90s, 10m, 2h, 1d or seconds), got %s",
		           PW_Q(s));
		return -1;
	}
	return v;
}

/* ---- the commands ---- */

/* approval list [--all] */
static int do_list(int argc, char **argv)
{
	struct approval_args a = {0};
	if (pw_ctl_cmd_help("approval", "list", argc, argv))
		return PW_CTL_OK;
	int rc = parse("list", " all ", false, argc, argv, &a);
	if (rc)
		return rc;
	json_t *args = json_object();
	if (a.all)
		json_object_set_new(args, "all", json_true());
	return pw_ctl_show("approval list", args, list_plain);
}

/* the request's id as the args of a command */
static json_t *id_args(const struct approval_args *a)
{
	json_t *args = json_object();
	json_object_set_new(args, "id", json_string(a->id));
	return args;
}

/* approval show ID */
static int do_show(int argc, char **argv)
{
	struct approval_args a = {0};
	if (pw_ctl_cmd_help("approval", "show", argc, argv))
		return PW_CTL_OK;
	int rc = parse("show", "", true, argc, argv, &a);
	return rc ? rc : pw_ctl_show("approval show", id_args(&a), block_plain);
}

/* approval approve ID [--for DURATION | --session] [--reason TEXT] */
static int do_approve(int argc, char **argv)
{
	struct approval_args a = {0};
	long long secs = 0;
	if (pw_ctl_cmd_help("approval", "approve", argc, argv))
		return PW_CTL_OK;
	int rc = parse("approve", " for session reason ", true, argc, argv, &a);
	if (rc == 0 && a.has_for && a.session)
		rc = pw_ctl_usage_of("approval", "approve");
	if (rc == 0 && a.has_for && (secs = duration(a.for_text)) < 0)
		rc = PW_CTL_USAGE;
	if (rc)
		return rc;
	json_t *args = id_args(&a);
	json_object_set_new(args, "scope",
	                    json_string(a.has_for   ? "fingerprint"
	                                : a.session ? "session"
	                                            : "once"));
	if (a.has_for)
		json_object_set_new(args, "for_seconds", json_integer(secs));
	if (a.has_reason && !pw_ctl_arg_str(args, "reason", a.reason)) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_show("approval approve", args, block_plain);
}

/* approval deny ID [--reason TEXT] */
static int do_deny(int argc, char **argv)
{
	struct approval_args a = {0};
	if (pw_ctl_cmd_help("approval", "deny", argc, argv))
		return PW_CTL_OK;
	int rc = parse("deny", " reason ", true, argc, argv, &a);
	if (rc)
		return rc;
	json_t *args = id_args(&a);
	if (a.has_reason && !pw_ctl_arg_str(args, "reason", a.reason)) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_show("approval deny", args, block_plain);
}
