/* Private to audit_session.c and audit_stmt.c: one session's statements followed along the
 * protocol (audit_session.c) and their records (audit_stmt.c). Everything public is in
 * pgward/audit_session.h. */
#ifndef PGWARD_AUDIT_SESSION_INT_H
#define PGWARD_AUDIT_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pgward/audit_session.h"
#include "pgward/jw.h"

#define NAME_CAP 64

/* A prepared statement (or the unnamed one), as its Parse said: the record's members for it
 * (statement, text, fingerprint, decision), shared by the portals bound to it. */
struct prep {
	struct prep *next; /* in the session's list (or the free list) */
	int refs;
	char name[NAME_CAP];
	struct pw_jw frag;
};

/* A portal the server holds (Bind confirmed), or one on its way. */
struct portal {
	struct portal *next;
	char name[NAME_CAP];
	struct prep *prep; /* a reference; NULL: its statement was forgotten */
	struct pw_jw params;
};

enum kind { K_QUERY, K_CALL, K_PARSE, K_BIND, K_DESCRIBE, K_EXECUTE, K_CLOSE, K_SYNC };

struct entry {
	struct entry *next;
	enum kind kind;
	bool refused; /* its record is written already; it waits for the sentinel's error */
	bool failed;  /* the server's error came */
	bool statement_of_describe; /* K_DESCRIBE of a statement: 't' then 'T' or 'n' */
	char close_what;            /* K_CLOSE: 'S' or 'P' */
	char name[NAME_CAP];        /* K_PARSE, K_CLOSE: statement or portal; K_BIND, K_EXECUTE:
	                             * the portal */
	char stmt[NAME_CAP];        /* K_BIND, K_EXECUTE: its statement */
	struct prep *prep;          /* K_PARSE: the statement it makes; K_EXECUTE: the one it runs
	                             * (a reference, taken when the Execute was sent) */
	struct timespec ts;         /* when the client's message came */
	uint64_t start_us;
	uint64_t rows;
	uint32_t tags_cut; /* command tags past 16 KiB of them: counted, not written */
	char sqlstate[6];
	struct pw_jw body; /* K_QUERY, K_CALL: the record's members known at the start;
	                    * K_BIND, K_EXECUTE: the parameters */
	struct pw_jw tags; /* the command tags, as JSON array elements */
};

struct pw_audit_session {
	uint64_t serial;
	const char *identity;
	uint64_t recorded;
	struct entry *head, *tail, *free_entries;
	struct prep *preps, *free_preps;
	struct portal *portals, *free_portals;
	int n_preps, n_portals;
	size_t max_field;
	struct pw_jw scratch; /* a value with what the detectors find redacted */
	size_t prep_bytes;    /* the texts the prepared statements hold */
	int n_entries;        /* in the queue */
};

/* CLOCK_MONOTONIC in microseconds, and the wall clock into *wall when given. */
uint64_t pw_as_now_us(struct timespec *wall);

/* audit_stmt.c: the records */
/* s (n bytes) at key (NULL: an element), what the trail's detectors find redacted. */
void pw_as_text(struct pw_audit_session *as, struct pw_jw *w, const char *key, const char *s,
                size_t n);
void pw_as_fingerprint(struct pw_jw *w, const char *sql, size_t len);
/* decision, by, rule, guardrail, classes; and the refusal */
void pw_as_decision(struct pw_jw *w, bool refused, const struct pw_deny *d,
                    const struct pw_inspect_facts *f);
/* The record of e (a Query, FunctionCall or Execute) with its ending. */
void pw_as_emit(struct pw_audit_session *as, struct entry *e, const char *status);
/* A refused message's record, written at once. */
void pw_as_emit_refused(struct pw_audit_session *as, const struct pw_stmt *m,
                        const struct pw_deny *d, const struct pw_inspect_facts *f);
/* A named statement the server prepared (its text, for the Executes that name it). */
void pw_as_emit_prepared(struct pw_audit_session *as, const struct prep *p);
/* A Bind's parameters into w ("parameters": [...]); false when the message is malformed. */
bool pw_as_bind_params(struct pw_audit_session *as, struct pw_jw *w, const uint8_t *body,
                       size_t len);

#endif
