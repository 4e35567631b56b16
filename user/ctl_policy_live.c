/* pgwardctl policy show, reload: the running policy, through pgwardd's control socket
 * (docs/control.md). Their table entries are in ctl_policy.c, with the offline commands'. */
#include <stdio.h>
#include <string.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

static void rule_plain(json_t *r)
{
	static const char *const skip[] = {"n", "name", "action", NULL};
	printf("\trule ");
	pw_ctl_put_key(r, "n", PW_CTL_VALUE_CAP);
	json_t *name = json_object_get(r, "name");
	if (json_is_string(name)) {
		putchar(' ');
		pw_ctl_put(name, PW_CTL_VALUE_CAP);
	}
	printf(": ");
	pw_ctl_put_key(r, "action", PW_CTL_VALUE_CAP);
	pw_ctl_put_rest(r, skip, false);
	putchar('\n');
}

/* "guardrails on: a, b  off: c" */
static void guardrails_plain(json_t *g)
{
	const char *k;
	json_t *v;
	if (!json_is_object(g))
		return;
	printf("\tguardrails");
	for (int on = 1; on >= 0; on--) {
		bool first = true;
		json_object_foreach(g, k, v)
		{
			if (json_is_boolean(v) && json_is_true(v) == on) {
				fputs(first ? (on ? " on: " : "  off: ") : ", ", stdout);
				pw_ctl_put_str(k, strlen(k), PW_CTL_VALUE_CAP);
				first = false;
			}
		}
	}
	putchar('\n');
}

static void identity_plain(json_t *id)
{
	static const char *const skip[] = {"name", "rules", "guardrails", NULL};
	json_t *r;
	size_t i;
	printf("identity ");
	pw_ctl_put_key(id, "name", PW_CTL_VALUE_CAP);
	pw_ctl_put_rest(id, skip, false);
	putchar('\n');
	json_array_foreach(json_object_get(id, "rules"), i, r) rule_plain(r);
	guardrails_plain(json_object_get(id, "guardrails"));
}

static void show_plain(json_t *p)
{
	static const char *const skip[] = {"config", "loaded", "identities", NULL};
	json_t *id;
	size_t i;
	printf("config ");
	pw_ctl_put_key(p, "config", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(p, "loaded", "loaded");
	pw_ctl_put_rest(p, skip, false);
	putchar('\n');
	json_array_foreach(json_object_get(p, "identities"), i, id) identity_plain(id);
}

/* policy show [identity NAME] */
int pw_ctl_policy_show(int argc, char **argv)
{
	if (pw_ctl_cmd_help("policy", "show", argc, argv))
		return PW_CTL_OK;
	if (argc != 0 && (argc != 2 || strcmp(argv[0], "identity") != 0))
		return pw_ctl_usage_of("policy", "show");
	json_t *args = json_object();
	if (argc == 2 && !pw_ctl_arg_str(args, "identity", argv[1])) {
		json_decref(args);
		return PW_CTL_USAGE;
	}
	return pw_ctl_show("policy show", args, show_plain);
}

static void reload_plain(json_t *r)
{
	json_t *w;
	size_t i;
	printf("%s ", json_is_true(json_object_get(r, "reloaded")) ? "reloaded" : "not reloaded:");
	pw_ctl_put_key(r, "config", PW_CTL_VALUE_CAP);
	putchar('\n');
	json_array_foreach(json_object_get(r, "warnings"), i, w)
	{
		printf("warning: ");
		pw_ctl_put(w, PW_CTL_VALUE_CAP);
		putchar('\n');
	}
}

/* policy reload */
int pw_ctl_policy_reload(int argc, char **argv)
{
	return pw_ctl_simple("policy", "reload", argc, argv, reload_plain);
}
