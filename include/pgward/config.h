/* pgwardd's configuration: one JSON file (jansson), loaded whole and immutable once built.
 * A reload builds a new struct pw_config and swaps it in; sessions keep a reference to the
 * one they started with (pw_config_ref/unref), so nothing is ever mutated under a reader. */
#ifndef PGWARD_CONFIG_H
#define PGWARD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <sys/socket.h>

#include "pgward/auth.h"
#include "pgward/log.h"

#define PW_NAME_MAX 64	/* PostgreSQL's NAMEDATALEN */
#define PW_HOST_MAX 256

enum pw_sslmode {
	PW_SSL_DISABLE,
	PW_SSL_PREFER,
	PW_SSL_REQUIRE,
	PW_SSL_VERIFY_CA,
	PW_SSL_VERIFY_FULL,
};

struct pw_listen {
	bool is_unix;
	char host[PW_HOST_MAX]; /* TCP: numeric address or name ("127.0.0.1", "::1", "*") */
	int port;
	char unix_path[108];	/* unix: the socket file's path */
	int unix_mode;		/* unix: permission bits, default 0777 as PostgreSQL */
};

struct pw_upstream {
	char name[PW_NAME_MAX];
	char host[PW_HOST_MAX];	   /* TCP host (empty when unix_dir is set) */
	int port;		   /* default 5432 */
	char unix_dir[PATH_MAX];   /* socket directory: connects to <dir>/.s.PGSQL.<port> */
	char database[PW_NAME_MAX]; /* empty: use the client's database */
	char user[PW_NAME_MAX];
	char password[1024];	   /* read from password_file at load time (trailing \n cut) */
	bool has_password;
	enum pw_sslmode sslmode;   /* default prefer */
	char ca_file[PATH_MAX];	   /* needed for verify-ca / verify-full */
	bool allow_cleartext;	   /* cleartext password without TLS; default false */
	int connect_timeout_ms;	   /* default 10000 */
	/* Session pooling: when a client leaves while its upstream connection is idle, the
	 * connection is reset (DISCARD ALL) and parked for the next client with the same
	 * startup parameters, saving a backend start. Off by default: a fresh backend per
	 * client is the transparent choice. */
	bool reuse_connections;
	int pool_idle_timeout_ms;  /* default 60000: a parked connection is closed after this */
	int pool_max_idle;	   /* default 32, per worker */
};

enum pw_client_auth { PW_CLIENT_AUTH_TRUST, PW_CLIENT_AUTH_PASSWORD };

#define PW_MAX_REDIRECT_CGROUPS 32
#define PW_MAX_REDIRECT_PORTS	32
#define PW_MAX_REDIRECT_DSTS	32

struct pw_cidr {
	int family;	  /* AF_INET or AF_INET6 */
	int bits;	  /* prefix length */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
};

/* Transparent interception (the eBPF redirect). */
struct pw_redirect {
	bool enabled;				/* the "redirect" section is present */
	char cgroups[PW_MAX_REDIRECT_CGROUPS][PATH_MAX]; /* cgroup v2 directories in scope */
	int n_cgroups;
	int ports[PW_MAX_REDIRECT_PORTS];	/* destination ports steered; default 5432 */
	int n_ports;
	bool fail_open;				/* default false: fail closed */
	bool fastpath;				/* sockmap agent<->pgwardd; default true */
	int heartbeat_timeout_ms;		/* default 1000 */
	unsigned mark;				/* SO_MARK of pgwardd's sockets; default 0x70677764 */
	char pin_path[PATH_MAX];		/* default /sys/fs/bpf/pgward */
	/* where steered connections land: pgwardd's own listeners for them */
	char listen4[64];			/* default "127.0.0.1" */
	int listen4_port;			/* default 15432 */
	char listen6[64];			/* default "::1"; empty = no IPv6 */
	int listen6_port;			/* default: listen4_port */
	/* optional: steer only these destination networks ("10.0.0.0/8", "fd00::/8") */
	struct pw_cidr destinations[PW_MAX_REDIRECT_DSTS];
	int n_destinations;
};

struct pw_identity {
	char name[PW_NAME_MAX];
	/* fnmatch(3) globs on the startup packet; empty string means "any". */
	char match_user[PW_NAME_MAX];
	char match_database[PW_NAME_MAX];
	char match_application_name[PW_NAME_MAX];
	/* kernel facts (steered connections only); a missing key matches anything. */
	char match_cgroup[PATH_MAX];	   /* glob on the cgroup v2 path below the mount */
	char match_exe[PATH_MAX];	   /* glob on the executable's path */
	char match_comm[PW_NAME_MAX];	   /* glob on the thread's comm */
	char match_ancestor_comm[PW_NAME_MAX]; /* glob: any ancestor's comm */
	char match_ancestor_exe[PATH_MAX];     /* glob: any ancestor's executable */
	long long match_uid;		   /* -1 = any */
	long long match_gid;		   /* -1 = any */
	bool needs_kernel;		   /* any kernel fact set: only steered sessions match */
	enum pw_client_auth auth;
	struct pw_scram_verifier verifier; /* when auth == PASSWORD */
	int upstream;			   /* index into pw_config.upstreams; -1 = the upstream
					    * matching the steered connection's destination */
};

struct pw_config {
	char path[PATH_MAX];
	int workers;			/* default: number of online CPUs */
	enum pw_log_level log_level;	/* default info */
	int shutdown_grace_ms;		/* default 30000 */
	char control_socket[108];	/* optional; empty = none */

	struct pw_listen *listen;
	int n_listen;

	bool tls_enabled;		/* tls.cert and tls.key given */
	char tls_cert[PATH_MAX];
	char tls_key[PATH_MAX];

	struct pw_upstream *upstreams;
	int n_upstreams;

	struct pw_identity *identities;
	int n_identities;

	struct pw_redirect redirect;

	/* limits */
	size_t max_message_bytes;   /* default 1 GiB: any protocol message, either side */
	size_t max_statement_bytes; /* default 1 MiB: Query/Parse text held for inspection */
	size_t max_bind_bytes;	    /* default 64 MiB: Bind held for inspection */
	size_t max_startup_bytes;   /* default 10000 (PostgreSQL's MAX_STARTUP_PACKET_LENGTH) */
	int auth_timeout_ms;	    /* default 60000: client must finish startup+auth in this */

	int refcount; /* atomic; see pw_config_ref */
};

/* Load and validate. On error returns -1 and writes "FILE: JSON.PATH: what was expected"
 * into err; nothing is allocated then. The result has refcount 1. */
int pw_config_load(const char *path, struct pw_config **out, char *err, size_t errlen);
/* Same, from a string (path is used only in messages). */
int pw_config_load_string(const char *text, const char *path, struct pw_config **out, char *err,
			  size_t errlen);
struct pw_config *pw_config_ref(struct pw_config *c);
void pw_config_unref(struct pw_config *c);

/* First identity whose globs all match, or NULL. app may be NULL (treated as "").
 * Identities that need kernel facts never match here (see pw_config_match_facts). */
const struct pw_identity *pw_config_match(const struct pw_config *c, const char *user,
					  const char *database, const char *app);

/* What the kernel told us about a steered connection's caller. */
struct pw_facts {
	const char *cgroup;  /* path below the cgroup2 mount, "/" rooted */
	const char *exe;     /* may be "" when unreadable */
	const char *comm;
	long long uid, gid;
	int n_ancestors;
	const char *anc_comm[8];
	const char *anc_exe[8]; /* may be "" */
};
const struct pw_identity *pw_config_match_facts(const struct pw_config *c, const char *user,
						const char *database, const char *app,
						const struct pw_facts *f);
/* The upstream whose host:port is this destination (numeric compare), or -1. */
int pw_config_upstream_for(const struct pw_config *c, const struct sockaddr *dst);

const char *pw_sslmode_name(enum pw_sslmode m);

#endif
