/* Approvals: the registry of held statements, grants, timeouts and the notification command.
 * See include/pgward/approval.h and docs/approvals.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/approval.h"
#include "pgward/approval_db.h"
#include "pgward/audit.h"
#include "pgward/audit_events.h"
#include "pgward/control.h"
#include "pgward/log.h"
#include "pgward/loop.h"
#include "pgward/metrics.h"
#include "pgward/sql_cache.h"
#include "pgward/sql_key.h"
#include "pgward/sql_class.h"

#include "approval_int.h"

#define MAX_PENDING  1024
#define KEEP_DECIDED 256 /* decided requests kept for `approval list --all` and show */

/* A grant (approve --for): the identity, the statement's shape as the analyser's cache key
 * spells it (compared whole: a 64-bit hash alone could be made to collide), what asked for
 * approval (the same rule or guardrail must ask again), and the request that made it. */
struct grant {
	struct grant *next;
	char identity[PW_NAME_MAX];
	char *key;
	size_t key_len;
	enum pw_decided_by by;
	int rule;
	enum pw_guardrail guardrail;
	char id[PW_APPROVAL_ID_MAX];
	uint64_t until_ms; /* monotonic */
};

/* The shape of a text: its cache key (literals normalised), or the text itself. malloc'd. */
static char *shape_of(const char *text, size_t len, size_t *n)
{
	char *key = pw_sql_cache_keybuf(len + 2);
	size_t klen = key ? pw_sql_key(text, len, key) : 0;
	const char *src = klen ? key : text;
	*n = klen ? klen : len;
	char *out = malloc(*n + 1);
	if (out) {
		memcpy(out, src, *n);
		out[*n] = 0;
	}
	return out;
}

/* The registry: workers (requests, grants), the control thread (commands, tick) and the
 * notifier share it; requests are rare, so one mutex. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct req *reqs; /* newest first */
static struct grant *grants;
static uint64_t next_id;
static int n_pending, n_decided;
static struct pw_approval_counts counts;
static bool started;
static char boot_tag[16];                 /* this run, in request ids of a fleet */
static pw_approval_deliver_fn deliver_to; /* set at start, before any request */

const char *pw_approval_scope_name(enum pw_approval_scope s)
{
	static const char *const names[] = {"once", "fingerprint", "session"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

int pw_approval_scope_parse(const char *s, enum pw_approval_scope *out)
{
	for (int i = PW_SCOPE_ONCE; i <= PW_SCOPE_SESSION; i++)
		if (strcmp(s, pw_approval_scope_name((enum pw_approval_scope)i)) == 0) {
			*out = (enum pw_approval_scope)i;
			return 0;
		}
	return -1;
}

const char *pw_approval_state_name(enum pw_approval_state s)
{
	static const char *const names[] = {"pending", "approved", "denied", "timed_out",
	                                    "withdrawn"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* The trail's record of a request's step ("requested", "approved", ...). */
static void audit_req(const struct req *r, const char *event)
{
	struct pw_jw *w = pw_audit_begin("approval");
	if (!w)
		return;
	pw_jw_str(w, "event", event);
	pw_approval_write(w, r);
	pw_audit_end(w);
}

static void announce(const struct req *r, const struct pw_approvals_config *c)
{
	if (!c->n_notify)
		return;
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_obj(&w, NULL);
	pw_approval_write(&w, r);
	pw_jw_obj_end(&w);
	pw_jw_append(&w, "\n", 1);
	if (pw_jw_ok(&w))
		pw_approval_notify(r->id, w.p, w.len, c);
	pw_jw_free(&w);
}

/* ---- requests ---- */

static void req_free(struct req *r)
{
	free(r->kernel);
	free(r->text);
	free(r);
}

static struct req *find(const char *id)
{
	for (struct req *r = reqs; r; r = r->next)
		if (strcmp(r->id, id) == 0)
			return r;
	return NULL;
}

/* The request's row in the control database (queued: the worker never waits for it). */
static void share(struct req *r)
{
	struct pw_approval_row row = {.has_agent_uid = r->has_agent_uid,
	                              .agent_uid = r->agent_uid,
	                              .n_uids = r->n_uids,
	                              .n_gids = r->n_gids,
	                              .state = PW_AS_PENDING,
	                              .decided_uid = -1};
	struct pw_jw w;
	snprintf(row.id, sizeof(row.id), "%s", r->id);
	snprintf(row.node, sizeof(row.node), "%s", r->node);
	snprintf(row.identity, sizeof(row.identity), "%s", r->identity);
	memcpy(row.uids, r->uids, sizeof(row.uids));
	memcpy(row.gids, r->gids, sizeof(row.gids));
	pw_jw_init(&w, 0);
	pw_jw_obj(&w, NULL);
	pw_approval_write(&w, r);
	pw_jw_obj_end(&w);
	if (pw_jw_ok(&w)) {
		row.request = w.p;
		pw_approval_db_insert(&row);
		r->shared = true;
	}
	pw_jw_free(&w);
}

int pw_approval_request(const struct pw_approval_ask *a, char id_out[PW_APPROVAL_ID_MAX],
                        struct pw_deny *d)
{
	const struct pw_approvals_config *c = &a->cfg->approvals;
	if (!started || !pw_control_running())
		return pw_deny_set(
		    d, "42501",
		    "%s; nobody can approve it here (pgwardd has no \"control\" socket)",
		    a->facts->d.message);
	if (a->len > PW_APPROVAL_TEXT_MAX)
		/* an approver must see all of what would run */
		return pw_deny_set(
		    d, "42501",
		    "%s; a text of %zu bytes is too long to be shown for approval (at "
		    "most %d)",
		    a->facts->d.message, a->len, PW_APPROVAL_TEXT_MAX);
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	r->len = a->len;
	r->text = malloc(r->len + 1);
	r->kernel = pw_approval_kernel_json(a->kf);
	if (!r->text || !r->kernel) {
		req_free(r);
		return pw_deny_set(d, "53200", "pgward: out of memory");
	}
	memcpy(r->text, a->text, r->len);
	r->text[r->len] = 0;
	r->text_bytes = a->len;
	r->fingerprint = pw_sql_fingerprint(a->text, a->len);
	r->type = a->type;
	r->session = a->session;
	r->worker = a->worker;
	snprintf(r->node, sizeof(r->node), "%s", c->node);
	snprintf(r->identity, sizeof(r->identity), "%s", a->id->name);
	snprintf(r->user, sizeof(r->user), "%s", a->user ? a->user : "");
	snprintf(r->database, sizeof(r->database), "%s", a->database ? a->database : "");
	snprintf(r->client, sizeof(r->client), "%s", a->client ? a->client : "");
	r->has_agent_uid = a->has_uid;
	r->agent_uid = a->uid;
	r->classes = a->facts->classes;
	r->nstmts = a->facts->nstmts;
	r->d = a->facts->d;
	const struct pw_policy *p = &a->id->policy;
	r->n_uids = p->n_approver_uids;
	r->n_gids = p->n_approver_gids;
	memcpy(r->uids, p->approver_uids, sizeof(r->uids));
	memcpy(r->gids, p->approver_gids, sizeof(r->gids));
	r->timeout_s = p->approval_timeout_s ? p->approval_timeout_s : c->timeout_s;
	clock_gettime(CLOCK_REALTIME, &r->created);
	r->deadline_ms = pw_now_ms() + (uint64_t)r->timeout_s * 1000;
	r->decided_uid = -1;

	pthread_mutex_lock(&mu);
	if (n_pending >= MAX_PENDING) {
		pthread_mutex_unlock(&mu);
		req_free(r);
		return pw_deny_set(d, "53400",
		                   "%s; %d statements already wait for approval on this node",
		                   a->facts->d.message, MAX_PENDING);
	}
	if (pw_approval_db_on()) /* unique in the fleet: the node, this run, the number */
		snprintf(r->id, sizeof(r->id), "%.20s-%s-%llu", r->node, boot_tag,
		         (unsigned long long)++next_id);
	else
		snprintf(r->id, sizeof(r->id), "%llu", (unsigned long long)++next_id);
	r->next = reqs;
	reqs = r;
	n_pending++;
	counts.pending++;
	audit_req(r, "requested");
	announce(r, c);
	if (pw_approval_db_on())
		share(r);
	snprintf(id_out, PW_APPROVAL_ID_MAX, "%s", r->id);
	pthread_mutex_unlock(&mu);
	pw_info("session %llu: approval request %s: identity %s: %s: %s",
	        (unsigned long long)r->session, r->id, r->identity, r->d.reason, PW_Q(r->text));
	return 0;
}

/* ---- decisions ---- */

static void refusal_of(const struct req *r, enum pw_approval_state st, const char *by,
                       const char *reason, struct pw_deny *d);

struct delivery {
	uint64_t session;
	struct pw_approval_verdict v;
};

static void deliver(struct pw_worker *w, void *arg)
{
	struct delivery *dv = arg;
	if (w && !deliver_to(w, dv->session, &dv->v))
		pw_debug("approval request %s: session %llu is gone", dv->v.id,
		         (unsigned long long)dv->session);
	free(dv);
}

/* Decide r (under mu): state, who, the grant, the counts, the log and the trail; the verdict
 * goes to the holding worker unless the session itself gave the request up. */
static void settle(struct req *r, enum pw_approval_state st, const char *by, long long uid,
                   enum pw_approval_scope scope, int for_s, const char *reason, bool tell,
                   const struct pw_deny *refusal)
{
	r->state = st;
	clock_gettime(CLOCK_REALTIME, &r->decided_at);
	snprintf(r->decided_by, sizeof(r->decided_by), "%s", by);
	r->decided_uid = uid;
	r->scope = scope;
	r->for_s = for_s;
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
	n_pending--;
	n_decided++;
	counts.pending--;
	uint64_t *k = st == PW_AS_APPROVED    ? &counts.approved
	              : st == PW_AS_DENIED    ? &counts.denied
	              : st == PW_AS_TIMED_OUT ? &counts.timed_out
	                                      : &counts.withdrawn;
	(*k)++;
	if (st == PW_AS_APPROVED && scope == PW_SCOPE_FINGERPRINT) {
		struct grant *g = calloc(1, sizeof(*g));
		if (g && (g->key = shape_of(r->text, r->len, &g->key_len))) {
			snprintf(g->identity, sizeof(g->identity), "%s", r->identity);
			snprintf(g->id, sizeof(g->id), "%s", r->id);
			g->by = r->d.by;
			g->rule = r->d.rule;
			g->guardrail = r->d.guardrail;
			g->until_ms = pw_now_ms() + (uint64_t)for_s * 1000;
			g->next = grants;
			grants = g;
		} else {
			free(g); /* no grant: the next one asks again */
		}
	}
	audit_req(r, pw_approval_state_name(st));
	pw_info("approval request %s (session %llu, identity %s): %s by %s%s%s", r->id,
	        (unsigned long long)r->session, r->identity, pw_approval_state_name(st), PW_Q(by),
	        reason && reason[0] ? ": " : "", reason && reason[0] ? PW_Q(reason) : "");
	if (!tell)
		return;
	struct delivery *dv = calloc(1, sizeof(*dv));
	if (!dv)
		return; /* the session stays held until its client leaves: never allowed */
	dv->session = r->session;
	snprintf(dv->v.id, sizeof(dv->v.id), "%s", r->id);
	dv->v.approved = st == PW_AS_APPROVED;
	dv->v.scope = scope;
	if (refusal)
		dv->v.d = *refusal;
	if (pw_loop_post(r->worker, deliver, dv) < 0)
		free(dv);
}

void pw_approval_withdraw(const char *id, bool cancelled, const char *why)
{
	pthread_mutex_lock(&mu);
	struct req *r = find(id);
	if (r && r->state == PW_AS_PENDING) {
		struct pw_deny d;
		refusal_of(r, PW_AS_WITHDRAWN, "pgwardd", why, &d);
		settle(r, PW_AS_WITHDRAWN, "pgwardd", -1, PW_SCOPE_ONCE, 0, why, cancelled, &d);
		if (r->shared) /* the session is gone here: nobody else may decide it now */
			pw_approval_db_withdraw(r->id, why);
	}
	pthread_mutex_unlock(&mu);
}

bool pw_approval_cancel_session(uint64_t session)
{
	char id[PW_APPROVAL_ID_MAX] = "";
	pthread_mutex_lock(&mu);
	for (struct req *r = reqs; r; r = r->next)
		if (r->session == session && r->state == PW_AS_PENDING)
			snprintf(id, sizeof(id), "%s", r->id);
	pthread_mutex_unlock(&mu);
	if (id[0])
		pw_approval_withdraw(id, true, "the client sent a cancel request");
	return id[0] != 0;
}

bool pw_approval_granted(const struct pw_identity *id, const char *text, size_t len,
                         const struct pw_inspect_facts *asked, char by[PW_APPROVAL_ID_MAX])
{
	bool yes = false;
	uint64_t now = pw_now_ms();
	size_t n;
	by[0] = 0;
	pthread_mutex_lock(&mu);
	if (!grants) {
		pthread_mutex_unlock(&mu);
		return false;
	}
	pthread_mutex_unlock(&mu);
	char *shape = shape_of(text, len, &n);
	if (!shape)
		return false;
	pthread_mutex_lock(&mu);
	for (struct grant *g = grants; g && !yes; g = g->next) {
		yes = g->until_ms > now && strcmp(g->identity, id->name) == 0 &&
		      g->by == asked->d.by && g->rule == asked->d.rule &&
		      g->guardrail == asked->d.guardrail && g->key_len == n &&
		      memcmp(g->key, shape, n) == 0;
		if (yes)
			snprintf(by, PW_APPROVAL_ID_MAX, "%s", g->id);
	}
	pthread_mutex_unlock(&mu);
	free(shape);
	return yes;
}

/* Who may approve a request: its identity's approvers (if it names any), never the agent's own
 * uid. The local request's fields, or a row of the control database. */
struct approvers {
	const char *id, *identity;
	bool has_agent_uid;
	uid_t agent_uid;
	int n_uids, n_gids;
	const unsigned *uids, *gids;
};

static bool may_approve(const struct approvers *a, const struct pw_approval_decider *by, char *err,
                        size_t errlen)
{
	if (a->has_agent_uid && by->uid == a->agent_uid) {
		snprintf(
		    err, errlen,
		    "uid %u may not approve request %s: it comes from a process of the same uid",
		    (unsigned)by->uid, a->id);
		return false;
	}
	if (!a->n_uids && !a->n_gids)
		return true;
	for (int i = 0; i < a->n_uids; i++)
		if (a->uids[i] == by->uid)
			return true;
	for (int i = 0; i < a->n_gids; i++) {
		if (a->gids[i] == by->gid)
			return true;
		for (int k = 0; k < by->n_groups; k++)
			if (by->groups[k] == a->gids[i])
				return true;
	}
	snprintf(err, errlen, "%s (uid %u) is not an approver of identity %s", by->user,
	         (unsigned)by->uid, a->identity);
	return false;
}

static struct approvers approvers_of(const struct req *r)
{
	return (struct approvers){.id = r->id,
	                          .identity = r->identity,
	                          .has_agent_uid = r->has_agent_uid,
	                          .agent_uid = r->agent_uid,
	                          .n_uids = r->n_uids,
	                          .n_gids = r->n_gids,
	                          .uids = r->uids,
	                          .gids = r->gids};
}

/* The refusal a denied, timed-out or withdrawn request's client gets. */
static void refusal_of(const struct req *r, enum pw_approval_state st, const char *by,
                       const char *reason, struct pw_deny *d)
{
	bool why = reason && reason[0];
	if (st == PW_AS_TIMED_OUT)
		pw_deny_set(
		    d, "42501",
		    "pgward: approval request %s timed out after %d s without a decision: %s",
		    r->id, r->timeout_s, r->d.message);
	else if (st == PW_AS_WITHDRAWN)
		pw_deny_set(d, "57014",
		            "canceling statement due to user request (pgward: approval request %s "
		            "withdrawn)",
		            r->id);
	else
		pw_deny_set(d, "42501", "pgward: approval request %s was denied by %s%s%s%s: %s",
		            r->id, by, why ? " (" : "", why ? reason : "", why ? ")" : "",
		            r->d.message);
}

/* Decide local request r (under mu) as st, and tell its session. */
static void decide_local(struct req *r, enum pw_approval_state st, const char *by, long long uid,
                         enum pw_approval_scope scope, int for_s, const char *reason)
{
	struct pw_deny d;
	if (st != PW_AS_APPROVED)
		refusal_of(r, st, by, reason, &d);
	settle(r, st, by, uid, st == PW_AS_APPROVED ? scope : PW_SCOPE_ONCE,
	       st == PW_AS_APPROVED ? for_s : 0, reason, true, st == PW_AS_APPROVED ? NULL : &d);
}

void pw_approval_apply(const struct pw_approval_row *row)
{
	pthread_mutex_lock(&mu);
	struct req *r = find(row->id);
	if (r && r->state == PW_AS_PENDING && row->state != PW_AS_PENDING)
		decide_local(r, row->state, row->decided_by, row->decided_uid, row->scope,
		             row->for_s, row->reason);
	pthread_mutex_unlock(&mu);
}

/* A request of another node, decided here through the control database. */
static int decide_remote(const char *id, enum pw_approval_state st, enum pw_approval_scope scope,
                         int for_s, const char *reason, const struct pw_approval_decider *by,
                         struct pw_jw *w, char *err, size_t errlen)
{
	struct pw_approval_row row = {0};
	int rc = pw_approval_db_get(id, &row, err, errlen);
	if (rc == 2) {
		snprintf(err, errlen, "no approval request %s", id);
		return PW_CS_NOT_FOUND;
	}
	if (rc < 0)
		return PW_CS_UNAVAILABLE;
	struct approvers a = {.id = row.id,
	                      .identity = row.identity,
	                      .has_agent_uid = row.has_agent_uid,
	                      .agent_uid = row.agent_uid,
	                      .n_uids = row.n_uids,
	                      .n_gids = row.n_gids,
	                      .uids = row.uids,
	                      .gids = row.gids};
	if (row.state == PW_AS_PENDING && st == PW_AS_APPROVED &&
	    !may_approve(&a, by, err, errlen)) {
		pw_approval_row_free(&row);
		return PW_CS_PERMISSION;
	}
	pw_approval_row_free(&row);
	rc = pw_approval_db_decide(id, st, by->user, by->uid, scope, for_s, reason, &row, err,
	                           errlen);
	if (rc == 0 && row.request) {
		pw_jw_raw(w, "result", row.request, strlen(row.request));
		pw_info("approval request %s (node %s, identity %s): %s by %s", id, row.node,
		        row.identity, pw_approval_state_name(st), PW_Q(by->user));
	}
	int out = rc == 0   ? PW_CS_OK
	          : rc == 2 ? PW_CS_NOT_FOUND
	          : rc < 0  ? PW_CS_UNAVAILABLE
	                    : PW_CS_FAILED;
	if (rc == 1)
		snprintf(err, errlen, "approval request %s is %s already", id,
		         pw_approval_state_name(row.state));
	else if (rc == 2)
		snprintf(err, errlen, "no approval request %s", id);
	pw_approval_row_free(&row);
	return out;
}

int pw_approval_decide(const char *id, bool approve, enum pw_approval_scope scope, int for_s,
                       const char *reason, const struct pw_approval_decider *by, struct pw_jw *w,
                       char *err, size_t errlen)
{
	enum pw_approval_state st = approve ? PW_AS_APPROVED : PW_AS_DENIED;
	pthread_mutex_lock(&mu);
	struct req *r = find(id);
	if (!r) {
		pthread_mutex_unlock(&mu);
		if (pw_approval_db_on())
			return decide_remote(id, st, scope, for_s, reason, by, w, err, errlen);
		snprintf(err, errlen, "no approval request %s", id);
		return PW_CS_NOT_FOUND;
	}
	if (r->state != PW_AS_PENDING) {
		snprintf(err, errlen, "approval request %s is %s already", id,
		         pw_approval_state_name(r->state));
		pthread_mutex_unlock(&mu);
		return PW_CS_FAILED;
	}
	struct approvers a = approvers_of(r);
	if (approve && !may_approve(&a, by, err, errlen)) {
		pthread_mutex_unlock(&mu);
		return PW_CS_PERMISSION;
	}
	if (r->shared) {
		/* the database decides: another node may have decided it a moment ago */
		pthread_mutex_unlock(&mu);
		struct pw_approval_row row = {0};
		char dberr[256];
		int rc = pw_approval_db_decide(id, st, by->user, by->uid, scope, for_s, reason,
		                               &row, dberr, sizeof(dberr));
		pthread_mutex_lock(&mu);
		r = find(id);
		if (rc == 1 && r && r->state == PW_AS_PENDING) {
			decide_local(r, row.state, row.decided_by, row.decided_uid, row.scope,
			             row.for_s, row.reason);
			snprintf(err, errlen, "approval request %s is %s already", id,
			         pw_approval_state_name(row.state));
			pw_approval_row_free(&row);
			pthread_mutex_unlock(&mu);
			return PW_CS_FAILED;
		}
		if (rc < 0) {
			pw_warn("approval request %s: the control database: %s: decided here, the "
			        "row follows once it is back",
			        id, dberr);
			pw_approval_db_settle(id, st, by->user, by->uid, scope, for_s, reason);
		}
		pw_approval_row_free(&row);
		if (rc == 0 && r && r->state == st) {
			/* the listener applied our own decision a moment ago: it is ours */
			pw_jw_obj(w, "result");
			pw_approval_write(w, r);
			pw_jw_obj_end(w);
			pthread_mutex_unlock(&mu);
			return PW_CS_OK;
		}
		if (!r || r->state != PW_AS_PENDING) {
			snprintf(err, errlen, "approval request %s is %s already", id,
			         r ? pw_approval_state_name(r->state) : "gone");
			pthread_mutex_unlock(&mu);
			return PW_CS_FAILED;
		}
	}
	decide_local(r, st, by->user, by->uid, scope, for_s, reason);
	pw_jw_obj(w, "result");
	pw_approval_write(w, r);
	pw_jw_obj_end(w);
	pthread_mutex_unlock(&mu);
	return PW_CS_OK;
}

void pw_approval_list(struct pw_jw *w, bool all)
{
	pthread_mutex_lock(&mu);
	pw_jw_arr(w, "result");
	/* oldest first, as they came */
	int n = 0;
	for (struct req *r = reqs; r; r = r->next)
		n++;
	for (int i = n - 1; i >= 0; i--) {
		struct req *r = reqs;
		for (int k = 0; k < i; k++)
			r = r->next;
		if (!all && r->state != PW_AS_PENDING)
			continue;
		pw_jw_obj(w, NULL);
		pw_approval_write(w, r);
		pw_jw_obj_end(w);
	}
	pthread_mutex_unlock(&mu);
	char err[256];
	if (pw_approval_db_on() && pw_approval_db_list(w, all, err, sizeof(err)) < 0)
		pw_warn("approval list: the control database: %s: this node's requests only", err);
	pw_jw_arr_end(w);
}

bool pw_approval_show(const char *id, struct pw_jw *w)
{
	pthread_mutex_lock(&mu);
	struct req *r = find(id);
	if (r) {
		pw_jw_obj(w, "result");
		pw_approval_write(w, r);
		pw_jw_obj_end(w);
	}
	pthread_mutex_unlock(&mu);
	if (r || !pw_approval_db_on())
		return r != NULL;
	struct pw_approval_row row = {0};
	char err[256];
	bool found = pw_approval_db_get(id, &row, err, sizeof(err)) == 0 && row.request;
	if (found)
		pw_jw_raw(w, "result", row.request, strlen(row.request));
	pw_approval_row_free(&row);
	return found;
}

/* A shared request's time is up: the database decides (another node may just have approved
 * it); unreachable, it times out here. */
static void time_out_shared(const char *id)
{
	struct pw_approval_row row = {0};
	char err[256];
	int rc = pw_approval_db_decide(id, PW_AS_TIMED_OUT, "pgwardd", -1, PW_SCOPE_ONCE, 0,
	                               "nobody decided in time", &row, err, sizeof(err));
	pthread_mutex_lock(&mu);
	struct req *r = find(id);
	if (r && r->state == PW_AS_PENDING) {
		if (rc == 1)
			decide_local(r, row.state, row.decided_by, row.decided_uid, row.scope,
			             row.for_s, row.reason);
		else
			decide_local(r, PW_AS_TIMED_OUT, "pgwardd", -1, PW_SCOPE_ONCE, 0,
			             "nobody decided in time");
	}
	pthread_mutex_unlock(&mu);
	pw_approval_row_free(&row);
}

void pw_approval_tick(void)
{
	uint64_t now = pw_now_ms();
	char shared[16][PW_APPROVAL_ID_MAX];
	int n_shared = 0;
	pthread_mutex_lock(&mu);
	for (struct req *r = reqs; r; r = r->next) {
		if (r->state != PW_AS_PENDING || now < r->deadline_ms)
			continue;
		if (r->shared && n_shared < 16) {
			snprintf(shared[n_shared++], PW_APPROVAL_ID_MAX, "%s", r->id);
			continue;
		}
		decide_local(r, PW_AS_TIMED_OUT, "pgwardd", -1, PW_SCOPE_ONCE, 0,
		             "nobody decided in time");
	}
	for (struct grant **gp = &grants; *gp;) {
		struct grant *g = *gp;
		if (g->until_ms <= now) {
			*gp = g->next;
			free(g->key);
			free(g);
		} else {
			gp = &g->next;
		}
	}
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < n_shared; i++) /* the database's round trips, outside the lock */
		time_out_shared(shared[i]);
	pthread_mutex_lock(&mu);
	/* decided requests are kept for a while for `approval show`, the oldest go first */
	if (n_decided > KEEP_DECIDED) {
		int seen = 0;
		for (struct req **rp = &reqs; *rp;) {
			struct req *r = *rp;
			if (r->state != PW_AS_PENDING && ++seen > KEEP_DECIDED) {
				*rp = r->next;
				req_free(r);
				n_decided--;
			} else {
				rp = &r->next;
			}
		}
	}
	pthread_mutex_unlock(&mu);
}

void pw_approval_counts(struct pw_approval_counts *c)
{
	pthread_mutex_lock(&mu);
	*c = counts;
	pthread_mutex_unlock(&mu);
}

/* Is request id still waiting (the notifier skips the others)? */
static bool is_pending(const char *id)
{
	pthread_mutex_lock(&mu);
	struct req *r = find(id);
	bool yes = r && r->state == PW_AS_PENDING;
	pthread_mutex_unlock(&mu);
	return yes;
}

int pw_approval_start(const struct pw_config *cfg, pw_approval_deliver_fn deliver, char *err,
                      size_t errlen)
{
	(void)cfg;
	deliver_to = deliver;
	/* base 36 of the start time: ids of this run differ from a restarted node's */
	unsigned long long t = (unsigned long long)time(NULL);
	char tmp[16];
	int n = 0;
	do
		tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36];
	while ((t /= 36) && n < 15);
	for (int i = 0; i < n; i++)
		boot_tag[i] = tmp[n - 1 - i];
	boot_tag[n] = 0;
	if (pw_approval_notify_start(is_pending, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&mu);
	started = true;
	pthread_mutex_unlock(&mu);
	return 0;
}

void pw_approval_config(const struct pw_config *cfg)
{
	(void)cfg; /* requests take what they need from their session's configuration */
}

void pw_approval_stop(void)
{
	pthread_mutex_lock(&mu);
	started = false;
	for (struct req *r = reqs; r; r = r->next) {
		if (r->state != PW_AS_PENDING)
			continue;
		struct pw_deny d;
		pw_deny_set(&d, "57P01",
		            "terminating connection due to administrator command "
		            "(pgward is stopping: approval request %s is withdrawn)",
		            r->id);
		settle(r, PW_AS_WITHDRAWN, "pgwardd", -1, PW_SCOPE_ONCE, 0, "pgwardd is stopping",
		       true, &d);
		if (r->shared)
			pw_approval_db_withdraw(r->id, "pgwardd is stopping");
	}
	pthread_mutex_unlock(&mu);
	pw_approval_notify_stop();
	pthread_mutex_lock(&mu);
	while (reqs) {
		struct req *r = reqs;
		reqs = r->next;
		req_free(r);
	}
	while (grants) {
		struct grant *g = grants;
		grants = g->next;
		free(g->key);
		free(g);
	}
	n_pending = n_decided = 0;
	pthread_mutex_unlock(&mu);
}
