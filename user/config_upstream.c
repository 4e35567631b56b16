/* The "upstreams" section of the configuration: the PostgreSQL servers behind pgwardd, how to
 * reach them and the credentials pgwardd holds for them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"

#define UNIX_PATH_LIMIT 108 /* sizeof(sockaddr_un.sun_path) */

static const char *const sslmode_names[] = {"disable", "prefer", "require", "verify-ca",
                                            "verify-full"};

const char *pw_sslmode_name(enum pw_sslmode m)
{
	return (unsigned)m < N_ELEMS(sslmode_names) ? sslmode_names[m] : "?";
}

/* The whole file is the password, minus one trailing line end that editors add. */
static int read_password(struct pw_jp *x, const char *jp, const char *file, struct pw_upstream *u)
{
	char q[PW_JP_QUOTE_MAX];
	/* room for the longest password plus "\r\n", and one more byte to see it is too long */
	char buf[sizeof(u->password) + 2];
	size_t n = 0;
	int rc = pw_cfg_read_secret(x, jp, file, "password file", buf, sizeof(buf), &n, NULL);

	pw_jp_quote(q, file);
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (rc == 0 && n == 0)
		rc = pw_jp_fail(x, jp, "password file %s is empty", q);
	else if (rc == 0 && n >= sizeof(u->password))
		rc = pw_jp_fail(x, jp, "password file %s is too long (at most %zu bytes)", q,
		                sizeof(u->password) - 1);
	else if (rc == 0 && memchr(buf, '\0', n))
		rc = pw_jp_fail(x, jp, "password file %s contains a NUL byte", q);
	if (rc == 0) {
		memcpy(u->password, buf, n);
		u->password[n] = '\0';
		u->has_password = true;
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* require_auth as libpq 16 has it: the authentication methods the server may ask for, a
 * list of names, or of names each prefixed with "!" (every method but those). */
static int parse_require_auth(struct pw_jp *x, const json_t *o, const char *jp,
                              struct pw_upstream *u)
{
	static const char *const names[] = {"password", "md5", "scram-sha-256", "none"};
	static const unsigned bits[] = {PW_AUTH_PASSWORD, PW_AUTH_MD5, PW_AUTH_SCRAM, PW_AUTH_NONE};
	char *list = NULL, jp2[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	int n, neg = -1;
	unsigned mask = 0;

	if (pw_jp_names(x, o, jp, "require_auth", PW_NAME_MAX, 8, &list, &n) < 0) {
		free(list);
		return -1;
	}
	pw_jp_key(jp2, jp, "require_auth");
	for (int i = 0; i < n; i++) {
		const char *m = list + (size_t)i * PW_NAME_MAX;
		bool not = m[0] == '!';
		size_t k;
		for (k = 0; k < N_ELEMS(names) && strcmp(m + not, names[k]); k++)
			;
		pw_jp_index(sub, jp2, (size_t)i);
		if (k == N_ELEMS(names)) {
			pw_jp_fail(x, sub,
			           "expected password, md5, scram-sha-256 or none, each optionally "
			           "prefixed with \"!\", got %s",
			           pw_jp_quote(q, m));
			free(list);
			return -1;
		}
		if (neg >= 0 && neg != not ) {
			pw_jp_fail(x, sub, "negative and positive methods cannot be mixed");
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

/* host or unix_dir, and port */
static int parse_address(struct pw_jp *x, const json_t *o, const char *jp, struct pw_upstream *u)
{
	char sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	long long port;
	int rc_host, rc_unix, rc;

	rc_host = pw_jp_str(x, o, jp, "host", u->host, sizeof(u->host), PW_JP_NONEMPTY);
	if (rc_host < 0)
		return -1;
	rc_unix = pw_jp_str(x, o, jp, "unix_dir", u->unix_dir, sizeof(u->unix_dir), PW_JP_NONEMPTY);
	if (rc_unix < 0)
		return -1;
	if (rc_host && rc_unix)
		return pw_jp_fail(x, jp, "expected exactly one of host or unix_dir, got both");
	if (!rc_host && !rc_unix)
		return pw_jp_fail(x, jp, "expected one of host or unix_dir");
	rc = pw_jp_int(x, o, jp, "port", 1, 65535, 0, &port);
	if (rc < 0)
		return -1;
	if (rc)
		u->port = (int)port;
	if (rc_unix) {
		/* the socket file's full path must fit sockaddr_un, or connect() fails later */
		char sock[PATH_MAX + 32];
		int need = snprintf(sock, sizeof(sock), "%s/.s.PGSQL.%d", u->unix_dir, u->port);
		if (need >= UNIX_PATH_LIMIT) {
			pw_jp_key(sub, jp, "unix_dir");
			return pw_jp_fail(x, sub,
			                  "socket path %s would be %d bytes, at most %d fit a unix "
			                  "socket address",
			                  pw_jp_quote(q, sock), need, UNIX_PATH_LIMIT - 1);
		}
	}
	return 0;
}

/* database, user and the password pgwardd holds */
static int parse_login(struct pw_jp *x, const json_t *o, const char *jp, struct pw_upstream *u)
{
	char sub[PW_JP_PATH_MAX], pwfile[PATH_MAX];
	int rc;

	if (pw_jp_str(x, o, jp, "database", u->database, sizeof(u->database), 0) < 0 ||
	    pw_jp_str(x, o, jp, "user", u->user, sizeof(u->user), PW_JP_REQUIRED | PW_JP_NONEMPTY) <
	        0)
		return -1;
	rc = pw_jp_str(x, o, jp, "password_file", pwfile, sizeof(pwfile), PW_JP_NONEMPTY);
	if (rc < 0)
		return -1;
	pw_jp_key(sub, jp, "password_file");
	if (rc && read_password(x, sub, pwfile, u))
		return -1;
	return 0;
}

static int parse_sslmode(struct pw_jp *x, const json_t *o, const char *jp, struct pw_upstream *u)
{
	char sub[PW_JP_PATH_MAX];
	int mode = PW_SSL_PREFER, rc;

	if (pw_jp_enum(x, o, jp, "sslmode", sslmode_names, N_ELEMS(sslmode_names), 0, &mode) < 0)
		return -1;
	u->sslmode = (enum pw_sslmode)mode;
	rc = pw_jp_str(x, o, jp, "ca_file", u->ca_file, sizeof(u->ca_file), PW_JP_NONEMPTY);
	if (rc < 0)
		return -1;
	pw_jp_key(sub, jp, "ca_file");
	if (rc && pw_jp_readable(x, sub, u->ca_file))
		return -1;
	if (!rc && u->sslmode >= PW_SSL_VERIFY_CA)
		return pw_jp_fail(x, sub, "required when sslmode is %s", sslmode_names[u->sslmode]);
	if (u->unix_dir[0] && u->sslmode > PW_SSL_PREFER) {
		/* like libpq: TLS is never negotiated over a unix socket, so it cannot be
		 * required there */
		pw_jp_key(sub, jp, "sslmode");
		return pw_jp_fail(x, sub,
		                  "expected disable or prefer with unix_dir (TLS is not used on "
		                  "unix sockets), got \"%s\"",
		                  sslmode_names[u->sslmode]);
	}
	return 0;
}

/* timeouts, pooling, connection cap */
static int parse_tuning(struct pw_jp *x, const json_t *o, const char *jp, struct pw_upstream *u)
{
	long long v;
	int rc;

	if (pw_jp_bool(x, o, jp, "allow_cleartext", &u->allow_cleartext) < 0 ||
	    pw_jp_seconds(x, o, jp, "connect_timeout_seconds", 0.001, SECONDS_MAX,
	                  &u->connect_timeout_ms) < 0 ||
	    pw_jp_bool(x, o, jp, "reuse_connections", &u->reuse_connections) < 0 ||
	    pw_jp_seconds(x, o, jp, "pool_idle_timeout_seconds", 0.001, SECONDS_MAX,
	                  &u->pool_idle_timeout_ms) < 0 ||
	    pw_jp_seconds(x, o, jp, "catalog_ttl_seconds", 1, SECONDS_MAX, &u->catalog_ttl_ms) < 0)
		return -1;
	rc = pw_jp_int(x, o, jp, "pool_max_idle", 1, 100000, 0, &v);
	if (rc < 0)
		return -1;
	if (rc)
		u->pool_max_idle = (int)v;
	rc = pw_jp_int(x, o, jp, "max_connections", 1, 100000, 0, &v);
	if (rc < 0)
		return -1;
	if (rc) {
		u->max_connections = (int)v;
		u->max_connections_set = true;
	}
	return 0;
}

static int parse_search_path(struct pw_jp *x, const json_t *o, const char *jp,
                             struct pw_upstream *u)
{
	char *sp = NULL;
	int rc = pw_jp_names(x, o, jp, "search_path", PW_NAME_MAX, (int)N_ELEMS(u->search_path),
	                     &sp, &u->n_search_path);
	if (rc > 0)
		memcpy(u->search_path, sp, (size_t)u->n_search_path * PW_NAME_MAX);
	free(sp);
	return rc < 0 ? -1 : 0;
}

static int parse_upstream(struct pw_jp *x, const char *name, const json_t *o, const char *jp,
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
	bool bad = false;

	strcpy(u->name, name); /* length checked by the caller */
	if (!json_is_object(o))
		return pw_jp_fail(x, jp, "expected an object, got %s", pw_jp_type_name(o));
	if (pw_jp_check_keys(x, o, jp, keys))
		return -1;
	u->port = 5432;
	u->sslmode = PW_SSL_PREFER;
	u->connect_timeout_ms = 10000;
	u->pool_idle_timeout_ms = 60000;
	u->pool_max_idle = 32;
	u->max_connections = PW_UPSTREAM_MAX_CONNECTIONS;
	u->catalog_ttl_ms = 60000;
	u->require_auth = PW_AUTH_ANY;

	STEP(x, bad, parse_address(x, o, jp, u));
	STEP(x, bad, parse_login(x, o, jp, u));
	STEP(x, bad, parse_sslmode(x, o, jp, u));
	STEP(x, bad, parse_tuning(x, o, jp, u));
	STEP(x, bad, parse_require_auth(x, o, jp, u));
	STEP(x, bad, parse_search_path(x, o, jp, u));
	return bad ? -1 : 0;
}

int pw_cfg_parse_upstreams(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	json_t *obj;
	if (!(c->upstreams = pw_cfg_section(x, root, "upstreams", false, "upstream",
	                                    sizeof(*c->upstreams), &obj)))
		return -1;

	const char *name;
	json_t *v;
	bool bad = false;
	json_object_foreach(obj, name, v)
	{
		char jp[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
		size_t len = strlen(name);
		if (len == 0 || len >= PW_NAME_MAX)
			return pw_jp_fail(
			    x, "$.upstreams",
			    "expected upstream names of 1 to %d bytes, got %s (%zu bytes)",
			    PW_NAME_MAX - 1, pw_jp_quote(q, name), len);
		pw_jp_key(jp, "$.upstreams", name);
		/* counted first: a failed one may hold a password, and config_free wipes only
		 * counted ones; its name still answers the identities that name it */
		if (parse_upstream(x, name, v, jp, &c->upstreams[c->n_upstreams++]) < 0) {
			bad = true;
			if (pw_jp_stop(x))
				return -1;
		}
	}
	return bad ? -1 : 0;
}
