/* Direction buffers: see include/pgward/buf.h. */
#include <stdlib.h>
#include <string.h>

#include "pgward/buf.h"

int pw_buf_init(struct pw_buf *b, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->data = malloc(cap);
	if (!b->data)
		return -1;
	b->cap = b->base_cap = cap;
	return 0;
}

void pw_buf_free(struct pw_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void pw_buf_compact(struct pw_buf *b)
{
	if (b->start == 0)
		return;
	size_t live = b->end - b->start;
	if (live)
		memmove(b->data, b->data + b->start, live);
	b->scan -= b->start;
	b->end -= b->start;
	b->start = 0;
}

static int grow(struct pw_buf *b, size_t cap)
{
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

int pw_buf_reserve_at_scan(struct pw_buf *b, size_t need)
{
	if (b->cap - b->scan >= need)
		return 0;
	pw_buf_compact(b);
	if (b->cap - b->scan >= need)
		return 0;
	size_t cap = b->cap;
	while (cap - b->scan < need)
		cap *= 2;
	return grow(b, cap);
}

void pw_buf_cut(struct pw_buf *b, size_t n)
{
	size_t after = b->end - b->scan - n;
	if (after)
		memmove(b->data + b->scan, b->data + b->scan + n, after);
	b->end -= n;
}

int pw_buf_insert(struct pw_buf *b, const void *p, size_t n)
{
	if (b->cap - b->end < n) {
		pw_buf_compact(b);
		if (b->cap - b->end < n && grow(b, b->cap + n + 4096) < 0)
			return -1;
	}
	memmove(b->data + b->scan + n, b->data + b->scan, b->end - b->scan);
	memcpy(b->data + b->scan, p, n);
	b->scan += n;
	b->end += n;
	return 0;
}

int pw_buf_append(struct pw_buf *b, const void *p, size_t n)
{
	if (b->cap - b->end < n) {
		pw_buf_compact(b);
		if (b->cap - b->end < n && grow(b, b->cap + n + 4096) < 0)
			return -1;
	}
	memcpy(b->data + b->end, p, n);
	b->end += n;
	return 0;
}

void pw_buf_settle(struct pw_buf *b)
{
	if (b->start != b->scan)
		return;
	if (b->scan == b->end) {
		b->start = b->scan = b->end = 0;
		if (b->cap > b->base_cap) {
			/* a one-off large message must not pin its memory for the session */
			uint8_t *p = realloc(b->data, b->base_cap);
			if (p) {
				b->data = p;
				b->cap = b->base_cap;
			}
		}
	} else if (b->start > b->cap / 2) {
		pw_buf_compact(b);
	}
}

void pw_buf_written(struct pw_buf *b, size_t n)
{
	b->start += n;
	pw_buf_settle(b);
}

int pw_buf_redo(struct pw_buf *b, size_t from, const void *p, size_t n)
{
	size_t old = b->scan - from;
	b->scan = from; /* undecided again: cut, and the new bytes put in their place */
	pw_buf_cut(b, old);
	return pw_buf_insert(b, p, n);
}
