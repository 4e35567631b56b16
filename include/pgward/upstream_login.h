/* pgwardd's login to an upstream, as one pure, incremental state machine that sessions (on
 * the event loop) and pgconn.c (blocking) both drive: fed each authentication request the
 * server sends, it answers with the message to send back, and it accepts AuthenticationOk only
 * when the exchange the server asked for is complete: after a SASL exchange, only once the
 * server's signature has been verified (the server proved it knows the password). The
 * upstream's require_auth (libpq 16) says which methods the server may ask for; a cleartext
 * password goes only over TLS unless allow_cleartext. No I/O, no allocation. */
#ifndef PGWARD_UPSTREAM_LOGIN_H
#define PGWARD_UPSTREAM_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/auth.h"
#include "pgward/config.h"

#define PW_LOGIN_MSG_MAX (PW_SCRAM_MSG_MAX + 64) /* the largest answer (a password message) */

struct pw_login {
	const struct pw_upstream *u;
	bool tls;      /* the connection is encrypted */
	int state;     /* see upstream_login.c */
	unsigned used; /* the PW_AUTH_* method the server asked for (0: none yet) */
	struct pw_scram_client scram;
};

enum pw_login_result {
	PW_LOGIN_SEND,   /* answer with a PasswordMessage ('p') holding out[0, *outlen) */
	PW_LOGIN_AUTHED, /* AuthenticationOk: logged in; the start-up messages follow */
	PW_LOGIN_FAIL,   /* err says why; the connection must be given up */
};

void pw_login_init(struct pw_login *l, const struct pw_upstream *u, bool tls);

/* One AuthenticationRequest ('R'): body is the message after its length word. */
enum pw_login_result pw_login_step(struct pw_login *l, const uint8_t *body, size_t len,
                                   uint8_t *out, size_t outcap, size_t *outlen, char *err,
                                   size_t errlen);

/* The name of an authentication request code, for messages ("GSSAPI", "SASL"...). */
const char *pw_login_method_name(uint32_t code);

#endif
