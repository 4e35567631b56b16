/* pgwardctl cgroup show, add, del: the cgroups whose connections the kernel programs steer to
 * pgwardd, changed live through its control socket (docs/control.md); pgwardd keeps a change
 * in its runtime override file, so that it outlives a restart. */
#include <stdio.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

static int do_show(int argc, char **argv);
static int do_add(int argc, char **argv);
static int do_del(int argc, char **argv);

static const struct pw_ctl_cmd cgroup_cmds[] = {
    {"show", do_show, "",
     "the cgroups in scope: path, id, from the config or added at run time, whether it\n"
     "    exists (pgwardd)"},
    {"add", do_add, "PATH",
     "steer the connections of cgroup PATH (and its descendants) too (pgwardd; operators)"},
    {"del", do_del, "PATH", "stop steering the connections of cgroup PATH (pgwardd; operators)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_cgroup(int argc, char **argv)
{
	return pw_ctl_run_table(cgroup_cmds, "cgroup", argc, argv);
}

static void show_plain(json_t *r)
{
	static const char *const skip[] = {"path", NULL};
	json_t *c;
	size_t i;
	json_array_foreach(r, i, c)
	{
		pw_ctl_put_key(c, "path", PW_CTL_VALUE_CAP);
		pw_ctl_put_rest(c, skip, false);
		putchar('\n');
	}
}

/* cgroup show */
static int do_show(int argc, char **argv)
{
	return pw_ctl_simple("cgroup", "show", argc, argv, show_plain);
}

/* cgroup add PATH, cgroup del PATH: the scope after the change */
static int change(const char *name, int argc, char **argv)
{
	char command[32];
	if (pw_ctl_cmd_help("cgroup", name, argc, argv))
		return PW_CTL_OK;
	if (argc != 1)
		return pw_ctl_usage_of("cgroup", name);
	json_t *args = json_object();
	if (!pw_ctl_arg_str(args, "path", argv[0])) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	snprintf(command, sizeof(command), "cgroup %s", name);
	return pw_ctl_show(command, args, show_plain);
}

static int do_add(int argc, char **argv)
{
	return change("add", argc, argv);
}

static int do_del(int argc, char **argv)
{
	return change("del", argc, argv);
}
