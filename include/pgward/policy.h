/* The policy engine: decides an analysed statement text (sql.h) for an identity (config.h):
 * the parser-integrity refusals first (standard_conforming_strings, client_encoding, computed
 * set_config names, EXECUTE of an unknown statement), then the built-in guardrails, then the
 * identity's rules in order; nothing matched is a deny. A multi-statement text is decided as a
 * whole: one statement refused refuses all. Also the session-level checks (database, upstream,
 * time windows, session count) and the per-session state the analysis needs. */
#ifndef PGWARD_POLICY_H
#define PGWARD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "pgward/config.h"
#include "pgward/sql.h"

#define PW_POLICY_MAX_PATH 32

/* What a session knows that changes how its statements read. */
struct pw_policy_session {
	struct pw_sql_session sql; /* prepared store, temp-table knowledge, search_path */
	/* every schema the session's search_path may hold: the upstream's path plus each one a
	 * SET has named (kept even after a ROLLBACK could have undone it: all are candidates) */
	const char *path[PW_POLICY_MAX_PATH];
	char names[PW_POLICY_MAX_PATH][PW_SQL_NAMELEN];
	size_t n_path;
	bool path_unknown; /* set to a value pgward cannot know: unqualified names unresolved */
	char user[PW_NAME_MAX]; /* what "$user" expands to: the current role */
};

void pw_policy_session_init(struct pw_policy_session *ps, const struct pw_upstream *u,
                            const char *current_user);
void pw_policy_session_free(struct pw_policy_session *ps);
/* A search_path the client gave in its startup packet: its schemas become candidates too. */
int pw_policy_session_startup_path(struct pw_policy_session *ps, const char *text);

/* Analyse text in the session's context (search_path, prepared statements). */
int pw_policy_analyse(struct pw_policy_session *ps, const char *sql, size_t len,
                      struct pw_sql_result *out, char *err, size_t errlen);

/* After a text was allowed and forwarded: remember what it prepares (name: a protocol Parse's
 * statement name, else NULL), forget what it deallocates, widen search_path, note temp
 * tables. Returns -1 when the prepared store is full (the caller refuses the next EXECUTE). */
int pw_policy_session_apply(struct pw_policy_session *ps, const struct pw_sql_result *r,
                            const char *name);

enum pw_decided_by {
	PW_BY_DEFAULT,   /* no rule matched: deny */
	PW_BY_RULE,      /* rule (1-based) */
	PW_BY_GUARDRAIL, /* guardrail */
	PW_BY_REFUSAL,   /* a parser-integrity refusal, not overridable */
	PW_BY_WINDOW,    /* outside the identity's time windows */
};

struct pw_decision {
	enum pw_action action; /* approve and mask are refused until their issues land */
	enum pw_decided_by by;
	int rule; /* PW_BY_RULE: 1-based index */
	enum pw_guardrail guardrail;
	int stmt; /* the statement that decided (the first refused one), -1 for none */
	char sqlstate[6];
	char reason[200];  /* why, without the identity: "may not DELETE public.orders" */
	char message[512]; /* the client's ErrorResponse text (empty when allowed) */
};

/* Decide every statement of r; d gets the overall decision, per_stmt (NULL or r->nstmts
 * entries) each statement's own. ps may be NULL (explain without a session). */
void pw_policy_decide(const struct pw_config *cfg, const struct pw_identity *id,
                      const struct pw_policy_session *ps, const struct pw_sql_result *r, time_t now,
                      struct pw_decision *d, struct pw_decision *per_stmt);

/* The FunctionCall protocol message (calls a function by OID: nothing to analyse). */
void pw_policy_function_call(const struct pw_identity *id, struct pw_decision *d);

/* A refusal of text the analyser could not read (parse error, limits): 42601 or 54001. */
void pw_policy_unreadable(const struct pw_identity *id, const char *why, int error_pos,
                          struct pw_decision *d);

/* At session start: may this identity use this database and upstream now? 0, or -1 with a
 * message for the client's FATAL (SQLSTATE 42501 / 28000 chosen by the caller). */
int pw_policy_admit(const struct pw_identity *id, const struct pw_config *c, const char *database,
                    int ups_idx, time_t now, char *msg, size_t len);
bool pw_policy_in_window(const struct pw_policy *p, time_t now);

/* Sessions per identity, across workers (identities are keyed by name: a reload keeps the
 * counts). acquire returns false when max would be exceeded (max 0: unlimited). */
bool pw_policy_session_acquire(const char *identity, int max);
void pw_policy_session_release(const char *identity);
int pw_policy_session_count(const char *identity);

const char *pw_action_name(enum pw_action a);

#endif
