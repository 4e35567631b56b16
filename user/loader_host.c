/* What the eBPF redirect needs of the host: see include/pgward/loader_host.h. */
#include "pgward/loader_host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "pgward/log.h"

#define BPFFS_MAGIC   0xcafe4a11
#define CGROUP2_MAGIC 0x63677270

int pw_host_check_caps(char *err, size_t errlen)
{
	static const struct {
		int cap;
		const char *name;
	} need[] = {
	    {39, "CAP_BPF"}, {12, "CAP_NET_ADMIN"}, {38, "CAP_PERFMON"}, {21, "CAP_SYS_ADMIN"}};
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0) {
		pw_errf(err, errlen, "capget: %s", strerror(errno));
		return -1;
	}
	char missing[128] = "";
	size_t off = 0;
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		int c = need[i].cap;
		if (data[c / 32].effective & (1u << (c % 32)))
			continue;
		off += snprintf(missing + off, sizeof(missing) - off, "%s%s", off ? " " : "",
		                need[i].name);
	}
	if (off) {
		pw_errf(err, errlen,
		        "pgwardd needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_ADMIN "
		        "(missing: %s)",
		        missing);
		return -1;
	}
	return 0;
}

/* The cgroup v2 id of a directory: its kernfs node id, which the file handle carries (and
 * which is also the inode number on 64-bit). */
int pw_host_cgroup_id(const char *path, uint64_t *id, char *err, size_t errlen)
{
	struct stat st;
	struct statfs sf;
	if (stat(path, &st) < 0) {
		pw_errf(err, errlen, "cgroup %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		pw_errf(err, errlen, "cgroup %s: not a directory", path);
		return -1;
	}
	if (statfs(path, &sf) < 0 || (unsigned long)sf.f_type != CGROUP2_MAGIC) {
		pw_errf(err, errlen, "cgroup %s: not a cgroup v2 directory", path);
		return -1;
	}
	union {
		struct file_handle fh;
		char space[sizeof(struct file_handle) + 16];
	} h;
	int mount_id;
	h.fh.handle_bytes = 16;
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) == 0 &&
	    h.fh.handle_bytes == sizeof(uint64_t))
		memcpy(id, h.fh.f_handle, sizeof(*id));
	else
		*id = st.st_ino;
	return 0;
}

/* The cgroup2 mount point: the root the programs are attached to. */
int pw_host_cgroup_root(char *out, size_t len)
{
	FILE *m = setmntent("/proc/self/mounts", "re");
	if (!m)
		return -1;
	struct mntent *e;
	int rc = -1;
	while ((e = getmntent(m))) {
		if (strcmp(e->mnt_type, "cgroup2") == 0) {
			rc = (size_t)snprintf(out, len, "%s", e->mnt_dir) < len ? 0 : -1;
			break;
		}
	}
	endmntent(m);
	return rc;
}

/* "<cgroup2 mount><path from /proc/self/cgroup>", or -1 */
int pw_host_self_cgroup(char *out, size_t len)
{
	char rel[PATH_MAX] = "", mnt[PATH_MAX] = "";
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char line[PATH_MAX + 16];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			if ((size_t)snprintf(rel, sizeof(rel), "%s", line + 3) >= sizeof(rel))
				rel[0] = '\0'; /* too long: unknown */
			break;
		}
	}
	fclose(f);
	if (!rel[0] || pw_host_cgroup_root(mnt, sizeof(mnt)) < 0)
		return -1;
	if (strcmp(rel, "/") == 0)
		rel[0] = '\0';
	if ((size_t)snprintf(out, len, "%s%s", mnt, rel) >= len)
		return -1;
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

bool pw_host_on_bpffs(const char *path)
{
	struct statfs sf;
	return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == BPFFS_MAGIC;
}

int pw_host_prepare_pin_dir(const char *pin, char *err, size_t errlen)
{
	size_t rl = strlen(PW_BPFFS_ROOT);
	if (strncmp(pin, PW_BPFFS_ROOT, rl) == 0 && (pin[rl] == '/' || !pin[rl]) &&
	    !pw_host_on_bpffs(PW_BPFFS_ROOT)) {
		if (mkdir(PW_BPFFS_ROOT, 0700) < 0 && errno != EEXIST) {
			pw_errf(err, errlen, "mkdir %s: %s", PW_BPFFS_ROOT, strerror(errno));
			return -1;
		}
		if (mount("bpf", PW_BPFFS_ROOT, "bpf", 0, "mode=0700") < 0) {
			pw_errf(err, errlen, "mounting bpffs on %s: %s", PW_BPFFS_ROOT,
			        strerror(errno));
			return -1;
		}
		pw_info("mounted bpffs on %s", PW_BPFFS_ROOT);
	}
	char sub[PATH_MAX];
	for (int i = 0; i < 2; i++) {
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", pin, i ? "links" : "maps") >=
		        sizeof(sub) ||
		    mkdir_p(sub, 0700) < 0) {
			pw_errf(err, errlen, "creating %s: %s", sub, strerror(errno));
			return -1;
		}
	}
	if (!pw_host_on_bpffs(pin)) {
		pw_errf(err, errlen, "pin path %s is not on a bpf filesystem", pin);
		return -1;
	}
	return 0;
}

/* Remove whatever is pinned in <dir> (links are detached first); -1 if something stays. */
int pw_host_clear_pins(const char *dir, bool links, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		pw_errf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[PATH_MAX];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
		    sizeof(path)) {
			pw_errf(err, errlen, "%s/%s: name too long", dir, de->d_name);
			rc = -1;
			continue;
		}
		if (links) {
			struct bpf_link *l = bpf_link__open(path);
			if (l) {
				bpf_link__detach(l);
				bpf_link__destroy(l);
			}
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			pw_errf(err, errlen, "removing %s: %s", path, strerror(errno));
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}
