/* Unit tests for pw_audit_verify_files (user/audit_verify.c): a trail made with pw_audit_line
 * (audit_start, statements, audit_stop; one record of 3 MiB), in one file and rotated over
 * three, then tampered with in every way the verifier must find, each case checking ok or
 * failed and the exact seq reported (the one an auditor would look at).
 *
 * Signed checkpoints (pw_audit_verify_signed): a trail signed with key A verifies with A, not
 * with B (naming the checkpoint's seq); an edited record is found by the chain; a trail made
 * anew by an attacker (a valid chain from pw_audit_line) fails whether its checkpoints are
 * signed with another key, claim A's key_id, are copied from the real trail (as they were, or
 * with signed_hash fitted to the new chain), carry a changed signature, or are left out; the
 * records after the last checkpoint are counted. The key helpers (PEM parsing, key_id, a
 * private key readable by others refused) and pgwardctl audit keygen and verify --key. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "pgward/audit_chain.h"
#include "pgward/audit_verify.h"
#include "pgward/jw.h"
#include "check.h"

#define N     300 /* records */
#define BIG_K 250 /* the record with a 3 MiB text */
#define BIG   (3u << 20)
#define HOST  "\"host-a\""

/* The trail as lines (newline included), each with the file it goes to. */
struct tline {
	int file;
	char *text;
};

static char hashes[N + 1][PW_AUDIT_HASH_HEX + 1]; /* [0]: the genesis */
static char dir[64];

static char *make_line(uint64_t seq, const char *prev, const char *body, char *hash)
{
	struct pw_jw w;
	char h[PW_AUDIT_HASH_HEX + 1];
	pw_jw_init(&w, 0);
	if (pw_audit_line(&w, seq, HOST, 4242, body, strlen(body), prev, hash ? hash : h) < 0)
		abort();
	char *s = strndup(w.p, w.len);
	pw_jw_free(&w);
	return s;
}

static char *body_of(int k)
{
	static char *big;
	char *b = malloc(BIG + 256);
	const char *type = k == 1 ? "audit_start" : k == N ? "audit_stop" : "statement";
	if (k == BIG_K && !big) {
		big = malloc(BIG + 1);
		memset(big, 'x', BIG);
		big[BIG] = 0;
	}
	snprintf(b, BIG + 256,
	         "\"ts\":\"2026-12-01T00:00:00.000000Z\",\"type\":\"%s\",\"session\":1,"
	         "\"text\":\"select %d%s\"",
	         type, k, k == BIG_K ? big : "");
	return b;
}

/* records 1..N; rotated: 1..100, 101..200, 201..N in files 0, 1, 2 */
static void make_trail(struct tline *t, bool rotated)
{
	memcpy(hashes[0], PW_AUDIT_GENESIS, sizeof(hashes[0]));
	for (int k = 1; k <= N; k++) {
		char *b = body_of(k);
		t[k - 1].text = make_line((uint64_t)k, hashes[k - 1], b, hashes[k]);
		t[k - 1].file = rotated ? (k - 1) / 100 : 0;
		free(b);
	}
}

static const char *file_name(int f, int nfiles)
{
	static char name[4][128];
	static const int first[] = {1, 101, 201};
	if (f == nfiles - 1)
		snprintf(name[f], sizeof(name[f]), "%s/audit.jsonl", dir);
	else
		snprintf(name[f], sizeof(name[f]), "%s/audit.jsonl.%016d", dir, first[f]);
	return name[f];
}

enum mut {
	M_NONE,
	M_BODY,      /* a byte of record k's body */
	M_PREV,      /* of its prev */
	M_HASH,      /* of its hash */
	M_SEQ,       /* of its seq */
	M_DELETE,    /* line k */
	M_INSERT,    /* a forged line, hashed right, chained to k-1, before k */
	M_SWAP,      /* lines k and k+1 */
	M_CUT,       /* the last line of file k cut in its middle */
	M_CUT_LINES, /* the last k lines gone */
	M_DUPKEY,    /* record k rewritten, hashed right, with "type" twice */
	M_NOTJSON,   /* line k: text */
	M_BADBODY,   /* record k rewritten, hashed right, with a body that is not JSON */
	M_GENESIS,   /* record 1 rewritten with a prev that is not the genesis */
	M_EMPTY,     /* a fourth file, empty: the current one just after a rotation */
	M_TWICE,     /* the middle file named twice */
	M_COPY,      /* and a copy of it given too */
};

/* Edit one byte of line k at the first place after what (what itself kept). */
static void flip_after(struct tline *t, int k, const char *what)
{
	char *p = strstr(t[k - 1].text, what);
	if (!p)
		abort();
	p += strlen(what);
	*p = *p == '1' ? '2' : '1';
}

/* Apply m (parameter k) to the trail of n lines; returns the new count. */
static int mutate(struct tline *t, int n, enum mut m, int k)
{
	char *b;
	switch (m) {
	case M_BODY:
		flip_after(t, k, "select ");
		break;
	case M_PREV:
		flip_after(t, k, "\"prev\":\"");
		break;
	case M_HASH:
		flip_after(t, k, "\"hash\":\"");
		break;
	case M_SEQ:
		flip_after(t, k, "\"seq\":");
		break;
	case M_DELETE:
		free(t[k - 1].text);
		memmove(&t[k - 1], &t[k], sizeof(*t) * (size_t)(n - k));
		return n - 1;
	case M_INSERT:
		memmove(&t[k], &t[k - 1], sizeof(*t) * (size_t)(n - k + 1));
		t[k - 1].text = make_line((uint64_t)k, hashes[k - 1],
		                          "\"ts\":\"2026-12-01T00:00:00.000000Z\",\"type\":"
		                          "\"statement\",\"session\":1,\"text\":\"forged\"",
		                          NULL);
		return n + 1;
	case M_SWAP: {
		char *x = t[k - 1].text;
		t[k - 1].text = t[k].text;
		t[k].text = x;
		break;
	}
	case M_CUT:
		for (int i = n - 1; i >= 0; i--)
			if (t[i].file == k) {
				t[i].text[strlen(t[i].text) / 2] = 0;
				break;
			}
		break;
	case M_CUT_LINES:
		for (int i = n - k; i < n; i++)
			free(t[i].text);
		return n - k;
	case M_DUPKEY:
	case M_BADBODY:
		b = m == M_DUPKEY ? "\"ts\":\"2026-12-01T00:00:00.000000Z\",\"type\":\"statement\","
		                    "\"type\":\"audit_stop\""
		                  : "\"ts\":\"2026-12-01T00:00:00.000000Z\",\"type\":\"x\",oops";
		free(t[k - 1].text);
		t[k - 1].text = make_line((uint64_t)k, hashes[k - 1], b, NULL);
		break;
	case M_NOTJSON:
		free(t[k - 1].text);
		t[k - 1].text = strdup("hello, auditor\n");
		break;
	case M_GENESIS:
		free(t[0].text);
		b = body_of(1);
		t[0].text = make_line(1, hashes[5], b, NULL);
		free(b);
		break;
	default:
		break;
	}
	return n;
}

struct vcase {
	const char *name;
	int files; /* 1, or 3 (rotated) */
	enum mut m;
	int k;
	int drop;  /* file drop-1 gone (0: none) */
	int order; /* paths: 0 oldest first, 1 as a glob has them (current first), 2 reversed */
	bool partial;
	bool ok;
	uint64_t seq;     /* failed: the seq reported; ok: the first seq */
	const char *says; /* failed: in why */
};

static const struct vcase cases[] = {
    {"intact", 1, M_NONE, 0, 0, 0, false, true, 1, NULL},
    {"intact, rotated", 3, M_NONE, 0, 0, 0, false, true, 1, NULL},
    {"rotated, in a glob's order", 3, M_NONE, 0, 0, 1, false, true, 1, NULL},
    {"rotated, reversed", 3, M_NONE, 0, 0, 2, false, true, 1, NULL},
    {"an empty current file after a rotation", 3, M_EMPTY, 0, 0, 1, false, true, 1, NULL},
    {"a file named twice", 3, M_TWICE, 0, 0, 0, false, true, 1, NULL},
    {"a copy of a file given too", 3, M_COPY, 0, 0, 0, false, false, 201,
     "record 201 is not next (found 101 after 200"},
    {"a byte of the body", 1, M_BODY, 57, 0, 0, false, false, 57, "record 57 was edited"},
    {"a byte of prev", 1, M_PREV, 57, 0, 0, false, false, 57, "record 57 was edited"},
    {"a byte of hash", 1, M_HASH, 57, 0, 0, false, false, 57, "record 57 was edited"},
    {"a byte of seq", 1, M_SEQ, 57, 0, 0, false, false, 57, "record 57 was edited"},
    {"a byte of the first record", 1, M_BODY, 1, 0, 0, false, false, 1, "record 1 was edited"},
    {"a byte of the last record", 1, M_BODY, N, 0, 0, false, false, N, "was edited"},
    {"a byte of a rotated file's first record", 3, M_BODY, 101, 0, 1, false, false, 101,
     "record 101 was edited"},
    {"the seq of a rotated file's first record", 3, M_SEQ, 101, 0, 1, false, false, 101,
     "record 101 was edited"},
    {"a line deleted", 1, M_DELETE, 57, 0, 0, false, false, 57,
     "record 57 is missing (found 58 after 56)"},
    {"the first line deleted", 1, M_DELETE, 1, 0, 0, false, false, 1, "does not start at record 1"},
    {"a rotated file's first line deleted", 3, M_DELETE, 101, 0, 2, false, false, 101,
     "a file is missing"},
    {"a forged line inserted", 1, M_INSERT, 57, 0, 0, false, false, 57, "record 57 appears twice"},
    {"a forged line inserted first", 1, M_INSERT, 1, 0, 0, false, false, 1,
     "record 1 appears twice"},
    {"two lines swapped", 1, M_SWAP, 57, 0, 0, false, false, 57, "record 57 is out of order"},
    {"the last two lines swapped", 1, M_SWAP, N - 1, 0, 0, false, false, N - 1, "out of order"},
    {"the last line cut mid-record", 1, M_CUT, 0, 0, 0, false, false, N,
     "is cut (truncated mid-record) after record 299"},
    {"a rotated file's last line cut", 3, M_CUT, 1, 0, 1, false, false, 200, "after record 199"},
    {"whole last lines cut (not visible: no audit_stop says so)", 1, M_CUT_LINES, 5, 0, 0, false,
     true, 1, NULL},
    {"the middle file dropped", 3, M_NONE, 0, 2, 1, false, false, 101,
     "records 101..200 are missing (found 201 after 100)"},
    {"the first file dropped", 3, M_NONE, 0, 1, 1, false, false, 1,
     "does not start at record 1 (starts at 101)"},
    {"the first file dropped, --partial", 3, M_NONE, 0, 1, 1, true, true, 101, NULL},
    {"the first file dropped, --partial, then one edited", 3, M_BODY, 150, 1, 1, true, false, 150,
     "record 150 was edited"},
    {"a key twice", 1, M_DUPKEY, 57, 0, 0, false, false, 57,
     "record 57 is damaged (not one JSON object: duplicate"},
    {"not JSON", 1, M_NOTJSON, 57, 0, 0, false, false, 57, "no hash at its end"},
    {"not JSON, hashed right", 1, M_BADBODY, 57, 0, 0, false, false, 57, "not one JSON object"},
    {"record 1 not chained to the genesis", 1, M_GENESIS, 0, 0, 0, false, false, 1,
     "record 1 does not start a trail"},
};

/* Write the files of a case; paths in the case's order; returns how many. */
static int write_files(const struct vcase *c, struct tline *t, int n, const char **paths)
{
	int np = 0, nfiles = c->files + (c->m == M_EMPTY);
	for (int f = 0; f < nfiles; f++) {
		const char *name = file_name(f, nfiles);
		unlink(name);
		if (c->drop == f + 1)
			continue;
		FILE *fp = fopen(name, "w");
		for (int i = 0; i < n; i++)
			if (t[i].file == f)
				fputs(t[i].text, fp);
		fclose(fp);
		paths[np++] = name;
	}
	if (c->m == M_TWICE)
		paths[np++] = paths[1];
	if (c->m == M_COPY) {
		static char copy[128];
		snprintf(copy, sizeof(copy), "%s/audit.jsonl.copy", dir);
		FILE *fp = fopen(copy, "w");
		for (int i = 0; i < n; i++)
			if (t[i].file == 1)
				fputs(t[i].text, fp);
		fclose(fp);
		paths[np++] = copy;
	}
	for (int i = 0; c->order == 2 && i < np / 2; i++) {
		const char *x = paths[i];
		paths[i] = paths[np - 1 - i];
		paths[np - 1 - i] = x;
	}
	if (c->order == 1) { /* audit.jsonl sorts before audit.jsonl.0000... */
		const char *cur = paths[np - 1];
		memmove(paths + 1, paths, sizeof(*paths) * (size_t)(np - 1));
		paths[0] = cur;
	}
	return np;
}

static void run_case(const struct vcase *c)
{
	struct tline *t = calloc(N + 2, sizeof(*t));
	const char *paths[8];
	struct pw_audit_verify r;
	make_trail(t, c->files == 3);
	int n = mutate(t, N, c->m, c->k);
	int np = write_files(c, t, n, paths);
	int rc = pw_audit_verify_files(paths, np, c->partial, &r);
	if (c->ok) {
		int cut = c->m == M_CUT_LINES ? c->k : 0;
		CHECK(rc == 0 && r.ok && r.first_seq == c->seq &&
		          r.last_seq == (uint64_t)(N - cut) && r.records == N - cut - c->seq + 1 &&
		          r.stopped == !cut && strcmp(r.last_hash, hashes[N - cut]) == 0 &&
		          r.files == c->files + (c->m == M_EMPTY) - (c->drop > 0),
		      "%s: ok, records %llu..%llu, %d files%s (%s)", c->name,
		      (unsigned long long)r.first_seq, (unsigned long long)r.last_seq, r.files,
		      r.stopped ? ", stopped" : "", r.ok ? "" : r.why);
	} else {
		CHECK(rc == 0 && !r.ok && r.seq == c->seq && strstr(r.why, c->says) && r.file &&
		          r.line > 0,
		      "%s: failed at record %llu (%s:%llu): %s", c->name, (unsigned long long)r.seq,
		      r.file ? r.file : "-", (unsigned long long)r.line, r.why);
	}
	for (int i = 0; i < n; i++)
		free(t[i].text);
	free(t);
}

/* What cannot be read is an error, not a result. */
static void test_unreadable(void)
{
	struct pw_audit_verify r;
	const char *paths[] = {"/nonexistent/audit.jsonl"};
	CHECK(pw_audit_verify_files(paths, 1, false, &r) < 0 && strstr(r.why, "No such file"),
	      "a missing file is an error: %s", r.why);
	paths[0] = dir;
	CHECK(pw_audit_verify_files(paths, 1, false, &r) < 0 && strstr(r.why, "not a regular"),
	      "a directory is an error: %s", r.why);
	char empty[128];
	snprintf(empty, sizeof(empty), "%s/empty.jsonl", dir);
	fclose(fopen(empty, "w"));
	paths[0] = empty;
	CHECK(pw_audit_verify_files(paths, 1, false, &r) == 0 && !r.ok && r.seq == 1 &&
	          strstr(r.why, "no records"),
	      "an empty trail is no trail: %s", r.why);
	unlink(empty);
}

/* ---- signed checkpoints ---- */

#define S_RECORDS 200 /* ordinary records */
#define S_EVERY   50  /* a checkpoint after every 50 */
#define S_TAIL    7   /* records after the last checkpoint */
#define S_EDIT    120 /* the record an attacker changes */

static EVP_PKEY *key_a, *key_b;
static char id_a[PW_AUDIT_KEY_ID_HEX + 1], id_b[PW_AUDIT_KEY_ID_HEX + 1];
/* the real trail's checkpoints: what they sign and their signatures */
static uint64_t real_seq[16];
static char real_hash[16][PW_AUDIT_HASH_HEX + 1], real_sig[16][PW_AUDIT_SIG_B64 + 1];

enum regen {
	G_NONE,
	G_OTHER,    /* checkpoints past the edit signed with B */
	G_CLAIM,    /* signed with B, carrying A's key_id */
	G_COPY,     /* copied from the real trail as they were */
	G_COPY_FIT, /* copied, signed_seq and signed_hash fitted to the new chain */
	G_STRIP,    /* no checkpoint at all */
	G_SIG_BYTE, /* the first checkpoint's signature changed, the chain made again */
	G_SEQ,      /* the first checkpoint's signed_seq one less, the chain made again */
	G_NO_ALG,   /* the first checkpoint without alg, the chain made again */
};

struct sopts {
	int edit;  /* the ordinary record whose text changes (0: none) */
	bool tail; /* S_TAIL records after the last checkpoint */
	bool stop; /* audit_stop, then a checkpoint, at the end */
	enum regen how;
	bool real; /* the real trail: remember its checkpoints */
};

static void sign_b64(EVP_PKEY *k, uint64_t seq, const char *hash, char *out)
{
	char msg[PW_AUDIT_CKPT_MSG];
	unsigned char sig[64];
	size_t n = pw_audit_ckpt_msg(msg, sizeof(msg), "host-a", seq, hash), sl = sizeof(sig);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!n || EVP_DigestSignInit(c, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(c, sig, &sl, (unsigned char *)msg, n) != 1)
		abort();
	EVP_MD_CTX_free(c);
	EVP_EncodeBlock((unsigned char *)out, sig, 64);
}

/* checkpoint number c (from 0) of a trail being built: after record seq with hash prev */
static char *ckpt_body(const struct sopts *o, int c, bool past, uint64_t seq, const char *prev)
{
	char sig[PW_AUDIT_SIG_B64 + 1], *b = malloc(1024);
	uint64_t sseq = seq;
	const char *shash = prev, *id = id_a;
	EVP_PKEY *k = past && (o->how == G_OTHER || o->how == G_CLAIM) ? key_b : key_a;
	if (k == key_b && o->how == G_OTHER)
		id = id_b;
	sign_b64(k, seq, prev, sig);
	if (past && (o->how == G_COPY || o->how == G_COPY_FIT)) {
		memcpy(sig, real_sig[c], sizeof(sig));
		if (o->how == G_COPY) {
			sseq = real_seq[c];
			shash = real_hash[c];
		}
	}
	bool first = c == 0;
	if (first && o->how == G_SIG_BYTE)
		sig[10] = sig[10] == 'A' ? 'B' : 'A';
	if (first && o->how == G_SEQ)
		sseq--;
	snprintf(
	    b, 1024,
	    "\"ts\":\"2026-12-01T00:00:00.000000Z\",\"type\":\"checkpoint\",\"signed_seq\":%llu,"
	    "\"signed_hash\":\"%s\",\"key_id\":\"%s\"%s,\"signature\":\"%s\"",
	    (unsigned long long)sseq, shash, id,
	    first && o->how == G_NO_ALG ? "" : ",\"alg\":\"ed25519\"", sig);
	if (o->real) {
		real_seq[c] = seq;
		memcpy(real_hash[c], prev, sizeof(real_hash[c]));
		memcpy(real_sig[c], sig, sizeof(real_sig[c]));
	}
	return b;
}

/* The trail of o into dir/signed.jsonl; its records' count. */
static uint64_t build_signed(const struct sopts *o, const char *path)
{
	char prev[PW_AUDIT_HASH_HEX + 1], hash[PW_AUDIT_HASH_HEX + 1], body[512];
	struct pw_jw w;
	uint64_t seq = 0;
	int c = 0, n = S_RECORDS + (o->tail ? S_TAIL : 0);
	bool past = false;
	memcpy(prev, PW_AUDIT_GENESIS, sizeof(prev));
	pw_jw_init(&w, 0);
	for (int i = 1; i <= n + (o->stop ? 1 : 0); i++) {
		past |= o->edit && i >= o->edit;
		snprintf(body, sizeof(body),
		         "\"ts\":\"2026-12-01T00:00:00.000000Z\",\"type\":\"%s\",\"session\":1,"
		         "\"text\":\"select %d%s\"",
		         i == 1  ? "audit_start"
		         : i > n ? "audit_stop"
		                 : "statement",
		         i, i == o->edit ? " -- changed" : "");
		if (pw_audit_line(&w, ++seq, HOST, 4242, body, strlen(body), prev, hash) < 0)
			abort();
		memcpy(prev, hash, sizeof(prev));
		bool ck = (i <= S_RECORDS && i % S_EVERY == 0) || i > n;
		if (!ck || o->how == G_STRIP)
			continue;
		char *b = ckpt_body(o, c++, past, seq, prev);
		if (pw_audit_line(&w, ++seq, HOST, 4242, b, strlen(b), prev, hash) < 0)
			abort();
		memcpy(prev, hash, sizeof(prev));
		free(b);
	}
	FILE *fp = fopen(path, "w");
	fwrite(w.p, 1, w.len, fp);
	fclose(fp);
	pw_jw_free(&w);
	return seq;
}

static void test_signed(void)
{
	char path[128];
	struct pw_audit_verify r;
	const char *paths[] = {path};
	snprintf(path, sizeof(path), "%s/signed.jsonl", dir);
	/* the real trail: checkpoints at 51, 102, 153, 204, then 7 records (205..211) */
	struct sopts real = {.tail = true, .real = true};
	uint64_t n = build_signed(&real, path);
	int rc = pw_audit_verify_signed(paths, 1, false, key_a, &r);
	CHECK(rc == 0 && r.ok && r.keyed && r.checkpoints == 4 && r.last_checkpoint == 204 &&
	          r.uncovered == S_TAIL && n == 211 && strcmp(r.key_id, id_a) == 0,
	      "signed with A, verified with A: ok, 4 checkpoints, the last at 204 (%llu), %llu "
	      "records after it (%s)",
	      (unsigned long long)r.last_checkpoint, (unsigned long long)r.uncovered,
	      r.ok ? "" : r.why);
	rc = pw_audit_verify_signed(paths, 1, false, NULL, &r);
	CHECK(rc == 0 && r.ok && !r.keyed && r.checkpoints == 4 && r.uncovered == S_TAIL,
	      "without a key: ok, checkpoints counted (and their links checked), not their "
	      "signatures");
	rc = pw_audit_verify_files(paths, 1, false, &r);
	CHECK(rc == 0 && r.ok && r.checkpoints == 4, "pw_audit_verify_files: the same, unkeyed");
	rc = pw_audit_verify_signed(paths, 1, false, key_b, &r);
	CHECK(rc == 0 && !r.ok && r.seq == 51 && r.line == 51 &&
	          strstr(r.why, "checkpoint 51 is not signed by this key") && strstr(r.why, id_a),
	      "verified with B: fails at checkpoint 51 naming its key_id: %s", r.why);

	struct sopts stop = {.stop = true};
	build_signed(&stop, path);
	rc = pw_audit_verify_signed(paths, 1, false, key_a, &r);
	CHECK(rc == 0 && r.ok && r.stopped && r.uncovered == 0 && r.checkpoints == 5,
	      "audit_stop, then a checkpoint: ok, stopped, every record covered (%s)",
	      r.ok ? "" : r.why);

	/* an edited record (not rehashed): the chain finds it */
	build_signed(&real, path);
	FILE *fp = fopen(path, "r+");
	char *line = NULL;
	size_t cap = 0;
	long off = 0;
	for (int i = 1; i <= 122; i++) { /* record 120 is line 122 (two checkpoints before) */
		off = ftell(fp);
		if (getline(&line, &cap, fp) < 0)
			break;
	}
	char *p = strstr(line, "select 120");
	if (p) {
		fseek(fp, off + (p - line) + 7, SEEK_SET);
		fputc('9', fp);
	}
	fclose(fp);
	free(line);
	rc = pw_audit_verify_signed(paths, 1, false, key_a, &r);
	CHECK(p && rc == 0 && !r.ok && r.seq == 122 && strstr(r.why, "record 122 was edited"),
	      "a record edited before a checkpoint: the chain fails at it: %s", r.why);

	/* the trail made anew from record 120 on (a valid chain), the attacker's checkpoints */
	static const struct {
		enum regen how;
		int edit;
		uint64_t seq;
		const char *says;
		const char *name;
	} regen[] = {
	    {G_OTHER, S_EDIT, 153, "checkpoint 153 is not signed by this key", "signed with B"},
	    {G_CLAIM, S_EDIT, 153, "checkpoint 153: its signature does not verify",
	     "signed with B, A's key_id"},
	    {G_COPY, S_EDIT, 153, "checkpoint 153 does not sign the record before it",
	     "checkpoints copied from the real trail"},
	    {G_COPY_FIT, S_EDIT, 153, "checkpoint 153: its signature does not verify",
	     "copied, signed_hash fitted to the new chain"},
	    {G_OTHER, 1, 51, "checkpoint 51 is not signed by this key", "all of it, signed with B"},
	    {G_SIG_BYTE, 0, 51, "checkpoint 51: its signature does not verify",
	     "a byte of a signature changed, the chain made again"},
	    {G_SEQ, 0, 51, "checkpoint 51 does not sign the record before it",
	     "signed_seq changed, the chain made again"},
	    {G_NO_ALG, 0, 51, "checkpoint 51 lacks", "a checkpoint without alg"},
	};
	for (size_t i = 0; i < sizeof(regen) / sizeof(regen[0]); i++) {
		struct sopts o = {.edit = regen[i].edit, .tail = true, .how = regen[i].how};
		build_signed(&o, path);
		struct pw_audit_verify u;
		int urc = pw_audit_verify_files(paths, 1, false, &u);
		rc = pw_audit_verify_signed(paths, 1, false, key_a, &r);
		CHECK(rc == 0 && !r.ok && r.seq == regen[i].seq && strstr(r.why, regen[i].says),
		      "regenerated, %s: fails at %llu: %s", regen[i].name,
		      (unsigned long long)r.seq, r.why);
		if (regen[i].how == G_OTHER || regen[i].how == G_CLAIM ||
		    regen[i].how == G_COPY_FIT || regen[i].how == G_SIG_BYTE)
			CHECK(urc == 0 && u.ok, "  (%s: a valid chain: only the key finds it)",
			      regen[i].name);
	}
	struct sopts strip = {.edit = S_EDIT, .tail = true, .how = G_STRIP};
	build_signed(&strip, path);
	rc = pw_audit_verify_signed(paths, 1, false, key_a, &r);
	CHECK(rc == 0 && !r.ok && strstr(r.why, "no checkpoint"),
	      "regenerated without checkpoints: with a key, no checkpoint fails: %s", r.why);
	rc = pw_audit_verify_signed(paths, 1, false, NULL, &r);
	CHECK(rc == 0 && r.ok && r.checkpoints == 0 && r.uncovered == n - 4,
	      "  without a key it is a valid chain, %llu records uncovered",
	      (unsigned long long)r.uncovered);
	unlink(path);
}

/* ---- keys ---- */

static void write_file(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		abort();
	fchmod(fd, mode);
	close(fd);
}

static char *pem_of(EVP_PKEY *k, bool priv)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *s;
	if (priv)
		PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_bio_PUBKEY(b, k);
	long n = BIO_get_mem_data(b, &p);
	s = strndup(p, (size_t)n);
	BIO_free(b);
	return s;
}

static void test_keys(void)
{
	char path[128], why[256];
	char *priv = pem_of(key_a, true), *pub = pem_of(key_a, false);
	snprintf(path, sizeof(path), "%s/a.key", dir);
	write_file(path, priv, 0600);
	EVP_PKEY *k = pw_audit_key_read(path, true, why, sizeof(why));
	char id[PW_AUDIT_KEY_ID_HEX + 1] = "";
	CHECK(k && pw_audit_key_id(k, id) == 0 && strcmp(id, id_a) == 0 && strlen(id) == 32,
	      "a private key (PKCS#8 PEM, 0600) read, its key_id %s", id);
	EVP_PKEY_free(k);
	chmod(path, 0640);
	k = pw_audit_key_read(path, true, why, sizeof(why));
	CHECK(!k && strstr(why, "readable by others (mode 0640)"),
	      "a private key readable by the group: refused (%s)", why);
	EVP_PKEY_free(k);
	k = pw_audit_key_read(path, false, why, sizeof(why));
	CHECK(!k && strstr(why, "a private one"), "a private key as the public one: %s", why);
	EVP_PKEY_free(k);
	unlink(path);
	k = pw_audit_key_parse(pub, strlen(pub), false, why, sizeof(why));
	CHECK(k && pw_audit_key_id(k, id) == 0 && strcmp(id, id_a) == 0,
	      "its public key (SubjectPublicKeyInfo PEM): the same key_id");
	EVP_PKEY_free(k);
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char *ecpem = pem_of(ec, false);
	k = pw_audit_key_parse(ecpem, strlen(ecpem), false, why, sizeof(why));
	CHECK(!k && strstr(why, "not an Ed25519 key"), "an EC key: %s", why);
	k = pw_audit_key_parse("hello", 5, true, why, sizeof(why));
	CHECK(!k && strstr(why, "not a PEM private key"), "not PEM: %s", why);
	char msg[PW_AUDIT_CKPT_MSG];
	size_t n = pw_audit_ckpt_msg(msg, sizeof(msg), "h", 7, "ab");
	CHECK(n && strcmp(msg, "pgward-audit-checkpoint 1\nh\n7\nab\n") == 0,
	      "the signed bytes: pgward-audit-checkpoint 1, host, seq, hash, one a line");
	EVP_PKEY_free(ec);
	free(ecpem);
	free(priv);
	free(pub);
}

/* ---- pgwardctl audit keygen, verify --key ---- */

/* cmd's exit code, its stdout into out (cap bytes) */
static int run(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	size_t n = p ? fread(out, 1, cap - 1, p) : 0;
	out[n] = 0;
	int st = p ? pclose(p) : -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* out on one line, for the TAP output */
static const char *one_line(const char *out)
{
	static char b[8192];
	snprintf(b, sizeof(b), "%s", out);
	for (char *c = b; *c; c++)
		*c = *c == '\n' ? '|' : *c;
	return b;
}

static void test_ctl(void)
{
	char ctl[PATH_MAX], self[PATH_MAX], cmd[PATH_MAX + 512], out[8192], key[128], pub[128],
	    path[128];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[sl > 0 ? sl : 0] = 0;
	snprintf(ctl, sizeof(ctl), "%s/../pgwardctl", dirname(self));
	if (access(ctl, X_OK) != 0) {
		CHECK_SKIP("no pgwardctl next to the tests",
		           "pgwardctl audit keygen and verify --key");
		return;
	}
	snprintf(key, sizeof(key), "%s/new.key", dir);
	snprintf(pub, sizeof(pub), "%s/new.pub", dir);
	snprintf(path, sizeof(path), "%s/signed.jsonl", dir);
	snprintf(cmd, sizeof(cmd), "%s audit keygen --out %s 2>/dev/null", ctl, key);
	int rc = run(cmd, out, sizeof(out));
	struct stat st;
	char why[256];
	EVP_PKEY *kp = pw_audit_key_read(key, true, why, sizeof(why));
	EVP_PKEY *ku = pw_audit_key_parse(out, strlen(out), false, why, sizeof(why));
	char i1[PW_AUDIT_KEY_ID_HEX + 1] = "1", i2[PW_AUDIT_KEY_ID_HEX + 1] = "2";
	if (kp)
		pw_audit_key_id(kp, i1);
	if (ku)
		pw_audit_key_id(ku, i2);
	CHECK(rc == 0 && stat(key, &st) == 0 && (st.st_mode & 0777) == 0600 && kp && ku &&
	          strcmp(i1, i2) == 0 && strncmp(out, "-----BEGIN PUBLIC KEY-----", 26) == 0,
	      "keygen --out: a private key 0600, its public key PEM on stdout (key_id %s)", i1);
	write_file(pub, out, 0644);
	rc = run(cmd, out, sizeof(out));
	EVP_PKEY *again = pw_audit_key_read(key, true, why, sizeof(why));
	char i3[PW_AUDIT_KEY_ID_HEX + 1] = "3";
	if (again)
		pw_audit_key_id(again, i3);
	CHECK(rc == 1 && strcmp(i1, i3) == 0, "keygen over an existing file: refused, it is kept");
	/* a trail signed with that key, verified through the command */
	EVP_PKEY *saved = key_a;
	key_a = kp;
	memcpy(id_a, i1, sizeof(id_a));
	struct sopts real = {.tail = true, .real = true};
	build_signed(&real, path);
	snprintf(cmd, sizeof(cmd), "%s audit verify --key %s %s", ctl, pub, path);
	rc = run(cmd, out, sizeof(out));
	CHECK(rc == 0 && strstr(out, "4 checkpoints, the last at record 204, signed by this key") &&
	          strstr(out, "7 records after it not covered"),
	      "verify --key: ok, %s", one_line(out));
	struct sopts b = {.tail = true, .edit = 1, .how = G_OTHER};
	build_signed(&b, path);
	rc = run(cmd, out, sizeof(out));
	CHECK(rc == 1 && strstr(out, "FAILED at record 51") &&
	          strstr(out, "checkpoint 51 is not signed by this key"),
	      "verify --key, a trail signed with another key: %s", one_line(out));
	key_a = saved;
	pw_audit_key_id(key_a, id_a);
	EVP_PKEY_free(kp);
	EVP_PKEY_free(ku);
	EVP_PKEY_free(again);
	unlink(key);
	unlink(pub);
	unlink(path);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pw_audit_verify.XXXXXX");
	if (!mkdtemp(dir))
		return check_skip_all("no temporary directory");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_unreadable();
	key_a = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	key_b = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key_a || !key_b || pw_audit_key_id(key_a, id_a) < 0 ||
	    pw_audit_key_id(key_b, id_b) < 0)
		return check_skip_all("no Ed25519 in OpenSSL");
	test_signed();
	test_keys();
	test_ctl();
	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_b);
	for (int nfiles = 1; nfiles <= 4; nfiles++)
		for (int f = 0; f < nfiles; f++)
			unlink(file_name(f, nfiles));
	char copy[128];
	snprintf(copy, sizeof(copy), "%s/audit.jsonl.copy", dir);
	unlink(copy);
	rmdir(dir);
	return check_done();
}
