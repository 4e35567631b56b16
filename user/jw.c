/* A JSON writer for records. See include/pgward/jw.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "pgward/jw.h"

void pw_jw_init(struct pw_jw *w, size_t max_field)
{
	memset(w, 0, sizeof(*w));
	w->max_field = max_field;
}

void pw_jw_free(struct pw_jw *w)
{
	free(w->p);
	memset(w, 0, sizeof(*w));
}

void pw_jw_reset(struct pw_jw *w)
{
	w->len = 0;
	w->comma = false;
	w->oom = false;
}

static bool room(struct pw_jw *w, size_t n)
{
	if (w->oom)
		return false;
	if (w->len + n + 1 <= w->cap)
		return true;
	size_t cap = w->cap ? w->cap : 1024;
	while (cap < w->len + n + 1)
		cap *= 2;
	char *p = realloc(w->p, cap);
	if (!p) {
		w->oom = true;
		return false;
	}
	w->p = p;
	w->cap = cap;
	return true;
}

static void put(struct pw_jw *w, const char *s, size_t n)
{
	if (!room(w, n))
		return;
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
}

static void putc1(struct pw_jw *w, char c)
{
	put(w, &c, 1);
}

/* ,"key": (no key inside an array) */
static void key_of(struct pw_jw *w, const char *key)
{
	if (w->comma)
		putc1(w, ',');
	w->comma = true;
	if (key) {
		putc1(w, '"');
		put(w, key, strlen(key));
		put(w, "\":", 2);
	}
}

bool pw_utf8_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s, *e = p + n;
	while (p < e) {
		uint32_t c = *p;
		int k;
		if (c == 0)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 1;
			c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2;
			c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3;
			c &= 0x07;
		} else {
			return false;
		}
		p++;
		if (e - p < k)
			return false;
		for (int i = 0; i < k; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			c = c << 6 | (*p & 0x3f);
		}
		if ((k == 2 && c < 0x800) || (k == 3 && (c < 0x10000 || c > 0x10ffff)) ||
		    (c >= 0xd800 && c <= 0xdfff))
			return false;
	}
	return true;
}

static void escaped(struct pw_jw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* worst case 6 bytes per byte: reserve once */
	if (!room(w, n * 6 + 2))
		return;
	char *o = w->p + w->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else if (c == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			o += 6;
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	w->len = (size_t)(o - w->p);
	w->p[w->len] = '\0';
}

/* Standard base64 with padding (OpenSSL's encoder; a value is at most a message, 1 GiB). */
static void base64(struct pw_jw *w, const uint8_t *b, size_t n)
{
	if (!room(w, (n + 2) / 3 * 4 + 3))
		return;
	w->p[w->len++] = '"';
	w->len += (size_t)EVP_EncodeBlock((unsigned char *)w->p + w->len, b, (int)n);
	w->p[w->len++] = '"';
	w->p[w->len] = '\0';
}

/* How many of s's n bytes fit max written bytes once escaped (text) or in base64. */
static size_t fits(const char *s, size_t n, size_t max, bool text)
{
	if (!text)
		return n / 3 * 4 <= max ? n : max / 4 * 3;
	size_t out = 0, i = 0;
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out += c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r' ? 2
		       : c < 0x20 || c == 0x7f                                      ? 6
		                                                                    : 1;
		if (out > max)
			break;
	}
	return i;
}

void pw_jw_strn(struct pw_jw *w, const char *key, const char *s, size_t n)
{
	if (!s) {
		pw_jw_null(w, key);
		return;
	}
	size_t full = n;
	bool text = pw_utf8_valid(s, n);
	/* the limit is on what is written: escaping or base64 cannot grow a value past it */
	if (w->max_field && (n = fits(s, n, w->max_field, text)) < full) {
		/* back to a character boundary: never a continuation byte first after the cut */
		while (text && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	key_of(w, NULL);
	if (key) {
		putc1(w, '"');
		put(w, key, strlen(key));
		if (!text)
			put(w, "_base64", 7);
		put(w, "\":", 2);
	} else if (!text || n < full) {
		/* an element has no key to mark: an object says what it is */
		put(w, text ? "{\"text\":" : "{\"base64\":", text ? 8 : 10);
	}
	if (text)
		escaped(w, s, n);
	else
		base64(w, (const uint8_t *)s, n);
	if (n < full) {
		char k[96];
		snprintf(k, sizeof(k), "%s_bytes", key ? key : "");
		w->comma = true;
		pw_jw_uint(w, key ? k : "bytes", full);
	}
	if (!key && (!text || n < full))
		putc1(w, '}');
	w->comma = true;
}

void pw_jw_str(struct pw_jw *w, const char *key, const char *s)
{
	pw_jw_strn(w, key, s, s ? strlen(s) : 0);
}

/* v in decimal, ending at end (no snprintf: a few of these per record) */
static char *digits(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

void pw_jw_int(struct pw_jw *w, const char *key, int64_t v)
{
	char b[24], *s = digits(b + sizeof(b), v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--s = '-';
	key_of(w, key);
	put(w, s, (size_t)(b + sizeof(b) - s));
}

void pw_jw_uint(struct pw_jw *w, const char *key, uint64_t v)
{
	char b[24], *s = digits(b + sizeof(b), v);
	key_of(w, key);
	put(w, s, (size_t)(b + sizeof(b) - s));
}

void pw_jw_bool(struct pw_jw *w, const char *key, bool v)
{
	key_of(w, key);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

void pw_jw_null(struct pw_jw *w, const char *key)
{
	key_of(w, key);
	put(w, "null", 4);
}

void pw_jw_hex(struct pw_jw *w, const char *key, const uint8_t *b, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (w->max_field && n * 2 > w->max_field)
		n = w->max_field / 2; /* cut: the caller's record says how long it was */
	key_of(w, key);
	if (!room(w, n * 2 + 2))
		return;
	char *o = w->p + w->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		*o++ = hex[b[i] >> 4];
		*o++ = hex[b[i] & 15];
	}
	*o++ = '"';
	w->len = (size_t)(o - w->p);
	w->p[w->len] = '\0';
}

void pw_jw_obj(struct pw_jw *w, const char *key)
{
	key_of(w, key);
	putc1(w, '{');
	w->comma = false;
}

void pw_jw_obj_end(struct pw_jw *w)
{
	putc1(w, '}');
	w->comma = true;
}

void pw_jw_arr(struct pw_jw *w, const char *key)
{
	key_of(w, key);
	putc1(w, '[');
	w->comma = false;
}

void pw_jw_arr_end(struct pw_jw *w)
{
	putc1(w, ']');
	w->comma = true;
}

void pw_jw_append(struct pw_jw *w, const char *s, size_t n)
{
	put(w, s, n);
}

void pw_jw_raw(struct pw_jw *w, const char *key, const char *json, size_t n)
{
	key_of(w, key);
	put(w, json, n);
}

void pw_jw_time(char *out, size_t cap, int64_t sec, long nsec)
{
	/* a record per statement: the date and time are formatted once a second per thread
	 * (gmtime_r takes glibc's time-zone lock), the microseconds each time */
	static __thread int64_t last_sec = -1;
	static __thread char head[64]; /* "2026-12-01T07:23:31." */
	if (sec != last_sec) {
		struct tm tm;
		time_t t = (time_t)sec;
		gmtime_r(&t, &tm);
		snprintf(head, sizeof(head), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		last_sec = sec;
	}
	if (cap < 28) {
		if (cap)
			out[0] = '\0';
		return;
	}
	memcpy(out, head, 20);
	long us = nsec / 1000;
	for (int i = 25; i >= 20; i--, us /= 10)
		out[i] = (char)('0' + us % 10);
	out[26] = 'Z';
	out[27] = '\0';
}
