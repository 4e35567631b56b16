/* libFuzzer harness: the session state machine (user/session.c), driven in-process through its
 * public API (session.h, loop.h) from both sides at once: the harness holds the client ends of
 * the sessions' sockets and plays the upstream server on a unix socket of its own.
 *
 * Set-up, once (LLVMFuzzerInitialize): a private directory (the sandbox: project code may open
 * files and unix sockets there and nowhere else, see fuzzlib.h), the upstream's password file,
 * a JWKS of the test keys, a certificate made from the EC test key, and two configurations
 * loaded with pw_runtime_load, the same but for client TLS ("tls" in the second one). The
 * upstreams all point at one listening socket <dir>/.s.PGSQL.5432 of the harness:
 *   main   the client's database, any authentication (require_auth default)
 *   pol    database "app": the function catalog of its sessions is loaded once here, from the
 *          harness answering the catalog loader's connection (user/catalog.c), so that sessions
 *          of "q" find it ready, every time
 *   nocat  database "nocat": no catalog ever comes (see "stall"), sessions of "w" wait for it
 *   pool   reuse_connections, allow_cleartext, require_auth password or SCRAM
 *   stall  another socket (.s.PGSQL.5434) the harness never accepts: right after the catalog
 *          of "pol" is loaded the catalog thread is sent there and blocks (its timeout is
 *          weeks), so that no load ever runs again during the fuzzing (a refresh or a load for
 *          "nocat" stays queued: deterministic) and the thread never connects anywhere else
 * and the identities, matched by startup user:
 *   t  trust, allow-all (every guardrail off, one allow rule), upstream main
 *   p  password: SCRAM against a verifier of "pencil", allow-all, main
 *   j  jwt (the test keys, issuer ISS, audience AUD), allow-all, main
 *   r  trust, allow-all with a fixed role: its SET ROLE runs after the upstream login
 *   q  trust, database "app", a deny rule (secret.*) and an allow rule (public.*), guardrails on,
 *      a fixed role, at most 2 sessions, upstream pol: set-up query (SET ROLE, search_path and
 *      the row saying what the session is), catalog ready, refusals
 *   w  trust, the same rules without a role, upstream nocat: its set-up query, then it waits
 *      for the catalog until its deadline
 *   o  trust, allow-all, upstream pool (park on Terminate, DISCARD ALL, adoption)
 *   m  trust, upstream pol, a mask rule (orders.amount) and every detector: its results go
 *      through masking (plans, the answers owed, rows, COPY, errors rewritten)
 * After the loads, unix sockets are allowed to the harness's thread only.
 *
 * One worker (pw_worker_new: an epoll fd, no listeners, pgwardd's session hooks) is driven
 * with the turn pgwardd's workers run (pw_worker_turn, timeout 0) and the hooks' tick. now_ms
 * is a counter, never the clock.
 *
 * The input: a header byte (bit 0: the TLS configuration; bits 1-3: the first client's peer
 * address; bit 4: steered), then operations, each a byte c: kind c & 15, argument a = c >> 4:
 *   0 client write   a&3 client, a&4 two length bytes (else one), a&8 no pump; then the bytes
 *   1 server write   the same to an upstream connection (in the order they were accepted)
 *   2 pump           run the loop until nothing moves; a&1 the nudge hook first
 *   3 new client     a&7 its peer address (unix, 127.0.0.1, 10.0.0.1, ::1, ::ffff:127.0.0.1,
 *                    2001:db8::1, ::ffff:10.1.2.3, unix), a&8 steered
 *   4 tick           now_ms += (a + 1) * 4 s (a = 15: 10^9 s), the tick hook
 *   5 client close   a&3 client, a&4 shutdown(SHUT_WR) only, a&8 without reading what
 *                    pgwardd sent first (a close with unread data is a reset)
 *   6 server close   a&3 upstream connection, a&4 shutdown(SHUT_WR) only
 *   7 client SCRAM   a&3 client: the next step of a real SCRAM client (client-first; then the
 *                    client-final for the last SASLContinue pgwardd sent), a&4 wrong password
 *   8 auth request   a&3 upstream: AuthenticationSASL, MD5, CleartextPassword or Ok (a >> 2)
 *   9 server SCRAM   a&3 upstream: a real SCRAM server's answer to pgwardd's last SASL message
 *                    (server-first, or server-final), a&4 wrong: a verifier of another password
 *                    (server-first), a signature that does not verify (server-final)
 *  10 preamble       a&3 upstream: ParameterStatus (standard_conforming_strings, client_encoding,
 *                    server_version...), BackendKeyData, ReadyForQuery; a&4 AuthenticationOk
 *                    first; a&8 standard_conforming_strings off
 *  11 answer         a&3 upstream: a small server answers every message pgwardd sent it (a
 *                    sentinel of a refusal fails with its name in the error, as the server's
 *                    syntax error does; the set-up query gets its row; COPY, extended
 *                    protocol...), a&4 every statement fails, a&8 notices and notifications too
 *  12 cancel         a new client sends a CancelRequest with the key pgwardd gave client a&3
 *                    (the last BackendKeyData it sent there), a&4 a wrong key
 *  13 stop           the worker stopping (graceful stop) and a tick; a&1 the tick that
 *                   terminates every session
 *  14 client TLS     a&3 client: start a TLS client on it (after pgwardd's 'S')
 *  15 startup        a StartupMessage on the last client: user a&7 (t p j r q w o, or one no
 *                    identity matches), a&8 with application_name, client_encoding, options
 * At the end every peer is closed and the loop runs, with ticks past every deadline, until no
 * session is left. Invariants (abort() when broken):
 *   - no session is left, no file descriptor is left (the count is the count at the input's
 *     start), and LeakSanitizer finds nothing;
 *   - the relay check (relay_check): a session of the allow-all identity t, started with op 15,
 *     relays the server's messages from its AuthenticationOk on as they are: whenever the loop
 *     is quiescent with that one client and one upstream connection open, the server's stream
 *     at a message boundary and nothing refused or stopped, the client has received as many
 *     bytes from its AuthenticationOk on as the server sent from its own. A message held back
 *     (a stall the client would wait on forever) or one made up breaks it.
 *
 * Seeds: PGWARD_FUZZ_MKSEEDS=DIR build/fuzz/fuzz_session writes them (a JWT signed with the RSA
 * test key among them). PGWARD_FUZZ_VERBOSE=1 traces the operations and what pgwardd sends each
 * peer, and logs at debug level (pgwardd's own log lines; quiet otherwise: error level).
 * PGWARD_FUZZ_TOLERATE (comma-separated) steps around the open bugs, for a campaign that looks
 * for others: held-5-byte-message lets the relay check pass the bug of
 * tests/fuzz/session/crash-upstream-5-byte-message-held; pool-preamble-message lowers every
 * length word above 4 MiB the harness's server sends to 4 MiB (no input can complete such a
 * message anyway), around tests/fuzz/session/crash-pool-preamble-message-buffered-whole. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pgward/auth.h"
#include "pgward/catalog.h"
#include "pgward/config.h"
#include "pgward/log.h"
#include "pgward/loop.h"
#include "pgward/proto.h"
#include "pgward/runtime.h"
#include "pgward/session.h"
#include "pgward/sql.h"
#include "fuzzlib.h"

#define ISS         "https://idp.example"
#define AUD         "pgward"
#define CL_PASSWORD "pencil"    /* the clients' (identity "p") */
#define UP_PASSWORD "up-secret" /* the upstream's, in the password file */
#define CL_NONCE    "fuzzClientNonce0123456789"
#define SRV_NONCE   "fuzzServerNonce9876543210"
#define BASE_MS     1000000000ull

#define MAX_CLIENTS 4
#define MAX_UPS     8
#define RX_MAX      16384 /* what pgwardd sent a client, the newest bytes */
#define REC_MAX     32    /* messages pgwardd sent an upstream not yet answered */
#define REC_BODY    1024  /* kept of each */
#define PUMP_ROUNDS 64

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_session: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	abort();
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "fuzz_session: set-up: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

/* ---- message building ----------------------------------------------------------------------- */

struct out {
	uint8_t *p;
	size_t n, cap;
};

static void o_bytes(struct out *o, const void *d, size_t n)
{
	if (o->n + n > o->cap) {
		size_t cap = (o->n + n) * 2 + 256;
		uint8_t *q = realloc(o->p, cap);
		if (!q)
			die("out of memory");
		o->p = q;
		o->cap = cap;
	}
	if (n)
		memcpy(o->p + o->n, d, n);
	o->n += n;
}

static void o_u8(struct out *o, uint8_t v)
{
	o_bytes(o, &v, 1);
}

static void o_be16(struct out *o, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	o_bytes(o, b, 2);
}

static void o_be32(struct out *o, uint32_t v)
{
	uint8_t b[4];
	pw_put_be32(b, v);
	o_bytes(o, b, 4);
}

static void o_str(struct out *o, const char *s)
{
	o_bytes(o, s, strlen(s) + 1);
}

/* A message: type (0: none, a startup packet), its length word fixed by o_end. */
static size_t o_begin(struct out *o, uint8_t type)
{
	if (type)
		o_u8(o, type);
	size_t at = o->n;
	o_be32(o, 0);
	return at;
}

static void o_end(struct out *o, size_t at)
{
	pw_put_be32(o->p + at, (uint32_t)(o->n - at));
}

static void o_free(struct out *o)
{
	free(o->p);
	*o = (struct out){0};
}

/* backend messages */
static void m_auth(struct out *o, uint32_t code, const void *d, size_t n)
{
	size_t at = o_begin(o, 'R');
	o_be32(o, code);
	o_bytes(o, d, n);
	o_end(o, at);
}

static void m_param(struct out *o, const char *k, const char *v)
{
	size_t at = o_begin(o, 'S');
	o_str(o, k);
	o_str(o, v);
	o_end(o, at);
}

static void m_key(struct out *o, uint32_t pid, uint32_t key)
{
	size_t at = o_begin(o, 'K');
	o_be32(o, pid);
	o_be32(o, key);
	o_end(o, at);
}

static void m_rfq(struct out *o, char st)
{
	size_t at = o_begin(o, 'Z');
	o_u8(o, (uint8_t)st);
	o_end(o, at);
}

static void m_rowdesc(struct out *o, int n, const char *const *names)
{
	size_t at = o_begin(o, 'T');
	o_be16(o, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		o_str(o, names[i]);
		o_be32(o, 0);
		o_be16(o, 0);
		o_be32(o, 25); /* text */
		o_be16(o, 0xffff);
		o_be32(o, 0xffffffff);
		o_be16(o, 0);
	}
	o_end(o, at);
}

static void m_datarow(struct out *o, int n, const char *const *vals)
{
	size_t at = o_begin(o, 'D');
	o_be16(o, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		if (!vals[i]) {
			o_be32(o, 0xffffffff);
			continue;
		}
		o_be32(o, (uint32_t)strlen(vals[i]));
		o_bytes(o, vals[i], strlen(vals[i]));
	}
	o_end(o, at);
}

static void m_complete(struct out *o, const char *tag)
{
	size_t at = o_begin(o, 'C');
	o_str(o, tag);
	o_end(o, at);
}

/* ErrorResponse ('E') or NoticeResponse ('N') */
static void m_error(struct out *o, uint8_t type, const char *sev, const char *code, const char *msg)
{
	size_t at = o_begin(o, type);
	o_u8(o, 'S');
	o_str(o, sev);
	o_u8(o, 'V');
	o_str(o, sev);
	o_u8(o, 'C');
	o_str(o, code);
	o_u8(o, 'M');
	o_str(o, msg);
	o_u8(o, 0);
	o_end(o, at);
}

static void m_empty(struct out *o, uint8_t type)
{
	o_end(o, o_begin(o, type));
}

static void m_copy_response(struct out *o, uint8_t type)
{
	size_t at = o_begin(o, type);
	o_u8(o, 0);
	o_be16(o, 1);
	o_be16(o, 0);
	o_end(o, at);
}

static void m_notify(struct out *o, uint32_t pid, const char *chan, const char *payload)
{
	size_t at = o_begin(o, 'A');
	o_be32(o, pid);
	o_str(o, chan);
	o_str(o, payload);
	o_end(o, at);
}

/* The start-up messages after AuthenticationOk. */
static void m_preamble(struct out *o, bool scs_off)
{
	m_param(o, "application_name", "");
	m_param(o, "client_encoding", "UTF8");
	m_param(o, "DateStyle", "ISO, MDY");
	m_param(o, "is_superuser", "off");
	m_param(o, "server_encoding", "UTF8");
	m_param(o, "server_version", "16.4");
	m_param(o, "standard_conforming_strings", scs_off ? "off" : "on");
	m_param(o, "TimeZone", "UTC");
	m_key(o, 4242, 0x5eed5eed);
	m_rfq(o, 'I');
}

/* ---- set-up --------------------------------------------------------------------------------- */

static const char *dir;
static char sock_path[108], stall_path[108];
static int lfd = -1, stall_fd = -1; /* the upstream's listening sockets */
static struct pw_runtime *rt_plain, *rt_tls;
static struct pw_worker *w;
static const struct pw_loop_hooks *hooks;
static struct pw_scram_verifier up_verifier, bad_verifier; /* for the harness's SCRAM server */
static SSL_CTX *cli_ctx;                                   /* the harness's TLS clients */
static bool verbose;
/* PGWARD_FUZZ_TOLERATE (see the head of this file): off by default, the checks fail. */
static bool tolerate_held5, tolerate_pool;

static void cleanup(void)
{
	if (sock_path[0])
		unlink(sock_path);
	if (stall_path[0])
		unlink(stall_path);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0)
		die("cannot listen on %s: %s", path, strerror(errno));
	return fd;
}

/* A self-signed certificate for the EC test key, written as cert.pem and key.pem. */
static void make_cert(const char **cert, const char **key)
{
	const char *pem = pwfuzz_key_pem("ec");
	BIO *b = BIO_new_mem_buf(pem, -1), *mb = BIO_new(BIO_s_mem());
	EVP_PKEY *pk = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	X509 *x = X509_new();
	X509_NAME *nm;
	char *data;
	long n;

	if (!pk || !x || !mb)
		die("cannot make the test certificate");
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400);
	X509_set_pubkey(x, pk);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
	                           -1, 0);
	X509_set_issuer_name(x, nm);
	if (!X509_sign(x, pk, EVP_sha256()) || !PEM_write_bio_X509(mb, x))
		die("cannot sign the test certificate");
	n = BIO_get_mem_data(mb, &data);
	*cert = pwfuzz_write("cert.pem", data, (size_t)n);
	*key = pwfuzz_write("key.pem", pem, strlen(pem));
	X509_free(x);
	EVP_PKEY_free(pk);
	BIO_free(b);
	BIO_free(mb);
}

static const char *make_config(const char *name, const char *pwfile, const char *jwks,
                               const char *verifier, const char *cert, const char *key)
{
	static const char allow_all[] =
	    "\"guardrails\": {\"all\": false}, \"rules\": [{\"action\": \"allow\"}]";
	static const char rules[] = "\"rules\": [{\"name\": \"no-secrets\", \"action\": \"deny\", "
	                            "\"relations\": \"secret.*\"}, {\"name\": \"public\", "
	                            "\"action\": \"allow\", \"relations\": [\"public.*\", "
	                            "\"pg_catalog.*\"]}]";
	char tls[2 * PATH_MAX + 64] = "", *text;
	int n;

	if (cert)
		snprintf(tls, sizeof tls, "\"tls\": {\"cert\": \"%s\", \"key\": \"%s\"},", cert,
		         key);
	n = asprintf(
	    &text,
	    "{\"workers\": 1, \"log_level\": \"error\", %s"
	    " \"listen\": [{\"unix\": \"%s/.s.PGSQL.6432\"}],"
	    " \"limits\": {\"max_message_bytes\": 1048576, \"max_statement_bytes\": 2048,"
	    "  \"max_bind_bytes\": 4096, \"max_startup_bytes\": 2048},"
	    " \"jwt\": {\"jwks_file\": \"%s\", \"issuer\": \"" ISS "\", \"audience\": \"" AUD "\"},"
	    " \"upstreams\": {"
	    "  \"main\": {\"unix_dir\": \"%s\", \"user\": \"app\", \"password_file\": \"%s\","
	    "   \"sslmode\": \"disable\"},"
	    "  \"pol\": {\"unix_dir\": \"%s\", \"user\": \"app\", \"password_file\": \"%s\","
	    "   \"sslmode\": \"disable\", \"database\": \"app\", \"search_path\": [\"public\", "
	    "\"app\"], \"catalog_ttl_seconds\": 1000000},"
	    "  \"nocat\": {\"unix_dir\": \"%s\", \"user\": \"app\", \"password_file\": \"%s\","
	    "   \"sslmode\": \"disable\", \"database\": \"nocat\"},"
	    "  \"pool\": {\"unix_dir\": \"%s\", \"user\": \"app\", \"password_file\": \"%s\","
	    "   \"sslmode\": \"prefer\", \"reuse_connections\": true, \"allow_cleartext\": true,"
	    "   \"require_auth\": [\"password\", \"scram-sha-256\"]},"
	    "  \"stall\": {\"unix_dir\": \"%s\", \"port\": 5434, \"user\": \"app\","
	    "   \"password_file\": \"%s\", \"sslmode\": \"disable\", \"database\": \"stall\","
	    "   \"connect_timeout_seconds\": 2000000}},"
	    " \"identities\": ["
	    "  {\"name\": \"t\", \"match\": {\"user\": \"t\"}, \"auth\": \"trust\", \"upstream\": "
	    "\"main\", %s},"
	    "  {\"name\": \"p\", \"match\": {\"user\": \"p\"}, \"auth\": \"password\","
	    "   \"scram_verifier\": \"%s\", \"upstream\": \"main\", %s},"
	    "  {\"name\": \"j\", \"match\": {\"user\": \"j\"}, \"auth\": \"jwt\", \"upstream\": "
	    "\"main\", %s},"
	    "  {\"name\": \"r\", \"match\": {\"user\": \"r\"}, \"auth\": \"trust\", \"upstream\": "
	    "\"main\", \"role\": \"app_reader\", %s},"
	    "  {\"name\": \"q\", \"match\": {\"user\": \"q\", \"database\": \"app\"}, \"auth\": "
	    "\"trust\", \"upstream\": \"pol\", \"role\": \"app_reader\", \"max_sessions\": 2, %s},"
	    "  {\"name\": \"w\", \"match\": {\"user\": \"w\"}, \"auth\": \"trust\", \"upstream\": "
	    "\"nocat\", %s},"
	    "  {\"name\": \"o\", \"match\": {\"user\": \"o\"}, \"auth\": \"trust\", \"upstream\": "
	    "\"pool\", %s},"
	    "  {\"name\": \"m\", \"match\": {\"user\": \"m\"}, \"auth\": \"trust\", \"upstream\": "
	    "\"pol\", \"rules\": [{\"action\": \"mask\", \"columns\": \"public.orders.amount\","
	    " \"strategy\": \"redact\"}, {\"action\": \"mask\", \"detectors\": \"all\","
	    " \"strategy\": \"redact\"}, {\"action\": \"allow\", \"relations\": [\"public.*\","
	    " \"pg_catalog.*\"]}]}]}",
	    tls, dir, jwks, dir, pwfile, dir, pwfile, dir, pwfile, dir, pwfile, dir, pwfile,
	    allow_all, verifier, allow_all, allow_all, allow_all, rules, rules, allow_all);
	if (n < 0)
		die("out of memory");
	const char *path = pwfuzz_write(name, text, (size_t)n);
	free(text);
	return path;
}

static struct pw_runtime *load(const char *path)
{
	char err[1024];
	struct pw_runtime *rt = pw_runtime_load(path, err, sizeof err);

	if (!rt)
		die("%s", err);
	return rt;
}

static int upstream_index(const struct pw_runtime *rt, const char *name)
{
	for (int i = 0; i < rt->cfg->n_upstreams; i++)
		if (strcmp(rt->cfg->upstreams[i].name, name) == 0)
			return i;
	die("no upstream %s", name);
}

/* Blocking helpers for the catalog loader's connection (set-up only). */
static void fd_read(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 10000) != 1)
			die("the catalog loader went silent");
		ssize_t r = read(fd, p, n);
		if (r <= 0 && !(r < 0 && errno == EAGAIN))
			die("the catalog loader's connection ended");
		if (r > 0) {
			p += r;
			n -= (size_t)r;
		}
	}
}

static void fd_write(int fd, const void *buf, size_t n)
{
	if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
		die("cannot answer the catalog loader: %s", strerror(errno));
}

/* Serve one catalog load (user/catalog.c through pgconn.c) on the listening socket: login, then
 * the catalog's statements, answered with a few functions, schemas and relations. */
static void serve_catalog(void)
{
	static const char *const fcols[12] = {
	    "oid",         "nspname",   "proname", "pronargs", "pronargdefaults", "v",
	    "provolatile", "prosecdef", "prokind", "lanname",  "owner",           "proretset"};
	static const char *const funcs[][12] = {
	    {"2624", "pg_catalog", "pg_read_file", "1", "0", "f", "v", "f", "f", "internal",
	     "postgres", "f"},
	    {"1299", "pg_catalog", "now", "0", "0", "f", "s", "f", "f", "internal", "postgres",
	     "f"},
	    {"870", "pg_catalog", "lower", "1", "0", "f", "i", "f", "f", "internal", "postgres",
	     "f"},
	    {"2147", "pg_catalog", "count", "1", "0", "f", "i", "f", "a", "internal", "postgres",
	     "f"},
	    {"2078", "pg_catalog", "set_config", "3", "0", "f", "v", "f", "f", "internal",
	     "postgres", "f"},
	    {"1574", "pg_catalog", "nextval", "1", "0", "f", "v", "f", "f", "internal", "postgres",
	     "f"},
	    {"2171", "pg_catalog", "pg_cancel_backend", "1", "0", "f", "v", "f", "f", "internal",
	     "postgres", "f"},
	    {"3058", "pg_catalog", "concat", "1", "0", "t", "s", "f", "f", "internal", "postgres",
	     "f"},
	    {"20001", "public", "my_func", "1", "0", "f", "v", "f", "f", "plpgsql", "app", "f"},
	    {"20002", "public", "definer", "0", "0", "f", "v", "t", "f", "sql", "app", "f"},
	    {"20003", "secret", "peek", "0", "0", "f", "s", "f", "f", "sql", "app", "f"},
	    {"20004", "public", "proc", "0", "0", "f", "v", "f", "p", "plpgsql", "app", "f"},
	};
	static const char *const schemas[] = {"pg_catalog", "public", "secret",
	                                      "information_schema", "app"};
	struct pollfd pf = {.fd = lfd, .events = POLLIN};
	struct out o = {0};
	uint8_t hdr[5], *body;
	int fd;

	if (poll(&pf, 1, 10000) != 1 || (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		die("the catalog loader did not connect");
	fd_read(fd, hdr, 4);
	uint32_t len = pw_be32(hdr);
	if (len < 8 || len > 10000)
		die("the catalog loader sent a bad startup packet");
	body = malloc(len);
	fd_read(fd, body, len - 4);
	free(body);
	m_auth(&o, PW_AUTH_REQ_OK, NULL, 0);
	m_preamble(&o, false);
	for (;;) {
		fd_write(fd, o.p, o.n);
		o.n = 0;
		fd_read(fd, hdr, 5);
		len = pw_be32(hdr + 1);
		if (len < 4 || len > 100000)
			die("the catalog loader sent a bad message");
		body = malloc(len - 4 + 1);
		fd_read(fd, body, len - 4);
		body[len - 4] = 0;
		if (hdr[0] == 'X') {
			free(body);
			break;
		}
		if (hdr[0] != 'Q')
			die("the catalog loader sent message type %c", hdr[0]);
		if (strstr((char *)body, "pg_proc")) {
			m_rowdesc(&o, 12, fcols);
			for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
				m_datarow(&o, 12, funcs[i]);
			m_complete(&o, "SELECT 12");
		} else if (strstr((char *)body, "pg_rewrite")) {
			/* what the view reads */
			static const char *const dcols[3] = {"ev_class", "refobjid", "refobjsubid"};
			static const char *const dep[3] = {"16410", "16390", "1"};
			m_rowdesc(&o, 3, dcols);
			m_datarow(&o, 3, dep);
			m_complete(&o, "SELECT 1");
		} else if (strstr((char *)body, "pg_get_viewdef")) {
			static const char *const vcols[2] = {"oid", "pg_get_viewdef"};
			static const char *const def[2] = {
			    "16410", "SELECT orders.id AS n FROM public.orders"};
			m_rowdesc(&o, 2, vcols);
			m_datarow(&o, 2, def);
			m_complete(&o, "SELECT 1");
		} else if (strstr((char *)body, "pg_class")) {
			/* relations and their columns (one row a column; a dropped one left out) */
			static const char *const rcols[7] = {"oid",     "nspname", "relname",
			                                     "relkind", "attnum",  "attname",
			                                     "atttypid"};
			static const char *const rels[][7] = {
			    {"16390", "public", "orders", "r", "1", "id", "23"},
			    {"16390", "public", "orders", "r", "3", "amount", "1700"},
			    {"16400", "secret", "keys", "r", "1", "k", "25"},
			    {"16410", "public", "v", "v", "1", "n", "23"},
			};
			m_rowdesc(&o, 7, rcols);
			for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++)
				m_datarow(&o, 7, rels[i]);
			m_complete(&o, "SELECT 4");
		} else if (strncmp((char *)body, "SET", 3) == 0) {
			m_complete(&o, "SET");
		} else if (strstr((char *)body, "pg_namespace")) {
			const char *n[1] = {"nspname"};
			m_rowdesc(&o, 1, n);
			for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++)
				m_datarow(&o, 1, &schemas[i]);
			m_complete(&o, "SELECT 5");
		} else {
			m_complete(&o, strncmp((char *)body, "BEGIN", 5) == 0 ? "BEGIN" : "COMMIT");
		}
		m_rfq(&o, strncmp((char *)body, "COMMIT", 6) == 0 ? 'I' : 'T');
		free(body);
	}
	close(fd);
	o_free(&o);
}

/* The catalog of pol/app loaded once (the loader thread connects to the harness, which
 * answers); then the thread is sent to "stall", where it blocks for good. */
static void load_catalog(void)
{
	struct pw_catalog *cat = NULL;
	char err[512];
	int pol = upstream_index(rt_plain, "pol"), stall = upstream_index(rt_plain, "stall");

	if (pw_catalog_acquire(rt_plain, pol, "app", &cat, err, sizeof err) != PW_CAT_LOADING)
		die("the catalog is not loading: %s", err);
	serve_catalog();
	for (int i = 0;; i++) {
		enum pw_cat_state st =
		    pw_catalog_acquire(rt_plain, pol, "app", &cat, err, sizeof err);
		if (st == PW_CAT_READY)
			break;
		if (st == PW_CAT_FAILED || i > 10000)
			die("the catalog did not load: %s", err);
		usleep(1000);
	}
	pw_catalog_release(cat);
	if (pw_catalog_acquire(rt_plain, stall, "stall", &cat, err, sizeof err) != PW_CAT_LOADING)
		die("the stall load did not start: %s", err);
	struct pollfd pf = {.fd = stall_fd, .events = POLLIN};
	if (poll(&pf, 1, 10000) != 1)
		die("the catalog loader did not go to the stall socket");
	usleep(20000); /* its startup packet written, it waits for an answer that never comes */
}

static void make_seeds(void);
static const char *jwks_text;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const uint8_t salt[16] = "pgward-fuzz-salt";
	char verifier[256], err[256];
	const char *cert, *key;

	(void)argc, (void)argv;
	signal(SIGPIPE, SIG_IGN); /* as pgwardd: TLS writes to a closed peer */
	verbose = getenv("PGWARD_FUZZ_VERBOSE") && *getenv("PGWARD_FUZZ_VERBOSE");
	tolerate_held5 = getenv("PGWARD_FUZZ_TOLERATE") &&
	                 strstr(getenv("PGWARD_FUZZ_TOLERATE"), "held-5-byte-message");
	tolerate_pool = getenv("PGWARD_FUZZ_TOLERATE") &&
	                strstr(getenv("PGWARD_FUZZ_TOLERATE"), "pool-preamble-message");
	jwks_text = pwfuzz_jwks();
	if (pwfuzz_seed_dir()) {
		make_seeds();
		exit(0);
	}
	dir = pwfuzz_tmpdir("session");
	pwfuzz_sandbox(dir);
	snprintf(sock_path, sizeof sock_path, "%s/.s.PGSQL.5432", dir);
	snprintf(stall_path, sizeof stall_path, "%s/.s.PGSQL.5434", dir);
	atexit(cleanup);
	lfd = listen_unix(sock_path);
	stall_fd = listen_unix(stall_path);

	const char *pwfile = pwfuzz_write("up.pw", UP_PASSWORD "\n", strlen(UP_PASSWORD) + 1);
	const char *jwks = pwfuzz_write("jwks.json", jwks_text, strlen(jwks_text));
	if (pw_scram_make_verifier(CL_PASSWORD, 4096, salt, sizeof salt, verifier,
	                           sizeof verifier) != 0)
		die("cannot make the clients' verifier");
	make_cert(&cert, &key);
	rt_plain = load(make_config("plain.json", pwfile, jwks, verifier, NULL, NULL));
	rt_tls = load(make_config("tls.json", pwfile, jwks, verifier, cert, key));
	pw_log_set_level(verbose ? PW_LOG_DEBUG : PW_LOG_ERROR);

	/* the harness's SCRAM server: the upstream's password, and another one */
	char v[256];
	if (pw_scram_make_verifier(UP_PASSWORD, 4096, salt, sizeof salt, v, sizeof v) != 0 ||
	    pw_scram_parse_verifier(v, &up_verifier, err, sizeof err) != 0 ||
	    pw_scram_make_verifier("not-the-password", 4096, salt, sizeof salt, v, sizeof v) != 0 ||
	    pw_scram_parse_verifier(v, &bad_verifier, err, sizeof err) != 0)
		die("cannot make the upstream's verifiers");

	cli_ctx = SSL_CTX_new(TLS_client_method());
	if (!cli_ctx)
		die("cannot make the TLS client context");
	SSL_CTX_set_verify(cli_ctx, SSL_VERIFY_NONE, NULL);

	pwfuzz_sandbox_unix(PWFUZZ_UNIX_ANY_THREAD);
	load_catalog();
	pwfuzz_sandbox_unix(PWFUZZ_UNIX_THIS_THREAD);

	hooks = pw_session_hooks();
	w = pw_worker_new(hooks);
	if (!w)
		die("pw_worker_new: %s", strerror(errno));
	return 0;
}

/* ---- the peers ------------------------------------------------------------------------------ */

/* A stream of typed protocol messages, followed as pgwardd frames it: where the first
 * AuthenticationOk starts, and whether the stream ends at a message boundary. */
struct framer {
	uint8_t hdr[5];
	size_t hlen;   /* of the current message's header, collected */
	uint64_t left; /* of its body, still to come */
	uint64_t start;
	uint8_t code[4];
	size_t clen;
	bool bad; /* a length below 4: not a protocol stream (pgwardd fails it) */
	bool ok;  /* the first AuthenticationOk has been seen */
	uint64_t total, ok_at;
	uint64_t last; /* the length of the last whole message, type byte included */
};

/* clamp (PGWARD_FUZZ_TOLERATE=pool-preamble-message): a length word above it, when all of it is
 * in d, is lowered to it (d is the caller's copy). */
#define CLAMP_LEN (4u << 20)

static void frame_ex(struct framer *f, uint8_t *d, size_t n, bool clamp)
{
	uint64_t base = f->total;
	size_t i = 0, len_at = 0;

	f->total += n;
	while (i < n && !f->bad) {
		if (f->hlen < 5) {
			if (f->hlen == 0)
				f->start = base + i;
			if (f->hlen == 1)
				len_at = i + 1; /* the length word's first byte, in d, plus one */
			f->hdr[f->hlen++] = d[i++];
			if (f->hlen == 5) {
				uint32_t len = pw_be32(f->hdr + 1);
				if (clamp && len > CLAMP_LEN && len_at) {
					pw_put_be32(d + len_at - 1, CLAMP_LEN);
					pw_put_be32(f->hdr + 1, CLAMP_LEN);
					len = CLAMP_LEN;
				}
				f->bad = len < 4;
				f->left = len - 4;
				f->clen = 0;
				if (!f->left) {
					f->hlen = 0;
					f->last = 5;
				}
			}
			continue;
		}
		if (!f->ok && f->hdr[0] == 'R' && pw_be32(f->hdr + 1) == 8 && f->clen < 4) {
			f->code[f->clen++] = d[i++];
			f->left--;
			if (f->clen == 4 && pw_be32(f->code) == PW_AUTH_REQ_OK) {
				f->ok = true;
				f->ok_at = f->start;
			}
		} else {
			uint64_t k = f->left < n - i ? f->left : n - i;
			i += (size_t)k;
			f->left -= k;
		}
		if (!f->left) {
			f->hlen = 0;
			f->last = (uint64_t)pw_be32(f->hdr + 1) + 1;
		}
	}
}

static void frame(struct framer *f, const uint8_t *d, size_t n)
{
	frame_ex(f, (uint8_t *)d, n, false);
}

struct rec {
	uint8_t type; /* 0: a startup packet or CancelRequest */
	size_t len;   /* of the body, whole */
	size_t kept;  /* of it in body */
	uint8_t body[REC_BODY];
};

struct peer {
	int fd;
	bool eof;         /* pgwardd's end is closed */
	bool half_closed; /* the harness's end is (shutdown(SHUT_WR)) */
	bool lost;        /* the harness could not write everything it meant to */
	/* the relay check (see relay_check): what pgwardd sent a client from the start-up on,
	 * what the harness's server sent an upstream connection */
	struct framer fr;
	bool tracked;    /* client: an allow-all session started cleanly (STARTUP of user t) */
	bool untidy;     /* client: something before that start-up made the stream unknowable */
	bool refusal;    /* upstream: pgwardd sent a refusal's sentinel */
	uint8_t held[5]; /* upstream, pool-preamble-message: a header's start, not sent yet */
	size_t nheld;
	/* client: TLS of the harness's */
	SSL *ssl;
	bool hs_done;
	/* client: the newest bytes pgwardd sent */
	uint8_t rx[RX_MAX];
	size_t rx_len;
	struct pw_scram_client scram_c;
	int scram_c_state;
	/* upstream: pgwardd's messages, framed */
	bool started;
	uint8_t hdr[5];
	size_t hlen, left;
	struct rec cur;
	struct rec *recs[REC_MAX];
	int n_recs;
	struct pw_scram_server scram_s;
	int scram_s_state;
	bool failed_group, copy_in;
	char tx;
};

static struct peer cl[MAX_CLIENTS], up[MAX_UPS];
static int n_cl, n_up;

static int peer_index(const struct peer *p)
{
	return p >= cl && p < cl + MAX_CLIENTS ? (int)(p - cl) : (int)(p - up);
}

static void peer_init(struct peer *p, int fd)
{
	memset(p, 0, offsetof(struct peer, rx)); /* rx: only rx_len counts */
	memset(&p->rx_len, 0, sizeof *p - offsetof(struct peer, rx_len));
	p->fd = fd;
	p->tx = 'I';
}

static void peer_close(struct peer *p)
{
	if (p->ssl) {
		SSL_free(p->ssl);
		p->ssl = NULL;
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	for (int i = 0; i < p->n_recs; i++)
		free(p->recs[i]);
	p->n_recs = 0;
}

static void client_rx(struct peer *p, const uint8_t *d, size_t n)
{
	if (n >= RX_MAX) {
		d += n - RX_MAX;
		n = RX_MAX;
	}
	if (p->rx_len + n > RX_MAX) {
		size_t drop = p->rx_len + n - RX_MAX;
		memmove(p->rx, p->rx + drop, p->rx_len - drop);
		p->rx_len -= drop;
	}
	memcpy(p->rx + p->rx_len, d, n);
	p->rx_len += n;
}

/* pgwardd's bytes to an upstream connection: framed into records (the first message has no
 * type byte: a StartupMessage or a CancelRequest). */
static void upstream_rx(struct peer *p, const uint8_t *d, size_t n)
{
	while (n) {
		size_t hneed = p->started ? 5 : 4;
		if (!p->left && p->hlen < hneed) {
			size_t k = hneed - p->hlen < n ? hneed - p->hlen : n;
			memcpy(p->hdr + p->hlen, d, k);
			p->hlen += k;
			d += k;
			n -= k;
			if (p->hlen < hneed)
				return;
			uint32_t len = pw_be32(p->hdr + (p->started ? 1 : 0));
			p->cur.type = p->started ? p->hdr[0] : 0;
			p->cur.len = len >= 4 ? len - 4 : 0;
			p->cur.kept = 0;
			p->left = p->cur.len;
			p->started = true;
			if (p->left)
				continue;
		} else {
			size_t k = p->left < n ? p->left : n;
			size_t room = REC_BODY - p->cur.kept;
			size_t c = k < room ? k : room;
			memcpy(p->cur.body + p->cur.kept, d, c);
			p->cur.kept += c;
			p->left -= k;
			d += k;
			n -= k;
			if (p->left)
				continue;
		}
		/* one whole message */
		p->hlen = 0;
		if (p->n_recs == REC_MAX) {
			free(p->recs[0]);
			memmove(p->recs, p->recs + 1, (REC_MAX - 1) * sizeof(p->recs[0]));
			p->n_recs--;
		}
		struct rec *r = malloc(sizeof *r);
		if (!r)
			die("out of memory");
		memcpy(r, &p->cur, offsetof(struct rec, body) + p->cur.kept);
		p->recs[p->n_recs++] = r;
		if (memmem(r->body, r->kept, "pgward_refused_", 15))
			p->refusal = true;
	}
}

/* PGWARD_FUZZ_VERBOSE: what pgwardd sent a peer, as message types (a guess for a client, whose
 * first bytes may be single-byte answers). */
static void trace_rx(const char *who, int i, const uint8_t *d, size_t n)
{
	char line[256];
	size_t o =
	    (size_t)snprintf(line, sizeof line, "fuzz_session: %s %d <- %zu bytes:", who, i, n);

	for (size_t k = 0; k < n && o < sizeof line - 8;) {
		uint8_t t = d[k];
		if (n - k >= 5 && t >= 'A' && t <= 'z' && pw_be32(d + k + 1) >= 4) {
			o += (size_t)snprintf(line + o, sizeof line - o, " %c", t);
			size_t len = pw_be32(d + k + 1);
			if (len + 1 > n - k)
				break;
			k += len + 1;
		} else if (n - k >= 8 && t == 0) {
			o += (size_t)snprintf(line + o, sizeof line - o, " (startup)");
			k += pw_be32(d + k);
		} else {
			o += (size_t)snprintf(line + o, sizeof line - o, " 0x%02x", t);
			k++;
		}
	}
	fprintf(stderr, "%s\n", line);
}

static int peer_index(const struct peer *p);

/* Read what pgwardd sent a peer. True when something came. */
static bool drain_peer(struct peer *p, bool client)
{
	uint8_t buf[16384];
	bool moved = false;

	if (p->fd < 0)
		return false;
	if (p->ssl && !p->hs_done) {
		ERR_clear_error();
		int r = SSL_do_handshake(p->ssl);
		if (r == 1) {
			p->hs_done = true;
			moved = true;
		} else {
			int e = SSL_get_error(p->ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				/* the handshake failed: the harness talks plain from here (what
				 * OpenSSL read is lost to the relay check) */
				ERR_clear_error();
				p->untidy = true;
				SSL_free(p->ssl);
				p->ssl = NULL;
				return true;
			}
			return false;
		}
	}
	for (int i = 0; i < 64; i++) {
		ssize_t r;
		if (p->ssl) {
			ERR_clear_error();
			int k = SSL_read(p->ssl, buf, sizeof buf);
			if (k <= 0) {
				int e = SSL_get_error(p->ssl, k);
				ERR_clear_error();
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					break;
				p->eof = true;
				break;
			}
			r = k;
		} else {
			r = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				if (!p->eof)
					moved = true;
				p->eof = true;
				break;
			}
			if (r < 0)
				break;
		}
		moved = true;
		if (verbose)
			trace_rx(client ? "client" : "upstream", peer_index(p), buf, (size_t)r);
		if (client) {
			client_rx(p, buf, (size_t)r);
			if (p->tracked)
				frame(&p->fr, buf, (size_t)r);
		} else {
			upstream_rx(p, buf, (size_t)r);
		}
	}
	return moved;
}

static bool accept_upstreams(void)
{
	bool moved = false;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		moved = true;
		if (n_up == MAX_UPS) {
			close(fd);
			continue;
		}
		peer_init(&up[n_up++], fd);
	}
	return moved;
}

static bool pump_round(void)
{
	bool moved = accept_upstreams();
	moved |= pw_worker_turn(w, 0) > 0 || pw_worker_more(w);
	for (int i = 0; i < n_cl; i++)
		moved |= drain_peer(&cl[i], true);
	for (int i = 0; i < n_up; i++)
		moved |= drain_peer(&up[i], false);
	pw_worker_set_now(w, pw_worker_now(w) + 1);
	return moved;
}

/* The relay check. An allow-all session (identity t: no statement is refused, no set-up, no
 * pooling) relays the server's messages from its AuthenticationOk on as they are (only the key
 * of BackendKeyData is replaced, in place). So once the loop is quiescent, with one client and
 * one upstream connection both open, the server's messages complete and none of pgwardd's own
 * refusals or stops in between, the client has received exactly as many bytes from its
 * AuthenticationOk on as the server sent from its own. */
static void relay_check(void)
{
	struct peer *c = &cl[0], *u = &up[0];

	if (n_cl != 1 || n_up != 1 || !c->tracked || c->untidy || c->fd < 0 || c->eof ||
	    c->half_closed || c->lost || c->fr.bad || u->fd < 0 || u->eof || u->half_closed ||
	    u->lost || u->refusal || u->fr.bad || !u->fr.ok || u->fr.hlen ||
	    pw_worker_stopping(w) || hooks->live(w) != 1)
		return;
	uint64_t sent = u->fr.total - u->fr.ok_at;
	uint64_t got = c->fr.ok ? c->fr.total - c->fr.ok_at : 0;
	if (tolerate_held5 && got + 5 == sent && u->fr.last == 5)
		return; /* the known bug of crash-upstream-5-byte-message-held */
	if (sent != got)
		fail("relay: the server sent %llu bytes of whole messages from its "
		     "AuthenticationOk on, the client received %llu (last byte types: server %c, "
		     "client %c)",
		     (unsigned long long)sent, (unsigned long long)got, u->fr.hdr[0], c->fr.hdr[0]);
}

static void pump(void)
{
	for (int i = 0; i < PUMP_ROUNDS; i++)
		if (!pump_round()) {
			relay_check();
			return;
		}
}

static void tick(uint64_t delta)
{
	pw_worker_set_now(w, pw_worker_now(w) + delta);
	hooks->tick(w, false);
	pump();
}

/* Write to a peer: what does not fit waits for the loop (a bounded number of rounds). */
static void put(struct peer *p, const void *data, size_t n)
{
	const uint8_t *d = data;
	uint8_t *copy = NULL;

	if (!n)
		return;
	if (p >= up && p < up + MAX_UPS && p->fd >= 0) {
		if (tolerate_pool) {
			/* the held start of a header first; a header's start is held back until its
			 * length word is whole, so that the clamp can lower it */
			if (!(copy = malloc(p->nheld + n)))
				die("out of memory");
			memcpy(copy, p->held, p->nheld);
			memcpy(copy + p->nheld, data, n);
			n += p->nheld;
			struct framer t = p->fr;
			frame(&t, copy, n);
			p->nheld = t.hlen > 0 && t.hlen < 5 ? t.hlen : 0;
			n -= p->nheld;
			memcpy(p->held, copy + n, p->nheld);
			d = copy;
		}
		/* what the server sent: the relay check's reference */
		frame_ex(&p->fr, (uint8_t *)d, n, tolerate_pool);
	}
	for (int tries = 0; n && p->fd >= 0 && tries < 32;) {
		ssize_t r;
		if (p->ssl && !p->hs_done) {
			pump();
			tries++;
			if (p->ssl && !p->hs_done)
				continue;
		}
		if (p->ssl) {
			ERR_clear_error();
			int k = SSL_write(p->ssl, d, (int)(n > 65536 ? 65536 : n));
			if (k <= 0) {
				int e = SSL_get_error(p->ssl, k);
				ERR_clear_error();
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
					break;
				r = -1;
				errno = EAGAIN;
			} else {
				r = k;
			}
		} else {
			r = send(p->fd, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		if (r > 0) {
			d += r;
			n -= (size_t)r;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			pump_round();
			tries++;
			continue;
		}
		break; /* EPIPE, ECONNRESET: the other end is gone */
	}
	if (n)
		p->lost = true;
	free(copy);
}

static void put_out(struct peer *p, struct out *o)
{
	put(p, o->p, o->n);
	o->n = 0;
}

static const struct {
	int family;
	const char *addr;
} peers[8] = {{AF_UNIX, NULL},
              {AF_INET, "127.0.0.1"},
              {AF_INET, "10.0.0.1"},
              {AF_INET6, "::1"},
              {AF_INET6, "::ffff:127.0.0.1"},
              {AF_INET6, "2001:db8::1"},
              {AF_INET6, "::ffff:10.1.2.3"},
              {AF_UNIX, NULL}};

/* A new client: a socket pair, one end accepted as a session. NULL when there are enough. */
static struct peer *new_client(int kind, bool steered)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int sv[2];

	if (n_cl == MAX_CLIENTS)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
		fail("socketpair: %s", strerror(errno));
	kind &= 7;
	if (peers[kind].family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(40000);
		inet_pton(AF_INET, peers[kind].addr, &a->sin_addr);
		len = sizeof *a;
	} else if (peers[kind].family == AF_INET6) {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(40000);
		inet_pton(AF_INET6, peers[kind].addr, &a->sin6_addr);
		len = sizeof *a;
	} else {
		ss.ss_family = AF_UNIX;
		len = sizeof(sa_family_t);
	}
	struct peer *p = &cl[n_cl++];
	peer_init(p, sv[1]);
	pw_session_accept(w, sv[0], (struct sockaddr *)&ss, len, steered);
	pump();
	return p;
}

/* ---- the oracles: what a real client or server would answer ------------------------------- */

/* The body of the last message of type t whose first 4 body bytes are code (if code >= 0) in
 * what pgwardd sent a client; NULL if none. */
static const uint8_t *find_last(struct peer *p, uint8_t t, int64_t code, uint32_t lmin,
                                uint32_t lmax, size_t *blen)
{
	for (size_t i = p->rx_len >= 9 ? p->rx_len - 9 : 0; p->rx_len >= 9; i--) {
		if (p->rx[i] == t) {
			uint32_t len = pw_be32(p->rx + i + 1);
			if (len >= lmin && len <= lmax && i + 1 + len <= p->rx_len &&
			    (code < 0 || pw_be32(p->rx + i + 5) == (uint32_t)code)) {
				*blen = len - 4;
				return p->rx + i + 5;
			}
		}
		if (i == 0)
			break;
	}
	return NULL;
}

static void client_scram(struct peer *p, bool wrong)
{
	char out[PW_SCRAM_MSG_MAX], err[256];
	size_t outlen, blen;
	struct out o = {0};

	if (p->scram_c_state == 0) {
		if (pw_scram_client_first(&p->scram_c, CL_NONCE, out, sizeof out, &outlen) != 0)
			return;
		size_t at = o_begin(&o, 'p');
		o_str(&o, "SCRAM-SHA-256");
		o_be32(&o, (uint32_t)outlen);
		o_bytes(&o, out, outlen);
		o_end(&o, at);
		p->scram_c_state = 1;
	} else {
		const uint8_t *b = find_last(p, 'R', PW_AUTH_REQ_SASL_CONT, 8, 600, &blen);
		if (!b || p->scram_c_state != 1)
			return;
		if (pw_scram_client_final(&p->scram_c, wrong ? "wrong" : CL_PASSWORD, b + 4,
		                          blen - 4, out, sizeof out, &outlen, err,
		                          sizeof err) != PW_AUTH_OK)
			return;
		size_t at = o_begin(&o, 'p');
		o_bytes(&o, out, outlen);
		o_end(&o, at);
		p->scram_c_state = 2;
	}
	put_out(p, &o);
	o_free(&o);
	pump();
}

static void drop_recs(struct peer *p, int n)
{
	for (int i = 0; i < n; i++)
		free(p->recs[i]);
	memmove(p->recs, p->recs + n, (size_t)(p->n_recs - n) * sizeof(p->recs[0]));
	p->n_recs -= n;
}

static void server_scram(struct peer *p, bool wrong)
{
	char out[PW_SCRAM_MSG_MAX], err[256];
	size_t outlen;
	struct out o = {0};
	int last = -1;

	for (int i = 0; i < p->n_recs; i++)
		if (p->recs[i]->type == 'p')
			last = i;
	if (last < 0)
		return;
	struct rec *r = p->recs[last];
	if (r->kept < r->len)
		goto done;
	if (p->scram_s_state == 0) {
		const uint8_t *z = memchr(r->body, 0, r->len);
		if (!z || (size_t)(z - r->body) + 5 > r->len)
			goto done;
		size_t off = (size_t)(z - r->body) + 5;
		if (pw_scram_server_first(&p->scram_s, wrong ? &bad_verifier : &up_verifier,
		                          r->body + off, r->len - off, SRV_NONCE, out, sizeof out,
		                          &outlen, err, sizeof err) != PW_AUTH_OK)
			goto done;
		m_auth(&o, PW_AUTH_REQ_SASL_CONT, out, outlen);
		p->scram_s_state = 1;
	} else if (p->scram_s_state == 1) {
		int rc = pw_scram_server_final(&p->scram_s, r->body, r->len, out, sizeof out,
		                               &outlen, err, sizeof err);
		if (rc == PW_AUTH_OK && wrong) /* a signature that does not verify */
			m_auth(&o, PW_AUTH_REQ_SASL_FIN,
			       "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 46);
		else if (rc == PW_AUTH_OK)
			m_auth(&o, PW_AUTH_REQ_SASL_FIN, out, outlen);
		else
			m_error(&o, 'E', "FATAL", "28P01", "password authentication failed");
		p->scram_s_state = 2;
	}
	put_out(p, &o);
done:
	drop_recs(p, last + 1);
	o_free(&o);
	pump();
}

static bool starts(const char *s, const char *word)
{
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '(')
		s++;
	return strncasecmp(s, word, strlen(word)) == 0;
}

/* The answer to one simple Query. */
static void answer_query(struct peer *p, struct out *o, const char *sql, bool errors)
{
	static const char *const truth_cols[3] = {"current_setting", "current_user", "string_agg"};
	static const char *const truth[3] = {"\"$user\", public, app", "app",
	                                     "pg_catalog,public,app"};
	static const char *const col[1] = {"?column?"};
	static const char *const one[1] = {"1"};
	const char *nonce = strstr(sql, "pgward_refused_");

	if (nonce) {
		char msg[128];
		snprintf(msg, sizeof msg, "syntax error at or near \"%.31s\"", nonce);
		m_error(o, 'E', "ERROR", "42601", msg);
		p->tx = p->tx == 'T' ? 'E' : p->tx;
	} else if (strstr(sql, "current_schemas")) {
		if (errors) {
			m_error(o, 'E', "ERROR", "42704", "role \"app_reader\" does not exist");
		} else {
			m_complete(o, "SET");
			m_rowdesc(o, 3, truth_cols);
			m_datarow(o, 3, truth);
			m_complete(o, "SELECT 1");
		}
	} else if (errors) {
		m_error(o, 'E', "ERROR", "42P01", "relation \"nope\" does not exist");
		p->tx = p->tx == 'T' ? 'E' : p->tx;
	} else if (starts(sql, "COPY") && strcasestr(sql, "FROM STDIN")) {
		m_copy_response(o, 'G');
		p->copy_in = true;
		return; /* ReadyForQuery after CopyDone or CopyFail */
	} else if (starts(sql, "COPY")) {
		m_copy_response(o, 'H');
		size_t at = o_begin(o, 'd');
		o_bytes(o, "1\n", 2);
		o_end(o, at);
		m_empty(o, 'c');
		m_complete(o, "COPY 1");
	} else if (starts(sql, "BEGIN") || starts(sql, "START")) {
		m_complete(o, "BEGIN");
		p->tx = 'T';
	} else if (starts(sql, "COMMIT") || starts(sql, "ROLLBACK") || starts(sql, "END")) {
		m_complete(o, starts(sql, "COMMIT") && p->tx != 'E' ? "COMMIT" : "ROLLBACK");
		p->tx = 'I';
	} else if (starts(sql, "SELECT") || starts(sql, "VALUES") || starts(sql, "WITH") ||
	           starts(sql, "SHOW") || starts(sql, "TABLE")) {
		m_rowdesc(o, 1, col);
		m_datarow(o, 1, one);
		m_complete(o, "SELECT 1");
	} else if (starts(sql, "LISTEN")) {
		m_complete(o, "LISTEN");
		m_notify(o, 4242, "chan", "payload");
	} else if (!*sql) {
		m_empty(o, 'I');
	} else {
		m_complete(o, starts(sql, "SET") ? "SET" : "DISCARD ALL");
	}
	m_rfq(o, p->tx);
}

/* A small server: every message pgwardd sent is answered as PostgreSQL would (roughly). */
static void server_answer(struct peer *p, bool errors, bool extras)
{
	struct out o = {0};
	char sql[REC_BODY + 1];

	for (int i = 0; i < p->n_recs; i++) {
		struct rec *r = p->recs[i];
		bool nonce = memmem(r->body, r->kept, "pgward_refused_", 15) != NULL;
		if (extras) {
			m_error(&o, 'N', "NOTICE", "00000", "a notice");
			m_param(&o, "TimeZone", "UTC");
			m_notify(&o, 4242, "chan", "x");
		}
		if (p->failed_group && r->type != 'S')
			continue;
		switch (r->type) {
		case 'Q':
			memcpy(sql, r->body, r->kept);
			sql[r->kept] = 0;
			answer_query(p, &o, sql, errors);
			break;
		case 'P':
			if (nonce || errors) {
				m_error(&o, 'E', "ERROR", "42601",
				        nonce ? "syntax error at or near \"pgward_refused_\""
				              : "syntax error");
				p->failed_group = true;
			} else {
				m_empty(&o, '1');
			}
			break;
		case 'B':
			m_empty(&o, '2');
			break;
		case 'D': {
			if (r->kept && r->body[0] == 'S') {
				size_t at = o_begin(&o, 't');
				o_be16(&o, 0);
				o_end(&o, at);
			}
			static const char *const col[1] = {"?column?"};
			m_rowdesc(&o, 1, col);
			break;
		}
		case 'E': {
			static const char *const one[1] = {"1"};
			m_datarow(&o, 1, one);
			m_complete(&o, "SELECT 1");
			break;
		}
		case 'C':
			m_empty(&o, '3');
			break;
		case 'S':
			p->failed_group = false;
			m_rfq(&o, p->tx);
			break;
		case 'F': {
			size_t at = o_begin(&o, 'V');
			o_be32(&o, 0xffffffff);
			o_end(&o, at);
			m_rfq(&o, p->tx);
			break;
		}
		case 'c':
		case 'f':
			if (p->copy_in) {
				if (r->type == 'c')
					m_complete(&o, "COPY 0");
				else
					m_error(&o, 'E', "ERROR", "57014",
					        "COPY from stdin failed");
				m_rfq(&o, p->tx);
				p->copy_in = false;
			}
			break;
		default: /* startup, 'd', 'H', 'X', 'p' */
			break;
		}
	}
	drop_recs(p, p->n_recs);
	put_out(p, &o);
	o_free(&o);
	pump();
}

/* ---- one input ------------------------------------------------------------------------------ */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		fail("opendir /proc/self/fd: %s", strerror(errno));
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static const char *const users[8] = {"t", "p", "j", "r", "q", "w", "o", "nobody"};

static void startup(struct out *o, const char *user, const char *db, bool extra)
{
	size_t at = o_begin(o, 0);
	o_be32(o, PW_PROTO_V3);
	o_str(o, "user");
	o_str(o, user);
	o_str(o, "database");
	o_str(o, db);
	if (extra) {
		o_str(o, "application_name");
		o_str(o, "psql");
		o_str(o, "client_encoding");
		o_str(o, "UTF8");
		o_str(o, "options");
		o_str(o, "-c search_path=public -c statement_timeout=0");
	}
	o_u8(o, 0);
	o_end(o, at);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;
	struct out o = {0};

	if (size < 1)
		return 0;
	int fds = count_fds();
	uint8_t hdr = *data++;
	pw_sql_cache_clear();
	pw_worker_set_now(w, BASE_MS);
	pw_worker_set_stopping(w, false);
	n_cl = n_up = 0;
	pw_runtime_publish(pw_runtime_ref(hdr & 1 ? rt_tls : rt_plain));
	new_client(hdr >> 1, hdr & 16);

	while (data < end) {
		uint8_t c = *data++, kind = c & 15, a = c >> 4;
		if (verbose)
			fprintf(stderr,
			        "fuzz_session: op %d arg %d (%d sessions, %d clients, %d "
			        "upstream connections)\n",
			        kind, a, hooks->live(w), n_cl, n_up);
		switch (kind) {
		case 0:
		case 1: {
			size_t n = 0;
			if (a & 4) {
				if (end - data < 2)
					goto done;
				n = (size_t)data[0] << 8 | data[1];
				data += 2;
			} else {
				if (end - data < 1)
					goto done;
				n = *data++;
			}
			if (n > (size_t)(end - data))
				n = (size_t)(end - data);
			if (kind == 0 && n_cl) {
				struct peer *p = &cl[(a & 3) % n_cl];
				if (!p->tracked && !(n == 8 && pw_be32(data) == 8 &&
				                     (pw_be32(data + 4) == PW_SSL_REQUEST ||
				                      pw_be32(data + 4) == PW_GSSENC_REQUEST)))
					p->untidy = true;
				put(p, data, n);
			} else if (kind == 1 && n_up)
				put(&up[(a & 3) % n_up], data, n);
			data += n;
			if (!(a & 8))
				pump();
			break;
		}
		case 2:
			if (a & 1)
				hooks->nudge(w);
			pump();
			break;
		case 3:
			new_client(a & 7, a & 8);
			break;
		case 4:
			tick(a == 15 ? 1000000000000ull : (uint64_t)(a + 1) * 4000);
			break;
		case 5:
			if (n_cl) {
				struct peer *p = &cl[(a & 3) % n_cl];
				if (!(a & 8))
					drain_peer(p, true);
				if (a & 4) {
					if (p->fd >= 0)
						shutdown(p->fd, SHUT_WR);
					p->half_closed = true;
				} else {
					peer_close(p);
				}
				pump();
			}
			break;
		case 6:
			if (n_up) {
				struct peer *p = &up[(a & 3) % n_up];
				if (a & 4) {
					if (p->fd >= 0)
						shutdown(p->fd, SHUT_WR);
					p->half_closed = true;
				} else {
					peer_close(p);
				}
				pump();
			}
			break;
		case 7:
			if (n_cl)
				client_scram(&cl[(a & 3) % n_cl], a & 4);
			break;
		case 8:
			if (n_up) {
				static const uint8_t mech[] = "SCRAM-SHA-256\0";
				static const uint8_t salt[4] = "salt";
				switch (a >> 2) {
				case 0:
					m_auth(&o, PW_AUTH_REQ_SASL, mech, sizeof mech);
					break;
				case 1:
					m_auth(&o, PW_AUTH_REQ_MD5, salt, 4);
					break;
				case 2:
					m_auth(&o, PW_AUTH_REQ_CLEARTEXT, NULL, 0);
					break;
				default:
					m_auth(&o, PW_AUTH_REQ_OK, NULL, 0);
				}
				put_out(&up[(a & 3) % n_up], &o);
				pump();
			}
			break;
		case 9:
			if (n_up)
				server_scram(&up[(a & 3) % n_up], a & 4);
			break;
		case 10:
			if (n_up) {
				if (a & 4)
					m_auth(&o, PW_AUTH_REQ_OK, NULL, 0);
				m_preamble(&o, a & 8);
				put_out(&up[(a & 3) % n_up], &o);
				pump();
			}
			break;
		case 11:
			if (n_up)
				server_answer(&up[(a & 3) % n_up], a & 4, a & 8);
			break;
		case 12: {
			size_t blen;
			const uint8_t *k =
			    n_cl ? find_last(&cl[(a & 3) % n_cl], 'K', -1, 12, 12, &blen) : NULL;
			uint8_t pkt[16];
			pw_put_be32(pkt, 16);
			pw_put_be32(pkt + 4, PW_CANCEL_REQUEST);
			pw_put_be32(pkt + 8, k ? pw_be32(k) : 4242);
			pw_put_be32(pkt + 12, (k ? pw_be32(k + 4) : 0) ^ (a & 4 ? 1 : 0));
			struct peer *p = new_client(0, false);
			if (p) {
				put(p, pkt, sizeof pkt);
				pump();
			}
			break;
		}
		case 13:
			pw_worker_set_stopping(w, true);
			if (a & 1) {
				hooks->tick(w, true); /* the grace period is over */
				pump();
			} else {
				tick(1);
			}
			break;
		case 14:
			if (n_cl) {
				struct peer *p = &cl[(a & 3) % n_cl];
				if (p->fd >= 0 && !p->ssl) {
					p->untidy |= p->tracked; /* TLS inside a plain session */
					p->ssl = SSL_new(cli_ctx);
					if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1)
						fail("SSL_new");
					SSL_set_connect_state(p->ssl);
					p->hs_done = false;
					drain_peer(p, true);
					pump();
				}
			}
			break;
		case 15:
			if (n_cl) {
				struct peer *p = &cl[n_cl - 1];
				startup(&o, users[a & 7], (a & 7) == 5 ? "w" : "app", a & 8);
				if (!p->tracked && (a & 7) == 0 && !p->eof) {
					/* what pgwardd sent before (encryption answers, which a
					 * write without a pump may have left on their way) is not
					 * framed */
					pump();
					p->tracked = true;
					p->fr = (struct framer){0};
				} else {
					p->untidy = true;
				}
				put_out(p, &o);
				pump();
			}
			break;
		}
	}
done:
	/* every peer goes, then the loop runs with ticks past every deadline */
	for (int i = 0; i < n_cl; i++)
		peer_close(&cl[i]);
	for (int i = 0; i < n_up; i++)
		peer_close(&up[i]);
	pump();
	for (int i = 0; i < 8 && hooks->live(w); i++) {
		tick(1000000000000ull);
		for (int k = 0; k < n_up; k++)
			peer_close(&up[k]);
	}
	/* connections accepted after the peers were closed */
	for (int k = 0; k < n_up; k++)
		peer_close(&up[k]);
	o_free(&o);
	if (hooks->live(w) || pw_worker_more(w))
		fail("%d session(s) left after every peer closed and every deadline passed",
		     hooks->live(w));
	pw_worker_set_stopping(w, false);
	pw_sql_cache_clear();
	if (count_fds() != fds)
		fail("file descriptors: %d at the start of the input, %d at its end", fds,
		     count_fds());
	return 0;
}

/* ---- seeds ---------------------------------------------------------------------------------- */

/* frontend messages */
static void c_query(struct out *o, const char *sql)
{
	size_t at = o_begin(o, 'Q');
	o_str(o, sql);
	o_end(o, at);
}

static void c_parse(struct out *o, const char *name, const char *sql)
{
	size_t at = o_begin(o, 'P');
	o_str(o, name);
	o_str(o, sql);
	o_be16(o, 0);
	o_end(o, at);
}

static void c_bind(struct out *o, const char *portal, const char *stmt)
{
	size_t at = o_begin(o, 'B');
	o_str(o, portal);
	o_str(o, stmt);
	o_be16(o, 0);
	o_be16(o, 1); /* one parameter */
	o_be32(o, 1);
	o_u8(o, '1');
	o_be16(o, 0);
	o_end(o, at);
}

/* Describe ('D') or Close ('C') of a statement ('S') or portal ('P') */
static void c_target(struct out *o, uint8_t type, uint8_t what, const char *name)
{
	size_t at = o_begin(o, type);
	o_u8(o, what);
	o_str(o, name);
	o_end(o, at);
}

static void c_execute(struct out *o, const char *portal)
{
	size_t at = o_begin(o, 'E');
	o_str(o, portal);
	o_be32(o, 0);
	o_end(o, at);
}

static void c_func(struct out *o, uint32_t oid)
{
	size_t at = o_begin(o, 'F');
	o_be32(o, oid);
	o_be16(o, 0);
	o_be16(o, 1);
	o_be32(o, 4);
	o_bytes(o, "/etc", 4);
	o_be16(o, 0);
	o_end(o, at);
}

static void c_data(struct out *o, uint8_t type, const void *d, size_t n)
{
	size_t at = o_begin(o, type);
	o_bytes(o, d, n);
	o_end(o, at);
}

static void c_str(struct out *o, uint8_t type, const char *str)
{
	size_t at = o_begin(o, type);
	o_str(o, str);
	o_end(o, at);
}

static void c_special(struct out *o, uint32_t code, uint32_t a, uint32_t b, bool full)
{
	o_be32(o, full ? 16 : 8);
	o_be32(o, code);
	if (full) {
		o_be32(o, a);
		o_be32(o, b);
	}
}

static void c_sasl_init(struct out *o, const char *mech, const char *data)
{
	size_t at = o_begin(o, 'p');
	o_str(o, mech);
	o_be32(o, (uint32_t)strlen(data));
	o_bytes(o, data, strlen(data));
	o_end(o, at);
}

/* ---- the seeds: operations ---- */

enum {
	OP_CLIENT,
	OP_SERVER,
	OP_PUMP,
	OP_NEW_CLIENT,
	OP_TICK,
	OP_CLIENT_CLOSE,
	OP_SERVER_CLOSE,
	OP_CLIENT_SCRAM,
	OP_AUTH_REQUEST,
	OP_SERVER_SCRAM,
	OP_PREAMBLE,
	OP_ANSWER,
	OP_CANCEL,
	OP_STOP,
	OP_CLIENT_TLS,
	OP_STARTUP,
};
enum { U_T, U_P, U_J, U_R, U_Q, U_W, U_O, U_NOBODY };

static struct out seed, m;

static void s_begin(uint8_t hdr)
{
	seed.n = 0;
	o_u8(&seed, hdr);
}

static void s_op(int kind, int a)
{
	o_u8(&seed, (uint8_t)(kind | a << 4));
}

/* The bytes of m, written to client (OP_CLIENT) or upstream connection (OP_SERVER) idx. */
static void s_write_idx(int kind, int idx, bool nopump)
{
	if (m.n > 65535)
		die("a seed message is too long");
	bool two = m.n > 255;
	s_op(kind, idx | (two ? 4 : 0) | (nopump ? 8 : 0));
	if (two)
		o_be16(&seed, (uint16_t)m.n);
	else
		o_u8(&seed, (uint8_t)m.n);
	o_bytes(&seed, m.p, m.n);
	m.n = 0;
}

static void s_client(void)
{
	s_write_idx(OP_CLIENT, 0, false);
}

static void s_server(void)
{
	s_write_idx(OP_SERVER, 0, false);
}

static void s_save(const char *name)
{
	pwfuzz_seed(name, seed.p, seed.n);
}

/* A client of user u logged in: StartupMessage, AuthenticationOk and the start-up messages
 * from the (fake) server. */
static void s_login(int u)
{
	s_op(OP_STARTUP, u);
	s_op(OP_PREAMBLE, 4);
}

/* A token for "j", signed with the RSA test key, valid until 2100. */
static const char *token(void)
{
	static char tok[2048];
	static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"rsa\"}";
	static const char pay[] = "{\"sub\":\"alice\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
	                          "\",\"exp\":4102444800,\"groups\":[\"agents\"]}";
	char sig[1024];
	size_t n;

	n = pwfuzz_b64url((const uint8_t *)hdr, strlen(hdr), tok);
	tok[n++] = '.';
	n += pwfuzz_b64url((const uint8_t *)pay, strlen(pay), tok + n);
	if (!pwfuzz_sign("rsa", tok, sig, sizeof sig))
		die("cannot sign the seed token");
	tok[n++] = '.';
	strcpy(tok + n, sig);
	return tok;
}

static void make_seeds(void)
{
	static const char *const col[1] = {"a"}, *const one[1] = {"1"};

	/* the whole protocol through a trust session, the server's bytes written as they are */
	s_begin(0);
	startup(&m, "t", "app", false);
	s_client();
	m_auth(&m, PW_AUTH_REQ_OK, NULL, 0);
	m_preamble(&m, false);
	s_server();
	c_query(&m, "SELECT 1");
	s_client();
	m_rowdesc(&m, 1, col);
	m_datarow(&m, 1, one);
	m_complete(&m, "SELECT 1");
	m_rfq(&m, 'I');
	s_server();
	c_parse(&m, "s1", "SELECT $1");
	c_bind(&m, "", "s1");
	c_target(&m, 'D', 'S', "s1");
	c_target(&m, 'D', 'P', "");
	c_execute(&m, "");
	c_data(&m, 'S', NULL, 0);
	s_client();
	m_empty(&m, '1');
	m_empty(&m, '2');
	m_rowdesc(&m, 1, col);
	m_datarow(&m, 1, one);
	m_complete(&m, "SELECT 1");
	m_rfq(&m, 'I');
	s_server();
	c_parse(&m, "", "SELECT 2");
	c_data(&m, 'H', NULL, 0);
	s_client();
	m_empty(&m, '1');
	s_server();
	c_target(&m, 'C', 'S', "s1");
	c_data(&m, 'S', NULL, 0);
	s_client();
	m_empty(&m, '3');
	m_rfq(&m, 'I');
	s_server();
	c_func(&m, 2624);
	s_client();
	c_data(&m, 'V', "\xff\xff\xff\xff", 4);
	m_rfq(&m, 'I');
	s_server();
	c_query(&m, "COPY t FROM STDIN");
	s_client();
	m_copy_response(&m, 'G');
	s_server();
	c_data(&m, 'd', "1\n", 2);
	c_data(&m, 'd', "2\n", 2);
	c_data(&m, 'c', NULL, 0);
	s_client();
	m_complete(&m, "COPY 2");
	m_rfq(&m, 'I');
	s_server();
	c_query(&m, "COPY t TO STDOUT");
	s_client();
	m_copy_response(&m, 'H');
	c_data(&m, 'd', "1\n", 2);
	m_empty(&m, 'c');
	m_complete(&m, "COPY 1");
	m_rfq(&m, 'I');
	s_server();
	c_query(&m, "COPY t FROM STDIN");
	s_client();
	m_copy_response(&m, 'G');
	s_server();
	c_str(&m, 'f', "oops");
	s_client();
	m_error(&m, 'E', "ERROR", "57014", "COPY from stdin failed: oops");
	m_rfq(&m, 'I');
	s_server();
	c_query(&m, "LISTEN chan");
	s_client();
	m_complete(&m, "LISTEN");
	m_rfq(&m, 'I');
	m_error(&m, 'N', "NOTICE", "00000", "a notice");
	m_notify(&m, 4242, "chan", "payload");
	m_param(&m, "TimeZone", "Europe/Paris");
	s_server();
	c_query(&m, "SELECT nope");
	s_client();
	m_error(&m, 'E', "ERROR", "42703", "column \"nope\" does not exist");
	m_rfq(&m, 'I');
	s_server();
	c_data(&m, 'X', NULL, 0);
	s_client();
	s_save("trust-protocol");

	/* the same through the harness's server */
	s_begin(0);
	s_login(U_T);
	c_query(&m, "BEGIN; SELECT 1");
	c_query(&m, "COPY t FROM STDIN");
	s_client();
	s_op(OP_ANSWER, 0);
	c_data(&m, 'd', "1\n", 2);
	c_data(&m, 'c', NULL, 0);
	c_parse(&m, "", "SELECT $1");
	c_bind(&m, "", "");
	c_target(&m, 'D', 'P', "");
	c_execute(&m, "");
	c_data(&m, 'S', NULL, 0);
	c_func(&m, 1299);
	c_query(&m, "COMMIT");
	s_client();
	s_op(OP_ANSWER, 8);
	c_data(&m, 'X', NULL, 0);
	s_client();
	s_save("trust-answered");

	/* encryption requests: no TLS configured, then TLS */
	s_begin(0);
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	c_special(&m, PW_GSSENC_REQUEST, 0, 0, false);
	s_client();
	s_login(U_T);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("ssl-gss-refused");

	s_begin(1);
	c_special(&m, PW_GSSENC_REQUEST, 0, 0, false);
	s_client();
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	s_op(OP_CLIENT_TLS, 0);
	s_login(U_T);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	c_data(&m, 'X', NULL, 0);
	s_client();
	s_save("ssl-tls-session");

	s_begin(1);
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	startup(&m, "t", "app", false);
	s_client();
	s_save("ssl-unencrypted-after-request");

	s_begin(1);
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	c_query(&m, "not a handshake");
	s_client();
	s_save("ssl-garbage-handshake");

	s_begin(1);
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	s_op(OP_CLIENT_TLS, 0);
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	s_save("ssl-requested-twice");

	/* tokens */
	s_begin(1 | 2 << 1); /* 10.0.0.1 */
	c_special(&m, PW_SSL_REQUEST, 0, 0, false);
	s_client();
	s_op(OP_CLIENT_TLS, 0);
	s_op(OP_STARTUP, U_J);
	c_str(&m, 'p', token());
	s_client();
	s_op(OP_PREAMBLE, 4);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("jwt-tls-remote");

	s_begin(2 << 1);
	s_op(OP_STARTUP, U_J);
	s_save("jwt-remote-without-tls");

	s_begin(0);
	s_op(OP_STARTUP, U_J);
	c_str(&m, 'p', token());
	s_client();
	s_op(OP_PREAMBLE, 4);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("jwt-local");

	s_begin(0);
	s_op(OP_STARTUP, U_J);
	c_str(&m, 'p', "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.");
	s_client();
	s_save("jwt-alg-none");

	s_begin(0);
	s_op(OP_STARTUP, U_J);
	c_data(&m, 'p', "abc\0def", 7);
	s_client();
	s_save("jwt-malformed-message");

	s_begin(0);
	s_op(OP_STARTUP, U_J);
	o_u8(&m, 'p');
	o_be32(&m, 100000);
	s_client();
	s_save("jwt-oversized");

	/* cancel requests */
	s_begin(0);
	c_special(&m, PW_CANCEL_REQUEST, 4242, 1, true);
	s_client();
	s_save("cancel-unknown-key");

	s_begin(0);
	s_login(U_T);
	c_query(&m, "SELECT pg_sleep(10)");
	s_client();
	s_op(OP_CANCEL, 0);
	s_op(OP_CANCEL, 4);
	s_op(OP_ANSWER, 4);
	s_save("cancel-known-key");

	s_begin(0);
	c_special(&m, PW_CANCEL_REQUEST, 1, 2, false);
	s_client();
	s_save("cancel-bad-length");

	/* SCRAM from the client */
	s_begin(0);
	s_op(OP_STARTUP, U_P);
	c_sasl_init(&m, "SCRAM-SHA-256", "n,,n=,r=" CL_NONCE);
	s_client();
	c_str(&m, 'p', "c=biws,r=" CL_NONCE "guess,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	m.n--; /* a SASLResponse has no terminator */
	s_client();
	s_save("scram-client-final-wrong");

	s_begin(0);
	s_op(OP_STARTUP, U_P);
	s_op(OP_CLIENT_SCRAM, 0);
	s_op(OP_CLIENT_SCRAM, 0);
	s_op(OP_PREAMBLE, 4);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("scram-client-ok");

	s_begin(0);
	s_op(OP_STARTUP, U_P);
	s_op(OP_CLIENT_SCRAM, 0);
	s_op(OP_CLIENT_SCRAM, 4);
	s_save("scram-client-wrong-password");

	s_begin(0);
	s_op(OP_STARTUP, U_P);
	c_sasl_init(&m, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=x");
	s_client();
	s_save("scram-client-plus");

	s_begin(0);
	s_op(OP_STARTUP, U_P);
	c_query(&m, "SELECT 1");
	s_client();
	s_save("scram-client-not-sasl");

	s_begin(0);
	s_op(OP_STARTUP, U_P);
	c_sasl_init(&m, "SCRAM-SHA-256", "y,,n=,r=" CL_NONCE);
	m.p[m.n - 1] = 0;
	s_client();
	s_save("scram-client-malformed");

	/* the upstream's authentication */
	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_AUTH_REQUEST, 0);
	s_op(OP_SERVER_SCRAM, 0);
	s_op(OP_SERVER_SCRAM, 0);
	s_op(OP_PREAMBLE, 4);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("upstream-scram-ok");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_AUTH_REQUEST, 0);
	s_op(OP_SERVER_SCRAM, 0);
	s_op(OP_SERVER_SCRAM, 4);
	s_op(OP_PREAMBLE, 4);
	s_save("upstream-scram-bad-signature");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_AUTH_REQUEST, 0);
	s_op(OP_SERVER_SCRAM, 4);
	s_op(OP_SERVER_SCRAM, 0);
	s_save("upstream-scram-wrong-password");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_AUTH_REQUEST, 0);
	s_op(OP_AUTH_REQUEST, 12); /* Ok before the exchange is done */
	s_save("upstream-scram-skipped");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_AUTH_REQUEST, 4);
	s_op(OP_PREAMBLE, 4);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("upstream-md5");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_AUTH_REQUEST, 8);
	s_save("upstream-cleartext-refused");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	m_auth(&m, PW_AUTH_REQ_GSS, NULL, 0);
	s_server();
	s_save("upstream-gss");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	m_auth(&m, PW_AUTH_REQ_SASL_CONT, "r=x,s=c2FsdA==,i=4096", 21);
	s_server();
	s_save("upstream-sasl-continue-first");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	m_auth(&m, PW_AUTH_REQ_SASL, "SCRAM-SHA-256-PLUS\0\0", 20);
	s_server();
	s_save("upstream-sasl-plus-only");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	o_u8(&m, 'v');
	o_be32(&m, 10);
	o_be32(&m, 0x30000);
	o_be32(&m, 0);
	m_error(&m, 'N', "NOTICE", "00000", "hello");
	m_error(&m, 'E', "FATAL", "3D000", "database \"app\" does not exist");
	s_server();
	s_save("upstream-login-refused");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	m_rfq(&m, 'I');
	s_server();
	s_save("upstream-unexpected-during-auth");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	o_u8(&m, 'R');
	o_be32(&m, 9000);
	s_server();
	s_save("upstream-auth-oversized");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_SERVER_CLOSE, 0);
	s_save("upstream-closed-during-auth");

	/* connection reuse */
	s_begin(0);
	s_op(OP_STARTUP, U_O);
	s_op(OP_AUTH_REQUEST, 8);
	s_op(OP_PREAMBLE, 4);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_ANSWER, 0);
	c_data(&m, 'X', NULL, 0);
	s_client();
	s_op(OP_ANSWER, 0); /* DISCARD ALL */
	s_op(OP_NEW_CLIENT, 0);
	s_op(OP_STARTUP, U_O);
	c_query(&m, "SELECT 2");
	s_write_idx(OP_CLIENT, 1, false);
	s_op(OP_ANSWER, 0);
	s_op(OP_CANCEL, 1);
	s_op(OP_TICK, 15);
	s_save("pool-park-adopt");

	s_begin(0);
	s_op(OP_STARTUP, U_O);
	s_op(OP_AUTH_REQUEST, 8);
	s_op(OP_PREAMBLE, 4);
	s_op(OP_CLIENT_CLOSE, 0);
	s_op(OP_ANSWER, 4); /* DISCARD ALL fails */
	s_save("pool-reset-fails");

	s_begin(0);
	s_op(OP_STARTUP, U_O);
	s_op(OP_AUTH_REQUEST, 4); /* md5: not in require_auth */
	s_save("pool-require-auth");

	/* the fixed role's set-up */
	s_begin(0);
	s_login(U_R);
	s_op(OP_ANSWER, 0);
	c_query(&m, "SELECT current_user");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("role-setup");

	s_begin(0);
	s_login(U_R);
	s_op(OP_ANSWER, 4);
	s_save("role-setup-fails");

	s_begin(0);
	s_op(OP_STARTUP, U_R);
	m_auth(&m, PW_AUTH_REQ_OK, NULL, 0);
	m_param(&m, "server_version", "16.4");
	m_key(&m, 7, 8);
	m_rfq(&m, 'I');
	s_server();
	m_error(&m, 'N', "NOTICE", "00000", "set");
	m_complete(&m, "SET");
	m_rowdesc(&m, 1, col);
	m_datarow(&m, 1, one);
	m_rfq(&m, 'I');
	s_server();
	s_save("role-setup-literal");

	s_begin(0);
	s_op(OP_STARTUP, U_R);
	m_auth(&m, PW_AUTH_REQ_OK, NULL, 0);
	m_error(&m, 'E', "FATAL", "53300", "too many connections for role \"app\"");
	s_server();
	s_save("role-setup-fatal-after-login");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0);
	m_param(&m, "is_superuser", "on");
	s_server();
	s_save("role-left");

	/* the restrictive policy: refusals through sentinels */
	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0); /* the set-up's row */
	c_query(&m, "DELETE FROM secret.keys WHERE id = 1");
	s_client();
	s_op(OP_ANSWER, 0);
	c_parse(&m, "", "SELECT * FROM secret.keys");
	c_bind(&m, "", "");
	c_execute(&m, "");
	c_data(&m, 'S', NULL, 0);
	s_client();
	s_op(OP_ANSWER, 0);
	c_query(&m, "SELECT * FROM public.t");
	c_query(&m, "CREATE TABLE public.x (a int)");
	c_func(&m, 2624);
	c_parse(&m, "q1", "SELECT 1");
	c_bind(&m, "", "nope");
	c_data(&m, 'S', NULL, 0);
	s_client();
	s_op(OP_ANSWER, 0);
	c_parse(&m, "", "DELETE FROM public.t");
	c_data(&m, 'H', NULL, 0);
	s_client();
	s_op(OP_ANSWER, 0);
	c_data(&m, 'S', NULL, 0);
	s_client();
	s_op(OP_ANSWER, 0);
	c_data(&m, 'X', NULL, 0);
	s_client();
	s_save("policy-refusals");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0);
	c_query(&m, "BEGIN");
	c_query(&m, "DELETE FROM secret.keys WHERE id = 1");
	c_query(&m, "SELECT 1");
	c_query(&m, "ROLLBACK");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("policy-refusal-in-transaction");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0);
	for (int i = 0; i < 10; i++)
		c_query(&m, "DELETE FROM secret.keys WHERE id = 1");
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("policy-refusals-queued");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0);
	o_u8(&m, 'Q');
	o_be32(&m, 5000);
	o_bytes(&m, "SELECT ", 7);
	s_client();
	s_op(OP_ANSWER, 0);
	s_save("policy-statement-too-long");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 4);
	s_save("policy-setup-fails");

	s_begin(0);
	s_login(U_Q);
	m_rowdesc(&m, 1, col);
	m_datarow(&m, 1, one);
	m_rfq(&m, 'I');
	s_server();
	s_save("policy-setup-wrong-row");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0);
	s_op(OP_NEW_CLIENT, 0);
	s_op(OP_STARTUP, U_Q);
	s_op(OP_NEW_CLIENT, 0);
	s_op(OP_STARTUP, U_Q);
	s_save("policy-max-sessions");

	s_begin(0);
	s_op(OP_STARTUP, U_Q | 8);
	s_save("policy-startup-options");

	s_begin(0);
	s_login(U_W);
	s_op(OP_ANSWER, 0);
	s_op(OP_PUMP, 1);
	s_op(OP_TICK, 1);
	s_op(OP_TICK, 14);
	s_save("policy-catalog-wait");

	/* malformed messages, both ways */
	s_begin(0);
	s_login(U_T);
	o_u8(&m, 'Q');
	o_be32(&m, 0x7fffffff);
	s_client();
	s_save("client-length-oversized");

	s_begin(0);
	s_login(U_T);
	o_u8(&m, 'Q');
	o_be32(&m, 3);
	s_client();
	s_save("client-length-short");

	s_begin(0);
	s_login(U_T);
	c_data(&m, 'z', "x", 1);
	s_client();
	s_save("client-type-unknown");

	s_begin(0);
	s_login(U_T);
	o_u8(&m, 'd');
	o_be32(&m, 100000);
	o_bytes(&m, "streamed", 8);
	s_client();
	s_save("client-streamed");

	s_begin(0);
	s_login(U_T);
	o_u8(&m, 'T');
	o_be32(&m, 2);
	s_server();
	s_save("server-length-short");

	s_begin(0);
	s_login(U_T);
	o_u8(&m, 'S');
	o_be32(&m, 9000);
	s_server();
	s_save("server-parameter-oversized");

	s_begin(0);
	s_login(U_Q);
	s_op(OP_ANSWER, 0);
	m_param(&m, "client_encoding", "SJIS");
	s_server();
	s_save("server-encoding-refused");

	s_begin(0);
	s_op(OP_STARTUP, U_Q);
	s_op(OP_PREAMBLE, 4 | 8);
	s_save("server-scs-off");

	s_begin(0);
	s_login(U_T);
	m_key(&m, 1, 2);
	m.p[4] = 9;
	m_rfq(&m, 'I');
	m.p[m.n - 2] = 6;
	s_server();
	s_save("server-malformed-key-rfq");

	s_begin(0);
	s_login(U_T);
	o_u8(&m, 'D');
	o_be32(&m, 200000);
	o_bytes(&m, "big row", 7);
	s_server();
	s_save("server-streamed");

	/* startup packets */
	static const struct {
		const char *name;
		uint32_t len, version;
		const char *params;
		size_t plen;
	} bad[] = {
	    {"startup-short", 4, 0, "", 0},
	    {"startup-too-long", 5000, PW_PROTO_V3, "", 0},
	    {"startup-protocol-2", 0, 0x20000, "user\0t\0\0", 9},
	    {"startup-protocol-3.9", 0, 0x30009, "user\0t\0_pq_.x\0y\0\0", 17},
	    {"startup-no-user", 0, PW_PROTO_V3, "database\0app\0\0", 14},
	    {"startup-unterminated", 0, PW_PROTO_V3, "user\0t", 6},
	    {"startup-replication", 0, PW_PROTO_V3, "user\0t\0replication\0true\0\0", 25},
	    {"startup-bad-options", 0, PW_PROTO_V3, "user\0q\0database\0app\0options\0-c\0\0", 32},
	    {"startup-scs-off", 0, PW_PROTO_V3,
	     "user\0q\0database\0app\0standard_conforming_strings\0off\0\0", 52},
	    {"startup-role", 0, PW_PROTO_V3, "user\0q\0database\0app\0role\0postgres\0\0", 35},
	    {"startup-no-identity", 0, PW_PROTO_V3, "user\0nobody\0\0", 13},
	    {"startup-database-elsewhere", 0, PW_PROTO_V3, "user\0q\0database\0other\0\0", 23},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		s_begin(0);
		o_be32(&m, bad[i].len ? bad[i].len : (uint32_t)(8 + bad[i].plen));
		o_be32(&m, bad[i].version);
		o_bytes(&m, bad[i].params, bad[i].plen);
		s_client();
		s_op(OP_TICK, 15);
		s_save(bad[i].name);
	}

	/* time, ends, stops */
	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_TICK, 3);
	s_save("timeout-upstream-login");

	s_begin(0);
	c_special(&m, PW_PROTO_V3, 0, 0, false);
	m.p[3] = 40;
	s_client();
	s_op(OP_TICK, 14);
	s_save("timeout-client-startup");

	s_begin(0);
	s_login(U_T);
	s_op(OP_STOP, 0);
	s_save("stop-idle");

	s_begin(0);
	s_login(U_T);
	c_query(&m, "SELECT 1");
	s_client();
	s_op(OP_STOP, 0);
	s_op(OP_ANSWER, 0);
	s_op(OP_STOP, 1);
	s_save("stop-running");

	s_begin(0);
	s_op(OP_STARTUP, U_T);
	s_op(OP_STOP, 1);
	s_save("stop-terminate-during-login");

	s_begin(0);
	s_login(U_T);
	c_query(&m, "SELECT pg_sleep(10)");
	s_client();
	m_rowdesc(&m, 1, col);
	s_server();
	s_op(OP_CLIENT_CLOSE, 8); /* unread data: a reset */
	s_op(OP_PUMP, 0);
	s_save("client-gone-mid-statement");

	s_begin(0);
	s_login(U_T);
	c_query(&m, "SELECT pg_sleep(10)");
	s_client();
	s_op(OP_CLIENT_CLOSE, 4); /* half-closed */
	s_op(OP_ANSWER, 0);
	s_op(OP_SERVER_CLOSE, 4);
	s_op(OP_TICK, 3);
	s_save("client-half-closed");

	s_begin(0);
	s_login(U_T);
	s_op(OP_SERVER_CLOSE, 0);
	s_save("server-closed");

	s_begin(16);
	s_op(OP_STARTUP, U_T);
	s_save("steered-unix");

	s_begin(16 | 1 << 1);
	s_op(OP_STARTUP, U_T);
	s_save("steered-inet");

	s_begin(5 << 1);
	s_op(OP_STARTUP, U_J);
	s_op(OP_NEW_CLIENT, 3 | 8);
	s_op(OP_STARTUP, U_T);
	s_save("peers-inet6");

	o_free(&seed);
	o_free(&m);
}
