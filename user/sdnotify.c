/* sd_notify(3) without libsystemd: see include/pgward/sdnotify.h. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgward/sdnotify.h"

/* Written once by pw_sd_init before any thread starts; read-only afterwards. */
static struct sockaddr_un addr;
static socklen_t addrlen;

void pw_sd_init(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	addrlen = 0;
	if (s && (s[0] == '/' || s[0] == '@') && strlen(s) < sizeof(addr.sun_path)) {
		memset(&addr, 0, sizeof(addr));
		addr.sun_family = AF_UNIX;
		memcpy(addr.sun_path, s, strlen(s));
		if (s[0] == '@')
			addr.sun_path[0] = '\0'; /* the abstract namespace */
		addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(s));
	}
	unsetenv("NOTIFY_SOCKET");
}

int pw_sd_notify(const char *fmt, ...)
{
	if (!addrlen)
		return 0;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg)) {
		errno = EMSGSIZE;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ssize_t w = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen);
	int e = errno;
	close(fd);
	errno = e;
	return w == n ? 0 : -1;
}
