/* The statement analyser: parses SQL text with PostgreSQL's own grammar (libpg_query) and
 * reports, per statement of a (multi-statement) string, what it is and what it touches: the
 * command class, every relation with read/write access (schema-qualified after resolving
 * against the session's search_path), every function called, the settings it changes and flags
 * for the dangerous shapes a policy must see. Results live in fixed-size arrays: exceeding a
 * limit is an analysis error, never a silent truncation. policy.c decides on the result. */
#ifndef PGWARD_SQL_H
#define PGWARD_SQL_H

#include <stddef.h>

#include "pgward/sql_types.h"
/* the analyser's parts that callers use too: the cache's statistics, class names, the
 * prepared store and setting values */
#include "pgward/sql_cache.h"
#include "pgward/sql_class.h"
#include "pgward/sql_prepared.h"
#include "pgward/sql_setting.h"

/* Analyse len bytes of sql (need not be NUL-terminated). Returns 0, or -1 with a message in err
 * (for a parse error: the parser's message and position; out->error_pos is set too). The text
 * must be judged refused on -1. sess may be NULL (default search_path, no prepared names). */
int pw_sql_analyse(const char *sql, size_t len, const struct pw_sql_session *sess,
                   struct pw_sql_result *out, char *err, size_t errlen);

/* The same, parsing afresh: neither looks in the cache nor fills it (tests compare the two). */
int pw_sql_analyse_uncached(const char *sql, size_t len, const struct pw_sql_session *sess,
                            struct pw_sql_result *out, char *err, size_t errlen);

#endif
