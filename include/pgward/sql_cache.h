/* The analyser's per-thread cache of raw analyses (see sql.h): an LRU bounded in entries and
 * bytes, keyed by a normalised key (sql_key.h) or by the exact text, the two kinds kept apart.
 * Nothing in an entry depends on the session. Every function works on the calling thread's
 * own cache: no locks, no sharing; a thread's cache is freed when the thread ends (or by
 * pw_sql_cache_clear). */
#ifndef PGWARD_SQL_CACHE_H
#define PGWARD_SQL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/sql_types.h"

/* FNV-1a of n bytes (the cache's hash; names and fingerprints elsewhere). */
uint64_t pw_fnv1a(const char *s, size_t n);
/* A statement text's fingerprint: texts that differ only in their literals share one (the
 * hash of the cache key, sql_key.h; of the text itself when it has no key). The audit trail
 * and approvals give the same value. */
uint64_t pw_sql_fingerprint(const char *sql, size_t len);

/* Makes this thread's cache: 0, or -1 when out of memory. */
int pw_sql_cache_open(void);
/* A buffer of at least need bytes for this thread's keys, or NULL (out of memory). Valid until
 * the next call or pw_sql_cache_clear. */
char *pw_sql_cache_keybuf(size_t need);
/* Copies the entry of key[0, klen) (a normalised key; klen 0: none) or else of text[0, len)
 * into r, and counts a hit (true, *normalized saying which was found) or a miss (false). */
bool pw_sql_cache_get(const char *key, size_t klen, const char *text, size_t len,
                      struct pw_sql_result *r, bool *normalized);
/* Keeps r under s[0, n), evicting the least recently used entries to stay in bounds. Texts
 * over 64 KiB are not kept; out of memory keeps nothing. */
void pw_sql_cache_put(const char *s, size_t n, bool normalized, const struct pw_sql_result *r);

/* Per-thread cache of analyses keyed by the exact text (session-independent part only). */
struct pw_sql_cache_stats {
	uint64_t hits, misses, entries, bytes;
};
const struct pw_sql_cache_stats *pw_sql_cache_stats_local(void);
void pw_sql_cache_clear(void); /* frees this thread's cache */

#endif
