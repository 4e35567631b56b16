/* Logging: one line per event on stderr, written with a single write(2) so that lines from
 * different threads never interleave. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgward/log.h"

/* Set once at start-up and on reload; a torn read of an int is impossible, and a stale level
 * for one line is harmless, so a plain volatile is enough here. */
static volatile int log_level = PW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void pw_log_set_level(enum pw_log_level lvl)
{
	log_level = lvl;
}

enum pw_log_level pw_log_get_level(void)
{
	return (enum pw_log_level)log_level;
}

const char *pw_log_level_name(enum pw_log_level lvl)
{
	return (unsigned)lvl < 4 ? level_names[lvl] : "?";
}

int pw_log_parse_level(const char *s, enum pw_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum pw_log_level)i;
			return 0;
		}
	}
	return -1;
}

static void vlog(enum pw_log_level lvl, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000, pw_log_level_name(lvl));
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* one event, one line: control characters from peers cannot forge a new line */
	for (size_t i = (size_t)n; i < len; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void pw_log(enum pw_log_level lvl, const char *fmt, ...)
{
	if ((int)lvl < log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(lvl, fmt, ap);
	va_end(ap);
}

void pw_log_summary(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(PW_LOG_INFO, fmt, ap);
	va_end(ap);
}

const char *pw_logqn(char *buf, size_t cap, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (cap < 8) {
		if (cap)
			buf[0] = 0;
		return buf;
	}
	if (!s) {
		buf[0] = '-';
		buf[1] = 0;
		return buf;
	}
	buf[o++] = '"';
	size_t i;
	/* room is kept for the longest escape (4), the closing quote, "..." and the NUL */
	for (i = 0; i < len && o + 4 + 5 <= cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = 0;
	return buf;
}

const char *pw_logq(char *buf, size_t cap, const char *s)
{
	return pw_logqn(buf, cap, s, s ? strlen(s) : 0);
}

void pw_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void pw_format_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)sa;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		snprintf(out, len, "unix");
	}
}
