/* Tuple-map lookups for sessions: see include/pgward/conntrack.h. */
#include "pgward/conntrack.h"

#include <stdatomic.h>

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
