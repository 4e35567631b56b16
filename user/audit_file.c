/* The audit trail's file: taken up at start (from the file or the newest rotated one, a torn
 * last line cut away), written batch by batch, rotated, and the checkpoint key that signs it.
 * Everything here runs on the thread that owns W (audit_int.h). See include/pgward/audit.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pgward/log.h"
#include "audit_int.h"

#define now_ms pw_audit_now_ms
#define es     pw_audit_es

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

int pw_audit_write_all(int fd, const char *p, size_t n, size_t *wrote)
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

bool pw_audit_rotate_due(void)
{
	return W.file_first &&
	       ((cfg.rotate_bytes && (uint64_t)W.size >= cfg.rotate_bytes) ||
	        (cfg.rotate_seconds > 0 && time(NULL) - W.file_born >= cfg.rotate_seconds));
}

/* out from done_file up to end into the file, whose last record is then last. */
static int file_part(size_t end, uint64_t last)
{
	size_t n = end - W.done_file, wrote = 0;
	int e;
	if (!n)
		return 0;
	if ((e = pw_audit_write_all(W.fd, W.out.p + W.done_file, n, &wrote))) {
		if (wrote && ftruncate(W.fd, W.size) < 0)
			pw_debug("audit: cannot cut a failed write yet: at the retry");
		return e;
	}
	if (!W.file_first) {
		W.file_first = W.file_last + 1;
		W.file_born = time(NULL);
	}
	W.size += (off_t)n;
	W.done_file = end;
	W.file_last = last;
	W.unsynced = true;
	return 0;
}

int pw_audit_file_out(bool sync)
{
	int e;
	if (W.fd < 0 && (e = open_file()))
		return e;
	/* a retry first cuts what a failed write may have left (if that cut failed too) */
	if (W.failing && ftruncate(W.fd, W.size) < 0)
		return errno;
	/* the old file's last lines (its closing checkpoint), then the rotation, done once */
	if (W.rot_pending) {
		/* file_first 0: rotated already, a retry after the new file failed to open */
		if ((e = file_part(W.rot_at, W.rot_last)) || (W.file_first && (e = rotate())))
			return e;
		W.rot_pending = false;
	}
	if ((e = file_part(W.out.len, W.seq - 1)))
		return e;
	/* group commit: one fsync for all that was written in fsync_interval_ms */
	if (W.unsynced && (sync || cfg.fsync == PW_AUDIT_FSYNC_EVERY ||
	                   now_ms() - W.synced_ms >= cfg.fsync_interval_ms))
		return sync_file();
	return 0;
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
	bool last_ckpt = false;
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
		last_ckpt = memmem(s, (size_t)(e - s), ",\"type\":\"checkpoint\"", 20) != NULL;
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
		/* a checkpoint last (a clean stop): none again over it */
		W.ckpt_seq = last_ckpt ? seq : 0;
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
int pw_audit_open_trail(uint64_t *repaired, bool *resumed, char *err, size_t errlen)
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

/* ---- the checkpoint key ---- */

int pw_audit_key_open(char *err, size_t errlen)
{
	char why[512];
	W.key = NULL;
	if (!cfg.key_file[0])
		return 0;
	W.key = pw_audit_key_read(cfg.key_file, true, why, sizeof(why));
	if (W.key && pw_audit_key_id(W.key, W.key_id) < 0)
		snprintf(why, sizeof(why), "its public key cannot be read");
	else if (W.key)
		return 0;
	pw_errf(err, errlen, "audit: the checkpoint key %s: %s", cfg.key_file, why);
	EVP_PKEY_free(W.key);
	W.key = NULL;
	return -1;
}

int pw_audit_sign(uint64_t seq, const char *hash, char *sig)
{
	char msg[PW_AUDIT_CKPT_MSG];
	unsigned char raw[64];
	size_t n = pw_audit_ckpt_msg(msg, sizeof(msg), W.hostname, seq, hash), len = sizeof(raw);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EVP_MD_CTX *ctx = n ? EVP_MD_CTX_new() : NULL;
	/* Ed25519 signs the message itself: no digest (NULL) */
	bool ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, W.key) == 1 &&
	          EVP_DigestSign(ctx, raw, &len, (const unsigned char *)msg, n) == 1 && len == 64;
	EVP_MD_CTX_free(ctx);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!ok)
		return -1;
	EVP_EncodeBlock((unsigned char *)sig, raw, 64);
	cnt_add(C_SIGN_NS,
	        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)));
	return 0;
}

void pw_audit_file_close(void)
{
	if (W.fd >= 0)
		close(W.fd);
	W.fd = -1;
	EVP_PKEY_free(W.key);
	W.key = NULL;
}
