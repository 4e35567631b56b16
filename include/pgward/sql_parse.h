/* Parsing a statement text safely: a nesting guard refuses trees deeper than the stack holds
 * (before the parser builds them), and the parse, the tree's unpacking and the walk
 * (sql_walk.h) run on a big private stack, one per thread, created on first use and freed at
 * thread exit. */
#ifndef PGWARD_SQL_PARSE_H
#define PGWARD_SQL_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "pgward/sql_types.h"

/* Parses and walks text (NUL-terminated, len bytes) into r, whose counts the caller has
 * zeroed. 0, or -1 with err set and r->error_pos at the parser's cursor for a syntax error.
 * *value_sensitive as pw_sql_walk's. */
int pw_sql_parse(const char *text, size_t len, struct pw_sql_result *r, bool *value_sensitive,
                 char *err, size_t errlen);

struct PgQuery__ParseResult;
/* The same guards and stack for another reader of the tree (masking): fn's return value, or
 * -1 with err set when the text cannot be parsed. text is NUL-terminated, len bytes. */
int pw_sql_parse_tree(const char *text, size_t len,
                      int (*fn)(const struct PgQuery__ParseResult *tree, void *arg), void *arg,
                      char *err, size_t errlen);

#endif
