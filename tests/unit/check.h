/* A tiny TAP-style harness for unit tests: CHECK(cond, name) prints "ok N - name" or
 * "not ok N - name (file:line)"; check_done() prints the plan and returns the exit code. */
#ifndef PGWARD_TEST_CHECK_H
#define PGWARD_TEST_CHECK_H

#include <stdio.h>

static int check_n, check_failed;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		check_n++;                                                                         \
		if (cond) {                                                                        \
			printf("ok %d - ", check_n);                                               \
		} else {                                                                           \
			check_failed++;                                                            \
			printf("not ok %d - (%s:%d) ", check_n, __FILE__, __LINE__);               \
		}                                                                                  \
		printf(__VA_ARGS__);                                                               \
		printf("\n");                                                                      \
	} while (0)

static inline int check_done(void)
{
	printf("1..%d\n", check_n);
	if (check_failed)
		printf("# %d of %d checks failed\n", check_failed, check_n);
	return check_failed ? 1 : 0;
}

#endif
