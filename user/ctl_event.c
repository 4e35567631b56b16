/* pgwardctl event pipe: the kernel programs' events (redirects, refused connects, bypass
 * attempts) as pgwardd reads them from the ring buffer, streamed through its control socket
 * (docs/control.md) until interrupted, as bpftool prog tracelog streams its own. */
#include <stdio.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

static int do_pipe(int argc, char **argv);

static const struct pw_ctl_cmd event_cmds[] = {
    {"pipe", do_pipe, "",
     "every kernel event as it comes, until interrupted: redirect, connect_refused,\n"
     "    bypass_attempt, with the process's kernel facts (pgwardd)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_event(int argc, char **argv)
{
	return pw_ctl_run_table(event_cmds, "event", argc, argv);
}

/* time, type, reason, then the process: one line */
static void event_plain(json_t *e)
{
	static const char *const keys[] = {"pid", "uid", "comm", "exe", "cgroup", "dialled", "dst"};
	static const char *const labels[] = {"pid",    "uid",     "comm",   "exe",
	                                     "cgroup", "dialled", "dialled"};
	json_t *k = json_object_get(e, "kernel");
	pw_ctl_put_key(e, "ts", PW_CTL_VALUE_CAP);
	printf("  ");
	pw_ctl_put_word(json_object_get(e, "type"));
	pw_ctl_put_opt(e, "reason", "reason");
	for (size_t i = 0; json_is_object(k) && i < sizeof(keys) / sizeof(keys[0]); i++)
		pw_ctl_put_opt(k, keys[i], labels[i]); /* dst: the audit trail's name */
	putchar('\n');
}

/* event pipe */
static int do_pipe(int argc, char **argv)
{
	if (pw_ctl_cmd_help("event", "pipe", argc, argv))
		return PW_CTL_OK;
	if (argc != 0)
		return pw_ctl_usage_of("event", "pipe");
	return pw_ctl_stream("event pipe", NULL, event_plain);
}
