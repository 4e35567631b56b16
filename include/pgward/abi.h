/* The contract between the kernel programs (bpf/pgward.bpf.c) and pgwardd: map layouts and
 * the records they exchange. Included by both sides, so only fixed-width types, no pointers,
 * explicit padding. Bump PW_ABI_VERSION on any change: a pinned object of another version is
 * replaced, never reused. */
#ifndef PGWARD_ABI_H
#define PGWARD_ABI_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define PW_ABI_VERSION   4
#define PW_MAX_ANCESTORS 8
#define PW_COMM_LEN      16
#define PW_MAX_SCOPE     256
#define PW_MAX_PORTS     64
#define PW_MAX_CONNS     65536
#define PW_MAX_DSTS      64
#define PW_MAX_DENY      64
#define PW_MAX_SCOPE_UID 64
#define PW_MAX_UNIX_OWN  16
#define PW_UNIX_PATH_LEN 108 /* sizeof sockaddr_un.sun_path */

/* config map (array, one entry) */
#define PW_FAIL_CLOSED 0
#define PW_FAIL_OPEN   1
struct pw_bpf_config {
	__u32 abi_version;
	__u32 fail_mode;            /* PW_FAIL_CLOSED / PW_FAIL_OPEN */
	__u64 heartbeat_ns;         /* CLOCK_MONOTONIC of pgwardd's last heartbeat */
	__u64 heartbeat_timeout_ns; /* stale after this: enforcer considered dead */
	__u32 mark;                 /* SO_MARK on pgwardd's own sockets (only CAP_NET_ADMIN can set
	                               one): never steered, but only while the heartbeat is fresh */
	__u32 enforcer_tgid;        /* pgwardd's pid: for takeover and logs only, never trusted */
	__u32 listen4_addr;         /* network order */
	__u16 listen4_port;         /* network order */
	__u16 listen6_port;         /* network order; 0 = no IPv6 listener */
	__u32 listen6_addr[4];      /* network order */
	__u32 fastpath;             /* sockmap redirect between agent and pgwardd */
	__u32 dst_filter;           /* steer only destinations in pw_dsts */
	__u32 unix_refuse; /* refuse unix connects to PostgreSQL sockets of steered ports */
	__u32 pad;
};

/* pw_unix_own key: one of pgwardd's own unix listeners, never refused; the path as an agent
 * writes it (a pathname, or an abstract name after its leading NUL), zero padded */
struct pw_unix_path {
	char path[PW_UNIX_PATH_LEN];
};

/* destination filter (LPM trie): prefix over family then address, so one trie holds both
 * families; prefixlen = 32 + the CIDR's length */
struct pw_dst_key {
	__u32 prefixlen;
	__u32 family;  /* network order, part of the prefix */
	__u32 addr[4]; /* network order; IPv4 in [0] */
};

/* tuple map key: the agent's connection as pgwardd sees it after accept() */
struct pw_conn_key {
	__u64 netns_cookie;
	__u32 family;        /* AF_INET or AF_INET6 (IPv4-mapped IPv6 is folded to AF_INET) */
	__u16 agent_port;    /* host order */
	__u16 enforcer_port; /* host order */
	__u32 agent_addr[4]; /* network order; IPv4 in [0] */
	__u32 enforcer_addr[4];
};

/* deny list (LPM trie): connects from the scope to these destinations are refused. Prefix
 * over family, port (0 = any port), then address: prefixlen = 64 + the CIDR's length */
struct pw_deny_key {
	__u32 prefixlen;
	__u32 family;  /* network order, part of the prefix */
	__u32 port;    /* network order in the low 16 bits; 0 = every port */
	__u32 addr[4]; /* network order; IPv4 in [0] */
};

/* what the kernel knew at connect time. An executable is named by the mount it was opened
 * through and its inode number, as /proc/PID/fdinfo names an open file ("mnt_id", "ino"):
 * pgwardd resolves a path in its own mount namespace and compares, so neither an exec after
 * the connect nor a mount namespace of the agent's can change what the record says. */
struct pw_conn_info {
	__u64 cgroup_id;
	__u64 netns_cookie;
	__u64 connect_ns;    /* CLOCK_MONOTONIC */
	__u64 task_start_ns; /* start_boottime of the calling thread group leader */
	__u32 pid;           /* thread id */
	__u32 tgid;          /* process id */
	__u32 uid, gid;
	__u32 family;    /* of the original destination, folded like the key */
	__u16 orig_port; /* network order */
	__u16 n_ancestors;
	__u32 orig_addr[4]; /* network order */
	char comm[PW_COMM_LEN];
	__u32 anc_pid[PW_MAX_ANCESTORS];
	char anc_comm[PW_MAX_ANCESTORS][PW_COMM_LEN];
	__u64 exe_ino; /* the caller's executable; 0 = none (kernel thread) */
	__u32 exe_mnt;
	/* bit i: ancestor i ran exec after it forked the chain below it (the child's
	 * parent_exec_id is not its self_exec_id), so it did not spawn it as what it is now */
	__u16 anc_execd;
	__u16 pad2;
	__u64 anc_exe_ino[PW_MAX_ANCESTORS];
	__u32 anc_exe_mnt[PW_MAX_ANCESTORS];
};

/* ring buffer events */
enum pw_event_type {
	PW_EV_REDIRECT = 1,     /* a connect was steered into pgwardd */
	PW_EV_REFUSED = 2,      /* fail-closed: the enforcer is not alive */
	PW_EV_BYPASS = 3,       /* fail-open: the connect went direct */
	PW_EV_DENIED = 4,       /* a destination on the deny list (any pgwardd state) */
	PW_EV_BIND = 5,         /* a bind to a steered listener's port, refused */
	PW_EV_UNIX_REFUSED = 6, /* a unix connect to a PostgreSQL socket (.s.PGSQL.<port>) */
};
struct pw_event {
	__u32 type;
	__u32 pad;
	struct pw_conn_info info;
};

/* per-CPU counters (array index) */
enum pw_counter {
	PW_CNT_REDIRECTS,
	PW_CNT_SKIPS,      /* in scope and port, but our own socket (mark) */
	PW_CNT_REFUSALS,   /* fail-closed refusals */
	PW_CNT_BYPASSES,   /* fail-open direct connects */
	PW_CNT_RB_DROPS,   /* ring buffer full */
	PW_CNT_TUPLE_MISS, /* sockops found no record (user side counts accept misses) */
	PW_CNT_FASTPATH_REDIRECTS,
	PW_CNT_FASTPATH_FALLBACKS,
	PW_CNT_DENIED, /* deny-list refusals */
	PW_CNT_BINDS,  /* binds to a steered port refused */
	PW_CNT_UNIX,   /* unix connects to PostgreSQL sockets refused */
	PW_CNT_MAX,
};

/* sockhash key for the fast path: a socket by its own view of the 4-tuple */
struct pw_sock_key {
	__u32 family;
	__u32 local_port;  /* host order */
	__u32 remote_port; /* host order */
	__u32 pad;
	__u32 local_addr[4];
	__u32 remote_addr[4];
	__u64 netns_cookie;
};

#endif
