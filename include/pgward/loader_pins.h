/* The pin set of the eBPF redirect (loader.h) under redirect.pin_path: whether the maps
 * pinned there fit this build, reusing or pinning them, and the cgroup links pinned by an
 * earlier pgwardd. Called only by the loader, from the thread that starts and stops it. */
#ifndef PGWARD_LOADER_PINS_H
#define PGWARD_LOADER_PINS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bpf/libbpf.h>

#include "pgward/abi.h"

/* A pinned link found at start-up. */
struct pw_old_link {
	struct bpf_link *link; /* NULL: not a link we can open; only its pin is removed */
	char path[PATH_MAX];
	uint64_t cgid;
	enum bpf_attach_type type;
	bool claimed; /* switched to a new program and kept */
};

/* snprintf for paths: false when it does not fit (callers have bounded their inputs). */
bool pw_pin_path(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Is a pin set there, and does it fit obj's maps? 0: nothing pinned, 1: every map pinned and
 * compatible, -1: something pinned that does not fit (why says what). *pinned gets the pinned
 * config when it has this layout (abi_version 0 otherwise). */
int pw_pins_state(struct bpf_object *obj, const char *pin, char *why, size_t whylen,
                  struct pw_bpf_config *pinned);
/* obj (opened, not loaded) uses the pinned maps. 0, or -1 with err set. */
int pw_pins_reuse_maps(struct bpf_object *obj, const char *pin, char *err, size_t errlen);
/* Replaces whatever is pinned in pin/maps by obj's (loaded) maps. 0, or -1 with err set. */
int pw_pins_pin_maps(struct bpf_object *obj, const char *pin, char *err, size_t errlen);
/* The links pinned in pin/links (*out malloc'd; a missing directory is none). 0, or -1 with
 * errno set. */
int pw_pins_open_old_links(const char *pin, struct pw_old_link **out, int *n);
/* Closes the links not claimed (their pins keep them attached) and frees o. */
void pw_pins_close_old_links(struct pw_old_link *o, int n);
/* Detaches l (may be NULL), removes its pin (may be NULL or ""), and frees it. */
void pw_pins_drop_link(struct bpf_link *l, const char *pin);

#endif
