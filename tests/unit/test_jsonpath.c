/* The strict JSON-path reader (user/jsonpath.c) as a table: each case reads one member of a
 * small object with one getter and names the return and the error it must give. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/jsonpath.h"
#include "check.h"

enum getter { G_STR, G_INT, G_BOOL, G_SECONDS, G_ENUM, G_NAMES, G_KEYS };

static const struct {
	const char *what, *json;
	enum getter g;
	unsigned flags;
	int rc;
	const char *err; /* the error line, "" for none */
} cases[] = {
    {"a string is read", "{\"k\": \"v\"}", G_STR, 0, 1, ""},
    {"an absent string is 0", "{}", G_STR, 0, 0, ""},
    {"null means absent", "{\"k\": null}", G_STR, 0, 0, ""},
    {"a required string that is missing", "{}", G_STR, PW_JP_REQUIRED, -1,
     "f.json: $.k: required key is missing (expected a string)"},
    {"a required string that is null", "{\"k\": null}", G_STR, PW_JP_REQUIRED, -1,
     "f.json: $.k: expected a string, got null"},
    {"an integer is not a string", "{\"k\": 1}", G_STR, 0, -1,
     "f.json: $.k: expected a string, got integer"},
    {"an empty string when one is needed", "{\"k\": \"\"}", G_STR, PW_JP_NONEMPTY, -1,
     "f.json: $.k: expected a non-empty string"},
    {"a string too long is never cut", "{\"k\": \"12345678\"}", G_STR, 0, -1,
     "f.json: $.k: expected a string of at most 7 bytes, got 8 bytes"},
    {"an integer in range", "{\"k\": 5}", G_INT, 0, 1, ""},
    {"an integer out of range", "{\"k\": 11}", G_INT, 0, -1,
     "f.json: $.k: expected an integer from 1 to 10, got 11"},
    {"a real is not an integer", "{\"k\": 2.0}", G_INT, 0, -1,
     "f.json: $.k: expected an integer from 1 to 10, got real"},
    {"a string is not an integer", "{\"k\": \"5\"}", G_INT, 0, -1,
     "f.json: $.k: expected an integer from 1 to 10, got string"},
    {"a boolean", "{\"k\": false}", G_BOOL, 0, 1, ""},
    {"0 is not a boolean", "{\"k\": 0}", G_BOOL, 0, -1,
     "f.json: $.k: expected true or false, got integer"},
    {"fractional seconds", "{\"k\": 0.5}", G_SECONDS, 0, 1, ""},
    {"negative seconds", "{\"k\": -1}", G_SECONDS, 0, -1,
     "f.json: $.k: expected a number of seconds from 0 to 100, got -1"},
    {"one of the names", "{\"k\": \"b\"}", G_ENUM, 0, 1, ""},
    {"none of the names", "{\"k\": \"c\\\"\"}", G_ENUM, 0, -1,
     "f.json: $.k: expected one of a, b, got \"c\\\"\""},
    {"a list of names", "{\"k\": [\"a\", \"b\"]}", G_NAMES, 0, 1, ""},
    {"one name is a list of one", "{\"k\": \"a\"}", G_NAMES, 0, 1, ""},
    {"an empty list", "{\"k\": []}", G_NAMES, 0, -1, "f.json: $.k: expected 1 to 3 strings, got 0"},
    {"a bad element is named by its index", "{\"k\": [\"a\", 1]}", G_NAMES, 0, -1,
     "f.json: $.k[1]: expected a string, got integer"},
    {"an unknown key", "{\"k\": 1, \"kk\": 2}", G_KEYS, 0, -1,
     "f.json: $.kk: unknown key (expected one of k)"},
    {"an odd key is bracketed", "{\"my key\": 1}", G_KEYS, 0, -1,
     "f.json: $[\"my key\"]: unknown key (expected one of k)"},
};

static int run(struct pw_jp *x, const json_t *o, int i)
{
	static const char *const names[] = {"a", "b"};
	static const char *const keys[] = {"k", NULL};
	char s[8], *list = NULL;
	long long n;
	bool b;
	int ms, e, rc = 0;
	switch (cases[i].g) {
	case G_STR:
		return pw_jp_str(x, o, "$", "k", s, sizeof(s), cases[i].flags);
	case G_INT:
		return pw_jp_int(x, o, "$", "k", 1, 10, cases[i].flags, &n);
	case G_BOOL:
		return pw_jp_bool(x, o, "$", "k", &b);
	case G_SECONDS:
		return pw_jp_seconds(x, o, "$", "k", 0, 100, &ms);
	case G_ENUM:
		return pw_jp_enum(x, o, "$", "k", names, 2, cases[i].flags, &e);
	case G_NAMES:
		rc = pw_jp_names(x, o, "$", "k", 8, 3, &list, &e);
		free(list);
		return rc;
	case G_KEYS:
		return pw_jp_check_keys(x, o, "$", keys);
	}
	return 0;
}

int main(void)
{
	for (int i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); i++) {
		char err[512];
		struct pw_jp x;
		json_error_t je;
		json_t *o = json_loads(cases[i].json, 0, &je);
		pw_jp_init(&x, "f.json", err, sizeof(err), NULL, 0);
		int rc = o ? run(&x, o, i) : -2;
		CHECK(rc == cases[i].rc && strcmp(err, cases[i].err) == 0, "%s (%d: %s)",
		      cases[i].what, rc, err);
		json_decref(o);
	}

	/* collecting: every error kept up to the maximum, all of them counted */
	struct pw_jp_error errs[2];
	struct pw_jp x;
	pw_jp_init(&x, "f.json", NULL, 0, errs, 2);
	pw_jp_fail(&x, "$.a", "one");
	CHECK(!pw_jp_stop(&x), "collecting: go on after the first of two");
	pw_jp_fail(&x, NULL, "two");
	pw_jp_fail(&x, "$.c", "three");
	char line[256];
	pw_jp_format("f.json", &errs[1], line, sizeof(line));
	CHECK(pw_jp_stop(&x) && pw_jp_errors(&x) == 3 && strcmp(errs[0].path, "$.a") == 0 &&
	          strcmp(line, "f.json: two") == 0,
	      "collecting: full at the maximum, every error counted (%d), a file error has no path",
	      pw_jp_errors(&x));
	pw_jp_init(&x, "f.json", NULL, 0, NULL, 0);
	pw_jp_fail(&x, "$.a", "one");
	CHECK(pw_jp_stop(&x), "not collecting: stop at the first");
	return check_done();
}
