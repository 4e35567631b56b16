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

#define AF_INET      2
#define AF_INET6     10
#define SOCK_STREAM  1
#define ECONNREFUSED 111
#define TCP_CLOSE    7

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

/* Is the calling task's cgroup, or one of its ancestors, in scope? */
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
	return false;
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

	/* ancestry, read now so that a parent exiting later cannot change it */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	info->task_start_ns = BPF_CORE_READ(leader, start_boottime);
	struct task_struct *p = BPF_CORE_READ(leader, real_parent);
	__u16 n = 0;
	for (int i = 0; i < PW_MAX_ANCESTORS; i++) {
		if (!p)
			break;
		__u32 ppid = BPF_CORE_READ(p, tgid);
		if (ppid == 0)
			break;
		info->anc_pid[i] = ppid;
		BPF_CORE_READ_STR_INTO(&info->anc_comm[i], p, comm);
		n++;
		if (ppid == 1)
			break;
		p = BPF_CORE_READ(p, real_parent);
	}
	info->n_ancestors = n;
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

/* Decide for one connect(); fills *info. Returns 1 to steer, 0 to leave alone, -1 to refuse. */
static __always_inline int decide(struct bpf_sock_addr *ctx, __u16 port_host,
                                  struct pw_bpf_config **cfgp, __u32 family, const __u32 *addr)
{
	if (ctx->type != SOCK_STREAM)
		return 0;
	if (!bpf_map_lookup_elem(&pw_ports, &port_host))
		return 0;
	struct pw_bpf_config *cfg = get_config();
	if (!cfg || cfg->abi_version != PW_ABI_VERSION)
		return 0; /* not configured yet: pgwardd fills the config before attaching */
	*cfgp = cfg;
	if (cfg->dst_filter) {
		/* only the configured destination networks are steered */
		struct pw_dst_key k = {.prefixlen = 32 + 128, .family = bpf_htonl(family)};
		k.addr[0] = addr[0];
		if (family == AF_INET6) {
			k.addr[1] = addr[1];
			k.addr[2] = addr[2];
			k.addr[3] = addr[3];
		}
		if (!bpf_map_lookup_elem(&pw_dsts, &k))
			return 0;
	}
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 0;
	if (cfg->mark && sk->mark == cfg->mark) {
		count(PW_CNT_SKIPS); /* pgwardd's own upstream connection: never a loop */
		return 0;
	}
	if ((bpf_get_current_pid_tgid() >> 32) == cfg->enforcer_tgid) {
		count(PW_CNT_SKIPS);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	if (cfg->heartbeat_ns == 0 || now - cfg->heartbeat_ns > cfg->heartbeat_timeout_ns)
		return -1;
	return 1;
}

static __always_inline int refuse_or_bypass(struct bpf_sock_addr *ctx, struct pw_bpf_config *cfg,
                                            struct pw_conn_info *info)
{
	if (cfg->fail_mode == PW_FAIL_OPEN) {
		count(PW_CNT_BYPASSES);
		emit(PW_EV_BYPASS, info);
		return 1;
	}
	count(PW_CNT_REFUSALS);
	emit(PW_EV_REFUSED, info);
	/* fail at once with "connection refused": no hang, and never straight to the database */
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/* Keep the record with the socket: getpeername and sockops find it there. */
static __always_inline bool store(struct bpf_sock_addr *ctx, const struct pw_conn_info *info)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return false;
	struct pw_conn_info *st =
	    bpf_sk_storage_get(&pw_sk_info, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return false;
	__builtin_memcpy(st, info, sizeof(*info));
	return true;
}

SEC("cgroup/connect4")
int pw_connect4(struct bpf_sock_addr *ctx)
{
	struct pw_bpf_config *cfg = NULL;
	__u64 cgid;
	if (!in_scope(&cgid))
		return 1;
	__u32 dst4[4] = {ctx->user_ip4, 0, 0, 0};
	int d = decide(ctx, bpf_ntohs(ctx->user_port), &cfg, AF_INET, dst4);
	if (d == 0 || !cfg)
		return 1;
	struct pw_conn_info info = {};
	fill_caller(&info, cgid);
	info.netns_cookie = bpf_get_netns_cookie(ctx);
	info.family = AF_INET;
	info.orig_addr[0] = ctx->user_ip4;
	info.orig_port = (__u16)ctx->user_port;
	if (d < 0 || !store(ctx, &info))
		return refuse_or_bypass(ctx, cfg, &info);
	ctx->user_ip4 = cfg->listen4_addr;
	ctx->user_port = cfg->listen4_port;
	count(PW_CNT_REDIRECTS);
	emit(PW_EV_REDIRECT, &info);
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
	/* one call site: the verifier wants ctx fields read at constant offsets */
	__u32 d4[4] = {a[3], 0, 0, 0};
	int d = decide(ctx, bpf_ntohs(ctx->user_port), &cfg, mapped ? AF_INET : AF_INET6,
	               mapped ? d4 : a);
	if (d == 0 || !cfg)
		return 1;
	if (d > 0 && !mapped && !cfg->listen6_port)
		d = -1; /* no IPv6 listener to steer to: refusing beats a silent bypass */
	struct pw_conn_info info = {};
	fill_caller(&info, cgid);
	info.netns_cookie = bpf_get_netns_cookie(ctx);
	if (mapped) {
		/* Java and other dual-stack clients: IPv4 in IPv6 clothing */
		info.family = AF_INET;
		info.orig_addr[0] = a[3];
	} else {
		info.family = AF_INET6;
		info.orig_addr[0] = a[0];
		info.orig_addr[1] = a[1];
		info.orig_addr[2] = a[2];
		info.orig_addr[3] = a[3];
	}
	info.orig_port = (__u16)ctx->user_port;
	if (d < 0 || !store(ctx, &info))
		return refuse_or_bypass(ctx, cfg, &info);
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
	emit(PW_EV_REDIRECT, &info);
	return 1;
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
