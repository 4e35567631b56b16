/* The records of connections and of pgwardd's life. See include/pgward/audit_events.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pgward/audit.h"
#include "pgward/audit_events.h"
#include "pgward/log.h"

static void dst_of(const struct pw_conn_info *in, char *out, size_t len)
{
	if (in->family == AF_UNIX) {
		snprintf(out, len, "unix:.s.PGSQL.%u", ntohs(in->orig_port));
		return;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (in->family == AF_INET6) {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, in->orig_addr, 16);
		a->sin6_port = in->orig_port;
	} else {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = in->orig_addr[0];
		a->sin_port = in->orig_port;
	}
	pw_format_addr((struct sockaddr *)&ss, out, len);
}

void pw_audit_kernel(struct pw_jw *w, const char *key, const struct pw_kernel_facts *f)
{
	if (!f) {
		pw_jw_null(w, key);
		return;
	}
	const struct pw_conn_info *in = &f->info;
	char dst[INET6_ADDRSTRLEN + 24];
	dst_of(in, dst, sizeof(dst));
	pw_jw_obj(w, key);
	pw_jw_uint(w, "pid", in->tgid);
	pw_jw_uint(w, "tid", in->pid);
	pw_jw_uint(w, "uid", in->uid);
	pw_jw_uint(w, "gid", in->gid);
	pw_jw_str(w, "comm", f->comm);
	pw_jw_str(w, "exe", f->exe[0] ? f->exe : NULL);
	pw_jw_bool(w, "exe_verified", f->exe_verified);
	pw_jw_str(w, "cgroup", f->cgroup[0] ? f->cgroup : NULL);
	pw_jw_uint(w, "cgroup_id", in->cgroup_id);
	pw_jw_uint(w, "netns_cookie", in->netns_cookie);
	pw_jw_str(w, "dst", dst);
	pw_jw_arr(w, "ancestors");
	for (int i = 0; i < in->n_ancestors && i < PW_MAX_ANCESTORS; i++) {
		pw_jw_obj(w, NULL);
		pw_jw_uint(w, "pid", in->anc_pid[i]);
		pw_jw_str(w, "comm", f->anc_comm[i]);
		pw_jw_str(w, "exe", f->anc_exe[i][0] ? f->anc_exe[i] : NULL);
		pw_jw_bool(w, "execd", in->anc_execd & (1u << i));
		pw_jw_obj_end(w);
	}
	pw_jw_arr_end(w);
	pw_jw_obj_end(w);
}

bool pw_event_kind(uint32_t type, const char **record, const char **reason)
{
	static const struct {
		uint32_t type;
		const char *record, *reason;
	} kinds[] = {
	    {PW_EV_REDIRECT, "redirect", NULL},
	    {PW_EV_REFUSED, "connect_refused", "enforcer_down"},
	    {PW_EV_BYPASS, "bypass_attempt", "enforcer_down"},
	    {PW_EV_DENIED, "connect_refused", "denied_destination"},
	    {PW_EV_BIND, "connect_refused", "bind"},
	    {PW_EV_UNIX_REFUSED, "connect_refused", "unix_socket"},
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (kinds[i].type == type) {
			*record = kinds[i].record;
			*reason = kinds[i].reason;
			return true;
		}
	}
	return false;
}

void pw_audit_kernel_event(const struct pw_event *ev)
{
	const char *record, *reason;
	if (!pw_audit_on() || !pw_event_kind(ev->type, &record, &reason))
		return;
	/* the ring-buffer thread may take its time: paths are resolved here */
	static __thread struct pw_kernel_facts f;
	pw_caller_from_kernel(&ev->info, &f);
	struct pw_jw *w = pw_audit_begin(record);
	if (!w)
		return;
	if (reason)
		pw_jw_str(w, "reason", reason);
	pw_audit_kernel(w, "kernel", &f);
	pw_audit_end(w);
}

void pw_audit_tuple_miss(uint64_t serial, const char *client)
{
	struct pw_jw *w = pw_audit_begin("tuple_miss");
	if (!w)
		return;
	pw_jw_uint(w, "session", serial);
	pw_jw_str(w, "client", client);
	pw_audit_end(w);
}

/* What matched: the identity's match keys that are set, with their globs, and how the client
 * proved itself. */
void pw_audit_matched(struct pw_jw *w, const char *key, const struct pw_identity *id)
{
	pw_jw_obj(w, key);
	const struct {
		const char *key, *v;
	} globs[] = {
	    {"cgroup", id->match_cgroup},
	    {"exe", id->match_exe},
	    {"comm", id->match_comm},
	    {"ancestor_comm", id->match_ancestor_comm},
	    {"ancestor_exe", id->match_ancestor_exe},
	    {"user", id->match_user},
	    {"database", id->match_database},
	    {"application_name", id->match_application_name},
	    {"sub", id->match_sub},
	    {"group", id->match_group},
	};
	for (size_t i = 0; i < sizeof(globs) / sizeof(globs[0]); i++)
		if (globs[i].v[0])
			pw_jw_str(w, globs[i].key, globs[i].v);
	if (id->match_uid >= 0)
		pw_jw_int(w, "uid", id->match_uid);
	if (id->match_gid >= 0)
		pw_jw_int(w, "gid", id->match_gid);
	pw_jw_str(w, "auth", pw_client_auth_name(id->auth));
	pw_jw_obj_end(w);
}

void pw_audit_upstream(struct pw_jw *w, const struct pw_upstream *u)
{
	char addr[PATH_MAX + 32];
	if (u->unix_dir[0])
		snprintf(addr, sizeof(addr), "%s/.s.PGSQL.%d", u->unix_dir, u->port);
	else if (strchr(u->host, ':'))
		snprintf(addr, sizeof(addr), "[%s]:%d", u->host, u->port);
	else
		snprintf(addr, sizeof(addr), "%s:%d", u->host, u->port);
	pw_jw_obj(w, "upstream");
	pw_jw_str(w, "name", u->name);
	pw_jw_str(w, "address", addr);
	pw_jw_str(w, "login", u->user);
	pw_jw_obj_end(w);
}

void pw_audit_session_start(const struct pw_audit_start *st)
{
	struct pw_jw *w = pw_audit_begin("session_start");
	if (!w)
		return;
	pw_jw_uint(w, "session", st->serial);
	pw_jw_str(w, "client", st->client);
	pw_jw_str(w, "identity", st->id->name);
	pw_audit_matched(w, "matched", st->id);
	pw_jw_str(w, "user", st->user);
	pw_jw_str(w, "database", st->database);
	pw_jw_str(w, "application_name", st->application_name);
	/* the settings the start-up made (options, GUCs): the policy judged them, the trail keeps
	 * them, as [name, value] pairs (the names are the client's: values, never keys) */
	pw_jw_arr(w, "startup");
	for (int i = 0; st->startup && i < st->startup->n; i++) {
		pw_jw_arr(w, NULL);
		pw_jw_str(w, NULL, st->startup->key[i]);
		pw_jw_str(w, NULL, st->startup->val[i]);
		pw_jw_arr_end(w);
	}
	pw_jw_arr_end(w);
	pw_jw_bool(w, "steered", st->steered);
	pw_audit_kernel(w, "kernel", st->kf);
	if (st->claims && st->claims->sub[0]) {
		pw_jw_obj(w, "token");
		pw_jw_str(w, "sub", st->claims->sub);
		pw_jw_str(w, "iss", st->claims->iss[0] ? st->claims->iss : NULL);
		pw_jw_obj_end(w);
	} else {
		pw_jw_null(w, "token");
	}
	pw_audit_upstream(w, st->ups);
	pw_jw_str(w, "role", st->role && st->role[0] ? st->role : NULL);
	pw_jw_bool(w, "jit_role", st->jit);
	pw_jw_bool(w, "tls", st->tls);
	pw_audit_end(w);
}

void pw_audit_session_refused(uint64_t serial, const char *client, const struct pw_identity *id,
                              const struct pw_kernel_facts *kf, const char *sqlstate,
                              const char *message)
{
	struct pw_jw *w = pw_audit_begin("session_refused");
	if (!w)
		return;
	pw_jw_uint(w, "session", serial);
	pw_jw_str(w, "client", client);
	pw_jw_str(w, "identity", id ? id->name : NULL);
	pw_audit_kernel(w, "kernel", kf);
	pw_jw_str(w, "sqlstate", sqlstate);
	pw_jw_str(w, "message", message);
	pw_audit_end(w);
}

void pw_audit_session_end(const struct pw_audit_end *e)
{
	struct pw_jw *w = pw_audit_begin("session_end");
	if (!w)
		return;
	pw_jw_uint(w, "session", e->serial);
	pw_jw_str(w, "identity", e->identity);
	pw_jw_str(w, "reason", e->reason);
	pw_jw_uint(w, "statements", e->statements);
	pw_jw_uint(w, "bytes_in", e->bytes_in);
	pw_jw_uint(w, "bytes_out", e->bytes_out);
	pw_jw_uint(w, "duration_us", e->duration_us);
	pw_jw_str(w, "recording", e->recording);
	pw_jw_str(w, "recording_sha256", e->recording ? e->recording_sha256 : NULL);
	if (e->recording)
		pw_jw_bool(w, "recording_truncated", e->recording_truncated);
	pw_audit_end(w);
}

void pw_audit_policy_reload(const char *config, bool ok, const char *error)
{
	struct pw_jw *w = pw_audit_begin("policy_reload");
	if (!w)
		return;
	pw_jw_str(w, "config", config);
	pw_jw_bool(w, "ok", ok);
	pw_jw_str(w, "error", error && error[0] ? error : NULL);
	pw_audit_end(w);
}

void pw_audit_jit_role(const char *action, const char *role, const char *upstream_name,
                       uint64_t serial, const char *error)
{
	struct pw_jw *w = pw_audit_begin("jit_role");
	if (!w)
		return;
	pw_jw_str(w, "action", action);
	pw_jw_str(w, "role", role);
	pw_jw_str(w, "upstream", upstream_name);
	if (serial)
		pw_jw_uint(w, "session", serial);
	else
		pw_jw_null(w, "session");
	pw_jw_str(w, "error", error && error[0] ? error : NULL);
	pw_audit_end(w);
}
