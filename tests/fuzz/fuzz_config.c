/* libFuzzer harness: the configuration loader (user/config.c).
 *
 * The input is a configuration text (up to its first NUL byte) in which every "@DIR@" is
 * replaced by a private directory made once at start-up under /tmp, holding the files a
 * configuration may name: app.pw (a password), empty.pw, server.crt, server.key, db-ca.crt,
 * jwks.json (the fixed test keys of fuzzlib.c), jwks-hs.json (an oct key only) and the
 * directories cgroup/ and sock/. The library's file-system calls are confined to that directory
 * (see fuzzlib.h): a fuzzed path that leads elsewhere is refused as a missing file would be.
 * Per input:
 *   - pw_config_load_string; on success a few lookups on the result (identity matching with
 *     and without kernel facts and claims, encodings, the upstream of a destination), then
 *     pw_config_unref;
 *   - the same text written to the directory and checked by pw_config_check_all (the mode that
 *     goes on after an error to report them all): it must find errors exactly when
 *     pw_config_load_string refused the text, or the harness abort()s.
 * PGWARD_FUZZ_VERBOSE=1 prints the loader's verdict on each input (to check a new seed). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgward/config.h"
#include "pgward/match.h"
#include "pgward/jwt.h"
#include "fuzzlib.h"

static const char *dir;
static char check_path[4096];
static int verbose; /* PGWARD_FUZZ_VERBOSE=1: say what the loader made of each input */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char pem[] = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n";
	char hs[256], k[64];

	(void)argc, (void)argv;
	dir = pwfuzz_tmpdir("config");
	pwfuzz_write("app.pw", "real-db-password\n", 17);
	pwfuzz_write("empty.pw", "", 0);
	pwfuzz_write("server.crt", pem, strlen(pem));
	pwfuzz_write("server.key", pem, strlen(pem));
	pwfuzz_write("db-ca.crt", pem, strlen(pem));
	pwfuzz_write("jwks.json", pwfuzz_jwks(), strlen(pwfuzz_jwks()));
	pwfuzz_b64url(pwfuzz_hs_secret, sizeof pwfuzz_hs_secret, k);
	snprintf(hs, sizeof hs, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"%s\"}]}", k);
	pwfuzz_write("jwks-hs.json", hs, strlen(hs));
	pwfuzz_fixture_dir("cgroup");
	pwfuzz_fixture_dir("sock");
	/* written for each input; made here so that the clean-up at exit knows it */
	snprintf(check_path, sizeof check_path, "%s", pwfuzz_write("check.json", "", 0));
	pwfuzz_sandbox(dir);
	pw_log_set_level(PW_LOG_ERROR);
	verbose = getenv("PGWARD_FUZZ_VERBOSE") && atoi(getenv("PGWARD_FUZZ_VERBOSE")) > 0;
	return 0;
}

/* text with every @DIR@ replaced; malloc'd, NUL-terminated */
static char *expand(const uint8_t *data, size_t size)
{
	static const char mark[] = "@DIR@";
	size_t dl = strlen(dir), ml = strlen(mark), n = 0, i = 0, cap = 1;
	char *out;

	for (i = 0; i < size && data[i]; i++)
		cap += (i + ml <= size && memcmp(data + i, mark, ml) == 0) ? dl : 1;
	out = malloc(cap);
	if (!out)
		return NULL;
	for (i = 0; i < size && data[i];) {
		if (i + ml <= size && memcmp(data + i, mark, ml) == 0) {
			memcpy(out + n, dir, dl);
			n += dl;
			i += ml;
		} else {
			out[n++] = (char)data[i++];
		}
	}
	out[n] = '\0';
	return out;
}

static void lookups(const struct pw_config *c)
{
	static const char *const anc[] = {"bash", "sshd"};
	struct pw_facts f = {.cgroup = "/agents/a1",
	                     .exe = "/usr/bin/python3",
	                     .comm = "python3",
	                     .uid = 1000,
	                     .gid = 1000,
	                     .n_ancestors = 2,
	                     .anc_comm = {anc[0], anc[1]},
	                     .anc_exe = {"/bin/bash", ""}};
	struct pw_jwt_claims cl;
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(5432)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(5432)};

	memset(&cl, 0, sizeof cl);
	strcpy(cl.sub, "alice");
	strcpy(cl.alg, "RS256");
	cl.n_groups = 1;
	strcpy(cl.groups[0], "dev");
	inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);

	pw_config_match(c, "alice", "app", "psql");
	pw_config_match(c, "postgres", "postgres", NULL);
	pw_config_match_facts(c, "agent", "app", "", &f);
	for (int i = 0; i < 4; i++)
		pw_config_match_ex(c, i, "alice", "app", "psql", i & 1 ? &f : NULL,
		                   i & 2 ? &cl : NULL);
	pw_config_encoding_allowed(c, "UTF8");
	pw_config_encoding_allowed(c, "sjis");
	pw_config_upstream_for(c, (const struct sockaddr *)&a4);
	pw_config_upstream_for(c, (const struct sockaddr *)&a6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pw_config *c = NULL;
	char err[1024], *text = expand(data, size), *errors = NULL;
	int rc, n, fd;

	if (!text)
		return 0;
	rc = pw_config_load_string(text, "fuzz.json", &c, err, sizeof err);
	if (verbose)
		fprintf(stderr, "fuzz_config: %s\n", rc == 0 ? "loaded" : err);
	if (rc == 0) {
		if (!c)
			abort();
		lookups(c);
		pw_config_unref(c);
	} else if (c || !err[0]) {
		fprintf(stderr, "fuzz_config: a refusal without a reason or with a result\n");
		abort();
	}

	fd = open(check_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0) {
		perror(check_path);
		exit(2);
	}
	n = pw_config_check_all(check_path, &errors);
	if ((rc == 0) != (n == 0) || (n && !errors)) {
		fprintf(stderr,
		        "fuzz_config: pw_config_load_string %s but pw_config_check_all reports %d "
		        "error(s)\nload: %s\ncheck_all: %s\n",
		        rc == 0 ? "accepts" : "refuses", n, rc ? err : "", errors ? errors : "");
		abort();
	}
	free(errors);
	free(text);
	return 0;
}
