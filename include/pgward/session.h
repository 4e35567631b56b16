/* One client connection and its upstream: the protocol state machine and the pump. */
#ifndef PGWARD_SESSION_H
#define PGWARD_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

#include "pgward/loop.h"

/* Take over an accepted client socket. */
void pw_session_accept(struct pw_worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       bool steered);
/* An epoll event for one of the session's sockets. */
void pw_session_event(struct pw_ev *ev, uint32_t events);
/* Something sessions may wait for has changed (a catalog snapshot was loaded): run them. */
void pw_session_nudge(struct pw_worker *w);
/* Periodic check: start-up deadlines, graceful stop. */
void pw_session_tick(struct pw_session *s);
/* Close now (stop deadline passed), telling the client why. */
void pw_session_terminate(struct pw_session *s, const char *why);
/* Run the sessions that yielded with work left (see run()). */
void pw_session_run_ready(struct pw_worker *w);
/* Free sessions closed during the last epoll batch. */
void pw_session_reap(struct pw_worker *w);
struct pw_session *pw_session_next(struct pw_session *s);
/* An analysis thread judged a message of the session's (analysis.h): go on with it. */
struct pw_analysis_job;
void pw_session_analysed(struct pw_analysis_job *j);
/* How many sessions have been freed since start, all workers together. Any thread. */
uint64_t pw_session_freed(void);

#endif
