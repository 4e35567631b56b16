/* What kind of statement a parse tree node is: its command class (the policy's vocabulary)
 * and its command tag as PostgreSQL names it. Pure functions over libpg_query's tree. */
#ifndef PGWARD_SQL_CLASS_H
#define PGWARD_SQL_CLASS_H

#include <stddef.h>

#include "pgward/sql_types.h"

struct PgQuery__Node;

/* PW_SQL_OTHER for NULL or a node no class names. */
enum pw_sql_class pw_sql_classify(const struct PgQuery__Node *n);
/* The command tag ("CREATE TABLE", "DISCARD ALL") into out; "" for NULL. */
void pw_sql_stmt_tag(const struct PgQuery__Node *n, char *out, size_t len);

/* The class's name as policies write it ("select", "copy_to"); "?" when out of range. */
const char *pw_sql_class_name(enum pw_sql_class c);

#endif
