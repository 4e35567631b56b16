/* The contents of the eBPF redirect's maps, read from the "redirect" section of the
 * configuration: the config map's value, the steered ports, the cgroups in scope, and the
 * filters (destinations, denied networks, uids in scope, pgwardd's own unix sockets). The
 * build_ functions are pure but for reading the cgroup tree; the sync_ functions write the
 * map whose descriptor they are given. The loader (loader.h) calls them with its maps. */
#ifndef PGWARD_LOADER_MAPS_H
#define PGWARD_LOADER_MAPS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/abi.h"
#include "pgward/config.h"

/* The programs go on the root of the cgroup v2 hierarchy, where every socket's connect is
 * seen, and judge the task that connects (bpf/pgward.bpf.c, in_scope): a socket made outside
 * the scope cannot slip by. The scope cgroups are only entries of the scope map. */
struct pw_cg_target {
	char path[PATH_MAX];
	uint64_t id;
	bool in_scope; /* an entry of the scope map */
	bool attach;   /* the programs are attached here (the root) */
};
#define PW_MAX_TARGETS (PW_MAX_REDIRECT_CGROUPS + 1)

/* The filter maps pw_maps_sync_filters fills. */
struct pw_filter_fds {
	int dsts, deny, scope_uid, unix_own;
};

/* The pin path and the heartbeat timeout in ms, defaults applied. */
void pw_maps_resolve(const struct pw_config *cfg, const char **pin, int *hb_ms);
/* The config map's value (listeners, fail mode, heartbeat, mark, enforcer). 0, or -1 with err
 * set. */
int pw_maps_build_config(const struct pw_config *cfg, uint32_t tgid, struct pw_bpf_config *out,
                         char *err, size_t errlen);
/* The steered ports (5432 when none are configured). 0, or -1 with err set. */
int pw_maps_build_ports(const struct pw_config *cfg, uint16_t *ports, int *n, char *err,
                        size_t errlen);
/* t[0] the cgroup root (attached to), then every scope cgroup, deduplicated by id (at most
 * PW_MAX_TARGETS). -1 with err set when nothing is in scope, a cgroup does not exist, or
 * pgwardd itself (its cgroup or its uid) is in scope. */
int pw_maps_build_targets(const struct pw_config *cfg, struct pw_cg_target *t, int *n, char *err,
                          size_t errlen);
/* Makes a hash map with __u8 values hold exactly these n keys of ksz bytes (max: the map's
 * size): adds first, then drops the rest, so a key in both sets is never missing. 0 or
 * -errno. */
int pw_maps_sync_set(int fd, const void *keys, int n, size_t ksz, uint32_t max);
/* The scope map from the targets in scope. 0 or -errno. */
int pw_maps_sync_scope(int fd, const struct pw_cg_target *t, int n);
/* Everything of the maps the configuration says besides the scope cgroups and ports.
 * 0 or -errno. */
int pw_maps_sync_filters(const struct pw_config *cfg, struct pw_filter_fds fds);

#endif
