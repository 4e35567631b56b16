/* Configuration loading: one JSON document, validated strictly into a struct pw_config.
 * Every problem is reported as "FILE: JSON.PATH: what was expected" so that an operator can
 * find the offending value at once; unknown keys are errors so that typos never fall back to
 * defaults silently, and no string is ever truncated to fit its buffer.
 *
 * The reading is jsonpath.c's; this file holds the top level, listen, tls, limits, client
 * encodings and jwt, the load itself and identity matching. Sections of their own:
 * config_upstream.c, config_redirect.c, config_policy.c (identities and their policies). */
#include <ctype.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_parse.h"
#include "pgward/jwks.h"

#define CONFIG_FILE_MAX  (16 * 1024 * 1024) /* far above any sane config; stops /dev/zero */
#define PG_MESSAGE_LIMIT 2147483647LL       /* the length word of a message is an int32 */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- listen ---- */

static int parse_mode(struct pw_jp *x, const char *jp, const json_t *v, int *out)
{
	static const char expect[] = "expected an octal permission string such as \"0777\" (or "
	                             "an integer from 0 to 511)";
	char q[PW_JP_QUOTE_MAX];
	if (json_is_integer(v)) {
		long long n = json_integer_value(v);
		/* 777 written as a JSON number is decimal; say how to write it instead */
		if (n < 0 || n > 0777)
			return pw_jp_fail(x, jp, "%s, got %lld", expect, n);
		*out = (int)n;
		return 0;
	}
	if (!json_is_string(v))
		return pw_jp_fail(x, jp, "%s, got %s", expect, pw_jp_type_name(v));
	const char *s = json_string_value(v);
	size_t len = strlen(s);
	int m = 0;
	bool ok = len >= 1 && len <= 4;
	for (size_t i = 0; ok && i < len; i++) {
		ok = s[i] >= '0' && s[i] <= '7';
		m = m * 8 + (s[i] - '0');
	}
	if (!ok || m > 0777)
		return pw_jp_fail(x, jp, "%s, got %s", expect, pw_jp_quote(q, s));
	*out = m;
	return 0;
}

static int parse_listen_one(struct pw_jp *x, const json_t *e, const char *jp, struct pw_listen *l)
{
	static const char *const keys[] = {"host", "port", "unix", "mode", NULL};
	char sub[PW_JP_PATH_MAX];
	long long port;

	if (!json_is_object(e))
		return pw_jp_fail(x, jp, "expected an object, got %s", pw_jp_type_name(e));
	if (pw_jp_check_keys(x, e, jp, keys))
		return -1;
	bool has_unix = pw_jp_member(e, "unix") != NULL;
	if (has_unix && (pw_jp_member(e, "host") || pw_jp_member(e, "port")))
		return pw_jp_fail(x, jp, "expected either host+port or unix, not both");
	if (!has_unix && !pw_jp_member(e, "host") && !pw_jp_member(e, "port"))
		return pw_jp_fail(x, jp, "expected either host+port or unix");

	if (has_unix) {
		l->is_unix = true;
		l->unix_mode = 0777;
		if (pw_jp_str(x, e, jp, "unix", l->unix_path, sizeof(l->unix_path),
		              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0)
			return -1;
		json_t *m = pw_jp_member(e, "mode");
		pw_jp_key(sub, jp, "mode");
		if (m && parse_mode(x, sub, m, &l->unix_mode))
			return -1;
		return 0;
	}
	if (pw_jp_member(e, "mode")) {
		pw_jp_key(sub, jp, "mode");
		return pw_jp_fail(x, sub, "only valid for a unix listener");
	}
	strcpy(l->host, "127.0.0.1");
	if (pw_jp_str(x, e, jp, "host", l->host, sizeof(l->host), PW_JP_NONEMPTY) < 0)
		return -1;
	if (pw_jp_int(x, e, jp, "port", 1, 65535, PW_JP_REQUIRED, &port) < 0)
		return -1;
	l->port = (int)port;
	return 0;
}

void *pw_cfg_section(struct pw_jp *x, const json_t *root, const char *key, bool array,
                     const char *what, size_t elem, json_t **v)
{
	char jp[PW_JP_PATH_MAX];
	int rc;
	void *room;
	if (!(*v = pw_jp_container(x, root, "$", key, array, true, &rc)))
		return NULL;
	size_t n = array ? json_array_size(*v) : json_object_size(*v);
	pw_jp_key(jp, "$", key);
	if (n == 0) {
		pw_jp_fail(x, jp, "expected at least one %s", what);
		return NULL;
	}
	if (!(room = calloc(n, elem)))
		pw_jp_fail(x, jp, "out of memory");
	return room;
}

static int parse_listen(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	bool bad = false;
	json_t *arr;
	if (!(c->listen =
	          pw_cfg_section(x, root, "listen", true, "listener", sizeof(*c->listen), &arr)))
		return -1;

	size_t i;
	json_t *e;
	json_array_foreach(arr, i, e)
	{
		char jp[PW_JP_PATH_MAX];
		pw_jp_index(jp, "$.listen", i);
		struct pw_listen *l = &c->listen[i];
		c->n_listen++;
		if (parse_listen_one(x, e, jp, l) < 0) {
			bad = true;
			if (pw_jp_stop(x))
				return -1;
			continue;
		}
		/* a second bind to the same address would only fail later, at start-up */
		for (size_t j = 0; j < i; j++) {
			const struct pw_listen *o = &c->listen[j];
			bool same = l->is_unix ? o->is_unix && !strcmp(o->unix_path, l->unix_path)
			                       : !o->is_unix && o->port == l->port &&
			                             !strcmp(o->host, l->host);
			if (same) {
				STEP(x, bad, pw_jp_fail(x, jp, "duplicate of $.listen[%zu]", j));
				break;
			}
		}
	}
	return bad ? -1 : 0;
}

/* ---- tls ---- */

static int parse_tls(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"cert", "key", NULL};
	char jp[PW_JP_PATH_MAX];
	int rc;
	json_t *t = pw_jp_container(x, root, "$", "tls", false, false, &rc);
	if (!t)
		return rc;
	if (pw_jp_check_keys(x, t, "$.tls", keys))
		return -1;
	if (pw_jp_str(x, t, "$.tls", "cert", c->tls_cert, sizeof(c->tls_cert),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0 ||
	    pw_jp_str(x, t, "$.tls", "key", c->tls_key, sizeof(c->tls_key),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0)
		return -1;
	pw_jp_key(jp, "$.tls", "cert");
	if (pw_jp_readable(x, jp, c->tls_cert))
		return -1;
	pw_jp_key(jp, "$.tls", "key");
	if (pw_jp_readable(x, jp, c->tls_key))
		return -1;
	c->tls_enabled = true;
	return 0;
}

/* ---- limits ---- */

static int get_size(struct pw_jp *x, const json_t *obj, const char *key, long long lo, long long hi,
                    size_t *out)
{
	long long n;
	int rc = pw_jp_int(x, obj, "$.limits", key, lo, hi, 0, &n);
	if (rc > 0)
		*out = (size_t)n;
	return rc;
}

static int parse_limits(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"max_message_bytes",    "max_statement_bytes",
	                                   "max_bind_bytes",       "max_startup_bytes",
	                                   "auth_timeout_seconds", NULL};
	int rc;
	json_t *l = pw_jp_container(x, root, "$", "limits", false, false, &rc);
	if (!l)
		return rc;
	if (pw_jp_check_keys(x, l, "$.limits", keys))
		return -1;
	/* a message must at least hold an ErrorResponse; PostgreSQL itself never accepts a
	 * startup packet above 10000 bytes, so more would be pointless */
	if (get_size(x, l, "max_message_bytes", 1024, PG_MESSAGE_LIMIT, &c->max_message_bytes) <
	        0 ||
	    get_size(x, l, "max_statement_bytes", 1, PG_MESSAGE_LIMIT, &c->max_statement_bytes) <
	        0 ||
	    get_size(x, l, "max_bind_bytes", 1, PG_MESSAGE_LIMIT, &c->max_bind_bytes) < 0 ||
	    get_size(x, l, "max_startup_bytes", 64, 10000, &c->max_startup_bytes) < 0 ||
	    pw_jp_seconds(x, l, "$.limits", "auth_timeout_seconds", 0.001, SECONDS_MAX,
	                  &c->auth_timeout_ms) < 0)
		return -1;
	return 0;
}

/* Encodings in which a multibyte character's second byte can be a quote or a backslash:
 * the server would read such text differently from the analyser (CVE-2006-2314). */
static int parse_client_encodings(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	static const char *const unsafe[] = {"SJIS",    "SHIFTJIS", "BIG5",   "GBK",    "GB18030",
	                                     "JOHAB",   "UHC",      "WIN932", "WIN936", "WIN949",
	                                     "WIN950",  "CP932",    "CP936",  "CP949",  "CP950",
	                                     "MSKANJI", "TCVN",     "WIN1258"};
	char *list = NULL, jp[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	int rc = pw_jp_names(x, root, "$", "client_encodings", PW_NAME_MAX,
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
				pw_jp_index(jp, "$.client_encodings", (size_t)i);
				return pw_jp_fail(
				    x, jp,
				    "%s cannot be allowed: its multibyte characters can hide "
				    "a quote from the statement analyser",
				    pw_jp_quote(q, c->client_encodings[i]));
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

static int parse_jwt(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {
	    "jwks_file",    "issuer",      "audience", "leeway_seconds",
	    "groups_claim", "allow_hs256", NULL};
	struct pw_jwt_config *j = &c->jwt;
	char err[512];
	long long v;
	int rc;
	json_t *o = pw_jp_container(x, root, "$", "jwt", false, false, &rc);
	if (!o)
		return rc;
	/* present, even when wrong: auth "jwt" identities are judged against it */
	j->enabled = true;
	j->leeway_s = 30;
	strcpy(j->groups_claim, "groups");
	if (pw_jp_check_keys(x, o, "$.jwt", keys) ||
	    pw_jp_str(x, o, "$.jwt", "jwks_file", j->jwks_file, sizeof(j->jwks_file),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0 ||
	    /* a token for any issuer or any audience would do: both are required */
	    pw_jp_str(x, o, "$.jwt", "issuer", j->issuer, sizeof(j->issuer),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0 ||
	    pw_jp_str(x, o, "$.jwt", "audience", j->audience, sizeof(j->audience),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0 ||
	    pw_jp_str(x, o, "$.jwt", "groups_claim", j->groups_claim, sizeof(j->groups_claim),
	              PW_JP_NONEMPTY) < 0 ||
	    pw_jp_bool(x, o, "$.jwt", "allow_hs256", &j->allow_hs256) < 0)
		return -1;
	if ((rc = pw_jp_int(x, o, "$.jwt", "leeway_seconds", 0, 3600, 0, &v)) < 0)
		return -1;
	if (rc)
		j->leeway_s = (int)v;
	if (pw_jwt_keys_load(j->jwks_file, j->allow_hs256, &j->keys, err, sizeof(err)) < 0)
		return pw_jp_fail(x, "$.jwt.jwks_file", "%s", err);
	return 0;
}

static int parse_log_level(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	enum pw_log_level lvl = PW_LOG_INFO;
	char list[64], q[PW_JP_QUOTE_MAX];
	/* the names are log.c's; parse through it so both stay one list */
	json_t *v = pw_jp_member(root, "log_level");
	if (v && (!json_is_string(v) || pw_log_parse_level(json_string_value(v), &lvl) != 0)) {
		pw_jp_join(list, sizeof(list), level_names, N_ELEMS(level_names));
		return pw_jp_fail(x, "$.log_level", "expected one of %s, got %s", list,
		                  json_is_string(v) ? pw_jp_quote(q, json_string_value(v))
		                                    : pw_jp_type_name(v));
	}
	c->log_level = lvl;
	return 0;
}

/* Section by section; when collecting, a bad section does not hide the errors of the next. */
static int parse_root(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"workers",
	                                   "log_level",
	                                   "shutdown_grace_seconds",
	                                   "control",
	                                   "metrics",
	                                   "approvals",
	                                   "listen",
	                                   "tls",
	                                   "upstreams",
	                                   "identities",
	                                   "limits",
	                                   "redirect",
	                                   "client_encodings",
	                                   "jwt",
	                                   "mask_key_file",
	                                   "audit",
	                                   "recording",
	                                   NULL};
	bool bad = false;
	long long n;
	int rc;

	if (!json_is_object(root))
		return pw_jp_fail(x, "$", "expected an object, got %s", pw_jp_type_name(root));
	if (pw_jp_check_keys(x, root, "$", keys))
		return -1;
	STEP(x, bad, rc = pw_jp_int(x, root, "$", "workers", 1, 256, 0, &n));
	if (rc > 0)
		c->workers = (int)n;
	STEP(x, bad, parse_log_level(x, root, c));
	STEP(x, bad,
	     pw_jp_seconds(x, root, "$", "shutdown_grace_seconds", 0, SECONDS_MAX,
	                   &c->shutdown_grace_ms));
	STEP(x, bad, parse_client_encodings(x, root, c));
	STEP(x, bad, parse_listen(x, root, c));
	STEP(x, bad, parse_tls(x, root, c));
	STEP(x, bad, pw_cfg_parse_upstreams(x, root, c));
	STEP(x, bad, pw_cfg_parse_redirect(x, root, c));
	STEP(x, bad, pw_cfg_parse_control(x, root, c));
	STEP(x, bad, parse_jwt(x, root, c));
	STEP(x, bad, pw_cfg_parse_recording(x, root, c));
	STEP(x, bad, pw_cfg_parse_identities(x, root, c));
	STEP(x, bad, pw_cfg_mask_key(x, root, c));
	STEP(x, bad, parse_limits(x, root, c));
	STEP(x, bad, pw_cfg_parse_audit(x, root, c));
	return bad ? -1 : 0;
}

int pw_cfg_read_secret(struct pw_jp *x, const char *jp, const char *file, const char *what,
                       void *buf, size_t cap, size_t *n, unsigned *mode)
{
	char q[PW_JP_QUOTE_MAX];
	struct stat st;
	int rc = 0;

	*n = 0;
	pw_jp_quote(q, file);
	/* O_NONBLOCK: a FIFO given by mistake must not hang the load */
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return pw_jp_fail(x, jp, "cannot read %s %s: %s", what, q, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return pw_jp_fail(x, jp, "%s %s is not a regular file", what, q);
	}
	while (*n < cap) {
		ssize_t r = read(fd, (char *)buf + *n, cap - *n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = pw_jp_fail(x, jp, "cannot read %s %s: %s", what, q, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		*n += (size_t)r;
	}
	if (mode)
		*mode = (unsigned)(st.st_mode & 07777);
	close(fd);
	return rc;
}

/* Secrets (upstream passwords, verifiers) are wiped before the memory is returned. */
static void config_free(struct pw_config *c)
{
	if (!c)
		return;
	if (c->upstreams)
		explicit_bzero(c->upstreams, (size_t)c->n_upstreams * sizeof(*c->upstreams));
	for (int i = 0; i < c->n_identities; i++)
		pw_cfg_policy_free(&c->identities[i].policy);
	if (c->identities)
		explicit_bzero(c->identities, (size_t)c->n_identities * sizeof(*c->identities));
	pw_jwt_keys_free(c->jwt.keys);
	explicit_bzero(&c->mask_key, sizeof(c->mask_key));
	free(c->listen);
	free(c->upstreams);
	free(c->identities);
	free(c);
}

static void set_defaults(struct pw_config *c)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	c->refcount = 1;
	c->workers = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
	c->log_level = PW_LOG_INFO;
	c->shutdown_grace_ms = 30000;
	c->max_message_bytes = 1024 * 1024 * 1024;
	c->max_statement_bytes = 1024 * 1024;
	c->max_bind_bytes = 64 * 1024 * 1024;
	c->max_startup_bytes = 10000;
	c->auth_timeout_ms = 60000;
}

/* path: the name the errors and c->path give */
static int load_buffer(struct pw_jp *x, const char *path, const char *buf, size_t len,
                       struct pw_config **out)
{
	json_error_t je;

	*out = NULL;
	/* duplicate keys would otherwise let the last one win unnoticed */
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return pw_jp_fail(x, NULL, "line %d, column %d: %s", je.line, je.column, je.text);
	struct pw_config *c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(root);
		return pw_jp_fail(x, NULL, "out of memory");
	}
	set_defaults(c);
	int rc = 0;
	if (strlen(path) >= sizeof(c->path))
		rc = pw_jp_fail(x, NULL, "path too long");
	else
		strcpy(c->path, path);
	if (rc == 0)
		rc = parse_root(x, root, c);
	json_decref(root);
	if (rc || pw_jp_errors(x)) {
		config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int pw_config_load_string(const char *text, const char *path, struct pw_config **out, char *err,
                          size_t errlen)
{
	struct pw_jp x;
	path = path ? path : "<string>";
	pw_jp_init(&x, path, err, errlen, NULL, 0);
	return load_buffer(&x, path, text, strlen(text), out);
}

/* The whole file, read to EOF (not to st_size: it may change under us), capped; NULL when it
 * cannot be read (said through x). */
static char *read_file(struct pw_jp *x, const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		pw_jp_fail(x, NULL, "cannot open: %s", strerror(errno));
		return NULL;
	}
	const char *why = NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > CONFIG_FILE_MAX)
		why = "too large";
	else if (!(buf = malloc(cap = (size_t)st.st_size + 1)))
		why = "out of memory";
	while (!why) {
		if (n == cap) {
			char *nb = cap > CONFIG_FILE_MAX ? NULL : realloc(buf, cap * 2);
			if (!nb) {
				why = "too large";
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			pw_jp_fail(x, NULL, "cannot read: %s", strerror(errno));
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (why && strcmp(why, "too large") == 0)
		pw_jp_fail(x, NULL, "larger than %d bytes", CONFIG_FILE_MAX);
	else if (why)
		pw_jp_fail(x, NULL, "%s", why);
	if (pw_jp_errors(x)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static int load_file(struct pw_jp *x, const char *path, struct pw_config **out)
{
	size_t n;
	*out = NULL;
	char *buf = read_file(x, path, &n);
	if (!buf)
		return -1;
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
		return pw_jp_fail(x, NULL, "line %d, column %d: NUL byte in the file", line, col);
	}
	int rc = load_buffer(x, path, buf, n, out);
	free(buf);
	return rc;
}

int pw_config_load(const char *path, struct pw_config **out, char *err, size_t errlen)
{
	struct pw_jp x;
	pw_jp_init(&x, path, err, errlen, NULL, 0);
	return load_file(&x, path, out);
}

int pw_config_check(const char *path, struct pw_jp_error *errs, int max, struct pw_config **out)
{
	struct pw_jp x;
	struct pw_config *c = NULL;
	pw_jp_init(&x, path, NULL, 0, errs, max);
	load_file(&x, path, &c);
	if (out)
		*out = c;
	else
		pw_config_unref(c);
	return pw_jp_errors(&x);
}

int pw_config_check_all(const char *path, char **errors)
{
	struct pw_jp_error errs[PW_CONFIG_MAX_ERRORS];
	int n = pw_config_check(path, errs, PW_CONFIG_MAX_ERRORS, NULL);
	size_t len = 0;
	*errors = NULL;
	for (int i = 0; i < n && i < PW_CONFIG_MAX_ERRORS; i++) {
		char line[PW_JP_PATH_MAX + PW_JP_MSG_MAX + PATH_MAX + 8];
		size_t l = pw_jp_format(path, &errs[i], line, sizeof(line));
		char *a = realloc(*errors, len + l + 2);
		if (!a)
			break;
		*errors = a;
		memcpy(a + len, line, l);
		len += l;
		a[len++] = '\n';
		a[len] = 0;
	}
	return n;
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
