/* What the eBPF redirect (loader.h) needs of the host before it loads anything: the
 * capabilities, cgroup v2 directories and their ids, pgwardd's own cgroup, and the bpffs
 * directory the objects are pinned in. No state: every call asks the kernel afresh. */
#ifndef PGWARD_LOADER_HOST_H
#define PGWARD_LOADER_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_BPFFS_ROOT         "/sys/fs/bpf"
#define PW_LOADER_DEFAULT_PIN PW_BPFFS_ROOT "/pgward" /* redirect.pin_path's default */

/* 0 when pgwardd has CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_ADMIN; -1 with err naming
 * what is missing. */
int pw_host_check_caps(char *err, size_t errlen);
/* The cgroup v2 id of the directory path (as the kernel reports it to the programs). 0, or -1
 * with err set. */
int pw_host_cgroup_id(const char *path, uint64_t *id, char *err, size_t errlen);
/* The cgroup2 mount point into out; -1 when none is mounted (or it does not fit). */
int pw_host_cgroup_root(char *out, size_t len);
/* pgwardd's own cgroup v2 directory ("<mount><path>"); -1 when unknown. */
int pw_host_self_cgroup(char *out, size_t len);
/* Is path on a bpf filesystem? */
bool pw_host_on_bpffs(const char *path);
/* Makes pin/maps and pin/links on bpffs (mounting bpffs on /sys/fs/bpf when the pin is below
 * it and nothing is mounted there). 0, or -1 with err set. */
int pw_host_prepare_pin_dir(const char *pin, char *err, size_t errlen);
/* Removes every pin in dir (links: detached first); a missing dir is empty. 0, or -1 with
 * err set when something stays. */
int pw_host_clear_pins(const char *dir, bool links, char *err, size_t errlen);

#endif
