/* pgwardctl config: check a pgwardd configuration. "policy check" is the same check (its
 * policy is the configuration's identities), so both report in one shape:
 *   plain: "FILE: PATH: what" per error on stderr, then "FILE: N errors"; or "FILE: OK"
 *   -j:    {"file": F, "valid": bool, "errors": [{"path": P|null, "message": M}, ...],
 *           "warnings": [W, ...]}
 * exit 1 when there is an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/config.h"
#include "pgward/ctl.h"

/* What one check found: the info struct both printers read. */
struct check_info {
	const char *file;
	int n_errors; /* found; the first PW_CONFIG_MAX_ERRORS are in errs */
	struct pw_jp_error errs[PW_CONFIG_MAX_ERRORS];
	int n_warnings;
	char (*warnings)[512];
};

static void add_warning(void *arg, const char *msg)
{
	struct check_info *ci = arg;
	char(*w)[512] = realloc(ci->warnings, sizeof(*w) * (size_t)(ci->n_warnings + 1));
	if (!w)
		return;
	ci->warnings = w;
	snprintf(w[ci->n_warnings++], sizeof(*w), "%s", msg);
}

static int shown(const struct check_info *ci)
{
	return ci->n_errors < PW_CONFIG_MAX_ERRORS ? ci->n_errors : PW_CONFIG_MAX_ERRORS;
}

static void check_plain(const struct check_info *ci)
{
	char line[PW_JP_PATH_MAX + PW_JP_MSG_MAX + 4096];
	for (int i = 0; i < shown(ci); i++) {
		pw_jp_format(ci->file, &ci->errs[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	if (ci->n_errors > shown(ci))
		fprintf(stderr, "%s: (%d more errors not shown)\n", ci->file,
		        ci->n_errors - shown(ci));
	for (int i = 0; i < ci->n_warnings; i++)
		fprintf(stderr, "%s: warning: %s\n", ci->file, ci->warnings[i]);
	if (ci->n_errors)
		fprintf(stderr, "%s: %d error%s\n", ci->file, ci->n_errors,
		        ci->n_errors == 1 ? "" : "s");
	else
		printf("%s: OK\n", ci->file);
}

static void check_json(const struct check_info *ci)
{
	json_t *j = json_object(), *errs = json_array(), *warns = json_array();
	for (int i = 0; i < shown(ci); i++) {
		json_t *e = json_object();
		json_object_set_new(e, "path", pw_ctl_json_str(ci->errs[i].path));
		json_object_set_new(e, "message", json_string(ci->errs[i].what));
		json_array_append_new(errs, e);
	}
	for (int i = 0; i < ci->n_warnings; i++)
		json_array_append_new(warns, json_string(ci->warnings[i]));
	json_object_set_new(j, "file", json_string(ci->file));
	json_object_set_new(j, "valid", json_boolean(ci->n_errors == 0));
	json_object_set_new(j, "errors", errs);
	json_object_set_new(j, "warnings", warns);
	pw_ctl_print_json(j);
}

int pw_ctl_check_file(const char *file)
{
	struct check_info *ci = calloc(1, sizeof(*ci));
	struct pw_config *cfg = NULL;
	if (!ci)
		return pw_ctl_err(PW_CTL_FAILED, "out of memory");
	ci->file = file;
	ci->n_errors = pw_config_check(file, ci->errs, PW_CONFIG_MAX_ERRORS, &cfg);
	if (cfg)
		pw_config_warnings(cfg, add_warning, ci);
	if (pw_ctl_json)
		check_json(ci);
	else
		check_plain(ci);
	int rc = ci->n_errors ? PW_CTL_FAILED : PW_CTL_OK;
	pw_config_unref(cfg);
	free(ci->warnings);
	free(ci);
	return rc;
}

static int do_check(int argc, char **argv);

static const struct pw_ctl_cmd config_cmds[] = {
    {"check", do_check, "FILE",
     "validate a pgwardd configuration: every error, each with its JSON path (exit 1)"},
    {NULL, NULL, NULL, NULL}};

/* config check FILE */
static int do_check(int argc, char **argv)
{
	if (argc != 1)
		return pw_ctl_usage(config_cmds, "config", "check");
	return pw_ctl_check_file(argv[0]);
}

int pw_ctl_config(int argc, char **argv)
{
	return pw_ctl_run_table(config_cmds, "config", argc, argv);
}
