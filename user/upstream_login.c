/* The upstream login state machine. See include/pgward/upstream_login.h. */
#include <stdio.h>
#include <string.h>

#include "pgward/log.h"
#include "pgward/proto.h"
#include "pgward/upstream_login.h"

enum {
	L_START,      /* nothing asked yet */
	L_PASSWORD,   /* sent a cleartext or MD5 password: AuthenticationOk or an error next */
	L_SASL_FIRST, /* sent SASLInitialResponse: SASLContinue next */
	L_SASL_FINAL, /* sent SASLResponse: SASLFinal next */
	L_SASL_DONE,  /* the server's signature verified: AuthenticationOk next */
	L_AUTHED,
};

const char *pw_login_method_name(uint32_t code)
{
	switch (code) {
	case PW_AUTH_REQ_OK:
		return "none";
	case PW_AUTH_REQ_KRB5:
		return "Kerberos V5";
	case PW_AUTH_REQ_CLEARTEXT:
		return "password";
	case PW_AUTH_REQ_MD5:
		return "md5";
	case PW_AUTH_REQ_GSS:
	case PW_AUTH_REQ_GSS_CONT:
		return "GSSAPI";
	case PW_AUTH_REQ_SSPI:
		return "SSPI";
	case PW_AUTH_REQ_SASL:
	case PW_AUTH_REQ_SASL_CONT:
	case PW_AUTH_REQ_SASL_FIN:
		return "SASL";
	default:
		return "unknown";
	}
}

void pw_login_init(struct pw_login *l, const struct pw_upstream *u, bool tls)
{
	memset(l, 0, sizeof(*l));
	l->u = u;
	l->tls = tls;
	l->state = L_START;
}

/* May the server ask for this method (require_auth), now (nothing asked before)? */
static bool may_use(struct pw_login *l, unsigned method, const char *name, char *err, size_t errlen)
{
	if (l->state != L_START) {
		pw_errf(err, errlen, "server asked for a second authentication (%s)", name);
		return false;
	}
	if (!(l->u->require_auth & method)) {
		pw_errf(err, errlen,
		        "server asked for %s authentication, which require_auth does "
		        "not allow",
		        name);
		return false;
	}
	if (!l->u->has_password) {
		pw_errf(err, errlen, "server asks for a password and none is configured");
		return false;
	}
	l->used = method;
	return true;
}

/* The steps, one per authentication request; each fills out (*outlen bytes) or err. */
struct step_io {
	uint8_t *out;
	size_t outcap, *outlen;
	char *err;
	size_t errlen;
};

static enum pw_login_result login_ok(struct pw_login *l, struct step_io *io)
{
	if (l->state == L_SASL_FIRST || l->state == L_SASL_FINAL) {
		/* a server that started SCRAM must finish it: the signature is its proof that it
		 * knows the password, i.e. that it is the server we meant */
		pw_errf(io->err, io->errlen,
		        "server ended SCRAM without proving it knows the password");
		return PW_LOGIN_FAIL;
	}
	if (l->state == L_AUTHED) {
		pw_errf(io->err, io->errlen, "AuthenticationOk twice");
		return PW_LOGIN_FAIL;
	}
	if (l->state == L_START && !(l->u->require_auth & PW_AUTH_NONE)) {
		pw_errf(io->err, io->errlen,
		        "server did not ask for authentication, which require_auth does not allow");
		return PW_LOGIN_FAIL;
	}
	l->state = L_AUTHED;
	return PW_LOGIN_AUTHED;
}

static enum pw_login_result login_cleartext(struct pw_login *l, struct step_io *io)
{
	const struct pw_upstream *u = l->u;
	if (!may_use(l, PW_AUTH_PASSWORD, "password", io->err, io->errlen))
		return PW_LOGIN_FAIL;
	if (!l->tls && !u->allow_cleartext) {
		pw_errf(io->err, io->errlen,
		        "server asks for a cleartext password over an unencrypted connection (set "
		        "allow_cleartext to permit it)");
		return PW_LOGIN_FAIL;
	}
	if (strlen(u->password) + 1 > io->outcap) {
		pw_errf(io->err, io->errlen, "password too long");
		return PW_LOGIN_FAIL;
	}
	*io->outlen = strlen(u->password) + 1;
	memcpy(io->out, u->password, *io->outlen);
	l->state = L_PASSWORD;
	return PW_LOGIN_SEND;
}

static enum pw_login_result login_md5(struct pw_login *l, const uint8_t *data, size_t dlen,
                                      struct step_io *io)
{
	if (!may_use(l, PW_AUTH_MD5, "md5", io->err, io->errlen))
		return PW_LOGIN_FAIL;
	if (dlen != 4 || io->outcap < 36) {
		pw_errf(io->err, io->errlen, "malformed MD5 request");
		return PW_LOGIN_FAIL;
	}
	pw_md5_password(l->u->user, l->u->password, data, (char *)io->out);
	*io->outlen = 36;
	l->state = L_PASSWORD;
	return PW_LOGIN_SEND;
}

/* AuthenticationSASL: a list of mechanism names, each NUL-terminated, ended by an empty one;
 * SCRAM-SHA-256 (never -PLUS: channel binding cannot cross our hop) starts. */
static enum pw_login_result login_sasl(struct pw_login *l, const uint8_t *data, size_t dlen,
                                       struct step_io *io)
{
	bool scram = false, ended = false;
	for (size_t i = 0; i < dlen;) {
		const char *m = (const char *)data + i;
		size_t ml = strnlen(m, dlen - i);
		if (ml == dlen - i)
			break; /* unterminated */
		if (ml == 0) {
			ended = true;
			break;
		}
		scram |= strcmp(m, "SCRAM-SHA-256") == 0;
		i += ml + 1;
	}
	if (!ended) {
		pw_errf(io->err, io->errlen, "malformed SASL mechanism list");
		return PW_LOGIN_FAIL;
	}
	if (!scram) {
		pw_errf(io->err, io->errlen, "server offers no SASL mechanism pgward supports");
		return PW_LOGIN_FAIL;
	}
	if (!may_use(l, PW_AUTH_SCRAM, "scram-sha-256", io->err, io->errlen))
		return PW_LOGIN_FAIL;
	static const char mech[] = "SCRAM-SHA-256";
	char first[PW_SCRAM_MSG_MAX];
	size_t flen;
	if (pw_scram_client_first(&l->scram, NULL, first, sizeof(first), &flen) != 0 ||
	    sizeof(mech) + 4 + flen > io->outcap) {
		pw_errf(io->err, io->errlen, "SCRAM client-first failed");
		return PW_LOGIN_FAIL;
	}
	memcpy(io->out, mech, sizeof(mech));
	pw_put_be32(io->out + sizeof(mech), (uint32_t)flen);
	memcpy(io->out + sizeof(mech) + 4, first, flen);
	*io->outlen = sizeof(mech) + 4 + flen;
	l->state = L_SASL_FIRST;
	return PW_LOGIN_SEND;
}

enum pw_login_result pw_login_step(struct pw_login *l, const uint8_t *body, size_t len,
                                   uint8_t *out, size_t outcap, size_t *outlen, char *err,
                                   size_t errlen)
{
	struct step_io io = {out, outcap, outlen, err, errlen};
	char e[256];

	*outlen = 0;
	if (len < 4) {
		pw_errf(err, errlen, "short authentication request");
		return PW_LOGIN_FAIL;
	}
	uint32_t code = pw_be32(body);
	const uint8_t *data = body + 4;
	size_t dlen = len - 4;

	switch (code) {
	case PW_AUTH_REQ_OK:
		return login_ok(l, &io);
	case PW_AUTH_REQ_CLEARTEXT:
		return login_cleartext(l, &io);
	case PW_AUTH_REQ_MD5:
		return login_md5(l, data, dlen, &io);
	case PW_AUTH_REQ_SASL:
		return login_sasl(l, data, dlen, &io);
	case PW_AUTH_REQ_SASL_CONT:
		if (l->state != L_SASL_FIRST) {
			pw_errf(err, errlen, "unexpected SASLContinue");
			return PW_LOGIN_FAIL;
		}
		if (pw_scram_client_final(&l->scram, l->u->password, data, dlen, (char *)out,
		                          outcap, outlen, e, sizeof(e)) != PW_AUTH_OK) {
			pw_errf(err, errlen, "SCRAM exchange failed: %s", e);
			return PW_LOGIN_FAIL;
		}
		l->state = L_SASL_FINAL;
		return PW_LOGIN_SEND;
	case PW_AUTH_REQ_SASL_FIN:
		if (l->state != L_SASL_FINAL) {
			pw_errf(err, errlen, "unexpected SASLFinal");
			return PW_LOGIN_FAIL;
		}
		if (pw_scram_client_verify(&l->scram, data, dlen, e, sizeof(e)) != PW_AUTH_OK) {
			pw_errf(err, errlen, "the server's SCRAM signature does not verify (%s)",
			        e);
			return PW_LOGIN_FAIL;
		}
		l->state = L_SASL_DONE;
		*outlen = 0;
		return PW_LOGIN_SEND; /* nothing to send: AuthenticationOk comes next */
	default:
		pw_errf(
		    err, errlen,
		    "server asks for authentication method %u (%s), which pgward does not support",
		    code, pw_login_method_name(code));
		return PW_LOGIN_FAIL;
	}
}
