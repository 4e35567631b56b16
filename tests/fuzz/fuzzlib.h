/* Shared helpers of the libFuzzer harnesses (tests/fuzz/fuzz_*.c), built into
 * build/fuzz/libpgward.a with the library (see the fuzz section of the Makefile).
 *
 * The sandbox: the fuzz build renames the library objects' calls of open(2), fopen(3),
 * stat(2), socket(2) and the like to pwfuzz_sb_* (objcopy --redefine-sym), which land in
 * fuzzlib.c. There a path is allowed only inside the directory a harness named with
 * pwfuzz_sandbox(), and never when it named none; sockets, connect, name resolution and kill
 * are refused, but for unix sockets inside that directory when a harness allows them
 * (pwfuzz_sandbox_unix: fuzz_session plays the upstream server on one). Fuzzed configuration
 * text may name any file: the loader can still only read the harness's own fixtures, and
 * nothing can reach the network. */
#ifndef PGWARD_FUZZLIB_H
#define PGWARD_FUZZLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The one directory project code may touch from now on (NULL: none). */
void pwfuzz_sandbox(const char *dir);

/* Unix sockets for project code: socket(AF_UNIX, ...) and connect() to a socket file inside
 * the sandbox directory, nothing else (no bind, no other family, no abstract name). OFF (the
 * default) refuses them; THIS_THREAD allows them on the calling thread only (the harness's:
 * a background thread of the library, such as the catalog loader, stays refused); ANY_THREAD
 * on every thread. */
enum pwfuzz_unix { PWFUZZ_UNIX_OFF, PWFUZZ_UNIX_THIS_THREAD, PWFUZZ_UNIX_ANY_THREAD };
void pwfuzz_sandbox_unix(enum pwfuzz_unix mode);

/* A private directory for fixtures, made once: "<TMPDIR or /tmp>/pgward-fuzz-<tag>.XXXXXX"
 * (TMPDIR is used only when it lies under /tmp/), removed with the files written by
 * pwfuzz_write() when the process exits normally. Exits the process on failure. */
const char *pwfuzz_tmpdir(const char *tag);
/* Writes dir/name (n bytes) and returns its path (static storage per call site is the
 * caller's business: the result is malloc'd and kept until exit). Exits on failure. */
const char *pwfuzz_write(const char *name, const void *data, size_t n);
/* Makes dir/name as a directory (removed at exit) and returns its path. */
const char *pwfuzz_fixture_dir(const char *name);

/* Seed-making mode: PGWARD_FUZZ_MKSEEDS=DIR makes a harness write its computed seeds into DIR
 * (from LLVMFuzzerInitialize) and exit. NULL when not asked. */
const char *pwfuzz_seed_dir(void);
/* Writes DIR/name for the seed mode; exits on failure. */
void pwfuzz_seed(const char *name, const void *data, size_t n);

/* base64url without padding; out needs 4 * ceil(n / 3) + 1 bytes. Returns the length. */
size_t pwfuzz_b64url(const uint8_t *in, size_t n, char *out);

/* The fixed test keys (test use only, never anything else): the JWKS with their public parts
 * ("rsa": RS256, 2048 bits; "ec": ES256, P-256; "hs": an oct key for HS256), built once from
 * the PEMs in fuzzlib.c. */
const char *pwfuzz_jwks(void);
/* The PEM private key of kid "rsa" or "ec" (NULL for another), e.g. to make a certificate. */
const char *pwfuzz_key_pem(const char *kid);
/* The HS256 secret of kid "hs". */
extern const uint8_t pwfuzz_hs_secret[32];
/* Signs header.payload (base64url text) with kid "rsa" (RS256) or "ec" (ES256, r || s) or
 * "hs"; writes the base64url signature. Returns its length or 0. ES256 is randomised. */
size_t pwfuzz_sign(const char *kid, const char *input, char *sig64, size_t cap);

#endif
