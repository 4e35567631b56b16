/* The policy engine: decides an analysed statement text (sql.h) for an identity (config.h):
 * the parser-integrity refusals first (standard_conforming_strings, client_encoding, computed
 * set_config names, EXECUTE of an unknown statement), then the built-in guardrails, then the
 * identity's rules in order; nothing matched is a deny. A multi-statement text is decided as a
 * whole: one statement refused refuses all. The session's state and the checks at its start
 * are policy_session.h's. */
#ifndef PGWARD_POLICY_H
#define PGWARD_POLICY_H

#include <time.h>

#include "pgward/config.h"
#include "pgward/policy_session.h"
#include "pgward/sql.h"

enum pw_decided_by {
	PW_BY_DEFAULT,   /* no rule matched: deny */
	PW_BY_RULE,      /* rule (1-based) */
	PW_BY_GUARDRAIL, /* guardrail */
	PW_BY_REFUSAL,   /* a parser-integrity refusal, not overridable */
	PW_BY_WINDOW,    /* outside the identity's time windows */
};
/* "default", "rule", "guardrail", "refusal", "window" */
const char *pw_decided_by_name(enum pw_decided_by b);

struct pw_decision {
	enum pw_action action; /* allow, deny or approve (held for a person: approval.h) */
	bool approved;         /* allow: a person approved what the policy said "approve" to */
	enum pw_decided_by by;
	int rule; /* PW_BY_RULE: 1-based index */
	enum pw_guardrail guardrail;
	int stmt; /* the statement that decided (the first refused one), -1 for none */
	char sqlstate[6];
	char reason[200];  /* why, without the identity: "may not DELETE public.orders" */
	char message[512]; /* the client's ErrorResponse text (empty when allowed) */
};

/* Decide every statement of r; d gets the overall decision (the first deny; else the first
 * approve; else allow), per_stmt (NULL or r->nstmts
 * entries) each statement's own. ps may be NULL (explain without a session). */
void pw_policy_decide(const struct pw_config *cfg, const struct pw_identity *id,
                      const struct pw_policy_session *ps, const struct pw_sql_result *r, time_t now,
                      struct pw_decision *d, struct pw_decision *per_stmt);

/* A setting made at start-up (a startup parameter, or one the options parameter makes: see
 * options.h): judged as set_config(name, value) is by the checks that read settings (the
 * parser-integrity refusals, the role_escape and superuser_settings guardrails; the latter
 * refuses a custom dotted name here too). Rules on class "set" do not apply: every driver
 * sends such parameters. */
void pw_policy_startup_setting(const struct pw_config *cfg, const struct pw_identity *id,
                               const char *name, const char *value, struct pw_decision *d);

/* The FunctionCall protocol message (calls a function by OID: nothing to analyse). */
void pw_policy_function_call(const struct pw_identity *id, struct pw_decision *d);

/* A refusal of text the analyser could not read (parse error, limits): 42601 or 54001. */
void pw_policy_unreadable(const struct pw_identity *id, const char *why, int error_pos,
                          struct pw_decision *d);

const char *pw_action_name(enum pw_action a);

#endif
