/* PostgreSQL v3 wire protocol: framing constants and the few messages pgwardd builds itself. */
#ifndef PGWARD_PROTO_H
#define PGWARD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/buf.h"

#define PW_PROTO_V3       196608u /* 3.0 */
#define PW_SSL_REQUEST    80877103u
#define PW_GSSENC_REQUEST 80877104u
#define PW_CANCEL_REQUEST 80877102u
#define PW_HDR            5    /* type byte + int32 length */
#define PW_AUTH_MSG_MAX   8192 /* largest message accepted while authenticating, either side */

/* Authentication request codes (backend 'R'). */
enum {
	PW_AUTH_REQ_OK = 0,
	PW_AUTH_REQ_KRB5 = 2,
	PW_AUTH_REQ_CLEARTEXT = 3,
	PW_AUTH_REQ_MD5 = 5,
	PW_AUTH_REQ_GSS = 7,
	PW_AUTH_REQ_GSS_CONT = 8,
	PW_AUTH_REQ_SSPI = 9,
	PW_AUTH_REQ_SASL = 10,
	PW_AUTH_REQ_SASL_CONT = 11,
	PW_AUTH_REQ_SASL_FIN = 12,
};

static inline uint32_t pw_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void pw_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Is `t` a message type a frontend may send once the session is established? */
bool pw_frontend_type_valid(uint8_t t);

/* Startup packet parameters, kept as the packet's own bytes (key\0value\0...). */
#define PW_MAX_PARAMS 64
struct pw_startup {
	uint32_t version;
	int n;
	const char *key[PW_MAX_PARAMS];
	const char *val[PW_MAX_PARAMS];
};
/* Parse the parameter list of a StartupMessage body (after the version). Returns 0 or -1
 * with a reason. The strings point into `body`, which must stay alive. */
int pw_startup_parse(const uint8_t *body, size_t len, struct pw_startup *st, const char **why);
const char *pw_startup_get(const struct pw_startup *st, const char *key);

/* Insert (at scan, decided: see pw_buf_insert) an ErrorResponse (or NoticeResponse when type ==
 * 'N') to b. severity: "ERROR", "FATAL"...; sqlstate: 5 chars. Returns 0 or -1. */
int pw_msg_error(struct pw_buf *b, char type, const char *severity, const char *sqlstate,
                 const char *message, const char *detail);
/* Same into a caller's array; returns the length, or 0 if it does not fit. */
size_t pw_msg_error_to(uint8_t *out, size_t cap, const char *severity, const char *sqlstate,
                       const char *message, const char *detail);

/* Insert a message with a 4-byte code and an optional payload: 'R' auth requests. */
int pw_msg_auth(struct pw_buf *b, uint32_t code, const void *payload, size_t len);
/* Insert a generic message: type, then payload. type 0 = no type byte (startup packets). */
int pw_msg_raw(struct pw_buf *b, uint8_t type, const void *payload, size_t len);

/* The next message at b's scan while pgwardd reads it whole itself (authentication, set-up):
 * its start, with its length word in *len; NULL while it is incomplete (room is made for it),
 * or when its length is outside [4, max] (*bad set: the caller says how that fails). */
uint8_t *pw_msg_small(struct pw_buf *b, uint32_t max, uint32_t *len, bool *bad);

/* Find field `code` ('C' sqlstate, 'S' severity, 'M' message) in an ErrorResponse body. */
const char *pw_error_field(const uint8_t *body, size_t len, char code);

#endif
