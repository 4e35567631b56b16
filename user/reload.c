/* The configuration reload: see include/pgward/reload.h. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pgward/approval.h"
#include "pgward/audit_events.h"
#include "pgward/control.h"
#include "pgward/loader.h"
#include "pgward/netns_listen.h"
#include "pgward/reload.h"
#include "pgward/runtime.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* one reload at a time */
static char path[PATH_MAX];
static struct pw_config *started;
static bool forced_set;
static enum pw_log_level forced_level;

void pw_reload_init(const char *p, struct pw_config *s, bool level_forced, enum pw_log_level lvl)
{
	snprintf(path, sizeof(path), "%s", p);
	started = pw_config_ref(s);
	forced_set = level_forced;
	forced_level = lvl;
}

const char *pw_reload_path(void)
{
	return path;
}

void pw_reload_done(void)
{
	if (started)
		pw_config_unref(started);
	started = NULL;
}

static bool same_listen(const struct pw_config *a, const struct pw_config *b)
{
	if (a->n_listen != b->n_listen || a->workers != b->workers)
		return false;
	for (int i = 0; i < a->n_listen; i++) {
		const struct pw_listen *x = &a->listen[i], *y = &b->listen[i];
		if (x->is_unix != y->is_unix || x->port != y->port || strcmp(x->host, y->host) ||
		    strcmp(x->unix_path, y->unix_path))
			return false;
	}
	return true;
}

static void warn(void (*fn)(void *, const char *), void *arg, const char *msg)
{
	pw_warn("reload: %s", msg);
	if (fn)
		fn(arg, msg);
}

static int reload_locked(char *err, size_t errlen, void (*fn)(void *, const char *), void *arg)
{
	struct pw_runtime *nrt = pw_runtime_load(path, err, errlen);
	if (!nrt)
		return -1;
	const struct pw_config *n = nrt->cfg;
	if (memcmp(&started->audit, &n->audit, sizeof(started->audit)) != 0)
		warn(fn, arg, "the audit section changes only on restart");
	if (!same_listen(started, n))
		warn(fn, arg, "listeners and workers change only on restart");
	if (memcmp(&started->control, &n->control, sizeof(started->control)) != 0 ||
	    memcmp(&started->metrics, &n->metrics, sizeof(started->metrics)) != 0)
		warn(fn, arg, "the control and metrics sections change only on restart");
	if (started->redirect.enabled != n->redirect.enabled) {
		warn(fn, arg, "the redirect section changes only on restart");
	} else if (n->redirect.enabled && pw_loader_update(n, err, errlen) < 0) {
		pw_runtime_unref(nrt);
		return -1;
	}
	pw_log_set_level(forced_set ? forced_level : n->log_level);
	pw_control_config(n);
	pw_approval_config(n);
	pw_runtime_publish(nrt);
	pw_netns_listen_config(n); /* on or off, and the scope may have changed: rescan */
	return 0;
}

int pw_reload(char *err, size_t errlen, void (*fn)(void *arg, const char *msg), void *arg)
{
	pthread_mutex_lock(&mu);
	int rc = started ? reload_locked(err, errlen, fn, arg) : -1;
	if (!started)
		snprintf(err, errlen, "pgwardd is not running");
	pthread_mutex_unlock(&mu);
	if (rc < 0) {
		pw_error("reload failed, keeping the current configuration: %s", err);
		pw_audit_policy_reload(path, false, err);
		return -1;
	}
	pw_info("configuration reloaded from %s", path);
	pw_audit_policy_reload(path, true, NULL);
	return 0;
}
