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

#include "pgward/catalog.h"
#include "pgward/config.h"
#include "pgward/sql.h"

#define PW_POLICY_MAX_PATH 32

/* What a session knows that changes how its statements read. */
struct pw_policy_session {
	struct pw_sql_session sql; /* prepared store, temp-table knowledge, search_path */
	/* every schema the session's search_path may hold: the path the server reported at the
	 * session's start plus each one a SET has named since (kept even after a ROLLBACK could
	 * have undone it: all are candidates); "$user" stays as it is, expanded to user */
	const char *path[PW_POLICY_MAX_PATH];
	char names[PW_POLICY_MAX_PATH][PW_SQL_NAMELEN];
	size_t n_path;
	bool path_unknown; /* set to a value pgward cannot know: unqualified names unresolved */
	char user[PW_NAME_MAX]; /* what "$user" expands to: the current role */
	/* the schemas of the path that existed at the session's start (current_schemas(true));
	 * with the catalog's they tell which path entries the server can search */
	char existing[PW_POLICY_MAX_PATH][PW_SQL_NAMELEN];
	size_t n_existing;
	bool existing_known;
	/* what the functions called are (NULL: not known, every call needs a rule naming it);
	 * referenced, released by pw_policy_session_free */
	struct pw_catalog *cat;
};

/* search_path: the server's own setting as current_setting('search_path') gives it (NULL:
 * PostgreSQL's default, "$user", public); current_user: the role "$user" names; existing:
 * the schemas of current_schemas(true), as a list of identifiers (NULL: not known). Returns
 * -1 when the path does not read (then unqualified names stay unresolved). */
int pw_policy_session_init(struct pw_policy_session *ps, const char *search_path,
                           const char *current_user, const char *existing);
/* Take (a reference to) a catalog snapshot, dropping the one held. */
void pw_policy_session_catalog(struct pw_policy_session *ps, struct pw_catalog *cat);
void pw_policy_session_free(struct pw_policy_session *ps);

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

/* How a function call is judged: a read (a built-in function that is not volatile, or a
 * volatile built-in on the read-safe list) is allowed by every rule that allows the statement;
 * a write (any other function: one defined in the database, SECURITY DEFINER, a built-in with
 * side effects or one that reads other sessions' activity, or one the catalog does not know)
 * only by an allowing rule whose "functions" name it and whose access includes write. why
 * (may be NULL) gets the reason, e.g. "a function defined in the database". */
bool pw_policy_call_writes(const struct pw_policy_session *ps, const struct pw_sql_func *f,
                           char *why, size_t len);

/* A setting made at start-up (a startup parameter, or one the options parameter makes: see
 * options.h): judged as set_config(name, value) is by the checks that read settings (the
 * parser-integrity refusals, the role_escape and superuser_settings guardrails; the latter
 * refuses a custom dotted name here too). Rules on class "set" do not apply: every driver
 * sends such parameters. */
void pw_policy_startup_setting(const struct pw_config *cfg, const struct pw_identity *id,
                               const char *name, const char *value, struct pw_decision *d);

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
