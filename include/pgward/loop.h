/* Worker threads: one epoll loop each (edge-triggered sockets, level-triggered listeners),
 * SO_REUSEPORT TCP listeners of their own, a shared unix-socket listener (EPOLLEXCLUSIVE).
 * A session lives on the worker that accepted it. */
#ifndef PGWARD_LOOP_H
#define PGWARD_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/config.h"

struct pw_session;
struct pw_analysis_job;

/* What an epoll event points at. */
enum pw_ev_kind { PW_EV_LISTENER, PW_EV_WAKE, PW_EV_CLIENT, PW_EV_UPSTREAM };
struct pw_ev {
	enum pw_ev_kind kind;
	int fd;
	bool steered; /* listener: connections arrive through the eBPF redirect */
	struct pw_session *s;
};

struct pw_worker {
	int idx;
	int epfd;
	struct pw_ev wake; /* eventfd: shutdown and other nudges from the main thread */
	struct pw_ev *listeners;
	int n_listeners;
	struct pw_session *sessions; /* doubly linked list of live sessions */
	int n_sessions;
	struct pw_session *dead;  /* closed during this epoll batch, freed after it */
	struct pw_session *ready; /* yielded with work left: run again after the batch */
	struct pw_session *pool;  /* parked upstream connections (reuse_connections) */
	int n_pool;
	bool stopping;
	bool nudged; /* atomic: set by pw_loop_nudge before it writes the wake-up */
	uint64_t stop_deadline_ms;
	uint64_t now_ms; /* monotonic, refreshed once per loop iteration */
	uint64_t accepted, cancels, tuple_misses;
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
	int jobs; /* handed to the analysis threads and not back yet (worker thread only) */
};

/* Start the workers (count from cfg), binding every listener. Returns 0 or -1 (logged). */
int pw_loop_start(const struct pw_config *cfg);
/* Wake every worker to re-run the sessions waiting for something (a catalog snapshot). Any
 * thread. */
void pw_loop_nudge(void);
/* Ask every worker to stop accepting and drain within grace_ms. */
void pw_loop_stop(int grace_ms);
/* Wait for the workers to end and close the listeners. */
void pw_loop_join(void);

/* An analysis thread is done with j: hand it back to its worker w and wake it. */
void pw_loop_analysed(struct pw_worker *w, struct pw_analysis_job *j);

/* For sessions: register a socket with the worker's epoll (edge-triggered, in+out). */
int pw_worker_watch(struct pw_worker *w, struct pw_ev *ev);
uint64_t pw_now_ms(void);

#endif
