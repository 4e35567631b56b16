// SPDX-License-Identifier: GPL-2.0
/* pgward's kernel programs: steer agents' TCP connections for PostgreSQL ports into pgwardd,
 * record who made each one, keep the illusion (getpeername), and optionally short-cut the
 * agent<->pgwardd hop with a sockmap. CO-RE against the top-level vmlinux.h; helpers of
 * kernel 6.1 or later only. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "pgward/abi.h"

#define AF_UNIX      1
#define AF_INET      2
#define AF_INET6     10
#define SOCK_STREAM  1
#define ECONNREFUSED 111
#define EACCES       13
#define TCP_CLOSE    7
#define IPPROTO_TCP  6

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pw_bpf_config);
} pw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PW_MAX_SCOPE);
	__type(key, __u64); /* cgroup id */
	__type(value, __u8);
} pw_scope SEC(".maps");

/* scope by uid as well: a task whose uid is here is in scope wherever its cgroup is */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PW_MAX_SCOPE_UID);
	__type(key, __u32);
	__type(value, __u8);
} pw_scope_uid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PW_MAX_DENY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pw_deny_key);
	__type(value, __u8);
} pw_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PW_MAX_PORTS);
	__type(key, __u16); /* host order */
	__type(value, __u8);
} pw_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PW_MAX_DSTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pw_dst_key);
	__type(value, __u8);
} pw_dsts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pw_conn_info);
} pw_sk_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PW_MAX_CONNS);
	__type(key, struct pw_conn_key);
	__type(value, struct pw_conn_info);
} pw_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024);
} pw_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PW_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} pw_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PW_MAX_UNIX_OWN);
	__type(key, struct pw_unix_path);
	__type(value, __u8);
} pw_unix_own SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, PW_MAX_CONNS);
	__type(key, struct pw_sock_key);
	__type(value, __u64);
} pw_sockhash SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&pw_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct pw_bpf_config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&pw_config, &zero);
}

/* Is the calling task in scope: its cgroup or one of the cgroup's ancestors, or its uid? The
 * programs are attached to the cgroup root and judge the task that connects, not the cgroup
 * the socket was made in: a socket made outside the scope (before the task was moved in, or
 * by another process and passed over) is judged by whoever connects it. */
static __always_inline bool in_scope(__u64 *cgid)
{
	__u64 id = bpf_get_current_cgroup_id();
	*cgid = id;
	if (bpf_map_lookup_elem(&pw_scope, &id))
		return true;
	for (int level = 0; level < 16; level++) {
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			break;
		if (bpf_map_lookup_elem(&pw_scope, &id))
			return true;
	}
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	return bpf_map_lookup_elem(&pw_scope_uid, &uid) != NULL;
}

/* The executable a task runs, as the mount it came through and its inode (see abi.h). */
static __always_inline void exe_of(struct task_struct *t, __u64 *ino, __u32 *mnt)
{
	struct file *f = BPF_CORE_READ(t, mm, exe_file);
	if (!f) {
		*ino = 0;
		*mnt = 0;
		return;
	}
	*ino = BPF_CORE_READ(f, f_inode, i_ino);
	struct vfsmount *vm = BPF_CORE_READ(f, f_path.mnt);
	struct mount *m = (void *)((char *)vm - bpf_core_field_offset(struct mount, mnt));
	*mnt = (__u32)BPF_CORE_READ(m, mnt_id);
}

static __always_inline void fill_caller(struct pw_conn_info *info, __u64 cgid)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	info->pid = (__u32)pt;
	info->tgid = pt >> 32;
	info->uid = (__u32)ug;
	info->gid = ug >> 32;
	info->cgroup_id = cgid;
	info->connect_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(info->comm, sizeof(info->comm));

	/* the executable and the ancestry, read now: an exec or a parent exiting later cannot
	 * change them */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	exe_of(task, &info->exe_ino, &info->exe_mnt);
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	info->task_start_ns = BPF_CORE_READ(leader, start_boottime);
	/* child: the task whose real_parent p is; its parent_exec_id is p's self_exec_id at
	 * the fork, and every exec of p increments that (kernel/fork.c, fs/exec.c) */
	struct task_struct *child = leader;
	struct task_struct *p = BPF_CORE_READ(leader, real_parent);
	__u16 n = 0, execd = 0;
	for (int i = 0; i < PW_MAX_ANCESTORS; i++) {
		if (!p)
			break;
		__u32 ppid = BPF_CORE_READ(p, tgid);
		if (ppid == 0)
			break;
		info->anc_pid[i] = ppid;
		BPF_CORE_READ_STR_INTO(&info->anc_comm[i], p, comm);
		exe_of(p, &info->anc_exe_ino[i], &info->anc_exe_mnt[i]);
		if (BPF_CORE_READ(child, parent_exec_id) != BPF_CORE_READ(p, self_exec_id))
			execd |= (__u16)(1u << i);
		n++;
		if (ppid == 1)
			break;
		child = BPF_CORE_READ(p, group_leader);
		p = BPF_CORE_READ(child, real_parent);
	}
	info->n_ancestors = n;
	info->anc_execd = execd;
}

static __always_inline void emit(__u32 type, const struct pw_conn_info *info)
{
	struct pw_event *ev = bpf_ringbuf_reserve(&pw_events, sizeof(*ev), 0);
	if (!ev) {
		count(PW_CNT_RB_DROPS);
		return;
	}
	ev->type = type;
	ev->pad = 0;
	__builtin_memcpy(&ev->info, info, sizeof(*info));
	bpf_ringbuf_submit(ev, 0);
}

enum { D_LEAVE = 0, D_STEER = 1, D_REFUSE = -1, D_DENY = -2 };

/* Is (family, port, address) on the deny list? An entry for the port wins over one for every
 * port only by being found first; both refuse. */
static __always_inline bool denied(__u32 family, __u16 port_net, const __u32 *addr)
{
	struct pw_deny_key k = {
	    .prefixlen = 64 + 128, .family = bpf_htonl(family), .port = port_net};
	k.addr[0] = addr[0];
	k.addr[1] = addr[1];
	k.addr[2] = addr[2];
	k.addr[3] = addr[3];
	if (bpf_map_lookup_elem(&pw_deny, &k))
		return true;
	k.port = 0;
	return bpf_map_lookup_elem(&pw_deny, &k) != NULL;
}

/* Decide for one connect() from a task in scope. addr: the destination, IPv4 in [0] (an
 * IPv4-mapped destination arrives folded to AF_INET). */
static __always_inline int decide(struct bpf_sock_addr *ctx, struct pw_bpf_config **cfgp,
                                  __u32 family, const __u32 *addr)
{
	if (ctx->type != SOCK_STREAM)
		return D_LEAVE;
	struct pw_bpf_config *cfg = get_config();
	if (!cfg || cfg->abi_version != PW_ABI_VERSION)
		return D_LEAVE; /* not configured yet: pgwardd fills the config before attaching */
	*cfgp = cfg;
	__u16 port_net = (__u16)ctx->user_port;
	__u16 port_host = bpf_ntohs(port_net);
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return D_LEAVE;
	/* the one exception, for pgwardd's own connections: a mark only CAP_NET_ADMIN can set,
	 * honoured only while pgwardd is alive (never a pid: a pid can be had by forking) */
	__u64 now = bpf_ktime_get_ns();
	bool alive = cfg->heartbeat_ns && now - cfg->heartbeat_ns <= cfg->heartbeat_timeout_ns;
	bool ours = alive && cfg->mark && sk->mark == cfg->mark;
	if (!ours && denied(family, port_net, addr))
		return D_DENY;
	if (!bpf_map_lookup_elem(&pw_ports, &port_host))
		return D_LEAVE;
	if (cfg->dst_filter) {
		/* only the configured destination networks are steered */
		struct pw_dst_key k = {.prefixlen = 32 + 128, .family = bpf_htonl(family)};
		k.addr[0] = addr[0];
		k.addr[1] = addr[1];
		k.addr[2] = addr[2];
		k.addr[3] = addr[3];
		if (!bpf_map_lookup_elem(&pw_dsts, &k))
			return D_LEAVE;
	}
	if (!alive)
		return D_REFUSE;
	if (ours) {
		count(PW_CNT_SKIPS);
		return D_LEAVE;
	}
	return D_STEER;
}

/* The record lives in the socket's storage from the start (getpeername and sockops find it
 * there; the stack is too small for it); a connect that is not steered removes it. */
static __always_inline struct pw_conn_info *record(struct bpf_sock_addr *ctx, __u64 cgid)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return NULL;
	struct pw_conn_info *st =
	    bpf_sk_storage_get(&pw_sk_info, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return NULL;
	__builtin_memset(st, 0, sizeof(*st));
	fill_caller(st, cgid);
	st->netns_cookie = bpf_get_netns_cookie(ctx);
	return st;
}

/* MPTCP: the connect programs see the first subflow, getpeername the MPTCP socket itself;
 * the record goes on both (a plain TCP socket has no MPTCP socket: nothing to do). */
static __always_inline void record_mptcp(struct bpf_sock_addr *ctx, const struct pw_conn_info *info)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk || sk->protocol != IPPROTO_TCP)
		return;
	struct mptcp_sock *msk = bpf_skc_to_mptcp_sock(sk);
	if (!msk)
		return;
	struct pw_conn_info *st =
	    bpf_sk_storage_get(&pw_sk_info, msk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st)
		__builtin_memcpy(st, info, sizeof(*info));
}

/* Refuse the connect at once with "connection refused" (no hang, never straight to the
 * database), or (fail-open, enforcer dead) let it through; either way an event. */
static __always_inline int not_steered(struct bpf_sock_addr *ctx, struct pw_bpf_config *cfg,
                                       struct pw_conn_info *info, int d)
{
	if (d == D_REFUSE && cfg && cfg->fail_mode == PW_FAIL_OPEN) {
		count(PW_CNT_BYPASSES);
		if (info)
			emit(PW_EV_BYPASS, info);
	} else {
		count(d == D_DENY ? PW_CNT_DENIED : PW_CNT_REFUSALS);
		if (info)
			emit(d == D_DENY ? PW_EV_DENIED : PW_EV_REFUSED, info);
		bpf_set_retval(-ECONNREFUSED);
	}
	if (info && ctx->sk)
		bpf_sk_storage_delete(&pw_sk_info, ctx->sk);
	return d == D_REFUSE && cfg && cfg->fail_mode == PW_FAIL_OPEN ? 1 : 0;
}

/* Not ours to steer: a record left by an earlier connect of the same socket must not make
 * getpeername lie or sockops publish a tuple. */
static __always_inline int leave(struct bpf_sock_addr *ctx)
{
	if (ctx->sk)
		bpf_sk_storage_delete(&pw_sk_info, ctx->sk);
	return 1;
}

static __always_inline void set_orig(struct pw_conn_info *info, __u32 family, const __u32 *a,
                                     __u16 port_net)
{
	info->family = family;
	info->orig_addr[0] = a[0];
	info->orig_addr[1] = a[1];
	info->orig_addr[2] = a[2];
	info->orig_addr[3] = a[3];
	info->orig_port = port_net;
}

SEC("cgroup/connect4")
int pw_connect4(struct bpf_sock_addr *ctx)
{
	struct pw_bpf_config *cfg = NULL;
	__u64 cgid;
	if (!in_scope(&cgid))
		return 1;
	__u32 dst4[4] = {ctx->user_ip4, 0, 0, 0};
	int d = decide(ctx, &cfg, AF_INET, dst4);
	if (d == D_LEAVE || !cfg)
		return leave(ctx);
	struct pw_conn_info *info = record(ctx, cgid);
	if (info)
		set_orig(info, AF_INET, dst4, (__u16)ctx->user_port);
	if (d != D_STEER || !info)
		return not_steered(ctx, cfg, info, d == D_STEER ? D_REFUSE : d);
	record_mptcp(ctx, info);
	ctx->user_ip4 = cfg->listen4_addr;
	ctx->user_port = cfg->listen4_port;
	count(PW_CNT_REDIRECTS);
	emit(PW_EV_REDIRECT, info);
	return 1;
}

static __always_inline bool v4mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

SEC("cgroup/connect6")
int pw_connect6(struct bpf_sock_addr *ctx)
{
	struct pw_bpf_config *cfg = NULL;
	__u64 cgid;
	if (!in_scope(&cgid))
		return 1;
	__u32 a[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
	bool mapped = v4mapped(a);
	/* Java and other dual-stack clients: IPv4 in IPv6 clothing, judged as the IPv4 it is */
	__u32 d4[4] = {a[3], 0, 0, 0};
	__u32 *dst = mapped ? d4 : a;
	__u32 family = mapped ? AF_INET : AF_INET6;
	int d = decide(ctx, &cfg, family, dst);
	if (d == D_LEAVE || !cfg)
		return leave(ctx);
	if (d == D_STEER && !mapped && !cfg->listen6_port)
		d = D_REFUSE; /* no IPv6 listener to steer to: refusing beats a silent bypass */
	struct pw_conn_info *info = record(ctx, cgid);
	if (info)
		set_orig(info, family, dst, (__u16)ctx->user_port);
	if (d != D_STEER || !info)
		return not_steered(ctx, cfg, info, d == D_STEER ? D_REFUSE : d);
	record_mptcp(ctx, info);
	if (mapped) {
		ctx->user_ip6[3] = cfg->listen4_addr;
		ctx->user_port = cfg->listen4_port;
	} else {
		ctx->user_ip6[0] = cfg->listen6_addr[0];
		ctx->user_ip6[1] = cfg->listen6_addr[1];
		ctx->user_ip6[2] = cfg->listen6_addr[2];
		ctx->user_ip6[3] = cfg->listen6_addr[3];
		ctx->user_port = cfg->listen6_port;
	}
	count(PW_CNT_REDIRECTS);
	emit(PW_EV_REDIRECT, info);
	return 1;
}

/* The steered listeners cannot be taken: a task in scope may not bind their ports (on any
 * address), so an agent cannot catch another agent's connects in the gap of a restart. */
static __always_inline int bind_check(struct bpf_sock_addr *ctx)
{
	__u64 cgid;
	struct pw_bpf_config *cfg = get_config();
	if (!cfg || cfg->abi_version != PW_ABI_VERSION || !in_scope(&cgid))
		return 1;
	__u16 port = (__u16)ctx->user_port;
	if (!port || (port != cfg->listen4_port && port != cfg->listen6_port))
		return 1;
	count(PW_CNT_BINDS);
	struct pw_event *ev = bpf_ringbuf_reserve(&pw_events, sizeof(*ev), 0);
	if (ev) {
		__builtin_memset(ev, 0, sizeof(*ev));
		ev->type = PW_EV_BIND;
		fill_caller(&ev->info, cgid);
		ev->info.orig_port = port;
		bpf_ringbuf_submit(ev, 0);
	}
	return 0; /* EPERM */
}

SEC("cgroup/bind4")
int pw_bind4(struct bpf_sock_addr *ctx)
{
	return bind_check(ctx);
}

SEC("cgroup/bind6")
int pw_bind6(struct bpf_sock_addr *ctx)
{
	return bind_check(ctx);
}

/* kernel 6.2+: the kernel's view of a sock_addr context, for the unix address (6.7+) */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* The port of a PostgreSQL socket name ".s.PGSQL.<port>" (as the server writes it: decimal,
 * no leading zero), or 0. */
static __always_inline __u32 pg_socket_port(const char *p, __u32 start, __u32 end)
{
	static const char pre[9] = ".s.PGSQL.";
	if (end < start + 10 || end > start + 14)
		return 0;
	for (__u32 i = 0; i < 9; i++) {
		__u32 j = start + i;
		if (j >= PW_UNIX_PATH_LEN || p[j] != pre[i])
			return 0;
	}
	__u32 port = 0;
	for (__u32 i = 9; i < 14; i++) {
		__u32 j = start + i;
		if (j >= end)
			break;
		if (j >= PW_UNIX_PATH_LEN)
			return 0;
		char c = p[j];
		if (c < '0' || c > '9' || (i == 9 && c == '0'))
			return 0;
		port = port * 10 + (__u32)(c - '0');
	}
	return port <= 65535 ? port : 0;
}

/* The name in a unix address: a pathname ends at its first NUL (the kernel terminates it
 * there), an abstract name (leading NUL) is exactly len bytes; nothing after the name may stay
 * in the key. slash: where the last component starts. */
struct unix_scan {
	struct pw_unix_path k;
	__u32 len, end, slash;
	__u8 abstract, ended;
};

static long unix_scan_byte(__u64 i, void *arg)
{
	struct unix_scan *sc = arg;
	if (i >= PW_UNIX_PATH_LEN)
		return 1;
	if (i >= sc->len || sc->ended) {
		sc->k.path[i] = 0;
		return 0;
	}
	char c = sc->k.path[i];
	if (!sc->abstract && c == 0) {
		sc->end = (__u32)i;
		sc->ended = 1;
	} else if (c == '/') {
		sc->slash = (__u32)i + 1;
	}
	return 0;
}

/* A unix connect from the scope to a PostgreSQL server's socket is refused (EACCES, and an
 * event): the programs above steer TCP only, and a local server is the same database. The
 * socket is known by its name ".s.PGSQL.<port>" for a steered port, in any directory or as
 * an abstract name; pgwardd's own unix listeners are exempt (pw_unix_own). The name is
 * matched as written, before the kernel resolves it: a symlink or a bind mount of another
 * name reaches the socket all the same, so the socket's permissions stay what keeps a
 * determined agent out (pgwardd warns when they let every local user in). Loaded as
 * BPF_CGROUP_UNIX_CONNECT by the loader (kernel 6.7+; libbpf 1.1 has no section name for
 * it). */
SEC("cgroup/connect4")
int pw_connect_unix(struct bpf_sock_addr *ctx)
{
	__u64 cgid;
	struct pw_bpf_config *cfg = get_config();
	if (!cfg || cfg->abi_version != PW_ABI_VERSION || !cfg->unix_refuse || !in_scope(&cgid))
		return 1;
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	__u32 len = sa->uaddrlen;
	/* the address after sun_family */
	if (len <= 2 || len > 2 + PW_UNIX_PATH_LEN)
		return 1;
	len -= 2;
	struct unix_scan sc;
	__builtin_memset(&sc, 0, sizeof(sc));
	if (bpf_probe_read_kernel(&sc.k, sizeof(sc.k), (char *)sa->uaddr + 2) < 0)
		return 1;
	sc.len = len;
	sc.end = len;
	sc.abstract = sc.k.path[0] == 0;
	/* one verified callback instead of 108 unrolled branches */
	bpf_loop(PW_UNIX_PATH_LEN, unix_scan_byte, &sc, 0);
	__u32 slash = sc.slash, end = sc.end;
	if (sc.abstract && slash == 0)
		slash = 1;
	struct pw_unix_path *kp = &sc.k;
	__u32 port = pg_socket_port(kp->path, slash, end);
	if (!port)
		return 1;
	__u16 ph = (__u16)port;
	if (!bpf_map_lookup_elem(&pw_ports, &ph) || bpf_map_lookup_elem(&pw_unix_own, kp))
		return 1;
	count(PW_CNT_UNIX);
	struct pw_event *ev = bpf_ringbuf_reserve(&pw_events, sizeof(*ev), 0);
	if (ev) {
		__builtin_memset(ev, 0, sizeof(*ev));
		ev->type = PW_EV_UNIX_REFUSED;
		fill_caller(&ev->info, cgid);
		ev->info.family = AF_UNIX;
		ev->info.orig_port = bpf_htons(ph);
		bpf_ringbuf_submit(ev, 0);
	} else {
		count(PW_CNT_RB_DROPS);
	}
	bpf_set_retval(-EACCES);
	return 0;
}

/* The agent asks who it is talking to: the address it dialled. */
SEC("cgroup/getpeername4")
int pw_getpeername4(struct bpf_sock_addr *ctx)
{
	if (!ctx->sk)
		return 1;
	struct pw_conn_info *info = bpf_sk_storage_get(&pw_sk_info, ctx->sk, 0, 0);
	if (info && info->family == AF_INET) {
		ctx->user_ip4 = info->orig_addr[0];
		ctx->user_port = info->orig_port;
	}
	return 1;
}

SEC("cgroup/getpeername6")
int pw_getpeername6(struct bpf_sock_addr *ctx)
{
	if (!ctx->sk)
		return 1;
	struct pw_conn_info *info = bpf_sk_storage_get(&pw_sk_info, ctx->sk, 0, 0);
	if (!info)
		return 1;
	if (info->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = info->orig_addr[0];
	} else {
		ctx->user_ip6[0] = info->orig_addr[0];
		ctx->user_ip6[1] = info->orig_addr[1];
		ctx->user_ip6[2] = info->orig_addr[2];
		ctx->user_ip6[3] = info->orig_addr[3];
	}
	ctx->user_port = info->orig_port;
	return 1;
}

/* The socket's own view of its 4-tuple, IPv4-mapped folded to IPv4. */
static __always_inline void sock_key(struct bpf_sock_ops *skops, struct pw_sock_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->netns_cookie = bpf_get_netns_cookie(skops);
	k->local_port = skops->local_port;
	/* remote_port arrives in network order in the upper half: ntohl yields host order */
	k->remote_port = bpf_ntohl(skops->remote_port);
	if (skops->family == AF_INET) {
		k->family = AF_INET;
		k->local_addr[0] = skops->local_ip4;
		k->remote_addr[0] = skops->remote_ip4;
		return;
	}
	__u32 l[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
	              skops->local_ip6[3]};
	__u32 r[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2],
	              skops->remote_ip6[3]};
	if (v4mapped(l) && v4mapped(r)) {
		k->family = AF_INET;
		k->local_addr[0] = l[3];
		k->remote_addr[0] = r[3];
		return;
	}
	k->family = AF_INET6;
	__builtin_memcpy(k->local_addr, l, sizeof(l));
	__builtin_memcpy(k->remote_addr, r, sizeof(r));
}

/* The agent socket's tuple map key: the tuple as pgwardd will see it after accept(). */
static __always_inline void conn_key(struct bpf_sock_ops *skops, struct pw_conn_key *key)
{
	struct pw_sock_key k;
	sock_key(skops, &k);
	__builtin_memset(key, 0, sizeof(*key));
	key->netns_cookie = k.netns_cookie;
	key->family = k.family;
	key->agent_port = (__u16)k.local_port;
	key->enforcer_port = (__u16)k.remote_port;
	__builtin_memcpy(key->agent_addr, k.local_addr, sizeof(key->agent_addr));
	__builtin_memcpy(key->enforcer_addr, k.remote_addr, sizeof(key->enforcer_addr));
}

static __always_inline bool is_enforcer_port(struct pw_bpf_config *cfg, __u32 port_host)
{
	return port_host == bpf_ntohs(cfg->listen4_port) ||
	       (cfg->listen6_port && port_host == bpf_ntohs(cfg->listen6_port));
}

SEC("sockops")
int pw_sockops(struct bpf_sock_ops *skops)
{
	struct pw_bpf_config *cfg = get_config();
	if (!cfg)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB: {
		/* the agent's socket, destination already rewritten: publish its record under
		 * the tuple pgwardd will see after accept() */
		struct bpf_sock *sk = skops->sk;
		if (!sk)
			return 1;
		struct pw_conn_info *info = bpf_sk_storage_get(&pw_sk_info, sk, 0, 0);
		if (!info)
			return 1;
		struct pw_conn_key key;
		conn_key(skops, &key);
		if (bpf_map_update_elem(&pw_conns, &key, info, BPF_ANY) != 0)
			count(PW_CNT_TUPLE_MISS);
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	}
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: {
		if (!cfg->fastpath)
			return 1;
		struct pw_sock_key k;
		sock_key(skops, &k);
		/* agent side: remote is pgwardd's listener; pgwardd side: local is */
		bool agent = false;
		if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
		    is_enforcer_port(cfg, k.remote_port)) {
			struct bpf_sock *sk = skops->sk;
			if (sk && bpf_sk_storage_get(&pw_sk_info, sk, 0, 0))
				agent = true;
		}
		bool enforcer = skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB &&
		                is_enforcer_port(cfg, k.local_port);
		if (agent || enforcer)
			bpf_sock_hash_update(skops, &pw_sockhash, &k, BPF_NOEXIST);
		return 1;
	}
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == TCP_CLOSE) {
			struct pw_conn_key key;
			conn_key(skops, &key);
			bpf_map_delete_elem(&pw_conns, &key);
		}
		return 1;
	}
	return 1;
}

/* Fast path: data written on one end of an agent<->pgwardd connection goes straight to the
 * other end's receive queue. No peer in the map: the normal TCP path, never a drop, never a
 * cork. */
SEC("sk_msg")
int pw_sk_msg(struct sk_msg_md *msg)
{
	struct pw_sock_key peer = {};
	peer.netns_cookie = bpf_get_netns_cookie(msg);
	peer.local_port = bpf_ntohl(msg->remote_port);
	peer.remote_port = msg->local_port;
	if (msg->family == AF_INET) {
		peer.family = AF_INET;
		peer.local_addr[0] = msg->remote_ip4;
		peer.remote_addr[0] = msg->local_ip4;
	} else {
		__u32 l[4] = {msg->local_ip6[0], msg->local_ip6[1], msg->local_ip6[2],
		              msg->local_ip6[3]};
		__u32 r[4] = {msg->remote_ip6[0], msg->remote_ip6[1], msg->remote_ip6[2],
		              msg->remote_ip6[3]};
		if (v4mapped(l) && v4mapped(r)) {
			peer.family = AF_INET;
			peer.local_addr[0] = r[3];
			peer.remote_addr[0] = l[3];
		} else {
			peer.family = AF_INET6;
			__builtin_memcpy(peer.local_addr, r, sizeof(r));
			__builtin_memcpy(peer.remote_addr, l, sizeof(l));
		}
	}
	long rc = bpf_msg_redirect_hash(msg, &pw_sockhash, &peer, BPF_F_INGRESS);
	if (rc == SK_PASS)
		count(PW_CNT_FASTPATH_REDIRECTS);
	else
		count(PW_CNT_FASTPATH_FALLBACKS);
	return SK_PASS;
}
