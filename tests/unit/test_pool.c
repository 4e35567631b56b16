/* Connection reuse (pool.h): as a table, the start-up messages a server sends after
 * AuthenticationOk, and whether a later client could be given them (and where its
 * BackendKeyData is); then a worker's pool of connections, each a socket pair whose other end
 * plays the server: the reset it is sent, how it answers, and what can be taken back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "pgward/pool.h"
#include "pgward/proto.h"
#include "pgward/runtime.h"

struct row {
	const char *name;
	const char *msgs; /* message types after the AuthenticationOk, in order */
	bool complete;    /* a later client can be given the preamble */
	bool capturing;   /* still capturing at the end */
	size_t key_off;   /* where the BackendKeyData is (each message here is 5 bytes) */
};

static const struct row rows[] = {
    {"a whole start-up: parameters, key, ReadyForQuery", "SSKZ", true, false, 15},
    {"a notice in the start-up is kept too", "SNKSZ", true, false, 15},
    {"no BackendKeyData: a later client could not be given a key", "SSZ", false, false, 0},
    {"an error ends the capture without a preamble", "SKE", false, false, 0},
    {"not at the ReadyForQuery yet: still capturing", "SK", false, true, 10},
    {"messages after the ReadyForQuery are not kept", "KZSS", true, false, 5},
};

/* a 5-byte message of type t (a header with an empty body) */
static const uint8_t *msg(char t)
{
	static uint8_t m[5];
	m[0] = (uint8_t)t;
	m[1] = m[2] = m[3] = 0;
	m[4] = 4;
	return m;
}

static void *state(struct pw_worker *w)
{
	(void)w;
	static int dummy;
	return &dummy;
}

static bool after_batch(struct pw_worker *w_)
{
	(void)w_;
	return false;
}

static void worker_end(struct pw_worker *w_)
{
	(void)w_;
}

static void no_event(struct pw_ev *ev, uint32_t events)
{
	(void)ev, (void)events;
}

static struct pw_worker *w;
static struct pw_pool pl;
static struct pw_upstream u = {.name = "main", .pool_idle_timeout_ms = 1000};
static struct pw_runtime rt0 = {.refcount = 1000}; /* never the last reference */
static struct pw_runtime *rt = &rt0;
static struct pw_ev evs[8];

/* A connection of key k parked; *server: the server's end. */
static bool park(const char *k, bool truth, int *server)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		abort();
	static int n;
	struct pw_ev *ev = &evs[n++ % 8];
	*ev = (struct pw_ev){.fd = sv[0], .fn = no_event};
	if (pw_worker_watch(w, ev) < 0)
		abort();
	struct pw_upconn c = {
	    .sk.ev = *ev, .truth_known = truth, .key = (uint8_t *)strdup(k), .key_len = strlen(k)};
	c.t.pid = 4242;
	*server = sv[1];
	return pw_pool_park(&pl, &c, rt, 0, &u);
}

/* What the server end got: DISCARD ALL as a simple Query? */
static bool got_reset(int server)
{
	uint8_t b[64];
	ssize_t n = read(server, b, sizeof(b));
	return n == 17 && b[0] == 'Q' && !memcmp(b + 5, "DISCARD ALL", 12);
}

static void say(int server, const char *types, char tx)
{
	for (const char *t = types; *t; t++) {
		uint8_t m[6] = {(uint8_t)*t, 0, 0, 0, *t == 'Z' ? 5 : 4, (uint8_t)tx};
		if (write(server, m, *t == 'Z' ? 6 : 5) < 0)
			abort();
	}
	pw_worker_turn(w, 0);
}

static bool closed(int server)
{
	uint8_t b[8];
	pw_worker_turn(w, 0);
	return read(server, b, sizeof(b)) == 0;
}

static bool take(const char *k, bool truth)
{
	struct pw_upconn c;
	if (!pw_pool_take(&pl, rt, 0, (const uint8_t *)k, strlen(k), truth, &c))
		return false;
	pw_upconn_close(&c);
	return true;
}

static void pool_connections(void)
{
	static const struct pw_loop_hooks hooks = {
	    .worker_start = state, .after_batch = after_batch, .worker_end = worker_end};
	if (!(w = pw_worker_new(&hooks)))
		abort();
	pw_worker_set_now(w, 1000);
	pw_pool_init(&pl, w);
	int a, b, c, d;
	CHECK(park("k1", false, &a) && pl.n == 1 && got_reset(a),
	      "a parked connection is sent DISCARD ALL");
	CHECK(!take("k1", false), "while it is being reset it cannot be taken");
	say(a, "CZ", 'I');
	CHECK(!take("k2", false) && !take("k1", true),
	      "another StartupMessage, or a session that needs what the server said of it, "
	      "takes none");
	CHECK(take("k1", false) && pl.n == 0, "reset cleanly, it is taken by a session of its key");
	pw_pool_reap(&pl);
	park("k1", false, &b);
	got_reset(b);
	say(b, "EZ", 'I');
	CHECK(pl.n == 0 && closed(b) && !take("k1", false), "a reset that failed closes it");
	park("k1", false, &c);
	got_reset(c);
	say(c, "CZ", 'T');
	CHECK(pl.n == 0 && closed(c), "a reset that leaves a transaction open closes it");
	park("k1", true, &d);
	got_reset(d);
	say(d, "CZ", 'I');
	say(d, "N", 0);
	CHECK(pl.n == 0 && closed(d), "an idle connection the server speaks on is closed");
	park("k1", true, &a);
	got_reset(a);
	say(a, "CZ", 'I');
	CHECK(!pw_pool_drop_upstream(&pl, "other") && pw_pool_drop_upstream(&pl, "main") &&
	          pl.n == 0 && closed(a),
	      "a connection is closed for its upstream's slot");
	park("k1", true, &b);
	got_reset(b);
	say(b, "CZ", 'I');
	pw_pool_tick(&pl, 1500, false);
	CHECK(pl.n == 1 && take("k1", true), "within its idle time it stays (and knows its truth)");
	park("k1", true, &c);
	got_reset(c);
	say(c, "CZ", 'I');
	pw_pool_tick(&pl, 2500, false);
	CHECK(pl.n == 0 && closed(c), "past its idle time it is closed");
	park("k1", true, &d);
	got_reset(d);
	pw_pool_tick(&pl, 20000, false);
	CHECK(pl.n == 0 && closed(d), "a reset the server never answers is closed");
	pw_pool_close_all(&pl);
	pw_worker_free(w);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct pw_preamble p = {0};
		bool began = pw_preamble_begin(&p, msg('R'), 5);
		for (const char *t = r->msgs; *t; t++)
			pw_preamble_take(&p, msg(*t), 5);
		CHECK(began && pw_preamble_complete(&p) == r->complete &&
		          p.capturing == r->capturing && p.key_off == r->key_off,
		      "%s (complete %d, capturing %d, key at %zu, %zu bytes)", r->name,
		      pw_preamble_complete(&p), p.capturing, p.key_off, p.len);
		pw_preamble_free(&p);
	}

	struct pw_preamble a = {0}, b = {0};
	pw_preamble_begin(&a, msg('R'), 5);
	pw_preamble_take(&a, msg('K'), 5);
	pw_preamble_take(&a, msg('Z'), 5);
	pw_preamble_move(&b, &a);
	CHECK(pw_preamble_complete(&b) && b.len == 15 && !a.data && !a.len,
	      "a preamble handed over leaves its old owner empty");
	pw_preamble_free(&b);

	pool_connections();
	return check_done();
}
