/* The control socket's thread: listener, connections, requests, permissions, streams. See
 * include/pgward/control.h and docs/control.md. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
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

#include "pgward/control.h"
#include "pgward/log.h"
#include "pgward/loop.h"

#define MAX_CONNS      64
#define MAX_LINE       (64 * 1024)
#define REQ_TIMEOUT    10000     /* ms for a request to come whole */
#define SUB_BACKLOG    (1 << 20) /* a subscriber's unread bytes at most */
#define QUEUE_MAX      (4 << 20) /* published lines waiting for the control thread at most */
#define MAX_GROUPS     64
#define OPERATOR_SLOTS 8 /* of MAX_CONNS, kept for operators (approvals must get through) */
#define MAX_STREAMS    8 /* streams a uid may hold at once */
#define LINES_PER_TURN 8 /* requests handled per readiness event: others get their turn */

struct conn {
	struct conn *next;
	int fd;
	struct pw_control_peer peer;
	gid_t groups[MAX_GROUPS];
	int n_groups;
	bool reader;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	uint64_t deadline_ms; /* 0: none (a subscriber) */
	bool sub;
	struct pw_control_sub filter;
	uint64_t lost;
	bool closing; /* close once out is written */
};

struct line {
	struct line *next;
	enum pw_control_topic topic;
	uint64_t session;
	size_t len;
	char text[];
};

/* The thread's own state: only the control thread touches conns. */
static struct {
	int lfd, epfd, evfd;
	pthread_t th;
	bool running; /* atomic: approvals ask for it from workers */
	bool stop;    /* atomic */
	struct conn *conns;
	int n_conns;
	char path[108];
} C = {.lfd = -1, .epfd = -1, .evfd = -1};

/* The running configuration, swapped by reloads (any thread) and read by the control thread
 * under cfg_mu. */
static pthread_mutex_t cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pw_config *cur_cfg;

/* Published lines: any thread appends under q_mu; the control thread takes them all. The
 * watcher counts are atomics the hot path reads without the lock. */
static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct line *q_head, **q_tail = &q_head;
static size_t q_bytes;
static uint64_t q_dropped;
static bool q_open; /* the thread's eventfd may be written (under q_mu) */
static int watchers[PW_TOPIC_N];

const char *pw_control_status_name(enum pw_control_status s)
{
	static const char *const names[] = {"ok",        "stream", "usage", "permission",
	                                    "not_found", "failed", "busy",  "unavailable"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "failed";
}

bool pw_control_running(void)
{
	return __atomic_load_n(&C.running, __ATOMIC_ACQUIRE);
}

bool pw_control_watched(enum pw_control_topic t)
{
	return __atomic_load_n(&watchers[t], __ATOMIC_RELAXED) > 0;
}

void pw_control_publish(enum pw_control_topic t, uint64_t session, const char *text, size_t n)
{
	if (!pw_control_watched(t))
		return;
	struct line *l = malloc(sizeof(*l) + n + 1);
	if (!l)
		return;
	l->next = NULL;
	l->topic = t;
	l->session = session;
	l->len = n + 1;
	memcpy(l->text, text, n);
	l->text[n] = '\n';
	pthread_mutex_lock(&q_mu);
	if (q_bytes + l->len > QUEUE_MAX) {
		q_dropped++;
		pthread_mutex_unlock(&q_mu);
		free(l);
		return;
	}
	if (!q_open) {
		pthread_mutex_unlock(&q_mu);
		free(l);
		return;
	}
	bool wake = q_head == NULL;
	*q_tail = l;
	q_tail = &l->next;
	q_bytes += l->len;
	uint64_t one = 1;
	if (wake && write(C.evfd, &one, sizeof(one)) < 0)
		q_dropped++; /* cannot happen with an eventfd short of 2^64 wake-ups */
	pthread_mutex_unlock(&q_mu);
}

void pw_control_config(const struct pw_config *cfg)
{
	pthread_mutex_lock(&cfg_mu);
	struct pw_config *old = cur_cfg;
	cur_cfg = pw_config_ref((struct pw_config *)cfg);
	pthread_mutex_unlock(&cfg_mu);
	if (old)
		pw_config_unref(old);
}

static struct pw_config *config_get(void)
{
	pthread_mutex_lock(&cfg_mu);
	struct pw_config *c = cur_cfg ? pw_config_ref(cur_cfg) : NULL;
	pthread_mutex_unlock(&cfg_mu);
	return c;
}

/* ---- arguments ---- */

int pw_control_arg_int(const struct pw_control_req *rq, const char *key, long long lo, long long hi,
                       long long *out, bool *set, char *err, size_t errlen)
{
	json_t *v = json_object_get(rq->args, key);
	*set = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		snprintf(err, errlen, "argument \"%s\": expected an integer from %lld to %lld", key,
		         lo, hi);
		return -1;
	}
	*out = json_integer_value(v);
	*set = true;
	return 0;
}

int pw_control_arg_str(const struct pw_control_req *rq, const char *key, const char **out,
                       char *err, size_t errlen)
{
	json_t *v = json_object_get(rq->args, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		snprintf(err, errlen, "argument \"%s\": expected a string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* ---- connections ---- */

static void conn_close(struct conn *c)
{
	if (c->sub)
		__atomic_sub_fetch(&watchers[c->filter.topic], 1, __ATOMIC_RELAXED);
	epoll_ctl(C.epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	for (struct conn **pp = &C.conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	C.n_conns--;
	free(c->in);
	free(c->out);
	free(c);
}

/* Queue bytes for c; false when a subscriber's backlog is full (nothing queued). */
static bool conn_put(struct conn *c, const char *p, size_t n, bool bounded)
{
	size_t unread = c->out_len - c->out_off;
	if (bounded && unread + n > SUB_BACKLOG)
		return false;
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + n)
			cap *= 2;
		char *o = realloc(c->out, cap);
		if (!o)
			return false;
		c->out = o;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return true;
}

/* Write what c has; -1 when it is gone. */
static int conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			c->out_off += (size_t)k;
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		return -1;
	}
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		if (c->lost) {
			char note[64];
			int k = snprintf(note, sizeof(note), "{\"lost\":%llu}\n",
			                 (unsigned long long)c->lost);
			c->lost = 0;
			conn_put(c, note, (size_t)k, false);
			return conn_flush(c);
		}
		if (c->closing)
			return -1;
	}
	bool pending = c->out_off < c->out_len;
	/* a peer with an answer unsent is not read (a subscriber is: its end must be seen) */
	struct epoll_event ev = {.events = (pending && !c->sub ? 0u : (uint32_t)EPOLLIN) |
	                                   (uint32_t)EPOLLRDHUP |
	                                   (pending ? (uint32_t)EPOLLOUT : 0u),
	                         .data.ptr = c};
	epoll_ctl(C.epfd, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

static bool in_list(const unsigned *list, int n, gid_t g)
{
	for (int i = 0; i < n; i++)
		if (list[i] == (unsigned)g)
			return true;
	return false;
}

/* What the peer may do under cc: judged again for each request, so that a reload that takes
 * a group's rights away applies to connections already open. */
static void rights(struct conn *c, const struct pw_control_config *cc)
{
	bool root = c->peer.uid == 0 || c->peer.uid == geteuid();
	c->peer.operate = root;
	c->reader = root;
	for (int i = 0; i < c->n_groups; i++) {
		if (in_list(cc->operators, cc->n_operators, c->groups[i]))
			c->peer.operate = c->reader = true;
		if (in_list(cc->readers, cc->n_readers, c->groups[i]))
			c->reader = true;
	}
}

/* Who the peer is and what it may do, from the kernel's credentials. */
static void judge_peer(struct conn *c, const struct pw_control_config *cc)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	char buf[16384];
	struct passwd pw, *res = NULL;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		c->peer.uid = (uid_t)-1; /* unknown: nothing is allowed */
		return;
	}
	c->peer.uid = cr.uid;
	c->peer.gid = cr.gid;
	c->peer.pid = cr.pid;
	c->n_groups = 0;
	if (getpwuid_r(cr.uid, &pw, buf, sizeof(buf), &res) == 0 && res) {
		snprintf(c->peer.user, sizeof(c->peer.user), "%s", res->pw_name);
		int n = MAX_GROUPS;
		if (getgrouplist(res->pw_name, cr.gid, c->groups, &n) >= 0)
			c->n_groups = n;
	} else {
		snprintf(c->peer.user, sizeof(c->peer.user), "uid %u", (unsigned)cr.uid);
	}
	if (!c->n_groups) {
		c->groups[0] = cr.gid;
		c->n_groups = 1;
	}
	rights(c, cc);
}

/* May the peer (probe: its descriptor) connect now: an operator always (within MAX_CONNS), a reader
 * while the slots kept for operators are free; anybody else never. */
static bool peer_may_connect(struct conn *probe, const struct pw_control_config *cc)
{
	judge_peer(probe, cc);
	if (probe->peer.operate)
		return true;
	return probe->reader && C.n_conns < MAX_CONNS - OPERATOR_SLOTS;
}

static void on_accept(void)
{
	struct pw_config *cfg = config_get();
	for (;;) {
		int fd = accept4(C.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			break;
		if (C.n_conns >= MAX_CONNS || !cfg) {
			close(fd); /* too many at once: dropped, the workers never notice */
			continue;
		}
		struct conn probe = {.fd = fd};
		if (!peer_may_connect(&probe, &cfg->control)) {
			/* nobody without rights stays; the last slots are kept for operators */
			char no[256];
			int k =
			    snprintf(no, sizeof(no),
			             "{\"ok\":false,\"error\":\"uid %u may not use this socket now "
			             "(in no readers or operators group, or no room)\",\"code\":"
			             "\"permission\"}\n",
			             (unsigned)probe.peer.uid);
			if (send(fd, no, (size_t)k, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				pw_debug("control: a refused peer did not take its answer");
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		judge_peer(c, &cfg->control);
		c->deadline_ms = pw_now_ms() + REQ_TIMEOUT;
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
		if (epoll_ctl(C.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = C.conns;
		C.conns = c;
		C.n_conns++;
	}
	if (cfg)
		pw_config_unref(cfg);
}

/* ---- requests ---- */

static void reply_error(struct conn *c, enum pw_control_status st, const char *msg)
{
	struct pw_jw w;
	pw_jw_init(&w, 4096);
	pw_jw_obj(&w, NULL);
	pw_jw_bool(&w, "ok", false);
	pw_jw_str(&w, "error", msg);
	pw_jw_str(&w, "code", pw_control_status_name(st));
	pw_jw_obj_end(&w);
	pw_jw_append(&w, "\n", 1);
	if (pw_jw_ok(&w))
		conn_put(c, w.p, w.len, false);
	pw_jw_free(&w);
}

/* The args of rq are only the command's own keys. */
static bool args_known(const struct pw_control_cmd *cmd, json_t *args, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	json_object_foreach(args, key, v)
	{
		size_t k = strlen(key);
		const char *a = cmd->args;
		bool ok = false;
		while (a && *a && !ok) {
			size_t n = strcspn(a, " ");
			ok = n == k && strncmp(a, key, n) == 0;
			a += n + (a[n] == ' ');
		}
		if (!ok) {
			snprintf(err, errlen, "%s takes no argument \"%.64s\"", cmd->name, key);
			return false;
		}
	}
	return true;
}

static int streams_of(uid_t uid)
{
	int n = 0;
	for (struct conn *c = C.conns; c; c = c->next)
		n += c->sub && c->peer.uid == uid;
	return n;
}

static void handle(struct conn *c, const char *line, size_t n)
{
	char err[1024] = "";
	json_error_t je;
	json_t *root = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
	json_t *cmdv = root ? json_object_get(root, "command") : NULL;
	json_t *args = root ? json_object_get(root, "args") : NULL;
	if (!root || !json_is_object(root) || !cmdv || !json_is_string(cmdv) ||
	    (args && !json_is_object(args) && !json_is_null(args))) {
		reply_error(
		    c, PW_CS_USAGE,
		    "expected one JSON object per line: {\"command\": \"...\", \"args\": {...}}");
		json_decref(root);
		return;
	}
	const char *name = json_string_value(cmdv);
	const struct pw_control_cmd *cmd = pw_control_cmds;
	while (cmd->name && strcmp(cmd->name, name) != 0)
		cmd++;
	if (!cmd->name) {
		snprintf(err, sizeof(err), "unknown command \"%.64s\"", name);
		reply_error(c, PW_CS_USAGE, err);
		json_decref(root);
		return;
	}
	struct pw_config *now = config_get();
	if (now) {
		rights(c, &now->control);
		pw_config_unref(now);
	}
	bool allowed = cmd->access == PW_CTL_OPERATE ? c->peer.operate : c->reader;
	if (!allowed) {
		snprintf(err, sizeof(err), "%s (uid %u) may not run \"%s\"", c->peer.user,
		         (unsigned)c->peer.uid, cmd->name);
		pw_info("control: refused %s to %s (uid %u, pid %d)", cmd->name, PW_Q(c->peer.user),
		        (unsigned)c->peer.uid, (int)c->peer.pid);
		reply_error(c, PW_CS_PERMISSION, err);
		json_decref(root);
		return;
	}
	json_t *empty = json_object();
	if (!args || json_is_null(args))
		args = empty;
	if (!args_known(cmd, args, err, sizeof(err))) {
		reply_error(c, PW_CS_USAGE, err);
		json_decref(empty);
		json_decref(root);
		return;
	}
	struct pw_config *cfg = config_get();
	struct pw_control_req rq = {.command = cmd->name,
	                            .args = args,
	                            .peer = &c->peer,
	                            .cfg = cfg,
	                            .groups = c->groups,
	                            .n_groups = c->n_groups};
	struct pw_control_sub sub = {.topic = PW_TOPIC_N};
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_obj(&w, NULL);
	pw_jw_bool(&w, "ok", true);
	enum pw_control_status st = cmd->fn(&rq, &w, &sub, err, sizeof(err));
	if (st == PW_CS_STREAM && streams_of(c->peer.uid) >= MAX_STREAMS) {
		snprintf(err, sizeof(err), "uid %u holds %d streams already", (unsigned)c->peer.uid,
		         MAX_STREAMS);
		st = PW_CS_BUSY;
	}
	if (st == PW_CS_STREAM && sub.topic < PW_TOPIC_N) {
		pw_jw_bool(&w, "stream", true);
		c->sub = true;
		c->filter = sub;
		c->deadline_ms = 0;
		__atomic_add_fetch(&watchers[sub.topic], 1, __ATOMIC_RELAXED);
	}
	pw_jw_obj_end(&w);
	pw_jw_append(&w, "\n", 1);
	if (st != PW_CS_OK && st != PW_CS_STREAM)
		reply_error(c, st, err[0] ? err : "failed");
	else if (!pw_jw_ok(&w) || !conn_put(c, w.p, w.len, false))
		reply_error(c, PW_CS_FAILED, "out of memory");
	pw_jw_free(&w);
	if (cfg)
		pw_config_unref(cfg);
	json_decref(empty);
	json_decref(root);
}

/* Read c and answer what is whole: at most LINES_PER_TURN requests, and none while an answer
 * is still unsent (the socket is level-triggered: what is left waits for the next turn), so
 * that one peer neither holds the thread nor makes it queue answers without end. -1: c is
 * done with. */
static int conn_read(struct conn *c)
{
	if ((c->out_off < c->out_len && !c->sub) || c->closing)
		return 0;
	if (!c->in && !(c->in = malloc(MAX_LINE)))
		return -1;
	ssize_t k = recv(c->fd, c->in + c->in_len, MAX_LINE - c->in_len, MSG_DONTWAIT);
	if (k == 0)
		return -1;
	if (k < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	c->in_len += (size_t)k;
	if (c->sub) {
		c->in_len = 0; /* a subscriber only reads: what it sends is ignored */
		return 0;
	}
	char *nl;
	for (int i = 0; i < LINES_PER_TURN && c->out_off == c->out_len &&
	                (nl = memchr(c->in, '\n', c->in_len));
	     i++) {
		size_t n = (size_t)(nl - c->in);
		if (n) { /* a blank line is no request (and keeps nobody's slot alive) */
			handle(c, c->in, n);
			if (!c->sub)
				c->deadline_ms = pw_now_ms() + REQ_TIMEOUT;
		}
		memmove(c->in, nl + 1, c->in_len - n - 1);
		c->in_len -= n + 1;
	}
	if (c->in_len == MAX_LINE) {
		reply_error(c, PW_CS_USAGE, "request longer than 64 KiB");
		c->closing = true;
	}
	return 0;
}

/* ---- streams ---- */

static void fan_out(void)
{
	pthread_mutex_lock(&q_mu);
	struct line *l = q_head;
	q_head = NULL;
	q_tail = &q_head;
	q_bytes = 0;
	uint64_t dropped = q_dropped;
	q_dropped = 0;
	pthread_mutex_unlock(&q_mu);
	while (l) {
		struct line *nx = l->next;
		for (struct conn *c = C.conns; c; c = c->next) {
			if (!c->sub || c->filter.topic != l->topic ||
			    (c->filter.session && c->filter.session != l->session))
				continue;
			if (!conn_put(c, l->text, l->len, true))
				c->lost++;
		}
		free(l);
		l = nx;
	}
	for (struct conn *c = C.conns; c; c = c->next)
		if (c->sub)
			c->lost += dropped;
	for (struct conn *c = C.conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->sub && conn_flush(c) < 0)
			conn_close(c);
	}
}

/* ---- the thread ---- */

static void tick(void)
{
	uint64_t now = pw_now_ms();
	for (struct conn *c = C.conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->deadline_ms && now > c->deadline_ms)
			conn_close(c); /* slow or idle: dropped */
	}
	pw_control_tick();
}

static void *control_main(void *arg)
{
	(void)arg;
	struct epoll_event evs[32];
	uint64_t next_tick = pw_now_ms() + 1000;
	while (!__atomic_load_n(&C.stop, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(C.epfd, evs, 32, 250);
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &C.lfd) {
				on_accept();
				continue;
			}
			if (p == &C.evfd) {
				uint64_t v;
				if (read(C.evfd, &v, sizeof(v)) < 0)
					continue;
				fan_out();
				continue;
			}
			struct conn *c = p;
			int rc = 0;
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				rc = conn_read(c);
			if (rc == 0)
				rc = conn_flush(c);
			if (rc < 0)
				conn_close(c);
		}
		if (pw_now_ms() >= next_tick) {
			next_tick = pw_now_ms() + 1000;
			tick();
		}
	}
	while (C.conns)
		conn_close(C.conns);
	return NULL;
}

/* The socket's file: a stale one (nobody listening) is replaced, a live one is an error. */
static int make_socket(const struct pw_control_config *cc, char *err, size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", cc->socket);
	char dir[108];
	snprintf(dir, sizeof(dir), "%s", cc->socket);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "control socket: cannot make %s: %s", dir,
			         strerror(errno));
			return -1;
		}
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(cc->socket, &st) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = S_ISSOCK(st.st_mode) && probe >= 0 &&
		            connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0;
		if (probe >= 0)
			close(probe);
		if (live || !S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control socket %s: %s", cc->socket,
			         live ? "another pgwardd listens on it"
			              : "exists and is not a socket");
			close(fd);
			return -1;
		}
		unlink(cc->socket);
	}
	/* made with no permission at all, then given the configured ones: never wider between */
	mode_t old = umask(0777);
	int rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	/* the mode before the owner: chmod of a file another user owns would need CAP_FOWNER,
	 * which pgwardd's unit does not grant (nobody can connect before listen() anyway) */
	if (rc != 0 || chmod(cc->socket, (mode_t)cc->mode) != 0 ||
	    chown(cc->socket, cc->owner >= 0 ? (uid_t)cc->owner : (uid_t)-1,
	          cc->group >= 0 ? (gid_t)cc->group : (gid_t)-1) != 0 ||
	    listen(fd, 64) != 0) {
		snprintf(err, errlen, "control socket %s: %s", cc->socket, strerror(errno));
		close(fd);
		if (rc == 0)
			unlink(cc->socket);
		return -1;
	}
	return fd;
}

int pw_control_start(const struct pw_config *cfg, char *err, size_t errlen)
{
	if (!cfg->control.enabled)
		return 0;
	pw_control_config(cfg);
	C.lfd = make_socket(&cfg->control, err, errlen);
	if (C.lfd < 0)
		return -1;
	snprintf(C.path, sizeof(C.path), "%s", cfg->control.socket);
	C.epfd = epoll_create1(EPOLL_CLOEXEC);
	C.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event le = {.events = EPOLLIN, .data.ptr = &C.lfd};
	struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &C.evfd};
	C.stop = false;
	if (C.epfd < 0 || C.evfd < 0 || epoll_ctl(C.epfd, EPOLL_CTL_ADD, C.lfd, &le) != 0 ||
	    epoll_ctl(C.epfd, EPOLL_CTL_ADD, C.evfd, &ee) != 0 ||
	    pthread_create(&C.th, NULL, control_main, NULL) != 0) {
		snprintf(err, errlen, "control socket: cannot start its thread");
		pw_control_stop();
		return -1;
	}
	pthread_mutex_lock(&q_mu);
	q_open = true;
	pthread_mutex_unlock(&q_mu);
	__atomic_store_n(&C.running, true, __ATOMIC_RELEASE);
	pw_info("control socket %s (mode %04o)", C.path, (unsigned)cfg->control.mode);
	return 0;
}

void pw_control_stop(void)
{
	if (__atomic_exchange_n(&C.running, false, __ATOMIC_ACQ_REL)) {
		__atomic_store_n(&C.stop, true, __ATOMIC_RELEASE);
		uint64_t one = 1;
		if (write(C.evfd, &one, sizeof(one)) < 0)
			pw_warn("control socket: cannot wake its thread");
		pthread_join(C.th, NULL);
	}
	pthread_mutex_lock(&q_mu);
	q_open = false;
	pthread_mutex_unlock(&q_mu);
	if (C.lfd >= 0) {
		close(C.lfd);
		unlink(C.path);
	}
	if (C.epfd >= 0)
		close(C.epfd);
	if (C.evfd >= 0)
		close(C.evfd);
	C.lfd = C.epfd = C.evfd = -1;
	pthread_mutex_lock(&q_mu);
	while (q_head) {
		struct line *l = q_head;
		q_head = l->next;
		free(l);
	}
	q_tail = &q_head;
	q_bytes = 0;
	pthread_mutex_unlock(&q_mu);
	pthread_mutex_lock(&cfg_mu);
	struct pw_config *old = cur_cfg;
	cur_cfg = NULL;
	pthread_mutex_unlock(&cfg_mu);
	if (old)
		pw_config_unref(old);
}
