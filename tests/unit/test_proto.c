/* Framing: startup packet parsing, the messages pgwardd builds, and the direction buffer's
 * rare-path operations (cut, insert) that keep a stream in step. */
#include <string.h>

#include "check.h"
#include "pgward/buf.h"
#include "pgward/proto.h"

static void test_startup(void)
{
	struct pw_startup st;
	const char *why = NULL;
	static const char ok[] = "user\0alice\0database\0db\0options\0-c x=1\0\0";
	CHECK(pw_startup_parse((const uint8_t *)ok, sizeof(ok) - 1, &st, &why) == 0,
	      "startup: a well-formed parameter list parses");
	CHECK(st.n == 3 && strcmp(pw_startup_get(&st, "user"), "alice") == 0 &&
	          strcmp(pw_startup_get(&st, "options"), "-c x=1") == 0,
	      "startup: parameters are found by name, options included");
	CHECK(pw_startup_get(&st, "replication") == NULL, "startup: an absent key is NULL");

	static const char unterminated[] = "user\0alice\0";
	CHECK(pw_startup_parse((const uint8_t *)unterminated, sizeof(unterminated) - 1, &st, &why) <
	              0 &&
	          why,
	      "startup: a list without its final NUL is refused (%s)", why);
	static const char novalue[] = "user\0";
	CHECK(pw_startup_parse((const uint8_t *)novalue, sizeof(novalue) - 1, &st, &why) < 0,
	      "startup: a name without a value is refused (%s)", why);
	static const char trailing[] = "user\0a\0\0junk";
	CHECK(pw_startup_parse((const uint8_t *)trailing, sizeof(trailing) - 1, &st, &why) < 0,
	      "startup: bytes after the terminator are refused (%s)", why);
	CHECK(pw_startup_parse((const uint8_t *)"", 0, &st, &why) < 0,
	      "startup: an empty body is refused");
	char many[PW_MAX_PARAMS * 8 + 16];
	size_t off = 0;
	for (int i = 0; i <= PW_MAX_PARAMS; i++) {
		memcpy(many + off, "k\0v\0", 4);
		off += 4;
	}
	many[off++] = 0;
	CHECK(pw_startup_parse((const uint8_t *)many, off, &st, &why) < 0,
	      "startup: more than %d parameters are refused", PW_MAX_PARAMS);
}

static void test_error_message(void)
{
	uint8_t out[256];
	size_t n = pw_msg_error_to(out, sizeof(out), "FATAL", "08P01", "bad thing", NULL);
	CHECK(n > 0 && out[0] == 'E' && pw_be32(out + 1) == n - 1,
	      "error: type and length are consistent (%zu bytes)", n);
	CHECK(out[n - 1] == 0, "error: field list ends with a NUL");
	const char *c = pw_error_field(out + 5, n - 5, 'C');
	const char *m = pw_error_field(out + 5, n - 5, 'M');
	const char *s = pw_error_field(out + 5, n - 5, 'S');
	CHECK(c && strcmp(c, "08P01") == 0 && m && strcmp(m, "bad thing") == 0 && s &&
	          strcmp(s, "FATAL") == 0,
	      "error: SQLSTATE, message and severity read back");
	CHECK(pw_msg_error_to(out, 20, "FATAL", "08P01", "a message that does not fit", NULL) == 0,
	      "error: a message that does not fit is refused, not truncated");
}

static void test_types(void)
{
	const char *valid = "BCDEFHPQSXcdf";
	int good = 0, bad = 0;
	for (int t = 0; t < 256; t++) {
		bool v = pw_frontend_type_valid((uint8_t)t);
		if (t && strchr(valid, t))
			good += v;
		else
			bad += v;
	}
	CHECK(good == 13 && bad == 0, "types: exactly the 13 frontend message types are valid");
}

static void test_buf(void)
{
	struct pw_buf b;
	CHECK(pw_buf_init(&b, 16) == 0, "buf: init");
	pw_buf_append(&b, "0123456789", 10);
	b.scan = 2;
	pw_buf_cut(&b, 3); /* removes 234 */
	CHECK(b.end == 7 && memcmp(b.data, "0156789", 7) == 0, "buf: cut removes unscanned bytes");
	pw_buf_insert(&b, "ab", 2);
	CHECK(b.scan == 4 && b.end == 9 && memcmp(b.data, "01ab56789", 9) == 0,
	      "buf: insert goes before the unscanned bytes and is decided");
	/* insert past capacity grows */
	pw_buf_insert(&b, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 26);
	CHECK(b.cap >= 35 && b.end == 35 && memcmp(b.data + 4, "ABCDEFGHIJ", 10) == 0 &&
	          memcmp(b.data + 30, "56789", 5) == 0,
	      "buf: insert grows the buffer and keeps the order");
	/* compaction keeps [start, end) */
	b.start = 4;
	pw_buf_compact(&b);
	CHECK(b.start == 0 && b.scan == 26 && b.end == 31 && memcmp(b.data, "ABC", 3) == 0,
	      "buf: compact moves live bytes to the front");
	CHECK(pw_buf_reserve_at_scan(&b, 1000) == 0 && b.cap - b.scan >= 1000,
	      "buf: reserve makes room for a whole message at scan");
	/* settle shrinks back once drained */
	b.start = b.scan = b.end;
	pw_buf_settle(&b);
	CHECK(b.start == 0 && b.end == 0 && b.cap == 16, "buf: settle resets and shrinks");
	pw_buf_free(&b);
	CHECK(b.data == NULL, "buf: free");
}

int main(void)
{
	test_startup();
	test_error_message();
	test_types();
	test_buf();
	return check_done();
}
