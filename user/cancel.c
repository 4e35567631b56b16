/* Cancel-key map shared by all workers. Touched only when a session starts or ends and when
 * a CancelRequest arrives -- never per message -- so one mutex is enough. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "pgward/cancel.h"
#include "pgward/proto.h"

struct entry {
	struct entry *next;
	uint32_t our_key;
	struct pw_cancel_target t;
};

#define NBUCKETS 4096
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *buckets[NBUCKETS];

static unsigned bucket(uint32_t pid, uint32_t key)
{
	return (pid * 2654435761u ^ key) % NBUCKETS;
}

static struct entry **find(uint32_t pid, uint32_t key)
{
	struct entry **pp = &buckets[bucket(pid, key)];
	while (*pp && !((*pp)->t.pid == pid && (*pp)->our_key == key))
		pp = &(*pp)->next;
	return pp;
}

uint32_t pw_cancel_register(const struct pw_cancel_target *t)
{
	struct entry *e = malloc(sizeof(*e));
	if (!e)
		return 0; /* the session still works; a cancel then finds nothing */
	e->t = *t;
	pthread_mutex_lock(&mu);
	do {
		if (RAND_bytes((unsigned char *)&e->our_key, sizeof(e->our_key)) != 1)
			e->our_key ^= (uint32_t)random();
	} while (*find(t->pid, e->our_key));
	struct entry **head = &buckets[bucket(t->pid, e->our_key)];
	e->next = *head;
	*head = e;
	uint32_t k = e->our_key;
	pthread_mutex_unlock(&mu);
	return k;
}

void pw_cancel_unregister(uint32_t pid, uint32_t our_key)
{
	pthread_mutex_lock(&mu);
	struct entry **pp = find(pid, our_key);
	struct entry *e = *pp;
	if (e)
		*pp = e->next;
	pthread_mutex_unlock(&mu);
	free(e);
}

int pw_cancel_lookup(uint32_t pid, uint32_t our_key, struct pw_cancel_target *t)
{
	pthread_mutex_lock(&mu);
	struct entry *e = *find(pid, our_key);
	if (e)
		*t = e->t;
	pthread_mutex_unlock(&mu);
	return e ? 0 : -1;
}

void pw_cancel_key_give(struct pw_cancel_key *k, uint8_t *msg)
{
	pw_cancel_key_drop(k);
	k->pid = k->t.pid;
	k->t.session = k->session;
	k->ours = pw_cancel_register(&k->t);
	k->registered = true;
	pw_put_be32(msg + 9, k->ours);
}

void pw_cancel_key_take(struct pw_cancel_key *k, uint8_t *msg)
{
	k->t.pid = pw_be32(msg + 5);
	k->t.real_key = pw_be32(msg + 9);
	pw_cancel_key_give(k, msg);
}

void pw_cancel_key_drop(struct pw_cancel_key *k)
{
	if (k->registered)
		pw_cancel_unregister(k->pid, k->ours);
	k->registered = false;
}
