/* The strict JSON-path reader: values read at a JSONPath with strict types, every error one line
 * naming the file, the path and what was expected (see jsonpath.h). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgward/jsonpath.h"

void pw_jp_init(struct pw_jp *x, const char *file, char *err, size_t errlen,
                struct pw_jp_error *errs, int max)
{
	*x = (struct pw_jp){
	    .file = file, .err = err, .errlen = errlen, .errs = errs, .max_errs = errs ? max : 0};
	if (err && errlen)
		err[0] = '\0';
}

int pw_jp_errors(const struct pw_jp *x)
{
	return x->n_errs;
}

bool pw_jp_stop(const struct pw_jp *x)
{
	return !x->errs || x->n_errs >= x->max_errs;
}

size_t pw_jp_format(const char *file, const struct pw_jp_error *e, char *out, size_t len)
{
	int n = e->path[0] ? snprintf(out, len, "%s: %s: %s", file, e->path, e->what)
	                   : snprintf(out, len, "%s: %s", file, e->what);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

int pw_jp_fail(struct pw_jp *x, const char *jpath, const char *fmt, ...)
{
	struct pw_jp_error e;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.what, sizeof(e.what), fmt, ap);
	va_end(ap);
	snprintf(e.path, sizeof(e.path), "%s", jpath ? jpath : "");
	if (x->errs && x->n_errs < x->max_errs)
		x->errs[x->n_errs] = e;
	x->n_errs++;
	if (x->err && x->errlen)
		pw_jp_format(x->file, &e, x->err, x->errlen);
	return -1;
}

/* A user-supplied string made safe for a one-line message: JSON-style escapes, and cut with
 * "..." past a screenful so a runaway value cannot drown the message. */
const char *pw_jp_quote(char dst[PW_JP_QUOTE_MAX], const char *s)
{
	size_t o = 0;
	dst[o++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (o + 12 >= PW_JP_QUOTE_MAX) { /* keep room for an escape, "...", '"' and NUL */
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(dst + o, PW_JP_QUOTE_MAX - o, "\\u%04x", ch);
		} else {
			dst[o++] = (char)ch;
		}
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

/* JSONPath of a member: $.a.b for plain names, $.a["odd name"] for anything else. */
void pw_jp_key(char out[PW_JP_PATH_MAX], const char *base, const char *key)
{
	/* very long names go through pw_jp_quote(), which shortens them */
	bool plain = (isalpha((unsigned char)key[0]) || key[0] == '_') && strlen(key) <= 64;
	for (const char *p = key; plain && *p; p++)
		plain = isalnum((unsigned char)*p) || *p == '_' || *p == '-';
	int n;
	if (plain) {
		n = snprintf(out, PW_JP_PATH_MAX, "%s.%s", base, key);
	} else {
		char q[PW_JP_QUOTE_MAX];
		n = snprintf(out, PW_JP_PATH_MAX, "%s[%s]", base, pw_jp_quote(q, key));
	}
	(void)n; /* a cut path still points the operator to the place */
}

void pw_jp_index(char out[PW_JP_PATH_MAX], const char *base, size_t i)
{
	/* paths are short in practice; a cut one still points the operator to the place */
	if (snprintf(out, PW_JP_PATH_MAX, "%s[%zu]", base, i) >= PW_JP_PATH_MAX)
		out[PW_JP_PATH_MAX - 2] = ']';
}

const char *pw_jp_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "real";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}

/* "a, b, c" into dst. */
void pw_jp_join(char *dst, size_t cap, const char *const *names, size_t n)
{
	size_t o = 0;
	dst[0] = '\0';
	for (size_t i = 0; i < n && o < cap; i++) {
		int w = snprintf(dst + o, cap - o, "%s%s", i ? ", " : "", names[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

/* Reject any key not in allowed (NULL-terminated). */
int pw_jp_check_keys(struct pw_jp *x, const json_t *obj, const char *base,
                     const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t i = 0;
		while (allowed[i] && strcmp(allowed[i], key) != 0)
			i++;
		if (allowed[i])
			continue;
		size_t n = 0;
		while (allowed[n])
			n++;
		char jp[PW_JP_PATH_MAX], names[512];
		pw_jp_key(jp, base, key);
		pw_jp_join(names, sizeof(names), allowed, n);
		return pw_jp_fail(x, jp, "unknown key (expected one of %s)", names);
	}
	return 0;
}

/* A member, or NULL when it is missing or JSON null (null always means "not given"). */
json_t *pw_jp_member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return v && !json_is_null(v) ? v : NULL;
}

int pw_jp_missing(struct pw_jp *x, const json_t *obj, const char *jp, const char *key,
                  const char *what)
{
	if (json_object_get(obj, key))
		return pw_jp_fail(x, jp, "expected %s, got null", what);
	return pw_jp_fail(x, jp, "required key is missing (expected %s)", what);
}

/* Copy a string member into dst[cap]. Returns 1 when set, 0 when absent, -1 on error. */
int pw_jp_str(struct pw_jp *x, const json_t *obj, const char *base, const char *key, char *dst,
              size_t cap, unsigned flags)
{
	char jp[PW_JP_PATH_MAX];
	pw_jp_key(jp, base, key);
	json_t *v = pw_jp_member(obj, key);
	if (!v) {
		if (flags & PW_JP_REQUIRED)
			return pw_jp_missing(x, obj, jp, key, "a string");
		return 0;
	}
	if (!json_is_string(v))
		return pw_jp_fail(x, jp, "expected a string, got %s", pw_jp_type_name(v));
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (strlen(s) != len) /* cannot happen without JSON_ALLOW_NUL, but never trust it */
		return pw_jp_fail(x, jp, "expected a string without NUL bytes");
	if ((flags & PW_JP_NONEMPTY) && len == 0)
		return pw_jp_fail(x, jp, "expected a non-empty string");
	if (len >= cap)
		return pw_jp_fail(x, jp, "expected a string of at most %zu bytes, got %zu bytes",
		                  cap - 1, len);
	memcpy(dst, s, len + 1);
	return 1;
}

int pw_jp_int(struct pw_jp *x, const json_t *obj, const char *base, const char *key, long long lo,
              long long hi, unsigned flags, long long *out)
{
	char jp[PW_JP_PATH_MAX];
	pw_jp_key(jp, base, key);
	json_t *v = pw_jp_member(obj, key);
	if (!v) {
		if (flags & PW_JP_REQUIRED)
			return pw_jp_missing(x, obj, jp, key, "an integer");
		return 0;
	}
	if (!json_is_integer(v))
		return pw_jp_fail(x, jp, "expected an integer from %lld to %lld, got %s", lo, hi,
		                  pw_jp_type_name(v));
	long long n = json_integer_value(v);
	if (n < lo || n > hi)
		return pw_jp_fail(x, jp, "expected an integer from %lld to %lld, got %lld", lo, hi,
		                  n);
	*out = n;
	return 1;
}

/* A duration given in (possibly fractional) seconds, stored in milliseconds. */
int pw_jp_seconds(struct pw_jp *x, const json_t *obj, const char *base, const char *key, double lo,
                  double max, int *out_ms)
{
	char jp[PW_JP_PATH_MAX];
	pw_jp_key(jp, base, key);
	json_t *v = pw_jp_member(obj, key);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return pw_jp_fail(x, jp, "expected a number of seconds from %g to %.0f, got %s", lo,
		                  max, pw_jp_type_name(v));
	double s = json_number_value(v);
	if (!(s >= lo && s <= max))
		return pw_jp_fail(x, jp, "expected a number of seconds from %g to %.0f, got %g", lo,
		                  max, s);
	*out_ms = (int)(s * 1000.0 + 0.5);
	return 1;
}

int pw_jp_bool(struct pw_jp *x, const json_t *obj, const char *base, const char *key, bool *out)
{
	char jp[PW_JP_PATH_MAX];
	pw_jp_key(jp, base, key);
	json_t *v = pw_jp_member(obj, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return pw_jp_fail(x, jp, "expected true or false, got %s", pw_jp_type_name(v));
	*out = json_is_true(v);
	return 1;
}

/* One of names[n], stored as its index. */
int pw_jp_enum(struct pw_jp *x, const json_t *obj, const char *base, const char *key,
               const char *const *names, size_t n, unsigned flags, int *out)
{
	char jp[PW_JP_PATH_MAX], list[256];
	pw_jp_key(jp, base, key);
	pw_jp_join(list, sizeof(list), names, n);
	json_t *v = pw_jp_member(obj, key);
	if (!v) {
		if (flags & PW_JP_REQUIRED) {
			char what[300];
			snprintf(what, sizeof(what), "one of %s", list);
			return pw_jp_missing(x, obj, jp, key, what);
		}
		return 0;
	}
	if (!json_is_string(v))
		return pw_jp_fail(x, jp, "expected one of %s, got %s", list, pw_jp_type_name(v));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(json_string_value(v), names[i]) == 0) {
			*out = (int)i;
			return 1;
		}
	}
	char q[PW_JP_QUOTE_MAX];
	return pw_jp_fail(x, jp, "expected one of %s, got %s", list,
	                  pw_jp_quote(q, json_string_value(v)));
}

/* A required object or array member. */
json_t *pw_jp_container(struct pw_jp *x, const json_t *obj, const char *base, const char *key,
                        bool array, bool required, int *rc)
{
	char jp[PW_JP_PATH_MAX];
	const char *what = array ? "an array" : "an object";
	pw_jp_key(jp, base, key);
	json_t *v = pw_jp_member(obj, key);
	*rc = 0;
	if (!v) {
		if (required)
			*rc = pw_jp_missing(x, obj, jp, key, what);
		return NULL;
	}
	if (array ? !json_is_array(v) : !json_is_object(v)) {
		*rc = pw_jp_fail(x, jp, "expected %s, got %s", what, pw_jp_type_name(v));
		return NULL;
	}
	return v;
}

int pw_jp_readable(struct pw_jp *x, const char *jp, const char *file)
{
	char q[PW_JP_QUOTE_MAX];
	if (access(file, R_OK) != 0)
		return pw_jp_fail(x, jp, "cannot read %s: %s", pw_jp_quote(q, file),
		                  strerror(errno));
	return 0;
}

/* One string element of a list into dst[cap]. */
static int name_elem(struct pw_jp *x, const json_t *v, const char *jp, char *dst, size_t cap)
{
	if (!json_is_string(v))
		return pw_jp_fail(x, jp, "expected a string, got %s", pw_jp_type_name(v));
	const char *str = json_string_value(v);
	size_t len = json_string_length(v);
	if (len == 0 || strlen(str) != len)
		return pw_jp_fail(x, jp, "expected a non-empty string without NUL bytes");
	if (len >= cap)
		return pw_jp_fail(x, jp, "expected a string of at most %zu bytes, got %zu bytes",
		                  cap - 1, len);
	memcpy(dst, str, len + 1);
	return 0;
}

/* A list of strings (one string is a list of one) into a new array of char[cap]. Returns 1
 * when given, 0 when absent, -1 on error. */
int pw_jp_names(struct pw_jp *x, const json_t *obj, const char *base, const char *key, size_t cap,
                int max, char **out, int *n)
{
	char jp[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX];
	pw_jp_key(jp, base, key);
	json_t *v = pw_jp_member(obj, key);
	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	if (json_is_string(v)) {
		if (!(*out = calloc(1, cap)))
			return pw_jp_fail(x, jp, "out of memory");
		*n = 1;
		return name_elem(x, v, jp, *out, cap) < 0 ? -1 : 1;
	}
	if (!json_is_array(v))
		return pw_jp_fail(x, jp, "expected an array of strings, got %s",
		                  pw_jp_type_name(v));
	if (json_array_size(v) == 0 || json_array_size(v) > (size_t)max)
		return pw_jp_fail(x, jp, "expected 1 to %d strings, got %zu", max,
		                  json_array_size(v));
	if (!(*out = calloc(json_array_size(v), cap)))
		return pw_jp_fail(x, jp, "out of memory");
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
	{
		pw_jp_index(sub, jp, i);
		if (name_elem(x, e, sub, *out + i * cap, cap) < 0)
			return -1;
		(*n)++;
	}
	return 1;
}
