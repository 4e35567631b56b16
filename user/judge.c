/* Deciding the client's messages, inline or on an analysis thread. See include/pgward/judge.h. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pgward/audit.h"
#include "pgward/audit_session.h"
#include "pgward/judge.h"
#include "pgward/log.h"
#include "pgward/mask_session.h"
#include "pgward/metrics.h"
#include "pgward/sql_cache.h"
#include "pgward/sql_prepared.h"
#include "pgward/watch.h"

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

/* What the control plane shows of the session: its last text and when it came. */
static void note_text(struct pw_judge *jg, const struct pw_stmt *m, struct pw_worker *w)
{
	jg->judged++;
	jg->last_ms = pw_worker_now(w);
	size_t n = m->sql_len < PW_JUDGE_TEXT_MAX ? m->sql_len : PW_JUDGE_TEXT_MAX;
	if ((m->type != 'Q' && m->type != 'P') || !n) {
		jg->last_len = 0;
		return;
	}
	if (n > jg->last_cap) {
		size_t cap = n < 256 ? 256 : PW_JUDGE_TEXT_MAX;
		char *p = realloc(jg->last, cap);
		if (!p) {
			jg->last_len = 0;
			return;
		}
		jg->last = p;
		jg->last_cap = cap;
	}
	memcpy(jg->last, m->sql, n);
	jg->last_len = n;
}

static struct pw_judge_named *named_find(struct pw_judge *jg, const char *name)
{
	for (int i = 0; name && i < jg->n_named; i++)
		if (strcmp(jg->named[i].name, name) == 0)
			return &jg->named[i];
	return NULL;
}

static void named_drop(struct pw_judge *jg, const char *name)
{
	struct pw_judge_named *e = named_find(jg, name);
	if (!e)
		return;
	free(e->name);
	free(e->text);
	*e = jg->named[--jg->n_named];
}

/* A Parse allowed because a person approved it (approval: the request): its first Bind is
 * covered, later ones ask again. -1: no room (or memory): the Parse is refused rather than its
 * executions let through unasked. */
static int named_keep(struct pw_judge *jg, const struct pw_stmt *m,
                      const struct pw_inspect_facts *f, const char *approval)
{
	named_drop(jg, m->name);
	if (jg->n_named == PW_JUDGE_NAMED_MAX)
		return -1;
	struct pw_judge_named *e = &jg->named[jg->n_named];
	size_t n = m->sql_len < PW_APPROVAL_TEXT_MAX ? m->sql_len : PW_APPROVAL_TEXT_MAX;
	e->name = strdup(m->name);
	e->text = malloc(n + 1);
	if (!e->name || !e->text) {
		free(e->name);
		free(e->text);
		return -1;
	}
	memcpy(e->text, m->sql, n);
	e->text[n] = 0;
	e->len = n;
	e->facts = *f;
	e->credit = 1;
	snprintf(e->approval, sizeof(e->approval), "%s", approval);
	jg->n_named++;
	return 0;
}

void pw_judge_free(struct pw_judge *jg)
{
	while (jg->n_named)
		named_drop(jg, jg->named[0].name);
	free(jg->last);
	jg->last = NULL;
	jg->last_cap = jg->last_len = 0;
}

void pw_judge_decided(struct pw_judge *jg, const struct pw_approval_verdict *v)
{
	if (!jg->held || strcmp(jg->approval, v->id) != 0)
		return; /* not (or no longer) what the session waits for */
	jg->held = false;
	if (v->approved) {
		jg->approved_once = true;
		if (v->scope == PW_SCOPE_SESSION) {
			jg->approved_session = true;
			snprintf(jg->session_approval, sizeof(jg->session_approval), "%s", v->id);
		}
		return;
	}
	jg->ready = true;
	jg->by_person = true;
	jg->verdict = PW_DENY;
	jg->d = v->d;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A decision "approve": given already (a person's decision on this very message, this
 * session's scope, a grant of the identity for this statement's shape, the first execution of a
 * statement approved at its Parse) and judged again as approved; or held for a person (true:
 * the walk parks); or refused when approvals cannot be asked for (d says why). */
static bool approve_or_hold(struct pw_judge *jg, const struct pw_caller *who,
                            const struct pw_stmt *m, const char *text, size_t len,
                            bool approved_now, enum pw_verdict *v, struct pw_deny *d,
                            struct pw_inspect_plans *plans, struct pw_inspect_facts *facts)
{
	/* a Bind of a statement approved at its Parse: asks with its text */
	struct pw_judge_named *nm = m->type == 'B' ? named_find(jg, m->stmt) : NULL;
	const struct pw_inspect_facts asked = *facts; /* the decision "approve", as it asked */
	char by[PW_APPROVAL_ID_MAX] = "";
	if (approved_now)
		snprintf(by, sizeof(by), "%s", jg->approval);
	else if (jg->approved_session)
		snprintf(by, sizeof(by), "%s", jg->session_approval);
	else if (nm && nm->credit > 0) {
		nm->credit--; /* the execution its Parse's approval covers */
		snprintf(by, sizeof(by), "%s", nm->approval);
	} else if (text)
		pw_approval_granted(who->identity, text, len, &asked, by);
	if (by[0]) {
		struct pw_caller ok = *who;
		ok.approved = true;
		pw_inspect_plans_free(plans);
		*v = pw_inspect(&ok, m, d, who->mask ? plans : NULL, facts);
		if (m->type == 'B' && *v == PW_ALLOW) { /* a Bind is not judged again */
			*facts = asked;
			facts->d.action = PW_ACT_ALLOW;
			facts->d.approved = true;
		}
		snprintf(facts->approval, sizeof(facts->approval), "%s", by);
		if (*v == PW_ALLOW && m->type == 'P' && !jg->approved_session &&
		    named_keep(jg, m, &asked, by) < 0) {
			*v = PW_DENY;
			pw_deny_set(
			    d, "53400",
			    "pgward: more than %d prepared statements of this session wait for "
			    "approval at each execution: deallocate some",
			    PW_JUDGE_NAMED_MAX);
		}
		return false;
	}
	if (m->type == 'P' && jg->n_named == PW_JUDGE_NAMED_MAX && !named_find(jg, m->name)) {
		pw_deny_set(
		    d, "53400",
		    "pgward: more than %d prepared statements of this session wait for approval "
		    "at each execution: deallocate some",
		    PW_JUDGE_NAMED_MAX);
		return false;
	}
	struct pw_approval_ask a = {.session = who->serial,
	                            .worker = who->worker,
	                            .cfg = who->cfg,
	                            .id = who->identity,
	                            .user = who->user,
	                            .database = who->database,
	                            .client = who->client,
	                            .kf = who->kf,
	                            .type = m->type,
	                            .text = text,
	                            .len = len,
	                            .facts = facts};
	if (who->kf) {
		a.has_uid = true;
		a.uid = who->kf->info.uid;
	} else if (who->client && strcmp(who->client, "unix") == 0) {
		/* a local client over a unix socket: the kernel says who it is */
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		if (getsockopt(who->client_fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0) {
			a.has_uid = true;
			a.uid = cr.uid;
		}
	}
	if (pw_approval_request(&a, jg->approval, d) < 0)
		return false; /* refused with d */
	jg->held = true;
	jg->facts = *facts;
	pw_metric_add(PW_M_STMT_HELD, 1);
	pw_metric_identity(who->identity->name, PW_IM_HELD);
	pw_watch_statement(who, m, "held", NULL, facts, jg->approval);
	return true;
}

/* A Bind runs what was prepared before: judged again when a person's approval made it (a
 * Parse approved, whose credit the first execution takes; a PREPARE in an approved text,
 * judged as the EXECUTE it amounts to). The decision goes to *v, *d, *f, and the text an
 * approval request shows to *text. False: the walk goes on. */
static bool bind_asks(struct pw_judge *jg, const struct pw_caller *who, const struct pw_stmt *m,
                      const char **text, size_t *len, enum pw_verdict *v, struct pw_deny *d,
                      struct pw_inspect_facts *f)
{
	const struct pw_judge_named *nm = named_find(jg, m->stmt);
	if (nm) { /* asks as its text did */
		*f = nm->facts;
		*text = nm->text;
		*len = nm->len;
		*v = PW_DENY;
		*d = (struct pw_deny){.sqlstate = "42501"};
		snprintf(d->message, sizeof(d->message), "%s", f->d.message);
		return false;
	}
	const struct pw_sql_prepared *p = m->stmt && m->stmt[0] && who->ps
	                                      ? pw_sql_prepared_lookup(&who->ps->sql, m->stmt)
	                                      : NULL;
	if (!p || !pw_sql_prepared_approved(p))
		return false;
	/* the EXECUTE this Bind amounts to, the name quoted as an identifier */
	size_t o = (size_t)snprintf(jg->exec_text, sizeof(jg->exec_text), "EXECUTE \"");
	for (const char *c = m->stmt; *c && o + 4 < sizeof(jg->exec_text); c++) {
		if (*c == '"')
			jg->exec_text[o++] = '"';
		jg->exec_text[o++] = *c;
	}
	jg->exec_text[o++] = '"';
	jg->exec_text[o] = 0;
	struct pw_stmt q = {.type = 'Q', .sql = jg->exec_text, .sql_len = o};
	struct pw_caller plain = *who;
	plain.mask = NULL; /* nothing of it runs: masking follows the Bind itself */
	plain.audit = NULL;
	*v = pw_inspect(&plain, &q, d, NULL, f);
	*text = jg->exec_text;
	*len = o;
	return false;
}

/* Counted, watched, and its latency noted: one decided message. */
static void decided(struct pw_judge *jg, const struct pw_caller *who, const struct pw_stmt *m,
                    enum pw_verdict v, const struct pw_deny *d, const struct pw_inspect_facts *f,
                    bool masked)
{
	bool approved = v == PW_ALLOW && f && f->d.approved;
	enum pw_metric k = v == PW_DENY ? PW_M_STMT_DENIED
	                   : approved   ? PW_M_STMT_APPROVED
	                   : masked     ? PW_M_STMT_MASKED
	                                : PW_M_STMT_ALLOWED;
	pw_metric_add(k, 1);
	pw_metric_identity(who->identity->name, PW_IM_STATEMENTS);
	pw_metric_identity(who->identity->name, v == PW_DENY ? PW_IM_DENIED : PW_IM_ALLOWED);
	if (!jg->by_person && !approved && jg->t0_ns)
		pw_metric_latency((now_ns() - jg->t0_ns) / 1000);
	jg->t0_ns = 0;
	pw_watch_statement(who, m,
	                   v == PW_DENY ? "deny"
	                   : approved   ? "approved"
	                   : masked     ? "mask"
	                                : "allow",
	                   v == PW_DENY ? d : NULL, f, approved ? f->approval : NULL);
}

bool pw_judge_client(struct pw_judge *jg, struct pw_relay *r, struct pw_buf *b,
                     const struct pw_caller *who, struct pw_worker *w, void *owner,
                     const char *peer)
{
	if (pw_judge_parked(jg))
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
			pw_metric_add(PW_M_STMT_DENIED, 1);
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
		/* a person's approval is of this message: used by its judgement, whatever it is */
		bool approved_now = jg->approved_once;
		jg->approved_once = false;
		if (!jg->t0_ns)
			jg->t0_ns = now_ns();
		if (jg->ready) {
			/* judged by an analysis thread while the session was parked, or refused by
			 * a person (facts kept from when it was held) */
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
		} else if (!approved_now && m->type != 'B' && m->type != 'F' &&
		           m->sql_len >= PW_ANALYSIS_AWAY_BYTES &&
		           judge_away(jg, who, m, w, owner)) {
			return true;
		} else {
			v = pw_inspect(who, m, &d, who->mask ? &plans : NULL, &facts);
		}
		const char *text = m->sql;
		size_t text_len = m->sql_len;
		if (!jg->by_person && !unaudited && v == PW_ALLOW && m->type == 'B' &&
		    bind_asks(jg, who, m, &text, &text_len, &v, &d, &facts))
			return true; /* parked (cannot happen: judged inline) */
		if (v == PW_ALLOW && m->type == 'P' && !facts.d.approved)
			named_drop(jg,
			           m->name); /* the name stands for a text allowed as it is now */
		if (m->type == 'Q')
			named_drop(jg, ""); /* a simple Query drops the unnamed statement */
		if (!jg->by_person && !unaudited && v == PW_DENY &&
		    facts.d.action == PW_ACT_APPROVE &&
		    approve_or_hold(jg, who, m, text, text_len, approved_now, &v, &d, &plans,
		                    &facts)) {
			note_text(jg, m, w);
			return true; /* held: nothing more is read or judged until a decision */
		}
		if (who->mask && mask_follows(who->mask, m, v, &plans, &r->fail) < 0) {
			pw_inspect_plans_free(&plans);
			return false;
		}
		bool masked = plans.n > 0;
		pw_inspect_plans_free(&plans);
		if (v == PW_DENY)
			pw_info("session %llu %s: denied %c: %s %s",
			        (unsigned long long)who->serial, peer, m->type, d.sqlstate,
			        PW_Q(d.message));
		if (!jg->by_person || v != PW_DENY)
			note_text(jg, m, w);
		decided(jg, who, m, v, &d, unaudited ? NULL : &facts, masked);
		jg->by_person = false;
		if (pw_audit_on_statement(who->audit, m, v == PW_DENY, unaudited ? NULL : &d,
		                          &facts) < 0) {
			pw_inspect_plans_free(&plans);
			return audit_lost(r);
		}
		if (pw_relay_decide(r, b, v == PW_DENY, &d) == PW_RELAY_FAIL)
			return false;
	}
}
