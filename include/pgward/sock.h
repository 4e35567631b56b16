/* One side of a session: a non-blocking socket, plain or TLS, watched edge-triggered by the
 * worker's loop. Readiness is remembered as the loop last reported it and cleared when a read
 * or write would block; bytes move between the socket and a direction buffer (buf.h). */
#ifndef PGWARD_SOCK_H
#define PGWARD_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "pgward/buf.h"
#include "pgward/loop.h"

struct pw_sock {
	struct pw_ev ev; /* fd -1: closed */
	SSL *ssl;
	bool rd, wr; /* readiness as last reported (edge-triggered) */
	bool hup;    /* the peer's end was reported: read on until EOF, whatever a read returns */
	bool eof;
	uint64_t bytes_in, bytes_out; /* moved through pw_sock_fill and pw_sock_drain */
	/* told of every byte moved (a session recording, record.h): 'F' read, 'B' written */
	void (*tap)(void *arg, char kind, const void *p, size_t n);
	void *tap_arg;
};

/* What pw_sock_fill and pw_sock_drain return besides a byte count. */
enum { PW_IO_WOULDBLOCK = 0, PW_IO_EOF = -1, PW_IO_ERR = -2 };

/* An epoll report for k (the handler's events): readiness and the peer's end. */
void pw_sock_events(struct pw_sock *k, uint32_t events);
/* Read what fits into b: bytes read (>0), PW_IO_WOULDBLOCK, PW_IO_EOF (k->eof set) or
 * PW_IO_ERR. */
ssize_t pw_sock_fill(struct pw_sock *k, struct pw_buf *b);
/* The same, reading at most max bytes. */
ssize_t pw_sock_fill_upto(struct pw_sock *k, struct pw_buf *b, size_t max);
/* Write the decided bytes of b: bytes written, PW_IO_WOULDBLOCK or PW_IO_ERR. */
ssize_t pw_sock_drain(struct pw_sock *k, struct pw_buf *b);
/* Start TLS on k's socket with ctx (server: pgwardd is the server). -1 when it cannot. */
int pw_sock_tls(struct pw_sock *k, SSL_CTX *ctx);
/* Drive k's TLS handshake: 1 done, 0 wants the socket again, -1 failed (err says why, with
 * the certificate's verification result on the client side). */
int pw_sock_handshake(struct pw_sock *k, bool server, char *err, size_t errlen);
/* Pass our end on (TLS close_notify, or a TCP FIN): the peer may still send. */
void pw_sock_shutdown(struct pw_sock *k);
/* The socket's pending error (SO_ERROR): 0, or why a connect failed. */
int pw_sock_error(const struct pw_sock *k);
/* Did the connection end in a reset (the peer is gone, not half-closed)? */
bool pw_sock_reset(const struct pw_sock *k);
/* Close k (a no-op when closed); notify: send a TLS close_notify first, best effort. The
 * descriptor leaves the loop's epoll with the close. */
void pw_sock_close(struct pw_sock *k, bool notify);
/* Hand k's connection to to (k is left closed, without closing it). */
void pw_sock_move(struct pw_sock *to, struct pw_sock *k);
#endif
