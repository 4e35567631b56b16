/* Unit tests for the counters (user/metrics.c) and their HTTP endpoint (user/metrics_http.c):
 * counts from several threads sum exactly, identities past the table go to "(other)", latency
 * lands in the right bucket, the analysis cache's counts are synced, `stats` has docs/control.md's
 * shape (jansson), the Prometheus text passes a strict line-by-line checker of the 0.0.4
 * format, and the endpoint answers, refuses and survives clients that misbehave. */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "pgward/metrics.h"
#include "pgward/sql_cache.h"
#include "check.h"

static struct pw_metrics_snapshot *snap_new(void)
{
	struct pw_metrics_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		abort();
	return s;
}

static const struct pw_metrics_identity *find_id(const struct pw_metrics_snapshot *s,
                                                 const char *name)
{
	for (int i = 0; i < s->n_ids; i++)
		if (strcmp(s->ids[i].name, name) == 0)
			return &s->ids[i];
	return NULL;
}

static uint64_t id_v(const struct pw_metrics_snapshot *s, const char *name, enum pw_id_metric m)
{
	const struct pw_metrics_identity *e = find_id(s, name);
	return e ? e->v[m] : 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- counting ------------------------------------------------------------------------------ */

/* on the main thread, before it counts anything else: its block is new */
static void test_identities(void)
{
	struct pw_metrics_snapshot *s = snap_new();
	char name[16];
	for (int i = 0; i < PW_METRICS_IDENTITIES + 10; i++) {
		snprintf(name, sizeof(name), "ov%02d", i);
		pw_metric_identity(name, PW_IM_SESSIONS);
	}
	for (int i = 0; i < 3; i++)
		pw_metric_identity("ov00", PW_IM_STATEMENTS);
	pw_metrics_collect(s);
	int kept = 0;
	bool ones = true, sorted = true;
	for (int i = 0; i < s->n_ids; i++) {
		if (strncmp(s->ids[i].name, "ov", 2) == 0) {
			kept++;
			ones = ones && s->ids[i].v[PW_IM_SESSIONS] == 1;
		}
		if (i && strcmp(s->ids[i - 1].name, s->ids[i].name) >= 0)
			sorted = false;
	}
	CHECK(kept == PW_METRICS_IDENTITIES && ones,
	      "the first %d names have their own counts (%d)", PW_METRICS_IDENTITIES, kept);
	CHECK(id_v(s, "(other)", PW_IM_SESSIONS) == 10, "the 10 names after them count as (other)");
	CHECK(id_v(s, "ov00", PW_IM_STATEMENTS) == 3 && !find_id(s, "ov64"),
	      "a known name is found again; a late one is not listed");
	CHECK(sorted, "identities come sorted by name, each once");
	pw_metric_identity(NULL, PW_IM_HELD);
	pw_metric_add((enum pw_metric)PW_M_N, 1);       /* out of range: ignored */
	pw_metric_identity("x", (enum pw_id_metric)99); /* likewise */
	pw_metrics_collect(s);
	CHECK(id_v(s, "(other)", PW_IM_HELD) == 1 && !find_id(s, "x"),
	      "no identity counts as (other); metrics out of range are ignored");
	CHECK(pw_metric_name(PW_M_STMT_DENIED) &&
	          !strcmp(pw_metric_name(PW_M_STMT_DENIED), "denied") && !pw_metric_name(PW_M_N) &&
	          !strcmp(pw_id_metric_name(PW_IM_HELD), "held"),
	      "the name tables");
	free(s);
}

static void *long_name(void *unused)
{
	(void)unused;
	char n[101];
	memset(n, 'a', 100);
	n[100] = 0;
	pw_metric_identity(n, PW_IM_DENIED);
	n[70] = 'b'; /* same first 63 bytes: the same identity */
	pw_metric_identity(n, PW_IM_DENIED);
	return NULL;
}

#define ROUNDS 200000
static int stop_reader; /* __atomic */

static void *counter(void *arg)
{
	long k = (long)arg;
	for (int i = 0; i < ROUNDS; i++) {
		pw_metric_add(PW_M_STMT_ALLOWED, 1);
		pw_metric_add(PW_M_BYTES_FROM_CLIENTS, 3);
		pw_metric_identity(i % 2 ? "alpha" : "beta", PW_IM_STATEMENTS);
		pw_metric_latency((uint64_t)(i % 2000));
		if (i < 100)
			pw_metric_add(PW_M_SESSIONS_LIVE, 1);
	}
	pw_metric_identity(k % 2 ? "gamma" : "delta", PW_IM_SESSIONS);
	return NULL;
}

/* collects while the counters run: totals never go back, count is the buckets' sum */
static void *reader(void *arg)
{
	bool *ok = arg;
	struct pw_metrics_snapshot *s = snap_new();
	int64_t last = 0;
	while (!__atomic_load_n(&stop_reader, __ATOMIC_RELAXED)) {
		pw_metrics_collect(s);
		uint64_t sum = 0;
		for (int i = 0; i <= PW_METRICS_BUCKETS; i++)
			sum += s->latency_buckets[i];
		if (s->m[PW_M_STMT_ALLOWED] < last || sum != s->latency_count)
			*ok = false;
		last = s->m[PW_M_STMT_ALLOWED];
	}
	free(s);
	return NULL;
}

static void *one_count(void *unused)
{
	(void)unused;
	pw_metric_add(PW_M_SESSIONS_KILLED, 1);
	pw_metric_identity("churn", PW_IM_ALLOWED);
	return NULL;
}

static void test_threads(void)
{
	struct pw_metrics_snapshot *a = snap_new(), *b = snap_new();
	pw_metrics_collect(a);
	pthread_t t[4], r;
	bool reader_ok = true;
	pthread_create(&r, NULL, reader, &reader_ok);
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, counter, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	__atomic_store_n(&stop_reader, 1, __ATOMIC_RELAXED);
	pthread_join(r, NULL);
	pw_metric_add(PW_M_SESSIONS_LIVE, -400); /* on another block than the +1s */
	pw_metrics_collect(b);
	uint64_t lsum = 0;
	for (int i = 0; i < ROUNDS; i++)
		lsum += (uint64_t)(i % 2000);
	CHECK(b->m[PW_M_STMT_ALLOWED] - a->m[PW_M_STMT_ALLOWED] == 4 * ROUNDS &&
	          b->m[PW_M_BYTES_FROM_CLIENTS] - a->m[PW_M_BYTES_FROM_CLIENTS] == 12 * ROUNDS,
	      "4 threads counting at once: exact sums (%lld)",
	      (long long)(b->m[PW_M_STMT_ALLOWED] - a->m[PW_M_STMT_ALLOWED]));
	CHECK(id_v(b, "alpha", PW_IM_STATEMENTS) - id_v(a, "alpha", PW_IM_STATEMENTS) ==
	              2 * ROUNDS &&
	          id_v(b, "beta", PW_IM_STATEMENTS) - id_v(a, "beta", PW_IM_STATEMENTS) ==
	              2 * ROUNDS &&
	          id_v(b, "gamma", PW_IM_SESSIONS) == 2 && id_v(b, "delta", PW_IM_SESSIONS) == 2,
	      "identities summed by name across the threads' blocks");
	CHECK(b->latency_count - a->latency_count == 4 * ROUNDS &&
	          b->latency_sum_us - a->latency_sum_us == 4 * lsum,
	      "latency: count and sum exact");
	CHECK(b->m[PW_M_SESSIONS_LIVE] == a->m[PW_M_SESSIONS_LIVE],
	      "the live gauge: +1s on four threads, -400 on a fifth, back where it was");
	CHECK(reader_ok, "a reader during the counting: never backwards, count = the buckets' sum");
	/* threads that come and go: their blocks are adopted, and nothing is lost */
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, one_count, NULL);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	}
	pthread_create(&t[0], NULL, long_name, NULL);
	pthread_join(t[0], NULL);
	pw_metrics_collect(a);
	CHECK(a->m[PW_M_SESSIONS_KILLED] - b->m[PW_M_SESSIONS_KILLED] == 80 &&
	          id_v(a, "churn", PW_IM_ALLOWED) == 80,
	      "80 short-lived threads: 80 counts");
	char n63[64];
	memset(n63, 'a', 63);
	n63[63] = 0;
	CHECK(id_v(a, n63, PW_IM_DENIED) == 2, "a name is its first 63 bytes");
	free(a);
	free(b);
}

static void test_latency(void)
{
	static const struct {
		uint64_t us;
		int bucket;
	} cases[] = {{0, 0},
	             {5, 0},
	             {6, 1},
	             {10, 1},
	             {11, 2},
	             {999, 7},
	             {1000, 7},
	             {1001, 8},
	             {25000, 11},
	             {25001, 12},
	             {1000000, 13},
	             {1000001, 14},
	             {UINT64_MAX / 4, 14}};
	struct pw_metrics_snapshot *a = snap_new(), *b = snap_new();
	bool bounds = true;
	for (int i = 1; i < PW_METRICS_BUCKETS; i++)
		bounds = bounds && pw_metrics_bucket_us[i] > pw_metrics_bucket_us[i - 1];
	CHECK(bounds, "bucket bounds increase");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		pw_metrics_collect(a);
		pw_metric_latency(cases[c].us);
		pw_metrics_collect(b);
		int got = -1, moved = 0;
		for (int i = 0; i <= PW_METRICS_BUCKETS; i++) {
			if (b->latency_buckets[i] != a->latency_buckets[i]) {
				moved++;
				got = i;
			}
		}
		CHECK(moved == 1 && got == cases[c].bucket &&
		          b->latency_sum_us - a->latency_sum_us == cases[c].us,
		      "%llu µs goes to bucket %d (got %d)", (unsigned long long)cases[c].us,
		      cases[c].bucket, got);
	}
	free(a);
	free(b);
}

static void test_cache_sync(void)
{
	static struct pw_sql_result r;
	struct pw_metrics_snapshot *a = snap_new(), *b = snap_new();
	bool norm;
	pw_metrics_collect(a);
	pw_sql_cache_open();
	for (int i = 0; i < 3; i++)
		pw_sql_cache_get(NULL, 0, "SELECT 1", 8, &r, &norm);
	pw_sql_cache_put("SELECT 1", 8, false, &r);
	pw_sql_cache_get(NULL, 0, "SELECT 1", 8, &r, &norm);
	pw_metrics_cache_sync();
	pw_metrics_cache_sync();
	pw_metrics_collect(b);
	CHECK(b->cache_misses - a->cache_misses == 3 && b->cache_hits - a->cache_hits == 1,
	      "the cache's counts are synced, stored not added (hits %llu, misses %llu)",
	      (unsigned long long)(b->cache_hits - a->cache_hits),
	      (unsigned long long)(b->cache_misses - a->cache_misses));
	pw_sql_cache_clear();
	pw_sql_cache_open();
	pw_sql_cache_get(NULL, 0, "SELECT 2", 8, &r, &norm);
	pw_metrics_cache_sync();
	pw_metrics_collect(b);
	CHECK(b->cache_misses - a->cache_misses == 4, "a cache made again counts on from its past");
	pw_sql_cache_clear();
	free(a);
	free(b);
}

/* ---- stats (JSON) -------------------------------------------------------------------------- */

static const char weird[] = "we\"ird\\na\nme";

static void fill(struct pw_metrics_snapshot *s, bool all)
{
	memset(s, 0, sizeof(*s));
	s->uptime_s = 3600;
	s->workers = 2;
	for (int i = 0; i < PW_M_N; i++)
		s->m[i] = 100 + i;
	snprintf(s->ids[0].name, sizeof(s->ids[0].name), "%s", "(other)");
	snprintf(s->ids[1].name, sizeof(s->ids[1].name), "%s", "reader");
	snprintf(s->ids[2].name, sizeof(s->ids[2].name), "%s", weird);
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < PW_IM_N; k++)
			s->ids[i].v[k] = (uint64_t)(10 * i + k);
	s->n_ids = 3;
	for (int i = 0; i <= PW_METRICS_BUCKETS; i++) {
		s->latency_buckets[i] = (uint64_t)i;
		s->latency_count += (uint64_t)i;
	}
	s->latency_sum_us = 41000;
	if (!all)
		return;
	s->cache_hits = 850;
	s->cache_misses = 50;
	s->bpf = s->audit = true;
	for (int i = 0; i < 16; i++)
		s->bpf_counters[i] = (uint64_t)(1000 + i);
	s->approvals_pending = 1;
	s->approvals_approved = 2;
	s->audit_records = 5000;
	s->audit_refusing = true;
}

static json_t *stats_json(const struct pw_metrics_snapshot *s)
{
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_append(&w, "{", 1);
	pw_metrics_json(s, &w);
	pw_jw_append(&w, "}", 1);
	json_error_t e;
	json_t *j = json_loads(w.p, JSON_REJECT_DUPLICATES, &e);
	if (!j)
		printf("# %s: %s\n", e.text, w.p);
	pw_jw_free(&w);
	json_t *r = j ? json_incref(json_object_get(j, "result")) : NULL;
	json_decref(j);
	return r;
}

/* "a.b": the member at that path, or NULL */
static json_t *at(json_t *j, const char *path)
{
	char p[128];
	snprintf(p, sizeof(p), "%s", path);
	for (char *save = NULL, *k = strtok_r(p, ".", &save); j && k;
	     k = strtok_r(NULL, ".", &save))
		j = json_object_get(j, k);
	return j;
}

static void test_json(void)
{
	static const char *const ints[] = {"uptime_seconds",
	                                   "workers",
	                                   "sessions.live",
	                                   "sessions.total",
	                                   "sessions.refused",
	                                   "sessions.killed",
	                                   "statements.allowed",
	                                   "statements.denied",
	                                   "statements.held",
	                                   "statements.approved",
	                                   "statements.masked",
	                                   "statements.unreadable",
	                                   "analysis_cache.hits",
	                                   "analysis_cache.misses",
	                                   "bytes.from_clients",
	                                   "bytes.to_clients",
	                                   "latency_us.count",
	                                   "latency_us.sum",
	                                   "bpf.redirects",
	                                   "bpf.refusals",
	                                   "bpf.bypasses",
	                                   "bpf.ringbuf_drops",
	                                   "bpf.tuple_misses",
	                                   "bpf.denied",
	                                   "bpf.binds",
	                                   "bpf.unix",
	                                   "bpf.fastpath_redirects",
	                                   "bpf.fastpath_fallbacks",
	                                   "bpf.skips",
	                                   "tuple_misses",
	                                   "approvals.pending",
	                                   "approvals.approved",
	                                   "approvals.denied",
	                                   "approvals.timed_out",
	                                   "approvals.withdrawn",
	                                   "audit.records",
	                                   "audit.lost",
	                                   "by_identity.reader.sessions",
	                                   "by_identity.reader.statements",
	                                   "by_identity.reader.allowed",
	                                   "by_identity.reader.denied",
	                                   "by_identity.reader.held"};
	struct pw_metrics_snapshot *s = snap_new();
	fill(s, true);
	json_t *j = stats_json(s);
	CHECK(j && json_object_size(j) == 12, "stats parses, with its 12 members");
	int bad = 0;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		if (!json_is_integer(at(j, ints[i]))) {
			printf("# %s: not an integer\n", ints[i]);
			bad++;
		}
	}
	CHECK(bad == 0, "every counter of docs/control.md's shape is an integer");
	CHECK(json_integer_value(at(j, "statements.denied")) == 100 + PW_M_STMT_DENIED &&
	          json_integer_value(at(j, "tuple_misses")) == 100 + PW_M_TUPLE_MISSES &&
	          json_integer_value(at(j, "bpf.ringbuf_drops")) == 1004 &&
	          json_object_size(at(j, "bpf")) == 11 && json_is_true(at(j, "audit.refusing")),
	      "values land under their names");
	json_t *hr = at(j, "analysis_cache.hit_rate");
	CHECK(json_is_real(hr) && fabs(json_real_value(hr) - 850.0 / 900) < 1e-4,
	      "hit_rate is a number");
	json_t *ids = at(j, "by_identity"), *wid = json_object_get(ids, weird);
	CHECK(json_object_size(ids) == 3 &&
	          json_integer_value(json_object_get(wid, "held")) == 24 &&
	          json_integer_value(at(j, "by_identity.(other).sessions")) == 0,
	      "by_identity: every name a key, escaped and read back as it was");
	json_t *bk = at(j, "latency_us.buckets");
	bool cum = json_array_size(bk) == PW_METRICS_BUCKETS + 1;
	uint64_t c = 0;
	for (size_t i = 0; cum && i < json_array_size(bk); i++) {
		json_t *p = json_array_get(bk, i);
		c += (uint64_t)i;
		cum = json_array_size(p) == 2 &&
		      (i < PW_METRICS_BUCKETS ? (uint64_t)json_integer_value(
		                                    json_array_get(p, 0)) == pw_metrics_bucket_us[i]
		                              : json_is_null(json_array_get(p, 0))) &&
		      (uint64_t)json_integer_value(json_array_get(p, 1)) == c;
	}
	CHECK(cum && c == (uint64_t)json_integer_value(at(j, "latency_us.count")),
	      "latency buckets: cumulative [bound, count], the last [null, count]");
	json_decref(j);
	fill(s, false);
	j = stats_json(s);
	CHECK(j && json_is_null(at(j, "bpf")) && json_is_null(at(j, "audit")) &&
	          json_is_null(at(j, "analysis_cache.hit_rate")) &&
	          json_is_object(at(j, "approvals")),
	      "no redirect, no audit trail, no lookups: null");
	json_decref(j);
	pw_metrics_collect(s);
	j = stats_json(s);
	CHECK(j && json_is_integer(at(j, "uptime_seconds")), "a collected snapshot's stats parse");
	json_decref(j);
	free(s);
}

/* ---- Prometheus: a strict reader of the text format 0.0.4 ---------------------------------- */

#define PFAM_MAX 256
struct pfam {
	char name[128], type[16];
	bool help, seen, done;
	double last_le, last_bucket, inf, count;
	bool has_inf, has_count, has_sum;
};
struct pcheck {
	struct pfam f[PFAM_MAX];
	int n;
	int cur; /* the family whose samples come now (-1: none) */
	char **series;
	int n_series;
	char labels[32][128]; /* identity label values, unescaped */
	int n_labels;
	char why[256];
};

static bool metric_name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		if (!alpha && !(i && c >= '0' && c <= '9'))
			return false;
	}
	return n > 0;
}

static struct pfam *pfam(struct pcheck *pc, const char *name, size_t n, bool make)
{
	for (int i = 0; i < pc->n; i++)
		if (strlen(pc->f[i].name) == n && memcmp(pc->f[i].name, name, n) == 0)
			return &pc->f[i];
	if (!make || pc->n == PFAM_MAX || n >= sizeof(pc->f[0].name))
		return NULL;
	struct pfam *f = &pc->f[pc->n++];
	memset(f, 0, sizeof(*f));
	memcpy(f->name, name, n);
	f->last_le = -INFINITY;
	return f;
}

#define FAIL(...) return snprintf(pc->why, sizeof(pc->why), __VA_ARGS__), false

/* "# HELP name text" or "# TYPE name type" */
static bool meta_line(struct pcheck *pc, const char *l)
{
	bool help = strncmp(l, "# HELP ", 7) == 0, type = strncmp(l, "# TYPE ", 7) == 0;
	if (!help && !type)
		FAIL("a comment that is neither HELP nor TYPE: %s", l);
	const char *name = l + 7, *sp = strchr(name, ' ');
	if (!sp || !metric_name_ok(name, (size_t)(sp - name)))
		FAIL("bad name: %s", l);
	struct pfam *f = pfam(pc, name, (size_t)(sp - name), true);
	if (!f || f->seen)
		FAIL("HELP/TYPE after the family's samples: %s", l);
	if (help) {
		if (f->help)
			FAIL("a second HELP: %s", l);
		for (const char *p = sp + 1; *p; p++)
			if (*p == '\\' && p[1] != '\\' && p[1] != 'n')
				FAIL("a bad escape in HELP: %s", l);
		f->help = true;
		return true;
	}
	static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
	if (f->type[0])
		FAIL("a second TYPE: %s", l);
	for (size_t i = 0; i < 5; i++)
		if (strcmp(sp + 1, types[i]) == 0)
			return snprintf(f->type, sizeof(f->type), "%s", types[i]), true;
	FAIL("an unknown type: %s", l);
}

/* the labels at *p ("{k=\"v\",...}"), into out (canonical, for the series' key); le's value
 * into *le; identity values kept unescaped */
static bool labels(struct pcheck *pc, const char **p, char *out, size_t cap, char *le)
{
	size_t o = 0;
	const char *s = *p + 1;
	while (*s != '}') {
		const char *eq = strchr(s, '='), *k = s;
		if (!eq || !metric_name_ok(s, (size_t)(eq - s)) || eq[1] != '"')
			FAIL("bad label at %s", s);
		bool is_le = eq - s == 2 && !memcmp(s, "le", 2),
		     is_id = eq - s == 8 && !memcmp(s, "identity", 8);
		char v[128];
		size_t n = 0;
		for (s = eq + 2; *s != '"'; s++) {
			if (!*s || n + 1 >= sizeof(v))
				FAIL("an unterminated label value");
			if (*s == '\\') {
				s++;
				if (*s != '\\' && *s != '"' && *s != 'n')
					FAIL("a bad escape in a label value: \\%c", *s);
				v[n++] = *s == 'n' ? '\n' : *s;
			} else {
				v[n++] = *s;
			}
		}
		v[n] = 0;
		o += (size_t)snprintf(out + o, cap - o, "%.*s=%s;", (int)(eq - k), k, v);
		if (is_le)
			snprintf(le, 32, "%.31s", v);
		if (is_id && pc->n_labels < 32)
			snprintf(pc->labels[pc->n_labels++], sizeof(pc->labels[0]), "%s", v);
		s++;
		if (*s == ',')
			s++;
		else if (*s != '}')
			FAIL("labels: expected , or }");
	}
	*p = s + 1;
	return true;
}

/* the family a sample name belongs to (a histogram's _bucket, _sum, _count) */
static struct pfam *sample_family(struct pcheck *pc, const char *name, size_t n, const char **suf)
{
	static const char *const sufs[] = {"_bucket", "_sum", "_count"};
	*suf = "";
	for (int i = 0; i < 3; i++) {
		size_t k = strlen(sufs[i]);
		struct pfam *f = n > k && !memcmp(name + n - k, sufs[i], k)
		                     ? pfam(pc, name, n - k, false)
		                     : NULL;
		if (f && !strcmp(f->type, "histogram")) {
			*suf = sufs[i];
			return f;
		}
	}
	struct pfam *f = pfam(pc, name, n, false);
	return f && strcmp(f->type, "histogram") ? f : NULL;
}

static bool histogram_sample(struct pcheck *pc, struct pfam *f, const char *suf, const char *le,
                             double v)
{
	if (!strcmp(suf, "_bucket")) {
		double b = !strcmp(le, "+Inf") ? INFINITY : strtod(le, NULL);
		if (!le[0] || f->has_inf || b <= f->last_le || v < f->last_bucket)
			FAIL("%s: buckets not increasing and cumulative (le=%s)", f->name, le);
		f->last_le = b;
		f->last_bucket = v;
		if (isinf(b)) {
			f->has_inf = true;
			f->inf = v;
		}
	} else if (!strcmp(suf, "_count")) {
		f->has_count = true;
		f->count = v;
	} else if (!strcmp(suf, "_sum")) {
		f->has_sum = true;
	} else {
		FAIL("%s: a histogram's sample that is no bucket, sum or count", f->name);
	}
	return true;
}

static bool sample_line(struct pcheck *pc, const char *l)
{
	const char *p = l;
	while (*p && *p != '{' && *p != ' ')
		p++;
	size_t n = (size_t)(p - l);
	if (!metric_name_ok(l, n) || strncmp(l, "pgward_", 7) != 0)
		FAIL("a bad sample name: %s", l);
	const char *suf;
	struct pfam *f = sample_family(pc, l, n, &suf);
	if (!f || !f->help || !f->type[0])
		FAIL("a sample without HELP and TYPE: %s", l);
	if (f->done || (pc->cur >= 0 && &pc->f[pc->cur] != f && f->seen))
		FAIL("a family's samples not together: %s", l);
	if (pc->cur >= 0 && &pc->f[pc->cur] != f)
		pc->f[pc->cur].done = true;
	pc->cur = (int)(f - pc->f);
	f->seen = true;
	if (!strcmp(f->type, "counter") && (n < 6 || memcmp(l + n - 6, "_total", 6)))
		FAIL("a counter not ending in _total: %s", l);
	char key[512] = "", le[32] = "";
	if (*p == '{' && !labels(pc, &p, key, sizeof(key), le))
		return false;
	if (*p != ' ')
		FAIL("no space before the value: %s", l);
	char *end;
	double v = strtod(p + 1, &end);
	if (end == p + 1 || *end)
		FAIL("a bad value (or a timestamp): %s", l);
	char *series = malloc(n + strlen(key) + 2);
	sprintf(series, "%.*s{%s", (int)n, l, key);
	for (int i = 0; i < pc->n_series; i++)
		if (!strcmp(pc->series[i], series))
			return free(series), snprintf(pc->why, sizeof(pc->why), "twice: %s", l),
			       false;
	pc->series = realloc(pc->series, sizeof(char *) * (size_t)(pc->n_series + 1));
	pc->series[pc->n_series++] = series;
	return strcmp(f->type, "histogram") ? true : histogram_sample(pc, f, suf, le, v);
}

/* true when text is well-formed; else pc->why says what is not */
static bool prom_check(struct pcheck *pc, const char *text, size_t len)
{
	memset(pc, 0, sizeof(*pc));
	pc->cur = -1;
	if (!len || text[len - 1] != '\n' || strlen(text) != len)
		FAIL("the text must end in a newline and hold no NUL");
	char *copy = strndup(text, len);
	bool ok = true;
	for (char *save = NULL, *l = strtok_r(copy, "\n", &save); ok && l;
	     l = strtok_r(NULL, "\n", &save))
		ok = l[0] == '#' ? meta_line(pc, l) : sample_line(pc, l);
	if (ok && strstr(text, "\n\n"))
		ok = false, snprintf(pc->why, sizeof(pc->why), "an empty line");
	for (int i = 0; ok && i < pc->n; i++) {
		struct pfam *f = &pc->f[i];
		if (!strcmp(f->type, "histogram") && f->seen &&
		    (!f->has_inf || !f->has_count || !f->has_sum || f->inf != f->count))
			ok = false,
			snprintf(pc->why, sizeof(pc->why), "%s: +Inf != _count", f->name);
		if (!f->type[0] || !f->help)
			ok = false,
			snprintf(pc->why, sizeof(pc->why), "%s: no HELP or TYPE", f->name);
	}
	free(copy);
	return ok;
}

static void pc_free(struct pcheck *pc)
{
	for (int i = 0; i < pc->n_series; i++)
		free(pc->series[i]);
	free(pc->series);
	pc->series = NULL;
	pc->n_series = 0;
}

/* the value of the sample line that starts with series + " " */
static double value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, series, n) && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

static void test_prometheus(void)
{
	static const struct {
		const char *text, *what;
	} broken[] = {
	    {"# TYPE pgward_x_total counter\npgward_x_total 1\n", "no HELP"},
	    {"# HELP pgward_x x\n# TYPE pgward_x counter\npgward_x 1\n",
	     "a counter without _total"},
	    {"# HELP pgward_h h\n# TYPE pgward_h histogram\npgward_h_bucket{le=\"1\"} 5\n"
	     "pgward_h_bucket{le=\"2\"} 4\npgward_h_bucket{le=\"+Inf\"} 5\npgward_h_sum 1\n"
	     "pgward_h_count 5\n",
	     "buckets not cumulative"},
	    {"# HELP pgward_h h\n# TYPE pgward_h histogram\npgward_h_bucket{le=\"1\"} 5\n"
	     "pgward_h_sum 1\npgward_h_count 5\n",
	     "no +Inf bucket"},
	    {"# HELP pgward_g g\n# TYPE pgward_g gauge\npgward_g{a=\"x\\q\"} 1\n", "a bad escape"},
	    {"# HELP pgward_g g\n# TYPE pgward_g gauge\npgward_g 1\npgward_g 2\n",
	     "a series twice"},
	};
	struct pcheck *pc = calloc(1, sizeof(*pc));
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		CHECK(!prom_check(pc, broken[i].text, strlen(broken[i].text)),
		      "the checker refuses %s (%s)", broken[i].what, pc->why);
		pc_free(pc);
	}
	struct pw_metrics_snapshot *s = snap_new();
	fill(s, true);
	size_t len = 0;
	char *t = pw_metrics_prometheus(s, &len);
	bool ok = t && prom_check(pc, t, len);
	CHECK(ok, "the exposition passes the strict checker%s%s", ok ? "" : ": ",
	      ok ? "" : pc->why);
	bool weird_back = false;
	for (int i = 0; i < pc->n_labels; i++)
		weird_back = weird_back || !strcmp(pc->labels[i], weird);
	CHECK(weird_back && strstr(t, "identity=\"we\\\"ird\\\\na\\nme\""),
	      "identity label values escaped (backslash, quote, newline) and read back");
	pc_free(pc);
	CHECK(value_of(t, "pgward_statements_total{decision=\"denied\"}") ==
	              100 + PW_M_STMT_DENIED &&
	          value_of(t, "pgward_sessions_live") == 100 &&
	          value_of(t, "pgward_identity_statements_held_total{identity=\"reader\"}") == 14 &&
	          value_of(t, "pgward_bpf_ringbuf_drops_total") == 1004 &&
	          value_of(t, "pgward_audit_refusing") == 1 && value_of(t, "pgward_workers") == 2,
	      "samples carry the snapshot's values");
	CHECK(
	    value_of(t, "pgward_statement_added_latency_seconds_bucket{le=\"0.000005\"}") == 0 &&
	        value_of(t, "pgward_statement_added_latency_seconds_bucket{le=\"0.00001\"}") == 1 &&
	        value_of(t, "pgward_statement_added_latency_seconds_bucket{le=\"1.0\"}") == 91 &&
	        value_of(t, "pgward_statement_added_latency_seconds_bucket{le=\"+Inf\"}") == 105 &&
	        value_of(t, "pgward_statement_added_latency_seconds_count") == 105 &&
	        fabs(value_of(t, "pgward_statement_added_latency_seconds_sum") - 0.041) < 1e-9,
	    "the histogram: bounds in seconds, cumulative, +Inf = _count, _sum in seconds");
	free(t);
	fill(s, false);
	t = pw_metrics_prometheus(s, &len);
	ok = t && prom_check(pc, t, len);
	CHECK(ok && !strstr(t, "pgward_bpf_") && !strstr(t, "pgward_audit_"),
	      "no redirect, no trail: no bpf or audit families%s%s", ok ? "" : ": ",
	      ok ? "" : pc->why);
	pc_free(pc);
	free(t);
	pw_metrics_collect(s);
	t = pw_metrics_prometheus(s, &len);
	ok = t && prom_check(pc, t, len);
	CHECK(ok, "a collected snapshot's exposition passes%s%s", ok ? "" : ": ",
	      ok ? "" : pc->why);
	pc_free(pc);
	free(t);
	free(pc);
	free(s);
}

/* ---- the HTTP endpoint --------------------------------------------------------------------- */

static int scrapes;

static void gather(struct pw_metrics_snapshot *s)
{
	pw_metrics_collect(s);
	s->workers = 2;
	__atomic_add_fetch(&scrapes, 1, __ATOMIC_RELAXED);
}

static int dial(int family, int port)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 8};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* everything until the server closes (or an error); the bytes read */
static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == cap - 1)
			break;
	}
	buf[n] = 0;
	return n;
}

struct resp {
	int status;
	char head[2048];
	const char *body;
	size_t body_len, clen;
	char *raw;
};

/* sends req, reads the answer: the status (0: none) */
static int http(int family, int port, const char *req, size_t len, struct resp *r)
{
	memset(r, 0, sizeof(*r));
	r->raw = calloc(1, 1 << 20);
	int fd = dial(family, port);
	if (fd < 0)
		return 0;
	send(fd, req, len, MSG_NOSIGNAL);
	size_t n = read_all(fd, r->raw, 1 << 20);
	close(fd);
	char *e = strstr(r->raw, "\r\n\r\n");
	if (!e || sscanf(r->raw, "HTTP/1.1 %d ", &r->status) != 1)
		return 0;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(e + 2 - r->raw), r->raw);
	r->body = e + 4;
	r->body_len = n - (size_t)(r->body - r->raw);
	const char *cl = strstr(r->head, "\r\nContent-Length: ");
	r->clen = cl ? strtoul(cl + 18, NULL, 10) : (size_t)-1;
	return r->status;
}

static int get(int port, const char *req, struct resp *r)
{
	return http(AF_INET, port, req, strlen(req), r);
}

/* the server closes fd (EOF or reset) within secs, without a byte of answer */
static bool closed_silently(int fd, double secs)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, (int)(secs * 1000)) != 1)
		return false;
	char b[64];
	return recv(fd, b, sizeof(b), MSG_DONTWAIT) <= 0;
}

static void test_http_requests(int port)
{
#define R(s) s, sizeof(s) - 1
	static const struct {
		const char *req;
		size_t len;
		int status;
		const char *what;
	} cases[] = {
	    {R("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 200, "GET /"},
	    {R("GET /metrics?x=1 HTTP/1.0\n\n"), 200, "a query string, bare LF lines"},
	    {R("\r\nGET /metrics HTTP/1.1\r\n\r\n"), 200, "an empty line before the request"},
	    {R("GET /nope HTTP/1.1\r\n\r\n"), 404, "another path"},
	    {R("GET /metricsx HTTP/1.1\r\n\r\n"), 404, "a longer path"},
	    {R("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 405, "POST"},
	    {R("BREW /metrics HTTP/1.1\r\n\r\n"), 405, "an unknown method"},
	    {R("hello\r\n\r\n"), 400, "no request line"},
	    {R("GET /metrics HTTP/2.0\r\n\r\n"), 400, "HTTP/2.0"},
	    {R("GET metrics HTTP/1.1\r\n\r\n"), 400, "a target without /"},
	    {R("GET  /metrics HTTP/1.1\r\n\r\n"), 400, "two spaces"},
	    {R("GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n"), 400, "a header without a colon"},
	    {R("GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n"), 400, "a folded header"},
	    {R("GET /a\x01 HTTP/1.1\r\n\r\n"), 400, "a control character in the target"},
	    {R("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), 400, "a TLS hello"},
	};
#undef R
	struct resp r;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = http(AF_INET, port, cases[i].req, cases[i].len, &r);
		CHECK(st == cases[i].status && r.clen == r.body_len &&
		          strstr(r.head, "\r\nConnection: close\r\n"),
		      "%s: %d (got %d)", cases[i].what, cases[i].status, st);
		if (cases[i].status == 405)
			CHECK(strstr(r.head, "\r\nAllow: GET, HEAD\r\n") != NULL, "405 says Allow");
		free(r.raw);
	}
	int st = get(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n", &r);
	struct pcheck *pc = calloc(1, sizeof(*pc));
	bool ok = st == 200 && r.clen == r.body_len && prom_check(pc, r.body, r.body_len);
	CHECK(ok &&
	          strstr(r.head, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
	      "GET /metrics: 200, the exposition's content type, a body that passes (%d %s)", st,
	      ok ? "" : pc->why);
	CHECK(value_of(r.body, "pgward_workers") == 2, "the body is gather()'s snapshot");
	pc_free(pc);
	free(pc);
	free(r.raw);
	st = get(port, "HEAD /metrics HTTP/1.1\r\n\r\n", &r);
	CHECK(st == 200 && r.body_len == 0 && r.clen > 100 && r.clen != (size_t)-1,
	      "HEAD: the headers, no body (%d, %zu, %zu)", st, r.body_len, r.clen);
	free(r.raw);
	/* a request in pieces, slowly: still answered */
	int fd = dial(AF_INET, port);
	const char *parts[] = {"GET /met", "rics HTTP/1.1\r", "\nHost: x\r\n", "\r\n"};
	for (int i = 0; i < 4; i++) {
		send(fd, parts[i], strlen(parts[i]), MSG_NOSIGNAL);
		usleep(50000);
	}
	char *buf = calloc(1, 1 << 20);
	read_all(fd, buf, 1 << 20);
	CHECK(!strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), "a request sent in pieces is answered");
	close(fd);
	/* a head over 8 KiB: closed without an answer */
	fd = dial(AF_INET, port);
	char big[9100];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX-Long: ", 31);
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
	send(fd, big, sizeof(big), MSG_NOSIGNAL);
	CHECK(closed_silently(fd, 2), "a request over 8 KiB is closed without an answer");
	close(fd);
	free(buf);
}

static void test_http_clients(int port)
{
	struct resp r;
	/* one that sends nothing, one that sends 100 KiB of garbage: a scrape goes on */
	int idle = dial(AF_INET, port), junk = dial(AF_INET, port);
	char *g = malloc(100 << 10);
	for (int i = 0; i < (100 << 10); i++)
		g[i] = (char)('A' + i % 26);
	ssize_t sent = send(junk, g, 100 << 10, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(g);
	double t0 = now_s();
	int st = get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	CHECK(st == 200 && now_s() - t0 < 1.0,
	      "a silent client and one sending 100 KiB (%zd sent) do not hold up a scrape (%.3f s)",
	      sent, now_s() - t0);
	free(r.raw);
	CHECK(closed_silently(junk, 2), "the garbage sender is closed at 8 KiB");
	close(junk);
	close(idle);
	/* more idle clients than the 16 slots: the oldest make room */
	int many[20];
	for (int i = 0; i < 20; i++)
		many[i] = dial(AF_INET, port);
	usleep(100000);
	st = get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r);
	CHECK(st == 200, "20 idle connections (16 slots): a scrape is still answered");
	free(r.raw);
	CHECK(closed_silently(many[0], 1), "the oldest idle connection made room");
	for (int i = 0; i < 20; i++)
		close(many[i]);
	usleep(100000);
	/* one that sends nothing is closed after 5 s */
	int late = dial(AF_INET, port);
	t0 = now_s();
	bool closed = closed_silently(late, 8);
	double took = now_s() - t0;
	CHECK(closed && took > 4.5 && took < 7, "a silent client is closed after 5 s (%.2f s)",
	      took);
	close(late);
}

static void test_http(void)
{
	struct pw_metrics_config cfg = {.enabled = true, .host = "127.0.0.1", .port = 0};
	char err[256] = "";
	CHECK(pw_metrics_http_port() == 0, "not running: port 0");
	int rc = pw_metrics_http_start(&cfg, gather, err, sizeof(err));
	int port = pw_metrics_http_port();
	CHECK(rc == 0 && port > 0, "starts on 127.0.0.1, an ephemeral port (%d) %s", port, err);
	if (rc != 0)
		return;
	CHECK(pw_metrics_http_start(&cfg, gather, err, sizeof(err)) < 0 && err[0],
	      "a second start is refused: %s", err);
	test_http_requests(port);
	test_http_clients(port);
	CHECK(scrapes > 0, "gather() runs per scrape (%d)", scrapes);
	pw_metrics_http_stop();
	pw_metrics_http_stop(); /* twice: nothing */
	int fd = dial(AF_INET, port);
	CHECK(fd < 0 && pw_metrics_http_port() == 0, "stopped: nothing listens");
	if (fd >= 0)
		close(fd);
	cfg.port = port; /* the same port again, its old connections in TIME_WAIT: SO_REUSEADDR */
	rc = pw_metrics_http_start(&cfg, gather, err, sizeof(err));
	struct resp r;
	CHECK(rc == 0 && get(port, "GET /metrics HTTP/1.1\r\n\r\n", &r) == 200,
	      "started again on the same port, it answers %s", rc ? err : "");
	free(r.raw);
	/* the port is taken now: another endpoint cannot have it */
	pw_metrics_http_stop();
	int hold = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(hold, (struct sockaddr *)&a, sizeof(a));
	listen(hold, 1);
	socklen_t sl = sizeof(a);
	getsockname(hold, (struct sockaddr *)&a, &sl);
	cfg.port = ntohs(a.sin_port);
	err[0] = 0;
	CHECK(pw_metrics_http_start(&cfg, gather, err, sizeof(err)) < 0 && strstr(err, "listen"),
	      "a port in use: an error (%s)", err);
	close(hold);
	snprintf(cfg.host, sizeof(cfg.host), "localhost.example");
	CHECK(pw_metrics_http_start(&cfg, gather, err, sizeof(err)) < 0 && strstr(err, "numeric"),
	      "a host that is not numeric: an error (%s)", err);
	snprintf(cfg.host, sizeof(cfg.host), "[::1]");
	cfg.port = 0;
	if (pw_metrics_http_start(&cfg, gather, err, sizeof(err)) == 0) {
		CHECK(http(AF_INET6, pw_metrics_http_port(), "GET / HTTP/1.1\r\n\r\n", 18, &r) ==
		          200,
		      "IPv6: [::1] answers");
		free(r.raw);
		pw_metrics_http_stop();
	} else {
		CHECK_SKIP("no IPv6 loopback here", "IPv6: [::1] answers (%s)", err);
	}
}

int main(void)
{
	pw_metrics_start();
	test_identities(); /* first: the main thread's block is new */
	test_threads();
	test_latency();
	test_cache_sync();
	test_json();
	test_prometheus();
	test_http();
	return check_done();
}
