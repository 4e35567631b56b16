/* pgwardctl session show, kill, watch: the live sessions, through pgwardd's control socket
 * (docs/control.md). Their table entries are in ctl_session.c, with replay's. Plain output is
 * bpftool's: one block per session, its first line "ID: identity ..." and the rest indented;
 * everything an agent or a client chose (names, statement text, comm, exe, cgroup) escaped. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

/* the text of a statement (text or, not UTF-8, text_base64), cut for one line */
static void put_text(json_t *st)
{
	json_t *t = json_object_get(st, "text");
	if (json_is_string(t)) {
		pw_ctl_put(t, PW_CTL_TEXT_CAP);
	} else if (json_is_string(json_object_get(st, "text_base64"))) {
		fputs("(not UTF-8) base64 ", stdout);
		pw_ctl_put_key(st, "text_base64", PW_CTL_TEXT_CAP);
	} else {
		putchar('-');
	}
}

/* what the identity was matched by: " (cgroup GLOB, user GLOB)", from a list of names or
 * an object of names and globs */
static void put_matched(json_t *m)
{
	const char *k;
	json_t *v;
	size_t i;
	if (!json_array_size(m) && !json_object_size(m))
		return;
	fputs(" (", stdout);
	json_array_foreach(m, i, v)
	{
		fputs(i ? ", " : "", stdout);
		pw_ctl_put_word(v);
	}
	i = 0;
	json_object_foreach(m, k, v)
	{
		if (strcmp(k, "auth") == 0)
			continue; /* said on the next line */
		fputs(i++ ? ", " : "", stdout);
		pw_ctl_put_str(k, strlen(k), PW_CTL_VALUE_CAP);
		putchar(' ');
		pw_ctl_put_word(v); /* the glob (or number) it matched with */
	}
	putchar(')');
}

static void session_plain(json_t *s)
{
	json_t *up = json_object_get(s, "upstream"), *st = json_object_get(s, "statement");
	pw_ctl_put_key(s, "id", PW_CTL_VALUE_CAP);
	printf(": identity ");
	pw_ctl_put_key(s, "identity", PW_CTL_VALUE_CAP);
	put_matched(json_object_get(s, "matched"));
	printf("  state ");
	pw_ctl_put_word(json_object_get(s, "state"));
	pw_ctl_put_opt(s, "user", "user");
	pw_ctl_put_opt(s, "database", "database");
	printf("\n\tclient ");
	pw_ctl_put_key(s, "client", PW_CTL_VALUE_CAP);
	if (json_is_object(up)) {
		printf("  upstream ");
		pw_ctl_put_key(up, "name", PW_CTL_VALUE_CAP);
		putchar(' ');
		pw_ctl_put_key(up, "address", PW_CTL_VALUE_CAP);
	}
	pw_ctl_put_opt(s, "role", "role");
	pw_ctl_put_opt(s, "auth", "auth");
	pw_ctl_put_opt(s, "application_name", "application");
	putchar('\n');
	pw_ctl_put_kernel(json_object_get(s, "kernel"));
	if (json_is_object(st)) {
		printf("\tstatement (");
		pw_ctl_put_ms(json_object_get(st, "age_ms"));
		printf("): ");
		put_text(st);
		putchar('\n');
	}
	if (!json_is_null(json_object_get(s, "approval")) && json_object_get(s, "approval")) {
		printf("\tapproval ");
		pw_ctl_put_key(s, "approval", PW_CTL_VALUE_CAP);
		putchar('\n');
	}
	printf("\tstatements ");
	pw_ctl_put_key(s, "statements", PW_CTL_VALUE_CAP);
	printf("  bytes in ");
	pw_ctl_put_key(s, "bytes_in", PW_CTL_VALUE_CAP);
	printf(" out ");
	pw_ctl_put_key(s, "bytes_out", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(s, "started", "started");
	pw_ctl_put_opt(s, "worker", "worker");
	putchar('\n');
}

static void show_plain(json_t *r)
{
	json_t *s;
	size_t i;
	if (json_is_object(r)) { /* one session, should pgwardd answer so */
		session_plain(r);
		return;
	}
	json_array_foreach(r, i, s) session_plain(s);
}

/* "id N" into args; false: an error was printed */
static bool id_arg(json_t *args, const char *n)
{
	long long id;
	if (!pw_ctl_parse_int("id", n, 0, INT64_MAX, &id))
		return false;
	json_object_set_new(args, "id", json_integer(id));
	return true;
}

/* session show [id N | identity NAME] */
int pw_ctl_session_show(int argc, char **argv)
{
	if (pw_ctl_cmd_help("session", "show", argc, argv))
		return PW_CTL_OK;
	json_t *args = json_object();
	bool ok = argc == 0;
	if (argc == 2 && strcmp(argv[0], "id") == 0) {
		if (!id_arg(args, argv[1])) {
			json_decref(args);
			return PW_CTL_USAGE;
		}
		ok = true;
	} else if (argc == 2 && strcmp(argv[0], "identity") == 0) {
		if (!pw_ctl_arg_str(args, "identity", argv[1])) {
			json_decref(args);
			return PW_CTL_USAGE;
		}
		ok = true;
	}
	if (!ok) {
		json_decref(args);
		return pw_ctl_usage_of("session", "show");
	}
	return pw_ctl_show("session show", args, show_plain);
}

static void kill_plain(json_t *r)
{
	printf("session ");
	pw_ctl_put_key(r, "id", PW_CTL_VALUE_CAP);
	printf(json_is_true(json_object_get(r, "killed")) ? " killed\n" : " not killed\n");
}

/* session kill id N */
int pw_ctl_session_kill(int argc, char **argv)
{
	if (pw_ctl_cmd_help("session", "kill", argc, argv))
		return PW_CTL_OK;
	if (argc != 2 || strcmp(argv[0], "id") != 0)
		return pw_ctl_usage_of("session", "kill");
	json_t *args = json_object();
	if (!id_arg(args, argv[1])) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_show("session kill", args, kill_plain);
}

/* One statement line: time, session, identity, type, the decision and what made it, then
 * the text. */
static void watch_plain(json_t *o)
{
	pw_ctl_put_key(o, "ts", PW_CTL_VALUE_CAP);
	printf("  session ");
	pw_ctl_put_key(o, "session", PW_CTL_VALUE_CAP);
	printf("  identity ");
	pw_ctl_put_key(o, "identity", PW_CTL_VALUE_CAP);
	printf("  ");
	pw_ctl_put_key(o, "type", PW_CTL_VALUE_CAP);
	printf("  ");
	pw_ctl_put_word(json_object_get(o, "decision"));
	pw_ctl_put_opt(o, "by", "by");
	pw_ctl_put_opt(o, "rule", "rule");
	pw_ctl_put_opt(o, "guardrail", "guardrail");
	pw_ctl_put_opt(o, "approval", "approval");
	pw_ctl_put_opt(o, "sqlstate", "sqlstate");
	pw_ctl_put_opt(o, "message", "message");
	printf(": ");
	put_text(o);
	putchar('\n');
}

/* session watch [id N] */
int pw_ctl_session_watch(int argc, char **argv)
{
	if (pw_ctl_cmd_help("session", "watch", argc, argv))
		return PW_CTL_OK;
	if (argc != 0 && (argc != 2 || strcmp(argv[0], "id") != 0))
		return pw_ctl_usage_of("session", "watch");
	json_t *args = json_object();
	if (argc == 2 && !id_arg(args, argv[1])) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_stream("session watch", args, watch_plain);
}
