/* Statement inspection: analyse, decide, remember. See include/pgward/inspect.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/inspect.h"
#include "pgward/log.h"

/* thread-local: each worker has its own counters and its own analysis result buffer (large:
 * kept for the thread's life so that the hot path allocates nothing) */
static __thread struct pw_inspect_stats stats;
static __thread struct pw_sql_result *result;

static enum pw_verdict deny(const struct pw_caller *c, const struct pw_decision *dec,
                            struct pw_deny *d)
{
	snprintf(d->sqlstate, sizeof(d->sqlstate), "%s",
	         dec->sqlstate[0] ? dec->sqlstate : "42501");
	snprintf(d->message, sizeof(d->message), "%s", dec->message);
	stats.denied++;
	(void)c;
	return PW_DENY;
}

enum pw_verdict pw_inspect(const struct pw_caller *c, const struct pw_stmt *m, struct pw_deny *d)
{
	struct pw_decision dec;
	char err[256];

	switch (m->type) {
	case 'Q':
		stats.queries++;
		break;
	case 'P':
		stats.parses++;
		break;
	case 'F':
		stats.calls++;
		pw_policy_function_call(c->identity, &dec);
		if (dec.action != PW_ACT_ALLOW)
			return deny(c, &dec, d);
		stats.allowed++;
		return PW_ALLOW;
	default:
		/* a Bind runs a statement judged at its Parse (or the server refuses it) */
		stats.binds++;
		stats.allowed++;
		return PW_ALLOW;
	}
	if (!result && !(result = malloc(sizeof(*result)))) {
		snprintf(d->sqlstate, sizeof(d->sqlstate), "53200");
		snprintf(d->message, sizeof(d->message), "pgward: out of memory");
		stats.denied++;
		return PW_DENY; /* cannot judge: refuse */
	}
	if (pw_policy_analyse(c->ps, m->sql, m->sql_len, result, err, sizeof(err)) < 0) {
		stats.unreadable++;
		if (c->identity->policy.allow_all) {
			stats.allowed++;
			return PW_ALLOW;
		}
		pw_policy_unreadable(c->identity, err, result->error_pos, &dec);
		return deny(c, &dec, d);
	}
	pw_policy_decide(c->cfg, c->identity, c->ps, result, time(NULL), &dec, NULL);
	if (dec.action != PW_ACT_ALLOW)
		return deny(c, &dec, d);
	if (pw_policy_session_apply(c->ps, result, m->type == 'P' ? m->name : NULL) < 0)
		pw_warn("session %llu: the prepared-statement store is full; EXECUTE of new names "
		        "will be refused",
		        (unsigned long long)c->serial);
	stats.allowed++;
	return PW_ALLOW;
}

void pw_inspect_thread_done(void)
{
	free(result);
	result = NULL;
	pw_sql_cache_clear();
}

const struct pw_inspect_stats *pw_inspect_stats_local(void)
{
	return &stats;
}
