/* Protocol checks through pgwardd with real libpq (and raw sockets for malformed input).
 * Usage: pgtest CHECK CONNINFO [ARGS]; prints "ok - ..." / "not ok - ..." lines and exits 1
 * on any failure. Each check is a behaviour a client can observe. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

static int failures, checks;

static void report(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s - ", ok ? "ok" : "not ok");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	if (!ok)
		failures++;
	checks++;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static PGconn *connect_or_die(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		report(false, "connect: %s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

static const char *sqlstate(const PGresult *r)
{
	const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	return s ? s : "";
}

static bool exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "# %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	return ok;
}

/* ---- extended protocol, binary results ------------------------------------------------ */
static void check_extended(const char *conninfo)
{
	PGconn *c = connect_or_die(conninfo);
	const char *vals[2] = {"41", "hello"};
	PGresult *r =
	    PQexecParams(c, "SELECT $1::int + 1, upper($2::text)", 2, NULL, vals, NULL, NULL, 0);
	report(PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "42") == 0 &&
	           strcmp(PQgetvalue(r, 0, 1), "HELLO") == 0,
	       "extended: PQexecParams with text parameters");
	PQclear(r);

	/* binary parameter in, binary result out */
	uint32_t be = htonl(1234567);
	const char *bv[1] = {(const char *)&be};
	int lens[1] = {4}, fmts[1] = {1};
	Oid types[1] = {23};
	r = PQexecParams(c, "SELECT $1::int4 * 2, '\\x00ff10'::bytea", 1, types, bv, lens, fmts, 1);
	bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQfformat(r, 0) == 1 &&
	          PQgetlength(r, 0, 0) == 4 && ntohl(*(uint32_t *)PQgetvalue(r, 0, 0)) == 2469134 &&
	          PQgetlength(r, 0, 1) == 3 && memcmp(PQgetvalue(r, 0, 1), "\x00\xff\x10", 3) == 0;
	report(ok, "extended: binary parameters and binary results");
	PQclear(r);

	r = PQprepare(c, "s1", "SELECT generate_series(1, $1::int)", 1, NULL);
	report(PQresultStatus(r) == PGRES_COMMAND_OK, "extended: PQprepare");
	PQclear(r);
	const char *n[1] = {"1000"};
	r = PQexecPrepared(c, "s1", 1, n, NULL, NULL, 0);
	report(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1000 &&
	           strcmp(PQgetvalue(r, 999, 0), "1000") == 0,
	       "extended: PQexecPrepared returns 1000 rows");
	PQclear(r);
	r = PQdescribePrepared(c, "s1");
	report(PQresultStatus(r) == PGRES_COMMAND_OK && PQnparams(r) == 1 && PQnfields(r) == 1,
	       "extended: PQdescribePrepared");
	PQclear(r);
	/* an error in the extended protocol, then the session goes on */
	r = PQexecParams(c, "SELECT 1/0", 0, NULL, NULL, NULL, NULL, 0);
	report(strcmp(sqlstate(r), "22012") == 0, "extended: division by zero gives 22012");
	PQclear(r);
	report(exec_ok(c, "SELECT 1"), "extended: session usable after an error");
	/* multi-statement simple query */
	r = PQexec(
	    c, "CREATE TEMP TABLE m(x int); INSERT INTO m VALUES (1),(2); SELECT sum(x) FROM m");
	report(PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "3") == 0,
	       "simple: multi-statement query string");
	PQclear(r);
	/* pg_backend_pid() is the upstream's real pid and matches BackendKeyData */
	r = PQexec(c, "SELECT pg_backend_pid()");
	report(PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == PQbackendPID(c),
	       "BackendKeyData carries the upstream's real process ID");
	PQclear(r);
	/* ParameterStatus at any time */
	exec_ok(c, "SET application_name = 'pgtest-renamed'");
	const char *an = PQparameterStatus(c, "application_name");
	report(an && strcmp(an, "pgtest-renamed") == 0, "ParameterStatus after SET is relayed");
	/* NoticeResponse */
	r = PQexec(c, "DO $$BEGIN RAISE NOTICE 'hello notice'; END$$");
	report(PQresultStatus(r) == PGRES_COMMAND_OK, "NoticeResponse relayed");
	PQclear(r);
	PQfinish(c);
}

/* ---- pipeline mode ---------------------------------------------------------------------- */
static void check_pipeline(const char *conninfo)
{
	PGconn *c = connect_or_die(conninfo);
	bool ok = PQenterPipelineMode(c) == 1;
	char buf[32];
	const char *v[1] = {buf};
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		ok &= PQsendQueryParams(c, i == 50 ? "SELECT 1/($1::int - 50)" : "SELECT $1::int",
		                        1, NULL, v, NULL, NULL, 0) == 1;
		if (i == 49 || i == 99)
			ok &= PQpipelineSync(c) == 1;
	}
	ok &= PQflush(c) == 0 || PQflush(c) == 0;
	int good = 0, aborted = 0, errors = 0, syncs = 0;
	for (int i = 0; i < 100 + 2;) {
		PGresult *r = PQgetResult(c);
		if (!r)
			continue; /* end of one query's results */
		switch (PQresultStatus(r)) {
		case PGRES_TUPLES_OK:
			good++;
			i++;
			break;
		case PGRES_PIPELINE_ABORTED:
			aborted++;
			i++;
			break;
		case PGRES_FATAL_ERROR:
			errors++;
			i++;
			break;
		case PGRES_PIPELINE_SYNC:
			syncs++;
			i++;
			break;
		default:
			i++;
			break;
		}
		PQclear(r);
	}
	ok &= PQexitPipelineMode(c) == 1;
	report(ok && good == 50 && errors == 1 && aborted == 49 && syncs == 2,
	       "pipeline: 100 queries, error at 50 aborts the rest of its group (good=%d "
	       "errors=%d aborted=%d syncs=%d)",
	       good, errors, aborted, syncs);
	report(exec_ok(c, "SELECT 1"), "pipeline: session usable after the pipeline");
	PQfinish(c);
}

/* ---- cancel ----------------------------------------------------------------------------- */
static void check_cancel(const char *conninfo)
{
	PGconn *c = connect_or_die(conninfo);
	PQsendQuery(c, "SELECT pg_sleep(30)");
	struct timespec d = {0, 300 * 1000000};
	nanosleep(&d, NULL);
	double t0 = now_s();
	char err[256];
	PGcancel *cn = PQgetCancel(c);
	int sent = PQcancel(cn, err, sizeof(err));
	PQfreeCancel(cn);
	PGresult *r, *last = NULL;
	while ((r = PQgetResult(c)))
		last = last ? (PQclear(last), r) : r;
	double dt = now_s() - t0;
	report(sent == 1 && last && strcmp(sqlstate(last), "57014") == 0 && dt < 1.0,
	       "cancel: pg_sleep(30) canceled with 57014 in %.3f s", dt);
	PQclear(last);
	report(exec_ok(c, "SELECT 1"), "cancel: session usable after the cancel");
	PQfinish(c);
}

/* ---- LISTEN/NOTIFY to an idle client ---------------------------------------------------- */
static void check_notify(const char *conninfo)
{
	PGconn *a = connect_or_die(conninfo), *b = connect_or_die(conninfo);
	exec_ok(a, "LISTEN pgtest_chan");
	exec_ok(b, "NOTIFY pgtest_chan, 'payload-42'");
	double t0 = now_s();
	PGnotify *n = NULL;
	while (!n && now_s() - t0 < 5) {
		struct pollfd p = {.fd = PQsocket(a), .events = POLLIN};
		poll(&p, 1, 500);
		PQconsumeInput(a);
		n = PQnotifies(a);
	}
	report(n && strcmp(n->relname, "pgtest_chan") == 0 && strcmp(n->extra, "payload-42") == 0 &&
	           n->be_pid == PQbackendPID(b),
	       "NOTIFY delivered to an idle listener");
	PQfreemem(n);
	PQfinish(a);
	PQfinish(b);
}

/* ---- COPY streamed both ways, large messages -------------------------------------------- */
static void check_copy(const char *conninfo, long rows)
{
	PGconn *c = connect_or_die(conninfo);
	exec_ok(c, "DROP TABLE IF EXISTS pgtest_copy");
	exec_ok(c, "CREATE TABLE pgtest_copy(id int, t text)");
	PGresult *r = PQexec(c, "COPY pgtest_copy FROM STDIN");
	bool ok = PQresultStatus(r) == PGRES_COPY_IN;
	PQclear(r);
	char line[128];
	for (long i = 0; ok && i < rows; i++) {
		int n = snprintf(line, sizeof(line), "%ld\trow number %ld\n", i, i);
		ok &= PQputCopyData(c, line, n) == 1;
	}
	ok &= PQputCopyEnd(c, NULL) == 1;
	r = PQgetResult(c);
	ok &= PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	report(ok, "copy in: %ld rows", rows);
	r = PQexec(c, "COPY pgtest_copy TO STDOUT");
	long got = 0;
	char *buf;
	int n;
	while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
		got++;
		PQfreemem(buf);
	}
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	report(got == rows, "copy out: %ld rows back", got);
	/* one CopyData message of 64 MiB, then a 200 MB DataRow: streamed, never buffered */
	exec_ok(c, "CREATE TEMP TABLE big(b text)");
	r = PQexec(c, "COPY big FROM STDIN");
	PQclear(r);
	size_t bl = 64u << 20;
	char *big = malloc(bl + 1);
	memset(big, 'y', bl);
	big[bl] = '\n';
	ok = PQputCopyData(c, big, (int)bl + 1) == 1 && PQputCopyEnd(c, NULL) == 1;
	r = PQgetResult(c);
	ok &= PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	while ((r = PQgetResult(c)))
		PQclear(r);
	free(big);
	r = PQexec(c, "SELECT length(b) FROM big");
	ok &= PQresultStatus(r) == PGRES_TUPLES_OK && atol(PQgetvalue(r, 0, 0)) == (long)bl;
	PQclear(r);
	report(ok, "copy in: one 64 MiB CopyData message");
	r = PQexec(c, "SELECT repeat('z', 200000000)");
	report(PQresultStatus(r) == PGRES_TUPLES_OK && PQgetlength(r, 0, 0) == 200000000,
	       "a 200 MB DataRow comes through");
	PQclear(r);
	exec_ok(c, "DROP TABLE pgtest_copy");
	PQfinish(c);
}

/* ---- statement size limit: the deny path keeps the protocol in step --------------------- */
static void check_limit(const char *conninfo, size_t limit)
{
	PGconn *c = connect_or_die(conninfo);
	size_t n = limit * 2 + 100;
	char *q = malloc(n + 64);
	strcpy(q, "SELECT '");
	memset(q + 8, 'a', n);
	strcpy(q + 8 + n, "' AS long");
	PGresult *r = PQexec(c, q);
	const char *msg = PQresultErrorMessage(r);
	report(strcmp(sqlstate(r), "54000") == 0 && strstr(msg, "max_statement_bytes"),
	       "limit: oversized Query refused with 54000 naming the limit");
	PQclear(r);
	report(exec_ok(c, "SELECT 1"), "limit: session goes on after the refusal");
	/* the same inside a transaction: the refusal aborts it, as any error of the server's own
	 * does (a COMMIT then commits nothing of it) */
	exec_ok(c, "BEGIN");
	r = PQexec(c, q);
	PQclear(r);
	r = PQexec(c, "SELECT 2");
	report(strcmp(sqlstate(r), "25P02") == 0, "limit: the refusal aborts the transaction");
	PQclear(r);
	exec_ok(c, "ROLLBACK");

	/* pipeline: OK, oversized (Parse refused), OK | sync | OK */
	bool ok = PQenterPipelineMode(c) == 1;
	ok &= PQsendQueryParams(c, "SELECT 1", 0, NULL, NULL, NULL, NULL, 0) == 1;
	ok &= PQsendQueryParams(c, q, 0, NULL, NULL, NULL, NULL, 0) == 1;
	ok &= PQsendQueryParams(c, "SELECT 3", 0, NULL, NULL, NULL, NULL, 0) == 1;
	ok &= PQpipelineSync(c) == 1;
	ok &= PQsendQueryParams(c, "SELECT 4", 0, NULL, NULL, NULL, NULL, 0) == 1;
	ok &= PQpipelineSync(c) == 1;
	ExecStatusType want[] = {PGRES_TUPLES_OK,     PGRES_FATAL_ERROR, PGRES_PIPELINE_ABORTED,
	                         PGRES_PIPELINE_SYNC, PGRES_TUPLES_OK,   PGRES_PIPELINE_SYNC};
	char got[256] = "";
	for (int i = 0; i < 6; i++) {
		while (!(r = PQgetResult(c)) && i > 0 && want[i - 1] != PGRES_PIPELINE_SYNC)
			;
		if (!r)
			r = PQgetResult(c);
		ExecStatusType st = PQresultStatus(r);
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "," : "",
		         PQresStatus(st));
		ok &= st == want[i];
		if (st == PGRES_FATAL_ERROR)
			ok &= strcmp(sqlstate(r), "54000") == 0;
		PQclear(r);
	}
	ok &= PQexitPipelineMode(c) == 1;
	report(ok, "limit: refused Parse in a pipeline discards to Sync (%s)", got);
	report(exec_ok(c, "SELECT 5"), "limit: session usable after the pipeline");
	free(q);
	PQfinish(c);
}

/* ---- malformed input: raw sockets ------------------------------------------------------- */
static int raw_connect(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	int fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void put32(uint8_t *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

/* Read everything until EOF; return the SQLSTATE of the first ErrorResponse ("" if none)
 * and whether the connection was closed. */
static bool read_error(int fd, char *state, size_t len, bool *closed)
{
	uint8_t buf[65536];
	size_t have = 0;
	ssize_t n;
	state[0] = 0;
	*closed = false;
	while (have < sizeof(buf) && (n = read(fd, buf + have, sizeof(buf) - have)) > 0)
		have += (size_t)n;
	*closed = n == 0;
	for (size_t off = 0; off + 5 <= have;) {
		uint32_t ml;
		memcpy(&ml, buf + off + 1, 4);
		ml = ntohl(ml);
		if (buf[off] == 'E') {
			for (size_t i = off + 5; i < off + 1 + ml && buf[i];) {
				char code = (char)buf[i++];
				const char *v = (const char *)buf + i;
				if (code == 'C')
					snprintf(state, len, "%s", v);
				i += strlen(v) + 1;
			}
			return true;
		}
		off += 1 + ml;
	}
	return false;
}

static int startup_raw(const char *host, const char *port, const char *user, const char *db)
{
	int fd = raw_connect(host, port);
	if (fd < 0)
		return -1;
	uint8_t pkt[512];
	size_t off = 8;
	off += (size_t)sprintf((char *)pkt + off, "user") + 1;
	off += (size_t)sprintf((char *)pkt + off, "%s", user) + 1;
	off += (size_t)sprintf((char *)pkt + off, "database") + 1;
	off += (size_t)sprintf((char *)pkt + off, "%s", db) + 1;
	pkt[off++] = 0;
	put32(pkt, (uint32_t)off);
	put32(pkt + 4, 196608);
	if (write(fd, pkt, off) != (ssize_t)off)
		return -1;
	/* read until ReadyForQuery (trust identity expected) */
	uint8_t buf[8192];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		for (size_t o = 0; o + 5 <= have;) {
			uint32_t ml;
			memcpy(&ml, buf + o + 1, 4);
			ml = ntohl(ml);
			if (o + 1 + ml > have)
				break;
			if (buf[o] == 'Z')
				return fd;
			if (buf[o] == 'E')
				return -1;
			o += 1 + ml;
		}
	}
}

static void check_malformed(const char *conninfo, const char *host, const char *port,
                            const char *user, const char *db)
{
	char st[8];
	bool closed;
	uint8_t pkt[64];

	/* startup packet longer than the limit */
	int fd = raw_connect(host, port);
	put32(pkt, 200000);
	put32(pkt + 4, 196608);
	ssize_t w = write(fd, pkt, 8);
	read_error(fd, st, sizeof(st), &closed);
	report(w == 8 && strcmp(st, "08P01") == 0 && closed,
	       "malformed: oversize startup packet -> 08P01 (%s)", st);
	close(fd);

	/* startup length below the minimum */
	fd = raw_connect(host, port);
	put32(pkt, 3);
	put32(pkt + 4, 196608);
	w = write(fd, pkt, 8);
	read_error(fd, st, sizeof(st), &closed);
	report(w == 8 && strcmp(st, "08P01") == 0 && closed,
	       "malformed: startup length 3 -> 08P01 (%s)", st);
	close(fd);

	/* after login: message length < 4 */
	fd = startup_raw(host, port, user, db);
	memcpy(pkt, "Q\0\0\0\2", 5);
	w = write(fd, pkt, 5);
	read_error(fd, st, sizeof(st), &closed);
	report(fd >= 0 && strcmp(st, "08P01") == 0 && closed,
	       "malformed: message length 2 -> 08P01 (%s)", st);
	close(fd);

	/* after login: unknown message type */
	fd = startup_raw(host, port, user, db);
	memcpy(pkt, "\x07\0\0\0\4", 5);
	w = write(fd, pkt, 5);
	read_error(fd, st, sizeof(st), &closed);
	report(fd >= 0 && strcmp(st, "08P01") == 0 && closed,
	       "malformed: unknown message type -> 08P01 (%s)", st);
	close(fd);

	/* after login: length over the message limit */
	fd = startup_raw(host, port, user, db);
	memcpy(pkt, "d\x7f\xff\xff\xff", 5);
	w = write(fd, pkt, 5);
	read_error(fd, st, sizeof(st), &closed);
	report(fd >= 0 && strcmp(st, "08P01") == 0 && closed,
	       "malformed: length over the limit -> 08P01 (%s)", st);
	close(fd);

	/* unencrypted bytes after SSLRequest (CVE-2021-23214 pattern) */
	fd = raw_connect(host, port);
	put32(pkt, 8);
	put32(pkt + 4, 80877103);
	memcpy(pkt + 8, "Q\0\0\0\5\0", 6);
	w = write(fd, pkt, 14);
	uint8_t ans = 0;
	ssize_t rn = read(fd, &ans, 1);
	if (rn == 1 && ans == 'E') {
		/* answered with an error straight away: good as well */
		st[0] = 0;
		snprintf(st, sizeof(st), "08P01");
		closed = true;
	} else {
		read_error(fd, st, sizeof(st), &closed);
	}
	report(strcmp(st, "08P01") == 0 && closed, "malformed: data after SSLRequest -> 08P01 (%s)",
	       st);
	close(fd);

	/* replication connection refused */
	char ci[1024];
	snprintf(ci, sizeof(ci), "%s replication=database", conninfo);
	PGconn *r = PQconnectdb(ci);
	report(PQstatus(r) == CONNECTION_BAD && strstr(PQerrorMessage(r), "replication"),
	       "replication connections refused: %s", PQerrorMessage(r));
	PQfinish(r);

	/* and the next client is served */
	PGconn *c = connect_or_die(conninfo);
	report(exec_ok(c, "SELECT 1"), "malformed: the next client is served");
	PQfinish(c);
}

/* ---- wrong password ----------------------------------------------------------------------- */
static void check_auth_fail(const char *conninfo, const char *expect)
{
	PGconn *c = PQconnectdb(conninfo);
	const char *m = PQerrorMessage(c);
	report(PQstatus(c) == CONNECTION_BAD && strstr(m, expect) != NULL,
	       "connection refused with \"%s\": %s", expect, m);
	PQfinish(c);
}

static void check_query(const char *conninfo, const char *sql, const char *expect)
{
	PGconn *c = connect_or_die(conninfo);
	PGresult *r = PQexec(c, sql);
	const char *v =
	    PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : PQerrorMessage(c);
	report(strcmp(v, expect) == 0, "query %s -> %s (want %s)", sql, v, expect);
	PQclear(r);
	PQfinish(c);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pgtest CHECK CONNINFO [ARGS]\n");
		return 2;
	}
	const char *chk = argv[1], *ci = argv[2];
	if (!strcmp(chk, "extended"))
		check_extended(ci);
	else if (!strcmp(chk, "pipeline"))
		check_pipeline(ci);
	else if (!strcmp(chk, "cancel"))
		check_cancel(ci);
	else if (!strcmp(chk, "notify"))
		check_notify(ci);
	else if (!strcmp(chk, "copy"))
		check_copy(ci, argc > 3 ? atol(argv[3]) : 100000);
	else if (!strcmp(chk, "limit") && argc == 4)
		check_limit(ci, (size_t)atol(argv[3]));
	else if (!strcmp(chk, "malformed") && argc == 7)
		check_malformed(ci, argv[3], argv[4], argv[5], argv[6]);
	else if (!strcmp(chk, "authfail") && argc == 4)
		check_auth_fail(ci, argv[3]);
	else if (!strcmp(chk, "query") && argc == 5)
		check_query(ci, argv[3], argv[4]);
	else {
		fprintf(stderr, "pgtest: unknown check or arguments: %s\n", chk);
		return 2;
	}
	printf("1..%d\n", checks);
	return failures ? 1 : 0;
}
