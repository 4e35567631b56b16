/* The "audit" section of the configuration: where the trail goes and how it is written
 * (docs/audit.md). Absent: no trail. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config_parse.h"

static const char *const fsync_names[] = {
    [PW_AUDIT_FSYNC_INTERVAL] = "interval", [PW_AUDIT_FSYNC_EVERY] = "every"};

const char *pw_audit_fsync_name(enum pw_audit_fsync f)
{
	return (unsigned)f < N_ELEMS(fsync_names) ? fsync_names[f] : "?";
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

int pw_cfg_parse_audit(struct pw_jp *x, const json_t *root, struct pw_config *cfg)
{
	static const char *const keys[] = {
	    "file",       "stdout",          "fsync",        "fsync_interval_ms",
	    "on_full",    "on_failure",      "rotate_bytes", "rotate_seconds",
	    "ring_bytes", "max_field_bytes", "parameters",   NULL};
	static const char *const full_names[] = {"wait", "drop"};
	static const char *const failure_names[] = {"refuse", "continue"};
	struct pw_audit_config *c = &cfg->audit;
	*c = (struct pw_audit_config){.fsync = PW_AUDIT_FSYNC_INTERVAL,
	                              .fsync_interval_ms = 100,
	                              .ring_bytes = 4u << 20,
	                              .rotate_bytes = 256u << 20,
	                              .rotate_seconds = 86400,
	                              .max_field_bytes = 1u << 20,
	                              .parameters = true};
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
	STEP(x, bad, sizes(x, a, c));
	if (!c->file[0] && !c->to_stdout)
		STEP(x, bad,
		     pw_jp_fail(x, "$.audit",
		                "expected \"file\" or \"stdout\": true (where the "
		                "trail goes)"));
	if (bad)
		return -1;
	c->enabled = true;
	return 0;
}
