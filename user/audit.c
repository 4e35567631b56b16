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
 * - W belongs to the thread that runs the writer: pw_audit_start's caller until
 *   pthread_create, then the writer thread until pw_audit_stop joins it. The rest is atomic,
 *   under reg_mu, or set before `on` is stored and not changed while it is. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgward/audit.h"
#include "pgward/audit_chain.h"
#include "pgward/log.h"

#ifndef PGWARD_VERSION
#define PGWARD_VERSION "0.1.0" /* as pgwardd.c says it */
#endif

#define TRAIL_NAME  (cfg.file[0] ? cfg.file : "on stdout")
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
static struct pw_audit_config cfg;
static atomic_bool on, stopping, wake_flag, big_warned, want_parameters;
static _Atomic size_t max_field; /* max_field_bytes of the run (0: off) */
/* made by the first pw_audit_start before `on`, never closed: a producer may write to it
 * whenever it is inside pw_audit_end, and a closed number could be another file's by then */
static int efd = -1;
/* the reason pw_audit_stop gives: written before `stopping` (seq_cst), read after it */
static char stop_reason[256];
static bool running; /* pw_audit_start's and pw_audit_stop's (pgwardd's main thread) */

/* counters of the run (relaxed: figures, no order hangs on them) */
enum { C_WRITTEN, C_DROPPED, C_WAITS, C_REFUSALS, C_FAILURES, C_FSYNCS, C_LOSS, C_REFUSED, C_N };
static _Atomic uint64_t ctr[C_N]; /* C_LOSS: since the last audit_loss, C_REFUSED: failing */
#define cnt_add(c, n) atomic_fetch_add_explicit(&ctr[c], (n), memory_order_relaxed)
#define cnt(c)        atomic_load_explicit(&ctr[c], memory_order_relaxed)
static atomic_int failing_errno; /* 0: the trail is written */
static atomic_int refuse_errno;  /* failing and on_failure "refuse" */
static _Thread_local struct ring *my_ring;
static _Thread_local struct pw_jw my_w; /* the thread's builder, kept for its next record */

static struct writer {
	char host[1600]; /* the host name as a JSON string */
	long pid;
	pthread_t thread;
	int fd;                           /* the file (-1: not open) */
	off_t size;                       /* its size: where the next batch starts */
	uint64_t file_first;              /* the seq of its first record (0: empty) */
	uint64_t file_last;               /* the seq of its last record */
	int64_t file_born;                /* when its first record was written (s) */
	bool unsynced;                    /* written since the last fsync */
	int64_t synced_ms, tried_ms;      /* the last fsync, the last try while failing */
	uint64_t seq;                     /* the next record's */
	char prev[PW_AUDIT_HASH_HEX + 1]; /* the last record's hash */
	struct pw_jw out;                 /* chained lines not yet written everywhere */
	size_t done_file, done_out;       /* bytes of out the file, stdout have */
	uint64_t out_records, chained;
	struct pw_jw rec; /* the writer's own records */
	char *scratch;    /* a body that wraps around its ring */
	size_t scratch_cap;
	bool failing;
	int fail_err;
	struct timespec fail_since;
} W = {.fd = -1};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *es(int e)
{
	const char *s = strerrordesc_np(e); /* thread-safe, unlike strerror */
	return s ? s : "unknown error";
}

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
	                              .failing = atomic_load(&failing_errno) != 0};
}

/* A record's body into the batch, as the chain's next line. */
static void chain(const char *body, size_t n)
{
	char hash[PW_AUDIT_HASH_HEX + 1];
	if (pw_audit_line(&W.out, W.seq, W.host, W.pid, body, n, W.prev, hash) < 0) {
		lost(1);
		return;
	}
	memcpy(W.prev, hash, sizeof(hash));
	W.seq++;
	W.out_records++;
	W.chained++;
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
	uint64_t n = atomic_exchange(&ctr[C_LOSS], 0);
	if (n) {
		pw_jw_uint(record_head(&W.rec, "audit_loss", NULL), "dropped", n);
		wrec_end();
	}
}

static const char *dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	snprintf(dir, cap, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
	         slash ? path : ".");
	return slash ? slash + 1 : path;
}

/* A name made or changed in a directory is on disk once the directory is synced. */
static int fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	dir_of(path, dir, sizeof(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), e = fd < 0 ? errno : 0;
	if (fd >= 0 && fsync(fd) < 0)
		e = errno;
	if (fd >= 0)
		close(fd);
	return e;
}

static int open_file(void)
{
	struct stat st;
	int fd = open(cfg.file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && fstat(fd, &st) == 0) {
		W.fd = fd;
		W.size = st.st_size;
		return 0;
	}
	int e = errno;
	if (fd >= 0)
		close(fd);
	return e;
}

static int sync_file(void)
{
	if (fsync(W.fd) < 0)
		return errno;
	W.unsynced = false;
	W.synced_ms = now_ms();
	cnt_add(C_FSYNCS, 1);
	return 0;
}

/* FILE -> FILE.<its first seq>, and a new FILE; the chain runs on (prev is kept). */
static int rotate(void)
{
	char to[PATH_MAX + 32];
	int e;
	if (W.unsynced && (e = sync_file()))
		return e;
	snprintf(to, sizeof(to), "%s.%016llu", cfg.file, (unsigned long long)W.file_first);
	/* never over a file of the trail that is there already */
	if (renameat2(AT_FDCWD, cfg.file, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			return errno;
		if (access(to, F_OK) == 0)
			return EEXIST;
		if (rename(cfg.file, to) < 0)
			return errno;
	}
	close(W.fd);
	W.fd = -1;
	W.file_first = 0;
	pw_info("audit: %s rotated to %s", cfg.file, to);
	return (e = open_file()) ? e : fsync_dir(cfg.file);
}

/* n bytes to fd, *wrote counting what went; 0 or the errno (no progress at all: EIO). */
static int write_all(int fd, const char *p, size_t n, size_t *wrote)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		p += k;
		n -= (size_t)k;
		*wrote += (size_t)k;
	}
	return 0;
}

/* The batch into the file (rotating first when due), fsync when due; 0 or the errno. A write
 * that fails or falls short is cut away: the file holds whole lines only. */
static int file_out(bool sync)
{
	int e;
	if (W.fd < 0 && (e = open_file()))
		return e;
	/* a retry first cuts what a failed write may have left (if that cut failed too) */
	if (W.failing && ftruncate(W.fd, W.size) < 0)
		return errno;
	bool rotate_due =
	    W.file_first &&
	    ((cfg.rotate_bytes && (uint64_t)W.size >= cfg.rotate_bytes) ||
	     (cfg.rotate_seconds > 0 && time(NULL) - W.file_born >= cfg.rotate_seconds));
	if (W.done_file < W.out.len) {
		if (rotate_due && (e = rotate()))
			return e;
		size_t n = W.out.len - W.done_file, wrote = 0;
		if ((e = write_all(W.fd, W.out.p + W.done_file, n, &wrote))) {
			if (wrote && ftruncate(W.fd, W.size) < 0)
				pw_debug("audit: cannot cut a failed write yet: at the retry");
			return e;
		}
		if (!W.file_first) {
			W.file_first = W.file_last + 1;
			W.file_born = time(NULL);
		}
		W.size += (off_t)n;
		W.done_file = W.out.len;
		W.file_last = W.seq - 1;
		W.unsynced = true;
	}
	/* group commit: one fsync for all that was written in fsync_interval_ms */
	if (W.unsynced && (sync || cfg.fsync == PW_AUDIT_FSYNC_EVERY ||
	                   now_ms() - W.synced_ms >= cfg.fsync_interval_ms))
		return sync_file();
	return 0;
}

/* The batch to every sink; 0 or the errno. What a sink has is not written to it again. */
static int write_out(bool sync)
{
	int e;
	if (cfg.file[0] && (e = file_out(sync)))
		return e;
	if (cfg.to_stdout && W.done_out < W.out.len &&
	    (e = write_all(STDOUT_FILENO, W.out.p + W.done_out, W.out.len - W.done_out,
	                   &W.done_out)))
		return e;
	cnt_add(C_WRITTEN, W.out_records);
	W.out_records = 0;
	W.done_file = W.done_out = 0;
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
	uint64_t refused = atomic_exchange(&ctr[C_REFUSED], 0);
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
	flush(true);
	if (W.failing)
		pw_warn("audit: stopped with %llu records not written to the trail (%s)",
		        (unsigned long long)W.out_records, es(W.fail_err));
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
		struct pollfd p = {.fd = efd, .events = POLLIN};
		uint64_t v;
		/* till a retry while failing, a due fsync, or the next look at the rings */
		int64_t t = W.failing ? W.tried_ms : W.unsynced ? W.synced_ms : now_ms();
		t += cfg.fsync_interval_ms - now_ms();
		if (poll(&p, 1, t < 1 ? 1 : (int)t) > 0 && read(efd, &v, sizeof(v)) < 0)
			v = 0; /* EAGAIN: nothing to take */
		atomic_exchange_explicit(&wake_flag, false, memory_order_acq_rel);
		drain_all();
		if (!W.failing)
			loss_record();
		if (!W.failing || now_ms() - W.tried_ms >= cfg.fsync_interval_ms)
			flush(false);
	}
	final_pass();
	return NULL;
}

/* The seq and time of FILE's first record (m: the file's n bytes): its rotated name and its
 * age. Its "ts" is the first `,"ts":"` of the line: a quote inside a string value is escaped. */
static int first_record(const char *m, size_t n)
{
	char b[4096];
	unsigned long long seq = 0;
	struct tm tm = {0};
	snprintf(b, sizeof(b), "%.*s", (int)(n < sizeof(b) ? n : sizeof(b)), m);
	const char *ts = strstr(b, ",\"ts\":\"");
	if (sscanf(b, "{\"v\":%*d,\"seq\":%llu,", &seq) != 1 || !seq)
		return -1;
	W.file_first = seq;
	W.file_born = time(NULL);
	if (ts && sscanf(ts + 7, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	                 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		W.file_born = timegm(&tm);
	}
	return 0;
}

/* Take the chain up from the last whole line of path (mapped: the trail's, no one else cuts
 * it), then cut a torn tail (a crash while writing) into *repaired. current: FILE (missing is
 * no error; its first record is read). 1: taken up; 0: no whole line; -1: err filled. */
static int take_up(const char *path, bool current, uint64_t *repaired, char *err, size_t errlen)
{
	struct stat st;
	char why[256], prev[PW_AUDIT_HASH_HEX + 1], hash[PW_AUDIT_HASH_HEX + 1];
	const char *m = NULL, *e = NULL, *s;
	uint64_t seq;
	int fd = open(path, O_RDWR | O_CLOEXEC), rc = 0;
	if (fd < 0 && errno == ENOENT && current)
		return 0;
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    (st.st_size &&
	     (m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)) {
		pw_errf(err, errlen, "cannot read the audit trail %s: %s", path, es(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t n = (size_t)st.st_size,
	       end = (e = m ? memrchr(m, '\n', n) : NULL) ? (size_t)(e - m) + 1 : 0;
	if (e) {
		s = memrchr(m, '\n', (size_t)(e - m));
		s = s ? s + 1 : m;
		rc = 1;
		if (pw_audit_check_line(s, (size_t)(e - s), &seq, prev, hash, why, sizeof(why)) <
		    0) {
			pw_errf(
			    err, errlen,
			    "the last record of the audit trail %s does not check (%s): pgwardd "
			    "does not continue it; run `pgwardctl audit verify` and move it away",
			    path, why);
			rc = -1;
		} else if (current && first_record(m, n) < 0) {
			pw_errf(err, errlen,
			        "the first record of %s has no seq: run `pgwardctl "
			        "audit verify` and move it away",
			        path);
			rc = -1;
		}
	}
	if (m)
		munmap((void *)m, n);
	if (rc >= 0 && end < n && (ftruncate(fd, (off_t)end) < 0 || fsync(fd) < 0)) {
		pw_errf(err, errlen, "cannot cut the torn record at the end of %s: %s", path,
		        es(errno));
		rc = -1;
	} else if (rc >= 0 && end < n) {
		pw_warn("audit: %s ended in a torn record (%zu bytes): cut away", path, n - end);
		*repaired += n - end;
	}
	if (rc == 1) {
		W.seq = seq + 1;
		memcpy(W.prev, hash, sizeof(hash));
	}
	close(fd);
	return rc;
}

/* The newest rotated file of the trail (FILE.<16 digits>, the greatest): 1 and its path, 0
 * none, -1 (errno) when the directory cannot be read. */
static int newest_rotated(char *out, size_t cap)
{
	char dir[PATH_MAX];
	const char *base = dir_of(cfg.file, dir, sizeof(dir));
	DIR *d = opendir(dir);
	size_t bl = strlen(base);
	unsigned long long best = 0, seq; /* seqs start at 1 */
	for (struct dirent *e; d && (e = readdir(d));) {
		const char *n = e->d_name;
		if (strlen(n) == bl + 17 && strncmp(n, base, bl) == 0 && n[bl] == '.' &&
		    strspn(n + bl + 1, "0123456789") == 16 &&
		    (seq = strtoull(n + bl + 1, NULL, 10)) > best)
			best = seq;
	}
	if (!d)
		return -1;
	closedir(d);
	snprintf(out, cap, "%s.%016llu", cfg.file, best);
	return best > 0;
}

/* Take the chain up from the file, or from the newest rotated file when the file is missing or
 * empty (no file at all: the trail starts, genesis), then open the file for the batches. */
static int open_trail(uint64_t *repaired, bool *resumed, char *err, size_t errlen)
{
	char rot[PATH_MAX + 32];
	int rc = take_up(cfg.file, true, repaired, err, errlen), found = 0, e;
	if (rc == 0 && (found = newest_rotated(rot, sizeof(rot))) < 0) {
		pw_errf(err, errlen, "cannot read the directory of %s: %s", cfg.file, es(errno));
		rc = -1;
	}
	if (found > 0 && (rc = take_up(rot, false, repaired, err, errlen)) == 0) {
		pw_errf(err, errlen, "%s (the newest rotated file) holds no record", rot);
		rc = -1;
	}
	if (rc < 0)
		return -1;
	if ((e = open_file())) {
		pw_errf(err, errlen, "cannot open the audit trail %s: %s", cfg.file, es(e));
		return -1;
	}
	*resumed = rc == 1;
	W.file_last = W.seq - 1;
	if (W.size == 0 && (e = fsync_dir(cfg.file))) /* a new file: its name on disk too */
		pw_warn("audit: cannot sync the directory of %s: %s", cfg.file, es(e));
	return 0;
}

static void writer_free(void)
{
	if (W.fd >= 0)
		close(W.fd);
	W.fd = -1;
	pw_jw_free(&W.out);
	pw_jw_free(&W.rec);
	free(W.scratch); /* W is set afresh at the next start */
}

/* W for a run of c; -1 with err when c cannot be run. */
static int writer_init(const struct pw_audit_config *c, char *err, size_t errlen)
{
	size_t ring = c->ring_bytes ? c->ring_bytes : 4u << 20;
	int iv = c->fsync_interval_ms ? c->fsync_interval_ms : 100;
	char name[256] = "";
	bool bad = true;
	if (!c->file[0] && !c->to_stdout)
		pw_errf(err, errlen, "audit: a file or stdout is needed");
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
	pthread_mutex_lock(&reg_mu);
	cfg = *c;
	cfg.ring_bytes = ring;
	cfg.fsync_interval_ms = iv;
	pthread_mutex_unlock(&reg_mu);
	for (int i = 0; i < C_N; i++)
		atomic_store(&ctr[i], 0);
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
	if (writer_init(c, err, errlen) < 0 ||
	    (cfg.file[0] && open_trail(&repaired, &resumed, err, errlen) < 0))
		return -1;
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
	pw_info("audit: the trail %s%s%s, audit_start at seq %llu (%s)", cfg.file,
	        cfg.file[0] && cfg.to_stdout ? " and " : "", cfg.to_stdout ? "stdout" : "",
	        (unsigned long long)(W.seq - 1), resumed ? "taken up" : "a new chain");
	atomic_store(&want_parameters, c->parameters);
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
	pw_info("audit: stopped (%llu records written, %llu dropped)",
	        (unsigned long long)cnt(C_WRITTEN), (unsigned long long)cnt(C_DROPPED));
	writer_free();
}
