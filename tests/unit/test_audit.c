/* Unit tests for user/audit.c: the trail written by threads through their rings, checked
 * line by line with pw_audit_check_line and as one chain (seq one more, prev the hash
 * before); group commit and fsync "every"; rotation by size across files; taking the chain up
 * at restart (from the file, from the newest rotated file, past a torn last line) and
 * refusing a corrupt one; on_full drop and audit_loss; a failing trail (RLIMIT_FSIZE) refused,
 * cut back to whole lines, and recovered with audit_recovered; the stdout sink.
 *
 * Signed checkpoints: one after every `every` records, one closing each rotated file, one
 * after audit_stop; each signs the record before it, the trail verifies with the public key
 * and not with another, and a restart goes on from a signed trail; a key readable by others
 * is refused. Syslog: receivers on a unix datagram socket, a unix stream socket and TCP on
 * 127.0.0.1 (an ephemeral port) get every line of the file byte for byte, in RFC 5424
 * messages with the right PRI (facility and severity), octet-counted on streams; a receiver
 * that is missing, gone, or never reads does not stall the writer (every record reaches the
 * file, the stop takes at most about a second) and its drops are counted; a receiver that
 * comes late or comes back gets the messages. The configuration of both. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "pgward/audit.h"
#include "pgward/audit_chain.h"
#include "pgward/audit_verify.h"
#include "pgward/config.h"
#include "pgward/log.h"
#include "check.h"

static char top[64];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(int ms)
{
	nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

/* a directory of its own per test, under top */
static void subdir(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", top, name);
	mkdir(out, 0700);
}

static void cfg_init(struct pw_audit_config *c, const char *dir, const char *file)
{
	memset(c, 0, sizeof(*c));
	c->enabled = true;
	if (file)
		snprintf(c->file, sizeof(c->file), "%s/%s", dir, file);
	c->fsync = PW_AUDIT_FSYNC_INTERVAL;
	c->fsync_interval_ms = 20;
	c->ring_bytes = 1 << 20;
	c->max_field_bytes = 1 << 20;
	c->parameters = true;
}

static bool start(const struct pw_audit_config *c)
{
	char err[1024] = "";
	int rc = pw_audit_start(c, "/etc/pgward/test.json", err, sizeof(err));
	if (rc < 0)
		printf("# start: %s\n", err);
	return rc == 0;
}

/* one record of ours: "t" (thread), "i" (index) and a statement-like text */
static bool rec(int t, int i)
{
	struct pw_jw *w = pw_audit_begin("test");
	if (!w)
		return false;
	pw_jw_int(w, "t", t);
	pw_jw_int(w, "i", i);
	pw_jw_str(w, "text",
	          "SELECT id, name FROM orders WHERE customer = $1 AND \"state\" = 'open'");
	pw_audit_end(w);
	return true;
}

/* ---- reading a trail back ---- */

struct line {
	char *p;
	size_t len;
	json_t *j;
};

struct trail {
	struct line *l;
	size_t n, cap;
	bool whole; /* every file read ended with a newline */
};

static void trail_free(struct trail *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->l[i].p);
		json_decref(t->l[i].j);
	}
	free(t->l);
	memset(t, 0, sizeof(*t));
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)sz + 1);
	*n = fread(b, 1, (size_t)sz, f);
	b[*n] = 0;
	fclose(f);
	return b;
}

/* The lines of path appended to t; false when it cannot be read. */
static bool trail_add(struct trail *t, const char *path)
{
	size_t n;
	char *b = slurp(path, &n);
	if (!b)
		return false;
	if (n && b[n - 1] != '\n')
		t->whole = false;
	for (size_t s = 0; s < n;) {
		char *nl = memchr(b + s, '\n', n - s);
		size_t e = nl ? (size_t)(nl - b) : n;
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 256;
			t->l = realloc(t->l, t->cap * sizeof(*t->l));
		}
		struct line *l = &t->l[t->n++];
		l->len = e - s;
		l->p = malloc(l->len + 1);
		memcpy(l->p, b + s, l->len);
		l->p[l->len] = 0;
		l->j = json_loadb(l->p, l->len, 0, NULL);
		s = e + 1;
	}
	free(b);
	return true;
}

static bool trail_read(struct trail *t, const char *path)
{
	memset(t, 0, sizeof(*t));
	t->whole = true;
	return trail_add(t, path);
}

/* Every line checks and the lines are one chain from (seq, prev); why says the first
 * problem. */
static bool chain_ok(const struct trail *t, uint64_t seq, const char *prev, char *why,
                     size_t whylen)
{
	char p[PW_AUDIT_HASH_HEX + 1], h[PW_AUDIT_HASH_HEX + 1], last[PW_AUDIT_HASH_HEX + 1];
	snprintf(last, sizeof(last), "%s", prev);
	snprintf(why, whylen, "no line");
	for (size_t i = 0; i < t->n; i++, seq++) {
		uint64_t s;
		char w[256];
		if (pw_audit_check_line(t->l[i].p, t->l[i].len, &s, p, h, w, sizeof(w)) < 0) {
			snprintf(why, whylen, "line %zu: %s", i + 1, w);
			return false;
		}
		if (s != seq || strcmp(p, last) != 0) {
			snprintf(why, whylen, "line %zu: seq %llu prev %.8s, wanted %llu %.8s",
			         i + 1, (unsigned long long)s, p, (unsigned long long)seq, last);
			return false;
		}
		memcpy(last, h, sizeof(last));
	}
	snprintf(why, whylen, "%zu lines", t->n);
	return t->n > 0;
}

static const char *type_of(const struct line *l)
{
	const char *s = json_string_value(json_object_get(l->j, "type"));
	return s ? s : "";
}

static long long int_of(const struct line *l, const char *key)
{
	return json_integer_value(json_object_get(l->j, key));
}

static const char *str_of(const struct line *l, const char *key)
{
	const char *s = json_string_value(json_object_get(l->j, key));
	return s ? s : "";
}

static uint64_t seq_of(const struct line *l)
{
	return (uint64_t)int_of(l, "seq");
}

static size_t count_type(const struct trail *t, const char *type)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		n += strcmp(type_of(&t->l[i]), type) == 0;
	return n;
}

/* the records of ours, per thread: each index once, in order, 0..want-1 */
static bool ours_in_order(const struct trail *t, int threads, int want)
{
	int next[16] = {0};
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(type_of(&t->l[i]), "test") != 0)
			continue;
		long long th = int_of(&t->l[i], "t"), ix = int_of(&t->l[i], "i");
		if (th < 0 || th >= threads || ix != next[th]++)
			return false;
	}
	for (int k = 0; k < threads; k++)
		if (next[k] != want)
			return false;
	return true;
}

/* ---- off ---- */

static void test_off(void)
{
	struct pw_audit_stats st;
	char sqlstate[6], msg[256];
	pw_audit_stop("never started");
	CHECK(!pw_audit_on() && pw_audit_begin("test") == NULL,
	      "not started: the trail is off, pw_audit_begin gives NULL");
	pw_audit_end(NULL);
	CHECK(!pw_audit_refusing(sqlstate, msg, sizeof(msg)), "not started: nothing refused");
	struct pw_audit_config c;
	cfg_init(&c, top, NULL);
	char err[256] = "";
	CHECK(pw_audit_start(&c, NULL, err, sizeof(err)) < 0 && strstr(err, "file or stdout"),
	      "neither file nor stdout: start fails (%s)", err);
	c.enabled = false;
	CHECK(pw_audit_start(&c, NULL, err, sizeof(err)) == 0 && !pw_audit_on(),
	      "no audit section: start is a no-op, the trail stays off");
	pw_audit_stats(&st);
	CHECK(!st.failing, "stats: not failing");
	CHECK(strcmp(pw_audit_fsync_name(PW_AUDIT_FSYNC_EVERY), "every") == 0 &&
	          strcmp(pw_audit_fsync_name(PW_AUDIT_FSYNC_INTERVAL), "interval") == 0,
	      "fsync names");
}

/* ---- threads ---- */

struct prod {
	int t, n;
	bool done;
};

static void *producer(void *arg)
{
	struct prod *p = arg;
	for (int i = 0; i < p->n; i++)
		rec(p->t, i);
	if (p->done)
		pw_audit_thread_done();
	return NULL;
}

static sem_t late_go, late_in;

/* records once, outlives the stop, then ends: its ring is orphaned, then freed by it */
static void *late_thread(void *arg)
{
	(void)arg;
	struct pw_jw *w = pw_audit_begin("late");
	pw_audit_end(w);
	sem_post(&late_in);
	sem_wait(&late_go);
	bool off = pw_audit_begin("test") == NULL;
	pw_audit_thread_done();
	return (void *)(long)off;
}

static void test_threads(void)
{
	enum { T = 4, N = 50000 };
	char dir[128], path[PATH_MAX + 64], why[512];
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct trail t;
	pthread_t th[T], late;
	struct prod p[T];
	subdir(dir, sizeof(dir), "threads");
	cfg_init(&c, dir, "audit.jsonl");
	c.ring_bytes = 0;          /* the default, 4 MiB */
	c.fsync_interval_ms = 100; /* the default */
	if (!start(&c)) {
		CHECK(false, "threads: start");
		return;
	}
	sem_init(&late_go, 0, 0);
	sem_init(&late_in, 0, 0);
	pthread_create(&late, NULL, late_thread, NULL);
	sem_wait(&late_in);
	double t0 = now_s();
	for (int i = 0; i < T; i++) {
		p[i] = (struct prod){.t = i, .n = N, .done = true};
		pthread_create(&th[i], NULL, producer, &p[i]);
	}
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	double t1 = now_s();
	pw_audit_stop("test over");
	double t2 = now_s();
	sem_post(&late_go);
	void *late_off;
	pthread_join(late, &late_off);
	pw_audit_stats(&st);
	printf("# %d threads x %d records, interval mode: %.0f records/s produced, %.0f records/s "
	       "written and fsynced (%.3f s), %llu fsyncs, %llu waits\n",
	       T, N, T * N / (t1 - t0), T * N / (t2 - t0), t2 - t0, (unsigned long long)st.fsyncs,
	       (unsigned long long)st.waits);
	CHECK(st.written == T * N + 3 && st.dropped == 0,
	      "stats: %d records and audit_start, the late one, audit_stop written (%llu), none "
	      "dropped",
	      T * N, (unsigned long long)st.written);
	CHECK(late_off, "a thread that outlives the stop: pw_audit_begin gives NULL after it");
	CHECK(st.fsyncs < 200, "group commit: %llu fsyncs for %d records",
	      (unsigned long long)st.fsyncs, T * N);
	snprintf(path, sizeof(path), "%s", c.file);
	trail_read(&t, path);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && t.whole,
	      "every line checks, one chain from the genesis: %s", why);
	CHECK(t.n == T * N + 3, "%zu lines", t.n);
	CHECK(ours_in_order(&t, T, N), "each thread's records: all there, once, in its order");
	CHECK(count_type(&t, "late") == 1, "and the late thread's one");
	CHECK(t.n && strcmp(type_of(&t.l[0]), "audit_start") == 0 &&
	          strcmp(str_of(&t.l[0], "version"), "0.1.0") == 0 &&
	          strcmp(str_of(&t.l[0], "config"), "/etc/pgward/test.json") == 0 &&
	          json_is_false(json_object_get(t.l[0].j, "resumed")) &&
	          int_of(&t.l[0], "repaired_bytes") == 0,
	      "first: audit_start, version, config, resumed false, repaired_bytes 0");
	struct line *last = t.n ? &t.l[t.n - 1] : NULL;
	CHECK(last && strcmp(type_of(last), "audit_stop") == 0 &&
	          strcmp(str_of(last, "reason"), "test over") == 0 &&
	          int_of(last, "written") == T * N + 2 && int_of(last, "dropped") == 0,
	      "last: audit_stop with reason, written (%lld), dropped",
	      last ? int_of(last, "written") : -1);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	CHECK(t.n && strcmp(str_of(&t.l[0], "host"), host) == 0 &&
	          int_of(&t.l[0], "pid") == (long long)getpid(),
	      "host and pid");
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "the file is 0600");
	trail_free(&t);
}

/* ---- fsync every, interval without a stop ---- */

/* wait (up to ms) for n records written; false when they are not */
static bool wait_written(uint64_t n, int ms)
{
	struct pw_audit_stats st;
	for (int i = 0; i <= ms / 5; i++) {
		pw_audit_stats(&st);
		if (st.written >= n)
			return true;
		nap_ms(5);
	}
	return false;
}

static void test_fsync_modes(void)
{
	char dir[128], why[256];
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct trail t;
	subdir(dir, sizeof(dir), "every");
	cfg_init(&c, dir, "a.jsonl");
	c.fsync = PW_AUDIT_FSYNC_EVERY;
	c.fsync_interval_ms = 5000; /* the writer is woken by each record, not by its timeout */
	if (!start(&c)) {
		CHECK(false, "every: start");
		return;
	}
	for (int i = 0; i < 20; i++) {
		rec(0, i);
		nap_ms(2);
	}
	bool in_time = wait_written(21, 1000); /* well within the 5 s timeout */
	pw_audit_stats(&st);
	trail_read(&t, c.file);
	CHECK(in_time && t.n == 21,
	      "every: each record is written at once (%zu lines before the stop)", t.n);
	CHECK(st.fsyncs >= 5, "every: an fsync per batch (%llu for 20 records 2 ms apart)",
	      (unsigned long long)st.fsyncs);
	trail_free(&t);
	pw_audit_stop("every done");

	subdir(dir, sizeof(dir), "interval");
	cfg_init(&c, dir, "a.jsonl");
	c.fsync_interval_ms = 30;
	if (!start(&c)) {
		CHECK(false, "interval: start");
		return;
	}
	for (int i = 0; i < 1000; i++)
		rec(0, i);
	in_time = wait_written(1001, 2000);
	pw_audit_stats(&st);
	trail_read(&t, c.file);
	CHECK(in_time && t.n == 1001,
	      "interval: records reach the file by the writer's timeout, without a stop (%zu)",
	      t.n);
	CHECK(st.fsyncs <= 10, "interval: group commit, %llu fsyncs for 1000 records",
	      (unsigned long long)st.fsyncs);
	trail_free(&t);
	pw_audit_stop("interval done");
	trail_read(&t, c.file);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && ours_in_order(&t, 1, 1000),
	      "interval: the chain holds (%s)", why);
	trail_free(&t);
}

/* ---- rotation and restart ---- */

/* the rotated files of path, sorted (16 digits: by name is by seq) */
static int rotated(const char *dir, const char *base, char names[][PATH_MAX], int max)
{
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		if (strncmp(e->d_name, base, strlen(base)) == 0 && e->d_name[strlen(base)] == '.' &&
		    n < max)
			snprintf(names[n++], PATH_MAX, "%s/%s", dir, e->d_name);
	if (d)
		closedir(d);
	qsort(names, (size_t)n, PATH_MAX, (int (*)(const void *, const void *))strcmp);
	return n;
}

/* rotated files then FILE, as one trail; names checked against first seqs */
static bool read_all(struct trail *t, const char *dir, const char *base, int *files, bool *names_ok,
                     bool *sizes_ok, uint64_t rotate_bytes)
{
	static char names[64][PATH_MAX];
	char path[PATH_MAX + 64];
	int n = rotated(dir, base, names, 64);
	memset(t, 0, sizeof(*t));
	t->whole = true;
	*names_ok = *sizes_ok = true;
	for (int i = 0; i < n; i++) {
		size_t before = t->n;
		struct stat sb;
		trail_add(t, names[i]);
		unsigned long long want = strtoull(strrchr(names[i], '.') + 1, NULL, 10);
		if (t->n == before || seq_of(&t->l[before]) != want ||
		    strlen(strrchr(names[i], '.') + 1) != 16)
			*names_ok = false;
		if (stat(names[i], &sb) < 0 || (uint64_t)sb.st_size < rotate_bytes)
			*sizes_ok = false;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, base);
	*files = n;
	return trail_add(t, path) || n > 0;
}

static void test_rotation(void)
{
	char dir[128], why[256], path[PATH_MAX + 64];
	struct pw_audit_config c;
	struct trail t;
	int files;
	bool names_ok, sizes_ok;
	subdir(dir, sizeof(dir), "rotate");
	cfg_init(&c, dir, "audit.jsonl");
	c.rotate_bytes = 4096;
	if (!start(&c)) {
		CHECK(false, "rotation: start");
		return;
	}
	for (int i = 0; i < 200; i++) {
		rec(0, i);
		if (i % 10 == 9)
			nap_ms(25); /* several batches, so several files */
	}
	pw_audit_stop("rotation");
	read_all(&t, dir, "audit.jsonl", &files, &names_ok, &sizes_ok, c.rotate_bytes);
	CHECK(files >= 3, "rotation by size: %d rotated files", files);
	CHECK(names_ok, "each rotated file is FILE.<its first seq, 16 digits>");
	CHECK(sizes_ok, "each was rotated past rotate_bytes");
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && t.whole,
	      "the chain runs across the files (a new file's first prev is the last hash "
	      "before): %s",
	      why);
	CHECK(ours_in_order(&t, 1, 200), "all 200 records, in order");
	uint64_t last_seq = t.n ? seq_of(&t.l[t.n - 1]) : 0;
	char last_hash[80];
	snprintf(last_hash, sizeof(last_hash), "%s", t.n ? str_of(&t.l[t.n - 1], "hash") : "");
	trail_free(&t);

	/* restart: taken up from FILE */
	c.rotate_bytes = 0;
	if (!start(&c)) {
		CHECK(false, "restart: start");
		return;
	}
	rec(0, 200);
	pw_audit_stop("restart");
	trail_read(&t, c.file);
	size_t k = 0;
	while (k < t.n && seq_of(&t.l[k]) != last_seq + 1)
		k++;
	CHECK(k < t.n && strcmp(type_of(&t.l[k]), "audit_start") == 0 &&
	          strcmp(str_of(&t.l[k], "prev"), last_hash) == 0 &&
	          json_is_true(json_object_get(t.l[k].j, "resumed")),
	      "restart: audit_start takes seq %llu and prev from the file's last record, resumed",
	      (unsigned long long)last_seq + 1);
	last_seq = t.n ? seq_of(&t.l[t.n - 1]) : 0;
	snprintf(last_hash, sizeof(last_hash), "%s", t.n ? str_of(&t.l[t.n - 1], "hash") : "");
	uint64_t first = t.n ? seq_of(&t.l[0]) : 0;
	trail_free(&t);

	/* FILE gone (rotated by hand): taken up from the newest rotated file */
	snprintf(path, sizeof(path), "%s.%016llu", c.file, (unsigned long long)first);
	rename(c.file, path);
	if (!start(&c)) {
		CHECK(false, "restart without FILE: start");
		return;
	}
	pw_audit_stop("restart from rotated");
	trail_read(&t, c.file);
	CHECK(t.n == 2 && seq_of(&t.l[0]) == last_seq + 1 &&
	          strcmp(str_of(&t.l[0], "prev"), last_hash) == 0 &&
	          json_is_true(json_object_get(t.l[0].j, "resumed")),
	      "FILE missing: the chain is taken up from the newest FILE.<seq>");
	trail_free(&t);
	read_all(&t, dir, "audit.jsonl", &files, &names_ok, &sizes_ok, 0);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && names_ok,
	      "all the files of three runs: one chain (%s)", why);
	trail_free(&t);
}

/* ---- a torn last line, a corrupt one ---- */

static void append(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd >= 0) {
		ssize_t n = write(fd, s, strlen(s));
		(void)n;
		close(fd);
	}
}

/* rotation by age; then a FILE holding only a torn line: cut to nothing, and the chain taken
 * up from the newest rotated file */
static void test_age_and_torn_only(void)
{
	char dir[128], why[256], path[PATH_MAX + 64];
	struct pw_audit_config c;
	struct trail t;
	int files;
	bool names_ok, sizes_ok;
	subdir(dir, sizeof(dir), "age");
	cfg_init(&c, dir, "audit.jsonl");
	c.rotate_seconds = 1;
	if (!start(&c)) {
		CHECK(false, "age: start");
		return;
	}
	rec(0, 0);
	nap_ms(1100);
	rec(0, 1);
	pw_audit_stop("age");
	read_all(&t, dir, "audit.jsonl", &files, &names_ok, &sizes_ok, 0);
	CHECK(files == 1 && names_ok && chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)),
	      "rotation by age: FILE.0000000000000001 after rotate_seconds, one chain (%s)", why);
	uint64_t last_seq = t.n ? seq_of(&t.l[t.n - 1]) : 0;
	char last_hash[80];
	snprintf(last_hash, sizeof(last_hash), "%s", t.n ? str_of(&t.l[t.n - 1], "hash") : "");
	trail_free(&t);
	trail_read(&t, c.file);
	snprintf(path, sizeof(path), "%s.%016llu", c.file,
	         (unsigned long long)(t.n ? seq_of(&t.l[0]) : 0));
	trail_free(&t);
	rename(c.file, path);
	const char *torn = "{\"v\":1,\"seq\":";
	append(c.file, torn);
	c.rotate_seconds = 0;
	if (!start(&c)) {
		CHECK(false, "torn only: start");
		return;
	}
	pw_audit_stop("torn only");
	trail_read(&t, c.file);
	CHECK(t.n == 2 && t.whole && seq_of(&t.l[0]) == last_seq + 1 &&
	          strcmp(str_of(&t.l[0], "prev"), last_hash) == 0 &&
	          int_of(&t.l[0], "repaired_bytes") == (long long)strlen(torn),
	      "FILE with only a torn line: cut to nothing, taken up from the newest FILE.<seq>");
	trail_free(&t);
}

static void test_torn_and_corrupt(void)
{
	char dir[128], why[256], err[1024] = "";
	struct pw_audit_config c;
	struct trail t;
	subdir(dir, sizeof(dir), "torn");
	cfg_init(&c, dir, "audit.jsonl");
	if (!start(&c)) {
		CHECK(false, "torn: start");
		return;
	}
	for (int i = 0; i < 5; i++)
		rec(0, i);
	pw_audit_stop("before the crash");
	const char *torn = "{\"v\":1,\"seq\":8,\"host\":\"x\",\"pid\":1,\"ts\":\"2026";
	append(c.file, torn);
	if (!start(&c)) {
		CHECK(false, "torn: restart");
		return;
	}
	rec(0, 5);
	pw_audit_stop("after the crash");
	trail_read(&t, c.file);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && t.whole,
	      "a torn last line is cut at restart and the chain goes on: %s", why);
	CHECK(t.n == 10 && strcmp(type_of(&t.l[7]), "audit_start") == 0 &&
	          int_of(&t.l[7], "repaired_bytes") == (long long)strlen(torn),
	      "audit_start says repaired_bytes %zu", strlen(torn));
	CHECK(ours_in_order(&t, 1, 6), "the records of both runs are there");
	trail_free(&t);

	/* an edited last record: the start fails, the file is left as it is */
	size_t n;
	char *b = slurp(c.file, &n);
	char *p = n > 400 ? strstr(b + n - 400, "\"reason\":\"after") : NULL;
	if (p)
		p[10] = 'A';
	FILE *f = fopen(c.file, "wb");
	fwrite(b, 1, n, f);
	fclose(f);
	int rc = pw_audit_start(&c, NULL, err, sizeof(err));
	size_t n2;
	char *b2 = slurp(c.file, &n2);
	CHECK(p && rc < 0 && strstr(err, "does not check") && strstr(err, "pgwardctl audit verify"),
	      "a corrupt last line: start fails (%s)", err);
	CHECK(!pw_audit_on() && n2 == n && memcmp(b, b2, n) == 0,
	      "the trail stays off and the file is untouched");
	free(b);
	free(b2);
	pw_audit_stop("not started");
}

/* ---- a record begun before a stop and ended after the next start ---- */

static void test_across_restart(void)
{
	char dir[128], why[256];
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct trail t;
	subdir(dir, sizeof(dir), "across");
	cfg_init(&c, dir, "audit.jsonl");
	bool ok = start(&c);
	struct pw_jw *w = pw_audit_begin("test");
	pw_audit_stop("between");
	ok = ok && start(&c);
	if (w)
		pw_jw_int(w, "i", 0);
	pw_audit_end(w); /* its ring was left by the stop: lost, counted */
	pw_audit_stats(&st);
	bool lost_one = st.dropped == 1;
	rec(0, 0);
	pw_audit_stop("after");
	trail_read(&t, c.file);
	CHECK(ok && w && lost_one, "a record ended after a stop and a start: lost and counted");
	CHECK(count_type(&t, "test") == 1 && count_type(&t, "audit_loss") == 1 &&
	          chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)),
	      "the thread's next record goes in; audit_loss says so; one chain (%s)", why);
	trail_free(&t);
}

/* ---- full rings ---- */

static void test_full(void)
{
	char dir[128], why[256];
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct trail t;
	subdir(dir, sizeof(dir), "drop");
	cfg_init(&c, dir, "audit.jsonl");
	c.ring_bytes = 1024;
	c.drop_when_full = true;
	c.fsync_interval_ms = 1000;
	if (!start(&c)) {
		CHECK(false, "drop: start");
		return;
	}
	int sent = 0;
	for (int i = 0; i < 200000; i++) {
		rec(0, i);
		sent++;
		pw_audit_stats(&st);
		if (st.dropped >= 20)
			break;
	}
	/* one record above half the ring: dropped, never cut */
	struct pw_jw *w = pw_audit_begin("test");
	char big[700];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	pw_jw_str(w, "text", big);
	pw_audit_end(w);
	pw_audit_stop("drop");
	pw_audit_stats(&st);
	trail_read(&t, c.file);
	long long reported = 0;
	size_t ours = count_type(&t, "test");
	for (size_t i = 0; i < t.n; i++)
		if (strcmp(type_of(&t.l[i]), "audit_loss") == 0)
			reported += int_of(&t.l[i], "dropped");
	CHECK(st.dropped >= 21, "on_full drop with a 1 KiB ring: %llu dropped of %d",
	      (unsigned long long)st.dropped, sent + 1);
	CHECK(ours + st.dropped == (size_t)sent + 1, "written + dropped = sent (%zu + %llu)", ours,
	      (unsigned long long)st.dropped);
	CHECK(count_type(&t, "audit_loss") >= 1 && reported == (long long)st.dropped,
	      "audit_loss records tell every drop (%lld)", reported);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)), "the chain holds: %s", why);
	trail_free(&t);

	subdir(dir, sizeof(dir), "wait");
	cfg_init(&c, dir, "audit.jsonl");
	c.ring_bytes = 1024;
	c.fsync_interval_ms = 1000;
	if (!start(&c)) {
		CHECK(false, "wait: start");
		return;
	}
	for (int i = 0; i < 3000; i++)
		rec(0, i);
	pw_audit_stop("wait");
	pw_audit_stats(&st);
	trail_read(&t, c.file);
	CHECK(st.waits > 0 && st.dropped == 0,
	      "on_full wait with a 1 KiB ring: %llu records waited, none dropped",
	      (unsigned long long)st.waits);
	CHECK(ours_in_order(&t, 1, 3000) && chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)),
	      "all 3000 there, in order, one chain");
	trail_free(&t);
}

/* ---- a trail that cannot be written ---- */

static bool wait_failing(bool want, int ms)
{
	struct pw_audit_stats st;
	for (int i = 0; i < ms / 5; i++) {
		pw_audit_stats(&st);
		if (st.failing == want)
			return true;
		nap_ms(5);
	}
	return false;
}

/* No printing while the limit is low: the test's own output may be a file past it. */
static void test_failure(bool cont)
{
	char dir[128], why[256], sqlstate[8] = "", msg[256] = "", low_why[256] = "";
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct trail t;
	struct rlimit old, low;
	subdir(dir, sizeof(dir), cont ? "continue" : "refuse");
	cfg_init(&c, dir, "audit.jsonl");
	c.continue_on_failure = cont;
	if (!start(&c)) {
		CHECK(false, "failure: start");
		return;
	}
	for (int i = 0; i < 10; i++)
		rec(0, i);
	wait_written(11, 2000);
	struct stat sb;
	stat(c.file, &sb);
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	low = old;
	low.rlim_cur = (rlim_t)sb.st_size + 500; /* one more line fits, the next is cut */
	fflush(stdout);
	/* the writer logs the failure on stderr, which may be a file past the limit (the test's
	 * log): it goes to a fresh file meanwhile, and is copied to stderr after */
	char errpath[160];
	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	int saved_err = dup(STDERR_FILENO),
	    errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (errfd >= 0) {
		dup2(errfd, STDERR_FILENO);
		close(errfd);
	}
	setrlimit(RLIMIT_FSIZE, &low);
	for (int i = 10; i < 40; i++)
		rec(0, i);
	bool failing = wait_failing(true, 3000);
	bool refusing = pw_audit_refusing(sqlstate, msg, sizeof(msg));
	for (int i = 0; i < 3; i++)
		pw_audit_count_refusal();
	for (int i = 40; i < 45; i++)
		rec(0, i);
	nap_ms(60); /* a few retries, all failing */
	trail_read(&t, c.file);
	bool low_ok = chain_ok(&t, 1, PW_AUDIT_GENESIS, low_why, sizeof(low_why)) && t.whole;
	size_t low_lines = t.n;
	trail_free(&t);
	stat(c.file, &sb);
	bool low_size = (rlim_t)sb.st_size <= low.rlim_cur;
	setrlimit(RLIMIT_FSIZE, &old);
	bool back = wait_failing(false, 3000);
	dup2(saved_err, STDERR_FILENO);
	close(saved_err);
	FILE *ef = fopen(errpath, "r");
	for (int ch; ef && (ch = fgetc(ef)) != EOF;)
		fputc(ch, stderr);
	if (ef)
		fclose(ef);

	const char *mode = cont ? "continue" : "refuse";
	CHECK(failing, "%s: a write past RLIMIT_FSIZE (EFBIG): the trail fails", mode);
	if (cont)
		CHECK(!refusing, "continue: statements are not refused");
	else
		CHECK(refusing && strcmp(sqlstate, "58030") == 0 &&
		          strstr(msg, "cannot be written (File too large)") &&
		          strstr(msg, "refused until it can"),
		      "refuse: pw_audit_refusing says 58030: %s", msg);
	CHECK(low_ok && low_size && low_lines >= 11,
	      "%s: meanwhile the file holds whole lines only, in one chain (%zu lines: %s)", mode,
	      low_lines, low_why);
	CHECK(back && !pw_audit_refusing(NULL, NULL, 0), "%s: the limit raised, the trail is back",
	      mode);
	pw_audit_stop("failure done");
	pw_audit_stats(&st);
	trail_read(&t, c.file);
	size_t r = 0;
	while (r < t.n && strcmp(type_of(&t.l[r]), "audit_recovered") != 0)
		r++;
	CHECK(r < t.n && strcmp(str_of(&t.l[r], "error"), "File too large") == 0 &&
	          int_of(&t.l[r], "refused") == 3 && strlen(str_of(&t.l[r], "since")) == 27,
	      "%s: audit_recovered with error, since and refused 3", mode);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && ours_in_order(&t, 1, 45),
	      "%s: all 45 records there, in order, one chain (%s)", mode, why);
	CHECK(st.failures == 1 && st.refusals == 3 && st.dropped == 0,
	      "%s: stats: 1 failure, 3 refusals, none dropped", mode);
	trail_free(&t);
}

/* ---- stdout ---- */

static void test_stdout(void)
{
	char dir[128], out[PATH_MAX], why[256];
	struct pw_audit_config c;
	struct trail t, f;
	subdir(dir, sizeof(dir), "stdout");
	snprintf(out, sizeof(out), "%s/captured", dir);
	fflush(stdout);
	int saved = dup(STDOUT_FILENO), fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	cfg_init(&c, dir, NULL);
	c.to_stdout = true;
	bool ok1 = start(&c);
	for (int i = 0; i < 5; i++)
		rec(0, i);
	pw_audit_stop("one");
	bool ok2 = start(&c);
	rec(0, 5);
	pw_audit_stop("two");
	/* file and stdout: the same lines */
	cfg_init(&c, dir, "both.jsonl");
	c.to_stdout = true;
	off_t mark = lseek(STDOUT_FILENO, 0, SEEK_CUR);
	bool ok3 = start(&c);
	rec(0, 6);
	pw_audit_stop("three");
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	CHECK(ok1 && ok2 && ok3, "stdout: three runs started");
	trail_read(&t, out);
	struct trail a = t, b = t;
	a.n = t.n == 13 ? 7 : 0; /* 7 lines, 3 lines, then the 3 of the run with a file too */
	b.l = t.l + 7;
	b.n = t.n == 13 ? 3 : 0;
	bool a_ok = chain_ok(&a, 1, PW_AUDIT_GENESIS, why, sizeof(why));
	CHECK(t.n == 13 && a_ok, "stdout only: a chain from the genesis (%zu lines: %s)", t.n, why);
	CHECK(chain_ok(&b, 1, PW_AUDIT_GENESIS, why, sizeof(why)),
	      "stdout only, restarted: the genesis again (%s)", why);
	trail_read(&f, c.file);
	size_t n;
	char *all = slurp(out, &n), *file = slurp(c.file, &n);
	CHECK(all && file && mark > 0 && strcmp(all + mark, file) == 0,
	      "file and stdout: the same bytes on both");
	free(all);
	free(file);
	trail_free(&f);
	trail_free(&t);
}

/* ---- signed checkpoints ---- */

static EVP_PKEY *key_a, *key_b;

/* key's private PEM (priv) or public PEM into path, mode */
static void write_key(EVP_PKEY *key, bool priv, const char *path, mode_t mode)
{
	FILE *f = fopen(path, "w");
	if (priv)
		PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_PUBKEY(f, key);
	fclose(f);
	chmod(path, mode);
}

/* the rotated files of dir/base and the current one, as verify wants them */
static int trail_paths(const char *dir, const char *base, char names[][PATH_MAX], int max)
{
	int n = rotated(dir, base, names, max - 1);
	snprintf(names[n], PATH_MAX, "%s/%s", dir, base);
	return n + 1;
}

static int verify_dir(const char *dir, const char *base, EVP_PKEY *key, struct pw_audit_verify *r)
{
	static char names[64][PATH_MAX];
	const char *paths[64];
	int n = trail_paths(dir, base, names, 64);
	for (int i = 0; i < n; i++)
		paths[i] = names[i];
	return pw_audit_verify_signed(paths, n, false, key, r);
}

/* Checkpoints in t: each signs the record before it with key_id id; never more than every
 * other records without one, and one right after each run of every; *n of them. */
static bool checkpoints_ok(const struct trail *t, int every, const char *id, size_t *n, char *why,
                           size_t whylen)
{
	int since = 0;
	*n = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct line *l = &t->l[i];
		if (strcmp(type_of(l), "checkpoint") != 0) {
			if (since == every) {
				snprintf(why, whylen, "no checkpoint after %d records at seq %llu",
				         every, (unsigned long long)seq_of(l));
				return false;
			}
			since++;
			continue;
		}
		(*n)++;
		since = 0;
		if (i == 0 || (uint64_t)int_of(l, "signed_seq") != seq_of(&t->l[i - 1]) ||
		    strcmp(str_of(l, "signed_hash"), str_of(&t->l[i - 1], "hash")) != 0 ||
		    strcmp(str_of(l, "signed_hash"), str_of(l, "prev")) != 0 ||
		    strcmp(str_of(l, "key_id"), id) != 0 ||
		    strcmp(str_of(l, "alg"), "ed25519") != 0 ||
		    strlen(str_of(l, "signature")) != PW_AUDIT_SIG_B64) {
			snprintf(why, whylen, "checkpoint at seq %llu is not as it should be",
			         (unsigned long long)seq_of(l));
			return false;
		}
	}
	snprintf(why, whylen, "%zu checkpoints", *n);
	return true;
}

/* every rotated file of dir/base ends with a checkpoint */
static bool files_end_signed(const char *dir, const char *base, int *files)
{
	static char names[64][PATH_MAX];
	int n = rotated(dir, base, names, 64);
	bool ok = n > 0;
	for (int i = 0; i < n; i++) {
		struct trail t;
		trail_read(&t, names[i]);
		ok &= t.n > 0 && strcmp(type_of(&t.l[t.n - 1]), "checkpoint") == 0;
		trail_free(&t);
	}
	*files = n;
	return ok;
}

static void test_checkpoints(void)
{
	char dir[128], why[256], key[PATH_MAX], id_a[PW_AUDIT_KEY_ID_HEX + 1];
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct pw_audit_verify r;
	struct trail t;
	int files;
	bool names_ok, sizes_ok;
	size_t nck;
	subdir(dir, sizeof(dir), "checkpoint");
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	write_key(key_a, true, key, 0600);
	pw_audit_key_id(key_a, id_a);
	cfg_init(&c, dir, "audit.jsonl");
	snprintf(c.key_file, sizeof(c.key_file), "%s", key);
	c.checkpoint_every = 10;
	c.rotate_bytes = 4096;
	if (!start(&c)) {
		CHECK(false, "checkpoints: start");
		return;
	}
	for (int i = 0; i < 200; i++) {
		rec(0, i);
		if (i % 25 == 24)
			nap_ms(25); /* several batches, so several files */
	}
	pw_audit_stop("checkpoints");
	pw_audit_stats(&st);
	read_all(&t, dir, "audit.jsonl", &files, &names_ok, &sizes_ok, c.rotate_bytes);
	CHECK(chain_ok(&t, 1, PW_AUDIT_GENESIS, why, sizeof(why)) && ours_in_order(&t, 1, 200),
	      "checkpoints: one chain, all 200 records (%s)", why);
	bool every_ok = checkpoints_ok(&t, 10, id_a, &nck, why, sizeof(why));
	CHECK(every_ok && nck >= 21,
	      "a checkpoint after every 10 records, each signing the record before it with "
	      "key_id %s: %s",
	      id_a, why);
	CHECK(nck == st.checkpoints, "stats: %llu checkpoints", (unsigned long long)st.checkpoints);
	printf("# a checkpoint costs %.1f us to sign (Ed25519, %llu of them)\n",
	       st.checkpoints ? (double)st.sign_ns / (double)st.checkpoints / 1000.0 : 0.0,
	       (unsigned long long)st.checkpoints);
	bool ends = files_end_signed(dir, "audit.jsonl", &files);
	CHECK(files >= 3 && ends, "each of the %d rotated files ends with a checkpoint", files);
	CHECK(t.n >= 2 && strcmp(type_of(&t.l[t.n - 1]), "checkpoint") == 0 &&
	          strcmp(type_of(&t.l[t.n - 2]), "audit_stop") == 0,
	      "the stop: audit_stop, then a checkpoint signing it");
	trail_free(&t);
	int rc = verify_dir(dir, "audit.jsonl", key_a, &r);
	CHECK(rc == 0 && r.ok && r.keyed && r.checkpoints == nck && r.uncovered == 0 && r.stopped,
	      "verified with the public key: ok, %llu checkpoints, every record covered, "
	      "stopped (%s)",
	      (unsigned long long)r.checkpoints, r.ok ? "" : r.why);
	rc = verify_dir(dir, "audit.jsonl", key_b, &r);
	CHECK(rc == 0 && !r.ok && r.seq == 11 && strstr(r.why, "checkpoint 11 is not signed"),
	      "verified with another key: fails at the first checkpoint (seq 11): %s", r.why);

	/* a restart goes on: its records are signed too */
	c.rotate_bytes = 0;
	bool ok = start(&c);
	for (int i = 0; i < 15; i++)
		rec(0, 200 + i);
	pw_audit_stop("again");
	rc = verify_dir(dir, "audit.jsonl", key_a, &r);
	CHECK(ok && rc == 0 && r.ok && r.uncovered == 0 && r.checkpoints == nck + 2,
	      "restarted: the chain taken up, 2 checkpoints more (after 10, after audit_stop), "
	      "ok (%s)",
	      r.ok ? "" : r.why);

	/* a key file readable by others: the start fails */
	chmod(key, 0640);
	char err[1024] = "";
	CHECK(pw_audit_start(&c, NULL, err, sizeof(err)) < 0 && strstr(err, "readable by others") &&
	          !pw_audit_on(),
	      "a key readable by the group: the start fails (%s)", err);
	pw_audit_stop("not started");
}

/* ---- syslog ---- */

struct rx {
	int fd;         /* bound or listening */
	bool stream;    /* octet counting */
	bool deaf;      /* never reads */
	int drop_after; /* stream: close the first connection after this many messages */
	atomic_bool stop;
	pthread_t th;
	char **m;
	int n, cap;
	int conns;
	bool bad_frame;
	char *buf;
	size_t len;
};

static void rx_add(struct rx *x, const char *p, size_t n)
{
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 256;
		x->m = realloc(x->m, (size_t)x->cap * sizeof(*x->m));
	}
	x->m[x->n++] = strndup(p, n);
}

/* whole "<len> <msg>" frames of x->buf taken */
static void rx_frames(struct rx *x)
{
	size_t at = 0;
	for (;;) {
		char *sp = memchr(x->buf + at, ' ', x->len - at);
		if (!sp)
			break;
		char *end;
		unsigned long n = strtoul(x->buf + at, &end, 10);
		if (end != sp || n == 0) {
			x->bad_frame = true;
			x->len = 0;
			return;
		}
		size_t start = (size_t)(sp - x->buf) + 1;
		if (x->len < start + n)
			break;
		rx_add(x, x->buf + start, n);
		at = start + n;
	}
	memmove(x->buf, x->buf + at, x->len - at);
	x->len -= at;
}

static void *rx_main(void *arg)
{
	struct rx *x = arg;
	int conn = -1, in_conn = 0;
	char *b = malloc(1 << 18);
	while (!x->deaf) {
		struct pollfd p = {.fd = conn >= 0 ? conn : x->fd, .events = POLLIN};
		if (poll(&p, 1, 50) == 0) {
			if (atomic_load(&x->stop))
				break;
			continue;
		}
		if (x->stream && conn < 0) {
			conn = accept(x->fd, NULL, NULL);
			x->conns += conn >= 0;
			in_conn = 0;
			continue;
		}
		ssize_t n = recv(conn >= 0 ? conn : x->fd, b, 1 << 18, 0);
		if (n <= 0 && x->stream) {
			close(conn);
			conn = -1;
			continue;
		}
		if (n <= 0)
			continue;
		if (!x->stream) {
			rx_add(x, b, (size_t)n);
			continue;
		}
		x->buf = realloc(x->buf, x->len + (size_t)n);
		memcpy(x->buf + x->len, b, (size_t)n);
		x->len += (size_t)n;
		int before = x->n;
		rx_frames(x);
		in_conn += x->n - before;
		if (x->drop_after && x->conns == 1 && in_conn >= x->drop_after) {
			close(conn); /* the receiver goes away: pgwardd connects again */
			conn = -1;
			x->len = 0;
		}
	}
	while (x->deaf && !atomic_load(&x->stop))
		nap_ms(10);
	if (conn >= 0)
		close(conn);
	free(b);
	return NULL;
}

/* a receiver at path (unix: dgram or stream), or on 127.0.0.1 (path NULL: *port set) */
static bool rx_start(struct rx *x, const char *path, int type, int *port)
{
	memset(x, 0, sizeof(*x));
	x->stream = type == SOCK_STREAM;
	if (path) {
		struct sockaddr_un un = {.sun_family = AF_UNIX};
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
		unlink(path);
		x->fd = socket(AF_UNIX, type, 0);
		if (bind(x->fd, (struct sockaddr *)&un, sizeof(un)) < 0)
			return false;
	} else {
		struct sockaddr_in in = {.sin_family = AF_INET,
		                         .sin_addr.s_addr = htonl(0x7f000001)};
		socklen_t l = sizeof(in);
		x->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(x->fd, (struct sockaddr *)&in, sizeof(in)) < 0 ||
		    getsockname(x->fd, (struct sockaddr *)&in, &l) < 0)
			return false;
		*port = ntohs(in.sin_port);
	}
	if (x->stream && listen(x->fd, 8) < 0)
		return false;
	return pthread_create(&x->th, NULL, rx_main, x) == 0;
}

static void rx_stop(struct rx *x)
{
	atomic_store(&x->stop, true);
	pthread_join(x->th, NULL);
	close(x->fd);
}

static void rx_free(struct rx *x)
{
	for (int i = 0; i < x->n; i++)
		free(x->m[i]);
	free(x->m);
	free(x->buf);
}

/* the records a syslog test writes: ours, and some at notice (a refusal, a denied statement) */
static void syslog_records(int n)
{
	for (int i = 0; i < n; i++) {
		rec(0, i);
		if (i % 10 == 3) {
			struct pw_jw *w = pw_audit_begin("connect_refused");
			pw_jw_str(w, "reason", "enforcer_down");
			pw_audit_end(w);
		} else if (i % 10 == 6) {
			struct pw_jw *w = pw_audit_begin("statement");
			pw_jw_str(w, "text", "DROP TABLE t; -- ,\"decision\":\"deny\" in a string");
			pw_jw_str(w, "decision", i % 20 == 6 ? "deny" : "allow");
			pw_audit_end(w);
		}
	}
}

/* Each message is "<PRI>1 TS HOST pgward PID audit - LINE" with the file's line, in order. */
static bool messages_match(const struct rx *x, const struct trail *t, int facility, char *why,
                           size_t whylen)
{
	char host[256] = "", head[512];
	gethostname(host, sizeof(host) - 1);
	if (x->n != (int)t->n || x->bad_frame) {
		snprintf(why, whylen, "%d messages for %zu lines%s", x->n, t->n,
		         x->bad_frame ? ", a bad frame" : "");
		return false;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct line *l = &t->l[i];
		const char *type = type_of(l), *d = str_of(l, "decision");
		bool notice = strcmp(type, "connect_refused") == 0 ||
		              (strcmp(type, "statement") == 0 && strcmp(d, "deny") == 0);
		snprintf(head, sizeof(head), "<%d>1 %s %s pgward %ld audit - ",
		         facility * 8 + (notice ? 5 : 6), str_of(l, "ts"), host, (long)getpid());
		size_t hl = strlen(head);
		if (strncmp(x->m[i], head, hl) != 0 || strcmp(x->m[i] + hl, l->p) != 0) {
			snprintf(why, whylen, "message %zu: %.120s (wanted %.100s...)", i + 1,
			         x->m[i], head);
			return false;
		}
	}
	snprintf(why, whylen, "%d messages", x->n);
	return true;
}

/* one run to a receiver: records in, the file and the messages compared */
static void syslog_run(const char *name, struct pw_audit_config *c, struct rx *x)
{
	char why[512];
	struct trail t;
	struct pw_audit_stats st;
	if (!start(c)) {
		CHECK(false, "%s: start", name);
		return;
	}
	syslog_records(50);
	pw_audit_stop(name);
	pw_audit_stats(&st);
	rx_stop(x);
	trail_read(&t, c->file);
	CHECK(messages_match(x, &t, c->syslog.facility, why, sizeof(why)) &&
	          st.syslog_sent == t.n && st.syslog_dropped == 0,
	      "%s: every line of the file, byte for byte, in an RFC 5424 message with its PRI "
	      "(%s; %llu sent)",
	      name, why, (unsigned long long)st.syslog_sent);
	trail_free(&t);
	rx_free(x);
}

static void syslog_cfg(struct pw_audit_config *c, const char *dir, const char *file)
{
	cfg_init(c, dir, file);
	unlink(c->file);
	c->syslog.facility = PW_AUDIT_FACILITY_AUTHPRIV;
}

static void test_syslog(void)
{
	char dir[128], sock[160];
	struct pw_audit_config c;
	struct rx x;
	int port = 0;
	subdir(dir, sizeof(dir), "syslog");
	snprintf(sock, sizeof(sock), "%s/log.sock", dir);

	syslog_cfg(&c, dir, "dgram.jsonl");
	c.syslog.proto = PW_AUDIT_SYSLOG_UNIX;
	snprintf(c.syslog.socket, sizeof(c.syslog.socket), "%.100s", sock);
	if (rx_start(&x, sock, SOCK_DGRAM, NULL))
		syslog_run("unix datagram, authpriv", &c, &x);

	syslog_cfg(&c, dir, "stream.jsonl");
	c.syslog.proto = PW_AUDIT_SYSLOG_UNIX;
	snprintf(c.syslog.socket, sizeof(c.syslog.socket), "%.100s", sock);
	c.syslog.facility = 16; /* local0 */
	if (rx_start(&x, sock, SOCK_STREAM, NULL))
		syslog_run("unix stream (octet counting), local0", &c, &x);

	syslog_cfg(&c, dir, "tcp.jsonl");
	if (rx_start(&x, NULL, SOCK_STREAM, &port)) {
		c.syslog.proto = PW_AUDIT_SYSLOG_TCP;
		c.syslog.facility = 19; /* local3 */
		snprintf(c.syslog.address, sizeof(c.syslog.address), "127.0.0.1:%d", port);
		syslog_run("TCP on 127.0.0.1 (octet counting), local3", &c, &x);
	}
}

/* records reach the file in time and the stop is quick, whatever syslog does */
static void unstalled(const char *name, struct pw_audit_config *c, bool want_dropped)
{
	struct pw_audit_stats st;
	struct trail t;
	if (!start(c)) {
		CHECK(false, "%s: start", name);
		return;
	}
	double t0 = now_s();
	for (int i = 0; i < 3000; i++)
		rec(0, i);
	bool in_time = wait_written(3001, 3000);
	double t1 = now_s();
	pw_audit_stop(name);
	double t2 = now_s();
	pw_audit_stats(&st);
	trail_read(&t, c->file);
	CHECK(in_time && ours_in_order(&t, 1, 3000) && t2 - t1 < 1.6,
	      "%s: 3000 records in the file in %.3f s, the stop in %.3f s", name, t1 - t0, t2 - t1);
	CHECK(!want_dropped || (st.syslog_dropped > 0 && st.written == t.n),
	      "%s: syslog's drops counted (%llu of %zu, %llu sent), not the trail's", name,
	      (unsigned long long)st.syslog_dropped, t.n, (unsigned long long)st.syslog_sent);
	trail_free(&t);
}

static void test_syslog_trouble(void)
{
	char dir[128], sock[160], why[512];
	struct pw_audit_config c;
	struct pw_audit_stats st;
	struct trail t;
	struct rx x;
	int port = 0;
	subdir(dir, sizeof(dir), "syslog_trouble");
	snprintf(sock, sizeof(sock), "%s/log.sock", dir);

	syslog_cfg(&c, dir, "missing.jsonl");
	c.syslog.proto = PW_AUDIT_SYSLOG_UNIX;
	snprintf(c.syslog.socket, sizeof(c.syslog.socket), "%.80s/nobody.sock", dir);
	unstalled("no receiver at the socket", &c, true);

	/* a port no one listens on: bound, then closed */
	syslog_cfg(&c, dir, "refused.jsonl");
	if (rx_start(&x, NULL, SOCK_STREAM, &port)) {
		x.deaf = true;
		rx_stop(&x);
		rx_free(&x);
	}
	c.syslog.proto = PW_AUDIT_SYSLOG_TCP;
	snprintf(c.syslog.address, sizeof(c.syslog.address), "127.0.0.1:%d", port);
	unstalled("no TCP listener", &c, true);

	/* a receiver that never reads: the socket's queue fills */
	syslog_cfg(&c, dir, "deaf.jsonl");
	c.syslog.proto = PW_AUDIT_SYSLOG_UNIX;
	snprintf(c.syslog.socket, sizeof(c.syslog.socket), "%.100s", sock);
	if (rx_start(&x, sock, SOCK_DGRAM, NULL)) {
		x.deaf = true;
		unstalled("a receiver that never reads", &c, true);
		rx_stop(&x);
		rx_free(&x);
	}

	/* a receiver that comes late: what waited in the queue comes to it */
	syslog_cfg(&c, dir, "late.jsonl");
	c.syslog.proto = PW_AUDIT_SYSLOG_UNIX;
	snprintf(c.syslog.socket, sizeof(c.syslog.socket), "%.100s", sock);
	unlink(sock);
	bool ok = start(&c);
	syslog_records(10);
	nap_ms(300);
	ok = ok && rx_start(&x, sock, SOCK_DGRAM, NULL);
	nap_ms(700); /* past the backoff */
	syslog_records(10);
	pw_audit_stop("late");
	if (ok) {
		rx_stop(&x);
		trail_read(&t, c.file);
		CHECK(messages_match(&x, &t, c.syslog.facility, why, sizeof(why)),
		      "a receiver that comes late gets what waited for it, then the rest (%s)",
		      why);
		trail_free(&t);
		rx_free(&x);
	}

	/* a TCP receiver that goes away: pgwardd connects again */
	syslog_cfg(&c, dir, "gone.jsonl");
	if (rx_start(&x, NULL, SOCK_STREAM, &port)) {
		x.drop_after = 5;
		c.syslog.proto = PW_AUDIT_SYSLOG_TCP;
		snprintf(c.syslog.address, sizeof(c.syslog.address), "127.0.0.1:%d", port);
		ok = start(&c);
		for (int i = 0; i < 40; i++) {
			rec(0, i);
			nap_ms(50);
		}
		pw_audit_stop("gone");
		pw_audit_stats(&st);
		rx_stop(&x);
		trail_read(&t, c.file);
		bool last = x.n > 0 && t.n > 0 && strstr(x.m[x.n - 1], t.l[t.n - 1].p);
		CHECK(ok && x.conns == 2 && last && x.n + (int)st.syslog_dropped >= 5,
		      "a TCP receiver gone: connected again (%d connections), the last record "
		      "arrives; %d messages, %llu dropped of %zu",
		      x.conns, x.n, (unsigned long long)st.syslog_dropped, t.n);
		trail_free(&t);
		rx_free(&x);
	}
}

/* ---- the configuration ---- */

static char *jq(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *jq(const char *fmt, ...)
{
	static char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if (*p == '\'')
			*p = '"';
	return buf;
}

#define ROOT                                                                                       \
	"{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "              \
	"'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'trust', "               \
	"'upstream': 'u'}], 'audit': {%s}}"

static void config_err(const char *what, const char *audit, const char *jp, const char *says)
{
	struct pw_config *c = NULL;
	char err[1024] = "";
	int rc = pw_config_load_string(jq(ROOT, audit), "t.json", &c, err, sizeof(err));
	CHECK(rc < 0 && strstr(err, jp) && strstr(err, says), "config, %s: %s", what, err);
	if (rc == 0)
		pw_config_unref(c);
}

static void test_config(void)
{
	char dir[128], key[160], pub[160], a[1024], err[1024] = "";
	struct pw_config *c = NULL;
	subdir(dir, sizeof(dir), "config");
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	snprintf(pub, sizeof(pub), "%s/pub.pem", dir);
	write_key(key_a, true, key, 0600);
	write_key(key_a, false, pub, 0644);
	snprintf(a, sizeof(a),
	         "'file': '%s/a.jsonl', 'checkpoint': {'key_file': '%s', 'every': 10}, 'syslog': "
	         "{'address': '127.0.0.1:6514', 'protocol': 'tcp', 'facility': 'local3'}",
	         dir, key);
	int rc = pw_config_load_string(jq(ROOT, a), "t.json", &c, err, sizeof(err));
	CHECK(rc == 0 && c && c->audit.checkpoint_every == 10 &&
	          strcmp(c->audit.key_file, key) == 0 &&
	          c->audit.syslog.proto == PW_AUDIT_SYSLOG_TCP && c->audit.syslog.facility == 19 &&
	          strcmp(c->audit.syslog.address, "127.0.0.1:6514") == 0,
	      "config: checkpoint key_file and every, syslog address, tcp, local3 (%s)", err);
	if (c)
		pw_config_unref(c);
	c = NULL;
	rc = pw_config_load_string(
	    jq(ROOT, "'syslog': {'socket': '/dev/log'}, 'checkpoint': {'key_file': 'KEY'}"),
	    "t.json", &c, err, sizeof(err));
	CHECK(rc < 0, "config: a key file that is not there fails");
	snprintf(a, sizeof(a), "'syslog': {'socket': '/dev/log'}, 'checkpoint': {'key_file': '%s'}",
	         key);
	rc = pw_config_load_string(jq(ROOT, a), "t.json", &c, err, sizeof(err));
	CHECK(rc == 0 && c && c->audit.syslog.proto == PW_AUDIT_SYSLOG_UNIX &&
	          c->audit.syslog.facility == 10 && c->audit.checkpoint_every == 1000 &&
	          !c->audit.file[0],
	      "config: syslog only, on /dev/log, authpriv; checkpoints every 1000 (%s)", err);
	if (c)
		pw_config_unref(c);
	chmod(key, 0644);
	snprintf(a, sizeof(a), "'stdout': true, 'checkpoint': {'key_file': '%s'}", key);
	config_err("a key file readable by others", a, "$.audit.checkpoint.key_file",
	           "is readable by others (mode 0644): chmod 600");
	chmod(pub, 0600);
	snprintf(a, sizeof(a), "'stdout': true, 'checkpoint': {'key_file': '%s'}", pub);
	config_err("a public key as key_file", a, "$.audit.checkpoint.key_file",
	           "not a PEM private key");
	chmod(key, 0600);
	snprintf(a, sizeof(a), "'stdout': true, 'checkpoint': {'key_file': '%s', 'every': 0}", key);
	config_err("every 0", a, "$.audit.checkpoint.every",
	           "expected an integer from 1 to 1000000");
	config_err("no key_file", "'stdout': true, 'checkpoint': {'every': 5}",
	           "$.audit.checkpoint.key_file", "missing");
	config_err("both socket and address",
	           "'syslog': {'socket': '/dev/log', 'address': '127.0.0.1:514'}", "$.audit.syslog",
	           "not both");
	config_err("neither", "'syslog': {'facility': 'user'}", "$.audit.syslog",
	           "expected \"socket\"");
	config_err("a bad port", "'syslog': {'address': '127.0.0.1:0'}", "$.audit.syslog.address",
	           "host:port");
	config_err("no port", "'syslog': {'address': '[::1]'}", "$.audit.syslog.address",
	           "host:port");
	config_err("a bad protocol", "'syslog': {'address': 'h:1', 'protocol': 'tls'}",
	           "$.audit.syslog.protocol", "tcp, udp");
	config_err("protocol with a socket", "'syslog': {'socket': '/dev/log', 'protocol': 'udp'}",
	           "$.audit.syslog.protocol", "only with");
	config_err("a bad facility", "'syslog': {'socket': '/dev/log', 'facility': 'authpriv2'}",
	           "$.audit.syslog.facility", "expected a syslog facility");
	config_err("an unknown key", "'syslog': {'socket': '/dev/log', 'port': 1}",
	           "$.audit.syslog.port", "unknown key");
	CHECK(pw_audit_facility("kern") == 0 && pw_audit_facility("authpriv") == 10 &&
	          pw_audit_facility("local7") == 23 && pw_audit_facility("x") == -1,
	      "facility names");
}

int main(void)
{
	snprintf(top, sizeof(top), "/tmp/pgward-audit-XXXXXX");
	if (!mkdtemp(top))
		return check_skip_all("mkdtemp failed");
	pw_log_set_level(PW_LOG_WARN);
	test_off();
	test_threads();
	test_fsync_modes();
	test_rotation();
	test_torn_and_corrupt();
	test_age_and_torn_only();
	test_across_restart();
	test_full();
	test_failure(false);
	test_failure(true);
	test_stdout();
	key_a = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	key_b = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (key_a && key_b) {
		test_checkpoints();
		test_config();
	} else {
		CHECK_SKIP("no Ed25519 in OpenSSL", "signed checkpoints");
	}
	test_syslog();
	test_syslog_trouble();
	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_b);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	pw_audit_thread_done();
	return check_done();
}
