/* Configuration loading: one JSON document, validated strictly into a struct pw_config.
 * Every problem is reported as "FILE: JSON.PATH: what was expected" so that an operator can
 * find the offending value at once; unknown keys are errors so that typos never fall back to
 * defaults silently, and no string is ever truncated to fit its buffer. */
#include <ctype.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "pgward/config.h"
#include "pgward/jwt.h"
#include "pgward/sql.h"

#define JPATH_MAX        512
#define QUOTE_MAX        160
#define CONFIG_FILE_MAX  (16 * 1024 * 1024) /* far above any sane config; stops /dev/zero */
#define SECONDS_MAX      2147483.0          /* so that the value in ms still fits an int */
#define UNIX_PATH_LIMIT  108                /* sizeof(sockaddr_un.sun_path) */
#define PG_MESSAGE_LIMIT 2147483647LL       /* the length word of a message is an int32 */

/* Where errors go and which file they name. */
struct ctx {
	const char *file;
	char *err;
	size_t errlen;
	/* collecting (policy check): every error, one per line, and parsing goes on past an
	 * identity or a rule that failed */
	char *all;
	size_t all_len, all_cap;
	int n_errors;
	bool collect;
};

static void collect_error(struct ctx *x)
{
	size_t n = strlen(x->err);
	x->n_errors++;
	if (x->all_len + n + 2 > x->all_cap) {
		size_t cap = (x->all_cap + n + 2) * 2;
		char *a = realloc(x->all, cap);
		if (!a)
			return;
		x->all = a;
		x->all_cap = cap;
	}
	memcpy(x->all + x->all_len, x->err, n);
	x->all_len += n;
	x->all[x->all_len++] = '\n';
	x->all[x->all_len] = 0;
}

/* Optional-getter flags. */
#define F_REQUIRED 1u
#define F_NONEMPTY 2u

static const char *const sslmode_names[] = {"disable", "prefer", "require", "verify-ca",
                                            "verify-full"};
static const char *const auth_names[] = {"trust", "password", "jwt"};
static const char *const level_names[] = {"debug", "info", "warn", "error"};

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

__attribute__((format(printf, 3, 4))) static int fail(struct ctx *x, const char *jpath,
                                                      const char *fmt, ...)
{
	if (!x->err || x->errlen == 0)
		return -1;
	int n = jpath ? snprintf(x->err, x->errlen, "%s: %s: ", x->file, jpath)
	              : snprintf(x->err, x->errlen, "%s: ", x->file);
	if (n < 0 || (size_t)n >= x->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	if (x->collect)
		collect_error(x);
	return -1;
}

/* A user-supplied string made safe for a one-line message: JSON-style escapes, and cut with
 * "..." past a screenful so a runaway value cannot drown the message. */
static const char *quote(char dst[QUOTE_MAX], const char *s)
{
	size_t o = 0;
	dst[o++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (o + 12 >= QUOTE_MAX) { /* keep room for an escape, "...", '"' and NUL */
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(dst + o, QUOTE_MAX - o, "\\u%04x", ch);
		} else {
			dst[o++] = (char)ch;
		}
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

/* JSONPath of a member: $.a.b for plain names, $.a["odd name"] for anything else. */
static void path_key(char out[JPATH_MAX], const char *base, const char *key)
{
	/* very long names go through quote(), which shortens them */
	bool plain = (isalpha((unsigned char)key[0]) || key[0] == '_') && strlen(key) <= 64;
	for (const char *p = key; plain && *p; p++)
		plain = isalnum((unsigned char)*p) || *p == '_' || *p == '-';
	int n;
	if (plain) {
		n = snprintf(out, JPATH_MAX, "%s.%s", base, key);
	} else {
		char q[QUOTE_MAX];
		n = snprintf(out, JPATH_MAX, "%s[%s]", base, quote(q, key));
	}
	(void)n; /* a cut path still points the operator to the place */
}

static void path_index(char out[JPATH_MAX], const char *base, size_t i)
{
	/* paths are short in practice; a cut one still points the operator to the place */
	if (snprintf(out, JPATH_MAX, "%s[%zu]", base, i) >= JPATH_MAX)
		out[JPATH_MAX - 2] = ']';
}

static const char *type_name(const json_t *v)
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
static void join(char *dst, size_t cap, const char *const *names, size_t n)
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
static int check_keys(struct ctx *x, const json_t *obj, const char *base,
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
		char jp[JPATH_MAX], names[512];
		path_key(jp, base, key);
		join(names, sizeof(names), allowed, n);
		return fail(x, jp, "unknown key (expected one of %s)", names);
	}
	return 0;
}

/* A member, or NULL when it is missing or JSON null (null always means "not given"). */
static json_t *member(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return v && !json_is_null(v) ? v : NULL;
}

static int missing(struct ctx *x, const json_t *obj, const char *jp, const char *key,
                   const char *what)
{
	if (json_object_get(obj, key))
		return fail(x, jp, "expected %s, got null", what);
	return fail(x, jp, "required key is missing (expected %s)", what);
}

/* Copy a string member into dst[cap]. Returns 1 when set, 0 when absent, -1 on error. */
static int get_str(struct ctx *x, const json_t *obj, const char *base, const char *key, char *dst,
                   size_t cap, unsigned flags)
{
	char jp[JPATH_MAX];
	path_key(jp, base, key);
	json_t *v = member(obj, key);
	if (!v) {
		if (flags & F_REQUIRED)
			return missing(x, obj, jp, key, "a string");
		return 0;
	}
	if (!json_is_string(v))
		return fail(x, jp, "expected a string, got %s", type_name(v));
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (strlen(s) != len) /* cannot happen without JSON_ALLOW_NUL, but never trust it */
		return fail(x, jp, "expected a string without NUL bytes");
	if ((flags & F_NONEMPTY) && len == 0)
		return fail(x, jp, "expected a non-empty string");
	if (len >= cap)
		return fail(x, jp, "expected a string of at most %zu bytes, got %zu bytes", cap - 1,
		            len);
	memcpy(dst, s, len + 1);
	return 1;
}

static int get_int(struct ctx *x, const json_t *obj, const char *base, const char *key,
                   long long lo, long long hi, unsigned flags, long long *out)
{
	char jp[JPATH_MAX];
	path_key(jp, base, key);
	json_t *v = member(obj, key);
	if (!v) {
		if (flags & F_REQUIRED)
			return missing(x, obj, jp, key, "an integer");
		return 0;
	}
	if (!json_is_integer(v))
		return fail(x, jp, "expected an integer from %lld to %lld, got %s", lo, hi,
		            type_name(v));
	long long n = json_integer_value(v);
	if (n < lo || n > hi)
		return fail(x, jp, "expected an integer from %lld to %lld, got %lld", lo, hi, n);
	*out = n;
	return 1;
}

/* A duration given in (possibly fractional) seconds, stored in milliseconds. */
static int get_ms(struct ctx *x, const json_t *obj, const char *base, const char *key, double lo,
                  int *out_ms)
{
	char jp[JPATH_MAX];
	path_key(jp, base, key);
	json_t *v = member(obj, key);
	if (!v)
		return 0;
	if (!json_is_number(v))
		return fail(x, jp, "expected a number of seconds from %g to %.0f, got %s", lo,
		            SECONDS_MAX, type_name(v));
	double s = json_number_value(v);
	if (!(s >= lo && s <= SECONDS_MAX))
		return fail(x, jp, "expected a number of seconds from %g to %.0f, got %g", lo,
		            SECONDS_MAX, s);
	*out_ms = (int)(s * 1000.0 + 0.5);
	return 1;
}

static int get_bool(struct ctx *x, const json_t *obj, const char *base, const char *key, bool *out)
{
	char jp[JPATH_MAX];
	path_key(jp, base, key);
	json_t *v = member(obj, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return fail(x, jp, "expected true or false, got %s", type_name(v));
	*out = json_is_true(v);
	return 1;
}

/* One of names[n], stored as its index. */
static int get_enum(struct ctx *x, const json_t *obj, const char *base, const char *key,
                    const char *const *names, size_t n, unsigned flags, int *out)
{
	char jp[JPATH_MAX], list[256];
	path_key(jp, base, key);
	join(list, sizeof(list), names, n);
	json_t *v = member(obj, key);
	if (!v) {
		if (flags & F_REQUIRED) {
			char what[300];
			snprintf(what, sizeof(what), "one of %s", list);
			return missing(x, obj, jp, key, what);
		}
		return 0;
	}
	if (!json_is_string(v))
		return fail(x, jp, "expected one of %s, got %s", list, type_name(v));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(json_string_value(v), names[i]) == 0) {
			*out = (int)i;
			return 1;
		}
	}
	char q[QUOTE_MAX];
	return fail(x, jp, "expected one of %s, got %s", list, quote(q, json_string_value(v)));
}

/* A required object or array member. */
static json_t *get_container(struct ctx *x, const json_t *obj, const char *base, const char *key,
                             bool array, bool required, int *rc)
{
	char jp[JPATH_MAX];
	const char *what = array ? "an array" : "an object";
	path_key(jp, base, key);
	json_t *v = member(obj, key);
	*rc = 0;
	if (!v) {
		if (required)
			*rc = missing(x, obj, jp, key, what);
		return NULL;
	}
	if (array ? !json_is_array(v) : !json_is_object(v)) {
		*rc = fail(x, jp, "expected %s, got %s", what, type_name(v));
		return NULL;
	}
	return v;
}

static int check_readable(struct ctx *x, const char *jp, const char *file)
{
	char q[QUOTE_MAX];
	if (access(file, R_OK) != 0)
		return fail(x, jp, "cannot read %s: %s", quote(q, file), strerror(errno));
	return 0;
}

/* One string element of a list into dst[cap]. */
static int name_elem(struct ctx *x, const json_t *v, const char *jp, char *dst, size_t cap)
{
	if (!json_is_string(v))
		return fail(x, jp, "expected a string, got %s", type_name(v));
	const char *str = json_string_value(v);
	size_t len = json_string_length(v);
	if (len == 0 || strlen(str) != len)
		return fail(x, jp, "expected a non-empty string without NUL bytes");
	if (len >= cap)
		return fail(x, jp, "expected a string of at most %zu bytes, got %zu bytes", cap - 1,
		            len);
	memcpy(dst, str, len + 1);
	return 0;
}

/* A list of strings (one string is a list of one) into a new array of char[cap]. Returns 1
 * when given, 0 when absent, -1 on error. */
static int get_names(struct ctx *x, const json_t *obj, const char *base, const char *key,
                     size_t cap, int max, char **out, int *n)
{
	char jp[JPATH_MAX], sub[JPATH_MAX];
	path_key(jp, base, key);
	json_t *v = member(obj, key);
	*out = NULL;
	*n = 0;
	if (!v)
		return 0;
	if (json_is_string(v)) {
		if (!(*out = calloc(1, cap)))
			return fail(x, jp, "out of memory");
		*n = 1;
		return name_elem(x, v, jp, *out, cap) < 0 ? -1 : 1;
	}
	if (!json_is_array(v))
		return fail(x, jp, "expected an array of strings, got %s", type_name(v));
	if (json_array_size(v) == 0 || json_array_size(v) > (size_t)max)
		return fail(x, jp, "expected 1 to %d strings, got %zu", max, json_array_size(v));
	if (!(*out = calloc(json_array_size(v), cap)))
		return fail(x, jp, "out of memory");
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e)
	{
		path_index(sub, jp, i);
		if (name_elem(x, e, sub, *out + i * cap, cap) < 0)
			return -1;
		(*n)++;
	}
	return 1;
}

/* ---- listen ---- */

static int parse_mode(struct ctx *x, const char *jp, const json_t *v, int *out)
{
	static const char expect[] = "expected an octal permission string such as \"0777\" (or "
	                             "an integer from 0 to 511)";
	char q[QUOTE_MAX];
	if (json_is_integer(v)) {
		long long n = json_integer_value(v);
		/* 777 written as a JSON number is decimal; say how to write it instead */
		if (n < 0 || n > 0777)
			return fail(x, jp, "%s, got %lld", expect, n);
		*out = (int)n;
		return 0;
	}
	if (!json_is_string(v))
		return fail(x, jp, "%s, got %s", expect, type_name(v));
	const char *s = json_string_value(v);
	size_t len = strlen(s);
	int m = 0;
	bool ok = len >= 1 && len <= 4;
	for (size_t i = 0; ok && i < len; i++) {
		ok = s[i] >= '0' && s[i] <= '7';
		m = m * 8 + (s[i] - '0');
	}
	if (!ok || m > 0777)
		return fail(x, jp, "%s, got %s", expect, quote(q, s));
	*out = m;
	return 0;
}

static int parse_listen_one(struct ctx *x, const json_t *e, const char *jp, struct pw_listen *l)
{
	static const char *const keys[] = {"host", "port", "unix", "mode", NULL};
	char sub[JPATH_MAX];
	long long port;

	if (!json_is_object(e))
		return fail(x, jp, "expected an object, got %s", type_name(e));
	if (check_keys(x, e, jp, keys))
		return -1;
	bool has_unix = member(e, "unix") != NULL;
	if (has_unix && (member(e, "host") || member(e, "port")))
		return fail(x, jp, "expected either host+port or unix, not both");
	if (!has_unix && !member(e, "host") && !member(e, "port"))
		return fail(x, jp, "expected either host+port or unix");

	if (has_unix) {
		l->is_unix = true;
		l->unix_mode = 0777;
		if (get_str(x, e, jp, "unix", l->unix_path, sizeof(l->unix_path),
		            F_REQUIRED | F_NONEMPTY) < 0)
			return -1;
		json_t *m = member(e, "mode");
		path_key(sub, jp, "mode");
		if (m && parse_mode(x, sub, m, &l->unix_mode))
			return -1;
		return 0;
	}
	if (member(e, "mode")) {
		path_key(sub, jp, "mode");
		return fail(x, sub, "only valid for a unix listener");
	}
	strcpy(l->host, "127.0.0.1");
	if (get_str(x, e, jp, "host", l->host, sizeof(l->host), F_NONEMPTY) < 0)
		return -1;
	if (get_int(x, e, jp, "port", 1, 65535, F_REQUIRED, &port) < 0)
		return -1;
	l->port = (int)port;
	return 0;
}

static int parse_listen(struct ctx *x, const json_t *root, struct pw_config *c)
{
	int rc;
	json_t *arr = get_container(x, root, "$", "listen", true, true, &rc);
	if (!arr)
		return -1;
	if (json_array_size(arr) == 0)
		return fail(x, "$.listen", "expected at least one listener");
	c->listen = calloc(json_array_size(arr), sizeof(*c->listen));
	if (!c->listen)
		return fail(x, "$.listen", "out of memory");

	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char jp[JPATH_MAX];
		path_index(jp, "$.listen", i);
		struct pw_listen *l = &c->listen[i];
		if (parse_listen_one(x, e, jp, l))
			return -1;
		c->n_listen++;
		/* a second bind to the same address would only fail later, at start-up */
		for (size_t j = 0; j < i; j++) {
			const struct pw_listen *o = &c->listen[j];
			bool same = l->is_unix ? o->is_unix && !strcmp(o->unix_path, l->unix_path)
			                       : !o->is_unix && o->port == l->port &&
			                             !strcmp(o->host, l->host);
			if (same)
				return fail(x, jp, "duplicate of $.listen[%zu]", j);
		}
	}
	return 0;
}

/* ---- tls ---- */

static int parse_tls(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"cert", "key", NULL};
	char jp[JPATH_MAX];
	int rc;
	json_t *t = get_container(x, root, "$", "tls", false, false, &rc);
	if (!t)
		return rc;
	if (check_keys(x, t, "$.tls", keys))
		return -1;
	if (get_str(x, t, "$.tls", "cert", c->tls_cert, sizeof(c->tls_cert),
	            F_REQUIRED | F_NONEMPTY) < 0 ||
	    get_str(x, t, "$.tls", "key", c->tls_key, sizeof(c->tls_key), F_REQUIRED | F_NONEMPTY) <
	        0)
		return -1;
	path_key(jp, "$.tls", "cert");
	if (check_readable(x, jp, c->tls_cert))
		return -1;
	path_key(jp, "$.tls", "key");
	if (check_readable(x, jp, c->tls_key))
		return -1;
	c->tls_enabled = true;
	return 0;
}

/* ---- upstreams ---- */

/* The whole file is the password, minus one trailing line end that editors add. */
static int read_password(struct ctx *x, const char *jp, const char *file, struct pw_upstream *u)
{
	char q[QUOTE_MAX];
	/* room for the longest password plus "\r\n", and one more byte to see it is too long */
	char buf[sizeof(u->password) + 2];
	size_t n = 0;
	struct stat st;
	int rc = 0;

	quote(q, file);
	/* O_NONBLOCK: a FIFO given by mistake must not hang the load */
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return fail(x, jp, "cannot read password file %s: %s", q, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(x, jp, "password file %s is not a regular file", q);
	}
	while (n < sizeof(buf)) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = fail(x, jp, "cannot read password file %s: %s", q, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (n == 0)
		rc = fail(x, jp, "password file %s is empty", q);
	else if (n >= sizeof(u->password))
		rc = fail(x, jp, "password file %s is too long (at most %zu bytes)", q,
		          sizeof(u->password) - 1);
	else if (memchr(buf, '\0', n))
		rc = fail(x, jp, "password file %s contains a NUL byte", q);
	if (rc == 0) {
		memcpy(u->password, buf, n);
		u->password[n] = '\0';
		u->has_password = true;
	}
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* require_auth as libpq 16 has it: the authentication methods the server may ask for, a
 * list of names, or of names each prefixed with "!" (every method but those). */
static int parse_require_auth(struct ctx *x, const json_t *o, const char *jp, struct pw_upstream *u)
{
	static const char *const names[] = {"password", "md5", "scram-sha-256", "none"};
	static const unsigned bits[] = {PW_AUTH_PASSWORD, PW_AUTH_MD5, PW_AUTH_SCRAM, PW_AUTH_NONE};
	char *list = NULL, jp2[JPATH_MAX], sub[JPATH_MAX], q[QUOTE_MAX];
	int n, neg = -1;
	unsigned mask = 0;

	if (get_names(x, o, jp, "require_auth", PW_NAME_MAX, 8, &list, &n) < 0) {
		free(list);
		return -1;
	}
	path_key(jp2, jp, "require_auth");
	for (int i = 0; i < n; i++) {
		const char *m = list + (size_t)i * PW_NAME_MAX;
		bool not = m[0] == '!';
		size_t k;
		for (k = 0; k < N_ELEMS(names) && strcmp(m + not, names[k]); k++)
			;
		path_index(sub, jp2, (size_t)i);
		if (k == N_ELEMS(names)) {
			fail(x, sub,
			     "expected password, md5, scram-sha-256 or none, each optionally "
			     "prefixed with \"!\", got %s",
			     quote(q, m));
			free(list);
			return -1;
		}
		if (neg >= 0 && neg != not ) {
			fail(x, sub, "negative and positive methods cannot be mixed");
			free(list);
			return -1;
		}
		neg = not ;
		mask |= bits[k];
	}
	free(list);
	if (n)
		u->require_auth = neg ? PW_AUTH_ANY & ~mask : mask;
	return 0;
}

static int parse_upstream(struct ctx *x, const char *name, const json_t *o, const char *jp,
                          struct pw_upstream *u)
{
	static const char *const keys[] = {"host",
	                                   "port",
	                                   "unix_dir",
	                                   "database",
	                                   "user",
	                                   "password_file",
	                                   "sslmode",
	                                   "ca_file",
	                                   "allow_cleartext",
	                                   "connect_timeout_seconds",
	                                   "reuse_connections",
	                                   "pool_idle_timeout_seconds",
	                                   "pool_max_idle",
	                                   "max_connections",
	                                   "search_path",
	                                   "catalog_ttl_seconds",
	                                   "require_auth",
	                                   NULL};
	char sub[JPATH_MAX], q[QUOTE_MAX], pwfile[PATH_MAX];
	long long port;
	int rc_host, rc_unix, rc;
	int mode = PW_SSL_PREFER;

	if (!json_is_object(o))
		return fail(x, jp, "expected an object, got %s", type_name(o));
	if (check_keys(x, o, jp, keys))
		return -1;
	strcpy(u->name, name); /* length checked by the caller */
	u->port = 5432;
	u->sslmode = PW_SSL_PREFER;
	u->connect_timeout_ms = 10000;
	u->pool_idle_timeout_ms = 60000;
	u->pool_max_idle = 32;
	u->max_connections = PW_UPSTREAM_MAX_CONNECTIONS;
	u->catalog_ttl_ms = 60000;
	u->require_auth = PW_AUTH_ANY;

	rc_host = get_str(x, o, jp, "host", u->host, sizeof(u->host), F_NONEMPTY);
	if (rc_host < 0)
		return -1;
	rc_unix = get_str(x, o, jp, "unix_dir", u->unix_dir, sizeof(u->unix_dir), F_NONEMPTY);
	if (rc_unix < 0)
		return -1;
	if (rc_host && rc_unix)
		return fail(x, jp, "expected exactly one of host or unix_dir, got both");
	if (!rc_host && !rc_unix)
		return fail(x, jp, "expected one of host or unix_dir");
	rc = get_int(x, o, jp, "port", 1, 65535, 0, &port);
	if (rc < 0)
		return -1;
	if (rc)
		u->port = (int)port;
	if (rc_unix) {
		/* the socket file's full path must fit sockaddr_un, or connect() fails later */
		char sock[PATH_MAX + 32];
		int need = snprintf(sock, sizeof(sock), "%s/.s.PGSQL.%d", u->unix_dir, u->port);
		if (need >= UNIX_PATH_LIMIT) {
			path_key(sub, jp, "unix_dir");
			return fail(
			    x, sub,
			    "socket path %s would be %d bytes, at most %d fit a unix socket "
			    "address",
			    quote(q, sock), need, UNIX_PATH_LIMIT - 1);
		}
	}

	if (get_str(x, o, jp, "database", u->database, sizeof(u->database), 0) < 0 ||
	    get_str(x, o, jp, "user", u->user, sizeof(u->user), F_REQUIRED | F_NONEMPTY) < 0)
		return -1;

	rc = get_str(x, o, jp, "password_file", pwfile, sizeof(pwfile), F_NONEMPTY);
	if (rc < 0)
		return -1;
	if (rc) {
		path_key(sub, jp, "password_file");
		if (read_password(x, sub, pwfile, u))
			return -1;
	}

	if (get_enum(x, o, jp, "sslmode", sslmode_names, N_ELEMS(sslmode_names), 0, &mode) < 0)
		return -1;
	u->sslmode = (enum pw_sslmode)mode;
	rc = get_str(x, o, jp, "ca_file", u->ca_file, sizeof(u->ca_file), F_NONEMPTY);
	if (rc < 0)
		return -1;
	path_key(sub, jp, "ca_file");
	if (rc && check_readable(x, sub, u->ca_file))
		return -1;
	if (!rc && u->sslmode >= PW_SSL_VERIFY_CA)
		return fail(x, sub, "required when sslmode is %s", sslmode_names[u->sslmode]);
	if (rc_unix && u->sslmode > PW_SSL_PREFER) {
		/* like libpq: TLS is never negotiated over a unix socket, so it cannot be
		 * required there */
		path_key(sub, jp, "sslmode");
		return fail(x, sub,
		            "expected disable or prefer with unix_dir (TLS is not used on unix "
		            "sockets), got \"%s\"",
		            sslmode_names[u->sslmode]);
	}

	if (get_bool(x, o, jp, "allow_cleartext", &u->allow_cleartext) < 0 ||
	    get_ms(x, o, jp, "connect_timeout_seconds", 0.001, &u->connect_timeout_ms) < 0 ||
	    get_bool(x, o, jp, "reuse_connections", &u->reuse_connections) < 0 ||
	    get_ms(x, o, jp, "pool_idle_timeout_seconds", 0.001, &u->pool_idle_timeout_ms) < 0 ||
	    get_ms(x, o, jp, "catalog_ttl_seconds", 1, &u->catalog_ttl_ms) < 0 ||
	    parse_require_auth(x, o, jp, u) < 0)
		return -1;
	long long max_idle;
	rc = get_int(x, o, jp, "pool_max_idle", 1, 100000, 0, &max_idle);
	if (rc < 0)
		return -1;
	if (rc)
		u->pool_max_idle = (int)max_idle;
	long long max_conns;
	rc = get_int(x, o, jp, "max_connections", 1, 100000, 0, &max_conns);
	if (rc < 0)
		return -1;
	if (rc) {
		u->max_connections = (int)max_conns;
		u->max_connections_set = true;
	}
	char *sp = NULL;
	rc = get_names(x, o, jp, "search_path", PW_NAME_MAX, (int)N_ELEMS(u->search_path), &sp,
	               &u->n_search_path);
	if (rc > 0)
		memcpy(u->search_path, sp, (size_t)u->n_search_path * PW_NAME_MAX);
	free(sp);
	if (rc < 0)
		return -1;
	return 0;
}

static int parse_upstreams(struct ctx *x, const json_t *root, struct pw_config *c)
{
	int rc;
	json_t *obj = get_container(x, root, "$", "upstreams", false, true, &rc);
	if (!obj)
		return -1;
	if (json_object_size(obj) == 0)
		return fail(x, "$.upstreams", "expected at least one upstream");
	c->upstreams = calloc(json_object_size(obj), sizeof(*c->upstreams));
	if (!c->upstreams)
		return fail(x, "$.upstreams", "out of memory");

	const char *name;
	json_t *v;
	json_object_foreach(obj, name, v)
	{
		char jp[JPATH_MAX], q[QUOTE_MAX];
		size_t len = strlen(name);
		if (len == 0 || len >= PW_NAME_MAX)
			return fail(x, "$.upstreams",
			            "expected upstream names of 1 to %d bytes, got %s (%zu bytes)",
			            PW_NAME_MAX - 1, quote(q, name), len);
		path_key(jp, "$.upstreams", name);
		struct pw_upstream *u = &c->upstreams[c->n_upstreams];
		if (parse_upstream(x, name, v, jp, u)) {
			/* it may hold a password already; config_free only sees counted ones */
			explicit_bzero(u, sizeof(*u));
			return -1;
		}
		c->n_upstreams++;
	}
	return 0;
}

/* ---- policy of an identity ---- */

/* "schema.name" globs: both parts present, so that a rule cannot be read two ways. */
static int check_qualified(struct ctx *x, const char *base, const char *key, const char *globs,
                           int n, bool may_be_bare)
{
	char jp[JPATH_MAX], sub[JPATH_MAX], q[QUOTE_MAX];
	path_key(jp, base, key);
	for (int i = 0; i < n; i++) {
		const char *g = globs + (size_t)i * PW_GLOB_MAX;
		const char *dot = strchr(g, '.');
		if (dot ? dot == g || !dot[1] || strchr(dot + 1, '.') : !may_be_bare) {
			path_index(sub, jp, (size_t)i);
			return fail(
			    x, sub,
			    "expected %s\"schema.name\" (globs allowed, as \"public.*\"), got %s",
			    may_be_bare ? "\"name\" or " : "", quote(q, g));
		}
	}
	return 0;
}

static const struct {
	const char *name;
	uint32_t flag;
} fact_names[] = {
    {"no_where", PW_SQL_F_NO_WHERE},
    {"cte_dml", PW_SQL_F_CTE_DML},
    {"explain_analyze", PW_SQL_F_EXPLAIN_ANALYZE},
    {"select_into", PW_SQL_F_SELECT_INTO},
    {"create_table_as", PW_SQL_F_CREATE_TABLE_AS},
    {"copy_program", PW_SQL_F_COPY_PROGRAM},
    {"copy_file", PW_SQL_F_COPY_FILE},
    {"body", PW_SQL_F_BODY},
    {"role_escape", PW_SQL_F_ROLE_ESCAPE},
    {"alter_system", PW_SQL_F_ALTER_SYSTEM},
    {"drop_database", PW_SQL_F_DROP_DATABASE},
    {"create_extension", PW_SQL_F_CREATE_EXTENSION},
    {"creates_temp", PW_SQL_F_CREATES_TEMP},
    {"ambiguous", PW_SQL_F_AMBIGUOUS},
};

const char *pw_guardrail_name(enum pw_guardrail g)
{
	static const char *const names[PW_GR_COUNT] = {
	    [PW_GR_ROLE_ESCAPE] = "role_escape",
	    [PW_GR_SERVER_COPY] = "server_copy",
	    [PW_GR_SERVER_FILES] = "server_files",
	    [PW_GR_ALTER_SYSTEM] = "alter_system",
	    [PW_GR_DROP_DATABASE] = "drop_database",
	    [PW_GR_CREATE_EXTENSION] = "create_extension",
	    [PW_GR_DBLINK] = "dblink",
	    [PW_GR_TERMINATE_BACKEND] = "terminate_backend",
	    [PW_GR_CODE] = "code",
	    [PW_GR_NO_WHERE] = "no_where",
	    [PW_GR_SUPERUSER_SETTINGS] = "superuser_settings",
	    [PW_GR_PARSER_INTEGRITY] = "parser_integrity",
	};
	return (unsigned)g < PW_GR_COUNT ? names[g] : "?";
}

static int parse_rule(struct ctx *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	static const char *const keys[] = {"name",   "action",    "class", "relations",
	                                   "access", "functions", "facts", NULL};
	static const char *const actions[] = {"allow", "deny", "approve", "mask"};
	char jp2[JPATH_MAX], sub[JPATH_MAX], q[QUOTE_MAX], *list = NULL;
	int n, act = 0;

	if (!json_is_object(e))
		return fail(x, jp, "expected an object, got %s", type_name(e));
	if (check_keys(x, e, jp, keys) ||
	    get_str(x, e, jp, "name", r->name, sizeof(r->name), F_NONEMPTY) < 0 ||
	    get_enum(x, e, jp, "action", actions, N_ELEMS(actions), F_REQUIRED, &act) < 0)
		return -1;
	r->action = (enum pw_action)act;

	/* access: "any" (the default), or one or a list of read, lock, write; write implies lock
	 * (a role that may change rows may lock them, as the server's UPDATE privilege does) */
	r->access = PW_SQL_READ | PW_SQL_LOCK | PW_SQL_WRITE;
	if (member(e, "access")) {
		static const char *const accesses[] = {"any", "read", "lock", "write"};
		static const uint8_t bits[] = {PW_SQL_READ | PW_SQL_LOCK | PW_SQL_WRITE,
		                               PW_SQL_READ, PW_SQL_LOCK,
		                               PW_SQL_WRITE | PW_SQL_LOCK};
		if (get_names(x, e, jp, "access", PW_NAME_MAX, 4, &list, &n) < 0) {
			free(list);
			return -1;
		}
		r->access = 0;
		path_key(jp2, jp, "access");
		for (int i = 0; i < n; i++) {
			const char *a = list + (size_t)i * PW_NAME_MAX;
			size_t k;
			for (k = 0; k < N_ELEMS(accesses) && strcmp(a, accesses[k]); k++)
				;
			if (k == N_ELEMS(accesses)) {
				path_index(sub, jp2, (size_t)i);
				fail(x, n == 1 && json_is_string(member(e, "access")) ? jp2 : sub,
				     "expected one of any, read, lock, write, got %s", quote(q, a));
				free(list);
				return -1;
			}
			r->access |= bits[k];
		}
		free(list);
		list = NULL;
	}

	if (get_names(x, e, jp, "class", PW_NAME_MAX, 32, &list, &n) < 0) {
		free(list);
		return -1;
	}
	path_key(jp2, jp, "class");
	for (int i = 0; i < n; i++) {
		const char *c = list + (size_t)i * PW_NAME_MAX;
		int k;
		for (k = 0; k <= PW_SQL_EXPLAIN; k++)
			if (strcmp(c, pw_sql_class_name((enum pw_sql_class)k)) == 0)
				break;
		if (k > PW_SQL_EXPLAIN) {
			path_index(sub, jp2, (size_t)i);
			fail(x, sub,
			     "unknown command class %s (expected select, insert, update, delete, "
			     "merge, copy_to, copy_from, ddl, dcl, truncate, call, do, set, "
			     "transaction, prepare, execute, explain or other)",
			     quote(q, c));
			free(list);
			return -1;
		}
		r->classes |= 1u << k;
	}
	free(list);
	list = NULL;

	if (get_names(x, e, jp, "facts", PW_NAME_MAX, 32, &list, &n) < 0) {
		free(list);
		return -1;
	}
	path_key(jp2, jp, "facts");
	for (int i = 0; i < n; i++) {
		const char *f = list + (size_t)i * PW_NAME_MAX;
		size_t k;
		for (k = 0; k < N_ELEMS(fact_names); k++)
			if (strcmp(f, fact_names[k].name) == 0)
				break;
		if (k == N_ELEMS(fact_names)) {
			const char *names[N_ELEMS(fact_names)];
			char all[512];
			for (k = 0; k < N_ELEMS(fact_names); k++)
				names[k] = fact_names[k].name;
			join(all, sizeof(all), names, N_ELEMS(fact_names));
			path_index(sub, jp2, (size_t)i);
			fail(x, sub, "unknown fact %s (expected one of %s)", quote(q, f), all);
			free(list);
			return -1;
		}
		r->facts |= fact_names[k].flag;
	}
	free(list);

	if (get_names(x, e, jp, "relations", PW_GLOB_MAX, 256, (char **)&r->relations,
	              &r->n_relations) < 0 ||
	    check_qualified(x, jp, "relations", (const char *)r->relations, r->n_relations, false) <
	        0 ||
	    get_names(x, e, jp, "functions", PW_GLOB_MAX, 256, (char **)&r->functions,
	              &r->n_functions) < 0 ||
	    check_qualified(x, jp, "functions", (const char *)r->functions, r->n_functions, true) <
	        0)
		return -1;
	if (member(e, "access") && !r->n_relations && !r->n_functions) {
		path_key(sub, jp, "access");
		return fail(x, sub, "only meaningful with \"relations\" or \"functions\"");
	}
	return 0;
}

static int parse_time_of_day(struct ctx *x, const json_t *w, const char *jp, const char *key,
                             int *out)
{
	char buf[16], sub[JPATH_MAX], q[QUOTE_MAX];
	int h, m, end = 0;
	if (get_str(x, w, jp, key, buf, sizeof(buf), F_REQUIRED) < 0)
		return -1;
	if (sscanf(buf, "%2d:%2d%n", &h, &m, &end) != 2 || buf[end] || end != 5 || h < 0 || m < 0 ||
	    m > 59 || h > 24 || (h == 24 && m != 0)) {
		path_key(sub, jp, key);
		return fail(x, sub, "expected a time as \"HH:MM\" (00:00 to 24:00), got %s",
		            quote(q, buf));
	}
	*out = h * 60 + m;
	return 0;
}

static int parse_window(struct ctx *x, const json_t *w, const char *jp, struct pw_window *win)
{
	static const char *const keys[] = {"days", "from", "to", "timezone", NULL};
	static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
	static const char *const zones[] = {"UTC", "local"};
	char *list = NULL, jp2[JPATH_MAX], sub[JPATH_MAX], q[QUOTE_MAX];
	int n, zone = 0;

	if (!json_is_object(w))
		return fail(x, jp, "expected an object, got %s", type_name(w));
	if (check_keys(x, w, jp, keys) || parse_time_of_day(x, w, jp, "from", &win->from_min) < 0 ||
	    parse_time_of_day(x, w, jp, "to", &win->to_min) < 0 ||
	    get_enum(x, w, jp, "timezone", zones, N_ELEMS(zones), 0, &zone) < 0)
		return -1;
	win->utc = zone == 0;
	if (win->from_min == win->to_min) {
		path_key(sub, jp, "to");
		return fail(x, sub, "an empty window (from equals to)");
	}
	if (get_names(x, w, jp, "days", 16, 7, &list, &n) < 0) {
		free(list);
		return -1;
	}
	if (n == 0)
		win->days = 0x7f;
	path_key(jp2, jp, "days");
	for (int i = 0; i < n; i++) {
		const char *d = list + (size_t)i * 16;
		int a = -1, b = -1;
		for (int k = 0; k < 7; k++) {
			if (strncmp(d, days[k], 3) == 0 && (d[3] == 0 || d[3] == '-'))
				a = k;
			if (d[3] == '-' && strcmp(d + 4, days[k]) == 0)
				b = k;
		}
		if (a < 0 || (d[3] == '-' && b < 0)) {
			path_index(sub, jp2, (size_t)i);
			fail(x, sub,
			     "expected a day (mon .. sun) or a range such as \"mon-fri\", got %s",
			     quote(q, d));
			free(list);
			return -1;
		}
		if (b < 0)
			b = a;
		for (int k = a;; k = (k + 1) % 7) {
			win->days |= (uint8_t)(1u << k);
			if (k == b)
				break;
		}
	}
	free(list);
	return 0;
}

/* PostgreSQL identifiers the JIT role SQL quotes; privilege names from a fixed list. */
static int parse_grant(struct ctx *x, const json_t *g, const char *jp, struct pw_grant *gr)
{
	static const char *const keys[] = {"privileges", "table", "schema", NULL};
	static const char *const privs[] = {"SELECT",   "INSERT",     "UPDATE",  "DELETE",
	                                    "TRUNCATE", "REFERENCES", "TRIGGER", "ALL"};
	char *list = NULL, jp2[JPATH_MAX], sub[JPATH_MAX], q[QUOTE_MAX], table[2 * PW_NAME_MAX];
	int n, rt, rs;

	if (!json_is_object(g))
		return fail(x, jp, "expected an object, got %s", type_name(g));
	if (check_keys(x, g, jp, keys))
		return -1;
	if (get_names(x, g, jp, "privileges", 16, PW_MAX_GRANT_PRIVS, &list, &n) < 0) {
		free(list);
		return -1;
	}
	if (n == 0) {
		path_key(sub, jp, "privileges");
		return missing(x, g, sub, "privileges", "a list such as [\"SELECT\"]");
	}
	path_key(jp2, jp, "privileges");
	for (int i = 0; i < n; i++) {
		const char *p = list + (size_t)i * 16;
		size_t k;
		for (k = 0; k < N_ELEMS(privs); k++)
			if (strcasecmp(p, privs[k]) == 0)
				break;
		if (k == N_ELEMS(privs)) {
			char all[160];
			join(all, sizeof(all), privs, N_ELEMS(privs));
			path_index(sub, jp2, (size_t)i);
			fail(x, sub, "expected a table privilege (%s), got %s", all, quote(q, p));
			free(list);
			return -1;
		}
		snprintf(gr->privileges[gr->n_privileges++], sizeof(gr->privileges[0]), "%s",
		         privs[k]);
	}
	free(list);
	rt = get_str(x, g, jp, "table", table, sizeof(table), F_NONEMPTY);
	rs = get_str(x, g, jp, "schema", gr->schema, sizeof(gr->schema), F_NONEMPTY);
	if (rt < 0 || rs < 0)
		return -1;
	if (rt == rs)
		return fail(x, jp,
		            "expected exactly one of \"table\" (\"schema.table\") or "
		            "\"schema\" (all its tables)");
	if (rt) {
		char *dot = strchr(table, '.');
		path_key(sub, jp, "table");
		if (!dot || dot == table || !dot[1] || strchr(dot + 1, '.') ||
		    (size_t)(dot - table) >= PW_NAME_MAX || strlen(dot + 1) >= PW_NAME_MAX)
			return fail(x, sub, "expected \"schema.table\", got %s", quote(q, table));
		memcpy(gr->schema, table, (size_t)(dot - table));
		gr->schema[dot - table] = 0;
		strcpy(gr->table, dot + 1);
	}
	return 0;
}

static int parse_policy(struct ctx *x, const json_t *e, const char *jp, struct pw_config *c,
                        struct pw_policy *p)
{
	char sub[JPATH_MAX], jp2[JPATH_MAX], q[QUOTE_MAX], *list = NULL;
	long long v;
	int rc, n;

	if (get_names(x, e, jp, "databases", PW_NAME_MAX, 256, (char **)&p->databases,
	              &p->n_databases) < 0)
		return -1;
	if (get_names(x, e, jp, "upstreams", PW_NAME_MAX, 256, &list, &n) < 0) {
		free(list);
		return -1;
	}
	if (n && !(p->upstreams = calloc((size_t)n, sizeof(int)))) {
		free(list);
		return fail(x, jp, "out of memory");
	}
	path_key(jp2, jp, "upstreams");
	for (int i = 0; i < n; i++) {
		const char *u = list + (size_t)i * PW_NAME_MAX;
		int k;
		for (k = 0; k < c->n_upstreams && strcmp(c->upstreams[k].name, u) != 0; k++)
			;
		if (k == c->n_upstreams) {
			path_index(sub, jp2, (size_t)i);
			fail(x, sub, "no upstream named %s", quote(q, u));
			free(list);
			return -1;
		}
		p->upstreams[p->n_upstreams++] = k;
	}
	free(list);

	if (get_str(x, e, jp, "role", p->role, sizeof(p->role), F_NONEMPTY) < 0)
		return -1;
	json_t *jit = get_container(x, e, jp, "jit_role", false, false, &rc);
	if (rc)
		return -1;
	if (jit) {
		static const char *const keys[] = {"grants", "member_of", NULL};
		path_key(sub, jp, "jit_role");
		if (p->role[0])
			return fail(x, sub, "a fixed \"role\" and \"jit_role\" exclude each other");
		if (check_keys(x, jit, sub, keys) ||
		    get_names(x, jit, sub, "member_of", PW_NAME_MAX, 64, (char **)&p->member_of,
		              &p->n_member_of) < 0)
			return -1;
		p->jit = true;
		json_t *gs = get_container(x, jit, sub, "grants", true, false, &rc);
		if (rc)
			return -1;
		if (gs && json_array_size(gs) > 256)
			return fail(x, sub, "at most 256 grants");
		if (gs && json_array_size(gs) &&
		    !(p->grants = calloc(json_array_size(gs), sizeof(*p->grants))))
			return fail(x, sub, "out of memory");
		size_t i;
		json_t *g;
		path_key(jp2, sub, "grants");
		json_array_foreach(gs, i, g)
		{
			char gp[JPATH_MAX];
			path_index(gp, jp2, i);
			if (parse_grant(x, g, gp, &p->grants[i]) < 0)
				return -1;
			p->n_grants++;
		}
	}

	json_t *ws = get_container(x, e, jp, "windows", true, false, &rc);
	if (rc)
		return -1;
	if (ws) {
		path_key(jp2, jp, "windows");
		if (json_array_size(ws) == 0 || json_array_size(ws) > 64)
			return fail(x, jp2,
			            "expected 1 to 64 windows (leave the key out for always)");
		if (!(p->windows = calloc(json_array_size(ws), sizeof(*p->windows))))
			return fail(x, jp2, "out of memory");
		size_t i;
		json_t *w;
		json_array_foreach(ws, i, w)
		{
			path_index(sub, jp2, i);
			if (parse_window(x, w, sub, &p->windows[i]) < 0)
				return -1;
			p->n_windows++;
		}
	}
	if ((rc = get_int(x, e, jp, "max_sessions", 1, 1000000, 0, &v)) < 0)
		return -1;
	if (rc)
		p->max_sessions = (int)v;

	json_t *gr = get_container(x, e, jp, "guardrails", false, false, &rc);
	if (rc)
		return -1;
	if (gr) {
		const char *names[PW_GR_COUNT + 2];
		names[0] = "all";
		for (int i = 0; i < PW_GR_COUNT; i++)
			names[i + 1] = pw_guardrail_name((enum pw_guardrail)i);
		names[PW_GR_COUNT + 1] = NULL;
		path_key(jp2, jp, "guardrails");
		if (check_keys(x, gr, jp2, names))
			return -1;
		bool all = true;
		if (get_bool(x, gr, jp2, "all", &all) < 0)
			return -1;
		for (int i = 0; i < PW_GR_COUNT; i++) {
			bool on = all;
			if (get_bool(x, gr, jp2, names[i + 1], &on) < 0)
				return -1;
			p->guardrail_off[i] = !on;
		}
	}

	json_t *rs = get_container(x, e, jp, "rules", true, false, &rc);
	if (rc)
		return -1;
	if (rs) {
		path_key(jp2, jp, "rules");
		if (json_array_size(rs) > 4096)
			return fail(x, jp2, "at most 4096 rules");
		if (json_array_size(rs) &&
		    !(p->rules = calloc(json_array_size(rs), sizeof(*p->rules))))
			return fail(x, jp2, "out of memory");
		size_t i;
		json_t *r;
		json_array_foreach(rs, i, r)
		{
			path_index(sub, jp2, i);
			p->n_rules++; /* counted before parsing so that a failure frees its arrays
			               */
			if (parse_rule(x, r, sub, &p->rules[i]) < 0 && !x->collect)
				return -1;
		}
	}
	/* without a reliable analysis only a policy that does not depend on it is sound */
	if (p->guardrail_off[PW_GR_PARSER_INTEGRITY] &&
	    !(p->n_rules == 1 && p->rules[0].action == PW_ACT_ALLOW && !p->rules[0].classes &&
	      !p->rules[0].n_relations && !p->rules[0].n_functions && !p->rules[0].facts)) {
		path_key(sub, jp, "guardrails");
		return fail(x, sub,
		            "parser_integrity can be switched off only for an identity whose rules "
		            "allow everything (exactly [{\"action\": \"allow\"}])");
	}
	p->allow_all = p->n_rules == 1 && p->rules[0].action == PW_ACT_ALLOW &&
	               !p->rules[0].classes && !p->rules[0].n_relations &&
	               !p->rules[0].n_functions && !p->rules[0].facts;
	for (int i = 0; i < PW_GR_COUNT; i++)
		p->allow_all &= p->guardrail_off[i];
	return 0;
}

static void policy_free(struct pw_policy *p)
{
	free(p->databases);
	free(p->upstreams);
	free(p->grants);
	free(p->member_of);
	free(p->windows);
	for (int i = 0; i < p->n_rules; i++) {
		free(p->rules[i].relations);
		free(p->rules[i].functions);
	}
	free(p->rules);
}

/* ---- identities ---- */

static int parse_identity(struct ctx *x, const json_t *e, const char *jp, struct pw_config *c,
                          struct pw_identity *id)
{
	static const char *const keys[] = {
	    "name", "match",    "auth",    "scram_verifier", "upstream",   "databases", "upstreams",
	    "role", "jit_role", "windows", "max_sessions",   "guardrails", "rules",     NULL};
	static const char *const match_keys[] = {"user",
	                                         "database",
	                                         "application_name",
	                                         "cgroup",
	                                         "exe",
	                                         "comm",
	                                         "ancestor_comm",
	                                         "ancestor_exe",
	                                         "uid",
	                                         "gid",
	                                         "sub",
	                                         "group",
	                                         NULL};
	char sub[JPATH_MAX], q[QUOTE_MAX], upstream[PW_NAME_MAX];
	int auth = 0, rc;

	if (!json_is_object(e))
		return fail(x, jp, "expected an object, got %s", type_name(e));
	if (check_keys(x, e, jp, keys))
		return -1;
	if (get_str(x, e, jp, "name", id->name, sizeof(id->name), F_REQUIRED | F_NONEMPTY) < 0)
		return -1;
	for (int j = 0; j < c->n_identities - 1; j++) { /* the last one is id itself */
		if (strcmp(c->identities[j].name, id->name) == 0) {
			path_key(sub, jp, "name");
			return fail(x, sub, "duplicate identity name %s (also $.identities[%d])",
			            quote(q, id->name), j);
		}
	}

	json_t *m = get_container(x, e, jp, "match", false, false, &rc);
	if (rc)
		return -1;
	if (m) {
		path_key(sub, jp, "match");
		if (check_keys(x, m, sub, match_keys) ||
		    get_str(x, m, sub, "user", id->match_user, sizeof(id->match_user), 0) < 0 ||
		    get_str(x, m, sub, "database", id->match_database, sizeof(id->match_database),
		            0) < 0 ||
		    get_str(x, m, sub, "application_name", id->match_application_name,
		            sizeof(id->match_application_name), 0) < 0 ||
		    get_str(x, m, sub, "cgroup", id->match_cgroup, sizeof(id->match_cgroup), 0) <
		        0 ||
		    get_str(x, m, sub, "exe", id->match_exe, sizeof(id->match_exe), 0) < 0 ||
		    get_str(x, m, sub, "comm", id->match_comm, sizeof(id->match_comm), 0) < 0 ||
		    get_str(x, m, sub, "ancestor_comm", id->match_ancestor_comm,
		            sizeof(id->match_ancestor_comm), 0) < 0 ||
		    get_str(x, m, sub, "ancestor_exe", id->match_ancestor_exe,
		            sizeof(id->match_ancestor_exe), 0) < 0)
			return -1;
		if (get_str(x, m, sub, "sub", id->match_sub, sizeof(id->match_sub), 0) < 0 ||
		    get_str(x, m, sub, "group", id->match_group, sizeof(id->match_group), 0) < 0)
			return -1;
		long long v;
		id->match_uid = id->match_gid = -1;
		if ((rc = get_int(x, m, sub, "uid", 0, 4294967294LL, 0, &v)) < 0)
			return -1;
		if (rc)
			id->match_uid = v;
		if ((rc = get_int(x, m, sub, "gid", 0, 4294967294LL, 0, &v)) < 0)
			return -1;
		if (rc)
			id->match_gid = v;
		id->needs_kernel = id->match_cgroup[0] || id->match_exe[0] || id->match_comm[0] ||
		                   id->match_ancestor_comm[0] || id->match_ancestor_exe[0] ||
		                   id->match_uid >= 0 || id->match_gid >= 0;
		if (id->needs_kernel && !c->redirect.enabled)
			return fail(
			    x, sub,
			    "kernel facts (cgroup, exe, comm, ancestor_*, uid, gid) need the "
			    "\"redirect\" section");
	} else {
		id->match_uid = id->match_gid = -1;
	}

	if (get_enum(x, e, jp, "auth", auth_names, N_ELEMS(auth_names), F_REQUIRED, &auth) < 0)
		return -1;
	id->auth = (enum pw_client_auth)auth;
	path_key(sub, jp, "scram_verifier");
	json_t *ver = member(e, "scram_verifier");
	if (id->auth == PW_CLIENT_AUTH_PASSWORD) {
		char why[256] = "";
		if (!ver)
			return missing(x, e, sub, "scram_verifier",
			               "a SCRAM-SHA-256 verifier, required by auth \"password\"");
		if (!json_is_string(ver))
			return fail(x, sub, "expected a string, got %s", type_name(ver));
		if (pw_scram_parse_verifier(json_string_value(ver), &id->verifier, why,
		                            sizeof(why)) != 0)
			return fail(x, sub, "invalid SCRAM-SHA-256 verifier: %s", why);
	} else if (ver) {
		/* a verifier next to "trust" suggests the operator believes it is checked */
		return fail(x, sub, "not used with auth \"%s\"; remove it or use auth \"password\"",
		            auth_names[id->auth]);
	}
	if (id->auth == PW_CLIENT_AUTH_JWT && !c->jwt.enabled) {
		path_key(sub, jp, "auth");
		return fail(x, sub,
		            "auth \"jwt\" needs the \"jwt\" section (jwks_file, issuer, "
		            "audience)");
	}
	if (id->auth != PW_CLIENT_AUTH_JWT && (id->match_sub[0] || id->match_group[0])) {
		path_key(sub, jp, "match");
		return fail(x, sub, "sub and group are token claims: they need auth \"jwt\"");
	}

	if (parse_policy(x, e, jp, c, &id->policy) < 0)
		return -1;
	if (c->redirect.enabled && !member(e, "upstream")) {
		/* steered sessions: the upstream whose address is the original destination */
		id->upstream = -1;
		return 0;
	}
	if (get_str(x, e, jp, "upstream", upstream, sizeof(upstream), F_REQUIRED | F_NONEMPTY) <
	    0) {
		/* a name too long for the buffer cannot name an upstream either: report that */
		json_t *u = member(e, "upstream");
		if (!u || !json_is_string(u) || json_string_length(u) < sizeof(upstream))
			return -1;
		path_key(sub, jp, "upstream");
		return fail(x, sub, "no upstream named %s", quote(q, json_string_value(u)));
	}
	for (int j = 0; j < c->n_upstreams; j++) {
		if (strcmp(c->upstreams[j].name, upstream) == 0) {
			id->upstream = j;
			return 0;
		}
	}
	path_key(sub, jp, "upstream");
	return fail(x, sub, "no upstream named %s", quote(q, upstream));
}

static int parse_identities(struct ctx *x, const json_t *root, struct pw_config *c)
{
	int rc;
	json_t *arr = get_container(x, root, "$", "identities", true, true, &rc);
	if (!arr)
		return -1;
	if (json_array_size(arr) == 0)
		return fail(x, "$.identities", "expected at least one identity");
	c->identities = calloc(json_array_size(arr), sizeof(*c->identities));
	if (!c->identities)
		return fail(x, "$.identities", "out of memory");

	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char jp[JPATH_MAX];
		path_index(jp, "$.identities", i);
		/* counted first: the policy arrays of a failed one are freed with the rest */
		c->n_identities++;
		if (parse_identity(x, e, jp, c, &c->identities[i]) && !x->collect)
			return -1;
	}
	return 0;
}

/* ---- limits and the top level ---- */

static int get_size(struct ctx *x, const json_t *obj, const char *key, long long lo, long long hi,
                    size_t *out)
{
	long long n;
	int rc = get_int(x, obj, "$.limits", key, lo, hi, 0, &n);
	if (rc > 0)
		*out = (size_t)n;
	return rc;
}

static int parse_limits(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"max_message_bytes",    "max_statement_bytes",
	                                   "max_bind_bytes",       "max_startup_bytes",
	                                   "auth_timeout_seconds", NULL};
	int rc;
	json_t *l = get_container(x, root, "$", "limits", false, false, &rc);
	if (!l)
		return rc;
	if (check_keys(x, l, "$.limits", keys))
		return -1;
	/* a message must at least hold an ErrorResponse; PostgreSQL itself never accepts a
	 * startup packet above 10000 bytes, so more would be pointless */
	if (get_size(x, l, "max_message_bytes", 1024, PG_MESSAGE_LIMIT, &c->max_message_bytes) <
	        0 ||
	    get_size(x, l, "max_statement_bytes", 1, PG_MESSAGE_LIMIT, &c->max_statement_bytes) <
	        0 ||
	    get_size(x, l, "max_bind_bytes", 1, PG_MESSAGE_LIMIT, &c->max_bind_bytes) < 0 ||
	    get_size(x, l, "max_startup_bytes", 64, 10000, &c->max_startup_bytes) < 0 ||
	    get_ms(x, l, "$.limits", "auth_timeout_seconds", 0.001, &c->auth_timeout_ms) < 0)
		return -1;
	return 0;
}

/* "10.0.0.0/8", "fd00::/8", "10.0.0.5" (a host). An IPv4-mapped IPv6 network is the IPv4
 * network it maps (the programs judge a mapped destination as IPv4); one wider than the
 * mapped range cannot be said in the one family and is refused. */
static int parse_cidr(struct ctx *x, const char *jp, const json_t *d, struct pw_cidr *c)
{
	char net[64], *slash = NULL;
	long bits = -1;
	if (json_is_string(d) && json_string_length(d) < sizeof(net)) {
		snprintf(net, sizeof(net), "%s", json_string_value(d));
		if ((slash = strchr(net, '/'))) {
			*slash = 0;
			char *end;
			bits = strtol(slash + 1, &end, 10);
			if (*end || end == slash + 1)
				bits = -1;
		}
		bool v6 = strchr(net, ':') != NULL;
		if (!slash)
			bits = v6 ? 128 : 32;
		memset(c, 0, sizeof(*c));
		c->family = v6 ? AF_INET6 : AF_INET;
		if (inet_pton(c->family, net, c->addr) != 1 || bits < 0 || bits > (v6 ? 128 : 32))
			bits = -1;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (bits >= 0 && v6 && memcmp(c->addr, mapped, 12) == 0) {
			if (bits < 96)
				return fail(
				    x, jp,
				    "an IPv4-mapped network shorter than /96 mixes families: "
				    "give the IPv4 and IPv6 networks separately");
			memmove(c->addr, c->addr + 12, 4);
			memset(c->addr + 4, 0, 12);
			c->family = AF_INET;
			bits -= 96;
		}
	}
	if (bits < 0)
		return fail(x, jp, "expected a CIDR such as \"10.0.0.0/8\" or \"fd00::/8\"");
	c->bits = (int)bits;
	/* host bits set: the trie would match on them; say what was meant instead */
	for (int i = (int)bits; i < (c->family == AF_INET ? 32 : 128); i++)
		if (c->addr[i / 8] & (0x80 >> (i % 8)))
			return fail(x, jp, "%s has bits set beyond its /%ld prefix", net, bits);
	return 0;
}

static int parse_redirect(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"cgroups",
	                                   "uids",
	                                   "deny",
	                                   "ports",
	                                   "fail_mode",
	                                   "fastpath",
	                                   "heartbeat_timeout_seconds",
	                                   "mark",
	                                   "pin_path",
	                                   "listen4",
	                                   "listen4_port",
	                                   "listen6",
	                                   "listen6_port",
	                                   "destinations",
	                                   "unix",
	                                   NULL};
	static const char *const fail_names[] = {"closed", "open"};
	static const char *const unix_names[] = {"refuse", "allow"};
	struct pw_redirect *r = &c->redirect;
	char sub[JPATH_MAX], q[QUOTE_MAX];
	int rc;
	const char *jp = "$.redirect";
	json_t *o = get_container(x, root, "$", "redirect", false, false, &rc);
	if (rc)
		return -1;
	if (!o)
		return 0;
	if (check_keys(x, o, jp, keys))
		return -1;
	r->enabled = true;
	r->heartbeat_timeout_ms = 1000;
	r->fastpath = true;   /* it wins every row of make bench (README) */
	r->mark = 0x70677764; /* "pgwd" */
	snprintf(r->pin_path, sizeof(r->pin_path), "/sys/fs/bpf/pgward");
	snprintf(r->listen4, sizeof(r->listen4), "127.0.0.1");
	snprintf(r->listen6, sizeof(r->listen6), "::1");
	r->listen4_port = 432;

	json_t *cg = member(o, "cgroups"), *uids = member(o, "uids");
	if (!cg && !uids)
		return missing(x, o, "$.redirect.cgroups", "cgroups",
		               "an array of cgroup v2 directories to steer (or \"uids\")");
	if (uids) {
		if (!json_is_array(uids) || json_array_size(uids) == 0 ||
		    json_array_size(uids) > PW_MAX_REDIRECT_UIDS)
			return fail(x, "$.redirect.uids", "expected an array of 1 to %d uids",
			            PW_MAX_REDIRECT_UIDS);
		for (size_t i = 0; i < json_array_size(uids); i++) {
			json_t *v = json_array_get(uids, i);
			path_index(sub, "$.redirect.uids", i);
			/* root can detach the programs: scoping it would only pretend */
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 4294967294LL)
				return fail(x, sub,
				            "expected a uid from 1 to 4294967294 (root cannot be "
				            "fenced: it can detach the programs)");
			r->uids[r->n_uids++] = (unsigned)json_integer_value(v);
		}
	}
	if (cg && (!json_is_array(cg) || json_array_size(cg) == 0 ||
	           json_array_size(cg) > PW_MAX_REDIRECT_CGROUPS))
		return fail(x, "$.redirect.cgroups", "expected an array of 1 to %d paths",
		            PW_MAX_REDIRECT_CGROUPS);
	for (size_t i = 0; cg && i < json_array_size(cg); i++) {
		json_t *v = json_array_get(cg, i);
		path_index(sub, "$.redirect.cgroups", i);
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= PATH_MAX)
			return fail(x, sub, "expected a cgroup v2 directory path");
		snprintf(r->cgroups[r->n_cgroups++], PATH_MAX, "%s", json_string_value(v));
		struct stat st;
		if (stat(json_string_value(v), &st) != 0 || !S_ISDIR(st.st_mode))
			return fail(x, sub, "cgroup %s does not exist",
			            quote(q, json_string_value(v)));
	}
	json_t *ports = member(o, "ports");
	if (ports) {
		if (!json_is_array(ports) || json_array_size(ports) == 0 ||
		    json_array_size(ports) > PW_MAX_REDIRECT_PORTS)
			return fail(x, "$.redirect.ports", "expected an array of 1 to %d ports",
			            PW_MAX_REDIRECT_PORTS);
		for (size_t i = 0; i < json_array_size(ports); i++) {
			json_t *v = json_array_get(ports, i);
			path_index(sub, "$.redirect.ports", i);
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 65535)
				return fail(x, sub, "expected a port from 1 to 65535");
			r->ports[r->n_ports++] = (int)json_integer_value(v);
		}
	} else {
		r->ports[r->n_ports++] = 5432;
	}
	int fm = 0, um = 0;
	long long v;
	if (get_enum(x, o, jp, "fail_mode", fail_names, 2, 0, &fm) < 0 ||
	    get_enum(x, o, jp, "unix", unix_names, 2, 0, &um) < 0 ||
	    get_bool(x, o, jp, "fastpath", &r->fastpath) < 0 ||
	    get_ms(x, o, jp, "heartbeat_timeout_seconds", 0.01, &r->heartbeat_timeout_ms) < 0 ||
	    get_str(x, o, jp, "pin_path", r->pin_path, sizeof(r->pin_path), F_NONEMPTY) < 0 ||
	    get_str(x, o, jp, "listen4", r->listen4, sizeof(r->listen4), F_NONEMPTY) < 0 ||
	    get_str(x, o, jp, "listen6", r->listen6, sizeof(r->listen6), 0) < 0)
		return -1;
	r->fail_open = fm == 1;
	r->unix_refuse = um == 0;
	if ((rc = get_int(x, o, jp, "mark", 1, 4294967295LL, 0, &v)) < 0)
		return -1;
	if (rc)
		r->mark = (unsigned)v;
	if ((rc = get_int(x, o, jp, "listen4_port", 1, 65535, 0, &v)) < 0)
		return -1;
	if (rc)
		r->listen4_port = (int)v;
	r->listen6_port = r->listen4_port;
	if ((rc = get_int(x, o, jp, "listen6_port", 1, 65535, 0, &v)) < 0)
		return -1;
	if (rc)
		r->listen6_port = (int)v;
	json_t *dsts = member(o, "destinations");
	if (dsts) {
		if (!json_is_array(dsts) || json_array_size(dsts) > PW_MAX_REDIRECT_DSTS)
			return fail(x, "$.redirect.destinations",
			            "expected an array of at most %d CIDRs", PW_MAX_REDIRECT_DSTS);
		for (size_t i = 0; i < json_array_size(dsts); i++) {
			path_index(sub, "$.redirect.destinations", i);
			if (parse_cidr(x, sub, json_array_get(dsts, i),
			               &r->destinations[r->n_destinations++]) < 0)
				return -1;
		}
	}
	json_t *deny = member(o, "deny");
	if (deny) {
		if (!json_is_array(deny) || json_array_size(deny) > PW_MAX_REDIRECT_DENY)
			return fail(x, "$.redirect.deny",
			            "expected an array of at most %d {\"net\": CIDR, \"port\": N}",
			            PW_MAX_REDIRECT_DENY);
		for (size_t i = 0; i < json_array_size(deny); i++) {
			static const char *const dkeys[] = {"net", "port", NULL};
			json_t *d = json_array_get(deny, i);
			path_index(sub, "$.redirect.deny", i);
			if (!json_is_object(d))
				return fail(x, sub,
				            "expected {\"net\": \"10.0.0.5/32\", \"port\": 6432} "
				            "(no port: every port)");
			if (check_keys(x, d, sub, dkeys))
				return -1;
			char np[JPATH_MAX + 8];
			snprintf(np, sizeof(np), "%s.net", sub);
			json_t *net = member(d, "net");
			if (!net)
				return missing(x, d, np, "net", "a CIDR");
			if (parse_cidr(x, np, net, &r->deny[r->n_deny]) < 0)
				return -1;
			r->deny_port[r->n_deny] = 0;
			if ((rc = get_int(x, d, sub, "port", 1, 65535, 0, &v)) < 0)
				return -1;
			if (rc)
				r->deny_port[r->n_deny] = (int)v;
			r->n_deny++;
		}
	}
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, r->listen4, &a4) != 1)
		return fail(x, "$.redirect.listen4", "expected a numeric IPv4 address, got %s",
		            quote(q, r->listen4));
	if (r->listen6[0] && inet_pton(AF_INET6, r->listen6, &a6) != 1)
		return fail(x, "$.redirect.listen6", "expected a numeric IPv6 address, got %s",
		            quote(q, r->listen6));
	return 0;
}

/* Encodings in which a multibyte character's second byte can be a quote or a backslash:
 * the server would read such text differently from the analyser (CVE-2006-2314). */
static int parse_client_encodings(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const unsafe[] = {"SJIS",    "SHIFTJIS", "BIG5",   "GBK",    "GB18030",
	                                     "JOHAB",   "UHC",      "WIN932", "WIN936", "WIN949",
	                                     "WIN950",  "CP932",    "CP936",  "CP949",  "CP950",
	                                     "MSKANJI", "TCVN",     "WIN1258"};
	char *list = NULL, jp[JPATH_MAX], q[QUOTE_MAX];
	int rc = get_names(x, root, "$", "client_encodings", PW_NAME_MAX,
	                   (int)N_ELEMS(c->client_encodings), &list, &c->n_client_encodings);
	if (rc > 0)
		memcpy(c->client_encodings, list, (size_t)c->n_client_encodings * PW_NAME_MAX);
	free(list);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		c->n_client_encodings = 1;
		strcpy(c->client_encodings[0], "UTF8");
	}
	for (int i = 0; i < c->n_client_encodings; i++) {
		char norm[PW_NAME_MAX];
		pw_encoding_normalize(c->client_encodings[i], norm);
		for (size_t k = 0; k < N_ELEMS(unsafe); k++) {
			if (strcmp(norm, unsafe[k]) == 0) {
				path_index(jp, "$.client_encodings", (size_t)i);
				return fail(
				    x, jp,
				    "%s cannot be allowed: its multibyte characters can hide "
				    "a quote from the statement analyser",
				    quote(q, c->client_encodings[i]));
			}
		}
		strcpy(c->client_encodings[i], norm);
	}
	return 0;
}

/* PostgreSQL compares encoding names ignoring case and punctuation ("utf-8" is UTF8). */
void pw_encoding_normalize(const char *name, char out[PW_NAME_MAX])
{
	size_t o = 0;
	for (; *name && o < PW_NAME_MAX - 1; name++)
		if (isalnum((unsigned char)*name))
			out[o++] = (char)toupper((unsigned char)*name);
	out[o] = 0;
	if (strcmp(out, "UNICODE") == 0)
		strcpy(out, "UTF8");
}

bool pw_config_encoding_allowed(const struct pw_config *c, const char *name)
{
	char norm[PW_NAME_MAX];
	pw_encoding_normalize(name, norm);
	for (int i = 0; i < c->n_client_encodings; i++)
		if (strcmp(norm, c->client_encodings[i]) == 0)
			return true;
	return false;
}

static int parse_jwt(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {
	    "jwks_file",    "issuer",      "audience", "leeway_seconds",
	    "groups_claim", "allow_hs256", NULL};
	struct pw_jwt_config *j = &c->jwt;
	char err[512];
	long long v;
	int rc;
	json_t *o = get_container(x, root, "$", "jwt", false, false, &rc);
	if (!o)
		return rc;
	j->leeway_s = 30;
	strcpy(j->groups_claim, "groups");
	if (check_keys(x, o, "$.jwt", keys) ||
	    get_str(x, o, "$.jwt", "jwks_file", j->jwks_file, sizeof(j->jwks_file),
	            F_REQUIRED | F_NONEMPTY) < 0 ||
	    /* a token for any issuer or any audience would do: both are required */
	    get_str(x, o, "$.jwt", "issuer", j->issuer, sizeof(j->issuer),
	            F_REQUIRED | F_NONEMPTY) < 0 ||
	    get_str(x, o, "$.jwt", "audience", j->audience, sizeof(j->audience),
	            F_REQUIRED | F_NONEMPTY) < 0 ||
	    get_str(x, o, "$.jwt", "groups_claim", j->groups_claim, sizeof(j->groups_claim),
	            F_NONEMPTY) < 0 ||
	    get_bool(x, o, "$.jwt", "allow_hs256", &j->allow_hs256) < 0)
		return -1;
	if ((rc = get_int(x, o, "$.jwt", "leeway_seconds", 0, 3600, 0, &v)) < 0)
		return -1;
	if (rc)
		j->leeway_s = (int)v;
	if (pw_jwt_keys_load(j->jwks_file, j->allow_hs256, &j->keys, err, sizeof(err)) < 0)
		return fail(x, "$.jwt.jwks_file", "%s", err);
	j->enabled = true;
	return 0;
}

static int default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static int parse_root(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"workers",
	                                   "log_level",
	                                   "shutdown_grace_seconds",
	                                   "control_socket",
	                                   "listen",
	                                   "tls",
	                                   "upstreams",
	                                   "identities",
	                                   "limits",
	                                   "redirect",
	                                   "client_encodings",
	                                   "jwt",
	                                   NULL};
	long long n;
	enum pw_log_level lvl = PW_LOG_INFO;
	int rc;

	if (!json_is_object(root))
		return fail(x, "$", "expected an object, got %s", type_name(root));
	if (check_keys(x, root, "$", keys))
		return -1;
	rc = get_int(x, root, "$", "workers", 1, 256, 0, &n);
	if (rc < 0)
		return -1;
	if (rc)
		c->workers = (int)n;
	/* the names are log.c's; parse through it so both stay one list */
	json_t *v = member(root, "log_level");
	if (v && (!json_is_string(v) || pw_log_parse_level(json_string_value(v), &lvl) != 0)) {
		char list[64];
		join(list, sizeof(list), level_names, N_ELEMS(level_names));
		if (json_is_string(v)) {
			char q[QUOTE_MAX];
			return fail(x, "$.log_level", "expected one of %s, got %s", list,
			            quote(q, json_string_value(v)));
		}
		return fail(x, "$.log_level", "expected one of %s, got %s", list, type_name(v));
	}
	c->log_level = lvl;
	if (get_ms(x, root, "$", "shutdown_grace_seconds", 0, &c->shutdown_grace_ms) < 0 ||
	    get_str(x, root, "$", "control_socket", c->control_socket, sizeof(c->control_socket),
	            0) < 0)
		return -1;
	if (parse_client_encodings(x, root, c) < 0)
		return -1;
	if (parse_listen(x, root, c) || parse_tls(x, root, c) || parse_upstreams(x, root, c) ||
	    parse_redirect(x, root, c) || parse_jwt(x, root, c) || parse_identities(x, root, c) ||
	    parse_limits(x, root, c))
		return -1;
	return 0;
}

/* Secrets (upstream passwords, verifiers) are wiped before the memory is returned. */
static void config_free(struct pw_config *c)
{
	if (!c)
		return;
	if (c->upstreams)
		explicit_bzero(c->upstreams, (size_t)c->n_upstreams * sizeof(*c->upstreams));
	for (int i = 0; i < c->n_identities; i++)
		policy_free(&c->identities[i].policy);
	if (c->identities)
		explicit_bzero(c->identities, (size_t)c->n_identities * sizeof(*c->identities));
	pw_jwt_keys_free(c->jwt.keys);
	free(c->listen);
	free(c->upstreams);
	free(c->identities);
	free(c);
}

static int load_buffer(const char *buf, size_t len, const char *path, struct pw_config **out,
                       char *err, size_t errlen, char **all)
{
	struct ctx x = {
	    .file = path ? path : "<string>", .err = err, .errlen = errlen, .collect = all != NULL};
	json_error_t je;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	/* duplicate keys would otherwise let the last one win unnoticed */
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	struct pw_config *c = root ? calloc(1, sizeof(*c)) : NULL;
	if (!c) {
		int rc =
		    root ? fail(&x, NULL, "out of memory")
		         : fail(&x, NULL, "line %d, column %d: %s", je.line, je.column, je.text);
		json_decref(root);
		if (all) /* what fail() collected is the caller's now */
			*all = x.all;
		else
			free(x.all);
		return rc;
	}
	c->refcount = 1;
	c->workers = default_workers();
	c->log_level = PW_LOG_INFO;
	c->shutdown_grace_ms = 30000;
	c->max_message_bytes = 1024 * 1024 * 1024;
	c->max_statement_bytes = 1024 * 1024;
	c->max_bind_bytes = 64 * 1024 * 1024;
	c->max_startup_bytes = 10000;
	c->auth_timeout_ms = 60000;

	int rc = 0;
	if (strlen(x.file) >= sizeof(c->path))
		rc = fail(&x, NULL, "path too long");
	else
		strcpy(c->path, x.file);
	if (rc == 0)
		rc = parse_root(&x, root, c);
	json_decref(root);
	if (x.collect && x.n_errors)
		rc = -1;
	if (all) {
		*all = x.all;
		if (rc && !x.all)
			*all = strdup(err); /* only the one error, and it was not collected */
	}
	if (rc) {
		config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int pw_config_load_string(const char *text, const char *path, struct pw_config **out, char *err,
                          size_t errlen)
{
	return load_buffer(text, strlen(text), path, out, err, errlen, NULL);
}

static int load_file(const char *path, struct pw_config **out, char *err, size_t errlen, char **all)
{
	struct ctx x = {.file = path, .err = err, .errlen = errlen};
	struct stat st;

	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return fail(&x, NULL, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(&x, NULL, "not a regular file");
	}
	if (st.st_size > CONFIG_FILE_MAX) {
		close(fd);
		return fail(&x, NULL, "larger than %d bytes", CONFIG_FILE_MAX);
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return fail(&x, NULL, "out of memory");
	}
	/* read to EOF, not to st_size: the file may change under us; cap it all the same */
	for (;;) {
		if (n == cap) {
			char *nb = cap > CONFIG_FILE_MAX ? NULL : realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return fail(&x, NULL, "larger than %d bytes", CONFIG_FILE_MAX);
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			close(fd);
			return fail(&x, NULL, "cannot read: %s", strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	/* jansson would stop at a NUL byte with a puzzling message; say what it is */
	const char *nul = memchr(buf, '\0', n);
	if (nul) {
		int line = 1, col = 1;
		for (const char *p = buf; p < nul; p++, col++) {
			if (*p == '\n') {
				line++;
				col = 0;
			}
		}
		free(buf);
		return fail(&x, NULL, "line %d, column %d: NUL byte in the file", line, col);
	}
	int rc = load_buffer(buf, n, path, out, err, errlen, all);
	free(buf);
	return rc;
}

int pw_config_load(const char *path, struct pw_config **out, char *err, size_t errlen)
{
	return load_file(path, out, err, errlen, NULL);
}

int pw_config_check_all(const char *path, char **errors)
{
	char err[1024];
	struct pw_config *c = NULL;
	*errors = NULL;
	int rc = load_file(path, &c, err, sizeof(err), errors);
	if (rc == 0) {
		pw_config_unref(c);
		return 0;
	}
	if (!*errors)
		*errors = strdup(err); /* the file could not be read at all */
	int n = 0;
	for (const char *p = *errors; p && *p; p++)
		n += *p == '\n';
	return n ? n : 1;
}

/* i's match, without its comm and ancestor_comm, is no narrower than j's: a process that
 * matches j can match i by naming itself (or the reverse), so only comm tells them apart. */
static bool told_apart_by_comm(const struct pw_identity *i, const struct pw_identity *j)
{
#define LOOSE(f) (!i->f[0] || strcmp(i->f, j->f) == 0)
	return (i->match_comm[0] || i->match_ancestor_comm[0]) &&
	       (strcmp(i->match_comm, j->match_comm) != 0 ||
	        strcmp(i->match_ancestor_comm, j->match_ancestor_comm) != 0) &&
	       LOOSE(match_user) && LOOSE(match_database) && LOOSE(match_application_name) &&
	       LOOSE(match_cgroup) && LOOSE(match_exe) && LOOSE(match_ancestor_exe) &&
	       LOOSE(match_sub) && LOOSE(match_group) &&
	       (i->match_uid < 0 || i->match_uid == j->match_uid) &&
	       (i->match_gid < 0 || i->match_gid == j->match_gid);
#undef LOOSE
}

int pw_config_warnings(const struct pw_config *c, void (*fn)(void *arg, const char *msg), void *arg)
{
	char msg[512];
	int n = 0;
	for (int a = 0; a < c->n_identities; a++)
		for (int b = 0; b < c->n_identities; b++) {
			const struct pw_identity *i = &c->identities[a], *j = &c->identities[b];
			if (a == b || !told_apart_by_comm(i, j) ||
			    (told_apart_by_comm(j, i) && b < a))
				continue;
			snprintf(
			    msg, sizeof(msg),
			    "identities \"%s\" and \"%s\" are told apart only by comm or "
			    "ancestor_comm, which a process sets itself (prctl PR_SET_NAME, a "
			    "symlink's name): tell them apart by exe, ancestor_exe, cgroup or uid",
			    i->name, j->name);
			fn(arg, msg);
			n++;
		}
	return n;
}

struct pw_config *pw_config_ref(struct pw_config *c)
{
	if (c)
		__atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
	return c;
}

void pw_config_unref(struct pw_config *c)
{
	/* acq_rel: the last owner must see every other owner's writes before freeing */
	if (c && __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(c);
}

static bool glob_ok(const char *glob, const char *s)
{
	return glob[0] == '\0' || fnmatch(glob, s ? s : "", 0) == 0;
}

const struct pw_identity *pw_config_match(const struct pw_config *c, const char *user,
                                          const char *database, const char *app)
{
	return pw_config_match_facts(c, user, database, app, NULL);
}

static bool any_glob(const char *glob, const char *const *vals, int n)
{
	if (!glob[0])
		return true;
	for (int i = 0; i < n; i++)
		if (vals[i] && fnmatch(glob, vals[i], 0) == 0)
			return true;
	return false;
}

const struct pw_identity *pw_config_match_facts(const struct pw_config *c, const char *user,
                                                const char *database, const char *app,
                                                const struct pw_facts *f)
{
	return pw_config_match_ex(c, 0, user, database, app, f, NULL);
}

static bool claims_ok(const struct pw_identity *id, const struct pw_jwt_claims *cl)
{
	if (!glob_ok(id->match_sub, cl->sub))
		return false;
	if (!id->match_group[0])
		return true;
	for (int i = 0; i < cl->n_groups; i++)
		if (fnmatch(id->match_group, cl->groups[i], 0) == 0)
			return true;
	return false;
}

const struct pw_identity *pw_config_match_ex(const struct pw_config *c, int from, const char *user,
                                             const char *database, const char *app,
                                             const struct pw_facts *f,
                                             const struct pw_jwt_claims *claims)
{
	for (int i = from < 0 ? 0 : from; i < c->n_identities; i++) {
		const struct pw_identity *id = &c->identities[i];
		if (!glob_ok(id->match_user, user) || !glob_ok(id->match_database, database) ||
		    !glob_ok(id->match_application_name, app))
			continue;
		if (claims && (id->auth != PW_CLIENT_AUTH_JWT || !claims_ok(id, claims)))
			continue;
		if (!id->needs_kernel)
			return id;
		/* kernel facts: only what the kernel told us about a steered connection */
		if (!f)
			continue;
		if (glob_ok(id->match_cgroup, f->cgroup) && glob_ok(id->match_exe, f->exe) &&
		    glob_ok(id->match_comm, f->comm) &&
		    (id->match_uid < 0 || id->match_uid == f->uid) &&
		    (id->match_gid < 0 || id->match_gid == f->gid) &&
		    any_glob(id->match_ancestor_comm, f->anc_comm, f->n_ancestors) &&
		    any_glob(id->match_ancestor_exe, f->anc_exe, f->n_ancestors))
			return id;
	}
	return NULL;
}

int pw_config_upstream_for(const struct pw_config *c, const struct sockaddr *dst)
{
	for (int i = 0; i < c->n_upstreams; i++) {
		const struct pw_upstream *u = &c->upstreams[i];
		if (u->unix_dir[0])
			continue;
		if (dst->sa_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)dst;
			struct in_addr x;
			if (inet_pton(AF_INET, u->host, &x) == 1 &&
			    x.s_addr == a->sin_addr.s_addr && ntohs(a->sin_port) == u->port)
				return i;
		} else if (dst->sa_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)dst;
			struct in6_addr x;
			if (inet_pton(AF_INET6, u->host, &x) == 1 &&
			    memcmp(&x, &a->sin6_addr, sizeof(x)) == 0 &&
			    ntohs(a->sin6_port) == u->port)
				return i;
		}
	}
	return -1;
}

const char *pw_sslmode_name(enum pw_sslmode m)
{
	return (unsigned)m < N_ELEMS(sslmode_names) ? sslmode_names[m] : "?";
}
