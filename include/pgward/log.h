/* One line per event on stderr, with a level. Thread-safe: each line is one write(2). */
#ifndef PGWARD_LOG_H
#define PGWARD_LOG_H

#include <stddef.h>
#include <sys/socket.h>

enum pw_log_level { PW_LOG_DEBUG, PW_LOG_INFO, PW_LOG_WARN, PW_LOG_ERROR };

void pw_log_set_level(enum pw_log_level lvl);
enum pw_log_level pw_log_get_level(void);
/* "debug", "info", "warn", "error"; returns 0 or -1. */
int pw_log_parse_level(const char *s, enum pw_log_level *out);
const char *pw_log_level_name(enum pw_log_level lvl);
void pw_log(enum pw_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Written whatever the level: the start (readiness) and stop lines and the end-of-run summary
 * (a worker's counters at stop), so that a quiet daemon still says when it is up and what it
 * did. */
void pw_log_summary(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A value the client (or the server, or an agent's process) controls, for a log line: written
 * into buf as one double-quoted string, `"` and `\` escaped with a backslash, every byte
 * outside printable ASCII (control characters, DEL, high bytes) as \xNN, so that a value can
 * neither end the line nor pass for another field. What does not fit cap is cut, marked with
 * `...` after the closing quote (PW_Q: 1 KiB, 250 to 1000 bytes of the value). NULL prints as -.
 * Returns buf. PW_Q(s) does it with a buffer of its own that lives to the end of the enclosing
 * statement: pw_info("user=%s", PW_Q(user)). */
#define PW_LOGQ_MAX 1024
const char *pw_logq(char *buf, size_t cap, const char *s);
/* The same for len bytes that need not end in a NUL (statement text). */
const char *pw_logqn(char *buf, size_t cap, const char *s, size_t len);
#define PW_Q(s)       pw_logq((char[PW_LOGQ_MAX]){0}, PW_LOGQ_MAX, (s))
#define PW_QN(s, len) pw_logqn((char[PW_LOGQ_MAX]){0}, PW_LOGQ_MAX, (s), (len))

/* Format a reason into a caller's error buffer (NULL or empty buffer: nothing). */
/* An address as logs and messages show it: "host:port", "[v6]:port", or "unix". */
void pw_format_addr(const struct sockaddr *sa, char *out, size_t len);
void pw_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define pw_debug(...)                                                                              \
	do {                                                                                       \
		if (pw_log_get_level() <= PW_LOG_DEBUG)                                            \
			pw_log(PW_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)
#define pw_info(...)  pw_log(PW_LOG_INFO, __VA_ARGS__)
#define pw_warn(...)  pw_log(PW_LOG_WARN, __VA_ARGS__)
#define pw_error(...) pw_log(PW_LOG_ERROR, __VA_ARGS__)

#endif
