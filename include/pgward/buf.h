/* A byte buffer for one direction of a session, in the manner of pgbouncer's sbuf:
 * bytes are read in at `end`, scanned message by message, and written out as one range.
 *   [start, scan)  decided: to be written to the other side as it is
 *   [scan, end)    read but not yet decided
 * Rare paths (a denied message, an injected error) cut or insert bytes in place, so the
 * common path never copies a message. */
#ifndef PGWARD_BUF_H
#define PGWARD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct pw_buf {
	uint8_t *data;
	size_t cap, start, scan, end;
	size_t base_cap; /* capacity to shrink back to after a large message */
};

int pw_buf_init(struct pw_buf *b, size_t cap);
void pw_buf_free(struct pw_buf *b);
static inline size_t pw_buf_pending(const struct pw_buf *b)
{
	return b->scan - b->start;
}
static inline size_t pw_buf_unscanned(const struct pw_buf *b)
{
	return b->end - b->scan;
}
static inline size_t pw_buf_space(const struct pw_buf *b)
{
	return b->cap - b->end;
}
/* Where bytes read from a socket go (pw_buf_space of them fit), and how many came. */
static inline uint8_t *pw_buf_tail(const struct pw_buf *b)
{
	return b->data + b->end;
}
static inline void pw_buf_filled(struct pw_buf *b, size_t n)
{
	b->end += n;
}
/* The decided bytes to write out (pw_buf_pending of them), and how many were written. */
static inline const uint8_t *pw_buf_head(const struct pw_buf *b)
{
	return b->data + b->start;
}
void pw_buf_written(struct pw_buf *b, size_t n);
/* The first byte not yet decided (the message being scanned). */
static inline uint8_t *pw_buf_at_scan(const struct pw_buf *b)
{
	return b->data + b->scan;
}
/* n more unscanned bytes are decided: passed on as they are. */
static inline void pw_buf_advance(struct pw_buf *b, size_t n)
{
	b->scan += n;
}
/* Forget everything read but not decided (what follows a Terminate, a message consumed). */
static inline void pw_buf_truncate(struct pw_buf *b)
{
	b->end = b->scan;
}
/* Consume the n bytes at scan: read by pgward itself, never passed on (a start-up message
 * answered here). Only while nothing before them waits to be written. */
static inline void pw_buf_consume(struct pw_buf *b, size_t n)
{
	b->scan += n;
	if (b->scan == b->end)
		b->start = b->scan = b->end = 0;
}
/* Empty: every offset back to the front. */
static inline void pw_buf_clear(struct pw_buf *b)
{
	b->start = b->scan = b->end = 0;
}
/* Move the live bytes [start, end) to the front. */
void pw_buf_compact(struct pw_buf *b);
/* Make room so that `need` bytes starting at scan fit in the buffer (compacting, then
 * growing). Returns 0 or -1 on allocation failure. */
int pw_buf_reserve_at_scan(struct pw_buf *b, size_t need);
/* Remove n unscanned bytes at scan. */
void pw_buf_cut(struct pw_buf *b, size_t n);
/* Insert bytes at scan and mark them decided (scan advances past them). */
int pw_buf_insert(struct pw_buf *b, const void *p, size_t n);
/* Replace the decided bytes [from, scan) with n bytes at p, decided: what a rewriting pass
 * made of them (masking). -1: no memory, and those bytes are gone (the caller fails). */
int pw_buf_redo(struct pw_buf *b, size_t from, const void *p, size_t n);
/* Append bytes at end (used while a session is in its start-up phases). */
int pw_buf_append(struct pw_buf *b, const void *p, size_t n);
/* Room up to cap bytes is kept when everything is written (pw_buf_settle shrinks only a
 * buffer larger than that). */
static inline void pw_buf_keep(struct pw_buf *b, size_t cap)
{
	if (cap > b->base_cap)
		b->base_cap = cap;
}
/* Called when everything written: reset offsets, shrink an oversized buffer back. */
void pw_buf_settle(struct pw_buf *b);

#endif
