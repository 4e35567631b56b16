/* The approvals' notification command: see user/approval_int.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgward/approval.h"
#include "pgward/log.h"
#include "pgward/loop.h"

#include "approval_int.h"

extern char **environ;

/* The notifier: requests to announce, queued here (bounded) and handed by the notifier thread
 * to the helper process, which runs the commands one at a time. The helper is forked before
 * pgwardd starts any thread or opens any session: a process forked later (even by
 * posix_spawn) would hold copies of the workers' descriptors until it execs, keeping their
 * epoll registrations alive after pgwardd closed them. */
#define NOTE_QUEUE_MAX   256
#define NOTE_QUEUE_BYTES (16u << 20)
struct note {
	struct note *next;
	char *json;
	size_t len;
	char id[64];
	char argv[PW_NOTIFY_ARGS][512];
	int argc, timeout_s;
};
static pthread_mutex_t nmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ncond = PTHREAD_COND_INITIALIZER;
static struct note *notes, **notes_tail = &notes;
static int n_notes;
static size_t note_bytes;
static uint64_t notes_dropped;
static bool nstop;
static pthread_t notifier;
static bool notifier_up;
static bool (*still_pending)(const char *id);
static int helper_fd = -1; /* the pipe to the helper process */
static pid_t helper_pid;

/* ---- the notifier ---- */

/* Run the command with json on its standard input; killed after timeout_s. */
static void run_note(const struct note *n)
{
	char *argv[PW_NOTIFY_ARGS + 1];
	int in[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;
	for (int i = 0; i < n->argc; i++)
		argv[i] = (char *)n->argv[i];
	argv[n->argc] = NULL;
	if (pipe2(in, O_CLOEXEC) != 0) {
		pw_warn("approvals: notify: pipe: %s", strerror(errno));
		return;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	if (rc != 0) {
		close(in[1]);
		pw_warn("approvals: notify: cannot run %s: %s", PW_Q(argv[0]), strerror(rc));
		return;
	}
	/* the command may not read it all: never block on it past the timeout */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t len = n->len, off = 0;
	uint64_t deadline = pw_now_ms() + (uint64_t)n->timeout_s * 1000;
	while (off < len && pw_now_ms() < deadline) {
		ssize_t k = write(in[1], n->json + off, len - off);
		if (k > 0) {
			off += (size_t)k;
			continue;
		}
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			break;
		struct pollfd p = {.fd = in[1], .events = POLLOUT};
		poll(&p, 1, 100);
	}
	close(in[1]);
	int st = 0;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (pw_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			pw_warn("approvals: notify: %s killed after %d s", PW_Q(argv[0]),
			        n->timeout_s);
			return;
		}
		usleep(20000);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		pw_warn("approvals: notify: %s failed (status %d)", PW_Q(argv[0]),
		        WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* ---- the helper process: frames from the pipe, one command each ---- */

static bool read_all(int fd, void *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t k = read(fd, (char *)p + off, n - off);
		if (k > 0)
			off += (size_t)k;
		else if (k < 0 && errno == EINTR)
			continue;
		else
			return false;
	}
	return true;
}

/* A frame: u32 length, then u32 timeout_s, u32 argc, argc NUL-ended strings, the JSON. */
static void helper_main(int fd)
{
	uint32_t len;
	while (read_all(fd, &len, sizeof(len))) {
		struct note n = {0};
		char *buf = len > 8 && len <= NOTE_QUEUE_BYTES + 65536 ? malloc(len) : NULL;
		if (!buf || !read_all(fd, buf, len))
			_exit(buf ? 0 : 1);
		uint32_t t, argc;
		memcpy(&t, buf, 4);
		memcpy(&argc, buf + 4, 4);
		size_t off = 8;
		n.timeout_s = (int)t;
		for (uint32_t i = 0; i < argc && i < PW_NOTIFY_ARGS && off < len; i++) {
			size_t k = strnlen(buf + off, len - off);
			snprintf(n.argv[i], sizeof(n.argv[i]), "%.*s", (int)k, buf + off);
			off += k + 1;
			n.argc = (int)i + 1;
		}
		n.json = buf + (off < len ? off : len);
		n.len = off < len ? len - off : 0;
		if (n.argc)
			run_note(&n);
		free(buf);
	}
	_exit(0);
}

int pw_approval_notify_fork(char *err, size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "approvals: notify helper: pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "approvals: notify helper: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* the helper: nothing of pgwardd's but the pipe and the standard descriptors */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* the programs it runs read agent-controlled text: none of pgwardd's capabilities
		 * (under the unit's noroot securebits, ambient ones are all an exec keeps) */
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
		signal(SIGPIPE, SIG_IGN);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		close(p[1]);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			close(null);
		}
		helper_main(p[0]);
	}
	close(p[0]);
	helper_fd = p[1];
	helper_pid = pid;
	return 0;
}

/* Hand n to the helper (the thread blocks while the helper is busy: the queue is bounded). */
static void to_helper(const struct note *n)
{
	size_t len = 8 + n->len;
	for (int i = 0; i < n->argc; i++)
		len += strlen(n->argv[i]) + 1;
	char *buf = malloc(4 + len);
	if (!buf || helper_fd < 0) {
		free(buf);
		return;
	}
	uint32_t l = (uint32_t)len, t = (uint32_t)n->timeout_s, c = (uint32_t)n->argc;
	memcpy(buf, &l, 4);
	memcpy(buf + 4, &t, 4);
	memcpy(buf + 8, &c, 4);
	size_t off = 12;
	for (int i = 0; i < n->argc; i++) {
		size_t k = strlen(n->argv[i]) + 1;
		memcpy(buf + off, n->argv[i], k);
		off += k;
	}
	memcpy(buf + off, n->json, n->len);
	off += n->len;
	for (size_t w = 0; w < off;) {
		ssize_t k = write(helper_fd, buf + w, off - w);
		if (k > 0)
			w += (size_t)k;
		else if (k < 0 && errno == EINTR)
			continue;
		else {
			pw_warn("approvals: notify helper is gone: %s", strerror(errno));
			break;
		}
	}
	free(buf);
}

static void *notifier_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nmu);
	for (;;) {
		while (!notes && !nstop)
			pthread_cond_wait(&ncond, &nmu);
		if (!notes)
			break;
		struct note *n = notes;
		notes = n->next;
		if (!notes)
			notes_tail = &notes;
		n_notes--;
		note_bytes -= n->len;
		pthread_mutex_unlock(&nmu);
		/* a request decided or withdrawn meanwhile is announced no more */
		if (!nstop && (!still_pending || still_pending(n->id)))
			to_helper(n);
		free(n->json);
		free(n);
		pthread_mutex_lock(&nmu);
	}
	pthread_mutex_unlock(&nmu);
	return NULL;
}

void pw_approval_notify(const char *id, const char *json, size_t len,
                        const struct pw_approvals_config *c)
{
	if (!c->n_notify || !notifier_up)
		return;
	pthread_mutex_lock(&nmu);
	bool full = n_notes >= NOTE_QUEUE_MAX || note_bytes + len > NOTE_QUEUE_BYTES;
	if (full && !(notes_dropped++ % 100))
		pw_warn("approvals: the notify command cannot keep up: %llu notifications dropped",
		        (unsigned long long)notes_dropped);
	pthread_mutex_unlock(&nmu);
	if (full)
		return;
	struct note *n = calloc(1, sizeof(*n));
	if (!n || !(n->json = malloc(len))) {
		free(n);
		return;
	}
	memcpy(n->json, json, len);
	n->len = len;
	snprintf(n->id, sizeof(n->id), "%s", id);
	n->argc = c->n_notify;
	memcpy(n->argv, c->notify, sizeof(n->argv));
	n->timeout_s = c->notify_timeout_s;
	pthread_mutex_lock(&nmu);
	*notes_tail = n;
	notes_tail = &n->next;
	n_notes++;
	note_bytes += len;
	pthread_cond_signal(&ncond);
	pthread_mutex_unlock(&nmu);
}

int pw_approval_notify_start(bool (*pending)(const char *id), char *err, size_t errlen)
{
	still_pending = pending;
	nstop = false;
	if (pthread_create(&notifier, NULL, notifier_main, NULL) != 0) {
		snprintf(err, errlen, "approvals: cannot start the notifier thread");
		return -1;
	}
	notifier_up = true;
	return 0;
}

void pw_approval_notify_stop(void)
{
	if (!notifier_up)
		return;
	pthread_mutex_lock(&nmu);
	nstop = true;
	pthread_cond_signal(&ncond);
	pthread_mutex_unlock(&nmu);
	pthread_join(notifier, NULL);
	notifier_up = false;
	while (notes) {
		struct note *n = notes;
		notes = n->next;
		free(n->json);
		free(n);
	}
	notes_tail = &notes;
	n_notes = 0;
	note_bytes = 0;
}
