/* The "recording" section of the configuration: where session recordings go
 * (docs/recording.md). Absent: no identity may ask for "record". */
#include <stdio.h>
#include <sys/stat.h>

#include "config_parse.h"

int pw_cfg_parse_recording(struct pw_jp *x, const json_t *root, struct pw_config *cfg)
{
	static const char *const keys[] = {"dir", "max_bytes", NULL};
	struct pw_recording_config *c = &cfg->recording;
	char q[PW_JP_QUOTE_MAX];
	struct stat st;
	long long n;
	int rc;
	*c = (struct pw_recording_config){.max_bytes = 64u << 20};
	json_t *r = pw_jp_container(x, root, "$", "recording", false, false, &rc);
	if (!r)
		return rc;
	if (pw_jp_check_keys(x, r, "$.recording", keys) ||
	    pw_jp_str(x, r, "$.recording", "dir", c->dir, sizeof(c->dir),
	              PW_JP_REQUIRED | PW_JP_NONEMPTY) < 0)
		return -1;
	if (stat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return pw_jp_fail(x, "$.recording.dir", "%s is not a directory",
		                  pw_jp_quote(q, c->dir));
	rc = pw_jp_int(x, r, "$.recording", "max_bytes", 1024, 1LL << 40, 0, &n);
	if (rc < 0)
		return -1;
	if (rc > 0)
		c->max_bytes = (uint64_t)n;
	c->enabled = true;
	return 0;
}
