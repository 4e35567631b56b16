/* Masking on the wire (issue: inline masking): whole PostgreSQL v3 backend messages rewritten
 * under a per-column mask plan: DataRow, COPY OUT's CopyData (text, CSV, binary), and the
 * text of ErrorResponse/NoticeResponse. Pure: no I/O, no globals; the input may be hostile,
 * so every length is checked against the message and the work is linear in it.
 *
 * Each rewrite returns PW_MASK_CHANGED (out holds the whole new message: type byte, correct
 * length), PW_MASK_SAME (pass the original on; nothing was copied), PW_MASK_BAD (malformed,
 * or it cannot be masked safely: fail closed, never forward the original) or PW_MASK_NOMEM.
 * out->len is 0 unless PW_MASK_CHANGED. */
#ifndef PGWARD_MASK_WIRE_H
#define PGWARD_MASK_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/detect.h"
#include "pgward/mask_value.h"

enum { PW_MASK_CHANGED = 1, PW_MASK_SAME = 0, PW_MASK_BAD = -1, PW_MASK_NOMEM = -2 };

/* One result column's plan (its type and format from RowDescription). */
struct pw_mask_col {
	bool mask; /* replace the whole value under strategy/keep */
	enum pw_mask_strategy strategy;
	int keep;
	bool nulls;        /* masked: a NULL is replaced too (a derived value's NULL tells) */
	bool detect;       /* run the detectors on the value (when not masked) */
	uint32_t type_oid; /* 0: unknown */
	int16_t format;    /* 0 text, 1 binary */
};

/* The detectors to run on cells with detect set, and what a match becomes. */
struct pw_mask_detectors {
	uint32_t set; /* bits 1u << enum pw_detector */
	enum pw_mask_strategy strategy[PW_DET_N];
	int keep[PW_DET_N];
};

struct pw_mask_ctx {
	const struct pw_mask_key *key;       /* for PW_MASK_HASH; NULL: hashes redact */
	const struct pw_mask_detectors *det; /* NULL: no detection */
};

/* A growable output buffer, reused from call to call; zero-initialise it. */
struct pw_mask_out {
	uint8_t *data;
	size_t len, cap;
};
void pw_mask_out_free(struct pw_mask_out *o);

/* A DataRow ('D'). A masked column: text format, pw_mask_text's output for its type (NULL for
 * an unknown type); binary format, a valid binary encoding of that replacement (strings: the
 * bytes; int2/int4/int8/oid: the number; bool: false; uuid: 16 bytes; float4/8: zero; other
 * types NULL). A hash hashes the value's text form in either format (binary ints in decimal,
 * uuids canonical; other binary types become NULL), so both formats mask alike. Detection
 * (detect set, not masked): text cells of any type and binary cells of string types; each
 * match becomes pw_mask_text(its detector's strategy, keep, key, text) or, for a detector
 * whose strategy is PW_MASK_NULL, the whole cell NULL. A column count other than ncols, a
 * length past the end or below -1, trailing bytes: PW_MASK_BAD. */
int pw_mask_datarow(const struct pw_mask_col *cols, int ncols, const struct pw_mask_ctx *ctx,
                    const uint8_t *msg, size_t len, struct pw_mask_out *out);

/* COPY OUT: the format of the COPY (CopyOutResponse and the statement's options). */
enum { PW_COPY_TEXT, PW_COPY_CSV, PW_COPY_BINARY };
struct pw_copy_fmt {
	int kind;
	char delim, quote, escape; /* quote and escape: CSV only */
	char null_str[64];
	size_t null_len;
	bool header; /* text or CSV HEADER: the first row holds the column names */
};
/* text: delim '\t', null "\N"; CSV: delim ',', quote and escape '"', null ""; binary. */
void pw_copy_fmt_default(struct pw_copy_fmt *f, int kind);

/* Where a COPY OUT stream is; zero-initialise it at CopyOutResponse. */
struct pw_copy_state {
	bool header_seen;        /* text/CSV: the header row went by */
	bool binary_header_seen; /* binary: the signature, flags and extension went by */
	bool trailer_seen;       /* binary: the int16 -1 went by; no data may follow */
};

/* One CopyData ('d') message of a COPY OUT under the plan (cols[i].format is not used: the
 * COPY's format is). Whole rows only, as PostgreSQL sends them (one a message; binary: the
 * file header with the first tuple, the trailer alone or with the header): a row cut across
 * messages, a field count other than ncols, a bad escape or quoting, trailing garbage are
 * PW_MASK_BAD. Masked fields take the DataRow's rules, those of text cells in text and CSV
 * (NULL written as the null string), those of binary cells in binary; detection runs on the
 * unescaped value, and the result is escaped again. The header row passes as it is. st
 * advances only when the message is accepted. */
int pw_mask_copydata(const struct pw_mask_col *cols, int ncols, const struct pw_copy_fmt *f,
                     struct pw_copy_state *st, const struct pw_mask_ctx *ctx, const uint8_t *msg,
                     size_t len, struct pw_mask_out *out);

/* What a withheld field of an error says. */
#define PW_MASK_WITHHELD "pgward: withheld (the statement read masked columns)"

/* An ErrorResponse ('E') or NoticeResponse ('N'). Message, detail, hint, context, internal
 * query and fields of unknown codes: every detector's match becomes "[redacted]". tainted
 * (the statement read masked data): moreover the message's double-quoted runs and the
 * parenthesised values after '=' become ***, and the other scrubbed fields PW_MASK_WITHHELD.
 * The other fields (severity, code, position, file, line, routine, schema/table/column/type/
 * constraint names) pass as they are. ctx is not used (may be NULL). */
int pw_mask_scrub_notice(const uint8_t *msg, size_t len, bool tainted,
                         const struct pw_mask_ctx *ctx, struct pw_mask_out *out);

#endif
