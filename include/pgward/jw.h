/* A JSON writer into a growing buffer, for records that must come out fast and exactly the
 * same way each time (the audit trail: audit.h). Keys and structure are the caller's; every
 * string value is escaped here: `"`, `\` and control characters escaped, valid UTF-8 kept as
 * it is. A value that is not valid UTF-8 (a client may send any bytes) is written as base64
 * under the key with "_base64" added, so that nothing is lost or changed; a value longer than
 * the writer's field limit is cut at a character boundary and "<key>_bytes" says how long it
 * was. Memory: the buffer grows to the largest record and is kept for the next. */
#ifndef PGWARD_JW_H
#define PGWARD_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pw_jw {
	char *p;
	size_t len, cap;
	size_t max_field; /* a string value's bytes at most (0: no limit) */
	bool comma;       /* a value was written at this level: the next needs a comma */
	bool oom;         /* memory ran out: the record is incomplete (pw_jw_ok is false) */
};

void pw_jw_init(struct pw_jw *w, size_t max_field);
void pw_jw_free(struct pw_jw *w);
/* Empty it for the next record (the memory stays). */
void pw_jw_reset(struct pw_jw *w);
static inline bool pw_jw_ok(const struct pw_jw *w)
{
	return !w->oom;
}

/* Members of the current object (key: a plain ASCII name of ours, never escaped). */
void pw_jw_str(struct pw_jw *w, const char *key, const char *s); /* NULL: null */
void pw_jw_strn(struct pw_jw *w, const char *key, const char *s, size_t n);
void pw_jw_int(struct pw_jw *w, const char *key, int64_t v);
void pw_jw_uint(struct pw_jw *w, const char *key, uint64_t v);
void pw_jw_bool(struct pw_jw *w, const char *key, bool v);
void pw_jw_null(struct pw_jw *w, const char *key);
/* bytes as lowercase hex (a hash, a binary value) */
void pw_jw_hex(struct pw_jw *w, const char *key, const uint8_t *b, size_t n);
/* "key":{ ... } and "key":[ ... ]; key NULL for an element of an array. */
void pw_jw_obj(struct pw_jw *w, const char *key);
void pw_jw_obj_end(struct pw_jw *w);
void pw_jw_arr(struct pw_jw *w, const char *key);
void pw_jw_arr_end(struct pw_jw *w);
/* Raw JSON text of the caller's, as the member's value (already valid JSON); key NULL: as
 * members or elements of their own (a comma first when one is due). */
void pw_jw_raw(struct pw_jw *w, const char *key, const char *json, size_t n);
/* n bytes appended as they are, with nothing before them (a line the caller frames). */
void pw_jw_append(struct pw_jw *w, const char *s, size_t n);

/* Is s (n bytes) valid UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no
 * NUL? */
bool pw_utf8_valid(const char *s, size_t n);
/* The RFC 3339 UTC time of a CLOCK_REALTIME reading, to the microsecond:
 * "2026-12-01T07:23:31.123456Z" (out: 28 bytes at least). */
void pw_jw_time(char *out, size_t cap, int64_t sec, long nsec);

#endif
