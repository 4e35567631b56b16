/* Worker threads: one epoll loop each (edge-triggered sockets, level-triggered listeners),
 * SO_REUSEPORT TCP listeners of their own, a shared unix-socket listener (EPOLLEXCLUSIVE).
 *
 * The loop knows file events and timers, not sessions (in the manner of Redis's ae.c): each
 * watched descriptor is a {fd, fn, arg} whose handler runs on the worker's thread; what the
 * workers serve comes in through the hooks given to pw_loop_start, which keep their own
 * per-worker state (pw_worker_state). A connection lives on the worker that accepted it. */
#ifndef PGWARD_LOOP_H
#define PGWARD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "pgward/config.h"

struct pw_worker; /* loop.c's own: reached through the functions below */
struct pw_analysis_job;

/* A watched descriptor: fn(ev, epoll events) runs on the worker that watches it. */
struct pw_ev;
typedef void (*pw_ev_fn)(struct pw_ev *ev, uint32_t events);
struct pw_ev {
	int fd;
	pw_ev_fn fn;
	void *arg;
};

/* What the workers serve. Every hook but worker_start runs on the worker's own thread. */
struct pw_loop_hooks {
	/* before a worker starts (pw_loop_start's thread): its state, for pw_worker_state
	 * (NULL: the loop fails to start) */
	void *(*worker_start)(struct pw_worker *w);
	/* a connection accepted on one of its listeners (steered: the eBPF redirect's) */
	void (*accept)(struct pw_worker *w, int fd, const struct sockaddr *peer, socklen_t len,
	               bool steered);
	/* after each batch of events: work left over, things to free. True: work is still left
	 * (the next poll does not wait) */
	bool (*after_batch)(struct pw_worker *w);
	/* once a second, and on every turn while stopping; terminate: the grace period is over */
	void (*tick)(struct pw_worker *w, bool terminate);
	/* pw_loop_nudge was called: something waited for has changed */
	void (*nudge)(struct pw_worker *w);
	/* an analysis thread gave a job back (pw_loop_analysed) */
	void (*analysed)(struct pw_analysis_job *j);
	/* how many connections the worker still serves: it ends, when stopping, at 0 */
	int (*live)(struct pw_worker *w);
	/* the worker ends: its state goes */
	void (*worker_end)(struct pw_worker *w);
};

/* Start the workers (count from cfg), binding every listener. Returns 0 or -1 (logged). */
int pw_loop_start(const struct pw_config *cfg, const struct pw_loop_hooks *hooks);
/* Wake every worker to run the nudge hook. Any thread. */
void pw_loop_nudge(void);
/* A message for worker wi (0 .. pw_loop_workers() - 1): fn(w, arg) runs on its thread at its
 * next turn, messages in the order posted. When the worker ends before it runs, fn(NULL, arg)
 * is called from pw_loop_join to release arg. 0, or -1 (no such worker, not running, no
 * memory: fn is not called). Any thread. */
typedef void (*pw_post_fn)(struct pw_worker *w, void *arg);
int pw_loop_post(int wi, pw_post_fn fn, void *arg);
/* A steered listener (a listening TCP socket, non-blocking) served by every worker from now
 * on, as the unix listeners are (one socket in every worker's epoll, EPOLLEXCLUSIVE; its
 * connections are accepted as steered): for listeners opened after start, in other network
 * namespaces (netns_listen.h). The loop owns fd from here on. NULL (fd is still the caller's):
 * the loop is not running or out of memory. Any thread. */
struct pw_loop_shared;
struct pw_loop_shared *pw_loop_steered_add(int fd);
/* Stop serving it: every worker takes it out of its epoll at its next turn, and the last one
 * to do so closes the descriptor (never while a worker may still accept on it). Any thread;
 * s is gone on return (NULL: nothing). */
void pw_loop_steered_del(struct pw_loop_shared *s);
/* How many workers run (0 before pw_loop_start and after pw_loop_join). Any thread. */
int pw_loop_workers(void);
/* Ask every worker to stop accepting and drain within grace_ms. */
void pw_loop_stop(int grace_ms);
/* Wait for the workers to end and close the listeners. */
void pw_loop_join(void);
/* An analysis thread is done with j: hand it back to its worker w and wake it. Any thread. */
void pw_loop_analysed(struct pw_worker *w, struct pw_analysis_job *j);

/* ---- for the hooks, on the worker's thread ---- */

/* The state worker_start returned. */
void *pw_worker_state(const struct pw_worker *w);
/* Watch a socket (edge-triggered, in+out), or hand one watched already to a new pw_ev. */
int pw_worker_watch(struct pw_worker *w, struct pw_ev *ev);
int pw_worker_rewatch(struct pw_worker *w, struct pw_ev *ev);
int pw_worker_index(const struct pw_worker *w);
/* Monotonic milliseconds, as of the start of this turn of the loop. */
uint64_t pw_worker_now(const struct pw_worker *w);
/* Is the worker draining (pw_loop_stop)? */
bool pw_worker_stopping(const struct pw_worker *w);
/* Counters for the worker's summary at its end. */
enum pw_worker_counter { PW_WC_CANCELS, PW_WC_TUPLE_MISSES, PW_WC_N };
void pw_worker_count(struct pw_worker *w, enum pw_worker_counter c);
/* A job was handed to an analysis thread: the worker does not end before it is back. */
void pw_worker_job_out(struct pw_worker *w);

/* ---- a worker driven by its caller instead of a thread (the fuzzers, tests) ---- */

/* A worker with its own epoll and no listeners; hooks->worker_start is called. NULL on
 * failure. */
struct pw_worker *pw_worker_new(const struct pw_loop_hooks *hooks);
/* hooks->worker_end, then everything of the worker's goes. */
void pw_worker_free(struct pw_worker *w);
/* One turn of the loop: wait up to timeout_ms for events, run their handlers, then
 * after_batch. Returns how many things ran: events, plus one for work left by the turn
 * before. (pgwardd's workers run the same turn.) */
int pw_worker_turn(struct pw_worker *w, int timeout_ms);
/* Did the last turn leave work (after_batch said so)? */
bool pw_worker_more(const struct pw_worker *w);
/* The caller's clock and stop flag, in place of pw_now_ms and pw_loop_stop. */
void pw_worker_set_now(struct pw_worker *w, uint64_t ms);
void pw_worker_set_stopping(struct pw_worker *w, bool stopping);

uint64_t pw_now_ms(void);
#endif
