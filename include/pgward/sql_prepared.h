/* The prepared-statement store of a pw_sql_session (sql_types.h): what a PREPARE stored,
 * resolved when it was stored, so that EXECUTE is judged as what it runs. A session's store
 * is used by one thread at a time (the session's). Callers reach it through sql.h. */
#ifndef PGWARD_SQL_PREPARED_H
#define PGWARD_SQL_PREPARED_H

#include <stdbool.h>

#include "pgward/sql_types.h"

/* Statement i of out EXECUTEs (explain: EXPLAINs an EXECUTE of) p: its class, flags, runs,
 * relations and functions are added to statement i. 0; -1 when out has no room for the
 * relations, -2 for the functions. */
int pw_sql_prepared_expand(const struct pw_sql_prepared *p, struct pw_sql_result *out, int i,
                           bool explain);

/* Session store of SQL-level (and later protocol-level) prepared statements. remember records
 * statement i of r (a PREPARE, or any statement when name is given for protocol level) under
 * name; -1 when the store is full or the name too long. */
int pw_sql_prepared_remember(struct pw_sql_session *s, const char *name,
                             const struct pw_sql_result *r, int i);
void pw_sql_prepared_forget(struct pw_sql_session *s, const char *name); /* NULL: all */
/* Looks a name up: class, flags and counts; NULL when unknown. */
const struct pw_sql_prepared *pw_sql_prepared_lookup(const struct pw_sql_session *s,
                                                     const char *name);
enum pw_sql_class pw_sql_prepared_class(const struct pw_sql_prepared *p);
/* Was it prepared by a text a person approved (its executions ask again)? */
bool pw_sql_prepared_approved(const struct pw_sql_prepared *p);
/* After the server ran r successfully: remember PREPAREs, forget DEALLOCATE / DISCARD ALL. */
int pw_sql_session_apply(struct pw_sql_session *s, const struct pw_sql_result *r);
void pw_sql_session_free(struct pw_sql_session *s);

#endif
