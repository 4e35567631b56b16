/* Steered listeners inside the network namespaces of the tasks in the redirect's scope.
 *
 * The eBPF programs rewrite a steered connect to redirect.listen4:listen4_port (listen6) in the
 * connecting task's own network namespace. A task in a namespace of its own (a Kubernetes pod
 * without hostNetwork, `ip netns exec`, `unshare -n`) would find nothing listening there and be
 * refused. This module finds the network namespaces of the processes in the scope's cgroups (the
 * configuration's with the run-time overrides: pgwardctl cgroup add|del) and opens pgwardd's
 * steered listeners inside each of them; the workers serve them (loop.h,
 * pw_loop_steered_add). A namespace no process of the scope is in any more has its listeners
 * closed. One thread rescans about every second, and at once when kicked.
 *
 * Failing to open a namespace's listeners is a warning: that namespace stays as it was,
 * refused (fail-closed). Called from pgwardd's main thread (start, stop), the reload and the
 * control thread (config, kick). */
#ifndef PGWARD_NETNS_LISTEN_H
#define PGWARD_NETNS_LISTEN_H

#include "pgward/config.h"

/* Start the scanning thread when the redirect is on (after pw_loop_start and
 * pw_loader_start); the listeners' addresses are cfg's, for the life of the process. 0, or -1
 * (logged: it cannot run, no listener is opened anywhere, the namespaces stay refused). */
int pw_netns_listen_start(const struct pw_config *cfg);
/* A reloaded configuration: redirect.netns_listeners turns the listeners on or off (off:
 * every namespace's are closed). Rescans at once. */
void pw_netns_listen_config(const struct pw_config *cfg);
/* Rescan now (the scope changed: pgwardctl cgroup add). Any thread. */
void pw_netns_listen_kick(void);
/* How many namespaces have listeners now. Any thread. */
int pw_netns_listen_count(void);
/* Stop the thread and close every namespace's listeners. */
void pw_netns_listen_stop(void);

#endif
