/* Private to the audit trail's writer (audit.c: rings, chaining, the writer thread;
 * audit_file.c: the file at start, take-up, rotation, and the checkpoint key; audit_sink.c:
 * syslog). See include/pgward/audit.h.
 *
 * W and everything a function here touches belong to the thread that runs the writer:
 * pw_audit_start's caller until pthread_create, then the writer thread until pw_audit_stop
 * joins it (the create and the join order the hand-overs). So W, the sink's state and the
 * checkpoint key need no lock. cfg is set before the writer starts and not changed while it
 * runs (audit.c's top says who else reads it). The counters are atomic. */
#ifndef PGWARD_AUDIT_INT_H
#define PGWARD_AUDIT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>

#include "pgward/audit.h"
#include "pgward/audit_chain.h"
#include "pgward/audit_verify.h"

/* counters of the run (relaxed: figures, no order hangs on them); C_LOSS: since the last
 * audit_loss, C_REFUSED: refused while failing */
enum {
	C_WRITTEN,
	C_DROPPED,
	C_WAITS,
	C_REFUSALS,
	C_FAILURES,
	C_FSYNCS,
	C_LOSS,
	C_REFUSED,
	C_CHECKPOINTS,
	C_SIGN_NS,
	C_SYS_SENT,
	C_SYS_DROPPED,
	C_N
};
extern _Atomic uint64_t pw_audit_ctr[C_N];
#define cnt_add(c, n) atomic_fetch_add_explicit(&pw_audit_ctr[c], (n), memory_order_relaxed)
#define cnt(c)        atomic_load_explicit(&pw_audit_ctr[c], memory_order_relaxed)

struct pw_audit_writer {
	char host[1600];     /* the host name as a JSON string */
	char hostname[1600]; /* the same decoded: what a checkpoint signs, syslog's HOSTNAME */
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
	size_t done_sys;                  /* bytes of out handed to syslog */
	/* a rotation decided when a record was chained while the file had all of out: the file
	 * gets out up to rot_at (ending with the closing checkpoint), then is rotated */
	bool rot_pending;
	size_t rot_at;
	uint64_t rot_last; /* the seq of the old file's last record */
	uint64_t out_records, chained;
	struct pw_jw rec; /* the writer's own records */
	struct pw_jw ck;  /* checkpoints (built while rec may hold a record) */
	char *scratch;    /* a body that wraps around its ring */
	size_t scratch_cap;
	bool failing;
	int fail_err;
	struct timespec fail_since;
	/* checkpoints: the private key (NULL: none), its key_id, records since the last one */
	EVP_PKEY *key;
	char key_id[PW_AUDIT_KEY_ID_HEX + 1];
	uint64_t since_ckpt, ckpt_seq; /* ckpt_seq: the last checkpoint's seq */
};
extern struct pw_audit_writer pw_audit_w;
extern struct pw_audit_config pw_audit_cfg;
/* the writer's state and the run's configuration, short in the writer's files */
#define W   pw_audit_w
#define cfg pw_audit_cfg

static inline int64_t pw_audit_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline const char *pw_audit_es(int e)
{
	const char *s = strerrordesc_np(e); /* thread-safe, unlike strerror */
	return s ? s : "unknown error";
}

/* ---- audit_file.c ---- */

/* Take the chain up from the file (or the newest rotated one) and open the file for the
 * batches. 0, or -1 with err filled. */
int pw_audit_open_trail(uint64_t *repaired, bool *resumed, char *err, size_t errlen);
/* The file has records and is past rotate_bytes or rotate_seconds. */
bool pw_audit_rotate_due(void);
/* The batch into the file (the part before a pending rotation, the rotation, the rest),
 * fsync when due; 0 or the errno. A write that fails or falls short is cut away: the file
 * holds whole lines only. */
int pw_audit_file_out(bool sync);
/* n bytes to fd, *wrote counting what went; 0 or the errno (no progress at all: EIO). */
int pw_audit_write_all(int fd, const char *p, size_t n, size_t *wrote);
/* The checkpoint key of cfg.key_file into W.key and W.key_id; 0, or -1 with err. */
int pw_audit_key_open(char *err, size_t errlen);
/* The signature (base64, PW_AUDIT_SIG_B64 + 1 bytes) of the record seq with hash; 0 or -1. */
int pw_audit_sign(uint64_t seq, const char *hash, char *sig);
/* The file and the key let go. */
void pw_audit_file_close(void);

/* ---- audit_sink.c: syslog ---- */

/* Set the sink up for cfg.syslog (resolve an address, connect when the receiver is there);
 * 0, or -1 with err (a bad address). Nothing when cfg.syslog is off. */
int pw_audit_sink_open(char *err, size_t errlen);
/* Whole lines (n bytes, each ending in a newline) to syslog, one message each: queued and sent
 * without blocking; what cannot be queued is dropped and counted. */
void pw_audit_sink_send(const char *lines, size_t n);
/* Send what is queued, connect again when due; the writer's every pass. */
void pw_audit_sink_pump(void);
/* The fd the writer polls (events into *ev) while messages wait for room; -1: none. */
int pw_audit_sink_pollfd(short *ev);
/* At the stop: what is queued gets a short while (at most a second), then the sink closes. */
void pw_audit_sink_close(void);

#endif
