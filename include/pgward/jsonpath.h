/* The strict JSON reader under the configuration (and jwks.c's JWKS): read a value at a JSONPath
 * such as $.upstreams.main.port with strict types, and say what was wrong in one line that
 * names the file, the path and what was expected there.
 *
 * A reader either stops at its first error (pgwardd's load: err holds "FILE: PATH: what") or
 * collects them (pgwardctl's checks): then every error is kept, up to a maximum, and callers go
 * on past a bad value while pw_jp_stop() says they may, so one run reports all it can. */
#ifndef PGWARD_JSONPATH_H
#define PGWARD_JSONPATH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define PW_JP_PATH_MAX  512 /* a JSONPath as reported; longer ones are cut, still pointing there */
#define PW_JP_QUOTE_MAX 160 /* a quoted user string in a message (pw_jp_quote) */
#define PW_JP_MSG_MAX   768

/* Getter flags. */
#define PW_JP_REQUIRED 1u
#define PW_JP_NONEMPTY 2u

/* One collected error: the JSONPath of the bad value ("" when the error is about the file as
 * a whole, its syntax for one) and what was expected there. */
struct pw_jp_error {
	char path[PW_JP_PATH_MAX];
	char what[PW_JP_MSG_MAX];
};

/* A reader's state. Set up with pw_jp_init and read through the functions below only. */
struct pw_jp {
	const char *file;
	char *err; /* the latest error, "FILE: PATH: what" */
	size_t errlen;
	struct pw_jp_error *errs; /* collecting: room for max_errs; NULL: stop at the first */
	int max_errs, n_errs;
};

/* errs NULL: stop at the first error. Otherwise collect up to max of them. */
void pw_jp_init(struct pw_jp *x, const char *file, char *err, size_t errlen,
                struct pw_jp_error *errs, int max);
/* How many errors were reported so far (all of them, also past max). */
int pw_jp_errors(const struct pw_jp *x);
/* After a failed value: true when the caller should give up (not collecting, or the list is
 * full); false when it should go on to the next value. */
bool pw_jp_stop(const struct pw_jp *x);

/* Report an error at jpath (NULL: about the file). Always returns -1. */
__attribute__((format(printf, 3, 4))) int pw_jp_fail(struct pw_jp *x, const char *jpath,
                                                     const char *fmt, ...);

/* An error as one line, "FILE: PATH: what" (or "FILE: what"); returns its length. */
size_t pw_jp_format(const char *file, const struct pw_jp_error *e, char *out, size_t len);

/* A user string made safe for a one-line message: quoted, JSON-style escapes, cut with "..." */
const char *pw_jp_quote(char dst[PW_JP_QUOTE_MAX], const char *s);
/* JSONPath of a member ($.a.b, or $.a["odd name"]) and of an array element ($.a[3]). */
void pw_jp_key(char out[PW_JP_PATH_MAX], const char *base, const char *key);
void pw_jp_index(char out[PW_JP_PATH_MAX], const char *base, size_t i);
const char *pw_jp_type_name(const json_t *v);
/* "a, b, c" into dst. */
void pw_jp_join(char *dst, size_t cap, const char *const *names, size_t n);

/* Any key of obj not in allowed (NULL-terminated) is an error. */
int pw_jp_check_keys(struct pw_jp *x, const json_t *obj, const char *base,
                     const char *const *allowed);
/* A member, or NULL when it is missing or JSON null (null always means "not given"). */
json_t *pw_jp_member(const json_t *obj, const char *key);
/* The error for a required key that is missing or null. */
int pw_jp_missing(struct pw_jp *x, const json_t *obj, const char *jp, const char *key,
                  const char *what);

/* The file named at jp must be readable by this process. */
int pw_jp_readable(struct pw_jp *x, const char *jp, const char *file);

/* The getters: 1 when the member is set (and stored), 0 when absent (nothing stored), -1 on an
 * error (reported). */
int pw_jp_str(struct pw_jp *x, const json_t *obj, const char *base, const char *key, char *dst,
              size_t cap, unsigned flags);
int pw_jp_int(struct pw_jp *x, const json_t *obj, const char *base, const char *key, long long lo,
              long long hi, unsigned flags, long long *out);
int pw_jp_bool(struct pw_jp *x, const json_t *obj, const char *base, const char *key, bool *out);
/* A duration in (possibly fractional) seconds from lo to max, stored in milliseconds. */
int pw_jp_seconds(struct pw_jp *x, const json_t *obj, const char *base, const char *key, double lo,
                  double max, int *out_ms);
/* One of names[n], stored as its index. */
int pw_jp_enum(struct pw_jp *x, const json_t *obj, const char *base, const char *key,
               const char *const *names, size_t n, unsigned flags, int *out);
/* An object (array false) or array member, or NULL with *rc 0 (absent) or -1 (error). */
json_t *pw_jp_container(struct pw_jp *x, const json_t *obj, const char *base, const char *key,
                        bool array, bool required, int *rc);
/* A list of 1 to max non-empty strings (one string is a list of one) into a new array of
 * char[cap] (*out, free it; also on error), *n of them. */
int pw_jp_names(struct pw_jp *x, const json_t *obj, const char *base, const char *key, size_t cap,
                int max, char **out, int *n);

#endif
