/* The records pgwardd writes of connections and of its own life (docs/audit.md): kernel
 * events from the ring buffer, sessions starting, refused and ending, reloads and
 * just-in-time roles. Each builds its record and hands it to the trail (audit.h); all are
 * no-ops when the trail is off. Statements are audit_session.h's. */
#ifndef PGWARD_AUDIT_EVENTS_H
#define PGWARD_AUDIT_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "pgward/abi.h"
#include "pgward/caller.h"
#include "pgward/jw.h"
#include "pgward/jwt.h"
#include "pgward/proto.h"

/* "kernel": {...} of what the kernel recorded and pgwardd resolved (f NULL: null). */
void pw_audit_kernel(struct pw_jw *w, const char *key, const struct pw_kernel_facts *f);

/* The record an event of the eBPF programs (abi.h's PW_EV_*) makes: its name ("redirect",
 * "connect_refused", "bypass_attempt") and reason (NULL, "enforcer_down",
 * "denied_destination", "bind", "unix_socket"); false for a type of no record. The one table
 * of the trail and the control socket's event pipe (loader_show.h). */
bool pw_event_kind(uint32_t type, const char **record, const char **reason);
/* An event of the eBPF programs (the loader's ring-buffer thread): redirect,
 * connect_refused, bypass_attempt. */
void pw_audit_kernel_event(const struct pw_event *ev);
/* A steered connection came without its kernel record. */
void pw_audit_tuple_miss(uint64_t serial, const char *client);

/* What a session's start says; pointers are the session's. */
struct pw_audit_start {
	uint64_t serial;
	const char *client; /* peer address */
	const struct pw_identity *id;
	const char *user, *database, *application_name;
	const struct pw_startup *startup; /* every parameter the client's start-up sent */
	const struct pw_kernel_facts *kf; /* NULL: not steered, or no record */
	bool steered;
	const struct pw_jwt_claims *claims; /* NULL: no token */
	const struct pw_upstream *ups;
	const char *role;
	bool jit;
	bool tls; /* with the client */
};
void pw_audit_session_start(const struct pw_audit_start *st);
/* Its pieces, shared with the control socket's session and identity show: the identity's match
 * keys that are set, with their globs, and its auth (under key), and "upstream" (name,
 * address, login). */
void pw_audit_matched(struct pw_jw *w, const char *key, const struct pw_identity *id);
void pw_audit_upstream(struct pw_jw *w, const struct pw_upstream *u);
/* A client refused before its session started (id NULL: before an identity was chosen). */
void pw_audit_session_refused(uint64_t serial, const char *client, const struct pw_identity *id,
                              const struct pw_kernel_facts *kf, const char *sqlstate,
                              const char *message);
/* What a session's end says. */
struct pw_audit_end {
	uint64_t serial;
	const char *identity, *reason;
	uint64_t statements, bytes_in, bytes_out, duration_us;
	const char *recording;        /* its recording's file (NULL: none) */
	const char *recording_sha256; /* the SHA-256 of that file's bytes */
	bool recording_truncated;
};
void pw_audit_session_end(const struct pw_audit_end *e);

/* A reload: ok, or the error that kept the old configuration. */
void pw_audit_policy_reload(const char *config, bool ok, const char *error);
/* A just-in-time role: action "created", "dropped" or "drop_failed". */
void pw_audit_jit_role(const char *action, const char *role, const char *upstream, uint64_t serial,
                       const char *error);

#endif
