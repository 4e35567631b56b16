/* A small blocking PostgreSQL client for pgwardd's own maintenance connections (the JIT role
 * janitor; the approvals' control database, which LISTENs). Not for client sessions: those run
 * on the workers' event loops. It logs in to a configured upstream exactly as a session does
 * (sslmode, SCRAM with the server signature checked, MD5, cleartext only over TLS unless
 * allowed) and speaks only the simple query protocol. Every step is bounded by a timeout (all
 * but name resolution: getaddrinfo blocks as it will); a query that runs past it is cancelled
 * and the connection given up. One connection is used by one thread at a time. Writes to a
 * closed TLS connection may raise SIGPIPE: the calling thread must ignore or block it (pgwardd
 * ignores it, the janitor and approvals threads block it). */
#ifndef PGWARD_PGCONN_H
#define PGWARD_PGCONN_H

#include <stdbool.h>
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

/* The same, saying application_name (what pg_stat_activity shows: "pgward-approvals"). */
struct pw_pgconn *pw_pgconn_open_app(const struct pw_runtime *rt, int ui, const char *db,
                                     const char *application_name, int timeout_ms, char *err,
                                     size_t errlen);

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

/* ---- notifications (LISTEN / NOTIFY) ---- */

/* A NotificationResponse: its channel and payload (valid during the call). The callback must
 * not use the connection. */
typedef void (*pw_pgconn_notify_fn)(void *arg, const char *channel, const char *payload);

/* Where notifications that come while pw_pgconn_exec runs go (NULL, the default: dropped). */
void pw_pgconn_on_notify(struct pw_pgconn *c, pw_pgconn_notify_fn fn, void *arg);

/* Wait on an idle connection (no query running) for notifications, at most timeout_ms (0: only
 * what has come already). Each goes to notify (may be NULL); once one has come, the call
 * returns as soon as nothing more is buffered. Returns how many came (0: timed out, the
 * connection still sound), or -1 with err set: the connection is lost or the server ended it
 * ("FATAL 57P01: terminating connection due to administrator command"), and it is broken. */
int pw_pgconn_wait(struct pw_pgconn *c, int timeout_ms, pw_pgconn_notify_fn notify, void *arg,
                   char *err, size_t errlen);

/* False once the connection is broken (an I/O error, a timeout, a protocol violation): every
 * later call fails, the caller opens another. */
bool pw_pgconn_ok(const struct pw_pgconn *c);

/* The server process serving this connection (BackendKeyData), 0 if none was sent. */
uint32_t pw_pgconn_backend_pid(const struct pw_pgconn *c);

/* Send Terminate (when the connection is still sound), close, free. NULL is fine. */
void pw_pgconn_close(struct pw_pgconn *c);

#endif
