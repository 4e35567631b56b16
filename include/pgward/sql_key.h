/* Normalised cache keys: a statement text with every literal replaced by a marker byte of its
 * kind, so that texts differing only in literals share one cached analysis. Pure; proven
 * against the server's own scanner by tests/unit/test_sqlkey.c. */
#ifndef PGWARD_SQL_KEY_H
#define PGWARD_SQL_KEY_H

#include <stddef.h>

/* Writes the key of s[0, n) into out (n + 1 bytes) and returns its length; 0 when the text
 * has no literal or uses lexical grammar the key does not follow (the exact text is the key
 * then). */
size_t pw_sql_key(const char *s, size_t n, char *out);

#endif
