/* Unit tests for user/sdnotify.c: the readiness datagrams reach a path or an abstract socket,
 * NOTIFY_SOCKET is taken out of the environment, and nothing is sent without one. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgward/sdnotify.h"
#include "check.h"

static int listener(const char *name, bool abstract)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s%s", abstract ? "@" : "", name);
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path));
	if (abstract)
		a.sun_path[0] = 0;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0)
		return -1;
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void got(int fd, const char *want, const char *what)
{
	char buf[600] = "";
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	bool ok = n > 0 && strcmp(buf, want) == 0;
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = '|'; /* one TAP line */
	CHECK(ok, "%s: \"%s\"", what, buf);
}

int main(void)
{
	/* no NOTIFY_SOCKET: a no-op that says it succeeded */
	unsetenv("NOTIFY_SOCKET");
	pw_sd_init();
	CHECK(pw_sd_notify("READY=1") == 0,
	      "without NOTIFY_SOCKET nothing is sent, and that is fine");

	char path[64];
	snprintf(path, sizeof(path), "/tmp/pgward-sdnotify-%d.sock", (int)getpid());
	int fd = listener(path, false);
	CHECK(fd >= 0, "a datagram socket at %s", path);
	setenv("NOTIFY_SOCKET", path, 1);
	pw_sd_init();
	CHECK(getenv("NOTIFY_SOCKET") == NULL, "NOTIFY_SOCKET is removed from the environment");
	CHECK(pw_sd_notify("READY=1\nMAINPID=%d\nSTATUS=%s", 42, "serving") == 0, "sent");
	got(fd, "READY=1\nMAINPID=42\nSTATUS=serving", "a path socket gets the lines as sent");
	char big[1024];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK(pw_sd_notify("STATUS=%s", big) == -1, "a message too long is refused, not cut");
	close(fd);
	unlink(path);
	CHECK(pw_sd_notify("STOPPING=1") == -1, "a send to a socket that is gone fails (-1)");

	char name[64];
	snprintf(name, sizeof(name), "pgward-sdnotify-abstract-%d", (int)getpid());
	fd = listener(name, true);
	char env[80];
	snprintf(env, sizeof(env), "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);
	pw_sd_init();
	CHECK(pw_sd_notify("RELOADING=1") == 0, "sent to an abstract socket");
	got(fd, "RELOADING=1", "an abstract socket (@name) gets it");
	close(fd);

	/* not a socket address systemd would give: ignored, and still taken out */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	pw_sd_init();
	CHECK(getenv("NOTIFY_SOCKET") == NULL && pw_sd_notify("READY=1") == 0,
	      "a NOTIFY_SOCKET that is neither a path nor @abstract is ignored");
	return check_done();
}
