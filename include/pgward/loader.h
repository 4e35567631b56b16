/* The user-space side of the eBPF redirect: loads bpf/pgward.bpf.c (via its skeleton), fills
 * the maps from the "redirect" config section, attaches the programs to the cgroups in scope,
 * pins everything under redirect.pin_path so that a restarted pgwardd takes over without a
 * window, keeps the heartbeat the programs check, and logs what they report.
 *
 * One loader per process. start/update/stop/uninstall are called from one thread (pgwardd's
 * main thread); counters and running may be called from any thread. The control socket's
 * views (loader_show.h) run on its thread: the loader's own lock keeps them from interleaving
 * with start, update and stop. Sessions read the tuple map through conntrack.h, where the
 * loader registers it. */
#ifndef PGWARD_LOADER_H
#define PGWARD_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/abi.h"
#include "pgward/config.h"
#include "pgward/loader_host.h" /* PW_LOADER_DEFAULT_PIN */

/* Load the programs (or take over pinned ones), fill the maps, attach, pin. A compatible pin
 * set left by an earlier pgwardd (pw_loader_stop, or a crash) is adopted: its maps keep
 * their contents and its links are switched to the new programs in place, so agents are never
 * left unsteered. An incompatible set is replaced (with a warning naming the difference).
 * Returns 0 or -1 with err set; err names the cgroup path that does not exist, or the missing
 * capability. */
int pw_loader_start(const struct pw_config *cfg, uint32_t enforcer_tgid, char *err, size_t errlen);
/* Reload: update scope (attaching to new cgroups, detaching from dropped ones), ports, fail
 * mode, heartbeat timeout, mark, listeners and the fastpath flag. 0 or -1 with err set. */
int pw_loader_update(const struct pw_config *cfg, char *err, size_t errlen);
/* Before start: read a compatible pinned tuple map, for connections accepted during a
 * takeover (registered with conntrack.h unless a map already is). */
void pw_loader_preopen(const struct pw_config *cfg);
/* Sum of the per-CPU counters (all zero when not started). */
void pw_loader_counters(uint64_t out[PW_CNT_MAX]);
/* The counters' names, indexed by abi.h's enum pw_counter ("redirects", "ringbuf_drops", ...):
 * the one table of the stats' "bpf" object and of map dump pw_counters. */
extern const char *const pw_counter_names[PW_CNT_MAX];
/* Does the kernel have the unix connect hook (cgroup/connect_unix, 6.7+)? Then unix connects
 * from the scope to a PostgreSQL socket of a steered port are refused (redirect.unix). */
bool pw_loader_unix_hook(void);
/* Is the loader running (started and not stopped)? Any thread. */
bool pw_loader_running(void);
/* Stop: the threads stop, the links and maps stay pinned and the heartbeat is marked stale, so
 * the programs (fail-closed) refuse agents' connects until a new pgwardd takes the pins over.
 * Stopping never opens the gate: only pw_loader_uninstall does. */
void pw_loader_stop(void);
/* pgwardd --uninstall: remove every pin under pin_path (detaching links): from then on agents'
 * connects go wherever they were dialled. A missing or empty pin_path is fine. 0 or -1 with
 * err set. */
int pw_loader_uninstall(const char *pin_path, char *err, size_t errlen);

/* Optional: called on the ring-buffer thread for each event, after it is logged. Set it
 * before pw_loader_start and leave it alone while the loader runs. */
extern void (*pw_loader_on_event)(const struct pw_event *ev);

#endif
