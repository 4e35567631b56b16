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

#include "pgward/audit.h"
#include "pgward/record.h"
#include "pgward/auth.h"
#include "pgward/jsonpath.h"
#include "pgward/log.h"
#include "pgward/mask_value.h"

#define PW_NAME_MAX 64 /* PostgreSQL's NAMEDATALEN */
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
	char unix_path[108]; /* unix: the socket file's path */
	int unix_mode;       /* unix: permission bits, default 0777 as PostgreSQL */
};

struct pw_upstream {
	char name[PW_NAME_MAX];
	char host[PW_HOST_MAX];     /* TCP host (empty when unix_dir is set) */
	int port;                   /* default 5432 */
	char unix_dir[PATH_MAX];    /* socket directory: connects to <dir>/.s.PGSQL.<port> */
	char database[PW_NAME_MAX]; /* empty: use the client's database */
	char user[PW_NAME_MAX];
	char password[1024]; /* read from password_file at load time (trailing \n cut) */
	bool has_password;
	enum pw_sslmode sslmode; /* default prefer */
	char ca_file[PATH_MAX];  /* needed for verify-ca / verify-full */
	bool allow_cleartext;    /* cleartext password without TLS; default false */
	int connect_timeout_ms;  /* default 10000 */
	/* Session pooling: when a client leaves while its upstream connection is idle, the
	 * connection is reset (DISCARD ALL) and parked for the next client with the same
	 * startup parameters, saving a backend start. Off by default: a fresh backend per
	 * client is the transparent choice. */
	bool reuse_connections;
	int pool_idle_timeout_ms; /* default 60000: a parked connection is closed after this */
	int pool_max_idle;        /* default 32, per worker */
	/* Upstream connections pgwardd holds to this upstream at most (sessions' and parked
	 * ones, all workers together): agents must never take the server's last slots, its
	 * superuser-reserved ones included (pgwardd often logs in as a superuser). */
	int max_connections; /* default PW_UPSTREAM_MAX_CONNECTIONS */
	bool max_connections_set;
	/* search_path imposed on every session at its start (SET before the client's first
	 * statement); none: the server's own (startup parameter, role and database defaults),
	 * which pgwardd reads from the session at its start */
	int n_search_path;
	char search_path[8][PW_NAME_MAX];
	int catalog_ttl_ms;    /* default 60000: the function catalog is re-read after this */
	unsigned require_auth; /* PW_AUTH_* methods the server may ask for; default any */
};

#define PW_UPSTREAM_MAX_CONNECTIONS 64

/* Upstream authentication methods (require_auth). */
#define PW_AUTH_PASSWORD 1u
#define PW_AUTH_MD5      2u
#define PW_AUTH_SCRAM    4u
#define PW_AUTH_NONE     8u /* the server asks for nothing (trust) */
#define PW_AUTH_ANY      15u

enum pw_client_auth { PW_CLIENT_AUTH_TRUST, PW_CLIENT_AUTH_PASSWORD, PW_CLIENT_AUTH_JWT };
/* "trust", "password", "jwt" */
const char *pw_client_auth_name(enum pw_client_auth a);

struct pw_jwt_keys;
struct pw_jwt_claims;

/* Token identities: the client sends a JWT as its password (see jwt.h). */
struct pw_jwt_config {
	bool enabled;
	char jwks_file[PATH_MAX];
	struct pw_jwt_keys *keys; /* loaded with the config: a reload re-reads the JWKS */
	char issuer[256];
	char audience[256];
	int leeway_s;          /* default 30 */
	char groups_claim[64]; /* default "groups" */
	bool allow_hs256;      /* default false */
};

#define PW_MAX_REDIRECT_CGROUPS 32
#define PW_MAX_REDIRECT_PORTS   32
#define PW_MAX_REDIRECT_DSTS    32
#define PW_MAX_REDIRECT_DENY    32
#define PW_MAX_REDIRECT_UIDS    32

struct pw_cidr {
	int family;       /* AF_INET or AF_INET6 */
	int bits;         /* prefix length */
	uint8_t addr[16]; /* network order; IPv4 in the first 4 bytes */
};

/* Transparent interception (the eBPF redirect). */
struct pw_redirect {
	bool enabled;                                    /* the "redirect" section is present */
	char cgroups[PW_MAX_REDIRECT_CGROUPS][PATH_MAX]; /* cgroup v2 directories in scope */
	int n_cgroups;
	unsigned uids[PW_MAX_REDIRECT_UIDS]; /* and tasks of these uids, wherever they are */
	int n_uids;
	int ports[PW_MAX_REDIRECT_PORTS]; /* destination ports steered; default 5432 */
	int n_ports;
	bool fail_open;           /* default false: fail closed */
	bool fastpath;            /* sockmap agent<->pgwardd; default true */
	int heartbeat_timeout_ms; /* default 1000 */
	unsigned mark;            /* SO_MARK of pgwardd's sockets; default 0x70677764 */
	char pin_path[PATH_MAX];  /* default /sys/fs/bpf/pgward */
	/* cgroups added and removed at run time (pgwardctl cgroup add|del), applied on top of
	 * "cgroups" at every start and reload; default /var/lib/pgward/cgroup-overrides.json */
	char overrides[PATH_MAX];
	/* where steered connections land: pgwardd's own listeners for them */
	char listen4[64]; /* default "127.0.0.1" */
	int listen4_port; /* default 432: below ip_unprivileged_port_start, no agent binds it */
	char listen6[64]; /* default "::1"; empty = no IPv6 */
	int listen6_port; /* default: listen4_port */
	/* the same listeners opened inside every network namespace a task in the scope's
	 * cgroups is in (netns_listen.h: pods with their own network); default true */
	bool netns_listeners;
	/* optional: steer only these destination networks ("10.0.0.0/8", "fd00::/8") */
	struct pw_cidr destinations[PW_MAX_REDIRECT_DSTS];
	int n_destinations;
	/* refused from the scope whatever pgwardd's state: other ways to the database (a
	 * pooler's port, a replica); port 0 = every port */
	struct pw_cidr deny[PW_MAX_REDIRECT_DENY];
	int deny_port[PW_MAX_REDIRECT_DENY];
	int n_deny;
	/* "refuse" (default): unix connects from the scope to a PostgreSQL socket of a steered
	 * port are refused (kernel 6.7+); "allow": left alone */
	bool unix_refuse;
};

/* ---- policy (decided in policy.c) ---- */

enum pw_action { PW_ACT_ALLOW, PW_ACT_DENY, PW_ACT_APPROVE, PW_ACT_MASK };

#define PW_GLOB_MAX    160 /* "schema.name" globs: two quoted 63-byte names and some stars */
#define PW_COLGLOB_MAX 224 /* "schema.table.column" globs */

/* One statement rule. Conditions left out match anything. An allowing rule matches only when
 * it covers the whole statement (every class it runs, every relation and function it
 * touches); a restricting one (deny, approve, mask) when it names any part of it. */
struct pw_rule {
	char name[PW_NAME_MAX]; /* optional label for messages; "" = none */
	enum pw_action action;
	uint32_t classes; /* bits 1u << enum pw_sql_class; 0 = any */
	uint8_t access;   /* which relation accesses "relations" looks at: read|write */
	int n_relations, n_functions;
	char (*relations)[PW_GLOB_MAX]; /* "schema.table" globs */
	char (*functions)[PW_GLOB_MAX]; /* "name" or "schema.name" globs */
	uint32_t facts;                 /* PW_SQL_F_* bits: matches when the statement has any */
	/* action mask (masking, mask.h): never decides a statement; it says what is masked.
	 * Column masks: values of these columns and everything derived from them; detectors:
	 * what they find inside text cells (of these columns, or of every text column) */
	int n_columns;
	char (*columns)[PW_COLGLOB_MAX]; /* "schema.table.column" globs */
	uint32_t detectors;              /* bits 1u << enum pw_detector (detect.h) */
	enum pw_mask_strategy strategy;
	int keep;        /* partial: characters kept (default 4) */
	bool predicates; /* the columns may be used in WHERE, JOIN, ORDER BY, ... */
};

/* Built-in guardrails: on for every identity unless switched off for it by name. */
enum pw_guardrail {
	PW_GR_ROLE_ESCAPE,
	PW_GR_SERVER_COPY,  /* COPY ... PROGRAM, COPY to/from a server file */
	PW_GR_SERVER_FILES, /* pg_read_file & co, lo_import/lo_export, FunctionCall */
	PW_GR_ALTER_SYSTEM,
	PW_GR_DROP_DATABASE,
	PW_GR_CREATE_EXTENSION,
	PW_GR_DBLINK,
	PW_GR_TERMINATE_BACKEND,
	PW_GR_CODE,     /* DO blocks, CREATE FUNCTION / PROCEDURE */
	PW_GR_NO_WHERE, /* UPDATE/DELETE without WHERE: approve */
	/* a setting an ordinary user may not make (PostgreSQL context other than "user"), by
	 * SET, set_config, ALTER ROLE/DATABASE ... SET or at start-up, where a custom (dotted)
	 * one is refused too: pgwardd's login, often a superuser, would make it */
	PW_GR_SUPERUSER_SETTINGS,
	/* standard_conforming_strings stays on, client_encoding in the allowed list, no
	 * set_config with a computed name, no EXECUTE of an unknown statement: what the analysis
	 * needs to be right. Off only for an identity whose rules allow everything. */
	PW_GR_PARSER_INTEGRITY,
	PW_GR_COUNT
};

struct pw_window {
	uint8_t days;         /* bit 0 = Monday .. bit 6 = Sunday */
	int from_min, to_min; /* minutes since midnight, [from, to); to < from wraps midnight */
	bool utc;             /* default true; false: the host's local time */
};

#define PW_MAX_GRANT_PRIVS 8
/* A just-in-time role's privilege: on one table, or on every table of a schema. */
struct pw_grant {
	char privileges[PW_MAX_GRANT_PRIVS][16]; /* SELECT, INSERT, UPDATE, DELETE, ... */
	int n_privileges;
	char schema[PW_NAME_MAX];
	char table[PW_NAME_MAX]; /* "" = ALL TABLES IN SCHEMA */
};

#define PW_MAX_APPROVERS 16

struct pw_policy {
	int n_databases;
	char (*databases)[PW_NAME_MAX]; /* globs; none = any */
	int n_upstreams;
	int *upstreams;         /* indexes the session may use; none = any */
	char role[PW_NAME_MAX]; /* fixed role: SET ROLE after login; "" = none */
	bool jit;               /* a role made for each session */
	int n_grants;
	struct pw_grant *grants;
	int n_member_of;
	char (*member_of)[PW_NAME_MAX]; /* existing roles the JIT role is granted */
	int n_windows;
	struct pw_window *windows; /* none = always */
	int max_sessions;          /* 0 = unlimited */
	/* approvals (approval.h): who may decide this identity's held statements (none listed:
	 * any operator of the control socket), and how long one waits (0: approvals.timeout) */
	int n_approver_uids, n_approver_gids;
	unsigned approver_uids[PW_MAX_APPROVERS], approver_gids[PW_MAX_APPROVERS];
	int approval_timeout_s;
	bool guardrail_off[PW_GR_COUNT];
	/* every guardrail off and one unconditional allow rule: no decision depends on the
	 * analysis, so text the analyser cannot read goes to the server, which answers it */
	bool allow_all;
	int n_rules;
	struct pw_rule *rules;
	/* masking: columns never masked whatever a mask rule says ("schema.table.column" globs) */
	int n_unmask;
	char (*unmask)[PW_COLGLOB_MAX];
	bool has_masks; /* a mask rule: every result of the identity goes through masking */
};

struct pw_identity {
	char name[PW_NAME_MAX];
	/* fnmatch(3) globs on the startup packet; empty string means "any". */
	char match_user[PW_NAME_MAX];
	char match_database[PW_NAME_MAX];
	char match_application_name[PW_NAME_MAX];
	/* kernel facts (steered connections only); a missing key matches anything. */
	char match_cgroup[PATH_MAX];           /* glob on the cgroup v2 path below the mount */
	char match_exe[PATH_MAX];              /* glob on the executable's path */
	char match_comm[PW_NAME_MAX];          /* glob on the thread's comm */
	char match_ancestor_comm[PW_NAME_MAX]; /* glob: any ancestor's comm */
	char match_ancestor_exe[PATH_MAX];     /* glob: any ancestor's executable */
	long long match_uid;                   /* -1 = any */
	long long match_gid;                   /* -1 = any */
	/* token claims (auth "jwt" only) */
	char match_sub[256];  /* glob on the token's sub */
	char match_group[64]; /* the groups claim must contain this (glob) */
	bool needs_kernel;    /* any kernel fact set: only steered sessions match */
	enum pw_client_auth auth;
	struct pw_scram_verifier verifier; /* when auth == PASSWORD */
	int upstream;                      /* index into pw_config.upstreams; -1 = the upstream
	                                    * matching the steered connection's destination */
	struct pw_policy policy;
	bool record; /* its sessions are recorded (record.h) */
};

#define PW_CONTROL_GROUPS 16
/* The control socket (control.h, docs/control.md). */
struct pw_control_config {
	bool enabled;     /* a "control" section */
	char socket[108]; /* default /run/pgward/control.sock */
	int mode;         /* permission bits, default 0600 */
	long long owner;  /* uid; -1: pgwardd's */
	long long group;  /* gid; -1: pgwardd's */
	int n_readers, n_operators;
	unsigned readers[PW_CONTROL_GROUPS];   /* gids whose members may run read-only commands */
	unsigned operators[PW_CONTROL_GROUPS]; /* and every command */
};

/* The Prometheus endpoint (metrics.h). */
struct pw_metrics_config {
	bool enabled;           /* a "metrics" section */
	char host[PW_HOST_MAX]; /* default 127.0.0.1 */
	int port;               /* default 9187 */
};

#define PW_NOTIFY_ARGS 16
/* Approvals (approval.h). */
struct pw_approvals_config {
	int timeout_s; /* default 300: a held statement is denied after it */
	int n_notify;  /* the notification command's argv (0: none) */
	char notify[PW_NOTIFY_ARGS][512];
	int notify_timeout_s;   /* default 30: the command is killed after it */
	char node[PW_NAME_MAX]; /* this node's name in requests; default the hostname */
	/* the control database shared by a fleet (approval_db.c); upstream < 0: none */
	int db_upstream;               /* the upstream it is reached as (its credentials) */
	char db_database[PW_NAME_MAX]; /* default the upstream's database, else "postgres" */
	char db_schema[PW_NAME_MAX];   /* default "pgward" */
};

struct pw_config {
	char path[PATH_MAX];
	int workers;                          /* default: number of online CPUs */
	enum pw_log_level log_level;          /* default info */
	int shutdown_grace_ms;                /* default 30000 */
	struct pw_control_config control;     /* the control socket (control.h) */
	struct pw_metrics_config metrics;     /* the Prometheus endpoint (metrics.h) */
	struct pw_approvals_config approvals; /* held statements (approval.h) */
	/* the hash strategy's HMAC key (mask_key_file: 32 bytes or more, read at load) */
	struct pw_mask_key mask_key;
	struct pw_audit_config audit; /* the trail (audit.h); audit.enabled: a section given */
	struct pw_recording_config recording; /* session recordings (record.h) */

	struct pw_listen *listen;
	int n_listen;

	bool tls_enabled; /* tls.cert and tls.key given */
	char tls_cert[PATH_MAX];
	char tls_key[PATH_MAX];

	struct pw_upstream *upstreams;
	int n_upstreams;

	struct pw_identity *identities;
	int n_identities;

	struct pw_redirect redirect;
	struct pw_jwt_config jwt;

	/* limits */
	size_t max_message_bytes;   /* default 1 GiB: any protocol message, either side */
	size_t max_statement_bytes; /* default 1 MiB: Query/Parse text held for inspection */
	size_t max_bind_bytes;      /* default 64 MiB: Bind held for inspection */
	size_t max_startup_bytes;   /* default 10000 (PostgreSQL's MAX_STARTUP_PACKET_LENGTH) */
	int auth_timeout_ms;        /* default 60000: client must finish startup+auth in this */

	/* client_encoding values a client may use; default {"UTF8"}. Encodings whose multibyte
	 * characters can hide a quote or backslash (SJIS, BIG5, GBK, GB18030, JOHAB) are
	 * refused at load: the analyser must read the text as the server does. */
	int n_client_encodings;
	char client_encodings[8][PW_NAME_MAX];

	int refcount; /* atomic; see pw_config_ref */
};

/* Load and validate. On error returns -1 and writes "FILE: JSON.PATH: what was expected"
 * into err; nothing is allocated then. The result has refcount 1. */
int pw_config_load(const char *path, struct pw_config **out, char *err, size_t errlen);
/* Same, from a string (path is used only in messages). */
int pw_config_load_string(const char *text, const char *path, struct pw_config **out, char *err,
                          size_t errlen);
/* Validate a file and report every error it can, not only the first (pgwardctl's checks): the
 * reading goes on section by section, identity by identity, rule by rule past a bad value.
 * Returns the number of errors (0: valid); the first max of them are stored in errs. When out
 * is not NULL it receives the configuration (refcount 1) if valid, else NULL. */
#define PW_CONFIG_MAX_ERRORS 100
int pw_config_check(const char *path, struct pw_jp_error *errs, int max, struct pw_config **out);
/* The same as text: *errors a malloc'd "FILE: PATH: what" per line (NULL when valid). */
int pw_config_check_all(const char *path, char **errors);
/* Calls fn for each warning about a valid configuration (identities told apart only by what
 * a process says of itself); returns how many. */
int pw_config_warnings(const struct pw_config *c, void (*fn)(void *arg, const char *msg),
                       void *arg);
struct pw_config *pw_config_ref(struct pw_config *c);
void pw_config_unref(struct pw_config *c);

/* The upstream whose host:port is this destination (numeric compare), or -1. */
int pw_config_upstream_for(const struct pw_config *c, const struct sockaddr *dst);

const char *pw_sslmode_name(enum pw_sslmode m);
const char *pw_guardrail_name(enum pw_guardrail g);
/* The name of statement fact bit k (PW_SQL_F_* is 1u << k) as rules' "facts" spell it, or
 * NULL past the last. */
const char *pw_sql_fact_name(int bit);
/* The name of one statement fact (a PW_SQL_F_* bit of sql.h), or NULL: the one table of them,
 * which rules' "facts" are read by and pgwardctl prints. */
const char *pw_fact_name(uint32_t flag);

/* Encoding names compared as PostgreSQL does: case and punctuation ignored, UNICODE = UTF8. */
void pw_encoding_normalize(const char *name, char out[PW_NAME_MAX]);
bool pw_config_encoding_allowed(const struct pw_config *c, const char *name);

#endif
