/* A blocking PostgreSQL client for maintenance connections (see pgconn.h). Non-blocking
 * sockets underneath, so that every wait is a poll() with a deadline. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "pgward/auth.h"
#include "pgward/log.h"
#include "pgward/pgconn.h"
#include "pgward/proto.h"
#include "pgward/tls.h"
#include "pgward/upstream_conn.h"
#include "pgward/upstream_login.h"

#define APP_NAME "pgward-janitor"

struct pw_pgconn {
	int fd;
	SSL *ssl;
	bool broken; /* the protocol state is unknown: nothing more is sent */
	int timeout_ms;
	uint32_t pid, key; /* BackendKeyData, for the cancel on a timeout */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned mark;
	char name[PW_NAME_MAX]; /* the upstream's, for messages */
	uint8_t *in;            /* received bytes: [in_off, in_len) not yet consumed */
	size_t in_off, in_len, in_cap;
	pw_pgconn_notify_fn notify; /* for notifications that come during pw_pgconn_exec */
	void *notify_arg;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r > 0)
			return 1; /* errors and hang-ups show in the read or write that follows */
	}
}

/* A non-blocking socket connected to sa within the deadline, or -1 with err set. */
static int connect_to(const struct sockaddr *sa, socklen_t len, unsigned mark, int64_t deadline,
                      char *err, size_t errlen)
{
	/* the same socket as a session's (marked: never steered back into pgwardd), waited for */
	int fd = pw_upstream_open(sa, len, mark);
	if (fd < 0) {
		pw_errf(err, errlen, "connect: %s", strerror(errno));
		return -1;
	}
	int r = wait_fd(fd, POLLOUT, deadline);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (r == 0) {
		pw_errf(err, errlen, "connect: timed out");
		close(fd);
		return -1;
	}
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
		pw_errf(err, errlen, "connect: %s", strerror(r < 0 ? errno : soerr));
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- bytes in and out ---- */

/* One read or write of at most len bytes: the bytes moved (> 0), 0 when it would block (*ev: what
 * to wait for), or -1 with err set. */
static ssize_t io(struct pw_pgconn *c, bool wr, void *p, size_t len, short *ev, char *err,
                  size_t errlen)
{
	const char *what = wr ? "write failed" : "connection lost";
	if (c->ssl) {
		ERR_clear_error();
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int n = wr ? SSL_write(c->ssl, p, chunk) : SSL_read(c->ssl, p, chunk);
		if (n > 0)
			return n;
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			*ev = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			return 0;
		}
		char b[256] = "closed by the server";
		if (wr || (e != SSL_ERROR_ZERO_RETURN && ERR_peek_error()))
			pw_tls_error(b, sizeof(b));
		pw_errf(err, errlen, "%s (%s)", what, b);
		return -1;
	}
	ssize_t n;
	do
		n = wr ? send(c->fd, p, len, MSG_NOSIGNAL) : recv(c->fd, p, len, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		*ev = wr ? POLLOUT : POLLIN;
		return 0;
	}
	pw_errf(err, errlen, "%s (%s)", what, n == 0 ? "closed by the server" : strerror(errno));
	return -1;
}

/* Read what is there into the buffer (at least one byte). 0, or -1 with err set (-2: the
 * deadline passed, the connection still sound). */
static int fill(struct pw_pgconn *c, int64_t deadline, char *err, size_t errlen)
{
	if (c->in_len == c->in_cap) {
		/* make room: compact first, grow only for a message larger than the buffer */
		if (c->in_off) {
			memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
			c->in_len -= c->in_off;
			c->in_off = 0;
		}
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 16384;
			uint8_t *p = realloc(c->in, cap);
			if (!p) {
				pw_errf(err, errlen, "out of memory");
				return -1;
			}
			c->in = p;
			c->in_cap = cap;
		}
	}
	for (;;) {
		short ev;
		ssize_t n =
		    io(c, false, c->in + c->in_len, c->in_cap - c->in_len, &ev, err, errlen);
		if (n > 0) {
			c->in_len += (size_t)n;
			return 0;
		}
		int r = n < 0 ? -1 : wait_fd(c->fd, ev, deadline);
		if (r <= 0) {
			if (n == 0)
				pw_errf(err, errlen, "%s", r == 0 ? "timed out" : strerror(errno));
			return r == 0 ? -2 : -1;
		}
	}
}

static int write_all(struct pw_pgconn *c, const void *buf, size_t len, int64_t deadline, char *err,
                     size_t errlen)
{
	uint8_t *p = (uint8_t *)buf;
	while (len) {
		short ev;
		ssize_t n = io(c, true, p, len, &ev, err, errlen);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		int r = n < 0 ? -1 : wait_fd(c->fd, ev, deadline);
		if (r <= 0) {
			if (n == 0)
				pw_errf(err, errlen, "%s", r == 0 ? "timed out" : strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Send one message: type, then payload (a and b concatenated; b may be NULL). */
static int send_msg(struct pw_pgconn *c, uint8_t type, const void *a, size_t alen, const void *b,
                    size_t blen, int64_t deadline, char *err, size_t errlen)
{
	uint8_t small[1024], *m = small;
	size_t total = 5 + alen + blen;
	if (alen + blen > PW_PGCONN_MSG_MAX) {
		pw_errf(err, errlen, "message too long (%zu bytes)", alen + blen);
		return -1;
	}
	if (total > sizeof(small) && !(m = malloc(total))) {
		pw_errf(err, errlen, "out of memory");
		return -1;
	}
	m[0] = type;
	pw_put_be32(m + 1, (uint32_t)(4 + alen + blen));
	if (alen)
		memcpy(m + 5, a, alen);
	if (blen)
		memcpy(m + 5 + alen, b, blen);
	int rc = write_all(c, m, total, deadline, err, errlen);
	if (m != small)
		free(m);
	return rc;
}

/* The next whole message. *body stays valid until the next call. 0, or -1 with err set (a
 * length outside 4..PW_PGCONN_MSG_MAX is an error: the stream cannot be trusted after it). */
static int read_msg(struct pw_pgconn *c, int64_t deadline, uint8_t *type, const uint8_t **body,
                    size_t *blen, char *err, size_t errlen)
{
	while (c->in_len - c->in_off < PW_HDR)
		if (fill(c, deadline, err, errlen) < 0)
			return -1;
	const uint8_t *p = c->in + c->in_off;
	uint32_t len = pw_be32(p + 1);
	if (len < 4 || len > PW_PGCONN_MSG_MAX) {
		pw_errf(err, errlen, "invalid message length %u (type 0x%02x)", len, p[0]);
		return -1;
	}
	size_t need = (size_t)len + 1;
	if (c->in_cap - c->in_off < need) {
		/* a message larger than what is left of the buffer: compact, then grow */
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
		if (c->in_cap < need) {
			uint8_t *q = realloc(c->in, need);
			if (!q) {
				pw_errf(err, errlen, "out of memory");
				return -1;
			}
			c->in = q;
			c->in_cap = need;
		}
	}
	while (c->in_len - c->in_off < need)
		if (fill(c, deadline, err, errlen) < 0)
			return -1;
	p = c->in + c->in_off;
	*type = p[0];
	*body = p + PW_HDR;
	*blen = len - 4;
	c->in_off += need;
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return 0;
}

/* "ERROR 42704: role "x" does not exist" from an ErrorResponse body. */
static void format_error(const uint8_t *body, size_t blen, char *err, size_t errlen)
{
	const char *sev = pw_error_field(body, blen, 'V'); /* not localized (9.6+) */
	if (!sev)
		sev = pw_error_field(body, blen, 'S');
	const char *code = pw_error_field(body, blen, 'C');
	const char *msg = pw_error_field(body, blen, 'M');
	pw_errf(err, errlen, "%s %s: %s", sev ? sev : "ERROR", code ? code : "XX000",
	        msg ? msg : "(no message)");
}

/* ---- connection set-up ---- */

static int resolve_and_connect(struct pw_pgconn *c, const struct pw_upstream *u, int64_t deadline,
                               char *err, size_t errlen)
{
	char e[256] = "";
	if (u->unix_dir[0]) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		if (pw_upstream_unix_path(u, un.sun_path, sizeof(un.sun_path)) < 0) {
			pw_errf(err, errlen, "socket path too long");
			return -1;
		}
		c->fd =
		    connect_to((struct sockaddr *)&un, sizeof(un), c->mark, deadline, e, sizeof(e));
		if (c->fd < 0) {
			pw_errf(err, errlen, "%s: %s", un.sun_path, e);
			return -1;
		}
		memcpy(&c->addr, &un, sizeof(un));
		c->addrlen = sizeof(un);
		return 0;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	char port[8];
	snprintf(port, sizeof(port), "%d", u->port);
	int g = getaddrinfo(u->host, port, &hints, &res);
	if (g != 0) {
		pw_errf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(g));
		return -1;
	}
	/* every address in turn, as libpq does */
	for (ai = res; ai; ai = ai->ai_next) {
		c->fd = connect_to(ai->ai_addr, ai->ai_addrlen, c->mark, deadline, e, sizeof(e));
		if (c->fd >= 0) {
			memcpy(&c->addr, ai->ai_addr, ai->ai_addrlen);
			c->addrlen = ai->ai_addrlen;
			break;
		}
	}
	freeaddrinfo(res);
	if (c->fd < 0) {
		pw_errf(err, errlen, "%s port %d: %s", u->host, u->port, e);
		return -1;
	}
	return 0;
}

static int tls_handshake(struct pw_pgconn *c, SSL_CTX *ctx, const struct pw_upstream *u,
                         int64_t deadline, char *err, size_t errlen)
{
	char b[256];
	if (!(c->ssl = SSL_new(ctx)) || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    pw_tls_upstream_prepare(c->ssl, u) < 0) {
		pw_errf(err, errlen, "cannot set up TLS: %s", pw_tls_error(b, sizeof(b)));
		return -1;
	}
	for (;;) {
		ERR_clear_error();
		int r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		int e = SSL_get_error(c->ssl, r);
		short ev;
		if (e == SSL_ERROR_WANT_READ)
			ev = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			ev = POLLOUT;
		else {
			long v = SSL_get_verify_result(c->ssl);
			pw_errf(err, errlen, "TLS handshake failed: %s%s%s",
			        pw_tls_error(b, sizeof(b)), v != X509_V_OK ? ": " : "",
			        v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
			return -1;
		}
		int w = wait_fd(c->fd, ev, deadline);
		if (w <= 0) {
			pw_errf(err, errlen, "TLS handshake: %s", w == 0 ? "timed out" : "poll");
			return -1;
		}
	}
	/* the context verifies for verify-ca/-full already; checked again so that a context
	 * built some other way can never pass without a verified certificate */
	if (u->sslmode >= PW_SSL_VERIFY_CA &&
	    (SSL_get_verify_result(c->ssl) != X509_V_OK || !SSL_get0_peer_certificate(c->ssl))) {
		pw_errf(err, errlen, "TLS: the server certificate was not verified");
		return -1;
	}
	return 0;
}

/* SSLRequest and TLS according to sslmode (libpq's semantics, as session.c). */
static int negotiate_tls(struct pw_pgconn *c, const struct pw_runtime *rt, int ui,
                         const struct pw_upstream *u, int64_t deadline, char *err, size_t errlen)
{
	if (c->addr.ss_family == AF_UNIX || u->sslmode == PW_SSL_DISABLE)
		return 0;
	SSL_CTX *ctx = rt->upstream_tls ? rt->upstream_tls[ui] : NULL;
	if (!ctx) {
		if (u->sslmode >= PW_SSL_REQUIRE) {
			pw_errf(err, errlen, "no TLS context, but sslmode is %s",
			        pw_sslmode_name(u->sslmode));
			return -1;
		}
		return 0;
	}
	uint8_t req[8];
	pw_put_be32(req, 8);
	pw_put_be32(req + 4, PW_SSL_REQUEST);
	if (write_all(c, req, sizeof(req), deadline, err, errlen) < 0)
		return -1;
	/* exactly one byte: whatever follows an 'S' belongs to the TLS handshake */
	uint8_t ans;
	for (;;) {
		ssize_t n = recv(c->fd, &ans, 1, 0);
		if (n == 1)
			break;
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			pw_errf(err, errlen, "connection lost during the SSL request");
			return -1;
		}
		if (wait_fd(c->fd, POLLIN, deadline) <= 0) {
			pw_errf(err, errlen, "SSL request: timed out");
			return -1;
		}
	}
	if (ans == 'S')
		return tls_handshake(c, ctx, u, deadline, err, errlen);
	if (ans != 'N') {
		pw_errf(err, errlen, "bad answer to the SSL request (0x%02x)", ans);
		return -1;
	}
	if (u->sslmode >= PW_SSL_REQUIRE) {
		pw_errf(err, errlen, "server does not support SSL, but sslmode is %s",
		        pw_sslmode_name(u->sslmode));
		return -1;
	}
	return 0;
}

/* StartupMessage, authentication, and everything up to the first ReadyForQuery. */
static int login(struct pw_pgconn *c, const struct pw_upstream *u, const char *db, const char *app,
                 int64_t deadline, char *err, size_t errlen)
{
	uint8_t pkt[512];
	size_t off = 8;
	const char *kv[] = {"user", u->user,           "database", db, "application_name",
	                    app,    "client_encoding", "UTF8"};
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		size_t l = strlen(kv[i]) + 1;
		if (off + l + 1 > sizeof(pkt)) {
			pw_errf(err, errlen, "startup packet too long");
			return -1;
		}
		memcpy(pkt + off, kv[i], l);
		off += l;
	}
	pkt[off++] = 0;
	pw_put_be32(pkt, (uint32_t)off);
	pw_put_be32(pkt + 4, PW_PROTO_V3);
	if (write_all(c, pkt, off, deadline, err, errlen) < 0)
		return -1;

	struct pw_login lg;
	bool authed = false;
	pw_login_init(&lg, u, c->ssl != NULL);
	for (;;) {
		uint8_t t;
		const uint8_t *body;
		size_t blen;
		if (read_msg(c, deadline, &t, &body, &blen, err, errlen) < 0)
			return -1;
		switch (t) {
		case 'E': {
			char m[512];
			format_error(body, blen, m, sizeof(m));
			pw_errf(err, errlen, "the server refused the login: %s", m);
			return -1;
		}
		case 'N': /* NoticeResponse */
		case 'S': /* ParameterStatus */
		case 'v': /* NegotiateProtocolVersion: nothing we asked for is missing */
			continue;
		case 'K':
			if (blen != 8) {
				pw_errf(err, errlen, "malformed BackendKeyData");
				return -1;
			}
			c->pid = pw_be32(body);
			c->key = pw_be32(body + 4);
			continue;
		case 'Z':
			if (!authed) {
				pw_errf(err, errlen, "ReadyForQuery before authentication");
				return -1;
			}
			return 0;
		case 'R':
			break;
		default:
			pw_errf(err, errlen, "unexpected message type 0x%02x during the login", t);
			return -1;
		}
		if (authed) {
			pw_errf(err, errlen, "unexpected authentication request");
			return -1;
		}
		/* the one login state machine sessions use too */
		uint8_t out[PW_LOGIN_MSG_MAX];
		size_t outlen;
		switch (pw_login_step(&lg, body, blen, out, sizeof(out), &outlen, err, errlen)) {
		case PW_LOGIN_AUTHED:
			authed = true;
			break;
		case PW_LOGIN_SEND:
			if (outlen &&
			    send_msg(c, 'p', out, outlen, NULL, 0, deadline, err, errlen) < 0)
				return -1;
			break;
		default:
			return -1;
		}
	}
}

struct pw_pgconn *pw_pgconn_open(const struct pw_runtime *rt, int ui, const char *db,
                                 int timeout_ms, char *err, size_t errlen)
{
	return pw_pgconn_open_app(rt, ui, db, APP_NAME, timeout_ms, err, errlen);
}

struct pw_pgconn *pw_pgconn_open_app(const struct pw_runtime *rt, int ui, const char *db,
                                     const char *app, int timeout_ms, char *err, size_t errlen)
{
	if (!rt || ui < 0 || ui >= rt->cfg->n_upstreams) {
		pw_errf(err, errlen, "no upstream %d", ui);
		return NULL;
	}
	const struct pw_upstream *u = &rt->cfg->upstreams[ui];
	struct pw_pgconn *c = calloc(1, sizeof(*c));
	if (!c) {
		pw_errf(err, errlen, "upstream \"%s\": out of memory", u->name);
		return NULL;
	}
	c->fd = -1;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	c->mark = pw_upstream_mark(rt->cfg);
	snprintf(c->name, sizeof(c->name), "%s", u->name);
	if (!db || !db[0])
		db = u->database[0] ? u->database : u->user;

	char e[512] = "";
	const char *step = "connect";
	int rc = resolve_and_connect(c, u, now_ms() + c->timeout_ms, e, sizeof(e));
	if (rc == 0) {
		step = "TLS";
		rc = negotiate_tls(c, rt, ui, u, now_ms() + c->timeout_ms, e, sizeof(e));
	}
	if (rc == 0) {
		step = "login";
		rc = login(c, u, db, app && app[0] ? app : APP_NAME, now_ms() + c->timeout_ms, e,
		           sizeof(e));
	}
	if (rc < 0) {
		pw_errf(err, errlen, "upstream \"%s\" (%s as %s, database %s): %s", u->name, step,
		        u->user, db, e);
		c->broken = true;
		pw_pgconn_close(c);
		return NULL;
	}
	return c;
}

uint32_t pw_pgconn_backend_pid(const struct pw_pgconn *c)
{
	return c ? c->pid : 0;
}

bool pw_pgconn_ok(const struct pw_pgconn *c)
{
	return c && !c->broken;
}

/* A query ran past its time: ask the server to stop it (best effort, plain, as libpq), so
 * that it does not hold locks while nobody waits for it. */
static void send_cancel(struct pw_pgconn *c)
{
	if (!c->pid || !c->addrlen)
		return;
	int64_t deadline = now_ms() + (c->timeout_ms < 2000 ? c->timeout_ms : 2000);
	char e[128];
	int fd =
	    connect_to((struct sockaddr *)&c->addr, c->addrlen, c->mark, deadline, e, sizeof(e));
	if (fd < 0)
		return;
	uint8_t pkt[16];
	pw_put_be32(pkt, 16);
	pw_put_be32(pkt + 4, PW_CANCEL_REQUEST);
	pw_put_be32(pkt + 8, c->pid);
	pw_put_be32(pkt + 12, c->key);
	if (send(fd, pkt, sizeof(pkt), MSG_NOSIGNAL) == (ssize_t)sizeof(pkt)) {
		/* the server closes the connection once it has read the request */
		char b;
		if (wait_fd(fd, POLLIN, deadline) > 0)
			(void)!recv(fd, &b, 1, 0);
	}
	close(fd);
}

/* The DataRows of the current result set, each stored as [size_t len][body][1 spare byte]
 * so that the values can be NUL-terminated in place when delivered. */
struct rows {
	uint8_t *data;
	size_t len, cap;
	int ncols; /* from RowDescription; -1 before one */
	bool too_large;
};

static int rows_add(struct rows *r, const uint8_t *body, size_t blen)
{
	/* validate now, so that delivery cannot fail */
	if (blen < 2)
		return -1;
	int n = (int)((uint16_t)(body[0] << 8 | body[1]));
	if (r->ncols >= 0 && n != r->ncols)
		return -1;
	size_t p = 2;
	for (int i = 0; i < n; i++) {
		if (blen - p < 4)
			return -1;
		int32_t l = (int32_t)pw_be32(body + p);
		p += 4;
		if (l < -1 || (l >= 0 && (size_t)l > blen - p))
			return -1;
		if (l > 0)
			p += (size_t)l;
	}
	if (p != blen)
		return -1;
	if (r->too_large)
		return 0;
	size_t need = sizeof(size_t) + blen + 1;
	if (r->len + need > PW_PGCONN_MSG_MAX) {
		r->too_large = true; /* keep reading to ReadyForQuery, fail then */
		return 0;
	}
	if (r->len + need > r->cap) {
		size_t cap = (r->len + need) * 2;
		uint8_t *d = realloc(r->data, cap);
		if (!d)
			return -2;
		r->data = d;
		r->cap = cap;
	}
	memcpy(r->data + r->len, &blen, sizeof(size_t));
	memcpy(r->data + r->len + sizeof(size_t), body, blen);
	r->len += need;
	return 0;
}

static int rows_deliver(struct rows *r, pw_pgconn_row_fn fn, void *arg)
{
	char *blk = NULL; /* the values, then where each ends */
	const char **vals = NULL;
	uint8_t **ends = NULL;
	int have = 0;
	for (size_t off = 0; off < r->len;) {
		size_t blen;
		memcpy(&blen, r->data + off, sizeof(size_t));
		uint8_t *b = r->data + off + sizeof(size_t);
		off += sizeof(size_t) + blen + 1;
		int n = (int)((uint16_t)(b[0] << 8 | b[1]));
		if (n > have) {
			char *nb = realloc(blk, (size_t)n * (sizeof(*vals) + sizeof(*ends)));
			if (!nb) {
				free(blk);
				return -1;
			}
			blk = nb; /* malloc'd: no declared type, so both views are fine */
			vals = (const char **)(void *)blk;
			ends = (uint8_t **)(void *)(blk + (size_t)n * sizeof(*vals));
			have = n;
		}
		uint8_t *p = b + 2;
		/* all lengths first: each terminating NUL lands on the next length's first
		 * byte (or the spare byte after the row) */
		for (int i = 0; i < n; i++) {
			int32_t l = (int32_t)pw_be32(p);
			p += 4;
			vals[i] = l < 0 ? NULL : (const char *)p;
			if (l > 0)
				p += l;
			ends[i] = p;
		}
		for (int i = 0; i < n; i++)
			if (vals[i])
				*ends[i] = 0;
		fn(arg, n, vals);
	}
	free(blk);
	return 0;
}

/* ---- notifications (LISTEN) ---- */

/* A NotificationResponse body (pid, channel, payload): the two strings, or -1 when malformed. */
static int notify_parse(const uint8_t *body, size_t blen, const char **ch, const char **pl)
{
	const char *s = (const char *)body + 4, *end = (const char *)body + blen;
	const char *z = blen > 5 ? memchr(s, 0, (size_t)(end - s)) : NULL;
	if (!z || z + 1 >= end || memchr(z + 1, 0, (size_t)(end - z - 1)) != end - 1)
		return -1;
	*ch = s;
	*pl = z + 1;
	return 0;
}

void pw_pgconn_on_notify(struct pw_pgconn *c, pw_pgconn_notify_fn fn, void *arg)
{
	c->notify = fn;
	c->notify_arg = arg;
}

/* A whole message (or a header read_msg refuses) is in the buffer: reading it cannot block. */
static bool have_msg(const struct pw_pgconn *c)
{
	size_t have = c->in_len - c->in_off;
	if (have < PW_HDR)
		return false;
	uint32_t len = pw_be32(c->in + c->in_off + 1);
	return len < 4 || len > PW_PGCONN_MSG_MAX || have >= (size_t)len + 1;
}

int pw_pgconn_wait(struct pw_pgconn *c, int timeout_ms, pw_pgconn_notify_fn notify, void *arg,
                   char *err, size_t errlen)
{
	char e[512] = "";
	if (!c || c->broken) {
		pw_errf(err, errlen, "upstream \"%s\": the connection is broken",
		        c ? c->name : "?");
		return -1;
	}
	int n = 0;
	int64_t deadline = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		if (!have_msg(c)) {
			if (n)
				return n; /* what has come is delivered: no waiting for more */
			int r = fill(c, deadline, e, sizeof(e));
			if (r == -2)
				return 0;
			if (r < 0)
				break;
			continue;
		}
		uint8_t t;
		const uint8_t *body;
		size_t blen;
		const char *ch, *pl;
		if (read_msg(c, deadline, &t, &body, &blen, e, sizeof(e)) < 0)
			break;
		if (t == 'N' || t == 'S')
			continue;
		if (t == 'A' && notify_parse(body, blen, &ch, &pl) == 0) {
			if (notify)
				notify(arg, ch, pl);
			n++;
			continue;
		}
		if (t == 'E') /* a FATAL: the server ends the connection (terminated, shut down) */
			format_error(body, blen, e, sizeof(e));
		else if (t == 'A')
			pw_errf(e, sizeof(e), "malformed NotificationResponse");
		else
			pw_errf(e, sizeof(e),
			        "unexpected message type 0x%02x on an idle connection", t);
		break;
	}
	c->broken = true;
	pw_errf(err, errlen, "upstream \"%s\": %s", c->name, e);
	return -1;
}

int pw_pgconn_exec(struct pw_pgconn *c, const char *sql, pw_pgconn_row_fn row, void *arg, char *err,
                   size_t errlen)
{
	char e[512] = "", ioe[256] = ""; /* the server's first error; ours */
	if (!c || c->broken) {
		pw_errf(err, errlen, "upstream \"%s\": the connection is broken",
		        c ? c->name : "?");
		return -1;
	}
	int64_t deadline = now_ms() + c->timeout_ms;
	struct rows r = {.ncols = -1};
	bool server_err = false, timed_out = false, in_set = false;
	int rc = send_msg(c, 'Q', sql, strlen(sql) + 1, NULL, 0, deadline, ioe, sizeof(ioe));
	while (rc == 0) {
		uint8_t t;
		const uint8_t *body;
		size_t blen;
		if (read_msg(c, deadline, &t, &body, &blen, ioe, sizeof(ioe)) < 0) {
			timed_out = now_ms() >= deadline;
			rc = -1;
			break;
		}
		if (t == 'Z')
			break;
		switch (t) {
		case 'T': /* a new result set: the rows so far were not the last one's */
			if (blen < 2) {
				pw_errf(ioe, sizeof(ioe), "malformed RowDescription");
				rc = -1;
				break;
			}
			r.len = 0;
			r.too_large = false;
			r.ncols = (int)((uint16_t)(body[0] << 8 | body[1]));
			in_set = true;
			break;
		case 'C': /* CommandComplete: a statement without rows is a last result too */
			if (!in_set) {
				r.len = 0;
				r.too_large = false;
				r.ncols = -1;
			}
			in_set = false;
			break;
		case 'D': {
			int a = rows_add(&r, body, blen);
			if (a < 0) {
				pw_errf(ioe, sizeof(ioe), "%s",
				        a == -2 ? "out of memory" : "malformed DataRow");
				rc = -1;
			}
			break;
		}
		case 'E':
			if (!server_err)
				format_error(body, blen, e, sizeof(e));
			server_err = true;
			break;
		case 'G': { /* CopyInResponse: refuse, the server then reports an error */
			static const char why[] = "pgward: COPY is not supported here";
			rc =
			    send_msg(c, 'f', why, sizeof(why), NULL, 0, deadline, ioe, sizeof(ioe));
			break;
		}
		case 'A': { /* NotificationResponse: to the connection's callback */
			const char *ch, *pl;
			if (notify_parse(body, blen, &ch, &pl) < 0) {
				pw_errf(ioe, sizeof(ioe), "malformed NotificationResponse");
				rc = -1;
			} else if (c->notify) {
				c->notify(c->notify_arg, ch, pl);
			}
			break;
		}
		case 'I': /* EmptyQueryResponse */
		case 'N': /* NoticeResponse */
		case 'S': /* ParameterStatus */
		case 'H': /* CopyOutResponse, then its data: read and dropped */
		case 'd':
		case 'c':
			break;
		default:
			pw_errf(ioe, sizeof(ioe), "unexpected message type 0x%02x", t);
			rc = -1;
			break;
		}
	}
	if (rc < 0) {
		c->broken = true;
		if (timed_out) {
			pw_errf(ioe, sizeof(ioe), "query timed out after %d ms", c->timeout_ms);
			send_cancel(c);
		}
		/* a FATAL before the connection went away says why: it comes first */
		size_t l = server_err ? strlen(e) : 0;
		pw_errf(e + l, sizeof(e) - l, "%s%s", l ? "; then " : "", ioe);
	} else if (server_err) {
		rc = -1;
	} else if (r.too_large) {
		pw_errf(e, sizeof(e), "result larger than %u bytes", PW_PGCONN_MSG_MAX);
		rc = -1;
	} else if (row && rows_deliver(&r, row, arg) < 0) {
		pw_errf(e, sizeof(e), "out of memory");
		rc = -1;
	}
	free(r.data);
	if (rc < 0)
		pw_errf(err, errlen, "upstream \"%s\": %s", c->name, e);
	return rc;
}

void pw_pgconn_close(struct pw_pgconn *c)
{
	if (!c)
		return;
	if (c->fd >= 0 && !c->broken) {
		char e[64];
		int64_t deadline = now_ms() + (c->timeout_ms < 1000 ? c->timeout_ms : 1000);
		if (send_msg(c, 'X', NULL, 0, NULL, 0, deadline, e, sizeof(e)) == 0 && c->ssl)
			SSL_shutdown(c->ssl); /* close_notify, not waiting for the answer */
	}
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	ERR_clear_error();
	free(c->in);
	free(c);
}
