/* pgwardctl's side of the control socket (docs/control.md): connect, one request line, its
 * answer line (64 MiB at most, within 30 s), then for a stream every line until pgwardd closes
 * it or the user interrupts. Under -j a result is printed as pgwardd wrote it (its bytes, so
 * that numbers and escapes stay exactly as sent), re-written in ASCII only for a terminal when
 * it holds anything else, as audit tail -j does. Also the printing every plain renderer of
 * pgwardd's answers shares (the escaping that audit tail uses too). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pgward/ctl.h"
#include "pgward/ctl_client.h"
#include "pgward/log.h"

#define ANSWER_MAX   (64u * 1024 * 1024)
#define REQUEST_MAX  (64u * 1024) /* pgwardd drops a longer request line */
#define ANSWER_WAIT  30000        /* ms */
#define PUT_BUF_SIZE 4096

const char *pw_ctl_socket;

static volatile sig_atomic_t stopping;

static void on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static const char *socket_path(void)
{
	const char *env = getenv(PW_CTL_SOCKET_ENV);
	if (pw_ctl_socket)
		return pw_ctl_socket;
	return env && env[0] ? env : PW_CTL_SOCKET_DEFAULT;
}

/* One connection and the lines read from it (from start to len; no newline before scan). */
struct conn {
	const char *path;
	int fd;
	char *buf;
	size_t start, scan, len, cap;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next line (without its newline): 1; 0 at the end of the stream (a cut last line is
 * dropped); -1 with errno (ETIMEDOUT past deadline, a time of now_ms(), or -1 for none; EFBIG
 * for a line over ANSWER_MAX; EINTR when stopping). */
static int read_line(struct conn *c, long long deadline, const char **line, size_t *n)
{
	for (;;) {
		char *nl =
		    c->len > c->scan ? memchr(c->buf + c->scan, '\n', c->len - c->scan) : NULL;
		if (nl) {
			*line = c->buf + c->start;
			*n = (size_t)(nl - *line);
			c->start = c->scan = (size_t)(nl - c->buf) + 1;
			return 1;
		}
		if (c->start) { /* keep only the line begun */
			memmove(c->buf, c->buf + c->start, c->len - c->start);
			c->len -= c->start;
			c->start = 0;
		}
		c->scan = c->len;
		if (c->len > ANSWER_MAX) {
			errno = EFBIG;
			return -1;
		}
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 1 << 17;
			char *b = realloc(c->buf, cap);
			if (!b)
				return -1;
			c->buf = b;
			c->cap = cap;
		}
		int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
		if (deadline >= 0 && wait <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int k = stopping ? (errno = EINTR, -1) : poll(&p, 1, wait);
		if (k < 0 && errno == EINTR && !stopping)
			continue;
		if (k <= 0) {
			errno = k == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		ssize_t got = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return (int)got;
		c->len += (size_t)got;
	}
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static int unreachable(const struct conn *c, int e)
{
	if (e == EACCES || e == EPERM)
		return pw_ctl_err(
		    PW_CTL_DENIED,
		    "cannot reach pgwardd at %s: %s (the socket's mode or group keeps "
		    "this user out)",
		    c->path, strerror(e));
	return pw_ctl_err(PW_CTL_FAILED,
	                  "cannot reach pgwardd at %s: %s (is \"control\" configured?)", c->path,
	                  strerror(e));
}

static int conn_open(struct conn *c)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	c->fd = -1;
	c->path = socket_path();
	if (strlen(c->path) >= sizeof(sa.sun_path))
		return pw_ctl_err(PW_CTL_USAGE, "the control socket's path is too long: %s",
		                  c->path);
	memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return pw_ctl_err(PW_CTL_FAILED, "socket: %s", strerror(errno));
	while (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		if (errno != EINTR)
			return unreachable(c, errno);
	return 0;
}

static int send_request(struct conn *c, const char *command, json_t *args)
{
	json_t *rq =
	    json_pack("{s:s, s:o}", "command", command, "args", args ? args : json_object());
	char *s = rq ? json_dumps(rq, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(rq);
	if (!s)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	size_t n = strlen(s), off = 0;
	if (n + 1 > REQUEST_MAX) {
		free(s);
		return pw_ctl_err(PW_CTL_USAGE,
		                  "the request is longer than pgwardd takes (%u bytes)",
		                  REQUEST_MAX);
	}
	s[n++] = '\n'; /* over the NUL: s is not a string from here on */
	while (off < n) {
		ssize_t k = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			/* pgwardd may have answered at once and closed (a peer it turns away): the
			 * answer is still there to read */
			free(s);
			return -EPIPE;
		}
		if (k < 0) {
			int e = errno;
			free(s);
			return unreachable(c, e);
		}
		off += (size_t)k;
	}
	free(s);
	return 0;
}

/* pgwardd's error message, with anything that could move the terminal escaped */
static void clean(char *out, size_t cap, const char *s)
{
	size_t o = 0;
	for (; s && *s && o + 5 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = 0;
}

/* {"ok": false, "error": E, "code": C} as pgwardctl's error and exit status */
static int answer_error(json_t *a)
{
	char msg[1024];
	const char *code = json_string_value(json_object_get(a, "code"));
	const char *e = json_string_value(json_object_get(a, "error"));
	/* -j: as sent (JSON escapes it again); plain: nothing that could move the terminal */
	if (pw_ctl_json)
		snprintf(msg, sizeof(msg), "%s", e ? e : "pgwardd gave no reason");
	else
		clean(msg, sizeof(msg), e ? e : "pgwardd gave no reason");
	if (code && strcmp(code, "usage") == 0)
		return pw_ctl_err(PW_CTL_USAGE, "%s", msg);
	if (code && strcmp(code, "permission") == 0)
		return pw_ctl_err(PW_CTL_DENIED, "%s", msg);
	return pw_ctl_err(PW_CTL_FAILED, "%s", msg);
}

/* Connects, sends the request and reads its answer into *a (ok true); its line stays in c at
 * *line (n bytes) until the next read. Any error is printed and is the return value. */
static int request(struct conn *c, const char *command, json_t *args, json_t **a, const char **line,
                   size_t *n)
{
	json_error_t je;
	int rc = conn_open(c);
	if (rc == 0)
		rc = send_request(c, command, args);
	else
		json_decref(args);
	bool cut = rc == -EPIPE;
	if (rc && !cut)
		return rc;
	int got = read_line(c, now_ms() + ANSWER_WAIT, line, n);
	if (cut && got <= 0)
		return unreachable(c, EPIPE);
	if (got < 0 && errno == ETIMEDOUT)
		return pw_ctl_err(PW_CTL_FAILED, "pgwardd at %s did not answer within %d s",
		                  c->path, ANSWER_WAIT / 1000);
	if (got < 0 && errno == EFBIG)
		return pw_ctl_err(PW_CTL_FAILED, "pgwardd's answer is longer than %u MiB",
		                  ANSWER_MAX >> 20);
	if (got == 0)
		return pw_ctl_err(PW_CTL_FAILED,
		                  "pgwardd at %s closed the connection without an answer", c->path);
	if (got < 0)
		return unreachable(c, errno);
	*a = json_loadb(*line, *n, 0, &je);
	json_t *ok = json_object_get(*a, "ok");
	if (!json_is_object(*a) || !json_is_boolean(ok)) {
		json_decref(*a);
		*a = NULL;
		return pw_ctl_err(PW_CTL_FAILED,
		                  "pgwardd's answer is not one of the protocol's: %s",
		                  je.text[0] ? je.text : "no \"ok\"");
	}
	if (json_is_false(ok)) {
		rc = answer_error(*a);
		json_decref(*a);
		*a = NULL;
	}
	return rc;
}

/* ---- -j: a value as pgwardd wrote it ---- */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && strchr(" \t\r\n", s[i]) && s[i])
		i++;
	return i;
}

/* past the string that starts at s[i] ('"') */
static size_t skip_string(const char *s, size_t i, size_t n)
{
	for (i++; i < n && s[i] != '"'; i++)
		i += s[i] == '\\';
	return i + 1;
}

/* past the value that starts at s[i] (the text is valid JSON: jansson read it) */
static size_t skip_value(const char *s, size_t i, size_t n)
{
	int depth = 0;
	if (i < n && s[i] == '"')
		return skip_string(s, i, n);
	if (i < n && s[i] != '{' && s[i] != '[') {
		while (i < n && !strchr(",}] \t\r\n", s[i]))
			i++;
		return i;
	}
	for (; i < n; i++) {
		if (s[i] == '"')
			i = skip_string(s, i, n) - 1;
		else if (s[i] == '{' || s[i] == '[')
			depth++;
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
	}
	return n;
}

/* Where the member key of the object text s (n bytes) is: true and its value's bytes. */
static bool member_span(const char *s, size_t n, const char *key, size_t *off, size_t *len)
{
	size_t i = skip_ws(s, 0, n), kl = strlen(key);
	if (i >= n || s[i] != '{')
		return false;
	for (i = skip_ws(s, i + 1, n); i < n && s[i] == '"';) {
		size_t k0 = i + 1, k1 = skip_string(s, i, n) - 1;
		i = skip_ws(s, k1 + 1, n);
		if (i >= n || s[i] != ':')
			return false;
		size_t v0 = skip_ws(s, i + 1, n), v1 = skip_value(s, v0, n);
		if (k1 - k0 == kl && memcmp(s + k0, key, kl) == 0) {
			*off = v0;
			*len = v1 - v0;
			return v1 <= n;
		}
		i = skip_ws(s, v1, n);
		if (i >= n || s[i] != ',')
			return false;
		i = skip_ws(s, i + 1, n);
	}
	return false;
}

/* The value v, whose text is s (n bytes; NULL: none at hand): the bytes, unless -p, or a
 * terminal and anything outside printable ASCII in them. */
static void print_json_text(const char *s, size_t n, json_t *v)
{
	bool tty = isatty(STDOUT_FILENO), ascii = s != NULL;
	for (size_t i = 0; ascii && i < n; i++)
		ascii = s[i] >= 0x20 && s[i] < 0x7f;
	if (s && !pw_ctl_pretty && (ascii || !tty)) {
		fwrite(s, 1, n, stdout);
		putchar('\n');
		return;
	}
	size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
	               (pw_ctl_pretty ? JSON_INDENT(2) : JSON_COMPACT) |
	               (tty ? JSON_ENSURE_ASCII : 0);
	char *d = json_dumps(v, flags);
	if (d)
		puts(d);
	free(d);
}

/* ---- the two kinds of command ---- */

int pw_ctl_show(const char *command, json_t *args, void (*plain)(json_t *result))
{
	struct conn c = {.fd = -1};
	json_t *a = NULL;
	const char *line;
	size_t n, off, len = 0;
	int rc = request(&c, command, args, &a, &line, &n);
	json_t *result = json_object_get(a, "result");
	if (rc == 0 && !result)
		rc = pw_ctl_err(PW_CTL_FAILED, "pgwardd's answer to \"%s\" has no result", command);
	if (rc == 0 && pw_ctl_json) {
		bool found = member_span(line, n, "result", &off, &len);
		print_json_text(found ? line + off : NULL, len, result);
	} else if (rc == 0) {
		plain(result);
	}
	fflush(stdout);
	json_decref(a);
	conn_close(&c);
	return rc;
}

/* One line of a stream: printed, or a note of lines lost; a line that is no JSON object is
 * said on stderr and skipped. */
static void stream_line(const char *line, size_t n, void (*plain)(json_t *line))
{
	json_t *o = json_loadb(line, n, 0, NULL), *lost = json_object_get(o, "lost");
	if (!json_is_object(o)) {
		fprintf(stderr,
		        "warning: pgwardd sent a line that is not a JSON object (skipped)\n");
	} else if (pw_ctl_json) {
		print_json_text(line, n, o);
	} else if (json_is_integer(lost) && json_object_size(o) == 1) {
		fflush(stdout);
		fprintf(stderr, "note: %" JSON_INTEGER_FORMAT " lines lost (read too slowly)\n",
		        json_integer_value(lost));
	} else {
		plain(o);
	}
	fflush(stdout);
	json_decref(o);
}

int pw_ctl_stream(const char *command, json_t *args, void (*plain)(json_t *line))
{
	struct conn c = {.fd = -1};
	json_t *a = NULL;
	const char *line;
	size_t n;
	struct sigaction sa = {.sa_handler = on_stop}; /* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = request(&c, command, args, &a, &line, &n), got = 0;
	if (rc == 0 && !json_is_true(json_object_get(a, "stream")))
		rc = pw_ctl_err(PW_CTL_FAILED, "pgwardd did not answer \"%s\" with a stream",
		                command);
	while (rc == 0 && (got = read_line(&c, -1, &line, &n)) > 0)
		stream_line(line, n, plain);
	if (rc == 0 && got < 0 && !stopping)
		rc = pw_ctl_err(PW_CTL_FAILED, "reading from pgwardd at %s: %s", c.path,
		                errno == EFBIG ? "a line over 64 MiB" : strerror(errno));
	fflush(stdout);
	json_decref(a);
	conn_close(&c);
	return rc;
}

int pw_ctl_simple(const char *obj, const char *name, int argc, char **argv,
                  void (*plain)(json_t *result))
{
	char command[64];
	if (pw_ctl_cmd_help(obj, name, argc, argv))
		return PW_CTL_OK;
	if (argc != 0)
		return name ? pw_ctl_usage_of(obj, name)
		            : pw_ctl_err(PW_CTL_USAGE, "usage: pgwardctl %s", obj);
	snprintf(command, sizeof(command), "%s%s%s", obj, name ? " " : "", name ? name : "");
	return pw_ctl_show(command, NULL, plain);
}

bool pw_ctl_arg_str(json_t *args, const char *key, const char *s)
{
	json_t *v = json_string(s);
	if (!v) {
		pw_ctl_err(PW_CTL_USAGE, "%s: not valid UTF-8", key);
		return false;
	}
	json_object_set_new(args, key, v);
	return true;
}

/* ---- printing pgwardd's values ---- */

void pw_ctl_put_str(const char *s, size_t n, size_t cap)
{
	bool bare = n > 0 && n + 10 < cap;
	for (size_t i = 0; bare && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bare = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		       (c && strchr("._:/+-[]", c));
	}
	if (bare) {
		fwrite(s, 1, n, stdout);
		return;
	}
	char buf[PUT_BUF_SIZE];
	fputs(pw_logqn(buf, cap < sizeof(buf) ? cap : sizeof(buf), s, n), stdout);
}

void pw_ctl_put(json_t *v, size_t cap)
{
	if (json_is_string(v)) {
		pw_ctl_put_str(json_string_value(v), json_string_length(v), cap);
	} else if (json_is_integer(v)) {
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		printf("%g", json_real_value(v));
	} else if (json_is_boolean(v)) {
		fputs(json_is_true(v) ? "yes" : "no", stdout);
	} else if (json_is_array(v) && json_array_size(v)) {
		size_t i;
		json_t *e;
		bool scalars = true;
		json_array_foreach(v, i, e) scalars &= !json_is_object(e) && !json_is_array(e);
		json_array_foreach(v, i, e)
		{
			if (!scalars)
				break;
			fputs(i ? "," : "", stdout);
			pw_ctl_put(e, cap);
		}
		if (scalars)
			return;
		char *d = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
		pw_ctl_put_str(d ? d : "", d ? strlen(d) : 0, cap);
		free(d);
	} else if (json_is_object(v) && json_object_size(v)) {
		char *d = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
		pw_ctl_put_str(d ? d : "", d ? strlen(d) : 0, cap);
		free(d);
	} else {
		putchar('-');
	}
}

void pw_ctl_put_key(json_t *o, const char *key, size_t cap)
{
	pw_ctl_put(json_object_get(o, key), cap);
}

static void put_name(bool *first, const char *key)
{
	fputs(*first ? "" : "  ", stdout);
	*first = false;
	pw_ctl_put_str(key, strlen(key), PW_CTL_VALUE_CAP);
	putchar(' ');
}

static void fields(json_t *o, const char *prefix, bool *first)
{
	const char *k;
	json_t *v;
	char key[256];
	json_object_foreach(o, k, v)
	{
		snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", k);
		bool objects = json_is_array(v) && json_is_object(json_array_get(v, 0));
		if (json_is_object(v) && json_object_size(v)) {
			fields(v, key, first);
		} else if (objects) {
			size_t i;
			json_t *e;
			char sub[300];
			json_array_foreach(v, i, e)
			{
				snprintf(sub, sizeof(sub), "%s[%zu]", key, i);
				if (json_is_object(e)) {
					fields(e, sub, first);
				} else {
					put_name(first, sub);
					pw_ctl_put(e, PW_CTL_VALUE_CAP);
				}
			}
		} else {
			put_name(first, key);
			pw_ctl_put(v, PW_CTL_VALUE_CAP);
		}
	}
}

void pw_ctl_put_fields(json_t *o, bool first)
{
	bool f = first;
	if (json_is_object(o))
		fields(o, "", &f);
	else
		pw_ctl_put(o, PW_CTL_VALUE_CAP);
}

void pw_ctl_put_ms(json_t *ms)
{
	if (!json_is_integer(ms)) {
		putchar('-');
		return;
	}
	long long v = json_integer_value(ms);
	if (v < 1000)
		printf("%lld ms", v);
	else if (v < 60000)
		printf("%.1f s", (double)v / 1000);
	else if (v < 3600000)
		printf("%lld min %lld s", v / 60000, v / 1000 % 60);
	else
		printf("%lld h %lld min", v / 3600000, v / 60000 % 60);
}

void pw_ctl_put_opt(json_t *o, const char *key, const char *label)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return;
	printf("  %s ", label);
	pw_ctl_put(v, PW_CTL_VALUE_CAP);
}

void pw_ctl_put_word(json_t *v)
{
	const char *s = json_string_value(v);
	if (s && s[0] && strspn(s, "abcdefghijklmnopqrstuvwxyz_ ") == strlen(s))
		fputs(s, stdout);
	else
		pw_ctl_put(v, PW_CTL_VALUE_CAP);
}

void pw_ctl_put_rest(json_t *o, const char *const *skip, bool first)
{
	json_t *rest = json_is_object(o) ? json_copy(o) : NULL;
	for (; rest && *skip; skip++)
		json_object_del(rest, *skip);
	if (json_object_size(rest))
		pw_ctl_put_fields(rest, first);
	json_decref(rest);
}

void pw_ctl_put_kernel(json_t *k)
{
	if (!json_is_object(k)) {
		printf("\tnot steered: no kernel facts\n");
		return;
	}
	printf("\tpid ");
	pw_ctl_put_key(k, "pid", PW_CTL_VALUE_CAP);
	pw_ctl_put_opt(k, "uid", "uid");
	pw_ctl_put_opt(k, "gid", "gid");
	pw_ctl_put_opt(k, "comm", "comm");
	pw_ctl_put_opt(k, "exe", "exe");
	if (json_is_false(json_object_get(k, "exe_verified")))
		fputs(" (unverified)", stdout);
	pw_ctl_put_opt(k, "cgroup", "cgroup");
	pw_ctl_put_opt(k, "dialled", "dialled");
	pw_ctl_put_opt(k, "dst", "dialled"); /* the audit trail's name of it */
	putchar('\n');
	json_t *anc = json_object_get(k, "ancestry"), *p;
	if (!anc)
		anc = json_object_get(k, "ancestors"); /* the audit trail's name of it */
	size_t i;
	if (!json_array_size(anc))
		return;
	printf("\tancestry");
	json_array_foreach(anc, i, p)
	{
		printf("%s ", i ? "," : "");
		pw_ctl_put_key(p, "pid", PW_CTL_VALUE_CAP);
		putchar(' ');
		pw_ctl_put_key(p, "comm", PW_CTL_VALUE_CAP);
	}
	putchar('\n');
}
