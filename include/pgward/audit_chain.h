/* The audit trail's chain (docs/audit.md), pure: how pgwardd's writer makes one line of the
 * trail from a record's body, and how a verifier checks one line. A line is
 *   {"v":1,"seq":N,"host":"…","pid":P,<body>,"prev":"<64 hex>","hash":"<64 hex>"}\n
 * where body is the record's own members ("ts", "type", then the type's fields), prev is the
 * hash of the record before it (64 zeros before the first record of a trail) and hash is the
 * SHA-256, in lowercase hex, of the line's bytes from its "{" up to and including prev's
 * closing quote. So each hash covers the record and, through prev, every record before it. */
#ifndef PGWARD_AUDIT_CHAIN_H
#define PGWARD_AUDIT_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/jw.h"

#define PW_AUDIT_VERSION  1
#define PW_AUDIT_HASH_HEX 64
#define PW_AUDIT_GENESIS  "0000000000000000000000000000000000000000000000000000000000000000"

/* Append one line (newline included) to out: seq, host (a JSON string, quotes included, as
 * written by pw_jw), pid, the body's blen bytes and prev; the line's hash into hash (65
 * bytes: hex and NUL). -1 when memory or the digest failed (out is left as it was). */
int pw_audit_line(struct pw_jw *out, uint64_t seq, const char *host_json, long pid,
                  const char *body, size_t blen, const char *prev, char *hash);

/* Check one line (len bytes, without its newline): its form, its hash over its own bytes,
 * that it is one JSON object with no key twice, version 1, and a seq. Fills *seq, prev and
 * hash (65 bytes each) and returns 0; or -1 with why filled ("the hash does not match its
 * bytes", …). The chain (prev against the line before, seq one more) is the caller's. */
int pw_audit_check_line(const char *line, size_t len, uint64_t *seq, char *prev, char *hash,
                        char *why, size_t whylen);

#endif
