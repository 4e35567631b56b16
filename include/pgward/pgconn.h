/* A small blocking PostgreSQL client for pgwardd's own maintenance connections (the JIT role
 * janitor). Not for client sessions: those run on the workers' event loops. It logs in to a
 * configured upstream exactly as a session does (sslmode, SCRAM with the server signature
 * checked, MD5, cleartext only over TLS unless allowed) and speaks only the simple query
 * protocol. Every step is bounded by a timeout (all but name resolution: getaddrinfo blocks
 * as it will); a query that runs past it is cancelled and the connection given up. One connection
 * is used by one thread at a time. Writes to a closed TLS connection may raise SIGPIPE: the calling
 * thread must ignore or block it (pgwardd ignores it, the janitor thread blocks it). */
#ifndef PGWARD_PGCONN_H
#define PGWARD_PGCONN_H

#include <stddef.h>
#include <stdint.h>

#include "pgward/runtime.h"

#define PW_PGCONN_MSG_MAX (64u << 20) /* any message from the server, and one result set */

struct pw_pgconn;

/* Connect to upstream ui of rt (its SSL_CTX: rt->upstream_tls[ui], may be NULL) as u->user with
 * u->password, to database db (NULL or "": u->database, else u->user), application_name
 * "pgward-janitor", client_encoding UTF8. timeout_ms bounds each step (connect, TLS, log-in).
 * Returns NULL with the reason in err. */
struct pw_pgconn *pw_pgconn_open(const struct pw_runtime *rt, int ui, const char *db,
                                 int timeout_ms, char *err, size_t errlen);

/* Row callback: ncols values as text, NULL for SQL NULL. */
typedef void (*pw_pgconn_row_fn)(void *arg, int ncols, const char *const *vals);

/* Run sql (one or more statements) with the simple protocol, within the connection's timeout.
 * The rows of the LAST statement's result (none when it returns no rows, as libpq's PQexec)
 * go to row (may be NULL) once the server is done, and only on success. Returns 0,
 * or -1 with the first server error ("ERROR 42704: role \"x\" does not exist") or an I/O
 * error in err. After a server error the connection stays usable; after an I/O error, a
 * timeout or a protocol violation it is broken and every later call fails. */
int pw_pgconn_exec(struct pw_pgconn *c, const char *sql, pw_pgconn_row_fn row, void *arg, char *err,
                   size_t errlen);

/* The server process serving this connection (BackendKeyData), 0 if none was sent. */
uint32_t pw_pgconn_backend_pid(const struct pw_pgconn *c);

/* Send Terminate (when the connection is still sound), close, free. NULL is fine. */
void pw_pgconn_close(struct pw_pgconn *c);

#endif
