/* Unit tests for audit_session.c: a session's statements followed from the client's messages
 * to the server's answers, as tables of protocol exchanges (what the client sends, in order,
 * with the policy's verdict; what the server answers) and the statement records they must
 * leave in the trail (protocol, text, parameters, status, tags, rows, SQLSTATE). Then random
 * message sequences in any order: whatever the peers send, no crash, bounded state. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgward/audit.h"
#include "pgward/audit_session.h"
#include "pgward/proto.h"
#include "check.h"

static char dir[64], trail[128];
static int started;

/* ---- messages ---- */

struct msg {
	uint8_t b[512];
	size_t n;
};

/* type, then the body given as pieces: "s" a C string with its NUL, "h" an int16, "i" an
 * int32, "b" raw bytes (pointer, length). */
static struct msg mk(char type, const char *fmt, ...)
{
	struct msg m = {.n = 5};
	m.b[0] = (uint8_t)type;
	va_list ap;
	va_start(ap, fmt);
	for (const char *f = fmt; *f; f++) {
		if (*f == 's') {
			const char *s = va_arg(ap, const char *);
			size_t l = strlen(s) + 1;
			memcpy(m.b + m.n, s, l);
			m.n += l;
		} else if (*f == 'h') {
			int v = va_arg(ap, int);
			m.b[m.n++] = (uint8_t)(v >> 8);
			m.b[m.n++] = (uint8_t)v;
		} else if (*f == 'i') {
			int v = va_arg(ap, int);
			pw_put_be32(m.b + m.n, (uint32_t)v);
			m.n += 4;
		} else if (*f == 'b') {
			const char *p = va_arg(ap, const char *);
			size_t l = va_arg(ap, size_t);
			memcpy(m.b + m.n, p, l);
			m.n += l;
		}
	}
	va_end(ap);
	pw_put_be32(m.b + 1, (uint32_t)(m.n - 1));
	return m;
}

static struct msg error_msg(const char *code)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "SERROR%cC%s%cMboom%c", 0, code, 0, 0);
	return mk('E', "bh", body, (size_t)n, 0) /* the trailing zero byte of the field list */;
}

/* ---- a session driven by hand ---- */

static struct pw_audit_session *as;

static void query(const char *sql, bool refused)
{
	struct pw_stmt m = {.type = 'Q', .sql = sql, .sql_len = strlen(sql)};
	struct pw_deny d = {.sqlstate = "42501", .message = "pgward: no"};
	struct pw_inspect_facts f = {
	    .d = {.action = refused ? PW_ACT_DENY : PW_ACT_ALLOW, .by = PW_BY_RULE, .rule = 1}};
	pw_audit_on_statement(as, &m, refused, &d, &f);
}

static void parse(const char *name, const char *sql, bool refused)
{
	struct pw_stmt m = {.type = 'P', .sql = sql, .sql_len = strlen(sql), .name = name};
	struct pw_deny d = {.sqlstate = "42501", .message = "pgward: no"};
	struct pw_inspect_facts f = {.d = {.action = PW_ACT_ALLOW, .by = PW_BY_RULE, .rule = 2}};
	pw_audit_on_statement(as, &m, refused, &d, &f);
}

/* A Bind of one text parameter (or none), no result formats. */
static void bind_one(const char *portal, const char *stmt, const char *param)
{
	struct msg b = param ? mk('B', "sshhibh", portal, stmt, 0, 1, (int)strlen(param), param,
	                          strlen(param), 0)
	                     : mk('B', "sshhh", portal, stmt, 0, 0, 0);
	struct pw_stmt m = {
	    .type = 'B', .name = portal, .stmt = stmt, .body = b.b + 5, .len = b.n - 5};
	pw_audit_on_statement(as, &m, false, NULL, NULL);
}

static void client(struct msg m)
{
	pw_audit_on_client(as, m.b, m.n);
}

static void server(struct msg m)
{
	pw_audit_on_upstream(as, m.b, m.n);
}

static struct msg tag(const char *t)
{
	return mk('C', "s", t);
}
static struct msg rfq(char tx)
{
	char s[2] = {tx, 0};
	return mk('Z', "b", s, (size_t)1);
}

/* ---- the trail's statement records ---- */

static json_t *records(void)
{
	json_t *a = json_array();
	FILE *f = fopen(trail, "r");
	char *line = NULL;
	size_t cap = 0;
	while (f && getline(&line, &cap, f) > 0) {
		json_t *j = json_loads(line, 0, NULL);
		if (j && strcmp(json_string_value(json_object_get(j, "type")), "statement") == 0)
			json_array_append(a, j);
		json_decref(j);
	}
	free(line);
	if (f)
		fclose(f);
	return a;
}

/* Start a trail and a session. */
static void begin(void)
{
	char err[256];
	snprintf(trail, sizeof(trail), "%s/t%d.jsonl", dir, ++started);
	struct pw_audit_config c = {.enabled = true,
	                            .fsync = PW_AUDIT_FSYNC_INTERVAL,
	                            .fsync_interval_ms = 10,
	                            .ring_bytes = 1 << 20,
	                            .max_field_bytes = 4096,
	                            .parameters = true,
	                            .redact = PW_AUDIT_REDACT_DEFAULT};
	snprintf(c.file, sizeof(c.file), "%s", trail);
	if (pw_audit_start(&c, "test", err, sizeof(err)) < 0)
		printf("# %s\n", err);
	as = pw_audit_session_new(7, "agent", false);
}

/* End both; the statement records. */
static json_t *end(void)
{
	pw_audit_session_free(as);
	as = NULL;
	pw_audit_stop("test");
	return records();
}

static const char *sv(json_t *r, const char *k)
{
	const char *s = json_string_value(json_object_get(r, k));
	return s ? s : "(null)";
}

static void test_simple(void)
{
	begin();
	query("SELECT 1", false);
	server(mk('T', "h", 0));
	server(tag("SELECT 1"));
	server(rfq('I'));
	query("SELECT 1/0", false);
	server(error_msg("22012"));
	server(rfq('I'));
	query("INSERT INTO t VALUES (1); UPDATE t SET a = 2", false);
	server(tag("INSERT 0 1"));
	server(tag("UPDATE 3"));
	server(rfq('I'));
	query("DROP TABLE t", true);
	pw_audit_on_refusal_back(as);
	server(rfq('I'));
	query("SELECT pg_sleep(10)", false); /* the session ends before its answer */
	json_t *a = end();
	CHECK(json_array_size(a) == 5, "five statements recorded (%zu)", json_array_size(a));
	json_t *r = json_array_get(a, 0);
	CHECK(r && !strcmp(sv(r, "text"), "SELECT 1") && !strcmp(sv(r, "status"), "done") &&
	          json_integer_value(json_object_get(r, "rows")) == 1 &&
	          !strcmp(sv(r, "protocol"), "simple") &&
	          json_integer_value(json_object_get(r, "rule")) == 1,
	      "a SELECT: done, one row, simple, rule 1");
	r = json_array_get(a, 1);
	CHECK(r && !strcmp(sv(r, "status"), "error") && !strcmp(sv(r, "sqlstate"), "22012"),
	      "an error: status error, its SQLSTATE");
	r = json_array_get(a, 2);
	CHECK(r && json_integer_value(json_object_get(r, "rows")) == 4 &&
	          json_array_size(json_object_get(r, "commands")) == 2,
	      "two statements in one Query: both tags, rows summed");
	r = json_array_get(a, 3);
	CHECK(r && !strcmp(sv(r, "status"), "refused") && !strcmp(sv(r, "decision"), "deny") &&
	          !strcmp(sv(r, "refusal"), "pgward: no"),
	      "a refusal: recorded at once, with its message");
	r = json_array_get(a, 4);
	CHECK(r && !strcmp(sv(r, "status"), "unfinished"), "no answer before the end: unfinished");
	json_decref(a);
}

static void test_extended(void)
{
	begin();
	/* libpq's one-shot: Parse, Bind, Describe portal, Execute, Sync */
	parse("", "SELECT $1::int", false);
	bind_one("", "", "42");
	client(mk('D', "bs", "P", (size_t)1, ""));
	client(mk('E', "si", "", 0));
	client(mk('S', ""));
	server(mk('1', ""));
	server(mk('2', ""));
	server(mk('T', "h", 0));
	server(tag("SELECT 1"));
	server(rfq('I'));
	/* a named statement, executed twice, the second time with a row limit */
	parse("s1", "SELECT * FROM big WHERE a = $1", false);
	client(mk('S', ""));
	server(mk('1', ""));
	server(rfq('I'));
	bind_one("", "s1", "7");
	client(mk('E', "si", "", 0));
	bind_one("p2", "s1", "8");
	client(mk('E', "si", "p2", 10));
	client(mk('S', ""));
	server(mk('2', ""));
	server(tag("SELECT 5"));
	server(mk('2', ""));
	server(mk('s', ""));
	server(rfq('T'));
	/* an error in a pipeline: the rest of its group is skipped */
	bind_one("", "s1", "x");
	client(mk('E', "si", "", 0));
	bind_one("", "s1", "9");
	client(mk('E', "si", "", 0));
	client(mk('S', ""));
	server(mk('2', ""));
	server(error_msg("22P02"));
	server(rfq('E'));
	/* a refused Parse: its sentinel's error, then the Sync */
	parse("", "DROP TABLE big", true);
	client(mk('S', ""));
	pw_audit_on_refusal_back(as);
	server(rfq('I'));
	json_t *a = end();
	CHECK(json_array_size(a) == 7, "seven records: six statements and one prepared (%zu)",
	      json_array_size(a));
	json_t *r = json_array_get(a, 0);
	json_t *p = r ? json_object_get(r, "parameters") : NULL;
	CHECK(r && !strcmp(sv(r, "protocol"), "extended") &&
	          !strcmp(sv(r, "text"), "SELECT $1::int") && json_array_size(p) == 1 &&
	          !strcmp(json_string_value(json_array_get(p, 0)), "42") &&
	          !strcmp(sv(r, "status"), "done") &&
	          json_integer_value(json_object_get(r, "rule")) == 2,
	      "an Execute: the Parse's text, the Bind's parameter, done, the Parse's rule");
	r = json_array_get(a, 1);
	CHECK(r && !strcmp(sv(r, "status"), "prepared") && !strcmp(sv(r, "statement"), "s1"),
	      "the named statement's prepared record");
	r = json_array_get(a, 2);
	CHECK(r && !strcmp(sv(r, "text"), "SELECT * FROM big WHERE a = $1") &&
	          !strcmp(sv(r, "statement"), "s1") &&
	          json_integer_value(json_object_get(r, "rows")) == 5,
	      "a named statement's Execute: its text, 5 rows");
	r = json_array_get(a, 3);
	CHECK(r && !strcmp(sv(r, "status"), "suspended") && !strcmp(sv(r, "portal"), "p2"),
	      "a row limit reached: suspended, on its portal");
	r = json_array_get(a, 4);
	CHECK(r && !strcmp(sv(r, "status"), "error") && !strcmp(sv(r, "sqlstate"), "22P02"),
	      "the failing Execute: error");
	r = json_array_get(a, 5);
	CHECK(r && !strcmp(sv(r, "status"), "skipped"), "the Execute after it: skipped");
	r = json_array_get(a, 6);
	CHECK(r && !strcmp(sv(r, "status"), "refused") && !strcmp(sv(r, "protocol"), "parse"),
	      "a refused Parse: refused");
	json_decref(a);
}

/* Random sequences: every kind of message, valid framing, random bodies, any order. */
/* What the review found: an Execute's text taken when it is sent; the start-up's ReadyForQuery;
 * Syncs ignored in COPY IN; a refusal that is not one; named statements recorded. */
static void test_in_step(void)
{
	begin();
	/* the session ends before the server confirmed Parse and Bind: the text is kept */
	parse("", "DELETE FROM orders", false);
	bind_one("", "", NULL);
	client(mk('E', "si", "", 0));
	client(mk('S', ""));
	json_t *a = end();
	json_t *r = json_array_get(a, 0);
	CHECK(r && !strcmp(sv(r, "status"), "unfinished") &&
	          !strcmp(sv(r, "text"), "DELETE FROM orders"),
	      "an Execute cut short before ParseComplete keeps its text (%s)", sv(r, "text"));
	json_decref(a);

	/* the start-up's ReadyForQuery still to come */
	begin();
	pw_audit_session_free(as);
	as = pw_audit_session_new(8, "agent", true);
	query("SELECT 1", false);
	server(rfq('I')); /* the start-up's */
	server(tag("SELECT 1"));
	server(rfq('I'));
	a = end();
	r = json_array_get(a, 0);
	CHECK(r && !strcmp(sv(r, "status"), "done") &&
	          json_integer_value(json_object_get(r, "rows")) == 1,
	      "the start-up's ReadyForQuery is not taken for the first statement's");
	json_decref(a);

	/* libpq's COPY FROM STDIN in the extended protocol: P B D E S, data, c S */
	begin();
	parse("", "COPY t FROM STDIN", false);
	bind_one("", "", NULL);
	client(mk('D', "bs", "P", (size_t)1, ""));
	client(mk('E', "si", "", 0));
	client(mk('S', ""));
	pw_audit_on_syncs_ignored(as, 1); /* the relay saw CopyData */
	client(mk('S', ""));
	server(mk('1', ""));
	server(mk('2', ""));
	server(mk('n', ""));
	server(tag("COPY 3"));
	server(rfq('I'));
	query("SELECT 2", false);
	server(tag("SELECT 1"));
	server(rfq('I'));
	a = end();
	r = json_array_get(a, 0);
	json_t *r2 = json_array_get(a, 1);
	CHECK(r && !strcmp(sv(r, "text"), "COPY t FROM STDIN") &&
	          json_integer_value(json_object_get(r, "rows")) == 3 && r2 &&
	          !strcmp(sv(r2, "text"), "SELECT 2") && !strcmp(sv(r2, "status"), "done"),
	      "COPY IN: the Sync the server ignored does not shift the answers");
	json_decref(a);

	/* an Execute's own error that looks like a refusal; a named statement */
	begin();
	parse("s9", "SELECT boom()", false);
	client(mk('S', ""));
	server(mk('1', ""));
	server(rfq('I'));
	bind_one("", "s9", NULL);
	client(mk('E', "si", "", 0));
	client(mk('S', ""));
	server(mk('2', ""));
	pw_audit_on_refusal_back(as);
	server(rfq('I'));
	a = end();
	r = json_array_get(a, 0);
	r2 = json_array_get(a, 1);
	CHECK(r && !strcmp(sv(r, "status"), "prepared") && !strcmp(sv(r, "statement"), "s9"),
	      "a named statement: a prepared record with its text");
	CHECK(r2 && !strcmp(sv(r2, "status"), "error") && !strcmp(sv(r2, "text"), "SELECT boom()"),
	      "an error the relay took for a refusal: the Execute is recorded, status error");
	json_decref(a);
}

/* Card numbers and secrets never reach the trail: statement texts and parameters. */
static void test_redaction(void)
{
	begin();
	query("INSERT INTO pay VALUES ('4111 1111 1111 1111', 'ok')", false);
	server(tag("INSERT 0 1"));
	server(rfq('I'));
	parse("", "UPDATE tok SET v = $1 WHERE id = 5", false);
	bind_one("", "", "AKIAIOSFODNN7EXAMPLE");
	client(mk('E', "si", "", 0));
	client(mk('S', ""));
	server(mk('1', ""));
	server(mk('2', ""));
	server(tag("UPDATE 1"));
	server(rfq('I'));
	query("SELECT 4111111111111112", false); /* not a card (Luhn): kept */
	server(tag("SELECT 1"));
	server(rfq('I'));
	json_t *a = end();
	json_t *r0 = json_array_get(a, 0), *r1 = json_array_get(a, 1), *r2 = json_array_get(a, 2);
	CHECK(r0 && !strcmp(sv(r0, "text"), "INSERT INTO pay VALUES ('[redacted:card]', 'ok')"),
	      "a card number in a statement's text is redacted: %s", sv(r0, "text"));
	json_t *p = r1 ? json_object_get(r1, "parameters") : NULL;
	CHECK(p && !strcmp(json_string_value(json_array_get(p, 0)), "[redacted:aws_key]"),
	      "an AWS key in a parameter is redacted");
	CHECK(r2 && !strcmp(sv(r2, "text"), "SELECT 4111111111111112"),
	      "a number that fails the Luhn check is not a card: kept");
	json_decref(a);
}

static void test_random(void)
{
	begin();
	srand(12345);
	static const char up[] = "CEZIs123nTtDGHdcNAS";
	static const char cl[] = "DECSHdfc";
	for (int i = 0; i < 200000 && as; i++) {
		struct msg m = {.n = 5};
		int r = rand() % 10;
		size_t blen = (size_t)(rand() % 40);
		for (size_t k = 0; k < blen; k++)
			m.b[5 + k] = (uint8_t)(rand() % 4 ? rand() : 0);
		m.n += blen;
		if (r < 4) {
			m.b[0] = (uint8_t)up[rand() % (sizeof(up) - 1)];
			pw_put_be32(m.b + 1, (uint32_t)(m.n - 1));
			server(m);
		} else if (r < 7) {
			m.b[0] = (uint8_t)cl[rand() % (sizeof(cl) - 1)];
			pw_put_be32(m.b + 1, (uint32_t)(m.n - 1));
			client(m);
		} else if (r == 7) {
			pw_audit_on_refusal_back(as);
		} else {
			char sql[48], name[8];
			snprintf(sql, sizeof(sql), "SELECT %d", rand());
			snprintf(name, sizeof(name), "n%d", rand() % 3000);
			switch (rand() % 4) {
			case 0:
				query(sql, rand() % 5 == 0);
				break;
			case 1:
				parse(rand() % 2 ? "" : name, sql, rand() % 5 == 0);
				break;
			default:
				bind_one(rand() % 2 ? "" : name, rand() % 2 ? "" : name,
				         rand() % 3 ? "v" : NULL);
				break;
			}
		}
	}
	json_t *a = end();
	CHECK(json_array_size(a) > 0, "200,000 random messages: no crash, %zu records",
	      json_array_size(a));
	json_decref(a);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pw-audit-session.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	test_simple();
	test_extended();
	test_redaction();
	test_in_step();
	test_random();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return check_done();
}
