/* The audit trail (docs/audit.md): every connection, statement and kernel event as one
 * hash-chained JSON line (audit_chain.h), written by one writer thread so that no worker ever
 * waits for the disk.
 *
 * A thread that has something to record builds the record's body with pw_audit_begin and
 * the pw_jw_* writers (jw.h), then hands it over with pw_audit_end: the body goes into the
 * thread's own single-producer ring (lock-free; the writer is the one consumer), made at the
 * thread's first record. The writer drains every ring in turn, gives each record the next seq
 * and the chain's hash, writes a batch with one write(2) per sink (the file, stdout) and
 * fsyncs the file at most every fsync_interval_ms (group commit) or after every batch
 * (fsync "every"). Rotation (by size or age) renames the file to FILE.<first seq, 16 digits>
 * and the chain runs on in the new file. At start the chain is taken up from the last record
 * of the file (or of the newest rotated one): seq and hash continue.
 *
 * A full ring: the producer waits for room (backpressure, the default) or, with on_full
 * "drop", the record is dropped and counted, and the writer records the loss (audit_loss).
 * A trail that cannot be written (a failed write or fsync: disk full, permissions): the file
 * is cut back to its last whole record, the batch is kept to be written again, and with
 * on_failure "refuse" (the default) pw_audit_refusing says so until a write succeeds, when
 * the writer records audit_recovered.
 *
 * Signed checkpoints (checkpoint.key_file): a "checkpoint" record signs (Ed25519) the record
 * before it every checkpoint.every records, as the last record of a file being rotated and as
 * the last record of a clean stop (after audit_stop). Syslog: the same chained lines, one
 * RFC 5424 message each, best effort (audit_sink.c): never blocking, never a failure. */
#ifndef PGWARD_AUDIT_H
#define PGWARD_AUDIT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pgward/detect.h"
#include "pgward/jw.h"

enum pw_audit_fsync { PW_AUDIT_FSYNC_INTERVAL, PW_AUDIT_FSYNC_EVERY };
/* "interval", "every" */
const char *pw_audit_fsync_name(enum pw_audit_fsync f);

/* The syslog sink: a unix socket (datagram, or stream with octet counting) or an address
 * over TCP (octet counting, RFC 6587) or UDP. */
enum pw_audit_syslog_proto {
	PW_AUDIT_SYSLOG_OFF,
	PW_AUDIT_SYSLOG_UNIX,
	PW_AUDIT_SYSLOG_TCP,
	PW_AUDIT_SYSLOG_UDP
};
struct pw_audit_syslog {
	enum pw_audit_syslog_proto proto;
	char socket[108];  /* UNIX: its path */
	char address[272]; /* TCP, UDP: "host:port" or "[v6]:port", resolved at start */
	int facility;      /* 0..23, default authpriv (10) */
};
#define PW_AUDIT_FACILITY_AUTHPRIV 10
/* A facility's number from its name ("authpriv", "local0", ...): -1 when none. */
int pw_audit_facility(const char *name);

#define PW_AUDIT_CHECKPOINT_EVERY 1000

struct pw_audit_config {
	bool enabled;        /* an "audit" section is present */
	char file[PATH_MAX]; /* the trail's file ("" : none) */
	bool to_stdout;      /* the same lines on standard output */
	enum pw_audit_fsync fsync;
	int fsync_interval_ms;    /* default 100 */
	size_t ring_bytes;        /* per producing thread, default 4 MiB */
	bool drop_when_full;      /* on_full "drop" (default "wait") */
	bool continue_on_failure; /* on_failure "continue" (default "refuse") */
	uint64_t rotate_bytes;    /* 0: never by size; default 256 MiB */
	int rotate_seconds;       /* 0: never by age; default 86400 */
	size_t max_field_bytes;   /* a string value at most, default 1 MiB (statement text) */
	bool parameters;          /* Bind parameters in statement records (default true) */
	/* what content detectors (detect.h) find in statement texts and parameters is written
	 * "[redacted:<detector>]" (a bit per enum pw_detector; default PW_AUDIT_REDACT_DEFAULT:
	 * card numbers and secrets, which PCI DSS and common sense keep out of logs) */
	uint32_t redact;
	char key_file[PATH_MAX]; /* checkpoint.key_file: Ed25519 private key, PEM ("": none) */
	int checkpoint_every;    /* checkpoint.every: 1..1000000 (0: the default, 1000) */
	struct pw_audit_syslog syslog;
};

/* Start the writer (pgwardd's main thread, once): open or create the file (0600), take the
 * chain up from it (a torn last line is cut away; a last line that does not check fails the
 * start), read the checkpoint key, open the syslog sink (an address is resolved here; a
 * receiver that is not there yet is no error), write audit_start and fsync it before
 * returning. 0, or -1 with err filled (pgwardd does not start: it does not run unaudited when
 * asked to audit; with on_failure "continue" only an audit_start that cannot be written does
 * not stop it). c->enabled false: 0, and the trail stays off. ring_bytes, fsync_interval_ms
 * and checkpoint_every 0 take their defaults. */
int pw_audit_start(const struct pw_audit_config *c, const char *config_path, char *err,
                   size_t errlen);
/* Drain every ring, write audit_stop (reason), fsync, end the writer; nothing when the trail
 * was not started. After it, records are not taken: a record ended meanwhile is dropped, and a
 * thread inside pw_audit_end is waited for. A live thread's ring is left to it (freed at its
 * next pw_audit_begin or its pw_audit_thread_done), so threads may outlive a stop and record
 * again after the next start. */
void pw_audit_stop(const char *reason);
/* Is the trail on? Any thread. */
bool pw_audit_on(void);
/* Bind parameters wanted in statement records? */
bool pw_audit_parameters(void);
/* The detectors whose matches statement records redact (audit_config.redact). */
uint32_t pw_audit_redact(void);
#define PW_AUDIT_REDACT_DEFAULT                                                                    \
	((1u << PW_DET_CARD) | (1u << PW_DET_JWT) | (1u << PW_DET_AWS_KEY) |                       \
	 (1u << PW_DET_GITHUB) | (1u << PW_DET_SLACK) | (1u << PW_DET_PEM_KEY))

/* The trail cannot be written and on_failure is "refuse": true, with the refusal a statement
 * gets in sqlstate (6 bytes) and message. Any thread; a relaxed atomic load when all is well. */
bool pw_audit_refusing(char *sqlstate, char *message, size_t msglen);
/* A statement was refused because of it (counted into audit_recovered). */
void pw_audit_count_refusal(void);

/* Begin a record of type (a name from docs/audit.md): the calling thread's builder, with "ts"
 * (now) and "type" written; NULL when the trail is off (then nothing else is to be called).
 * One record at a time per thread (the builder is the thread's, reused). */
struct pw_jw *pw_audit_begin(const char *type);
/* The same with the event's own time (CLOCK_REALTIME), for a record written some time after
 * it (a statement, recorded when the server has answered). */
struct pw_jw *pw_audit_begin_at(const char *type, const struct timespec *ts);
/* max_field_bytes of the running trail (0 when off), for parts of records built elsewhere. */
size_t pw_audit_max_field(void);
/* The record is whole: into the thread's ring (waiting for room, or dropped and counted,
 * per on_full). A builder whose memory ran out is counted as a loss, and so is a record
 * longer than half the ring (never cut: a warning says it once). No syscall per record with
 * fsync "interval": the writer is woken only when the ring passes half full or has no room. */
void pw_audit_end(struct pw_jw *w);
/* The calling thread will record nothing more: its ring goes once the writer has drained it. */
void pw_audit_thread_done(void);

/* Counters of this run, for logs and pgwardctl: records written (to every sink), dropped,
 * records that waited for room, refusals counted, failures (each time the trail went from
 * written to failing), fsyncs of the file, and whether the trail is failing now; checkpoints
 * written and the time spent signing them; syslog messages sent and dropped (not in the
 * trail's own counts: syslog is best effort). */
struct pw_audit_stats {
	uint64_t written, dropped, waits, refusals, failures, fsyncs;
	bool failing;
	uint64_t checkpoints, sign_ns;
	uint64_t syslog_sent, syslog_dropped;
};
void pw_audit_stats(struct pw_audit_stats *st);

#endif
