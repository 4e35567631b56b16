/* OpenSSL contexts for both sides: clients of pgwardd (server role, TLS 1.2+) and the
 * upstream servers (client role, with libpq's sslmode semantics). */
#ifndef PGWARD_TLS_H
#define PGWARD_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "pgward/config.h"

SSL_CTX *pw_tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
/* NULL with err set on failure; for sslmode disable returns NULL with err empty. */
SSL_CTX *pw_tls_upstream_ctx(const struct pw_upstream *u, char *err, size_t errlen);
/* Per-connection settings for the upstream side: SNI and, for verify-full, the name or
 * address the certificate must carry. Returns 0 or -1. */
int pw_tls_upstream_prepare(SSL *ssl, const struct pw_upstream *u);
/* The most recent OpenSSL error as text (thread-local queue); clears the queue. */
const char *pw_tls_error(char *buf, size_t len);

#endif
