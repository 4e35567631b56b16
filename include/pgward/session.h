/* One client connection and its upstream: the session's phases and the driver over them.
 * The workers (loop.h) reach sessions only through the hooks below. */
#ifndef PGWARD_SESSION_H
#define PGWARD_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

#include "pgward/loop.h"

/* What pgwardd's workers serve: accepted connections become sessions. */
const struct pw_loop_hooks *pw_session_hooks(void);

/* Take over an accepted client socket (the accept hook). */
void pw_session_accept(struct pw_worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       bool steered);

/* An analysis thread judged a message of the session's (analysis.h): go on with it (the
 * analysed hook). */
struct pw_analysis_job;
void pw_session_analysed(struct pw_analysis_job *j);

/* How many sessions have been freed since start, all workers together. Any thread. */
uint64_t pw_session_freed(void);
#endif
