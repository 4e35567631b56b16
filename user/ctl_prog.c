/* pgwardctl prog show: pgward's BPF programs as pgwardd loaded and attached them, through its
 * control socket (docs/control.md); plain output as bpftool prog show prints its own. */
#include <stdio.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

static int do_show(int argc, char **argv);

static const struct pw_ctl_cmd prog_cmds[] = {
    {"show", do_show, "",
     "the programs: type, name, where attached, pinned, run counts (null unless\n"
     "    kernel.bpf_stats_enabled is 1) (pgwardd)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_prog(int argc, char **argv)
{
	return pw_ctl_run_table(prog_cmds, "prog", argc, argv);
}

static void prog_plain(json_t *p)
{
	static const char *const skip[] = {"id",        "type",        "name",      "tag",
	                                   "attach",    "cgroup",      "loaded_at", "pinned",
	                                   "run_count", "run_time_ns", NULL};
	pw_ctl_put_key(p, "id", PW_CTL_VALUE_CAP);
	printf(": ");
	pw_ctl_put_key(p, "type", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(p, "name", "name");
	pw_ctl_put_opt(p, "tag", "tag");
	pw_ctl_put_rest(p, skip, false);
	printf("\n\tattach ");
	pw_ctl_put_key(p, "attach", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(p, "cgroup", "cgroup");
	pw_ctl_put_opt(p, "loaded_at", "loaded_at");
	putchar('\n');
	if (json_is_string(json_object_get(p, "pinned"))) {
		printf("\tpinned ");
		pw_ctl_put_key(p, "pinned", PW_CTL_VALUE_CAP);
		putchar('\n');
	}
	printf("\trun_count ");
	pw_ctl_put_key(p, "run_count", PW_CTL_VALUE_CAP);
	printf("  run_time_ns ");
	pw_ctl_put_key(p, "run_time_ns", PW_CTL_VALUE_CAP);
	putchar('\n');
}

static void show_plain(json_t *r)
{
	json_t *p;
	size_t i;
	json_array_foreach(r, i, p) prog_plain(p);
}

/* prog show */
static int do_show(int argc, char **argv)
{
	return pw_ctl_simple("prog", "show", argc, argv, show_plain);
}
