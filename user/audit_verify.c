/* Verifying the audit trail's chain over its files. See include/pgward/audit_verify.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "pgward/audit_verify.h"
#include "pgward/log.h"

#define KEY_FILE_MAX 16384 /* a PEM key is some hundred bytes */

/* One file of the trail: its place comes from its first record's seq. */
struct vfile {
	const char *path;
	int given; /* its place among the caller's paths: ties keep it */
	uint64_t key;
	dev_t dev;
	ino_t ino;
};

/* The walk over every line, in order. */
struct walk {
	struct pw_audit_verify *r;
	bool partial;
	bool have_prev; /* a good record was read: prev_* are its */
	uint64_t prev_seq;
	char prev_hash[PW_AUDIT_HASH_HEX + 1];
	/* where the last good record other than a checkpoint is: is it audit_stop? */
	const struct vfile *last_file;
	off_t last_off;
	EVP_PKEY *key; /* checkpoints' signatures checked with it (NULL: not) */
	/* A seq further on than the next: a deletion, unless the next line is the one skipped
	 * (then the two were swapped). Decided at the next line. */
	bool gap;
	uint64_t gap_seq, gap_line;
	const struct vfile *gap_file;
	bool gap_at_start; /* the first line of its file: a whole file may be missing */
	char *buf;
	size_t cap;
};

static int fail(struct walk *w, uint64_t seq, const struct vfile *f, uint64_t line, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* The first problem: recorded, and the walk stops (returns 1). */
static int fail(struct walk *w, uint64_t seq, const struct vfile *f, uint64_t line, const char *fmt,
                ...)
{
	va_list ap;
	w->r->ok = false;
	w->r->seq = seq;
	w->r->file = f ? f->path : NULL;
	w->r->line = line;
	va_start(ap, fmt);
	vsnprintf(w->r->why, sizeof(w->r->why), fmt, ap);
	va_end(ap);
	return 1;
}

/* A file that cannot be read: no result, an error (returns -1). */
static int io_error(struct pw_audit_verify *r, const char *path, const char *what)
{
	snprintf(r->why, sizeof(r->why), "%s: %s", path, what);
	r->ok = false;
	r->file = path;
	return -1;
}

/* s (n digits) as a seq; false when empty, not digits, or too long */
static bool parse_seq(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* A rotated file's name ends in ".<first seq, 16 digits>". */
static bool name_seq(const char *path, uint64_t *seq)
{
	size_t n = strlen(path);
	return n > 17 && path[n - 17] == '.' && parse_seq(path + n - 16, 16, seq);
}

/* The seq a damaged line claims, read from its head as the writer puts it ({"v":1,"seq":N):
 * where to place a file whose first line does not check. */
static bool claimed_seq(const char *line, size_t len, uint64_t *seq)
{
	static const char head[] = "{\"v\":1,\"seq\":";
	size_t hl = sizeof(head) - 1, n = 0;
	if (len <= hl || memcmp(line, head, hl) != 0)
		return false;
	while (hl + n < len && line[hl + n] >= '0' && line[hl + n] <= '9')
		n++;
	return parse_seq(line + hl, n, seq);
}

/* A line into w->buf (its newline cut, *nl telling whether it had one): 1, 0 at the end of
 * the file, -1 on a read error (errno). */
static int next_line(struct walk *w, FILE *fp, size_t *len, bool *nl)
{
	errno = 0;
	ssize_t n = getline(&w->buf, &w->cap, fp);
	if (n < 0)
		return ferror(fp) || errno == ENOMEM ? -1 : 0;
	*nl = n > 0 && w->buf[n - 1] == '\n';
	*len = (size_t)n - (*nl ? 1 : 0);
	return 1;
}

/* A file's place: its first record's seq when that line checks; else the seq in its name
 * (a rotated file), else the one its damaged first line claims; else the end (an empty or
 * unreadable current file is the newest). */
static int probe(struct walk *w, struct vfile *f, struct pw_audit_verify *r)
{
	FILE *fp = fopen(f->path, "re");
	struct stat st;
	if (!fp)
		return io_error(r, f->path, strerror(errno));
	if (fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode)) {
		/* read twice (its place, then its lines): a pipe cannot be */
		int e = errno;
		bool reg = S_ISREG(st.st_mode);
		fclose(fp);
		return io_error(r, f->path, reg ? strerror(e) : "not a regular file");
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	size_t len;
	bool nl;
	int got = next_line(w, fp, &len, &nl);
	int e = errno;
	fclose(fp);
	if (got < 0)
		return io_error(r, f->path, strerror(e));
	uint64_t seq;
	char prev[PW_AUDIT_HASH_HEX + 1], hash[PW_AUDIT_HASH_HEX + 1];
	if (got && pw_audit_check_line(w->buf, len, &seq, prev, hash, NULL, 0) == 0)
		f->key = seq;
	else if (name_seq(f->path, &seq) || (got && claimed_seq(w->buf, len, &seq)))
		f->key = seq;
	else
		f->key = UINT64_MAX;
	return 0;
}

static int by_key(const void *a, const void *b)
{
	const struct vfile *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->given - y->given;
}

/* The gap of w: the line after it was not the record skipped, so records are missing. */
static int report_missing(struct walk *w)
{
	uint64_t first = w->prev_seq + 1, last = w->gap_seq - 1;
	char what[64];
	if (first == last)
		snprintf(what, sizeof(what), "record %llu is", (unsigned long long)first);
	else
		snprintf(what, sizeof(what), "records %llu..%llu are", (unsigned long long)first,
		         (unsigned long long)last);
	return fail(w, first, w->gap_file, w->gap_line, "%s missing (found %llu after %llu): %s",
	            what, (unsigned long long)w->gap_seq, (unsigned long long)w->prev_seq,
	            w->gap_at_start ? "a file is missing, or records were deleted" : "deleted");
}

/* A line that is no record of the trail: the seq it would have had is the one expected. */
static int report_bad(struct walk *w, const struct vfile *f, uint64_t lineno, size_t len, bool nl,
                      const char *why)
{
	uint64_t seq = w->have_prev ? w->prev_seq + 1 : w->partial ? 0 : 1;
	if (!w->have_prev && w->partial)
		claimed_seq(w->buf, len, &seq); /* the anchor: only its own word */
	char rec[48] = "the first record";
	if (seq)
		snprintf(rec, sizeof(rec), "record %llu", (unsigned long long)seq);
	if (!nl && w->have_prev)
		return fail(w, seq, f, lineno,
		            "the last line of %s is cut (truncated mid-record) after record %llu",
		            f->path, (unsigned long long)w->prev_seq);
	if (!nl)
		return fail(w, seq, f, lineno,
		            "the last line of %s is cut (truncated mid-record), with no whole "
		            "record before it",
		            f->path);
	if (strstr(why, "does not match"))
		return fail(w, seq, f, lineno, "%s was edited (its hash does not match its bytes)",
		            rec);
	if (len == 0)
		return fail(w, seq, f, lineno, "%s is an empty line: inserted, or a record blanked",
		            rec);
	return fail(w, seq, f, lineno, "%s is damaged (%s): edited, or a line inserted", rec, why);
}

/* The first good record of the trail. */
static int check_start(struct walk *w, const struct vfile *f, uint64_t lineno, uint64_t seq,
                       const char *prev)
{
	if (w->partial)
		return 0;
	if (seq != 1)
		return fail(w, 1, f, lineno,
		            "the trail does not start at record 1 (starts at %llu): earlier files "
		            "or records missing (use --partial to verify from there)",
		            (unsigned long long)seq);
	if (strcmp(prev, PW_AUDIT_GENESIS) != 0)
		return fail(w, 1, f, lineno,
		            "record 1 does not start a trail (its prev is not 64 zeros): forged, "
		            "or earlier records renumbered");
	return 0;
}

/* A good record after another: seq one more, prev naming it. */
static int check_link(struct walk *w, const struct vfile *f, uint64_t lineno, uint64_t seq,
                      const char *prev)
{
	unsigned long long s = seq, p = w->prev_seq;
	if (seq == w->prev_seq + 1) {
		if (strcmp(prev, w->prev_hash) != 0)
			return fail(
			    w, seq, f, lineno,
			    "record %llu is out of order / inserted (its prev does not name "
			    "record %llu)",
			    s, p);
		return 0;
	}
	if (seq == w->prev_seq)
		return fail(w, seq, f, lineno,
		            "record %llu appears twice (again right after itself): one of the two "
		            "was inserted",
		            s);
	if (seq < w->prev_seq)
		return fail(w, p + 1, f, lineno,
		            "record %llu is not next (found %llu after %llu, an earlier one "
		            "again): a line moved, or files overlap (a copy given too?)",
		            p + 1, s, p);
	/* further on: missing records, or the first of two swapped; the next line tells */
	w->gap = true;
	w->gap_seq = seq;
	w->gap_file = f;
	w->gap_line = lineno;
	w->gap_at_start = lineno == 1;
	return 0;
}

/* ---- checkpoints ---- */

size_t pw_audit_ckpt_msg(char *out, size_t cap, const char *host, uint64_t seq, const char *hash)
{
	int n = snprintf(out, cap, "pgward-audit-checkpoint 1\n%s\n%llu\n%s\n", host,
	                 (unsigned long long)seq, hash);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* no passphrase is asked for (an encrypted key fails): nothing may wait on a terminal */
static int no_passphrase(char *buf, int size, int rw, void *u)
{
	(void)buf, (void)size, (void)rw, (void)u;
	return -1;
}

EVP_PKEY *pw_audit_key_parse(const void *pem, size_t n, bool private_key, char *why, size_t whylen)
{
	BIO *b = n < KEY_FILE_MAX ? BIO_new_mem_buf(pem, (int)n) : NULL;
	EVP_PKEY *k = !b            ? NULL
	              : private_key ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL)
	                            : PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	ERR_clear_error(); /* this thread's queue: nothing left for the next OpenSSL call */
	if (!k) {
		const char *other = private_key ? "PUBLIC KEY-----" : "PRIVATE KEY-----";
		pw_errf(why, whylen, "not a PEM %s key%s", private_key ? "private" : "public",
		        memmem(pem, n, "ENCRYPTED", 9) ? " (an encrypted one: give it unencrypted)"
		        : memmem(pem, n, other, strlen(other))
		            ? (private_key ? " (a public one)"
		                           : " (a private one: give its public "
		                             "key, `openssl pkey -pubout`)")
		            : "");
		return NULL;
	}
	if (!EVP_PKEY_is_a(k, "ED25519")) {
		pw_errf(why, whylen, "not an Ed25519 key (%s)", EVP_PKEY_get0_type_name(k));
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

EVP_PKEY *pw_audit_key_read(const char *path, bool private_key, char *why, size_t whylen)
{
	char buf[KEY_FILE_MAX];
	struct stat st;
	ssize_t k = 0;
	size_t n = 0;
	EVP_PKEY *key = NULL;
	/* O_NONBLOCK: a FIFO given by mistake must not hang */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		pw_errf(why, whylen, "cannot read it: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		pw_errf(why, whylen, "not a regular file");
	} else if (private_key && (st.st_mode & 0077)) {
		pw_errf(why, whylen, "readable by others (mode %04o): chmod 600",
		        (unsigned)(st.st_mode & 07777));
	} else {
		while (n < sizeof(buf) &&
		       ((k = read(fd, buf + n, sizeof(buf) - n)) > 0 || (k < 0 && errno == EINTR)))
			n += k > 0 ? (size_t)k : 0;
		if (k < 0)
			pw_errf(why, whylen, "cannot read it: %s", strerror(errno));
		else if (n == sizeof(buf))
			pw_errf(why, whylen, "too large for a key");
		else
			key = pw_audit_key_parse(buf, n, private_key, why, whylen);
	}
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	return key;
}

int pw_audit_key_id(EVP_PKEY *key, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char raw[32], md[32];
	size_t n = sizeof(raw);
	unsigned int len = 0;
	if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != 32 ||
	    EVP_Digest(raw, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) {
		ERR_clear_error();
		return -1;
	}
	for (int i = 0; i < PW_AUDIT_KEY_ID_HEX / 2; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[PW_AUDIT_KEY_ID_HEX] = 0;
	return 0;
}

/* base64 of 64 bytes, in its one canonical spelling, into sig */
static bool sig_decode(const char *s, size_t n, unsigned char *sig)
{
	unsigned char tmp[66];
	char again[PW_AUDIT_SIG_B64 + 1];
	if (n != PW_AUDIT_SIG_B64 || EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n) != 66)
		return false;
	memcpy(sig, tmp, 64);
	EVP_EncodeBlock((unsigned char *)again, sig, 64);
	return memcmp(again, s, n) == 0;
}

/* Does the signature (base64) of a checkpoint verify with key over host, seq, hash? */
static bool sig_ok(EVP_PKEY *key, const char *b64, size_t n, const char *host, uint64_t seq,
                   const char *hash)
{
	unsigned char sig[64];
	char msg[PW_AUDIT_CKPT_MSG];
	size_t ml = pw_audit_ckpt_msg(msg, sizeof(msg), host, seq, hash);
	EVP_MD_CTX *ctx = ml && sig_decode(b64, n, sig) ? EVP_MD_CTX_new() : NULL;
	bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
	          EVP_DigestVerify(ctx, sig, 64, (const unsigned char *)msg, ml) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* A checkpoint's members, checked against the record it is (seq, prev: it must sign the
 * record before it) and, with a key, signed by it. 0, or 1 at the first problem. */
static int check_signed(struct walk *w, const struct vfile *f, uint64_t lineno, json_t *j,
                        uint64_t seq, const char *prev)
{
	json_t *ss = json_object_get(j, "signed_seq"), *sh = json_object_get(j, "signed_hash");
	const char *kid = json_string_value(json_object_get(j, "key_id")),
	           *alg = json_string_value(json_object_get(j, "alg")),
	           *sig = json_string_value(json_object_get(j, "signature")),
	           *host = json_string_value(json_object_get(j, "host"));
	unsigned long long s = seq;
	if (!json_is_integer(ss) || !json_is_string(sh) || !kid || !alg || !sig || !host)
		return fail(w, seq, f, lineno,
		            "checkpoint %llu lacks signed_seq, signed_hash, key_id, alg, "
		            "signature or host",
		            s);
	if ((uint64_t)json_integer_value(ss) != seq - 1 || strcmp(json_string_value(sh), prev))
		return fail(
		    w, seq, f, lineno,
		    "checkpoint %llu does not sign the record before it (it names record "
		    "%lld, hash %.16s...): copied from another trail, or the records before "
		    "it were changed",
		    s, (long long)json_integer_value(ss), json_string_value(sh));
	if (!w->key)
		return 0;
	if (strcmp(kid, w->r->key_id) != 0)
		return fail(
		    w, seq, f, lineno,
		    "checkpoint %llu is not signed by this key (key_id %.40s; this key's is "
		    "%s)",
		    s, kid, w->r->key_id);
	if (strcmp(alg, "ed25519") != 0 ||
	    !sig_ok(w->key, sig, strlen(sig), host, seq - 1, json_string_value(sh)))
		return fail(w, seq, f, lineno,
		            "checkpoint %llu: its signature does not verify: the trail was "
		            "regenerated or edited",
		            s);
	return 0;
}

/* Is the good record in w->buf (len bytes) a checkpoint (*ckpt), and a good one? 0, or 1 at
 * a bad one. Only a line holding "checkpoint" is parsed again: one missed (spelt with \u
 * escapes) signs nothing here, so it can only make the result stricter. */
static int check_checkpoint(struct walk *w, const struct vfile *f, uint64_t lineno, size_t len,
                            uint64_t seq, const char *prev, bool *ckpt)
{
	if (!memmem(w->buf, len, "\"checkpoint\"", 12))
		return 0;
	json_t *j = json_loadb(w->buf, len, 0, NULL);
	const char *type = json_string_value(json_object_get(j, "type"));
	int rc = 0;
	if (type && strcmp(type, "checkpoint") == 0) {
		*ckpt = true;
		rc = check_signed(w, f, lineno, j, seq, prev);
	}
	json_decref(j);
	return rc;
}

/* One line of f (w->buf, len bytes): 0 to go on, 1 when a problem was found. */
static int on_line(struct walk *w, const struct vfile *f, uint64_t lineno, off_t off, size_t len,
                   bool nl)
{
	uint64_t seq;
	char prev[PW_AUDIT_HASH_HEX + 1], hash[PW_AUDIT_HASH_HEX + 1], why[256];
	int bad = pw_audit_check_line(w->buf, len, &seq, prev, hash, why, sizeof(why));
	if (w->gap) {
		/* the gap came first: this line only says what it was */
		if (bad || seq != w->prev_seq + 1)
			return report_missing(w);
		return fail(w, seq, w->gap_file, w->gap_line,
		            "record %llu is out of order (record %llu comes before it): lines "
		            "swapped or moved",
		            (unsigned long long)seq, (unsigned long long)w->gap_seq);
	}
	if (bad)
		return report_bad(w, f, lineno, len, nl, why);
	int rc = w->have_prev ? check_link(w, f, lineno, seq, prev)
	                      : check_start(w, f, lineno, seq, prev);
	bool ckpt = false;
	if (rc || w->gap || (rc = check_checkpoint(w, f, lineno, len, seq, prev, &ckpt)))
		return rc;
	struct pw_audit_verify *r = w->r;
	if (!r->records++)
		r->first_seq = seq;
	r->last_seq = w->prev_seq = seq;
	memcpy(w->prev_hash, hash, sizeof(w->prev_hash));
	w->have_prev = true;
	if (ckpt) {
		r->checkpoints++;
		r->last_checkpoint = seq;
		r->uncovered = 0;
	} else {
		r->uncovered++;
		w->last_file = f;
		w->last_off = off;
	}
	return 0;
}

/* Every line of f: 0 to go on, 1 when a problem was found, -1 on a read error. */
static int walk_file(struct walk *w, const struct vfile *f)
{
	FILE *fp = fopen(f->path, "re");
	struct stat st;
	if (!fp)
		return io_error(w->r, f->path, strerror(errno));
	if (fstat(fileno(fp), &st) < 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
		fclose(fp);
		/* renamed under us: a running pgwardd rotated it; the order found is stale */
		return io_error(w->r, f->path,
		                "replaced while being verified (rotated?): run again");
	}
	uint64_t lineno = 0;
	off_t off = 0;
	size_t len;
	bool nl;
	int got, rc = 0;
	while (rc == 0 && (got = next_line(w, fp, &len, &nl)) > 0) {
		rc = on_line(w, f, ++lineno, off, len, nl);
		off += (off_t)(len + nl);
	}
	if (rc == 0 && got < 0)
		rc = io_error(w->r, f->path, strerror(errno));
	fclose(fp);
	return rc;
}

/* Is the last good record (but the checkpoint signing it) audit_stop? Read again. */
static bool ends_stopped(struct walk *w)
{
	FILE *fp = w->last_file ? fopen(w->last_file->path, "re") : NULL;
	size_t len;
	bool nl, stop = false;
	if (!fp)
		return false;
	if (fseeko(fp, w->last_off, SEEK_SET) == 0 && next_line(w, fp, &len, &nl) > 0) {
		json_t *j = json_loadb(w->buf, len, 0, NULL);
		const char *type = json_string_value(json_object_get(j, "type"));
		stop = type && strcmp(type, "audit_stop") == 0;
		json_decref(j);
	}
	fclose(fp);
	return stop;
}

/* The caller's paths, each file once (a file named twice is read once), in the trail's
 * order. NULL with r->why filled when one cannot be read. */
static struct vfile *order_files(struct walk *w, const char *const *paths, int n, int *nf)
{
	struct vfile *fs = calloc((size_t)(n ? n : 1), sizeof(*fs));
	if (!fs) {
		snprintf(w->r->why, sizeof(w->r->why), "out of memory");
		return NULL;
	}
	*nf = 0;
	for (int i = 0; i < n; i++) {
		struct vfile *f = &fs[*nf];
		f->path = paths[i];
		f->given = i;
		if (probe(w, f, w->r) < 0) {
			free(fs);
			return NULL;
		}
		bool again = false;
		for (int k = 0; k < *nf && !again; k++)
			again = fs[k].dev == f->dev && fs[k].ino == f->ino;
		*nf += !again;
	}
	qsort(fs, (size_t)*nf, sizeof(*fs), by_key);
	return fs;
}

int pw_audit_verify_files(const char *const *paths, int n, bool partial, struct pw_audit_verify *r)
{
	return pw_audit_verify_signed(paths, n, partial, NULL, r);
}

int pw_audit_verify_signed(const char *const *paths, int n, bool partial, EVP_PKEY *key,
                           struct pw_audit_verify *r)
{
	struct walk w = {.r = r, .partial = partial, .key = key};
	int nf, rc = 0;
	memset(r, 0, sizeof(*r));
	r->ok = true;
	if (key && pw_audit_key_id(key, r->key_id) < 0) {
		snprintf(r->why, sizeof(r->why), "the key's public part cannot be read");
		r->ok = false;
		return -1;
	}
	r->keyed = key != NULL;
	struct vfile *fs = order_files(&w, paths, n, &nf);
	if (!fs) {
		free(w.buf);
		return -1;
	}
	r->files = nf;
	for (int i = 0; rc == 0 && i < nf; i++)
		rc = walk_file(&w, &fs[i]);
	if (rc == 0 && w.gap)
		rc = report_missing(&w);
	if (rc == 0 && !r->records)
		rc = fail(&w, partial ? 0 : 1, NULL, 0, "the trail has no records (%s)",
		          nf ? "every file is empty" : "no file given");
	if (rc == 0 && key && !r->checkpoints)
		fail(&w, 0, NULL, 0,
		     "the trail has no checkpoint: none of its records is signed (is "
		     "checkpoint.key_file set?)");
	if (rc >= 0 && w.have_prev)
		memcpy(r->last_hash, w.prev_hash, sizeof(r->last_hash));
	if (rc >= 0 && r->ok)
		r->stopped = ends_stopped(&w);
	free(fs);
	free(w.buf);
	return rc < 0 ? -1 : 0;
}
