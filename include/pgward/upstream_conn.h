/* Opening pgwardd's own connections to an upstream, the one way sessions, cancel requests and
 * pgconn.c (the catalog's and the janitor's client) do it: the upstream's address, and a
 * non-blocking socket carrying pgwardd's mark (the loop guard: the kernel programs never steer
 * a marked socket back into pgwardd) whose connect has begun. */
#ifndef PGWARD_UPSTREAM_CONN_H
#define PGWARD_UPSTREAM_CONN_H

#include <stddef.h>
#include <sys/socket.h>

#include "pgward/config.h"

/* A unix-socket upstream's socket path (<unix_dir>/.s.PGSQL.<port>). 0, or -1 when it does not
 * fit. */
int pw_upstream_unix_path(const struct pw_upstream *u, char *out, size_t len);
/* The upstream's address: its socket path, a numeric host, or the first address a name
 * resolves to. 0, or -1. */
int pw_upstream_address(const struct pw_upstream *u, struct sockaddr_storage *addr, socklen_t *len);
/* The mark pgwardd's own upstream connections carry under cfg (0: the redirect is off). */
unsigned pw_upstream_mark(const struct pw_config *cfg);
/* A non-blocking socket to sa whose connect has begun (or completed), with SO_MARK mark (0:
 * none) and TCP_NODELAY; -1 with errno set. */
int pw_upstream_open(const struct sockaddr *sa, socklen_t len, unsigned mark);
#endif
