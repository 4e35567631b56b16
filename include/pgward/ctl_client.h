/* pgwardctl's side of pgwardd's control socket (docs/control.md): one request, its answer or
 * its stream; and what the commands that print pgwardd's answers share: values an agent or a
 * client controls printed escaped, so that they can neither move the terminal nor pass for
 * another line or field. */
#ifndef PGWARD_CTL_CLIENT_H
#define PGWARD_CTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define PW_CTL_SOCKET_DEFAULT "/run/pgward/control.sock"
#define PW_CTL_SOCKET_ENV     "PGWARD_CONTROL_SOCKET"

#define PW_CTL_TEXT_CAP  212 /* a statement's text in a plain line: about 200 bytes of it */
#define PW_CTL_VALUE_CAP 512 /* any other value */

/* -s PATH (NULL: $PGWARD_CONTROL_SOCKET, else the default). Set by main(). */
extern const char *pw_ctl_socket;

/* Prints the answer to one request: under -j (-p) the result as pgwardd wrote it (indented),
 * else plain(result). args (may be NULL) is taken. Returns the exit status; every error is
 * printed (pgwardd's own: usage → PW_CTL_USAGE, permission → PW_CTL_DENIED, else
 * PW_CTL_FAILED). */
int pw_ctl_show(const char *command, json_t *args, void (*plain)(json_t *result));
/* A stream: every line printed as it comes (-j: as received; plain: plain(line)) until pgwardd
 * closes it or SIGINT or SIGTERM comes; {"lost": N} lines are a note. */
int pw_ctl_stream(const char *command, json_t *args, void (*plain)(json_t *line));

/* OBJ NAME that takes no argument: help, a usage error, or pw_ctl_show("OBJ NAME", plain). */
int pw_ctl_simple(const char *obj, const char *name, int argc, char **argv,
                  void (*plain)(json_t *result));

/* Adds key: s to args (the user's text, which must be UTF-8); false: a usage error was
 * printed. */
bool pw_ctl_arg_str(json_t *args, const char *key, const char *s);

/* ---- printing pgwardd's values ---- */

/* s (n bytes) as it is when nothing in it could mislead (a name, a number, a path), else
 * quoted and escaped (pw_logqn: \" \\ and \xNN for every byte outside printable ASCII), cut
 * to cap bytes with "..." after. '@', '=' and blanks are quoted, so user@database and k=v stay
 * unambiguous. */
void pw_ctl_put_str(const char *s, size_t n, size_t cap);
/* A value: a string as pw_ctl_put_str, a number, yes/no, "-" for null or absent; an array of
 * scalars joined by ","; an object or other arrays as escaped JSON. */
void pw_ctl_put(json_t *v, size_t cap);
/* o's member key: pw_ctl_put(o[key]) */
void pw_ctl_put_key(json_t *o, const char *key, size_t cap);
/* Every member of o as "  key value" (the first without the two blanks when first); objects
 * nested as "key.sub value", arrays of objects as "key[i].sub value". */
void pw_ctl_put_fields(json_t *o, bool first);
/* "  label value" of o's member key, when it is there and not null. */
void pw_ctl_put_opt(json_t *o, const char *key, const char *label);
/* A word of pgwardd's own vocabulary ("in transaction"): as it is when it is only lower-case
 * letters, blanks and '_', else as pw_ctl_put. */
void pw_ctl_put_word(json_t *v);
/* o's members but the ones named in skip (NULL-ended), as pw_ctl_put_fields (first: no
 * "  " before the first). */
void pw_ctl_put_rest(json_t *o, const char *const *skip, bool first);
/* The kernel's facts of a connecting process (a session's, an approval's "kernel") as the
 * line "\tpid N  uid N  ... cgroup C", and its ancestry; "not steered" for null. */
void pw_ctl_put_kernel(json_t *k);
/* Milliseconds as a person reads them: "820 ms", "1.5 s", "4 min 10 s", "2 h 5 min". */
void pw_ctl_put_ms(json_t *ms);

/* ---- commands whose table is in another file ---- */

/* session show, kill, watch (ctl_session_live.c) */
int pw_ctl_session_show(int argc, char **argv);
int pw_ctl_session_kill(int argc, char **argv);
int pw_ctl_session_watch(int argc, char **argv);
/* policy show, reload (ctl_policy_live.c) */
int pw_ctl_policy_show(int argc, char **argv);
int pw_ctl_policy_reload(int argc, char **argv);

#endif
