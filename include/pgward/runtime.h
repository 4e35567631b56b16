/* What a session needs from the loaded configuration, built once per load: the config and
 * its TLS contexts. Reference counted: a reload swaps in a new one, live sessions keep
 * theirs until they end. */
#ifndef PGWARD_RUNTIME_H
#define PGWARD_RUNTIME_H

#include <openssl/ssl.h>

#include "pgward/config.h"

struct pw_runtime {
	struct pw_config *cfg;
	SSL_CTX *client_tls;    /* NULL when TLS for clients is not configured */
	SSL_CTX **upstream_tls; /* one per upstream, NULL where TLS is not used */
	/* one per upstream: how many connections pgwardd holds to it (atomic; see runtime.c) */
	int **upstream_conns;
	int refcount;
};

/* Build from a config file; on error returns NULL with err set. */
struct pw_runtime *pw_runtime_load(const char *path, char *err, size_t errlen);
struct pw_runtime *pw_runtime_ref(struct pw_runtime *rt);
void pw_runtime_unref(struct pw_runtime *rt);

/* Take one of upstream i's max_connections for a connection: the counter to give back with
 * pw_runtime_upstream_put, or NULL when the limit is reached. Any thread. */
int *pw_runtime_upstream_take(const struct pw_runtime *rt, int i);
void pw_runtime_upstream_put(int *counter);
int pw_runtime_upstream_count(const struct pw_runtime *rt, int i);

/* The current runtime, referenced for the caller. */
struct pw_runtime *pw_runtime_current(void);
/* Install rt as current (takes over the caller's reference). */
void pw_runtime_publish(struct pw_runtime *rt);

#endif
