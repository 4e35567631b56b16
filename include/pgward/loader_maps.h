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
	bool runtime;  /* in scope by the override file (pgwardctl cgroup add), not the config */
};
#define PW_MAX_TARGETS (PW_MAX_REDIRECT_CGROUPS + 1)

/* The runtime changes to the scope (redirect.overrides, written by pgwardctl cgroup add|del,
 * loader_show.h): {"add": [paths], "del": [paths]}, cgroup directories as
 * pw_maps_cgroup_norm makes them. Applied on top of the configuration's cgroups. */
struct pw_cg_overrides {
	char file[PATH_MAX]; /* "" when none is configured */
	char add[PW_MAX_REDIRECT_CGROUPS][PATH_MAX];
	int n_add;
	char del[PW_MAX_REDIRECT_CGROUPS][PATH_MAX];
	int n_del;
};

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
 * PW_MAX_TARGETS): the configuration's, less the overrides' "del", plus their "add" (ov may be
 * NULL). -1 with err set when nothing is in scope, a configured cgroup does not exist, or
 * pgwardd itself (its cgroup or its uid) is in scope. An override that names a cgroup gone or
 * holding pgwardd is warned about and skipped; removals that would leave nothing in scope are
 * not applied (warned); what the overrides changed is logged, naming the file. */
int pw_maps_build_targets(const struct pw_config *cfg, const struct pw_cg_overrides *ov,
                          struct pw_cg_target *t, int *n, char *err, size_t errlen);

/* A cgroup path as given ("/sys/fs/cgroup/agents/a", or "/agents/a" below the cgroup2 mount)
 * as the directory it names: the mount, then the path below it, without repeated or trailing
 * slashes. 0, or -1 with err set (not absolute, "." or "..", too long, no cgroup2 mount). */
int pw_maps_cgroup_norm(const char *in, char *out, size_t len, char *err, size_t errlen);
/* The path below the cgroup2 mount, as logs and the control socket show it ("/agents/a", "/"
 * for the root); a path not below the mount is copied. */
void pw_maps_cgroup_rel(const char *dir, char *out, size_t len);
/* Is pgwardd's own cgroup the cgroup id, or below it? (Unknown own cgroup: true.) */
bool pw_maps_holds_self(uint64_t id);
/* A cgroup that may enter the scope, as its target (in scope, path normalized): 0, or -1
 * with err set (no such cgroup v2 directory; pgwardd's own cgroup or one above it). */
int pw_maps_cgroup_target(const char *path, struct pw_cg_target *t, char *err, size_t errlen);
/* The overrides' lists: take a path out (was it there?), put one in (false when full). */
bool pw_maps_list_drop(char (*list)[PATH_MAX], int *n, const char *path);
bool pw_maps_list_add(char (*list)[PATH_MAX], int *n, const char *path);
/* Reads the override file ov->file names into ov (a missing file is no change). 0, or -1 with
 * err set (unreadable, not {"add": [..], "del": [..]} of cgroup paths). */
int pw_maps_overrides_read(struct pw_cg_overrides *ov, char *err, size_t errlen);
/* cfg's override file, read (malloc'd; warned and empty when it cannot be used; NULL only
 * without memory, which pw_maps_build_targets takes as none). */
struct pw_cg_overrides *pw_maps_overrides_load(const struct pw_config *cfg);
/* Writes ov to ov->file atomically (a temporary file, fsync, rename, the directory fsynced),
 * making its directory 0700 when missing. 0, or -1 with err set. */
int pw_maps_overrides_write(const struct pw_cg_overrides *ov, char *err, size_t errlen);
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
