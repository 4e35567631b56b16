/* A tiny TAP harness for unit tests: CHECK(cond, name) prints "ok N - name" or
 * "not ok N - (file:line) name"; CHECK_SKIP(reason, name) prints "ok N - name # SKIP reason"
 * (a skip, not a pass); check_done() prints the plan "1..N" at the end and returns the exit
 * code; check_skip_all(reason) prints "1..0 # SKIP reason" for a test that cannot run here at
 * all (instead of its checks and check_done) and returns 0. A test that dies before check_done
 * prints no plan, which tests/run.sh reports as a failure. stdout is line-buffered, so that
 * the log of a test that crashes still ends at its last check. */
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

#define CHECK_SKIP(reason, ...)                                                                    \
	do {                                                                                       \
		check_n++;                                                                         \
		printf("ok %d - ", check_n);                                                       \
		printf(__VA_ARGS__);                                                               \
		printf(" # SKIP %s\n", (reason));                                                  \
	} while (0)

__attribute__((constructor)) static void check_init(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int check_skip_all(const char *reason)
{
	printf("1..0 # SKIP %s\n", reason);
	return 0;
}

static inline int check_done(void)
{
	printf("1..%d\n", check_n);
	if (check_failed)
		printf("# %d of %d checks failed\n", check_failed, check_n);
	return check_failed ? 1 : 0;
}

#endif
