/* The "audit" section of the configuration: where the trail goes and how it is written
 * (docs/audit.md). Absent: no trail. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "pgward/audit_verify.h"
#include "config_parse.h"

static const char *const fsync_names[] = {
    [PW_AUDIT_FSYNC_INTERVAL] = "interval", [PW_AUDIT_FSYNC_EVERY] = "every"};

const char *pw_audit_fsync_name(enum pw_audit_fsync f)
{
	return (unsigned)f < N_ELEMS(fsync_names) ? fsync_names[f] : "?";
}

/* syslog's facilities (RFC 5424 section 6.2.1), by their usual names */
static const char *const facility_names[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog",   "lpr",     "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "security", "console", "clock",
    "local0", "local1", "local2",   "local3", "local4", "local5",   "local6",  "local7"};

int pw_audit_facility(const char *name)
{
	for (size_t i = 0; i < N_ELEMS(facility_names); i++)
		if (strcmp(name, facility_names[i]) == 0)
			return (int)i;
	return -1;
}

/* The trail's directory must exist: pgwardd creates the file, never directories. */
static int file_dir(struct pw_jp *x, const char *jp, const char *file)
{
	char d[PATH_MAX], q[PW_JP_QUOTE_MAX];
	struct stat st;
	snprintf(d, sizeof(d), "%s", file);
	const char *dir = dirname(d);
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return pw_jp_fail(x, jp, "the directory of the trail, %s, does not exist",
		                  pw_jp_quote(q, dir));
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
		return pw_jp_fail(x, jp, "%s is not a regular file", pw_jp_quote(q, file));
	return 0;
}

static int sizes(struct pw_jp *x, const json_t *a, struct pw_audit_config *c)
{
	long long n;
	int rc = pw_jp_int(x, a, "$.audit", "ring_bytes", 64 * 1024, 1LL << 30, 0, &n);
	if (rc < 0)
		return -1;
	if (rc > 0)
		c->ring_bytes = (size_t)n;
	/* a record must fit half a ring, with room for its other fields */
	rc = pw_jp_int(x, a, "$.audit", "max_field_bytes", 256, 1LL << 28, 0, &n);
	if (rc < 0)
		return -1;
	if (rc > 0)
		c->max_field_bytes = (size_t)n;
	if (c->max_field_bytes * 2 > c->ring_bytes / 2)
		return pw_jp_fail(x, "$.audit.max_field_bytes",
		                  "expected at most a quarter of ring_bytes (%zu), got %zu",
		                  c->ring_bytes / 4, c->max_field_bytes);
	rc = pw_jp_int(x, a, "$.audit", "rotate_bytes", 0, 1LL << 50, 0, &n);
	if (rc < 0)
		return -1;
	if (rc > 0)
		c->rotate_bytes = (uint64_t)n;
	rc = pw_jp_int(x, a, "$.audit", "rotate_seconds", 0, 366LL * 86400, 0, &n);
	if (rc < 0)
		return -1;
	if (rc > 0)
		c->rotate_seconds = (int)n;
	rc = pw_jp_int(x, a, "$.audit", "fsync_interval_ms", 1, 10000, 0, &n);
	if (rc < 0)
		return -1;
	if (rc > 0)
		c->fsync_interval_ms = (int)n;
	return 0;
}

/* The checkpoint key: readable, not by others, an Ed25519 private key in PEM. Read here to
 * say what is wrong at once; pgwardd reads it again when the trail starts. */
static int key_file(struct pw_jp *x, const char *jp, const char *file)
{
	char buf[16384], why[256], q[PW_JP_QUOTE_MAX];
	size_t n = 0;
	unsigned mode = 0;
	int rc = pw_cfg_read_secret(x, jp, file, "key file", buf, sizeof(buf), &n, &mode);
	pw_jp_quote(q, file);
	if (rc == 0 && (mode & 0077)) {
		rc = pw_jp_fail(x, jp, "key file %s is readable by others (mode %04o): chmod 600",
		                q, mode);
	} else if (rc == 0) {
		EVP_PKEY *k = n < sizeof(buf) ? pw_audit_key_parse(buf, n, true, why, sizeof(why))
		                              : (snprintf(why, sizeof(why), "too large"), NULL);
		if (!k)
			rc =
			    pw_jp_fail(x, jp,
			               "key file %s: %s (`pgwardctl audit keygen --out FILE` makes "
			               "one)",
			               q, why);
		EVP_PKEY_free(k);
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

static int checkpoint(struct pw_jp *x, const json_t *a, struct pw_audit_config *c)
{
	static const char *const keys[] = {"key_file", "every", NULL};
	static const char *const jp = "$.audit.checkpoint";
	long long n;
	int rc;
	json_t *k = pw_jp_container(x, a, "$.audit", "checkpoint", false, false, &rc);
	if (!k)
		return rc;
	if (pw_jp_check_keys(x, k, jp, keys))
		return -1;
	bool bad = false;
	STEP(x, bad,
	     rc = pw_jp_str(x, k, jp, "key_file", c->key_file, sizeof(c->key_file),
	                    PW_JP_REQUIRED | PW_JP_NONEMPTY));
	if (rc > 0)
		STEP(x, bad, key_file(x, "$.audit.checkpoint.key_file", c->key_file));
	STEP(x, bad, rc = pw_jp_int(x, k, jp, "every", 1, 1000000, 0, &n));
	if (rc > 0)
		c->checkpoint_every = (int)n;
	return bad ? -1 : 0;
}

/* "host:port" or "[v6]:port", the port a number: looked up when the trail starts. */
static int address(struct pw_jp *x, const char *jp, const char *a)
{
	char q[PW_JP_QUOTE_MAX], *end;
	const char *colon = a[0] == '[' ? strstr(a, "]:") : strrchr(a, ':');
	long port = colon ? strtol(colon + 1 + (a[0] == '['), &end, 10) : 0;
	if (!colon || colon == a + (a[0] == '[') || *end || port < 1 || port > 65535 ||
	    !colon[1 + (a[0] == '[')])
		return pw_jp_fail(x, jp, "expected host:port (or [v6]:port), got %s",
		                  pw_jp_quote(q, a));
	return 0;
}

static int syslog_section(struct pw_jp *x, const json_t *a, struct pw_audit_syslog *c)
{
	static const char *const keys[] = {"socket", "address", "protocol", "facility", NULL};
	static const char *const protos[] = {"tcp", "udp"};
	static const char *const jp = "$.audit.syslog";
	char fac[32] = "", q[PW_JP_QUOTE_MAX];
	int rc, rs = 0, ra = 0, v = 0, rp = 0;
	json_t *s = pw_jp_container(x, a, "$.audit", "syslog", false, false, &rc);
	c->facility = PW_AUDIT_FACILITY_AUTHPRIV;
	if (!s)
		return rc;
	if (pw_jp_check_keys(x, s, jp, keys))
		return -1;
	bool bad = false;
	STEP(x, bad,
	     rs = pw_jp_str(x, s, jp, "socket", c->socket, sizeof(c->socket), PW_JP_NONEMPTY));
	STEP(x, bad,
	     ra = pw_jp_str(x, s, jp, "address", c->address, sizeof(c->address), PW_JP_NONEMPTY));
	STEP(x, bad, rp = pw_jp_enum(x, s, jp, "protocol", protos, N_ELEMS(protos), 0, &v));
	if (rs > 0 && ra > 0)
		STEP(x, bad, pw_jp_fail(x, jp, "expected \"socket\" or \"address\", not both"));
	else if (rs == 0 && ra == 0 && !bad)
		STEP(x, bad,
		     pw_jp_fail(x, jp,
		                "expected \"socket\" (a unix socket, /dev/log) or \"address\" "
		                "(host:port)"));
	else if (rs > 0 && rp > 0)
		STEP(x, bad, pw_jp_fail(x, "$.audit.syslog.protocol", "only with \"address\""));
	if (ra > 0)
		STEP(x, bad, address(x, "$.audit.syslog.address", c->address));
	STEP(x, bad, rc = pw_jp_str(x, s, jp, "facility", fac, sizeof(fac), PW_JP_NONEMPTY));
	if (rc > 0 && (c->facility = pw_audit_facility(fac)) < 0)
		STEP(x, bad,
		     pw_jp_fail(x, "$.audit.syslog.facility",
		                "expected a syslog facility (kern, user, daemon, auth, authpriv, "
		                "local0 to local7, ...), got %s",
		                pw_jp_quote(q, fac)));
	if (bad)
		return -1;
	c->proto = rs > 0   ? PW_AUDIT_SYSLOG_UNIX
	           : v == 1 ? PW_AUDIT_SYSLOG_UDP
	                    : PW_AUDIT_SYSLOG_TCP;
	return 0;
}

int pw_cfg_parse_audit(struct pw_jp *x, const json_t *root, struct pw_config *cfg)
{
	static const char *const keys[] = {"file",
	                                   "stdout",
	                                   "fsync",
	                                   "fsync_interval_ms",
	                                   "on_full",
	                                   "on_failure",
	                                   "rotate_bytes",
	                                   "rotate_seconds",
	                                   "ring_bytes",
	                                   "max_field_bytes",
	                                   "parameters",
	                                   "checkpoint",
	                                   "syslog",
	                                   "redact",
	                                   NULL};
	static const char *const full_names[] = {"wait", "drop"};
	static const char *const failure_names[] = {"refuse", "continue"};
	struct pw_audit_config *c = &cfg->audit;
	*c = (struct pw_audit_config){.fsync = PW_AUDIT_FSYNC_INTERVAL,
	                              .fsync_interval_ms = 100,
	                              .ring_bytes = 4u << 20,
	                              .rotate_bytes = 256u << 20,
	                              .rotate_seconds = 86400,
	                              .max_field_bytes = 1u << 20,
	                              .parameters = true,
	                              .redact = PW_AUDIT_REDACT_DEFAULT,
	                              .checkpoint_every = PW_AUDIT_CHECKPOINT_EVERY,
	                              .syslog.facility = PW_AUDIT_FACILITY_AUTHPRIV};
	int rc, v;
	json_t *a = pw_jp_container(x, root, "$", "audit", false, false, &rc);
	if (!a)
		return rc;
	if (pw_jp_check_keys(x, a, "$.audit", keys))
		return -1;
	bool bad = false;
	STEP(x, bad,
	     rc = pw_jp_str(x, a, "$.audit", "file", c->file, sizeof(c->file), PW_JP_NONEMPTY));
	if (rc > 0)
		STEP(x, bad, file_dir(x, "$.audit.file", c->file));
	STEP(x, bad, pw_jp_bool(x, a, "$.audit", "stdout", &c->to_stdout));
	STEP(x, bad,
	     rc = pw_jp_enum(x, a, "$.audit", "fsync", fsync_names, N_ELEMS(fsync_names), 0, &v));
	if (rc > 0)
		c->fsync = (enum pw_audit_fsync)v;
	STEP(x, bad,
	     rc = pw_jp_enum(x, a, "$.audit", "on_full", full_names, N_ELEMS(full_names), 0, &v));
	if (rc > 0)
		c->drop_when_full = v == 1;
	STEP(x, bad,
	     rc = pw_jp_enum(x, a, "$.audit", "on_failure", failure_names, N_ELEMS(failure_names),
	                     0, &v));
	if (rc > 0)
		c->continue_on_failure = v == 1;
	STEP(x, bad, pw_jp_bool(x, a, "$.audit", "parameters", &c->parameters));
	/* an empty list: nothing is redacted */
	json_t *r = json_object_get(a, "redact");
	if (json_is_array(r) && json_array_size(r) == 0)
		c->redact = 0;
	else
		STEP(x, bad, pw_cfg_detector_set(x, a, "$.audit", "redact", &c->redact));
	STEP(x, bad, sizes(x, a, c));
	STEP(x, bad, checkpoint(x, a, c));
	STEP(x, bad, syslog_section(x, a, &c->syslog));
	if (!c->file[0] && !c->to_stdout && !c->syslog.proto && !bad)
		STEP(x, bad,
		     pw_jp_fail(x, "$.audit",
		                "expected \"file\" or \"stdout\": true (where the trail goes), "
		                "or \"syslog\""));
	if (bad)
		return -1;
	c->enabled = true;
	return 0;
}
