/* Just-in-time roles: an identity whose policy has "jit_role" runs each session as a role made
 * for it. On the session's own upstream connection, right after login, pgwardd creates the
 * role NOLOGIN, grants it exactly the policy's privileges and memberships, and SETs ROLE to it;
 * when the session ends the janitor thread drops it from a connection of its own. The role's
 * COMMENT names this host and pgwardd process, so that roles left behind by a pgwardd that
 * died (SIGKILL, power loss) are found and dropped by the next one's start-up sweep, and
 * roles of other hosts or of live pgwardd processes are never touched. */
#ifndef PGWARD_JIT_H
#define PGWARD_JIT_H

#include <stddef.h>
#include <stdint.h>

#include "pgward/config.h"
#include "pgward/runtime.h"

#define PW_JIT_PREFIX "pgward_jit_"

/* The role's name for a session: "pgward_jit_<host>_<proc>_<serial>", with <host> 8 hex of this
 * host's id, <proc> 8 random hex drawn once per pgwardd process (so a restarted pgwardd, whose
 * serials start again at 1, never meets a name its dead predecessor left behind), <serial> the
 * session serial in hex. At most 45 bytes. */
void pw_jit_role_name(uint64_t serial, char out[PW_NAME_MAX]);

/* First 8 hex characters of /etc/machine-id, or of a hash of the hostname without one. */
const char *pw_jit_host_id(void);

/* The script that sets a session up, run on its upstream connection right after login as ONE
 * simple Query (an implicit transaction: all or nothing):
 *   CREATE ROLE "<r>" NOLOGIN; COMMENT ON ROLE "<r>" IS 'pgward-jit host=<host id> pid=<pid>
 *   start=<start> pidns=<pidns> db=<database> identity=<name>'; GRANT "<m>" TO "<r>" (each
 *   member_of); per grant: GRANT USAGE ON SCHEMA "<s>" TO "<r>" (once per schema), GRANT <privs>
 *   ON TABLE "<s>"."<t>" TO "<r>" (or ON ALL TABLES IN SCHEMA "<s>"); GRANT "<r>" TO
 *   CURRENT_USER; SET ROLE "<r>"
 * (statements joined by "; "). <start>: this process's start time in clock ticks after boot
 * (/proc/self/stat field 22), <pidns>: the inode of its PID namespace; both tell a live pgwardd
 * from a dead one whose pid was reused. db and identity values are %-encoded (%XX) where they
 * hold a space, '%', '=', '\', or a control character, so the comment parses back
 * unambiguously and means the same with standard_conforming_strings off. Identifiers are
 * quoted as quote_ident (always, "" doubled), literals with '' doubled, never E''. Names must
 * be 1..63 bytes of valid UTF-8 (a table may be "" for ALL TABLES); privileges come from
 * PostgreSQL's table privileges. Returns the length written, or -1 (invalid, or more than cap
 * - 1 bytes). */
int pw_jit_setup_sql(const struct pw_identity *id, const char *role, const char *database,
                     char *out, size_t cap);

/* A fixed role's set-up: SET ROLE "<role>" (quoted as above). Length, or -1 (invalid name). */
int pw_role_setup_sql(const char *role, char *out, size_t cap);

/* Queue the drop of a session's role, after its upstream connection is closed: the janitor
 * connects to the same upstream and database (one connection kept across consecutive drops
 * there), ends the session's backend if it still runs (pg_terminate_backend(backend_pid),
 * waiting up to 5 s on PostgreSQL 14+, only for a backend of the same login, skipped for pid 0,
 * failure ignored), then runs DROP OWNED BY "<r>"; DROP ROLE "<r>" (a role that no longer exists
 * counts as dropped), retried with backoff (1 s, 2 s, 4 s) and logged with pw_warn when it
 * finally fails. Takes its own reference on rt. Never blocks (worker threads call it); starts
 * the janitor thread if it is not running. */
void pw_jit_drop(struct pw_runtime *rt, int upstream, const char *database, const char *role,
                 uint32_t backend_pid);

/* Start the janitor thread and queue the crash sweep of every upstream an identity with a JIT
 * role uses (its upstream, or every upstream for identity->upstream == -1): roles named
 * pgward_jit_% whose comment names this host and PID namespace, and a pid that is not a live
 * process with that start time, are dropped (DROP OWNED BY in the comment's database). The
 * sweep runs in the janitor thread; an upstream it cannot reach is tried again later (30 s,
 * doubling up to 10 min). Returns 0, or -1 when the thread cannot be started. */
int pw_jit_start(struct pw_runtime *rt);

/* Finish the queued drops within timeout_ms (what is left then is logged with pw_warn, counted
 * failed, and left to the next start's sweep; a pending sweep is dropped) and stop the thread.
 * Returns after at most timeout_ms + 2 s even if a step is still in flight. */
void pw_jit_stop(int timeout_ms);

/* For tests and observability: drops done (sweeps included), drops given up, queued now (in
 * progress included). Any pointer may be NULL. */
void pw_jit_stats(uint64_t *done, uint64_t *failed, int *queued);

#endif
