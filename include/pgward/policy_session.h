/* The policy's view of one session: the state its statements are read in (the search_path
 * candidates, the schemas that exist, the role "$user" names, the prepared store, the catalog
 * snapshot), what a name or a call resolves to in it, and the checks at its start (database,
 * upstream, time windows, sessions per identity). The decisions on its statements are
 * policy.h's. */
#ifndef PGWARD_POLICY_SESSION_H
#define PGWARD_POLICY_SESSION_H

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

/* A copy of ps (into *out) whose search_path candidates include those a statement of r sets
 * before r's last statement: what the statements after it are read in. False (out untouched)
 * when r sets none. out shares ps's prepared store and catalog: it lives no longer than ps. */
bool pw_policy_session_widened(const struct pw_policy_session *ps, const struct pw_sql_result *r,
                               struct pw_policy_session *out);

/* Analyse text in the session's context (search_path, prepared statements); a text that sets
 * search_path before its last statement is read with the widened candidates (see above). */
int pw_policy_analyse(struct pw_policy_session *ps, const char *sql, size_t len,
                      struct pw_sql_result *out, char *err, size_t errlen);

/* After a text was allowed and forwarded: remember what it prepares (name: a protocol Parse's
 * statement name, else NULL), forget what it deallocates, widen search_path, note temp
 * tables. Returns -1 when the prepared store is full (the caller refuses the next EXECUTE). */
int pw_policy_session_apply(struct pw_policy_session *ps, const struct pw_sql_result *r,
                            const char *name);

/* Is relation r unresolved: the analyser could not resolve it, or it is unqualified and the
 * session's path is unknown (ps NULL: resolved as the analyser left it)? */
bool pw_policy_rel_unresolved(const struct pw_policy_session *ps, const struct pw_sql_rel *r);

/* How a function call is judged: a read (a built-in function that is not volatile, or a
 * volatile built-in on the read-safe list) is allowed by every rule that allows the statement;
 * a write (any other function: one defined in the database, SECURITY DEFINER, a built-in with
 * side effects or one that reads other sessions' activity, or one the catalog does not know)
 * only by an allowing rule whose "functions" name it and whose access includes write. why
 * (may be NULL) gets the reason, e.g. "a function defined in the database". */
bool pw_policy_call_writes(const struct pw_policy_session *ps, const struct pw_sql_func *f,
                           char *why, size_t len);

/* Does glob (a rule's "functions" entry) name call f? Qualified calls compare as written. An
 * unqualified call matches an allowing glob (allow) only when every function it may resolve to
 * in the session matches; a restricting glob when the glob's name part does. */
bool pw_policy_call_matches(const struct pw_policy_session *ps, const struct pw_sql_func *f,
                            const char *glob, bool allow);

/* At session start: may this identity use this database and upstream now? 0, or -1 with a
 * message for the client's FATAL (SQLSTATE 42501 / 28000 chosen by the caller). */
int pw_policy_admit(const struct pw_identity *id, const struct pw_config *c, const char *database,
                    int ups_idx, time_t now, char *msg, size_t len);
/* Is now within one of p's time windows (none: always)? */
bool pw_policy_in_window(const struct pw_policy *p, time_t now);

/* Sessions per identity, across workers (identities are keyed by name: a reload keeps the
 * counts). acquire returns false when max would be exceeded (max 0: unlimited). */
bool pw_policy_session_acquire(const char *identity, int max);
void pw_policy_session_release(const char *identity);
int pw_policy_session_count(const char *identity);

#endif
