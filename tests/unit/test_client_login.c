/* The client's start-up as pgwardd reads it (client_login.h), as tables: first packets, the
 * StartupMessage's parameters, and the framing of authentication messages. The expectation is
 * what PostgreSQL answers each with (its SQLSTATE); tests/integration checks the same against
 * the server itself (malformed startup packets, replication, options). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/client_login.h"

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* a startup-style packet: length, code, then body bytes */
static size_t packet(uint8_t *out, uint32_t code, const void *body, size_t n, int32_t len_delta)
{
	be32(out, (uint32_t)((int32_t)(8 + n) + len_delta));
	be32(out + 4, code);
	memcpy(out + 8, body, n);
	return 8 + n;
}

static const char *kind_name(enum pw_client_packet_kind k)
{
	static const char *const names[] = {
	    [PW_CP_MORE] = "more",     [PW_CP_SSL] = "ssl",         [PW_CP_GSS] = "gss",
	    [PW_CP_CANCEL] = "cancel", [PW_CP_STARTUP] = "startup", [PW_CP_FAIL] = "fail"};
	return names[k];
}

struct prow {
	const char *name;
	uint32_t code;
	const char *body; /* body bytes, given with their length */
	size_t body_len;
	int32_t len_delta; /* added to the length word */
	size_t cut;        /* only this many bytes arrive (0: all) */
	bool tls;
	const char *kind;
	const char *sqlstate;
};

static const struct prow prows[] = {
    {"an SSLRequest", PW_SSL_REQUEST, "", 0, 0, 0, false, "ssl", ""},
    {"a GSSENCRequest", PW_GSSENC_REQUEST, "", 0, 0, 0, false, "gss", ""},
    {"an SSLRequest inside TLS is refused", PW_SSL_REQUEST, "", 0, 0, 0, true, "fail", "08P01"},
    {"an SSLRequest with a body is refused", PW_SSL_REQUEST, "xxxx", 4, 0, 0, false, "fail",
     "08P01"},
    {"a CancelRequest gives its pid and key", PW_CANCEL_REQUEST, "\0\0\0\x07\0\0\0\x09", 8, 0, 0,
     false, "cancel", ""},
    {"a CancelRequest of another length is refused", PW_CANCEL_REQUEST, "\0\0\0\x07", 4, 0, 0,
     false, "fail", "08P01"},
    {"protocol 2.0 is refused as the server refuses it", 0x00020000, "user\0x\0\0", 9, 0, 0, false,
     "fail", "0A000"},
    {"a StartupMessage of protocol 3.0", 0x00030000, "user\0x\0\0", 9, 0, 0, false, "startup", ""},
    {"a length under 8 is refused", 0x00030000, "", 0, -1, 0, false, "fail", "08P01"},
    {"a length over max_startup_bytes is refused", 0x00030000, "user\0x\0\0", 9, 100000, 0, false,
     "fail", "08P01"},
    {"four bytes are not enough to tell", 0x00030000, "user\0x\0\0", 9, 0, 4, false, "more", ""},
    {"half a StartupMessage waits for the rest", 0x00030000, "user\0x\0\0", 9, 0, 12, false, "more",
     ""},
};

struct hrow {
	const char *name;
	const char *body;
	size_t body_len;
	int rc;
	const char *sqlstate;
	const char *user, *database;
};

static const struct hrow hrows[] = {
    {"user and database", "user\0ann\0database\0db\0\0", 22, 0, "", "ann", "db"},
    {"the database defaults to the user", "user\0ann\0\0", 10, 0, "", "ann", "ann"},
    {"an empty database is the user's too", "user\0ann\0database\0\0\0", 20, 0, "", "ann", "ann"},
    {"no user is refused with 28000", "database\0db\0\0", 13, -1, "28000", NULL, NULL},
    {"an empty user is refused with 28000", "user\0\0\0", 7, -1, "28000", NULL, NULL},
    {"replication=true (physical) is refused with 0A000", "user\0a\0replication\0true\0\0", 25, -1,
     "0A000", NULL, NULL},
    {"replication=database (logical) is refused with 0A000", "user\0a\0replication\0database\0\0",
     29, -1, "0A000", NULL, NULL},
    {"replication=off is a normal session", "user\0a\0replication\0off\0\0", 24, 0, "", "a", "a"},
    {"a parameter without its value is refused with 08P01", "user\0a\0dangling\0", 16, -1, "08P01",
     NULL, NULL},
};

static void packets(void)
{
	for (size_t i = 0; i < sizeof(prows) / sizeof(prows[0]); i++) {
		const struct prow *r = &prows[i];
		uint8_t pkt[256];
		size_t n = packet(pkt, r->code, r->body, r->body_len, r->len_delta);
		struct pw_buf b;
		if (pw_buf_init(&b, 64) < 0 || pw_buf_append(&b, pkt, r->cut ? r->cut : n) < 0)
			abort();
		struct pw_client_packet out;
		struct pw_deny why = {.sqlstate = ""};
		pw_client_packet(&b, 10000, r->tls, &out, &why);
		bool ok = !strcmp(kind_name(out.kind), r->kind) &&
		          (out.kind != PW_CP_FAIL || !strcmp(why.sqlstate, r->sqlstate));
		if (out.kind == PW_CP_CANCEL)
			ok &= out.pid == 7 && out.key == 9;
		CHECK(ok, "%s (%s %s)", r->name, kind_name(out.kind),
		      out.kind == PW_CP_FAIL ? why.sqlstate : "");
		pw_buf_free(&b);
	}
}

static void hellos(void)
{
	for (size_t i = 0; i < sizeof(hrows) / sizeof(hrows[0]); i++) {
		const struct hrow *r = &hrows[i];
		uint8_t pkt[256];
		size_t n = packet(pkt, 0x00030000, r->body, r->body_len, 0);
		struct pw_client_hello h;
		struct pw_deny why = {.sqlstate = ""};
		int rc = pw_client_hello(pkt, n, &h, &why);
		bool ok = rc == r->rc &&
		          (rc == 0 ? !strcmp(h.user, r->user) && !strcmp(h.database, r->database) &&
		                         h.st.version == 0x30000
		                   : !strcmp(why.sqlstate, r->sqlstate));
		CHECK(ok, "%s (%d %s)", r->name, rc, rc ? why.sqlstate : h.database);
	}
}

static void auth_messages(void)
{
	struct pw_buf b;
	struct pw_deny why;
	size_t blen = 0;
	uint8_t m[32] = {'p', 0, 0, 0, 8, 'a', 'b', 'c', 0};
	pw_buf_init(&b, 64);
	pw_buf_append(&b, m, 6);
	const uint8_t *body =
	    pw_client_auth_message(&b, "SASL response", 4, 100, false, "u", &blen, &why);
	CHECK(!body && !why.sqlstate[0], "an authentication message not whole yet waits");
	pw_buf_append(&b, m + 6, 3);
	body = pw_client_auth_message(&b, "SASL response", 4, 100, false, "u", &blen, &why);
	CHECK(body && blen == 4 && !memcmp(body, "abc", 4), "once whole, its body (%zu bytes)",
	      blen);
	pw_buf_free(&b);
	pw_buf_init(&b, 64);
	m[0] = 'Q';
	pw_buf_append(&b, m, 9);
	body = pw_client_auth_message(&b, "SASL response", 4, 100, false, "u", &blen, &why);
	CHECK(!body && !strcmp(why.sqlstate, "08P01"), "another message type is a protocol error");
	pw_buf_free(&b);
	pw_buf_init(&b, 64);
	m[0] = 'p';
	pw_buf_append(&b, m, 9);
	body = pw_client_auth_message(&b, "password response", 20, 100, true, "u", &blen, &why);
	CHECK(!body && !strcmp(why.sqlstate, "28000") && blen == 8,
	      "a token of impossible length is a failed token authentication, not a protocol "
	      "error (%s)",
	      why.sqlstate);
	pw_buf_free(&b);
}

static void sasl_framing(void)
{
	struct pw_scram_server ss;
	struct pw_scram_verifier v;
	struct pw_deny why;
	memset(&ss, 0, sizeof(ss));
	memset(&v, 0, sizeof(v));
	char out[PW_SCRAM_MSG_MAX], detail[256];
	size_t outlen;
	static const uint8_t wrong_mech[] = "PLAIN\0\0\0\0\x01x";
	int rc = pw_client_sasl(&ss, &v, true, wrong_mech, sizeof(wrong_mech) - 1, "u", out,
	                        sizeof(out), &outlen, &why, detail, sizeof(detail));
	CHECK(rc < 0 && !strcmp(why.sqlstate, "28000"),
	      "a mechanism other than SCRAM-SHA-256 is refused with 28000 (%s)", why.sqlstate);
	static const uint8_t bad_len[] = "SCRAM-SHA-256\0\0\0\0\x09xx";
	rc = pw_client_sasl(&ss, &v, true, bad_len, sizeof(bad_len) - 1, "u", out, sizeof(out),
	                    &outlen, &why, detail, sizeof(detail));
	CHECK(rc < 0 && !strcmp(why.sqlstate, "08P01"),
	      "a SASLInitialResponse whose length word lies is refused with 08P01 (%s)",
	      why.sqlstate);
}

/* ---- the phase: a first packet in, what the session is to do ---- */

struct lrow {
	const char *name;
	uint32_t code; /* the packet's code: a StartupMessage (196608) with user=user */
	const char *user;
	bool local, steered;
	const char *outcome; /* authed, next, ssl, cancel, fail, more */
	const char *sqlstate;
	char answer; /* the message the client is sent ('R'), or 0 */
	uint32_t answer_code;
};

static const struct lrow lrows[] = {
    {"a trust identity is admitted at its StartupMessage", 196608, "trusted", false, false,
     "authed", "", 0, 0},
    {"a password identity is asked for SCRAM-SHA-256", 196608, "app", false, false, "next", "", 'R',
     10},
    {"a token identity on a local connection is asked for its token", 196608, "tok", true, false,
     "next", "", 'R', 3},
    {"a token identity over a network without TLS is refused", 196608, "tok", false, false, "fail",
     "28000", 0, 0},
    {"no identity matches: refused", 196608, "nobody", false, false, "fail", "28000", 0, 0},
    {"steered without the kernel's record: refused, never guessed", 196608, "trusted", false, true,
     "fail", "28000", 0, 0},
    {"an SSLRequest: the session answers it", 80877103, NULL, false, false, "ssl", "", 0, 0},
    {"a CancelRequest: the session forwards it", 80877102, NULL, false, false, "cancel", "", 0, 0},
    {"half a StartupMessage waits", 0, "trusted", false, false, "more", "", 0, 0},
};

static const char *outcome_name(enum pw_client_outcome o)
{
	static const char *const names[] = {
	    [PW_CL_MORE] = "more", [PW_CL_NEXT] = "next",     [PW_CL_SSL] = "ssl",
	    [PW_CL_GSS] = "gss",   [PW_CL_CANCEL] = "cancel", [PW_CL_AUTHED] = "authed",
	    [PW_CL_FAIL] = "fail", [PW_CL_CLOSE] = "close"};
	return names[o];
}

static void phase(void)
{
	struct pw_config *cfg = calloc(1, sizeof(*cfg));
	struct pw_identity *ids = calloc(3, sizeof(*ids));
	if (!cfg || !ids)
		abort();
	const char *names[] = {"tok", "app", "trusted"};
	const enum pw_client_auth auths[] = {PW_CLIENT_AUTH_JWT, PW_CLIENT_AUTH_PASSWORD,
	                                     PW_CLIENT_AUTH_TRUST};
	for (int i = 0; i < 3; i++) {
		snprintf(ids[i].name, sizeof(ids[i].name), "%s", names[i]);
		snprintf(ids[i].match_user, sizeof(ids[i].match_user), "%s", names[i]);
		ids[i].match_uid = ids[i].match_gid = -1;
		ids[i].auth = auths[i];
	}
	cfg->identities = ids;
	cfg->n_identities = 3;
	cfg->max_startup_bytes = 10000;
	for (size_t i = 0; i < sizeof(lrows) / sizeof(lrows[0]); i++) {
		const struct lrow *r = &lrows[i];
		uint8_t pkt[256], body[128];
		size_t n;
		if (r->user) {
			int bl = snprintf((char *)body, sizeof(body), "user%c%s%cdatabase%cd%c", 0,
			                  r->user, 0, 0, 0);
			body[bl++] = 0;
			n = packet(pkt, r->code ? r->code : 196608, body, (size_t)bl, 0);
		} else {
			memcpy(body, "\0\0\0\7\0\0\0\11", 8);
			n = packet(pkt, r->code, body, r->code == 80877102 ? 8 : 0, 0);
		}
		struct pw_buf in, out;
		if (pw_buf_init(&in, 1024) < 0 || pw_buf_init(&out, 1024) < 0 ||
		    pw_buf_append(&in, pkt, r->code ? n : n - 3) < 0)
			abort();
		struct pw_client_login cl = {0};
		struct pw_client_where at = {
		    .cfg = cfg, .local = r->local, .steered = r->steered, .peer = "test"};
		struct pw_client_packet pk;
		struct pw_deny why;
		enum pw_client_outcome o = pw_client_login_step(&cl, &at, &in, &out, &pk, &why);
		const uint8_t *a = pw_buf_head(&out);
		bool ok = !strcmp(outcome_name(o), r->outcome) &&
		          (o != PW_CL_FAIL || !strcmp(why.sqlstate, r->sqlstate)) &&
		          (r->answer ? pw_buf_pending(&out) >= 9 && a[0] == r->answer &&
		                           a[8] == r->answer_code
		                     : pw_buf_pending(&out) == 0);
		if (o == PW_CL_CANCEL)
			ok &= pk.pid == 7 && pk.key == 9;
		if (o == PW_CL_SSL)
			ok &= pw_buf_unscanned(&in) == 0; /* the request is read */
		if (o == PW_CL_AUTHED)
			ok &= cl.id == &ids[2] && !strcmp(cl.database, "d");
		CHECK(ok, "%s (%s %s)", r->name, outcome_name(o),
		      o == PW_CL_FAIL ? why.sqlstate : "");
		pw_client_login_free(&cl);
		pw_buf_free(&in);
		pw_buf_free(&out);
	}
	free(ids);
	free(cfg);
}

int main(void)
{
	packets();
	hellos();
	auth_messages();
	sasl_framing();
	phase();
	return check_done();
}
