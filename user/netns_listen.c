/* Steered listeners in the scope's network namespaces. See include/pgward/netns_listen.h. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pgward/loader_show.h"
#include "pgward/log.h"
#include "pgward/loop.h"
#include "pgward/netns_listen.h"

#ifndef PIDFD_GET_NET_NAMESPACE
#define PIDFD_GET_NET_NAMESPACE _IO(0xFF, 4) /* linux/pidfd.h, 6.11 */
#endif

#define MAX_NS        1024  /* namespaces with listeners; more are warned about */
#define MAX_DEPTH     32    /* cgroup levels walked below a cgroup in scope */
#define SCAN_MS       1000  /* a rescan at least this often */
#define RETRY_MS      10000 /* a namespace whose listeners could not be opened: tried again */
#define FULL_WARN_MS  60000 /* the bound's warning, at most this often */
#define MAX_SCOPE_CGS (PW_MAX_REDIRECT_CGROUPS + 1)

/* A network namespace with listeners (or that failed to get them). */
struct ns_ent {
	uint64_t dev, ino;
	struct pw_loop_shared *sh[2]; /* NULL: none */
	int pid;                      /* a process of the scope in it, when it was opened */
	bool failed;                  /* no listeners: refused; tried again at retry_ms */
	bool warned;                  /* its failure was logged */
	uint64_t retry_ms;
	bool seen; /* in this scan */
};

/* A namespace found by a scan. */
struct ns_hit {
	uint64_t dev, ino;
	int pid;
};

/* The module's state. The thread alone touches ents; mu guards the flags the other threads
 * set (stop, kick, enabled) and n_open. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	pthread_t thr;
	bool running, stop, kick, enabled;
	int n_open;
	int self_fd; /* pgwardd's own network namespace */
	uint64_t self_dev, self_ino;
	char listen4[64], listen6[64];
	int port4, port6;
	struct ns_ent ents[MAX_NS];
	int n_ents;
	struct ns_hit *hits; /* the scan's, MAX_NS + 1 of them */
	int n_hits;
	bool overflow; /* this scan found more than MAX_NS */
	uint64_t full_warn_ms;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .self_fd = -1};

/* ---- the scope's cgroups, as the loader has them ---- */

/* ---- the scan: which namespaces the scope's processes are in ---- */

static void note_pid(int pid)
{
	char p[64];
	struct stat st;
	snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
	if (stat(p, &st) < 0) /* gone, or a kernel thread */
		return;
	if ((uint64_t)st.st_dev == S.self_dev && (uint64_t)st.st_ino == S.self_ino)
		return;
	for (int i = S.n_hits - 1; i >= 0; i--)
		if (S.hits[i].ino == (uint64_t)st.st_ino && S.hits[i].dev == (uint64_t)st.st_dev)
			return;
	if (S.n_hits >= MAX_NS) {
		S.overflow = true;
		return;
	}
	S.hits[S.n_hits++] = (struct ns_hit){(uint64_t)st.st_dev, (uint64_t)st.st_ino, pid};
}

/* The processes of the cgroup dfd (closed here) and of every cgroup below it. */
static void walk(int dfd, int depth)
{
	int pfd = openat(dfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	FILE *f = pfd >= 0 ? fdopen(pfd, "r") : NULL;
	if (!f && pfd >= 0)
		close(pfd);
	int pid;
	while (f && fscanf(f, "%d", &pid) == 1)
		if (pid > 0)
			note_pid(pid);
	if (f)
		fclose(f);
	DIR *d = depth < MAX_DEPTH ? fdopendir(dfd) : NULL;
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sub >= 0)
			walk(sub, depth + 1);
	}
	closedir(d);
}

/* Every namespace of the scope's processes into S.hits: 0, or -1 (no scope known now). */
static int scan(void)
{
	static char dirs[MAX_SCOPE_CGS][PATH_MAX]; /* the thread's */
	char err[256];
	int n = pw_loader_scope_dirs(dirs, MAX_SCOPE_CGS, err, sizeof(err));
	if (n < 0)
		return -1;
	S.n_hits = 0;
	S.overflow = false;
	for (int i = 0; i < n; i++) {
		int dfd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			walk(dfd, 0);
	}
	return 0;
}

/* ---- opening listeners inside a namespace ---- */

/* The namespace of pid, opened through a pidfd so that a pid reused meanwhile is not taken
 * for the one scanned, and checked to be the namespace (dev, ino) the scan saw. -1: gone. */
static int open_netns(int pid, uint64_t dev, uint64_t ino)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return -1;
	struct stat st;
	int nfd = ioctl(pfd, PIDFD_GET_NET_NAMESPACE, 0);
	if (nfd >= 0 &&
	    (fstat(nfd, &st) < 0 || (uint64_t)st.st_ino != ino || (uint64_t)st.st_dev != dev)) {
		close(nfd);
		nfd = -1;
	}
	if (nfd < 0) { /* before 6.11: by /proc, then the pidfd says the pid was not reused */
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
		nfd = open(p, O_RDONLY | O_CLOEXEC);
		if (nfd >= 0 && syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) < 0) {
			close(nfd);
			nfd = -1;
		}
		if (nfd >= 0 && (fstat(nfd, &st) < 0 || (uint64_t)st.st_ino != ino ||
		                 (uint64_t)st.st_dev != dev)) {
			close(nfd);
			nfd = -1;
		}
	}
	close(pfd);
	if (nfd >= 0)
		fcntl(nfd, F_SETFD, FD_CLOEXEC);
	return nfd;
}

/* A listening socket on addr:port of the calling thread's namespace, or -1 with err set. As
 * loop.c's steered listeners, but without SO_REUSEPORT: one socket per namespace, and nothing
 * else in it may share the port. */
static int listen_one(const char *addr, int port, char *err, size_t errlen)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	bool v6 = strchr(addr, ':') != NULL;
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		sl = sizeof(*s6);
		if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
			return snprintf(err, errlen, "%s: not an address", addr), -1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		sl = sizeof(*s4);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			return snprintf(err, errlen, "%s: not an address", addr), -1;
	}
	int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (v6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "%s%s%s:%d: %s", v6 ? "[" : "", addr, v6 ? "]" : "", port,
		         strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct opener {
	int nsfd;
	int fds[2]; /* -1: not opened */
	char err[2][192];
};

/* A thread of its own: setns is per thread for network namespaces. It goes back to pgwardd's
 * namespace before it ends (and ends anyway: nothing else ever runs on it). */
static void *opener_main(void *arg)
{
	struct opener *o = arg;
	if (setns(o->nsfd, CLONE_NEWNET) < 0) {
		snprintf(o->err[0], sizeof(o->err[0]), "setns: %s", strerror(errno));
		return NULL;
	}
	o->fds[0] = listen_one(S.listen4, S.port4, o->err[0], sizeof(o->err[0]));
	if (o->fds[0] >= 0 && S.listen6[0])
		o->fds[1] = listen_one(S.listen6, S.port6, o->err[1], sizeof(o->err[1]));
	if (setns(S.self_fd, CLONE_NEWNET) < 0)
		pw_warn("network namespace listener: cannot go back to pgwardd's namespace: %s",
		        strerror(errno));
	return NULL;
}

static void close_ent(struct ns_ent *e, const char *why)
{
	bool had = false;
	for (int i = 0; i < 2; i++) {
		if (e->sh[i]) {
			pw_loop_steered_del(e->sh[i]);
			e->sh[i] = NULL;
			had = true;
		}
	}
	if (had)
		pw_info("network namespace net:[%llu]: steered listeners closed (%s)",
		        (unsigned long long)e->ino, why);
}

/* Listeners in the namespace of hit h, served by the workers: 1 when it has them; 0 when they
 * could not be opened (warned once); -1 when the process or namespace is gone meanwhile. */
static int open_ent(struct ns_ent *e, const struct ns_hit *h)
{
	struct opener o = {.nsfd = open_netns(h->pid, h->dev, h->ino), .fds = {-1, -1}};
	if (o.nsfd < 0)
		return -1;
	pthread_t t;
	if (pthread_create(&t, NULL, opener_main, &o) != 0)
		snprintf(o.err[0], sizeof(o.err[0]), "cannot start a thread");
	else
		pthread_join(t, NULL);
	close(o.nsfd);
	for (int i = 0; i < 2; i++) {
		if (o.fds[i] >= 0 && !(e->sh[i] = pw_loop_steered_add(o.fds[i]))) {
			close(o.fds[i]);
			snprintf(o.err[i], sizeof(o.err[i]), "the workers cannot take it");
		}
	}
	e->pid = h->pid;
	if (!e->sh[0]) {
		close_ent(e, "its IPv4 listener failed");
		if (!e->warned)
			pw_warn("network namespace net:[%llu] (pid %d): cannot open the steered "
			        "listener: %s: connects steered there stay refused (fail-closed); "
			        "tried again every %d s",
			        (unsigned long long)h->ino, h->pid, o.err[0], RETRY_MS / 1000);
		e->warned = true;
		return 0;
	}
	char six[128] = "";
	if (e->sh[1])
		snprintf(six, sizeof(six), " and [%s]:%d", S.listen6, S.port6);
	else if (S.listen6[0])
		pw_warn("network namespace net:[%llu] (pid %d): no IPv6 steered listener: %s: "
		        "IPv6 connects steered there are refused",
		        (unsigned long long)h->ino, h->pid, o.err[1]);
	pw_info("network namespace net:[%llu] (pid %d): listening on %s:%d%s for steered "
	        "connections",
	        (unsigned long long)h->ino, h->pid, S.listen4, S.port4, six);
	return 1;
}

/* ---- the thread ---- */

static int find_ent(uint64_t dev, uint64_t ino)
{
	for (int i = 0; i < S.n_ents; i++)
		if (S.ents[i].ino == ino && S.ents[i].dev == dev)
			return i;
	return -1;
}

/* One pass: open what is new, close what is gone. enabled false: close everything. */
static void reconcile(bool enabled)
{
	uint64_t now = pw_now_ms();
	if (enabled && scan() < 0)
		return; /* no scope known now (the loader restarts): keep things as they are */
	for (int i = 0; i < S.n_ents; i++)
		S.ents[i].seen = false;
	for (int h = 0; enabled && h < S.n_hits; h++) {
		const struct ns_hit *hit = &S.hits[h];
		int i = find_ent(hit->dev, hit->ino);
		if (i < 0) {
			if (S.n_ents >= MAX_NS) {
				S.overflow = true;
				continue;
			}
			i = S.n_ents++;
			S.ents[i] = (struct ns_ent){.dev = hit->dev, .ino = hit->ino};
		} else if (!S.ents[i].failed || now < S.ents[i].retry_ms) {
			S.ents[i].seen = true;
			continue;
		}
		struct ns_ent *e = &S.ents[i];
		e->seen = true;
		int rc = open_ent(e, hit);
		e->failed = rc <= 0;
		/* gone meanwhile: another process of the scan may be in it, the next scan says */
		e->retry_ms = rc < 0 ? 0 : now + RETRY_MS;
	}
	for (int i = 0; i < S.n_ents;) {
		if (S.ents[i].seen) {
			i++;
			continue;
		}
		close_ent(&S.ents[i], enabled ? "no process in scope is in it any more"
		                              : "redirect.netns_listeners is off");
		S.ents[i] = S.ents[--S.n_ents];
	}
	if (S.overflow && now >= S.full_warn_ms) {
		pw_warn(
		    "network namespace listeners: more than %d namespaces in scope; the others' "
		    "steered connects are refused",
		    MAX_NS);
		S.full_warn_ms = now + FULL_WARN_MS;
	}
	int n = 0;
	for (int i = 0; i < S.n_ents; i++)
		n += S.ents[i].sh[0] != NULL;
	pthread_mutex_lock(&S.mu);
	S.n_open = n;
	pthread_mutex_unlock(&S.mu);
}

static void *scanner_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&S.mu);
	while (!S.stop) {
		bool enabled = S.enabled;
		S.kick = false;
		pthread_mutex_unlock(&S.mu);
		reconcile(enabled);
		pthread_mutex_lock(&S.mu);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += SCAN_MS / 1000;
		while (!S.stop && !S.kick)
			if (pthread_cond_timedwait(&S.cv, &S.mu, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&S.mu);
	reconcile(false);
	return NULL;
}

int pw_netns_listen_start(const struct pw_config *cfg)
{
	const struct pw_redirect *r = &cfg->redirect;
	if (!r->enabled || S.running)
		return 0;
	S.self_fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (S.self_fd < 0 || fstat(S.self_fd, &st) < 0) {
		pw_error("network namespace listeners: pgwardd's own namespace: %s: agents in "
		         "other network namespaces are refused",
		         strerror(errno));
		if (S.self_fd >= 0)
			close(S.self_fd);
		S.self_fd = -1;
		return -1;
	}
	S.self_dev = (uint64_t)st.st_dev;
	S.self_ino = (uint64_t)st.st_ino;
	snprintf(S.listen4, sizeof(S.listen4), "%s", r->listen4);
	snprintf(S.listen6, sizeof(S.listen6), "%s", r->listen6);
	S.port4 = r->listen4_port;
	S.port6 = r->listen6_port;
	S.enabled = r->netns_listeners;
	S.stop = S.kick = false;
	S.hits = calloc(MAX_NS + 1, sizeof(*S.hits));
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&S.cv, &ca);
	pthread_condattr_destroy(&ca);
	if (!S.hits || pthread_create(&S.thr, NULL, scanner_main, NULL) != 0) {
		pw_error("network namespace listeners: cannot start: agents in other network "
		         "namespaces are refused");
		free(S.hits);
		S.hits = NULL;
		close(S.self_fd);
		S.self_fd = -1;
		return -1;
	}
	pthread_mutex_lock(&S.mu);
	S.running = true;
	pthread_mutex_unlock(&S.mu);
	pw_info("network namespace listeners: %s", S.enabled ? "on" : "off");
	return 0;
}

void pw_netns_listen_config(const struct pw_config *cfg)
{
	pthread_mutex_lock(&S.mu);
	bool was = S.enabled;
	S.enabled = cfg->redirect.enabled && cfg->redirect.netns_listeners;
	bool now = S.enabled, running = S.running;
	S.kick = true;
	if (running)
		pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.mu);
	if (running && was != now)
		pw_info("network namespace listeners: %s", now ? "on" : "off");
}

void pw_netns_listen_kick(void)
{
	pthread_mutex_lock(&S.mu);
	S.kick = true;
	if (S.running)
		pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.mu);
}

int pw_netns_listen_count(void)
{
	pthread_mutex_lock(&S.mu);
	int n = S.n_open;
	pthread_mutex_unlock(&S.mu);
	return n;
}

void pw_netns_listen_stop(void)
{
	if (!S.running)
		return;
	pthread_mutex_lock(&S.mu);
	S.stop = true;
	pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.mu);
	pthread_join(S.thr, NULL);
	pthread_mutex_lock(&S.mu);
	S.running = false; /* the condition variable stays: a late kick may still signal it */
	pthread_mutex_unlock(&S.mu);
	free(S.hits);
	S.hits = NULL;
	close(S.self_fd);
	S.self_fd = -1;
}
