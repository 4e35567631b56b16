/* What the server says of a session once pgwardd is logged in, read as pure functions: each
 * ParameterStatus judged (the analyser reads statements as the server does only with
 * standard_conforming_strings on and a client_encoding that cannot hide a quote in a
 * multibyte character; a fixed or just-in-time role must not turn into a superuser), and the
 * set-up's last row (the session's search_path, current user and existing schemas). */
#ifndef PGWARD_UPSTREAM_SETUP_H
#define PGWARD_UPSTREAM_SETUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/config.h"
#include "pgward/inspect.h"

/* A ParameterStatus body: its name and value (pointers into body). 0, or -1 (malformed, why
 * filled with 08P01). */
int pw_setup_param(const uint8_t *body, size_t len, const char **name, const char **value,
                   struct pw_deny *why);

/* Is the setting the server reports one the session may go on with? id may be NULL (not
 * identified yet); role: the fixed or just-in-time role ("" none); established: the session's
 * own statements run (a role change is the session's doing). 0, or -1 with why filled. */
int pw_setup_param_judge(const struct pw_config *cfg, const struct pw_identity *id,
                         const char *role, bool established, const char *name, const char *value,
                         struct pw_deny *why);

/* What the set-up's last statement returned. */
struct pw_truth {
	char path[1024];        /* current_setting('search_path') */
	char user[PW_NAME_MAX]; /* current_user */
	char schemas[1024];     /* current_schemas(true), as identifiers */
};
/* The DataRow of that statement (three text columns, none NULL, none with a NUL). False when
 * it is not that. */
bool pw_setup_truth_row(const uint8_t *body, size_t len, struct pw_truth *t);
#endif
