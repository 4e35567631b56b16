/* The caller of a steered connection: the facts of the process that made it, from what the
 * kernel recorded at connect time (pid, uid, gid, comm, cgroup id, ancestry) plus what can be
 * read safely afterwards: the cgroup's path and the executable, checked against the process
 * start time so that a recycled pid cannot impersonate the caller. Which identity these facts
 * match is decided by pw_config_match_facts (match.h), over the pw_facts view below. */
#ifndef PGWARD_CALLER_H
#define PGWARD_CALLER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "pgward/abi.h"
#include "pgward/config.h"
#include "pgward/match.h"

struct pw_kernel_facts {
	struct pw_conn_info info;
	char cgroup[PATH_MAX]; /* below the cgroup2 mount, "/"-rooted; "" if unresolvable */
	char exe[PATH_MAX];    /* "" if the process is gone, ran exec since the connect, or its
	                          path does not name the same file in pgwardd's mount namespace */
	char comm[PW_COMM_LEN + 1];
	char anc_comm[PW_MAX_ANCESTORS][PW_COMM_LEN + 1];
	char anc_exe[PW_MAX_ANCESTORS][256]; /* the same; also "" for an ancestor that ran exec
	                                        after it forked the chain */
	bool exe_verified;                   /* the pid still named the process that connected */
	struct pw_facts view; /* pointers into the above, for pw_config_match_facts */
};

/* Fill f from the kernel record. Never fails: what cannot be read stays "" (and so cannot
 * match a glob that needs it). */
void pw_caller_from_kernel(const struct pw_conn_info *info, struct pw_kernel_facts *f);
/* Field 22 of /proc/PID/stat: the process's start in clock ticks after boot; 0 when there is
 * no such process. Thread-safe (the one /proc/PID/stat reader of pgwardd). */
unsigned long long pw_proc_start_ticks(long pid);
/* The address a steered client dialled, as the kernel recorded it. */
void pw_caller_dialled(const struct pw_kernel_facts *f, struct sockaddr_storage *dst);
/* Is a client at peer on this host (a unix socket, or loopback)? */
bool pw_caller_local(const struct sockaddr *peer);
/* One line for logs and refusals: "pid 12 uid 1000 exe /usr/bin/psql cgroup /agents/a". */
void pw_caller_describe(const struct pw_kernel_facts *f, char *out, size_t len);

#endif
