/* The analysis threads: see include/pgward/analysis.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pgward/analysis.h"
#include "pgward/log.h"
#include "pgward/sql.h"

/* The queue is shared by the workers (producers) and the analysis threads (consumers): a
 * mutex and a condition variable, taken once per statement of 1 KiB or more, never on the
 * path of small ones. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct pw_analysis_job *head, *tail;
static bool stopping;
static bool running; /* written under mu; read by pw_analysis_submit under mu */
/* set before the threads start, read-only while they run */
static void (*give_back)(struct pw_worker *w, struct pw_analysis_job *j);
static pthread_t *threads;
static int n_threads;
/* bytes of text judged so far (atomic), counted when the job is freed on its worker: parsing a
 * big text leaves its memory in the malloc arenas, which the main thread gives back after
 * enough of them (pgwardd.c) */
static uint64_t judged_bytes;

uint64_t pw_analysis_bytes(void)
{
	return __atomic_load_n(&judged_bytes, __ATOMIC_RELAXED);
}

static void *analysis_main(void *arg)
{
	int idx = (int)(long)arg;
	uint64_t judged = 0;
	/* a few seconds of parsing must not take the CPU from the event loops, which only
	 * need it for moments: this thread (alone) runs at a lower priority */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), 5) < 0)
		pw_debug("analysis thread %d: cannot lower its priority", idx);
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!head && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (!head)
			break;
		struct pw_analysis_job *j = head;
		head = j->next;
		if (!head)
			tail = NULL;
		pthread_mutex_unlock(&mu);
		j->v =
		    pw_inspect_judge(&j->who, &j->m, &j->d, &j->unreadable, &j->plans, &j->facts);
		judged++;
		give_back(j->w, j);
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	const struct pw_sql_cache_stats *cs = pw_sql_cache_stats_local();
	pw_log_summary("analysis thread %d: stopped (%llu statements judged; analysis cache: "
	               "%llu hits, %llu misses)",
	               idx, (unsigned long long)judged, (unsigned long long)cs->hits,
	               (unsigned long long)cs->misses);
	pw_inspect_thread_done();
	return NULL;
}

int pw_analysis_start(int n, void (*back)(struct pw_worker *w, struct pw_analysis_job *j))
{
	give_back = back;
	threads = calloc((size_t)n, sizeof(*threads));
	if (!threads)
		return -1;
	for (int i = 0; i < n; i++) {
		if (pthread_create(&threads[i], NULL, analysis_main, (void *)(long)i) != 0)
			break;
		n_threads++;
	}
	pthread_mutex_lock(&mu);
	running = n_threads > 0;
	pthread_mutex_unlock(&mu);
	return n_threads > 0 ? 0 : -1;
}

struct pw_analysis_job *pw_analysis_job_new(struct pw_worker *w, void *owner,
                                            const struct pw_caller *who, const struct pw_stmt *m)
{
	struct pw_analysis_job *j = malloc(sizeof(*j) + m->len);
	if (!j)
		return NULL;
	memset(j, 0, sizeof(*j));
	j->text = (char *)(j + 1);
	memcpy(j->text, m->body, m->len);
	j->w = w;
	j->owner = owner;
	j->who = *who;
	j->m = *m;
	/* the same message in the copy */
	const char *base = (const char *)m->body;
	j->m.body = (const uint8_t *)j->text;
	j->m.sql = m->sql ? j->text + (m->sql - base) : NULL;
	j->m.name = m->name ? j->text + (m->name - base) : NULL;
	j->m.stmt = m->stmt ? j->text + (m->stmt - base) : NULL;
	return j;
}

bool pw_analysis_submit(struct pw_analysis_job *j)
{
	pthread_mutex_lock(&mu);
	bool ok = running && !stopping;
	if (ok) {
		j->next = NULL;
		if (tail)
			tail->next = j;
		else
			head = j;
		tail = j;
		pthread_cond_signal(&cv);
	}
	pthread_mutex_unlock(&mu);
	if (!ok)
		free(j); /* never judged: not counted */
	return ok;
}

void pw_analysis_free(struct pw_analysis_job *j)
{
	__atomic_add_fetch(&judged_bytes, j->m.len, __ATOMIC_RELAXED);
	pw_inspect_plans_free(&j->plans);
	free(j);
}

void pw_analysis_stop(void)
{
	pthread_mutex_lock(&mu);
	stopping = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	threads = NULL;
	n_threads = 0;
	pthread_mutex_lock(&mu);
	running = stopping = false;
	pthread_mutex_unlock(&mu);
}
