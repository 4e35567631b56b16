/* Loaded configuration plus TLS contexts, swapped atomically on reload. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "pgward/runtime.h"
#include "pgward/tls.h"

struct pw_runtime *pw_runtime_load(const char *path, char *err, size_t errlen)
{
	struct pw_config *cfg;
	if (pw_config_load(path, &cfg, err, errlen) < 0)
		return NULL;
	struct pw_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt || !(rt->upstream_tls = calloc((size_t)cfg->n_upstreams + 1, sizeof(SSL_CTX *)))) {
		snprintf(err, errlen, "out of memory");
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
