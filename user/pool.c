/* Connection reuse bookkeeping. See include/pgward/pool.h. */
#include <stdlib.h>
#include <string.h>

#include "pgward/pool.h"
#include "pgward/proto.h"

static bool add(struct pw_preamble *p, const uint8_t *msg, size_t n)
{
	if (p->len + n > p->cap) {
		size_t cap = (p->len + n) * 2 + 256;
		uint8_t *q = realloc(p->data, cap);
		if (!q)
			return false;
		p->data = q;
		p->cap = cap;
	}
	memcpy(p->data + p->len, msg, n);
	p->len += n;
	return true;
}

bool pw_preamble_begin(struct pw_preamble *p, const uint8_t *msg, size_t n)
{
	p->len = p->key_off = 0;
	p->capturing = add(p, msg, n);
	return p->capturing;
}

void pw_preamble_abandon(struct pw_preamble *p)
{
	p->len = p->key_off = 0;
	p->capturing = false;
}

void pw_preamble_take(struct pw_preamble *p, const uint8_t *msg, size_t n)
{
	if (!p->capturing)
		return;
	if (msg[0] == 'K')
		p->key_off = p->len;
	if (!add(p, msg, n) || msg[0] == 'E')
		pw_preamble_abandon(p);
	else if (msg[0] == 'Z')
		p->capturing = false;
}

bool pw_preamble_complete(const struct pw_preamble *p)
{
	return !p->capturing && p->len && p->key_off;
}

void pw_preamble_move(struct pw_preamble *to, struct pw_preamble *from)
{
	free(to->data);
	*to = *from;
	memset(from, 0, sizeof(*from));
}

void pw_preamble_free(struct pw_preamble *p)
{
	free(p->data);
	memset(p, 0, sizeof(*p));
}

void pw_pool_park(struct pw_pool *pl, struct pw_pool_entry *e, uint64_t now_ms)
{
	e->parked_ms = now_ms;
	e->next = pl->head;
	e->parked = true;
	pl->head = e;
	pl->n++;
}

void pw_pool_remove(struct pw_pool *pl, struct pw_pool_entry *e)
{
	struct pw_pool_entry **pp = &pl->head;
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = e->next;
		pl->n--;
	}
	e->next = NULL;
	e->parked = false;
}

struct pw_pool_entry *pw_pool_find(const struct pw_pool *pl, const void *rt, int ups_idx,
                                   const uint8_t *key, size_t key_len)
{
	for (struct pw_pool_entry *e = pl->head; e; e = e->next)
		if (e->rt == rt && e->ups_idx == ups_idx && e->key_len == key_len &&
		    memcmp(e->key, key, key_len) == 0)
			return e;
	return NULL;
}

struct pw_pool_entry *pw_pool_find_upstream(const struct pw_pool *pl, const char *ups_name)
{
	for (struct pw_pool_entry *e = pl->head; e; e = e->next)
		if (strcmp(e->ups_name, ups_name) == 0)
			return e;
	return NULL;
}

enum pw_reset pw_pool_reset_step(struct pw_reset_state *rs, struct pw_buf *b)
{
	uint32_t len;
	bool bad;
	uint8_t *p = pw_msg_small(b, PW_AUTH_MSG_MAX, &len, &bad);
	if (bad)
		return PW_RESET_FAIL;
	if (!p)
		return PW_RESET_MORE;
	uint8_t t = p[0], st = len == 5 ? p[5] : 0;
	pw_buf_cut(b, (size_t)len + 1);
	if (t == 'E')
		rs->failed = true;
	if (t != 'Z')
		return PW_RESET_NEXT;
	return rs->failed || st != 'I' ? PW_RESET_FAIL : PW_RESET_CLEAN;
}
