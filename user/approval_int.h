/* Private to approval*.c: a request's struct and its JSON (approval_json.c), and the
 * notification command (approval_notify.c, docs/approvals.md "notify"): each new request's
 * JSON goes to the configured command's standard input, one command at a time, off the
 * workers. */
#ifndef PGWARD_APPROVAL_INT_H
#define PGWARD_APPROVAL_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/types.h>
#include <time.h>

#include "pgward/approval.h"
#include "pgward/config.h"
#include "pgward/jw.h"

/* A request (approval.c's registry; approval_json.c writes it). */
struct req {
	struct req *next;
	char id[PW_APPROVAL_ID_MAX];
	enum pw_approval_state state;
	bool shared; /* a row of the control database too (approval_db.h) */
	uint64_t session;
	int worker;
	char node[PW_NAME_MAX], identity[PW_NAME_MAX], user[PW_NAME_MAX], database[PW_NAME_MAX];
	char client[64];
	char *kernel; /* the kernel-facts object as JSON ("null" when not steered) */
	bool has_agent_uid;
	uid_t agent_uid;
	uint8_t type;
	char *text;
	size_t len, text_bytes; /* kept, and as sent */
	uint64_t fingerprint;
	uint32_t classes;
	int nstmts;
	struct pw_decision d; /* what asked for approval */
	int n_uids, n_gids;
	unsigned uids[PW_MAX_APPROVERS], gids[PW_MAX_APPROVERS];
	struct timespec created;
	uint64_t deadline_ms; /* monotonic */
	int timeout_s;
	/* decided */
	struct timespec decided_at;
	char decided_by[64];
	long long decided_uid; /* -1: pgwardd itself (timeout, withdrawal) */
	enum pw_approval_scope scope;
	int for_s;
	char reason[256];
};

/* approval_json.c: the request's members into the object open in w (approval show's shape),
 * and the kernel facts as a JSON value (malloc'd). */
void pw_approval_write(struct pw_jw *w, const struct req *r);
char *pw_approval_kernel_json(const struct pw_kernel_facts *kf);

/* pending(id): is request id still waiting (else its announcement is skipped)? */
int pw_approval_notify_start(bool (*pending)(const char *id), char *err, size_t errlen);
void pw_approval_notify_stop(void);
/* Queue json (n bytes) of request id for c's command (copied; dropped when the queue is full). */
void pw_approval_notify(const char *id, const char *json, size_t n,
                        const struct pw_approvals_config *c);

#endif
