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
 * elsewhere cover that. No printing: the caller words the result.
 *
 * Signed checkpoints (docs/audit.md): a "checkpoint" record signs, with Ed25519, the bytes
 *   pgward-audit-checkpoint 1\n<host>\n<signed_seq>\n<signed_hash>\n
 * where signed_seq and signed_hash are the seq and hash of the record just before it. Each
 * checkpoint found is checked: it names the record before it (always), and with a key its
 * key_id is that key's and its signature verifies. A chain an attacker built anew (with
 * pw_audit_line) cannot carry a checkpoint of the real key: a signature signs one hash, and
 * the hash covers every record before it. What is after the last good checkpoint is covered by
 * the chain only (r->uncovered). The key helpers here are shared by the writer (which signs),
 * the configuration reader and pgwardctl audit keygen. */
#ifndef PGWARD_AUDIT_VERIFY_H
#define PGWARD_AUDIT_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "pgward/audit_chain.h"

#define PW_AUDIT_KEY_ID_HEX 32   /* the first 16 bytes of SHA-256 of the raw public key, hex */
#define PW_AUDIT_SIG_B64    88   /* an Ed25519 signature (64 bytes) in base64 */
#define PW_AUDIT_CKPT_MSG   4096 /* room for the bytes a checkpoint signs */

struct pw_audit_verify {
	bool ok; /* the chain holds; else the first problem is in seq, file, line, why */
	/* what was read (up to the problem, if any) */
	int files;                             /* distinct files given */
	uint64_t records;                      /* good records read */
	uint64_t first_seq, last_seq;          /* of the good records (0: none) */
	char last_hash[PW_AUDIT_HASH_HEX + 1]; /* the last good record's ("": none) */
	bool stopped; /* ok and the last record is audit_stop (a clean stop), or a checkpoint
	               * right after it; else still running, killed, or cut */
	/* the first problem */
	uint64_t seq;     /* the record it is about (0: none known) */
	const char *file; /* one of the caller's paths (NULL: the trail as a whole) */
	uint64_t line;    /* in file, from 1 (0: none) */
	char why[1024];   /* in words: "record 57 was edited (its hash does not match its bytes)" */
	/* checkpoints (read up to the problem, if any) */
	bool keyed;                           /* signatures were checked (a key was given) */
	char key_id[PW_AUDIT_KEY_ID_HEX + 1]; /* the given key's */
	uint64_t checkpoints;                 /* good checkpoints read */
	uint64_t last_checkpoint;             /* the seq of the last one (0: none) */
	uint64_t uncovered;                   /* good records after it (all of them: none) */
};

/* Verify the n files of paths as one trail into *r. 0 when every file could be read (r->ok
 * says whether the chain holds), -1 when one could not be opened or read (r->why names it
 * and says why). partial: the trail may start at any record (earlier files are gone). */
int pw_audit_verify_files(const char *const *paths, int n, bool partial, struct pw_audit_verify *r);
/* The same, and with key (an Ed25519 public key; NULL: signatures not checked) every
 * checkpoint's signature; with a key a trail without a good checkpoint fails. */
int pw_audit_verify_signed(const char *const *paths, int n, bool partial, EVP_PKEY *key,
                           struct pw_audit_verify *r);

/* The bytes a checkpoint signs (above), of host (as the record's "host" says it, decoded);
 * their length, or 0 when cap is too small. */
size_t pw_audit_ckpt_msg(char *out, size_t cap, const char *host, uint64_t seq, const char *hash);
/* An Ed25519 key from PEM (n bytes): private (PKCS#8, as `openssl genpkey -algorithm ed25519`
 * writes, not encrypted) or public (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes).
 * NULL with why filled. */
EVP_PKEY *pw_audit_key_parse(const void *pem, size_t n, bool private_key, char *why, size_t whylen);
/* The same from a file; a private key's file must not be readable by group or others. */
EVP_PKEY *pw_audit_key_read(const char *path, bool private_key, char *why, size_t whylen);
/* A key's key_id (hex, PW_AUDIT_KEY_ID_HEX + 1 bytes): 0, or -1. */
int pw_audit_key_id(EVP_PKEY *key, char *hex);

#endif
