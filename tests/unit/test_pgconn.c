/* Tests for user/pgconn.c and the server side of user/jit.c against a live PostgreSQL (and a
 * scripted fake server in a thread for what a real one never does: a bad SCRAM signature,
 * GSSAPI, broken framing...). Skipped unless PGWARD_PGCONN_PORT is set. Environment:
 *   PGWARD_PGCONN_PORT     TCP port of the server on PGWARD_PGCONN_HOST (default 127.0.0.1)
 *   PGWARD_PGCONN_USER     a superuser (default postgres): creates the test roles and database
 *   PGWARD_PGCONN_PWFILE   its password file (optional)
 *   PGWARD_PGCONN_CA       optional: the CA of the server certificate (verify-ca/-full tests)
 *   PGWARD_PGCONN_SOCKDIR  optional: the unix socket directory (unix socket test)
 *   PGWARD_PGCONN_PWDIR    optional: a directory with pgward_scram.pw, pgward_md5.pw and
 *                          pgward_clear.pw for the LOGIN roles of those names, whose pg_hba
 *                          methods are scram-sha-256, md5 and password (scripts/pgtmp.sh)
 * With pgtmp: PGWARD_PGCONN_PORT=$PGTMP_PORT PGWARD_PGCONN_USER=postgres
 *   PGWARD_PGCONN_PWFILE=$PGTMP_DIR/postgres.pw PGWARD_PGCONN_CA=$PGTMP_CA
 *   PGWARD_PGCONN_SOCKDIR=$PGTMP_SOCKDIR PGWARD_PGCONN_PWDIR=$PGTMP_DIR */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgward/auth.h"
#include "pgward/jit.h"
#include "pgward/log.h"
#include "pgward/pgconn.h"
#include "pgward/proto.h"
#include "pgward/runtime.h"
#include "check.h"

#define TEST_DB     "pgw jit \"db\""
#define TEST_DB_SQL "\"pgw jit \"\"db\"\"\""
#define TEST_DB_ENC "pgw%20jit%20\"db\""
#define SCHEMA_SQL  "\"My \"\"Schema\"\"\""
#define ADMIN       "pgw_jit_admin"
#define READER      "pgw_jit_reader"
#define FAKE_PW     "pencil"
#define T_MS        5000

static struct pw_runtime *rt;
static char dir[] = "/tmp/pgward-pgconn-XXXXXX";
static const char *pwdir, *ca, *sockdir;

static int64_t ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int up(const char *name)
{
	for (int i = 0; i < rt->cfg->n_upstreams; i++)
		if (strcmp(rt->cfg->upstreams[i].name, name) == 0)
			return i;
	fprintf(stderr, "no upstream %s\n", name);
	exit(2);
}

static struct pw_pgconn *open_as(const char *upstream, const char *db, char *err, size_t errlen)
{
	err[0] = 0; /* pw_pgconn_open writes it only on failure */
	return pw_pgconn_open(rt, up(upstream), db, T_MS, err, errlen);
}

/* ---- collecting rows ---- */

struct res {
	int rows, ncols;
	char v[8][4][256]; /* first 8 rows, 4 columns; "<NULL>" for NULL */
	size_t len00;      /* length of row 0 column 0 */
	long long sum0;    /* sum of column 0 as integers */
};

static void grab(void *arg, int ncols, const char *const *vals)
{
	struct res *r = arg;
	r->ncols = ncols;
	if (r->rows == 0 && ncols > 0 && vals[0])
		r->len00 = strlen(vals[0]);
	if (ncols > 0 && vals[0])
		r->sum0 += atoll(vals[0]);
	for (int i = 0; r->rows < 8 && i < ncols && i < 4; i++)
		snprintf(r->v[r->rows][i], sizeof(r->v[0][0]), "%s", vals[i] ? vals[i] : "<NULL>");
	r->rows++;
}

/* Runs sql; returns the first value of the first row ("" when none; "<ERR>" on error). */
static const char *val(struct pw_pgconn *c, const char *sql)
{
	static struct res r;
	char err[512];
	memset(&r, 0, sizeof(r));
	if (pw_pgconn_exec(c, sql, grab, &r, err, sizeof(err)) < 0) {
		printf("# %s: %s\n", sql, err);
		return "<ERR>";
	}
	return r.rows ? r.v[0][0] : "";
}

static bool run(struct pw_pgconn *c, const char *fmt, ...)
{
	char sql[4096], err[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (pw_pgconn_exec(c, sql, NULL, NULL, err, sizeof(err)) < 0) {
		printf("# %s: %s\n", sql, err);
		return false;
	}
	return true;
}

/* ---- a scripted fake server ---- */

enum fake_mode {
	FAKE_TRUST,
	FAKE_SCRAM_OK,
	FAKE_SCRAM_BADSIG,
	FAKE_SCRAM_NOFINAL,
	FAKE_GSS,
	FAKE_BADLEN,
	FAKE_HUGE,
	FAKE_FATAL,
	FAKE_SILENT,
};
static volatile int fake_mode;
static int fake_lfd;

static bool rd(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void wr(int fd, const void *buf, size_t n)
{
	if (send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
		return;
}

static void msg(int fd, uint8_t type, const void *body, size_t len)
{
	uint8_t h[5];
	h[0] = type;
	pw_put_be32(h + 1, (uint32_t)(len + 4));
	wr(fd, h, 5);
	if (len)
		wr(fd, body, len);
}

static void auth(int fd, uint32_t code, const void *data, size_t len)
{
	uint8_t b[600];
	pw_put_be32(b, code);
	if (len)
		memcpy(b + 4, data, len);
	msg(fd, 'R', b, 4 + len);
}

/* A frontend message into buf (type, body); false on EOF. */
static bool rdmsg(int fd, uint8_t *type, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t h[5];
	if (!rd(fd, h, 5))
		return false;
	uint32_t l = pw_be32(h + 1);
	if (l < 4 || l - 4 > cap)
		return false;
	*type = h[0];
	*len = l - 4;
	return rd(fd, buf, *len);
}

static void ready(int fd)
{
	static const uint8_t key[8] = {0, 0, 0x10, 0x92, 1, 2, 3, 4};
	static const char ps[] = "server_version\0"
	                         "15.0";
	static const char notice[] = "SNOTICE\0VNOTICE\0C00000\0Mhello\0";
	msg(fd, 'R', "\0\0\0\0", 4);
	msg(fd, 'S', ps, sizeof(ps));
	msg(fd, 'N', notice, sizeof(notice));
	msg(fd, 'K', key, 8);
	msg(fd, 'Z', "I", 1);
}

/* Answers queries; true when the script says to hang up at once. */
static bool query_loop(int fd)
{
	uint8_t b[4096], t;
	size_t len;
	while (rdmsg(fd, &t, b, sizeof(b) - 1, &len) && t == 'Q') {
		b[len] = 0;
		const char *q = (const char *)b;
		if (strcmp(q, "rows") == 0) {
			/* RowDescription (contents unread by the client but the count), 2 rows */
			static const uint8_t rowdesc[] = {
			    0,   2, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			    'b', 0, 0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
			static const uint8_t r1[] = {0, 2, 0, 0, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff};
			static const uint8_t r2[] = {0, 2, 0, 0, 0, 2, 'b', 'c', 0, 0, 0, 0};
			msg(fd, 'T', rowdesc, sizeof(rowdesc));
			msg(fd, 'D', r1, sizeof(r1));
			static const char n[] = "SNOTICE\0Mx\0";
			msg(fd, 'N', n, sizeof(n));
			msg(fd, 'D', r2, sizeof(r2));
			msg(fd, 'C', "SELECT 2", 9);
			msg(fd, 'Z', "I", 1);
		} else if (strcmp(q, "badrow") == 0) {
			static const uint8_t bad[] = {0, 1, 0, 0, 0x10, 0, 'x'};
			msg(fd, 'T', "\0\1", 2);
			msg(fd, 'D', bad, sizeof(bad));
			msg(fd, 'Z', "I", 1);
		} else if (strcmp(q, "close") == 0) {
			return true;
		} else {
			msg(fd, 'I', NULL, 0);
			msg(fd, 'Z', "I", 1);
		}
	}
	return false;
}

static void scram(int fd, int mode)
{
	char vtext[256];
	struct pw_scram_verifier v;
	struct pw_scram_server s;
	uint8_t b[1024], t;
	char out[PW_SCRAM_MSG_MAX];
	size_t len, outlen;
	pw_scram_make_verifier(FAKE_PW, 4096, NULL, 0, vtext, sizeof(vtext));
	pw_scram_parse_verifier(vtext, &v, NULL, 0);
	memset(&s, 0, sizeof(s));
	static const char mechs[] = "SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0";
	auth(fd, PW_AUTH_REQ_SASL, mechs, sizeof(mechs));
	if (!rdmsg(fd, &t, b, sizeof(b), &len) || t != 'p' || len < 18 ||
	    strcmp((char *)b, "SCRAM-SHA-256") != 0)
		return;
	if (pw_scram_server_first(&s, &v, b + 18, pw_be32(b + 14), NULL, out, sizeof(out), &outlen,
	                          NULL, 0) != PW_AUTH_OK)
		return;
	auth(fd, PW_AUTH_REQ_SASL_CONT, out, outlen);
	if (!rdmsg(fd, &t, b, sizeof(b), &len) || t != 'p')
		return;
	if (pw_scram_server_final(&s, b, len, out, sizeof(out), &outlen, NULL, 0) != PW_AUTH_OK) {
		static const char e[] = "SFATAL\0C28P01\0Mpassword authentication failed\0";
		msg(fd, 'E', e, sizeof(e));
		return;
	}
	if (mode == FAKE_SCRAM_BADSIG)
		out[5] = out[5] == 'A' ? 'B' : 'A'; /* one base64 character of the signature */
	if (mode != FAKE_SCRAM_NOFINAL)
		auth(fd, PW_AUTH_REQ_SASL_FIN, out, outlen);
	ready(fd);
	(void)query_loop(fd);
}

static void fake_session(int fd, int mode)
{
	uint8_t b[1024];
	uint32_t len;
	for (;;) {
		if (!rd(fd, b, 4))
			return;
		len = pw_be32(b);
		if (len < 8 || len > sizeof(b) || !rd(fd, b + 4, len - 4))
			return;
		if (pw_be32(b + 4) == PW_SSL_REQUEST) {
			wr(fd, "N", 1);
			continue;
		}
		break;
	}
	switch (mode) {
	case FAKE_TRUST:
		ready(fd);
		if (query_loop(fd))
			return; /* hang up */
		break;
	case FAKE_SCRAM_OK:
	case FAKE_SCRAM_BADSIG:
	case FAKE_SCRAM_NOFINAL:
		scram(fd, mode);
		break;
	case FAKE_GSS:
		auth(fd, PW_AUTH_REQ_GSS, NULL, 0);
		break;
	case FAKE_BADLEN:
		wr(fd, "R\0\0\0\2", 5);
		break;
	case FAKE_HUGE:
		wr(fd, "R\x7f\xff\xff\xff", 5);
		break;
	case FAKE_FATAL: {
		static const char e[] = "SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0";
		msg(fd, 'E', e, sizeof(e));
		break;
	}
	case FAKE_SILENT:
		rd(fd, b, 1); /* until the client gives up */
		break;
	}
	/* wait for the client to close, so that it reads everything first */
	while (read(fd, b, sizeof(b)) > 0)
		;
}

static void *fake_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(fake_lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		fake_session(fd, fake_mode);
		close(fd);
	}
}

static int listen_local(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0) {
		perror("fake server");
		exit(2);
	}
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin_port);
}

/* ---- set-up ---- */

static char admin_pw[64];

static const char *file(const char *name, const char *content)
{
	static char paths[16][PATH_MAX];
	static int n;
	char *p = paths[n++ % 16];
	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (!f || fputs(content, f) < 0 || fclose(f) != 0) {
		perror(p);
		exit(2);
	}
	chmod(p, 0600);
	return p;
}

static bool readable(const char *d, const char *name, char *path)
{
	snprintf(path, PATH_MAX, "%s/%s", d, name);
	return access(path, R_OK) == 0;
}

static void load_runtime(void)
{
	const char *host =
	    getenv("PGWARD_PGCONN_HOST") ? getenv("PGWARD_PGCONN_HOST") : "127.0.0.1";
	const char *port = getenv("PGWARD_PGCONN_PORT");
	const char *user = getenv("PGWARD_PGCONN_USER") ? getenv("PGWARD_PGCONN_USER") : "postgres";
	const char *pwfile = getenv("PGWARD_PGCONN_PWFILE");
	char pwkey[PATH_MAX + 32] = "", p[PATH_MAX];
	if (pwfile && *pwfile)
		snprintf(pwkey, sizeof(pwkey), ",\"password_file\":\"%s\"", pwfile);

	/* the JIT administrator: a CREATEROLE login, not a superuser */
	FILE *u = fopen("/dev/urandom", "r");
	unsigned char rnd[12];
	if (!u || fread(rnd, 1, sizeof(rnd), u) != sizeof(rnd))
		exit(2);
	fclose(u);
	for (int i = 0; i < 12; i++)
		sprintf(admin_pw + 2 * i, "%02x", rnd[i]);
	const char *admin_pwfile = file("admin.pw", admin_pw);

	int closed = listen_local(), closed_port = port_of(closed);
	close(closed); /* nobody listens there now */

	char *json = NULL;
	size_t jlen = 0;
	FILE *j = open_memstream(&json, &jlen);
#define SRV(name, extra)                                                                           \
	fprintf(j, "\"%s\":{\"host\":\"%s\",\"port\":%s,\"user\":\"%s\"%s%s},", name, host, port,  \
	        user, pwkey, extra)
	fprintf(j, "{\"listen\":[{\"port\":6432}],\"upstreams\":{");
	SRV("su", "");
	SRV("plain", ",\"sslmode\":\"disable\"");
	fprintf(j,
	        "\"badpw\":{\"host\":\"%s\",\"port\":%s,\"user\":\"%s\",\"password_file\":\"%s\"},",
	        host, port, user, file("bad.pw", "wrong"));
	fprintf(j,
	        "\"admin\":{\"host\":\"%s\",\"port\":%s,\"user\":\"" ADMIN
	        "\",\"password_file\":\"%s\"},",
	        host, port, admin_pwfile);
	if (ca) {
		fprintf(j,
		        "\"verify\":{\"host\":\"%s\",\"port\":%s,\"user\":\"%s\"%s,"
		        "\"sslmode\":\"verify-full\",\"ca_file\":\"%s\"},",
		        host, port, user, pwkey, ca);
		fprintf(j,
		        "\"verify_name\":{\"host\":\"localhost\",\"port\":%s,\"user\":\"%s\"%s,"
		        "\"sslmode\":\"verify-full\",\"ca_file\":\"%s\"},",
		        port, user, pwkey, ca);
		if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
			fprintf(j,
			        "\"wrong_ca\":{\"host\":\"%s\",\"port\":%s,\"user\":\"%s\"%s,"
			        "\"sslmode\":\"verify-ca\",\"ca_file\":"
			        "\"/etc/ssl/certs/ca-certificates.crt\"},",
			        host, port, user, pwkey);
	}
	if (sockdir)
		fprintf(j, "\"unix\":{\"unix_dir\":\"%s\",\"port\":%s,\"user\":\"%s\"%s},", sockdir,
		        port, user, pwkey);
	if (pwdir && readable(pwdir, "pgward_scram.pw", p))
		fprintf(j,
		        "\"scram\":{\"host\":\"%s\",\"port\":%s,\"user\":\"pgward_scram\","
		        "\"password_file\":\"%s\"},",
		        host, port, p);
	if (pwdir && readable(pwdir, "pgward_md5.pw", p))
		fprintf(j,
		        "\"md5\":{\"host\":\"%s\",\"port\":%s,\"user\":\"pgward_md5\","
		        "\"password_file\":\"%s\",\"sslmode\":\"disable\"},",
		        host, port, p);
	if (pwdir && readable(pwdir, "pgward_clear.pw", p)) {
		fprintf(j,
		        "\"clear_tls\":{\"host\":\"%s\",\"port\":%s,\"user\":\"pgward_clear\","
		        "\"password_file\":\"%s\",\"sslmode\":\"require\"},",
		        host, port, p);
		fprintf(j,
		        "\"clear_plain\":{\"host\":\"%s\",\"port\":%s,\"user\":\"pgward_clear\","
		        "\"password_file\":\"%s\",\"sslmode\":\"disable\"},",
		        host, port, p);
		fprintf(j,
		        "\"clear_allowed\":{\"host\":\"%s\",\"port\":%s,\"user\":\"pgward_clear\","
		        "\"password_file\":\"%s\",\"sslmode\":\"disable\","
		        "\"allow_cleartext\":true},",
		        host, port, p);
	}
	int fp = port_of(fake_lfd);
	fprintf(j,
	        "\"fake\":{\"host\":\"127.0.0.1\",\"port\":%d,\"user\":\"fake\",\"password_file\":"
	        "\"%s\",\"sslmode\":\"disable\"},",
	        fp, file("fake.pw", FAKE_PW));
	fprintf(j, "\"fake_nopw\":{\"host\":\"127.0.0.1\",\"port\":%d,\"user\":\"fake\"},", fp);
	fprintf(j,
	        "\"fake_req\":{\"host\":\"localhost\",\"port\":%d,\"user\":\"fake\","
	        "\"sslmode\":\"require\"},",
	        fp);
	fprintf(j, "\"closed\":{\"host\":\"127.0.0.1\",\"port\":%d,\"user\":\"x\"}", closed_port);
	fprintf(j, "},\"identities\":[{\"name\":\"pgw_test_jit\",\"auth\":\"trust\","
	           "\"upstream\":\"admin\",\"jit_role\":{\"member_of\":[\"" READER "\"],"
	           "\"grants\":[{\"privileges\":[\"SELECT\",\"insert\"],"
	           "\"table\":\"My \\\"Schema\\\".Order Items\"}]}}]}");
	fclose(j);
	const char *path = file("pgward.json", json);
	free(json);
	char err[1024];
	rt = pw_runtime_load(path, err, sizeof(err));
	if (!rt) {
		printf("Bail out! config: %s\n", err);
		exit(1);
	}
}

/* Drops what an earlier run may have left (the cluster may be reused). */
static void clean(struct pw_pgconn *su)
{
	struct res r = {0};
	char err[512];
	run(su, "DROP DATABASE IF EXISTS " TEST_DB_SQL " WITH (FORCE)");
	pw_pgconn_exec(
	    su,
	    "SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgward\\_jit\\_%' AND "
	    "(pg_catalog.shobj_description(oid, 'pg_authid') LIKE '%identity=pgw\\_test%' "
	    "OR pg_catalog.shobj_description(oid, 'pg_authid') = 'hello')",
	    grab, &r, err, sizeof(err));
	for (int i = 0; i < r.rows && i < 8; i++)
		run(su, "DROP ROLE \"%s\"", r.v[i][0]);
	run(su, "DROP ROLE IF EXISTS " ADMIN);
	run(su, "DROP ROLE IF EXISTS " READER);
}

/* ---- tests ---- */

static void test_basics(void)
{
	char err[512] = "";
	struct pw_pgconn *c = open_as("su", "postgres", err, sizeof(err));
	CHECK(c != NULL, "connect (sslmode prefer, password from file) %s", err);
	if (!c)
		exit(1);
	CHECK(pw_pgconn_backend_pid(c) != 0, "BackendKeyData gives the backend pid");
	char pid[16];
	snprintf(pid, sizeof(pid), "%u", pw_pgconn_backend_pid(c));
	CHECK(strcmp(val(c, "SELECT pg_backend_pid()"), pid) == 0, "it is the real pid");
	CHECK(strcmp(val(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t") == 0,
	      "prefer: TLS in use");
	CHECK(strcmp(val(c, "SELECT current_setting('application_name')"), "pgward-janitor") == 0,
	      "application_name pgward-janitor");
	CHECK(strcmp(val(c, "SHOW client_encoding"), "UTF8") == 0, "client_encoding UTF8");

	struct res r = {0};
	int rc = pw_pgconn_exec(c, "SELECT 1, NULL, 'x', ''", grab, &r, err, sizeof(err));
	CHECK(rc == 0 && r.rows == 1 && r.ncols == 4, "one row of 4 columns");
	CHECK(strcmp(r.v[0][0], "1") == 0 && strcmp(r.v[0][1], "<NULL>") == 0 &&
	          strcmp(r.v[0][2], "x") == 0 && strcmp(r.v[0][3], "") == 0,
	      "values as text, SQL NULL as a NULL pointer, '' as an empty string");

	memset(&r, 0, sizeof(r));
	rc = pw_pgconn_exec(c, "SELECT g FROM generate_series(1, 20000) g", grab, &r, err,
	                    sizeof(err));
	CHECK(rc == 0 && r.rows == 20000 && r.sum0 == 200010000LL, "20000 rows, all delivered");

	memset(&r, 0, sizeof(r));
	rc = pw_pgconn_exec(c, "SELECT 1; SELECT 2 UNION ALL SELECT 3", grab, &r, err, sizeof(err));
	CHECK(rc == 0 && r.rows == 2 && strcmp(r.v[0][0], "2") == 0 && strcmp(r.v[1][0], "3") == 0,
	      "two result sets: only the last one's rows");
	memset(&r, 0, sizeof(r));
	rc = pw_pgconn_exec(c, "SELECT 1; CREATE TEMP TABLE tt(x int)", grab, &r, err, sizeof(err));
	CHECK(rc == 0 && r.rows == 0, "last statement returns no rows: no rows (as PQexec)");

	memset(&r, 0, sizeof(r));
	rc = pw_pgconn_exec(c, "SELECT repeat('x', 3000000)", grab, &r, err, sizeof(err));
	CHECK(rc == 0 && r.len00 == 3000000, "a 3 MB value");

	rc = pw_pgconn_exec(c, "SELECT * FROM pgw_no_such_table", NULL, NULL, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "ERROR 42P01: ") && strstr(err, "pgw_no_such_table"),
	      "server error: SQLSTATE and message in err (%s)", err);
	CHECK(strcmp(val(c, "SELECT 42"), "42") == 0, "usable after a server error");

	rc = pw_pgconn_exec(c, "CREATE TABLE pgw_t1(x int); SELECT 1/0; CREATE TABLE pgw_t2(x int)",
	                    NULL, NULL, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "ERROR 22012: division by zero"),
	      "multi-statement, failing middle: its error (%s)", err);
	CHECK(strcmp(val(c, "SELECT count(*) FROM pg_class WHERE relname IN ('pgw_t1', 'pgw_t2')"),
	             "0") == 0,
	      "implicit transaction: the first statement rolled back, the third never ran");
	memset(&r, 0, sizeof(r));
	rc = pw_pgconn_exec(c, "SELECT 1; SELECT 1/0", grab, &r, err, sizeof(err));
	CHECK(rc == -1 && r.rows == 0, "no rows delivered when the query failed");

	CHECK(pw_pgconn_exec(c, "", NULL, NULL, err, sizeof(err)) == 0, "empty query");
	CHECK(pw_pgconn_exec(c, "DO $$BEGIN RAISE NOTICE 'n'; RAISE WARNING 'w'; END$$", NULL, NULL,
	                     err, sizeof(err)) == 0,
	      "notices and warnings are skipped");
	CHECK(pw_pgconn_exec(c, "COPY (SELECT g FROM generate_series(1,100) g) TO STDOUT", NULL,
	                     NULL, err, sizeof(err)) == 0,
	      "COPY TO STDOUT: data read and dropped");
	rc = pw_pgconn_exec(c, "COPY tt FROM STDIN", NULL, NULL, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "57014") && strcmp(val(c, "SELECT 7"), "7") == 0,
	      "COPY FROM STDIN refused with CopyFail, connection still usable (%s)", err);
	CHECK(strcmp(val(c, "SELECT 'Zürich 🐘'"), "Zürich 🐘") == 0, "UTF-8 both ways");
	pw_pgconn_close(c);
}

static void test_timeout(void)
{
	char err[512] = "";
	struct pw_pgconn *c = pw_pgconn_open(rt, up("su"), "postgres", 500, err, sizeof(err));
	CHECK(c != NULL, "connect with a 500 ms timeout");
	if (!c)
		return;
	int64_t t0 = ms();
	int rc =
	    pw_pgconn_exec(c, "SELECT pg_sleep(30), 'pgw-sleep'", NULL, NULL, err, sizeof(err));
	int64_t took = ms() - t0;
	CHECK(rc == -1 && strstr(err, "timed out") && took >= 450 && took < 3000,
	      "a query past the timeout fails in time (%lld ms: %s)", (long long)took, err);
	rc = pw_pgconn_exec(c, "SELECT 1", NULL, NULL, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "broken"), "then the connection is broken");
	pw_pgconn_close(c);

	/* the timed-out query was cancelled: it does not go on running */
	struct pw_pgconn *su = open_as("su", "postgres", err, sizeof(err));
	const char *n = "?";
	for (int i = 0; su && i < 40; i++) {
		n = val(su,
		        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query "
		        "LIKE '%pgw-sleep''' AND pid <> pg_backend_pid()");
		if (strcmp(n, "0") == 0)
			break;
		usleep(50 * 1000);
	}
	CHECK(strcmp(n, "0") == 0, "the server no longer runs the timed-out query");
	pw_pgconn_close(su);
}

static void test_logins(void)
{
	char err[512] = "";
	struct pw_pgconn *c;

	c = open_as("badpw", "postgres", err, sizeof(err));
	CHECK(!c && strstr(err, "28P01") && strstr(err, "upstream \"badpw\""),
	      "wrong password: 28P01, upstream named (%s)", err);
	c = open_as("su", "pgw_no_such_db", err, sizeof(err));
	CHECK(!c && strstr(err, "3D000"), "unknown database: 3D000 (%s)", err);
	c = open_as("closed", NULL, err, sizeof(err));
	CHECK(!c && strstr(err, "Connection refused"), "closed port: refused (%s)", err);

	c = open_as("plain", "postgres", err, sizeof(err));
	CHECK(c && strcmp(val(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"),
	                  "f") == 0,
	      "sslmode disable: no TLS %s", err);
	pw_pgconn_close(c);

	if (ca) {
		c = open_as("verify", "postgres", err, sizeof(err));
		CHECK(c && strcmp(val(c, "SELECT 1"), "1") == 0,
		      "verify-full against 127.0.0.1 (IP SAN) %s", err);
		pw_pgconn_close(c);
		c = open_as("verify_name", "postgres", err, sizeof(err));
		CHECK(c && strcmp(val(c, "SELECT ssl FROM pg_stat_ssl WHERE pid = "
		                         "pg_backend_pid()"),
		                  "t") == 0,
		      "verify-full against localhost (DNS SAN) %s", err);
		pw_pgconn_close(c);
		if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0) {
			c = open_as("wrong_ca", "postgres", err, sizeof(err));
			CHECK(!c && strstr(err, "TLS handshake failed") &&
			          strstr(err, "certificate"),
			      "verify-ca with a CA that did not sign: refused (%s)", err);
			pw_pgconn_close(c);
		}
	} else {
		printf("# skip: no PGWARD_PGCONN_CA, no verify-full tests\n");
	}
	if (sockdir) {
		c = open_as("unix", "postgres", err, sizeof(err));
		CHECK(c && strcmp(val(c, "SELECT inet_client_addr() IS NULL"), "t") == 0,
		      "unix socket %s", err);
		pw_pgconn_close(c);
	}
	if (!pwdir) {
		printf("# skip: no PGWARD_PGCONN_PWDIR, no md5/cleartext/scram role tests\n");
		return;
	}
	c = open_as("scram", "postgres", err, sizeof(err));
	CHECK(c && strcmp(val(c, "SELECT current_user"), "pgward_scram") == 0,
	      "SCRAM-SHA-256 login (server signature verified) %s", err);
	pw_pgconn_close(c);
	c = open_as("md5", "postgres", err, sizeof(err));
	CHECK(c && strcmp(val(c, "SELECT current_user"), "pgward_md5") == 0, "MD5 login %s", err);
	pw_pgconn_close(c);
	c = open_as("clear_tls", "postgres", err, sizeof(err));
	CHECK(c && strcmp(val(c, "SELECT current_user"), "pgward_clear") == 0,
	      "cleartext password over TLS (sslmode require) %s", err);
	pw_pgconn_close(c);
	c = open_as("clear_plain", "postgres", err, sizeof(err));
	CHECK(!c && strstr(err, "cleartext password over an unencrypted connection"),
	      "cleartext without TLS refused (%s)", err);
	c = open_as("clear_allowed", "postgres", err, sizeof(err));
	CHECK(c && strcmp(val(c, "SELECT current_user"), "pgward_clear") == 0,
	      "cleartext without TLS with allow_cleartext %s", err);
	pw_pgconn_close(c);
}

static struct pw_pgconn *fake(int mode, const char *upstream, char *err, size_t errlen)
{
	fake_mode = mode;
	err[0] = 0;
	return pw_pgconn_open(rt, up(upstream), NULL, 1000, err, errlen);
}

static void test_fake(void)
{
	char err[512] = "";
	struct pw_pgconn *c = fake(FAKE_TRUST, "fake_nopw", err, sizeof(err));
	CHECK(c != NULL && pw_pgconn_backend_pid(c) == 0x1092,
	      "trust login, ParameterStatus and NoticeResponse skipped %s", err);
	struct res r = {0};
	int rc = pw_pgconn_exec(c, "rows", grab, &r, err, sizeof(err));
	CHECK(rc == 0 && r.rows == 2 && strcmp(r.v[0][0], "a") == 0 &&
	          strcmp(r.v[0][1], "<NULL>") == 0 && strcmp(r.v[1][0], "bc") == 0 &&
	          strcmp(r.v[1][1], "") == 0,
	      "fake rows: a/NULL, bc/'' (NUL-terminated in place)");
	rc = pw_pgconn_exec(c, "badrow", grab, &r, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "malformed DataRow"), "a column length past the message (%s)",
	      err);
	CHECK(pw_pgconn_exec(c, "x", NULL, NULL, err, sizeof(err)) == -1 && strstr(err, "broken"),
	      "broken after a protocol violation");
	pw_pgconn_close(c);

	c = fake(FAKE_TRUST, "fake_nopw", err, sizeof(err));
	rc = c ? pw_pgconn_exec(c, "close", NULL, NULL, err, sizeof(err)) : 0;
	CHECK(rc == -1 && strstr(err, "connection lost"), "server gone mid-query (%s)", err);
	pw_pgconn_close(c);

	c = fake(FAKE_SCRAM_OK, "fake", err, sizeof(err));
	CHECK(c && pw_pgconn_exec(c, "rows", NULL, NULL, err, sizeof(err)) == 0,
	      "fake SCRAM with the right signature (PLUS offered, never used) %s", err);
	pw_pgconn_close(c);
	c = fake(FAKE_SCRAM_BADSIG, "fake", err, sizeof(err));
	CHECK(!c && strstr(err, "signature does not verify"), "SCRAM: bad server signature (%s)",
	      err);
	c = fake(FAKE_SCRAM_NOFINAL, "fake", err, sizeof(err));
	CHECK(!c && strstr(err, "without proving"),
	      "SCRAM: AuthenticationOk without the final (%s)", err);
	c = fake(FAKE_SCRAM_OK, "fake_nopw", err, sizeof(err));
	CHECK(!c && strstr(err, "none is configured"), "password asked, none configured (%s)", err);
	c = fake(FAKE_GSS, "fake", err, sizeof(err));
	CHECK(!c && strstr(err, "GSSAPI") && strstr(err, "not support"), "GSSAPI refused (%s)",
	      err);
	c = fake(FAKE_BADLEN, "fake", err, sizeof(err));
	CHECK(!c && strstr(err, "invalid message length 2"), "message length below 4 (%s)", err);
	c = fake(FAKE_HUGE, "fake", err, sizeof(err));
	CHECK(!c && strstr(err, "invalid message length"), "message length above 64 MiB (%s)", err);
	c = fake(FAKE_FATAL, "fake", err, sizeof(err));
	CHECK(!c && strstr(err, "refused the login: FATAL 28000: no pg_hba.conf entry"),
	      "FATAL at login (%s)", err);
	c = fake(FAKE_TRUST, "fake_req", err, sizeof(err));
	CHECK(!c && strstr(err, "does not support SSL, but sslmode is require"),
	      "sslmode require, server says N (%s)", err);
	int64_t t0 = ms();
	c = fake(FAKE_SILENT, "fake", err, sizeof(err));
	int64_t took = ms() - t0;
	CHECK(!c && strstr(err, "timed out") && took >= 900 && took < 3000,
	      "a silent server: login timeout (%lld ms)", (long long)took);
}

/* ---- JIT roles on a real server ---- */

static const char *role_count(struct pw_pgconn *su, const char *role)
{
	char q[512];
	snprintf(q, sizeof(q), "SELECT count(*) FROM pg_roles WHERE rolname = '%s'", role);
	return val(su, q);
}

static bool wait_drained(int timeout_ms)
{
	pw_jit_stop(timeout_ms);
	int queued;
	pw_jit_stats(NULL, NULL, &queued);
	return queued == 0;
}

static void test_jit(struct pw_pgconn *su)
{
	char err[512] = "", sql[8192], role[PW_NAME_MAX], q[1024];
	const struct pw_identity *id = &rt->cfg->identities[0];

	/* the administrator owns the schema and its tables, so it can grant on them */
	bool ok = run(su, "CREATE ROLE " ADMIN " LOGIN CREATEROLE PASSWORD '%s'", admin_pw) &&
	          run(su, "CREATE ROLE " READER " NOLOGIN") &&
	          run(su, "CREATE DATABASE " TEST_DB_SQL);
	struct pw_pgconn *dsu = open_as("su", TEST_DB, err, sizeof(err));
	ok = ok && dsu &&
	     run(dsu, "CREATE SCHEMA " SCHEMA_SQL " AUTHORIZATION " ADMIN
	              "; CREATE TABLE public.reader_only(x int); INSERT INTO public.reader_only "
	              "VALUES (5); GRANT SELECT ON public.reader_only TO " READER);
	struct pw_pgconn *a = open_as("admin", TEST_DB, err, sizeof(err));
	ok = ok && a &&
	     run(a, "CREATE TABLE " SCHEMA_SQL ".\"Order Items\"(id int); INSERT INTO " SCHEMA_SQL
	            ".\"Order Items\" VALUES (1), (2); CREATE TABLE " SCHEMA_SQL ".secret(x int)");
	CHECK(ok, "JIT fixtures: a CREATEROLE login owning a schema, a database %s", err);
	if (!ok)
		return;
	CHECK(strcmp(val(a, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "f") ==
	          0,
	      "the JIT login is not a superuser");

	/* session 1: set up on the session's connection, dropped while it still runs */
	pw_jit_role_name(0xabc, role);
	int n = pw_jit_setup_sql(id, role, TEST_DB, sql, sizeof(sql));
	CHECK(n > 0, "setup SQL from the loaded identity");
	CHECK(pw_pgconn_exec(a, sql, NULL, NULL, err, sizeof(err)) == 0,
	      "setup script runs as one query by a CREATEROLE login (%s)", err);
	CHECK(strcmp(val(a, "SELECT current_user"), role) == 0, "SET ROLE applied: current_user");
	CHECK(strcmp(val(a, "SELECT session_user"), ADMIN) == 0, "session_user is still the login");
	CHECK(strcmp(val(a, "SELECT count(*) FROM " SCHEMA_SQL ".\"Order Items\""), "2") == 0,
	      "granted SELECT on the quoted table works");
	CHECK(run(a, "INSERT INTO " SCHEMA_SQL ".\"Order Items\" VALUES (3)"),
	      "granted INSERT works");
	int rc =
	    pw_pgconn_exec(a, "SELECT * FROM " SCHEMA_SQL ".secret", NULL, NULL, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "42501"), "a table not granted: 42501 (%s)", err);
	rc = pw_pgconn_exec(a, "DELETE FROM " SCHEMA_SQL ".\"Order Items\"", NULL, NULL, err,
	                    sizeof(err));
	CHECK(rc == -1 && strstr(err, "42501"), "a privilege not granted: 42501");
	CHECK(strcmp(val(a, "SELECT x FROM public.reader_only"), "5") == 0,
	      "member_of: the reader role's privilege applies");
	snprintf(
	    q, sizeof(q),
	    "SELECT rolcanlogin::text || ' ' || rolsuper::text || ' ' || "
	    "pg_catalog.shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = '%s'",
	    role);
	char want[512];
	snprintf(want, sizeof(want),
	         "false false pgward-jit host=%s pid=%ld start=", pw_jit_host_id(), (long)getpid());
	const char *cm = val(su, q);
	CHECK(strncmp(cm, want, strlen(want)) == 0 &&
	          strstr(cm, " db=" TEST_DB_ENC " identity=pgw_test_jit"),
	      "NOLOGIN, and the comment names host, pid, database: %s", cm);

	uint64_t done0, done, failed0, failed;
	pw_jit_stats(&done0, &failed0, NULL);
	pw_jit_drop(rt, up("admin"), TEST_DB, role, pw_pgconn_backend_pid(a));
	CHECK(wait_drained(10000), "janitor drained");
	pw_jit_stats(&done, &failed, NULL);
	CHECK(done == done0 + 1 && failed == failed0, "one drop done");
	CHECK(strcmp(role_count(su, role), "0") == 0, "role gone from pg_roles");
	snprintf(q, sizeof(q), "SELECT count(*) FROM pg_stat_activity WHERE pid = %u",
	         pw_pgconn_backend_pid(a));
	CHECK(strcmp(val(su, q), "0") == 0,
	      "the session's backend, still connected, was terminated and waited for");
	rc = pw_pgconn_exec(a, "SELECT 1", NULL, NULL, err, sizeof(err));
	CHECK(rc == -1, "the session's connection is dead (%s)", err);
	pw_pgconn_close(a);

	/* session 2: closed normally, pid 0 */
	pw_jit_role_name(0xabd, role);
	a = open_as("admin", TEST_DB, err, sizeof(err));
	n = pw_jit_setup_sql(id, role, TEST_DB, sql, sizeof(sql));
	CHECK(a && n > 0 && pw_pgconn_exec(a, sql, NULL, NULL, err, sizeof(err)) == 0 &&
	          strcmp(role_count(su, role), "1") == 0,
	      "second session's role exists %s", err);
	pw_pgconn_close(a);
	pw_jit_drop(rt, up("admin"), TEST_DB, role, 0);
	pw_jit_drop(rt, up("admin"), TEST_DB, "pgward_jit_never_existed", 0);
	CHECK(wait_drained(10000), "janitor drained again");
	pw_jit_stats(&done, &failed, NULL);
	CHECK(done == done0 + 3 && failed == failed0 && strcmp(role_count(su, role), "0") == 0,
	      "dropped after a clean end; a role already gone counts as dropped");

	/* setup failure is all or nothing: nothing is left behind */
	pw_jit_role_name(0xabe, role);
	struct pw_identity bad = *id;
	struct pw_grant g = id->policy.grants[0];
	snprintf(g.table, sizeof(g.table), "no such table");
	bad.policy.grants = &g;
	a = open_as("admin", TEST_DB, err, sizeof(err));
	n = pw_jit_setup_sql(&bad, role, TEST_DB, sql, sizeof(sql));
	rc = a ? pw_pgconn_exec(a, sql, NULL, NULL, err, sizeof(err)) : 0;
	CHECK(rc == -1 && strstr(err, "42P01") && strcmp(role_count(su, role), "0") == 0 &&
	          strcmp(val(a, "SELECT current_user"), ADMIN) == 0,
	      "a failing setup leaves no role and no SET ROLE (%s)", err);
	pw_pgconn_close(a);
	pw_pgconn_close(dsu);
}

/* A role as a dead (or live, or foreign) pgwardd would have left it, made by the JIT login. */
static bool fake_role(struct pw_pgconn *a, const char *role, const char *host, long pid,
                      unsigned long long start, unsigned long long pidns, const char *db)
{
	/* a role whose database is gone has no privileges left anywhere */
	bool grant = !db || strcmp(db, TEST_DB_ENC) == 0;
	char c[512];
	if (host)
		snprintf(c, sizeof(c),
		         "pgward-jit host=%s pid=%ld start=%llu pidns=%llu db=%s "
		         "identity=pgw_test_fake",
		         host, pid, start, pidns, db);
	else
		snprintf(c, sizeof(c), "hello");
	return run(a,
	           "CREATE ROLE \"%s\" NOLOGIN; COMMENT ON ROLE \"%s\" IS '%s'; GRANT \"%s\" TO "
	           "CURRENT_USER",
	           role, role, c, role) &&
	       (!grant || run(a, "GRANT SELECT ON " SCHEMA_SQL ".\"Order Items\" TO \"%s\"", role));
}

static unsigned long long my_start(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	unsigned long long s = 0;
	char *p = strrchr(buf, ')');
	if (p)
		sscanf(
		    p + 2,
		    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
		    "%llu",
		    &s);
	return s;
}

static void test_sweep(struct pw_pgconn *su)
{
	char err[512] = "", stale[PW_NAME_MAX], reused[PW_NAME_MAX], gonedb[PW_NAME_MAX];
	char foreign[PW_NAME_MAX], live[PW_NAME_MAX], otherns[PW_NAME_MAX], hello[PW_NAME_MAX];
	const char *h = pw_jit_host_id();
	const char *other = strcmp(h, "00000000") ? "00000000" : "11111111";
	struct stat st;
	unsigned long long ns = stat("/proc/self/ns/pid", &st) == 0 ? st.st_ino : 0;
	unsigned long long start = my_start();
	snprintf(stale, sizeof(stale), "pgward_jit_%s_deadbeef_1", h);
	snprintf(reused, sizeof(reused), "pgward_jit_%s_deadbeef_2", h);
	snprintf(gonedb, sizeof(gonedb), "pgward_jit_%s_deadbeef_3", h);
	snprintf(foreign, sizeof(foreign), "pgward_jit_%s_deadbeef_4", other);
	snprintf(live, sizeof(live), "pgward_jit_%s_deadbeef_5", h);
	snprintf(otherns, sizeof(otherns), "pgward_jit_%s_deadbeef_6", h);
	snprintf(hello, sizeof(hello), "pgward_jit_%s_deadbeef_7", h);

	struct pw_pgconn *a = open_as("admin", TEST_DB, err, sizeof(err));
	bool ok = a && fake_role(a, stale, h, 999999999, 12345, ns, TEST_DB_ENC) &&
	          fake_role(a, reused, h, (long)getpid(), start + 1, ns, TEST_DB_ENC) &&
	          fake_role(a, gonedb, h, 999999999, 1, ns, "pgw_gone_db") &&
	          fake_role(a, foreign, other, 999999999, 1, ns, TEST_DB_ENC) &&
	          fake_role(a, live, h, (long)getpid(), start, ns, TEST_DB_ENC) &&
	          fake_role(a, otherns, h, 999999999, 1, ns + 1, TEST_DB_ENC) &&
	          fake_role(a, hello, NULL, 0, 0, 0, NULL);
	pw_pgconn_close(a);
	CHECK(ok && start > 0 && ns > 0, "sweep fixtures: 7 roles named like JIT roles %s", err);

	uint64_t done0, done;
	pw_jit_stats(&done0, NULL, NULL);
	CHECK(pw_jit_start(rt) == 0, "pw_jit_start");
	CHECK(wait_drained(15000), "sweep finished within the stop timeout");
	pw_jit_stats(&done, NULL, NULL);
	CHECK(done == done0 + 3, "three roles swept (%llu)", (unsigned long long)(done - done0));
	CHECK(strcmp(role_count(su, stale), "0") == 0,
	      "dead pid on this host: dropped (DROP OWNED BY in the comment's database)");
	CHECK(strcmp(role_count(su, reused), "0") == 0,
	      "live pid with another start time (reused pid): dropped");
	CHECK(strcmp(role_count(su, gonedb), "0") == 0, "database gone: dropped all the same");
	CHECK(strcmp(role_count(su, foreign), "1") == 0, "another host's role: left alone");
	CHECK(strcmp(role_count(su, live), "1") == 0, "a live pgwardd's role: left alone");
	CHECK(strcmp(role_count(su, otherns), "1") == 0, "another PID namespace: left alone");
	CHECK(strcmp(role_count(su, hello), "1") == 0, "a comment not ours: left alone");

	/* clean up what the sweep rightly kept */
	struct pw_pgconn *dsu = open_as("su", TEST_DB, err, sizeof(err));
	const char *keep[] = {foreign, live, otherns, hello};
	ok = dsu != NULL;
	for (int i = 0; i < 4; i++)
		ok = ok && run(dsu, "DROP OWNED BY \"%s\"; DROP ROLE \"%s\"", keep[i], keep[i]);
	pw_pgconn_close(dsu);
	CHECK(ok && strcmp(role_count(su, foreign), "0") == 0, "kept roles dropped by the test");
}

int main(void)
{
	const char *port = getenv("PGWARD_PGCONN_PORT");
	if (!port || !*port) {
		printf(
		    "1..0 # SKIP needs a PostgreSQL server; tests/integration/policy.sh runs it\n");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	pwdir = getenv("PGWARD_PGCONN_PWDIR");
	ca = getenv("PGWARD_PGCONN_CA");
	sockdir = getenv("PGWARD_PGCONN_SOCKDIR");
	if (pwdir && !*pwdir)
		pwdir = NULL;
	if (ca && !*ca)
		ca = NULL;
	if (sockdir && !*sockdir)
		sockdir = NULL;
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	pw_log_set_level(PW_LOG_ERROR);
	fake_lfd = listen_local();
	pthread_t ft;
	pthread_create(&ft, NULL, fake_main, NULL);
	pthread_detach(ft);
	load_runtime();

	char err[512] = "";
	struct pw_pgconn *su = open_as("su", "postgres", err, sizeof(err));
	if (!su) {
		printf("Bail out! cannot connect: %s\n", err);
		return 1;
	}
	clean(su);
	test_basics();
	test_timeout();
	test_logins();
	test_fake();
	test_jit(su);
	test_sweep(su);
	clean(su);
	pw_pgconn_close(su);
	pw_runtime_unref(rt);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return check_done();
}
