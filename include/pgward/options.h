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

#include <stddef.h>

/* Called for every setting, in order; a non-zero return stops the parse (and is returned). */
typedef int (*pw_option_fn)(void *arg, const char *name, const char *value);

/* 0 when the server would accept the options (every setting reported), -1 when it would end
 * the connection (err: its message), or what fn returned. name is as the client wrote it
 * after the '-' to '_' mapping (GUC names are case-insensitive); value may be "". */
int pw_options_parse(const char *options, pw_option_fn fn, void *arg, char *err, size_t errlen);

#endif
