/* pgwardd's counters: see include/pgward/metrics.h. Per-thread blocks summed by readers; the
 * `stats` JSON (docs/control.md) and the Prometheus text exposition format 0.0.4. */
#include "pgward/metrics.h"
#include "pgward/abi.h"
#include "pgward/loader.h"
#include "pgward/sql_cache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OTHER          "(other)"
#define NAME_MAX_BYTES 63 /* an identity name's bytes kept (PW_NAME_MAX - 1) */

const uint64_t pw_metrics_bucket_us[PW_METRICS_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000};

/* ---- names: one table per enum ------------------------------------------------------------- */

/* enum pw_metric: where `stats` shows it (object, key) and its Prometheus family (without
 * pgward_; a counter's ends in _total). Statements share one family, told apart by the label
 * decision="<key>". */
static const struct {
	const char *group; /* the JSON object holding it; NULL: the top level */
	const char *key;
	const char *prom;
	bool gauge, decision;
	const char *help;
} metric_tab[PW_M_N] = {
    [PW_M_SESSIONS_LIVE] = {"sessions", "live", "sessions_live", true, false, "Sessions open now."},
    [PW_M_SESSIONS_TOTAL] = {"sessions", "total", "sessions_total", false, false,
                             "Connections that became sessions."},
    [PW_M_SESSIONS_REFUSED] = {"sessions", "refused", "sessions_refused_total", false, false,
                               "Sessions refused in their opening."},
    [PW_M_SESSIONS_KILLED] = {"sessions", "killed", "sessions_killed_total", false, false,
                              "Sessions ended by session kill."},
    [PW_M_STMT_ALLOWED] = {"statements", "allowed", "statements_total", false, true,
                           "Statements judged, by decision."},
    [PW_M_STMT_DENIED] = {"statements", "denied", "statements_total", false, true, NULL},
    [PW_M_STMT_HELD] = {"statements", "held", "statements_total", false, true, NULL},
    [PW_M_STMT_APPROVED] = {"statements", "approved", "statements_total", false, true, NULL},
    [PW_M_STMT_MASKED] = {"statements", "masked", "statements_total", false, true, NULL},
    [PW_M_STMT_UNREADABLE] = {"statements", "unreadable", "statements_total", false, true, NULL},
    [PW_M_BYTES_FROM_CLIENTS] = {"bytes", "from_clients", "bytes_from_clients_total", false, false,
                                 "Bytes read from clients."},
    [PW_M_BYTES_TO_CLIENTS] = {"bytes", "to_clients", "bytes_to_clients_total", false, false,
                               "Bytes written to clients."},
    [PW_M_TUPLE_MISSES] = {NULL, "tuple_misses", "tuple_misses_total", false, false,
                           "Steered connections whose kernel record was not found."},
};

const char *pw_metric_name(enum pw_metric m)
{
	return (unsigned)m < PW_M_N ? metric_tab[m].key : NULL;
}

/* enum pw_id_metric: the key in by_identity and the family (label identity="<name>"). */
static const struct {
	const char *key, *prom, *help;
} id_tab[PW_IM_N] = {
    [PW_IM_SESSIONS] = {"sessions", "identity_sessions_total", "Sessions, by identity."},
    [PW_IM_STATEMENTS] = {"statements", "identity_statements_total",
                          "Statements judged, by identity."},
    [PW_IM_ALLOWED] = {"allowed", "identity_statements_allowed_total",
                       "Statements allowed, by identity."},
    [PW_IM_DENIED] = {"denied", "identity_statements_denied_total",
                      "Statements denied, by identity."},
    [PW_IM_HELD] = {"held", "identity_statements_held_total",
                    "Statements held for approval, by identity."},
};

const char *pw_id_metric_name(enum pw_id_metric m)
{
	return (unsigned)m < PW_IM_N ? id_tab[m].key : NULL;
}

/* abi.h's enum pw_counter: the names are loader.c's (pw_counter_names, `map dump` and here);
 * what each means, for # HELP */
static const char *const bpf_help[PW_CNT_MAX] = {
    [PW_CNT_REDIRECTS] = "Connections steered into pgwardd.",
    [PW_CNT_SKIPS] = "Connects in scope left alone (pgwardd's own sockets).",
    [PW_CNT_REFUSALS] = "Connects refused fail-closed (pgwardd down).",
    [PW_CNT_BYPASSES] = "Connects let through fail-open (pgwardd down).",
    [PW_CNT_RB_DROPS] = "Kernel events lost to a full ring buffer.",
    [PW_CNT_TUPLE_MISS] = "Steered connections sockops found no record of.",
    [PW_CNT_FASTPATH_REDIRECTS] = "Messages sent by the fast path.",
    [PW_CNT_FASTPATH_FALLBACKS] = "Messages the fast path left to TCP.",
    [PW_CNT_DENIED] = "Connects refused by the deny list.",
    [PW_CNT_BINDS] = "Binds to a steered port refused.",
    [PW_CNT_UNIX] = "Connects to PostgreSQL unix sockets refused.",
};
_Static_assert(PW_CNT_MAX <= 16, "pw_metrics_snapshot.bpf_counters holds 16");

/* ---- the blocks ---------------------------------------------------------------------------- */

struct id_slot {
	uint32_t hash, len;
	char name[NAME_MAX_BYTES + 1];
	uint64_t v[PW_IM_N];
};

/* One thread's counters. Shared state without a lock: each block has a single writer (its
 * thread) that stores with relaxed atomics, and readers sum with relaxed loads; a count torn
 * across fields (buckets against sum) is off by what is in flight, never garbage. A slot's
 * name is written before n_ids publishes it (release; readers acquire). */
struct block {
	struct block *next; /* the registry's list: set before the block is published, then fixed */
	bool orphan;        /* its thread ended: a new thread may adopt it (under reg.mu) */
	uint64_t v[PW_M_N]; /* two's complement: the gauge may go below 0 on one block */
	uint64_t cache_hits, cache_misses;
	uint64_t lat_sum_us, lat_b[PW_METRICS_BUCKETS + 1];
	int n_ids;
	/* the writer's alone */
	int last; /* the slot used last: the next count is likely the same */
	uint64_t cache_base_h, cache_base_m; /* counts of earlier caches of this thread (cleared) */
	uint64_t cache_raw_h, cache_raw_m;   /* the cache's own counts at the last sync */
	struct id_slot ids[PW_METRICS_IDENTITIES];
	struct id_slot other; /* the names after the first PW_METRICS_IDENTITIES */
};

/* The registry: blocks are added under mu and never removed or freed, so that a reader walks
 * the list from an acquire load of head with no lock. A thread that ends leaves its block
 * orphaned (key's destructor); the next thread to register adopts it, so threads that come
 * and go do not grow the list. */
static struct {
	pthread_mutex_t mu;
	pthread_once_t once;
	pthread_key_t key;
	struct block *head;
	int64_t start_ns; /* CLOCK_MONOTONIC of the start (0: not yet) */
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

static __thread struct block *mine;

#define STORE(p, x) __atomic_store_n((p), (x), __ATOMIC_RELAXED)
#define LOAD(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define BUMP(p, n)  STORE((p), LOAD(p) + (n)) /* the block's only writer: no read-modify-write */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void pw_metrics_start(void)
{
	int64_t zero = 0, now = mono_ns();
	__atomic_compare_exchange_n(&reg.start_ns, &zero, now, false, __ATOMIC_RELAXED,
	                            __ATOMIC_RELAXED);
}

static void thread_gone(void *p)
{
	struct block *b = p;
	pthread_mutex_lock(&reg.mu);
	b->orphan = true; /* after the mutex, its last counts are visible to an adopter */
	pthread_mutex_unlock(&reg.mu);
	mine = NULL; /* a count from a later destructor registers again */
}

static void key_init(void)
{
	(void)pthread_key_create(&reg.key, thread_gone);
}

static struct block *adopt_or_make(void)
{
	for (struct block *b = reg.head; b; b = b->next) {
		if (b->orphan) {
			b->orphan = false;
			b->last = 0;
			/* the new thread's cache counts from zero: what is stored is the base */
			b->cache_base_h = b->cache_hits;
			b->cache_base_m = b->cache_misses;
			b->cache_raw_h = b->cache_raw_m = 0;
			return b;
		}
	}
	/* a block of its own cache lines: no false sharing with another thread's */
	size_t size = (sizeof(struct block) + 63) & ~(size_t)63;
	struct block *b = aligned_alloc(64, size);
	if (!b)
		return NULL;
	memset(b, 0, size);
	memcpy(b->other.name, OTHER, sizeof(OTHER));
	b->next = reg.head;
	__atomic_store_n(&reg.head, b, __ATOMIC_RELEASE);
	return b;
}

/* This thread's first count: its block (NULL: out of memory; this count is lost, the next
 * tries again). */
static __attribute__((noinline)) struct block *block_register(void)
{
	pw_metrics_start();
	pthread_once(&reg.once, key_init);
	pthread_mutex_lock(&reg.mu);
	struct block *b = adopt_or_make();
	pthread_mutex_unlock(&reg.mu);
	if (b) {
		(void)pthread_setspecific(reg.key, b);
		mine = b;
	}
	return b;
}

static inline struct block *my_block(void)
{
	return __builtin_expect(mine != NULL, 1) ? mine : block_register();
}

void pw_metric_add(enum pw_metric m, int64_t n)
{
	struct block *b;
	if ((unsigned)m >= PW_M_N || !(b = my_block()))
		return;
	BUMP(&b->v[m], (uint64_t)n);
}

static inline bool slot_is(const struct id_slot *s, uint32_t h, const char *name, uint32_t len)
{
	return s->hash == h && s->len == len && memcmp(s->name, name, len) == 0;
}

/* name's slot in b: the last one used, one of the table's, a new one, or "(other)" */
static struct id_slot *id_slot(struct block *b, const char *name)
{
	if (!name)
		return &b->other;
	uint32_t h = 2166136261u, len = 0; /* FNV-1a of the first NAME_MAX_BYTES bytes */
	while (len < NAME_MAX_BYTES && name[len])
		h = (h ^ (unsigned char)name[len++]) * 16777619u;
	int n = b->n_ids; /* ours to write: a plain read */
	if (b->last < n && slot_is(&b->ids[b->last], h, name, len))
		return &b->ids[b->last];
	for (int i = 0; i < n; i++) {
		if (slot_is(&b->ids[i], h, name, len)) {
			b->last = i;
			return &b->ids[i];
		}
	}
	if (n == PW_METRICS_IDENTITIES)
		return &b->other;
	struct id_slot *s = &b->ids[n];
	memcpy(s->name, name, len);
	s->name[len] = '\0';
	s->len = len;
	s->hash = h;
	__atomic_store_n(&b->n_ids, n + 1, __ATOMIC_RELEASE); /* the name first, then the slot */
	b->last = n;
	return s;
}

void pw_metric_identity(const char *identity, enum pw_id_metric m)
{
	struct block *b;
	if ((unsigned)m >= PW_IM_N || !(b = my_block()))
		return;
	struct id_slot *s = id_slot(b, identity);
	BUMP(&s->v[m], 1);
}

void pw_metric_latency(uint64_t us)
{
	struct block *b = my_block();
	if (!b)
		return;
	int i = 0;
	while (i < PW_METRICS_BUCKETS && us > pw_metrics_bucket_us[i])
		i++;
	BUMP(&b->lat_b[i], 1);
	BUMP(&b->lat_sum_us, us);
}

void pw_metrics_cache_sync(void)
{
	const struct pw_sql_cache_stats *st = pw_sql_cache_stats_local();
	if (!mine && st->hits == 0 && st->misses == 0)
		return; /* nothing to say: no block for it */
	struct block *b = my_block();
	if (!b)
		return;
	if (st->hits < b->cache_raw_h || st->misses < b->cache_raw_m) {
		/* the cache was cleared and made again: its counts start over */
		b->cache_base_h += b->cache_raw_h;
		b->cache_base_m += b->cache_raw_m;
	}
	b->cache_raw_h = st->hits;
	b->cache_raw_m = st->misses;
	/* the cache's counts are cumulative: stored, not added */
	STORE(&b->cache_hits, b->cache_base_h + st->hits);
	STORE(&b->cache_misses, b->cache_base_m + st->misses);
}

/* ---- collect ------------------------------------------------------------------------------- */

#define SNAP_IDS                                                                                   \
	((int)(sizeof(((struct pw_metrics_snapshot *)0)->ids) /                                    \
	       sizeof(((struct pw_metrics_snapshot *)0)->ids[0])))

/* name's entry in s; past the snapshot's room, "(other)"'s (the last entry is kept for it) */
static struct pw_metrics_identity *snap_id(struct pw_metrics_snapshot *s, const char *name)
{
	for (int i = 0; i < s->n_ids; i++)
		if (strcmp(s->ids[i].name, name) == 0)
			return &s->ids[i];
	bool other = strcmp(name, OTHER) == 0;
	if (s->n_ids < SNAP_IDS - 1 || (other && s->n_ids < SNAP_IDS)) {
		struct pw_metrics_identity *e = &s->ids[s->n_ids++];
		snprintf(e->name, sizeof(e->name), "%s", name);
		return e;
	}
	return snap_id(s, OTHER);
}

static void add_slot(struct pw_metrics_snapshot *s, const struct id_slot *slot)
{
	uint64_t v[PW_IM_N], any = 0;
	for (int k = 0; k < PW_IM_N; k++)
		any |= v[k] = LOAD(&slot->v[k]);
	if (!any)
		return;
	struct pw_metrics_identity *e = snap_id(s, slot->name);
	for (int k = 0; k < PW_IM_N; k++)
		e->v[k] += v[k];
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct pw_metrics_identity *)a)->name,
	              ((const struct pw_metrics_identity *)b)->name);
}

void pw_metrics_collect(struct pw_metrics_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	pw_metrics_start();
	int64_t up = mono_ns() - __atomic_load_n(&reg.start_ns, __ATOMIC_RELAXED);
	s->uptime_s = up > 0 ? (uint64_t)up / 1000000000u : 0;
	uint64_t m[PW_M_N] = {0};
	for (struct block *b = __atomic_load_n(&reg.head, __ATOMIC_ACQUIRE); b; b = b->next) {
		for (int i = 0; i < PW_M_N; i++)
			m[i] += LOAD(&b->v[i]);
		s->cache_hits += LOAD(&b->cache_hits);
		s->cache_misses += LOAD(&b->cache_misses);
		s->latency_sum_us += LOAD(&b->lat_sum_us);
		for (int i = 0; i <= PW_METRICS_BUCKETS; i++)
			s->latency_buckets[i] += LOAD(&b->lat_b[i]);
		int n = __atomic_load_n(&b->n_ids, __ATOMIC_ACQUIRE);
		for (int i = 0; i < n; i++)
			add_slot(s, &b->ids[i]);
		add_slot(s, &b->other);
	}
	for (int i = 0; i < PW_M_N; i++)
		s->m[i] = (int64_t)m[i];
	/* the count is the buckets' sum, so that +Inf and _count always agree */
	for (int i = 0; i <= PW_METRICS_BUCKETS; i++)
		s->latency_count += s->latency_buckets[i];
	qsort(s->ids, (size_t)s->n_ids, sizeof(s->ids[0]), by_name);
}

/* ---- stats (JSON) -------------------------------------------------------------------------- */

static uint64_t nonneg(int64_t v)
{
	return v > 0 ? (uint64_t)v
	             : 0; /* a gauge read across blocks may dip below 0 for a moment */
}

/* the members of one object of metric_tab ("sessions", "statements", "bytes") */
static void json_group(const struct pw_metrics_snapshot *s, struct pw_jw *w, const char *group)
{
	pw_jw_obj(w, group);
	for (int i = 0; i < PW_M_N; i++)
		if (metric_tab[i].group && strcmp(metric_tab[i].group, group) == 0)
			pw_jw_uint(w, metric_tab[i].key, nonneg(s->m[i]));
	pw_jw_obj_end(w);
}

/* s as a JSON string (quotes included) into out; bytes of invalid UTF-8 as \u00XX (a name is
 * a key here, which jw does not escape) */
static size_t json_quote(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	bool utf8 = pw_utf8_valid(s, strlen(s));
	size_t n = 0;
	out[n++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			out[n++] = '\\';
			out[n++] = (char)*p;
		} else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8)) {
			memcpy(out + n, "\\u00", 4);
			out[n + 4] = hex[*p >> 4];
			out[n + 5] = hex[*p & 15];
			n += 6;
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n++] = '"';
	return n;
}

static void json_identities(const struct pw_metrics_snapshot *s, struct pw_jw *w)
{
	pw_jw_obj(w, "by_identity");
	for (int i = 0; i < s->n_ids && i < SNAP_IDS; i++) {
		char m[6 * sizeof(s->ids[i].name) + 16 + PW_IM_N * 48];
		size_t n = json_quote(m, s->ids[i].name);
		m[n++] = ':';
		for (int k = 0; k < PW_IM_N; k++)
			n += (size_t)snprintf(m + n, sizeof(m) - n, "%c\"%s\":%" PRIu64,
			                      k ? ',' : '{', id_tab[k].key, s->ids[i].v[k]);
		m[n++] = '}';
		pw_jw_raw(w, NULL, m, n); /* "name":{...} as a member of its own */
	}
	pw_jw_obj_end(w);
}

static void json_latency(const struct pw_metrics_snapshot *s, struct pw_jw *w)
{
	pw_jw_obj(w, "latency_us");
	pw_jw_uint(w, "count", s->latency_count);
	pw_jw_uint(w, "sum", s->latency_sum_us);
	pw_jw_arr(w, "buckets");
	uint64_t cum = 0;
	for (int i = 0; i <= PW_METRICS_BUCKETS; i++) {
		cum += s->latency_buckets[i];
		pw_jw_arr(w, NULL);
		if (i < PW_METRICS_BUCKETS)
			pw_jw_uint(w, NULL, pw_metrics_bucket_us[i]);
		else
			pw_jw_null(w, NULL);
		pw_jw_uint(w, NULL, cum);
		pw_jw_arr_end(w);
	}
	pw_jw_arr_end(w);
	pw_jw_obj_end(w);
}

static void json_cache(const struct pw_metrics_snapshot *s, struct pw_jw *w)
{
	pw_jw_obj(w, "analysis_cache");
	pw_jw_uint(w, "hits", s->cache_hits);
	pw_jw_uint(w, "misses", s->cache_misses);
	uint64_t all = s->cache_hits + s->cache_misses;
	if (all) {
		/* jw writes no doubles; nor %f here, which would follow LC_NUMERIC */
		uint64_t q = (uint64_t)((double)s->cache_hits / (double)all * 10000 + 0.5);
		char r[32];
		int n = snprintf(r, sizeof(r), "%" PRIu64 ".%04" PRIu64, q / 10000, q % 10000);
		pw_jw_raw(w, "hit_rate", r, (size_t)n);
	} else {
		pw_jw_null(w, "hit_rate");
	}
	pw_jw_obj_end(w);
}

static void json_tail(const struct pw_metrics_snapshot *s, struct pw_jw *w)
{
	if (s->bpf) {
		pw_jw_obj(w, "bpf");
		for (int i = 0; i < PW_CNT_MAX; i++)
			pw_jw_uint(w, pw_counter_names[i], s->bpf_counters[i]);
		pw_jw_obj_end(w);
	} else {
		pw_jw_null(w, "bpf");
	}
	pw_jw_uint(w, "tuple_misses", nonneg(s->m[PW_M_TUPLE_MISSES]));
	pw_jw_obj(w, "approvals");
	pw_jw_uint(w, "pending", s->approvals_pending);
	pw_jw_uint(w, "approved", s->approvals_approved);
	pw_jw_uint(w, "denied", s->approvals_denied);
	pw_jw_uint(w, "timed_out", s->approvals_timed_out);
	pw_jw_uint(w, "withdrawn", s->approvals_withdrawn);
	pw_jw_obj_end(w);
	if (s->audit) {
		pw_jw_obj(w, "audit");
		pw_jw_uint(w, "records", s->audit_records);
		pw_jw_uint(w, "lost", s->audit_lost);
		pw_jw_bool(w, "refusing", s->audit_refusing);
		pw_jw_obj_end(w);
	} else {
		pw_jw_null(w, "audit");
	}
}

void pw_metrics_json(const struct pw_metrics_snapshot *s, struct pw_jw *w)
{
	pw_jw_obj(w, "result");
	pw_jw_uint(w, "uptime_seconds", s->uptime_s);
	pw_jw_int(w, "workers", s->workers);
	json_group(s, w, "sessions");
	json_group(s, w, "statements");
	json_identities(s, w);
	json_cache(s, w);
	json_group(s, w, "bytes");
	json_latency(s, w);
	json_tail(s, w);
	pw_jw_obj_end(w);
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sb *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void family(struct sb *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP pgward_%s %s\n# TYPE pgward_%s %s\n", name, help, name, type);
}

/* one sample without labels, in a family of its own */
static void single(struct sb *b, const char *name, const char *type, const char *help, uint64_t v)
{
	family(b, name, type, help);
	sb_printf(b, "pgward_%s %" PRIu64 "\n", name, v);
}

/* µs as seconds in decimal, exactly: 5 → 0.000005, 1000000 → 1.0 */
static void sb_seconds(struct sb *b, uint64_t us)
{
	char f[8];
	snprintf(f, sizeof(f), "%06u", (unsigned)(us % 1000000));
	int n = 6;
	while (n > 1 && f[n - 1] == '0')
		n--;
	sb_printf(b, "%" PRIu64 ".%.*s", us / 1000000, n, f);
}

/* a label value as the format wants it: \, " and newline escaped; bytes of invalid UTF-8 as
 * '?' (a value must be UTF-8) */
static void sb_label(struct sb *b, const char *s)
{
	bool utf8 = pw_utf8_valid(s, strlen(s));
	for (const char *p = s; *p; p++) {
		if (*p == '\\' || *p == '"')
			sb_put(b, (const char[]){'\\', *p}, 2);
		else if (*p == '\n')
			sb_put(b, "\\n", 2);
		else if ((unsigned char)*p >= 0x80 && !utf8)
			sb_put(b, "?", 1);
		else
			sb_put(b, p, 1);
	}
}

static void prom_metrics(const struct pw_metrics_snapshot *s, struct sb *b)
{
	const char *prev = "";
	for (int i = 0; i < PW_M_N; i++) {
		const char *name = metric_tab[i].prom;
		if (strcmp(name, prev) != 0) /* statements: one family, its first entry's help */
			family(b, name, metric_tab[i].gauge ? "gauge" : "counter",
			       metric_tab[i].help);
		prev = name;
		uint64_t v = nonneg(s->m[i]);
		if (metric_tab[i].decision)
			sb_printf(b, "pgward_%s{decision=\"%s\"} %" PRIu64 "\n", name,
			          metric_tab[i].key, v);
		else
			sb_printf(b, "pgward_%s %" PRIu64 "\n", name, v);
	}
	for (int k = 0; k < PW_IM_N && s->n_ids > 0; k++) {
		family(b, id_tab[k].prom, "counter", id_tab[k].help);
		for (int i = 0; i < s->n_ids && i < SNAP_IDS; i++) {
			sb_printf(b, "pgward_%s{identity=\"", id_tab[k].prom);
			sb_label(b, s->ids[i].name);
			sb_printf(b, "\"} %" PRIu64 "\n", s->ids[i].v[k]);
		}
	}
}

static void prom_latency(const struct pw_metrics_snapshot *s, struct sb *b)
{
	const char *h = "statement_added_latency_seconds";
	family(b, h, "histogram",
	       "Time pgward adds to a statement: from its message whole to its verdict.");
	uint64_t cum = 0;
	for (int i = 0; i < PW_METRICS_BUCKETS; i++) {
		cum += s->latency_buckets[i];
		sb_printf(b, "pgward_%s_bucket{le=\"", h);
		sb_seconds(b, pw_metrics_bucket_us[i]);
		sb_printf(b, "\"} %" PRIu64 "\n", cum);
	}
	sb_printf(b, "pgward_%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", h, s->latency_count);
	sb_printf(b, "pgward_%s_sum ", h);
	sb_seconds(b, s->latency_sum_us);
	sb_printf(b, "\npgward_%s_count %" PRIu64 "\n", h, s->latency_count);
}

static void prom_tail(const struct pw_metrics_snapshot *s, struct sb *b)
{
	for (int i = 0; s->bpf && i < PW_CNT_MAX; i++) {
		char name[64];
		snprintf(name, sizeof(name), "bpf_%s_total", pw_counter_names[i]);
		single(b, name, "counter", bpf_help[i], s->bpf_counters[i]);
	}
	single(b, "approvals_pending", "gauge", "Statements waiting for approval.",
	       s->approvals_pending);
	single(b, "approvals_approved_total", "counter", "Held statements approved.",
	       s->approvals_approved);
	single(b, "approvals_denied_total", "counter", "Held statements denied.",
	       s->approvals_denied);
	single(b, "approvals_timed_out_total", "counter", "Held statements that timed out.",
	       s->approvals_timed_out);
	single(b, "approvals_withdrawn_total", "counter",
	       "Held statements withdrawn (their session ended).", s->approvals_withdrawn);
	if (s->audit) {
		single(b, "audit_records_total", "counter", "Audit records written.",
		       s->audit_records);
		single(b, "audit_lost_total", "counter", "Audit records lost.", s->audit_lost);
		single(b, "audit_refusing", "gauge",
		       "1 while statements are refused because the audit trail cannot be written.",
		       s->audit_refusing);
	}
}

char *pw_metrics_prometheus(const struct pw_metrics_snapshot *s, size_t *len)
{
	struct sb b = {0};
	single(&b, "uptime_seconds", "gauge", "Seconds since pgwardd started.", s->uptime_s);
	single(&b, "workers", "gauge", "Worker threads.", nonneg(s->workers));
	prom_metrics(s, &b);
	single(&b, "analysis_cache_hits_total", "counter", "Statement analyses found in the cache.",
	       s->cache_hits);
	single(&b, "analysis_cache_misses_total", "counter",
	       "Statement analyses not found in the cache.", s->cache_misses);
	prom_latency(s, &b);
	prom_tail(s, &b);
	if (b.oom || !b.p) {
		free(b.p);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}
