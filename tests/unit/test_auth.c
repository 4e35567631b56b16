/* Unit tests for user/auth.c: RFC 7677 vector on both sides, negative paths, random round
 * trips, and verifiers/hashes produced by independent implementations (libpq 15 and Python's
 * hashlib), hardcoded below. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pgward/auth.h"
#include "check.h"

#define U8(s) ((const uint8_t *)(s))

/* RFC 7677 section 3. */
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_NONCE  RFC_CNONCE RFC_SNONCE
#define RFC_SFIRST "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CFINAL "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
/* Computed independently with Python hashlib.pbkdf2_hmac/hmac for "pencil" and the salt. */
#define RFC_VERIFIER                                                                               \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=="                                              \
	"$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"                                           \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
/* Python oracle too: password "x", salt bytes 0..63, one iteration (largest salt allowed). */
#define PY_VERIFIER_64                                                                             \
	"SCRAM-SHA-256$1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1" \
	"Njc4OTo7PD0+Pw==$9lZ/JbArwqmg3rRMSLzZy51Jctm0Y9T7WK27+La991k=:"                           \
	"phEi7e3H/BvxoeXfymF3TvtnpVnbRX68ITWw8EUyXnA="

/* Pieces for malformed verifiers. */
#define V_SALT    "W22ZaJ0SNY7soEsUEjb6gQ=="
#define V_STORED  "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
#define V_SERVER  "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define V_KEYS    "$" V_STORED ":" V_SERVER
#define KEY_31    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4g=="
#define KEY_NOPAD "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU"
#define KEY_35    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qYAAAA="
#define KEY_BADCH "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q!="
#define SALT_65                                                                                    \
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="

/* Produced by PostgreSQL 15's libpq, PQencryptPasswordConn(conn, pw, "alice",
 * "scram-sha-256"), in a throwaway program. */
#define PG_PASSWORD "correct horse battery staple"
#define PG_VERIFIER                                                                                \
	"SCRAM-SHA-256$4096:2BreMS5FyRCw78G3ZvRSmQ=="                                              \
	"$1Uytj7b6+ZubO7Q+JiQf0F3lZ8ldslofdir1ViBJUJc=:"                                           \
	"zeEKOzCR7SQOT2AsBSUtj8ncRZNzw5BzJmOEU+an4vo="
/* Same, for "pässwörd" in precomposed UTF-8: already NFKC, so PG's SASLprep is identity. */
#define PG_PASSWORD_UTF8 "p\xc3\xa4ssw\xc3\xb6rd"
#define PG_VERIFIER_UTF8                                                                           \
	"SCRAM-SHA-256$4096:H58KbbUCdh+hksP6Agp3hw=="                                              \
	"$mAas0dewiJkiSN+16EAT6yhMr/4QKo6q6ExrayqpNHA=:"                                           \
	"4aGty7/YwJsfL13gWntwc3uyXt/l8rTKZ5/vUe73Wfw="

struct exchange {
	struct pw_scram_server s;
	struct pw_scram_client c;
	char cfirst[PW_SCRAM_MSG_MAX], sfirst[PW_SCRAM_MSG_MAX];
	char cfinal[PW_SCRAM_MSG_MAX], sfinal[PW_SCRAM_MSG_MAX];
	size_t cfirst_len, sfirst_len, cfinal_len, sfinal_len;
	char err[128];
};

static int server_first_str(struct exchange *x, const struct pw_scram_verifier *v, const char *msg,
                            const char *snonce)
{
	memset(&x->s, 0, sizeof(x->s));
	x->err[0] = '\0';
	return pw_scram_server_first(&x->s, v, U8(msg), strlen(msg), snonce, x->sfirst,
	                             sizeof(x->sfirst), &x->sfirst_len, x->err, sizeof(x->err));
}

static int server_final_str(struct exchange *x, const char *msg)
{
	x->err[0] = '\0';
	return pw_scram_server_final(&x->s, U8(msg), strlen(msg), x->sfinal, sizeof(x->sfinal),
	                             &x->sfinal_len, x->err, sizeof(x->err));
}

/* Runs client_first + server_first + client_final; returns the first non-OK code. */
static int run_to_client_final(struct exchange *x, const struct pw_scram_verifier *v,
                               const char *password)
{
	int rc;

	memset(x, 0, sizeof(*x));
	rc = pw_scram_client_first(&x->c, NULL, x->cfirst, sizeof(x->cfirst), &x->cfirst_len);
	if (rc != PW_AUTH_OK)
		return rc;
	rc = pw_scram_server_first(&x->s, v, U8(x->cfirst), x->cfirst_len, NULL, x->sfirst,
	                           sizeof(x->sfirst), &x->sfirst_len, x->err, sizeof(x->err));
	if (rc != PW_AUTH_OK)
		return rc;
	return pw_scram_client_final(&x->c, password, U8(x->sfirst), x->sfirst_len, x->cfinal,
	                             sizeof(x->cfinal), &x->cfinal_len, x->err, sizeof(x->err));
}

/* Full exchange; returns the server's verdict, and the client's in *client_rc. */
static int run_exchange(struct exchange *x, const struct pw_scram_verifier *v, const char *password,
                        int *client_rc)
{
	int rc = run_to_client_final(x, v, password);

	*client_rc = PW_AUTH_PROTOCOL;
	if (rc != PW_AUTH_OK)
		return rc;
	rc = pw_scram_server_final(&x->s, U8(x->cfinal), x->cfinal_len, x->sfinal,
	                           sizeof(x->sfinal), &x->sfinal_len, x->err, sizeof(x->err));
	if (rc == PW_AUTH_OK)
		*client_rc = pw_scram_client_verify(&x->c, U8(x->sfinal), x->sfinal_len, x->err,
		                                    sizeof(x->err));
	return rc;
}

/* Reference client-final computed directly with OpenSSL, independent of auth.c, so the
 * server can be fed messages the module's own client never produces (e.g. c=eSws). */
static void ref_client_final(const char *password, const uint8_t *salt, size_t salt_len, int iter,
                             const char *bare, const char *sfirst, const char *cbind,
                             const char *nonce, char *out, size_t cap)
{
	uint8_t sp[32], ck[32], sk[32], sig[32];
	unsigned int l;
	char auth[2048], wp[600], p64[64];
	int i;

	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iter, EVP_sha256(),
	                  32, sp);
	HMAC(EVP_sha256(), sp, 32, U8("Client Key"), 10, ck, &l);
	EVP_Digest(ck, 32, sk, &l, EVP_sha256(), NULL);
	snprintf(wp, sizeof(wp), "c=%s,r=%s", cbind, nonce);
	snprintf(auth, sizeof(auth), "%s,%s,%s", bare, sfirst, wp);
	HMAC(EVP_sha256(), sk, 32, U8(auth), strlen(auth), sig, &l);
	for (i = 0; i < 32; i++)
		ck[i] ^= sig[i];
	EVP_EncodeBlock((unsigned char *)p64, ck, 32);
	snprintf(out, cap, "%s,p=%s", wp, p64);
}

static void test_rfc7677(void)
{
	struct pw_scram_verifier v;
	struct exchange x;
	char text[256], err[128];
	int rc;

	memset(&x, 0, sizeof(x));
	CHECK(pw_scram_make_verifier("pencil", 4096, rfc_salt, sizeof(rfc_salt), text,
	                             sizeof(text)) == 0,
	      "rfc: make_verifier");
	CHECK(strcmp(text, RFC_VERIFIER) == 0, "rfc: verifier matches python oracle");
	CHECK(pw_scram_parse_verifier(text, &v, err, sizeof(err)) == 0, "rfc: parse verifier");
	CHECK(v.iterations == 4096 && v.salt_len == 16 && memcmp(v.salt, rfc_salt, 16) == 0,
	      "rfc: parsed iterations and salt");

	rc = pw_scram_client_first(&x.c, RFC_CNONCE, x.cfirst, sizeof(x.cfirst), &x.cfirst_len);
	CHECK(rc == PW_AUTH_OK && strcmp(x.cfirst, "n,,n=,r=" RFC_CNONCE) == 0 &&
	          x.cfirst_len == strlen(x.cfirst),
	      "rfc: client-first is PostgreSQL style (%s)", x.cfirst);
	/* The RFC names the user; rewrite the bare message the client will sign. */
	strcpy(x.c.client_first_bare, "n=user,r=" RFC_CNONCE);

	rc = pw_scram_server_first(&x.s, &v, U8("n,,n=user,r=" RFC_CNONCE),
	                           strlen("n,,n=user,r=" RFC_CNONCE), RFC_SNONCE, x.sfirst,
	                           sizeof(x.sfirst), &x.sfirst_len, x.err, sizeof(x.err));
	CHECK(rc == PW_AUTH_OK, "rfc: server_first ok (%s)", x.err);
	CHECK(strcmp(x.sfirst, RFC_SFIRST) == 0 && x.sfirst_len == strlen(RFC_SFIRST),
	      "rfc: server-first exact (%s)", x.sfirst);
	CHECK(strcmp(x.s.user, "user") == 0, "rfc: server recorded n=user");
	CHECK(x.s.state == 1, "rfc: server state 1 after server-first");

	rc = pw_scram_client_final(&x.c, "pencil", U8(x.sfirst), x.sfirst_len, x.cfinal,
	                           sizeof(x.cfinal), &x.cfinal_len, x.err, sizeof(x.err));
	CHECK(rc == PW_AUTH_OK, "rfc: client_final ok (%s)", x.err);
	CHECK(strcmp(x.cfinal, RFC_CFINAL) == 0 && x.cfinal_len == strlen(RFC_CFINAL),
	      "rfc: client-final exact (%s)", x.cfinal);

	rc = pw_scram_server_final(&x.s, U8(x.cfinal), x.cfinal_len, x.sfinal, sizeof(x.sfinal),
	                           &x.sfinal_len, x.err, sizeof(x.err));
	CHECK(rc == PW_AUTH_OK, "rfc: server_final ok (%s)", x.err);
	CHECK(strcmp(x.sfinal, RFC_SFINAL) == 0 && x.sfinal_len == strlen(RFC_SFINAL),
	      "rfc: server-final exact (%s)", x.sfinal);
	CHECK(x.s.state == 2, "rfc: server state 2 when done");

	rc = pw_scram_client_verify(&x.c, U8(x.sfinal), x.sfinal_len, x.err, sizeof(x.err));
	CHECK(rc == PW_AUTH_OK, "rfc: client verifies server signature (%s)", x.err);

	/* Feed the RFC's literal client-final to a fresh server too. */
	CHECK(server_first_str(&x, &v, "n,,n=user,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK &&
	          server_final_str(&x, RFC_CFINAL) == PW_AUTH_OK &&
	          strcmp(x.sfinal, RFC_SFINAL) == 0,
	      "rfc: server accepts the RFC's literal client-final");
	/* The exact bare message is signed: a different user name breaks the proof. */
	CHECK(server_first_str(&x, &v, "n,,n=,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK &&
	          server_final_str(&x, RFC_CFINAL) == PW_AUTH_FAIL,
	      "rfc: AuthMessage covers the exact client-first-bare");
	CHECK(pw_scram_client_verify(&x.c, U8(RFC_SFINAL), strlen(RFC_SFINAL), NULL, 0) ==
	          PW_AUTH_PROTOCOL,
	      "rfc: client verify cannot be repeated");
}

static void test_server_negative(void)
{
	struct pw_scram_verifier v;
	struct exchange x;
	char cf[2048], big[700];
	int crc, rc;
	size_t i;
	static const char *const bad_first[] = {
	    "",
	    "garbage",
	    "n,,",
	    "n,",
	    "x,,n=,r=abc",
	    "n,,r=abc",
	    "n,,n=,r=",
	    "n,,n=,r=ab c",
	    "n,,n=,r=abc\x7f",
	    "n,,n=,",
	    "n,,n=,r=abc,x=ext",
	    "n,,m=ext,n=,r=abc",
	    "n,a=bob,n=,r=abc",
	    "n,,n=a=2Xb,r=abc",
	    "n,,n=a=,r=abc",
	    "n,,r=abc,n=",
	    "n,,,n=,r=abc",
	    "nn,,n=,r=abc",
	};

	CHECK(pw_scram_parse_verifier(RFC_VERIFIER, &v, NULL, 0) == 0, "neg: parse verifier");

	/* Wrong password. */
	rc = run_exchange(&x, &v, "pencil2", &crc);
	CHECK(rc == PW_AUTH_FAIL, "neg: wrong password -> FAIL (%d)", rc);
	CHECK(x.err[0] != '\0', "neg: wrong password has a reason: %s", x.err);
	CHECK(x.s.state != 2 && x.s.state != 1, "neg: failed exchange is not 'done'");
	CHECK(server_final_str(&x, x.cfinal) == PW_AUTH_PROTOCOL,
	      "neg: no second attempt after a failure");
	rc = run_exchange(&x, &v, "", &crc);
	CHECK(rc == PW_AUTH_FAIL, "neg: empty password -> FAIL");

	/* Tampered nonce in client-final. */
	CHECK(run_to_client_final(&x, &v, "pencil") == PW_AUTH_OK, "neg: setup for nonce tamper");
	strcpy(cf, x.cfinal);
	cf[strlen("c=biws,r=") + 3] ^= 1;
	CHECK(server_final_str(&x, cf) == PW_AUTH_PROTOCOL, "neg: tampered nonce -> PROTOCOL (%s)",
	      x.err);

	/* Nonce truncated to the client part only. */
	CHECK(run_to_client_final(&x, &v, "pencil") == PW_AUTH_OK, "neg: setup for short nonce");
	snprintf(cf, sizeof(cf), "c=biws,r=%s,p=%s", x.c.client_nonce, strstr(x.cfinal, ",p=") + 3);
	CHECK(server_final_str(&x, cf) == PW_AUTH_PROTOCOL, "neg: client-only nonce -> PROTOCOL");

	/* Wrong channel-binding data. */
	CHECK(run_to_client_final(&x, &v, "pencil") == PW_AUTH_OK, "neg: setup for c=");
	strcpy(cf, x.cfinal);
	memcpy(cf, "c=eSws", 6);
	CHECK(server_final_str(&x, cf) == PW_AUTH_PROTOCOL, "neg: c=eSws after n,, -> PROTOCOL");
	CHECK(x.err[0] != '\0', "neg: c= mismatch has a reason: %s", x.err);
	CHECK(run_to_client_final(&x, &v, "pencil") == PW_AUTH_OK, "neg: setup for c= (2)");
	snprintf(cf, sizeof(cf), "c=biwsAA==%s", x.cfinal + 6);
	CHECK(server_final_str(&x, cf) == PW_AUTH_PROTOCOL, "neg: c= with extra data -> PROTOCOL");

	/* Missing proof, bad proof encodings, order, extensions. */
	{
		static const char *const tails[] = {
		    "",                                                    /* no p= at all */
		    ",p=",                                                 /* empty proof */
		    ",p=AAAA",                                             /* short proof */
		    ",p=!!!!",                                             /* not base64 */
		    ",x=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", /* extension */
		    ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1", /* trailing */
		    ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=",     /* non-canonical */
		    ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",      /* no padding */
		    ",m=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		};

		for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
			CHECK(server_first_str(&x, &v, "n,,n=,r=" RFC_CNONCE, RFC_SNONCE) ==
			          PW_AUTH_OK,
			      "neg: setup tail %zu", i);
			snprintf(cf, sizeof(cf), "c=biws,r=%s%s", RFC_NONCE, tails[i]);
			rc = server_final_str(&x, cf);
			CHECK(rc == PW_AUTH_PROTOCOL && x.err[0],
			      "neg: client-final '%s' -> PROTOCOL", cf);
		}
	}
	CHECK(server_first_str(&x, &v, "n,,n=,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK &&
	          server_final_str(&x, "r=" RFC_NONCE ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjf"
	                               "MHgsqmmiz7AndVQ=") == PW_AUTH_PROTOCOL,
	      "neg: r before c -> PROTOCOL");
	CHECK(server_first_str(&x, &v, "n,,n=,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK &&
	          server_final_str(&x, "garbage") == PW_AUTH_PROTOCOL,
	      "neg: garbage client-final -> PROTOCOL");
	CHECK(server_first_str(&x, &v, "n,,n=,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK &&
	          pw_scram_server_final(&x.s, U8("c=biws\0,r=x"), 11, x.sfinal, sizeof(x.sfinal),
	                                &x.sfinal_len, NULL, 0) == PW_AUTH_PROTOCOL,
	      "neg: NUL inside client-final -> PROTOCOL (err NULL tolerated)");

	/* Channel binding requested. */
	rc = server_first_str(&x, &v, "p=tls-server-end-point,,n=,r=abc", NULL);
	CHECK(rc == PW_AUTH_PROTOCOL, "neg: p=tls-server-end-point -> PROTOCOL (%s)", x.err);
	CHECK(strstr(x.err, "channel binding") != NULL, "neg: reason mentions channel binding");

	/* Malformed client-first messages. */
	for (i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
		rc = server_first_str(&x, &v, bad_first[i], NULL);
		CHECK(rc == PW_AUTH_PROTOCOL && x.err[0], "neg: client-first '%s' -> PROTOCOL (%s)",
		      bad_first[i], x.err);
	}
	memset(&x.s, 0, sizeof(x.s));
	CHECK(pw_scram_server_first(&x.s, &v, U8("n,,n=\0,r=abc"), 12, NULL, x.sfirst,
	                            sizeof(x.sfirst), &x.sfirst_len, NULL, 0) == PW_AUTH_PROTOCOL,
	      "neg: NUL inside client-first -> PROTOCOL");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "n,,n=,r=", 8);
	CHECK(server_first_str(&x, &v, big, NULL) == PW_AUTH_PROTOCOL,
	      "neg: oversized client-first -> PROTOCOL");
	memset(big + 8, 'a', 200);
	big[208] = '\0';
	CHECK(server_first_str(&x, &v, big, NULL) == PW_AUTH_OK, "neg: 200-char nonce accepted");
	memset(big + 8, 'a', 480);
	big[488] = '\0';
	CHECK(server_first_str(&x, &v, big, NULL) == PW_AUTH_PROTOCOL,
	      "neg: nonce too long for server-first -> PROTOCOL");
	CHECK(server_first_str(&x, &v, "n,,n=,r=abc", "bad,nonce") == PW_AUTH_PROTOCOL,
	      "neg: server nonce with ',' refused");
	CHECK(server_first_str(&x, &v,
	                       "n,,n=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	                       "aaaaaaaaaaaaaaaaaaaaaa,r=abc",
	                       NULL) == PW_AUTH_PROTOCOL,
	      "neg: over-long user name -> PROTOCOL");

	/* Escaped user name and "y" flag are accepted. */
	CHECK(server_first_str(&x, &v, "y,,n=a=2Cb=3Dc,r=abc", NULL) == PW_AUTH_OK &&
	          strcmp(x.s.user, "a,b=c") == 0,
	      "neg: y,, accepted and saslname decoded (%s)", x.s.user);

	/* Order: server_final before server_first, and server_first twice. */
	memset(&x.s, 0, sizeof(x.s));
	CHECK(server_final_str(&x, RFC_CFINAL) == PW_AUTH_PROTOCOL,
	      "neg: server_final before server_first -> PROTOCOL");
	CHECK(server_first_str(&x, &v, "n,,n=,r=abc", NULL) == PW_AUTH_OK &&
	          pw_scram_server_first(&x.s, &v, U8("n,,n=,r=abc"), 11, NULL, x.sfirst,
	                                sizeof(x.sfirst), &x.sfirst_len, x.err,
	                                sizeof(x.err)) == PW_AUTH_PROTOCOL,
	      "neg: server_first twice -> PROTOCOL");

	/* Output buffer too small. */
	memset(&x.s, 0, sizeof(x.s));
	CHECK(pw_scram_server_first(&x.s, &v, U8("n,,n=,r=abc"), 11, NULL, x.sfirst, 10,
	                            &x.sfirst_len, x.err, sizeof(x.err)) == PW_AUTH_PROTOCOL,
	      "neg: small output buffer -> PROTOCOL");
}

static void test_gs2_y(void)
{
	struct pw_scram_verifier v;
	struct exchange x;
	char cf[2048];

	pw_scram_parse_verifier(RFC_VERIFIER, &v, NULL, 0);
	/* "y,," (client could bind, server did not offer): c= must be base64("y,,"). */
	CHECK(server_first_str(&x, &v, "y,,n=,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK,
	      "y: server_first accepts y,,");
	ref_client_final("pencil", rfc_salt, 16, 4096, "n=,r=" RFC_CNONCE, RFC_SFIRST, "eSws",
	                 RFC_NONCE, cf, sizeof(cf));
	CHECK(server_final_str(&x, cf) == PW_AUTH_OK, "y: reference client with c=eSws accepted");

	CHECK(server_first_str(&x, &v, "y,,n=,r=" RFC_CNONCE, RFC_SNONCE) == PW_AUTH_OK,
	      "y: setup for mismatch");
	ref_client_final("pencil", rfc_salt, 16, 4096, "n=,r=" RFC_CNONCE, RFC_SFIRST, "biws",
	                 RFC_NONCE, cf, sizeof(cf));
	CHECK(server_final_str(&x, cf) == PW_AUTH_PROTOCOL, "y: c=biws after y,, -> PROTOCOL");

	/* And the reference client agrees with the RFC, validating the reference itself. */
	ref_client_final("pencil", rfc_salt, 16, 4096, "n=user,r=" RFC_CNONCE, RFC_SFIRST, "biws",
	                 RFC_NONCE, cf, sizeof(cf));
	CHECK(strcmp(cf, RFC_CFINAL) == 0, "y: reference client reproduces RFC 7677");
}

static void test_client_negative(void)
{
	struct pw_scram_client c;
	char out[PW_SCRAM_MSG_MAX], err[128];
	size_t len, i;
	int rc;
	static const char *const bad_sfirst[] = {
	    "",
	    "garbage",
	    "r=" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",      /* nonce not extended */
	    "r=X" RFC_CNONCE "abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  /* not a prefix */
	    "r=rOprNGfwEbeRWgbNEkq,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", /* shorter */
	    "m=x,r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==",
	    "r=" RFC_NONCE ",i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
	    "r=" RFC_NONCE ",s=,i=4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
	    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1",
	    "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" RFC_NONCE ",i=4096",
	    "r=" RFC_NONCE " x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
	};

	for (i = 0; i < sizeof(bad_sfirst) / sizeof(bad_sfirst[0]); i++) {
		pw_scram_client_first(&c, RFC_CNONCE, out, sizeof(out), &len);
		err[0] = '\0';
		rc = pw_scram_client_final(&c, "pencil", U8(bad_sfirst[i]), strlen(bad_sfirst[i]),
		                           out, sizeof(out), &len, err, sizeof(err));
		CHECK(rc == PW_AUTH_PROTOCOL && err[0], "cli: server-first '%s' -> PROTOCOL (%s)",
		      bad_sfirst[i], err);
	}
	CHECK(pw_scram_client_first(&c, "bad,nonce", out, sizeof(out), &len) == PW_AUTH_PROTOCOL,
	      "cli: client nonce with ',' refused");
	CHECK(pw_scram_client_first(&c, "", out, sizeof(out), &len) == PW_AUTH_PROTOCOL,
	      "cli: empty client nonce refused");
	CHECK(pw_scram_client_first(&c, RFC_CNONCE, out, 8, &len) == PW_AUTH_PROTOCOL,
	      "cli: small output buffer refused");

	/* Out of order. */
	memset(&c, 0, sizeof(c));
	CHECK(pw_scram_client_final(&c, "pencil", U8(RFC_SFIRST), strlen(RFC_SFIRST), out,
	                            sizeof(out), &len, err, sizeof(err)) == PW_AUTH_PROTOCOL,
	      "cli: client_final before client_first -> PROTOCOL");
	CHECK(pw_scram_client_verify(&c, U8(RFC_SFINAL), strlen(RFC_SFINAL), err, sizeof(err)) ==
	          PW_AUTH_PROTOCOL,
	      "cli: verify before client_final -> PROTOCOL");

	/* Server-final checks. */
	{
		static const struct {
			const char *msg;
			int want;
		} finals[] = {
		    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", PW_AUTH_PROTOCOL},
		    {"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", PW_AUTH_FAIL},
		    {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", PW_AUTH_FAIL},
		    {"e=invalid-proof", PW_AUTH_FAIL},
		    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1", PW_AUTH_PROTOCOL},
		    {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", PW_AUTH_PROTOCOL},
		    {"v=AAAA", PW_AUTH_PROTOCOL},
		    {"x=1", PW_AUTH_PROTOCOL},
		    {"", PW_AUTH_PROTOCOL},
		    {RFC_SFINAL, PW_AUTH_OK},
		};

		for (i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
			pw_scram_client_first(&c, RFC_CNONCE, out, sizeof(out), &len);
			strcpy(c.client_first_bare, "n=user,r=" RFC_CNONCE);
			rc = pw_scram_client_final(&c, "pencil", U8(RFC_SFIRST), strlen(RFC_SFIRST),
			                           out, sizeof(out), &len, err, sizeof(err));
			err[0] = '\0';
			rc = rc ? rc
			        : pw_scram_client_verify(&c, U8(finals[i].msg),
			                                 strlen(finals[i].msg), err, sizeof(err));
			CHECK(rc == finals[i].want && (rc == PW_AUTH_OK || err[0]),
			      "cli: server-final '%s' -> %d (%s)", finals[i].msg, rc, err);
		}
	}
}

static void test_round_trip(void)
{
	struct pw_scram_verifier v;
	struct exchange x;
	char text[256], first_nonce[64];
	int rc, crc, iter;

	CHECK(pw_scram_make_verifier("s3cret-Pa55", 1, NULL, 0, text, sizeof(text)) == 0,
	      "rt: make_verifier with random salt");
	CHECK(pw_scram_parse_verifier(text, &v, NULL, 0) == 0 && v.salt_len == 16 &&
	          v.iterations == 1,
	      "rt: random-salt verifier parses, 16-byte salt");

	for (iter = 0; iter < 3; iter++) {
		rc = run_exchange(&x, &v, "s3cret-Pa55", &crc);
		CHECK(rc == PW_AUTH_OK && crc == PW_AUTH_OK, "rt: exchange %d ok (%s)", iter,
		      x.err);
		CHECK(strncmp(x.cfirst, "n,,n=,r=", 8) == 0 && strlen(x.c.client_nonce) == 32,
		      "rt: random client nonce shape (%s)", x.c.client_nonce);
		CHECK(strncmp(x.s.nonce, x.c.client_nonce, 32) == 0 && strlen(x.s.nonce) == 64,
		      "rt: combined nonce extends client nonce");
		if (iter == 0)
			strcpy(first_nonce, x.c.client_nonce);
		else
			CHECK(strcmp(first_nonce, x.c.client_nonce) != 0, "rt: nonces differ");
	}

	/* Client rejects a server that answers with another verifier's signature. */
	rc = run_to_client_final(&x, &v, "s3cret-Pa55");
	CHECK(rc == PW_AUTH_OK, "rt: setup for wrong server signature");
	CHECK(pw_scram_client_verify(&x.c, U8(RFC_SFINAL), strlen(RFC_SFINAL), x.err,
	                             sizeof(x.err)) == PW_AUTH_FAIL,
	      "rt: client rejects a wrong server signature (%s)", x.err);

	CHECK(pw_scram_make_verifier("x", 0, NULL, 0, text, sizeof(text)) == -1 && text[0] == 0,
	      "rt: make_verifier refuses 0 iterations");
	CHECK(pw_scram_make_verifier("x", 1, U8("abc"), 0, text, sizeof(text)) == -1,
	      "rt: make_verifier refuses an empty salt");
	CHECK(pw_scram_make_verifier("x", 1, NULL, 0, text, 40) == -1 && text[0] == 0,
	      "rt: make_verifier refuses a short buffer");
}

static void test_independent_verifiers(void)
{
	struct pw_scram_verifier v;
	struct exchange x;
	uint8_t salt[64];
	char text[256], err[128];
	int rc, crc, i;

	rc = pw_scram_parse_verifier(PG_VERIFIER, &v, err, sizeof(err));
	CHECK(rc == 0 && v.iterations == 4096 && v.salt_len == 16, "pg: parse libpq verifier");
	rc = run_exchange(&x, &v, PG_PASSWORD, &crc);
	CHECK(rc == PW_AUTH_OK && crc == PW_AUTH_OK, "pg: right password against libpq verifier");
	rc = run_exchange(&x, &v, "correct horse battery stapler", &crc);
	CHECK(rc == PW_AUTH_FAIL, "pg: wrong password against libpq verifier");
	CHECK(pw_scram_make_verifier(PG_PASSWORD, 4096, v.salt, v.salt_len, text, sizeof(text)) ==
	              0 &&
	          strcmp(text, PG_VERIFIER) == 0,
	      "pg: make_verifier reproduces libpq's verifier");

	rc = pw_scram_parse_verifier(PG_VERIFIER_UTF8, &v, err, sizeof(err));
	CHECK(rc == 0, "pg: parse libpq UTF-8 verifier");
	rc = run_exchange(&x, &v, PG_PASSWORD_UTF8, &crc);
	CHECK(rc == PW_AUTH_OK && crc == PW_AUTH_OK, "pg: NFKC-stable UTF-8 password works");
	CHECK(pw_scram_make_verifier(PG_PASSWORD_UTF8, 4096, v.salt, v.salt_len, text,
	                             sizeof(text)) == 0 &&
	          strcmp(text, PG_VERIFIER_UTF8) == 0,
	      "pg: make_verifier reproduces libpq's UTF-8 verifier");

	for (i = 0; i < 64; i++)
		salt[i] = (uint8_t)i;
	CHECK(pw_scram_make_verifier("x", 1, salt, 64, text, sizeof(text)) == 0 &&
	          strcmp(text, PY_VERIFIER_64) == 0,
	      "py: 64-byte salt verifier matches python oracle");
	CHECK(pw_scram_parse_verifier(PY_VERIFIER_64, &v, NULL, 0) == 0 && v.salt_len == 64 &&
	          memcmp(v.salt, salt, 64) == 0,
	      "py: 64-byte salt parses back");
	CHECK(pw_scram_make_verifier("x", 1, salt, 65, text, sizeof(text)) == -1,
	      "py: 65-byte salt refused");
}

static void test_md5(void)
{
	static const uint8_t s1[4] = {1, 2, 3, 4}, s2[4] = {0xde, 0xad, 0xbe, 0xef};
	char out[36];

	/* Python: "md5" + md5(md5(pw + user).hexdigest() + salt).hexdigest() */
	pw_md5_password("alice", "secret", s1, out);
	CHECK(strcmp(out, "md598a0412b9c31436fc53776e863350083") == 0, "md5: alice/secret (%s)",
	      out);
	pw_md5_password("postgres", "pencil", s2, out);
	CHECK(strcmp(out, "md5ced99751bea390968e795eaedb0a4935") == 0, "md5: postgres/pencil (%s)",
	      out);
	CHECK(strlen(out) == 35, "md5: 35 characters plus NUL");
}

static void test_parse_reject(void)
{
	struct pw_scram_verifier v;
	char err[128];
	size_t i;
	static const char *const bad[] = {
	    "",
	    "SCRAM-SHA-256$",
	    "md5ced99751bea390968e795eaedb0a4935",
	    /* prefix */
	    "SCRAM-SHA-1$4096:" V_SALT V_KEYS,
	    "scram-sha-256$4096:" V_SALT V_KEYS,
	    " SCRAM-SHA-256$4096:" V_SALT V_KEYS,
	    /* iterations */
	    "SCRAM-SHA-256$0:" V_SALT V_KEYS,
	    "SCRAM-SHA-256$-1:" V_SALT V_KEYS,
	    "SCRAM-SHA-256$+1:" V_SALT V_KEYS,
	    "SCRAM-SHA-256$4096x:" V_SALT V_KEYS,
	    "SCRAM-SHA-256$:" V_SALT V_KEYS,
	    "SCRAM-SHA-256$2147483648:" V_SALT V_KEYS,
	    /* salt: empty, bad padding, bad character, space, 65 bytes */
	    "SCRAM-SHA-256$4096:" V_KEYS,
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=" V_KEYS,
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7so*sUEjb6gQ==" V_KEYS,
	    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ ==" V_KEYS,
	    "SCRAM-SHA-256$4096:" SALT_65 V_KEYS,
	    /* keys: 31 bytes, unpadded, 35 bytes, bad character, missing */
	    "SCRAM-SHA-256$4096:" V_SALT "$" KEY_31 ":" V_SERVER,
	    "SCRAM-SHA-256$4096:" V_SALT "$" V_STORED ":" KEY_31,
	    "SCRAM-SHA-256$4096:" V_SALT "$" V_STORED ":" KEY_NOPAD,
	    "SCRAM-SHA-256$4096:" V_SALT "$" KEY_35 ":" V_SERVER,
	    "SCRAM-SHA-256$4096:" V_SALT "$" V_STORED ":" KEY_35,
	    "SCRAM-SHA-256$4096:" V_SALT "$" KEY_BADCH ":" V_SERVER,
	    "SCRAM-SHA-256$4096:" V_SALT "$" V_STORED ":",
	    "SCRAM-SHA-256$4096:" V_SALT "$" V_STORED,
	    "SCRAM-SHA-256$4096:" V_SALT,
	    "SCRAM-SHA-256$4096",
	    /* trailing garbage and extra fields */
	    "SCRAM-SHA-256$4096:" V_SALT V_KEYS " ",
	    "SCRAM-SHA-256$4096:" V_SALT V_KEYS ":x",
	    "SCRAM-SHA-256$4096:" V_SALT V_KEYS "$x",
	};

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(pw_scram_parse_verifier(bad[i], &v, err, sizeof(err)) == -1 && err[0],
		      "parse: reject #%zu (%s)", i, err);
	}
	CHECK(pw_scram_parse_verifier(NULL, &v, err, sizeof(err)) == -1, "parse: NULL text");
	CHECK(pw_scram_parse_verifier(RFC_VERIFIER, &v, err, 8) == 0, "parse: small err buffer ok");
	CHECK(pw_scram_parse_verifier("x", &v, err, 8) == -1 && strlen(err) == 7,
	      "parse: reason truncated to err buffer");
}

static void test_ct_equal(void)
{
	CHECK(pw_ct_equal("abcd", "abcd", 4), "ct: equal");
	CHECK(!pw_ct_equal("abcd", "abce", 4), "ct: last byte differs");
	CHECK(!pw_ct_equal("xbcd", "abcd", 4), "ct: first byte differs");
	CHECK(pw_ct_equal("a", "b", 0), "ct: empty ranges are equal");
}

int main(void)
{
	test_rfc7677();
	test_server_negative();
	test_gs2_y();
	test_client_negative();
	test_round_trip();
	test_independent_verifiers();
	test_md5();
	test_parse_reject();
	test_ct_equal();
	return check_done();
}
