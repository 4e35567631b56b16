/* The audit trail to syslog (docs/audit.md): each chained line as one RFC 5424 message,
 *   <PRI>1 TIMESTAMP HOSTNAME pgward PID audit - <the line without its newline>
 * to a unix socket (datagram; a stream socket with octet counting) or an address over TCP
 * (RFC 6587 octet counting, "<len> <msg>") or UDP. Best effort: messages wait in a queue
 * (SYS_QUEUE bytes) and go out with non-blocking sends as the receiver takes them; what does
 * not fit the queue is dropped and counted; a lost connection is made again with backoff. The
 * writer never waits for syslog, but for at most a second at the stop, and a syslog failure
 * never fails the trail: the file is its record of truth.
 *
 * S belongs to the thread that runs the writer, as W does (audit_int.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgward/log.h"
#include "audit_int.h"

#define SYS_QUEUE   (4u << 20) /* bytes of messages waiting for the receiver */
#define BACKOFF_MIN 200        /* ms before connecting again, doubled to BACKOFF_MAX */
#define BACKOFF_MAX 30000
#define CLOSE_WAIT  1000 /* ms the queue gets at the stop */
#define SYS_SNDBUF  (1 << 20)

/* A queued message: its length (4 bytes, host order), then its bytes (a stream's octet count
 * is put before them as they are sent: the socket's type is known once connected). */
static struct sink {
	bool on;
	bool stream;     /* octet counting */
	int fd;          /* -1: not connected */
	bool connecting; /* a TCP connect in progress */
	bool down;       /* said so in the log: warn once per outage */
	bool full;       /* the queue overflowed: said once until it empties */
	struct sockaddr_storage addr;
	socklen_t alen;
	char *q;
	size_t qhead, qlen, qcap; /* messages from qhead to qlen */
	size_t qpart;             /* bytes of the first one sent already (a stream) */
	int64_t next_try_ms;
	int backoff_ms;
	char host[256];   /* HOSTNAME: printable ASCII, or "-" */
	const char *name; /* for the log: the socket's path or the address */
} S = {.fd = -1};

static void sys_drop(uint64_t n)
{
	cnt_add(C_SYS_DROPPED, n);
}

/* The connection is gone (or never came): closed, and tried again after the backoff. The
 * first message, when a part of it went out already, is lost with it (its framing is). */
static void disconnect(int e)
{
	if (S.fd >= 0)
		close(S.fd);
	S.fd = -1;
	S.connecting = false;
	if (S.qpart) {
		uint32_t n;
		memcpy(&n, S.q + S.qhead, 4);
		S.qhead += 4 + (size_t)n;
		S.qpart = 0;
		sys_drop(1);
	}
	S.next_try_ms = pw_audit_now_ms() + S.backoff_ms;
	S.backoff_ms = S.backoff_ms * 2 > BACKOFF_MAX ? BACKOFF_MAX : S.backoff_ms * 2;
	if (!S.down)
		pw_warn("audit: syslog %s: %s: messages wait (up to %u bytes), then are dropped; "
		        "trying again",
		        S.name, pw_audit_es(e), SYS_QUEUE);
	S.down = true;
}

static void connected(void)
{
	S.connecting = false;
	S.backoff_ms = BACKOFF_MIN;
	if (S.down)
		pw_info("audit: syslog %s: connected again", S.name);
	S.down = false;
}

/* A socket of type connected to S.addr: its fd (-1: none), *e 0, EINPROGRESS or why not. */
static int open_socket(int type, int *e)
{
	int fd = socket(S.addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	*e = fd < 0 ? errno : connect(fd, (struct sockaddr *)&S.addr, S.alen) < 0 ? errno : 0;
	return fd;
}

static void try_connect(void)
{
	bool tcp = cfg.syslog.proto == PW_AUDIT_SYSLOG_TCP;
	int e, fd = open_socket(tcp ? SOCK_STREAM : SOCK_DGRAM, &e);
	S.stream = tcp;
	if (fd >= 0 && e == EPROTOTYPE && S.addr.ss_family == AF_UNIX) {
		close(fd); /* a stream socket at the path: octet counting on it */
		fd = open_socket(SOCK_STREAM, &e);
		S.stream = true;
	}
	S.fd = fd;
	if (fd < 0 || (e && e != EINPROGRESS)) {
		disconnect(e);
		return;
	}
	int buf = SYS_SNDBUF; /* a datagram takes a whole record: room for big ones */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (e == EINPROGRESS)
		S.connecting = true;
	else
		connected();
}

/* A TCP connect in progress: done, failed, or still going. */
static void check_connect(void)
{
	struct pollfd p = {.fd = S.fd, .events = POLLOUT};
	int e = 0;
	socklen_t el = sizeof(e);
	if (poll(&p, 1, 0) <= 0)
		return;
	if (getsockopt(S.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e)
		disconnect(e);
	else
		connected();
}

/* The first queued message (n bytes at m) to the socket from where it stopped (qpart), with
 * its octet count first on a stream: 1 when it went whole, 0 a part of it, -1 (errno). */
static int send_first(const char *m, uint32_t n)
{
	char count[16];
	size_t cl = S.stream ? (size_t)snprintf(count, sizeof(count), "%u ", n) : 0, off = S.qpart;
	struct iovec iov[2];
	size_t k = 0, mo = off > cl ? off - cl : 0;
	if (off < cl)
		iov[k++] = (struct iovec){count + off, cl - off};
	iov[k++] = (struct iovec){(char *)m + mo, n - mo};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = k};
	ssize_t r = sendmsg(S.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (r < 0)
		return -1;
	if ((size_t)r < cl + n - off) {
		S.qpart += (size_t)r; /* a stream took a part */
		return 0;
	}
	return 1;
}

/* Every queued message the receiver takes now, without waiting. */
static void send_queued(void)
{
	while (S.fd >= 0 && !S.connecting && S.qhead < S.qlen) {
		uint32_t n;
		memcpy(&n, S.q + S.qhead, 4);
		int k = send_first(S.q + S.qhead + 4, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS))
			return; /* the receiver is behind: later (the writer polls for room) */
		if (k < 0 && errno == EMSGSIZE && !S.stream) {
			sys_drop(1); /* larger than a datagram can be */
		} else if (k < 0) {
			disconnect(errno);
			return;
		} else if (k == 0) {
			continue;
		} else {
			cnt_add(C_SYS_SENT, 1);
		}
		S.qhead += 4 + (size_t)n;
		S.qpart = 0;
	}
	if (S.qhead == S.qlen) {
		S.qhead = S.qlen = 0;
		S.full = false;
	}
}

void pw_audit_sink_pump(void)
{
	if (!S.on)
		return;
	if (S.fd < 0 && pw_audit_now_ms() >= S.next_try_ms)
		try_connect();
	if (S.connecting)
		check_connect();
	send_queued();
}

int pw_audit_sink_pollfd(short *ev)
{
	if (!S.on || S.fd < 0 || (!S.connecting && S.qhead == S.qlen))
		return -1;
	*ev = POLLOUT;
	return S.fd;
}

/* Room for n more bytes in the queue (moving what waits to its start); false: none. */
static bool queue_room(size_t n)
{
	if (S.qhead && S.qlen + n > S.qcap) {
		memmove(S.q, S.q + S.qhead, S.qlen - S.qhead);
		S.qlen -= S.qhead;
		S.qhead = 0;
	}
	if (S.qlen + n > SYS_QUEUE)
		return false;
	if (S.qlen + n > S.qcap) {
		size_t cap = S.qcap ? S.qcap : 65536;
		while (cap < S.qlen + n)
			cap *= 2;
		char *q = realloc(S.q, cap < SYS_QUEUE ? cap : SYS_QUEUE);
		if (!q)
			return false;
		S.q = q;
		S.qcap = cap < SYS_QUEUE ? cap : SYS_QUEUE;
	}
	return true;
}

/* The value of the line's top-level string member `,"key":"` (the first one: a quote inside
 * a string value is escaped, and the writer puts ts and type first); NULL when not found. */
static const char *member(const char *line, size_t n, const char *key, size_t *len)
{
	const char *p = memmem(line, n, key, strlen(key)), *e;
	if (!p)
		return NULL;
	p += strlen(key);
	if (!(e = memchr(p, '"', n - (size_t)(p - line))))
		return NULL;
	*len = (size_t)(e - p);
	return p;
}

/* PRI's severity: notice for refusals and denied statements, info for the rest. */
static int severity(const char *line, size_t n)
{
	static const char *const notice[] = {"connect_refused", "bypass_attempt",
	                                     "session_refused"};
	size_t tl = 0;
	const char *t = member(line, n, ",\"type\":\"", &tl);
	for (size_t i = 0; t && i < sizeof(notice) / sizeof(notice[0]); i++)
		if (tl == strlen(notice[i]) && memcmp(t, notice[i], tl) == 0)
			return 5;
	if (t && tl == 9 && memcmp(t, "statement", 9) == 0 &&
	    memmem(line, n, ",\"decision\":\"deny\"", 18))
		return 5;
	return 6;
}

/* One line (without its newline) as a message into the queue; false when it does not fit. */
static bool queue_line(const char *line, size_t n)
{
	char head[512];
	size_t tl = 0;
	const char *ts = member(line, n, ",\"ts\":\"", &tl);
	if (!ts || tl == 0 || tl > 40 || strspn(ts, "0123456789-T:.Z") < tl)
		ts = "-", tl = 1;
	int hl = snprintf(head, sizeof(head), "<%d>1 %.*s %s pgward %ld audit - ",
	                  cfg.syslog.facility * 8 + severity(line, n), (int)tl, ts, S.host, W.pid);
	size_t msg = (size_t)hl + n;
	if (hl < 0 || (size_t)hl >= sizeof(head) || msg > SYS_QUEUE || !queue_room(4 + msg))
		return false;
	uint32_t m32 = (uint32_t)msg;
	memcpy(S.q + S.qlen, &m32, 4);
	memcpy(S.q + S.qlen + 4, head, (size_t)hl);
	memcpy(S.q + S.qlen + 4 + hl, line, n);
	S.qlen += 4 + msg;
	return true;
}

void pw_audit_sink_send(const char *lines, size_t n)
{
	if (!S.on)
		return;
	uint64_t dropped = 0;
	for (const char *p = lines, *end = lines + n, *nl; p < end; p = nl + 1) {
		if (!(nl = memchr(p, '\n', (size_t)(end - p))))
			break;
		if (!queue_line(p, (size_t)(nl - p)))
			dropped++;
	}
	if (dropped)
		sys_drop(dropped);
	if (dropped && !S.full && !S.down)
		pw_warn("audit: syslog %s does not take the messages as fast as they come: some "
		        "are dropped (counted; the trail's file is not affected)",
		        S.name);
	S.full |= dropped > 0;
	pw_audit_sink_pump();
}

/* "host:port" or "[v6]:port" into S.addr (a name is looked up here, once). */
static int resolve(char *err, size_t errlen)
{
	char host[272], *port;
	struct addrinfo hints = {.ai_family = AF_UNSPEC}, *res = NULL;
	snprintf(host, sizeof(host), "%s", cfg.syslog.address);
	char *h = host;
	if (*h == '[' && (port = strstr(h, "]:"))) {
		*port = 0;
		h++;
		port += 2;
	} else if ((port = strrchr(h, ':'))) {
		*port++ = 0;
	}
	hints.ai_socktype = cfg.syslog.proto == PW_AUDIT_SYSLOG_TCP ? SOCK_STREAM : SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	int g = port ? getaddrinfo(h, port, &hints, &res) : EAI_NONAME;
	if (g || !res || res->ai_addrlen > sizeof(S.addr)) {
		pw_errf(err, errlen, "audit: syslog address %s: %s", cfg.syslog.address,
		        g ? gai_strerror(g) : "no address");
		if (res)
			freeaddrinfo(res);
		return -1;
	}
	memcpy(&S.addr, res->ai_addr, res->ai_addrlen);
	S.alen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int pw_audit_sink_open(char *err, size_t errlen)
{
	S = (struct sink){.fd = -1, .backoff_ms = BACKOFF_MIN};
	if (!cfg.syslog.proto)
		return 0;
	if (cfg.syslog.proto == PW_AUDIT_SYSLOG_UNIX) {
		struct sockaddr_un *un = (struct sockaddr_un *)&S.addr;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", cfg.syslog.socket);
		S.alen = sizeof(*un);
		S.name = cfg.syslog.socket;
	} else if (resolve(err, errlen) < 0) {
		return -1;
	} else {
		S.name = cfg.syslog.address;
	}
	size_t hl = strlen(W.hostname);
	bool ok = hl > 0 && hl < sizeof(S.host);
	for (size_t i = 0; ok && i < hl; i++)
		ok = W.hostname[i] > 32 && W.hostname[i] < 127; /* PRINTUSASCII */
	memcpy(S.host, ok ? W.hostname : "-", ok ? hl + 1 : 2);
	S.on = true;
	try_connect(); /* a receiver not there yet: tried again later */
	return 0;
}

void pw_audit_sink_close(void)
{
	int64_t end = pw_audit_now_ms() + CLOSE_WAIT;
	if (!S.on)
		return;
	for (int64_t left; S.fd >= 0 && S.qhead < S.qlen && (left = end - pw_audit_now_ms()) > 0;) {
		struct pollfd p = {.fd = S.fd, .events = POLLOUT};
		poll(&p, 1, (int)left);
		if (S.connecting)
			check_connect();
		send_queued();
	}
	size_t left = 0;
	for (size_t at = S.qhead; at < S.qlen; left++) {
		uint32_t n;
		memcpy(&n, S.q + at, 4);
		at += 4 + (size_t)n;
	}
	sys_drop(left);
	if (S.fd >= 0)
		close(S.fd);
	free(S.q);
	S = (struct sink){.fd = -1};
}
