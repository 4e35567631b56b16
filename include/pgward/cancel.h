/* Cancel keys. Clients get the upstream's real process ID (pg_backend_pid() and the
 * isolation tester depend on it) but a secret key of pgwardd's own; a CancelRequest that
 * arrives on any worker is mapped back to the upstream and its real key here. */
#ifndef PGWARD_CANCEL_H
#define PGWARD_CANCEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct pw_cancel_target {
	struct sockaddr_storage addr; /* upstream address (AF_INET, AF_INET6 or AF_UNIX) */
	socklen_t addrlen;
	uint32_t pid;
	uint32_t real_key;
	uint64_t session; /* the session the client's key belongs to (a held statement's cancel) */
};

/* Register a session's upstream key; returns the key to give the client. */
uint32_t pw_cancel_register(const struct pw_cancel_target *t);
void pw_cancel_unregister(uint32_t pid, uint32_t our_key);
/* Look up; returns 0 and fills *t, or -1 when unknown. */
int pw_cancel_lookup(uint32_t pid, uint32_t our_key, struct pw_cancel_target *t);

/* A session's keys: the upstream's (t: its address, pid and real key) and the one its client
 * was given, registered while the session holds it. */
struct pw_cancel_key {
	struct pw_cancel_target t;
	uint32_t pid, ours;
	uint64_t session; /* whose key it is: registered with the target */
	bool registered;
};
/* A BackendKeyData (the whole message at msg) as the upstream sent it: t takes its pid and
 * real key, and the message gets a key of our own for the client. */
void pw_cancel_key_take(struct pw_cancel_key *k, uint8_t *msg);
/* The client gets a key of its own for k->t, written into the BackendKeyData at msg (a
 * reused connection's: the key of its earlier client is dropped). */
void pw_cancel_key_give(struct pw_cancel_key *k, uint8_t *msg);
/* The client's key is no more (the session ends, or the connection is parked). */
void pw_cancel_key_drop(struct pw_cancel_key *k);

#endif
