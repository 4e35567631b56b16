/* The startup packet's "options" parameter read as the server reads it: split into words by
 * pg_split_opts (blanks separate, a backslash takes the next character as it is), then
 * process_postgres_switches' getopt over "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:"
 * (combined flags "-Ec x=y", an argument glued or in the next word, -c NAME=VALUE and
 * --NAME=VALUE with '-' turned into '_'), with the effect each switch has for a client
 * connection (PostgreSQL 15, src/backend/tcop/postgres.c). Every setting the server would
 * make is reported, so that it can be judged as the same SET would be; input the server
 * refuses is refused here too, with the server's own words. No I/O. */
#ifndef PGWARD_OPTIONS_H
#define PGWARD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

/* Called for every setting, in order; a non-zero return stops the parse (and is returned). */
typedef int (*pw_option_fn)(void *arg, const char *name, const char *value);

/* 0 when the server would accept the options (every setting reported), -1 when it would end
 * the connection (err: its message), or what fn returned. name is as the client wrote it
 * after the '-' to '_' mapping (GUC names are case-insensitive); value may be "". */
int pw_options_parse(const char *options, pw_option_fn fn, void *arg, char *err, size_t errlen);

/* PostgreSQL's parse_bool_with_len (src/backend/utils/adt/bool.c): "true", "false", "yes",
 * "no" and any non-empty prefix of them, "on", "off" and "of" (a lone "o" is ambiguous), "1",
 * "0", all case-insensitive; no blanks. False when the server would not read it as a boolean
 * (*result is then false). */
bool pw_parse_bool(const char *value, size_t len, bool *result);

/* What the startup parameter "replication" makes of a connection, as the server's
 * ProcessStartupPacket reads it: exactly "database" a logical walsender, a boolean true a
 * physical one, a boolean false (or no parameter) an ordinary session, anything else the
 * server's FATAL. One name per value in pw_replication_name. */
enum pw_replication {
	PW_REPL_NONE,     /* absent, or a boolean false: an ordinary session */
	PW_REPL_PHYSICAL, /* a boolean true: a physical walsender */
	PW_REPL_LOGICAL,  /* "database": a logical walsender */
	PW_REPL_INVALID,  /* not a value the server accepts: it ends the connection */
};

enum pw_replication pw_startup_replication(const char *value); /* value NULL: absent */
const char *pw_replication_name(enum pw_replication r);

/* pgward passes only ordinary sessions (a walsender runs replication commands no policy
 * reads): true, with the client's message (SQLSTATE 0A000), for every other value. */
bool pw_replication_refused(const char *value, char *msg, size_t len);

#endif
