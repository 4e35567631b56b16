/* One line per event on stderr, with a level. Thread-safe: each line is one write(2). */
#ifndef PGWARD_LOG_H
#define PGWARD_LOG_H

#include <stddef.h>

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

/* Format a reason into a caller's error buffer (NULL or empty buffer: nothing). */
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
