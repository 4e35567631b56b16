/* The audit trail's producers and its writer. See include/pgward/audit.h. What the threads
 * share, and why it is safe:
 * - A ring (one per producing thread) is single-producer/single-consumer: head is stored only
 *   by its producer, tail only by the writer, each store a release and the other side's load an
 *   acquire, so the bytes behind head (or given back behind tail) are seen whole.
 * - The list of rings: a producer pushes its new ring at the front under reg_mu (the only time
 *   it takes the mutex); only the writer unlinks or frees a listed ring (under reg_mu too). So
 *   the writer reads the front under reg_mu and walks on without it: no one else relinks or
 *   frees those nodes, and a ring pushed meanwhile is found at the next pass.
 * - A ring is LIVE, RETIRED (pw_audit_thread_done: the writer frees it once drained) or ORPHAN
 *   (a stop left it to its producer, which frees it); compare-and-swap: one side frees it.
 * - W (audit_int.h) belongs to the thread that runs the writer: pw_audit_start's caller until
 *   pthread_create, then the writer thread until pw_audit_stop joins it; so do the file
 *   (audit_file.c), the checkpoint key and the syslog sink (audit_sink.c). The rest is atomic,
 *   under reg_mu, or set before `on` is stored and not changed while it is. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "pgward/log.h"
#include "audit_int.h"

#ifndef PGWARD_VERSION
#define PGWARD_VERSION "0.1.0" /* as pgwardd.c says it */
#endif

#define TRAIL_NAME  (cfg.file[0] ? cfg.file : cfg.to_stdout ? "on stdout" : "to syslog")
#define RING_MIN    1024u
#define RING_MAX    (1u << 30)
#define PENDING_CAP (64u << 20) /* lines kept while the trail cannot be written; more: lost */
#define BATCH_MAX   (8u << 20)  /* written in the middle of a pass past this */
#define OUT_KEEP    (16u << 20) /* the batch buffer is given back above this */

enum { RING_LIVE, RING_RETIRED, RING_ORPHAN };
struct ring {
	_Alignas(64) _Atomic uint64_t head; /* bytes ever pushed (its producer's) */
	_Alignas(64) _Atomic uint64_t tail; /* bytes ever taken (the writer's) */
	_Alignas(64) atomic_int busy;       /* its producer is inside pw_audit_end */
	atomic_int state;
	size_t size, max_field;
	bool drop_when_full, wake_each;
	struct ring *next; /* in rings */
	char buf[];
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ring *rings; /* see the top of the file */
/* the run's configuration: written by pw_audit_start under reg_mu while no writer runs, read
 * by the writer and, under reg_mu, by a producer making its ring */
struct pw_audit_config pw_audit_cfg;
static atomic_bool on, stopping, wake_flag, big_warned, want_parameters;
static _Atomic size_t max_field; /* max_field_bytes of the run (0: off) */
/* made by the first pw_audit_start before `on`, never closed: a producer may write to it
 * whenever it is inside pw_audit_end, and a closed number could be another file's by then */
static int efd = -1;
/* the reason pw_audit_stop gives: written before `stopping` (seq_cst), read after it */
static char stop_reason[256];
static bool running; /* pw_audit_start's and pw_audit_stop's (pgwardd's main thread) */

_Atomic uint64_t pw_audit_ctr[C_N]; /* audit_int.h */
static atomic_int failing_errno;    /* 0: the trail is written */
static atomic_int refuse_errno;     /* failing and on_failure "refuse" */
static _Thread_local struct ring *my_ring;
static _Thread_local struct pw_jw my_w; /* the thread's builder, kept for its next record */

struct pw_audit_writer pw_audit_w = {.fd = -1};

#define now_ms pw_audit_now_ms
#define es     pw_audit_es

/* Records that will not be in the trail: counted, and told by the next audit_loss. */
static void lost(uint64_t n)
{
	cnt_add(C_DROPPED, n);
	cnt_add(C_LOSS, n);
}

/* Make the writer look now. The flag holds it to one eventfd write per writer pass, however
 * many producers call: the writer clears it before it drains, acq_rel on both sides, so a
 * record pushed before a producer finds the flag already set is seen by that drain. */
static void wake_writer(void)
{
	if (!atomic_exchange_explicit(&wake_flag, true, memory_order_acq_rel)) {
		uint64_t one = 1;
		ssize_t n = write(efd, &one, sizeof(one));
		(void)n; /* a full counter wakes the writer just as well */
	}
}

/* The calling thread's ring in this run of the writer: made and listed at its first record.
 * A ring a stop left (ORPHAN) is freed here. NULL: the trail is off, or no memory. */
static struct ring *ring_of_thread(void)
{
	struct ring *r = my_ring;
	if (r && atomic_load_explicit(&r->state, memory_order_acquire) != RING_ORPHAN)
		return r;
	free(r);
	my_ring = r = NULL;
	pthread_mutex_lock(&reg_mu);
	/* `on` read under reg_mu: a stop clears it before it orphans the list under reg_mu, so a
	 * ring listed here is orphaned by that stop, or none is made */
	size_t size = cfg.ring_bytes;
	if (atomic_load(&on) && (r = aligned_alloc(64, (sizeof(*r) + size + 63) & ~(size_t)63))) {
		memset(r, 0, sizeof(*r)); /* head, tail, busy 0; RING_LIVE */
		r->size = size;
		r->max_field = cfg.max_field_bytes;
		r->drop_when_full = cfg.drop_when_full;
		r->wake_each = cfg.fsync == PW_AUDIT_FSYNC_EVERY;
		r->next = rings;
		rings = r;
	} else if (atomic_load(&on)) {
		lost(1);
	}
	pthread_mutex_unlock(&reg_mu);
	if (r)
		my_w.max_field = r->max_field;
	return my_ring = r;
}

/* A record's start in w: "ts" (ts, or now when NULL) and "type". */
static struct pw_jw *record_head(struct pw_jw *w, const char *type, const struct timespec *ts)
{
	struct timespec now = {0};
	char t[40];
	const struct timespec *at = ts ? ts : (clock_gettime(CLOCK_REALTIME, &now), &now);
	pw_jw_time(t, sizeof(t), at->tv_sec, at->tv_nsec);
	pw_jw_reset(w);
	pw_jw_str(w, "ts", t);
	pw_jw_str(w, "type", type);
	return w;
}

struct pw_jw *pw_audit_begin_at(const char *type, const struct timespec *ts)
{
	if (!atomic_load_explicit(&on, memory_order_acquire) || !ring_of_thread())
		return NULL;
	return record_head(&my_w, type, ts);
}

struct pw_jw *pw_audit_begin(const char *type)
{
	return pw_audit_begin_at(type, NULL);
}

size_t pw_audit_max_field(void)
{
	return atomic_load_explicit(&max_field, memory_order_relaxed);
}

/* n bytes between p and the ring at pos (into the ring when in), around its end */
static void ring_copy(const struct ring *r, uint64_t pos, void *p, size_t n, bool in)
{
	size_t off = (size_t)(pos % r->size), first = r->size - off < n ? r->size - off : n;
	char *b = (char *)r->buf;
	memcpy(in ? b + off : p, in ? p : b + off, first);
	memcpy(in ? b : (char *)p + first, in ? (char *)p + first : b, n - first);
}

void pw_audit_end(struct pw_jw *w)
{
	struct ring *r = my_ring;
	if (!w || w != &my_w || !r)
		return;
	uint32_t n = (uint32_t)w->len;
	/* above half the ring a record could hold it (and its producer) forever: lost, never
	 * cut (a cut record would say something false); max_field_bytes keeps records smaller */
	if (!pw_jw_ok(w) || w->len > r->size / 2) {
		if (pw_jw_ok(w) && !atomic_exchange(&big_warned, true))
			pw_warn("audit: a record of %zu bytes, over half a ring: lost (said once)",
			        w->len);
		lost(1);
		return;
	}
	/* busy is set before `on` is read, and the stopping writer reads busy after `on` is
	 * cleared (all seq_cst): either this record sees the trail off, or the stop waits for
	 * it (final_pass). A ring orphaned since pw_audit_begin (a stop, and maybe a start, in
	 * between) is drained by no one: the record is lost. */
	atomic_store(&r->busy, 1);
	bool ok = atomic_load(&on) && atomic_load(&r->state) == RING_LIVE, waited = false;
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed), need = 4 + n,
	         used = 0;
	while (ok &&
	       r->size - (used = head - atomic_load_explicit(&r->tail, memory_order_acquire)) <
	           need) {
		if (!(ok = !r->drop_when_full))
			break;
		cnt_add(C_WAITS, !waited); /* records that waited, not naps */
		waited = true;
		wake_writer();
		nanosleep(&(struct timespec){0, 200000}, NULL); /* for room */
		ok = atomic_load(&on) && atomic_load(&r->state) == RING_LIVE;
	}
	if (ok) {
		ring_copy(r, head, &n, 4, true);
		ring_copy(r, head + 4, w->p, n, true);
		atomic_store_explicit(&r->head, head + need, memory_order_release);
		/* no syscall per record: the writer comes by every fsync_interval_ms anyway */
		if (r->wake_each || (used < r->size / 2 && used + need >= r->size / 2))
			wake_writer();
	} else {
		lost(1);
	}
	atomic_store_explicit(&r->busy, 0, memory_order_release);
}

void pw_audit_thread_done(void)
{
	struct ring *r = my_ring;
	int live = RING_LIVE;
	my_ring = NULL;
	/* retired: the writer frees it once drained; orphaned by a stop: ours to free */
	if (r && !atomic_compare_exchange_strong(&r->state, &live, RING_RETIRED))
		free(r);
	pw_jw_free(&my_w);
}

bool pw_audit_on(void)
{
	return atomic_load_explicit(&on, memory_order_acquire);
}

bool pw_audit_parameters(void)
{
	return atomic_load_explicit(&want_parameters, memory_order_relaxed);
}

/* set at start, before any producer can see the trail on */
static _Atomic uint32_t redact_set;

uint32_t pw_audit_redact(void)
{
	return atomic_load_explicit(&redact_set, memory_order_relaxed);
}

bool pw_audit_refusing(char *sqlstate, char *message, size_t msglen)
{
	int e = atomic_load_explicit(&refuse_errno, memory_order_relaxed);
	if (!e)
		return false;
	if (sqlstate)
		memcpy(sqlstate, e == ENOSPC || e == EDQUOT ? "53100" : "58030", 6);
	if (message && msglen)
		snprintf(message, msglen,
		         "pgward: the audit trail cannot be written (%s): statements are refused "
		         "until it can",
		         es(e));
	return true;
}

void pw_audit_count_refusal(void)
{
	cnt_add(C_REFUSALS, 1);
	cnt_add(C_REFUSED, 1);
}

void pw_audit_stats(struct pw_audit_stats *st)
{
	*st = (struct pw_audit_stats){.written = cnt(C_WRITTEN),
	                              .dropped = cnt(C_DROPPED),
	                              .waits = cnt(C_WAITS),
	                              .refusals = cnt(C_REFUSALS),
	                              .failures = cnt(C_FAILURES),
	                              .fsyncs = cnt(C_FSYNCS),
	                              .failing = atomic_load(&failing_errno) != 0,
	                              .checkpoints = cnt(C_CHECKPOINTS),
	                              .sign_ns = cnt(C_SIGN_NS),
	                              .syslog_sent = cnt(C_SYS_SENT),
	                              .syslog_dropped = cnt(C_SYS_DROPPED)};
}

/* A record's body into the batch, as the chain's next line; false when it is lost. */
static bool chain_line(const char *body, size_t n)
{
	char hash[PW_AUDIT_HASH_HEX + 1];
	if (pw_audit_line(&W.out, W.seq, W.host, W.pid, body, n, W.prev, hash) < 0) {
		lost(1);
		return false;
	}
	memcpy(W.prev, hash, sizeof(hash));
	W.seq++;
	W.out_records++;
	W.chained++;
	return true;
}

/* A checkpoint signing the record before it (the last chained), itself chained; nothing
 * without a key, before any record, or right after another checkpoint. A signature that
 * fails (OpenSSL) leaves the records to the next checkpoint. */
static void checkpoint(void)
{
	char sig[PW_AUDIT_SIG_B64 + 1];
	uint64_t seq = W.seq - 1;
	if (!W.key || !seq || (W.ckpt_seq && W.ckpt_seq == seq))
		return;
	if (pw_audit_sign(seq, W.prev, sig) < 0) {
		pw_warn("audit: cannot sign a checkpoint of record %llu (OpenSSL)",
		        (unsigned long long)seq);
		return;
	}
	struct pw_jw *w = record_head(&W.ck, "checkpoint", NULL);
	pw_jw_uint(w, "signed_seq", seq);
	pw_jw_str(w, "signed_hash", W.prev);
	pw_jw_str(w, "key_id", W.key_id);
	pw_jw_str(w, "alg", "ed25519");
	pw_jw_str(w, "signature", sig);
	if (pw_jw_ok(w) ? chain_line(w->p, w->len) : (lost(1), false)) {
		W.ckpt_seq = seq + 1;
		W.since_ckpt = 0;
		cnt_add(C_CHECKPOINTS, 1);
	}
}

/* A record's body into the batch. A rotation is decided here, while the file has every line
 * chained so far: the file being closed ends with a checkpoint of its last record, and the
 * record goes to the next file. A checkpoint follows every checkpoint_every records. */
static void chain(const char *body, size_t n)
{
	if (cfg.file[0] && !W.rot_pending && W.done_file == W.out.len && pw_audit_rotate_due()) {
		checkpoint();
		W.rot_pending = true;
		W.rot_at = W.out.len;
		W.rot_last = W.seq - 1;
	}
	if (chain_line(body, n) && W.key && ++W.since_ckpt >= (uint64_t)cfg.checkpoint_every)
		checkpoint();
}

/* The writer's own records (audit_*, built in W.rec like a producer's) are chained at once. */
static void wrec_end(void)
{
	if (pw_jw_ok(&W.rec))
		chain(W.rec.p, W.rec.len);
	else
		lost(1);
}

static void loss_record(void)
{
	uint64_t n = atomic_exchange(&pw_audit_ctr[C_LOSS], 0);
	if (n) {
		pw_jw_uint(record_head(&W.rec, "audit_loss", NULL), "dropped", n);
		wrec_end();
	}
}

/* The batch to every sink; 0 or the errno. What a sink has is not written to it again. Syslog
 * first, and whatever happens to the file: it never fails (best effort, never waited for). */
static int write_out(bool sync)
{
	int e;
	if (cfg.syslog.proto && W.done_sys < W.out.len) {
		pw_audit_sink_send(W.out.p + W.done_sys, W.out.len - W.done_sys);
		W.done_sys = W.out.len;
	}
	if (cfg.file[0] && (e = pw_audit_file_out(sync)))
		return e;
	if (cfg.to_stdout && W.done_out < W.out.len &&
	    (e = pw_audit_write_all(STDOUT_FILENO, W.out.p + W.done_out, W.out.len - W.done_out,
	                            &W.done_out)))
		return e;
	cnt_add(C_WRITTEN, W.out_records);
	W.out_records = 0;
	W.done_file = W.done_out = W.done_sys = 0;
	if (W.out.cap > OUT_KEEP)
		pw_jw_free(&W.out); /* a long failure's memory goes back */
	else
		pw_jw_reset(&W.out);
	return 0;
}

static void set_failing(int e)
{
	W.tried_ms = now_ms();
	if (!W.failing) {
		W.failing = true;
		W.fail_err = e;
		clock_gettime(CLOCK_REALTIME, &W.fail_since);
		cnt_add(C_FAILURES, 1);
		pw_warn("audit: the trail %s cannot be written (%s): %s", TRAIL_NAME, es(e),
		        cfg.continue_on_failure
		            ? "pgwardd runs unaudited until it can (on_failure continue)"
		            : "statements are refused until it can");
	}
	atomic_store(&failing_errno, e);
	if (!cfg.continue_on_failure)
		atomic_store(&refuse_errno, e);
}

/* Write the batch; while failing this is a retry, and it fsyncs: the trail is back only once
 * its bytes are on disk. (After a failed fsync the kernel may have dropped the pages it could
 * not write, and a later fsync succeed without them: a limit of fsync on Linux that no retry
 * here can see.) Back: audit_recovered, then audit_loss for what was lost meanwhile. */
static void flush(bool sync)
{
	char since[40];
	int e = write_out(sync || W.failing);
	if (e || !W.failing) {
		if (e)
			set_failing(e);
		return;
	}
	uint64_t refused = atomic_exchange(&pw_audit_ctr[C_REFUSED], 0);
	W.failing = false;
	atomic_store(&refuse_errno, 0);
	atomic_store(&failing_errno, 0);
	pw_jw_time(since, sizeof(since), W.fail_since.tv_sec, W.fail_since.tv_nsec);
	struct pw_jw *w = record_head(&W.rec, "audit_recovered", NULL);
	pw_jw_str(w, "error", es(W.fail_err));
	pw_jw_str(w, "since", since);
	pw_jw_uint(w, "refused", refused);
	wrec_end();
	loss_record();
	pw_info("audit: the trail %s is written again (it failed with %s since %s; %llu "
	        "statements refused meanwhile)",
	        TRAIL_NAME, es(W.fail_err), since, (unsigned long long)refused);
	if ((e = write_out(sync)))
		set_failing(e);
}

/* Everything the ring held when we looked, into the batch, giving room back record by record
 * (a producer may be waiting for it). While the trail fails the batch is held to PENDING_CAP:
 * past it records are lost (and counted) rather than leave producers waiting forever. */
static void drain_ring(struct ring *r)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	while (tail != head) {
		uint32_t n;
		ring_copy(r, tail, &n, 4, false);
		size_t off = (size_t)((tail + 4) % r->size);
		const char *body = r->buf + off;
		if (off + n > r->size) { /* it wraps around: into scratch */
			char *p = W.scratch_cap < n ? realloc(W.scratch, n) : W.scratch;
			if (p && p != W.scratch) {
				W.scratch = p;
				W.scratch_cap = n;
			}
			if ((body = p))
				ring_copy(r, tail + 4, p, n, false);
		}
		if (!body || (W.failing && W.out.len >= PENDING_CAP))
			lost(1);
		else
			chain(body, n);
		tail += 4 + (uint64_t)n;
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
}

/* One pass over every ring, in turn. A retired ring is freed once drained: its producer's
 * last push came before RETIRED (release; read here with acquire, before the drain). */
static void drain_all(void)
{
	pthread_mutex_lock(&reg_mu);
	struct ring *front = rings;
	pthread_mutex_unlock(&reg_mu);
	for (struct ring *r = front, *next; r; r = next) {
		next = r->next;
		bool retired =
		    atomic_load_explicit(&r->state, memory_order_acquire) == RING_RETIRED;
		drain_ring(r);
		if (retired) {
			pthread_mutex_lock(&reg_mu);
			struct ring **pp = &rings;
			while (*pp && *pp != r)
				pp = &(*pp)->next;
			if (*pp)
				*pp = r->next;
			pthread_mutex_unlock(&reg_mu);
			free(r);
		}
		if (!W.failing && W.out.len >= BATCH_MAX)
			flush(false);
	}
}

/* `on` is off: every record a producer pushed is drained (one inside pw_audit_end is waited
 * for), then audit_stop and a last write with fsync. Rings of live threads are left to them. */
static void final_pass(void)
{
	for (bool busy = true; busy;) {
		drain_all();
		busy = false;
		pthread_mutex_lock(&reg_mu);
		for (struct ring *r = rings; r; r = r->next)
			busy |= atomic_load(&r->busy) != 0;
		pthread_mutex_unlock(&reg_mu);
		if (busy)
			nanosleep(&(struct timespec){0, 100000}, NULL);
	}
	drain_all();
	loss_record();
	struct pw_jw *w = record_head(&W.rec, "audit_stop", NULL);
	pw_jw_str(w, "reason", stop_reason);
	pw_jw_uint(w, "written", W.chained);
	pw_jw_uint(w, "dropped", cnt(C_DROPPED));
	wrec_end();
	checkpoint(); /* the last record: the whole run, audit_stop with it, signed */
	flush(true);
	if (W.failing)
		pw_warn("audit: stopped with %llu records not written to the trail (%s)",
		        (unsigned long long)W.out_records, es(W.fail_err));
	pw_audit_sink_close();
	pthread_mutex_lock(&reg_mu);
	for (struct ring *r = rings, *next; r; r = next) {
		next = r->next; /* read first: once ORPHAN, it may be freed */
		int live = RING_LIVE;
		if (!atomic_compare_exchange_strong(&r->state, &live, RING_ORPHAN))
			free(r); /* retired: no one else has it */
	}
	rings = NULL;
	pthread_mutex_unlock(&reg_mu);
}

static void *writer_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&stopping)) {
		struct pollfd p[2] = {{.fd = efd, .events = POLLIN}, {.fd = -1}};
		uint64_t v;
		/* till a retry while failing, a due fsync, or the next look at the rings; or
		 * room for syslog messages that wait for it */
		int64_t t = W.failing ? W.tried_ms : W.unsynced ? W.synced_ms : now_ms();
		t += cfg.fsync_interval_ms - now_ms();
		p[1].fd = pw_audit_sink_pollfd(&p[1].events);
		if (poll(p, 2, t < 1 ? 1 : (int)t) > 0 && (p[0].revents & POLLIN) &&
		    read(efd, &v, sizeof(v)) < 0)
			v = 0; /* EAGAIN: nothing to take */
		atomic_exchange_explicit(&wake_flag, false, memory_order_acq_rel);
		pw_audit_sink_pump();
		drain_all();
		if (!W.failing)
			loss_record();
		if (!W.failing || now_ms() - W.tried_ms >= cfg.fsync_interval_ms)
			flush(false);
	}
	final_pass();
	return NULL;
}

static void writer_free(void)
{
	pw_audit_file_close();
	pw_audit_sink_close();
	pw_jw_free(&W.out);
	pw_jw_free(&W.rec);
	pw_jw_free(&W.ck);
	free(W.scratch); /* W is set afresh at the next start */
}

/* W for a run of c; -1 with err when c cannot be run. */
static int writer_init(const struct pw_audit_config *c, char *err, size_t errlen)
{
	size_t ring = c->ring_bytes ? c->ring_bytes : 4u << 20;
	int iv = c->fsync_interval_ms ? c->fsync_interval_ms : 100;
	char name[256] = "";
	bool bad = true;
	if (!c->file[0] && !c->to_stdout && !c->syslog.proto)
		pw_errf(err, errlen, "audit: a file or stdout (or syslog) is needed");
	else if (c->checkpoint_every < 0 || c->checkpoint_every > 1000000)
		pw_errf(err, errlen, "audit: checkpoint every %d out of range",
		        c->checkpoint_every);
	else if (ring < RING_MIN || ring > RING_MAX || iv < 1 || iv > 10000)
		pw_errf(err, errlen, "audit: ring_bytes %zu or fsync_interval_ms %d out of range",
		        ring, iv);
	else if (efd < 0 && (efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		pw_errf(err, errlen, "audit: eventfd: %s", es(errno));
	else
		bad = false;
	if (bad)
		return -1;
	memset(&W, 0, sizeof(W));
	W.fd = -1;
	W.seq = 1;
	memcpy(W.prev, PW_AUDIT_GENESIS, sizeof(W.prev));
	W.synced_ms = now_ms();
	W.pid = (long)getpid();
	gethostname(name, sizeof(name) - 1);
	pw_jw_str(&W.rec, NULL, name); /* as a JSON string (W.rec is free till then) */
	snprintf(W.host, sizeof(W.host), "%s", pw_jw_ok(&W.rec) ? W.rec.p : "\"\"");
	pw_jw_free(&W.rec);
	/* and as a verifier reads it back: what a checkpoint signs */
	json_t *h = json_loads(W.host, JSON_DECODE_ANY, NULL);
	snprintf(W.hostname, sizeof(W.hostname), "%s",
	         json_string_value(h) ? json_string_value(h) : "");
	json_decref(h);
	pthread_mutex_lock(&reg_mu);
	cfg = *c;
	cfg.ring_bytes = ring;
	cfg.fsync_interval_ms = iv;
	if (!cfg.checkpoint_every)
		cfg.checkpoint_every = PW_AUDIT_CHECKPOINT_EVERY;
	pthread_mutex_unlock(&reg_mu);
	for (int i = 0; i < C_N; i++)
		atomic_store(&pw_audit_ctr[i], 0);
	atomic_store(&failing_errno, 0);
	atomic_store(&refuse_errno, 0);
	return 0;
}

int pw_audit_start(const struct pw_audit_config *c, const char *config_path, char *err,
                   size_t errlen)
{
	uint64_t repaired = 0;
	bool resumed = false;
	int e;
	if (!c->enabled)
		return 0;
	if (running) {
		pw_errf(err, errlen, "audit: the trail is started already");
		return -1;
	}
	if (writer_init(c, err, errlen) < 0)
		return -1;
	if ((cfg.file[0] && pw_audit_open_trail(&repaired, &resumed, err, errlen) < 0) ||
	    pw_audit_key_open(err, errlen) < 0 || pw_audit_sink_open(err, errlen) < 0) {
		writer_free();
		return -1;
	}
	struct pw_jw *w = record_head(&W.rec, "audit_start", NULL);
	pw_jw_str(w, "version", PGWARD_VERSION);
	pw_jw_str(w, "config", config_path);
	pw_jw_bool(w, "resumed", resumed);
	pw_jw_uint(w, "repaired_bytes", repaired);
	wrec_end();
	/* written here, not by the thread: a trail that cannot be written at all stops the start
	 * (with on_failure "continue" the writer keeps trying instead) */
	if ((e = write_out(true)) && !cfg.continue_on_failure) {
		pw_errf(err, errlen, "cannot write the audit trail %s: %s", TRAIL_NAME, es(e));
		writer_free();
		return -1;
	}
	if (e)
		set_failing(e);
	pw_info("audit: the trail %s%s%s%s, audit_start at seq %llu (%s)%s%s", cfg.file,
	        cfg.file[0] && cfg.to_stdout ? " and " : "", cfg.to_stdout ? "stdout" : "",
	        cfg.syslog.proto ? " and syslog" : "", (unsigned long long)(W.seq - 1),
	        resumed ? "taken up" : "a new chain", W.key ? ", signed by key_id " : "",
	        W.key ? W.key_id : "");
	atomic_store(&want_parameters, c->parameters);
	atomic_store(&redact_set, c->redact);
	atomic_store(&max_field, c->max_field_bytes);
	atomic_store(&stopping, false);
	atomic_store(&wake_flag, false);
	if ((e = pthread_create(&W.thread, NULL, writer_main, NULL)) != 0) {
		pw_errf(err, errlen, "audit: cannot start the writer: %s", es(e));
		writer_free();
		return -1;
	}
	running = true;
	atomic_store(&on, true);
	return 0;
}

void pw_audit_stop(const char *reason)
{
	uint64_t one = 1;
	if (!running)
		return;
	snprintf(stop_reason, sizeof(stop_reason), "%s", reason ? reason : "");
	atomic_store(&on, false);
	atomic_store(&max_field, 0);
	atomic_store(&stopping, true);
	if (write(efd, &one, sizeof(one)) < 0)
		pw_debug("audit: cannot wake the writer; it stops at its next timeout");
	pthread_join(W.thread, NULL);
	running = false;
	pw_info("audit: stopped (%llu records written, %llu dropped, %llu checkpoints; syslog: "
	        "%llu sent, %llu dropped)",
	        (unsigned long long)cnt(C_WRITTEN), (unsigned long long)cnt(C_DROPPED),
	        (unsigned long long)cnt(C_CHECKPOINTS), (unsigned long long)cnt(C_SYS_SENT),
	        (unsigned long long)cnt(C_SYS_DROPPED));
	writer_free();
}
