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
};

/* Optional-getter flags. */
#define F_REQUIRED 1u
#define F_NONEMPTY 2u

static const char *const sslmode_names[] = {"disable", "prefer", "require", "verify-ca",
                                            "verify-full"};
static const char *const auth_names[] = {"trust", "password"};
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
	if (plain) {
		snprintf(out, JPATH_MAX, "%s.%s", base, key);
	} else {
		char q[QUOTE_MAX];
		snprintf(out, JPATH_MAX, "%s[%s]", base, quote(q, key));
	}
}

static void path_index(char out[JPATH_MAX], const char *base, size_t i)
{
	snprintf(out, JPATH_MAX, "%s[%zu]", base, i);
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
	    get_ms(x, o, jp, "pool_idle_timeout_seconds", 0.001, &u->pool_idle_timeout_ms) < 0)
		return -1;
	long long max_idle;
	rc = get_int(x, o, jp, "pool_max_idle", 1, 100000, 0, &max_idle);
	if (rc < 0)
		return -1;
	if (rc)
		u->pool_max_idle = (int)max_idle;
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

/* ---- identities ---- */

static int parse_identity(struct ctx *x, const json_t *e, const char *jp, struct pw_config *c,
                          struct pw_identity *id)
{
	static const char *const keys[] = {"name",           "match",    "auth",
	                                   "scram_verifier", "upstream", NULL};
	static const char *const match_keys[] = {"user",	      "database",
						 "application_name", "cgroup",
						 "exe",		      "comm",
						 "ancestor_comm",    "ancestor_exe",
						 "uid",		      "gid",
						 NULL};
	char sub[JPATH_MAX], q[QUOTE_MAX], upstream[PW_NAME_MAX];
	int auth = 0, rc;

	if (!json_is_object(e))
		return fail(x, jp, "expected an object, got %s", type_name(e));
	if (check_keys(x, e, jp, keys))
		return -1;
	if (get_str(x, e, jp, "name", id->name, sizeof(id->name), F_REQUIRED | F_NONEMPTY) < 0)
		return -1;
	for (int j = 0; j < c->n_identities; j++) {
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
		    get_str(x, m, sub, "cgroup", id->match_cgroup, sizeof(id->match_cgroup), 0) < 0 ||
		    get_str(x, m, sub, "exe", id->match_exe, sizeof(id->match_exe), 0) < 0 ||
		    get_str(x, m, sub, "comm", id->match_comm, sizeof(id->match_comm), 0) < 0 ||
		    get_str(x, m, sub, "ancestor_comm", id->match_ancestor_comm,
		            sizeof(id->match_ancestor_comm), 0) < 0 ||
		    get_str(x, m, sub, "ancestor_exe", id->match_ancestor_exe,
		            sizeof(id->match_ancestor_exe), 0) < 0)
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
			return fail(x, sub,
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
		return fail(x, sub,
		            "not used with auth \"trust\"; remove it or use auth "
		            "\"password\"");
	}

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
		if (parse_identity(x, e, jp, c, &c->identities[i])) {
			explicit_bzero(&c->identities[i], sizeof(c->identities[i]));
			return -1;
		}
		c->n_identities++;
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

static int parse_redirect(struct ctx *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"cgroups",	 "ports",	 "fail_mode",
					   "fastpath",	 "heartbeat_timeout_seconds",
					   "mark",	 "pin_path",	 "listen4",
					   "listen4_port", "listen6",	 "listen6_port",
					   "destinations", NULL};
	static const char *const fail_names[] = {"closed", "open"};
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
	r->fastpath = true; /* it wins every row of make bench (README) */
	r->mark = 0x70677764; /* "pgwd" */
	snprintf(r->pin_path, sizeof(r->pin_path), "/sys/fs/bpf/pgward");
	snprintf(r->listen4, sizeof(r->listen4), "127.0.0.1");
	snprintf(r->listen6, sizeof(r->listen6), "::1");
	r->listen4_port = 15432;

	json_t *cg = member(o, "cgroups");
	if (!cg)
		return missing(x, o, "$.redirect.cgroups", "cgroups",
			       "an array of cgroup v2 directories to steer");
	if (!json_is_array(cg) || json_array_size(cg) == 0 ||
	    json_array_size(cg) > PW_MAX_REDIRECT_CGROUPS)
		return fail(x, "$.redirect.cgroups", "expected an array of 1 to %d paths",
			    PW_MAX_REDIRECT_CGROUPS);
	for (size_t i = 0; i < json_array_size(cg); i++) {
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
	int fm = 0;
	long long v;
	if (get_enum(x, o, jp, "fail_mode", fail_names, 2, 0, &fm) < 0 ||
	    get_bool(x, o, jp, "fastpath", &r->fastpath) < 0 ||
	    get_ms(x, o, jp, "heartbeat_timeout_seconds", 0.01, &r->heartbeat_timeout_ms) < 0 ||
	    get_str(x, o, jp, "pin_path", r->pin_path, sizeof(r->pin_path), F_NONEMPTY) < 0 ||
	    get_str(x, o, jp, "listen4", r->listen4, sizeof(r->listen4), F_NONEMPTY) < 0 ||
	    get_str(x, o, jp, "listen6", r->listen6, sizeof(r->listen6), 0) < 0)
		return -1;
	r->fail_open = fm == 1;
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
			return fail(x, "$.redirect.destinations", "expected an array of at most %d "
				    "CIDRs", PW_MAX_REDIRECT_DSTS);
		for (size_t i = 0; i < json_array_size(dsts); i++) {
			json_t *d = json_array_get(dsts, i);
			path_index(sub, "$.redirect.destinations", i);
			char net[64], *slash;
			struct pw_cidr *c = &r->destinations[r->n_destinations];
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
				c->family = v6 ? AF_INET6 : AF_INET;
				if (inet_pton(c->family, net, c->addr) != 1 || bits < 0 ||
				    bits > (v6 ? 128 : 32))
					bits = -1;
			}
			if (bits < 0)
				return fail(x, sub, "expected a CIDR such as \"10.0.0.0/8\" or "
					    "\"fd00::/8\"");
			c->bits = (int)bits;
			r->n_destinations++;
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
	if (parse_listen(x, root, c) || parse_tls(x, root, c) || parse_upstreams(x, root, c) ||
	    parse_redirect(x, root, c) || parse_identities(x, root, c) || parse_limits(x, root, c))
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
	if (c->identities)
		explicit_bzero(c->identities, (size_t)c->n_identities * sizeof(*c->identities));
	free(c->listen);
	free(c->upstreams);
	free(c->identities);
	free(c);
}

static int load_buffer(const char *buf, size_t len, const char *path, struct pw_config **out,
                       char *err, size_t errlen)
{
	struct ctx x = {path ? path : "<string>", err, errlen};
	json_error_t je;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	/* duplicate keys would otherwise let the last one win unnoticed */
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return fail(&x, NULL, "line %d, column %d: %s", je.line, je.column, je.text);

	struct pw_config *c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(root);
		return fail(&x, NULL, "out of memory");
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
	return load_buffer(text, strlen(text), path, out, err, errlen);
}

int pw_config_load(const char *path, struct pw_config **out, char *err, size_t errlen)
{
	struct ctx x = {path, err, errlen};
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
	int rc = load_buffer(buf, n, path, out, err, errlen);
	free(buf);
	return rc;
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
	for (int i = 0; i < c->n_identities; i++) {
		const struct pw_identity *id = &c->identities[i];
		if (!glob_ok(id->match_user, user) || !glob_ok(id->match_database, database) ||
		    !glob_ok(id->match_application_name, app))
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
			if (inet_pton(AF_INET, u->host, &x) == 1 && x.s_addr == a->sin_addr.s_addr &&
			    ntohs(a->sin_port) == u->port)
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
