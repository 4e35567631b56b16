/* `session watch`: one line per decided statement for the control socket's subscribers
 * (control.h, topic statements), built only while someone watches. */
#ifndef PGWARD_WATCH_H
#define PGWARD_WATCH_H

#include "pgward/inspect.h"

/* decision: "allow", "deny", "held", "approved", "mask"; d: the refusal (deny) or NULL; f: what
 * decided (NULL: a limit); approval: the request's id or NULL. */
void pw_watch_statement(const struct pw_caller *c, const struct pw_stmt *m, const char *decision,
                        const struct pw_deny *d, const struct pw_inspect_facts *f,
                        const char *approval);

#endif
