/* libFuzzer harness: the StartupMessage parameter list (user/proto.c pw_startup_parse,
 * pw_startup_get), the ErrorResponse field reader (pw_error_field) and the search_path splitter
 * a startup parameter goes through (user/sql.c pw_sql_split_path).
 *
 * The input is a StartupMessage body after the protocol version (key\0value\0...\0), and also,
 * as it is, an ErrorResponse body. It is copied into a buffer of exactly its size, so that any
 * read past the end is an ASan report. Invariants checked (abort() on a violation): every
 * parsed key and value lies inside the body and ends there; pw_startup_get finds the first
 * value of every key; a found error field lies inside the body and ends there; an
 * ErrorResponse built from parsed values reads back the same. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/options.h"
#include "pgward/proto.h"
#include "pgward/sql.h"

static void fail(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz_startup: %s (input of %zu bytes)\n", what, size);
	(void)data;
	abort();
}

/* p must point into [buf, buf + n) and a NUL must end it before buf + n. */
static int inside(const uint8_t *buf, size_t n, const char *p)
{
	const uint8_t *q = (const uint8_t *)p;

	return q >= buf && q < buf + n && memchr(q, 0, (size_t)(buf + n - q)) != NULL;
}

static void error_fields(const uint8_t *buf, size_t n)
{
	static const char codes[] = "SVCMDHPpqWsctdnFLR";

	for (const char *c = codes; *c; c++) {
		const char *v = pw_error_field(buf, n, *c);
		if (v && !inside(buf, n, v))
			fail("pw_error_field returned a field outside the body", buf, n);
	}
	/* the terminator code finds nothing */
	if (pw_error_field(buf, n, '\0'))
		fail("pw_error_field found a field of code 0", buf, n);
}

/* An ErrorResponse made of parsed values must give them back. */
static void error_roundtrip(const char *sev, const char *state, const char *msg, const char *det)
{
	static uint8_t out[4096];
	size_t n = pw_msg_error_to(out, sizeof out, sev, state, msg, det);
	const char *v;

	if (!n)
		return; /* does not fit */
	if (n < PW_HDR + 1 || out[0] != 'E' || pw_be32(out + 1) != n - 1 || out[n - 1] != 0)
		fail("pw_msg_error_to framed its message wrongly", out, n);
	v = pw_error_field(out + PW_HDR, n - PW_HDR, 'S');
	if (!v || strcmp(v, sev) != 0)
		fail("ErrorResponse severity does not read back", out, n);
	v = pw_error_field(out + PW_HDR, n - PW_HDR, 'C');
	if (!v || strcmp(v, state) != 0)
		fail("ErrorResponse sqlstate does not read back", out, n);
	v = pw_error_field(out + PW_HDR, n - PW_HDR, 'M');
	if (!v || strcmp(v, msg) != 0)
		fail("ErrorResponse message does not read back", out, n);
	v = pw_error_field(out + PW_HDR, n - PW_HDR, 'D');
	if (det ? !v || strcmp(v, det) != 0 : v != NULL)
		fail("ErrorResponse detail does not read back", out, n);
}

static int count_setting(void *arg, const char *name, const char *value)
{
	if (!name || !value)
		abort();
	++*(int *)arg;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	struct pw_startup st;
	const char *why = NULL;

	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);

	pw_frontend_type_valid(size ? buf[0] : 0);
	error_fields(buf, size);

	if (pw_startup_parse(buf, size, &st, &why) == 0) {
		if (st.n < 0 || st.n > PW_MAX_PARAMS)
			fail("parameter count out of range", buf, size);
		for (int i = 0; i < st.n; i++) {
			if (!inside(buf, size, st.key[i]) || !inside(buf, size, st.val[i]))
				fail("a parameter lies outside the body", buf, size);
			const char *first = NULL;
			for (int j = 0; j <= i && !first; j++)
				if (strcmp(st.key[j], st.key[i]) == 0)
					first = st.val[j];
			if (pw_startup_get(&st, st.key[i]) != first)
				fail("pw_startup_get does not find the first value of a key", buf,
				     size);
		}
		static const char *const keys[] = {"user",
		                                   "database",
		                                   "options",
		                                   "application_name",
		                                   "replication",
		                                   "client_encoding",
		                                   "search_path",
		                                   "role",
		                                   "",
		                                   NULL};
		for (int i = 0; keys[i]; i++) {
			const char *v = pw_startup_get(&st, keys[i]);
			if (v && !inside(buf, size, v))
				fail("pw_startup_get returned a value outside the body", buf, size);
		}
		/* options read as the server reads them: every setting a name and a value
		 * inside the text, or a refusal with a reason */
		const char *opt = pw_startup_get(&st, "options");
		if (opt) {
			char err[256] = "";
			int n = 0;
			if (pw_options_parse(opt, count_setting, &n, err, sizeof err) < 0 &&
			    !err[0])
				fail("pw_options_parse refused without a reason", buf, size);
		}
		const char *sp = pw_startup_get(&st, "search_path");
		if (sp) {
			struct pw_sql_setting set;
			if (pw_sql_split_path(sp, &set) == 0 && set.value_len > sizeof set.value)
				fail("pw_sql_split_path value_len over its array", buf, size);
		}
		if (st.n >= 2)
			error_roundtrip(st.val[0], st.val[1], st.key[0],
			                st.n > 2 ? st.val[2] : NULL);
	} else if (!why || !*why) {
		fail("pw_startup_parse failed without a reason", buf, size);
	}
	free(buf);
	return 0;
}
