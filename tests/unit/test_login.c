/* The upstream login state machine (user/upstream_login.c) that sessions and pgconn.c share:
 * every method, require_auth, and the orders of requests a server (or a man in the middle)
 * may try. The SCRAM server side is auth.c's, with a verifier made from the password. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pgward/proto.h"
#include "pgward/upstream_login.h"

static struct pw_upstream up;
static struct pw_login lg;
static uint8_t out[PW_LOGIN_MSG_MAX];
static size_t outlen;
static char err[256];

/* An AuthenticationRequest body: code, then payload. */
static enum pw_login_result req(uint32_t code, const void *payload, size_t len)
{
	uint8_t body[1024];
	pw_put_be32(body, code);
	if (len)
		memcpy(body + 4, payload, len);
	err[0] = 0;
	return pw_login_step(&lg, body, 4 + len, out, sizeof(out), &outlen, err, sizeof(err));
}

static void fresh(unsigned require, bool tls)
{
	memset(&up, 0, sizeof(up));
	snprintf(up.name, sizeof(up.name), "u");
	snprintf(up.user, sizeof(up.user), "app");
	snprintf(up.password, sizeof(up.password), "secret pw");
	up.has_password = true;
	up.require_auth = require;
	pw_login_init(&lg, &up, tls);
}

/* Plays a SCRAM server for pw: SASL, then continue, then final (forged when bad_sig), then
 * Ok. Returns the result of the last step run. */
static enum pw_login_result scram(const char *server_pw, bool bad_sig, bool skip_final)
{
	static const char mechs[] = "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
	struct pw_scram_verifier v;
	struct pw_scram_server srv = {0};
	char vtext[256], msg[PW_SCRAM_MSG_MAX], e[128];
	size_t mlen;
	enum pw_login_result r;

	pw_scram_make_verifier(server_pw, 4096, NULL, 0, vtext, sizeof(vtext));
	pw_scram_parse_verifier(vtext, &v, e, sizeof(e));
	if ((r = req(PW_AUTH_REQ_SASL, mechs, sizeof(mechs))) != PW_LOGIN_SEND)
		return r;
	/* out: "SCRAM-SHA-256\0" + int32 length + client-first */
	size_t ml = strlen((char *)out) + 1;
	if (pw_scram_server_first(&srv, &v, out + ml + 4, outlen - ml - 4, NULL, msg, sizeof(msg),
	                          &mlen, e, sizeof(e)) != PW_AUTH_OK)
		return PW_LOGIN_FAIL;
	if ((r = req(PW_AUTH_REQ_SASL_CONT, msg, mlen)) != PW_LOGIN_SEND)
		return r;
	int rc = pw_scram_server_final(&srv, out, outlen, msg, sizeof(msg), &mlen, e, sizeof(e));
	if (rc != PW_AUTH_OK)
		snprintf(msg, sizeof(msg), "e=invalid-proof"), mlen = strlen(msg);
	if (bad_sig)
		msg[mlen - 3] ^= 1; /* a server that does not know the password cannot sign */
	if (!skip_final && (r = req(PW_AUTH_REQ_SASL_FIN, msg, mlen)) != PW_LOGIN_SEND)
		return r;
	return req(PW_AUTH_REQ_OK, NULL, 0);
}

int main(void)
{
	fresh(PW_AUTH_ANY, false);
	CHECK(scram("secret pw", false, false) == PW_LOGIN_AUTHED, "SCRAM: logged in (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(scram("secret pw", true, false) == PW_LOGIN_FAIL && strstr(err, "does not verify"),
	      "SCRAM: a forged server signature fails (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(scram("other pw", false, true) == PW_LOGIN_FAIL && strstr(err, "without proving"),
	      "SCRAM: AuthenticationOk before SASLFinal fails (%s)", err);
	fresh(PW_AUTH_ANY, false);
	static const char mechs[] = "SCRAM-SHA-256\0";
	req(PW_AUTH_REQ_SASL, mechs, sizeof(mechs));
	CHECK(req(PW_AUTH_REQ_OK, NULL, 0) == PW_LOGIN_FAIL && strstr(err, "without proving"),
	      "SCRAM: AuthenticationOk right after SASL fails (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_SASL_FIN, "v=x", 3) == PW_LOGIN_FAIL, "SASLFinal first fails");
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_SASL_CONT, "r=x", 3) == PW_LOGIN_FAIL, "SASLContinue first fails");
	fresh(PW_AUTH_ANY, false);
	static const char plus[] = "SCRAM-SHA-256-PLUS\0";
	CHECK(req(PW_AUTH_REQ_SASL, plus, sizeof(plus)) == PW_LOGIN_FAIL &&
	          strstr(err, "no SASL mechanism"),
	      "SCRAM-SHA-256-PLUS alone is not used (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_SASL, "SCRAM-SHA-256", 13) == PW_LOGIN_FAIL,
	      "an unterminated mechanism list fails");

	/* MD5 and cleartext */
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_MD5, "salt", 4) == PW_LOGIN_SEND && outlen == 36 &&
	          memcmp(out, "md5", 3) == 0 && req(PW_AUTH_REQ_OK, NULL, 0) == PW_LOGIN_AUTHED,
	      "MD5: answered, logged in");
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_MD5, "sal", 3) == PW_LOGIN_FAIL, "a malformed MD5 request fails");
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_CLEARTEXT, NULL, 0) == PW_LOGIN_FAIL && strstr(err, "unencrypted"),
	      "a cleartext password is not sent over a plain connection (%s)", err);
	fresh(PW_AUTH_ANY, true);
	CHECK(req(PW_AUTH_REQ_CLEARTEXT, NULL, 0) == PW_LOGIN_SEND &&
	          strcmp((char *)out, "secret pw") == 0 && outlen == 10,
	      "over TLS it is");
	fresh(PW_AUTH_ANY, false);
	up.allow_cleartext = true;
	CHECK(req(PW_AUTH_REQ_CLEARTEXT, NULL, 0) == PW_LOGIN_SEND, "and with allow_cleartext");
	fresh(PW_AUTH_ANY, false);
	up.has_password = false;
	CHECK(req(PW_AUTH_REQ_MD5, "salt", 4) == PW_LOGIN_FAIL && strstr(err, "none is configured"),
	      "a password asked for and none configured (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(req(PW_AUTH_REQ_GSS, NULL, 0) == PW_LOGIN_FAIL && strstr(err, "GSSAPI"),
	      "GSSAPI is refused, by name (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(req(99, NULL, 0) == PW_LOGIN_FAIL && strstr(err, "99"), "an unknown method fails");
	fresh(PW_AUTH_ANY, false);
	CHECK(pw_login_step(&lg, (const uint8_t *)"\0\0", 2, out, sizeof(out), &outlen, err,
	                    sizeof(err)) == PW_LOGIN_FAIL,
	      "a short request fails");

	/* a second method after the first: a man in the middle downgrading */
	fresh(PW_AUTH_ANY, true);
	req(PW_AUTH_REQ_MD5, "salt", 4);
	CHECK(req(PW_AUTH_REQ_CLEARTEXT, NULL, 0) == PW_LOGIN_FAIL && strstr(err, "second"),
	      "a second password request after MD5 fails (%s)", err);
	fresh(PW_AUTH_ANY, false);
	CHECK(scram("secret pw", false, false) == PW_LOGIN_AUTHED &&
	          req(PW_AUTH_REQ_OK, NULL, 0) == PW_LOGIN_FAIL,
	      "AuthenticationOk twice fails");

	/* require_auth */
	fresh(PW_AUTH_SCRAM, false);
	CHECK(req(PW_AUTH_REQ_MD5, "salt", 4) == PW_LOGIN_FAIL && strstr(err, "require_auth"),
	      "require_auth scram-sha-256: MD5 refused (%s)", err);
	fresh(PW_AUTH_SCRAM, false);
	CHECK(req(PW_AUTH_REQ_OK, NULL, 0) == PW_LOGIN_FAIL && strstr(err, "require_auth"),
	      "require_auth scram-sha-256: no authentication at all refused (%s)", err);
	fresh(PW_AUTH_SCRAM, false);
	CHECK(scram("secret pw", false, false) == PW_LOGIN_AUTHED,
	      "require_auth scram-sha-256: SCRAM");
	fresh(PW_AUTH_ANY & ~PW_AUTH_PASSWORD, true);
	CHECK(req(PW_AUTH_REQ_CLEARTEXT, NULL, 0) == PW_LOGIN_FAIL,
	      "require_auth !password: cleartext refused even over TLS");
	fresh(PW_AUTH_NONE, false);
	CHECK(req(PW_AUTH_REQ_OK, NULL, 0) == PW_LOGIN_AUTHED, "require_auth none: trust accepted");
	fresh(PW_AUTH_NONE, false);
	CHECK(req(PW_AUTH_REQ_MD5, "salt", 4) == PW_LOGIN_FAIL, "require_auth none: MD5 refused");
	return check_done();
}
