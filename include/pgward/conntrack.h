/* The kernel's record of each steered connection (who connected, where to), kept in the BPF
 * tuple map keyed by the 4-tuple and netns, as sessions read it: once per accepted connection,
 * from any worker thread, one bpf syscall each. The map itself belongs to the loader
 * (loader.h), which registers it here; without a registered map every lookup is a miss. */
#ifndef PGWARD_CONNTRACK_H
#define PGWARD_CONNTRACK_H

#include <sys/socket.h>

#include "pgward/abi.h"

/* 0 found (out filled), -1 miss (or no map). */
int pw_conntrack_lookup(const struct pw_conn_key *k, struct pw_conn_info *out);
/* Deletes the entry (the session owns the facts from now on). */
void pw_conntrack_forget(const struct pw_conn_key *k);
/* lookup + forget in one syscall. 0 found, -1 miss. */
int pw_conntrack_take(const struct pw_conn_key *k, struct pw_conn_info *out);
/* The same for an accepted socket fd (peer: the agent's address as accept() gave it): the key
 * is the tuple as this side sees it, and the socket's network namespace. 0 found, -1 miss. */
int pw_conntrack_take_accepted(int fd, const struct sockaddr *peer, struct pw_conn_info *out);

/* For the loader only. The map to read from now on (-1: none); the caller keeps fd open for
 * as long as a reader may still use it. */
void pw_conntrack_register(int fd);
/* The same, only if no map is registered yet (a pinned map read before the loader starts). */
void pw_conntrack_register_first(int fd);

#endif
