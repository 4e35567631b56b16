/* A libpq client for the masking corpus (tests/integration/masking.sh): runs each input line on
 * a new connection of its own and writes down everything it received, for the harness to look
 * for secrets in. Usage: mask_client CONNINFO TRACEFILE MODE < lines
 *   MODE b: a line holding one statement runs through the extended protocol (PQexecParams),
 *           results in binary
 *        t: the same, results in text
 *   A line holding several statements (";" outside quotes, comments and dollar quotes) runs
 *   through the simple protocol (one Query, as PQexec sends it, every result read). With 's'
 *   after the mode ("bs", "ts") such a line's statements run one by one through the extended
 *   protocol instead, on the same connection, until one fails.
 * Every connection is traced from its start (PQtrace, PQTRACE_SUPPRESS_TIMESTAMPS) into
 * TRACEFILE, appended, after a line "=== line N ===". Standard output gets, after the same
 * line and the statement, every result: column names and types, rows (binary values decoded
 * for the common types, records and arrays included, anything else as bytes; bytes outside
 * printable ASCII as \xHH), COPY data as received, notices and errors with every field of
 * PQresultErrorField, notifications. Standard error gets one verdict per input line: "ok",
 * "deny" (a statement refused by pgward: SQLSTATE 42501, a message starting "pgward:"),
 * "error SQLSTATE" (the first other error) or "fail <why>" (no connection). */
#include <ctype.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define MAX_STMTS 64

static char verdict[160];

static const struct {
	int code;
	const char *name;
} diag_fields[] = {
    {PG_DIAG_SEVERITY, "severity"},
    {PG_DIAG_SEVERITY_NONLOCALIZED, "severity_nonlocalized"},
    {PG_DIAG_SQLSTATE, "sqlstate"},
    {PG_DIAG_MESSAGE_PRIMARY, "message"},
    {PG_DIAG_MESSAGE_DETAIL, "detail"},
    {PG_DIAG_MESSAGE_HINT, "hint"},
    {PG_DIAG_STATEMENT_POSITION, "position"},
    {PG_DIAG_INTERNAL_POSITION, "internal_position"},
    {PG_DIAG_INTERNAL_QUERY, "internal_query"},
    {PG_DIAG_CONTEXT, "context"},
    {PG_DIAG_SCHEMA_NAME, "schema"},
    {PG_DIAG_TABLE_NAME, "table"},
    {PG_DIAG_COLUMN_NAME, "column"},
    {PG_DIAG_DATATYPE_NAME, "datatype"},
    {PG_DIAG_CONSTRAINT_NAME, "constraint"},
    {PG_DIAG_SOURCE_FILE, "source_file"},
    {PG_DIAG_SOURCE_LINE, "source_line"},
    {PG_DIAG_SOURCE_FUNCTION, "source_function"},
};

static void put_bytes(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (isprint(s[i]))
			putchar(s[i]);
		else
			printf("\\x%02x", s[i]);
	}
}

static void put_text(const char *s)
{
	put_bytes((const unsigned char *)s, strlen(s));
}

static void print_fields(const char *what, const PGresult *r)
{
	printf("%s", what);
	for (size_t i = 0; i < sizeof(diag_fields) / sizeof(diag_fields[0]); i++) {
		const char *v = PQresultErrorField(r, diag_fields[i].code);
		if (v) {
			printf(" %s=[", diag_fields[i].name);
			put_text(v);
			putchar(']');
		}
	}
	printf("\n%s text=[", what);
	put_text(PQresultErrorMessage(r));
	printf("]\n");
}

static void on_notice(void *arg, const PGresult *r)
{
	(void)arg;
	print_fields("NOTICE", r);
}

/* ---- binary values ------------------------------------------------------------------------ */

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int32_t be32(const unsigned char *p)
{
	return (int32_t)(uint32_t)be(p, 4);
}

static void put_binary(const unsigned char *p, int n, uint32_t type, int depth);

/* numeric: ndigits, weight, sign, dscale, then base-10000 digits */
static bool put_numeric(const unsigned char *p, int n)
{
	if (n < 8)
		return false;
	int nd = (int16_t)be(p, 2), weight = (int16_t)be(p + 2, 2), dscale = (int16_t)be(p + 6, 2);
	unsigned sign = (unsigned)be(p + 4, 2);
	if (nd < 0 || n != 8 + 2 * nd || dscale < 0)
		return false;
	if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000) {
		printf("%s", sign == 0xC000 ? "NaN" : sign == 0xD000 ? "Infinity" : "-Infinity");
		return true;
	}
	if (sign == 0x4000)
		putchar('-');
	if (weight < 0)
		putchar('0');
	for (int d = 0; d <= weight; d++) {
		int dig = d < nd ? (int)be(p + 8 + 2 * d, 2) : 0;
		if (d)
			printf("%04d", dig);
		else
			printf("%d", dig);
	}
	if (dscale > 0) {
		char frac[4200];
		int len = 0;
		for (int d = weight + 1; len < dscale && len < 4096; d++) {
			int dig = d >= 0 && d < nd ? (int)be(p + 8 + 2 * d, 2) : 0;
			len += snprintf(frac + len, sizeof(frac) - (size_t)len, "%04d", dig);
		}
		printf(".%.*s", dscale < len ? dscale : len, frac);
	}
	return true;
}

/* a record: field count, then per field its type, length (-1: NULL) and bytes */
static bool put_record(const unsigned char *p, int n, int depth)
{
	if (n < 4 || be32(p) < 0)
		return false;
	int nf = be32(p), pos = 4;
	for (int i = 0; i < nf; i++) {
		if (n - pos < 8)
			return false;
		int len = be32(p + pos + 4);
		pos += 8;
		if (len > n - pos)
			return false;
		pos += len > 0 ? len : 0;
	}
	if (pos != n)
		return false;
	putchar('(');
	pos = 4;
	for (int i = 0; i < nf; i++) {
		uint32_t type = (uint32_t)be(p + pos, 4);
		int len = be32(p + pos + 4);
		pos += 8;
		if (i)
			putchar(',');
		if (len < 0) {
			printf("NULL");
			continue;
		}
		put_binary(p + pos, len, type, depth + 1);
		pos += len;
	}
	putchar(')');
	return true;
}

/* an array: dimensions, flags, element type, each dimension's size and lower bound, then per
 * element its length (-1: NULL) and bytes */
static bool put_array(const unsigned char *p, int n, int depth)
{
	if (n < 12)
		return false;
	int ndim = be32(p), flags = be32(p + 4);
	uint32_t type = (uint32_t)be(p + 8, 4);
	long count = ndim ? 1 : 0;
	if (ndim < 0 || ndim > 6 || (flags != 0 && flags != 1) || n < 12 + 8 * ndim)
		return false;
	for (int d = 0; d < ndim; d++) {
		int dim = be32(p + 12 + 8 * d);
		if (dim < 0 || dim > 1000000)
			return false;
		count *= dim;
	}
	int pos = 12 + 8 * ndim;
	for (long i = 0; i < count; i++) {
		if (n - pos < 4)
			return false;
		int len = be32(p + pos);
		pos += 4;
		if (len > n - pos)
			return false;
		pos += len > 0 ? len : 0;
	}
	if (pos != n || count > 1000000)
		return false;
	putchar('{');
	pos = 12 + 8 * ndim;
	for (long i = 0; i < count; i++) {
		int len = be32(p + pos);
		pos += 4;
		if (i)
			putchar(',');
		if (len < 0) {
			printf("NULL");
			continue;
		}
		put_binary(p + pos, len, type, depth + 1);
		pos += len;
	}
	putchar('}');
	return true;
}

static bool put_scalar(const unsigned char *p, int n, uint32_t type)
{
	switch (type) {
	case 16: /* bool */
		if (n != 1)
			return false;
		putchar(p[0] ? 't' : 'f');
		return true;
	case 21: /* int2 */
		if (n != 2)
			return false;
		printf("%d", (int16_t)be(p, 2));
		return true;
	case 23:   /* int4 */
	case 1082: /* date: days since 2000-01-01 */
		if (n != 4)
			return false;
		printf("%d", be32(p));
		return true;
	case 24:   /* regproc */
	case 26:   /* oid */
	case 2205: /* regclass */
	case 2206: /* regtype */
		if (n != 4)
			return false;
		printf("%u", (uint32_t)be(p, 4));
		return true;
	case 20:   /* int8 */
	case 1114: /* timestamp: microseconds since 2000-01-01 */
	case 1184: /* timestamptz */
		if (n != 8)
			return false;
		printf("%lld", (long long)(int64_t)be(p, 8));
		return true;
	case 700: /* float4 */
	case 701: /* float8 */
		if (n != (type == 700 ? 4 : 8))
			return false;
		if (type == 700) {
			uint32_t u = (uint32_t)be(p, 4);
			float f;
			memcpy(&f, &u, 4);
			printf("%.9g", (double)f);
		} else {
			uint64_t u = be(p, 8);
			double f;
			memcpy(&f, &u, 8);
			printf("%.17g", f);
		}
		return true;
	case 1700:
		return put_numeric(p, n);
	case 2950: /* uuid */
		if (n != 16)
			return false;
		for (int i = 0; i < 16; i++)
			printf("%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", p[i]);
		return true;
	case 3802: /* jsonb: a version byte, then the text */
	case 4072: /* jsonpath */
		if (n < 1 || p[0] != 1)
			return false;
		put_bytes(p + 1, (size_t)n - 1);
		return true;
	default:
		return false;
	}
}

/* Text-like types (their binary form is their text), scalars, then by shape: a record, an
 * array; failing all, the bytes. */
static void put_binary(const unsigned char *p, int n, uint32_t type, int depth)
{
	static const uint32_t texts[] = {17, 18, 19, 25, 114, 142, 705, 1042, 1043};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (type == texts[i]) {
			put_bytes(p, (size_t)n);
			return;
		}
	if (put_scalar(p, n, type))
		return;
	if (depth < 8 && (put_record(p, n, depth) || put_array(p, n, depth)))
		return;
	put_bytes(p, (size_t)n);
}

/* ---- results ------------------------------------------------------------------------------ */

static void judge(const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	if (state && !strcmp(state, "42501") && msg && !strncmp(msg, "pgward:", 7))
		snprintf(verdict, sizeof(verdict), "deny");
	else if (!strcmp(verdict, "ok"))
		snprintf(verdict, sizeof(verdict), "error %s", state ? state : "?");
}

static void print_rows(const PGresult *r)
{
	int nf = PQnfields(r);
	printf("COLUMNS");
	for (int j = 0; j < nf; j++) {
		printf("%s", j ? " | " : " ");
		put_text(PQfname(r, j));
		printf(" (type %u, format %d)", PQftype(r, j), PQfformat(r, j));
	}
	putchar('\n');
	for (int i = 0; i < PQntuples(r); i++) {
		printf("ROW");
		for (int j = 0; j < nf; j++) {
			printf("%s", j ? " | " : " ");
			const unsigned char *v = (const unsigned char *)PQgetvalue(r, i, j);
			if (PQgetisnull(r, i, j))
				printf("NULL");
			else if (PQfformat(r, j) == 1)
				put_binary(v, PQgetlength(r, i, j), PQftype(r, j), 0);
			else
				put_bytes(v, (size_t)PQgetlength(r, i, j));
		}
		putchar('\n');
	}
}

static void print_notifies(PGconn *c)
{
	PGnotify *n;
	PQconsumeInput(c);
	while ((n = PQnotifies(c))) {
		printf("NOTIFY channel=[");
		put_text(n->relname);
		printf("] pid=%d payload=[", n->be_pid);
		put_text(n->extra);
		printf("]\n");
		PQfreemem(n);
	}
}

/* COPY OUT: the data as received, raw (binary COPY included) */
static void copy_out(PGconn *c)
{
	char *buf;
	int n;
	printf("COPY DATA\n");
	while ((n = PQgetCopyData(c, &buf, 0)) > 0) {
		fwrite(buf, 1, (size_t)n, stdout);
		PQfreemem(buf);
	}
	printf("\nCOPY END %d\n", n);
}

/* Every result of what was sent, until the last. */
static void drain(PGconn *c)
{
	PGresult *r;
	while ((r = PQgetResult(c))) {
		ExecStatusType st = PQresultStatus(r);
		printf("RESULT %s [", PQresStatus(st));
		put_text(PQcmdStatus(r));
		printf("]\n");
		if (st == PGRES_TUPLES_OK || st == PGRES_SINGLE_TUPLE)
			print_rows(r);
		else if (st == PGRES_COPY_OUT)
			copy_out(c);
		else if (st == PGRES_COPY_IN)
			PQputCopyEnd(c, "mask_client sends no COPY data");
		else if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
		         st == PGRES_BAD_RESPONSE) {
			print_fields("ERROR", r);
			judge(r);
		}
		PQclear(r);
		print_notifies(c);
	}
}

/* ---- statements --------------------------------------------------------------------------- */

static bool ident_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '$' || (unsigned char)ch >= 0x80;
}

/* The end of the quoted, commented or dollar-quoted part starting at s[i] (i itself when none
 * starts there). */
static size_t skip_quoted(const char *s, size_t i)
{
	size_t k;
	if (s[i] == '\'' || s[i] == '"') {
		char q = s[i];
		bool esc = q == '\'' && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
		           (i < 2 || !ident_char(s[i - 2]));
		for (k = i + 1; s[k]; k++) {
			if (esc && s[k] == '\\' && s[k + 1])
				k++;
			else if (s[k] == q && s[k + 1] == q)
				k++;
			else if (s[k] == q)
				return k + 1;
		}
		return k;
	}
	if (s[i] == '-' && s[i + 1] == '-')
		return i + strcspn(s + i, "\n");
	if (s[i] == '/' && s[i + 1] == '*') {
		int depth = 0;
		for (k = i; s[k]; k++) {
			if (s[k] == '/' && s[k + 1] == '*')
				depth++, k++;
			else if (s[k] == '*' && s[k + 1] == '/' && --depth == 0)
				return k + 2;
			else if (s[k] == '*' && s[k + 1] == '/')
				k++;
		}
		return k;
	}
	if (s[i] == '$' && (i == 0 || !ident_char(s[i - 1]))) {
		char tag[64];
		for (k = i + 1; isalpha((unsigned char)s[k]) || s[k] == '_' ||
		                (k > i + 1 && isdigit((unsigned char)s[k]));
		     k++)
			;
		if (s[k] != '$' || k + 1 - i >= sizeof(tag))
			return i;
		memcpy(tag, s + i, k + 1 - i);
		tag[k + 1 - i] = 0;
		const char *end = strstr(s + k + 1, tag);
		return end ? (size_t)(end - s) + strlen(tag) : strlen(s);
	}
	return i;
}

/* Splits sql (in place) at the ";" outside quotes, comments, dollar quotes and parentheses;
 * the statements that hold more than blanks, at most max. */
static int split_statements(char *sql, char **stmts, int max)
{
	int n = 0, paren = 0;
	char *start = sql;
	for (size_t i = 0;;) {
		size_t k = skip_quoted(sql, i);
		if (k != i) {
			i = k;
			continue;
		}
		char ch = sql[i];
		if (ch == '(')
			paren++;
		else if (ch == ')' && paren > 0)
			paren--;
		if (ch == 0 || (ch == ';' && paren == 0)) {
			sql[i] = 0;
			if (start[strspn(start, " \t\r\n")] && n < max)
				stmts[n++] = start;
			if (ch == 0)
				return n;
			start = sql + i + 1;
		}
		i++;
	}
}

static void run_extended(PGconn *c, const char *sql, int format)
{
	if (!PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, format)) {
		printf("SEND FAILED ");
		put_text(PQerrorMessage(c));
		putchar('\n');
		snprintf(verdict, sizeof(verdict), "fail send");
		return;
	}
	drain(c);
}

static void run_line(PGconn *c, const char *line, int format, bool split)
{
	char *copy = strdup(line), *stmts[MAX_STMTS];
	int n = split_statements(copy, stmts, MAX_STMTS);
	if (n <= 1) {
		run_extended(c, line, format);
	} else if (split) {
		for (int i = 0; i < n && !strcmp(verdict, "ok"); i++) {
			printf("STATEMENT %d\n", i + 1);
			run_extended(c, stmts[i], format);
		}
	} else if (!PQsendQuery(c, line)) {
		printf("SEND FAILED ");
		put_text(PQerrorMessage(c));
		putchar('\n');
		snprintf(verdict, sizeof(verdict), "fail send");
	} else {
		drain(c);
	}
	free(copy);
}

/* A connection traced from its first message. */
static PGconn *connect_traced(const char *conninfo, FILE *trace)
{
	PGconn *c = PQconnectStart(conninfo);
	if (!c || PQstatus(c) == CONNECTION_BAD)
		return c;
	PQtrace(c, trace);
	PQsetTraceFlags(c, PQTRACE_SUPPRESS_TIMESTAMPS);
	PQsetNoticeReceiver(c, on_notice, NULL);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		struct pollfd p = {.fd = PQsocket(c),
		                   .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		if (poll(&p, 1, 30000) <= 0)
			break;
		st = PQconnectPoll(c);
	}
	return c;
}

int main(int argc, char **argv)
{
	static char line[1 << 20];
	if (argc != 4 || (argv[3][0] != 'b' && argv[3][0] != 't') ||
	    (argv[3][1] && strcmp(argv[3] + 1, "s"))) {
		fprintf(stderr, "usage: mask_client CONNINFO TRACEFILE b|t[s] < lines\n");
		return 2;
	}
	int format = argv[3][0] == 'b' ? 1 : 0;
	bool split = argv[3][1] == 's';
	FILE *trace = fopen(argv[2], "a");
	if (!trace) {
		perror(argv[2]);
		return 2;
	}
	for (int no = 1; fgets(line, sizeof(line), stdin); no++) {
		line[strcspn(line, "\n")] = 0;
		fprintf(trace, "=== line %d ===\n", no);
		fflush(trace);
		printf("=== line %d ===\n", no);
		put_text(line);
		putchar('\n');
		snprintf(verdict, sizeof(verdict), "ok");
		PGconn *c = connect_traced(argv[1], trace);
		if (PQstatus(c) != CONNECTION_OK) {
			char *why = PQerrorMessage(c);
			snprintf(verdict, sizeof(verdict), "fail connect: %.*s",
			         (int)strcspn(why, "\n"), why);
			printf("CONNECT FAILED ");
			put_text(why);
			putchar('\n');
		} else {
			run_line(c, line, format, split);
		}
		printf("VERDICT %s\n", verdict);
		fflush(stdout);
		fprintf(stderr, "%s\n", verdict);
		fflush(stderr);
		PQfinish(c);
		fflush(trace);
	}
	fclose(trace);
	return 0;
}
