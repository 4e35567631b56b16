/* The control socket's commands (docs/control.md): one table, one handler each. Handlers run
 * on the control thread; what lives on a worker (its sessions) is asked for by a message to
 * each worker (pw_loop_post) and gathered here, never read from another thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/approval.h"
#include "pgward/audit.h"
#include "pgward/control.h"
#include "pgward/loader.h"
#include "pgward/loader_show.h"
#include "pgward/log.h"
#include "pgward/loop.h"
#include "pgward/metrics.h"
#include "pgward/netns_listen.h"
#include "pgward/reload.h"
#include "pgward/session.h"

#define WORKER_WAIT_MS 2000

/* ---- asking every worker ---- */

/* One question to every worker. Shared by the control thread and the workers that answer:
 * its fields are touched under mu; it goes when the last of them lets go (refs). */
struct gather {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, pending;
	struct pw_jw out; /* the workers' answers, elements of one array */
	struct pw_session_filter f;
	char filter_identity[PW_NAME_MAX];
	char why[256]; /* kill: the FATAL's reason */
	int found;
	const struct pw_config *cfg; /* identity counts: whose identities */
	int *counts;
	void (*ask)(struct gather *g, struct pw_worker *w); /* on the worker, under mu */
};

static void gather_put(struct gather *g)
{
	pthread_mutex_lock(&g->mu);
	bool last = --g->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (!last)
		return;
	pw_jw_free(&g->out);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

static void gather_answer(struct pw_worker *w, void *arg)
{
	struct gather *g = arg;
	pthread_mutex_lock(&g->mu);
	if (w)
		g->ask(g, w);
	g->pending--;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	gather_put(g);
}

/* Ask every worker; false when one did not answer in time (what came is in g->out). */
static bool gather_run(struct gather *g)
{
	int n = pw_loop_workers();
	pthread_mutex_lock(&g->mu);
	for (int i = 0; i < n; i++) {
		g->refs++;
		g->pending++;
		if (pw_loop_post(i, gather_answer, g) < 0) {
			g->refs--;
			g->pending--;
		}
	}
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WORKER_WAIT_MS / 1000;
	while (g->pending > 0)
		if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) != 0)
			break;
	bool all = g->pending == 0;
	pthread_mutex_unlock(&g->mu);
	return all;
}

static struct gather *gather_new(void (*ask)(struct gather *, struct pw_worker *))
{
	struct gather *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->refs = 1;
	g->ask = ask;
	pw_jw_init(&g->out, 4096);
	return g;
}

/* ---- sessions ---- */

static void ask_show(struct gather *g, struct pw_worker *w)
{
	g->found += pw_session_show(w, &g->f, &g->out);
}

static void ask_kill(struct gather *g, struct pw_worker *w)
{
	g->found += pw_session_kill(w, g->f.id, g->why);
}

static void ask_count(struct gather *g, struct pw_worker *w)
{
	pw_session_count_identities(w, g->cfg, g->counts);
}

int pw_control_identity_sessions(const struct pw_config *cfg, int *counts)
{
	struct gather *g = gather_new(ask_count);
	if (!g)
		return -1;
	g->cfg = cfg;
	g->counts = counts;
	bool all = gather_run(g);
	pthread_mutex_lock(&g->mu);
	g->counts = NULL; /* a late worker counts nothing more into the caller's array */
	pthread_mutex_unlock(&g->mu);
	gather_put(g);
	return all ? 0 : -1;
}

static enum pw_control_status session_show(const struct pw_control_req *rq, struct pw_jw *w,
                                           struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	long long id = 0;
	bool has_id;
	const char *ident;
	if (pw_control_arg_int(rq, "id", 1, INT64_MAX, &id, &has_id, err, errlen) < 0 ||
	    pw_control_arg_str(rq, "identity", &ident, err, errlen) < 0)
		return PW_CS_USAGE;
	struct gather *g = gather_new(ask_show);
	if (!g)
		return snprintf(err, errlen, "out of memory"), PW_CS_FAILED;
	g->f.id = (uint64_t)id;
	if (ident) {
		snprintf(g->filter_identity, sizeof(g->filter_identity), "%s", ident);
		g->f.identity = g->filter_identity;
	}
	pw_jw_arr(&g->out, NULL);
	bool all = gather_run(g);
	pthread_mutex_lock(&g->mu);
	pw_jw_arr_end(&g->out);
	enum pw_control_status st = PW_CS_OK;
	if (!all) {
		snprintf(err, errlen, "a worker did not answer within %d ms", WORKER_WAIT_MS);
		st = PW_CS_BUSY;
	} else if (has_id && !g->found) {
		snprintf(err, errlen, "no session %lld", id);
		st = PW_CS_NOT_FOUND;
	} else {
		pw_jw_raw(w, "result", g->out.p, g->out.len);
	}
	pthread_mutex_unlock(&g->mu);
	gather_put(g);
	return st;
}

static enum pw_control_status session_kill(const struct pw_control_req *rq, struct pw_jw *w,
                                           struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	long long id = 0;
	bool has_id;
	if (pw_control_arg_int(rq, "id", 1, INT64_MAX, &id, &has_id, err, errlen) < 0)
		return PW_CS_USAGE;
	if (!has_id)
		return snprintf(err, errlen, "session kill needs \"id\""), PW_CS_USAGE;
	struct gather *g = gather_new(ask_kill);
	if (!g)
		return snprintf(err, errlen, "out of memory"), PW_CS_FAILED;
	g->f.id = (uint64_t)id;
	snprintf(g->why, sizeof(g->why),
	         "terminating connection due to administrator command (pgward: session %lld "
	         "killed by %s, uid %u)",
	         id, rq->peer->user, (unsigned)rq->peer->uid);
	bool all = gather_run(g);
	pthread_mutex_lock(&g->mu);
	int found = g->found;
	pthread_mutex_unlock(&g->mu);
	gather_put(g);
	if (!found) {
		snprintf(err, errlen, all ? "no session %lld" : "no session %lld answered in time",
		         id);
		return all ? PW_CS_NOT_FOUND : PW_CS_BUSY;
	}
	pw_info("control: session %lld killed by %s (uid %u)", id, PW_Q(rq->peer->user),
	        (unsigned)rq->peer->uid);
	pw_jw_obj(w, "result");
	pw_jw_int(w, "id", id);
	pw_jw_bool(w, "killed", true);
	pw_jw_obj_end(w);
	return PW_CS_OK;
}

static enum pw_control_status session_watch(const struct pw_control_req *rq, struct pw_jw *w,
                                            struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)w;
	long long id = 0;
	bool has_id;
	if (pw_control_arg_int(rq, "id", 1, INT64_MAX, &id, &has_id, err, errlen) < 0)
		return PW_CS_USAGE;
	sub->topic = PW_TOPIC_STATEMENTS;
	sub->session = (uint64_t)id;
	return PW_CS_STREAM;
}

/* ---- counters ---- */

void pw_control_gather_metrics(struct pw_metrics_snapshot *s)
{
	pw_metrics_collect(s);
	s->workers = pw_loop_workers();
	if (pw_loader_running()) {
		uint64_t c[PW_CNT_MAX];
		pw_loader_counters(c);
		s->bpf = true;
		for (int i = 0; i < PW_CNT_MAX && i < 16; i++)
			s->bpf_counters[i] = c[i];
	}
	struct pw_approval_counts ac;
	pw_approval_counts(&ac);
	s->approvals_pending = ac.pending;
	s->approvals_approved = ac.approved;
	s->approvals_denied = ac.denied;
	s->approvals_timed_out = ac.timed_out;
	s->approvals_withdrawn = ac.withdrawn;
	if (pw_audit_on()) {
		struct pw_audit_stats as;
		pw_audit_stats(&as);
		s->audit = true;
		s->audit_records = as.written;
		s->audit_lost = as.dropped;
		s->audit_refusing = as.failing;
	}
}

static enum pw_control_status stats(const struct pw_control_req *rq, struct pw_jw *w,
                                    struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)rq, (void)sub;
	struct pw_metrics_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return snprintf(err, errlen, "out of memory"), PW_CS_FAILED;
	pw_control_gather_metrics(s);
	pw_metrics_json(s, w);
	free(s);
	return PW_CS_OK;
}

/* ---- the kernel side ---- */

static enum pw_control_status loader_status(int rc, char *err, size_t errlen)
{
	if (rc == 0)
		return PW_CS_OK;
	if (!pw_loader_running())
		return PW_CS_UNAVAILABLE;
	(void)errlen;
	(void)err;
	return rc == -2 ? PW_CS_NOT_FOUND : PW_CS_FAILED;
}

static enum pw_control_status prog_show(const struct pw_control_req *rq, struct pw_jw *w,
                                        struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)rq, (void)sub;
	return loader_status(pw_loader_show_progs(w, err, errlen), err, errlen);
}

static enum pw_control_status map_show(const struct pw_control_req *rq, struct pw_jw *w,
                                       struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)rq, (void)sub;
	return loader_status(pw_loader_show_maps(w, err, errlen), err, errlen);
}

static enum pw_control_status map_dump(const struct pw_control_req *rq, struct pw_jw *w,
                                       struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	const char *name;
	if (pw_control_arg_str(rq, "name", &name, err, errlen) < 0)
		return PW_CS_USAGE;
	if (!name)
		return snprintf(err, errlen, "map dump needs \"name\""), PW_CS_USAGE;
	return loader_status(pw_loader_dump_map(name, w, err, errlen), err, errlen);
}

static enum pw_control_status cgroup_show(const struct pw_control_req *rq, struct pw_jw *w,
                                          struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)rq, (void)sub;
	return loader_status(pw_loader_show_cgroups(w, err, errlen), err, errlen);
}

static enum pw_control_status cgroup_change(const struct pw_control_req *rq, struct pw_jw *w,
                                            char *err, size_t errlen, bool add)
{
	const char *path;
	if (pw_control_arg_str(rq, "path", &path, err, errlen) < 0)
		return PW_CS_USAGE;
	if (!path)
		return snprintf(err, errlen, "cgroup %s needs \"path\"", add ? "add" : "del"),
		       PW_CS_USAGE;
	int rc =
	    add ? pw_loader_cgroup_add(path, err, errlen) : pw_loader_cgroup_del(path, err, errlen);
	if (rc < 0)
		return loader_status(rc, err, errlen);
	pw_info("control: cgroup %s %s by %s (uid %u)", add ? "added" : "removed", PW_Q(path),
	        PW_Q(rq->peer->user), (unsigned)rq->peer->uid);
	pw_netns_listen_kick(); /* the new cgroup's namespaces get their listeners now */
	return loader_status(pw_loader_show_cgroups(w, err, errlen), err, errlen);
}

static enum pw_control_status cgroup_add(const struct pw_control_req *rq, struct pw_jw *w,
                                         struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	return cgroup_change(rq, w, err, errlen, true);
}

static enum pw_control_status cgroup_del(const struct pw_control_req *rq, struct pw_jw *w,
                                         struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	return cgroup_change(rq, w, err, errlen, false);
}

static enum pw_control_status event_pipe(const struct pw_control_req *rq, struct pw_jw *w,
                                         struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)rq, (void)w;
	if (!pw_loader_running())
		return snprintf(err, errlen,
		                "no eBPF programs are loaded (no \"redirect\" section)"),
		       PW_CS_UNAVAILABLE;
	sub->topic = PW_TOPIC_EVENTS;
	return PW_CS_STREAM;
}

/* ---- configuration ---- */

static void add_warning(void *arg, const char *msg)
{
	pw_jw_str(arg, NULL, msg);
}

static enum pw_control_status policy_reload(const struct pw_control_req *rq, struct pw_jw *w,
                                            struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	struct pw_jw warns;
	pw_jw_init(&warns, 0);
	pw_jw_arr(&warns, NULL);
	pw_info("control: reload asked by %s (uid %u)", PW_Q(rq->peer->user),
	        (unsigned)rq->peer->uid);
	int rc = pw_reload(err, errlen, add_warning, &warns);
	pw_jw_arr_end(&warns);
	if (rc < 0) {
		pw_jw_free(&warns);
		return PW_CS_FAILED;
	}
	pw_jw_obj(w, "result");
	pw_jw_str(w, "config", pw_reload_path());
	pw_jw_bool(w, "reloaded", true);
	pw_jw_raw(w, "warnings", warns.p, warns.len);
	pw_jw_obj_end(w);
	pw_jw_free(&warns);
	return PW_CS_OK;
}

/* ---- approvals ---- */

static enum pw_control_status approval_list(const struct pw_control_req *rq, struct pw_jw *w,
                                            struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	json_t *all = json_object_get(rq->args, "all");
	if (all && !json_is_boolean(all))
		return snprintf(err, errlen, "argument \"all\": expected true or false"),
		       PW_CS_USAGE;
	pw_approval_list(w, all && json_is_true(all));
	return PW_CS_OK;
}

static int approval_id(const struct pw_control_req *rq, const char **id, char *err, size_t errlen)
{
	if (pw_control_arg_str(rq, "id", id, err, errlen) < 0)
		return -1;
	if (!*id || !**id || strlen(*id) >= PW_APPROVAL_ID_MAX) {
		snprintf(err, errlen, "%s needs \"id\" (a request's id)", rq->command);
		return -1;
	}
	return 0;
}

static enum pw_control_status approval_show(const struct pw_control_req *rq, struct pw_jw *w,
                                            struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	const char *id;
	if (approval_id(rq, &id, err, errlen) < 0)
		return PW_CS_USAGE;
	if (!pw_approval_show(id, w))
		return snprintf(err, errlen, "no approval request %s", id), PW_CS_NOT_FOUND;
	return PW_CS_OK;
}

static enum pw_control_status approval_decide(const struct pw_control_req *rq, struct pw_jw *w,
                                              char *err, size_t errlen, bool approve)
{
	const char *id, *scope_s, *reason;
	long long for_s = 0;
	bool has_for;
	enum pw_approval_scope scope = PW_SCOPE_ONCE;
	if (approval_id(rq, &id, err, errlen) < 0 ||
	    pw_control_arg_str(rq, "reason", &reason, err, errlen) < 0)
		return PW_CS_USAGE;
	if (approve) {
		if (pw_control_arg_str(rq, "scope", &scope_s, err, errlen) < 0 ||
		    pw_control_arg_int(rq, "for_seconds", 1, 30LL * 86400, &for_s, &has_for, err,
		                       errlen) < 0)
			return PW_CS_USAGE;
		if (scope_s && pw_approval_scope_parse(scope_s, &scope) < 0)
			return snprintf(
			           err, errlen,
			           "argument \"scope\": expected once, fingerprint or session"),
			       PW_CS_USAGE;
		if ((scope == PW_SCOPE_FINGERPRINT) != has_for)
			return snprintf(err, errlen,
			                "\"for_seconds\" goes with scope \"fingerprint\" and only "
			                "with it"),
			       PW_CS_USAGE;
	}
	struct pw_approval_decider by = {.uid = rq->peer->uid,
	                                 .gid = rq->peer->gid,
	                                 .groups = rq->groups,
	                                 .n_groups = rq->n_groups};
	snprintf(by.user, sizeof(by.user), "%s", rq->peer->user);
	return (enum pw_control_status)pw_approval_decide(id, approve, scope, (int)for_s, reason,
	                                                  &by, w, err, errlen);
}

static enum pw_control_status approval_approve(const struct pw_control_req *rq, struct pw_jw *w,
                                               struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	return approval_decide(rq, w, err, errlen, true);
}

static enum pw_control_status approval_deny(const struct pw_control_req *rq, struct pw_jw *w,
                                            struct pw_control_sub *sub, char *err, size_t errlen)
{
	(void)sub;
	return approval_decide(rq, w, err, errlen, false);
}

void pw_control_tick(void)
{
	pw_approval_tick();
}

/* identity show and policy show: control_show.c */
enum pw_control_status pw_control_identity_show(const struct pw_control_req *rq, struct pw_jw *w,
                                                struct pw_control_sub *sub, char *err,
                                                size_t errlen);
enum pw_control_status pw_control_policy_show(const struct pw_control_req *rq, struct pw_jw *w,
                                              struct pw_control_sub *sub, char *err, size_t errlen);

const struct pw_control_cmd pw_control_cmds[] = {
    {"session show", PW_CTL_READ, session_show, "id identity"},
    {"session kill", PW_CTL_OPERATE, session_kill, "id"},
    {"session watch", PW_CTL_READ, session_watch, "id"},
    {"identity show", PW_CTL_READ, pw_control_identity_show, "name"},
    {"policy show", PW_CTL_READ, pw_control_policy_show, "identity"},
    {"policy reload", PW_CTL_OPERATE, policy_reload, ""},
    {"stats", PW_CTL_READ, stats, ""},
    {"prog show", PW_CTL_READ, prog_show, ""},
    {"map show", PW_CTL_READ, map_show, ""},
    {"map dump", PW_CTL_READ, map_dump, "name"},
    {"cgroup show", PW_CTL_READ, cgroup_show, ""},
    {"cgroup add", PW_CTL_OPERATE, cgroup_add, "path"},
    {"cgroup del", PW_CTL_OPERATE, cgroup_del, "path"},
    {"event pipe", PW_CTL_READ, event_pipe, ""},
    {"approval list", PW_CTL_READ, approval_list, "all"},
    {"approval show", PW_CTL_READ, approval_show, "id"},
    {"approval approve", PW_CTL_OPERATE, approval_approve, "id scope for_seconds reason"},
    {"approval deny", PW_CTL_OPERATE, approval_deny, "id reason"},
    {NULL, 0, NULL, NULL},
};
