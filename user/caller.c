/* The facts of the process that made a steered connection. See include/pgward/caller.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pgward/caller.h"
#include "pgward/log.h"

/* The cgroup v2 id is the directory's kernfs node id; open_by_handle_at() resolves it to the
 * directory without walking the tree. The mount fd and the mount's path are opened once. */
static int cgroup_mount_fd = -2; /* set once under pthread_once semantics below */
static char cgroup_mount[PATH_MAX];

static void find_cgroup_mount(void)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char dev[256], dir[PATH_MAX], type[64];
	cgroup_mount_fd = -1;
	if (!f)
		return;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]\n", dev, dir, type) == 3) {
		if (strcmp(type, "cgroup2") == 0) {
			snprintf(cgroup_mount, sizeof(cgroup_mount), "%s", dir);
			cgroup_mount_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			break;
		}
	}
	fclose(f);
}

static void cgroup_path(unsigned long long id, char *out, size_t len)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, find_cgroup_mount);
	out[0] = 0;
	if (cgroup_mount_fd < 0)
		return;
	struct {
		struct file_handle fh;
		unsigned long long id;
	} h = {.fh = {.handle_bytes = sizeof(unsigned long long), .handle_type = 0xfe}};
	/* FILEID_KERNFS */
	h.id = id;
	int fd = open_by_handle_at(cgroup_mount_fd, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	char link[64], path[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	close(fd);
	if (n <= 0)
		return;
	path[n] = 0;
	size_t ml = strlen(cgroup_mount);
	if (strncmp(path, cgroup_mount, ml) == 0)
		snprintf(out, len, "%s", path[ml] ? path + ml : "/");
}

unsigned long long pw_proc_start_ticks(long pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%ld/stat", pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* comm (field 2) may hold spaces and parentheses: fields are counted after the last ')';
	 * no strtok: this runs on worker threads */
	char *s = strrchr(buf, ')');
	if (!s)
		return 0;
	s++;
	for (int field = 3; field < 22; field++) { /* s is at field 3 (state) */
		while (*s == ' ')
			s++;
		while (*s && *s != ' ')
			s++;
	}
	return strtoull(s, NULL, 10);
}

/* start_boottime (ns) -> /proc/PID/stat field 22 (clock ticks since boot) */
static bool start_time_matches(int pid, unsigned long long start_ns)
{
	unsigned long long ticks = pw_proc_start_ticks(pid);
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long want = start_ns / (1000000000ULL / (unsigned long long)hz);
	return ticks && (ticks == want || ticks + 1 == want || ticks == want + 1); /* rounding */
}

/* Is path, resolved in pgwardd's own mount namespace, the file process pid runs, and that file
 * the one the kernel recorded at connect time (its inode)? The running file is compared by
 * device and inode, which do not depend on the mount namespace (mount ids do: pgwardd in a
 * systemd sandbox or a container has mounts of its own, with other ids, and would verify
 * nothing). A bind mount over a trusted path in the agent's own namespace runs another file
 * than the path names here; an exec since the connect runs another inode. */
static bool same_file(int pid, const char *path, uint64_t ino)
{
	if (!path[0] || !ino)
		return false;
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/exe", pid);
	struct stat running, named;
	if (stat(p, &running) != 0 || stat(path, &named) != 0)
		return false;
	return (uint64_t)running.st_ino == ino && running.st_dev == named.st_dev &&
	       running.st_ino == named.st_ino;
}

/* The executable's path, accepted only when it names, in pgwardd's mount namespace, the file
 * the kernel recorded at connect time: an exec since the connect, a process gone, or a mount
 * namespace of the agent's (a bind mount over a trusted path) all leave it "". */
static void read_exe(int pid, uint64_t ino, char *out, size_t len)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/exe", pid);
	ssize_t n = readlink(p, out, len - 1);
	out[n > 0 ? n : 0] = 0;
	if (!same_file(pid, out, ino))
		out[0] = 0;
}

void pw_caller_from_kernel(const struct pw_conn_info *info, struct pw_kernel_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->info = *info;
	memcpy(f->comm, info->comm, PW_COMM_LEN);
	cgroup_path(info->cgroup_id, f->cgroup, sizeof(f->cgroup));

	/* pin the process with a pidfd, check it is the one that connected, read its exe, and
	 * check the pidfd still refers to a live process: no window for a recycled pid */
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)info->tgid, 0);
	if (pidfd >= 0) {
		if (start_time_matches((int)info->tgid, info->task_start_ns)) {
			read_exe((int)info->tgid, info->exe_ino, f->exe, sizeof(f->exe));
			if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0)
				f->exe_verified = f->exe[0] != 0;
			else
				f->exe[0] = 0;
		}
		close(pidfd);
	}
	int n = info->n_ancestors > PW_MAX_ANCESTORS ? PW_MAX_ANCESTORS : info->n_ancestors;
	for (int i = 0; i < n; i++) {
		memcpy(f->anc_comm[i], info->anc_comm[i], PW_COMM_LEN);
		/* an ancestor counts as what it ran at connect time, and only if it already ran
		 * that when it forked the chain (abi.h, anc_execd); best effort: it may be gone */
		if (!(info->anc_execd & (1u << i)))
			read_exe((int)info->anc_pid[i], info->anc_exe_ino[i], f->anc_exe[i],
			         sizeof(f->anc_exe[i]));
		f->view.anc_comm[i] = f->anc_comm[i];
		f->view.anc_exe[i] = f->anc_exe[i];
	}
	f->view.n_ancestors = n;
	f->view.cgroup = f->cgroup;
	f->view.exe = f->exe;
	f->view.comm = f->comm;
	f->view.uid = info->uid;
	f->view.gid = info->gid;
}

void pw_caller_describe(const struct pw_kernel_facts *f, char *out, size_t len)
{
	/* what the agent's processes are called is theirs to choose: quoted and escaped */
	int off = snprintf(out, len, "pid %u uid %u gid %u comm %s exe %s cgroup %s", f->info.tgid,
	                   f->info.uid, f->info.gid, PW_Q(f->comm), f->exe[0] ? PW_Q(f->exe) : "?",
	                   f->cgroup[0] ? PW_Q(f->cgroup) : "?");
	for (int i = 0; i < f->view.n_ancestors && off > 0 && (size_t)off < len; i++)
		off += snprintf(out + off, len - (size_t)off, "%s%s(%u)", i ? "<-" : " ancestors ",
		                PW_Q(f->anc_comm[i]), f->info.anc_pid[i]);
}

void pw_caller_dialled(const struct pw_kernel_facts *f, struct sockaddr_storage *dst)
{
	memset(dst, 0, sizeof(*dst));
	if (f->info.family == AF_INET) {
		struct sockaddr_in *a = (void *)dst;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = f->info.orig_addr[0];
		a->sin_port = f->info.orig_port;
	} else {
		struct sockaddr_in6 *a = (void *)dst;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, f->info.orig_addr, 16);
		a->sin6_port = f->info.orig_port;
	}
}

bool pw_caller_local(const struct sockaddr *peer)
{
	if (peer->sa_family == AF_UNIX)
		return true;
	if (peer->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)peer)->sin_addr.s_addr) >> 24) == 127;
	if (peer->sa_family != AF_INET6)
		return false;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)peer)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}
