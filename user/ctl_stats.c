/* pgwardctl stats: pgwardd's counters through its control socket (docs/control.md). It takes
 * no command ("pgwardctl stats"). Plain: the top-level numbers on one line, then one line per
 * group ("sessions: live 3  total 120 ..."), one per identity, and the latency histogram's
 * buckets as "upper bound:cumulative count". */
#include <stdio.h>
#include <string.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"

/* latency_us: count, sum, their mean, then the buckets */
static void latency_plain(const char *key, json_t *l)
{
	static const char *const skip[] = {"buckets", NULL};
	json_t *count = json_object_get(l, "count"), *sum = json_object_get(l, "sum"), *b;
	size_t i;
	pw_ctl_put_str(key, strlen(key), PW_CTL_VALUE_CAP);
	printf(": ");
	pw_ctl_put_rest(l, skip, true);
	if (json_is_integer(count) && json_integer_value(count) > 0 && json_is_integer(sum))
		printf("  mean %.1f",
		       (double)json_integer_value(sum) / (double)json_integer_value(count));
	putchar('\n');
	if (!json_array_size(json_object_get(l, "buckets")))
		return;
	printf("\tbuckets");
	json_array_foreach(json_object_get(l, "buckets"), i, b)
	{
		json_t *le = json_array_get(b, 0);
		putchar(' ');
		if (json_is_null(le))
			fputs("inf", stdout);
		else
			pw_ctl_put(le, PW_CTL_VALUE_CAP);
		putchar(':');
		pw_ctl_put(json_array_get(b, 1), PW_CTL_VALUE_CAP);
	}
	putchar('\n');
}

/* by_identity: one line each */
static void per_name_plain(const char *key, json_t *o)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		printf("%s ", key); /* by_identity */
		pw_ctl_put_str(k, strlen(k), PW_CTL_VALUE_CAP);
		printf(": ");
		pw_ctl_put_fields(v, true);
		putchar('\n');
	}
}

static void stats_plain(json_t *r)
{
	const char *k;
	json_t *v;
	bool first = true;
	json_object_foreach(r, k, v)
	{
		if (json_is_object(v))
			continue;
		fputs(first ? "" : "  ", stdout);
		pw_ctl_put_str(k, strlen(k), PW_CTL_VALUE_CAP);
		putchar(' ');
		pw_ctl_put(v, PW_CTL_VALUE_CAP);
		first = false;
	}
	if (!first)
		putchar('\n');
	json_object_foreach(r, k, v)
	{
		if (!json_is_object(v))
			continue;
		if (strcmp(k, "by_identity") == 0) {
			per_name_plain(k, v);
		} else if (json_is_array(json_object_get(v, "buckets"))) {
			latency_plain(k, v);
		} else {
			pw_ctl_put_str(k, strlen(k), PW_CTL_VALUE_CAP);
			printf(": ");
			pw_ctl_put_fields(v, true);
			putchar('\n');
		}
	}
}

/* stats */
int pw_ctl_stats(int argc, char **argv)
{
	return pw_ctl_simple("stats", NULL, argc, argv, stats_plain);
}
