/* Session recording (docs/recording.md): what an identity's client sent and received after
 * masking, from the established session on, as a gzip file of timestamped frames per session,
 * for `pgwardctl session replay`.
 *
 * A worker compresses its sessions' bytes itself (a small deflate state per recorded session:
 * 4 KiB window, about 20 KiB) and hands full chunks (64 KiB) to the recorder's writer thread,
 * which creates, appends and fsyncs the files: no worker waits for the disk. The worker also
 * hashes what it compresses, so the SHA-256 of a finished file is known when its session ends
 * (the trail's session_end names it). The writer's queue is bounded (64 MiB): past it, chunks
 * are dropped and counted (the file then fails its SHA-256, and the log says so). */
#ifndef PGWARD_RECORD_H
#define PGWARD_RECORD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pw_recording_config {
	bool enabled;       /* a "recording" section is present */
	char dir[PATH_MAX]; /* where the files go */
	uint64_t max_bytes; /* a session's recorded bytes at most (default 64 MiB) */
};

/* Start the writer thread (pgwardd's main thread, once). 0, or -1 with err filled. */
int pw_record_start(const struct pw_recording_config *c, char *err, size_t errlen);
/* Drain the queue, close every file, end the thread. */
void pw_record_stop(void);

struct pw_recorder;
/* What a recording's header says (its strings are copied). */
struct pw_record_meta {
	uint64_t session;
	const char *identity, *user, *database, *client;
};
/* A recording for a session, on the calling worker; NULL when recording is off or memory ran
 * out (the log says which). */
struct pw_recorder *pw_record_open(const struct pw_record_meta *m);
/* n bytes of one direction: 'F' the client sent, 'B' the client received. */
void pw_record_bytes(struct pw_recorder *r, char kind, const void *p, size_t n);
/* The next n bytes of direction kind are not recorded (what was on its way before the
 * recording began: the end of the client's authentication). */
void pw_record_skip(struct pw_recorder *r, char kind, uint64_t n);
/* The session ends (reason): the recording is finished and freed. Its path and the SHA-256 of
 * its bytes (hex) are filled when given; *truncated says whether max_bytes cut it. */
void pw_record_close(struct pw_recorder *r, const char *reason, char *path, size_t pathcap,
                     char *sha256_hex, bool *truncated);

/* The tap pw_sock calls (sock.h) with a recorder as its argument: reads are 'F', writes 'B'. */
void pw_record_tap(void *rec, char kind, const void *p, size_t n);

#endif
