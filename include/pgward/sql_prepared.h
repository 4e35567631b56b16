/* The prepared-statement store of a pw_sql_session (its public calls are in sql.h): what a
 * PREPARE stored, resolved when it was stored, so that EXECUTE is judged as what it runs. */
#ifndef PGWARD_SQL_PREPARED_H
#define PGWARD_SQL_PREPARED_H

#include <stdbool.h>

#include "pgward/sql.h"

/* Statement i of out EXECUTEs (explain: EXPLAINs an EXECUTE of) p: its class, flags, runs,
 * relations and functions are added to statement i. 0; -1 when out has no room for the
 * relations, -2 for the functions. */
int pw_sql_prepared_expand(const struct pw_sql_prepared *p, struct pw_sql_result *out, int i,
                           bool explain);

#endif
