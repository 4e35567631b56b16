/* The contents of the redirect's maps, from the configuration: see
 * include/pgward/loader_maps.h. */
#include "pgward/loader_maps.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <jansson.h>

#include "pgward/loader_host.h"
#include "pgward/log.h"

#define DEFAULT_PORT         5432
#define DEFAULT_HEARTBEAT_MS 1000

/* libbpf 1.x returns NULL/negative and sets errno; keep a non-zero code for messages */
static int errno_or(int fallback)
{
	return errno ? errno : fallback;
}

void pw_maps_resolve(const struct pw_config *cfg, const char **pin, int *hb_ms)
{
	const struct pw_redirect *r = &cfg->redirect;
	*pin = r->pin_path[0] ? r->pin_path : PW_LOADER_DEFAULT_PIN;
	*hb_ms = r->heartbeat_timeout_ms > 0 ? r->heartbeat_timeout_ms : DEFAULT_HEARTBEAT_MS;
}

int pw_maps_build_config(const struct pw_config *cfg, uint32_t tgid, struct pw_bpf_config *out,
                         char *err, size_t errlen)
{
	const struct pw_redirect *r = &cfg->redirect;
	const char *pin;
	int hb_ms;
	pw_maps_resolve(cfg, &pin, &hb_ms);
	memset(out, 0, sizeof(*out));
	out->abi_version = PW_ABI_VERSION;
	out->fail_mode = r->fail_open ? PW_FAIL_OPEN : PW_FAIL_CLOSED;
	out->heartbeat_timeout_ns = (uint64_t)hb_ms * 1000000ull;
	out->mark = r->mark;
	out->enforcer_tgid = tgid;
	out->fastpath = r->fastpath ? 1 : 0;
	out->dst_filter = r->n_destinations > 0;
	out->unix_refuse = r->unix_refuse;

	const char *l4 = r->listen4[0] ? r->listen4 : "127.0.0.1";
	struct in_addr a4;
	if (inet_pton(AF_INET, l4, &a4) != 1) {
		pw_errf(err, errlen, "redirect listen4 \"%s\" is not an IPv4 address", l4);
		return -1;
	}
	if (r->listen4_port <= 0 || r->listen4_port > 65535) {
		pw_errf(err, errlen, "redirect listen4 port %d is out of range", r->listen4_port);
		return -1;
	}
	out->listen4_addr = a4.s_addr;
	out->listen4_port = htons((uint16_t)r->listen4_port);
	if (r->listen6[0]) {
		struct in6_addr a6;
		int port = r->listen6_port ? r->listen6_port : r->listen4_port;
		if (inet_pton(AF_INET6, r->listen6, &a6) != 1) {
			pw_errf(err, errlen, "redirect listen6 \"%s\" is not an IPv6 address",
			        r->listen6);
			return -1;
		}
		if (port <= 0 || port > 65535) {
			pw_errf(err, errlen, "redirect listen6 port %d is out of range", port);
			return -1;
		}
		memcpy(out->listen6_addr, &a6, sizeof(a6));
		out->listen6_port = htons((uint16_t)port);
	}
	return 0;
}

int pw_maps_build_ports(const struct pw_config *cfg, uint16_t *ports, int *n, char *err,
                        size_t errlen)
{
	const struct pw_redirect *r = &cfg->redirect;
	*n = 0;
	if (r->n_ports <= 0) {
		ports[(*n)++] = DEFAULT_PORT;
		return 0;
	}
	for (int i = 0; i < r->n_ports && i < PW_MAX_REDIRECT_PORTS; i++) {
		if (r->ports[i] <= 0 || r->ports[i] > 65535) {
			pw_errf(err, errlen, "redirect port %d is out of range", r->ports[i]);
			return -1;
		}
		ports[(*n)++] = (uint16_t)r->ports[i];
	}
	return 0;
}

/* ---- the cgroups in scope ---- */

int pw_maps_cgroup_norm(const char *in, char *out, size_t len, char *err, size_t errlen)
{
	char root[PATH_MAX];
	if (pw_host_cgroup_root(root, sizeof(root)) < 0) {
		pw_errf(err, errlen, "no cgroup v2 hierarchy is mounted");
		return -1;
	}
	if (in[0] != '/') {
		pw_errf(err, errlen, "cgroup %s: expected an absolute path", PW_Q(in));
		return -1;
	}
	size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
	const char *p = in;
	if (rl && strncmp(in, root, rl) == 0 && (in[rl] == '/' || !in[rl]))
		p = in + rl;
	if (rl >= len)
		goto long_path;
	memcpy(out, root, rl);
	size_t o = rl;
	/* component by component: no "." or ".." may lead out of the hierarchy */
	while (*p) {
		while (*p == '/')
			p++;
		size_t cl = strcspn(p, "/");
		if (!cl)
			break;
		if ((cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.')) {
			pw_errf(err, errlen, "cgroup %s: \".\" and \"..\" are not allowed",
			        PW_Q(in));
			return -1;
		}
		if (o + 1 + cl >= len)
			goto long_path;
		out[o++] = '/';
		memcpy(out + o, p, cl);
		o += cl;
		p += cl;
	}
	if (!o)
		out[o++] = '/';
	out[o] = '\0';
	return 0;
long_path:
	pw_errf(err, errlen, "cgroup %s: the path is too long", PW_Q(in));
	return -1;
}

void pw_maps_cgroup_rel(const char *dir, char *out, size_t len)
{
	char root[PATH_MAX];
	size_t rl = pw_host_cgroup_root(root, sizeof(root)) == 0 ? strlen(root) : 0;
	if (rl > 1 && strncmp(dir, root, rl) == 0 && (dir[rl] == '/' || !dir[rl]))
		snprintf(out, len, "%s", dir[rl] ? dir + rl : "/");
	else
		snprintf(out, len, "%s", dir);
}

/* The first of t[from..n) that is pgwardd's own cgroup or one of its ancestors: its index;
 * -1 for none; -2 (err set) when pgwardd's own cgroup cannot be found. */
static int holding_self(const struct pw_cg_target *t, int from, int n, char *err, size_t errlen)
{
	char self[PATH_MAX], root[PATH_MAX];
	if (pw_host_self_cgroup(self, sizeof(self)) < 0 ||
	    pw_host_cgroup_root(root, sizeof(root)) < 0) {
		pw_errf(err, errlen, "cannot find pgwardd's own cgroup v2 directory");
		return -2;
	}
	size_t rl = strlen(root);
	for (;;) {
		uint64_t id;
		if (pw_host_cgroup_id(self, &id, err, errlen) < 0)
			return -2;
		for (int j = from; j < n; j++)
			if (t[j].id == id)
				return j;
		char *slash = strrchr(self, '/');
		if (strlen(self) <= rl || !slash || (size_t)(slash - self) < rl)
			return -1;
		*slash = '\0';
	}
}

bool pw_maps_holds_self(uint64_t id)
{
	struct pw_cg_target t = {.id = id};
	return holding_self(&t, 0, 1, NULL, 0) != -1;
}

static int find_id(const struct pw_cg_target *t, int n, uint64_t id)
{
	for (int j = 1; j < n; j++)
		if (t[j].id == id)
			return j;
	return -1;
}

static void add_target(struct pw_cg_target *t, int *n, const char *path, uint64_t id, bool runtime)
{
	memset(&t[*n], 0, sizeof(t[*n]));
	snprintf(t[*n].path, sizeof(t[*n].path), "%s", path);
	t[*n].id = id;
	t[*n].in_scope = true;
	t[*n].runtime = runtime;
	(*n)++;
}

/* Is path (normalized) one of list's? */
static bool listed(const char (*list)[PATH_MAX], int n, const char *path)
{
	char norm[PATH_MAX];
	if (pw_maps_cgroup_norm(path, norm, sizeof(norm), NULL, 0) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (strcmp(list[i], norm) == 0)
			return true;
	return false;
}

/* "; "-separated names for the log line of the overrides */
static void note(char *buf, size_t len, const char *path)
{
	char rel[PATH_MAX];
	size_t off = strlen(buf);
	pw_maps_cgroup_rel(path, rel, sizeof(rel));
	if (off + 2 < len)
		snprintf(buf + off, len - off, "%s%s", off ? " " : "", PW_Q(rel));
}

/* The configuration's cgroups after t[0], less the overrides' removals when dels. */
static int config_targets(const struct pw_config *cfg, const struct pw_cg_overrides *ov, bool dels,
                          struct pw_cg_target *t, int *n, char *removed, size_t rlen, char *err,
                          size_t errlen)
{
	const struct pw_redirect *r = &cfg->redirect;
	*n = 1;
	removed[0] = '\0';
	for (int i = 0; i < r->n_cgroups && i < PW_MAX_REDIRECT_CGROUPS; i++) {
		if (dels && ov && listed(ov->del, ov->n_del, r->cgroups[i])) {
			note(removed, rlen, r->cgroups[i]);
			continue;
		}
		uint64_t id;
		if (pw_host_cgroup_id(r->cgroups[i], &id, err, errlen) < 0)
			return -1;
		if (find_id(t, *n, id) < 0)
			add_target(t, n, r->cgroups[i], id, false);
	}
	return 0;
}

/* The overrides' additions: one that cannot be is warned about and skipped, never fatal. */
static void runtime_targets(const struct pw_cg_overrides *ov, struct pw_cg_target *t, int *n,
                            char *added, size_t alen)
{
	added[0] = '\0';
	for (int i = 0; ov && i < ov->n_add; i++) {
		char why[PATH_MAX + 64];
		uint64_t id;
		if (pw_host_cgroup_id(ov->add[i], &id, why, sizeof(why)) < 0) {
			pw_warn("eBPF scope: %s adds %s: %s: skipped", ov->file, PW_Q(ov->add[i]),
			        why);
			continue;
		}
		if (find_id(t, *n, id) >= 0)
			continue;
		if (pw_maps_holds_self(id)) {
			pw_warn("eBPF scope: %s adds %s, which holds pgwardd itself: skipped",
			        ov->file, PW_Q(ov->add[i]));
			continue;
		}
		if (*n >= PW_MAX_TARGETS) {
			pw_warn("eBPF scope: %s adds %s: the scope is full (%d cgroups): skipped",
			        ov->file, PW_Q(ov->add[i]), PW_MAX_REDIRECT_CGROUPS);
			continue;
		}
		add_target(t, n, ov->add[i], id, true);
		note(added, alen, ov->add[i]);
	}
}

/* The root (attached to), then every scope cgroup (deduplicated by id; map entries only). */
int pw_maps_build_targets(const struct pw_config *cfg, const struct pw_cg_overrides *ov,
                          struct pw_cg_target *t, int *n, char *err, size_t errlen)
{
	const struct pw_redirect *r = &cfg->redirect;
	char added[1024], removed[1024];
	*n = 0;
	memset(&t[0], 0, sizeof(t[0]));
	if (pw_host_cgroup_root(t[0].path, sizeof(t[0].path)) < 0) {
		pw_errf(err, errlen, "no cgroup v2 hierarchy is mounted");
		return -1;
	}
	if (pw_host_cgroup_id(t[0].path, &t[0].id, err, errlen) < 0)
		return -1;
	t[0].attach = true;
	if (config_targets(cfg, ov, true, t, n, removed, sizeof(removed), err, errlen) < 0)
		return -1;
	runtime_targets(ov, t, n, added, sizeof(added));
	if (*n == 1 && r->n_uids <= 0 && removed[0]) {
		/* cgroup del never empties the scope: the configuration changed under the file */
		pw_warn("eBPF scope: %s would leave nothing in scope: its removals (%s) are not "
		        "applied",
		        ov->file, removed);
		if (config_targets(cfg, ov, false, t, n, removed, sizeof(removed), err, errlen) < 0)
			return -1;
	}
	if (*n == 1 && r->n_uids <= 0) {
		pw_errf(err, errlen, "redirect: nothing in scope (no cgroups, no uids)");
		return -1;
	}
	/* pgwardd in its own scope could not bind its listeners, and its connects would pass
	 * only by the mark: refuse the configuration instead */
	int self = holding_self(t, 1, *n, err, errlen);
	if (self == -2)
		return -1;
	if (self >= 0) {
		pw_errf(err, errlen,
		        "pgwardd's own cgroup is in the redirect scope (through %s): run pgwardd "
		        "outside the agents' cgroups",
		        t[self].path);
		return -1;
	}
	for (int i = 0; i < r->n_uids; i++)
		if (r->uids[i] == (unsigned)geteuid()) {
			pw_errf(err, errlen, "pgwardd's own uid %u is in the redirect scope",
			        r->uids[i]);
			return -1;
		}
	if (ov && (ov->n_add || ov->n_del))
		pw_info("eBPF scope: applied the overrides of %s: added %s, removed %s", ov->file,
		        added[0] ? added : "none", removed[0] ? removed : "none");
	return 0;
}

/* Make a hash map with __u8 values hold exactly these keys: add first, then drop the rest, so
 * a key in both the old and the new set is never missing. */
int pw_maps_sync_set(int fd, const void *keys, int n, size_t ksz, uint32_t max)
{
	const char *kp = keys;
	uint8_t one = 1;
	for (int i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, kp + i * ksz, &one, BPF_ANY) < 0)
			return -errno_or(EIO);
	char *stale = calloc(max ? max : 1, ksz);
	if (!stale)
		return -ENOMEM;
	char cur[sizeof(struct pw_unix_path)],
	    next[sizeof(struct pw_unix_path)]; /* the largest key */
	int ns = 0;
	void *prev = NULL;
	while (ns < (int)max && bpf_map_get_next_key(fd, prev, next) == 0) {
		bool keep = false;
		for (int i = 0; i < n && !keep; i++)
			keep = memcmp(kp + i * ksz, next, ksz) == 0;
		if (!keep)
			memcpy(stale + ns++ * ksz, next, ksz);
		memcpy(cur, next, ksz);
		prev = cur;
	}
	for (int i = 0; i < ns; i++)
		bpf_map_delete_elem(fd, stale + i * ksz);
	free(stale);
	return 0;
}

static void dst_key(struct pw_dst_key *k, int family, const void *addr, int bits)
{
	memset(k, 0, sizeof(*k));
	k->family = htonl((uint32_t)family);
	k->prefixlen = 32 + (uint32_t)bits;
	memcpy(k->addr, addr, family == AF_INET ? 4 : 16);
}

/* Do the network c and the network (family, a, bits) share an address? */
static bool overlaps(const struct pw_cidr *c, int family, const uint8_t *a, int bits)
{
	if (c->family != family)
		return false;
	int b = c->bits < bits ? c->bits : bits, full = b / 8, rest = b % 8;
	if (memcmp(c->addr, a, (size_t)full) != 0)
		return false;
	return !rest || ((c->addr[full] ^ a[full]) & (0xff00 >> rest) & 0xff) == 0;
}

/* The destination filter's trie from the configured CIDRs. A database on this host is
 * reachable through every address of the host (127.0.0.0/8, ::1, 0.0.0.0, ::, each
 * interface's): when any configured network holds one of them, all of them are steered,
 * or the agent would dial the same server through another one. */
static int sync_dsts(const struct pw_config *cfg, int fd)
{
	struct pw_dst_key keys[PW_MAX_DSTS];
	int n = 0;
	const struct pw_redirect *r = &cfg->redirect;
	for (int i = 0; i < r->n_destinations && n < PW_MAX_DSTS; i++, n++)
		dst_key(&keys[n], r->destinations[i].family, r->destinations[i].addr,
		        r->destinations[i].bits);
	/* this host's addresses */
	struct {
		int family;
		uint8_t a[16];
		int bits;
	} local[PW_MAX_DSTS];
	int nl = 0;
	static const uint8_t lo4[4] = {127, 0, 0, 0}, any[16] = {0},
	                     lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	local[nl].family = AF_INET, memcpy(local[nl].a, lo4, 4), local[nl++].bits = 8;
	local[nl].family = AF_INET, memcpy(local[nl].a, any, 4), local[nl++].bits = 32;
	local[nl].family = AF_INET6, memcpy(local[nl].a, lo6, 16), local[nl++].bits = 128;
	local[nl].family = AF_INET6, memcpy(local[nl].a, any, 16), local[nl++].bits = 128;
	struct ifaddrs *ifs = NULL;
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i && nl < PW_MAX_DSTS; i = i->ifa_next) {
			if (!i->ifa_addr)
				continue;
			if (i->ifa_addr->sa_family == AF_INET) {
				local[nl].family = AF_INET;
				memcpy(local[nl].a, &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
				       4);
				local[nl++].bits = 32;
			} else if (i->ifa_addr->sa_family == AF_INET6) {
				local[nl].family = AF_INET6;
				memcpy(local[nl].a,
				       &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
				local[nl++].bits = 128;
			}
		}
		freeifaddrs(ifs);
	}
	bool local_db = false;
	for (int i = 0; i < r->n_destinations && !local_db; i++)
		for (int j = 0; j < nl && !local_db; j++)
			local_db = overlaps(&r->destinations[i], local[j].family, local[j].a,
			                    local[j].bits);
	for (int j = 0; local_db && j < nl && n < PW_MAX_DSTS; j++)
		dst_key(&keys[n++], local[j].family, local[j].a, local[j].bits);
	return pw_maps_sync_set(fd, keys, n, sizeof(keys[0]), PW_MAX_DSTS);
}

static int sync_deny(const struct pw_config *cfg, int fd)
{
	struct pw_deny_key keys[PW_MAX_DENY];
	int n = 0;
	const struct pw_redirect *r = &cfg->redirect;
	for (int i = 0; i < r->n_deny && n < PW_MAX_DENY; i++, n++) {
		memset(&keys[n], 0, sizeof(keys[n]));
		keys[n].family = htonl((uint32_t)r->deny[i].family);
		keys[n].port = htons((uint16_t)r->deny_port[i]);
		keys[n].prefixlen = 64 + (uint32_t)r->deny[i].bits;
		memcpy(keys[n].addr, r->deny[i].addr, sizeof(keys[n].addr));
	}
	return pw_maps_sync_set(fd, keys, n, sizeof(keys[0]), PW_MAX_DENY);
}

static int sync_uids(const struct pw_config *cfg, int fd)
{
	return pw_maps_sync_set(fd, cfg->redirect.uids, cfg->redirect.n_uids,
	                        sizeof(cfg->redirect.uids[0]), PW_MAX_SCOPE_UID);
}

/* pgwardd's own unix listeners: an agent told to use pgwardd by a socket path may, even when
 * the path names a steered port */
static int sync_unix_own(const struct pw_config *cfg, int fd)
{
	struct pw_unix_path keys[PW_MAX_UNIX_OWN];
	int n = 0;
	for (int i = 0; i < cfg->n_listen && n < PW_MAX_UNIX_OWN; i++) {
		if (!cfg->listen[i].is_unix)
			continue;
		memset(&keys[n], 0, sizeof(keys[n]));
		snprintf(keys[n].path, sizeof(keys[n].path), "%s", cfg->listen[i].unix_path);
		n++;
	}
	return pw_maps_sync_set(fd, keys, n, sizeof(keys[0]), PW_MAX_UNIX_OWN);
}

/* Everything of the maps the configuration says besides the scope cgroups and ports. */
int pw_maps_sync_filters(const struct pw_config *cfg, struct pw_filter_fds fds)
{
	int rc = sync_dsts(cfg, fds.dsts);
	if (rc == 0)
		rc = sync_unix_own(cfg, fds.unix_own);
	if (rc == 0)
		rc = sync_deny(cfg, fds.deny);
	if (rc == 0)
		rc = sync_uids(cfg, fds.scope_uid);
	return rc;
}

int pw_maps_sync_scope(int fd, const struct pw_cg_target *t, int n)
{
	uint64_t ids[PW_MAX_TARGETS];
	int k = 0;
	for (int i = 0; i < n; i++)
		if (t[i].in_scope)
			ids[k++] = t[i].id;
	return pw_maps_sync_set(fd, ids, k, sizeof(ids[0]), PW_MAX_SCOPE);
}

/* ---- the override file (redirect.overrides) ---- */

bool pw_maps_list_drop(char (*list)[PATH_MAX], int *n, const char *path)
{
	for (int i = 0; i < *n; i++) {
		if (strcmp(list[i], path) != 0)
			continue;
		memmove(list[i], list[i + 1], (size_t)(*n - i - 1) * PATH_MAX);
		(*n)--;
		return true;
	}
	return false;
}

bool pw_maps_list_add(char (*list)[PATH_MAX], int *n, const char *path)
{
	for (int i = 0; i < *n; i++)
		if (strcmp(list[i], path) == 0)
			return true;
	if (*n >= PW_MAX_REDIRECT_CGROUPS)
		return false;
	snprintf(list[(*n)++], PATH_MAX, "%s", path);
	return true;
}

int pw_maps_cgroup_target(const char *path, struct pw_cg_target *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (pw_maps_cgroup_norm(path, t->path, sizeof(t->path), err, errlen) < 0 ||
	    pw_host_cgroup_id(t->path, &t->id, err, errlen) < 0)
		return -1;
	if (pw_maps_holds_self(t->id)) {
		pw_errf(err, errlen,
		        "cgroup %s holds pgwardd itself: pgwardd must run outside the agents' "
		        "cgroups",
		        PW_Q(t->path));
		return -1;
	}
	t->in_scope = true;
	return 0;
}

static int read_list(json_t *j, const char *key, char (*dst)[PATH_MAX], int *n, const char *file,
                     char *err, size_t errlen)
{
	json_t *a = json_object_get(j, key), *v;
	size_t i;
	*n = 0;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > PW_MAX_REDIRECT_CGROUPS) {
		pw_errf(err, errlen, "%s: \"%s\": expected an array of at most %d cgroup paths",
		        file, key, PW_MAX_REDIRECT_CGROUPS);
		return -1;
	}
	json_array_foreach(a, i, v)
	{
		char why[PATH_MAX + 64] = "not a string";
		if (!json_is_string(v) || pw_maps_cgroup_norm(json_string_value(v), dst[*n],
		                                              PATH_MAX, why, sizeof(why)) < 0) {
			pw_errf(err, errlen, "%s: \"%s\"[%zu]: %s", file, key, i, why);
			return -1;
		}
		(*n)++;
	}
	return 0;
}

int pw_maps_overrides_read(struct pw_cg_overrides *ov, char *err, size_t errlen)
{
	ov->n_add = ov->n_del = 0;
	struct stat st;
	if (!ov->file[0] || (stat(ov->file, &st) < 0 && errno == ENOENT))
		return 0;
	/* it widens and narrows who is steered: only pgwardd's user may have written it */
	if (st.st_uid != geteuid() || (st.st_mode & 022) || !S_ISREG(st.st_mode)) {
		pw_errf(err, errlen,
		        "%s: not a regular file owned by uid %u and writable by it alone (uid %u, "
		        "mode %04o)",
		        ov->file, (unsigned)geteuid(), (unsigned)st.st_uid,
		        (unsigned)(st.st_mode & 07777));
		return -1;
	}
	json_error_t je;
	json_t *j = json_load_file(ov->file, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		pw_errf(err, errlen, "%s: line %d: %s", ov->file, je.line, je.text);
		return -1;
	}
	const char *k;
	json_t *v;
	int rc = 0;
	if (!json_is_object(j)) {
		pw_errf(err, errlen, "%s: expected {\"add\": [paths], \"del\": [paths]}", ov->file);
		rc = -1;
	}
	json_object_foreach(rc ? NULL : j, k, v)
	{
		if (strcmp(k, "add") != 0 && strcmp(k, "del") != 0) {
			pw_errf(err, errlen, "%s: unknown key %s (expected \"add\" and \"del\")",
			        ov->file, PW_Q(k));
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		rc = read_list(j, "add", ov->add, &ov->n_add, ov->file, err, errlen);
	if (rc == 0)
		rc = read_list(j, "del", ov->del, &ov->n_del, ov->file, err, errlen);
	json_decref(j);
	if (rc < 0)
		ov->n_add = ov->n_del = 0;
	return rc;
}

struct pw_cg_overrides *pw_maps_overrides_load(const struct pw_config *cfg)
{
	struct pw_cg_overrides *ov = calloc(1, sizeof(*ov));
	if (!ov) {
		pw_warn("eBPF scope: out of memory: the override file %s is not applied",
		        cfg->redirect.overrides);
		return NULL;
	}
	snprintf(ov->file, sizeof(ov->file), "%s", cfg->redirect.overrides);
	char err[PATH_MAX + 256];
	if (pw_maps_overrides_read(ov, err, sizeof(err)) < 0)
		pw_warn("eBPF scope: the override file cannot be used (%s): ignored", err);
	return ov;
}

/* mkdir -p, the directories it makes 0700 */
static int make_dirs(const char *dir)
{
	char buf[PATH_MAX];
	if ((size_t)snprintf(buf, sizeof(buf), "%s", dir) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		if (!c)
			return 0;
		*p = c;
	}
}

static char *overrides_text(const struct pw_cg_overrides *ov)
{
	json_t *j = json_object(), *add = json_array(), *del = json_array();
	int bad = !j || !add || !del;
	for (int i = 0; i < ov->n_add; i++)
		bad |= json_array_append_new(add, json_string(ov->add[i]));
	for (int i = 0; i < ov->n_del; i++)
		bad |= json_array_append_new(del, json_string(ov->del[i]));
	bad |= json_object_set_new(j, "add", add) | json_object_set_new(j, "del", del);
	char *text = bad ? NULL : json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	return text;
}

/* text into path, whole and on disk: a temporary file beside it, fsync, rename, the directory
 * fsynced; a crash leaves the old file or the new one */
static int write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (slash && slash != dir && make_dirs(dir) < 0) {
		pw_errf(err, errlen, "creating %s: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		pw_errf(err, errlen, "creating %s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	int e = off < len ? (errno ? errno : EIO) : 0;
	if (!e && (write(fd, "\n", 1) != 1 || fsync(fd) < 0))
		e = errno ? errno : EIO;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e) {
		unlink(tmp);
		pw_errf(err, errlen, "writing %s: %s", path, strerror(e));
		return -1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int pw_maps_overrides_write(const struct pw_cg_overrides *ov, char *err, size_t errlen)
{
	if (!ov->file[0]) {
		pw_errf(err, errlen, "redirect.overrides is not set: the change cannot be kept");
		return -1;
	}
	char *text = overrides_text(ov);
	if (!text) {
		pw_errf(err, errlen,
		        "%s: cannot encode the overrides (memory, or a path that is "
		        "not UTF-8)",
		        ov->file);
		return -1;
	}
	int rc = write_atomic(ov->file, text, err, errlen);
	free(text);
	return rc;
}
