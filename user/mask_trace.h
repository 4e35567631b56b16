/* Private to masking's tracer (mask_expr.c, mask_select.c, mask_stmt.c, mask_plan.c): the taint every
 * column carries, the shapes of relations and subqueries, the scopes names are looked up in,
 * and the functions the files share. See include/pgward/mask.h.
 *
 * A taint is CLEAN, COLUMN (a masked column's stored value) or DERIVED (computed from masked
 * data). Relations give their columns' taints from the mask rules (a view: traced through its
 * definition, else DERIVED in every column when its rule reads a masked column); subqueries,
 * CTEs, joins and set operations pass them on by position; any expression over a tainted column
 * is DERIVED; what cannot be followed (a function in FROM without a column list, a name the
 * tracer cannot place) takes the taint of everything it could come from. */
#ifndef PGWARD_MASK_TRACE_H
#define PGWARD_MASK_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "pgward/catalog.h"
#include "pgward/mask.h"

typedef PgQuery__Node node_t;
typedef const ProtobufCMessage msg_t;

struct taint {
	uint8_t kind; /* enum pw_mask_kind */
	bool detect, pred_ok;
	int16_t rule;
	uint32_t type;
};
static const struct taint CLEAN = {PW_MK_CLEAN, false, true, -1, 0};

struct col {
	const char *name; /* NULL: a name the tracer cannot tell (an expression's) */
	struct taint t;
};
struct shape {
	int n;
	struct col *cols;
	bool unknown;     /* how many columns, and which, is not known: all says what they carry */
	struct taint all; /* every column together (a whole-row reference) */
};
struct rte {
	const char *alias;
	struct shape *s;
};
struct cte {
	struct cte *next;
	const char *name;
	struct shape *s;
};
struct scope {
	struct scope *up;
	struct rte rtes[64];
	int n;
	struct shape *items[64]; /* FROM's entries as * expands them (a join: its columns) */
	int nitems;
	struct cte *ctes;
	const struct shape *out; /* the SELECT's own output: ORDER BY and GROUP BY may name it */
};

struct tr {
	const struct pw_mask_scope *sc;
	const struct pw_catalog *cat;
	struct pw_deny *d;
	bool denied;
	bool touches;
	int depth;
	int in_view; /* tracing a view's definition: its unqualified names are pg_catalog's */
	PgQuery__ParseResult *trees[32]; /* views' definitions read, kept until the end */
	int ntrees;
	void **mem; /* everything allocated, freed at the end */
	size_t nmem, capmem;
};

void *mt_alloc(struct tr *t, size_t n);
__attribute__((format(printf, 3, 4))) void mt_refuse(struct tr *t, const char *state,
                                                         const char *fmt, ...);
struct shape *mt_new_shape(struct tr *t, int n);
bool mt_tainted(struct taint a);
struct taint mt_join(struct taint a, struct taint b);
struct taint mt_derive(struct taint t);
void mt_shape_seal(struct shape *s);
struct taint mt_col_taint(const struct pw_mask_scope *sc, const char *schema, const char *table,
                              const char *column, uint32_t type);
struct taint mt_view_taint(const struct pw_mask_scope *sc, const struct pw_catalog *cat,
                               const struct pw_cat_rel *v, int depth);
const char *mt_nz(const char *s);
const char *mt_str_of(const node_t *n);
bool mt_is_star(const node_t *n);
struct shape *mt_unknown_shape(struct tr *t, struct taint all);
struct shape *mt_range_var(struct tr *t, const struct scope *sc, const PgQuery__RangeVar *rv);
struct shape *mt_renamed(struct tr *t, struct shape *s, const PgQuery__Alias *a);
struct taint mt_column_in(const struct shape *s, const char *c, bool *found);
const struct rte *mt_find_rte(const struct scope *sc, const char *alias);
struct taint mt_anything(const struct scope *sc);
/* Each message field of m (set ones, repeated ones in order) to fn until it says false;
 * false when it did. */
bool mt_each_child(msg_t *m, bool (*fn)(msg_t *child, void *arg), void *arg);
struct taint mt_children(struct tr *t, struct scope *sc, msg_t *m);
struct taint mt_expr(struct tr *t, struct scope *sc, const node_t *n);
void mt_predicate(struct tr *t, struct taint a, const char *where);
void mt_add_item(struct tr *t, struct scope *sc, struct shape *s);
void mt_add_rte(struct tr *t, struct scope *sc, const char *alias, struct shape *s);
struct shape *mt_from_item(struct tr *t, struct scope *sc, const node_t *n);
void mt_with_clause(struct tr *t, struct scope *sc, const PgQuery__WithClause *w);
struct shape *mt_target_list(struct tr *t, struct scope *sc, node_t *const *tl, size_t n);
struct shape *mt_select_shape(struct tr *t, struct scope *up, const PgQuery__SelectStmt *s);
struct shape *mt_stmt_shape_hint(struct tr *t, struct scope *up, const node_t *n,
                                     struct pw_mask_plan *hint);
struct shape *mt_stmt_shape(struct tr *t, struct scope *up, const node_t *n);

#endif
