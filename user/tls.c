/* TLS for both sides of a session. Contexts are built when the configuration is loaded and
 * shared read-only by the workers (OpenSSL's SSL_CTX is safe to use from many threads). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "pgward/tls.h"

const char *pw_tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e) {
		snprintf(buf, len, "unknown TLS error");
	} else {
		ERR_error_string_n(e, buf, len);
	}
	ERR_clear_error();
	return buf;
}

static void set_err(char *err, size_t errlen, const char *what, const char *file)
{
	char e[256];
	snprintf(err, errlen, "%s %s: %s", what, file, pw_tls_error(e, sizeof(e)));
}

SSL_CTX *pw_tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* partial writes with a moving buffer: our direction buffers compact between calls */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* one process, many threads: a session cache keyed by our context is useless for
	 * PostgreSQL clients, which do not resume */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		set_err(err, errlen, "cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		set_err(err, errlen, "cannot load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		set_err(err, errlen, "private key does not match certificate", key);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *pw_tls_upstream_ctx(const struct pw_upstream *u, char *err, size_t errlen)
{
	err[0] = 0;
	if (u->sslmode == PW_SSL_DISABLE || u->unix_dir[0])
		return NULL;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	if (u->sslmode >= PW_SSL_VERIFY_CA) {
		if (SSL_CTX_load_verify_locations(ctx, u->ca_file, NULL) != 1) {
			set_err(err, errlen, "cannot load CA file", u->ca_file);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		/* prefer/require: encryption without authentication, as libpq without a root
		 * certificate */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

int pw_tls_upstream_prepare(SSL *ssl, const struct pw_upstream *u)
{
	unsigned char tmp[16];
	bool is_ip =
	    inet_pton(AF_INET, u->host, tmp) == 1 || inet_pton(AF_INET6, u->host, tmp) == 1;
	if (!is_ip && SSL_set_tlsext_host_name(ssl, u->host) != 1)
		return -1;
	if (u->sslmode == PW_SSL_VERIFY_FULL) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
		if (is_ip) {
			if (X509_VERIFY_PARAM_set1_ip_asc(vp, u->host) != 1)
				return -1;
		} else {
			X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (X509_VERIFY_PARAM_set1_host(vp, u->host, 0) != 1)
				return -1;
		}
	}
	return 0;
}
