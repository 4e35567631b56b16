/* The approvals' notification command (docs/approvals.md, "notify"): each new request's JSON
 * goes to the configured command's standard input, one command at a time on a thread of its
 * own, so that no worker waits for a chat hook or a pager. Private to approval*.c. */
#ifndef PGWARD_APPROVAL_INT_H
#define PGWARD_APPROVAL_INT_H

#include <stddef.h>

#include "pgward/config.h"

int pw_approval_notify_start(char *err, size_t errlen);
void pw_approval_notify_stop(void);
/* Queue json (n bytes) for c's command (copied). */
void pw_approval_notify(const char *json, size_t n, const struct pw_approvals_config *c);

#endif
