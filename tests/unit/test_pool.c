/* Connection reuse bookkeeping (pool.h), as a table: the start-up messages a server sends
 * after AuthenticationOk, and whether a later client could be given them (and where its
 * BackendKeyData is); then the worker's list of parked connections. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pgward/pool.h"

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

	int rt1, rt2;
	static const uint8_t k1[] = "user\0a\0", k2[] = "user\0b\0";
	struct pw_pool pl = {0};
	struct pw_pool_entry
	    e1 = {.rt = &rt1, .ups_idx = 0, .ups_name = "main", .key = k1, .key_len = sizeof(k1)},
	    e2 = {.rt = &rt1, .ups_idx = 1, .ups_name = "other", .key = k1, .key_len = sizeof(k1)},
	    e3 = {.rt = &rt1, .ups_idx = 0, .ups_name = "main", .key = k1, .key_len = sizeof(k1)};
	pw_pool_park(&pl, &e1, 100);
	pw_pool_park(&pl, &e2, 200);
	pw_pool_park(&pl, &e3, 300);
	CHECK(pl.n == 3 && pw_pool_find(&pl, &rt1, 0, k1, sizeof(k1)) == &e3,
	      "the newest parked connection with the same key is found first");
	CHECK(!pw_pool_find(&pl, &rt1, 0, k2, sizeof(k2)) &&
	          !pw_pool_find(&pl, &rt2, 0, k1, sizeof(k1)),
	      "another StartupMessage or another runtime (a reload) matches none");
	CHECK(pw_pool_find_upstream(&pl, "other") == &e2 && !pw_pool_find_upstream(&pl, "none"),
	      "a parked connection is found by its upstream (its slot can be given up)");
	pw_pool_remove(&pl, &e3);
	pw_pool_remove(&pl, &e3); /* twice: the second is a no-op */
	CHECK(pl.n == 2 && pw_pool_find(&pl, &rt1, 0, k1, sizeof(k1)) == &e1 && !e3.parked,
	      "a removed connection is no longer found, and removing it again changes nothing");
	pw_pool_remove(&pl, &e1);
	pw_pool_remove(&pl, &e2);
	CHECK(pl.n == 0 && !pl.head, "the list is empty after the last one goes");
	return check_done();
}
