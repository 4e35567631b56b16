/* The eBPF loader's state, private to its files: loader.c loads, updates and stops it on
 * pgwardd's main thread; loader_show.c reads it and changes the scope for the control socket
 * (include/pgward/loader_show.h). Nothing else includes this. */
#ifndef PGWARD_LOADER_INT_H
#define PGWARD_LOADER_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <bpf/libbpf.h>

#include "pgward/abi.h"
#include "pgward/loader_maps.h"

/* BPF_CGROUP_UNIX_CONNECT (kernel 6.7), newer than the distribution's headers */
#define PW_ATTACH_UNIX_CONNECT ((enum bpf_attach_type)49)

/* the programs attached per cgroup, and the attach type that identifies a pinned link */
enum {
	CG_CONNECT4,
	CG_CONNECT6,
	CG_GETPEER4,
	CG_GETPEER6,
	CG_SOCKOPS,
	CG_BIND4,
	CG_BIND6,
	CG_CONNECTU,
	N_CG_PROGS
};
struct pw_cg_prog {
	const char *name;
	enum bpf_attach_type type;
	const char *attach; /* as prog show says it: the section name ("cgroup/connect4") */
};
extern const struct pw_cg_prog pw_cg_progs[N_CG_PROGS];

#define MAX_TARGETS PW_MAX_TARGETS
#define MAX_LINKS   (MAX_TARGETS * N_CG_PROGS)

struct cg_link {
	struct bpf_link *link;
	uint64_t cgid;
	int prog; /* CG_* */
	char pin[PATH_MAX];
};

struct pgward; /* the skeleton (pgward.skel.h: only loader.c includes it) */

/* The loader is a per-process singleton.
 *
 * op is the loader's own lock: start, update and stop (pgwardd's main thread) hold it from
 * beginning to end, and so does every function of loader_show.h (the control thread) while it
 * reads or changes what op guards, so the two never interleave: running, skel, obj, pin,
 * targets, links, sk_msg_attached, overrides, n_uids. Lock order: op, then lock. The heartbeat
 * and event threads never take op (stop joins them while holding it).
 *
 * lock guards what the heartbeat thread shares (bcfg, stopping, period_ms); the event thread
 * uses only rb and rb_stop. */
struct pw_loader {
	pthread_mutex_t op;
	atomic_bool running; /* written under op; read without it by pw_loader_running */
	struct pgward *skel;
	struct bpf_object *obj; /* skel's */
	char pin[PATH_MAX];
	struct pw_cg_target targets[MAX_TARGETS];
	int n_targets;
	struct cg_link links[MAX_LINKS];
	int n_links;
	bool sk_msg_attached;
	char overrides[PATH_MAX]; /* redirect.overrides of the running configuration */
	int n_uids;               /* uids in scope: then the cgroups may all go */
	int ncpu; /* set before start returns; read by pw_loader_counters from any thread */

	pthread_mutex_t lock;
	pthread_cond_t cond;       /* CLOCK_MONOTONIC; wakes the heartbeat thread to stop */
	bool stopping;             /* under lock */
	struct pw_bpf_config bcfg; /* under lock: the config map's value, kept in memory */
	int config_fd;
	unsigned period_ms; /* under lock */
	bool hb_failed;     /* heartbeat thread only: log a failing update once */
	pthread_t hb_thread;

	struct ring_buffer *rb;
	atomic_bool rb_stop;
	pthread_t rb_thread;
};
extern struct pw_loader pw_ld;

/* pw_loader_uninstall (loader.h), with the rest of the pin set's handling in loader_pins.c:
 * every pin under pin_path (links first) and the directories. 0, or -1 with err set. */
int pw_pins_uninstall(const char *pin_path, char *err, size_t errlen);

#endif
