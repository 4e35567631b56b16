/* The contents of the redirect's maps, from the configuration: see
 * include/pgward/loader_maps.h. */
#include "pgward/loader_maps.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

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

/* The root (attached to), then every scope cgroup (deduplicated by id; map entries only). */
int pw_maps_build_targets(const struct pw_config *cfg, struct pw_cg_target *t, int *n, char *err,
                          size_t errlen)
{
	const struct pw_redirect *r = &cfg->redirect;
	*n = 0;
	if (r->n_cgroups <= 0 && r->n_uids <= 0) {
		pw_errf(err, errlen, "redirect: nothing in scope (no cgroups, no uids)");
		return -1;
	}
	memset(&t[0], 0, sizeof(t[0]));
	if (pw_host_cgroup_root(t[0].path, sizeof(t[0].path)) < 0) {
		pw_errf(err, errlen, "no cgroup v2 hierarchy is mounted");
		return -1;
	}
	if (pw_host_cgroup_id(t[0].path, &t[0].id, err, errlen) < 0)
		return -1;
	t[0].attach = true;
	*n = 1;
	for (int i = 0; i < r->n_cgroups && i < PW_MAX_REDIRECT_CGROUPS; i++) {
		uint64_t id;
		if (pw_host_cgroup_id(r->cgroups[i], &id, err, errlen) < 0)
			return -1;
		bool dup = false;
		for (int j = 1; j < *n; j++)
			dup |= t[j].id == id;
		if (dup)
			continue;
		memset(&t[*n], 0, sizeof(t[*n]));
		snprintf(t[*n].path, sizeof(t[*n].path), "%s", r->cgroups[i]);
		t[*n].id = id;
		t[*n].in_scope = true;
		(*n)++;
	}
	/* pgwardd in its own scope could not bind its listeners, and its connects would pass
	 * only by the mark: refuse the configuration instead */
	char self[PATH_MAX];
	if (pw_host_self_cgroup(self, sizeof(self)) < 0) {
		pw_errf(err, errlen, "cannot find pgwardd's own cgroup v2 directory");
		return -1;
	}
	size_t rl = strlen(t[0].path);
	for (;;) {
		uint64_t id;
		if (pw_host_cgroup_id(self, &id, err, errlen) < 0)
			return -1;
		for (int j = 1; j < *n; j++)
			if (t[j].id == id) {
				pw_errf(
				    err, errlen,
				    "pgwardd's own cgroup is in the redirect scope (through %s): "
				    "run pgwardd outside the agents' cgroups",
				    t[j].path);
				return -1;
			}
		char *slash = strrchr(self, '/');
		if (strlen(self) <= rl || !slash || (size_t)(slash - self) < rl)
			break;
		*slash = '\0';
	}
	for (int i = 0; i < r->n_uids; i++)
		if (r->uids[i] == (unsigned)geteuid()) {
			pw_errf(err, errlen, "pgwardd's own uid %u is in the redirect scope",
			        r->uids[i]);
			return -1;
		}
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
