/* Shared helpers of the fuzz harnesses: the file-system sandbox, fixture files, the seed mode
 * and the fixed test keys. See fuzzlib.h. This file is compiled without libFuzzer's coverage
 * (its branches say nothing about the code under test) and is not renamed by objcopy: its own
 * calls reach the real libc. */
#include "fuzzlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

/* ---- the sandbox ---------------------------------------------------------------------------- */

static char sandbox[PATH_MAX];

void pwfuzz_sandbox(const char *dir)
{
	snprintf(sandbox, sizeof sandbox, "%s", dir ? dir : "");
}

/* An absolute path inside the sandbox, without "." or ".." components. */
static bool allowed(const char *path)
{
	size_t n = strlen(sandbox);
	const char *p;

	if (!n || !path || path[0] != '/' || strncmp(path, sandbox, n) != 0 ||
	    (path[n] != '/' && path[n] != '\0'))
		return false;
	for (p = path; *p; p++)
		if (p[0] == '/' && p[1] == '.' &&
		    (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
			return false;
	return true;
}

#define REFUSE(path, ret)                                                                          \
	do {                                                                                       \
		if (!allowed(path)) {                                                              \
			errno = EACCES;                                                            \
			return ret;                                                                \
		}                                                                                  \
	} while (0)

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int pwfuzz_sb_open(const char *path, int flags, ...);
int pwfuzz_sb_open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	REFUSE(path, -1);
	return open(path, flags, m);
}

int pwfuzz_sb_open64(const char *path, int flags, ...);
int pwfuzz_sb_open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	REFUSE(path, -1);
	return open(path, flags, m);
}

int pwfuzz_sb_openat(int dirfd, const char *path, int flags, ...);
int pwfuzz_sb_openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	REFUSE(path, -1); /* relative to dirfd: refused, only absolute paths are checked */
	return openat(dirfd, path, flags, m);
}

int pwfuzz_sb_creat(const char *path, mode_t m);
int pwfuzz_sb_creat(const char *path, mode_t m)
{
	REFUSE(path, -1);
	return creat(path, m);
}

FILE *pwfuzz_sb_fopen(const char *path, const char *mode);
FILE *pwfuzz_sb_fopen(const char *path, const char *mode)
{
	REFUSE(path, NULL);
	return fopen(path, mode);
}

FILE *pwfuzz_sb_fopen64(const char *path, const char *mode);
FILE *pwfuzz_sb_fopen64(const char *path, const char *mode)
{
	REFUSE(path, NULL);
	return fopen(path, mode);
}

FILE *pwfuzz_sb_freopen(const char *path, const char *mode, FILE *f);
FILE *pwfuzz_sb_freopen(const char *path, const char *mode, FILE *f)
{
	REFUSE(path, NULL);
	return freopen(path, mode, f);
}

FILE *pwfuzz_sb_setmntent(const char *path, const char *mode);
FILE *pwfuzz_sb_setmntent(const char *path, const char *mode)
{
	REFUSE(path, NULL);
	return fopen(path, mode);
}

int pwfuzz_sb_access(const char *path, int how);
int pwfuzz_sb_access(const char *path, int how)
{
	REFUSE(path, -1);
	return access(path, how);
}

int pwfuzz_sb_faccessat(int dirfd, const char *path, int how, int flags);
int pwfuzz_sb_faccessat(int dirfd, const char *path, int how, int flags)
{
	REFUSE(path, -1);
	return faccessat(dirfd, path, how, flags);
}

int pwfuzz_sb_euidaccess(const char *path, int how);
int pwfuzz_sb_euidaccess(const char *path, int how)
{
	REFUSE(path, -1);
	return euidaccess(path, how);
}

int pwfuzz_sb_stat(const char *path, struct stat *st);
int pwfuzz_sb_stat(const char *path, struct stat *st)
{
	REFUSE(path, -1);
	return stat(path, st);
}

int pwfuzz_sb_lstat(const char *path, struct stat *st);
int pwfuzz_sb_lstat(const char *path, struct stat *st)
{
	REFUSE(path, -1);
	return lstat(path, st);
}

int pwfuzz_sb_fstatat(int dirfd, const char *path, struct stat *st, int flags);
int pwfuzz_sb_fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	if (path && path[0] == '\0' && (flags & AT_EMPTY_PATH))
		return fstatat(dirfd, path, st, flags); /* fstat of an open fd */
	REFUSE(path, -1);
	return fstatat(dirfd, path, st, flags);
}

int pwfuzz_sb_statfs(const char *path, struct statfs *st);
int pwfuzz_sb_statfs(const char *path, struct statfs *st)
{
	REFUSE(path, -1);
	return statfs(path, st);
}

DIR *pwfuzz_sb_opendir(const char *path);
DIR *pwfuzz_sb_opendir(const char *path)
{
	REFUSE(path, NULL);
	return opendir(path);
}

ssize_t pwfuzz_sb_readlink(const char *path, char *buf, size_t n);
ssize_t pwfuzz_sb_readlink(const char *path, char *buf, size_t n)
{
	REFUSE(path, -1);
	return readlink(path, buf, n);
}

char *pwfuzz_sb_realpath(const char *path, char *out);
char *pwfuzz_sb_realpath(const char *path, char *out)
{
	REFUSE(path, NULL);
	return realpath(path, out);
}

int pwfuzz_sb_mkdir(const char *path, mode_t m);
int pwfuzz_sb_mkdir(const char *path, mode_t m)
{
	REFUSE(path, -1);
	return mkdir(path, m);
}

int pwfuzz_sb_rmdir(const char *path);
int pwfuzz_sb_rmdir(const char *path)
{
	REFUSE(path, -1);
	return rmdir(path);
}

int pwfuzz_sb_unlink(const char *path);
int pwfuzz_sb_unlink(const char *path)
{
	REFUSE(path, -1);
	return unlink(path);
}

int pwfuzz_sb_rename(const char *from, const char *to);
int pwfuzz_sb_rename(const char *from, const char *to)
{
	REFUSE(from, -1);
	REFUSE(to, -1);
	return rename(from, to);
}

int pwfuzz_sb_chmod(const char *path, mode_t m);
int pwfuzz_sb_chmod(const char *path, mode_t m)
{
	REFUSE(path, -1);
	return chmod(path, m);
}

int pwfuzz_sb_chown(const char *path, uid_t u, gid_t g);
int pwfuzz_sb_chown(const char *path, uid_t u, gid_t g)
{
	REFUSE(path, -1);
	return chown(path, u, g);
}

int pwfuzz_sb_truncate(const char *path, off_t len);
int pwfuzz_sb_truncate(const char *path, off_t len)
{
	REFUSE(path, -1);
	return truncate(path, len);
}

/* Never allowed, whatever the arguments. */
int pwfuzz_sb_mount(const char *a, const char *b, const char *c, unsigned long d, const void *e);
int pwfuzz_sb_mount(const char *a, const char *b, const char *c, unsigned long d, const void *e)
{
	(void)a, (void)b, (void)c, (void)d, (void)e;
	errno = EPERM;
	return -1;
}

int pwfuzz_sb_name_to_handle_at(int d, const char *p, void *h, int *m, int f);
int pwfuzz_sb_name_to_handle_at(int d, const char *p, void *h, int *m, int f)
{
	(void)d, (void)p, (void)h, (void)m, (void)f;
	errno = EPERM;
	return -1;
}

int pwfuzz_sb_open_by_handle_at(int d, void *h, int f);
int pwfuzz_sb_open_by_handle_at(int d, void *h, int f)
{
	(void)d, (void)h, (void)f;
	errno = EPERM;
	return -1;
}

/* Unix sockets inside the sandbox, when the harness allowed them (pwfuzz_sandbox_unix). */
static int unix_mode; /* atomic: enum pwfuzz_unix */
static pthread_t unix_owner;

void pwfuzz_sandbox_unix(enum pwfuzz_unix mode)
{
	unix_owner = pthread_self();
	__atomic_store_n(&unix_mode, (int)mode, __ATOMIC_SEQ_CST);
}

static bool unix_allowed(void)
{
	int m = __atomic_load_n(&unix_mode, __ATOMIC_SEQ_CST);

	return m == PWFUZZ_UNIX_ANY_THREAD ||
	       (m == PWFUZZ_UNIX_THIS_THREAD && pthread_equal(unix_owner, pthread_self()));
}

int pwfuzz_sb_socket(int d, int t, int p);
int pwfuzz_sb_socket(int d, int t, int p)
{
	if (d == AF_UNIX && unix_allowed())
		return socket(d, t, p);
	errno = EACCES;
	return -1;
}

int pwfuzz_sb_connect(int fd, const struct sockaddr *a, socklen_t n);
int pwfuzz_sb_connect(int fd, const struct sockaddr *a, socklen_t n)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

	if (a && a->sa_family == AF_UNIX && n > off && n <= sizeof(struct sockaddr_un) &&
	    unix_allowed()) {
		memcpy(path, (const char *)a + off, n - off);
		path[n - off] = '\0';
		if (path[0] && allowed(path)) /* not an abstract name: a file in the sandbox */
			return connect(fd, a, n);
	}
	errno = EACCES;
	return -1;
}

int pwfuzz_sb_bind(int fd, const struct sockaddr *a, socklen_t n);
int pwfuzz_sb_bind(int fd, const struct sockaddr *a, socklen_t n)
{
	(void)fd, (void)a, (void)n;
	errno = EACCES;
	return -1;
}

int pwfuzz_sb_getaddrinfo(const char *h, const char *s, const struct addrinfo *hints,
                          struct addrinfo **res);
int pwfuzz_sb_getaddrinfo(const char *h, const char *s, const struct addrinfo *hints,
                          struct addrinfo **res)
{
	(void)h, (void)s, (void)hints;
	*res = NULL;
	return EAI_FAIL;
}

int pwfuzz_sb_kill(pid_t pid, int sig);
int pwfuzz_sb_kill(pid_t pid, int sig)
{
	(void)pid, (void)sig;
	errno = EPERM;
	return -1;
}

/* ---- fixtures ------------------------------------------------------------------------------- */

#define MAX_FIXTURES 64

static char tmpdir[PATH_MAX];
static char *fixtures[MAX_FIXTURES];
static bool fixture_is_dir[MAX_FIXTURES];
static int n_fixtures;

static void die(const char *what)
{
	fprintf(stderr, "fuzz set-up: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void cleanup(void)
{
	while (n_fixtures > 0) {
		n_fixtures--;
		if (fixture_is_dir[n_fixtures])
			rmdir(fixtures[n_fixtures]);
		else
			unlink(fixtures[n_fixtures]);
		free(fixtures[n_fixtures]);
	}
	if (tmpdir[0])
		rmdir(tmpdir);
	tmpdir[0] = '\0';
}

const char *pwfuzz_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");

	if (tmpdir[0])
		return tmpdir;
	if (!base || strncmp(base, "/tmp/", 5) != 0 || strstr(base, "/.."))
		base = "/tmp";
	if (snprintf(tmpdir, sizeof tmpdir, "%s/pgward-fuzz-%s.XXXXXX", base, tag) >=
	    (int)sizeof tmpdir) {
		errno = ENAMETOOLONG;
		die("TMPDIR");
	}
	if (!mkdtemp(tmpdir))
		die(tmpdir);
	atexit(cleanup);
	return tmpdir;
}

static char *fixture_path(const char *name, bool is_dir)
{
	char *path;

	if (!tmpdir[0] || n_fixtures == MAX_FIXTURES || strchr(name, '/')) {
		errno = EINVAL;
		die(name);
	}
	if (asprintf(&path, "%s/%s", tmpdir, name) < 0)
		die(name);
	fixtures[n_fixtures] = path;
	fixture_is_dir[n_fixtures] = is_dir;
	n_fixtures++;
	return path;
}

const char *pwfuzz_write(const char *name, const void *data, size_t n)
{
	char *path = fixture_path(name, false);
	FILE *f = fopen(path, "wbx");

	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
		die(path);
	return path;
}

const char *pwfuzz_fixture_dir(const char *name)
{
	char *path = fixture_path(name, true);

	if (mkdir(path, 0700) != 0)
		die(path);
	return path;
}

/* ---- seeds ---------------------------------------------------------------------------------- */

const char *pwfuzz_seed_dir(void)
{
	const char *d = getenv("PGWARD_FUZZ_MKSEEDS");

	return d && *d ? d : NULL;
}

void pwfuzz_seed(const char *name, const void *data, size_t n)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", pwfuzz_seed_dir(), name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
		die(path);
}

/* ---- keys (test use only: generated for these harnesses, never used anywhere else) --------- */

size_t pwfuzz_b64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0, i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = a[v >> 18];
		out[o++] = a[(v >> 12) & 63];
		out[o++] = a[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

const uint8_t pwfuzz_hs_secret[32] = "pgward fuzz HS256 secret 0123456";

static const char rsa_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCVprbcwSegjSrz\n"
                              "nQnFiBCUF0qc0tFgaVk+K2qfMknOkJVIbyhqY/5nl/YjYfNTuYo6ZHjCQ8WD1qK3\n"
                              "EOTGdmQ5lE/IgfhsMryM90WpsPLtAoX7iamB93OYpF7P0IgSsoa0DOddvKeUhrie\n"
                              "hu8DKMqhxTPHp6EdHCnz9vfe+E9SA+wx1ochpkMXay1tS/uUTJjzyMRSu7zdPRDj\n"
                              "6M3Id+Nv8WbVLyHFs0c7K+GdbbhwAqPnK6keC6E4CBic2CaBFbdcXPvNdANSr7xW\n"
                              "iggHPRtrsYI6wGhNtDCC5qxqwpcx/oPohKJi4FqNj8CoTEgfwjcb1Srk5DP8VWtr\n"
                              "6y3hJCvXAgMBAAECggEANvR2UWHDDhPZEoX4GShKwj89YJKQXeHB6nEiIdzjOq5g\n"
                              "i616P3uB6IPm2P52zyei6aeMqvYdOblfnm9fO7wtOPHMTJrh4cXN9Mw3MkXvJ3cW\n"
                              "QZU/gKEgu4yc3p664XbavZLBgewt8/53HIv7iIL5ymczCR33LcvyYgsu4hv4cOq9\n"
                              "DNzPPobA+gwVOUkk9Clo6Aub0owLRl2n/xHmPnm6Wg/J0tT21DY9+IYM5N82TpUw\n"
                              "0lXWyqhsMqxEo0OHMn+FK8dXpknLtzlyj6SDrMh5nchoBk5hQj0g5U2Qcwj20CPA\n"
                              "IokkqFLodCZ0LZTjs4dIROa7FEECAJhJgNR7S8JKHQKBgQDIn2S4dz8fmmuEWerq\n"
                              "MFQa3Erv2Kx59/0ydxfDdRUHYDo2MPGS7LOo3ZQAAF/s/Rglu5ITqfjUjCR8M+cg\n"
                              "WSEe+AEw5HScxGhw9QRn2BPcT1SME4F0GT4hV6tiiFYhnOawCssoej+PXLUunxPY\n"
                              "azkoP7aoBuaM0MuMjOnPltTkswKBgQC+9Yaz8l5r4b4uKhHYSsiDRGmHwnv/IH0e\n"
                              "iHP+VAvE+cDsnDC7r9ZOoFoiHkX72a02h06JfJH9bQ45v+dzc/S0hjNd4gJ1cTtd\n"
                              "/AQI5MH3POQ0cUQNw8xtL7nqmG6prqitOTTskT4sYH5SO9eWRswFdb3UeHU5FFCC\n"
                              "LAudrLwWTQKBgQCK6WLSHy9D8KY1lBUGZsQ1fQceH4b9ROq6QJ/hpHYVD1n/H9CF\n"
                              "DQQxDotlnNzOuUg5CDFTEEPM1+SDY2TLjytRyCL6+ZSM36n5XI3aYVEPIJbIDtF5\n"
                              "0+ijKZLvvLr2ty88AZ09v7e2ylhhmaAiH8wJxGPy4CROqFvoS8GxDR0H5QKBgCUT\n"
                              "HlgJknN3nKjx2g0YV93EhoipJdHeyOwIqhySzMYth1to571I4l7ZmyZMomHHXW3c\n"
                              "z066NM3zQnPL4m/z72qtM4PiwX9zwIb6yv2/DDmoRNY5t3DEtwfr4Di/55xiILWh\n"
                              "Cbl0aZHMGjp1C+JNVIcq2PRLftbaLtdXHdo7EzlxAoGAR2xmsALiqKceFqOczmnm\n"
                              "gr/9gtYGlQfoOdVEC7eVTvNLaYbIXldMWjToRUo7lLMIAr4lwXW0Q7r7n1/0rWlm\n"
                              "DiDUWznD4PJoY7CzJu6XUw8/L1e1mpfb9OaN9C3kXDjD4n7sPewVTg444qI4M2xG\n"
                              "oLfFFfLcL1YU/K2o2xleUUg=\n"
                              "-----END PRIVATE KEY-----\n";

static const char ec_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgaFVRZWkaZvL8Tc7s\n"
                             "OISN8xHA02oe1gB8yQ6Oz8VALHyhRANCAAQg6I/VkRG6DyQpwkHJHKqAWi2xpui3\n"
                             "at8zMUOJWuaJntJB2VxCY+L3i61CcDzBf7U+Zo8NWa9Q0XGbomNONiK4\n"
                             "-----END PRIVATE KEY-----\n";

const char *pwfuzz_key_pem(const char *kid)
{
	return strcmp(kid, "rsa") == 0 ? rsa_pem : strcmp(kid, "ec") == 0 ? ec_pem : NULL;
}

static EVP_PKEY *load_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (!k) {
		fprintf(stderr, "fuzz set-up: cannot read a test key\n");
		exit(2);
	}
	return k;
}

static EVP_PKEY *rsa_key(void)
{
	static EVP_PKEY *k;

	if (!k)
		k = load_key(rsa_pem);
	return k;
}

static EVP_PKEY *ec_key(void)
{
	static EVP_PKEY *k;

	if (!k)
		k = load_key(ec_pem);
	return k;
}

/* A public parameter as base64url: fixed width (width > 0) or minimal big-endian. */
static void bn_param(EVP_PKEY *pk, const char *name, int width, char *out)
{
	uint8_t buf[512];
	BIGNUM *bn = NULL;
	int n;

	if (!EVP_PKEY_get_bn_param(pk, name, &bn)) {
		fprintf(stderr, "fuzz set-up: no %s in a test key\n", name);
		exit(2);
	}
	n = width ? BN_bn2binpad(bn, buf, width) : BN_bn2bin(bn, buf);
	pwfuzz_b64url(buf, (size_t)n, out);
	BN_free(bn);
}

const char *pwfuzz_jwks(void)
{
	static char jwks[4096];
	char n[400], e[16], x[64], y[64], k[64];

	if (jwks[0])
		return jwks;
	bn_param(rsa_key(), OSSL_PKEY_PARAM_RSA_N, 0, n);
	bn_param(rsa_key(), OSSL_PKEY_PARAM_RSA_E, 0, e);
	bn_param(ec_key(), OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
	bn_param(ec_key(), OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
	pwfuzz_b64url(pwfuzz_hs_secret, sizeof pwfuzz_hs_secret, k);
	snprintf(jwks, sizeof jwks,
	         "{\"keys\":["
	         "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"%s\","
	         "\"e\":\"%s\"},"
	         "{\"kty\":\"EC\",\"kid\":\"ec\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
	         "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"%s\"}]}",
	         n, e, x, y, k);
	return jwks;
}

size_t pwfuzz_sign(const char *kid, const char *input, char *sig64, size_t cap)
{
	uint8_t der[600], sig[600];
	size_t dl = sizeof der, sl = 0;
	unsigned int hl = 0;
	EVP_MD_CTX *m;
	EVP_PKEY *pk;

	if (strcmp(kid, "hs") == 0) {
		if (!HMAC(EVP_sha256(), pwfuzz_hs_secret, sizeof pwfuzz_hs_secret,
		          (const uint8_t *)input, strlen(input), sig, &hl))
			return 0;
		sl = hl;
	} else {
		pk = strcmp(kid, "rsa") == 0 ? rsa_key() : ec_key();
		m = EVP_MD_CTX_new();
		if (!m || EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, pk) != 1 ||
		    EVP_DigestSign(m, der, &dl, (const uint8_t *)input, strlen(input)) != 1) {
			EVP_MD_CTX_free(m);
			return 0;
		}
		EVP_MD_CTX_free(m);
		if (strcmp(kid, "ec") == 0) { /* DER ECDSA-Sig-Value -> r || s (RFC 7518 3.4) */
			const uint8_t *p = der;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
			const BIGNUM *r, *s;

			if (!es)
				return 0;
			ECDSA_SIG_get0(es, &r, &s);
			BN_bn2binpad(r, sig, 32);
			BN_bn2binpad(s, sig + 32, 32);
			ECDSA_SIG_free(es);
			sl = 64;
		} else { /* "rsa", or "ec-der": the DER form JWS does not use */
			memcpy(sig, der, dl);
			sl = dl;
		}
	}
	if (cap < (sl + 2) / 3 * 4 + 1)
		return 0;
	return pwfuzz_b64url(sig, sl, sig64);
}
