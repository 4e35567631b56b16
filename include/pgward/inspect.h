/* The one place that sees every SQL text a client sends (Query and Parse), every Bind and
 * every FunctionCall, before it is forwarded. It analyses the text (sql.h), asks the policy
 * (policy.h) and allows the message or denies it with an ErrorResponse; the session then
 * keeps the protocol in step (a denied Query or FunctionCall is answered with the error and
 * ReadyForQuery, a denied Parse/Bind discards to Sync exactly as the server would). */
#ifndef PGWARD_INSPECT_H
#define PGWARD_INSPECT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/config.h"
#include "pgward/policy.h"
#include "pgward/policy_session.h"

struct pw_stmt {
	uint8_t type;    /* 'Q', 'P', 'B' or 'F' */
	const char *sql; /* Q, P: the statement text (NUL-terminated inside the message) */
	size_t sql_len;
	const char *name;    /* P: prepared statement name; B: portal name */
	const char *stmt;    /* B: source statement name */
	const uint8_t *body; /* the whole message body (after the length) */
	size_t len;
};

struct pw_deny {
	char sqlstate[6];
	char message[512];
};

/* Fill d (sqlstate and a formatted message); returns -1, for "return pw_deny_set(...)". */
int pw_deny_set(struct pw_deny *d, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int pw_deny_vset(struct pw_deny *d, const char *sqlstate, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
enum pw_verdict { PW_ALLOW = 0, PW_DENY = 1 };

struct pw_mask_session;
struct pw_audit_session;
/* Who is asking: what the session knows of its client. */
struct pw_caller {
	const struct pw_config *cfg;
	const struct pw_identity *identity;
	const char *user;
	const char *database;
	uint64_t serial;                /* the session, for the log */
	struct pw_policy_session *ps;   /* its search_path, prepared statements */
	struct pw_mask_session *mask;   /* masking's state (mask_session.h), NULL without masks;
	                                 * the session's worker only, never an analysis thread */
	struct pw_audit_session *audit; /* the trail's (audit_session.h), NULL when off; the
	                                 * session's worker only */
	/* the text was approved by a person (approval.h): a decision "approve" allows it (a
	 * "deny" of any of its statements still refuses it) */
	bool approved;
	/* for an approval request: the session's facts */
	const char *client;
	const struct pw_kernel_facts *kf;
	int worker;
	int client_fd; /* a unix-socket client's uid is asked of it (SO_PEERCRED) */
};

/* What an allowed text of an identity with masks returns and how it is masked (mask.h): one
 * plan per statement, references the receiver releases (pw_inspect_plans_free). */
struct pw_mask_plan;
struct pw_inspect_plans {
	struct pw_mask_plan *p[PW_SQL_MAX_STMTS];
	int n;
};
void pw_inspect_plans_free(struct pw_inspect_plans *pl);

/* What decided a message, for the audit trail (audit_session.h): the policy's decision and
 * the classes of the statements it read (bit 1u << pw_sql_class). */
struct pw_inspect_facts {
	struct pw_decision d;
	uint32_t classes;
	int nstmts;
	char approval[40]; /* d.approved: the request whose decision let it run (approval.h) */
};

/* plans (may be NULL): filled for an allowed Query or Parse of an identity with masks; facts
 * (may be NULL): what decided. */
enum pw_verdict pw_inspect(const struct pw_caller *c, const struct pw_stmt *m, struct pw_deny *d,
                           struct pw_inspect_plans *plans, struct pw_inspect_facts *facts);
/* pw_inspect in two halves, for a message judged on another thread (analysis.h): the judgement
 * (any thread: it counts nothing), then the count, on the session's worker. */
enum pw_verdict pw_inspect_judge(const struct pw_caller *c, const struct pw_stmt *m,
                                 struct pw_deny *d, bool *unreadable,
                                 struct pw_inspect_plans *plans, struct pw_inspect_facts *facts);
void pw_inspect_count(uint8_t type, enum pw_verdict v, bool unreadable);

/* What pw_inspect decided of one SQL text, in full (pgwardctl policy explain shows it). */
struct pw_judgement {
	struct pw_decision d;
	struct pw_decision *per_stmt;   /* caller's array of PW_SQL_MAX_STMTS, or NULL */
	struct pw_sql_result *r;        /* caller's buffer for the analysis, or NULL (then one of
	                                 * the worker's own is used and r points to it after) */
	bool unreadable;                /* the analyser could not read it (d says how it ended) */
	struct pw_inspect_plans *plans; /* NULL, or the masking plans of an allowed text */
};

/* The one decision path for a Query's or a Parse's text (type 'Q' or 'P'; name: the Parse's
 * statement name): analyse in the session's context, decide, and for an allowed text record
 * what it prepares, sets and creates in the session. pgwardd and pgwardctl both call it. */
enum pw_verdict pw_inspect_text(const struct pw_caller *c, uint8_t type, const char *sql,
                                size_t len, const char *name, struct pw_judgement *j);

/* Per-worker counters (thread-local: each worker counts its own, without sharing). */
struct pw_inspect_stats {
	uint64_t queries, parses, binds, calls, allowed, denied, unreadable;
};
const struct pw_inspect_stats *pw_inspect_stats_local(void);
/* A worker is done: free its analysis buffer and cache. */
void pw_inspect_thread_done(void);

#endif
