/* Worker threads and their epoll loops. See include/pgward/loop.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pgward/analysis.h"
#include "pgward/inspect.h"
#include "pgward/log.h"
#include "pgward/loop.h"
#include "pgward/proto.h"

#define MAX_EVENTS 256

/* One worker: its epoll loop, listeners and counters. Touched only by its own thread, except
 * the fields marked atomic (the main thread and the analysis threads wake it). */
struct pw_worker {
	int idx;
	int epfd;
	const struct pw_loop_hooks *h;
	struct pw_ev wake; /* eventfd: shutdown and other nudges from the main thread */
	struct pw_ev *listeners;
	int n_listeners;
	void *state;    /* the hooks' (worker_start) */
	bool more;      /* the hooks have work left over: poll without waiting */
	bool own_clock; /* driven by its caller (pw_worker_new): now_ms is the caller's */
	bool stopping;
	bool nudged; /* atomic: set by pw_loop_nudge before it writes the wake-up */
	uint64_t stop_deadline_ms;
	uint64_t now_ms; /* monotonic, refreshed once per loop iteration */
	uint64_t accepted, counters[PW_WC_N];
	/* out of file descriptors (EMFILE/ENFILE at accept): the listeners are out of this
	 * worker's epoll until accept_resume_ms, so that the loop never spins on them */
	bool accept_paused;
	uint64_t accept_resume_ms;
	uint32_t accept_backoff_ms; /* the next pause; doubles while it goes on, up to 1 s */
	uint64_t fd_refused;        /* connections refused for want of a descriptor, unlogged */
	uint64_t fd_log_ms;         /* when the next such message may be written */
	int spare_fd; /* kept open to be given up for a moment: accept, refuse, close */
	/* analysis threads push judged jobs here (a lock-free stack, atomic) and wake the loop */
	struct pw_analysis_job *analysed;
	/* messages for the worker's thread (pw_loop_post): a lock-free stack too, atomic */
	struct pw_loop_msg *posted;
	int jobs; /* handed to the analysis threads and not back yet (worker thread only) */
	/* shared steered listeners added at run time (pw_loop_steered_add), this worker's copy
	 * of the list; and those taken out of its epoll in this turn, let go after the batch */
	struct pw_loop_shared **shared;
	int n_shared, cap_shared;
	struct pw_loop_shared **dropped;
	int n_dropped, cap_dropped;
};

/* A steered listener shared by every worker (EPOLLEXCLUSIVE), added and removed at run time
 * by messages to each worker. refs: the workers that still have to let go of it (atomic);
 * the last one closes the descriptor and frees it. */
struct pw_loop_shared {
	struct pw_ev ev;
	int refs;
};

/* A message posted to a worker (pw_loop_post). */
struct pw_loop_msg {
	struct pw_loop_msg *next;
	pw_post_fn fn;
	void *arg;
};

/* Run the messages of a popped stack in the order they were posted (w NULL: the worker is
 * gone, they are only released). */
static void run_posted(struct pw_worker *w, struct pw_loop_msg *m)
{
	struct pw_loop_msg *fifo = NULL;
	while (m) { /* the stack is newest first */
		struct pw_loop_msg *nx = m->next;
		m->next = fifo;
		fifo = m;
		m = nx;
	}
	while (fifo) {
		struct pw_loop_msg *nx = fifo->next;
		fifo->fn(w, fifo->arg);
		free(fifo);
		fifo = nx;
	}
}

/* Owned by the main thread: set before the workers start, read-only while they run. */
static struct pw_worker *workers;
static pthread_t *threads;
static int n_workers;
static struct pw_ev *unix_listeners; /* shared by every worker (EPOLLEXCLUSIVE) */
static int n_unix;
static char (*unix_paths)[108];

uint64_t pw_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int watch_op(struct pw_worker *w, struct pw_ev *ev, int op)
{
	struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	                        .data.ptr = ev};
	return epoll_ctl(w->epfd, op, ev->fd, &e);
}

int pw_worker_watch(struct pw_worker *w, struct pw_ev *ev)
{
	return watch_op(w, ev, EPOLL_CTL_ADD);
}

int pw_worker_rewatch(struct pw_worker *w, struct pw_ev *ev)
{
	return watch_op(w, ev, EPOLL_CTL_MOD);
}

void *pw_worker_state(const struct pw_worker *w)
{
	return w->state;
}

int pw_worker_index(const struct pw_worker *w)
{
	return w->idx;
}

uint64_t pw_worker_now(const struct pw_worker *w)
{
	return w->now_ms;
}

bool pw_worker_stopping(const struct pw_worker *w)
{
	return w->stopping;
}

void pw_worker_count(struct pw_worker *w, enum pw_worker_counter c)
{
	w->counters[c]++;
}

void pw_worker_job_out(struct pw_worker *w)
{
	w->jobs++;
}

static int tcp_listener(const struct pw_listen *l)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%d", l->port);
	const char *host = strcmp(l->host, "*") == 0 ? NULL : l->host;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		pw_error("listen %s:%d: %s", l->host, l->port, gai_strerror(rc));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* each worker binds its own socket: the kernel spreads connections, no shared accept */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	pw_error("listen %s:%d: %s", l->host, l->port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

static int unix_listener(const struct pw_listen *l)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", l->unix_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* a stale socket file from a previous run: remove it only if nobody answers there */
	struct stat sb;
	if (lstat(un.sun_path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&un, sizeof(un)) == 0) {
			close(probe);
			errno = EADDRINUSE;
			goto fail;
		}
		if (probe >= 0)
			close(probe);
		unlink(un.sun_path);
	}
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0)
		goto fail;
	chmod(un.sun_path, (mode_t)l->unix_mode);
	if (listen(fd, 4096) < 0)
		goto fail;
	return fd;
fail:
	pw_error("listen %s: %s", l->unix_path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The listeners this worker polls: its own TCP ones and the shared unix ones. */
static void listeners_watch(struct pw_worker *w, bool on)
{
	for (int i = 0; i < w->n_listeners; i++) {
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = &w->listeners[i]};
		epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->listeners[i].fd, &e);
	}
	for (int i = 0; i < n_unix; i++) {
		/* one shared socket: wake one worker per connection, not all of them */
		struct epoll_event e = {.events = EPOLLIN | EPOLLEXCLUSIVE,
		                        .data.ptr = &unix_listeners[i]};
		epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, unix_listeners[i].fd, &e);
	}
	for (int i = 0; i < w->n_shared; i++) {
		struct epoll_event e = {.events = EPOLLIN | EPOLLEXCLUSIVE,
		                        .data.ptr = &w->shared[i]->ev};
		epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->shared[i]->ev.fd, &e);
	}
}

/* A connection taken with the spare descriptor: told why, in the protocol, and closed. */
static void refuse_now(int fd)
{
	uint8_t junk[512], msg[256];
	/* what the client already sent (its startup packet) is read first: closing a socket
	 * with unread bytes resets it, and the client might never see the error */
	while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	size_t n = pw_msg_error_to(msg, sizeof(msg), "FATAL", "53300",
	                           "pgward: too many connections (out of file descriptors)", NULL);
	if (n) {
		ssize_t r = send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r; /* best effort: the close says the rest */
	}
	shutdown(fd, SHUT_WR);
	close(fd);
}

/* accept failed for want of descriptors (or kernel memory): refuse what waits on lfd with
 * the spare descriptor, then stop polling the listeners for a while. Level-triggered
 * listeners that cannot be accepted from would otherwise wake the loop at once, forever. */
static void accept_starved(struct pw_worker *w, int lfd, int err)
{
	for (int i = 0; i < 64 && w->spare_fd >= 0; i++) {
		close(w->spare_fd);
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			refuse_now(fd);
			w->fd_refused++;
		}
		/* another thread may take the freed slot first: then there is no spare until the
		 * pause is over */
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			break;
	}
	if (!w->accept_backoff_ms)
		w->accept_backoff_ms = 100;
	w->accept_paused = true;
	w->accept_resume_ms = w->now_ms + w->accept_backoff_ms;
	listeners_watch(w, false);
	if (w->now_ms >= w->fd_log_ms) {
		pw_warn(
		    "worker %d: accept: %s: not accepting for %u ms (%llu connection(s) refused "
		    "since the last message)",
		    w->idx, strerror(err), w->accept_backoff_ms, (unsigned long long)w->fd_refused);
		w->fd_refused = 0;
		w->fd_log_ms = w->now_ms + 1000;
	}
	if (w->accept_backoff_ms < 1000)
		w->accept_backoff_ms *= 2;
}

static void accept_resume(struct pw_worker *w)
{
	w->accept_paused = false;
	if (w->spare_fd < 0)
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!w->stopping)
		listeners_watch(w, true);
}

static void accept_some(struct pw_worker *w, int lfd, bool steered)
{
	for (int i = 0; i < 64 && !w->stopping && !w->accept_paused; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				accept_starved(w, lfd, errno);
			return;
		}
		w->accepted++;
		w->accept_backoff_ms = 0; /* descriptors again: the next shortage starts short */
		w->h->accept(w, fd, (struct sockaddr *)&ss, sl, steered);
	}
}

static int not_accepting; /* workers that have closed their listeners (atomic) */

static void begin_stop(struct pw_worker *w, int grace_ms)
{
	uint64_t deadline = pw_now_ms() + (uint64_t)grace_ms;
	if (w->stopping) {
		/* a second stop request shortens the grace period */
		if (deadline < w->stop_deadline_ms)
			w->stop_deadline_ms = deadline;
		return;
	}
	w->stopping = true;
	w->stop_deadline_ms = deadline;
	__atomic_add_fetch(&not_accepting, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < w->n_listeners; i++) {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->listeners[i].fd, NULL);
		close(w->listeners[i].fd);
	}
	w->n_listeners = 0;
	for (int i = 0; i < n_unix; i++)
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, unix_listeners[i].fd, NULL);
	/* the run-time ones stay on the list until their removal comes (pw_loop_steered_del) */
	for (int i = 0; i < w->n_shared; i++)
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->shared[i]->ev.fd, NULL);
	pw_info("worker %d: stopping, %d session(s) have %d ms to finish", w->idx, w->h->live(w),
	        grace_ms);
}

/* Nudges come from other threads (the catalog loader) at any time, also while the workers are
 * set up or torn down: the array and the eventfds are touched under this lock then. */
static pthread_mutex_t nudge_mu = PTHREAD_MUTEX_INITIALIZER;
static bool nudge_ok;

static int stop_grace_ms = 0; /* written by pw_loop_stop before the wake-up, read after */
static bool stop_requested;   /* atomic: set by pw_loop_stop, a wake-up then means stop */

/* The worker this thread runs: a listener shared by every worker (unix sockets) is one pw_ev
 * for all of them, so its handler learns whose turn it is from here. */
static __thread struct pw_worker *self;

static void on_listener(struct pw_ev *ev, uint32_t events)
{
	(void)events;
	accept_some(self, ev->fd, false);
}

static void on_steered_listener(struct pw_ev *ev, uint32_t events)
{
	(void)events;
	accept_some(self, ev->fd, true);
}

/* ---- shared steered listeners added at run time ---- */

static void shared_put(struct pw_loop_shared *sh)
{
	if (__atomic_sub_fetch(&sh->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	close(sh->ev.fd);
	free(sh);
}

/* Room for one more on the worker's list, and as much on its dropped list (so that a removal
 * never needs memory). */
static bool shared_room(struct pw_worker *w)
{
	if (w->n_shared < w->cap_shared)
		return true;
	int cap = w->cap_shared ? w->cap_shared * 2 : 8;
	struct pw_loop_shared **a = realloc(w->shared, sizeof(*a) * (size_t)cap);
	if (!a)
		return false;
	w->shared = a;
	struct pw_loop_shared **d = realloc(w->dropped, sizeof(*d) * (size_t)cap);
	if (!d)
		return false;
	w->dropped = d;
	w->cap_shared = w->cap_dropped = cap;
	return true;
}

static void on_shared_add(struct pw_worker *w, void *arg)
{
	struct pw_loop_shared *sh = arg;
	if (!w)
		return; /* the worker is gone: its removal message lets go of it */
	if (!shared_room(w)) {
		pw_warn("worker %d: no memory for a steered listener: the other workers serve it",
		        w->idx);
		return;
	}
	w->shared[w->n_shared++] = sh;
	if (w->stopping || w->accept_paused)
		return; /* not polled now; accept_resume adds it with the others */
	struct epoll_event e = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &sh->ev};
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, sh->ev.fd, &e) < 0)
		pw_warn("worker %d: cannot watch a steered listener: %s", w->idx, strerror(errno));
}

static void on_shared_del(struct pw_worker *w, void *arg)
{
	struct pw_loop_shared *sh = arg;
	int i = 0;
	while (w && i < w->n_shared && w->shared[i] != sh)
		i++;
	if (!w || i == w->n_shared) {
		shared_put(sh); /* never watched here */
		return;
	}
	w->shared[i] = w->shared[--w->n_shared];
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, sh->ev.fd, NULL); /* ENOENT when not polled: fine */
	/* an event of this turn's batch may still name it: let go after the batch */
	w->dropped[w->n_dropped++] = sh;
}

struct pw_loop_shared *pw_loop_steered_add(int fd)
{
	struct pw_loop_shared *sh = calloc(1, sizeof(*sh));
	if (!sh)
		return NULL;
	sh->ev = (struct pw_ev){.fd = fd, .fn = on_steered_listener};
	int n = pw_loop_workers(), posted = 0;
	for (int wi = 0; wi < n; wi++)
		posted += pw_loop_post(wi, on_shared_add, sh) == 0;
	if (posted == 0) {
		free(sh);
		return NULL;
	}
	return sh;
}

void pw_loop_steered_del(struct pw_loop_shared *sh)
{
	if (!sh)
		return;
	int n = pw_loop_workers(), failed = 0;
	/* one reference per worker, and the caller's until every message is out */
	__atomic_store_n(&sh->refs, n + 1, __ATOMIC_RELEASE);
	for (int wi = 0; wi < n; wi++)
		failed += pw_loop_post(wi, on_shared_del, sh) < 0;
	if (failed && pw_loop_workers() == 0) {
		/* the loop ended meanwhile: no epoll watches it any more */
		__atomic_sub_fetch(&sh->refs, failed, __ATOMIC_ACQ_REL);
	} else if (failed) {
		/* a worker that was not told may still watch it: keep it open (leaked) rather
		 * than close a descriptor a worker may accept on */
		pw_error("cannot tell %d worker(s) to drop a steered listener (out of memory): it "
		         "stays open",
		         failed);
	}
	shared_put(sh);
}

static void on_wake(struct pw_ev *ev, uint32_t events)
{
	(void)events;
	struct pw_worker *w = ev->arg;
	uint64_t v;
	if (read(ev->fd, &v, sizeof(v)) < 0)
		return;
	if (__atomic_exchange_n(&w->nudged, false, __ATOMIC_ACQ_REL))
		w->h->nudge(w);
	run_posted(w, __atomic_exchange_n(&w->posted, NULL, __ATOMIC_ACQ_REL));
	struct pw_analysis_job *j = __atomic_exchange_n(&w->analysed, NULL, __ATOMIC_ACQ_REL);
	while (j) {
		struct pw_analysis_job *nx = j->next;
		w->jobs--;
		w->h->analysed(j);
		j = nx;
	}
	if (__atomic_load_n(&stop_requested, __ATOMIC_ACQUIRE))
		begin_stop(w, __atomic_load_n(&stop_grace_ms, __ATOMIC_ACQUIRE));
}

int pw_worker_turn(struct pw_worker *w, int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	int ran = w->more ? 1 : 0;
	int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout_ms);
	if (n < 0)
		n = 0; /* EINTR: nothing ran */
	if (!w->own_clock) {
		w->now_ms = pw_now_ms();
		if (w->accept_paused && w->now_ms >= w->accept_resume_ms)
			accept_resume(w);
	}
	for (int i = 0; i < n; i++) {
		struct pw_ev *ev = evs[i].data.ptr;
		ev->fn(ev, evs[i].events);
	}
	/* shared listeners removed during the batch: no event of this epoll_wait names them
	 * any more, and the epoll does not watch them */
	for (int i = 0; i < w->n_dropped; i++)
		shared_put(w->dropped[i]);
	w->n_dropped = 0;
	w->more = w->h->after_batch(w);
	return ran + n;
}

bool pw_worker_more(const struct pw_worker *w)
{
	return w->more;
}

static void *worker_main(void *arg)
{
	struct pw_worker *w = arg;
	uint64_t next_tick = 0;
	self = w;
	for (;;) {
		int timeout = w->more ? 0 : 1000;
		if (w->accept_paused && !w->more) {
			uint64_t now = pw_now_ms();
			timeout = now >= w->accept_resume_ms ? 0
			          : w->accept_resume_ms - now < 1000
			              ? (int)(w->accept_resume_ms - now)
			              : 1000;
		}
		pw_worker_turn(w, timeout);
		if (w->now_ms >= next_tick || w->stopping) {
			next_tick = w->now_ms + 1000;
			w->h->tick(w, w->stopping && w->now_ms >= w->stop_deadline_ms);
		}
		/* a session closed while its statement was being judged is freed when the
		 * verdict comes back: wait for it */
		if (w->stopping && w->h->live(w) == 0 && w->jobs == 0)
			break;
	}
	const struct pw_inspect_stats *is = pw_inspect_stats_local();
	const struct pw_sql_cache_stats *cs = pw_sql_cache_stats_local();
	pw_log_summary(
	    "worker %d: stopped (%llu accepted, %llu cancel requests, %llu tuple misses; "
	    "statements: %llu queries, %llu parses, %llu allowed, %llu denied, %llu "
	    "unreadable; analysis cache: %llu hits, %llu misses)",
	    w->idx, (unsigned long long)w->accepted, (unsigned long long)w->counters[PW_WC_CANCELS],
	    (unsigned long long)w->counters[PW_WC_TUPLE_MISSES], (unsigned long long)is->queries,
	    (unsigned long long)is->parses, (unsigned long long)is->allowed,
	    (unsigned long long)is->denied, (unsigned long long)is->unreadable,
	    (unsigned long long)cs->hits, (unsigned long long)cs->misses);
	pw_inspect_thread_done();
	w->h->worker_end(w);
	w->state = NULL;
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	close(w->epfd); /* the wake-up eventfd stays open until pw_loop_join: see pw_loop_nudge */
	return NULL;
}

int pw_loop_start(const struct pw_config *cfg, const struct pw_loop_hooks *hooks)
{

	n_workers = cfg->workers;
	workers = calloc((size_t)n_workers, sizeof(*workers));
	threads = calloc((size_t)n_workers, sizeof(*threads));
	unix_listeners = calloc((size_t)cfg->n_listen + 1, sizeof(*unix_listeners));
	unix_paths = calloc((size_t)cfg->n_listen + 1, sizeof(*unix_paths));
	if (!workers || !threads || !unix_listeners || !unix_paths)
		return -1;
	for (int i = 0; i < cfg->n_listen; i++) {
		if (!cfg->listen[i].is_unix)
			continue;
		int fd = unix_listener(&cfg->listen[i]);
		if (fd < 0)
			return -1;
		unix_listeners[n_unix] = (struct pw_ev){.fd = fd, .fn = on_listener};
		snprintf(unix_paths[n_unix], sizeof(unix_paths[0]), "%s", cfg->listen[i].unix_path);
		n_unix++;
		pw_info("listening on %s", cfg->listen[i].unix_path);
	}
	for (int wi = 0; wi < n_workers; wi++) {
		struct pw_worker *w = &workers[wi];
		w->idx = wi;
		w->h = hooks;
		w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		w->wake = (struct pw_ev){
		    .fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), .fn = on_wake, .arg = w};
		w->listeners = calloc((size_t)cfg->n_listen + 3, sizeof(*w->listeners));
		w->state = w->h->worker_start(w);
		if (w->epfd < 0 || w->wake.fd < 0 || !w->listeners || !w->state)
			return -1;
		struct epoll_event e = {.events = EPOLLIN, .data.ptr = &w->wake};
		epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake.fd, &e);
		for (int i = 0; i < cfg->n_listen; i++) {
			if (cfg->listen[i].is_unix)
				continue;
			int fd = tcp_listener(&cfg->listen[i]);
			if (fd < 0)
				return -1;
			w->listeners[w->n_listeners] = (struct pw_ev){.fd = fd, .fn = on_listener};
			e = (struct epoll_event){.events = EPOLLIN,
			                         .data.ptr = &w->listeners[w->n_listeners]};
			epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e);
			w->n_listeners++;
			if (wi == 0)
				pw_info("listening on %s:%d", cfg->listen[i].host,
				        cfg->listen[i].port);
		}
		if (cfg->redirect.enabled) {
			/* where the kernel steers agents' connections: identity from the kernel */
			struct pw_listen rl[2] = {{.port = cfg->redirect.listen4_port},
			                          {.port = cfg->redirect.listen6_port}};
			snprintf(rl[0].host, sizeof(rl[0].host), "%s", cfg->redirect.listen4);
			snprintf(rl[1].host, sizeof(rl[1].host), "%s", cfg->redirect.listen6);
			for (int i = 0; i < (cfg->redirect.listen6[0] ? 2 : 1); i++) {
				int fd = tcp_listener(&rl[i]);
				if (fd < 0)
					return -1;
				w->listeners[w->n_listeners] =
				    (struct pw_ev){.fd = fd, .fn = on_steered_listener};
				e = (struct epoll_event){.events = EPOLLIN,
				                         .data.ptr = &w->listeners[w->n_listeners]};
				epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e);
				w->n_listeners++;
				if (wi == 0)
					pw_info("listening on %s:%d for steered connections",
					        rl[i].host, rl[i].port);
			}
		}
		for (int i = 0; i < n_unix; i++) {
			/* one shared socket: wake one worker per connection, not all of them */
			e = (struct epoll_event){.events = EPOLLIN | EPOLLEXCLUSIVE,
			                         .data.ptr = &unix_listeners[i]};
			epoll_ctl(w->epfd, EPOLL_CTL_ADD, unix_listeners[i].fd, &e);
		}
	}
	/* as many analysis threads as workers: big statements of every worker at once */
	if (pw_analysis_start(n_workers, pw_loop_analysed) < 0)
		pw_warn("cannot start the analysis threads: big statements are judged on the "
		        "workers' loops");
	for (int wi = 0; wi < n_workers; wi++) {
		if (pthread_create(&threads[wi], NULL, worker_main, &workers[wi]) != 0) {
			pw_error("cannot start worker %d", wi);
			return -1;
		}
	}
	pthread_mutex_lock(&nudge_mu);
	nudge_ok = true;
	pthread_mutex_unlock(&nudge_mu);
	pw_info("%d worker(s) running", n_workers);
	return 0;
}

void pw_loop_analysed(struct pw_worker *w, struct pw_analysis_job *j)
{
	struct pw_analysis_job *top = __atomic_load_n(&w->analysed, __ATOMIC_RELAXED);
	do
		j->next = top;
	while (!__atomic_compare_exchange_n(&w->analysed, &top, j, true, __ATOMIC_RELEASE,
	                                    __ATOMIC_RELAXED));
	uint64_t one = 1;
	/* the eventfd lives until pw_loop_join, after this worker waited for its jobs */
	if (write(w->wake.fd, &one, sizeof(one)) < 0)
		pw_warn("cannot wake worker %d", w->idx);
}

void pw_loop_nudge(void)
{
	pthread_mutex_lock(&nudge_mu);
	for (int i = 0; nudge_ok && i < n_workers; i++) {
		uint64_t one = 1;
		__atomic_store_n(&workers[i].nudged, true, __ATOMIC_RELEASE);
		if (write(workers[i].wake.fd, &one, sizeof(one)) < 0)
			pw_warn("cannot wake worker %d", i);
	}
	pthread_mutex_unlock(&nudge_mu);
}

int pw_loop_workers(void)
{
	pthread_mutex_lock(&nudge_mu);
	int n = nudge_ok ? n_workers : 0;
	pthread_mutex_unlock(&nudge_mu);
	return n;
}

int pw_loop_post(int wi, pw_post_fn fn, void *arg)
{
	struct pw_loop_msg *m = malloc(sizeof(*m));
	if (!m)
		return -1;
	*m = (struct pw_loop_msg){.fn = fn, .arg = arg};
	pthread_mutex_lock(&nudge_mu);
	if (!nudge_ok || wi < 0 || wi >= n_workers) {
		pthread_mutex_unlock(&nudge_mu);
		free(m);
		return -1;
	}
	struct pw_worker *w = &workers[wi];
	struct pw_loop_msg *top = __atomic_load_n(&w->posted, __ATOMIC_RELAXED);
	do
		m->next = top;
	while (!__atomic_compare_exchange_n(&w->posted, &top, m, true, __ATOMIC_RELEASE,
	                                    __ATOMIC_RELAXED));
	uint64_t one = 1;
	if (write(w->wake.fd, &one, sizeof(one)) < 0)
		pw_warn("cannot wake worker %d", wi);
	pthread_mutex_unlock(&nudge_mu);
	return 0;
}

void pw_loop_stop(int grace_ms)
{
	__atomic_store_n(&stop_grace_ms, grace_ms, __ATOMIC_RELEASE);
	__atomic_store_n(&stop_requested, true, __ATOMIC_RELEASE);
	for (int i = 0; i < n_workers; i++) {
		uint64_t one = 1;
		if (write(workers[i].wake.fd, &one, sizeof(one)) < 0)
			pw_warn("cannot wake worker %d", i);
	}
	/* return once no worker accepts any more (the caller may then take the eBPF side
	 * down without a session being accepted in between) */
	for (int i = 0; i < 1000 && __atomic_load_n(&not_accepting, __ATOMIC_ACQUIRE) < n_workers;
	     i++)
		usleep(1000);
}

void pw_loop_join(void)
{
	for (int i = 0; i < n_workers; i++)
		pthread_join(threads[i], NULL);
	pw_analysis_stop();
	pthread_mutex_lock(&nudge_mu);
	nudge_ok = false;
	for (int i = 0; i < n_workers; i++)
		if (workers[i].wake.fd >= 0)
			close(workers[i].wake.fd);
	pthread_mutex_unlock(&nudge_mu);
	/* messages that came after their worker's last turn: released, not run */
	for (int i = 0; i < n_workers; i++)
		run_posted(NULL, __atomic_exchange_n(&workers[i].posted, NULL, __ATOMIC_ACQ_REL));
	for (int i = 0; i < n_unix; i++) {
		close(unix_listeners[i].fd);
		unlink(unix_paths[i]);
	}
	for (int i = 0; i < n_workers; i++) {
		free(workers[i].listeners);
		free(workers[i].shared);
		free(workers[i].dropped);
	}
	free(workers);
	free(threads);
	free(unix_listeners);
	free(unix_paths);
}

struct pw_worker *pw_worker_new(const struct pw_loop_hooks *hooks)
{
	struct pw_worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->h = hooks;
	w->own_clock = true;
	w->spare_fd = -1;
	w->wake.fd = -1;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd >= 0 && (w->state = hooks->worker_start(w)))
		return w;
	if (w->epfd >= 0)
		close(w->epfd);
	free(w);
	return NULL;
}

void pw_worker_free(struct pw_worker *w)
{
	if (!w)
		return;
	w->h->worker_end(w);
	close(w->epfd);
	free(w);
}

void pw_worker_set_now(struct pw_worker *w, uint64_t ms)
{
	w->now_ms = ms;
}

void pw_worker_set_stopping(struct pw_worker *w, bool stopping)
{
	w->stopping = stopping;
}
