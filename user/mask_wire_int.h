/* Private to masking on the wire (mask_wire.c, mask_scrub.c): the output buffer's helpers and
 * the rewriter of a message, which the DataRow, COPY and error rewrites share. See
 * include/pgward/mask_wire.h. */
#ifndef PGWARD_MASK_WIRE_INT_H
#define PGWARD_MASK_WIRE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/mask_wire.h"

#define REDACTED "[redacted]"

/* What a value became. */
enum { CELL_SAME, CELL_NEW, CELL_NULL };

/* Room for more bytes at o's end, and bytes put there: 0 or PW_MASK_NOMEM. */
int mw_reserve(struct pw_mask_out *o, size_t more);
int mw_put(struct pw_mask_out *o, const void *p, size_t n);

/* The rewritten message, built lazily: the original's bytes [0, done) are in out already, as
 * they were or rewritten. Nothing is copied before the first change, so that a row left as
 * it was costs a parse and no copy. */
struct wr {
	struct pw_mask_out *out;
	const uint8_t *msg;
	size_t len, done;
	bool on;
};
/* The original's bytes [from, at) go out as they are, and [at, to) are dropped (the caller
 * puts their replacement next). */
int mw_wr_cut(struct wr *w, size_t at, size_t to);
/* PW_MASK_SAME when nothing changed, else the rest copied and the length set: CHANGED. */
int mw_wr_end(struct wr *w);
/* A whole message of one of the types: its length word agrees with len. */
bool mw_framed(const uint8_t *msg, size_t len, const char *types);

#endif
