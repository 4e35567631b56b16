/* The tree walk of the statement analyser (see sql.h): one parse tree of libpg_query in, the
 * session-independent "raw" analysis out (unqualified names left unqualified, EXECUTE not
 * expanded). Pure: no state of its own; it recurses once per node level, so it runs on the
 * parse stack (sql_parse.h). */
#ifndef PGWARD_SQL_WALK_H
#define PGWARD_SQL_WALK_H

#include <stdbool.h>
#include <stddef.h>

#include "pgward/sql_types.h"

struct PgQuery__ParseResult;

/* Walks every statement of tree into r (whose counts start at zero). 0, or -1 with err set
 * ("statement too complex: ..."). *value_sensitive is set when a decision read a constant:
 * the analysis then belongs to the exact text, never to a normalised key (sql_key.h). */
int pw_sql_walk(const struct PgQuery__ParseResult *tree, struct pw_sql_result *r,
                bool *value_sensitive, char *err, size_t errlen);

#endif
