/* The session's upstream side up to the end of the start-up. See
 * include/pgward/upstream_phase.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pgward/proto.h"
#include "pgward/tls.h"
#include "pgward/upstream_phase.h"

/* ---- dialling ---- */

enum { DIAL_CONNECT, DIAL_SSLREQ, DIAL_TLS };

void pw_dial_start(struct pw_dial *d, int family)
{
	*d = (struct pw_dial){.stage = DIAL_CONNECT, .unix_sk = family == AF_UNIX};
}

/* The connect is done (or failed): ask for TLS, or go on to the login. */
static enum pw_dial_outcome connected(struct pw_dial *d, struct pw_sock *k,
                                      const struct pw_upstream *u, char *err, size_t errlen)
{
	if (!k->wr && !k->rd)
		return PW_DIAL_WAIT;
	int e = pw_sock_error(k);
	if (e) {
		snprintf(err, errlen, "cannot connect to upstream \"%s\": %s", u->name,
		         strerror(e));
		return PW_DIAL_FAIL;
	}
	if (d->unix_sk || u->sslmode == PW_SSL_DISABLE)
		return PW_DIAL_LOGIN;
	uint8_t req[8];
	pw_put_be32(req, 8);
	pw_put_be32(req + 4, PW_SSL_REQUEST);
	if (send(k->ev.fd, req, 8, MSG_NOSIGNAL) != 8) {
		snprintf(err, errlen, "cannot write to upstream \"%s\"", u->name);
		return PW_DIAL_FAIL;
	}
	d->stage = DIAL_SSLREQ;
	k->rd = true;
	return PW_DIAL_MOVED;
}

/* The server's answer to the SSLRequest: S (TLS follows) or N. */
static enum pw_dial_outcome ssl_answer(struct pw_dial *d, struct pw_sock *k,
                                       const struct pw_upstream *u, SSL_CTX *ctx, char *err,
                                       size_t errlen)
{
	if (!k->rd)
		return PW_DIAL_WAIT;
	uint8_t c;
	ssize_t n = recv(k->ev.fd, &c, 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		k->rd = false;
		return PW_DIAL_WAIT;
	}
	if (n != 1 || (c != 'S' && c != 'N')) {
		snprintf(err, errlen, "bad answer to SSL request");
		return PW_DIAL_FAIL_LOGIN;
	}
	if (c == 'N') {
		if (u->sslmode < PW_SSL_REQUIRE)
			return PW_DIAL_LOGIN;
		snprintf(err, errlen, "server does not support SSL, but sslmode is %s",
		         pw_sslmode_name(u->sslmode));
		return PW_DIAL_FAIL_LOGIN;
	}
	if (pw_sock_tls(k, ctx) < 0 || pw_tls_upstream_prepare(k->ssl, u) < 0) {
		snprintf(err, errlen, "cannot set up TLS to upstream \"%s\"", u->name);
		return PW_DIAL_FAIL;
	}
	d->tls = true;
	d->stage = DIAL_TLS;
	return PW_DIAL_MOVED;
}

enum pw_dial_outcome pw_dial_step(struct pw_dial *d, struct pw_sock *k, const struct pw_upstream *u,
                                  SSL_CTX *ctx, char *err, size_t errlen)
{
	switch (d->stage) {
	case DIAL_CONNECT:
		return connected(d, k, u, err, errlen);
	case DIAL_SSLREQ:
		return ssl_answer(d, k, u, ctx, err, errlen);
	default:
		break;
	}
	char why[400];
	int r = pw_sock_handshake(k, false, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "TLS handshake failed: %s", why);
		return PW_DIAL_FAIL_LOGIN;
	}
	if (r == 0)
		return PW_DIAL_WAIT;
	k->rd = k->wr = true;
	return PW_DIAL_LOGIN;
}

/* ---- the login and the set-up ---- */

enum {
	UP_AUTH,  /* answering the server's authentication requests */
	UP_SETUP, /* logged in: the start-up messages, and the set-up when there is one */
};

void pw_up_login_start(struct pw_up_login *ul, const struct pw_upstream *u, bool tls, bool capture,
                       const char *setup_sql, bool truth_wanted)
{
	memset(ul, 0, sizeof(*ul));
	pw_login_init(&ul->login, u, tls);
	ul->capture = capture;
	ul->setup_sql = setup_sql;
	ul->truth_wanted = truth_wanted;
}

bool pw_up_login_authed(const struct pw_up_login *ul)
{
	return ul->stage == UP_SETUP;
}

void pw_up_login_pass(struct pw_buf *in, struct pw_preamble *pre, uint32_t len)
{
	pw_preamble_take(pre, pw_buf_at_scan(in), (size_t)len + 1);
	pw_buf_advance(in, (size_t)len + 1);
}

/* One authentication exchange message from the upstream. */
static enum pw_up_outcome auth_step(struct pw_up_login *ul, struct pw_buf *in, struct pw_buf *out,
                                    struct pw_preamble *pre, uint8_t *p, uint32_t len, char *err,
                                    size_t errlen)
{
	const uint8_t *body = p + PW_HDR;
	size_t blen = len - 4;
	switch (p[0]) {
	case 'E': {
		/* the server's own FATAL (wrong database, too many connections...): the client
		 * gets it as it is */
		const char *m = pw_error_field(body, blen, 'M');
		snprintf(err, errlen, "%s", m ? m : "?");
		pw_buf_advance(in, (size_t)len + 1);
		pw_buf_truncate(in);
		return PW_UP_REFUSED;
	}
	case 'v': /* NegotiateProtocolVersion: the client must see it */
	case 'N':
		pw_buf_advance(in, (size_t)len + 1);
		return PW_UP_NEXT;
	case 'R':
		break;
	default:
		snprintf(err, errlen, "unexpected message type '%c' during authentication", p[0]);
		return PW_UP_FAIL;
	}
	uint8_t answer[PW_LOGIN_MSG_MAX];
	size_t n;
	switch (pw_login_step(&ul->login, body, blen, answer, sizeof(answer), &n, err, errlen)) {
	case PW_LOGIN_AUTHED:
		/* forwarded as it is: from here the upstream's bytes go to the client */
		pw_buf_advance(in, (size_t)len + 1);
		if (ul->capture)
			pw_preamble_begin(pre, p, (size_t)len + 1);
		if (!ul->setup_sql)
			return PW_UP_RELAY; /* its ReadyForQuery goes through the relay */
		ul->stage = UP_SETUP;       /* the client waits until the set-up is done */
		return PW_UP_NEXT;
	case PW_LOGIN_SEND:
		pw_buf_cut(in, (size_t)len + 1);
		return !n || pw_msg_raw(out, 'p', answer, n) == 0 ? PW_UP_NEXT : PW_UP_OOM;
	default:
		return PW_UP_FAIL;
	}
}

/* Logged in: the upstream's start-up messages go to the client, except its ReadyForQuery,
 * which is held while the set-up runs (the client cannot send anything before it); the
 * set-up's own answers are dropped (its last row is read first), and its ReadyForQuery is the
 * one the client gets. */
static enum pw_up_outcome setup_step(struct pw_up_login *ul, struct pw_buf *in, struct pw_buf *out,
                                     struct pw_preamble *pre, uint8_t *p, uint32_t len, char *err,
                                     size_t errlen)
{
	size_t total = (size_t)len + 1;
	bool mine = ul->setup_sent; /* answers to pgwardd's own Query */
	switch (p[0]) {
	case 'S': /* is_superuser after SET ROLE is news for the client too */
		return PW_UP_PARAM;
	case 'K':
		if (len == 12)
			return PW_UP_KEY;
		snprintf(err, errlen, "malformed BackendKeyData");
		return PW_UP_FAIL;
	case 'N':
		if (mine)
			pw_buf_cut(in, total);
		else
			pw_up_login_pass(in, pre, len);
		return PW_UP_NEXT;
	case 'C':
	case 'T':
		if (!mine)
			break;
		pw_buf_cut(in, total);
		return PW_UP_NEXT;
	case 'D':
		if (!mine)
			break;
		if (ul->truth_wanted && !ul->truth_seen)
			ul->truth_seen = pw_setup_truth_row(p + PW_HDR, len - 4, &ul->truth);
		pw_buf_cut(in, total);
		return PW_UP_NEXT;
	case 'E':
		if (!mine) {
			/* a FATAL right after the login: the client gets it as it is */
			err[0] = 0;
			pw_buf_advance(in, total);
			pw_buf_truncate(in);
			return PW_UP_REFUSED;
		}
		if (!ul->setup_error[0]) {
			const char *m = pw_error_field(p + PW_HDR, len - 4, 'M');
			snprintf(ul->setup_error, sizeof(ul->setup_error), "%s", m ? m : "?");
		}
		pw_buf_cut(in, total);
		return PW_UP_NEXT;
	case 'Z':
		if (len != 5)
			break;
		if (mine)
			return ul->setup_error[0] ? PW_UP_SETUP_FAILED : PW_UP_READY;
		pw_buf_cut(in, total);
		ul->setup_sent = true;
		return pw_msg_raw(out, 'Q', ul->setup_sql, strlen(ul->setup_sql) + 1) < 0
		           ? PW_UP_OOM
		           : PW_UP_NEXT;
	default:
		break;
	}
	snprintf(err, errlen, "unexpected message type '%c' while setting up the session", p[0]);
	return PW_UP_FAIL;
}

enum pw_up_outcome pw_up_login_step(struct pw_up_login *ul, struct pw_buf *in, struct pw_buf *out,
                                    struct pw_preamble *pre, uint32_t *len, char *err,
                                    size_t errlen)
{
	bool bad;
	uint8_t *p = pw_msg_small(in, PW_AUTH_MSG_MAX, len, &bad);
	if (bad) {
		snprintf(err, errlen, "invalid message length %u %s", *len,
		         ul->stage == UP_AUTH ? "during authentication"
		                              : "while setting up the session");
		return PW_UP_FAIL;
	}
	if (!p)
		return PW_UP_MORE;
	if (ul->stage == UP_AUTH)
		return auth_step(ul, in, out, pre, p, *len, err, errlen);
	return setup_step(ul, in, out, pre, p, *len, err, errlen);
}
