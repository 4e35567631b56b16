/* pgwardctl map show, map dump: pgward's BPF maps, and one map's entries decoded by pgwardd
 * (its key and value structs as fields; counters summed over CPUs), through its control socket
 * (docs/control.md); plain output as bpftool map show prints its own, and one entry a line. */
#include <stdio.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

static int do_show(int argc, char **argv);
static int do_dump(int argc, char **argv);

static const struct pw_ctl_cmd map_cmds[] = {
    {"show", do_show, "", "the maps: type, name, sizes, entries, pinned (pgwardd)"},
    {"dump", do_dump, "NAME",
     "the entries of map NAME (pw_conns, pw_counters, pw_scope, pw_config, ...), decoded,\n"
     "    one a line (pgwardd)"},
    {NULL, NULL, NULL, NULL}};

int pw_ctl_map(int argc, char **argv)
{
	return pw_ctl_run_table(map_cmds, "map", argc, argv);
}

static void map_plain(json_t *m)
{
	static const char *const skip[] = {"id",       "type",       "name",
	                                   "key_size", "value_size", "max_entries",
	                                   "entries",  "pinned",     NULL};
	pw_ctl_put_key(m, "id", PW_CTL_VALUE_CAP);
	printf(": ");
	pw_ctl_put_key(m, "type", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(m, "name", "name");
	printf("  key ");
	pw_ctl_put_key(m, "key_size", PW_CTL_VALUE_CAP);
	printf("B  value ");
	pw_ctl_put_key(m, "value_size", PW_CTL_VALUE_CAP);
	printf("B  max_entries ");
	pw_ctl_put_key(m, "max_entries", PW_CTL_VALUE_CAP);
	printf("  entries ");
	pw_ctl_put_key(m, "entries", PW_CTL_VALUE_CAP);
	pw_ctl_put_rest(m, skip, false);
	putchar('\n');
	if (json_is_string(json_object_get(m, "pinned"))) {
		printf("\tpinned ");
		pw_ctl_put_key(m, "pinned", PW_CTL_VALUE_CAP);
		putchar('\n');
	}
}

static void show_plain(json_t *r)
{
	json_t *m;
	size_t i;
	json_array_foreach(r, i, m) map_plain(m);
}

/* map show */
static int do_show(int argc, char **argv)
{
	return pw_ctl_simple("map", "show", argc, argv, show_plain);
}

/* one entry a line, its fields as "key value"; the count at the end, as bpftool says it */
static void dump_plain(json_t *r)
{
	json_t *e;
	size_t i;
	json_array_foreach(r, i, e)
	{
		pw_ctl_put_fields(e, true);
		putchar('\n');
	}
	printf("Found %zu element%s\n", json_array_size(r), json_array_size(r) == 1 ? "" : "s");
}

/* map dump NAME */
static int do_dump(int argc, char **argv)
{
	if (pw_ctl_cmd_help("map", "dump", argc, argv))
		return PW_CTL_OK;
	if (argc != 1)
		return pw_ctl_usage_of("map", "dump");
	json_t *args = json_object();
	if (!pw_ctl_arg_str(args, "name", argv[0])) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_show("map dump", args, dump_plain);
}
