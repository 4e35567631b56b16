/* Approvals (docs/approvals.md): a statement whose decision is "approve" parks its session
 * while a person decides. The worker that holds the session asks here (pw_approval_request);
 * the request is kept in a registry shared by the workers, the control thread and the
 * notifier, under one mutex (requests are rare: a lock is simpler than messages here, and
 * nothing on a worker's hot path takes it). The decision goes back to the holding worker as a
 * message (pw_loop_post) and reaches the session through pw_session_approval (session.h).
 *
 * Decisions come from `pgwardctl approval approve|deny` (the control socket), from the
 * timeout, from the session itself (its client left or cancelled: withdrawn), and, with a
 * control database, from any node of the fleet (approval_db.c). Every request and decision
 * goes to the log and the audit trail (record type "approval"). */
#ifndef PGWARD_APPROVAL_H
#define PGWARD_APPROVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "pgward/approval_types.h"
#include "pgward/caller.h"
#include "pgward/config.h"
#include "pgward/inspect.h"
#include "pgward/jw.h"

#define PW_APPROVAL_TEXT_MAX (64 * 1024) /* the text a request keeps; longer ones are cut */

/* What a held statement asks, from the worker that holds it. Copied. */
struct pw_approval_ask {
	uint64_t session;
	int worker;
	const struct pw_config *cfg;
	const struct pw_identity *id;
	const char *user, *database, *client;
	const struct pw_kernel_facts *kf; /* NULL: not steered */
	bool has_uid;                     /* the agent's uid is known: the kernel's record, or */
	uid_t uid;                        /* a unix socket's peer credentials */
	uint8_t type;                     /* 'Q', 'P' */
	const char *text;
	size_t len;
	const struct pw_inspect_facts *facts; /* the decision that asked for approval */
};

/* The decision, as the holding session gets it. */
struct pw_approval_verdict {
	char id[PW_APPROVAL_ID_MAX];
	bool approved;
	enum pw_approval_scope scope;
	struct pw_deny d; /* denied: the refusal the client gets (42501, or 57014 on a cancel) */
};

/* Where a decision goes, on the holding worker's thread: the session's (session.h's
 * pw_session_approval); false when the session is gone. */
struct pw_worker;
typedef bool (*pw_approval_deliver_fn)(struct pw_worker *w, uint64_t session,
                                       const struct pw_approval_verdict *v);
/* The notify command's helper process, forked before pgwardd starts any thread or opens any
 * descriptor of a session (main, once). 0 or -1 with err set. */
int pw_approval_notify_fork(char *err, size_t errlen);
/* Start the registry and the notifier thread. 0 or -1 with err set. */
int pw_approval_start(const struct pw_config *cfg, pw_approval_deliver_fn deliver, char *err,
                      size_t errlen);
void pw_approval_config(const struct pw_config *cfg); /* a reload */
/* Every pending request is denied ("pgwardd is stopping") and the notifier ends. */
void pw_approval_stop(void);

/* A held statement: a pending request is made, logged, audited and announced (the notify
 * command). 0 with its id in id_out; -1 with d filled (approvals unavailable: no control
 * socket, too many pending, out of memory): the statement is refused with d. */
int pw_approval_request(const struct pw_approval_ask *a, char id_out[PW_APPROVAL_ID_MAX],
                        struct pw_deny *d);
/* The session gives its request up: its client left (cancelled false) or sent a
 * CancelRequest (true; the session gets a 57014 verdict). Nothing when it is decided. */
void pw_approval_withdraw(const char *id, bool cancelled, const char *why);
/* A CancelRequest for this session (cancel.c's key): withdraw its pending request, if any.
 * True when there was one. */
bool pw_approval_cancel_session(uint64_t session);

/* Is there a live grant (a decision with scope fingerprint, not expired) of this identity for
 * a statement of this shape (the same text up to its literals, compared whole) that the same
 * rule or guardrail asked approval for? by: the request that made it. Any thread. */
bool pw_approval_granted(const struct pw_identity *id, const char *text, size_t len,
                         const struct pw_inspect_facts *asked, char by[PW_APPROVAL_ID_MAX]);

/* ---- the control socket's commands (control thread) ---- */

struct pw_approval_decider {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* the decider's supplementary groups */
	int n_groups;
	char user[64];
};
/* Write the member "result": every pending request (all: the decided ones kept too). */
void pw_approval_list(struct pw_jw *w, bool all);
/* One request as the member "result"; false when there is none with this id. */
bool pw_approval_show(const char *id, struct pw_jw *w);
/* Decide a pending request. 0 with the decided request written as the member "result"; else
 * a status from control.h's enum (not found, permission: not an approver of the identity, or
 * the requester's own uid; failed: decided already) with err set. for_s: the fingerprint
 * grant's duration. */
int pw_approval_decide(const char *id, bool approve, enum pw_approval_scope scope, int for_s,
                       const char *reason, const struct pw_approval_decider *by, struct pw_jw *w,
                       char *err, size_t errlen);
/* Once a second (control thread): timeouts, expired grants, decided requests forgotten. */
void pw_approval_tick(void);

/* Counts for stats. */
struct pw_approval_counts {
	uint64_t pending, approved, denied, timed_out, withdrawn;
};
void pw_approval_counts(struct pw_approval_counts *c);

#endif
