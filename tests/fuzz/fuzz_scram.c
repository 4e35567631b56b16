/* libFuzzer harness: SCRAM-SHA-256 (user/auth.c), both sides, and the verifier parser.
 *
 * The input is two messages separated by its first NUL byte (which no SCRAM message may hold):
 * A, the bytes before it, and B, the bytes after it (all of the input and nothing when there is
 * no NUL). Each input runs
 *   - the server side: pw_scram_server_first(A) then pw_scram_server_final(B), against a
 *     verifier made once at start-up (password "pencil", fixed salt, 4096 iterations) and with
 *     a fixed server nonce;
 *   - the client side: pw_scram_client_first with a fixed nonce, then
 *     pw_scram_client_final(password, A as server-first-message) and pw_scram_client_verify(B);
 *     an A whose i= asks for more than ITER_MAX iterations skips client_final (each one is a
 *     PBKDF2 of that many HMACs: a fuzzer would spend its time there);
 *   - pw_scram_parse_verifier(A as text), and with a verifier it accepts, a server-first step;
 *   - pw_md5_password(A, B as text).
 * The messages are copied into buffers of exactly their size. Invariants (abort() when broken):
 * outputs are NUL-terminated with the length reported; a step after a failed one is refused;
 * a success never follows a failure; an accepted verifier can serve a login.
 *
 * Seeds that complete both exchanges are computed by this harness: PGWARD_FUZZ_MKSEEDS=DIR
 * build/fuzz/fuzz_scram writes them into DIR (see tests/fuzz/README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/auth.h"
#include "fuzzlib.h"

#define PASSWORD     "pencil"
#define CLIENT_NONCE "fuzzClientNonce0123456789+/"
#define SERVER_NONCE "fuzzServerNonce~!@#$%^&*()_"
#define ITER_MAX     256

static const uint8_t salt[16] = "pgward-fuzz-salt";
static struct pw_scram_verifier verifier;

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_scram: %s\n", what);
	abort();
}

static void check_out(const char *out, size_t outlen)
{
	if (strlen(out) != outlen)
		fail("an output's length is not the length reported");
}

static void make_seeds(void);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char text[256], err[128];

	(void)argc, (void)argv;
	if (pw_scram_make_verifier(PASSWORD, 4096, salt, sizeof salt, text, sizeof text) != 0 ||
	    pw_scram_parse_verifier(text, &verifier, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_scram: cannot make the verifier\n");
		exit(2);
	}
	if (pwfuzz_seed_dir()) {
		make_seeds();
		exit(0);
	}
	return 0;
}

/* Does a server-first-message ask for more than ITER_MAX iterations? Conservative: looks at
 * every ",i=" in it. */
static int too_many_iterations(const uint8_t *m, size_t n)
{
	for (size_t i = 0; i + 3 <= n; i++) {
		if (m[i] != ',' || m[i + 1] != 'i' || m[i + 2] != '=')
			continue;
		unsigned long v = 0;
		for (size_t j = i + 3; j < n && m[j] >= '0' && m[j] <= '9'; j++) {
			v = v * 10 + (m[j] - '0');
			if (v > ITER_MAX)
				return 1;
		}
	}
	return 0;
}

static void server_side(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct pw_scram_server s;
	char out[PW_SCRAM_MSG_MAX], err[256];
	size_t outlen = 1;
	int first, final;

	memset(&s, 0, sizeof s);
	first = pw_scram_server_first(&s, &verifier, a, alen, SERVER_NONCE, out, sizeof out,
	                              &outlen, err, sizeof err);
	if (first == PW_AUTH_OK)
		check_out(out, outlen);
	else if (outlen != 0)
		fail("server_first failed with an output length");
	final = pw_scram_server_final(&s, b, blen, out, sizeof out, &outlen, err, sizeof err);
	if (final == PW_AUTH_OK) {
		check_out(out, outlen);
		if (first != PW_AUTH_OK)
			fail("server_final succeeded after server_first failed");
		if (strncmp(out, "v=", 2) != 0)
			fail("server-final-message is not v=");
	}
	/* everything after is out of order */
	if (pw_scram_server_first(&s, &verifier, a, alen, SERVER_NONCE, out, sizeof out, &outlen,
	                          err, sizeof err) != PW_AUTH_PROTOCOL ||
	    pw_scram_server_final(&s, b, blen, out, sizeof out, &outlen, err, sizeof err) !=
	        PW_AUTH_PROTOCOL)
		fail("a SCRAM server step out of order was not refused");
}

static void client_side(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct pw_scram_client c;
	char out[PW_SCRAM_MSG_MAX], err[256];
	size_t outlen;
	int final = PW_AUTH_PROTOCOL, verify;

	if (pw_scram_client_first(&c, CLIENT_NONCE, out, sizeof out, &outlen) != PW_AUTH_OK)
		fail("client_first failed with a fixed nonce");
	check_out(out, outlen);
	if (!too_many_iterations(a, alen)) {
		final = pw_scram_client_final(&c, PASSWORD, a, alen, out, sizeof out, &outlen, err,
		                              sizeof err);
		if (final == PW_AUTH_OK)
			check_out(out, outlen);
	}
	verify = pw_scram_client_verify(&c, b, blen, err, sizeof err);
	if (verify == PW_AUTH_OK && final != PW_AUTH_OK)
		fail("client_verify succeeded without a client-final-message");
	if (pw_scram_client_verify(&c, b, blen, err, sizeof err) == PW_AUTH_OK)
		fail("client_verify succeeded twice");
}

static void verifier_text(const char *text)
{
	struct pw_scram_verifier v;
	struct pw_scram_server s;
	char out[PW_SCRAM_MSG_MAX], err[256];
	size_t outlen;
	static const char first[] = "n,,n=,r=abc";

	if (pw_scram_parse_verifier(text, &v, err, sizeof err) != 0)
		return;
	if (v.iterations < 1 || v.salt_len < 1 || v.salt_len > PW_SCRAM_MAX_SALT)
		fail("an accepted verifier is out of range");
	memset(&s, 0, sizeof s);
	if (pw_scram_server_first(&s, &v, (const uint8_t *)first, strlen(first), SERVER_NONCE, out,
	                          sizeof out, &outlen, err, sizeof err) != PW_AUTH_OK)
		fail("an accepted verifier cannot serve a login");
	check_out(out, outlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t alen = nul ? (size_t)(nul - data) : size, blen = nul ? size - alen - 1 : 0;
	uint8_t *a = malloc(alen ? alen : 1), *b = malloc(blen ? blen : 1);
	char *ta = malloc(alen + 1), *tb = malloc(blen + 1);
	char md5[36];
	uint8_t md5salt[4] = {1, 2, 3, 4};

	if (!a || !b || !ta || !tb)
		goto out;
	memcpy(a, data, alen);
	memcpy(b, data + alen + (nul != NULL), blen);
	memcpy(ta, a, alen);
	ta[alen] = '\0';
	memcpy(tb, b, blen);
	tb[blen] = '\0';

	server_side(a, alen, b, blen);
	client_side(a, alen, b, blen);
	verifier_text(ta);
	pw_md5_password(ta, tb, md5salt, md5);
	if (md5[0] && strlen(md5) != 35)
		fail("pw_md5_password is not md5 and 32 hex digits");
out:
	free(a);
	free(b);
	free(ta);
	free(tb);
	return 0;
}

/* ---- seeds ---------------------------------------------------------------------------------- */

static void seed2(const char *name, const char *a, const char *b)
{
	char buf[2 * PW_SCRAM_MSG_MAX + 2];
	size_t la = strlen(a), lb = b ? strlen(b) : 0;

	memcpy(buf, a, la);
	if (b) {
		buf[la] = '\0';
		memcpy(buf + la + 1, b, lb);
	}
	pwfuzz_seed(name, buf, la + (b ? 1 + lb : 0));
}

/* One login run between our client and our server; the messages go to seeds. */
static void make_seeds(void)
{
	struct pw_scram_verifier v16;
	struct pw_scram_server s;
	struct pw_scram_client c;
	char cfirst[PW_SCRAM_MSG_MAX], sfirst[PW_SCRAM_MSG_MAX], cfinal[PW_SCRAM_MSG_MAX];
	char sfinal[PW_SCRAM_MSG_MAX], text[256], err[256], bad[PW_SCRAM_MSG_MAX];
	size_t n;

	/* the server side: a client-first and the client-final that passes the fixed verifier */
	memset(&s, 0, sizeof s);
	if (pw_scram_client_first(&c, "rOprNGfwEbeRWgbNEkqO", cfirst, sizeof cfirst, &n) ||
	    pw_scram_server_first(&s, &verifier, (uint8_t *)cfirst, n, SERVER_NONCE, sfirst,
	                          sizeof sfirst, &n, err, sizeof err) ||
	    pw_scram_client_final(&c, PASSWORD, (uint8_t *)sfirst, n, cfinal, sizeof cfinal, &n,
	                          err, sizeof err) ||
	    pw_scram_server_final(&s, (uint8_t *)cfinal, n, sfinal, sizeof sfinal, &n, err,
	                          sizeof err)) {
		fprintf(stderr, "fuzz_scram: seed exchange (server side) failed: %s\n", err);
		exit(2);
	}
	seed2("server-login", cfirst, cfinal);
	/* the same with a wrong proof, and with the gs2 flag y (c= must then be eSws) */
	snprintf(bad, sizeof bad, "%.*sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	         (int)(strstr(cfinal, ",p=") + 3 - cfinal), cfinal);
	seed2("server-wrong-proof", cfirst, bad);
	cfirst[0] = 'y';
	seed2("server-gs2-y", cfirst, cfinal);
	seed2("server-user-escapes", "n,,n=al=2Cice=3D,r=abc", "c=biws,r=abc" SERVER_NONCE ",p=x");
	seed2("server-channel-binding", "p=tls-server-end-point,,n=,r=abc", "c=eSws,r=abc");
	seed2("server-authzid", "n,a=admin,n=,r=abc", "");
	seed2("server-extension", "n,,m=ext,n=,r=abc", "");

	/* the client side: a server-first (16 iterations) and the server-final that proves it */
	if (pw_scram_make_verifier(PASSWORD, 16, salt, sizeof salt, text, sizeof text) ||
	    pw_scram_parse_verifier(text, &v16, err, sizeof err)) {
		fprintf(stderr, "fuzz_scram: cannot make the 16-iteration verifier\n");
		exit(2);
	}
	memset(&s, 0, sizeof s);
	if (pw_scram_client_first(&c, CLIENT_NONCE, cfirst, sizeof cfirst, &n) ||
	    pw_scram_server_first(&s, &v16, (uint8_t *)cfirst, n, SERVER_NONCE, sfirst,
	                          sizeof sfirst, &n, err, sizeof err) ||
	    pw_scram_client_final(&c, PASSWORD, (uint8_t *)sfirst, n, cfinal, sizeof cfinal, &n,
	                          err, sizeof err) ||
	    pw_scram_server_final(&s, (uint8_t *)cfinal, n, sfinal, sizeof sfinal, &n, err,
	                          sizeof err) ||
	    pw_scram_client_verify(&c, (uint8_t *)sfinal, n, err, sizeof err)) {
		fprintf(stderr, "fuzz_scram: seed exchange (client side) failed: %s\n", err);
		exit(2);
	}
	seed2("client-login", sfirst, sfinal);
	seed2("client-server-error", sfirst, "e=invalid-proof");
	snprintf(bad, sizeof bad, "r=%s,s=cGd3YXJk,i=1,x=extra", CLIENT_NONCE "srv");
	seed2("client-extra-attribute", bad, "v=AAAA");
	snprintf(bad, sizeof bad, "r=%s,s=cGd3YXJk,i=99999999999", CLIENT_NONCE "srv");
	seed2("client-huge-iterations", bad, NULL);
	seed2("client-nonce-not-extended", "r=" CLIENT_NONCE ",s=cGd3YXJk,i=1", "v=");
	seed2("client-mandatory-ext", "m=x,r=" CLIENT_NONCE "s,s=cGd3YXJk,i=1", NULL);

	/* verifier texts */
	seed2("verifier-made", text, NULL);
	seed2("verifier-readme",
	      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtb"
	      "sT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
	      NULL);
	seed2("verifier-salt-64",
	      "SCRAM-SHA-256$1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy"
	      "MzQ1Njc4OTo7PD0+Pw==$9lZ/JbArwqmg3rRMSLzZy51Jctm0Y9T7WK27+La991k=:"
	      "phEi7e3H/BvxoeXfymF3TvtnpVnbRX68ITWw8EUyXnA=",
	      NULL);
	seed2("verifier-short-key",
	      "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtb"
	      "sT4g==:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU",
	      NULL);
	seed2("md5-user-password", "alice", "secret");
}
