/* Root-only test of user/loader.c against the running kernel: a throwaway cgroup v2 directory
 * is put in scope, children that move into it connect() to 127.0.0.2:54329 (nothing listens
 * there) and land on this test's own listener on 127.0.0.1, with their identity in the tuple
 * map. Also: no steering outside the scope, reload (ports, fast path, a missing cgroup), a
 * pin set left by a stop refusing once its heartbeat is stale and then taken over by a new
 * start without detaching, an incompatible pin set replaced, uninstall, and a clean stop.
 * Network: loopback (127.0.0.0/8) only. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <mntent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <jansson.h>

#include "pgward/config.h"
#include "pgward/conntrack.h"
#include "pgward/loader.h"
#include "pgward/loader_show.h"
#include "check.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define ORIG_ADDR    "127.0.0.2"
#define ORIG_PORT    54329
#define OTHER_PORT   54330
#define AGENT_UID    65534
#define AGENT_COMM   "pw-agent"
#define HEARTBEAT_MS 200

static char cg_mount[256];      /* the cgroup2 mount */
static char cg_scope[PATH_MAX]; /* <mount>/pgward-test-<pid>: agents go here */
static char cg_self[PATH_MAX];  /* <mount>/pgward-test-<pid>-self: this test runs here */
static char cg_orig[PATH_MAX];  /* where this test ran before */
static char pin[PATH_MAX];
static int lfd = -1; /* the "pgwardd" listener on 127.0.0.1 */
static int lport;

/* written by the loader's event thread, read here: atomics */
static atomic_int ev_redirects, ev_refused;
static atomic_int ev_last_tgid;

static void on_ev(const struct pw_event *ev)
{
	if (ev->type == PW_EV_REDIRECT) {
		atomic_store(&ev_last_tgid, (int)ev->info.tgid);
		atomic_fetch_add(&ev_redirects, 1);
	} else if (ev->type == PW_EV_REFUSED) {
		atomic_fetch_add(&ev_refused, 1);
	}
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static int move_to(const char *cg)
{
	char path[PATH_MAX + 16], pid[32];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return write_str(path, pid);
}

static int find_cgroups(void)
{
	FILE *m = setmntent("/proc/self/mounts", "re");
	if (!m)
		return -1;
	struct mntent *e;
	while ((e = getmntent(m)))
		if (strcmp(e->mnt_type, "cgroup2") == 0 && !cg_mount[0])
			snprintf(cg_mount, sizeof(cg_mount), "%s", e->mnt_dir);
	endmntent(m);
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char line[2048];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(cg_orig, sizeof(cg_orig), "%s%s", cg_mount,
			         strcmp(line + 3, "/") ? line + 3 : "");
		}
	}
	fclose(f);
	return cg_mount[0] && cg_orig[0] ? 0 : -1;
}

static uint64_t ino_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* pgward's programs (named pw_*) attached directly to a cgroup for one attach type */
static int attached(const char *cg, enum bpf_attach_type type)
{
	int fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	uint32_t ids[64], cnt = 64, flags = 0;
	int rc = bpf_prog_query(fd, type, 0, &flags, ids, &cnt);
	close(fd);
	if (rc < 0)
		return -1;
	int n = 0;
	for (uint32_t i = 0; i < cnt; i++) {
		int pfd = bpf_prog_get_fd_by_id(ids[i]);
		struct bpf_prog_info pi;
		uint32_t pl = sizeof(pi);
		memset(&pi, 0, sizeof(pi));
		if (pfd >= 0 && bpf_obj_get_info_by_fd(pfd, &pi, &pl) == 0 &&
		    strncmp(pi.name, "pw_", 3) == 0)
			n++;
		if (pfd >= 0)
			close(pfd);
	}
	return n;
}

static const enum bpf_attach_type all_types[] = {
    BPF_CGROUP_INET4_CONNECT,     BPF_CGROUP_INET6_CONNECT, BPF_CGROUP_INET4_GETPEERNAME,
    BPF_CGROUP_INET6_GETPEERNAME, BPF_CGROUP_SOCK_OPS,      BPF_CGROUP_INET4_BIND,
    BPF_CGROUP_INET6_BIND,        (enum bpf_attach_type)49, /* BPF_CGROUP_UNIX_CONNECT, last: only
                                                               on kernels with the hook */
};
#define N_PROGS ((int)(sizeof(all_types) / sizeof(all_types[0])) - !pw_loader_unix_hook())

/* every program type attached exactly `want` times on the cgroup root (where the programs go:
 * they judge the connecting task, whatever cgroup its socket was made in), none on the scope
 * cgroup itself */
static bool root_attached(int want)
{
	for (int i = 0; i < N_PROGS; i++)
		if (attached(cg_mount, all_types[i]) != want ||
		    attached(cg_scope, all_types[i]) != 0)
			return false;
	return true;
}

#define N_MAPS 12 /* the maps of bpf/pgward.bpf.c */

static int count_entries(const char *dir)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "ls -A '%s' 2>/dev/null | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

static uint32_t pinned_map_id(const char *name)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/maps/%s", pin, name);
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	memset(&info, 0, sizeof(info));
	uint32_t id = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
	close(fd);
	return id;
}

/* ids of the links pinned under <pin>/links (and of their programs), sorted by link id */
static int pinned_links(uint32_t *ids, uint32_t *progs, int max)
{
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s/links", pin);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max) {
		if (de->d_name[0] == '.')
			continue;
		char path[PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		int fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		struct bpf_link_info li;
		uint32_t len = sizeof(li);
		memset(&li, 0, sizeof(li));
		if (bpf_obj_get_info_by_fd(fd, &li, &len) == 0) {
			int i = n++;
			while (i > 0 && ids[i - 1] > li.id) {
				ids[i] = ids[i - 1];
				progs[i] = progs[i - 1];
				i--;
			}
			ids[i] = li.id;
			progs[i] = li.prog_id;
		}
		close(fd);
	}
	closedir(d);
	return n;
}

/* ids of every pinned map */
static int pinned_map_ids(uint32_t *ids, int max)
{
	static const char *const names[] = {
	    "pw_sk_info", "pw_conns",    "pw_sockhash", "pw_config",    "pw_scope", "pw_ports",
	    "pw_events",  "pw_counters", "pw_dsts",     "pw_scope_uid", "pw_deny",  "pw_unix_own"};
	int n = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && n < max; i++)
		if ((ids[n] = pinned_map_id(names[i])))
			n++;
	return n;
}

/* have all these maps been freed by the kernel (no fd, pin or program holds them)? */
static bool maps_gone(const uint32_t *ids, int n)
{
	for (int tries = 0; tries < 200; tries++) {
		int alive = 0;
		for (int i = 0; i < n; i++) {
			int fd = bpf_map_get_fd_by_id(ids[i]);
			if (fd >= 0) {
				alive++;
				close(fd);
			}
		}
		if (!alive)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* ---- the agent: a child that connects from inside (or outside) the scope ---- */

struct agent_res {
	int connect_errno;       /* 0: connected */
	uint64_t connect_ns;     /* how long connect() took */
	struct sockaddr_in peer; /* getpeername after connect */
	int exchange_ok;         /* ping/pong went through */
};

struct agent {
	pid_t pid;
	int res_fd;
	struct agent_res res;
};

static void agent_main(int wfd, bool in_scope, int port)
{
	struct agent_res r;
	memset(&r, 0, sizeof(r));
	prctl(PR_SET_NAME, AGENT_COMM);
	if (in_scope && move_to(cg_scope) < 0)
		_exit(10);
	/* a distinct uid and gid, so the record is seen to be the caller's */
	if (setgroups(0, NULL) < 0 || setresgid(AGENT_UID, AGENT_UID, AGENT_UID) < 0 ||
	    setresuid(AGENT_UID, AGENT_UID, AGENT_UID) < 0)
		_exit(11);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		_exit(12);
	struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, ORIG_ADDR, &dst.sin_addr);
	uint64_t t0 = mono_ns();
	int rc = connect(s, (struct sockaddr *)&dst, sizeof(dst));
	r.connect_errno = rc < 0 ? errno : 0;
	r.connect_ns = mono_ns() - t0;
	if (rc == 0) {
		socklen_t pl = sizeof(r.peer);
		getpeername(s, (struct sockaddr *)&r.peer, &pl);
	}
	if (write(wfd, &r, sizeof(r)) != sizeof(r))
		_exit(13);
	if (rc < 0)
		_exit(0);
	/* a little traffic both ways, then wait for the other side to close */
	char buf[8];
	int ok = write(s, "ping", 4) == 4 && recv(s, buf, 4, MSG_WAITALL) == 4 &&
	         memcmp(buf, "pong", 4) == 0;
	while (read(s, buf, sizeof(buf)) > 0)
		;
	_exit(ok ? 0 : 14);
}

static int agent_start(struct agent *a, bool in_scope, int port)
{
	int p[2];
	memset(a, 0, sizeof(*a));
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fflush(stdout);
	a->pid = fork();
	if (a->pid < 0)
		return -1;
	if (a->pid == 0) {
		close(p[0]);
		agent_main(p[1], in_scope, port);
	}
	close(p[1]);
	a->res_fd = p[0];
	struct pollfd pf = {.fd = p[0], .events = POLLIN};
	if (poll(&pf, 1, 5000) != 1 || read(p[0], &a->res, sizeof(a->res)) != sizeof(a->res)) {
		close(p[0]);
		return -1;
	}
	close(p[0]);
	return 0;
}

/* exit status of the agent: 0 = fine */
static int agent_wait(struct agent *a)
{
	int st;
	if (a->pid <= 0)
		return -1;
	uint64_t end = mono_ns() + 5000000000ull;
	for (;;) {
		pid_t r = waitpid(a->pid, &st, WNOHANG);
		if (r == a->pid)
			break;
		if (r < 0 || mono_ns() > end) {
			kill(a->pid, SIGKILL);
			waitpid(a->pid, &st, 0);
			a->pid = 0;
			return -1;
		}
		sleep_ms(5);
	}
	a->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int accept_one(void)
{
	struct pollfd pf = {.fd = lfd, .events = POLLIN};
	if (poll(&pf, 1, 3000) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static int key_of(int fd, struct pw_conn_key *k)
{
	struct sockaddr_in peer, local;
	socklen_t pl = sizeof(peer), ll = sizeof(local), cl = sizeof(k->netns_cookie);
	memset(k, 0, sizeof(*k));
	if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
	    getsockname(fd, (struct sockaddr *)&local, &ll) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &k->netns_cookie, &cl) < 0)
		return -1;
	k->family = AF_INET;
	k->agent_addr[0] = peer.sin_addr.s_addr;
	k->agent_port = ntohs(peer.sin_port);
	k->enforcer_addr[0] = local.sin_addr.s_addr;
	k->enforcer_port = ntohs(local.sin_port);
	return 0;
}

/* One steered connection, checked end to end. */
static void check_redirect(const char *what, int port)
{
	struct agent a;
	if (agent_start(&a, true, port) < 0) {
		CHECK(0, "%s: agent started and reported", what);
		agent_wait(&a);
		return;
	}
	CHECK(a.res.connect_errno == 0, "%s: connect to %s:%d succeeds (errno %d)", what, ORIG_ADDR,
	      port, a.res.connect_errno);
	if (a.res.connect_errno) {
		agent_wait(&a);
		return;
	}
	char peer[INET_ADDRSTRLEN] = "?";
	inet_ntop(AF_INET, &a.res.peer.sin_addr, peer, sizeof(peer));
	CHECK(strcmp(peer, ORIG_ADDR) == 0 && ntohs(a.res.peer.sin_port) == port,
	      "%s: the agent's getpeername says %s:%d (got %s:%d)", what, ORIG_ADDR, port, peer,
	      ntohs(a.res.peer.sin_port));

	int fd = accept_one();
	CHECK(fd >= 0, "%s: the listener on 127.0.0.1:%d got the connection", what, lport);
	if (fd < 0) {
		agent_wait(&a);
		return;
	}
	struct pw_conn_key k;
	struct pw_conn_info info;
	memset(&info, 0, sizeof(info));
	CHECK(key_of(fd, &k) == 0, "%s: tuple key from the accepted socket", what);
	int found = pw_conntrack_lookup(&k, &info);
	CHECK(found == 0, "%s: pw_conntrack_lookup finds the connection", what);
	if (found == 0) {
		char orig[INET_ADDRSTRLEN] = "?";
		inet_ntop(AF_INET, info.orig_addr, orig, sizeof(orig));
		CHECK(info.tgid == (uint32_t)a.pid && info.pid == (uint32_t)a.pid,
		      "%s: pid/tgid %u/%u is the agent's %d", what, info.pid, info.tgid, a.pid);
		CHECK(info.uid == AGENT_UID && info.gid == AGENT_UID, "%s: uid/gid %u/%u", what,
		      info.uid, info.gid);
		CHECK(strncmp(info.comm, AGENT_COMM, PW_COMM_LEN) == 0, "%s: comm %.16s", what,
		      info.comm);
		CHECK(info.family == AF_INET && strcmp(orig, ORIG_ADDR) == 0 &&
		          ntohs(info.orig_port) == port,
		      "%s: original destination %s:%u", what, orig, ntohs(info.orig_port));
		CHECK(info.cgroup_id == ino_of(cg_scope), "%s: cgroup id %llu is the scope's", what,
		      (unsigned long long)info.cgroup_id);
		CHECK(info.netns_cookie == k.netns_cookie, "%s: netns cookie matches", what);
		bool me = false;
		for (int i = 0; i < info.n_ancestors && i < PW_MAX_ANCESTORS; i++)
			me |= info.anc_pid[i] == (uint32_t)getpid();
		CHECK(info.n_ancestors >= 1 && info.anc_pid[0] == (uint32_t)getpid() && me,
		      "%s: ancestors (%u) start with this test's pid %d (got %u)", what,
		      info.n_ancestors, (int)getpid(), info.anc_pid[0]);
		pw_conntrack_forget(&k);
		CHECK(pw_conntrack_lookup(&k, &info) < 0, "%s: forget removes the entry", what);
	}
	char buf[4];
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	bool got = poll(&pf, 1, 3000) == 1 && recv(fd, buf, 4, MSG_WAITALL) == 4 &&
	           memcmp(buf, "ping", 4) == 0 && write(fd, "pong", 4) == 4;
	CHECK(got, "%s: data flows agent -> pgwardd -> agent", what);
	close(fd);
	CHECK(agent_wait(&a) == 0, "%s: the agent saw pong and a clean close", what);
}

/* A connect that must not reach the listener: refused by the kernel (nothing listens on
 * 127.0.0.2:port, or fail-closed). Returns connect's duration in ms, -1 on a wrong result. */
static int check_refused(const char *what, bool in_scope, int port)
{
	struct agent a;
	if (agent_start(&a, in_scope, port) < 0) {
		CHECK(0, "%s: agent started and reported", what);
		agent_wait(&a);
		return -1;
	}
	CHECK(a.res.connect_errno == ECONNREFUSED, "%s: connect to %s:%d is refused (errno %d)",
	      what, ORIG_ADDR, port, a.res.connect_errno);
	struct pollfd pf = {.fd = lfd, .events = POLLIN};
	bool stray = poll(&pf, 1, 50) == 1;
	if (stray)
		close(accept_one());
	CHECK(!stray, "%s: nothing arrived at the listener", what);
	agent_wait(&a);
	return a.res.connect_errno == ECONNREFUSED ? (int)(a.res.connect_ns / 1000000) : -1;
}

/* ---- capabilities: a child without CAP_BPF and CAP_PERFMON ---- */

static int caps_child(const struct pw_config *cfg)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	if (syscall(SYS_capget, &h, d) < 0)
		return 2;
	d[1].effective &= ~(1u << (39 - 32)); /* CAP_BPF */
	d[1].effective &= ~(1u << (38 - 32)); /* CAP_PERFMON */
	if (syscall(SYS_capset, &h, d) < 0)
		return 3;
	char err[512] = "";
	if (pw_loader_start(cfg, (uint32_t)getpid(), err, sizeof(err)) == 0)
		return 4;
	const char *m = strstr(err, "missing:");
	printf("# without CAP_BPF/CAP_PERFMON: %s\n", err);
	if (!m || !strstr(m, "CAP_BPF") || !strstr(m, "CAP_PERFMON") ||
	    strstr(m, "CAP_NET_ADMIN") || strstr(m, "CAP_SYS_ADMIN"))
		return 5;
	return 0;
}

static struct pw_config *make_config(void)
{
	struct pw_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		abort();
	struct pw_redirect *r = &cfg->redirect;
	r->enabled = true;
	snprintf(r->cgroups[0], sizeof(r->cgroups[0]), "%s", cg_scope);
	r->n_cgroups = 1;
	r->ports[0] = ORIG_PORT;
	r->n_ports = 1;
	r->fail_open = false;
	r->fastpath = false;
	r->heartbeat_timeout_ms = HEARTBEAT_MS;
	r->mark = 0x70677764;
	snprintf(r->pin_path, sizeof(r->pin_path), "%s", pin);
	snprintf(r->listen4, sizeof(r->listen4), "127.0.0.1");
	r->listen4_port = lport;
	r->listen6[0] = '\0';
	return cfg;
}

/* The control socket's views (loader_show.h): refused cleanly before start, writing nothing;
 * whole JSON after. And an event as the event pipe writes it (escaped, the trail's names). */
static void check_views(bool running)
{
	struct pw_jw w;
	char err[256] = "";
	pw_jw_init(&w, 0);
	pw_jw_obj(&w, NULL);
	int rc = pw_loader_show_progs(&w, err, sizeof(err));
	pw_jw_obj_end(&w);
	json_t *j = json_loads(w.p, 0, NULL), *res = json_object_get(j, "result");
	if (!running)
		CHECK(rc < 0 && strstr(err, "no eBPF programs are loaded") && !strcmp(w.p, "{}"),
		      "not running: prog show refused, nothing written (%s)", err);
	else
		CHECK(rc == 0 && json_array_size(res) >= (size_t)N_PROGS,
		      "prog show: every program (%zu)", json_array_size(res));
	json_decref(j);
	pw_jw_free(&w);
}

static void check_event_json(void)
{
	struct pw_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = PW_EV_BYPASS;
	ev.info.tgid = ev.info.pid = (uint32_t)getpid();
	ev.info.family = AF_INET;
	inet_pton(AF_INET, ORIG_ADDR, ev.info.orig_addr);
	ev.info.orig_port = htons(ORIG_PORT);
	memcpy(ev.info.comm, "a\"b\n", 5);
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_event_json(&w, &ev);
	json_t *j = json_loads(w.p, 0, NULL), *k = json_object_get(j, "kernel");
	CHECK(j && !strcmp(json_string_value(json_object_get(j, "type")), "bypass_attempt") &&
	          !strcmp(json_string_value(json_object_get(j, "reason")), "enforcer_down") &&
	          json_integer_value(json_object_get(k, "pid")) == getpid() &&
	          !strcmp(json_string_value(json_object_get(k, "comm")), "a\"b\n") &&
	          !strcmp(json_string_value(json_object_get(k, "dst")), ORIG_ADDR ":54329"),
	      "pw_event_json: bypass_attempt, enforcer_down, the comm escaped (%s)", w.p);
	json_decref(j);
	pw_jw_free(&w);
}

static void cleanup(void)
{
	if (pw_loader_running())
		pw_loader_stop();
	char err[256];
	pw_loader_uninstall(pin, err, sizeof(err));
	if (lfd >= 0)
		close(lfd);
	if (cg_orig[0])
		move_to(cg_orig);
	/* agents have been reaped; a cgroup with no live task can go */
	for (int i = 0; i < 50; i++) {
		bool a = rmdir(cg_scope) == 0 || errno == ENOENT;
		bool b = rmdir(cg_self) == 0 || errno == ENOENT;
		if (a && b)
			break;
		sleep_ms(20);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("# SKIP: needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN)\n");
		fprintf(stderr, "\n*** test_loader SKIPPED: not root, the eBPF loader was NOT "
		                "tested ***\n\n");
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	alarm(120); /* a hang is a failure, not a stuck CI */
	if (find_cgroups() < 0) {
		CHECK(0, "a cgroup2 mount and this process's cgroup v2 path");
		return check_done();
	}
	snprintf(cg_scope, sizeof(cg_scope), "%s/pgward-test-%d", cg_mount, (int)getpid());
	snprintf(cg_self, sizeof(cg_self), "%s/pgward-test-%d-self", cg_mount, (int)getpid());
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/pgward-test-%d", (int)getpid());
	CHECK(mkdir(cg_scope, 0755) == 0 && mkdir(cg_self, 0755) == 0,
	      "throwaway cgroups %s and %s", cg_scope, cg_self);
	/* this test plays pgwardd: in its own cgroup, so the fast path's sockops go there and not
	 * on whatever cgroup it was started in */
	CHECK(move_to(cg_self) == 0, "moved into %s", cg_self);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t ll = sizeof(la);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&la, sizeof(la)) == 0 &&
	          listen(lfd, 64) == 0 && getsockname(lfd, (struct sockaddr *)&la, &ll) == 0,
	      "listener on 127.0.0.1");
	lport = ntohs(la.sin_port);
	pw_loader_on_event = on_ev;
	struct pw_config *cfg = make_config();
	char err[1024];

	/* capabilities are checked first, and each missing one is named */
	fflush(stdout);
	pid_t cp = fork();
	if (cp == 0)
		_exit(caps_child(cfg));
	int st = -1;
	waitpid(cp, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "without CAP_BPF and CAP_PERFMON start fails naming exactly those (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);

	check_views(false);
	check_event_json();

	/* a cgroup that does not exist: the error names it */
	struct pw_config *bad = make_config();
	char nope[PATH_MAX];
	snprintf(nope, sizeof(nope), "%s/pgward-nope-%d", cg_mount, (int)getpid());
	snprintf(bad->redirect.cgroups[1], sizeof(bad->redirect.cgroups[1]), "%s", nope);
	bad->redirect.n_cgroups = 2;
	err[0] = '\0';
	CHECK(pw_loader_start(bad, (uint32_t)getpid(), err, sizeof(err)) < 0 && strstr(err, nope),
	      "missing cgroup: start fails naming it (%s)", err);
	CHECK(!pw_loader_running() && attached(cg_scope, BPF_CGROUP_INET4_CONNECT) == 0,
	      "missing cgroup: nothing attached");

	/* an incompatible pin set is in the way: a config map of the wrong size */
	char maps[PATH_MAX + 8], path[PATH_MAX + 64];
	snprintf(maps, sizeof(maps), "%s/maps", pin);
	mkdir(pin, 0700);
	mkdir(maps, 0700);
	snprintf(path, sizeof(path), "%s/pw_config", maps);
	int junk = bpf_map_create(BPF_MAP_TYPE_ARRAY, "pw_config", 4, 8, 1, NULL);
	CHECK(junk >= 0 && bpf_obj_pin(junk, path) == 0, "an incompatible pw_config pinned");
	if (junk >= 0)
		close(junk);

	/* start */
	err[0] = '\0';
	int rc = pw_loader_start(cfg, (uint32_t)getpid(), err, sizeof(err));
	CHECK(rc == 0, "pw_loader_start (%s)", err);
	check_views(rc == 0);
	if (rc < 0) {
		cleanup();
		return check_done();
	}
	int cfd = bpf_obj_get(path);
	struct bpf_map_info mi;
	uint32_t mil = sizeof(mi);
	memset(&mi, 0, sizeof(mi));
	CHECK(cfd >= 0 && bpf_obj_get_info_by_fd(cfd, &mi, &mil) == 0 &&
	          mi.value_size == sizeof(struct pw_bpf_config),
	      "the incompatible pin set was replaced (pw_config value size %u)", mi.value_size);
	if (cfd >= 0)
		close(cfd);
	CHECK(root_attached(1), "each program attached once to the cgroup root");
	char links[PATH_MAX + 8];
	snprintf(links, sizeof(links), "%s/links", pin);
	CHECK(count_entries(links) == N_PROGS, "%d links pinned (%d)", N_PROGS,
	      count_entries(links));
	CHECK(count_entries(maps) == N_MAPS, "%d maps pinned (%d)", N_MAPS, count_entries(maps));

	check_redirect("steered", ORIG_PORT);
	for (int i = 0; i < 100 && atomic_load(&ev_redirects) == 0; i++)
		sleep_ms(10);
	CHECK(atomic_load(&ev_redirects) >= 1 && atomic_load(&ev_last_tgid) > 0,
	      "a redirect event reached pw_loader_on_event (tgid %d)", atomic_load(&ev_last_tgid));
	uint64_t cnt[PW_CNT_MAX];
	pw_loader_counters(cnt);
	CHECK(cnt[PW_CNT_REDIRECTS] >= 1, "redirect counter %llu",
	      (unsigned long long)cnt[PW_CNT_REDIRECTS]);

	check_refused("outside the scope", false, ORIG_PORT);
	check_refused("in scope, another port", true, OTHER_PORT);

	/* reload: a missing cgroup is an error that changes nothing; then another port */
	err[0] = '\0';
	CHECK(pw_loader_update(bad, err, sizeof(err)) < 0 && strstr(err, nope),
	      "update with a missing cgroup fails naming it (%s)", err);
	cfg->redirect.ports[0] = OTHER_PORT;
	CHECK(pw_loader_update(cfg, err, sizeof(err)) == 0, "update: port %d", OTHER_PORT);
	check_refused("after update, the old port", true, ORIG_PORT);
	check_redirect("after update, the new port", OTHER_PORT);
	cfg->redirect.ports[0] = ORIG_PORT;

	/* fast path: sockops on this test's own cgroup, sk_msg on the sockhash */
	cfg->redirect.fastpath = true;
	err[0] = '\0';
	CHECK(pw_loader_update(cfg, err, sizeof(err)) == 0, "update: fastpath on (%s)", err);
	CHECK(root_attached(1), "fastpath: the same links (sockops on the root sees both ends)");
	pw_loader_counters(cnt);
	uint64_t fp0 = cnt[PW_CNT_FASTPATH_REDIRECTS];
	check_redirect("fastpath", ORIG_PORT);
	pw_loader_counters(cnt);
	CHECK(cnt[PW_CNT_FASTPATH_REDIRECTS] > fp0, "fastpath: %llu sk_msg redirects",
	      (unsigned long long)(cnt[PW_CNT_FASTPATH_REDIRECTS] - fp0));
	cfg->redirect.fastpath = false;
	CHECK(pw_loader_update(cfg, err, sizeof(err)) == 0, "update: fastpath off");
	CHECK(root_attached(1), "still each program once on the root");

	/* stop: everything stays; the heartbeat goes stale; fail-closed refuses */
	uint32_t conns_id = pinned_map_id("pw_conns");
	uint32_t link_ids[16], prog_ids[16], link_ids2[16], prog_ids2[16];
	int n_links = pinned_links(link_ids, prog_ids, 16);
	pw_loader_stop();
	CHECK(!pw_loader_running(), "stopped, pins kept");
	CHECK(root_attached(1) && count_entries(links) == N_PROGS && count_entries(maps) == N_MAPS,
	      "stop leaves the links attached and everything pinned");
	sleep_ms(HEARTBEAT_MS + 100);
	int ms = check_refused("stale heartbeat (fail-closed)", true, ORIG_PORT);
	CHECK(ms >= 0 && ms < 100, "stale heartbeat: refused at once (%d ms)", ms);

	/* a pin set whose owner is alive and heartbeating is not taken over */
	snprintf(path, sizeof(path), "%s/pw_config", maps);
	cfd = bpf_obj_get(path);
	struct pw_bpf_config pc;
	uint32_t zero = 0;
	bool wrote = cfd >= 0 && bpf_map_lookup_elem(cfd, &zero, &pc) == 0 && pc.heartbeat_ns == 0;
	fflush(stdout);
	pid_t owner = fork();
	if (owner == 0) {
		/* a live owner keeps its heartbeat fresh (start() waits a while for a stale one) */
		pc.enforcer_tgid = (uint32_t)getpid();
		for (;;) {
			pc.heartbeat_ns = mono_ns();
			bpf_map_update_elem(cfd, &zero, &pc, BPF_ANY);
			usleep(20 * 1000);
		}
	}
	sleep_ms(50);
	wrote = wrote && bpf_map_lookup_elem(cfd, &zero, &pc) == 0 &&
	        pc.enforcer_tgid == (uint32_t)owner;
	CHECK(wrote, "stop marked the heartbeat stale; faked a live owner (pid %d)", owner);
	err[0] = '\0';
	rc = pw_loader_start(cfg, (uint32_t)getpid(), err, sizeof(err));
	CHECK(rc < 0 && strstr(err, "running pgwardd"), "a live owner's pins are left alone (%s)",
	      err);
	if (rc == 0)
		pw_loader_stop();
	kill(owner, SIGKILL);
	waitpid(owner, NULL, 0);
	if (cfd >= 0)
		close(cfd);

	/* a new start takes the pins over (with the fast path on this time: its sk_msg program
	 * replaces the one the first start left on the pinned sockhash) */
	cfg->redirect.fastpath = true;
	err[0] = '\0';
	rc = pw_loader_start(cfg, (uint32_t)getpid(), err, sizeof(err));
	CHECK(rc == 0, "start again (%s)", err);
	if (rc < 0) {
		cleanup();
		return check_done();
	}
	CHECK(conns_id && pinned_map_id("pw_conns") == conns_id, "the pinned maps were reused");
	pw_loader_counters(cnt);
	CHECK(cnt[PW_CNT_REFUSALS] >= 1 && cnt[PW_CNT_REDIRECTS] >= 3,
	      "counters carried over (refusals %llu, redirects %llu)",
	      (unsigned long long)cnt[PW_CNT_REFUSALS], (unsigned long long)cnt[PW_CNT_REDIRECTS]);
	CHECK(root_attached(1) && count_entries(links) == N_PROGS,
	      "takeover: exactly one set of links");
	int n_links2 = pinned_links(link_ids2, prog_ids2, 16);
	bool same = n_links == N_PROGS && n_links2 == N_PROGS;
	for (int i = 0, j = 0; same && i < n_links; i++, j++) {
		while (j < n_links2 && link_ids2[j] != link_ids[i])
			j++;
		same = j < n_links2 && prog_ids2[j] != prog_ids[i];
	}
	CHECK(same, "takeover: the pinned links were kept and switched to the new programs");
	pw_loader_counters(cnt);
	fp0 = cnt[PW_CNT_FASTPATH_REDIRECTS];
	check_redirect("after takeover", ORIG_PORT);
	pw_loader_counters(cnt);
	CHECK(cnt[PW_CNT_FASTPATH_REDIRECTS] > fp0, "after takeover: fastpath redirects %llu",
	      (unsigned long long)(cnt[PW_CNT_FASTPATH_REDIRECTS] - fp0));

	/* uninstall a kept pin set: links detached, nothing left */
	uint32_t map_ids[16];
	int n_maps = pinned_map_ids(map_ids, 16);
	pw_loader_stop();
	err[0] = '\0';
	CHECK(pw_loader_uninstall(pin, err, sizeof(err)) == 0, "uninstall a kept pin set (%s)",
	      err);
	CHECK(n_maps == N_MAPS && maps_gone(map_ids, n_maps),
	      "uninstall: the kernel freed every map");
	CHECK(root_attached(0) && access(pin, F_OK) < 0, "uninstall: nothing attached or pinned");

	/* a fresh start (fast path on: sk_msg attached), a stop and an uninstall */
	rc = pw_loader_start(cfg, (uint32_t)getpid(), err, sizeof(err));
	CHECK(rc == 0, "fresh start (%s)", err);
	if (rc == 0)
		check_redirect("fresh", ORIG_PORT);
	n_maps = pinned_map_ids(map_ids, 16);
	CHECK(n_maps == N_MAPS, "fresh start: %d maps pinned", N_MAPS);
	pw_loader_stop();
	CHECK(root_attached(1) && access(pin, F_OK) == 0, "a stop never opens the gate");
	CHECK(pw_loader_uninstall(pin, err, sizeof(err)) == 0, "uninstall (%s)", err);
	CHECK(maps_gone(map_ids, n_maps), "uninstall: the kernel freed every map (no leak)");
	CHECK(access(pin, F_OK) < 0 && errno == ENOENT, "uninstall leaves nothing at %s", pin);
	CHECK(root_attached(0) && attached(cg_mount, BPF_CGROUP_INET4_CONNECT) == 0,
	      "bpf_prog_query: zero pgward programs on the root");
	check_refused("after uninstall", true, ORIG_PORT);

	CHECK(pw_loader_uninstall(pin, err, sizeof(err)) == 0, "uninstall: a missing pin path");
	mkdir(pin, 0700);
	CHECK(pw_loader_uninstall(pin, err, sizeof(err)) == 0 && access(pin, F_OK) < 0,
	      "uninstall: an empty pin path");
	CHECK(pw_loader_uninstall("/tmp", err, sizeof(err)) < 0,
	      "uninstall refuses a path not on bpffs (%s)", err);

	cleanup();
	CHECK(access(cg_scope, F_OK) < 0 && access(cg_self, F_OK) < 0, "throwaway cgroups removed");
	free(bad);
	free(cfg);
	return check_done();
}
