/* Unit tests for pw_audit_verify_files (user/audit_verify.c): a trail made with pw_audit_line
 * (audit_start, statements, audit_stop; one record of 3 MiB), in one file and rotated over
 * three, then tampered with in every way the verifier must find, each case checking ok or
 * failed and the exact seq reported (the one an auditor would look at). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pw_audit_verify.XXXXXX");
	if (!mkdtemp(dir))
		return check_skip_all("no temporary directory");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_unreadable();
	for (int nfiles = 1; nfiles <= 4; nfiles++)
		for (int f = 0; f < nfiles; f++)
			unlink(file_name(f, nfiles));
	char copy[128];
	snprintf(copy, sizeof(copy), "%s/audit.jsonl.copy", dir);
	unlink(copy);
	rmdir(dir);
	return check_done();
}
