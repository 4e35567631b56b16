/* Fixtures of the configuration tests (test_config.c, test_config_check.c): files written into
 * one temporary directory and removed at the end, and JSON written with ' for " to stay
 * readable. Static: each test program has its own. */
#ifndef PGWARD_TEST_CONFIG_FIXTURE_H
#define PGWARD_TEST_CONFIG_FIXTURE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char file_list[64][128];
static int n_files;

/* Test JSON is written with ' for " to stay readable; no test string needs a real '. */
static char *jq(const char *fmt, ...)
{
	static char buf[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if (*p == '\'')
			*p = '"';
	return buf;
}

/* Writes dir/name (len bytes of content) and remembers it for clean-up. */
static const char *fixture(const char *name, const char *content, size_t len)
{
	char *path = file_list[n_files++];
	snprintf(path, sizeof(file_list[0]), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(content, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(2);
	}
	return path;
}

static const char *fixture_s(const char *name, const char *content)
{
	return fixture(name, content, strlen(content));
}

/* The fixture directory: made first, removed with its files last. */
static void fixtures_start(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pgward-test-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(2);
	}
}

static void fixtures_end(void)
{
	for (int i = 0; i < n_files; i++)
		unlink(file_list[i]);
	rmdir(dir);
}

#endif
