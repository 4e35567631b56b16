/* The client's side of the start-up. See include/pgward/client_login.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pgward/client_login.h"
#include "pgward/options.h"

void pw_client_packet(struct pw_buf *b, uint32_t max, bool tls, struct pw_client_packet *out,
                      struct pw_deny *why)
{
	memset(out, 0, sizeof(*out));
	out->kind = PW_CP_FAIL;
	size_t avail = pw_buf_unscanned(b);
	if (avail < 8) {
		out->kind = PW_CP_MORE;
		return;
	}
	const uint8_t *p = pw_buf_at_scan(b);
	uint32_t len = pw_be32(p), code = pw_be32(p + 4);
	out->len = len;
	if (len < 8 || len > max) {
		pw_deny_set(why, "08P01", "invalid length of startup packet (%u)", len);
		return;
	}
	if (avail < len) {
		if (pw_buf_reserve_at_scan(b, len) < 0)
			pw_deny_set(why, "53200", "pgward: out of memory");
		else
			out->kind = PW_CP_MORE;
		return;
	}
	if (code == PW_SSL_REQUEST || code == PW_GSSENC_REQUEST) {
		if (len != 8)
			pw_deny_set(why, "08P01", "invalid length of encryption request packet");
		else if (tls)
			pw_deny_set(why, "08P01", "pgward: encryption requested twice");
		else
			out->kind = code == PW_SSL_REQUEST ? PW_CP_SSL : PW_CP_GSS;
		return;
	}
	if (code == PW_CANCEL_REQUEST) {
		if (len != 16) {
			pw_deny_set(why, "08P01", "invalid length of cancel request packet");
			return;
		}
		out->pid = pw_be32(p + 8);
		out->key = pw_be32(p + 12);
		out->kind = PW_CP_CANCEL;
		return;
	}
	if (code >> 16 != 3) {
		pw_deny_set(why, "0A000",
		            "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
		            code >> 16, code & 0xffff);
		return;
	}
	out->kind = PW_CP_STARTUP;
}

int pw_client_hello(const uint8_t *pkt, size_t len, struct pw_client_hello *h, struct pw_deny *why)
{
	const char *reason;
	memset(h, 0, sizeof(*h));
	if (pw_startup_parse(pkt + 8, len - 8, &h->st, &reason) < 0)
		return pw_deny_set(why, "08P01", "pgward: invalid startup packet: %s", reason);
	h->st.version = pw_be32(pkt + 4);
	h->user = pw_startup_get(&h->st, "user");
	if (!h->user || !h->user[0])
		return pw_deny_set(why, "28000",
		                   "no PostgreSQL user name specified in startup packet");
	h->database = pw_startup_get(&h->st, "database");
	if (!h->database || !h->database[0])
		h->database = h->user;
	h->application_name = pw_startup_get(&h->st, "application_name");
	if (pw_replication_refused(pw_startup_get(&h->st, "replication"), why->message,
	                           sizeof(why->message))) {
		snprintf(why->sqlstate, sizeof(why->sqlstate), "0A000");
		return -1;
	}
	return 0;
}

const uint8_t *pw_client_auth_message(struct pw_buf *b, const char *what, uint32_t min,
                                      uint32_t max, bool token, const char *user, size_t *blen,
                                      struct pw_deny *why)
{
	why->sqlstate[0] = 0;
	size_t avail = pw_buf_unscanned(b);
	if (avail < PW_HDR)
		return NULL;
	const uint8_t *p = pw_buf_at_scan(b);
	uint32_t len = pw_be32(p + 1);
	if (p[0] != 'p') {
		pw_deny_set(why, "08P01", "expected %s, got message type %d", what, p[0]);
		return NULL;
	}
	if (len < min || len > max) {
		*blen = len; /* for the log: the length it claimed */
		if (token)
			pw_deny_set(why, "28000",
			            "pgward: token authentication failed for user \"%s\"", user);
		else
			pw_deny_set(why, "08P01", "invalid %s length %u", what, len);
		return NULL;
	}
	if (avail < (size_t)len + 1) {
		if (pw_buf_reserve_at_scan(b, (size_t)len + 1) < 0)
			pw_deny_set(why, "53200", "pgward: out of memory");
		return NULL;
	}
	*blen = len - 4;
	return p + PW_HDR;
}

int pw_client_sasl(struct pw_scram_server *ss, const struct pw_scram_verifier *v, bool initial,
                   const uint8_t *body, size_t blen, const char *user, char *out, size_t cap,
                   size_t *outlen, struct pw_deny *why, char *detail, size_t detail_len)
{
	int rc;
	detail[0] = 0;
	if (initial) {
		const uint8_t *z = memchr(body, 0, blen);
		if (!z || (size_t)(z - body) + 5 > blen)
			return pw_deny_set(why, "08P01", "malformed SASLInitialResponse");
		if (strcmp((const char *)body, "SCRAM-SHA-256") != 0)
			return pw_deny_set(
			    why, "28000",
			    "client selected an invalid SASL authentication mechanism");
		size_t off = (size_t)(z - body) + 1;
		int32_t dlen = (int32_t)pw_be32(body + off);
		off += 4;
		if (dlen < 0 || (size_t)dlen != blen - off)
			return pw_deny_set(why, "08P01", "malformed SASLInitialResponse");
		rc = pw_scram_server_first(ss, v, body + off, (size_t)dlen, NULL, out, cap, outlen,
		                           detail, detail_len);
	} else {
		rc = pw_scram_server_final(ss, body, blen, out, cap, outlen, detail, detail_len);
	}
	if (rc == PW_AUTH_FAIL)
		return pw_deny_set(why, "28P01", "password authentication failed for user \"%s\"",
		                   user);
	if (rc != PW_AUTH_OK)
		return pw_deny_set(why, "08P01", "invalid SASL message: %s", detail);
	return 0;
}

int pw_client_token(const struct pw_config *cfg, const uint8_t *body, size_t blen, const char *user,
                    long long now, struct pw_jwt_claims *claims, struct pw_deny *why, char *detail,
                    size_t detail_len)
{
	const char *tok = (const char *)body;
	size_t tlen = strnlen(tok, blen);
	struct pw_jwt_params prm = {.issuer = cfg->jwt.issuer,
	                            .audience = cfg->jwt.audience,
	                            .leeway_s = cfg->jwt.leeway_s,
	                            .groups_claim = cfg->jwt.groups_claim,
	                            .require_exp = true};
	int rc = -1;
	if (tlen + 1 != blen)
		snprintf(detail, detail_len, "malformed password message");
	else
		rc = pw_jwt_verify(cfg->jwt.keys, &prm, tok, tlen, now, claims, detail, detail_len);
	if (rc < 0)
		/* the reason goes to the log only: a client probing tokens learns nothing */
		return pw_deny_set(why, "28000",
		                   "pgward: token authentication failed for user \"%s\"", user);
	return 0;
}
