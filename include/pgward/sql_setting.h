/* The values of settings a decision needs (search_path above all), read the way the server
 * reads them, into a pw_sql_setting (sql_types.h): one NUL-terminated name after another in
 * value; and identifiers quoted for the server. Pure functions. */
#ifndef PGWARD_SQL_SETTING_H
#define PGWARD_SQL_SETTING_H

#include <stdbool.h>
#include <stddef.h>

#include "pgward/sql_types.h"

/* Appends one name (n bytes, truncated as the server truncates identifiers); false when the
 * value has no room. */
bool pw_sql_value_add(struct pw_sql_setting *s, const char *name, size_t n);
/* Appends the names of a list as the server splits it (SplitIdentifierString); false when the
 * server would refuse the text or the value has no room. */
bool pw_sql_value_split(struct pw_sql_setting *s, const char *v);

/* A search_path value as text ('a, "B"', as a startup parameter or set_config gives it), split
 * the way the server splits it into out->value. -1 when the server would refuse it. */
int pw_sql_split_path(const char *text, struct pw_sql_setting *out);
/* name as a double-quoted identifier ("" doubled), always quoted so that it is never read as a
 * keyword. Returns the length written, or -1 when it does not fit cap (NUL included). */
int pw_sql_quote_ident(const char *name, char *out, size_t cap);

#endif
