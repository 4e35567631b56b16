/* Statement inspection hook: allows everything and counts. See include/pgward/inspect.h. */
#include "pgward/inspect.h"

/* thread-local: each worker has its own counters, nothing is shared on the data path */
static __thread struct pw_inspect_stats stats;

enum pw_verdict pw_inspect(const struct pw_caller *c, const struct pw_stmt *m, struct pw_deny *d)
{
	(void)c;
	(void)d;
	switch (m->type) {
	case 'Q':
		stats.queries++;
		break;
	case 'P':
		stats.parses++;
		break;
	default:
		stats.binds++;
		break;
	}
	stats.allowed++;
	return PW_ALLOW;
}

const struct pw_inspect_stats *pw_inspect_stats_local(void)
{
	return &stats;
}
