/* The pin set of the eBPF redirect under redirect.pin_path: see include/pgward/loader_pins.h
 * and the layout at the top of loader.c. */
#include "pgward/loader_pins.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "pgward/loader_host.h"
#include "pgward/log.h"
#include "loader_int.h"

bool pw_pin_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < len;
}

void pw_pins_drop_link(struct bpf_link *l, const char *pin)
{
	if (l)
		bpf_link__detach(l);
	if (pin && pin[0])
		unlink(pin);
	if (l)
		bpf_link__destroy(l);
}

int pw_pins_open_old_links(const char *pin, struct pw_old_link **out, int *n)
{
	char dir[PATH_MAX];
	pw_pin_path(dir, sizeof(dir), "%s/links", pin);
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	int cap = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			struct pw_old_link *nl = realloc(*out, (size_t)cap * sizeof(**out));
			if (!nl)
				break;
			*out = nl;
		}
		struct pw_old_link *o = &(*out)[(*n)++];
		memset(o, 0, sizeof(*o));
		if (!pw_pin_path(o->path, sizeof(o->path), "%s/%s", dir, de->d_name)) {
			(*n)--;
			continue;
		}
		errno = 0;
		o->link = bpf_link__open(o->path);
		if (!o->link)
			continue;
		struct bpf_link_info info;
		uint32_t len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_link__fd(o->link), &info, &len) == 0 &&
		    info.type == BPF_LINK_TYPE_CGROUP) {
			o->cgid = info.cgroup.cgroup_id;
			o->type = (enum bpf_attach_type)info.cgroup.attach_type;
		}
	}
	closedir(d);
	return 0;
}

void pw_pins_close_old_links(struct pw_old_link *o, int n)
{
	for (int i = 0; i < n; i++)
		if (o[i].link && !o[i].claimed)
			bpf_link__destroy(o[i].link); /* closes our fd; the pin keeps it attached */
	free(o);
}

static void appendf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
	size_t off = strlen(buf);
	if (off + 2 >= len)
		return;
	if (off)
		off += snprintf(buf + off, len - off, "; ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
}

/* Is a pin set there, and does it fit this build? 0: nothing pinned, 1: every map pinned and
 * compatible, -1: something pinned that does not fit (why says what). *pinned gets the pinned
 * config when it has this layout (abi_version 0 otherwise). */
int pw_pins_state(struct bpf_object *obj, const char *pin, char *why, size_t whylen,
                  struct pw_bpf_config *pinned)
{
	memset(pinned, 0, sizeof(*pinned));
	struct bpf_map *map;
	int present = 0;
	char missing[256] = "";
	why[0] = '\0';
	bpf_object__for_each_map(map, obj)
	{
		if (bpf_map__is_internal(map))
			continue;
		char path[PATH_MAX];
		const char *name = bpf_map__name(map);
		pw_pin_path(path, sizeof(path), "%s/maps/%s", pin, name);
		int fd = bpf_obj_get(path);
		if (fd < 0) {
			if (errno == ENOENT)
				appendf(missing, sizeof(missing), "%s", name);
			else
				appendf(why, whylen, "map %s: %s", name, strerror(errno));
			continue;
		}
		present++;
		struct bpf_map_info info;
		uint32_t len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
			appendf(why, whylen, "map %s: %s", name, strerror(errno));
			close(fd);
			continue;
		}
		if (info.type != bpf_map__type(map))
			appendf(why, whylen, "map %s: type %u, want %u", name, info.type,
			        bpf_map__type(map));
		if (info.key_size != bpf_map__key_size(map))
			appendf(why, whylen, "map %s: key size %u, want %u", name, info.key_size,
			        bpf_map__key_size(map));
		if (info.value_size != bpf_map__value_size(map))
			appendf(why, whylen, "map %s: value size %u, want %u", name,
			        info.value_size, bpf_map__value_size(map));
		if (info.max_entries != bpf_map__max_entries(map))
			appendf(why, whylen, "map %s: max_entries %u, want %u", name,
			        info.max_entries, bpf_map__max_entries(map));
		if (info.map_flags != bpf_map__map_flags(map))
			appendf(why, whylen, "map %s: flags %#x, want %#x", name, info.map_flags,
			        bpf_map__map_flags(map));
		if (strcmp(name, "pw_config") == 0 &&
		    info.value_size == sizeof(struct pw_bpf_config)) {
			struct pw_bpf_config c;
			uint32_t zero = 0;
			if (bpf_map_lookup_elem(fd, &zero, &c) < 0)
				appendf(why, whylen, "map %s: unreadable", name);
			else if (c.abi_version != PW_ABI_VERSION)
				appendf(why, whylen, "abi_version %u, want %u", c.abi_version,
				        PW_ABI_VERSION);
			else
				*pinned = c;
		}
		close(fd);
	}
	if (!present && !why[0])
		return 0;
	if (missing[0])
		appendf(why, whylen, "missing map(s): %s", missing);
	return why[0] ? -1 : 1;
}

int pw_pins_reuse_maps(struct bpf_object *obj, const char *pin, char *err, size_t errlen)
{
	struct bpf_map *map;
	bpf_object__for_each_map(map, obj)
	{
		if (bpf_map__is_internal(map))
			continue;
		char path[PATH_MAX];
		pw_pin_path(path, sizeof(path), "%s/maps/%s", pin, bpf_map__name(map));
		int fd = bpf_obj_get(path);
		if (fd < 0) {
			pw_errf(err, errlen, "opening pinned map %s: %s", path, strerror(errno));
			return -1;
		}
		int rc = bpf_map__reuse_fd(map, fd);
		close(fd); /* reuse_fd keeps its own duplicate */
		if (rc < 0) {
			pw_errf(err, errlen, "reusing pinned map %s: %s", path, strerror(-rc));
			return -1;
		}
	}
	return 0;
}

int pw_pins_pin_maps(struct bpf_object *obj, const char *pin, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	pw_pin_path(dir, sizeof(dir), "%s/maps", pin);
	if (pw_host_clear_pins(dir, false, err, errlen) < 0)
		return -1;
	struct bpf_map *map;
	bpf_object__for_each_map(map, obj)
	{
		if (bpf_map__is_internal(map))
			continue;
		char path[PATH_MAX];
		pw_pin_path(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
		int rc = bpf_map__pin(map, path);
		if (rc < 0) {
			pw_errf(err, errlen, "pinning map %s: %s", path, strerror(-rc));
			return -1;
		}
	}
	return 0;
}

int pw_pins_uninstall(const char *pin_path, char *err, size_t errlen)
{
	const char *pin = pin_path && pin_path[0] ? pin_path : PW_LOADER_DEFAULT_PIN;
	struct stat st;
	if (stat(pin, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		pw_errf(err, errlen, "%s: %s", pin, strerror(errno));
		return -1;
	}
	if (strlen(pin) + 64 >= PATH_MAX) {
		pw_errf(err, errlen, "pin path %s is too long", pin);
		return -1;
	}
	/* never remove files from anything but bpffs, whatever the config says */
	if (!S_ISDIR(st.st_mode) || !pw_host_on_bpffs(pin)) {
		pw_errf(err, errlen, "%s is not a directory on a bpf filesystem", pin);
		return -1;
	}
	char dir[PATH_MAX];
	int rc = 0;
	/* links first: once they are gone nothing uses the maps */
	pw_pin_path(dir, sizeof(dir), "%s/links", pin);
	rc |= pw_host_clear_pins(dir, true, err, errlen);
	if (rmdir(dir) < 0 && errno != ENOENT) {
		pw_errf(err, errlen, "removing %s: %s", dir, strerror(errno));
		rc = -1;
	}
	pw_pin_path(dir, sizeof(dir), "%s/maps", pin);
	rc |= pw_host_clear_pins(dir, false, err, errlen);
	if (rmdir(dir) < 0 && errno != ENOENT) {
		pw_errf(err, errlen, "removing %s: %s", dir, strerror(errno));
		rc = -1;
	}
	/* the pin directory goes too, unless it was configured as bpffs's mount point itself */
	if (strcmp(pin, PW_BPFFS_ROOT) != 0 && rmdir(pin) < 0 && errno != ENOENT) {
		pw_errf(err, errlen, "removing %s: %s", pin, strerror(errno));
		rc = -1;
	}
	return rc ? -1 : 0;
}
