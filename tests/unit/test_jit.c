/* Unit tests for user/jit.c without a server: role names, the set-up SQL (whole strings,
 * quoting, refusals), and the janitor's queue against an upstream nobody listens on. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgward/config.h"
#include "pgward/jit.h"
#include "pgward/log.h"
#include "pgward/runtime.h"
#include "check.h"

/* ---- independent facts about this process, for the expected strings ---- */

static char host[9];
static unsigned long long start_ticks, pidns;

static void read_facts(void)
{
	char id[128] = "";
	FILE *f = fopen("/etc/machine-id", "r");
	if (f) {
		if (!fgets(id, sizeof(id), f))
			id[0] = 0;
		fclose(f);
	}
	if (strlen(id) >= 8) {
		for (int i = 0; i < 8; i++)
			host[i] = (char)tolower((unsigned char)id[i]);
	} else {
		char name[256] = "";
		gethostname(name, sizeof(name) - 1);
		uint32_t h = 2166136261u;
		for (const char *p = name; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
		snprintf(host, sizeof(host), "%08x", h);
	}
	/* field 22 with sscanf after the last ')' */
	char buf[1024];
	f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (p && sscanf(p + 2,
	                "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
	                "%*d %llu",
	                &start_ticks) != 1)
		start_ticks = 0;
	struct stat st;
	pidns = stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

/* ---- role names ---- */

static void test_names(void)
{
	char a[PW_NAME_MAX], b[PW_NAME_MAX], c[PW_NAME_MAX], big[PW_NAME_MAX];
	pw_jit_role_name(1, a);
	pw_jit_role_name(1, b);
	pw_jit_role_name(0x2a, c);
	pw_jit_role_name(UINT64_MAX, big);
	CHECK(strcmp(pw_jit_host_id(), host) == 0, "host id = first 8 hex of machine-id (%s)",
	      pw_jit_host_id());
	CHECK(strncmp(a, "pgward_jit_", 11) == 0, "name has the prefix: %s", a);
	CHECK(strncmp(a + 11, host, 8) == 0 && a[19] == '_', "name carries the host id");
	CHECK(all_hex(a + 20, 8) && a[28] == '_', "then 8 hex of the process tag");
	CHECK(strcmp(a + 29, "1") == 0 && strcmp(c + 29, "2a") == 0,
	      "then the serial in hex (1, 2a)");
	CHECK(strcmp(a, b) == 0, "same serial, same name");
	CHECK(strcmp(a, c) != 0 && strncmp(a, c, 29) == 0,
	      "another serial: another name, same host and process part");
	CHECK(strlen(big) == 45 && strcmp(big + 29, "ffffffffffffffff") == 0,
	      "largest serial: 45 bytes (<= 63)");
	bool distinct = true;
	char prev[PW_NAME_MAX] = "";
	for (uint64_t s = 1; s < 2000; s++) {
		char x[PW_NAME_MAX];
		pw_jit_role_name(s, x);
		if (strcmp(x, prev) == 0 || strlen(x) > 63)
			distinct = false;
		strcpy(prev, x);
	}
	CHECK(distinct, "2000 serials: 2000 names, none above 63 bytes");
}

/* ---- identities built by hand ---- */

static struct pw_identity *ident(const char *name, int n_member, int n_grants)
{
	struct pw_identity *id = calloc(1, sizeof(*id));
	snprintf(id->name, sizeof(id->name), "%s", name);
	id->upstream = 0;
	id->policy.jit = true;
	id->policy.n_member_of = n_member;
	id->policy.member_of = calloc((size_t)n_member + 1, PW_NAME_MAX);
	id->policy.n_grants = n_grants;
	id->policy.grants = calloc((size_t)n_grants + 1, sizeof(struct pw_grant));
	return id;
}

static void grant(struct pw_grant *g, const char *schema, const char *table, const char *privs)
{
	snprintf(g->schema, sizeof(g->schema), "%s", schema);
	snprintf(g->table, sizeof(g->table), "%s", table);
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s", privs);
	for (char *t = strtok(tmp, ","); t; t = strtok(NULL, ","))
		snprintf(g->privileges[g->n_privileges++], 16, "%s", t);
}

static void ident_free(struct pw_identity *id)
{
	free(id->policy.member_of);
	free(id->policy.grants);
	free(id);
}

static char *comment(const char *db, const char *idname)
{
	static char s[512];
	snprintf(s, sizeof(s), "pgward-jit host=%s pid=%ld start=%llu pidns=%llu db=%s identity=%s",
	         host, (long)getpid(), start_ticks, pidns, db, idname);
	return s;
}

static void test_setup_sql(void)
{
	char out[8192], want[8192];
	struct pw_identity *id = ident("reporting", 2, 3);
	snprintf(id->policy.member_of[0], PW_NAME_MAX, "readers");
	snprintf(id->policy.member_of[1], PW_NAME_MAX, "audit");
	grant(&id->policy.grants[0], "sales", "orders", "select,INSERT");
	grant(&id->policy.grants[1], "sales", "", "Select");
	grant(&id->policy.grants[2], "hr", "staff", "UPDATE,delete,ALL");
	const char *r = "pgward_jit_0000abcd_12345678_1f";
	int n = pw_jit_setup_sql(id, r, "app", out, sizeof(out));
	snprintf(want, sizeof(want),
	         "CREATE ROLE \"%s\" NOLOGIN; COMMENT ON ROLE \"%s\" IS '%s'; "
	         "GRANT \"readers\" TO \"%s\"; GRANT \"audit\" TO \"%s\"; "
	         "GRANT USAGE ON SCHEMA \"sales\" TO \"%s\"; "
	         "GRANT SELECT, INSERT ON TABLE \"sales\".\"orders\" TO \"%s\"; "
	         "GRANT SELECT ON ALL TABLES IN SCHEMA \"sales\" TO \"%s\"; "
	         "GRANT USAGE ON SCHEMA \"hr\" TO \"%s\"; "
	         "GRANT UPDATE, DELETE, ALL ON TABLE \"hr\".\"staff\" TO \"%s\"; "
	         "GRANT \"%s\" TO CURRENT_USER; SET ROLE \"%s\"",
	         r, r, comment("app", "reporting"), r, r, r, r, r, r, r, r, r);
	CHECK(n == (int)strlen(want) && strcmp(out, want) == 0, "setup SQL, whole string");
	if (strcmp(out, want) != 0)
		printf("#   got:  %s\n#   want: %s\n", out, want);
	CHECK(start_ticks > 0 && pidns > 0, "process start and pid namespace are known");

	/* exactly fitting, and one byte short */
	CHECK(pw_jit_setup_sql(id, r, "app", out, (size_t)n + 1) == n, "fits in len + 1 bytes");
	CHECK(pw_jit_setup_sql(id, r, "app", out, (size_t)n) == -1 && out[0] == 0,
	      "one byte short: -1, empty output");
	ident_free(id);

	/* no grants, no member_of: the bare minimum */
	id = ident("min", 0, 0);
	n = pw_jit_setup_sql(id, "r", "d", out, sizeof(out));
	snprintf(want, sizeof(want),
	         "CREATE ROLE \"r\" NOLOGIN; COMMENT ON ROLE \"r\" IS '%s'; GRANT \"r\" TO "
	         "CURRENT_USER; SET ROLE \"r\"",
	         comment("d", "min"));
	CHECK(n > 0 && strcmp(out, want) == 0, "no grants: create, comment, grant, set role");
	ident_free(id);
}

static void test_quoting(void)
{
	char out[8192], want[8192];
	struct pw_identity *id = ident("o'Neil \\ ops=1%", 1, 1);
	snprintf(id->policy.member_of[0], PW_NAME_MAX, "Read \"Only\"");
	grant(&id->policy.grants[0], "My \"Schema\"", "Order Items", "SELECT");
	const char *r = "Jit \"R\"";
	int n = pw_jit_setup_sql(id, r, "my db", out, sizeof(out));
	snprintf(
	    want, sizeof(want),
	    "CREATE ROLE \"Jit \"\"R\"\"\" NOLOGIN; COMMENT ON ROLE \"Jit \"\"R\"\"\" IS '%s'; "
	    "GRANT \"Read \"\"Only\"\"\" TO \"Jit \"\"R\"\"\"; "
	    "GRANT USAGE ON SCHEMA \"My \"\"Schema\"\"\" TO \"Jit \"\"R\"\"\"; "
	    "GRANT SELECT ON TABLE \"My \"\"Schema\"\"\".\"Order Items\" TO \"Jit \"\"R\"\"\"; "
	    "GRANT \"Jit \"\"R\"\"\" TO CURRENT_USER; SET ROLE \"Jit \"\"R\"\"\"",
	    comment("my%20db", "o''Neil%20%5C%20ops%3D1%25"));
	CHECK(n > 0 && strcmp(out, want) == 0,
	      "quotes doubled in names, spaces and upper case kept inside quotes");
	if (strcmp(out, want) != 0)
		printf("#   got:  %s\n#   want: %s\n", out, want);
	CHECK(strchr(out, '\\') == NULL, "no backslash anywhere (standard_conforming_strings off)");
	CHECK(strstr(out, "E'") == NULL, "no E'' literal");
	ident_free(id);

	/* multibyte UTF-8 is fine */
	id = ident("Zürich 🐘", 0, 1);
	grant(&id->policy.grants[0], "données", "", "SELECT");
	n = pw_jit_setup_sql(id, "r", "base", out, sizeof(out));
	CHECK(n > 0 && strstr(out, "ON ALL TABLES IN SCHEMA \"données\"") &&
	          strstr(out, "identity=Zürich%20🐘'"),
	      "2- and 4-byte UTF-8 accepted as they are");
	ident_free(id);
}

static bool refused(struct pw_identity *id, const char *role, const char *db)
{
	char out[8192];
	strcpy(out, "x");
	return pw_jit_setup_sql(id, role, db, out, sizeof(out)) == -1 && out[0] == 0;
}

static void test_refusals(void)
{
	struct pw_identity *id = ident("ok", 1, 1);
	snprintf(id->policy.member_of[0], PW_NAME_MAX, "m");
	grant(&id->policy.grants[0], "s", "t", "SELECT");
	CHECK(!refused(id, "r", "d"), "the base case is accepted");

	char long64[65];
	memset(long64, 'a', 64);
	long64[64] = 0;
	CHECK(refused(id, long64, "d"), "64-byte role refused");
	CHECK(!refused(id, long64 + 1, "d"), "63-byte role accepted");
	CHECK(refused(id, "r", long64), "64-byte database refused");
	CHECK(refused(id, "", "d") && refused(id, "r", ""), "empty role or database refused");
	CHECK(refused(id, "r\xff", "d"), "invalid UTF-8 (0xff) in the role refused");
	CHECK(refused(id, "r", "d\xc0\xaf"), "overlong UTF-8 in the database refused");
	CHECK(refused(id, "r\xed\xa0\x80", "d"), "UTF-16 surrogate refused");
	CHECK(refused(id, "r\xe2\x82", "d"), "truncated UTF-8 sequence refused");
	CHECK(refused(id, "r\xf4\x90\x80\x80", "d"), "code point above U+10FFFF refused");

	snprintf(id->policy.grants[0].schema, PW_NAME_MAX, "s\x80");
	CHECK(refused(id, "r", "d"), "invalid UTF-8 in a schema refused");
	memset(id->policy.grants[0].schema, 'x', PW_NAME_MAX); /* no NUL in the array */
	CHECK(refused(id, "r", "d"), "unterminated 64-byte schema refused");
	snprintf(id->policy.grants[0].schema, PW_NAME_MAX, "%s", "");
	CHECK(refused(id, "r", "d"), "empty schema refused");
	snprintf(id->policy.grants[0].schema, PW_NAME_MAX, "s");
	memset(id->policy.grants[0].table, 'y', PW_NAME_MAX);
	CHECK(refused(id, "r", "d"), "unterminated table refused");
	snprintf(id->policy.grants[0].table, PW_NAME_MAX, "t");

	snprintf(id->policy.grants[0].privileges[0], 16, "SELECT; DROP");
	CHECK(refused(id, "r", "d"), "unknown privilege (injection attempt) refused");
	snprintf(id->policy.grants[0].privileges[0], 16, "SELECT");
	id->policy.grants[0].n_privileges = 0;
	CHECK(refused(id, "r", "d"), "a grant without privileges refused");
	id->policy.grants[0].n_privileges = 1;

	snprintf(id->policy.member_of[0], PW_NAME_MAX, "m\xfe");
	CHECK(refused(id, "r", "d"), "invalid UTF-8 in member_of refused");
	snprintf(id->policy.member_of[0], PW_NAME_MAX, "m");
	memset(id->name, 'n', PW_NAME_MAX);
	CHECK(refused(id, "r", "d"), "unterminated identity name refused");
	snprintf(id->name, PW_NAME_MAX, "ok");
	CHECK(!refused(id, "r", "d"), "accepted again once repaired");
	ident_free(id);
}

/* ---- the janitor, against a port nobody listens on ---- */

static int64_t ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_janitor(void)
{
	uint64_t done = 99, failed = 99;
	int queued = 99;
	pw_jit_stats(&done, &failed, &queued);
	CHECK(done == 0 && failed == 0 && queued == 0, "stats start at zero");
	pw_jit_stop(100); /* never started: returns at once */

	char dir[] = "/tmp/pgward-jit-XXXXXX", path[64], err[512];
	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/pgward.json", dir);
	FILE *f = fopen(path, "w");
	/* port 1 on loopback: refused at once */
	fprintf(f,
	        "{\"listen\":[{\"port\":6432}],"
	        "\"upstreams\":{\"dead\":{\"host\":\"127.0.0.1\",\"port\":1,\"user\":\"u\","
	        "\"sslmode\":\"disable\",\"connect_timeout_seconds\":1}},"
	        "\"identities\":[{\"name\":\"j\",\"auth\":\"trust\",\"upstream\":\"dead\","
	        "\"jit_role\":{\"grants\":[{\"privileges\":[\"SELECT\"],\"table\":\"s.t\"}]}}]}");
	fclose(f);
	struct pw_runtime *rt = pw_runtime_load(path, err, sizeof(err));
	CHECK(rt != NULL, "runtime loads: %s", rt ? "" : err);
	if (!rt)
		return;
	pw_log_set_level(PW_LOG_ERROR); /* the expected warnings stay out of the output */

	pw_jit_drop(rt, 0, "db", "pgward_jit_test_1", 0);
	pw_jit_drop(rt, 0, "db", "pgward_jit_test_2", 4242);
	pw_jit_stats(NULL, NULL, &queued);
	CHECK(queued == 2, "two drops queued (%d)", queued);
	CHECK(rt->refcount == 3, "each queued drop holds a reference on the runtime");
	usleep(300 * 1000); /* first attempts fail at once, retries wait 1 s */
	pw_jit_stats(&done, &failed, &queued);
	CHECK(done == 0 && failed == 0 && queued == 2, "refused connection: retried, not failed");
	int64_t t0 = ms();
	pw_jit_stop(300);
	int64_t took = ms() - t0;
	pw_jit_stats(&done, &failed, &queued);
	CHECK(done == 0 && failed == 2 && queued == 0, "stop gives up the retries: 2 failed");
	CHECK(took < 1500, "stop is bounded by its timeout (%lld ms)", (long long)took);
	CHECK(rt->refcount == 1, "the references are released");

	/* a drop after a stop starts the janitor again */
	pw_jit_drop(rt, 0, "db", "pgward_jit_test_3", 0);
	usleep(200 * 1000);
	pw_jit_stop(0);
	pw_jit_stats(&done, &failed, &queued);
	CHECK(failed == 3 && queued == 0, "janitor restarted for a later drop, then stopped");

	/* the sweep of an unreachable upstream is retried later, never counted as a drop */
	CHECK(pw_jit_start(rt) == 0, "start queues the sweep");
	pw_jit_stats(NULL, NULL, &queued);
	CHECK(queued == 1, "one sweep queued (one upstream used by a JIT identity)");
	usleep(300 * 1000);
	pw_jit_stats(&done, &failed, &queued);
	CHECK(queued == 1 && failed == 3, "failed sweep waits for its retry");
	t0 = ms();
	pw_jit_stop(200);
	pw_jit_stats(&done, &failed, &queued);
	CHECK(queued == 0 && failed == 3 && ms() - t0 < 1500, "stop drops the pending sweep");

	pw_jit_drop(rt, 5, "db", "r", 0);
	pw_jit_drop(rt, 0, "db", "a-name-that-is-far-too-long-for-postgresql-identifiers-to-hold-x",
	            0);
	pw_jit_stats(NULL, NULL, &queued);
	CHECK(queued == 0 && rt->refcount == 1, "invalid drop requests are refused");
	pw_runtime_unref(rt);
	unlink(path);
	rmdir(dir);
}

/* A fixed role: one SET ROLE, the name always quoted. */
static void test_fixed_role(void)
{
	char out[256];
	int n = pw_role_setup_sql("app_reader", out, sizeof(out));
	CHECK(n > 0 && strcmp(out, "SET ROLE \"app_reader\"") == 0, "fixed role: %s", out);
	n = pw_role_setup_sql("We \"Read\"; RESET ROLE", out, sizeof(out));
	CHECK(n > 0 && strcmp(out, "SET ROLE \"We \"\"Read\"\"; RESET ROLE\"") == 0,
	      "fixed role: quotes doubled, the rest stays inside the name: %s", out);
	CHECK(pw_role_setup_sql("", out, sizeof(out)) == -1 &&
	          pw_role_setup_sql("bad\xff", out, sizeof(out)) == -1 &&
	          pw_role_setup_sql("app_reader", out, 12) == -1,
	      "fixed role: empty, invalid UTF-8 and too long refused");
}

int main(void)
{
	read_facts();
	test_names();
	test_setup_sql();
	test_quoting();
	test_refusals();
	test_fixed_role();
	test_janitor();
	return check_done();
}
