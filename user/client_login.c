/* The client's side of the start-up. See include/pgward/client_login.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/client_login.h"
#include "pgward/log.h"
#include "pgward/match.h"
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

/* ---- the phase ---- */

enum { CL_STARTUP, CL_SASL_INIT, CL_SASL_CONT, CL_TOKEN };

/* A complete StartupMessage is at in's scan: who is this, and how do they prove it? */
static enum pw_client_outcome hello(struct pw_client_login *cl, const struct pw_client_where *at,
                                    struct pw_buf *in, struct pw_buf *out, uint32_t len,
                                    struct pw_deny *why)
{
	if (!(cl->startup = malloc(len)))
		return PW_CL_CLOSE;
	memcpy(cl->startup, pw_buf_at_scan(in), len);
	cl->startup_len = len;
	pw_buf_cut(in, len);
	struct pw_client_hello h;
	if (pw_client_hello(cl->startup, cl->startup_len, &h, why) < 0)
		return PW_CL_FAIL;
	cl->st = h.st;
	cl->user = h.user;
	cl->database = h.database;
	const char *app = h.application_name;
	char who[1024] = "";
	if (at->steered) {
		if (!at->kf) {
			/* steered, yet the kernel has no record: never guess who this is */
			pw_deny_set(
			    why, "28000",
			    "pgward: connection not identified by the kernel (no record for %s)",
			    at->peer);
			return PW_CL_FAIL;
		}
		pw_caller_describe(at->kf, who, sizeof(who));
		cl->id = pw_config_match_facts(at->cfg, cl->user, cl->database, app, &at->kf->view);
	} else {
		cl->id = pw_config_match(at->cfg, cl->user, cl->database, app);
	}
	if (!cl->id) {
		pw_deny_set(why, "28000",
		            "pgward: no identity matches user \"%s\", database \"%s\", "
		            "application_name \"%s\"%s%s",
		            cl->user, cl->database, app ? app : "", who[0] ? "; caller: " : "",
		            who);
		return PW_CL_FAIL;
	}
	if (cl->id->auth == PW_CLIENT_AUTH_TRUST)
		return PW_CL_AUTHED;
	if (cl->id->auth == PW_CLIENT_AUTH_JWT) {
		/* the token is a bearer secret: never over a network in clear text */
		if (!at->tls && !at->local) {
			pw_deny_set(
			    why, "28000",
			    "pgward: identity %s authenticates with a token, which needs an "
			    "SSL connection",
			    cl->id->name);
			return PW_CL_FAIL;
		}
		if (pw_msg_auth(out, PW_AUTH_REQ_CLEARTEXT, NULL, 0) < 0)
			return PW_CL_CLOSE;
		cl->stage = CL_TOKEN;
		return PW_CL_NEXT;
	}
	static const char mech[] = "SCRAM-SHA-256\0"; /* list ends with an empty name */
	if (pw_msg_auth(out, PW_AUTH_REQ_SASL, mech, sizeof(mech)) < 0)
		return PW_CL_CLOSE;
	cl->stage = CL_SASL_INIT;
	return PW_CL_NEXT;
}

/* The client's next authentication message: its body, or NULL (incomplete: why->sqlstate
 * empty; or refused). */
static const uint8_t *auth_message(const struct pw_client_login *cl,
                                   const struct pw_client_where *at, struct pw_buf *in,
                                   const char *what, uint32_t min, uint32_t max, bool token,
                                   size_t *blen, struct pw_deny *why)
{
	const uint8_t *body =
	    pw_client_auth_message(in, what, min, max, token, cl->user, blen, why);
	if (!body && why->sqlstate[0] && strcmp(why->sqlstate, "53200") && *blen)
		pw_info("session %llu %s: %s of %zu bytes refused", (unsigned long long)at->serial,
		        at->peer, what, *blen);
	return body;
}

/* The client's PasswordMessage carrying its token. */
static enum pw_client_outcome token(struct pw_client_login *cl, const struct pw_client_where *at,
                                    struct pw_buf *in, struct pw_deny *why)
{
	size_t blen = 0;
	/* too short or too long to be a token: refused like a bad one */
	const uint8_t *body = auth_message(cl, at, in, "password response", 5, PW_JWT_MAX_TOKEN + 5,
	                                   true, &blen, why);
	if (!body)
		return why->sqlstate[0] ? PW_CL_FAIL : PW_CL_MORE;
	char detail[256];
	if (!(cl->claims = calloc(1, sizeof(*cl->claims))))
		return PW_CL_CLOSE;
	int rc = pw_client_token(at->cfg, body, blen, cl->user, time(NULL), cl->claims, why, detail,
	                         sizeof(detail));
	/* a bearer token: no copy left behind */
	explicit_bzero(pw_buf_at_scan(in), blen + PW_HDR);
	pw_buf_cut(in, blen + PW_HDR);
	if (rc < 0) {
		pw_info("session %llu %s: token refused for identity %s: %s",
		        (unsigned long long)at->serial, at->peer, cl->id->name, PW_Q(detail));
		return PW_CL_FAIL;
	}
	/* the claims may pick a later identity; only token identities match from here */
	const struct pw_config *cfg = at->cfg;
	const char *app = pw_startup_get(&cl->st, "application_name");
	const struct pw_identity *id =
	    pw_config_match_ex(cfg, (int)(cl->id - cfg->identities), cl->user, cl->database, app,
	                       at->steered && at->kf ? &at->kf->view : NULL, cl->claims);
	if (!id) {
		pw_info("session %llu %s: no identity matches the token of sub %s",
		        (unsigned long long)at->serial, at->peer, PW_Q(cl->claims->sub));
		pw_deny_set(why, "28000", "pgward: token authentication failed for user \"%s\"",
		            cl->user);
		return PW_CL_FAIL;
	}
	cl->id = id;
	return PW_CL_AUTHED; /* the upstream's AuthenticationOk will be the client's */
}

/* SASLInitialResponse / SASLResponse from the client. */
static enum pw_client_outcome sasl(struct pw_client_login *cl, const struct pw_client_where *at,
                                   struct pw_buf *in, struct pw_buf *out, struct pw_deny *why)
{
	size_t blen = 0;
	const uint8_t *body =
	    auth_message(cl, at, in, "SASL response", 4, PW_AUTH_MSG_MAX, false, &blen, why);
	if (!body)
		return why->sqlstate[0] ? PW_CL_FAIL : PW_CL_MORE;
	char answer[PW_SCRAM_MSG_MAX], detail[256];
	size_t n = 0;
	bool initial = cl->stage == CL_SASL_INIT;
	int rc = pw_client_sasl(&cl->scram, &cl->id->verifier, initial, body, blen, cl->user,
	                        answer, sizeof(answer), &n, why, detail, sizeof(detail));
	pw_buf_cut(in, blen + PW_HDR);
	if (rc < 0) {
		if (!strcmp(why->sqlstate, "28P01"))
			pw_info("session %llu %s: password authentication failed for user %s: %s",
			        (unsigned long long)at->serial, at->peer, PW_Q(cl->user),
			        PW_Q(detail));
		else if (detail[0])
			pw_info("session %llu %s: SASL exchange failed: %s",
			        (unsigned long long)at->serial, at->peer, PW_Q(detail));
		return PW_CL_FAIL;
	}
	if (pw_msg_auth(out, initial ? PW_AUTH_REQ_SASL_CONT : PW_AUTH_REQ_SASL_FIN, answer, n) < 0)
		return PW_CL_CLOSE;
	cl->stage = CL_SASL_CONT;
	return initial ? PW_CL_NEXT : PW_CL_AUTHED;
}

enum pw_client_outcome pw_client_login_step(struct pw_client_login *cl,
                                            const struct pw_client_where *at, struct pw_buf *in,
                                            struct pw_buf *out, struct pw_client_packet *pk,
                                            struct pw_deny *why)
{
	memset(why, 0, sizeof(*why));
	switch (cl->stage) {
	case CL_TOKEN:
		return token(cl, at, in, why);
	case CL_SASL_INIT:
	case CL_SASL_CONT:
		return sasl(cl, at, in, out, why);
	default:
		break;
	}
	pw_client_packet(in, (uint32_t)at->cfg->max_startup_bytes, at->tls, pk, why);
	switch (pk->kind) {
	case PW_CP_MORE:
		return PW_CL_MORE;
	case PW_CP_FAIL:
		return PW_CL_FAIL;
	case PW_CP_SSL:
	case PW_CP_GSS:
		pw_buf_cut(in, 8);
		return pk->kind == PW_CP_SSL ? PW_CL_SSL : PW_CL_GSS;
	case PW_CP_CANCEL:
		return PW_CL_CANCEL;
	case PW_CP_STARTUP:
		break;
	}
	return hello(cl, at, in, out, pk->len, why);
}

void pw_client_login_free(struct pw_client_login *cl)
{
	free(cl->startup);
	free(cl->claims);
	cl->startup = NULL;
	cl->claims = NULL;
}
