/* Masking one value (issue: inline masking): what a masked cell becomes under each strategy,
 * valid for the column's type, so that a client still decodes every row. Text format here
 * (a result's binary columns get their own encoder). Pure: no I/O; the key is the caller's. */
#ifndef PGWARD_MASK_VALUE_H
#define PGWARD_MASK_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pw_mask_strategy {
	PW_MASK_REDACT,  /* a fixed replacement valid for the type ("[redacted]", 0, epoch...) */
	PW_MASK_PARTIAL, /* strings: "****" and the last keep characters; others: redact */
	PW_MASK_HASH,    /* HMAC-SHA-256 under the key: the same value gives the same output */
	PW_MASK_NULL,    /* SQL NULL */
	PW_MASK_EMAIL,   /* strings: "****@" and the domain; others: redact */
	PW_MASK_N
};
/* The strategy's name in the configuration, and back (-1: none). */
const char *pw_mask_strategy_name(enum pw_mask_strategy s);
int pw_mask_strategy_from_name(const char *name);

#define PW_MASK_KEY_MAX 64
struct pw_mask_key {
	uint8_t k[PW_MASK_KEY_MAX];
	size_t len; /* 32 bytes at least in a configuration */
};

#define PW_MASK_OUT_MAX 96 /* the longest masked text, without a partial's kept part */

/* The masked text of value v (n bytes, text format) of type type_oid under strategy s (keep:
 * a partial's count, key: a hash's) into out (cap bytes: PW_MASK_OUT_MAX plus 4 * keep is
 * enough). Returns its length, -1 for SQL NULL, or -2 when out is too small. */
long pw_mask_text(enum pw_mask_strategy s, int keep, const struct pw_mask_key *key,
                  uint32_t type_oid, const uint8_t *v, size_t n, char *out, size_t cap);
#endif
