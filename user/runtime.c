/* Loaded configuration plus TLS contexts, swapped atomically on reload. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/runtime.h"
#include "pgward/tls.h"

/* Connections held to each upstream. The limit is on what the server sees from the whole of
 * pgwardd, so the count is shared by every worker (an atomic integer, no lock on the way); it
 * is kept by upstream name, not per runtime, so that after a reload the connections the old
 * configuration's sessions still hold count against the new limit. Entries are made under
 * counts_mu and never freed (one per upstream name ever configured). */
struct upcount {
	struct upcount *next;
	int n;
	char name[PW_NAME_MAX];
};
static pthread_mutex_t counts_mu = PTHREAD_MUTEX_INITIALIZER;
static struct upcount *counts;

static int *upstream_counter(const char *name)
{
	pthread_mutex_lock(&counts_mu);
	struct upcount *c = counts;
	while (c && strcmp(c->name, name) != 0)
		c = c->next;
	if (!c && (c = calloc(1, sizeof(*c)))) {
		snprintf(c->name, sizeof(c->name), "%s", name);
		c->next = counts;
		counts = c;
	}
	pthread_mutex_unlock(&counts_mu);
	return c ? &c->n : NULL;
}

int *pw_runtime_upstream_take(const struct pw_runtime *rt, int i)
{
	int *n = rt->upstream_conns[i];
	if (__atomic_add_fetch(n, 1, __ATOMIC_RELAXED) <= rt->cfg->upstreams[i].max_connections)
		return n;
	__atomic_sub_fetch(n, 1, __ATOMIC_RELAXED);
	return NULL;
}

void pw_runtime_upstream_put(int *counter)
{
	if (counter)
		__atomic_sub_fetch(counter, 1, __ATOMIC_RELAXED);
}

int pw_runtime_upstream_count(const struct pw_runtime *rt, int i)
{
	return __atomic_load_n(rt->upstream_conns[i], __ATOMIC_RELAXED);
}

struct pw_runtime *pw_runtime_load(const char *path, char *err, size_t errlen)
{
	struct pw_config *cfg;
	if (pw_config_load(path, &cfg, err, errlen) < 0)
		return NULL;
	struct pw_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt || !(rt->upstream_tls = calloc((size_t)cfg->n_upstreams + 1, sizeof(SSL_CTX *))) ||
	    !(rt->upstream_conns = calloc((size_t)cfg->n_upstreams + 1, sizeof(int *)))) {
		snprintf(err, errlen, "out of memory");
		if (rt)
			free(rt->upstream_tls);
		free(rt);
		pw_config_unref(cfg);
		return NULL;
	}
	rt->cfg = cfg;
	rt->refcount = 1;
	char e[512];
	if (cfg->tls_enabled) {
		rt->client_tls = pw_tls_server_ctx(cfg->tls_cert, cfg->tls_key, e, sizeof(e));
		if (!rt->client_tls) {
			snprintf(err, errlen, "%s: $.tls: %s", cfg->path, e);
			goto fail;
		}
	}
	for (int i = 0; i < cfg->n_upstreams; i++) {
		if (!(rt->upstream_conns[i] = upstream_counter(cfg->upstreams[i].name))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		rt->upstream_tls[i] = pw_tls_upstream_ctx(&cfg->upstreams[i], e, sizeof(e));
		if (!rt->upstream_tls[i] && e[0]) {
			snprintf(err, errlen, "%s: $.upstreams.%s: %s", cfg->path,
			         cfg->upstreams[i].name, e);
			goto fail;
		}
	}
	return rt;
fail:
	pw_runtime_unref(rt);
	return NULL;
}

struct pw_runtime *pw_runtime_ref(struct pw_runtime *rt)
{
	__atomic_add_fetch(&rt->refcount, 1, __ATOMIC_RELAXED);
	return rt;
}

void pw_runtime_unref(struct pw_runtime *rt)
{
	if (!rt || __atomic_sub_fetch(&rt->refcount, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	SSL_CTX_free(rt->client_tls);
	for (int i = 0; i < rt->cfg->n_upstreams; i++)
		SSL_CTX_free(rt->upstream_tls[i]);
	free(rt->upstream_tls);
	free(rt->upstream_conns);
	pw_config_unref(rt->cfg);
	free(rt);
}

/* The one process-wide "current configuration". Read once per accepted connection (never per
 * message); the mutex makes "load pointer + take reference" atomic against a reload dropping
 * the last reference in between. */
static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pw_runtime *current;

struct pw_runtime *pw_runtime_current(void)
{
	pthread_mutex_lock(&current_mu);
	struct pw_runtime *rt = current ? pw_runtime_ref(current) : NULL;
	pthread_mutex_unlock(&current_mu);
	return rt;
}

void pw_runtime_publish(struct pw_runtime *rt)
{
	pthread_mutex_lock(&current_mu);
	struct pw_runtime *old = current;
	current = rt;
	pthread_mutex_unlock(&current_mu);
	if (old)
		pw_runtime_unref(old);
}
