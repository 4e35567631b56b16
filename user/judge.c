/* Deciding the client's messages, inline or on an analysis thread. See include/pgward/judge.h. */
#include "pgward/audit.h"
#include "pgward/audit_session.h"
#include "pgward/judge.h"
#include "pgward/log.h"
#include "pgward/mask_session.h"

/* A text long enough to stall the loop while it is parsed: judged by an analysis thread with
 * the same function. False when there is no analysis thread (judge it here). */
static bool judge_away(struct pw_judge *jg, const struct pw_caller *who, const struct pw_stmt *m,
                       struct pw_worker *w, void *owner)
{
	struct pw_analysis_job *j = pw_analysis_job_new(w, owner, who, m);
	if (!j || !pw_analysis_submit(j))
		return false;
	jg->away = true;
	pw_worker_job_out(w);
	return true;
}

void pw_judge_back(struct pw_judge *jg, struct pw_analysis_job *j)
{
	jg->away = false;
	pw_inspect_count(j->m.type, j->v, j->unreadable);
	jg->ready = true;
	jg->verdict = j->v;
	jg->d = j->d;
	jg->plans = j->plans; /* taken */
	jg->facts = j->facts;
	j->plans.n = 0;
	pw_analysis_free(j);
}

/* Masking follows the message the verdict is on (before the relay passes it: its bytes stay
 * where they are until then). */
static int mask_follows(struct pw_mask_session *ms, const struct pw_stmt *m, enum pw_verdict v,
                        struct pw_inspect_plans *plans, struct pw_deny *fail)
{
	switch (m->type) {
	case 'Q':
	case 'F':
		return pw_mask_on_query(ms, v == PW_ALLOW ? plans : NULL, fail);
	case 'P':
		if (v == PW_ALLOW)
			return pw_mask_on_parse(ms, m->name, plans, fail);
		return 0;
	case 'B':
		if (v == PW_ALLOW)
			return pw_mask_on_bind(ms, m->body, m->len, fail);
		return 0;
	}
	return 0;
}

/* The trail cannot follow the session any more: it ends (nothing runs unaudited). */
static bool audit_lost(struct pw_relay *r)
{
	pw_deny_set(&r->fail, "54000",
	            "pgward: more than %d messages wait for the server's answers (or memory ran "
	            "out): the audit trail cannot follow this session",
	            PW_AUDIT_IN_FLIGHT);
	return false;
}

bool pw_judge_client(struct pw_judge *jg, struct pw_relay *r, struct pw_buf *b,
                     const struct pw_caller *who, struct pw_worker *w, void *owner,
                     const char *peer)
{
	if (jg->away)
		return true; /* parked until the verdict on the message at scan is back */
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_client(r, b);
		if (r->syncs_ignored != jg->syncs_ignored) {
			/* a COPY IN began: the Syncs pipelined after its Execute get no answer */
			pw_audit_on_syncs_ignored(who->audit, r->syncs_ignored - jg->syncs_ignored);
			jg->syncs_ignored = r->syncs_ignored;
		}
		if (o == PW_RELAY_REFUSED) {
			pw_info("session %llu %s: denied %c: %s %s",
			        (unsigned long long)who->serial, peer, r->stmt.type,
			        r->fail.sqlstate, PW_Q(r->fail.message));
			if (pw_audit_on_oversize(who->audit, r->stmt.type, &r->fail) < 0)
				return audit_lost(r);
			continue;
		}
		if (o == PW_RELAY_FAIL)
			return false;
		if (o == PW_RELAY_NOTE) {
			if (who->mask &&
			    pw_mask_on_client(who->mask, pw_buf_at_scan(b), r->total, &r->fail) < 0)
				return false;
			if (pw_audit_on_client(who->audit, pw_buf_at_scan(b), r->total) < 0)
				return audit_lost(r);
			continue;
		}
		if (o != PW_RELAY_JUDGE)
			return true; /* more bytes, refusals on their way, or a Terminate held */
		const struct pw_stmt *m = &r->stmt;
		struct pw_deny d;
		enum pw_verdict v;
		struct pw_inspect_plans plans = {.n = 0};
		struct pw_inspect_facts facts;
		bool unaudited = false;
		if (jg->ready) {
			/* judged by an analysis thread while the session was parked */
			jg->ready = false;
			v = jg->verdict;
			d = jg->d;
			plans = jg->plans;
			jg->plans.n = 0;
			facts = jg->facts;
		} else if (pw_audit_refusing(d.sqlstate, d.message, sizeof(d.message))) {
			/* the trail cannot be written: nothing runs unaudited */
			v = PW_DENY;
			unaudited = true;
			pw_audit_count_refusal();
		} else if (m->type != 'B' && m->type != 'F' &&
		           m->sql_len >= PW_ANALYSIS_AWAY_BYTES &&
		           judge_away(jg, who, m, w, owner)) {
			return true;
		} else {
			v = pw_inspect(who, m, &d, who->mask ? &plans : NULL, &facts);
		}
		if (who->mask && mask_follows(who->mask, m, v, &plans, &r->fail) < 0) {
			pw_inspect_plans_free(&plans);
			return false;
		}
		pw_inspect_plans_free(&plans);
		if (v == PW_DENY)
			pw_info("session %llu %s: denied %c: %s %s",
			        (unsigned long long)who->serial, peer, m->type, d.sqlstate,
			        PW_Q(d.message));
		if (pw_audit_on_statement(who->audit, m, v == PW_DENY, unaudited ? NULL : &d,
		                          &facts) < 0) {
			pw_inspect_plans_free(&plans);
			return audit_lost(r);
		}
		if (pw_relay_decide(r, b, v == PW_DENY, &d) == PW_RELAY_FAIL)
			return false;
	}
}
