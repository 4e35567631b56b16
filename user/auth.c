/* SCRAM-SHA-256 (RFC 5802/7677, PostgreSQL's dialect) for both sides of the proxy, and the
 * MD5 password scheme. Pure functions over caller-provided buffers: no I/O and no heap
 * allocation here (OpenSSL may allocate internally for its own contexts). */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pgward/auth.h"
#include "pgward/log.h"

#define SCRAM_PREFIX  "SCRAM-SHA-256$"
#define DEFAULT_SALT  16
#define B64_MAX_IN    PW_SCRAM_MSG_MAX /* longest base64 text we ever decode */
#define GS2_FLAG_SLOT (PW_SCRAM_MSG_MAX - 1)

/* Client states; the header only fixes 0 as "fresh". */
enum { CLI_INIT = 0, CLI_SENT_FIRST = 1, CLI_SENT_FINAL = 2, CLI_VERIFIED = 3, CLI_FAILED = -1 };
/* Server states 0..2 are documented in the header; a failed exchange is parked at -1 so that
 * it can neither be resumed nor be mistaken for "done". */
enum { SRV_INIT = 0, SRV_SENT_FIRST = 1, SRV_DONE = 2, SRV_FAILED = -1 };

int pw_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

/* ---- base64 ---- */

static int b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Returns the text length, or -1 if out cannot hold it plus the NUL. */
static int b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	if (n > INT_MAX / 2 || cap < 4 * ((n + 2) / 3) + 1)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Strict decoder: standard alphabet, mandatory padding, no whitespace, and canonical (unused
 * trailing bits zero) so every value has exactly one accepted spelling. EVP_DecodeBlock
 * always emits 3 bytes per quantum, so the true length comes from the '=' count. Returns the
 * decoded length or -1. */
static int b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	uint8_t tmp[B64_MAX_IN / 4 * 3];
	size_t pad = 0, i, len;
	int last;

	if (n % 4 || n > B64_MAX_IN)
		return -1;
	if (n == 0)
		return 0;
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++)
		if (b64_val((unsigned char)in[i]) < 0)
			return -1;
	last = b64_val((unsigned char)in[n - pad - 1]);
	if ((pad == 1 && (last & 0x3)) || (pad == 2 && (last & 0xf)))
		return -1;
	if (EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n) != (int)(n / 4 * 3))
		return -1;
	len = n / 4 * 3 - pad;
	if (len > cap) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -1;
	}
	memcpy(out, tmp, len);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return (int)len;
}

/* ---- primitives ---- */

static int sha256(const void *data, size_t n, uint8_t out[PW_SCRAM_KEY_LEN])
{
	unsigned int len = 0;

	if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1)
		return -1;
	return len == PW_SCRAM_KEY_LEN ? 0 : -1;
}

static int hmac256(const uint8_t key[PW_SCRAM_KEY_LEN], const void *data, size_t n,
                   uint8_t out[PW_SCRAM_KEY_LEN])
{
	unsigned int len = 0;

	if (!HMAC(EVP_sha256(), key, PW_SCRAM_KEY_LEN, data, n, out, &len))
		return -1;
	return len == PW_SCRAM_KEY_LEN ? 0 : -1;
}

/* SASLprep as PostgreSQL's client applies it, reduced to what gives the same bytes without
 * Unicode tables: pure ASCII passes through unchanged (PG returns ASCII input as is; control
 * characters would be prohibited anyway, and PG then falls back to the raw bytes), and
 * invalid UTF-8 is used raw by PG too. LIMITATION: valid non-ASCII UTF-8 is also used raw,
 * whereas PG NFKC-normalises it and maps non-ASCII spaces and "mapped to nothing" code
 * points. Passwords already in NFKC without such code points (the common case, e.g.
 * precomposed Latin letters) agree; others will not match a verifier made by PostgreSQL. */
static void saslprep(const char *password, const char **out, size_t *outlen)
{
	*out = password;
	*outlen = strlen(password);
}

static int salted_password(const char *password, const uint8_t *salt, size_t salt_len,
                           int iterations, uint8_t out[PW_SCRAM_KEY_LEN])
{
	const char *pw;
	size_t pwlen;

	saslprep(password, &pw, &pwlen);
	if (pwlen > INT_MAX || salt_len > INT_MAX || iterations < 1)
		return -1;
	if (PKCS5_PBKDF2_HMAC(pw, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
	                      PW_SCRAM_KEY_LEN, out) != 1)
		return -1;
	return 0;
}

/* Logging in upstream costs a PBKDF2 of `iterations` HMACs (about a millisecond at 4096),
 * and the server's salt and iteration count for a role do not change between logins: each
 * worker keeps the last few SaltedPasswords, keyed by a hash of (password, salt, iterations).
 * Thread-local, so no locks; it holds nothing the configuration does not already hold. */
#define SALT_CACHE 8
static __thread struct {
	uint8_t key[PW_SCRAM_KEY_LEN];
	uint8_t salted[PW_SCRAM_KEY_LEN];
	bool used;
} salt_cache[SALT_CACHE];
static __thread unsigned salt_cache_next;

static int salted_password_cached(const char *password, const uint8_t *salt, size_t salt_len,
                                  int iterations, uint8_t out[PW_SCRAM_KEY_LEN])
{
	uint8_t key[PW_SCRAM_KEY_LEN];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int kl = 0;
	uint32_t it = (uint32_t)iterations;
	uint32_t pl = (uint32_t)strlen(password);
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(md, &pl, sizeof(pl)) == 1 &&
	         EVP_DigestUpdate(md, password, pl) == 1 &&
	         EVP_DigestUpdate(md, &it, sizeof(it)) == 1 &&
	         EVP_DigestUpdate(md, salt, salt_len) == 1 && EVP_DigestFinal_ex(md, key, &kl) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return salted_password(password, salt, salt_len, iterations, out);
	for (int i = 0; i < SALT_CACHE; i++) {
		if (salt_cache[i].used && CRYPTO_memcmp(salt_cache[i].key, key, sizeof(key)) == 0) {
			memcpy(out, salt_cache[i].salted, PW_SCRAM_KEY_LEN);
			return 0;
		}
	}
	if (salted_password(password, salt, salt_len, iterations, out) < 0)
		return -1;
	unsigned slot = salt_cache_next++ % SALT_CACHE;
	memcpy(salt_cache[slot].key, key, sizeof(key));
	memcpy(salt_cache[slot].salted, out, PW_SCRAM_KEY_LEN);
	salt_cache[slot].used = true;
	return 0;
}

static const char client_key_label[] = "Client Key";
static const char server_key_label[] = "Server Key";

/* ---- small parsers over NUL-terminated text ---- */

/* Copy a wire payload into a C string; wire payloads must not contain NUL. */
static int copy_msg(char *dst, size_t cap, const uint8_t *src, size_t len)
{
	if (!src || len >= cap || memchr(src, '\0', len))
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/* Expect "<name>=" at *p; return the value span up to ',' or the end and move *p past it. */
static int take_attr(const char **p, char name, const char **val, size_t *vlen)
{
	const char *s = *p, *e;

	if (s[0] != name || s[1] != '=')
		return -1;
	s += 2;
	e = strchr(s, ',');
	if (!e)
		e = s + strlen(s);
	*val = s;
	*vlen = (size_t)(e - s);
	*p = e;
	return 0;
}

/* Consume the ',' between attributes. */
static int take_comma(const char **p)
{
	if (**p != ',')
		return -1;
	(*p)++;
	return 0;
}

/* RFC 5802 "printable": %x21-2B / %x2D-7E, i.e. visible ASCII except ','. */
static int nonce_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
			return 0;
	return 1;
}

/* Decimal 1..INT_MAX, digits only. */
static int parse_iterations(const char *s, size_t n, int *out)
{
	long long v = 0;
	size_t i;

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* Decode an RFC 5802 saslname ("=2C" is ',', "=3D" is '='); bare '=' is invalid. */
static int decode_saslname(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (ch == '=') {
			if (n - i < 3)
				return -1;
			if (s[i + 1] == '2' && s[i + 2] == 'C')
				ch = ',';
			else if (s[i + 1] == '3' && s[i + 2] == 'D')
				ch = '=';
			else
				return -1;
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = ch;
	}
	out[o] = '\0';
	return 0;
}

/* ---- verifiers ---- */

int pw_scram_parse_verifier(const char *text, struct pw_scram_verifier *v, char *err, size_t errlen)
{
	const char *p, *colon, *dollar, *colon2;
	uint8_t key[PW_SCRAM_KEY_LEN + 3];
	int n;

	if (!text || !v) {
		pw_errf(err, errlen, "no verifier");
		return -1;
	}
	memset(v, 0, sizeof(*v));
	if (strncmp(text, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0) {
		pw_errf(err, errlen, "verifier does not start with " SCRAM_PREFIX);
		return -1;
	}
	p = text + strlen(SCRAM_PREFIX);
	colon = strchr(p, ':');
	dollar = colon ? strchr(colon + 1, '$') : NULL;
	colon2 = dollar ? strchr(dollar + 1, ':') : NULL;
	if (!colon2) {
		pw_errf(err, errlen, "verifier is not <iter>:<salt>$<stored>:<server>");
		return -1;
	}
	if (parse_iterations(p, (size_t)(colon - p), &v->iterations) < 0) {
		pw_errf(err, errlen, "bad iteration count in verifier");
		goto fail;
	}
	n = b64_decode(colon + 1, (size_t)(dollar - colon - 1), v->salt, sizeof(v->salt));
	if (n < 1) {
		pw_errf(err, errlen, "bad salt in verifier (empty, not base64 or over %d bytes)",
		        PW_SCRAM_MAX_SALT);
		goto fail;
	}
	v->salt_len = (size_t)n;
	/* Decode into a slightly larger buffer so an over-long key is reported, not clipped. */
	n = b64_decode(dollar + 1, (size_t)(colon2 - dollar - 1), key, sizeof(key));
	if (n != PW_SCRAM_KEY_LEN) {
		pw_errf(err, errlen, "bad StoredKey in verifier (need %d bytes of base64)",
		        PW_SCRAM_KEY_LEN);
		goto fail;
	}
	memcpy(v->stored_key, key, PW_SCRAM_KEY_LEN);
	n = b64_decode(colon2 + 1, strlen(colon2 + 1), key, sizeof(key));
	if (n != PW_SCRAM_KEY_LEN) {
		pw_errf(err, errlen, "bad ServerKey in verifier (need %d bytes of base64)",
		        PW_SCRAM_KEY_LEN);
		goto fail;
	}
	memcpy(v->server_key, key, PW_SCRAM_KEY_LEN);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
fail:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(v, sizeof(*v));
	return -1;
}

int pw_scram_make_verifier(const char *password, int iterations, const uint8_t *salt,
                           size_t salt_len, char *out, size_t outlen)
{
	uint8_t rnd[DEFAULT_SALT], sp[PW_SCRAM_KEY_LEN], ck[PW_SCRAM_KEY_LEN];
	uint8_t stored[PW_SCRAM_KEY_LEN], server[PW_SCRAM_KEY_LEN];
	char salt64[PW_SCRAM_MAX_SALT / 3 * 4 + 8], st64[48], sv64[48];
	int rc = -1, n;

	if (out && outlen)
		out[0] = '\0';
	if (!password || !out || iterations < 1)
		return -1;
	if (!salt) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return -1;
		salt = rnd;
		salt_len = sizeof(rnd);
	}
	if (salt_len < 1 || salt_len > PW_SCRAM_MAX_SALT)
		return -1;
	if (salted_password(password, salt, salt_len, iterations, sp) < 0 ||
	    hmac256(sp, client_key_label, strlen(client_key_label), ck) < 0 ||
	    sha256(ck, sizeof(ck), stored) < 0 ||
	    hmac256(sp, server_key_label, strlen(server_key_label), server) < 0)
		goto out;
	if (b64_encode(salt, salt_len, salt64, sizeof(salt64)) < 0 ||
	    b64_encode(stored, sizeof(stored), st64, sizeof(st64)) < 0 ||
	    b64_encode(server, sizeof(server), sv64, sizeof(sv64)) < 0)
		goto out;
	n = snprintf(out, outlen, SCRAM_PREFIX "%d:%s$%s:%s", iterations, salt64, st64, sv64);
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(sp, sizeof(sp));
	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

/* ---- server side ---- */

int pw_scram_server_first(struct pw_scram_server *s, const struct pw_scram_verifier *v,
                          const uint8_t *client_first, size_t len, const char *server_nonce,
                          char *out, size_t outcap, size_t *outlen, char *err, size_t errlen)
{
	char msg[PW_SCRAM_MSG_MAX], snonce_buf[PW_SCRAM_NONCE_LEN / 3 * 4 + 8];
	char salt64[PW_SCRAM_MAX_SALT / 3 * 4 + 8];
	uint8_t rnd[PW_SCRAM_NONCE_LEN];
	const char *p, *val, *bare;
	size_t vlen, snlen;
	char flag;
	int n;

	if (outlen)
		*outlen = 0;
	if (!s || !v || !out || !outlen) {
		pw_errf(err, errlen, "SCRAM: missing argument");
		return PW_AUTH_PROTOCOL;
	}
	if (s->state != SRV_INIT) {
		pw_errf(err, errlen, "SCRAM: client-first-message out of order");
		s->state = SRV_FAILED;
		return PW_AUTH_PROTOCOL;
	}
	s->v = v;
	s->state = SRV_FAILED; /* until we get through */
	if (copy_msg(msg, sizeof(msg), client_first, len) < 0) {
		pw_errf(err, errlen, "SCRAM: client-first-message too long or contains NUL");
		return PW_AUTH_PROTOCOL;
	}

	/* gs2 header: only "n" (no binding) and "y" (client could bind, we did not offer). */
	p = msg;
	flag = *p;
	if (flag == 'p') {
		pw_errf(err, errlen,
		        "SCRAM: client requires channel binding, which is not offered");
		return PW_AUTH_PROTOCOL;
	}
	if ((flag != 'n' && flag != 'y') || p[1] != ',') {
		pw_errf(err, errlen, "SCRAM: malformed gs2 header");
		return PW_AUTH_PROTOCOL;
	}
	p += 2;
	if (*p == 'a') {
		pw_errf(err, errlen, "SCRAM: authorization identity is not supported");
		return PW_AUTH_PROTOCOL;
	}
	if (take_comma(&p) < 0) {
		pw_errf(err, errlen, "SCRAM: malformed gs2 header");
		return PW_AUTH_PROTOCOL;
	}

	/* client-first-message-bare = n=<user>,r=<nonce>; we know no extension, and a
	 * reserved "m" one is mandatory by definition, so nothing else is accepted. */
	bare = p;
	if (*p == 'm') {
		pw_errf(err, errlen, "SCRAM: mandatory extension not supported");
		return PW_AUTH_PROTOCOL;
	}
	if (take_attr(&p, 'n', &val, &vlen) < 0 || take_comma(&p) < 0) {
		pw_errf(err, errlen, "SCRAM: client-first-message lacks n=");
		return PW_AUTH_PROTOCOL;
	}
	if (decode_saslname(val, vlen, s->user, sizeof(s->user)) < 0) {
		pw_errf(err, errlen, "SCRAM: bad or over-long user name");
		return PW_AUTH_PROTOCOL;
	}
	if (take_attr(&p, 'r', &val, &vlen) < 0 || !nonce_ok(val, vlen)) {
		pw_errf(err, errlen, "SCRAM: client-first-message lacks a valid nonce");
		return PW_AUTH_PROTOCOL;
	}
	if (*p != '\0') {
		pw_errf(err, errlen, "SCRAM: unexpected attribute after client nonce");
		return PW_AUTH_PROTOCOL;
	}

	if (server_nonce) {
		snlen = strlen(server_nonce);
		if (!nonce_ok(server_nonce, snlen)) {
			pw_errf(err, errlen, "SCRAM: invalid server nonce");
			return PW_AUTH_PROTOCOL;
		}
	} else {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
		    b64_encode(rnd, sizeof(rnd), snonce_buf, sizeof(snonce_buf)) < 0) {
			pw_errf(err, errlen, "SCRAM: random nonce generation failed");
			return PW_AUTH_PROTOCOL;
		}
		server_nonce = snonce_buf;
	}
	n = snprintf(s->nonce, sizeof(s->nonce), "%.*s%s", (int)vlen, val, server_nonce);
	if (n < 0 || (size_t)n >= sizeof(s->nonce)) {
		pw_errf(err, errlen, "SCRAM: nonce too long");
		return PW_AUTH_PROTOCOL;
	}
	if (v->salt_len < 1 || v->salt_len > PW_SCRAM_MAX_SALT || v->iterations < 1 ||
	    b64_encode(v->salt, v->salt_len, salt64, sizeof(salt64)) < 0) {
		pw_errf(err, errlen, "SCRAM: invalid verifier");
		return PW_AUTH_PROTOCOL;
	}
	n = snprintf(s->server_first, sizeof(s->server_first), "r=%s,s=%s,i=%d", s->nonce, salt64,
	             v->iterations);
	if (n < 0 || (size_t)n >= sizeof(s->server_first) || (size_t)n >= outcap) {
		pw_errf(err, errlen, "SCRAM: server-first-message does not fit");
		return PW_AUTH_PROTOCOL;
	}
	/* The bare part is no longer than msg, which fits client_first_bare by construction.
	 * Its last slot keeps the gs2 flag for the c= check (the struct has no field for it);
	 * copy_msg bounds the message to PW_SCRAM_MSG_MAX - 1, and the bare part is at least
	 * 3 bytes shorter than that, so the string never reaches the slot. */
	memset(s->client_first_bare, 0, sizeof(s->client_first_bare));
	strcpy(s->client_first_bare, bare);
	s->client_first_bare[GS2_FLAG_SLOT] = flag;
	memcpy(out, s->server_first, (size_t)n + 1);
	*outlen = (size_t)n;
	s->state = SRV_SENT_FIRST;
	return PW_AUTH_OK;
}

int pw_scram_server_final(struct pw_scram_server *s, const uint8_t *client_final, size_t len,
                          char *out, size_t outcap, size_t *outlen, char *err, size_t errlen)
{
	char msg[PW_SCRAM_MSG_MAX], auth[3 * PW_SCRAM_MSG_MAX], sig64[48];
	uint8_t proof[PW_SCRAM_KEY_LEN + 3], sig[PW_SCRAM_KEY_LEN], key[PW_SCRAM_KEY_LEN];
	uint8_t stored[PW_SCRAM_KEY_LEN];
	const char *p, *val, *cbind;
	size_t vlen, without_proof, i;
	int n, rc = PW_AUTH_PROTOCOL;

	if (outlen)
		*outlen = 0;
	if (!s || !out || !outlen) {
		pw_errf(err, errlen, "SCRAM: missing argument");
		return PW_AUTH_PROTOCOL;
	}
	if (s->state != SRV_SENT_FIRST || !s->v) {
		pw_errf(err, errlen, "SCRAM: client-final-message out of order");
		s->state = SRV_FAILED;
		return PW_AUTH_PROTOCOL;
	}
	s->state = SRV_FAILED;
	if (copy_msg(msg, sizeof(msg), client_final, len) < 0) {
		pw_errf(err, errlen, "SCRAM: client-final-message too long or contains NUL");
		return PW_AUTH_PROTOCOL;
	}

	/* c= must repeat the gs2 header verbatim: base64("n,,") or base64("y,,"). */
	cbind = s->client_first_bare[GS2_FLAG_SLOT] == 'y' ? "eSws" : "biws";
	p = msg;
	if (take_attr(&p, 'c', &val, &vlen) < 0 || take_comma(&p) < 0) {
		pw_errf(err, errlen, "SCRAM: client-final-message lacks c=");
		return PW_AUTH_PROTOCOL;
	}
	if (vlen != strlen(cbind) || memcmp(val, cbind, vlen) != 0) {
		pw_errf(err, errlen, "SCRAM: channel binding data does not match the gs2 header");
		return PW_AUTH_PROTOCOL;
	}
	if (take_attr(&p, 'r', &val, &vlen) < 0) {
		pw_errf(err, errlen, "SCRAM: client-final-message lacks r=");
		return PW_AUTH_PROTOCOL;
	}
	if (vlen != strlen(s->nonce) || memcmp(val, s->nonce, vlen) != 0) {
		pw_errf(err, errlen, "SCRAM: nonce does not match");
		return PW_AUTH_PROTOCOL;
	}
	without_proof = (size_t)(p - msg);
	if (take_comma(&p) < 0 || take_attr(&p, 'p', &val, &vlen) < 0) {
		pw_errf(err, errlen, "SCRAM: client-final-message lacks p= after r=");
		return PW_AUTH_PROTOCOL;
	}
	if (*p != '\0') {
		pw_errf(err, errlen, "SCRAM: garbage after proof");
		return PW_AUTH_PROTOCOL;
	}
	if (b64_decode(val, vlen, proof, sizeof(proof)) != PW_SCRAM_KEY_LEN) {
		pw_errf(err, errlen, "SCRAM: malformed proof");
		return PW_AUTH_PROTOCOL;
	}

	n = snprintf(auth, sizeof(auth), "%s,%s,%.*s", s->client_first_bare, s->server_first,
	             (int)without_proof, msg);
	if (n < 0 || (size_t)n >= sizeof(auth)) {
		pw_errf(err, errlen, "SCRAM: AuthMessage too long");
		goto out;
	}
	/* ClientKey = proof XOR HMAC(StoredKey, AuthMessage); it must hash to StoredKey. */
	if (hmac256(s->v->stored_key, auth, (size_t)n, sig) < 0) {
		pw_errf(err, errlen, "SCRAM: HMAC failed");
		goto out;
	}
	for (i = 0; i < PW_SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	if (sha256(key, sizeof(key), stored) < 0) {
		pw_errf(err, errlen, "SCRAM: SHA-256 failed");
		goto out;
	}
	if (!pw_ct_equal(stored, s->v->stored_key, PW_SCRAM_KEY_LEN)) {
		pw_errf(err, errlen, "SCRAM: password authentication failed");
		rc = PW_AUTH_FAIL;
		goto out;
	}
	if (hmac256(s->v->server_key, auth, (size_t)n, sig) < 0 ||
	    b64_encode(sig, sizeof(sig), sig64, sizeof(sig64)) < 0) {
		pw_errf(err, errlen, "SCRAM: HMAC failed");
		goto out;
	}
	n = snprintf(out, outcap, "v=%s", sig64);
	if (n < 0 || (size_t)n >= outcap) {
		if (outcap)
			out[0] = '\0';
		pw_errf(err, errlen, "SCRAM: server-final-message does not fit");
		goto out;
	}
	*outlen = (size_t)n;
	s->state = SRV_DONE;
	rc = PW_AUTH_OK;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(proof, sizeof(proof));
	return rc;
}

/* ---- client side ---- */

int pw_scram_client_first(struct pw_scram_client *c, const char *client_nonce, char *out,
                          size_t outcap, size_t *outlen)
{
	uint8_t rnd[PW_SCRAM_NONCE_LEN];
	char buf[PW_SCRAM_NONCE_LEN / 3 * 4 + 8];
	int n;

	if (outlen)
		*outlen = 0;
	if (!c || !out || !outlen)
		return PW_AUTH_PROTOCOL;
	memset(c, 0, sizeof(*c));
	c->state = CLI_FAILED;
	if (!client_nonce) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
		    b64_encode(rnd, sizeof(rnd), buf, sizeof(buf)) < 0)
			return PW_AUTH_PROTOCOL;
		client_nonce = buf;
	}
	n = (int)strlen(client_nonce);
	if (!nonce_ok(client_nonce, (size_t)n) || (size_t)n >= sizeof(c->client_nonce))
		return PW_AUTH_PROTOCOL;
	memcpy(c->client_nonce, client_nonce, (size_t)n + 1);
	/* PostgreSQL takes the user from the startup packet, so n= stays empty. */
	n = snprintf(c->client_first_bare, sizeof(c->client_first_bare), "n=,r=%s", client_nonce);
	if (n < 0 || (size_t)n >= sizeof(c->client_first_bare))
		return PW_AUTH_PROTOCOL;
	n = snprintf(out, outcap, "n,,%s", c->client_first_bare);
	if (n < 0 || (size_t)n >= outcap) {
		if (outcap)
			out[0] = '\0';
		return PW_AUTH_PROTOCOL;
	}
	*outlen = (size_t)n;
	c->state = CLI_SENT_FIRST;
	return PW_AUTH_OK;
}

int pw_scram_client_final(struct pw_scram_client *c, const char *password,
                          const uint8_t *server_first, size_t len, char *out, size_t outcap,
                          size_t *outlen, char *err, size_t errlen)
{
	char msg[PW_SCRAM_MSG_MAX], without_proof[PW_SCRAM_MSG_MAX], proof64[48];
	uint8_t salt[PW_SCRAM_MAX_SALT], ck[PW_SCRAM_KEY_LEN], stored[PW_SCRAM_KEY_LEN];
	uint8_t sig[PW_SCRAM_KEY_LEN];
	const char *p, *nonce, *val;
	size_t nlen, vlen, cnlen, i;
	int iterations, salt_len, n, rc = PW_AUTH_PROTOCOL;

	if (outlen)
		*outlen = 0;
	if (!c || !password || !out || !outlen) {
		pw_errf(err, errlen, "SCRAM: missing argument");
		return PW_AUTH_PROTOCOL;
	}
	if (c->state != CLI_SENT_FIRST) {
		pw_errf(err, errlen, "SCRAM: server-first-message out of order");
		c->state = CLI_FAILED;
		return PW_AUTH_PROTOCOL;
	}
	c->state = CLI_FAILED;
	if (copy_msg(msg, sizeof(msg), server_first, len) < 0) {
		pw_errf(err, errlen, "SCRAM: server-first-message too long or contains NUL");
		return PW_AUTH_PROTOCOL;
	}

	/* server-first-message = r=<nonce>,s=<salt>,i=<iterations>, nothing else. */
	p = msg;
	if (*p == 'm') {
		pw_errf(err, errlen, "SCRAM: mandatory extension not supported");
		return PW_AUTH_PROTOCOL;
	}
	if (take_attr(&p, 'r', &nonce, &nlen) < 0 || !nonce_ok(nonce, nlen)) {
		pw_errf(err, errlen, "SCRAM: server-first-message lacks a valid nonce");
		return PW_AUTH_PROTOCOL;
	}
	/* The server must extend our nonce, not replace or merely echo it. */
	cnlen = strlen(c->client_nonce);
	if (nlen <= cnlen || memcmp(nonce, c->client_nonce, cnlen) != 0) {
		pw_errf(err, errlen, "SCRAM: server nonce does not extend the client nonce");
		return PW_AUTH_PROTOCOL;
	}
	if (take_comma(&p) < 0 || take_attr(&p, 's', &val, &vlen) < 0) {
		pw_errf(err, errlen, "SCRAM: server-first-message lacks s=");
		return PW_AUTH_PROTOCOL;
	}
	salt_len = b64_decode(val, vlen, salt, sizeof(salt));
	if (salt_len < 1) {
		pw_errf(err, errlen, "SCRAM: malformed salt");
		return PW_AUTH_PROTOCOL;
	}
	if (take_comma(&p) < 0 || take_attr(&p, 'i', &val, &vlen) < 0 ||
	    parse_iterations(val, vlen, &iterations) < 0) {
		pw_errf(err, errlen, "SCRAM: server-first-message lacks a valid i=");
		return PW_AUTH_PROTOCOL;
	}
	if (*p != '\0') {
		pw_errf(err, errlen, "SCRAM: garbage at end of server-first-message");
		return PW_AUTH_PROTOCOL;
	}

	n = snprintf(without_proof, sizeof(without_proof), "c=biws,r=%.*s", (int)nlen, nonce);
	if (n < 0 || (size_t)n >= sizeof(without_proof)) {
		pw_errf(err, errlen, "SCRAM: nonce too long");
		return PW_AUTH_PROTOCOL;
	}
	n = snprintf(c->auth_message, sizeof(c->auth_message), "%s,%s,%s", c->client_first_bare,
	             msg, without_proof);
	if (n < 0 || (size_t)n >= sizeof(c->auth_message)) {
		pw_errf(err, errlen, "SCRAM: AuthMessage too long");
		return PW_AUTH_PROTOCOL;
	}
	if (salted_password_cached(password, salt, (size_t)salt_len, iterations,
	                           c->salted_password) < 0 ||
	    hmac256(c->salted_password, client_key_label, strlen(client_key_label), ck) < 0 ||
	    sha256(ck, sizeof(ck), stored) < 0 ||
	    hmac256(stored, c->auth_message, (size_t)n, sig) < 0) {
		pw_errf(err, errlen, "SCRAM: key derivation failed");
		goto out;
	}
	for (i = 0; i < PW_SCRAM_KEY_LEN; i++)
		ck[i] ^= sig[i]; /* ClientProof */
	if (b64_encode(ck, sizeof(ck), proof64, sizeof(proof64)) < 0) {
		pw_errf(err, errlen, "SCRAM: encoding failed");
		goto out;
	}
	n = snprintf(out, outcap, "%s,p=%s", without_proof, proof64);
	if (n < 0 || (size_t)n >= outcap) {
		if (outcap)
			out[0] = '\0';
		pw_errf(err, errlen, "SCRAM: client-final-message does not fit");
		goto out;
	}
	*outlen = (size_t)n;
	c->state = CLI_SENT_FINAL;
	rc = PW_AUTH_OK;
out:
	if (rc != PW_AUTH_OK)
		OPENSSL_cleanse(c->salted_password, sizeof(c->salted_password));
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(proof64, sizeof(proof64));
	return rc;
}

int pw_scram_client_verify(struct pw_scram_client *c, const uint8_t *server_final, size_t len,
                           char *err, size_t errlen)
{
	char msg[PW_SCRAM_MSG_MAX];
	uint8_t got[PW_SCRAM_KEY_LEN + 3], sk[PW_SCRAM_KEY_LEN], want[PW_SCRAM_KEY_LEN];
	const char *p, *val;
	size_t vlen, i;
	int rc = PW_AUTH_PROTOCOL;

	if (!c) {
		pw_errf(err, errlen, "SCRAM: missing argument");
		return PW_AUTH_PROTOCOL;
	}
	if (c->state != CLI_SENT_FINAL) {
		pw_errf(err, errlen, "SCRAM: server-final-message out of order");
		goto out;
	}
	if (copy_msg(msg, sizeof(msg), server_final, len) < 0) {
		pw_errf(err, errlen, "SCRAM: server-final-message too long or contains NUL");
		goto out;
	}
	p = msg;
	if (take_attr(&p, 'e', &val, &vlen) == 0) {
		/* Server-reported failure; quote only printable bytes of its reason. */
		char why[64];

		for (i = 0; i < vlen && i < sizeof(why) - 1; i++)
			why[i] = val[i] >= 0x20 && val[i] < 0x7f ? val[i] : '?';
		why[i] = '\0';
		pw_errf(err, errlen, "SCRAM: server reported error: %s", why);
		rc = PW_AUTH_FAIL;
		goto out;
	}
	if (take_attr(&p, 'v', &val, &vlen) < 0 || *p != '\0' ||
	    b64_decode(val, vlen, got, sizeof(got)) != PW_SCRAM_KEY_LEN) {
		pw_errf(err, errlen, "SCRAM: malformed server-final-message");
		goto out;
	}
	if (hmac256(c->salted_password, server_key_label, strlen(server_key_label), sk) < 0 ||
	    hmac256(sk, c->auth_message, strlen(c->auth_message), want) < 0) {
		pw_errf(err, errlen, "SCRAM: HMAC failed");
		goto out;
	}
	if (!pw_ct_equal(got, want, PW_SCRAM_KEY_LEN)) {
		pw_errf(err, errlen, "SCRAM: server signature does not match");
		rc = PW_AUTH_FAIL;
		goto out;
	}
	rc = PW_AUTH_OK;
out:
	OPENSSL_cleanse(sk, sizeof(sk));
	OPENSSL_cleanse(c->salted_password, sizeof(c->salted_password));
	c->state = rc == PW_AUTH_OK ? CLI_VERIFIED : CLI_FAILED;
	return rc;
}

/* ---- MD5 ---- */

static int md5_hex(const void *a, size_t alen, const void *b, size_t blen, char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	if (!ctx)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
	     EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 &&
	     mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return -1;
	for (i = 0; i < 16; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[32] = '\0';
	return 0;
}

/* On failure (e.g. MD5 unavailable under a FIPS-only provider) out is left empty, which can
 * never equal a real response; the void signature gives no other channel. */
void pw_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
	char inner[33];

	out[0] = '\0';
	if (!user || !password || !salt)
		return;
	if (md5_hex(password, strlen(password), user, strlen(user), inner) < 0 ||
	    md5_hex(inner, 32, salt, 4, out + 3) < 0) {
		out[0] = '\0';
		return;
	}
	memcpy(out, "md5", 3);
	OPENSSL_cleanse(inner, sizeof(inner));
}
