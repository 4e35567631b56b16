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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgward/log.h"

#include "approval_int.h"

extern char **environ;

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The notifier: requests to announce, run one at a time off the workers. */
struct note {
	struct note *next;
	char *json;
	char argv[PW_NOTIFY_ARGS][512];
	int argc, timeout_s;
};
static pthread_mutex_t nmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ncond = PTHREAD_COND_INITIALIZER;
static struct note *notes, **notes_tail = &notes;
static bool nstop;
static pthread_t notifier;
static bool notifier_up;

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
	size_t len = strlen(n->json), off = 0;
	uint64_t deadline = mono_ms() + (uint64_t)n->timeout_s * 1000;
	while (off < len && mono_ms() < deadline) {
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
		if (mono_ms() >= deadline) {
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
		pthread_mutex_unlock(&nmu);
		if (!nstop)
			run_note(n);
		free(n->json);
		free(n);
		pthread_mutex_lock(&nmu);
	}
	pthread_mutex_unlock(&nmu);
	return NULL;
}

void pw_approval_notify(const char *json, size_t len, const struct pw_approvals_config *c)
{
	if (!c->n_notify || !notifier_up)
		return;
	struct note *n = calloc(1, sizeof(*n));
	if (!n || !(n->json = strndup(json, len))) {
		free(n);
		return;
	}
	n->argc = c->n_notify;
	memcpy(n->argv, c->notify, sizeof(n->argv));
	n->timeout_s = c->notify_timeout_s;
	pthread_mutex_lock(&nmu);
	*notes_tail = n;
	notes_tail = &n->next;
	pthread_cond_signal(&ncond);
	pthread_mutex_unlock(&nmu);
}

int pw_approval_notify_start(char *err, size_t errlen)
{
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
}
