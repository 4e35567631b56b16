/* pgwardd's counters, for `pgwardctl stats` and the Prometheus endpoint (docs/control.md).
 *
 * Each thread that counts has a block of its own (registered at its first count, kept until
 * the process ends): the hot path adds to its own block with a relaxed atomic store, no lock
 * and no shared cache line; a reader (the control or metrics thread) sums every block with
 * relaxed loads. A block is never freed, so a reader never sees one go; a thread that ends
 * leaves its counts behind for the totals.
 *
 * Per identity: each block keeps up to PW_METRICS_IDENTITIES names (the names a thread sees,
 * first come); counts of further identities go to the name "(other)". */
#ifndef PGWARD_METRICS_H
#define PGWARD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/config.h"
#include "pgward/jw.h"

enum pw_metric {
	PW_M_SESSIONS_LIVE,    /* a gauge: +1 when a session is made, -1 when it is freed */
	PW_M_SESSIONS_TOTAL,   /* sessions accepted (connections that became sessions) */
	PW_M_SESSIONS_REFUSED, /* sessions that ended in their opening with a FATAL of ours */
	PW_M_SESSIONS_KILLED,  /* ended by `session kill` */
	PW_M_STMT_ALLOWED,
	PW_M_STMT_DENIED,
	PW_M_STMT_HELD, /* held for approval */
	PW_M_STMT_APPROVED,
	PW_M_STMT_MASKED, /* allowed with masking */
	PW_M_STMT_UNREADABLE,
	PW_M_BYTES_FROM_CLIENTS,
	PW_M_BYTES_TO_CLIENTS,
	PW_M_TUPLE_MISSES,
	PW_M_N
};
/* The counter's key in JSON, inside its object ("live" in "sessions", "allowed" in
 * "statements", "tuple_misses" at the top); the Prometheus names (pgward_sessions_live,
 * pgward_statements_total{decision="allowed"}) are in the same table, in metrics.c. NULL for
 * a value out of range. */
const char *pw_metric_name(enum pw_metric m);

enum pw_id_metric {
	PW_IM_SESSIONS,
	PW_IM_STATEMENTS,
	PW_IM_ALLOWED,
	PW_IM_DENIED,
	PW_IM_HELD,
	PW_IM_N
};
const char *pw_id_metric_name(enum pw_id_metric m);

#define PW_METRICS_IDENTITIES 64
/* Latency buckets (µs, upper bounds; +Inf after the last). */
#define PW_METRICS_BUCKETS 14
extern const uint64_t pw_metrics_bucket_us[PW_METRICS_BUCKETS];

/* The process's start for uptime_seconds (pgwardd's main calls it first thing); without it,
 * the first count or collect is the start. Any thread, any number of times: the first wins. */
void pw_metrics_start(void);

/* Count on this thread's block. NULL identity: counted under "(other)". */
void pw_metric_add(enum pw_metric m, int64_t n);
void pw_metric_identity(const char *identity, enum pw_id_metric m);
/* One statement's added latency, in µs. */
void pw_metric_latency(uint64_t us);

/* Everything `stats` shows: the blocks summed, plus what other modules count (filled by the
 * caller of pw_metrics_collect, which knows them: the loader's, the audit trail's, the
 * approvals'). */
struct pw_metrics_identity {
	char name[64];
	uint64_t v[PW_IM_N];
};
struct pw_metrics_snapshot {
	uint64_t uptime_s;
	int workers;
	int64_t m[PW_M_N];
	uint64_t cache_hits, cache_misses;
	uint64_t latency_count, latency_sum_us,
	    latency_buckets[PW_METRICS_BUCKETS + 1]; /* not
	                                              * cumulative */
	int n_ids;
	struct pw_metrics_identity ids[PW_METRICS_IDENTITIES * 4]; /* summed by name, sorted */
	bool bpf;                  /* the redirect runs: bpf[] is meaningful */
	uint64_t bpf_counters[16]; /* abi.h's PW_CNT_*, summed over CPUs */
	uint64_t approvals_pending, approvals_approved, approvals_denied, approvals_timed_out,
	    approvals_withdrawn;
	bool audit;
	uint64_t audit_records, audit_lost;
	bool audit_refusing;
};

/* The blocks summed into s (the rest of s zeroed): any thread. */
void pw_metrics_collect(struct pw_metrics_snapshot *s);
/* The analysis cache's counts of this thread (sql_cache.h) into its block: workers call it
 * once a second (the cache counts in a thread-local struct of its own). */
void pw_metrics_cache_sync(void);

/* `stats`: the member "result" of docs/control.md's shape. */
void pw_metrics_json(const struct pw_metrics_snapshot *s, struct pw_jw *w);
/* Prometheus text exposition format 0.0.4 into a malloc'd string (NULL: out of memory). */
char *pw_metrics_prometheus(const struct pw_metrics_snapshot *s, size_t *len);

/* The HTTP endpoint: a thread of its own serving GET /metrics (and / with a pointer to it) on
 * cfg->metrics; gather fills a snapshot for each scrape. 0 or -1 with err set. */
int pw_metrics_http_start(const struct pw_metrics_config *cfg,
                          void (*gather)(struct pw_metrics_snapshot *s), char *err, size_t errlen);
void pw_metrics_http_stop(void);
/* The port the endpoint listens on (cfg->port 0: the one the kernel chose); 0 when stopped. */
int pw_metrics_http_port(void);

#endif
