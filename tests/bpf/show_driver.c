/* The driver of tests/bpf/show.sh: plays pgwardd's part for the loader (include/pgward/loader.h)
 * and answers what the control socket would ask (include/pgward/loader_show.h), one command
 * per line on stdin, one JSON line per command on stdout:
 *	start | reload | stop        pw_loader_start / pw_loader_update (CONFIG read again) / stop
 *	progs | maps | cgroups       the views
 *	dump NAME | add PATH | del PATH
 *	stress N                     N reloads and N stop+start while another thread keeps asking
 *	                             for every view: {"ok":..., "result": {"views": V, "bad": B}}
 *	quit
 * Answers: {"ok": true, "result": ...} or {"ok": false, "rc": N, "error": "..."}. Kernel events
 * go to EVENTS (pw_event_json, one per line). Usage: show_driver CONFIG EVENTS */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgward/config.h"
#include "pgward/jw.h"
#include "pgward/loader.h"
#include "pgward/loader_show.h"
#include "pgward/log.h"

static const char *config_path;
static FILE *events;
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pw_config *cfg;

static void on_event(const struct pw_event *ev)
{
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_event_json(&w, ev);
	pthread_mutex_lock(&events_lock);
	fprintf(events, "%s\n", w.p ? w.p : "");
	fflush(events);
	pthread_mutex_unlock(&events_lock);
	pw_jw_free(&w);
}

static int load(char *err, size_t errlen)
{
	struct pw_config *c;
	if (pw_config_load(config_path, &c, err, errlen) < 0)
		return -1;
	if (cfg)
		pw_config_unref(cfg);
	cfg = c;
	return 0;
}

static int do_start(char *err, size_t errlen)
{
	if (load(err, errlen) < 0)
		return -1;
	return pw_loader_start(cfg, (uint32_t)getpid(), err, errlen);
}

static int do_reload(char *err, size_t errlen)
{
	if (load(err, errlen) < 0)
		return -1;
	return pw_loader_update(cfg, err, errlen);
}

/* ---- stress: views on one thread, start/update/stop on this one ---- */

static atomic_bool stress_stop;
static atomic_long stress_views, stress_bad;

static void *viewer(void *arg)
{
	(void)arg;
	static const char *const dumps[] = {"conns", "scope", "counters", "config", "ports"};
	struct pw_jw w;
	char err[512];
	pw_jw_init(&w, 0);
	for (unsigned i = 0; !atomic_load(&stress_stop); i++) {
		pw_jw_reset(&w);
		pw_jw_obj(&w, NULL);
		int rc;
		switch (i % 4) {
		case 0:
			rc = pw_loader_show_progs(&w, err, sizeof(err));
			break;
		case 1:
			rc = pw_loader_show_maps(&w, err, sizeof(err));
			break;
		case 2:
			rc = pw_loader_show_cgroups(&w, err, sizeof(err));
			break;
		default:
			rc = pw_loader_dump_map(dumps[(i / 4) % 5], &w, err, sizeof(err));
		}
		/* either a whole answer or the one clean refusal: nothing in between */
		if (rc < 0 && !strstr(err, "no eBPF programs are loaded"))
			atomic_fetch_add(&stress_bad, 1);
		atomic_fetch_add(&stress_views, 1);
	}
	pw_jw_free(&w);
	return NULL;
}

static int do_stress(int n, struct pw_jw *out, char *err, size_t errlen)
{
	pthread_t t;
	atomic_store(&stress_stop, false);
	atomic_store(&stress_views, 0);
	atomic_store(&stress_bad, 0);
	if (pthread_create(&t, NULL, viewer, NULL) != 0) {
		snprintf(err, errlen, "pthread_create failed");
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		rc = do_reload(err, errlen);
		if (rc == 0) {
			pw_loader_stop();
			usleep(2000);
			rc = do_start(err, errlen);
		}
	}
	atomic_store(&stress_stop, true);
	pthread_join(t, NULL);
	if (rc == 0) {
		pw_jw_obj(out, "result");
		pw_jw_int(out, "views", atomic_load(&stress_views));
		pw_jw_int(out, "bad", atomic_load(&stress_bad));
		pw_jw_obj_end(out);
	}
	return rc;
}

/* one command: its answer's members into w */
static int run(char *line, struct pw_jw *w, char *err, size_t errlen)
{
	char *arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	else
		arg = "";
	if (!strcmp(line, "start"))
		return do_start(err, errlen);
	if (!strcmp(line, "reload"))
		return do_reload(err, errlen);
	if (!strcmp(line, "stop")) {
		pw_loader_stop();
		return 0;
	}
	if (!strcmp(line, "progs"))
		return pw_loader_show_progs(w, err, errlen);
	if (!strcmp(line, "maps"))
		return pw_loader_show_maps(w, err, errlen);
	if (!strcmp(line, "cgroups"))
		return pw_loader_show_cgroups(w, err, errlen);
	if (!strcmp(line, "dump"))
		return pw_loader_dump_map(arg, w, err, errlen);
	if (!strcmp(line, "add"))
		return pw_loader_cgroup_add(arg, err, errlen);
	if (!strcmp(line, "del"))
		return pw_loader_cgroup_del(arg, err, errlen);
	if (!strcmp(line, "stress"))
		return do_stress(atoi(arg), w, err, errlen);
	snprintf(err, errlen, "unknown command %.64s", line);
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s CONFIG EVENTS\n", argv[0]);
		return 2;
	}
	config_path = argv[1];
	events = fopen(argv[2], "ae");
	if (!events) {
		perror(argv[2]);
		return 2;
	}
	pw_log_set_level(PW_LOG_INFO);
	pw_loader_on_event = on_event;
	char line[8192];
	struct pw_jw w;
	pw_jw_init(&w, 0);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strcmp(line, "quit"))
			break;
		char err[4096] = "";
		struct pw_jw res;
		pw_jw_init(&res, 0);
		pw_jw_obj(&res, NULL); /* the members follow an opening brace, as in a response */
		int rc = run(line, &res, err, sizeof(err));
		pw_jw_reset(&w);
		pw_jw_obj(&w, NULL);
		pw_jw_bool(&w, "ok", rc == 0);
		if (rc == 0 && res.len > 1)
			pw_jw_raw(&w, NULL, res.p + 1, res.len - 1);
		if (rc != 0) {
			pw_jw_int(&w, "rc", rc);
			pw_jw_str(&w, "error", err);
		}
		pw_jw_obj_end(&w);
		printf("%s\n", w.p);
		fflush(stdout);
		pw_jw_free(&res);
	}
	pw_jw_free(&w);
	pw_loader_stop();
	if (cfg)
		pw_config_unref(cfg);
	fclose(events);
	return 0;
}
