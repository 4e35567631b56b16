/* Statement inspection: analyse, decide, remember. See include/pgward/inspect.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/inspect.h"
#include "pgward/mask.h"
#include "pgward/log.h"
#include "pgward/metrics.h"
#include "pgward/policy_session.h"

/* thread-local: each worker has its own counters and its own analysis result buffer (large:
 * kept for the thread's life so that the hot path allocates nothing) */
static __thread struct pw_inspect_stats stats;
static __thread struct pw_sql_result *result;

static enum pw_verdict deny(const struct pw_decision *dec, struct pw_deny *d)
{
	snprintf(d->sqlstate, sizeof(d->sqlstate), "%s",
	         dec->sqlstate[0] ? dec->sqlstate : "42501");
	snprintf(d->message, sizeof(d->message), "%s", dec->message);
	return PW_DENY;
}

/* DDL may have created, changed or dropped functions: the catalog is read again. */
static bool changes_catalog(const struct pw_sql_result *r)
{
	for (int i = 0; i < r->nstmts; i++) {
		const struct pw_sql_stmt *st = &r->stmts[i];
		if ((st->runs & ((1u << PW_SQL_DDL) | (1u << PW_SQL_DCL) | (1u << PW_SQL_DO) |
		                 (1u << PW_SQL_CALL))) &&
		    !(st->flags & PW_SQL_F_NOT_EXECUTED))
			return true;
	}
	return false;
}

/* Does r call a name the session's catalog snapshot does not know? */
static bool calls_unknown(const struct pw_policy_session *ps, const struct pw_sql_result *r)
{
	for (int k = 0; k < r->nfuncs; k++) {
		const struct pw_cat_func *f;
		if (pw_catalog_lookup(ps->cat, r->funcs[k].name, &f) == 0)
			return true;
	}
	return false;
}

void pw_inspect_plans_free(struct pw_inspect_plans *pl)
{
	for (int i = 0; pl && i < pl->n; i++)
		pw_mask_plan_unref(pl->p[i]);
	if (pl)
		pl->n = 0;
}

/* An allowed text of an identity with masks: its plans, or the refusal of what masking does
 * not allow (a predicate on a masked column, a copy of masked data...). */
static int plan_masks(const struct pw_caller *c, const char *sql, size_t len,
                      struct pw_judgement *j)
{
	struct pw_policy_session wide;
	struct pw_mask_scope sc = {.cfg = c->cfg, .id = c->identity, .ps = c->ps};
	if (c->ps && pw_policy_session_widened(c->ps, j->r, &wide))
		sc.ps = &wide; /* a SET search_path before the text's last statement */
	struct pw_inspect_plans local, *pl = j->plans ? j->plans : &local;
	struct pw_deny d;
	pl->n = 0;
	if (pw_mask_plan_text(&sc, sql, len, j->r, pl->p, &d) < 0) {
		memset(&j->d, 0, sizeof(j->d));
		j->d.action = PW_ACT_DENY;
		j->d.by = PW_BY_REFUSAL;
		snprintf(j->d.sqlstate, sizeof(j->d.sqlstate), "%s", d.sqlstate);
		snprintf(j->d.message, sizeof(j->d.message), "%s", d.message);
		snprintf(j->d.reason, sizeof(j->d.reason), "%.190s", d.message);
		return -1;
	}
	pl->n = j->r->nstmts;
	if (pl == &local)
		pw_inspect_plans_free(pl);
	return 0;
}

enum pw_verdict pw_inspect_text(const struct pw_caller *c, uint8_t type, const char *sql,
                                size_t len, const char *name, struct pw_judgement *j)
{
	struct pw_policy_session *ps = c->ps;
	char err[256];

	j->unreadable = false;
	if (!j->r) {
		if (!result && !(result = malloc(sizeof(*result)))) {
			memset(&j->d, 0, sizeof(j->d));
			j->d.action = PW_ACT_DENY;
			j->d.by = PW_BY_REFUSAL;
			snprintf(j->d.sqlstate, sizeof(j->d.sqlstate), "53200");
			snprintf(j->d.message, sizeof(j->d.message), "pgward: out of memory");
			return PW_DENY; /* cannot judge: refuse */
		}
		j->r = result;
	}
	/* a newer catalog snapshot (a reload after DDL or its time to live): judge with it */
	if (ps && ps->cat && pw_catalog_superseded(ps->cat)) {
		struct pw_catalog *n = pw_catalog_newest(ps->cat);
		pw_policy_session_catalog(ps, n);
		pw_catalog_release(n);
	}
	if (pw_policy_analyse(ps, sql, len, j->r, err, sizeof(err)) < 0) {
		j->unreadable = true;
		if (c->identity->policy.allow_all) {
			/* nothing depends on reading it: the server answers it */
			memset(&j->d, 0, sizeof(j->d));
			snprintf(j->d.reason, sizeof(j->d.reason), "allowed (not analysed: %.150s)",
			         err);
			return PW_ALLOW;
		}
		pw_policy_unreadable(c->identity, err, j->r->error_pos, &j->d);
		return PW_DENY;
	}
	pw_policy_decide(c->cfg, c->identity, ps, j->r, time(NULL), &j->d, j->per_stmt);
	if (j->d.action == PW_ACT_APPROVE && c->approved) {
		/* a person approved this text: deny still wins (pw_policy_decide puts a deny
		 * before an approve), masking and the session's records go on as for any allow */
		j->d.action = PW_ACT_ALLOW;
		j->d.approved = true;
		j->d.message[0] = j->d.sqlstate[0] = 0;
	}
	if (j->d.action != PW_ACT_ALLOW && ps && ps->cat && calls_unknown(ps, j->r))
		/* a function made since the snapshot (by a DBA, say): read the catalog again,
		 * so that the next attempt is judged by what the function is */
		pw_catalog_invalidate(ps->cat);
	if (j->d.action != PW_ACT_ALLOW)
		return PW_DENY;
	if (c->identity->policy.has_masks && plan_masks(c, sql, len, j) < 0)
		return PW_DENY;
	if (ps)
		ps->sql.approving = j->d.approved;
	int applied = ps ? pw_policy_session_apply(ps, j->r, type == 'P' ? name : NULL) : 0;
	if (ps)
		ps->sql.approving = false;
	if (applied < 0)
		pw_warn("session %llu: the prepared-statement store is full; EXECUTE of new names "
		        "will be refused",
		        (unsigned long long)c->serial);
	if (ps && ps->cat && changes_catalog(j->r))
		pw_catalog_invalidate(ps->cat);
	return PW_ALLOW;
}

/* The facts of a judgement, for the trail. */
static void facts_of(struct pw_inspect_facts *f, const struct pw_judgement *j)
{
	if (!f)
		return;
	f->d = j->d;
	f->approval[0] = 0;
	f->classes = 0;
	f->nstmts = j->r && !j->unreadable ? j->r->nstmts : 0;
	for (int i = 0; i < f->nstmts; i++)
		f->classes |= 1u << j->r->stmts[i].cls;
}

enum pw_verdict pw_inspect_judge(const struct pw_caller *c, const struct pw_stmt *m,
                                 struct pw_deny *d, bool *unreadable,
                                 struct pw_inspect_plans *plans, struct pw_inspect_facts *facts)
{
	struct pw_judgement j = {.plans = plans};

	*unreadable = false;
	switch (m->type) {
	case 'Q':
	case 'P':
		break;
	case 'F':
		if (c->identity->policy.has_masks) { /* a function by OID: nothing to trace */
			pw_deny_set(
			    d, "42501",
			    "pgward: identity %s may not use the FunctionCall message (masking)",
			    c->identity->name);
			return PW_DENY;
		}
		pw_policy_function_call(c->identity, &j.d);
		facts_of(facts, &j);
		return j.d.action != PW_ACT_ALLOW ? deny(&j.d, d) : PW_ALLOW;
	default:
		/* a Bind runs a statement judged at its Parse (or the server refuses it) */
		if (facts)
			memset(facts, 0, sizeof(*facts));
		return PW_ALLOW;
	}
	enum pw_verdict v = pw_inspect_text(c, m->type, m->sql, m->sql_len, m->name, &j);
	*unreadable = j.unreadable;
	facts_of(facts, &j);
	return v == PW_DENY ? deny(&j.d, d) : PW_ALLOW;
}

void pw_inspect_count(uint8_t type, enum pw_verdict v, bool unreadable)
{
	switch (type) {
	case 'Q':
		stats.queries++;
		break;
	case 'P':
		stats.parses++;
		break;
	case 'F':
		stats.calls++;
		break;
	default:
		stats.binds++;
		break;
	}
	stats.unreadable += unreadable;
	if (unreadable)
		pw_metric_add(PW_M_STMT_UNREADABLE, 1);
	if (v == PW_DENY)
		stats.denied++;
	else
		stats.allowed++;
}

enum pw_verdict pw_inspect(const struct pw_caller *c, const struct pw_stmt *m, struct pw_deny *d,
                           struct pw_inspect_plans *plans, struct pw_inspect_facts *facts)
{
	bool unreadable;
	enum pw_verdict v = pw_inspect_judge(c, m, d, &unreadable, plans, facts);
	pw_inspect_count(m->type, v, unreadable);
	return v;
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

int pw_deny_vset(struct pw_deny *d, const char *sqlstate, const char *fmt, va_list ap)
{
	snprintf(d->sqlstate, sizeof(d->sqlstate), "%s", sqlstate);
	vsnprintf(d->message, sizeof(d->message), fmt, ap);
	return -1;
}

int pw_deny_set(struct pw_deny *d, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pw_deny_vset(d, sqlstate, fmt, ap);
	va_end(ap);
	return -1;
}
