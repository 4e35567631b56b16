/* Admission: once the client is who it claims, which upstream its session goes to and what
 * its identity's policy says at start-up (the settings its startup packet makes, where and
 * when it may connect, how many sessions it may hold, the role or just-in-time role its
 * upstream session runs as, and the statement that scopes that session). Pure functions in
 * the manner of auth.c: they decide and fill a refusal; the session acts on it. */
#ifndef PGWARD_ADMIT_H
#define PGWARD_ADMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "pgward/config.h"
#include "pgward/inspect.h"
#include "pgward/proto.h"

/* The upstream of identity id: its own, or (id names none) the one configured for the
 * address a steered client dialled (dialled: NULL when the connection was not steered).
 * Returns its index, or -1 with why filled. */
int pw_admit_upstream(const struct pw_config *cfg, const struct pw_identity *id,
                      const struct sockaddr *dialled, struct pw_deny *why);

struct pw_admission {
	bool counted;           /* holds one of the identity's max_sessions (release it) */
	char role[PW_NAME_MAX]; /* the role the upstream session runs as; "" = the login */
	bool jit;               /* role is made for this session, dropped after it */
	char *setup_sql;        /* the Query that scopes the upstream session (caller frees) */
	bool truth_wanted;      /* its last statement says what the server made of the session */
	bool allow_all;         /* nothing is decided from analysis: nothing to ask the server */
};

/* The identity's start-up policy for a session (serial: for a just-in-time role's name) of
 * upstream u. 0: admitted, a filled; -1: refused, why filled (a may still hold something to
 * release or free: counted, setup_sql). */
int pw_admit_session(const struct pw_config *cfg, const struct pw_identity *id,
                     const struct pw_upstream *u, int ups_idx, const struct pw_startup *st,
                     const char *database, uint64_t serial, time_t now, struct pw_admission *a,
                     struct pw_deny *why);

/* The StartupMessage for the upstream: the client's parameters (st), with the user replaced by
 * user and the database by database (added when the client named none). 0 with *pkt
 * allocated (the caller frees it), or -1 when it does not fit or out of memory. */
int pw_admit_startup_packet(const struct pw_startup *st, const char *user, const char *database,
                            uint8_t **pkt, size_t *len);
#endif
