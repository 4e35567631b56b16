/* The values of settings a decision needs (search_path above all), read the way the server
 * reads them, into a pw_sql_setting (sql.h): one NUL-terminated name after another in value.
 * Pure functions; pw_sql_split_path and pw_sql_quote_ident (sql.h) are built on them. */
#ifndef PGWARD_SQL_SETTING_H
#define PGWARD_SQL_SETTING_H

#include <stdbool.h>
#include <stddef.h>

#include "pgward/sql.h"

/* Appends one name (n bytes, truncated as the server truncates identifiers); false when the
 * value has no room. */
bool pw_sql_value_add(struct pw_sql_setting *s, const char *name, size_t n);
/* Appends the names of a list as the server splits it (SplitIdentifierString); false when the
 * server would refuse the text or the value has no room. */
bool pw_sql_value_split(struct pw_sql_setting *s, const char *v);

#endif
