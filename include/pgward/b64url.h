/* base64url as JWS and JWK use it (RFC 7515 section 2), strictly: no padding, no whitespace,
 * and unused trailing bits zero, so that each value has one spelling. One decoder for the JWKS
 * reader (jwks.c) and the token verifier (jwt.c). */
#ifndef PGWARD_B64URL_H
#define PGWARD_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* The 6-bit value of a base64url character, or -1 for any other byte. */
int pw_b64url_val(unsigned char ch);
/* n characters decoded into a new buffer (free it) of *outlen bytes; NULL when they are not
 * strict base64url (or memory ran out). */
uint8_t *pw_b64url_dup(const char *in, size_t n, size_t *outlen);

#endif
