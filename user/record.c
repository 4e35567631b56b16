/* Session recording. See include/pgward/record.h and docs/recording.md. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "pgward/jw.h"
#include "pgward/log.h"
#include "pgward/record.h"

#define CHUNK     (64 * 1024)
#define QUEUE_MAX (64u << 20)
#define HDR       13 /* kind, 8 bytes of microseconds, 4 bytes of length */

/* A recording's file, made and written by the writer alone; the worker only names it and,
 * under the queue's lock, marks chunks of it lost. */
struct file {
	char path[PATH_MAX + 96];
	int fd;
	bool failed; /* cannot be written: its chunks are dropped */
	bool lost;   /* a chunk was dropped (queue full): the file is incomplete */
};

struct chunk {
	struct chunk *next;
	struct file *f;
	uint8_t *data;
	size_t len;
	bool last;
};

/* The writer's queue: workers append chunks, the writer takes them. A lock per 64 KiB chunk
 * (not per message) is the only thing workers share here. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk *head, *tail;
	size_t bytes;
	bool stopping, running;
	pthread_t thread;
	struct pw_recording_config cfg; /* set before the thread starts, read-only after */
	uint64_t dropped;
} Q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct pw_recorder {
	z_stream zs;
	EVP_MD_CTX *md;
	struct file *f;
	uint8_t *out;
	uint64_t start_us, recorded;
	uint64_t skip_b; /* 'B' bytes still to pass unrecorded */
	bool truncated, broken;
};

static uint64_t mono_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* ---- the writer ---- */

static void write_chunk(struct chunk *c)
{
	struct file *f = c->f;
	if (f->fd < 0 && !f->failed) {
		f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (f->fd < 0) {
			f->failed = true;
			pw_warn("recording: cannot create %s: %s", PW_Q(f->path), strerror(errno));
		}
	}
	for (size_t off = 0; !f->failed && off < c->len;) {
		ssize_t w = write(f->fd, c->data + off, c->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			f->failed = true;
			pw_warn("recording: cannot write %s: %s", PW_Q(f->path),
			        w < 0 ? strerror(errno) : "short write");
			break;
		}
		off += (size_t)w;
	}
	if (c->last) {
		if (f->fd >= 0) {
			if (!f->failed && fsync(f->fd) < 0)
				pw_warn("recording: cannot fsync %s: %s", PW_Q(f->path),
				        strerror(errno));
			close(f->fd);
		}
		if (f->lost)
			pw_warn("recording: %s is incomplete: the recorder's queue was full",
			        PW_Q(f->path));
		free(f);
	}
	free(c->data);
	free(c);
}

static void *writer(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&Q.mu);
	for (;;) {
		struct chunk *c = Q.head;
		if (!c) {
			if (Q.stopping)
				break;
			pthread_cond_wait(&Q.cv, &Q.mu);
			continue;
		}
		Q.head = c->next;
		if (!Q.head)
			Q.tail = NULL;
		Q.bytes -= c->len;
		pthread_mutex_unlock(&Q.mu);
		write_chunk(c);
		pthread_mutex_lock(&Q.mu);
	}
	pthread_mutex_unlock(&Q.mu);
	return NULL;
}

int pw_record_start(const struct pw_recording_config *c, char *err, size_t errlen)
{
	if (!c->enabled || Q.running)
		return 0;
	Q.cfg = *c;
	if (access(c->dir, W_OK | X_OK) != 0) {
		pw_errf(err, errlen, "recording: cannot write into %s: %s", c->dir,
		        strerror(errno));
		return -1;
	}
	Q.stopping = false;
	if (pthread_create(&Q.thread, NULL, writer, NULL) != 0) {
		pw_errf(err, errlen, "recording: cannot start the writer thread");
		return -1;
	}
	__atomic_store_n(&Q.running, true, __ATOMIC_RELEASE);
	return 0;
}

void pw_record_stop(void)
{
	if (!__atomic_load_n(&Q.running, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&Q.mu);
	Q.stopping = true;
	pthread_cond_signal(&Q.cv);
	pthread_mutex_unlock(&Q.mu);
	pthread_join(Q.thread, NULL);
	__atomic_store_n(&Q.running, false, __ATOMIC_RELEASE);
	if (Q.dropped)
		pw_warn(
		    "recording: %llu chunk(s) dropped over the run (the writer's queue was full)",
		    (unsigned long long)Q.dropped);
}

/* ---- the worker's side ---- */

/* The compressed bytes so far go to the writer (last: the file is done). -1: no memory. */
static int hand(struct pw_recorder *r, bool last)
{
	size_t len = CHUNK - r->zs.avail_out;
	EVP_DigestUpdate(r->md, r->out, len);
	struct chunk *c = malloc(sizeof(*c));
	uint8_t *next = last ? NULL : malloc(CHUNK);
	if (!c || (!last && !next)) {
		free(c);
		free(next);
		return -1;
	}
	*c = (struct chunk){.f = r->f, .data = r->out, .len = len, .last = last};
	pthread_mutex_lock(&Q.mu);
	if (!last && Q.bytes + len > QUEUE_MAX) {
		Q.dropped++;
		r->f->lost = true;
		pthread_mutex_unlock(&Q.mu);
		free(c->data);
		free(c);
	} else {
		Q.bytes += len;
		if (Q.tail)
			Q.tail->next = c;
		else
			Q.head = c;
		Q.tail = c;
		pthread_cond_signal(&Q.cv);
		pthread_mutex_unlock(&Q.mu);
	}
	r->out = next;
	r->zs.next_out = next;
	r->zs.avail_out = next ? CHUNK : 0;
	return 0;
}

/* Compress n bytes at p (flush: Z_NO_FLUSH, or Z_FINISH at the end). */
static int feed(struct pw_recorder *r, const void *p, size_t n, int flush)
{
	r->zs.next_in = (Bytef *)(uintptr_t)p;
	r->zs.avail_in = (uInt)n;
	for (;;) {
		if (!r->zs.avail_out && hand(r, false) < 0)
			return -1;
		int rc = deflate(&r->zs, flush);
		if (rc == Z_STREAM_ERROR)
			return -1;
		if (flush == Z_FINISH) {
			if (rc == Z_STREAM_END)
				return 0;
			continue;
		}
		if (!r->zs.avail_in && r->zs.avail_out)
			return 0;
	}
}

static void frame(struct pw_recorder *r, char kind, const void *p, size_t n)
{
	uint8_t h[HDR];
	uint64_t t = mono_us() - r->start_us;
	h[0] = (uint8_t)kind;
	for (int i = 0; i < 8; i++)
		h[1 + i] = (uint8_t)(t >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		h[9 + i] = (uint8_t)((uint32_t)n >> (24 - 8 * i));
	if (feed(r, h, HDR, Z_NO_FLUSH) < 0 || feed(r, p, n, Z_NO_FLUSH) < 0)
		r->broken = true;
}

static void reason_frame(struct pw_recorder *r, char kind, const char *reason)
{
	struct pw_jw w;
	pw_jw_init(&w, 512);
	pw_jw_append(&w, "{", 1);
	pw_jw_str(&w, "reason", reason);
	pw_jw_append(&w, "}", 1);
	if (pw_jw_ok(&w))
		frame(r, kind, w.p, w.len);
	pw_jw_free(&w);
}

struct pw_recorder *pw_record_open(const struct pw_record_meta *m)
{
	if (!__atomic_load_n(&Q.running, __ATOMIC_ACQUIRE))
		return NULL;
	struct pw_recorder *r = calloc(1, sizeof(*r));
	struct file *f = calloc(1, sizeof(*f));
	if (r)
		r->out = malloc(CHUNK);
	if (!r || !f || !r->out || !(r->md = EVP_MD_CTX_new()) ||
	    EVP_DigestInit_ex(r->md, EVP_sha256(), NULL) != 1 ||
	    /* gzip (16 + window bits), a 4 KiB window and little memory: fast, small per session */
	    deflateInit2(&r->zs, Z_BEST_SPEED, Z_DEFLATED, 16 + 12, 2, Z_DEFAULT_STRATEGY) !=
	        Z_OK) {
		if (r) {
			EVP_MD_CTX_free(r->md);
			free(r->out);
		}
		free(r);
		free(f);
		pw_warn("recording: out of memory: session %llu is not recorded",
		        (unsigned long long)m->session);
		return NULL;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	gmtime_r(&now.tv_sec, &tm);
	char stamp[32], started[40];
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	pw_jw_time(started, sizeof(started), now.tv_sec, now.tv_nsec);
	snprintf(f->path, sizeof(f->path), "%s/%s-%d-%llu.pgrec", Q.cfg.dir, stamp, (int)getpid(),
	         (unsigned long long)m->session);
	f->fd = -1;
	r->f = f;
	r->zs.next_out = r->out;
	r->zs.avail_out = CHUNK;
	r->start_us = mono_us();
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	struct pw_jw w;
	pw_jw_init(&w, 4096);
	pw_jw_append(&w, "PGWREC 1\n{", 10);
	pw_jw_uint(&w, "session", m->session);
	pw_jw_str(&w, "identity", m->identity);
	pw_jw_str(&w, "user", m->user);
	pw_jw_str(&w, "database", m->database);
	pw_jw_str(&w, "client", m->client);
	pw_jw_str(&w, "started", started);
	pw_jw_int(&w, "pgwardd_pid", getpid());
	pw_jw_str(&w, "host", host);
	pw_jw_append(&w, "}\n", 2);
	if (!pw_jw_ok(&w) || feed(r, w.p, w.len, Z_NO_FLUSH) < 0)
		r->broken = true;
	pw_jw_free(&w);
	return r;
}

void pw_record_skip(struct pw_recorder *r, char kind, uint64_t n)
{
	if (r && kind == 'B')
		r->skip_b += n;
}

void pw_record_bytes(struct pw_recorder *r, char kind, const void *p, size_t n)
{
	if (r && kind == 'B' && r->skip_b) {
		size_t k = r->skip_b < n ? (size_t)r->skip_b : n;
		r->skip_b -= k;
		p = (const uint8_t *)p + k;
		n -= k;
	}
	if (!r || r->truncated || r->broken || !n)
		return;
	if (r->recorded + n > Q.cfg.max_bytes) {
		r->truncated = true;
		reason_frame(r, 'X', "max_bytes");
		return;
	}
	r->recorded += n;
	frame(r, kind, p, n);
}

void pw_record_tap(void *rec, char kind, const void *p, size_t n)
{
	pw_record_bytes(rec, kind, p, n);
}

void pw_record_close(struct pw_recorder *r, const char *reason, char *path, size_t pathcap,
                     char *sha256_hex, bool *truncated)
{
	if (!r)
		return;
	reason_frame(r, 'E', reason ? reason : "closed");
	if (feed(r, NULL, 0, Z_FINISH) < 0)
		r->broken = true;
	if (path)
		snprintf(path, pathcap, "%s", r->f->path);
	if (truncated)
		*truncated = r->truncated;
	/* the last chunk: the writer closes the file and frees it with the chunk */
	if (hand(r, true) < 0) {
		/* no memory for the last chunk: the file stays incomplete, and the writer cannot
		 * close it; it is logged, and its struct is leaked rather than freed under the
		 * writer */
		pw_warn("recording: out of memory closing %s", PW_Q(r->f->path));
		free(r->out);
	}
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_DigestFinal_ex(r->md, md, &mdlen);
	if (sha256_hex) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 0; i < 32; i++) {
			sha256_hex[2 * i] = hex[md[i] >> 4];
			sha256_hex[2 * i + 1] = hex[md[i] & 15];
		}
		sha256_hex[64] = '\0';
	}
	if (r->broken)
		pw_warn("recording: %s could not be compressed whole", PW_Q(path ? path : ""));
	deflateEnd(&r->zs);
	EVP_MD_CTX_free(r->md);
	free(r);
}
