/* The words of approvals (approval.h, approval_db.h): request ids, states, scopes and their
 * names (approval.c's tables). */
#ifndef PGWARD_APPROVAL_TYPES_H
#define PGWARD_APPROVAL_TYPES_H

#define PW_APPROVAL_ID_MAX 40

enum pw_approval_scope { PW_SCOPE_ONCE, PW_SCOPE_FINGERPRINT, PW_SCOPE_SESSION };
/* "once", "fingerprint", "session" */
const char *pw_approval_scope_name(enum pw_approval_scope s);
int pw_approval_scope_parse(const char *s, enum pw_approval_scope *out);

enum pw_approval_state {
	PW_AS_PENDING,
	PW_AS_APPROVED,
	PW_AS_DENIED,
	PW_AS_TIMED_OUT,
	PW_AS_WITHDRAWN,
};
/* "pending", "approved", "denied", "timed_out", "withdrawn" */
const char *pw_approval_state_name(enum pw_approval_state s);

#endif
