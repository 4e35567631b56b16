/* Verifying the audit trail (docs/audit.md) as one chain over its files: the current file
 * and the rotated FILE.<seq> ones, given in any order. Each file is put in its place by its
 * first record's seq, then every line is read in order (streamed: a line may be MiBs, a file
 * GiBs) and checked: its own form and hash (pw_audit_check_line), seq one more than the
 * record before, prev naming that record's hash, and a trail that starts at record 1 with
 * prev the genesis (unless partial: then its first record is taken on trust, the anchor).
 *
 * The first problem is reported at the seq an auditor would look for: an edited record at
 * its own seq; a deleted line, or a missing file, at the first missing seq; an inserted or a
 * swapped line at the position it took; a cut last line at the seq it would have had. What
 * cannot be seen here: whole lines cut from the end of the trail (the chain before them is
 * intact). audit_stop (a clean stop, told in stopped) and a copy of the last hash kept
 * elsewhere cover that. No printing: the caller words the result. */
#ifndef PGWARD_AUDIT_VERIFY_H
#define PGWARD_AUDIT_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/audit_chain.h"

struct pw_audit_verify {
	bool ok; /* the chain holds; else the first problem is in seq, file, line, why */
	/* what was read (up to the problem, if any) */
	int files;                             /* distinct files given */
	uint64_t records;                      /* good records read */
	uint64_t first_seq, last_seq;          /* of the good records (0: none) */
	char last_hash[PW_AUDIT_HASH_HEX + 1]; /* the last good record's ("": none) */
	bool stopped; /* ok and the last record is audit_stop (a clean stop); else still running,
	               * killed, or cut */
	/* the first problem */
	uint64_t seq;     /* the record it is about (0: none known) */
	const char *file; /* one of the caller's paths (NULL: the trail as a whole) */
	uint64_t line;    /* in file, from 1 (0: none) */
	char why[1024];   /* in words: "record 57 was edited (its hash does not match its bytes)" */
};

/* Verify the n files of paths as one trail into *r. 0 when every file could be read (r->ok
 * says whether the chain holds), -1 when one could not be opened or read (r->why names it
 * and says why). partial: the trail may start at any record (earlier files are gone). */
int pw_audit_verify_files(const char *const *paths, int n, bool partial, struct pw_audit_verify *r);

#endif
