/* pgwardd: the enforcer daemon. Main thread: configuration, signals, workers. */
#include <errno.h>
#include <jansson.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgward/approval.h"
#include "pgward/approval_db.h"
#include "pgward/audit.h"
#include "pgward/control.h"
#include "pgward/loader_show.h"
#include "pgward/metrics.h"
#include "pgward/reload.h"
#include "pgward/audit_events.h"
#include "pgward/record.h"
#include "pgward/config.h"
#include "pgward/analysis.h"
#include "pgward/catalog.h"
#include "pgward/jit.h"
#include "pgward/loader.h"
#include "pgward/log.h"
#include "pgward/loop.h"
#include "pgward/netns_listen.h"
#include "pgward/runtime.h"
#include "pgward/sdnotify.h"
#include "pgward/session.h"

#define PGWARD_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f, "Usage: pgwardd --config FILE [--check] [--log-level LEVEL]\n"
	           "       pgwardd --uninstall [--config FILE]\n"
	           "       pgwardd --version\n"
	           "\n"
	           "  -c, --config FILE     configuration (JSON), see pgward.json(5)\n"
	           "  -t, --check           validate the configuration and exit\n"
	           "  -l, --log-level L     debug|info|warn|error (overrides the file)\n"
	           "  -k, --keep-pinned     accepted for compatibility: a stop always leaves the\n"
	           "                        eBPF programs attached and pinned (fail-closed until\n"
	           "                        the next pgwardd takes them over)\n"
	           "  -u, --uninstall       detach and unpin every eBPF object of pgward, exit:\n"
	           "                        the only way agents' connects go direct again\n"
	           "  -V, --version         print the version and exit\n"
	           "  -h, --help            print this help and exit\n"
	           "\n"
	           "Signals: SIGHUP reloads the configuration (a bad file keeps the old one),\n"
	           "SIGTERM/SIGINT stop accepting and let sessions finish within\n"
	           "shutdown_grace_seconds; a second SIGTERM closes everything at once.\n");
}

static void warn_log(void *arg, const char *msg)
{
	(void)arg;
	pw_warn("configuration: %s", msg);
}

static void warn_print(void *arg, const char *msg)
{
	printf("%s: warning: %s\n", (const char *)arg, msg);
}

/* With Yama's ptrace_scope at 0 an agent may ptrace any process of its uid, outside the scope
 * too, and make it connect for it (or take its sockets with pidfd_getfd): only a scope by uid
 * covers that. "" when nothing to say. */
static void ptrace_note(const struct pw_config *cfg, char *out, size_t len)
{
	out[0] = 0;
	if (!cfg->redirect.enabled || cfg->redirect.n_uids > 0)
		return;
	int scope = -1;
	FILE *f = fopen("/proc/sys/kernel/yama/ptrace_scope", "re");
	if (f) {
		if (fscanf(f, "%d", &scope) != 1)
			scope = -1;
		fclose(f);
	}
	if (scope >= 1)
		return;
	snprintf(out, len,
	         "kernel.yama.ptrace_scope is %s: an agent can ptrace a process of its own uid "
	         "outside the redirect's cgroups and connect through it unsteered; set it to 1 "
	         "or more, or scope the agents' uids (redirect.uids)",
	         scope < 0 ? "unavailable (no Yama)" : "0");
}

/* A PostgreSQL (or pooler) unix socket on this host is another way to the database. With the
 * kernel's unix connect hook (6.7+) and redirect.unix "refuse", a connect from the scope by the
 * socket's name is refused, but the name is matched as written: a symlink or a bind mount
 * reaches the socket by another one, so a socket every local user may connect to gets a
 * warning. Without the hook (or with "allow") every such socket does. */
static void unix_notes(const struct pw_config *cfg, void (*fn)(void *arg, const char *msg),
                       void *arg)
{
	if (!cfg->redirect.enabled)
		return;
	bool refused = cfg->redirect.unix_refuse && pw_loader_unix_hook();
	FILE *f = fopen("/proc/net/unix", "re");
	if (!f)
		return;
	char line[PATH_MAX + 128], msg[PATH_MAX + 512];
	while (fgets(line, sizeof(line), f)) {
		char *path = strrchr(line, ' ');
		if (!path || path[1] != '/')
			continue;
		path++;
		path[strcspn(path, "\n")] = 0;
		const char *base = strrchr(path, '/') + 1;
		if (strncmp(base, ".s.PGSQL.", 9) != 0 || strchr(base + 9, '.'))
			continue;
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
			continue;
		if (refused && (st.st_mode & S_IWOTH) == 0)
			continue;
		bool own = false;
		for (int i = 0; i < cfg->n_listen && !own; i++)
			own = cfg->listen[i].is_unix && !strcmp(cfg->listen[i].unix_path, path);
		if (own)
			continue;
		if (refused)
			snprintf(
			    msg, sizeof(msg),
			    "PostgreSQL's unix socket %s (mode %04o): connects from the scope "
			    "by this name are refused, but any local user may connect to it by "
			    "another name (a symlink, a bind mount): keep agents out with its "
			    "permissions (unix_socket_permissions, unix_socket_group) or "
			    "pg_hba.conf's local lines",
			    path, (unsigned)(st.st_mode & 07777));
		else
			snprintf(msg, sizeof(msg),
			         "PostgreSQL's unix socket %s (mode %04o) is not covered by the "
			         "redirect (%s): keep agents out with its permissions "
			         "(unix_socket_permissions, unix_socket_group) or pg_hba.conf's "
			         "local lines",
			         path, (unsigned)(st.st_mode & 07777),
			         cfg->redirect.unix_refuse
			             ? "this kernel has no unix connect hook; 6.7 or later has"
			             : "redirect.unix is \"allow\"");
		fn(arg, msg);
	}
	fclose(f);
}

/* Descriptors pgwardd needs besides its sessions: listeners, epoll and wake-up descriptors,
 * the workers' spare descriptors, the log, the catalog's and the janitor's connections, the
 * eBPF objects. A generous round number: the estimate only informs the log. */
#define FDS_OWN 64

/* Raise the soft open-file limit to the hard one (systemd and shells start daemons at 1024,
 * about 500 sessions) and say what it allows: each session holds its client's descriptor and
 * its upstream's, and a worker may keep parked upstream connections besides. */
static void raise_nofile(const struct pw_config *cfg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		pw_warn("open files: cannot read the limit: %s", strerror(errno));
		return;
	}
	rlim_t was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			pw_warn("open files: cannot raise the limit from %llu to %llu: %s",
			        (unsigned long long)was, (unsigned long long)rl.rlim_max,
			        strerror(errno));
			rl.rlim_cur = was;
		}
	}
	long long pooled = 0;
	for (int i = 0; i < cfg->n_upstreams; i++)
		if (cfg->upstreams[i].reuse_connections && cfg->upstreams[i].pool_max_idle > pooled)
			pooled = cfg->upstreams[i].pool_max_idle;
	pooled *= cfg->workers;
	long long limit = rl.rlim_cur == RLIM_INFINITY ? 1LL << 30 : (long long)rl.rlim_cur;
	long long sessions = (limit - FDS_OWN - pooled) / 2;
	if (sessions < 0)
		sessions = 0;
	pw_info("open files: %lld%s (about %lld sessions: 2 descriptors each, %lld for parked "
	        "upstream connections, %d for pgwardd itself)",
	        limit, was != rl.rlim_cur ? " (raised from the soft limit)" : "", sessions, pooled,
	        FDS_OWN);
	if (sessions < 1000)
		pw_warn("open files: the hard limit (%lld) allows fewer than 1000 sessions; raise "
		        "it (LimitNOFILE= in the systemd unit)",
		        limit);
}

/* After a burst of closed sessions, or of big statements parsed, give their memory back to the
 * system: free()d chunks stay in the threads' malloc arenas (19,000 idle sessions left 338 MB
 * behind, two 1 MB statements 200 MB, three of 200 kB 80 MB). Called by the main thread once
 * a second; trims at most every TRIM_EVERY_MS, and only after enough of either, so that steady
 * traffic does not pay for a walk of every arena. */
#define TRIM_AFTER_SESSIONS 512
#define TRIM_AFTER_BYTES    (64u << 10)
#define TRIM_EVERY_MS       5000
static void trim_after_bursts(void)
{
	static uint64_t freed_then, bytes_then, trimmed_ms; /* main thread only */
	uint64_t freed = pw_session_freed(), bytes = pw_analysis_bytes(), now = pw_now_ms();
	if ((freed - freed_then < TRIM_AFTER_SESSIONS && bytes - bytes_then < TRIM_AFTER_BYTES) ||
	    now - trimmed_ms < TRIM_EVERY_MS)
		return;
	freed_then = freed;
	bytes_then = bytes;
	trimmed_ms = now;
	malloc_trim(0);
}

static void *join_workers(void *arg)
{
	(void)arg;
	pw_loop_join();
	return NULL;
}

struct args {
	const char *path, *level;
	bool check, uninstall;
	bool level_set;
	enum pw_log_level forced;
};

/* Command line into a. -1: exit with *rc (done, or a usage error). */
static int parse_args(int argc, char **argv, struct args *a, int *rc)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
	                                     {"check", no_argument, NULL, 't'},
	                                     {"log-level", required_argument, NULL, 'l'},
	                                     {"version", no_argument, NULL, 'V'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {"keep-pinned", no_argument, NULL, 'k'},
	                                     {"uninstall", no_argument, NULL, 'u'},
	                                     {NULL, 0, NULL, 0}};
	int c;
	memset(a, 0, sizeof(*a));
	a->forced = PW_LOG_INFO;
	while ((c = getopt_long(argc, argv, "c:tl:Vhku", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			break; /* the default now */
		case 'u':
			a->uninstall = true;
			break;
		case 'c':
			a->path = optarg;
			break;
		case 't':
			a->check = true;
			break;
		case 'l':
			a->level = optarg;
			break;
		case 'V':
			printf("pgwardd %s\n", PGWARD_VERSION);
			*rc = 0;
			return -1;
		case 'h':
			usage(stdout);
			*rc = 0;
			return -1;
		default:
			usage(stderr);
			*rc = 2;
			return -1;
		}
	}
	if (a->uninstall && optind == argc)
		return 0;
	if (!a->path || optind != argc) {
		usage(stderr);
		*rc = 2;
		return -1;
	}
	if (a->level && pw_log_parse_level(a->level, &a->forced) < 0) {
		fprintf(stderr, "pgwardd: unknown log level \"%s\"\n", a->level);
		*rc = 2;
		return -1;
	}
	a->level_set = a->level != NULL;
	return 0;
}

/* pgwardd --uninstall [--config FILE]: the pins go, and the gate opens. */
static int uninstall(const char *path)
{
	char e[512];
	char pin[PATH_MAX] = "/sys/fs/bpf/pgward";
	/* only the pin path is read: a configuration that no longer loads as a whole (a cgroup or
	 * a secret gone) must not send the uninstall to the default path and leave its pins */
	if (path) {
		json_error_t je;
		json_t *root = json_load_file(path, 0, &je);
		if (!root) {
			fprintf(stderr,
			        "pgwardd: uninstall: %s: line %d: %s (the pins' path is read "
			        "from it; nothing was removed)\n",
			        path, je.line, je.text);
			return 1;
		}
		json_t *p = json_object_get(json_object_get(root, "redirect"), "pin_path");
		if (json_is_string(p) && json_string_length(p) > 0 &&
		    json_string_length(p) < PATH_MAX)
			snprintf(pin, sizeof(pin), "%s", json_string_value(p));
		json_decref(root);
	}
	int rc = pw_loader_uninstall(pin, e, sizeof(e));
	if (rc < 0)
		fprintf(stderr, "pgwardd: uninstall: %s\n", e);
	else
		printf("pgwardd: nothing of pgward left under %s: the eBPF redirect is "
		       "removed, agents' connects go where they are dialled\n",
		       pin);
	return rc < 0 ? 1 : 0;
}

/* pgwardd --check: the configuration and what the host means for it, printed. */
static int check_only(struct pw_runtime *rt, const char *path, const char *note)
{
	pw_config_warnings(rt->cfg, warn_print, (void *)path);
	unix_notes(rt->cfg, warn_print, (void *)path);
	if (note[0])
		printf("%s: warning: %s\n", path, note);
	printf("%s: OK (%d listener(s), %d upstream(s), %d identit%s)\n", path, rt->cfg->n_listen,
	       rt->cfg->n_upstreams, rt->cfg->n_identities,
	       rt->cfg->n_identities == 1 ? "y" : "ies");
	pw_runtime_unref(rt);
	return 0;
}

/* Each ring-buffer event, for `event pipe` (the loader's thread; logged and audited already). */
static void publish_event(const struct pw_event *ev)
{
	static __thread struct pw_jw w;
	if (!pw_control_watched(PW_TOPIC_EVENTS))
		return;
	if (!w.max_field)
		pw_jw_init(&w, 4096);
	pw_jw_reset(&w);
	pw_event_json(&w, ev);
	if (pw_jw_ok(&w))
		pw_control_publish(PW_TOPIC_EVENTS, 0, w.p, w.len);
}

/* The metrics endpoint's scrape and `stats`: one gathering. */
static void gather_metrics(struct pw_metrics_snapshot *s)
{
	pw_control_gather_metrics(s);
}

/* Workers, the kernel side and the janitor up; the readiness line written. -1 when start-up
 * failed (logged). */
static int start(struct pw_runtime *rt, const char *path)
{
	char err[1024];
	raise_nofile(rt->cfg);
	for (int i = 0; i < rt->cfg->n_upstreams; i++)
		if (!rt->cfg->upstreams[i].max_connections_set)
			pw_warn(
			    "upstream \"%s\": max_connections is not set: pgwardd holds at most %d "
			    "connections to it; set it below the server's max_connections minus "
			    "superuser_reserved_connections and what other clients need",
			    rt->cfg->upstreams[i].name, rt->cfg->upstreams[i].max_connections);
	pw_runtime_publish(pw_runtime_ref(rt));
	/* a catalog snapshot loaded: sessions waiting for it go on */
	pw_catalog_on_change(pw_loop_nudge);
	if (rt->cfg->redirect.enabled)
		pw_loader_preopen(rt->cfg);
	pw_loader_on_event = publish_event;
	/* the trail first: nothing is served unaudited when an audit is asked for */
	if (rt->cfg->audit.enabled && pw_audit_start(&rt->cfg->audit, path, err, sizeof(err)) < 0) {
		pw_error("audit trail: %s", err);
		return -1;
	}
	if (pw_record_start(&rt->cfg->recording, err, sizeof(err)) < 0) {
		pw_error("%s", err);
		pw_audit_stop("start-up failed");
		return -1;
	}
	if (pw_loop_start(rt->cfg, pw_session_hooks()) < 0) {
		pw_error("start-up failed");
		pw_record_stop();
		pw_audit_stop("start-up failed");
		return -1;
	}
	if (rt->cfg->redirect.enabled &&
	    pw_loader_start(rt->cfg, (uint32_t)getpid(), err, sizeof(err)) < 0) {
		pw_error("eBPF redirect: %s", err);
		pw_loop_stop(0);
		pw_loop_join();
		pw_record_stop();
		pw_audit_stop("start-up failed");
		return -1;
	}
	/* the live control plane: approvals, the control socket, the metrics endpoint */
	if (pw_approval_start(rt->cfg, pw_session_approval, err, sizeof(err)) < 0 ||
	    pw_approval_db_start(rt, err, sizeof(err)) < 0 ||
	    pw_control_start(rt->cfg, err, sizeof(err)) < 0 ||
	    (rt->cfg->metrics.enabled &&
	     pw_metrics_http_start(&rt->cfg->metrics, gather_metrics, err, sizeof(err)) < 0)) {
		pw_error("%s", err);
		pw_control_stop();
		pw_approval_stop();
		pw_approval_db_stop();
		if (rt->cfg->redirect.enabled)
			pw_loader_stop();
		pw_loop_stop(0);
		pw_loop_join();
		pw_record_stop();
		pw_audit_stop("start-up failed");
		return -1;
	}
	/* steered listeners in the scope's other network namespaces (pods); failing to start
	 * leaves agents there refused, as without it */
	if (rt->cfg->redirect.enabled)
		pw_netns_listen_start(rt->cfg);
	/* just-in-time roles: the janitor, and the sweep of roles a dead pgwardd left behind */
	if (pw_jit_start(rt) < 0)
		pw_warn("just-in-time roles: cannot start the janitor thread");
	/* the readiness line (whatever the log level): listeners open, redirect attached */
	pw_log_summary("pgwardd %s started (pid %d, config %s)", PGWARD_VERSION, getpid(), path);
	/* a Type=notify unit: `systemctl start` returns once the redirect is attached */
	pw_sd_notify("READY=1\nMAINPID=%d\nSTATUS=serving (config %.300s)", getpid(), path);
	return 0;
}

/* SIGTERM/SIGINT: stop accepting, keep the kernel side pinned and fail-closed, let the
 * sessions finish within the grace period (a second signal cuts it short). */
static void stop(const struct pw_config *running, int sig, sigset_t *set)
{
	pw_info("received %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
	pw_sd_notify("STOPPING=1\nSTATUS=stopping; the eBPF programs stay pinned (fail-closed)");
	pw_loop_stop(running->shutdown_grace_ms);
	/* the namespaces' listeners are closed (the workers accept no more on them) */
	pw_netns_listen_stop();
	/* nothing is accepted any more: now the kernel side, kept pinned and fail-closed for
	 * the next pgwardd */
	if (running->redirect.enabled)
		pw_loader_stop();
	/* the workers end by themselves; a second signal cuts the grace short */
	pthread_t joiner;
	pthread_sigmask(SIG_BLOCK, set, NULL);
	if (pthread_create(&joiner, NULL, join_workers, NULL) != 0)
		return;
	/* wait for either the joiner or another signal */
	for (;;) {
		struct timespec ts = {0, 100 * 1000000};
		sig = sigtimedwait(set, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			pw_info("second stop signal: closing all sessions now");
			pw_loop_stop(0);
		}
		if (pthread_tryjoin_np(joiner, NULL) == 0)
			break;
	}
}

int main(int argc, char **argv)
{
	pw_sd_init();
	pw_metrics_start();
	struct args a;
	int rc;
	if (parse_args(argc, argv, &a, &rc) < 0)
		return rc;
	if (a.uninstall)
		return uninstall(a.path);

	char err[1024];
	struct pw_runtime *rt = pw_runtime_load(a.path, err, sizeof(err));
	if (!rt) {
		fprintf(stderr, "pgwardd: %s\n", err);
		return 1;
	}
	char note[512];
	ptrace_note(rt->cfg, note, sizeof(note));
	if (a.check)
		return check_only(rt, a.path, note);
	pw_log_set_level(a.level_set ? a.forced : rt->cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	/* a file-size limit fails the audit trail's write (EFBIG), it does not kill pgwardd */
	signal(SIGXFSZ, SIG_IGN);
	pw_config_warnings(rt->cfg, warn_log, NULL);
	unix_notes(rt->cfg, warn_log, NULL);
	if (note[0])
		pw_warn("%s", note);

	/* before any thread or session: see approval_notify.c */
	if (pw_approval_notify_fork(err, sizeof(err)) < 0) {
		pw_error("%s", err);
		return 1;
	}
	/* signals are taken synchronously by this thread; workers never see them */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (start(rt, a.path) < 0)
		return 1;
	struct pw_config *running = pw_config_ref(rt->cfg);
	pw_reload_init(a.path, running, a.level_set, a.forced);
	pw_runtime_unref(rt);
	char stop_why[32] = "stopped";

	for (;;) {
		struct timespec second = {1, 0};
		int sig = sigtimedwait(&set, NULL, &second);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				trim_after_bursts();
				continue;
			}
			break;
		}
		if (sig == SIGHUP) {
			char err[1024];
			pw_sd_notify("RELOADING=1\nSTATUS=reloading");
			int r = pw_reload(err, sizeof(err), NULL, NULL);
			pw_sd_notify("READY=1\nSTATUS=%s", r < 0
			                                       ? "serving; the last reload failed, "
			                                         "the previous configuration stays"
			                                       : "serving");
			continue;
		}
		snprintf(stop_why, sizeof(stop_why), "%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
		stop(running, sig, &set);
		break;
	}
	pw_control_stop();
	pw_metrics_http_stop();
	pw_approval_stop(); /* its withdrawals of shared requests are the database's last writes */
	pw_approval_db_stop();
	pw_reload_done();
	/* the sessions are gone: drop their just-in-time roles before leaving */
	pw_jit_stop(5000);
	pw_record_stop();
	pw_audit_stop(stop_why);
	pw_catalog_stop();
	pw_config_unref(running);
	pw_runtime_publish(NULL);
	pw_log_summary("pgwardd stopped");
	return 0;
}
