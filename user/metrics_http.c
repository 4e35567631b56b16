/* The Prometheus endpoint (metrics.h): one thread with an epoll of its own, a TCP listener,
 * at most MAX_CONNS connections. Each connection sends one HTTP/1.x request (at most REQ_MAX
 * bytes, within READ_MS), gets one answer and is closed ("Connection: close"): there is no
 * keep-alive, no body and nothing a client sends can make the thread wait for it. */
#include "pgward/metrics.h"
#include "pgward/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 16
#define REQ_MAX   8192
#define READ_MS   5000   /* the whole request within this, from accept */
#define WRITE_MS  10000  /* the whole answer taken within this */
#define DRAIN_MS  1000   /* after the answer: what the client still sends, read and dropped */
#define DRAIN_MAX 262144 /* ... up to this much, so that the close does not reset the answer */
#define PAUSE_MS  100    /* out of descriptors: the listener rests this long */

#define TAG_LISTEN UINT64_MAX
#define TAG_WAKE   (UINT64_MAX - 1)

enum cstate { C_FREE, C_READ, C_WRITE, C_DRAIN };

struct conn {
	int fd;
	enum cstate st;
	uint32_t gen; /* in the epoll tag: an event of a slot closed and reused is stale */
	int64_t since_ms, deadline_ms;
	size_t len, drained;
	char *out;
	size_t out_len, out_off;
	char req[REQ_MAX];
};

/* The endpoint's state: the thread's alone while it runs; start and stop (one caller, main)
 * touch it only before the thread starts and after it is joined. */
static struct {
	bool running;
	pthread_t thread;
	int ep, lfd, wake, port;
	bool paused;
	int64_t resume_ms;
	void (*gather)(struct pw_metrics_snapshot *s);
	struct pw_metrics_snapshot *snap;
	struct conn conns[MAX_CONNS];
} H = {.ep = -1, .lfd = -1, .wake = -1};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t tag(int i)
{
	return (uint64_t)H.conns[i].gen << 8 | (uint64_t)i;
}

static void conn_close(int i)
{
	struct conn *c = &H.conns[i];
	close(c->fd); /* leaves the epoll with it */
	free(c->out);
	c->out = NULL;
	c->fd = -1;
	c->st = C_FREE;
	c->gen++;
}

static void conn_watch(int i, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u64 = tag(i)};
	if (epoll_ctl(H.ep, EPOLL_CTL_MOD, H.conns[i].fd, &ev) < 0)
		conn_close(i);
}

/* ---- the request --------------------------------------------------------------------------- */

static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The line at *p (up to LF, a CR before it dropped) as [*s, *s + *n); false: no LF */
static bool next_line(const char **p, const char *end, const char **s, size_t *n)
{
	const char *lf = memchr(*p, '\n', (size_t)(end - *p));
	if (!lf)
		return false;
	*s = *p;
	*n = (size_t)(lf - *p);
	if (*n && (*s)[*n - 1] == '\r')
		(*n)--;
	*p = lf + 1;
	return true;
}

/* a header line: a token, a colon, then a value of visible characters, spaces and tabs */
static bool header_ok(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && tchar((unsigned char)s[i]))
		i++;
	if (i == 0 || i == n || s[i] != ':')
		return false;
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

enum what { W_BAD, W_METHOD, W_NOT_FOUND, W_INDEX, W_METRICS };

/* the request line "METHOD SP target SP HTTP/1.x": the method's and the target's spans */
static bool request_line(const char *l, size_t ln, size_t *mlen, const char **t, size_t *tlen)
{
	const char *sp1 = memchr(l, ' ', ln);
	if (!sp1 || sp1 == l)
		return false;
	*mlen = (size_t)(sp1 - l);
	*t = sp1 + 1;
	const char *sp2 = memchr(*t, ' ', ln - *mlen - 1);
	if (!sp2 || sp2 == *t)
		return false;
	*tlen = (size_t)(sp2 - *t);
	const char *v = sp2 + 1;
	size_t vlen = ln - (size_t)(v - l);
	for (size_t i = 0; i < *mlen; i++)
		if (!tchar((unsigned char)l[i]))
			return false;
	for (size_t i = 0; i < *tlen; i++)
		if ((unsigned char)(*t)[i] <= 0x20 || (unsigned char)(*t)[i] >= 0x7f)
			return false;
	return (*t)[0] == '/' && vlen == 8 && memcmp(v, "HTTP/1.", 7) == 0 && v[7] >= '0' &&
	       v[7] <= '9';
}

/* Judges the request in req[0, n) (whole: it ends in an empty line); *head: a HEAD */
static enum what judge(const char *req, size_t n, bool *head)
{
	const char *p = req, *end = req + n, *rl, *l, *t;
	size_t rln, ln, mlen, tlen;
	do { /* empty lines before the request line are allowed (RFC 9112 2.2) */
		if (!next_line(&p, end, &rl, &rln))
			return W_BAD;
	} while (rln == 0);
	if (!request_line(rl, rln, &mlen, &t, &tlen))
		return W_BAD;
	for (;;) {
		if (!next_line(&p, end, &l, &ln))
			return W_BAD;
		if (ln == 0)
			break;
		if (!header_ok(l, ln))
			return W_BAD;
	}
	*head = mlen == 4 && memcmp(rl, "HEAD", 4) == 0;
	if (!*head && !(mlen == 3 && memcmp(rl, "GET", 3) == 0))
		return W_METHOD;
	const char *q = memchr(t, '?', tlen);
	size_t plen = q ? (size_t)(q - t) : tlen;
	if (plen == 8 && memcmp(t, "/metrics", 8) == 0)
		return W_METRICS;
	if (plen == 1)
		return W_INDEX;
	return W_NOT_FOUND;
}

/* ---- the answer ---------------------------------------------------------------------------- */

static const char index_html[] = "<html><head><title>pgward</title></head><body><h1>pgward</h1>"
                                 "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

/* status line, headers and (unless head) the body, into c->out */
static void answer(struct conn *c, const char *status, const char *type, const char *extra,
                   const char *body, size_t blen, bool head)
{
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr),
	                 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	                 "Connection: close\r\n\r\n",
	                 status, type, blen, extra);
	size_t total = (size_t)n + (head ? 0 : blen);
	c->out = malloc(total);
	if (!c->out)
		return;
	memcpy(c->out, hdr, (size_t)n);
	if (!head)
		memcpy(c->out + n, body, blen);
	c->out_len = total;
	c->out_off = 0;
}

static void respond(struct conn *c, enum what w, bool head)
{
	static const char plain[] = "text/plain; charset=utf-8";
	switch (w) {
	case W_METRICS: {
		H.gather(H.snap);
		size_t len = 0;
		char *body = pw_metrics_prometheus(H.snap, &len);
		if (body)
			answer(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", "", body,
			       len, head);
		else
			answer(c, "500 Internal Server Error", plain, "", "out of memory\n", 14,
			       head);
		free(body);
		break;
	}
	case W_INDEX:
		answer(c, "200 OK", "text/html; charset=utf-8", "", index_html,
		       sizeof(index_html) - 1, head);
		break;
	case W_NOT_FOUND:
		answer(c, "404 Not Found", plain, "", "not found: try /metrics\n", 24, head);
		break;
	case W_METHOD:
		answer(c, "405 Method Not Allowed", plain, "Allow: GET, HEAD\r\n",
		       "method not allowed\n", 19, false);
		break;
	case W_BAD:
		answer(c, "400 Bad Request", plain, "", "bad request\n", 12, false);
		break;
	}
}

/* ---- the connections ----------------------------------------------------------------------- */

/* writes what is left of the answer; done: half-close and drain what the client still sends */
static void conn_write(int i)
{
	struct conn *c = &H.conns[i];
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->st != C_WRITE) {
				c->st = C_WRITE;
				c->deadline_ms = now_ms() + WRITE_MS;
				conn_watch(i, EPOLLOUT);
			}
			return;
		}
		if (n <= 0) {
			conn_close(i);
			return;
		}
		c->out_off += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	shutdown(c->fd, SHUT_WR);
	c->st = C_DRAIN;
	c->drained = 0;
	c->deadline_ms = now_ms() + DRAIN_MS;
	conn_watch(i, EPOLLIN | EPOLLRDHUP);
}

static void conn_drain(int i)
{
	struct conn *c = &H.conns[i];
	char junk[4096];
	for (;;) {
		ssize_t n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || (c->drained += (size_t)n) > DRAIN_MAX) {
			conn_close(i);
			return;
		}
	}
}

static void conn_read(int i)
{
	struct conn *c = &H.conns[i];
	for (;;) {
		if (c->len == REQ_MAX) { /* too long for a request of ours: not worth an answer */
			conn_close(i);
			return;
		}
		ssize_t n = recv(c->fd, c->req + c->len, REQ_MAX - c->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_close(i);
			return;
		}
		size_t from = c->len > 3 ? c->len - 3 : 0;
		c->len += (size_t)n;
		/* the end of the head: an empty line (CRLF CRLF, or a bare LF LF) */
		for (size_t k = from; k + 1 < c->len; k++) {
			if (c->req[k] != '\n')
				continue;
			size_t e =
			    c->req[k + 1] == '\n' ? k + 2
			    : (c->req[k + 1] == '\r' && k + 2 < c->len && c->req[k + 2] == '\n')
			        ? k + 3
			        : 0;
			if (!e)
				continue;
			bool head = false;
			enum what w = judge(c->req, e, &head);
			respond(c, w, head);
			if (!c->out)
				conn_close(i);
			else
				conn_write(i);
			return;
		}
	}
}

static void conn_event(uint64_t t, uint32_t events)
{
	int i = (int)(t & 0xff);
	if (i >= MAX_CONNS || H.conns[i].st == C_FREE || (uint32_t)(t >> 8) != H.conns[i].gen)
		return; /* stale: the slot was closed (and maybe reused) in this batch */
	switch (H.conns[i].st) {
	case C_READ:
		conn_read(i);
		break;
	case C_WRITE:
		if (events & (EPOLLERR | EPOLLHUP))
			conn_close(i);
		else
			conn_write(i);
		break;
	case C_DRAIN:
		conn_drain(i);
		break;
	case C_FREE:
		break;
	}
}

/* a free slot; all taken: the oldest connection that is not being answered is closed for the
 * new one (a client that sends nothing cannot keep a scraper out), else the oldest */
static int free_slot(void)
{
	int oldest = -1, oldest_any = 0;
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &H.conns[i];
		if (c->st == C_FREE)
			return i;
		if (c->since_ms < H.conns[oldest_any].since_ms)
			oldest_any = i;
		if (c->st != C_WRITE && (oldest < 0 || c->since_ms < H.conns[oldest].since_ms))
			oldest = i;
	}
	if (oldest < 0)
		oldest = oldest_any;
	conn_close(oldest);
	return oldest;
}

static void listener_pause(bool pause)
{
	struct epoll_event ev = {.events = pause ? 0 : EPOLLIN, .data.u64 = TAG_LISTEN};
	if (epoll_ctl(H.ep, EPOLL_CTL_MOD, H.lfd, &ev) == 0)
		H.paused = pause;
	if (pause)
		H.resume_ms = now_ms() + PAUSE_MS;
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(H.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				listener_pause(
				    true); /* else the listener stays readable: a busy loop */
				pw_warn("metrics: cannot accept a connection: %s", strerror(errno));
			}
			return; /* EAGAIN, or a connection that went away */
		}
		int i = free_slot();
		struct conn *c = &H.conns[i];
		c->fd = fd;
		c->st = C_READ;
		c->len = 0;
		c->since_ms = now_ms();
		c->deadline_ms = c->since_ms + READ_MS;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = tag(i)};
		if (epoll_ctl(H.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(i);
	}
}

/* closes what is past its deadline; the epoll timeout until the next one (-1: none) */
static int expire(void)
{
	int64_t now = now_ms(), next = INT64_MAX;
	if (H.paused && now >= H.resume_ms)
		listener_pause(false);
	if (H.paused)
		next = H.resume_ms;
	for (int i = 0; i < MAX_CONNS; i++) {
		if (H.conns[i].st == C_FREE)
			continue;
		if (now >= H.conns[i].deadline_ms)
			conn_close(i);
		else if (H.conns[i].deadline_ms < next)
			next = H.conns[i].deadline_ms;
	}
	return next == INT64_MAX ? -1 : (int)(next - now);
}

static void *serve(void *unused)
{
	(void)unused;
	struct epoll_event evs[MAX_CONNS + 2];
	for (;;) {
		int n = epoll_wait(H.ep, evs, MAX_CONNS + 2, expire());
		if (n < 0 && errno != EINTR) {
			pw_error("metrics: epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (int k = 0; k < n; k++) {
			uint64_t t = evs[k].data.u64;
			if (t == TAG_WAKE)
				return NULL;
			if (t == TAG_LISTEN)
				accept_all();
			else
				conn_event(t, evs[k].events);
		}
	}
}

/* ---- start and stop ------------------------------------------------------------------------ */

/* host (numeric IPv4 or IPv6, brackets allowed; "*": every address) and port as an address */
static int parse_host(const char *host, int port, struct sockaddr_storage *ss, socklen_t *sl)
{
	char h[PW_HOST_MAX];
	size_t n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(h)) {
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
	} else {
		snprintf(h, sizeof(h), "%s", host);
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		*sl = sizeof(*a4);
		return 0;
	}
	if (strcmp(h, "*") == 0 || inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
		if (strcmp(h, "*") == 0)
			a6->sin6_addr = in6addr_any;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a6);
		return 0;
	}
	return -1;
}

static int listen_on(const struct pw_metrics_config *cfg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (cfg->port < 0 || cfg->port > 65535 || parse_host(cfg->host, cfg->port, &ss, &sl) < 0) {
		pw_errf(err, errlen, "metrics: %s port %d is not a numeric address and port",
		        PW_Q(cfg->host), cfg->port);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1,
	    zero = 0;
	if (fd < 0) {
		pw_errf(err, errlen, "metrics: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (strcmp(cfg->host, "*") == 0) /* both families on one socket */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 64) < 0) {
		pw_errf(err, errlen, "metrics: cannot listen on %s port %d: %s", cfg->host,
		        cfg->port, strerror(errno));
		close(fd);
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		H.port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
		                                       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void teardown(void)
{
	for (int i = 0; i < MAX_CONNS; i++)
		if (H.conns[i].st != C_FREE)
			conn_close(i);
	if (H.lfd >= 0)
		close(H.lfd);
	if (H.wake >= 0)
		close(H.wake);
	if (H.ep >= 0)
		close(H.ep);
	free(H.snap);
	H.snap = NULL;
	H.lfd = H.wake = H.ep = -1;
	H.port = 0;
	H.paused = false;
}

static int add_fd(int fd, uint64_t t)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = t};
	return epoll_ctl(H.ep, EPOLL_CTL_ADD, fd, &ev);
}

int pw_metrics_http_start(const struct pw_metrics_config *cfg,
                          void (*gather)(struct pw_metrics_snapshot *s), char *err, size_t errlen)
{
	if (H.running) {
		pw_errf(err, errlen, "metrics: the endpoint is running already");
		return -1;
	}
	for (int i = 0; i < MAX_CONNS; i++)
		H.conns[i] = (struct conn){.fd = -1, .gen = H.conns[i].gen};
	H.gather = gather ? gather : pw_metrics_collect;
	H.snap = malloc(sizeof(*H.snap));
	H.ep = epoll_create1(EPOLL_CLOEXEC);
	H.wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!H.snap || H.ep < 0 || H.wake < 0) {
		pw_errf(err, errlen, "metrics: %s", strerror(errno ? errno : ENOMEM));
		teardown();
		return -1;
	}
	if ((H.lfd = listen_on(cfg, err, errlen)) < 0) {
		teardown();
		return -1;
	}
	if (add_fd(H.lfd, TAG_LISTEN) < 0 || add_fd(H.wake, TAG_WAKE) < 0) {
		pw_errf(err, errlen, "metrics: epoll_ctl: %s", strerror(errno));
		teardown();
		return -1;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes no signal (SIGPIPE) */
	int rc = pthread_create(&H.thread, NULL, serve, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pw_errf(err, errlen, "metrics: cannot start the thread: %s", strerror(rc));
		teardown();
		return -1;
	}
	H.running = true;
	return 0;
}

void pw_metrics_http_stop(void)
{
	if (!H.running)
		return;
	uint64_t one = 1;
	if (write(H.wake, &one, sizeof(one)) < 0)
		pw_warn("metrics: cannot wake the endpoint's thread: %s", strerror(errno));
	pthread_join(H.thread, NULL);
	H.running = false;
	teardown();
}

int pw_metrics_http_port(void)
{
	return H.running ? H.port : 0;
}
