/* Masking plans (issue: inline masking): for an identity with mask rules, what each statement
 * of a text may return and how its result is masked, read from the statement's parse tree with
 * the catalog (which columns a relation, view or subquery yields; which are masked). Anything
 * derived from a masked column (functions, casts, operators, CASE, aggregates, windows,
 * subqueries, CTEs, set operations, whole-row references, constructors) is masked as a whole;
 * predicates on masked columns and statements that would copy masked data where it can be read
 * back are refused. What the planner cannot see through is masked, never passed: a plan whose
 * columns cannot be told apart masks every column of its result (mapped false).
 *
 * The plans are followed along the protocol by mask_session.h; the bytes are rewritten by
 * mask_wire.h. Pure: no I/O; plans are reference counted and immutable once made. */
#ifndef PGWARD_MASK_H
#define PGWARD_MASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/config.h"
#include "pgward/mask_wire.h"
#include "pgward/policy_session.h"
#include "pgward/sql_types.h"

struct pw_deny; /* inspect.h */

/* What one result column carries. */
enum pw_mask_kind {
	PW_MK_CLEAN,   /* nothing masked reaches it */
	PW_MK_COLUMN,  /* a masked column's value as it is stored: its rule's strategy */
	PW_MK_DERIVED, /* computed from masked data: masked as a whole (redact, or hash/null) */
};

/* The kind's name ("clean", "column", "derived"): the one table of them. */
const char *pw_mask_kind_name(enum pw_mask_kind k);

struct pw_mask_src {
	uint8_t kind;  /* enum pw_mask_kind */
	bool detect;   /* a detector rule's columns reach it */
	bool pred_ok;  /* every masked column in it allows predicates */
	int16_t rule;  /* COLUMN, DERIVED: the mask rule (index into the identity's rules) */
	uint32_t type; /* the column's type OID when the catalog says (0: unknown) */
};

#define PW_MASK_MAX_COLS 1664 /* MaxTupleAttributeNumber */

struct pw_mask_plan {
	int refs;
	bool touches; /* read masked data, or something pgward cannot see into */
	bool mapped;  /* cols[] is the result, column by column */
	bool copy;    /* COPY ... TO STDOUT: its rows come as CopyData in fmt */
	struct pw_copy_fmt fmt;
	/* names this statement gives or uses: DECLARE (cursor), PREPARE (prepared), FETCH/MOVE
	 * (cursor), EXECUTE (prepared): the session's store resolves them (mask_session.h) */
	char declares[PW_SQL_NAMELEN], prepares[PW_SQL_NAMELEN];
	char fetches[PW_SQL_NAMELEN], executes[PW_SQL_NAMELEN];
	bool hold; /* DECLARE ... WITH HOLD: the cursor outlives its transaction */
	/* CLOSE name / ALL, DEALLOCATE name / ALL (DISCARD ALL: both ALL) */
	char closes[PW_SQL_NAMELEN], deallocates[PW_SQL_NAMELEN];
	bool close_all, deallocate_all;
	/* its rows hold no stored value whatever their number (SHOW, EXPLAIN): passed */
	bool rows_clean;
	int n;
	struct pw_mask_src cols[];
};

/* What the planner reads: the identity's rules and the session's path and catalog. */
struct pw_mask_scope {
	const struct pw_config *cfg;
	const struct pw_identity *id;
	const struct pw_policy_session *ps; /* path candidates, catalog (ps->cat) */
};

/* Plans for every statement of text (NUL-terminated, len bytes), which the analyser read as
 * r: plans[i] for statement i (a new reference each; NULL for none). 0, or -1 with d set: the
 * text is refused (42501 naming the rule, or 0A000 for what masking cannot follow). */
int pw_mask_plan_text(const struct pw_mask_scope *sc, const char *text, size_t len,
                      const struct pw_sql_result *r, struct pw_mask_plan **plans,
                      struct pw_deny *d);

struct pw_mask_plan *pw_mask_plan_ref(struct pw_mask_plan *p);
void pw_mask_plan_unref(struct pw_mask_plan *p); /* NULL is fine */
/* A plan that masks every column of whatever comes (touches, not mapped). */
struct pw_mask_plan *pw_mask_plan_opaque(void);

/* What result column i of n becomes for the identity: its source (plan p, NULL for none,
 * and, when the RowDescription said, the column's table and number) turned into what
 * mask_wire does. */
void pw_mask_column(const struct pw_mask_scope *sc, const struct pw_mask_plan *p, int i, int n,
                    uint32_t table, int16_t attnum, uint32_t type, int16_t format,
                    struct pw_mask_col *out);
/* The detectors of the identity's rules, with their strategies. */
void pw_mask_detectors(const struct pw_identity *id, struct pw_mask_detectors *out);

#endif
