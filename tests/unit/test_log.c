/* pw_logq: client-controlled values in log lines, quoted and escaped (log injection). */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "pgward/log.h"

int main(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"app", "\"app\""},
	    {"", "\"\""},
	    {"a b", "\"a b\""},
	    {"say \"hi\"", "\"say \\\"hi\\\"\""},
	    {"back\\slash", "\"back\\\\slash\""},
	    {"line\nforged 2026 info  x", "\"line\\x0aforged 2026 info  x\""},
	    {"cr\rtab\tesc\x1b[31m", "\"cr\\x0dtab\\x09esc\\x1b[31m\""},
	    {"del\x7f", "\"del\\x7f\""},
	    {"\xff\xfe", "\"\\xff\\xfe\""},
	    {"caf\xc3\xa9", "\"caf\\xc3\\xa9\""}, /* UTF-8 too: the line stays ASCII */
	};
	char buf[PW_LOGQ_MAX];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = pw_logq(buf, sizeof(buf), cases[i].in);
		CHECK(got == buf && strcmp(got, cases[i].out) == 0, "case %zu: %s", i + 1, got);
	}
	CHECK(strcmp(PW_Q(NULL), "-") == 0, "NULL prints as -");
	CHECK(strcmp(pw_logqn(buf, sizeof(buf), "ab\0cd", 5), "\"ab\\x00cd\"") == 0,
	      "a length, not a NUL, ends the value of pw_logqn");
	/* bounded: a long value is cut, said so, and never overflows */
	char big[5000];
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	const char *q = PW_Q(big);
	size_t n = strlen(q);
	CHECK(n < PW_LOGQ_MAX && n > PW_LOGQ_MAX - 16,
	      "a long value fills at most the buffer (%zu)", n);
	CHECK(strcmp(q + n - 4, "\"...") == 0 && q[0] == '"', "a cut value ends in \"...");
	CHECK(!strchr(q, '\n'), "no newline survives");
	char small[12];
	CHECK(strcmp(pw_logq(small, sizeof(small), "abcdefghijk"), "\"abc\"...") == 0,
	      "a small buffer: cut early (%s)", small);
	char tiny[4] = "zzz";
	pw_logq(tiny, sizeof(tiny), "abc");
	CHECK(tiny[0] == 0, "a buffer too small for anything: empty");
	/* two in one call: each has its own buffer */
	char line[256];
	snprintf(line, sizeof(line), "user=%s database=%s", PW_Q("a\"b"), PW_Q("c\nd"));
	CHECK(strcmp(line, "user=\"a\\\"b\" database=\"c\\x0ad\"") == 0,
	      "PW_Q twice in one call: %s", line);
	return check_done();
}
