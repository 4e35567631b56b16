/* What the control socket shows of the kernel side (docs/control.md): pgward's programs and
 * maps decoded into fields (never hex), the cgroups in scope and their live changes, and the
 * ring buffer's events as JSON lines for `event pipe`. Called on the control thread while the
 * loader runs (loader.h); the loader's own lock keeps these apart from its start, update and
 * stop. Each writer appends the member "result" to w. */
#ifndef PGWARD_LOADER_SHOW_H
#define PGWARD_LOADER_SHOW_H

#include <limits.h>
#include <stddef.h>

#include "pgward/abi.h"
#include "pgward/jw.h"

/* 0, or -1 with err set (the redirect is not running: "no eBPF programs are loaded"). */
int pw_loader_show_progs(struct pw_jw *w, char *err, size_t errlen);
int pw_loader_show_maps(struct pw_jw *w, char *err, size_t errlen);
/* One map's entries, decoded (the name with or without its "pw_" prefix). 0; -1 with err set
 * (also for pw_sk_info and pw_events, which cannot be dumped: err says why); -2: no map of
 * that name (err lists pgward's maps). */
int pw_loader_dump_map(const char *name, struct pw_jw *w, char *err, size_t errlen);

/* The cgroups in scope: the configuration's with the runtime overrides applied. */
int pw_loader_show_cgroups(struct pw_jw *w, char *err, size_t errlen);
/* The same cgroups' directories (absolute paths), into dirs: how many (at most max), or -1
 * with err set (the loader is not running). */
int pw_loader_scope_dirs(char (*dirs)[PATH_MAX], int max, char *err, size_t errlen);
/* Add a cgroup to the scope, or take one out, live; the change is written to the override
 * file (redirect.overrides) before it is made, and logged naming it. path: a cgroup v2
 * directory ("/sys/fs/cgroup/agents/a"), or the same below the cgroup2 mount ("/agents/a").
 * 0, or -1 with err set (no such cgroup, pgwardd's own or one above it, already in scope or
 * not in it, the last one while no uids are in scope, the file cannot be read or written). */
int pw_loader_cgroup_add(const char *path, char *err, size_t errlen);
int pw_loader_cgroup_del(const char *path, char *err, size_t errlen);

/* One ring-buffer event as the event pipe's JSON object (the whole line, no newline) into w:
 * {"ts","type","reason","kernel"} with the audit trail's record names and kernel object. */
void pw_event_json(struct pw_jw *w, const struct pw_event *ev);

#endif
