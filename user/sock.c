/* One side of a session: reads and writes, plain or TLS, with readiness kept for an
 * edge-triggered loop. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pgward/sock.h"
#include "pgward/tls.h"

void pw_sock_events(struct pw_sock *k, uint32_t events)
{
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		k->rd = true;
	if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		k->hup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		k->wr = true;
	if (k->ssl) /* TLS reads can need writes and the other way round */
		k->rd = k->wr = true;
}

/* An OpenSSL call that did not complete: would it block, or did it fail? */
static ssize_t ssl_blocked(struct pw_sock *k, int r, bool reading)
{
	int e = SSL_get_error(k->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		if (reading)
			k->rd = false;
		else
			k->wr = false;
		return PW_IO_WOULDBLOCK;
	}
	ERR_clear_error();
	return reading && e == SSL_ERROR_ZERO_RETURN ? PW_IO_EOF : PW_IO_ERR;
}

static ssize_t sock_read(struct pw_sock *k, uint8_t *p, size_t n)
{
	if (k->ssl) {
		int r = SSL_read(k->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		return r > 0 ? r : ssl_blocked(k, r, true);
	}
	ssize_t r = read(k->ev.fd, p, n);
	if (r > 0) {
		/* edge-triggered: a short read drained the socket, new data raises a new edge;
		 * but not the peer's end when it came with the data (one edge for both): after a
		 * hang-up, read until EOF */
		if ((size_t)r < n && !k->hup)
			k->rd = false;
		return r;
	}
	if (r == 0)
		return PW_IO_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		k->rd = false;
		return PW_IO_WOULDBLOCK;
	}
	return errno == EINTR ? PW_IO_WOULDBLOCK : PW_IO_ERR;
}

static ssize_t sock_write(struct pw_sock *k, const uint8_t *p, size_t n)
{
	if (k->ssl) {
		int r = SSL_write(k->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		return r > 0 ? r : ssl_blocked(k, r, false);
	}
	ssize_t r = send(k->ev.fd, p, n, MSG_NOSIGNAL);
	if (r >= 0) {
		if ((size_t)r < n)
			k->wr = false;
		return r;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		k->wr = false;
		return PW_IO_WOULDBLOCK;
	}
	return errno == EINTR ? PW_IO_WOULDBLOCK : PW_IO_ERR;
}

ssize_t pw_sock_fill(struct pw_sock *k, struct pw_buf *b)
{
	return pw_sock_fill_upto(k, b, SIZE_MAX);
}

ssize_t pw_sock_fill_upto(struct pw_sock *k, struct pw_buf *b, size_t max)
{
	if (pw_buf_space(b) < 1024)
		pw_buf_compact(b);
	if (!pw_buf_space(b))
		return PW_IO_WOULDBLOCK;
	size_t n = pw_buf_space(b) < max ? pw_buf_space(b) : max;
	ssize_t r = sock_read(k, pw_buf_tail(b), n);
	if (r > 0) {
		if (k->tap)
			k->tap(k->tap_arg, 'F', pw_buf_tail(b), (size_t)r);
		pw_buf_filled(b, (size_t)r);
		k->bytes_in += (uint64_t)r;
	} else if (r == PW_IO_EOF)
		k->eof = true;
	return r;
}

ssize_t pw_sock_drain(struct pw_sock *k, struct pw_buf *b)
{
	size_t n = pw_buf_pending(b);
	if (!n)
		return 0;
	ssize_t r = sock_write(k, pw_buf_head(b), n);
	if (r > 0) {
		if (k->tap)
			k->tap(k->tap_arg, 'B', pw_buf_head(b), (size_t)r);
		pw_buf_written(b, (size_t)r);
		k->bytes_out += (uint64_t)r;
	}
	return r;
}

int pw_sock_tls(struct pw_sock *k, SSL_CTX *ctx)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, k->ev.fd) != 1) {
		SSL_free(ssl);
		return -1;
	}
	k->ssl = ssl;
	return 0;
}

int pw_sock_handshake(struct pw_sock *k, bool server, char *err, size_t errlen)
{
	ERR_clear_error();
	int r = server ? SSL_accept(k->ssl) : SSL_connect(k->ssl);
	if (r == 1)
		return 1;
	int e = SSL_get_error(k->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		k->rd = false;
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		k->wr = false;
		return 0;
	}
	char buf[256];
	pw_tls_error(buf, sizeof(buf));
	long v = server ? X509_V_OK : SSL_get_verify_result(k->ssl);
	snprintf(err, errlen, "%s%s%s", buf, v != X509_V_OK ? ": " : "",
	         v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
	return -1;
}

void pw_sock_shutdown(struct pw_sock *k)
{
	if (k->ssl)
		SSL_shutdown(k->ssl);
	else
		shutdown(k->ev.fd, SHUT_WR);
}

int pw_sock_error(const struct pw_sock *k)
{
	int e = 0;
	socklen_t l = sizeof(e);
	if (k->ev.fd < 0)
		return EBADF;
	return getsockopt(k->ev.fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0 ? errno : e;
}

bool pw_sock_reset(const struct pw_sock *k)
{
	int e = pw_sock_error(k);
	return e == ECONNRESET || e == EPIPE || e == ETIMEDOUT;
}

void pw_sock_close(struct pw_sock *k, bool notify)
{
	if (k->ssl) {
		if (notify && !k->eof)
			SSL_shutdown(k->ssl); /* best effort close_notify */
		SSL_free(k->ssl);
		k->ssl = NULL;
	}
	if (k->ev.fd >= 0) {
		close(k->ev.fd); /* also removes it from epoll */
		k->ev.fd = -1;
	}
}

void pw_sock_move(struct pw_sock *to, struct pw_sock *k)
{
	to->ev.fd = k->ev.fd;
	to->ssl = k->ssl;
	to->rd = to->wr = true;
	k->ev.fd = -1;
	k->ssl = NULL;
}
