/* Reading a session recording (docs/recording.md): the gzip stream, the PGWREC header, the
 * metadata line and the frames, each direction's bytes reassembled into whole protocol v3
 * messages (type byte, length word, body) in the order they were completed; and psql's rules
 * for laying out text, for pgwardctl session replay (user/ctl_session.c) to print a session
 * as `psql -X -e` did.
 *
 * A recording is untrusted input: anything malformed or cut is an error with a reason, never
 * a crash, and a message is held whole in memory only up to PW_REC_MSG_MAX. */
#ifndef PGWARD_RECORD_READ_H
#define PGWARD_RECORD_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#define PW_REC_MSG_MAX (1u << 30) /* a longer message (length word) is refused */

struct pw_rec_reader;

/* One whole message of either stream. body is valid until the next pw_rec_next. */
struct pw_rec_msg {
	char dir;          /* 'F' (client to server) or 'B' (what the client received) */
	uint8_t type;      /* the message's type byte */
	uint64_t t_us;     /* frame time (µs since "started") of its first byte */
	uint64_t t_end_us; /* ... and of its last byte */
	const uint8_t *body;
	uint32_t len; /* body bytes (the length word less 4) */
};

/* How the recording ended, once pw_rec_next returned 0. */
struct pw_rec_end {
	bool ended;         /* an E frame: the session's end */
	bool truncated;     /* an X frame: the recording stopped (max_bytes) */
	bool mid_message;   /* at the first of them, a message was still incomplete */
	char reason[128];   /* the E frame's reason ("?" when it has none) */
	char x_reason[128]; /* the X frame's */
	uint64_t t_us;      /* the last end frame's time */
};

/* Open a recording file, or gzip bytes in memory (kept by the caller while the reader
 * lives); reads the header and the metadata line. NULL with a reason in err on failure. */
struct pw_rec_reader *pw_rec_open(const char *path, char *err, size_t errlen);
struct pw_rec_reader *pw_rec_open_mem(const void *gz, size_t len, char *err, size_t errlen);
void pw_rec_close(struct pw_rec_reader *r);

/* The metadata object (borrowed), and one of its members as text ("" when absent; numbers
 * are printed). */
json_t *pw_rec_meta(const struct pw_rec_reader *r);
const char *pw_rec_meta_str(const struct pw_rec_reader *r, const char *key, char *buf, size_t cap);

/* The next whole message: 1 (in *m), 0 at the end of the recording (pw_rec_end says how it
 * ended), -1 on an error (pw_rec_error says why; every message before it was returned). An
 * end without an E or X frame is an error when a message is incomplete there (a cut file),
 * else 0 with neither ended nor truncated set. */
int pw_rec_next(struct pw_rec_reader *r, struct pw_rec_msg *m);
const char *pw_rec_error(const struct pw_rec_reader *r);
const struct pw_rec_end *pw_rec_end(const struct pw_rec_reader *r);

/* A message's fields: the C string at *o in its body ("" past the end), the 16-bit integer
 * there (0 past the end), *o moved past it; its name ("Query", "DataRow"...) into buf, or
 * NULL for a type unknown in its direction. */
const char *pw_rec_cstr(const struct pw_rec_msg *m, size_t *o);
unsigned pw_rec_be16(const struct pw_rec_msg *m, size_t *o);
const char *pw_rec_msg_name(const struct pw_rec_msg *m, char *buf, size_t cap);

/* ---- psql's text rules (PostgreSQL 15, UTF-8), for a renderer ---- */

/* The byte length of the UTF-8 character at s (1 for an invalid lead byte), and its display
 * width as psql counts it (ucs_wcwidth and its Unicode tables): 0 for a combining one, 2 for
 * an East Asian wide one, -1 for a control character. */
int pw_rec_mblen(const uint8_t *s);
int pw_rec_dsplen(const uint8_t *s);

/* Untrusted text as psql prints it raw, except what could move a terminal: C0 and C1
 * controls other than tab, newline and CR LF (line: those too, to stay on one line), and bytes of
 * invalid UTF-8, come out as \xNN (a C1 character: \u00NN). */
void pw_rec_text(FILE *f, const char *s, size_t n, bool line);

/* A header or cell as psql's pg_wcsformat lays it out: its display lines (NUL-separated in
 * buf, line i at buf + start[i], width[i] columns), control characters shown as \r, \xNN or
 * \uNNNN, tabs expanded to the next multiple of 8. s: valid UTF-8 (as a pw_rec_result holds
 * it). The arrays are reused from call to call; free them when done. 0, or -1 (no memory). */
struct pw_rec_lines {
	char *buf;
	size_t cap;
	int n, lcap;
	size_t *start;
	int *width;
};
int pw_rec_format(struct pw_rec_lines *f, const char *s);

/* A query's result as libpq holds it for psql: a RowDescription's columns, its DataRows, and
 * what ends it (the caller sets tag or err). Names and cells are NUL-terminated, cut at a
 * NUL inside and with invalid UTF-8 dropped, as psql's mbvalidate does; a NULL or missing
 * cell is "". A malformed message is taken as far as it goes. */
struct pw_rec_result {
	bool tuples; /* a table (a RowDescription or a DataRow came) */
	bool copy;   /* a COPY's start */
	int ncols;
	char *names; /* ncols names, one after the other */
	uint32_t *types;
	char **rows; /* each: ncols cells, one after the other */
	size_t nrows, cap;
	char *tag;    /* the CommandComplete's tag */
	uint8_t *err; /* an ErrorResponse's body (NUL-terminated) */
	uint32_t errlen;
};
/* A RowDescription starts the result over; a DataRow adds a row. 0, or -1 (no memory). */
int pw_rec_result_desc(struct pw_rec_result *r, const uint8_t *body, uint32_t len);
int pw_rec_result_row(struct pw_rec_result *r, const uint8_t *body, uint32_t len);
void pw_rec_result_free(struct pw_rec_result *r);

/* An ErrorResponse (error) or NoticeResponse body as psql prints it at its default VERBOSITY
 * and SHOW_CONTEXT: "SEVERITY:  message", the LINE display and caret of a position in query
 * (NULL: unknown; the position is then said as " at character N"), DETAIL, HINT, QUERY and,
 * for an error, CONTEXT lines. body must end in a NUL (as pw_rec_next's do). */
void pw_rec_print_error(FILE *out, const uint8_t *body, uint32_t len, const char *query,
                        bool error);

#endif
