/* Connection reuse. See include/pgward/pool.h. */
#include <stdlib.h>
#include <string.h>

#include "pgward/log.h"
#include "pgward/pool.h"
#include "pgward/proto.h"

#define RESET_TIMEOUT_MS 10000 /* for the server to answer DISCARD ALL */

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

/* A connection in the pool: being reset, then idle until taken or closed. Closed and taken
 * ones wait on the dead list until the worker's batch of events is done (pw_pool_reap): an
 * event for them may still be in it. */
struct pw_parked {
	struct pw_parked *next;
	struct pw_pool *pl;
	struct pw_upconn c;    /* its socket's handler is the pool's while parked */
	struct pw_runtime *rt; /* referenced: the key's runtime, and the upstream's name */
	int ups_idx;
	const char *ups_name;
	int idle_timeout_ms;
	bool idle; /* reset: it can be taken */
	bool dead; /* closed or taken: off the list, freed at the next reap */
	uint64_t deadline_ms;
	struct pw_reset_state reset;
	struct pw_buf in, out; /* the server's answers; DISCARD ALL */
};

void pw_upconn_close(struct pw_upconn *c)
{
	pw_sock_close(&c->sk, true);
	pw_runtime_upstream_put(c->slot);
	c->slot = NULL;
	pw_preamble_free(&c->pre);
	free(c->key);
	c->key = NULL;
}

void pw_pool_init(struct pw_pool *pl, struct pw_worker *w)
{
	memset(pl, 0, sizeof(*pl));
	pl->w = w;
}

/* Off the list, onto the dead one. */
static void unlink_parked(struct pw_parked *e)
{
	struct pw_pool *pl = e->pl;
	struct pw_parked **pp = &pl->head;
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = e->next;
		pl->n--;
	}
	e->dead = true;
	e->next = pl->dead;
	pl->dead = e;
}

static void close_parked(struct pw_parked *e, const char *why)
{
	if (e->dead)
		return;
	pw_debug("pool: upstream connection (pid %u) of \"%s\" closed: %s", e->c.t.pid, e->ups_name,
	         why);
	pw_upconn_close(&e->c);
	unlink_parked(e);
}

static void free_parked(struct pw_parked *e)
{
	pw_buf_free(&e->in);
	pw_buf_free(&e->out);
	pw_runtime_unref(e->rt);
	free(e);
}

void pw_pool_reap(struct pw_pool *pl)
{
	while (pl->dead) {
		struct pw_parked *e = pl->dead;
		pl->dead = e->next;
		free_parked(e);
	}
}

/* Everything the connection can do without blocking: send DISCARD ALL, read its answers; once
 * idle, anything the server says (an administrator's FATAL, EOF) ends it. */
static void parked_run(struct pw_parked *e)
{
	struct pw_sock *k = &e->c.sk;
	for (int rounds = 0; !e->dead && rounds < 64; rounds++) {
		if (k->wr && pw_sock_drain(k, &e->out) == PW_IO_ERR) {
			close_parked(e, "write error during reset");
			return;
		}
		if (!k->rd)
			return;
		ssize_t r = pw_sock_fill(k, &e->in);
		if (r < 0 || (e->idle && r > 0)) {
			close_parked(e, e->idle ? "ended while parked" : "ended during reset");
			return;
		}
		for (;;) {
			enum pw_reset o =
			    e->idle ? PW_RESET_MORE : pw_pool_reset_step(&e->reset, &e->in);
			if (o == PW_RESET_FAIL) {
				close_parked(e, "reset failed");
				return;
			}
			if (o == PW_RESET_CLEAN) {
				e->idle = true;
				e->deadline_ms =
				    pw_worker_now(e->pl->w) + (uint64_t)e->idle_timeout_ms;
				pw_debug("pool: parked upstream connection (pid %u) of \"%s\"",
				         e->c.t.pid, e->ups_name);
			}
			if (o != PW_RESET_NEXT)
				break;
		}
		if (r == 0)
			return;
	}
	/* still readable after 64 reads: no server answers DISCARD ALL at such length (and
	 * edge-triggered, what is left would never be signalled again) */
	if (!e->dead)
		close_parked(e, "too much said during reset");
}

static void parked_event(struct pw_ev *ev, uint32_t events)
{
	struct pw_parked *e = ev->arg;
	if (e->dead)
		return;
	pw_sock_events(&e->c.sk, events);
	parked_run(e);
}

bool pw_pool_park(struct pw_pool *pl, struct pw_upconn *c, struct pw_runtime *rt, int ups_idx,
                  const struct pw_upstream *u)
{
	static const char q[] = "DISCARD ALL";
	struct pw_parked *e = calloc(1, sizeof(*e));
	if (!e || pw_buf_init(&e->in, 1024) < 0 || pw_buf_init(&e->out, 64) < 0 ||
	    pw_msg_raw(&e->out, 'Q', q, sizeof(q)) < 0) {
		if (e) {
			pw_buf_free(&e->in);
			pw_buf_free(&e->out);
		}
		free(e);
		pw_upconn_close(c);
		return false;
	}
	e->pl = pl;
	e->c = *c;
	memset(c, 0, sizeof(*c));
	c->sk.ev.fd = -1;
	e->c.sk.ev.fn = parked_event;
	e->c.sk.ev.arg = e;
	e->c.sk.rd = e->c.sk.wr = true;
	e->rt = pw_runtime_ref(rt);
	e->ups_idx = ups_idx;
	e->ups_name = u->name;
	e->idle_timeout_ms = u->pool_idle_timeout_ms;
	e->deadline_ms = pw_worker_now(pl->w) + RESET_TIMEOUT_MS;
	e->next = pl->head;
	pl->head = e;
	pl->n++;
	if (pw_worker_rewatch(pl->w, &e->c.sk.ev) < 0) {
		close_parked(e, "epoll");
		return false;
	}
	parked_run(e);
	return true;
}

bool pw_pool_take(struct pw_pool *pl, const struct pw_runtime *rt, int ups_idx, const uint8_t *key,
                  size_t key_len, bool truth, struct pw_upconn *c)
{
	for (struct pw_parked *e = pl->head; e; e = e->next)
		if (e->idle && e->rt == rt && e->ups_idx == ups_idx && e->c.key_len == key_len &&
		    memcmp(e->c.key, key, key_len) == 0 && (!truth || e->c.truth_known)) {
			*c = e->c;
			/* its handler stays: an event of this batch may still come to it */
			struct pw_ev ev = e->c.sk.ev;
			memset(&e->c, 0, sizeof(e->c));
			e->c.sk.ev = (struct pw_ev){.fd = -1, .fn = ev.fn, .arg = ev.arg};
			unlink_parked(e);
			return true;
		}
	return false;
}

bool pw_pool_drop_upstream(struct pw_pool *pl, const char *ups_name)
{
	for (struct pw_parked *e = pl->head; e; e = e->next)
		if (strcmp(e->ups_name, ups_name) == 0) {
			close_parked(e, "its slot is wanted by a new session");
			return true;
		}
	return false;
}

void pw_pool_tick(struct pw_pool *pl, uint64_t now_ms, bool stopping)
{
	for (struct pw_parked *e = pl->head, *nx; e; e = nx) {
		nx = e->next;
		if (stopping || now_ms > e->deadline_ms)
			close_parked(e, stopping  ? "stopping"
			                : e->idle ? "idle timeout"
			                          : "reset timeout");
	}
}

void pw_pool_close_all(struct pw_pool *pl)
{
	pw_pool_tick(pl, 0, true);
	pw_pool_reap(pl);
}
