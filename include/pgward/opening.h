/* A session's opening: from the client's first packet to the established relay. It drives the
 * phases of the start-up in order (client_login.h: the first packet, TLS, the client's
 * authentication; admit.h: identity, upstream and start-up policy; pool.h: a parked upstream
 * connection taken over, or upstream_phase.h: dialling, the login and the role set-up; then
 * the catalog snapshot the session's statements are judged against), over the session's two
 * sockets and buffers, and returns an outcome: only the session closes or fails.
 *
 * What the opening admits (identity, upstream, role, keys, policy state, the start-up the
 * client saw) stays here for the session's life: the session reads the fields marked
 * "admitted" once the opening is done, and gives them back through pw_opening_end. */
#ifndef PGWARD_OPENING_H
#define PGWARD_OPENING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/buf.h"
#include "pgward/caller.h"
#include "pgward/cancel.h"
#include "pgward/client_login.h"
#include "pgward/inspect.h"
#include "pgward/loop.h"
#include "pgward/policy_session.h"
#include "pgward/pool.h"
#include "pgward/runtime.h"
#include "pgward/sock.h"
#include "pgward/upstream_phase.h"

/* Where the opening happens: the session's, for its whole life. */
struct pw_opening_io {
	struct pw_sock *cl, *up;
	struct pw_buf *cbuf; /* client -> upstream */
	struct pw_buf *ubuf; /* upstream -> client */
	struct pw_worker *w;
	struct pw_pool *pool;
	struct pw_runtime *rt;
	uint64_t serial; /* for the log: the session and its peer */
	const char *peer;
};

struct pw_opening {
	struct pw_opening_io io;
	int state; /* see opening.c */
	uint64_t deadline_ms;
	bool local;                 /* unix socket or loopback: a token may travel in clear */
	bool steered;               /* through the eBPF redirect */
	struct pw_kernel_facts *kf; /* steered: what the kernel recorded (NULL: no record) */
	struct pw_dial dial;
	struct pw_up_login uplogin;

	/* admitted */
	struct pw_client_login client; /* user, database, identity, claims */
	const struct pw_upstream *ups;
	int ups_idx;
	int *up_slot;             /* one of the upstream's max_connections, held with it */
	bool counted;             /* holds one of its identity's max_sessions */
	char role[PW_NAME_MAX];   /* the role the upstream session runs as; "" = the login */
	bool jit;                 /* role is made for this session and dropped after it */
	char *setup_sql;          /* the Query that scopes the upstream session */
	bool truth_wanted;        /* statements are judged against what the server says */
	struct pw_cancel_key key; /* the upstream's address and keys */
	uint8_t *up_startup;      /* the StartupMessage sent upstream: the pool's key */
	size_t up_startup_len;
	struct pw_preamble pre;      /* the start-up as first sent to the client (pool.h) */
	struct pw_policy_session ps; /* search_path, prepared statements (ps_ready) */
	bool ps_ready;
	/* a ParameterStatus the client already has (server_version): the session's probe of a
	 * client that may be gone */
	uint8_t probe[96];
	size_t probe_len;

	/* what the last outcome says */
	struct pw_deny fail;   /* PW_OPEN_FAIL */
	const char *close_why; /* PW_OPEN_CLOSE */
	uint32_t cancel_pid;   /* PW_OPEN_CANCEL */
	uint32_t cancel_key;
	bool rfq_pending; /* PW_OPEN_READY: the start-up's ReadyForQuery is still to come */
	char tx;          /* PW_OPEN_READY: its transaction status */
};

enum pw_open_outcome {
	PW_OPEN_STILL,  /* nothing moved: wait for the sockets */
	PW_OPEN_MOVED,  /* something moved: step again */
	PW_OPEN_READY,  /* established: the relay takes over (rfq_pending, tx) */
	PW_OPEN_CANCEL, /* the client sent a CancelRequest (cancel_pid, cancel_key) */
	PW_OPEN_FAIL,   /* the client gets a FATAL (fail) */
	PW_OPEN_FLUSH,  /* the server's own FATAL is on its way to the client: close after it */
	PW_OPEN_CLOSE,  /* close without a word (close_why) */
};

/* A client accepted at peer (steered: through the redirect, its kernel record looked up by
 * the connection's tuple). */
void pw_opening_start(struct pw_opening *op, const struct pw_opening_io *io,
                      const struct sockaddr *peer, bool steered);
/* Everything the opening can do now. */
enum pw_open_outcome pw_opening_step(struct pw_opening *op);
/* Its deadline (deadline_ms) passed: the FATAL the client gets. */
void pw_opening_timeout(const struct pw_opening *op, struct pw_deny *d);
/* Still with the client alone (nothing upstream yet)? */
bool pw_opening_client_side(const struct pw_opening *op);
/* May the session write to the client (not during its TLS handshake) or the upstream (once
 * the login is under way)? */
bool pw_opening_client_writable(const struct pw_opening *op);
bool pw_opening_upstream_writable(const struct pw_opening *op);
/* Waiting for a catalog snapshot (pw_loop_nudge wakes it)? */
bool pw_opening_waits_catalog(const struct pw_opening *op);

/* ---- for the established session ---- */

/* A start-up message the relay met after the opening (a ParameterStatus, a BackendKeyData,
 * or any message while the start-up is captured for reuse), whole at msg: judged, its key
 * taken, kept. 0, or -1 with why filled when the session cannot go on with it. */
int pw_opening_after(struct pw_opening *op, uint8_t *msg, size_t total, struct pw_deny *why);
/* The start-up will not be captured whole: the connection is not for reuse. */
void pw_opening_not_reusable(struct pw_opening *op);
/* Could the upstream connection serve a later client (the opening's side of it)? */
bool pw_opening_reusable(const struct pw_opening *op);
/* The trail's session_start (and the just-in-time role it made): what was admitted. tls:
 * with the client. */
void pw_opening_audit(const struct pw_opening *op, bool tls);
/* The client left at a clean boundary: the upstream connection goes to the pool. */
void pw_opening_park(struct pw_opening *op);
/* The upstream connection is closed: its slot goes back. */
void pw_opening_upstream_gone(struct pw_opening *op);
/* The session ends: what was admitted is given back (slot, cancel key, session count, a
 * just-in-time role for the janitor to drop). */
void pw_opening_end(struct pw_opening *op);
/* Its memory (the session is freed). */
void pw_opening_free(struct pw_opening *op);
#endif
