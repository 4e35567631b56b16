/* One client connection and its upstream: the session's phases and the driver over them.
 * The workers (loop.h) reach sessions only through the hooks below. */
#ifndef PGWARD_SESSION_H
#define PGWARD_SESSION_H

#include <stdbool.h>
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

/* ---- the control plane's (session_ctl.c), on the session's worker: pw_loop_post ---- */

struct pw_jw;
struct pw_approval_verdict;
struct pw_session_filter {
	uint64_t id;          /* 0: any */
	const char *identity; /* NULL: any */
};
/* This worker's sessions that f selects, each an element of the array open in out
 * (docs/control.md's shape); how many. */
int pw_session_show(struct pw_worker *w, const struct pw_session_filter *f, struct pw_jw *out);
/* End session id with a FATAL 57P01 saying why, if it lives on this worker. */
bool pw_session_kill(struct pw_worker *w, uint64_t id, const char *why);
/* A decision on session id's held statement (approval.h); false when it is not here or no
 * longer holds one. */
bool pw_session_approval(struct pw_worker *w, uint64_t id, const struct pw_approval_verdict *v);

/* Established sessions by identity: counts[i] for cfg's identity i (matched by name). */
struct pw_config;
void pw_session_count_identities(struct pw_worker *w, const struct pw_config *cfg, int *counts);

/* How many sessions have been freed since start, all workers together. Any thread. */
uint64_t pw_session_freed(void);
#endif
