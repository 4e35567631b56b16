/* A libpq client for the policy tests: runs texts and says, for each, whether pgward refused
 * it. Usage: policy_client CONNINFO MODE < lines
 *   MODE q: simple protocol (PQexec)      x: extended protocol (unnamed Parse + Bind/Execute)
 *        p: a pipeline of three Syncs: the text between two harmless queries
 *        n: Parse of the text as the named statement "pw_named", then `EXECUTE pw_named` (SQL)
 * With MODE followed by 'e' ("xe"), \n, \r and \\ in a line stand for those bytes.
 * Each input line holds texts separated by " || ", run in order on one new connection. One
 * output line per input line, for the last text: "allow" (run, or refused by the server
 * itself: "allow SQLSTATE"), "deny", "approve" (refused by pgward: SQLSTATE 42501 and a
 * message starting "pgward:") or "fail <why>" (no connection). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static const char *verdict(const PGresult *r, char *buf, size_t len)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

	switch (PQresultStatus(r)) {
	case PGRES_FATAL_ERROR:
		if (state && strcmp(state, "42501") == 0 && msg && strncmp(msg, "pgward:", 7) == 0)
			return strstr(msg, "needs approval") ? "approve" : "deny";
		if (msg && strncmp(msg, "pgward: cannot analyse", 22) == 0)
			return "deny";
		snprintf(buf, len, "allow %s", state ? state : "?");
		return buf;
	case PGRES_PIPELINE_ABORTED:
		return "aborted";
	default:
		return "allow";
	}
}

/* Finish whatever COPY a result started, then collect the rest. */
static PGresult *settle(PGconn *c, PGresult *r)
{
	for (;;) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COPY_IN) {
			PQclear(r);
			PQputCopyEnd(c, NULL);
			r = PQgetResult(c);
			continue;
		}
		if (st == PGRES_COPY_OUT) {
			char *buf;
			while (PQgetCopyData(c, &buf, 0) > 0)
				PQfreemem(buf);
			PQclear(r);
			r = PQgetResult(c);
			continue;
		}
		return r;
	}
}

/* The results of one sent query, until the last: out keeps what it says unless a result is
 * refused (the worst one wins). */
static void collect(PGconn *c, char *out, size_t len)
{
	char buf[64];
	PGresult *r;
	while ((r = PQgetResult(c))) {
		r = settle(c, r);
		if (!r)
			break;
		const char *v = verdict(r, buf, sizeof(buf));
		if (strcmp(v, "allow") != 0)
			snprintf(out, len, "%s", v);
		PQclear(r);
	}
}

/* Run one text the simple way; the result of its worst statement wins. */
static void run_simple(PGconn *c, const char *sql, char *out, size_t len)
{
	snprintf(out, len, "allow");
	if (!PQsendQuery(c, sql)) {
		snprintf(out, len, "fail send: %s", PQerrorMessage(c));
		return;
	}
	collect(c, out, len);
}

static void run_extended(PGconn *c, const char *sql, char *out, size_t len)
{
	char buf[64];
	PGresult *r = PQprepare(c, "", sql, 0, NULL);
	snprintf(out, len, "%s", verdict(r, buf, sizeof(buf)));
	ExecStatusType st = PQresultStatus(r);
	PQclear(r);
	if (st != PGRES_COMMAND_OK)
		return;
	if (!PQsendQueryPrepared(c, "", 0, NULL, NULL, NULL, 0)) {
		snprintf(out, len, "fail send: %s", PQerrorMessage(c));
		return;
	}
	collect(c, out, len);
}

/* SELECT 1 | text | SELECT 2, each followed by a Sync, pipelined: the text's verdict, and
 * "skew" if the neighbours did not come back as two rows "1" and "2" (out of step). */
static void run_pipeline(PGconn *c, const char *sql, char *out, size_t len)
{
	const char *texts[3] = {"SELECT 1", sql, "SELECT 2"};
	char buf[64], mid[64] = "allow";
	bool ok = PQenterPipelineMode(c);
	for (int i = 0; ok && i < 3; i++)
		ok = PQsendQueryParams(c, texts[i], 0, NULL, NULL, NULL, NULL, 0) &&
		     PQpipelineSync(c);
	if (!ok) {
		snprintf(out, len, "fail pipeline: %s", PQerrorMessage(c));
		return;
	}
	bool skew = false;
	for (int i = 0; i < 3; i++) {
		PGresult *r;
		while ((r = PQgetResult(c))) {
			r = settle(c, r);
			if (!r)
				break;
			if (i == 1) {
				const char *v = verdict(r, buf, sizeof(buf));
				if (strcmp(v, "allow") != 0)
					snprintf(mid, sizeof(mid), "%s", v);
			} else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
				skew |=
				    PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), i ? "2" : "1");
			} else {
				skew = true;
			}
			PQclear(r);
		}
		PGresult *s = PQgetResult(c); /* the Sync */
		skew |= !s || PQresultStatus(s) != PGRES_PIPELINE_SYNC;
		PQclear(s);
	}
	PQexitPipelineMode(c);
	snprintf(out, len, "%s%s", mid, skew ? " skew" : "");
}

static void run_named(PGconn *c, const char *sql, char *out, size_t len)
{
	char buf[64];
	PGresult *r = PQprepare(c, "pw_named", sql, 0, NULL);
	ExecStatusType st = PQresultStatus(r);
	snprintf(out, len, "%s", verdict(r, buf, sizeof(buf)));
	PQclear(r);
	if (st != PGRES_COMMAND_OK)
		return;
	run_simple(c, "EXECUTE pw_named", out, len);
}

/* MODE with a trailing 'e' ("xe"): \n, \r and \\ in a line stand for those bytes */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s == '\\' && (s[1] == 'n' || s[1] == 'r' || s[1] == '\\')) {
			s++;
			*o++ = *s == 'n' ? '\n' : *s == 'r' ? '\r' : '\\';
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

int main(int argc, char **argv)
{
	char line[65536], out[512];
	if (argc != 3) {
		fprintf(stderr, "usage: policy_client CONNINFO q|x|p|n[e] < lines\n");
		return 2;
	}
	char mode = argv[2][0];
	bool escapes = argv[2][0] && argv[2][1] == 'e';
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (escapes)
			unescape(line);
		PGconn *c = PQconnectdb(argv[1]);
		if (PQstatus(c) != CONNECTION_OK) {
			printf("fail connect: %s\n", strtok(PQerrorMessage(c), "\n"));
			PQfinish(c);
			continue;
		}
		PQsetNoticeProcessor(c, quiet, NULL);
		char *text = line, *sep;
		snprintf(out, sizeof(out), "allow");
		for (;;) {
			sep = strstr(text, " || ");
			if (sep)
				*sep = 0;
			bool last = !sep;
			/* texts before the last one set the session up: always the simple way */
			if (!last || mode == 'q')
				run_simple(c, text, out, sizeof(out));
			else if (mode == 'x')
				run_extended(c, text, out, sizeof(out));
			else if (mode == 'p')
				run_pipeline(c, text, out, sizeof(out));
			else
				run_named(c, text, out, sizeof(out));
			if (last)
				break;
			text = sep + 4;
		}
		printf("%s\n", out);
		fflush(stdout);
		PQfinish(c);
	}
	return 0;
}
