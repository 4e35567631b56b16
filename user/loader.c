/* The eBPF redirect's user-space side (see include/pgward/loader.h).
 *
 * Pin layout under redirect.pin_path (bpffs only holds BPF objects, so the pin set describes
 * itself: the config map's abi_version plus every map's type and sizes):
 *	<pin>/maps/<map name>		every map of bpf/pgward.bpf.c
 *	<pin>/links/<prog>-<cgroup id>	one cgroup link per program and cgroup
 * The sk_msg program hangs off the pinned sockhash (libbpf 1.1 has no link for it).
 *
 * Takeover without a window: a restarted pgwardd reuses the pinned maps (their contents stay
 * valid: in-flight tuples, socket storage, the sockhash) and switches each pinned link to its
 * new program with BPF_LINK_UPDATE, which is atomic. A link that cannot be switched gets a
 * new link next to it first (cgroup links stack), and only then is the old one detached. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "pgward.skel.h"
#include "pgward/audit_events.h"
#include "pgward/loader.h"
#include "pgward/conntrack.h"
#include "pgward/loader_host.h"
#include "pgward/loader_maps.h"
#include "pgward/loader_pins.h"
#include "pgward/loader_events.h"
#include "pgward/log.h"
#include "loader_int.h"

#define MIN_HEARTBEAT_PERIOD 10 /* ms */

const struct pw_cg_prog pw_cg_progs[N_CG_PROGS] = {
    [CG_CONNECT4] = {"pw_connect4", BPF_CGROUP_INET4_CONNECT, "cgroup/connect4"},
    [CG_CONNECT6] = {"pw_connect6", BPF_CGROUP_INET6_CONNECT, "cgroup/connect6"},
    [CG_GETPEER4] = {"pw_getpeername4", BPF_CGROUP_INET4_GETPEERNAME, "cgroup/getpeername4"},
    [CG_GETPEER6] = {"pw_getpeername6", BPF_CGROUP_INET6_GETPEERNAME, "cgroup/getpeername6"},
    [CG_SOCKOPS] = {"pw_sockops", BPF_CGROUP_SOCK_OPS, "sockops"},
    [CG_BIND4] = {"pw_bind4", BPF_CGROUP_INET4_BIND, "cgroup/bind4"},
    [CG_BIND6] = {"pw_bind6", BPF_CGROUP_INET6_BIND, "cgroup/bind6"},
    [CG_CONNECTU] = {"pw_connect_unix", PW_ATTACH_UNIX_CONNECT, "cgroup/connect_unix"},
};

/* see loader_int.h for who touches what, and under which lock */
struct pw_loader pw_ld = {
    .op = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER, .config_fd = -1};

/* Read with no lock by any thread (pw_loader_counters): set before pw_loader_start returns,
 * reset to -1 first thing in pw_loader_stop. The tuple map's descriptor is registered with
 * conntrack.c on the same schedule (see there). */
static atomic_int counters_fd = -1;

/* Set by the embedding program before start and only read afterwards (header contract). */
void (*pw_loader_on_event)(const struct pw_event *ev);

/* libbpf 1.x returns NULL/negative and sets errno; keep a non-zero code for messages */
static int errno_or(int fallback)
{
	return errno ? errno : fallback;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return 0;
	size_t len = strlen(line);
	while (len && line[len - 1] == '\n')
		line[--len] = '\0';
	if (level == LIBBPF_WARN)
		pw_warn("libbpf: %s", line);
	else
		pw_debug("libbpf: %s", line);
	return n;
}

/* the maps that pw_maps_sync_filters fills, of the loaded skeleton */
static struct pw_filter_fds filter_fds(void)
{
	return (struct pw_filter_fds){.dsts = bpf_map__fd(pw_ld.skel->maps.pw_dsts),
	                              .deny = bpf_map__fd(pw_ld.skel->maps.pw_deny),
	                              .scope_uid = bpf_map__fd(pw_ld.skel->maps.pw_scope_uid),
	                              .unix_own = bpf_map__fd(pw_ld.skel->maps.pw_unix_own)};
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* caller holds pw_ld.lock */
static int write_config_locked(void)
{
	uint32_t zero = 0;
	pw_ld.bcfg.heartbeat_ns = now_ns();
	if (bpf_map_update_elem(pw_ld.config_fd, &zero, &pw_ld.bcfg, BPF_ANY) < 0)
		return -errno_or(EIO);
	return 0;
}

static unsigned period_of(const struct pw_bpf_config *c)
{
	uint64_t p = c->heartbeat_timeout_ns / 4 / 1000000ull;
	return p < MIN_HEARTBEAT_PERIOD ? MIN_HEARTBEAT_PERIOD : (unsigned)p;
}

/* ---- threads ---- */

static void *heartbeat_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pw_ld.lock);
	while (!pw_ld.stopping) {
		int rc = write_config_locked();
		if (rc < 0 && !pw_ld.hb_failed)
			pw_warn("eBPF heartbeat: updating the config map: %s", strerror(-rc));
		pw_ld.hb_failed = rc < 0;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)pw_ld.period_ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		/* woken early (stop, or a new period from update): just beat again sooner */
		if (!pw_ld.stopping)
			pthread_cond_timedwait(&pw_ld.cond, &pw_ld.lock, &ts);
	}
	pthread_mutex_unlock(&pw_ld.lock);
	return NULL;
}

static int on_event(void *ctx, void *data, size_t size)
{
	(void)ctx;
	if (size < sizeof(struct pw_event))
		return 0;
	pw_event_log(data);
	pw_audit_kernel_event(data);
	if (pw_loader_on_event)
		pw_loader_on_event(data);
	return 0;
}

static void *events_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&pw_ld.rb_stop)) {
		int n = ring_buffer__poll(pw_ld.rb, 100);
		if (n < 0 && n != -EINTR) {
			pw_warn("eBPF events: ring buffer poll: %s", strerror(-n));
			struct timespec ts = {0, 100 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* Threads of ours take no signals: pgwardd waits for them synchronously. */
static int spawn(pthread_t *t, void *(*fn)(void *))
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(t, NULL, fn, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

bool pw_loader_unix_hook(void)
{
	/* the hook and its kfunc came together (6.7): the kernel's BTF says which it has */
	static int have = -1; /* main thread only (start, update, checks) */
	if (have < 0) {
		struct btf *btf = btf__load_vmlinux_btf();
		have = btf &&
		       btf__find_by_name_kind(btf, "bpf_sock_addr_set_sun_path", BTF_KIND_FUNC) > 0;
		btf__free(btf);
	}
	return have;
}

/* ---- links ---- */

static struct bpf_program *prog_of(int p)
{
	switch (p) {
	case CG_CONNECT4:
		return pw_ld.skel->progs.pw_connect4;
	case CG_CONNECT6:
		return pw_ld.skel->progs.pw_connect6;
	case CG_GETPEER4:
		return pw_ld.skel->progs.pw_getpeername4;
	case CG_GETPEER6:
		return pw_ld.skel->progs.pw_getpeername6;
	case CG_BIND4:
		return pw_ld.skel->progs.pw_bind4;
	case CG_BIND6:
		return pw_ld.skel->progs.pw_bind6;
	case CG_CONNECTU:
		return pw_ld.skel->progs.pw_connect_unix;
	default:
		return pw_ld.skel->progs.pw_sockops;
	}
}

static bool target_wants(const struct pw_cg_target *t, int p)
{
	return t->attach && (p != CG_CONNECTU || pw_loader_unix_hook());
}

static struct bpf_link *attach_one(int p, const struct pw_cg_target *t, char *err, size_t errlen)
{
	int fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		pw_errf(err, errlen, "cgroup %s: %s", t->path, strerror(errno));
		return NULL;
	}
	errno = 0;
	struct bpf_link *l = bpf_program__attach_cgroup(prog_of(p), fd);
	int e = errno_or(EINVAL);
	close(fd);
	if (!l)
		pw_errf(err, errlen, "attaching %s to cgroup %s: %s", pw_cg_progs[p].name, t->path,
		        strerror(e));
	return l;
}

/* Pin at <pin>/links/<prog>-<cgid>, or next to it while an old link still holds that name
 * (fix_names renames it once the old one is gone). */
static int pin_link(struct cg_link *cl, char *err, size_t errlen)
{
	pw_pin_path(cl->pin, sizeof(cl->pin), "%s/links/%s-%" PRIu64, pw_ld.pin,
	            pw_cg_progs[cl->prog].name, cl->cgid);
	if (bpf_link__pin(cl->link, cl->pin) == 0)
		return 0;
	size_t len = strlen(cl->pin);
	pw_pin_path(cl->pin + len, sizeof(cl->pin) - len, "~%d", (int)getpid());
	if (bpf_link__pin(cl->link, cl->pin) == 0)
		return 0;
	pw_errf(err, errlen, "pinning link %s: %s", cl->pin, strerror(errno_or(EIO)));
	cl->pin[0] = '\0'; /* not ours: never unlink it */
	return -1;
}

static void fix_names(void)
{
	for (int i = 0; i < pw_ld.n_links; i++) {
		struct cg_link *cl = &pw_ld.links[i];
		char *tilde = strrchr(cl->pin, '~');
		if (!tilde || strchr(tilde, '/'))
			continue;
		char want[PATH_MAX];
		snprintf(want, sizeof(want), "%.*s", (int)(tilde - cl->pin), cl->pin);
		if (access(want, F_OK) == 0 || rename(cl->pin, want) < 0)
			continue;
		snprintf(cl->pin, sizeof(cl->pin), "%s", want);
	}
}

/* detach in the kernel (even if someone else holds an fd), unpin, close */
static void destroy_links_from(int first)
{
	for (int i = pw_ld.n_links - 1; i >= first; i--)
		pw_pins_drop_link(pw_ld.links[i].link, pw_ld.links[i].pin);
	pw_ld.n_links = first;
}

static int attach_sk_msg(char *err, size_t errlen)
{
	if (pw_ld.sk_msg_attached)
		return 0;
	if (bpf_prog_attach(bpf_program__fd(pw_ld.skel->progs.pw_sk_msg),
	                    bpf_map__fd(pw_ld.skel->maps.pw_sockhash), BPF_SK_MSG_VERDICT, 0) < 0) {
		pw_errf(err, errlen, "attaching pw_sk_msg to the sockhash: %s", strerror(errno));
		return -1;
	}
	pw_ld.sk_msg_attached = true; /* the sockhash pin keeps it; uninstall removes both */
	return 0;
}

/* ---- start ---- */

/* Is another pgwardd still heartbeating into this pin set? Taking it over would leave two
 * enforcers fighting over one config map. (stop(true) marks the heartbeat stale, a crashed one
 * is not alive, a hung one goes stale after its timeout.) */
static bool pinned_owner_alive(const struct pw_bpf_config *c, uint32_t self)
{
	if (c->abi_version != PW_ABI_VERSION || !c->heartbeat_ns || !c->enforcer_tgid ||
	    c->enforcer_tgid == self)
		return false;
	uint64_t now = now_ns();
	if (now - c->heartbeat_ns > c->heartbeat_timeout_ns)
		return false;
	return kill((pid_t)c->enforcer_tgid, 0) == 0 || errno != ESRCH;
}

static void stop_threads(void)
{
	pthread_mutex_lock(&pw_ld.lock);
	pw_ld.stopping = true;
	pthread_cond_signal(&pw_ld.cond);
	pthread_mutex_unlock(&pw_ld.lock);
	pthread_join(pw_ld.hb_thread, NULL);
	pthread_cond_destroy(&pw_ld.cond);
	if (pw_ld.rb) {
		atomic_store(&pw_ld.rb_stop, true);
		pthread_join(pw_ld.rb_thread, NULL);
		ring_buffer__free(pw_ld.rb);
		pw_ld.rb = NULL;
	}
}

static int start_threads(char *err, size_t errlen)
{
	errno = 0;
	pw_ld.rb = ring_buffer__new(bpf_map__fd(pw_ld.skel->maps.pw_events), on_event, NULL, NULL);
	if (!pw_ld.rb)
		pw_warn("eBPF events: ring buffer: %s (events are not logged)",
		        strerror(errno_or(EINVAL)));
	atomic_store(&pw_ld.rb_stop, false);
	if (pw_ld.rb && spawn(&pw_ld.rb_thread, events_main) != 0) {
		ring_buffer__free(pw_ld.rb);
		pw_ld.rb = NULL;
		pw_warn("eBPF events: cannot start the event thread (events are not logged)");
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pw_ld.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (spawn(&pw_ld.hb_thread, heartbeat_main) == 0)
		return 0;
	/* without a heartbeat the programs would refuse within the timeout: do not pretend */
	pw_errf(err, errlen, "cannot start the heartbeat thread");
	if (pw_ld.rb) {
		atomic_store(&pw_ld.rb_stop, true);
		pthread_join(pw_ld.rb_thread, NULL);
		ring_buffer__free(pw_ld.rb);
		pw_ld.rb = NULL;
	}
	pthread_cond_destroy(&pw_ld.cond);
	return -1;
}

static int apply_links(struct pw_old_link *old, int n_old, char *err, size_t errlen);

static void teardown_skel(void)
{
	pgward__destroy(pw_ld.skel);
	pw_ld.skel = NULL;
	pw_ld.obj = NULL;
	pw_ld.config_fd = -1;
}

/* Opens the skeleton, adopts the pinned maps when they fit this pgwardd (waiting a little for
 * a previous owner that is still stopping), and loads the programs. 0, or -1 with err set and
 * nothing left open. */
static int open_and_load(const char *pin, uint32_t enforcer_tgid, bool *adopt, char *err,
                         size_t errlen)
{
	char why[1024];

	errno = 0;
	pw_ld.skel = pgward__open();
	if (!pw_ld.skel) {
		pw_errf(err, errlen, "opening the BPF object: %s", strerror(errno_or(EINVAL)));
		return -1;
	}
	pw_ld.obj = pw_ld.skel->obj;
	struct pw_bpf_config pinned;
	int state = pw_pins_state(pw_ld.skel->obj, pin, why, sizeof(why), &pinned);
	/* a restart may start us while the previous pgwardd is still handing over (it marks
	 * the heartbeat stale when it stops): give it a few seconds before refusing */
	for (int i = 0; i < 50 && state == 1 && pinned_owner_alive(&pinned, enforcer_tgid); i++) {
		if (i == 0)
			pw_info("eBPF: the pin set at %s is still owned by pid %u: waiting for it "
			        "to stop",
			        pin, pinned.enforcer_tgid);
		usleep(100 * 1000);
		state = pw_pins_state(pw_ld.skel->obj, pin, why, sizeof(why), &pinned);
	}
	*adopt = state == 1;
	if (pinned_owner_alive(&pinned, enforcer_tgid)) {
		pw_errf(err, errlen,
		        "the pin set at %s belongs to a running pgwardd (pid %u, heartbeat fresh)",
		        pin, pinned.enforcer_tgid);
		teardown_skel();
		return -1;
	}
	if (state < 0)
		pw_warn("eBPF: the pin set at %s does not fit this pgwardd (%s): replacing it", pin,
		        why);
	if (*adopt && pw_pins_reuse_maps(pw_ld.skel->obj, pin, err, errlen) < 0) {
		teardown_skel();
		return -1;
	}
	/* the unix connect program is loaded only where the kernel has its hook */
	if (pw_loader_unix_hook())
		bpf_program__set_expected_attach_type(pw_ld.skel->progs.pw_connect_unix,
		                                      PW_ATTACH_UNIX_CONNECT);
	else
		bpf_program__set_autoload(pw_ld.skel->progs.pw_connect_unix, false);
	int rc = pgward__load(pw_ld.skel);
	if (rc < 0) {
		pw_errf(err, errlen, "loading the BPF programs: %s", strerror(-rc));
		teardown_skel();
		return -1;
	}
	pw_ld.config_fd = bpf_map__fd(pw_ld.skel->maps.pw_config);
	return 0;
}

/* under op: what loader_show.c needs of the configuration running */
static void remember(const struct pw_config *cfg)
{
	snprintf(pw_ld.overrides, sizeof(pw_ld.overrides), "%s", cfg->redirect.overrides);
	pw_ld.n_uids = cfg->redirect.n_uids;
}

static int start_locked(const struct pw_config *cfg, uint32_t enforcer_tgid,
                        const struct pw_cg_overrides *ov, char *err, size_t errlen)
{
	const char *pin;
	int hb_ms;
	uint16_t ports[PW_MAX_REDIRECT_PORTS];
	int n_ports;
	struct pw_bpf_config bcfg;

	if (pw_ld.running) {
		pw_errf(err, errlen, "the eBPF loader is already running");
		return -1;
	}
	pw_maps_resolve(cfg, &pin, &hb_ms);
	if (pw_host_check_caps(err, errlen) < 0)
		return -1;
	libbpf_set_print(libbpf_print);
	if (pw_maps_build_targets(cfg, ov, pw_ld.targets, &pw_ld.n_targets, err, errlen) < 0 ||
	    pw_maps_build_ports(cfg, ports, &n_ports, err, errlen) < 0 ||
	    pw_maps_build_config(cfg, enforcer_tgid, &bcfg, err, errlen) < 0)
		return -1;
	if (strlen(pin) + 64 >= sizeof(pw_ld.pin)) {
		pw_errf(err, errlen, "pin path %s is too long", pin);
		return -1;
	}
	snprintf(pw_ld.pin, sizeof(pw_ld.pin), "%s", pin);
	if (pw_host_prepare_pin_dir(pin, err, errlen) < 0)
		return -1;
	pw_ld.ncpu = libbpf_num_possible_cpus();
	if (pw_ld.ncpu <= 0) {
		pw_errf(err, errlen, "cannot count the possible CPUs");
		return -1;
	}

	bool adopt;
	if (open_and_load(pin, enforcer_tgid, &adopt, err, errlen) < 0)
		return -1;

	/* the config (with a fresh heartbeat) goes in before any program is attached */
	pthread_mutex_lock(&pw_ld.lock);
	pw_ld.bcfg = bcfg;
	pw_ld.period_ms = period_of(&bcfg);
	pw_ld.stopping = false;
	pw_ld.hb_failed = false;
	int rc = write_config_locked();
	pthread_mutex_unlock(&pw_ld.lock);
	if (rc == 0)
		rc = pw_maps_sync_scope(bpf_map__fd(pw_ld.skel->maps.pw_scope), pw_ld.targets,
		                        pw_ld.n_targets);
	if (rc == 0)
		rc = pw_maps_sync_set(bpf_map__fd(pw_ld.skel->maps.pw_ports), ports, n_ports,
		                      sizeof(ports[0]), PW_MAX_PORTS);
	if (rc == 0)
		rc = pw_maps_sync_filters(cfg, filter_fds());
	if (rc < 0) {
		pw_errf(err, errlen, "filling the BPF maps: %s", strerror(-rc));
		teardown_skel();
		return -1;
	}
	if (!adopt && pw_pins_pin_maps(pw_ld.skel->obj, pin, err, errlen) < 0) {
		teardown_skel();
		return -1;
	}

	/* everything that can fail goes before the links are touched: whoever holds the old
	 * pins keeps them intact until then */
	pw_ld.sk_msg_attached = false;
	if (bcfg.fastpath && attach_sk_msg(err, errlen) < 0) {
		teardown_skel();
		return -1;
	}
	struct pw_old_link *old;
	int n_old;
	if (pw_pins_open_old_links(pin, &old, &n_old) < 0) {
		pw_errf(err, errlen, "reading %s/links: %s", pin, strerror(errno));
		teardown_skel();
		return -1;
	}
	if (start_threads(err, errlen) < 0) {
		pw_pins_close_old_links(old, n_old);
		teardown_skel();
		return -1;
	}
	pw_ld.n_links = 0;
	rc = apply_links(old, n_old, err, errlen);
	pw_pins_close_old_links(old, n_old);
	if (rc < 0) {
		stop_threads();
		teardown_skel();
		return -1;
	}

	atomic_store(&counters_fd, bpf_map__fd(pw_ld.skel->maps.pw_counters));
	pw_conntrack_register(bpf_map__fd(pw_ld.skel->maps.pw_conns));
	pw_ld.running = true;
	int n_scope = 0;
	for (int i = 0; i < pw_ld.n_targets; i++)
		n_scope += pw_ld.targets[i].in_scope;
	pw_info("eBPF redirect: %d cgroup(s) in scope, %d port(s), fail-%s, fastpath %s, "
	        "%d link(s) pinned at %s (%s)",
	        n_scope, n_ports, bcfg.fail_mode == PW_FAIL_OPEN ? "open" : "closed",
	        bcfg.fastpath ? "on" : "off", pw_ld.n_links, pin,
	        adopt ? "took over the pinned maps" : "fresh maps");
	return 0;
}

int pw_loader_start(const struct pw_config *cfg, uint32_t enforcer_tgid, char *err, size_t errlen)
{
	pthread_mutex_lock(&pw_ld.op);
	/* read under op: pw_loader_cgroup_add/del write it under op */
	struct pw_cg_overrides *ov = pw_maps_overrides_load(cfg);
	int rc = start_locked(cfg, enforcer_tgid, ov, err, errlen);
	if (rc == 0)
		remember(cfg);
	pthread_mutex_unlock(&pw_ld.op);
	free(ov);
	return rc;
}

/* Give every wanted (cgroup, program) pair a link: switch a matching pinned one to the new
 * program in place, else attach a new one; then detach and unpin every old link left over.
 * New links exist before any old one goes, so no connect slips through unsteered. */
static int apply_links(struct pw_old_link *old, int n_old, char *err, size_t errlen)
{
	struct {
		int target, prog, old; /* old: index into old[], or -1 */
	} want[MAX_LINKS];
	int n_want = 0;
	for (int t = 0; t < pw_ld.n_targets; t++) {
		for (int p = 0; p < N_CG_PROGS; p++) {
			if (!target_wants(&pw_ld.targets[t], p))
				continue;
			int match = -1;
			for (int o = 0; o < n_old && match < 0; o++)
				if (old[o].link && !old[o].claimed &&
				    old[o].cgid == pw_ld.targets[t].id &&
				    old[o].type == pw_cg_progs[p].type)
					match = o;
			if (match >= 0)
				old[match].claimed = true;
			want[n_want].target = t;
			want[n_want].prog = p;
			want[n_want++].old = match;
		}
	}
	/* new links first: they are the step most likely to fail, and failing here changes
	 * nothing for whoever holds the old pins */
	for (int i = 0; i < n_want; i++) {
		if (want[i].old >= 0)
			continue;
		struct cg_link *cl = &pw_ld.links[pw_ld.n_links];
		memset(cl, 0, sizeof(*cl));
		cl->link = attach_one(want[i].prog, &pw_ld.targets[want[i].target], err, errlen);
		if (!cl->link)
			goto fail;
		cl->cgid = pw_ld.targets[want[i].target].id;
		cl->prog = want[i].prog;
		pw_ld.n_links++;
		if (pin_link(cl, err, errlen) < 0)
			goto fail;
	}
	for (int i = 0; i < n_want; i++) {
		int o = want[i].old;
		if (o < 0)
			continue;
		struct cg_link *cl = &pw_ld.links[pw_ld.n_links];
		memset(cl, 0, sizeof(*cl));
		cl->cgid = pw_ld.targets[want[i].target].id;
		cl->prog = want[i].prog;
		int rc = bpf_link__update_program(old[o].link, prog_of(want[i].prog));
		if (rc == 0) {
			cl->link = old[o].link;
			snprintf(cl->pin, sizeof(cl->pin), "%s", old[o].path);
			pw_ld.n_links++;
			continue;
		}
		pw_warn("eBPF: switching %s to the new %s: %s; attaching anew", old[o].path,
		        pw_cg_progs[want[i].prog].name, strerror(-rc));
		old[o].claimed = false;
		cl->link = attach_one(want[i].prog, &pw_ld.targets[want[i].target], err, errlen);
		if (!cl->link)
			goto fail;
		pw_ld.n_links++;
		if (pin_link(cl, err, errlen) < 0)
			goto fail;
	}
	for (int o = 0; o < n_old; o++) {
		if (old[o].claimed)
			continue;
		pw_pins_drop_link(old[o].link, old[o].path);
		old[o].link = NULL;
	}
	fix_names();
	return 0;
fail:
	/* links switched in place stay switched (they run the same code); new ones go */
	for (int i = pw_ld.n_links - 1; i >= 0; i--) {
		bool adopted = false;
		for (int o = 0; o < n_old; o++)
			adopted |= old[o].claimed && old[o].link == pw_ld.links[i].link;
		if (!adopted)
			pw_pins_drop_link(pw_ld.links[i].link, pw_ld.links[i].pin);
	}
	pw_ld.n_links = 0;
	for (int o = 0; o < n_old; o++)
		old[o].claimed = false; /* the caller closes our fds; their pins stay */
	return -1;
}

/* ---- update ---- */

static int update_locked(const struct pw_config *cfg, const struct pw_cg_overrides *ov, char *err,
                         size_t errlen)
{
	if (!pw_ld.running) {
		pw_errf(err, errlen, "the eBPF loader is not running");
		return -1;
	}
	struct pw_cg_target targets[MAX_TARGETS];
	int n_targets;
	uint16_t ports[PW_MAX_REDIRECT_PORTS];
	int n_ports;
	struct pw_bpf_config bcfg;
	const char *pin;
	int hb_ms;

	/* everything that can be wrong in the new config is found before anything changes */
	pw_maps_resolve(cfg, &pin, &hb_ms);
	if (strcmp(pin, pw_ld.pin) != 0)
		pw_warn("reload: the pin path changes only on restart (keeping %s)", pw_ld.pin);
	pthread_mutex_lock(&pw_ld.lock);
	uint32_t tgid = pw_ld.bcfg.enforcer_tgid;
	pthread_mutex_unlock(&pw_ld.lock);
	if (pw_maps_build_targets(cfg, ov, targets, &n_targets, err, errlen) < 0 ||
	    pw_maps_build_ports(cfg, ports, &n_ports, err, errlen) < 0 ||
	    pw_maps_build_config(cfg, tgid, &bcfg, err, errlen) < 0)
		return -1;

	/* new cgroups get their links before they enter the scope map; dropped ones leave the
	 * scope map before their links go */
	int first_new = pw_ld.n_links;
	for (int t = 0; t < n_targets; t++) {
		for (int p = 0; p < N_CG_PROGS; p++) {
			if (!target_wants(&targets[t], p))
				continue;
			bool have = false;
			for (int i = 0; i < pw_ld.n_links && !have; i++)
				have = pw_ld.links[i].cgid == targets[t].id &&
				       pw_ld.links[i].prog == p;
			if (have)
				continue;
			struct cg_link *cl = &pw_ld.links[pw_ld.n_links];
			memset(cl, 0, sizeof(*cl));
			cl->link = attach_one(p, &targets[t], err, errlen);
			if (!cl->link) {
				destroy_links_from(first_new);
				return -1;
			}
			cl->cgid = targets[t].id;
			cl->prog = p;
			pw_ld.n_links++;
			if (pin_link(cl, err, errlen) < 0) {
				destroy_links_from(first_new);
				return -1;
			}
		}
	}
	if (bcfg.fastpath && attach_sk_msg(err, errlen) < 0) {
		destroy_links_from(first_new);
		return -1;
	}

	pthread_mutex_lock(&pw_ld.lock);
	bcfg.heartbeat_ns = pw_ld.bcfg.heartbeat_ns;
	pw_ld.bcfg = bcfg;
	pw_ld.period_ms = period_of(&bcfg);
	int rc = write_config_locked();
	pthread_cond_signal(&pw_ld.cond); /* a shorter period takes effect now */
	pthread_mutex_unlock(&pw_ld.lock);
	if (rc == 0)
		rc = pw_maps_sync_scope(bpf_map__fd(pw_ld.skel->maps.pw_scope), targets, n_targets);
	if (rc == 0)
		rc = pw_maps_sync_set(bpf_map__fd(pw_ld.skel->maps.pw_ports), ports, n_ports,
		                      sizeof(ports[0]), PW_MAX_PORTS);
	if (rc == 0)
		rc = pw_maps_sync_filters(cfg, filter_fds());
	if (rc < 0) {
		pw_errf(err, errlen, "updating the BPF maps: %s", strerror(-rc));
		return -1;
	}

	int kept = 0;
	for (int i = 0; i < pw_ld.n_links; i++) {
		bool keep = false;
		for (int t = 0; t < n_targets && !keep; t++)
			keep = targets[t].id == pw_ld.links[i].cgid &&
			       target_wants(&targets[t], pw_ld.links[i].prog);
		if (keep)
			pw_ld.links[kept++] = pw_ld.links[i];
		else
			pw_pins_drop_link(pw_ld.links[i].link, pw_ld.links[i].pin);
	}
	pw_ld.n_links = kept;
	fix_names();
	memcpy(pw_ld.targets, targets, sizeof(targets[0]) * (size_t)n_targets);
	pw_ld.n_targets = n_targets;
	int n_scope = 0;
	for (int i = 0; i < n_targets; i++)
		n_scope += targets[i].in_scope;
	pw_info("eBPF redirect updated: %d cgroup(s) in scope, %d port(s), fail-%s, fastpath %s",
	        n_scope, n_ports, bcfg.fail_mode == PW_FAIL_OPEN ? "open" : "closed",
	        bcfg.fastpath ? "on" : "off");
	return 0;
}

int pw_loader_update(const struct pw_config *cfg, char *err, size_t errlen)
{
	pthread_mutex_lock(&pw_ld.op);
	struct pw_cg_overrides *ov = pw_ld.running ? pw_maps_overrides_load(cfg) : NULL;
	int rc = update_locked(cfg, ov, err, errlen);
	if (rc == 0)
		remember(cfg);
	pthread_mutex_unlock(&pw_ld.op);
	free(ov);
	return rc;
}

/* ---- the tuple map before start ---- */

/* Kept open for the process's life: a worker may be using the number at any time. */
static int pre_conns_fd = -1;

void pw_loader_preopen(const struct pw_config *cfg)
{
	/* A pgwardd taking a pinned set over accepts steered connections before its own
	 * programs are in place; the kernel records them in the pinned tuple map, so read that. */
	char path[PATH_MAX + 32];
	const char *pin =
	    cfg->redirect.pin_path[0] ? cfg->redirect.pin_path : PW_LOADER_DEFAULT_PIN;
	snprintf(path, sizeof(path), "%s/maps/pw_conns", pin);
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	struct bpf_map_info info = {0};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0 ||
	    info.key_size != sizeof(struct pw_conn_key) ||
	    info.value_size != sizeof(struct pw_conn_info)) {
		close(fd);
		return;
	}
	pre_conns_fd = fd;
	pw_conntrack_register_first(fd);
}

const char *const pw_counter_names[PW_CNT_MAX] = {
    [PW_CNT_REDIRECTS] = "redirects",
    [PW_CNT_SKIPS] = "skips",
    [PW_CNT_REFUSALS] = "refusals",
    [PW_CNT_BYPASSES] = "bypasses",
    [PW_CNT_RB_DROPS] = "ringbuf_drops",
    [PW_CNT_TUPLE_MISS] = "tuple_misses",
    [PW_CNT_FASTPATH_REDIRECTS] = "fastpath_redirects",
    [PW_CNT_FASTPATH_FALLBACKS] = "fastpath_fallbacks",
    [PW_CNT_DENIED] = "denied",
    [PW_CNT_BINDS] = "binds",
    [PW_CNT_UNIX] = "unix",
};

void pw_loader_counters(uint64_t out[PW_CNT_MAX])
{
	memset(out, 0, sizeof(uint64_t) * PW_CNT_MAX);
	int fd = atomic_load(&counters_fd);
	if (fd < 0 || pw_ld.ncpu <= 0)
		return;
	uint64_t *v = calloc((size_t)pw_ld.ncpu, sizeof(*v));
	if (!v)
		return;
	for (uint32_t i = 0; i < PW_CNT_MAX; i++) {
		if (bpf_map_lookup_elem(fd, &i, v) < 0)
			continue;
		for (int c = 0; c < pw_ld.ncpu; c++)
			out[i] += v[c];
	}
	free(v);
}

bool pw_loader_running(void)
{
	return pw_ld.running;
}

/* ---- stop (uninstall: loader_pins.c) ---- */

static void stop_locked(void)
{
	pw_conntrack_register(-1);
	atomic_store(&counters_fd, -1);
	stop_threads();

	/* stale at once rather than after the timeout: this pgwardd accepts no more, and the
	 * next one can tell that nobody owns the pins */
	pthread_mutex_lock(&pw_ld.lock);
	pw_ld.bcfg.heartbeat_ns = 0;
	uint32_t zero = 0;
	if (bpf_map_update_elem(pw_ld.config_fd, &zero, &pw_ld.bcfg, BPF_ANY) < 0)
		pw_warn("eBPF: marking the heartbeat stale: %s", strerror(errno));
	pthread_mutex_unlock(&pw_ld.lock);
	for (int i = 0; i < pw_ld.n_links; i++)
		bpf_link__destroy(pw_ld.links[i].link); /* our fd only: the pin stays */
	pw_info("eBPF redirect: left pinned at %s, %s until the next pgwardd takes it over "
	        "(pgwardd --uninstall removes it)",
	        pw_ld.pin,
	        pw_ld.bcfg.fail_mode == PW_FAIL_OPEN ? "fail-open: agents' connects go direct"
	                                             : "fail-closed: agents' connects are refused");
	pw_ld.n_links = 0;
	pw_ld.sk_msg_attached = false;
	teardown_skel();
	pw_ld.running = false;
}

void pw_loader_stop(void)
{
	pthread_mutex_lock(&pw_ld.op);
	if (pw_ld.running)
		stop_locked();
	pthread_mutex_unlock(&pw_ld.op);
}

int pw_loader_uninstall(const char *pin_path, char *err, size_t errlen)
{
	return pw_pins_uninstall(pin_path, err, errlen); /* the pin set's own business */
}
