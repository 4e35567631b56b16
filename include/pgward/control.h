/* The control socket (docs/control.md): one thread of pgwardd's own with a small epoll loop,
 * a unix listener, one JSON request per line, the peer judged by SO_PEERCRED. Commands are a
 * table (control_cmds.c): each names the access it needs and a handler that runs on the
 * control thread and writes the member "result" into the response. A handler never touches a
 * session: it asks the session's worker through pw_loop_post and waits for its answer.
 *
 * Streams (session watch, event pipe): producers on any thread publish one JSON line to a
 * topic; the control thread fans it out to that topic's subscribers, each with a bounded
 * backlog (a slow one loses lines, counted, and never holds a producer up). */
#ifndef PGWARD_CONTROL_H
#define PGWARD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "pgward/config.h"
#include "pgward/jw.h"

/* Who sent a request. */
struct pw_control_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char user[64]; /* the uid's name, or the number */
	bool operate;  /* may run the commands that change something */
};

struct pw_control_req {
	const char *command;                /* "session show" */
	json_t *args;                       /* the request's "args" object, never NULL */
	const struct pw_control_peer *peer; /* who asks */
	const struct pw_config *cfg;        /* the running configuration (referenced) */
	const gid_t *groups;                /* the peer's groups (its gid first) */
	int n_groups;
};

enum pw_control_access { PW_CTL_READ, PW_CTL_OPERATE };

/* What a handler did. Anything but OK and STREAM: err says why, under the code's name. */
enum pw_control_status {
	PW_CS_OK,
	PW_CS_STREAM, /* the connection becomes a subscriber of the command's topic */
	PW_CS_USAGE,
	PW_CS_PERMISSION,
	PW_CS_NOT_FOUND,
	PW_CS_FAILED,
	PW_CS_BUSY,
	PW_CS_UNAVAILABLE,
};
/* "ok", "stream", "usage", "permission", "not_found", "failed", "busy", "unavailable" */
const char *pw_control_status_name(enum pw_control_status s);

/* Topics of the streams. */
enum pw_control_topic { PW_TOPIC_STATEMENTS, PW_TOPIC_EVENTS, PW_TOPIC_N };

/* A stream's filter, set by the handler that returns PW_CS_STREAM. */
struct pw_control_sub {
	enum pw_control_topic topic;
	uint64_t session; /* statements of this session only; 0: all */
};

/* A handler: OK with the member "result" written into w (a pw_jw positioned inside the
 * response object), or another status with err filled. */
typedef enum pw_control_status (*pw_control_fn)(const struct pw_control_req *rq, struct pw_jw *w,
                                                struct pw_control_sub *sub, char *err,
                                                size_t errlen);

struct pw_control_cmd {
	const char *name; /* "session show" */
	enum pw_control_access access;
	pw_control_fn fn;
	const char *args; /* the args keys it takes, space separated ("id identity") */
};

/* The command table (control_cmds.c), ended by a NULL name. */
extern const struct pw_control_cmd pw_control_cmds[];
/* Once a second on the control thread (control_cmds.c): approvals' timeouts and grants. */
void pw_control_tick(void);

/* Start the thread and the socket of cfg->control (nothing when it is not enabled). 0 or -1
 * with err set (a socket that cannot be made, an owner or group that does not exist). */
int pw_control_start(const struct pw_config *cfg, char *err, size_t errlen);
/* The running configuration changed (a reload): new requests see it. Any thread. */
void pw_control_config(const struct pw_config *cfg);
/* Close the socket, end the thread, drop every connection. */
void pw_control_stop(void);
/* Is the control socket up (approvals need someone to reach them)? */
bool pw_control_running(void);

/* Is anyone subscribed to the topic (a relaxed load: for the hot path)? Any thread. */
bool pw_control_watched(enum pw_control_topic t);
/* One line (n bytes of JSON, no newline) for the topic's subscribers; session: whose
 * statement it is (0 for events). Copied; dropped when the backlog is full. Any thread. */
void pw_control_publish(enum pw_control_topic t, uint64_t session, const char *line, size_t n);

/* `stats` and the metrics endpoint: every counter of the running pgwardd (metrics.h). */
struct pw_metrics_snapshot;
void pw_control_gather_metrics(struct pw_metrics_snapshot *s);

/* ---- for handlers ---- */

/* Established sessions per identity of cfg, from every worker: 0, or -1 (a worker did not
 * answer in time; counts has what came). */
int pw_control_identity_sessions(const struct pw_config *cfg, int *counts);

/* An integer argument: absent (returns 0, *set false), or a whole number from lo to hi
 * (*set true); else -1 with err set. */
int pw_control_arg_int(const struct pw_control_req *rq, const char *key, long long lo, long long hi,
                       long long *out, bool *set, char *err, size_t errlen);
/* A string argument: NULL when absent; -1 with err set when not a string. */
int pw_control_arg_str(const struct pw_control_req *rq, const char *key, const char **out,
                       char *err, size_t errlen);

#endif
