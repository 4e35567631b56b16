/* pgwardctl identity show: the identities of the running policy, how each is matched and what
 * it may do, with its live sessions, through pgwardd's control socket (docs/control.md). */
#include <stdio.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

static int do_show(int argc, char **argv);

static const struct pw_ctl_cmd identity_cmds[] = {
    {"show", do_show, "[NAME]",
     "every identity (or NAME): how it is matched, its upstream and role, rules, masks,\n"
     "    guardrails turned off, approvers, live sessions (pgwardd)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_identity(int argc, char **argv)
{
	return pw_ctl_run_table(identity_cmds, "identity", argc, argv);
}

static void identity_plain(json_t *id)
{
	static const char *const skip[] = {
	    "name", "match", "guardrails_off", "approvers", "approval_timeout_seconds", NULL};
	json_t *off = json_object_get(id, "guardrails_off"), *ap = json_object_get(id, "approvers");
	pw_ctl_put_key(id, "name", PW_CTL_VALUE_CAP);
	printf(": ");
	pw_ctl_put_rest(id, skip, true);
	printf("\n\tmatch ");
	pw_ctl_put_fields(json_object_get(id, "match"), true);
	putchar('\n');
	if (json_array_size(off)) {
		printf("\tguardrails off: ");
		pw_ctl_put(off, PW_CTL_VALUE_CAP);
		putchar('\n');
	}
	if (json_is_object(ap)) {
		printf("\tapprovers ");
		pw_ctl_put_fields(ap, true);
		pw_ctl_put_opt(id, "approval_timeout_seconds", "timeout_seconds");
		putchar('\n');
	}
}

static void show_plain(json_t *r)
{
	json_t *id;
	size_t i;
	if (json_is_object(r)) { /* one identity, should pgwardd answer so */
		identity_plain(r);
		return;
	}
	json_array_foreach(r, i, id) identity_plain(id);
}

/* identity show [NAME] */
static int do_show(int argc, char **argv)
{
	if (pw_ctl_cmd_help("identity", "show", argc, argv))
		return PW_CTL_OK;
	if (argc > 1)
		return pw_ctl_usage_of("identity", "show");
	json_t *args = json_object();
	if (argc == 1 && !pw_ctl_arg_str(args, "name", argv[0])) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_show("identity show", args, show_plain);
}
