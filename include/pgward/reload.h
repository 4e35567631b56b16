/* One reload of the configuration for SIGHUP and `pgwardctl policy reload` (the same checks,
 * the same effect): the file is read and checked again; a bad one keeps the running
 * configuration and the error goes back to the caller; sections that change only on restart
 * are warned about. Serialised: one reload at a time, whichever thread asks. */
#ifndef PGWARD_RELOAD_H
#define PGWARD_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "pgward/config.h"
#include "pgward/log.h"

/* The file, and the configuration pgwardd started with (restart-only sections are compared
 * with it); level_forced: --log-level overrides the file's. */
void pw_reload_init(const char *path, struct pw_config *started, bool level_forced,
                    enum pw_log_level forced);
/* 0, or -1 with err set; warn(arg, message) for each warning (may be NULL). */
int pw_reload(char *err, size_t errlen, void (*warn)(void *arg, const char *msg), void *arg);
const char *pw_reload_path(void);
void pw_reload_done(void);

#endif
