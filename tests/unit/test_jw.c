/* Unit tests for the records' JSON writer (user/jw.c): every value it writes is one JSON value
 * that reads back (jansson) as exactly the bytes given, whatever they are: quotes,
 * backslashes, control characters and DEL escaped, valid UTF-8 kept, anything else written
 * as base64 under "<key>_base64", a long value cut at a character boundary with
 * "<key>_bytes" saying how long it was. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pgward/jw.h"
#include "check.h"

/* {"v": <value>} parsed back; the object (caller frees) or NULL. */
static json_t *round_trip(struct pw_jw *w)
{
	char *doc = malloc(w->len + 3);
	doc[0] = '{';
	memcpy(doc + 1, w->p, w->len);
	doc[w->len + 1] = '}';
	doc[w->len + 2] = 0;
	json_error_t e;
	json_t *j = json_loads(doc, JSON_REJECT_DUPLICATES, &e);
	free(doc);
	return j;
}

static void test_strings(void)
{
	static const struct {
		const char *what, *s;
		size_t n;
		bool base64;
	} cases[] = {
	    {"plain", "SELECT 1", 8, false},
	    {"quotes and backslashes", "a\"b\\c'd", 7, false},
	    {"a newline cannot end the line", "a\nb\r\tc", 6, false},
	    {"control characters and DEL", "\x01\x1b[31m\x7f", 7, false},
	    {"valid UTF-8 kept", "caf\xc3\xa9 \xe2\x80\xae \xf0\x9f\x98\x80", 14, false},
	    {"U+2028 kept, still one line", "a\xe2\x80\xa8z", 5, false},
	    {"invalid UTF-8: base64", "\xff\xfe", 2, true},
	    {"an overlong form: base64", "\xc0\xaf", 2, true},
	    {"a surrogate: base64", "\xed\xa0\x80", 3, true},
	    {"a NUL inside: base64", "a\0b", 3, true},
	    {"a cut sequence: base64", "ab\xe2\x80", 4, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pw_jw w;
		pw_jw_init(&w, 0);
		pw_jw_strn(&w, "v", cases[i].s, cases[i].n);
		json_t *j = round_trip(&w);
		bool ok = j != NULL && memchr(w.p, '\n', w.len) == NULL;
		if (ok && !cases[i].base64) {
			json_t *v = json_object_get(j, "v");
			ok = json_is_string(v) && json_string_length(v) == cases[i].n &&
			     memcmp(json_string_value(v), cases[i].s, cases[i].n) == 0;
		} else if (ok) {
			json_t *v = json_object_get(j, "v_base64");
			ok = json_is_string(v) && !json_object_get(j, "v");
		}
		CHECK(ok, "%s: %s", cases[i].what, w.p);
		json_decref(j);
		pw_jw_free(&w);
	}
}

static void test_cut(void)
{
	struct pw_jw w;
	pw_jw_init(&w, 5);
	/* "abcé…": the cut at 5 bytes would split é (2 bytes at 3..4)? no: a é f, cut before
	 * the 3-byte character that straddles the limit */
	pw_jw_str(&w, "text", "abcd\xe2\x82\xacxyz");
	json_t *j = round_trip(&w);
	json_t *t = j ? json_object_get(j, "text") : NULL,
	       *b = j ? json_object_get(j, "text_bytes") : NULL;
	CHECK(t && strcmp(json_string_value(t), "abcd") == 0 && json_integer_value(b) == 10,
	      "a long value is cut at a character boundary, and text_bytes is its length: %s", w.p);
	json_decref(j);
	pw_jw_free(&w);
}

/* The limit is on the bytes written: escaping (6 bytes for a control character) and base64
 * cannot make a value grow past it; an array element says so in an object of its own. */
static void test_written_limit(void)
{
	char ctl[100];
	memset(ctl, 1, sizeof(ctl));
	struct pw_jw w;
	pw_jw_init(&w, 60);
	pw_jw_strn(&w, "t", ctl, sizeof(ctl));
	json_t *j = round_trip(&w);
	json_t *t = j ? json_object_get(j, "t") : NULL;
	CHECK(t && json_string_length(t) == 10 &&
	          json_integer_value(json_object_get(j, "t_bytes")) == 100 && w.len < 60 + 30,
	      "100 control characters under a 60-byte limit: 10 of them written (%zu bytes)",
	      w.len);
	json_decref(j);
	pw_jw_reset(&w);
	pw_jw_arr(&w, "a");
	pw_jw_strn(&w, NULL, "\xff\xfe", 2);
	pw_jw_strn(&w, NULL, ctl, sizeof(ctl));
	pw_jw_str(&w, NULL, "plain");
	pw_jw_arr_end(&w);
	j = round_trip(&w);
	json_t *a = j ? json_object_get(j, "a") : NULL;
	CHECK(a && json_is_string(json_object_get(json_array_get(a, 0), "base64")) &&
	          json_integer_value(json_object_get(json_array_get(a, 1), "bytes")) == 100 &&
	          json_is_string(json_object_get(json_array_get(a, 1), "text")) &&
	          json_is_string(json_array_get(a, 2)),
	      "elements: not UTF-8 {\"base64\"}, cut {\"text\", \"bytes\"}, else a string: %s",
	      w.p);
	json_decref(j);
	pw_jw_free(&w);
}

static void test_structure(void)
{
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_int(&w, "a", -5);
	pw_jw_uint(&w, "b", 9007199254740993ull);
	pw_jw_bool(&w, "c", true);
	pw_jw_null(&w, "d");
	pw_jw_arr(&w, "e");
	pw_jw_str(&w, NULL, "x");
	pw_jw_obj(&w, NULL);
	pw_jw_hex(&w, "h", (const uint8_t *)"\x01\xff", 2);
	pw_jw_obj_end(&w);
	pw_jw_arr_end(&w);
	pw_jw_str(&w, "f", NULL);
	json_t *j = round_trip(&w);
	CHECK(j && json_integer_value(json_object_get(j, "a")) == -5 &&
	          json_is_true(json_object_get(j, "c")) && json_is_null(json_object_get(j, "d")) &&
	          json_array_size(json_object_get(j, "e")) == 2 &&
	          strcmp(json_string_value(
	                     json_object_get(json_array_get(json_object_get(j, "e"), 1), "h")),
	                 "01ff") == 0 &&
	          json_is_null(json_object_get(j, "f")),
	      "numbers, booleans, null, arrays, objects and hex nest as JSON: %s", w.p);
	json_decref(j);
	pw_jw_reset(&w);
	pw_jw_str(&w, "x", "y");
	CHECK(strcmp(w.p, "\"x\":\"y\"") == 0, "reset: the next record starts clean");
	pw_jw_free(&w);
	char t[40];
	pw_jw_time(t, sizeof(t), 1764574011, 123456789);
	CHECK(strcmp(t, "2025-12-01T07:26:51.123456Z") == 0, "RFC 3339 UTC to the microsecond: %s",
	      t);
}

int main(void)
{
	test_strings();
	test_cut();
	test_written_limit();
	test_structure();
	return check_done();
}
