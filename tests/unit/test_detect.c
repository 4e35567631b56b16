/* The content detectors (detect.h), as a table: each text, and what is found in it (the
 * detector and the exact span), near misses found as nothing; then linear time on texts built
 * to make a backtracking matcher slow. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "pgward/detect.h"

struct row {
	const char *name;
	const char *text;
	const char *want; /* "detector:matched text" of each match in order, ";" between; "" none */
};

static const struct row rows[] = {
    {"an email in a sentence", "write to jane.doe+x@mail.example.com today",
     "email:jane.doe+x@mail.example.com"},
    {"an email at the end of a sentence keeps its full stop out", "ask bob@corp.io.",
     "email:bob@corp.io"},
    {"no top-level domain: not an email", "user@localhost", ""},
    {"a card number with spaces (Luhn)", "card 4111 1111 1111 1111 exp 12/30",
     "card:4111 1111 1111 1111"},
    {"a card number with dashes", "5500-0000-0000-0004", "card:5500-0000-0000-0004"},
    {"a wrong Luhn digit is not a card", "4111 1111 1111 1112", ""},
    {"a card inside a longer digit run is not a card", "x41111111111111119999999", ""},
    {"an SSN", "ssn: 123-45-6789.", "ssn:123-45-6789"},
    {"SSN area 000, 666 and 9xx were never issued", "000-12-3456 666-12-3456 912-34-5678", ""},
    {"SSN group 00 or serial 0000 were never issued", "123-00-4567 123-45-0000", ""},
    {"an E.164 phone number", "call +14155552671 now", "phone:+14155552671"},
    {"too short for E.164", "+1234567", ""},
    {"an IBAN", "IBAN DE89370400440532013000 ok", "iban:DE89370400440532013000"},
    {"an IBAN in groups of four", "GB82 WEST 1234 5698 7654 32",
     "iban:GB82 WEST 1234 5698 7654 32"},
    {"a wrong IBAN checksum", "DE88370400440532013000", ""},
    {"IPv4 addresses", "from 10.0.0.1 to 192.168.100.254", "ipv4:10.0.0.1;ipv4:192.168.100.254"},
    {"not IPv4: an octet over 255, a version number", "256.1.1.1 1.2.3.4.5", ""},
    {"IPv6 addresses", "hosts 2001:db8::1 and fe80::a:b:c:d%",
     "ipv6:2001:db8::1;ipv6:fe80::a:b:c:d"},
    {"not IPv6: a time, a C++ scope", "12:30:45 std::vector", ""},
    {"a JWT", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl x",
     "jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"},
    {"two parts are not a JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0", ""},
    {"an AWS access key id", "key=AKIAIOSFODNN7EXAMPLE;", "aws_key:AKIAIOSFODNN7EXAMPLE"},
    {"a GitHub token", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 end",
     "github_token:ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
    {"a GitHub-like token of the wrong length", "ghp_abc123", ""},
    {"a Slack token", "xoxb-1234567890-abcdefghij", "slack_token:xoxb-1234567890-abcdefghij"},
    {"a PEM private key, whole",
     "k=-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- tail",
     "private_key:-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"},
    {"a PEM private key cut short: the rest of the text", "-----BEGIN PRIVATE KEY-----\nMIIE",
     "private_key:-----BEGIN PRIVATE KEY-----\nMIIE"},
    {"a certificate is not a private key", "-----BEGIN CERTIFICATE-----\nMIIB", ""},
    {"several kinds in one text", "a@b.co 4111111111111111 10.1.2.3",
     "email:a@b.co;card:4111111111111111;ipv4:10.1.2.3"},
    {"plain text finds nothing", "nothing to see here, 42 and 3.14", ""},
};

static void table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		char got[512] = "";
		size_t o = 0, from = 0, n = strlen(r->text);
		struct pw_detect_match m;
		while (pw_detect_next((const uint8_t *)r->text, n, from, PW_DET_ALL, &m)) {
			o +=
			    (size_t)snprintf(got + o, sizeof(got) - o, "%s%s:%.*s", o ? ";" : "",
			                     pw_detector_name(m.what), (int)m.len, r->text + m.off);
			from = m.off + m.len;
		}
		bool ok = !strcmp(got, r->want);
		for (char *c = got; *c; c++)
			if (*c == '\n')
				*c = '|'; /* one TAP line */
		CHECK(ok, "%s (%s)", r->name, got[0] ? got : "nothing");
	}
}

static void names(void)
{
	bool ok = true;
	for (int d = 0; d < PW_DET_N; d++)
		ok &= pw_detector_from_name(pw_detector_name(d)) == d;
	CHECK(ok && pw_detector_from_name("nope") < 0, "every detector's name reads back");
	struct pw_detect_match m;
	const char *t = "a@b.co 123-45-6789";
	CHECK(pw_detect_next((const uint8_t *)t, strlen(t), 0, 1u << PW_DET_SSN, &m) &&
	          m.what == PW_DET_SSN && m.off == 7,
	      "only the detectors asked for run");
}

/* Texts built to make a backtracking matcher quadratic: 16 times the text must take about 16
 * times as long (a quadratic scan takes 256 times; the bound, 48, leaves room for a loaded
 * machine without letting that through). A ratio within one run, not a speed. */
static double scan(const char *unit, size_t total)
{
	size_t ul = strlen(unit), n = total / ul * ul;
	uint8_t *s = malloc(n);
	for (size_t k = 0; k < n; k += ul)
		memcpy(s + k, unit, ul);
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	struct pw_detect_match m;
	size_t from = 0;
	while (pw_detect_next(s, n, from, PW_DET_ALL, &m))
		from = m.off + m.len;
	clock_gettime(CLOCK_MONOTONIC, &b);
	free(s);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void linear(void)
{
	static const char *const units[] = {
	    "eyJ",   "a@",   "1 ",   "a.",    "-----BEGIN PRIVATE KEY-----",
	    "ghp_a", "::a:", "DE89", "x@y.z", "1.1."};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		double small = scan(units[i], 64 * 1024), big = scan(units[i], 1024 * 1024);
		CHECK(big < 48 * small + 0.05,
		      "linear on repeated \"%s\" (64 KiB %.3f s, 1 MiB %.3f s)", units[i], small,
		      big);
	}
}

int main(void)
{
	table();
	names();
	linear();
	return check_done();
}
