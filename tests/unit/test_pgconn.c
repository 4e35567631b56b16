/* Tests for user/pgconn.c (notifications included), the server side of user/jit.c and
 * user/approval_db.c (the approvals' control database) against a live PostgreSQL (and a
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

#include <jansson.h>

#include "../../user/approval_db_int.h"
#include "pgward/approval_db.h"
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
#define FLEET       "pgw_test_fleet"

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
		} else if (strcmp(q, "notify") == 0) {
			/* one during the query, one when idle a moment later */
			static const char n1[] = "\0\0\0\1ch\0during\0",
			                  n2[] = "\0\0\0\1ch\0after\0";
			msg(fd, 'A', n1, sizeof(n1) - 1);
			msg(fd, 'I', NULL, 0);
			msg(fd, 'Z', "I", 1);
			usleep(100000);
			msg(fd, 'A', n2, sizeof(n2) - 1);
		} else if (strcmp(q, "badnotify") == 0) {
			msg(fd, 'A', "\0\0\0\1ch", 6); /* no terminators */
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
static int closed_port;

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

	int closed = listen_local();
	closed_port = port_of(closed);
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
	fprintf(j, "},\"approvals\":{\"node\":\"node-t\",\"database\":{\"upstream\":\"su\","
	           "\"database\":\"postgres\",\"schema\":\"" FLEET "\"}},");
	fprintf(j, "\"identities\":[{\"name\":\"pgw_test_jit\",\"auth\":\"trust\","
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

/* ---- notifications ---- */

struct heard {
	pthread_mutex_t mu;
	int n;
	char ch[4][64], pl[4][256];
	long long sum; /* of the payloads as integers */
	int in_order;  /* payloads 1, 2, 3... seen in order so far */
};

static void hear(void *arg, const char *channel, const char *payload)
{
	struct heard *h = arg;
	pthread_mutex_lock(&h->mu);
	if (h->n < 4) {
		snprintf(h->ch[h->n], sizeof(h->ch[0]), "%s", channel);
		snprintf(h->pl[h->n], sizeof(h->pl[0]), "%s", payload);
	}
	h->n++;
	h->sum += atoll(payload);
	if (atoi(payload) == h->in_order + 1)
		h->in_order++;
	pthread_mutex_unlock(&h->mu);
}

/* Waits on c until n notifications came in all (or timeout_ms passed). */
static int wait_for(struct pw_pgconn *c, struct heard *h, int n, int timeout_ms)
{
	char err[512];
	int64_t end = ms() + timeout_ms;
	while (h->n < n && ms() < end)
		if (pw_pgconn_wait(c, (int)(end - ms()), hear, h, err, sizeof(err)) < 0)
			return -1;
	return h->n;
}

struct later {
	int delay_ms;
	const char *sql;
};

static void *run_later(void *arg)
{
	struct later *l = arg;
	char err[512];
	usleep((useconds_t)l->delay_ms * 1000);
	struct pw_pgconn *c = open_as("su", "postgres", err, sizeof(err));
	if (c)
		pw_pgconn_exec(c, l->sql, NULL, NULL, err, sizeof(err));
	pw_pgconn_close(c);
	return NULL;
}

static void test_notify(struct pw_pgconn *su)
{
	char err[512] = "";
	struct heard h = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct pw_pgconn *c = pw_pgconn_open_app(rt, up("su"), "postgres", "pgward-approvals", T_MS,
	                                         err, sizeof(err));
	CHECK(c && pw_pgconn_ok(c), "pw_pgconn_open_app %s", err);
	if (!c)
		return;
	CHECK(strcmp(val(c, "SELECT current_setting('application_name')"), "pgward-approvals") == 0,
	      "application_name as asked: pgward-approvals");
	pw_pgconn_on_notify(c, hear, &h);
	CHECK(run(c, "LISTEN pgw_chan"), "LISTEN");

	int64_t t0 = ms();
	int n = pw_pgconn_wait(c, 300, hear, &h, err, sizeof(err));
	int64_t took = ms() - t0;
	CHECK(n == 0 && took >= 250 && took < 1500 && pw_pgconn_ok(c),
	      "wait with nothing to come: 0 after the timeout (%lld ms), still sound",
	      (long long)took);
	CHECK(pw_pgconn_wait(c, 0, hear, &h, err, sizeof(err)) == 0, "wait 0: nothing, at once");

	run(su, "NOTIFY pgw_chan, 'hello ''x'' \\ 🐘'");
	n = wait_for(c, &h, 1, 3000);
	CHECK(n == 1 && strcmp(h.ch[0], "pgw_chan") == 0 && strcmp(h.pl[0], "hello 'x' \\ 🐘") == 0,
	      "another session's NOTIFY: channel and payload (%d: %s)", n, h.pl[0]);
	CHECK(strcmp(val(c, "SELECT 5"), "5") == 0, "a query after a wait works");

	memset(&h.ch, 0, sizeof(h.ch));
	h.n = 0, h.sum = 0, h.in_order = 0;
	run(su, "SELECT pg_notify('pgw_chan', g::text) FROM generate_series(1, 300) g");
	n = wait_for(c, &h, 300, 5000);
	CHECK(n == 300 && h.sum == 300 * 301 / 2 && h.in_order == 300,
	      "300 notifications of one transaction: all, in order (%d)", n);

	/* one that comes while a query runs on the listening connection */
	h.n = 0, h.sum = 0, h.in_order = 0;
	struct later l = {200, "NOTIFY pgw_chan, '7'"};
	pthread_t t;
	pthread_create(&t, NULL, run_later, &l);
	CHECK(strcmp(val(c, "SELECT 'slept', pg_sleep(0.6)"), "slept") == 0 && pw_pgconn_ok(c),
	      "a notification during pw_pgconn_exec does not break it");
	pthread_join(t, NULL);
	n = wait_for(c, &h, 1, 3000);
	CHECK(n == 1 && h.sum == 7, "it is delivered (during the query, or to the next wait) (%d)",
	      n);
	h.n = 0, h.sum = 0;
	CHECK(run(c, "SELECT pg_notify('pgw_chan', '11')") && wait_for(c, &h, 1, 3000) == 1 &&
	          h.sum == 11,
	      "the session's own NOTIFY reaches it");

	/* the server ends the connection while it waits */
	char q[160];
	snprintf(q, sizeof(q), "SELECT pg_terminate_backend(%u)", pw_pgconn_backend_pid(c));
	struct later k = {200, q};
	pthread_create(&t, NULL, run_later, &k);
	n = pw_pgconn_wait(c, 5000, hear, &h, err, sizeof(err));
	pthread_join(t, NULL);
	CHECK(n == -1 && strstr(err, "57P01") && !pw_pgconn_ok(c),
	      "terminated while waiting: -1, the FATAL in err, broken (%s)", err);
	CHECK(pw_pgconn_wait(c, 10, hear, &h, err, sizeof(err)) == -1 && strstr(err, "broken"),
	      "then every wait fails");
	pw_pgconn_close(c);

	/* the fake server's notifications, malformed ones included */
	fake_mode = FAKE_TRUST;
	h.n = 0;
	c = pw_pgconn_open(rt, up("fake_nopw"), NULL, 1000, err, sizeof(err));
	if (c)
		pw_pgconn_on_notify(c, hear, &h);
	CHECK(c && pw_pgconn_exec(c, "notify", NULL, NULL, err, sizeof(err)) == 0 && h.n == 1 &&
	          strcmp(h.pl[0], "during") == 0,
	      "fake: a notification during a query goes to the pw_pgconn_on_notify callback");
	CHECK(wait_for(c, &h, 2, 2000) == 2 && strcmp(h.ch[1], "ch") == 0 &&
	          strcmp(h.pl[1], "after") == 0,
	      "fake: one after it, to pw_pgconn_wait");
	int rc = c ? pw_pgconn_exec(c, "badnotify", NULL, NULL, err, sizeof(err)) : 0;
	CHECK(rc == -1 && strstr(err, "malformed NotificationResponse") && !pw_pgconn_ok(c),
	      "fake: a malformed NotificationResponse breaks the connection (%s)", err);
	pw_pgconn_close(c);
}

/* ---- the approvals' control database ---- */

static const char *const nasty[] = {
    "",
    "plain",
    "it's",
    "''",
    "'",
    "back\\slash\\",
    "\\'",
    "\\\\''\\",
    "E'\\x41'",
    "$$dollar$$ $pgw$",
    "\"double\" \"\"quotes\"\"",
    "Zürich 🐘 ✓ 日本語",
    "'); DROP TABLE x; --",
    "x'; DELETE FROM " FLEET ".approvals; SELECT '",
    "line\nbreak\ttab\r",
    "%s %d %n @S",
};

static void test_literal(void)
{
	char err[512];
	struct pw_pgconn *c = pw_pgconn_open_app(rt, up("su"), "postgres", "pgward-approvals", T_MS,
	                                         err, sizeof(err));
	bool all = c != NULL;
	run(c, "SET standard_conforming_strings = on");
	for (size_t i = 0; c && i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		char *lit = pw_adb_literal(nasty[i], strlen(nasty[i]));
		char *sql = malloc(strlen(lit ? lit : "") + 16);
		sprintf(sql, "SELECT %s", lit ? lit : "NULL");
		const char *v = val(c, sql);
		bool ok = lit && strcmp(v, nasty[i]) == 0;
		if (!ok)
			printf("# literal %zu: %s -> %s\n", i, lit ? lit : "NULL", v);
		all = all && ok;
		free(lit);
		free(sql);
	}
	CHECK(all, "pw_adb_literal: %zu nasty strings round-trip through the server unchanged",
	      sizeof(nasty) / sizeof(nasty[0]));
	CHECK(pw_adb_literal("a\0b", 3) == NULL, "a NUL byte: no literal");
	char *l = pw_adb_literal("a'b\\c", 5);
	CHECK(l && strcmp(l, "'a''b\\c'") == 0, "quotes doubled, backslash kept: %s", l);
	free(l);
	pw_pgconn_close(c);
}

/* What the listener applied (pw_adb_set_apply), from its thread: the last of each id. */
static struct {
	pthread_mutex_t mu;
	int n, calls;
	struct pw_approval_row rows[64];
} applied = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void record_apply(const struct pw_approval_row *r)
{
	pthread_mutex_lock(&applied.mu);
	int i = 0;
	while (i < applied.n && strcmp(applied.rows[i].id, r->id) != 0)
		i++;
	if (i < 64) {
		applied.rows[i] = *r;
		applied.rows[i].request = NULL;
		applied.n += i == applied.n;
	}
	applied.calls++;
	pthread_mutex_unlock(&applied.mu);
}

/* Waits until the listener applied row id (state st); true when it did. */
static bool was_applied(const char *id, enum pw_approval_state st, int timeout_ms,
                        struct pw_approval_row *out)
{
	int64_t end = ms() + timeout_ms;
	do {
		pthread_mutex_lock(&applied.mu);
		bool yes = false;
		for (int i = 0; i < applied.n && !yes; i++)
			if (strcmp(applied.rows[i].id, id) == 0 && applied.rows[i].state == st) {
				yes = true;
				if (out)
					*out = applied.rows[i];
			}
		pthread_mutex_unlock(&applied.mu);
		if (yes)
			return true;
		usleep(20000);
	} while (ms() < end);
	return false;
}

static void applied_reset(void)
{
	pthread_mutex_lock(&applied.mu);
	applied.n = applied.calls = 0;
	pthread_mutex_unlock(&applied.mu);
}

/* A row as approval.c would queue it; its request's statement text is text. */
static void insert(const char *id, const char *text, int expires_in_s)
{
	struct pw_approval_row r = {.has_agent_uid = true,
	                            .agent_uid = 1000,
	                            .n_uids = 2,
	                            .uids = {2, 1001},
	                            .n_gids = 1,
	                            .gids = {27}};
	char now[40], exp[40];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pw_jw_time(now, sizeof(now), ts.tv_sec, ts.tv_nsec);
	pw_jw_time(exp, sizeof(exp), ts.tv_sec + expires_in_s, ts.tv_nsec);
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.identity, sizeof(r.identity), "writer");
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_obj(&w, NULL);
	pw_jw_str(&w, "id", id);
	pw_jw_str(&w, "state", "pending");
	pw_jw_str(&w, "node", "node-t");
	pw_jw_uint(&w, "session", 12);
	pw_jw_str(&w, "identity", "writer");
	pw_jw_obj(&w, "statement");
	pw_jw_str(&w, "type", "Q");
	pw_jw_str(&w, "text", text);
	pw_jw_obj_end(&w);
	pw_jw_str(&w, "created", now);
	pw_jw_str(&w, "expires", exp);
	pw_jw_null(&w, "decided");
	pw_jw_obj_end(&w);
	r.request = w.p;
	pw_approval_db_insert(&r);
	pw_jw_free(&w);
}

static bool row_exists(struct pw_pgconn *su, const char *id, const char *state, int timeout_ms)
{
	char q[256];
	snprintf(q, sizeof(q), "SELECT state FROM " FLEET ".approvals WHERE id = '%s'", id);
	int64_t end = ms() + timeout_ms;
	do {
		if (strcmp(val(su, q), state) == 0)
			return true;
		usleep(50000);
	} while (ms() < end);
	return false;
}

/* The JSON of approval show's shape: member path a.b of o as a string ("" when none). */
static const char *jget(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	static char buf[512];
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		return snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v)), buf;
	return json_is_null(v) ? "null" : "";
}

static void test_approval_db_rows(struct pw_pgconn *su)
{
	char err[512] = "", q[512];
	const char *text = "DELETE FROM t WHERE x = 'a''b' -- \\ Zürich 🐘'); DROP TABLE x; --";
	insert("node-t-b1-1", text, 300);
	CHECK(row_exists(su, "node-t-b1-1", "pending", 3000),
	      "insert: queued, written by the listener (pending)");
	CHECK(strcmp(val(su, "SELECT request->'statement'->>'text' FROM " FLEET
	                     ".approvals WHERE id = 'node-t-b1-1'"),
	             text) == 0,
	      "the agent's text (quotes, backslashes, unicode, an injection) is stored unchanged");
	CHECK(strcmp(val(su, "SELECT concat_ws(' ', node, session, identity, agent_uid, "
	                     "approver_uids, approver_gids, request ? 'state', "
	                     "expires > created + interval '299 s') FROM " FLEET
	                     ".approvals WHERE id = 'node-t-b1-1'"),
	             "node-t 12 writer 1000 {2,1001} {27} f t") == 0,
	      "its columns: node, session and times from the request, who may approve (%s)",
	      val(su, "SELECT concat_ws(' ', node, session, identity, agent_uid, approver_uids, "
	              "approver_gids, request ? 'state') FROM " FLEET
	              ".approvals WHERE id = 'node-t-b1-1'"));
	CHECK(strcmp(val(su, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
	                     "'pgward-approvals'"),
	             "1") == 0,
	      "the listener's connection says pgward-approvals");

	struct pw_approval_row row = {0};
	int rc = pw_approval_db_get("node-t-b1-1", &row, err, sizeof(err));
	json_t *j = row.request ? json_loads(row.request, 0, NULL) : NULL;
	CHECK(rc == 0 && row.state == PW_AS_PENDING && strcmp(row.node, "node-t") == 0 &&
	          row.has_agent_uid && row.agent_uid == 1000 && row.n_uids == 2 &&
	          row.uids[1] == 1001 && row.n_gids == 1 && row.gids[0] == 27 && j &&
	          strcmp(jget(j, "state", NULL), "pending") == 0 &&
	          strcmp(jget(j, "decided", NULL), "null") == 0 &&
	          strcmp(jget(j, "statement", "text"), text) == 0,
	      "get: the row, its approvers, the request as approval show's object %s", err);
	json_decref(j);

	/* the control thread's decision */
	rc = pw_approval_db_decide("node-t-b1-1", PW_AS_APPROVED, "alice", 1000,
	                           PW_SCOPE_FINGERPRINT, 600, "ok'); --", &row, err, sizeof(err));
	j = row.request ? json_loads(row.request, 0, NULL) : NULL;
	CHECK(rc == 0 && row.state == PW_AS_APPROVED && strcmp(row.decided_by, "alice") == 0 &&
	          row.decided_uid == 1000 && row.scope == PW_SCOPE_FINGERPRINT &&
	          row.for_s == 600 && strcmp(row.reason, "ok'); --") == 0 && j &&
	          strcmp(jget(j, "state", NULL), "approved") == 0 &&
	          strcmp(jget(j, "decided", "by"), "alice") == 0 &&
	          strcmp(jget(j, "decided", "scope"), "fingerprint") == 0 &&
	          strcmp(jget(j, "decided", "for_seconds"), "600") == 0 &&
	          strcmp(jget(j, "decided", "uid"), "1000") == 0 &&
	          strlen(jget(j, "decided", "at")) == 27,
	      "decide: approved, the row after it (decided: at, by, uid, scope, for_seconds) %s",
	      err);
	json_decref(j);
	struct pw_approval_row got;
	CHECK(!was_applied("node-t-b1-1", PW_AS_APPROVED, 1000, NULL),
	      "the listener leaves a row this node's control thread just decided to its caller");
	CHECK(was_applied("node-t-b1-1", PW_AS_APPROVED, 5000, &got) &&
	          strcmp(got.decided_by, "alice") == 0 && got.scope == PW_SCOPE_FINGERPRINT,
	      "then the poll applies it all the same (the caller may not have)");
	rc = pw_approval_db_decide("node-t-b1-1", PW_AS_DENIED, "bob", 1001, PW_SCOPE_ONCE, 0, NULL,
	                           &row, err, sizeof(err));
	CHECK(rc == 1 && row.state == PW_AS_APPROVED && strcmp(row.decided_by, "alice") == 0,
	      "deciding it again: 1, and how it was decided");
	CHECK(pw_approval_db_decide("node-t-nope", PW_AS_DENIED, "bob", 1001, PW_SCOPE_ONCE, 0,
	                            NULL, &row, err, sizeof(err)) == 2 &&
	          pw_approval_db_get("node-t-nope", &row, err, sizeof(err)) == 2,
	      "no such row: 2");
	pw_approval_row_free(&row);

	/* any tool: a plain UPDATE */
	insert("node-t-b1-2", "DELETE FROM t", 300);
	CHECK(row_exists(su, "node-t-b1-2", "pending", 3000), "a second row");
	CHECK(run(su, "UPDATE " FLEET ".approvals SET state = 'denied', reason = 'by sql' "
	              "WHERE id = 'node-t-b1-2'"),
	      "a plain SQL UPDATE decides it");
	CHECK(was_applied("node-t-b1-2", PW_AS_DENIED, 3000, &got) &&
	          strcmp(got.decided_by, "postgres") == 0 && strcmp(got.reason, "by sql") == 0,
	      "applied: the trigger filled decided_by (the database user) and woke the node");
	rc = pw_pgconn_exec(su,
	                    "UPDATE " FLEET ".approvals SET state = 'approved' WHERE id = "
	                    "'node-t-b1-2'",
	                    NULL, NULL, err, sizeof(err));
	CHECK(rc == -1 && strstr(err, "55000") && strstr(err, "denied already"),
	      "a decided row cannot be decided again, by any tool (%s)", err);

	/* the holding node's own writes */
	insert("node-t-b1-3", "DELETE FROM t", 300);
	pw_approval_db_withdraw("node-t-b1-3", "the client left");
	CHECK(
	    row_exists(su, "node-t-b1-3", "withdrawn", 3000) &&
	        strcmp(val(su, "SELECT decided_by || ' ' || reason || ' ' || (decided_uid IS NULL) "
	                       "FROM " FLEET ".approvals WHERE id = 'node-t-b1-3'"),
	               "pgwardd the client left true") == 0,
	    "withdraw: the row says withdrawn, by pgwardd, why");
	insert("node-t-b1-4", "DELETE FROM t", 300);
	CHECK(row_exists(su, "node-t-b1-4", "pending", 3000), "a fourth row");
	pw_approval_db_decide("node-t-b1-4", PW_AS_DENIED, "bob", 1001, PW_SCOPE_ONCE, 0, NULL,
	                      &row, err, sizeof(err));
	pw_approval_db_settle("node-t-b1-4", PW_AS_TIMED_OUT, "pgwardd", -1, PW_SCOPE_ONCE, 0,
	                      "late");
	usleep(500000);
	CHECK(row_exists(su, "node-t-b1-4", "denied", 100),
	      "settle after another decision: the first decision stays");
	pw_approval_row_free(&row);

	/* past its expiry, a person comes too late */
	insert("node-t-b1-5", "DELETE FROM t", -10);
	CHECK(row_exists(su, "node-t-b1-5", "pending", 3000), "a row past its expiry");
	rc = pw_approval_db_decide("node-t-b1-5", PW_AS_APPROVED, "alice", 1000, PW_SCOPE_ONCE, 0,
	                           NULL, &row, err, sizeof(err));
	CHECK(rc == 1 && row.state == PW_AS_TIMED_OUT && strcmp(row.decided_by, "pgwardd") == 0,
	      "approving it: 1, and the row is timed_out (rc %d)", rc);
	pw_approval_row_free(&row);

	/* decided without a notification (triggers off): the poll finds it */
	insert("node-t-b1-6", "DELETE FROM t", 300);
	CHECK(row_exists(su, "node-t-b1-6", "pending", 3000), "a sixth row");
	snprintf(q, sizeof(q),
	         "SET session_replication_role = replica; UPDATE " FLEET ".approvals SET state = "
	         "'approved', decided_at = now(), decided_by = 'quiet' WHERE id = 'node-t-b1-6'; "
	         "SET session_replication_role = origin");
	CHECK(run(su, "%s", q) && was_applied("node-t-b1-6", PW_AS_APPROVED, 4000, NULL),
	      "a decision that notified nobody is applied by the poll (2 s)");
}

static void test_approval_db_list(struct pw_pgconn *su)
{
	char err[512] = "";
	run(su, "INSERT INTO " FLEET ".approvals (id, node, identity, request, expires) VALUES "
	        "('other-b-1', 'other', 'writer', '{\"statement\": {\"text\": \"x\"}}', "
	        "now() + interval '5 minutes'), "
	        "('other-b-2', 'other', 'writer', '{}', now() - interval '1 minute')");
	run(su, "UPDATE " FLEET ".approvals SET state = 'denied', decided_by = 'carol', "
	        "decided_uid = 7 WHERE id = 'other-b-2'");
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_arr(&w, NULL);
	int rc = pw_approval_db_list(&w, false, err, sizeof(err));
	pw_jw_arr_end(&w);
	json_t *a = rc == 0 ? json_loadb(w.p, w.len, 0, NULL) : NULL;
	CHECK(a && json_array_size(a) == 1 &&
	          strcmp(jget(json_array_get(a, 0), "id", NULL), "other-b-1") == 0 &&
	          strcmp(jget(json_array_get(a, 0), "node", NULL), "other") == 0 &&
	          strcmp(jget(json_array_get(a, 0), "state", NULL), "pending") == 0 &&
	          strcmp(jget(json_array_get(a, 0), "statement", "text"), "x") == 0,
	      "list: other nodes' pending rows only (not this node's) %s", err);
	json_decref(a);
	pw_jw_reset(&w);
	pw_jw_arr(&w, NULL);
	rc = pw_approval_db_list(&w, true, err, sizeof(err));
	pw_jw_arr_end(&w);
	a = rc == 0 ? json_loadb(w.p, w.len, 0, NULL) : NULL;
	json_t *d = a ? json_array_get(a, 1) : NULL;
	CHECK(a && json_array_size(a) == 2 && strcmp(jget(d, "state", NULL), "denied") == 0 &&
	          strcmp(jget(d, "decided", "by"), "carol") == 0 &&
	          strcmp(jget(d, "decided", "uid"), "7") == 0 &&
	          strcmp(jget(d, "decided", "scope"), "null") == 0,
	      "list all: the decided ones too, oldest first, with their decision");
	json_decref(a);
	pw_jw_free(&w);
}

static void test_approval_db(struct pw_pgconn *su)
{
	char err[1024] = "";
	run(su, "DROP SCHEMA IF EXISTS " FLEET " CASCADE");
	CHECK(!pw_approval_db_on(), "not on before the start");
	pw_adb_set_apply(record_apply);
	int rc = pw_approval_db_start(rt, err, sizeof(err));
	CHECK(rc == 0 && pw_approval_db_on(), "start: the schema made, the listener up %s", err);
	if (rc != 0)
		return;
	CHECK(strcmp(val(su, "SELECT count(*) FROM pg_trigger WHERE tgrelid = '" FLEET
	                     ".approvals'::regclass AND NOT tgisinternal"),
	             "2") == 0 &&
	          strcmp(val(su, "SELECT count(*) FROM pg_indexes WHERE schemaname = '" FLEET
	                         "' AND indexname = 'approvals_node_state'"),
	                 "1") == 0,
	      "the table, its index and its two triggers");
	CHECK(pw_approval_db_start(rt, err, sizeof(err)) == -1 && strstr(err, "already"),
	      "a second start is refused");
	test_approval_db_rows(su);
	test_approval_db_list(su);

	/* both connections killed: the listener reconnects, the control calls too */
	run(su, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
	        "'pgward-approvals'");
	struct pw_approval_row row = {0};
	CHECK(pw_approval_db_get("node-t-b1-1", &row, err, sizeof(err)) == 0,
	      "a control call after its connection was killed: reconnected once %s", err);
	pw_approval_row_free(&row);
	insert("node-t-b1-7", "DELETE FROM t", 300);
	CHECK(row_exists(su, "node-t-b1-7", "pending", 5000),
	      "the listener reconnected (back-off 1 s) and wrote what was queued");
	run(su, "UPDATE " FLEET ".approvals SET state = 'approved' WHERE id = 'node-t-b1-7'");
	CHECK(was_applied("node-t-b1-7", PW_AS_APPROVED, 4000, NULL), "and it listens again");

	/* the writes' queue is bounded: with the listener stuck on a lock, 4100 inserts return at
	 * once (a worker never waits) and what does not fit is dropped */
	run(su, "BEGIN; LOCK TABLE " FLEET ".approvals IN ACCESS EXCLUSIVE MODE");
	usleep(300000);
	char id[PW_APPROVAL_ID_MAX];
	int64_t t0 = ms();
	for (int i = 0; i < 4100; i++) {
		snprintf(id, sizeof(id), "node-t-bulk-%d", i);
		insert(id, "x", 300);
	}
	int64_t took = ms() - t0;
	run(su, "COMMIT");
	const char *bulk = "?";
	for (int i = 0; i < 300; i++, usleep(100000)) {
		bulk = val(su, "SELECT count(*) FROM " FLEET
		               ".approvals WHERE id LIKE 'node-t-bulk-%'");
		if (atoi(bulk) >= 4096 &&
		    strcmp(val(su, "SELECT count(*) FROM pg_stat_activity WHERE "
		                   "wait_event_type = 'Lock'"),
		           "0") == 0)
			break;
	}
	usleep(500000);
	bulk = val(su, "SELECT count(*) FROM " FLEET ".approvals WHERE id LIKE 'node-t-bulk-%'");
	CHECK(took < 2000 && (strcmp(bulk, "4096") == 0 || strcmp(bulk, "4097") == 0),
	      "the queue holds 4096 writes: 4100 queued in %lld ms, %s written, the rest dropped",
	      (long long)took, bulk);

	pw_approval_db_stop();
	const char *left = "?";
	for (int i = 0; i < 40 && strcmp(left, "0") != 0; i++, usleep(50000))
		left = val(su, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
		               "'pgward-approvals'");
	CHECK(!pw_approval_db_on() &&
	          pw_approval_db_get("node-t-b1-1", &row, err, sizeof(err)) == -1 &&
	          strcmp(left, "0") == 0,
	      "stop: off, its connections closed (%s left)", left);
	insert("node-t-b1-8", "x", 300); /* off: nothing */
	applied_reset();

	/* a start that cannot reach the database fails: pgwardd would not start */
	char json[1024];
	snprintf(json, sizeof(json),
	         "{\"listen\":[{\"port\":6432}],\"upstreams\":{\"closed\":{\"host\":\"127.0.0.1\","
	         "\"port\":%d,\"user\":\"x\"}},\"identities\":[{\"name\":\"all\",\"auth\":"
	         "\"trust\",\"upstream\":\"closed\"}],\"approvals\":{\"database\":{\"upstream\":"
	         "\"closed\"}}}",
	         closed_port);
	struct pw_runtime *bad = pw_runtime_load(file("closed.json", json), err, sizeof(err));
	rc = bad ? pw_approval_db_start(bad, err, sizeof(err)) : 0;
	CHECK(rc == -1 && strstr(err, "upstream \"closed\"") && !pw_approval_db_on(),
	      "an unreachable control database: the start fails, naming it (%s)", err);
	pw_runtime_unref(bad);
	pw_adb_set_apply(NULL);
	run(su, "DROP SCHEMA IF EXISTS " FLEET " CASCADE");
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
	test_notify(su);
	test_literal();
	test_approval_db(su);
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
