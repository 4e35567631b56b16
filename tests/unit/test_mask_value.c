/* Masking one value (mask_value.h), as a table: each strategy on each kind of type, and what
 * the cell becomes (always a valid text of its type, or NULL); then the hash's promises: the
 * same value under the same key gives the same output, another key another one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/mask_value.h"

struct row {
	const char *name;
	const char *strategy;
	int keep;
	uint32_t type;
	const char *value;
	const char *want; /* NULL: SQL NULL */
};

static const struct row rows[] = {
    {"redact a text", "redact", 0, 25, "jane@example.com", "[redacted]"},
    {"redact an integer: still an integer", "redact", 0, 23, "123456789", "0"},
    {"redact a date", "redact", 0, 1082, "1980-02-29", "1970-01-01"},
    {"redact a uuid", "redact", 0, 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
     "00000000-0000-0000-0000-000000000000"},
    {"redact a jsonb", "redact", 0, 3802, "{\"ssn\": \"123-45-6789\"}", "null"},
    {"redact a type pgward has no replacement for: NULL", "redact", 0, 600, "(1,2)", NULL},
    {"null", "null", 0, 25, "secret", NULL},
    {"partial keeps the last four", "partial", 4, 1043, "4111111111111111", "****1111"},
    {"partial counts characters, not bytes", "partial", 2, 25, "h\xc3\xa9llo w\xc3\xb6rld\xc3\xa9",
     "****d\xc3\xa9"},
    {"partial of a value no longer than what is kept shows none of it", "partial", 8, 25, "abc",
     "****"},
    {"partial of an integer redacts it", "partial", 4, 20, "9876543210", "0"},
    {"email keeps the domain", "email", 0, 25, "jane.doe@example.com", "****@example.com"},
    {"email of a value that is not an address redacts it", "email", 0, 25, "no address",
     "[redacted]"},
    /* python3: hmac.new(key, b"jane@example.com", hashlib.sha256).hexdigest() */
    {"hash of a text: HMAC-SHA-256 in hex, as any HMAC implementation gives it", "hash", 0, 25,
     "jane@example.com", "e54ecd8285defd5c7a03f9025dba809862224f8c4b3b8ec1b7844d775a27b734"},
};

static const struct pw_mask_key key1 = {.k = "0123456789abcdef0123456789abcdef", .len = 32};
static const struct pw_mask_key key2 = {.k = "fedcba9876543210fedcba9876543210", .len = 32};

static void table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		char out[256];
		long l =
		    pw_mask_text(pw_mask_strategy_from_name(r->strategy), r->keep, &key1, r->type,
		                 (const uint8_t *)r->value, strlen(r->value), out, sizeof(out));
		bool ok = r->want ? l >= 0 && !strcmp(out, r->want) : l == -1;
		CHECK(ok, "%s (%s)", r->name, l == -1 ? "NULL" : l < 0 ? "error" : out);
	}
}

static long mask(enum pw_mask_strategy s, const struct pw_mask_key *k, uint32_t type, const char *v,
                 char *out)
{
	return pw_mask_text(s, 0, k, type, (const uint8_t *)v, strlen(v), out, 256);
}

static void hashes(void)
{
	char a[256], b[256], c[256], d[256];
	mask(PW_MASK_HASH, &key1, 25, "alice", a);
	mask(PW_MASK_HASH, &key1, 25, "alice", b);
	mask(PW_MASK_HASH, &key2, 25, "alice", c);
	mask(PW_MASK_HASH, &key1, 25, "alicf", d);
	CHECK(!strcmp(a, b) && strcmp(a, c) && strcmp(a, d) && strlen(a) == 64,
	      "hash: deterministic under a key, another under another key, another for another "
	      "value");
	long l = mask(PW_MASK_HASH, &key1, 21, "42", a);
	long v = l > 0 ? strtol(a, NULL, 10) : -1;
	CHECK(l > 0 && v >= 0 && v <= 32767, "hash of an int2 stays an int2 (%s)", a);
	l = mask(PW_MASK_HASH, &key1, 2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", a);
	CHECK(l == 36 && a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-',
	      "hash of a uuid stays a uuid (%s)", a);
	l = mask(PW_MASK_HASH, &key1, 1082, "2020-01-01", a);
	CHECK(l > 0 && !strcmp(a, "1970-01-01"), "hash of a date: redacted (no hash reads as one)");
	char small[4];
	CHECK(pw_mask_text(PW_MASK_REDACT, 0, &key1, 25, (const uint8_t *)"x", 1, small,
	                   sizeof(small)) == -2,
	      "an output buffer too small is an error, not a cut value");
	bool names = true;
	for (int s = 0; s < PW_MASK_N; s++)
		names &= pw_mask_strategy_from_name(pw_mask_strategy_name(s)) == s;
	CHECK(names && pw_mask_strategy_from_name("scramble") < 0,
	      "every strategy's name reads back");
}

int main(void)
{
	table();
	hashes();
	return check_done();
}
