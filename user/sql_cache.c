/* The analyser's per-thread cache: see include/pgward/sql_cache.h. Open hash chains plus an
 * LRU list; an entry is one allocation (the result's arrays, then the key). */
#include "pgward/sql_cache.h"
#include "pgward/sql_key.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bounds of one thread's cache. */
#define CACHE_BUCKETS     2048
#define CACHE_MAX_ENTRIES 1024
#define CACHE_MAX_BYTES   (8u << 20)
#define CACHE_MAX_TEXT    (64u << 10) /* longer texts are not worth keeping */

struct centry {
	struct centry *chain, *prev, *next; /* hash chain; LRU list (head = most recent) */
	uint64_t hash;
	size_t len, bytes;
	bool normalized; /* keyed by a normalised key, not by an exact text */
	int nstmts, nrels, nfuncs, nsets;
	struct pw_sql_stmt *stmts;
	struct pw_sql_rel *rels;
	struct pw_sql_func *funcs;
	struct pw_sql_setting *sets;
	char *text;
};

struct cache {
	struct centry *bucket[CACHE_BUCKETS];
	struct centry *head, *tail;
	struct pw_sql_cache_stats st;
};

/* thread-local: each thread has its own cache, so no locks; freed at thread exit (cache_key) */
static __thread struct cache *cache;
/* thread-local: the key buffer of this thread's cache (as long as the longest text keyed) */
static __thread char *keybuf;
static __thread size_t keycap;

uint64_t pw_fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

#define hash_text pw_fnv1a

uint64_t pw_sql_fingerprint(const char *sql, size_t len)
{
	/* texts that differ only in their literals share one: the analyser's cache key */
	char *key = pw_sql_cache_keybuf(len + 2);
	size_t klen = key ? pw_sql_key(sql, len, key) : 0;
	return klen ? pw_fnv1a(key, klen) : pw_fnv1a(sql, len);
}

static void lru_unlink(struct cache *c, struct centry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(struct cache *c, struct centry *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void cache_drop(struct cache *c, struct centry *e)
{
	struct centry **pp = &c->bucket[e->hash % CACHE_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	lru_unlink(c, e);
	c->st.entries--;
	c->st.bytes -= e->bytes;
	free(e);
}

static struct centry *cache_find(struct cache *c, const char *s, size_t n, uint64_t h,
                                 bool normalized)
{
	for (struct centry *e = c->bucket[h % CACHE_BUCKETS]; e; e = e->chain)
		if (e->hash == h && e->len == n && e->normalized == normalized &&
		    memcmp(e->text, s, n) == 0)
			return e;
	return NULL;
}

static void cache_put(struct cache *c, const char *s, size_t n, uint64_t h, bool normalized,
                      const struct pw_sql_result *r)
{
	size_t b_st = sizeof(struct pw_sql_stmt) * (size_t)r->nstmts;
	size_t b_rel = sizeof(struct pw_sql_rel) * (size_t)r->nrels;
	size_t b_fn = sizeof(struct pw_sql_func) * (size_t)r->nfuncs;
	size_t b_set = sizeof(struct pw_sql_setting) * (size_t)r->nsets;
	size_t bytes = sizeof(struct centry) + b_st + b_rel + b_fn + b_set + n;
	struct centry *e;
	char *p;

	if (n > CACHE_MAX_TEXT)
		return;
	while (c->tail &&
	       (c->st.entries >= CACHE_MAX_ENTRIES || c->st.bytes + bytes > CACHE_MAX_BYTES))
		cache_drop(c, c->tail);
	e = malloc(bytes);
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
	p = (char *)(e + 1);
	/* the arrays first (all need at most pointer alignment), the text last */
	e->stmts = (void *)p;
	memcpy(p, r->stmts, b_st);
	p += b_st;
	e->rels = (void *)p;
	memcpy(p, r->rels, b_rel);
	p += b_rel;
	e->funcs = (void *)p;
	memcpy(p, r->funcs, b_fn);
	p += b_fn;
	e->sets = (void *)p;
	memcpy(p, r->sets, b_set);
	p += b_set;
	e->text = p;
	memcpy(p, s, n);
	e->hash = h;
	e->len = n;
	e->normalized = normalized;
	e->bytes = bytes;
	e->nstmts = r->nstmts;
	e->nrels = r->nrels;
	e->nfuncs = r->nfuncs;
	e->nsets = r->nsets;
	e->chain = c->bucket[h % CACHE_BUCKETS];
	c->bucket[h % CACHE_BUCKETS] = e;
	lru_front(c, e);
	c->st.entries++;
	c->st.bytes += bytes;
}

static void cache_get(const struct centry *e, struct pw_sql_result *r)
{
	r->nstmts = e->nstmts;
	r->nrels = e->nrels;
	r->nfuncs = e->nfuncs;
	r->nsets = e->nsets;
	r->error_pos = 0;
	memcpy(r->stmts, e->stmts, sizeof(*e->stmts) * (size_t)e->nstmts);
	memcpy(r->rels, e->rels, sizeof(*e->rels) * (size_t)e->nrels);
	memcpy(r->funcs, e->funcs, sizeof(*e->funcs) * (size_t)e->nfuncs);
	memcpy(r->sets, e->sets, sizeof(*e->sets) * (size_t)e->nsets);
}

static const struct pw_sql_cache_stats zero_stats;

const struct pw_sql_cache_stats *pw_sql_cache_stats_local(void)
{
	return cache ? &cache->st : &zero_stats;
}

void pw_sql_cache_clear(void)
{
	free(keybuf);
	keybuf = NULL;
	keycap = 0;
	if (!cache)
		return;
	while (cache->head)
		cache_drop(cache, cache->head);
	free(cache);
	cache = NULL;
}

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_key_free(void *unused)
{
	(void)unused;
	pw_sql_cache_clear();
}

static void cache_key_init(void)
{
	(void)pthread_key_create(&cache_key, cache_key_free);
}

int pw_sql_cache_open(void)
{
	if (cache)
		return 0;
	cache = calloc(1, sizeof(*cache));
	if (!cache)
		return -1;
	/* the key's value only makes its destructor run at this thread's exit */
	pthread_once(&cache_once, cache_key_init);
	pthread_setspecific(cache_key, cache);
	return 0;
}

char *pw_sql_cache_keybuf(size_t need)
{
	if (need > keycap) {
		char *k = realloc(keybuf, need);
		if (!k)
			return NULL;
		keybuf = k;
		keycap = need;
	}
	return keybuf;
}

bool pw_sql_cache_get(const char *key, size_t klen, const char *text, size_t len,
                      struct pw_sql_result *r, bool *normalized)
{
	struct centry *e = NULL;

	if (!cache)
		return false;
	if (klen)
		e = cache_find(cache, key, klen, hash_text(key, klen), true);
	if (!e)
		e = cache_find(cache, text, len, hash_text(text, len), false);
	if (!e) {
		cache->st.misses++;
		return false;
	}
	cache->st.hits++;
	lru_unlink(cache, e);
	lru_front(cache, e);
	cache_get(e, r);
	*normalized = e->normalized;
	return true;
}

void pw_sql_cache_put(const char *s, size_t n, bool normalized, const struct pw_sql_result *r)
{
	if (cache)
		cache_put(cache, s, n, hash_text(s, n), normalized, r);
}
