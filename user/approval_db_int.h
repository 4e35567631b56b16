/* approval_db.c's inside, for its tests (tests/unit/test_pgconn.c): not for other modules. */
#ifndef PGWARD_APPROVAL_DB_INT_H
#define PGWARD_APPROVAL_DB_INT_H

#include <stddef.h>

#include "pgward/approval_db.h"

/* s[0..len) as an SQL string literal for a connection with standard_conforming_strings on
 * (every connection of the module sets it): '...' with each ' doubled, nothing else escaped.
 * malloc'd; NULL when s holds a NUL byte (no literal can carry one) or memory is short. */
char *pw_adb_literal(const char *s, size_t len);

/* What the listener calls for a decided row of this node: pw_approval_apply unless a test
 * says otherwise (NULL: back to it). Before pw_approval_db_start. */
void pw_adb_set_apply(void (*fn)(const struct pw_approval_row *row));

#endif
