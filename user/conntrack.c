/* Tuple-map lookups for sessions: see include/pgward/conntrack.h. */
#include "pgward/conntrack.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include <bpf/bpf.h>

/* Shared by every worker thread, read with no lock (one load before each syscall). Only the
 * loader writes it, from pgwardd's main thread: set before pw_loader_start returns, reset to -1
 * first thing in pw_loader_stop, so a late reader gets a miss rather than a lookup on a closed
 * descriptor (short of racing stop itself, which pgwardd does not do). It lives here rather
 * than in the loader so that session code needs only this module, not the loader's. */
static atomic_int conns_fd = -1;

void pw_conntrack_register(int fd)
{
	atomic_store(&conns_fd, fd);
}

void pw_conntrack_register_first(int fd)
{
	int none = -1;

	atomic_compare_exchange_strong(&conns_fd, &none, fd);
}

int pw_conntrack_lookup(const struct pw_conn_key *k, struct pw_conn_info *out)
{
	int fd = atomic_load(&conns_fd);

	if (fd < 0)
		return -1;
	return bpf_map_lookup_elem(fd, k, out) == 0 ? 0 : -1;
}

void pw_conntrack_forget(const struct pw_conn_key *k)
{
	int fd = atomic_load(&conns_fd);

	if (fd >= 0)
		bpf_map_delete_elem(fd, k);
}

int pw_conntrack_take(const struct pw_conn_key *k, struct pw_conn_info *out)
{
	int fd = atomic_load(&conns_fd);

	if (fd < 0)
		return -1;
	return bpf_map_lookup_and_delete_elem(fd, k, out) == 0 ? 0 : -1;
}

int pw_conntrack_take_accepted(int fd, const struct sockaddr *peer, struct pw_conn_info *out)
{
	struct sockaddr_storage local;
	socklen_t ll = sizeof(local);
	struct pw_conn_key k = {0};
	socklen_t cl = sizeof(k.netns_cookie);
	if (getsockname(fd, (struct sockaddr *)&local, &ll) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &k.netns_cookie, &cl) < 0)
		return -1;
	if (peer->sa_family == AF_INET) {
		const struct sockaddr_in *p = (const void *)peer, *l = (const void *)&local;
		k.family = AF_INET;
		k.agent_addr[0] = p->sin_addr.s_addr;
		k.agent_port = ntohs(p->sin_port);
		k.enforcer_addr[0] = l->sin_addr.s_addr;
		k.enforcer_port = ntohs(l->sin_port);
	} else if (peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *p = (const void *)peer, *l = (const void *)&local;
		k.family = AF_INET6;
		memcpy(k.agent_addr, &p->sin6_addr, 16);
		memcpy(k.enforcer_addr, &l->sin6_addr, 16);
		k.agent_port = ntohs(p->sin6_port);
		k.enforcer_port = ntohs(l->sin6_port);
	} else {
		return -1;
	}
	return pw_conntrack_take(&k, out);
}
