/* pgwardd's own connections to an upstream. See include/pgward/upstream_conn.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgward/upstream_conn.h"

int pw_upstream_unix_path(const struct pw_upstream *u, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/.s.PGSQL.%d", u->unix_dir, u->port);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

unsigned pw_upstream_mark(const struct pw_config *cfg)
{
	return cfg->redirect.enabled ? cfg->redirect.mark : 0;
}

int pw_upstream_address(const struct pw_upstream *u, struct sockaddr_storage *addr, socklen_t *len)
{
	memset(addr, 0, sizeof(*addr));
	if (u->unix_dir[0]) {
		struct sockaddr_un *un = (void *)addr;
		un->sun_family = AF_UNIX;
		if (pw_upstream_unix_path(u, un->sun_path, sizeof(un->sun_path)) < 0)
			return -1;
		*len = sizeof(*un);
		return 0;
	}
	struct sockaddr_in *a4 = (void *)addr;
	struct sockaddr_in6 *a6 = (void *)addr;
	if (inet_pton(AF_INET, u->host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)u->port);
		*len = sizeof(*a4);
		return 0;
	}
	if (inet_pton(AF_INET6, u->host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)u->port);
		*len = sizeof(*a6);
		return 0;
	}
	/* A name: resolved synchronously (from /etc/hosts in practice); numeric addresses in the
	 * configuration keep DNS off the worker threads. */
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	char port[8];
	snprintf(port, sizeof(port), "%d", u->port);
	if (getaddrinfo(u->host, port, &hints, &res) != 0)
		return -1;
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int pw_upstream_open(const struct sockaddr *sa, socklen_t len, unsigned mark)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		goto fail;
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS && errno != EAGAIN)
		goto fail;
	return fd;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}
