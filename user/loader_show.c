/* What the control socket shows of the kernel side: see include/pgward/loader_show.h.
 *
 * Runs on the control thread. The loader's op lock (loader_int.h) is held while the loader's
 * state is read or the scope changed, so none of it interleaves with start, update or stop; a
 * map dump holds it only to take its own descriptor of the map, and reads the entries (which
 * may be many, and resolve /proc paths) without it. Each result is built in a writer of its
 * own and added to the caller's only when whole: a failure leaves w as it was. */
#include "pgward/loader_show.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pgward/audit_events.h"
#include "pgward/caller.h"
#include "pgward/loader.h"
#include "pgward/loader_host.h"
#include "pgward/log.h"
#include "loader_int.h"

#define NOT_LOADED "no eBPF programs are loaded (no \"redirect\" section)"

/* 0 with op held and the loader running; -1 with err set and op not held */
static int hold(char *err, size_t errlen)
{
	pthread_mutex_lock(&pw_ld.op);
	if (pw_ld.running)
		return 0;
	pthread_mutex_unlock(&pw_ld.op);
	pw_errf(err, errlen, NOT_LOADED);
	return -1;
}

static void release(void)
{
	pthread_mutex_unlock(&pw_ld.op);
}

/* r's text (a whole JSON value) becomes w's member "result"; r is freed */
static int finish(struct pw_jw *w, struct pw_jw *r, char *err, size_t errlen)
{
	int rc = 0;
	if (!pw_jw_ok(r)) {
		pw_errf(err, errlen, "out of memory");
		rc = -1;
	} else {
		pw_jw_raw(w, "result", r->p, r->len);
	}
	pw_jw_free(r);
	return rc;
}

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A reading of clock c (ns) as the wall time it was, RFC 3339. */
static void wall_of(clockid_t c, uint64_t ns, char *out, size_t len)
{
	int64_t wall = clock_ns(CLOCK_REALTIME) - clock_ns(c) + (int64_t)ns;
	if (wall < 0)
		wall = 0;
	pw_jw_time(out, len, wall / 1000000000LL, (long)(wall % 1000000000LL));
}

/* an address of a map (network order, IPv4 in a[0]) as "ip:port" / "[ip6]:port" */
static void addr_str(uint32_t family, const uint32_t *a, uint16_t port_host, char *out, size_t len)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (void *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		s6->sin6_port = htons(port_host);
	} else {
		struct sockaddr_in *s4 = (void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = a[0];
		s4->sin_port = htons(port_host);
	}
	pw_format_addr((struct sockaddr *)&ss, out, len);
}

/* the path below the cgroup2 mount of the target with this id (NULL: none) */
static const char *target_path(const struct pw_cg_target *t, int n, uint64_t id, char *out,
                               size_t len)
{
	for (int i = 0; i < n; i++) {
		if (t[i].id == id) {
			pw_maps_cgroup_rel(t[i].path, out, len);
			return out;
		}
	}
	return NULL;
}

/* ---- prog show ---- */

static bool stats_enabled(void)
{
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "re");
	int v = 0;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v != 0;
}

struct prog_at {
	const char *attach; /* NULL: loaded, not attached */
	const char *cgroup; /* below the mount; NULL: not a cgroup's */
	const char *pinned;
};

static int prog_entry(struct pw_jw *r, int fd, const struct prog_at *at, bool stats)
{
	struct bpf_prog_info pi;
	uint32_t len = sizeof(pi);
	memset(&pi, 0, sizeof(pi));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &pi, &len) < 0)
		return -1;
	char when[40];
	wall_of(CLOCK_BOOTTIME, pi.load_time, when, sizeof(when));
	pw_jw_obj(r, NULL);
	pw_jw_uint(r, "id", pi.id);
	pw_jw_str(r, "name", pi.name);
	pw_jw_str(r, "type", libbpf_bpf_prog_type_str((enum bpf_prog_type)pi.type));
	pw_jw_str(r, "attach", at->attach);
	pw_jw_str(r, "cgroup", at->cgroup);
	pw_jw_hex(r, "tag", pi.tag, sizeof(pi.tag));
	pw_jw_str(r, "loaded_at", when);
	pw_jw_str(r, "pinned", at->pinned);
	if (stats) {
		pw_jw_uint(r, "run_count", pi.run_cnt);
		pw_jw_uint(r, "run_time_ns", pi.run_time_ns);
	} else {
		pw_jw_null(r, "run_count");
		pw_jw_null(r, "run_time_ns");
	}
	pw_jw_obj_end(r);
	return 0;
}

/* One entry per link of the program (the program its link runs, as the kernel says), or one
 * saying where it hangs (sk_msg: off the pinned sockhash), or that it is only loaded. Under
 * op. */
static int prog_entries(struct pw_jw *r, struct bpf_program *prog, bool stats)
{
	const char *name = bpf_program__name(prog);
	int p = 0;
	while (p < N_CG_PROGS && strcmp(pw_cg_progs[p].name, name) != 0)
		p++;
	int n = 0;
	for (int i = 0; p < N_CG_PROGS && i < pw_ld.n_links; i++) {
		const struct cg_link *cl = &pw_ld.links[i];
		if (cl->prog != p)
			continue;
		struct bpf_link_info li;
		uint32_t len = sizeof(li);
		memset(&li, 0, sizeof(li));
		int fd = -1;
		if (bpf_obj_get_info_by_fd(bpf_link__fd(cl->link), &li, &len) == 0)
			fd = bpf_prog_get_fd_by_id(li.prog_id);
		char cg[PATH_MAX];
		struct prog_at at = {
		    pw_cg_progs[p].attach,
		    target_path(pw_ld.targets, pw_ld.n_targets, cl->cgid, cg, sizeof(cg)),
		    cl->pin[0] ? cl->pin : NULL};
		int rc = prog_entry(r, fd >= 0 ? fd : bpf_program__fd(prog), &at, stats);
		if (fd >= 0)
			close(fd);
		if (rc < 0)
			return -1;
		n++;
	}
	if (n)
		return 0;
	char hash[PATH_MAX + 32];
	snprintf(hash, sizeof(hash), "%s/maps/pw_sockhash", pw_ld.pin);
	bool sk_msg = strcmp(name, "pw_sk_msg") == 0 && pw_ld.sk_msg_attached;
	struct prog_at at = {sk_msg ? "sk_msg" : NULL, NULL, sk_msg ? hash : NULL};
	return prog_entry(r, bpf_program__fd(prog), &at, stats);
}

int pw_loader_show_progs(struct pw_jw *w, char *err, size_t errlen)
{
	if (hold(err, errlen) < 0)
		return -1;
	bool stats = stats_enabled();
	struct pw_jw r;
	pw_jw_init(&r, 0);
	pw_jw_arr(&r, NULL);
	struct bpf_program *prog;
	int rc = 0;
	bpf_object__for_each_program(prog, pw_ld.obj)
	{
		if (bpf_program__fd(prog) < 0)
			continue; /* not loaded here (the unix hook before 6.7) */
		if (prog_entries(&r, prog, stats) < 0) {
			pw_errf(err, errlen, "reading program %s: %s", bpf_program__name(prog),
			        strerror(errno));
			rc = -1;
			break;
		}
	}
	release();
	pw_jw_arr_end(&r);
	if (rc < 0) {
		pw_jw_free(&r);
		return -1;
	}
	return finish(w, &r, err, errlen);
}

/* ---- map show ---- */

/* calls fn for each key of a map that has keys to walk; the number of keys, or -1 */
static long each_key(int fd, uint32_t ksz, uint32_t max,
                     void (*fn)(int fd, const void *k, void *arg), void *arg)
{
	char *cur = calloc(2, ksz ? ksz : 1);
	if (!cur)
		return -1;
	char *next = cur + ksz;
	long n = 0;
	void *prev = NULL;
	/* an LRU map can change under the walk: never more steps than it can hold */
	while ((uint32_t)n <= max && bpf_map_get_next_key(fd, prev, next) == 0) {
		if (fn)
			fn(fd, next, arg);
		memcpy(cur, next, ksz);
		prev = cur;
		n++;
	}
	free(cur);
	return n;
}

static bool countable(uint32_t type)
{
	return type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_LRU_HASH ||
	       type == BPF_MAP_TYPE_LPM_TRIE || type == BPF_MAP_TYPE_SOCKHASH;
}

int pw_loader_show_maps(struct pw_jw *w, char *err, size_t errlen)
{
	if (hold(err, errlen) < 0)
		return -1;
	struct pw_jw r;
	pw_jw_init(&r, 0);
	pw_jw_arr(&r, NULL);
	struct bpf_map *map;
	int rc = 0;
	bpf_object__for_each_map(map, pw_ld.obj)
	{
		if (bpf_map__is_internal(map))
			continue;
		int fd = bpf_map__fd(map);
		struct bpf_map_info mi;
		uint32_t len = sizeof(mi);
		memset(&mi, 0, sizeof(mi));
		if (bpf_obj_get_info_by_fd(fd, &mi, &len) < 0) {
			pw_errf(err, errlen, "reading map %s: %s", bpf_map__name(map),
			        strerror(errno));
			rc = -1;
			break;
		}
		char pinned[PATH_MAX + 64];
		snprintf(pinned, sizeof(pinned), "%s/maps/%s", pw_ld.pin, bpf_map__name(map));
		pw_jw_obj(&r, NULL);
		pw_jw_uint(&r, "id", mi.id);
		pw_jw_str(&r, "name", mi.name);
		pw_jw_str(&r, "type", libbpf_bpf_map_type_str((enum bpf_map_type)mi.type));
		pw_jw_uint(&r, "key_size", mi.key_size);
		pw_jw_uint(&r, "value_size", mi.value_size);
		pw_jw_uint(&r, "max_entries", mi.max_entries);
		long n =
		    countable(mi.type) ? each_key(fd, mi.key_size, mi.max_entries, NULL, NULL) : -1;
		if (n >= 0)
			pw_jw_uint(&r, "entries", (uint64_t)n);
		else
			pw_jw_null(&r, "entries");
		pw_jw_str(&r, "pinned", pinned);
		pw_jw_obj_end(&r);
	}
	release();
	pw_jw_arr_end(&r);
	if (rc < 0) {
		pw_jw_free(&r);
		return -1;
	}
	return finish(w, &r, err, errlen);
}

/* ---- map dump ---- */

/* what a dump needs, taken under op: its own descriptor and the scope's paths */
struct dump {
	int fd;
	struct pw_jw *r;
	struct pw_cg_target *t;
	int n_t;
	int ncpu;
	struct pw_kernel_facts *facts; /* scratch for pw_conns */
};

static void dump_config(struct dump *d)
{
	struct pw_bpf_config c;
	uint32_t zero = 0;
	if (bpf_map_lookup_elem(d->fd, &zero, &c) < 0)
		return;
	struct pw_jw *r = d->r;
	char l4[64], l6[80];
	uint64_t now = (uint64_t)clock_ns(CLOCK_MONOTONIC);
	addr_str(AF_INET, &c.listen4_addr, ntohs(c.listen4_port), l4, sizeof(l4));
	addr_str(AF_INET6, c.listen6_addr, ntohs(c.listen6_port), l6, sizeof(l6));
	pw_jw_obj(r, NULL);
	pw_jw_uint(r, "abi_version", c.abi_version);
	pw_jw_str(r, "fail_mode", c.fail_mode == PW_FAIL_OPEN ? "open" : "closed");
	if (c.heartbeat_ns && now >= c.heartbeat_ns)
		pw_jw_uint(r, "heartbeat_age_ms", (now - c.heartbeat_ns) / 1000000);
	else
		pw_jw_null(r, "heartbeat_age_ms");
	pw_jw_uint(r, "heartbeat_timeout_ms", c.heartbeat_timeout_ns / 1000000);
	pw_jw_bool(r, "alive", c.heartbeat_ns && now - c.heartbeat_ns <= c.heartbeat_timeout_ns);
	pw_jw_uint(r, "mark", c.mark);
	pw_jw_uint(r, "enforcer_pid", c.enforcer_tgid);
	pw_jw_str(r, "listen4", l4);
	pw_jw_str(r, "listen6", c.listen6_port ? l6 : NULL);
	pw_jw_bool(r, "fastpath", c.fastpath);
	pw_jw_bool(r, "dst_filter", c.dst_filter);
	pw_jw_bool(r, "unix_refuse", c.unix_refuse);
	pw_jw_obj_end(r);
}

static void scope_entry(int fd, const void *k, void *arg)
{
	(void)fd;
	struct dump *d = arg;
	uint64_t id;
	char cg[PATH_MAX];
	memcpy(&id, k, sizeof(id));
	pw_jw_obj(d->r, NULL);
	pw_jw_uint(d->r, "cgroup_id", id);
	pw_jw_str(d->r, "cgroup", target_path(d->t + 1, d->n_t - 1, id, cg, sizeof(cg)));
	pw_jw_obj_end(d->r);
}

static void uid_entry(int fd, const void *k, void *arg)
{
	(void)fd;
	struct pw_jw *r = ((struct dump *)arg)->r;
	uint32_t uid;
	memcpy(&uid, k, sizeof(uid));
	pw_jw_obj(r, NULL);
	pw_jw_uint(r, "uid", uid);
	pw_jw_obj_end(r);
}

static void port_entry(int fd, const void *k, void *arg)
{
	(void)fd;
	struct pw_jw *r = ((struct dump *)arg)->r;
	uint16_t port;
	memcpy(&port, k, sizeof(port));
	pw_jw_obj(r, NULL);
	pw_jw_uint(r, "port", port);
	pw_jw_obj_end(r);
}

/* "10.0.0.0/8" of a trie key's family (network order), address and prefix bits */
static void net_str(uint32_t family_net, const uint32_t *addr, int bits, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	int family = ntohl(family_net) == AF_INET6 ? AF_INET6 : AF_INET;
	inet_ntop(family, addr, a, sizeof(a));
	snprintf(out, len, "%s/%d", a, bits);
}

static void deny_entry(int fd, const void *k, void *arg)
{
	(void)fd;
	struct pw_jw *r = ((struct dump *)arg)->r;
	struct pw_deny_key key;
	char net[INET6_ADDRSTRLEN + 8];
	memcpy(&key, k, sizeof(key));
	net_str(key.family, key.addr, (int)key.prefixlen - 64, net, sizeof(net));
	pw_jw_obj(r, NULL);
	pw_jw_str(r, "net", net);
	if (key.port)
		pw_jw_uint(r, "port", ntohs((uint16_t)key.port));
	else
		pw_jw_null(r, "port"); /* every port */
	pw_jw_obj_end(r);
}

static void dst_entry(int fd, const void *k, void *arg)
{
	(void)fd;
	struct pw_jw *r = ((struct dump *)arg)->r;
	struct pw_dst_key key;
	char net[INET6_ADDRSTRLEN + 8];
	memcpy(&key, k, sizeof(key));
	net_str(key.family, key.addr, (int)key.prefixlen - 32, net, sizeof(net));
	pw_jw_obj(r, NULL);
	pw_jw_str(r, "net", net);
	pw_jw_obj_end(r);
}

static void unix_entry(int fd, const void *k, void *arg)
{
	(void)fd;
	struct pw_jw *r = ((struct dump *)arg)->r;
	const struct pw_unix_path *u = k;
	/* an abstract name follows a NUL: shown after an "@", as ss(8) does */
	bool abstract = u->path[0] == '\0';
	const char *p = u->path + abstract;
	char shown[PW_UNIX_PATH_LEN + 2];
	snprintf(shown, sizeof(shown), "%s%.*s", abstract ? "@" : "",
	         (int)strnlen(p, PW_UNIX_PATH_LEN - abstract), p);
	pw_jw_obj(r, NULL);
	pw_jw_str(r, "path", shown);
	pw_jw_bool(r, "abstract", abstract);
	pw_jw_obj_end(r);
}

static void sock_entry(int fd, const void *k, void *arg)
{
	struct pw_jw *r = ((struct dump *)arg)->r;
	struct pw_sock_key key;
	char local[INET6_ADDRSTRLEN + 16], remote[INET6_ADDRSTRLEN + 16];
	uint64_t cookie;
	memcpy(&key, k, sizeof(key));
	addr_str(key.family, key.local_addr, (uint16_t)key.local_port, local, sizeof(local));
	addr_str(key.family, key.remote_addr, (uint16_t)key.remote_port, remote, sizeof(remote));
	pw_jw_obj(r, NULL);
	pw_jw_str(r, "local", local);
	pw_jw_str(r, "remote", remote);
	pw_jw_uint(r, "netns", key.netns_cookie);
	/* a sockhash's value, read from user space, is the socket's cookie */
	if (bpf_map_lookup_elem(fd, k, &cookie) == 0)
		pw_jw_uint(r, "socket_cookie", cookie);
	else
		pw_jw_null(r, "socket_cookie");
	pw_jw_obj_end(r);
}

static void conn_entry(int fd, const void *k, void *arg)
{
	struct dump *d = arg;
	struct pw_jw *r = d->r;
	struct pw_conn_key key;
	struct pw_conn_info in;
	memcpy(&key, k, sizeof(key));
	if (bpf_map_lookup_elem(fd, &key, &in) < 0)
		return; /* closed under the walk */
	struct pw_kernel_facts *f = d->facts;
	pw_caller_from_kernel(&in, f);
	char client[INET6_ADDRSTRLEN + 16], enforcer[INET6_ADDRSTRLEN + 16],
	    dialled[INET6_ADDRSTRLEN + 16];
	addr_str(key.family, key.agent_addr, key.agent_port, client, sizeof(client));
	addr_str(key.family, key.enforcer_addr, key.enforcer_port, enforcer, sizeof(enforcer));
	addr_str(in.family, in.orig_addr, ntohs(in.orig_port), dialled, sizeof(dialled));
	uint64_t now = (uint64_t)clock_ns(CLOCK_MONOTONIC);
	pw_jw_obj(r, NULL);
	pw_jw_str(r, "client", client);
	pw_jw_str(r, "enforcer", enforcer);
	pw_jw_uint(r, "netns", key.netns_cookie);
	pw_jw_uint(r, "pid", in.tgid);
	pw_jw_uint(r, "tid", in.pid);
	pw_jw_uint(r, "uid", in.uid);
	pw_jw_uint(r, "gid", in.gid);
	pw_jw_str(r, "comm", f->comm);
	pw_jw_str(r, "exe", f->exe[0] ? f->exe : NULL);
	pw_jw_uint(r, "cgroup_id", in.cgroup_id);
	pw_jw_str(r, "cgroup", f->cgroup[0] ? f->cgroup : NULL);
	pw_jw_str(r, "dialled", dialled);
	pw_jw_uint(r, "age_ms", now > in.connect_ns ? (now - in.connect_ns) / 1000000 : 0);
	pw_jw_arr(r, "ancestry");
	for (int i = 0; i < in.n_ancestors && i < PW_MAX_ANCESTORS; i++) {
		pw_jw_obj(r, NULL);
		pw_jw_uint(r, "pid", in.anc_pid[i]);
		pw_jw_str(r, "comm", f->anc_comm[i]);
		pw_jw_str(r, "exe", f->anc_exe[i][0] ? f->anc_exe[i] : NULL);
		pw_jw_bool(r, "execd", in.anc_execd & (1u << i));
		pw_jw_obj_end(r);
	}
	pw_jw_arr_end(r);
	pw_jw_obj_end(r);
}

static void dump_counters(struct dump *d)
{
	uint64_t *v = calloc((size_t)(d->ncpu > 0 ? d->ncpu : 1), sizeof(*v));
	if (!v) {
		d->r->oom = true;
		return;
	}
	for (uint32_t i = 0; i < PW_CNT_MAX; i++) {
		uint64_t sum = 0;
		if (bpf_map_lookup_elem(d->fd, &i, v) == 0)
			for (int c = 0; c < d->ncpu; c++)
				sum += v[c];
		pw_jw_obj(d->r, NULL);
		pw_jw_str(d->r, "counter", pw_counter_names[i]);
		pw_jw_uint(d->r, "value", sum);
		pw_jw_obj_end(d->r);
	}
	free(v);
}

/* Every map of bpf/pgward.bpf.c: how its entries are decoded, or why they cannot be. */
static const struct dumper {
	const char *name;
	void (*whole)(struct dump *d);                     /* the map as a whole */
	void (*entry)(int fd, const void *key, void *arg); /* or key by key */
	const char *why;                                   /* or it cannot be dumped */
} dumpers[] = {
    {"pw_config", dump_config, NULL, NULL},
    {"pw_scope", NULL, scope_entry, NULL},
    {"pw_scope_uid", NULL, uid_entry, NULL},
    {"pw_deny", NULL, deny_entry, NULL},
    {"pw_ports", NULL, port_entry, NULL},
    {"pw_dsts", NULL, dst_entry, NULL},
    {"pw_sk_info", NULL, NULL,
     "is socket-local storage, which cannot be iterated from user space (a steered "
     "connection's record is in pw_conns once it connects)"},
    {"pw_conns", NULL, conn_entry, NULL},
    {"pw_events", NULL, NULL,
     "is a ring buffer: its events are read as they come, not kept (event pipe streams "
     "them)"},
    {"pw_counters", dump_counters, NULL, NULL},
    {"pw_unix_own", NULL, unix_entry, NULL},
    {"pw_sockhash", NULL, sock_entry, NULL},
};
#define N_DUMPERS (sizeof(dumpers) / sizeof(dumpers[0]))

static const struct dumper *dumper_of(const char *name, char *err, size_t errlen)
{
	char want[64];
	snprintf(want, sizeof(want), "%s%s", strncmp(name, "pw_", 3) == 0 ? "" : "pw_", name);
	for (size_t i = 0; i < N_DUMPERS; i++)
		if (strcmp(dumpers[i].name, want) == 0)
			return &dumpers[i];
	char names[512] = "";
	for (size_t i = 0, off = 0; i < N_DUMPERS && off < sizeof(names); i++)
		off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
		                        dumpers[i].name);
	pw_errf(err, errlen, "no map %s (pgward's maps: %s)", PW_Q(name), names);
	return NULL;
}

/* Under op: the dump's own descriptor of the map and a copy of the scope. */
static int dump_take(const struct dumper *dp, struct dump *d, char *err, size_t errlen)
{
	struct bpf_map *map = bpf_object__find_map_by_name(pw_ld.obj, dp->name);
	int fd = map ? bpf_map__fd(map) : -1;
	d->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	d->n_t = pw_ld.n_targets;
	d->t = malloc(sizeof(*d->t) * (size_t)(d->n_t ? d->n_t : 1));
	d->ncpu = pw_ld.ncpu;
	d->facts = malloc(sizeof(*d->facts));
	if (d->fd < 0 || !d->t || !d->facts) {
		pw_errf(err, errlen, "map %s: %s", dp->name,
		        d->fd < 0 ? strerror(errno ? errno : ENOENT) : "out of memory");
		return -1;
	}
	memcpy(d->t, pw_ld.targets, sizeof(*d->t) * (size_t)d->n_t);
	return 0;
}

int pw_loader_dump_map(const char *name, struct pw_jw *w, char *err, size_t errlen)
{
	const struct dumper *dp = dumper_of(name, err, errlen);
	if (!dp)
		return -2;
	if (dp->why) {
		pw_errf(err, errlen, "%s %s", dp->name, dp->why);
		return -1;
	}
	if (hold(err, errlen) < 0)
		return -1;
	struct dump d = {.fd = -1};
	errno = 0;
	int rc = dump_take(dp, &d, err, errlen);
	release();
	struct pw_jw r;
	pw_jw_init(&r, 0);
	if (rc == 0) {
		struct bpf_map_info mi;
		uint32_t len = sizeof(mi);
		memset(&mi, 0, sizeof(mi));
		bpf_obj_get_info_by_fd(d.fd, &mi, &len);
		d.r = &r;
		pw_jw_arr(&r, NULL);
		if (dp->whole)
			dp->whole(&d);
		else if (each_key(d.fd, mi.key_size, mi.max_entries, dp->entry, &d) < 0)
			r.oom = true;
		pw_jw_arr_end(&r);
	}
	if (d.fd >= 0)
		close(d.fd);
	free(d.t);
	free(d.facts);
	if (rc < 0) {
		pw_jw_free(&r);
		return -1;
	}
	return finish(w, &r, err, errlen);
}

/* ---- cgroups ---- */

int pw_loader_show_cgroups(struct pw_jw *w, char *err, size_t errlen)
{
	if (hold(err, errlen) < 0)
		return -1;
	struct pw_jw r;
	pw_jw_init(&r, 0);
	pw_jw_arr(&r, NULL);
	for (int i = 0; i < pw_ld.n_targets; i++) {
		const struct pw_cg_target *t = &pw_ld.targets[i];
		if (!t->in_scope)
			continue;
		char rel[PATH_MAX];
		uint64_t id;
		pw_maps_cgroup_rel(t->path, rel, sizeof(rel));
		bool exists = pw_host_cgroup_id(t->path, &id, NULL, 0) == 0 && id == t->id;
		pw_jw_obj(&r, NULL);
		pw_jw_str(&r, "path", rel);
		pw_jw_uint(&r, "id", t->id);
		pw_jw_str(&r, "source", t->runtime ? "runtime" : "config");
		pw_jw_bool(&r, "exists", exists);
		pw_jw_obj_end(&r);
	}
	release();
	pw_jw_arr_end(&r);
	return finish(w, &r, err, errlen);
}

int pw_loader_scope_dirs(char (*dirs)[PATH_MAX], int max, char *err, size_t errlen)
{
	if (hold(err, errlen) < 0)
		return -1;
	int n = 0;
	for (int i = 0; i < pw_ld.n_targets && n < max; i++)
		if (pw_ld.targets[i].in_scope)
			snprintf(dirs[n++], PATH_MAX, "%s", pw_ld.targets[i].path);
	release();
	return n;
}

static int n_in_scope(void)
{
	int n = 0;
	for (int i = 0; i < pw_ld.n_targets; i++)
		n += pw_ld.targets[i].in_scope;
	return n;
}

/* The index of the target in scope that path (normalized) names: by path, or by id while
 * it exists; -1 for none. */
static int scope_index(const char *path)
{
	uint64_t id = 0;
	bool exists = pw_host_cgroup_id(path, &id, NULL, 0) == 0;
	for (int i = 0; i < pw_ld.n_targets; i++) {
		const struct pw_cg_target *t = &pw_ld.targets[i];
		char norm[PATH_MAX];
		if (!t->in_scope)
			continue;
		if ((exists && t->id == id) ||
		    (pw_maps_cgroup_norm(t->path, norm, sizeof(norm), NULL, 0) == 0 &&
		     strcmp(norm, path) == 0))
			return i;
	}
	return -1;
}

/* Under op: the override file now (ov) and as it will be (nv), both read from disk. */
static int read_both(struct pw_cg_overrides **ov, struct pw_cg_overrides **nv, char *err,
                     size_t errlen)
{
	*ov = calloc(1, sizeof(**ov));
	*nv = calloc(1, sizeof(**nv));
	if (!*ov || !*nv) {
		pw_errf(err, errlen, "out of memory");
		return -1;
	}
	snprintf((*ov)->file, sizeof((*ov)->file), "%s", pw_ld.overrides);
	if (!pw_ld.overrides[0]) {
		pw_errf(err, errlen, "redirect.overrides is not set: a change could not be kept");
		return -1;
	}
	char why[PATH_MAX + 256];
	if (pw_maps_overrides_read(*ov, why, sizeof(why)) < 0) {
		pw_errf(err, errlen, "the override file cannot be used (%s): nothing changed", why);
		return -1;
	}
	memcpy(*nv, *ov, sizeof(**nv));
	return 0;
}

/* Under op: nv goes to disk first, then the scope map takes the targets t; when the map
 * cannot, ov is put back. */
static int commit(const struct pw_cg_overrides *ov, const struct pw_cg_overrides *nv,
                  const struct pw_cg_target *t, int n, char *err, size_t errlen)
{
	if (pw_maps_overrides_write(nv, err, errlen) < 0)
		return -1;
	struct bpf_map *scope = bpf_object__find_map_by_name(pw_ld.obj, "pw_scope");
	int rc = scope ? pw_maps_sync_scope(bpf_map__fd(scope), t, n) : -ENOENT;
	if (rc < 0) {
		char e2[256] = "";
		pw_errf(err, errlen, "updating the scope map: %s", strerror(-rc));
		if (pw_maps_overrides_write(ov, e2, sizeof(e2)) < 0)
			pw_warn("eBPF scope: putting %s back: %s", ov->file, e2);
		return -1;
	}
	memcpy(pw_ld.targets, t, sizeof(*t) * (size_t)n);
	pw_ld.n_targets = n;
	return 0;
}

int pw_loader_cgroup_add(const char *path, char *err, size_t errlen)
{
	struct pw_cg_target nt;
	if (pw_maps_cgroup_target(path, &nt, err, errlen) < 0)
		return -1;
	if (hold(err, errlen) < 0)
		return -1;
	struct pw_cg_overrides *ov = NULL, *nv = NULL;
	struct pw_cg_target *t = NULL;
	int rc = -1;
	char rel[PATH_MAX];
	pw_maps_cgroup_rel(nt.path, rel, sizeof(rel));
	if (scope_index(nt.path) >= 0) {
		pw_errf(err, errlen, "cgroup %s is already in scope", PW_Q(rel));
		goto out;
	}
	if (n_in_scope() >= PW_MAX_REDIRECT_CGROUPS || pw_ld.n_targets >= MAX_TARGETS) {
		pw_errf(err, errlen, "the scope is full (%d cgroups)", PW_MAX_REDIRECT_CGROUPS);
		goto out;
	}
	if (read_both(&ov, &nv, err, errlen) < 0)
		goto out;
	/* one the configuration has and the file took out comes back as the configuration's */
	nt.runtime = !pw_maps_list_drop(nv->del, &nv->n_del, nt.path);
	if (nt.runtime && !pw_maps_list_add(nv->add, &nv->n_add, nt.path)) {
		pw_errf(err, errlen, "%s already adds %d cgroups", nv->file,
		        PW_MAX_REDIRECT_CGROUPS);
		goto out;
	}
	t = malloc(sizeof(*t) * MAX_TARGETS);
	if (!t) {
		pw_errf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(t, pw_ld.targets, sizeof(*t) * (size_t)pw_ld.n_targets);
	t[pw_ld.n_targets] = nt;
	rc = commit(ov, nv, t, pw_ld.n_targets + 1, err, errlen);
	if (rc == 0)
		pw_info("eBPF scope: cgroup %s (id %" PRIu64 ") added, kept in %s", PW_Q(rel),
		        nt.id, nv->file);
out:
	release();
	free(t);
	free(ov);
	free(nv);
	return rc;
}

int pw_loader_cgroup_del(const char *path, char *err, size_t errlen)
{
	char norm[PATH_MAX], rel[PATH_MAX];
	if (pw_maps_cgroup_norm(path, norm, sizeof(norm), err, errlen) < 0)
		return -1;
	if (hold(err, errlen) < 0)
		return -1;
	struct pw_cg_overrides *ov = NULL, *nv = NULL;
	struct pw_cg_target *t = NULL;
	int rc = -1, i = scope_index(norm);
	pw_maps_cgroup_rel(norm, rel, sizeof(rel));
	if (i < 0) {
		pw_errf(err, errlen, "cgroup %s is not in scope", PW_Q(rel));
		goto out;
	}
	if (n_in_scope() <= 1 && pw_ld.n_uids <= 0) {
		pw_errf(err, errlen,
		        "cgroup %s is the last one in scope and no uids are: the scope cannot be "
		        "empty (add another first)",
		        PW_Q(rel));
		goto out;
	}
	if (read_both(&ov, &nv, err, errlen) < 0)
		goto out;
	char tnorm[PATH_MAX];
	if (pw_maps_cgroup_norm(pw_ld.targets[i].path, tnorm, sizeof(tnorm), NULL, 0) < 0)
		snprintf(tnorm, sizeof(tnorm), "%s", norm);
	/* a runtime one leaves the file's additions; the configuration's joins its removals */
	bool gone = pw_maps_list_drop(nv->add, &nv->n_add, tnorm);
	if (!pw_ld.targets[i].runtime && !gone && !pw_maps_list_add(nv->del, &nv->n_del, tnorm)) {
		pw_errf(err, errlen, "%s already removes %d cgroups", nv->file,
		        PW_MAX_REDIRECT_CGROUPS);
		goto out;
	}
	t = malloc(sizeof(*t) * MAX_TARGETS);
	if (!t) {
		pw_errf(err, errlen, "out of memory");
		goto out;
	}
	int n = 0;
	for (int j = 0; j < pw_ld.n_targets; j++)
		if (j != i)
			t[n++] = pw_ld.targets[j];
	rc = commit(ov, nv, t, n, err, errlen);
	if (rc == 0)
		pw_info("eBPF scope: cgroup %s removed, kept in %s", PW_Q(rel), nv->file);
out:
	release();
	free(t);
	free(ov);
	free(nv);
	return rc;
}

/* ---- event pipe ---- */

void pw_event_json(struct pw_jw *w, const struct pw_event *ev)
{
	/* the facts are large for a stack (and for every thread's TLS): one per event */
	struct pw_kernel_facts *f = malloc(sizeof(*f));
	const char *record, *reason;
	if (!pw_event_kind(ev->type, &record, &reason)) {
		record = "unknown";
		reason = NULL;
	}
	if (f)
		pw_caller_from_kernel(&ev->info, f);
	char ts[40];
	if (ev->info.connect_ns)
		wall_of(CLOCK_MONOTONIC, ev->info.connect_ns, ts, sizeof(ts));
	else
		wall_of(CLOCK_REALTIME, (uint64_t)clock_ns(CLOCK_REALTIME), ts, sizeof(ts));
	pw_jw_obj(w, NULL);
	pw_jw_str(w, "ts", ts);
	pw_jw_str(w, "type", record);
	pw_jw_str(w, "reason", reason);
	pw_audit_kernel(w, "kernel", f);
	pw_jw_obj_end(w);
	free(f);
}
