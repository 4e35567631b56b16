/* The control plane's side of sessions, on the session's own worker (reached by a message,
 * pw_loop_post): what session show says of each, session kill, and an approval's decision
 * for a held statement. See include/pgward/session.h. */
#include <stdio.h>
#include <string.h>

#include "pgward/audit_events.h"
#include "pgward/judge.h"
#include "pgward/jw.h"
#include "pgward/log.h"
#include "pgward/session.h"

#include "session_int.h"

static const char *state_name(const struct pw_session *s)
{
	if (s->state == ST_OPENING)
		return "opening";
	if (s->state != ST_READY || s->closed)
		return "closing";
	if (s->judge.held)
		return "held";
	if (pw_relay_busy(&s->relay))
		return "active";
	switch (pw_relay_tx_status(&s->relay)) {
	case 'T':
		return "in transaction";
	case 'E':
		return "in failed transaction";
	}
	return "idle";
}

static void show_one(const struct pw_session *s, struct pw_jw *w, uint64_t now_ms)
{
	const struct pw_opening *op = &s->op;
	const struct pw_identity *id = s->state == ST_OPENING ? NULL : op->client.id;
	char when[40];
	pw_jw_obj(w, NULL);
	pw_jw_uint(w, "id", s->serial);
	pw_jw_int(w, "worker", pw_worker_index(s->w));
	pw_jw_str(w, "identity", id ? id->name : NULL);
	if (id)
		pw_audit_matched(w, "matched", id);
	else
		pw_jw_null(w, "matched");
	pw_jw_str(w, "auth", id ? pw_client_auth_name(id->auth) : NULL);
	pw_jw_str(w, "user", id ? op->client.user : NULL);
	pw_jw_str(w, "database", id ? op->client.database : NULL);
	pw_jw_str(w, "application_name",
	          id ? pw_startup_get(&op->client.st, "application_name") : NULL);
	pw_jw_str(w, "client", s->peer);
	pw_jw_bool(w, "steered", op->steered);
	if (id && op->ups)
		pw_audit_upstream(w, op->ups);
	else
		pw_jw_null(w, "upstream");
	pw_jw_str(w, "role", op->role[0] ? op->role : NULL);
	pw_audit_kernel(w, "kernel", op->kf);
	pw_jw_str(w, "state", state_name(s));
	if (s->judge.judged && s->judge.last_len) {
		pw_jw_obj(w, "statement");
		pw_jw_strn(w, "text", s->judge.last, s->judge.last_len);
		pw_jw_uint(w, "age_ms", now_ms - s->judge.last_ms);
		pw_jw_obj_end(w);
	} else {
		pw_jw_null(w, "statement");
	}
	pw_jw_str(w, "approval", s->judge.held ? s->judge.approval : NULL);
	pw_jw_time(when, sizeof(when), s->started.tv_sec, s->started.tv_nsec);
	pw_jw_str(w, "started", when);
	pw_jw_uint(w, "statements", s->judge.judged);
	pw_jw_uint(w, "bytes_in", s->cl.bytes_in);
	pw_jw_uint(w, "bytes_out", s->cl.bytes_out);
	pw_jw_obj_end(w);
}

static struct pw_session *find(struct pw_worker *w, uint64_t id)
{
	for (struct pw_session *s = set_of(w)->live; s; s = s->next)
		if (s->serial == id && !s->closed)
			return s;
	return NULL;
}

int pw_session_show(struct pw_worker *w, const struct pw_session_filter *f, struct pw_jw *out)
{
	int n = 0;
	for (struct pw_session *s = set_of(w)->live; s; s = s->next) {
		if (s->closed || s->state == ST_CANCEL)
			continue; /* a CancelRequest's connection is no session of an agent */
		if (f->id && s->serial != f->id)
			continue;
		if (f->identity && (s->state == ST_OPENING || !s->op.client.id ||
		                    strcmp(s->op.client.id->name, f->identity) != 0))
			continue;
		show_one(s, out, pw_worker_now(w));
		n++;
	}
	return n;
}

bool pw_session_kill(struct pw_worker *w, uint64_t id, const char *why)
{
	struct pw_session *s = find(w, id);
	if (!s || s->state == ST_CANCEL)
		return false;
	pw_info("session %llu %s: %s", (unsigned long long)s->serial, s->peer, why);
	pw_session_end_now(s, why);
	return true;
}

bool pw_session_approval(struct pw_worker *w, uint64_t id, const struct pw_approval_verdict *v)
{
	struct pw_session *s = find(w, id);
	if (!s || !s->judge.held)
		return false;
	pw_judge_decided(&s->judge, v);
	pw_session_run(s);
	return true;
}

void pw_session_count_identities(struct pw_worker *w, const struct pw_config *cfg, int *counts)
{
	if (!counts)
		return;
	for (struct pw_session *s = set_of(w)->live; s; s = s->next) {
		if (s->closed || s->state != ST_READY || !s->op.client.id)
			continue;
		for (int i = 0; i < cfg->n_identities; i++)
			if (strcmp(cfg->identities[i].name, s->op.client.id->name) == 0) {
				counts[i]++;
				break;
			}
	}
}
