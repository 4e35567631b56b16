/* The events the eBPF programs report on their ring buffer (abi.h: redirected, refused,
 * bypass attempts, denied destinations, refused binds and unix connects), as one log line
 * each. Pure but for the log; called on the loader's ring-buffer thread. */
#ifndef PGWARD_LOADER_EVENTS_H
#define PGWARD_LOADER_EVENTS_H

#include "pgward/abi.h"

/* Logs ev at info: its kind, the process, its cgroup, the destination it dialled and its
 * ancestry (process names quoted and escaped: the agent chooses them). */
void pw_event_log(const struct pw_event *ev);

#endif
