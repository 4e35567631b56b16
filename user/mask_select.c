/* Masking's tracer, its statements: FROM, SELECT, set operations, CTEs and every statement that
 * returns rows or could copy masked data. See mask_trace.h. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_trace.h"
#include "pgward/detect.h"
#include "pgward/inspect.h"
#include "pgward/sql_parse.h"

/* ---- FROM --------------------------------------------------------------------------------- */

/* A FROM entry as * expands it. */
void mt_add_item(struct tr *t, struct scope *sc, struct shape *s)
{
	if (s && sc->nitems < 64)
		sc->items[sc->nitems++] = s;
	else if (s)
		mt_refuse(t, "54001", "be masked: more than 64 entries in one FROM");
}

void mt_add_rte(struct tr *t, struct scope *sc, const char *alias, struct shape *s)
{
	if (!s)
		return;
	if (sc->n == (int)(sizeof(sc->rtes) / sizeof(sc->rtes[0]))) {
		mt_refuse(t, "54001", "be masked: more than 64 entries in one FROM");
		return;
	}
	sc->rtes[sc->n++] = (struct rte){alias, s};
}

static bool in_list(const char *const *names, int n, const char *c)
{
	for (int i = 0; i < n; i++)
		if (c && strcmp(names[i], c) == 0)
			return true;
	return false;
}

/* The columns a join yields (for a join's alias and for *): the merged columns of USING or
 * NATURAL first (in that order, each carrying both sides), then the left's others, then the
 * right's others, as the server expands them. Unknown when a side's columns are. */
static struct shape *join_shape(struct tr *t, struct shape *l, struct shape *r,
                                const PgQuery__JoinExpr *j)
{
	if (!l || !r)
		return NULL;
	if (l->unknown || r->unknown)
		return mt_unknown_shape(t, mt_join(l->all, r->all));
	const char *merged[PW_MASK_MAX_COLS];
	int nm = 0;
	if (j->is_natural) {
		for (int i = 0; i < l->n; i++) {
			bool f = false;
			if (!l->cols[i].name)
				return mt_unknown_shape(t, mt_join(l->all, r->all));
			mt_column_in(r, l->cols[i].name, &f);
			if (f && nm < PW_MASK_MAX_COLS)
				merged[nm++] = l->cols[i].name;
		}
		for (int i = 0; i < r->n; i++)
			if (!r->cols[i].name)
				return mt_unknown_shape(t, mt_join(l->all, r->all));
	}
	for (size_t i = 0; i < j->n_using_clause && nm < PW_MASK_MAX_COLS; i++) {
		const char *c = mt_str_of(j->using_clause[i]);
		if (!c)
			return mt_unknown_shape(t, mt_join(l->all, r->all));
		merged[nm++] = c;
	}
	struct shape *s = mt_new_shape(t, l->n + r->n);
	if (!s)
		return NULL;
	int k = 0;
	for (int i = 0; i < nm; i++) {
		bool f = false;
		struct taint a =
		    mt_join(mt_column_in(l, merged[i], &f), mt_column_in(r, merged[i], &f));
		s->cols[k].name = merged[i];
		s->cols[k++].t = a;
	}
	for (int i = 0; i < l->n; i++)
		if (!in_list(merged, nm, l->cols[i].name))
			s->cols[k++] = l->cols[i];
	for (int i = 0; i < r->n; i++)
		if (!in_list(merged, nm, r->cols[i].name))
			s->cols[k++] = r->cols[i];
	s->n = k;
	mt_shape_seal(s);
	return s;
}

struct shape *mt_from_item(struct tr *t, struct scope *sc, const node_t *n)
{
	if (!n || t->denied)
		return NULL;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_RANGE_VAR: {
		const PgQuery__RangeVar *rv = n->range_var;
		struct shape *s = mt_renamed(t, mt_range_var(t, sc, rv), rv->alias);
		mt_add_rte(t, sc,
		           rv->alias && mt_nz(rv->alias->aliasname) ? rv->alias->aliasname
		                                                    : rv->relname,
		           s);
		return s;
	}
	case PG_QUERY__NODE__NODE_RANGE_SUBSELECT: {
		const PgQuery__RangeSubselect *rs = n->range_subselect;
		/* LATERAL sees the entries before it; otherwise only the outer scopes do, but
		 * seeing more only widens what a name may be */
		struct shape *s = mt_renamed(t, mt_stmt_shape(t, sc, rs->subquery), rs->alias);
		mt_add_rte(t, sc, rs->alias ? mt_nz(rs->alias->aliasname) : NULL, s);
		return s;
	}
	case PG_QUERY__NODE__NODE_RANGE_FUNCTION: {
		const PgQuery__RangeFunction *rf = n->range_function;
		struct taint a = CLEAN;
		for (size_t i = 0; i < rf->n_functions; i++)
			a = mt_join(a, mt_expr(t, sc, rf->functions[i]));
		struct shape *s;
		if (rf->n_coldeflist && rf->n_functions == 1 && !rf->ordinality) {
			s = mt_new_shape(t, (int)rf->n_coldeflist);
			for (int i = 0; s && i < s->n; i++) {
				const node_t *cd = rf->coldeflist[i];
				s->cols[i].name = cd->node_case == PG_QUERY__NODE__NODE_COLUMN_DEF
				                      ? cd->column_def->colname
				                      : NULL;
				s->cols[i].t = mt_derive(a);
			}
			if (s)
				mt_shape_seal(s);
		} else {
			s = mt_unknown_shape(
			    t, mt_derive(a)); /* a function's columns: not known here */
		}
		mt_add_rte(t, sc, rf->alias ? mt_nz(rf->alias->aliasname) : NULL, s);
		return s;
	}
	case PG_QUERY__NODE__NODE_JOIN_EXPR: {
		const PgQuery__JoinExpr *j = n->join_expr;
		struct shape *l = mt_from_item(t, sc, j->larg);
		struct shape *r = mt_from_item(t, sc, j->rarg);
		if (j->quals)
			mt_predicate(t, mt_expr(t, sc, j->quals), "a JOIN condition");
		for (size_t i = 0; i < j->n_using_clause; i++) {
			const char *c = mt_str_of(j->using_clause[i]);
			bool f = false;
			struct taint a = CLEAN;
			if (c && l && r)
				a = mt_join(mt_column_in(l, c, &f), mt_column_in(r, c, &f));
			mt_predicate(t, a, "JOIN ... USING");
		}
		if (j->is_natural && l && r) {
			/* its condition: every column name both sides have */
			struct taint a = CLEAN;
			if (l->unknown || r->unknown)
				a = mt_join(l->all, r->all);
			for (int i = 0; !l->unknown && !r->unknown && i < l->n; i++) {
				bool f = false;
				struct taint c = l->cols[i].name
				                     ? mt_column_in(r, l->cols[i].name, &f)
				                     : mt_derive(r->all);
				if (f || !l->cols[i].name)
					a = mt_join(a, mt_join(l->cols[i].t, c));
			}
			mt_predicate(t, a, "a NATURAL JOIN");
		}
		struct shape *s = join_shape(t, l, r, j);
		if (j->alias) {
			s = mt_renamed(t, s, j->alias);
			mt_add_rte(t, sc, mt_nz(j->alias->aliasname), s);
		}
		return s;
	}
	default: {
		/* XMLTABLE, TABLESAMPLE and the rest: whatever they read, in unknown columns */
		msg_t *m = n->node_case != PG_QUERY__NODE__NODE__NOT_SET ? (msg_t *)n->alias : NULL;
		struct shape *s = mt_unknown_shape(t, m ? mt_children(t, sc, m) : CLEAN);
		if (n->node_case == PG_QUERY__NODE__NODE_RANGE_TABLE_SAMPLE &&
		    n->range_table_sample->relation &&
		    n->range_table_sample->relation->node_case == PG_QUERY__NODE__NODE_RANGE_VAR) {
			const PgQuery__RangeVar *rv = n->range_table_sample->relation->range_var;
			s = mt_renamed(t, mt_range_var(t, sc, rv), rv->alias);
			mt_add_rte(t, sc,
			           rv->alias && mt_nz(rv->alias->aliasname) ? rv->alias->aliasname
			                                                    : rv->relname,
			           s);
			return s;
		}
		mt_add_rte(t, sc, NULL, s);
		return s;
	}
	}
}

/* ---- SELECT ------------------------------------------------------------------------------- */

/* The name the server gives an output column without AS, when it is a column's or a
 * function's; NULL for the rest (the tracer then cannot place a reference to it). */
static const char *figure_name(const node_t *n)
{
	while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST)
		n = n->type_cast->arg;
	if (!n)
		return NULL;
	if (n->node_case == PG_QUERY__NODE__NODE_COLUMN_REF && n->column_ref->n_fields &&
	    !mt_is_star(n->column_ref->fields[n->column_ref->n_fields - 1]))
		return mt_str_of(n->column_ref->fields[n->column_ref->n_fields - 1]);
	return NULL;
}

static void with_clause(struct tr *t, struct scope *sc, const PgQuery__WithClause *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_ctes && !t->denied; i++) {
		const node_t *n = w->ctes[i];
		if (n->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
			continue;
		const PgQuery__CommonTableExpr *c = n->common_table_expr;
		struct cte *e = mt_alloc(t, sizeof(*e));
		if (!e)
			return;
		e->name = mt_nz(c->ctename) ? c->ctename : "";
		/* a recursive CTE reads itself: first as unknown carrying nothing, then as what
		 * its first reading gave, until what it carries no longer grows */
		e->s = mt_unknown_shape(t, CLEAN);
		e->next = sc->ctes;
		sc->ctes = e;
		struct taint prev = CLEAN;
		for (int round = 0; round < (w->recursive ? 4 : 1) && e->s; round++) {
			struct shape *s = mt_stmt_shape(t, sc, c->ctequery);
			if (!s)
				break;
			if (c->n_aliascolnames) {
				PgQuery__Alias a = {.n_colnames = c->n_aliascolnames,
				                    .colnames = c->aliascolnames};
				s = mt_renamed(t, s, &a);
			}
			if (w->recursive && round > 0 && s->all.kind == prev.kind &&
			    s->all.detect == prev.detect) {
				e->s = s;
				break;
			}
			if (w->recursive && round == 3) /* not settled: all of it masked */
				s = mt_unknown_shape(
				    t, mt_derive(mt_join(s->all, (struct taint){PW_MK_DERIVED, true,
				                                                false, -1, 0})));
			prev = s ? s->all : prev;
			e->s = s;
		}
	}
}

/* ORDER BY / GROUP BY / DISTINCT ON items: a number names an output column. */
static struct taint sort_item(struct tr *t, struct scope *sc, const node_t *n,
                              const struct shape *out)
{
	if (n && n->node_case == PG_QUERY__NODE__NODE_SORT_BY)
		n = n->sort_by->node;
	if (n && n->node_case == PG_QUERY__NODE__NODE_A_CONST && n->a_const->ival &&
	    out) { /* ORDER BY 2 */
		int k = n->a_const->ival->ival;
		if (out->unknown)
			return mt_derive(out->all);
		return k >= 1 && k <= out->n ? out->cols[k - 1].t : CLEAN;
	}
	return mt_expr(t, sc, n);
}

static struct shape *target_list(struct tr *t, struct scope *sc, node_t *const *tl, size_t n)
{
	int ncols = 0;
	bool unknown = false;
	/* first the size: * expands to its entries' columns */
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt = tl[i]->res_target;
		const node_t *v = rt ? rt->val : NULL;
		if (v && v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF &&
		    mt_is_star(v->column_ref->fields[v->column_ref->n_fields - 1])) {
			const PgQuery__ColumnRef *cr = v->column_ref;
			const struct rte *r =
			    cr->n_fields >= 2
			        ? mt_find_rte(sc, mt_str_of(cr->fields[cr->n_fields - 2])
			                              ? mt_str_of(cr->fields[cr->n_fields - 2])
			                              : "")
			        : NULL;
			if (cr->n_fields >= 2) {
				if (!r || r->s->unknown)
					unknown = true;
				else
					ncols += r->s->n;
			} else {
				for (int k = 0; k < sc->nitems; k++) {
					unknown |= sc->items[k]->unknown;
					ncols += sc->items[k]->n;
				}
			}
		} else if (v && v->node_case == PG_QUERY__NODE__NODE_A_INDIRECTION &&
		           v->a_indirection->n_indirection &&
		           mt_is_star(v->a_indirection
		                          ->indirection[v->a_indirection->n_indirection - 1])) {
			unknown = true; /* (row).*: a composite's fields */
		} else {
			ncols++;
		}
	}
	if (ncols > PW_MASK_MAX_COLS)
		unknown = true;
	struct shape *s = mt_new_shape(t, unknown ? 0 : ncols);
	if (!s)
		return NULL;
	s->unknown = unknown;
	int k = 0;
	struct taint all = CLEAN;
	for (size_t i = 0; i < n && !t->denied; i++) {
		const PgQuery__ResTarget *rt = tl[i]->res_target;
		const node_t *v = rt ? rt->val : NULL;
		if (v && v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF &&
		    mt_is_star(v->column_ref->fields[v->column_ref->n_fields - 1])) {
			const PgQuery__ColumnRef *cr = v->column_ref;
			if (cr->n_fields >= 2) {
				const char *a = mt_str_of(cr->fields[cr->n_fields - 2]);
				const struct rte *r = mt_find_rte(sc, a ? a : "");
				if (r) {
					all = mt_join(all, r->s->all);
					for (int c = 0; !unknown && c < r->s->n; c++)
						s->cols[k++] = r->s->cols[c];
				}
			} else {
				for (int e = 0; e < sc->nitems; e++) {
					all = mt_join(all, sc->items[e]->all);
					for (int c = 0; !unknown && c < sc->items[e]->n; c++)
						s->cols[k++] = sc->items[e]->cols[c];
				}
			}
			if (cr->n_fields >= 2 &&
			    !mt_find_rte(sc, mt_str_of(cr->fields[cr->n_fields - 2])
			                         ? mt_str_of(cr->fields[cr->n_fields - 2])
			                         : ""))
				all = mt_join(all, mt_anything(sc));
			continue;
		}
		struct taint a = mt_expr(t, sc, v);
		if (a.kind == PW_MK_COLUMN &&
		    !(v && v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF))
			a.kind = PW_MK_DERIVED;
		all = mt_join(all, a);
		if (!unknown) {
			s->cols[k].name = rt && mt_nz(rt->name) ? rt->name : figure_name(v);
			s->cols[k++].t = a;
		}
	}
	if (unknown)
		s->all = mt_derive(all);
	else
		mt_shape_seal(s);
	return s;
}

static struct shape *setop_shape(struct tr *t, struct shape *l, struct shape *r)
{
	if (!l || !r)
		return NULL;
	if (l->unknown || r->unknown || l->n != r->n)
		return mt_unknown_shape(t, mt_derive(mt_join(l->all, r->all)));
	struct shape *s = mt_new_shape(t, l->n);
	if (!s)
		return NULL;
	for (int i = 0; i < l->n; i++) {
		s->cols[i].name = l->cols[i].name;
		s->cols[i].t =
		    mt_tainted(r->cols[i].t) || r->cols[i].t.detect
		        ? (mt_tainted(l->cols[i].t) ? mt_derive(mt_join(l->cols[i].t, r->cols[i].t))
		                                    : mt_derive(r->cols[i].t))
		        : l->cols[i].t;
	}
	mt_shape_seal(s);
	return s;
}

struct shape *mt_select_shape(struct tr *t, struct scope *up, const PgQuery__SelectStmt *s)
{
	if (!s || t->denied)
		return NULL;
	if (++t->depth > 4000) {
		mt_refuse(t, "54001", "be masked: the statement is nested too deeply");
		return NULL;
	}
	struct scope *sc = mt_alloc(t, sizeof(*sc));
	if (!sc) {
		t->depth--;
		return NULL;
	}
	sc->up = up;
	with_clause(t, sc, s->with_clause);
	struct shape *out = NULL;
	if (s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
	    s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED) {
		out = setop_shape(t, mt_select_shape(t, sc, s->larg),
		                  mt_select_shape(t, sc, s->rarg));
	} else if (s->n_values_lists) {
		for (size_t i = 0; i < s->n_values_lists && !t->denied; i++) {
			const node_t *row = s->values_lists[i];
			if (row->node_case != PG_QUERY__NODE__NODE_LIST)
				continue;
			struct shape *r = mt_new_shape(t, (int)row->list->n_items);
			for (int k = 0; r && k < r->n; k++) {
				r->cols[k].t = mt_expr(t, sc, row->list->items[k]);
				if (r->cols[k].t.kind == PW_MK_COLUMN)
					r->cols[k].t.kind = PW_MK_DERIVED;
			}
			if (r)
				mt_shape_seal(r);
			out = out ? setop_shape(t, out, r) : r;
		}
	} else {
		for (size_t i = 0; i < s->n_from_clause && !t->denied; i++)
			mt_add_item(t, sc, mt_from_item(t, sc, s->from_clause[i]));
		out = target_list(t, sc, s->target_list, s->n_target_list);
		sc->out = out;
		if (s->where_clause)
			mt_predicate(t, mt_expr(t, sc, s->where_clause), "WHERE");
		for (size_t i = 0; i < s->n_group_clause; i++)
			mt_predicate(t, sort_item(t, sc, s->group_clause[i], out), "GROUP BY");
		if (s->having_clause)
			mt_predicate(t, mt_expr(t, sc, s->having_clause), "HAVING");
		for (size_t i = 0; i < s->n_window_clause; i++)
			if (s->window_clause[i]->node_case == PG_QUERY__NODE__NODE_WINDOW_DEF) {
				const PgQuery__WindowDef *w = s->window_clause[i]->window_def;
				for (size_t k = 0; k < w->n_partition_clause; k++)
					mt_predicate(t, mt_expr(t, sc, w->partition_clause[k]),
					             "PARTITION BY");
				for (size_t k = 0; k < w->n_order_clause; k++)
					mt_predicate(t, sort_item(t, sc, w->order_clause[k], out),
					             "a window's ORDER BY");
			}
		for (size_t i = 0; i < s->n_distinct_clause; i++) {
			const node_t *d = s->distinct_clause[i];
			if (!d || d->node_case == PG_QUERY__NODE__NODE__NOT_SET)
				mt_predicate(t, out ? out->all : CLEAN,
				             "DISTINCT"); /* plain DISTINCT */
			else
				mt_predicate(t, sort_item(t, sc, d, out), "DISTINCT ON");
		}
	}
	if (out) {
		sc->out = out;
		for (size_t i = 0; i < s->n_sort_clause; i++)
			mt_predicate(t, sort_item(t, sc, s->sort_clause[i], out), "ORDER BY");
	}
	if (s->limit_count)
		mt_predicate(t, mt_expr(t, sc, s->limit_count), "LIMIT");
	if (s->limit_offset)
		mt_predicate(t, mt_expr(t, sc, s->limit_offset), "OFFSET");
	if (s->into_clause && out && (mt_tainted(out->all) || out->all.detect))
		mt_refuse(t, "42501", "copy masked data with SELECT INTO");
	t->depth--;
	return out;
}

/* ---- statements --------------------------------------------------------------------------- */

static struct shape *target_rel(struct tr *t, struct scope *sc, const PgQuery__RangeVar *rv)
{
	if (!rv)
		return NULL;
	struct shape *s = mt_renamed(t, mt_range_var(t, sc, rv), rv->alias);
	mt_add_rte(t, sc,
	           rv->alias && mt_nz(rv->alias->aliasname) ? rv->alias->aliasname : rv->relname,
	           s);
	mt_add_item(t, sc, s);
	return s;
}

static bool holds_masks(const struct shape *s)
{
	if (!s)
		return false;
	if (mt_tainted(s->all) || s->all.detect)
		return true;
	for (int i = 0; i < s->n; i++)
		if (mt_tainted(s->cols[i].t))
			return true;
	return false;
}

static struct shape *returning(struct tr *t, struct scope *sc, node_t *const *rl, size_t n)
{
	return n ? target_list(t, sc, rl, n) : NULL;
}

static struct shape *insert_stmt(struct tr *t, struct scope *up, const PgQuery__InsertStmt *s)
{
	struct scope *sc = mt_alloc(t, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->up = up;
	with_clause(t, sc, s->with_clause);
	if (s->select_stmt) {
		struct shape *src = mt_stmt_shape(t, sc, s->select_stmt);
		if (src && (mt_tainted(src->all) || src->all.detect))
			mt_refuse(t, "42501", "copy masked data with INSERT ... SELECT");
	}
	target_rel(t, sc, s->relation);
	if (s->on_conflict_clause) {
		const PgQuery__OnConflictClause *oc = s->on_conflict_clause;
		for (size_t i = 0; i < oc->n_target_list; i++)
			if (mt_tainted(mt_expr(t, sc, oc->target_list[i])))
				mt_refuse(t, "42501",
				          "copy masked data with ON CONFLICT DO UPDATE");
		if (oc->where_clause)
			mt_predicate(t, mt_expr(t, sc, oc->where_clause), "ON CONFLICT ... WHERE");
	}
	return returning(t, sc, s->returning_list, s->n_returning_list);
}

static struct shape *update_stmt(struct tr *t, struct scope *up, const PgQuery__UpdateStmt *s)
{
	struct scope *sc = mt_alloc(t, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->up = up;
	with_clause(t, sc, s->with_clause);
	target_rel(t, sc, s->relation);
	for (size_t i = 0; i < s->n_from_clause; i++)
		mt_add_item(t, sc, mt_from_item(t, sc, s->from_clause[i]));
	for (size_t i = 0; i < s->n_target_list; i++) {
		struct taint a = mt_expr(t, sc, s->target_list[i]);
		if (mt_tainted(a) || a.detect)
			mt_refuse(t, "42501", "copy masked data with UPDATE ... SET");
	}
	if (s->where_clause)
		mt_predicate(t, mt_expr(t, sc, s->where_clause), "WHERE");
	return returning(t, sc, s->returning_list, s->n_returning_list);
}

static struct shape *delete_stmt(struct tr *t, struct scope *up, const PgQuery__DeleteStmt *s)
{
	struct scope *sc = mt_alloc(t, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->up = up;
	with_clause(t, sc, s->with_clause);
	target_rel(t, sc, s->relation);
	for (size_t i = 0; i < s->n_using_clause; i++)
		mt_add_item(t, sc, mt_from_item(t, sc, s->using_clause[i]));
	if (s->where_clause)
		mt_predicate(t, mt_expr(t, sc, s->where_clause), "WHERE");
	return returning(t, sc, s->returning_list, s->n_returning_list);
}

static void merge_stmt(struct tr *t, struct scope *up, const PgQuery__MergeStmt *s)
{
	struct scope *sc = mt_alloc(t, sizeof(*sc));
	if (!sc)
		return;
	sc->up = up;
	with_clause(t, sc, s->with_clause);
	struct shape *target = target_rel(t, sc, s->relation);
	struct shape *src = mt_from_item(t, sc, s->source_relation);
	if (holds_masks(target) || holds_masks(src))
		mt_refuse(t, "42501",
		          "MERGE with masked data: its conditions and actions reveal or "
		          "copy it");
}

/* COPY's options: the format its rows come in. */
static void copy_options(struct tr *t, const PgQuery__CopyStmt *c, struct pw_copy_fmt *f)
{
	pw_copy_fmt_default(f, PW_COPY_TEXT);
	for (size_t i = 0; i < c->n_options; i++) {
		if (c->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *e = c->options[i]->def_elem;
		const char *v = e->arg ? mt_str_of(e->arg) : NULL;
		if (strcmp(e->defname, "format") == 0 && v) {
			int kind = strcmp(v, "csv") == 0      ? PW_COPY_CSV
			           : strcmp(v, "binary") == 0 ? PW_COPY_BINARY
			                                      : PW_COPY_TEXT;
			struct pw_copy_fmt keep = *f;
			pw_copy_fmt_default(f, kind);
			f->header = keep.header;
		}
	}
	for (size_t i = 0; i < c->n_options; i++) {
		if (c->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *e = c->options[i]->def_elem;
		const char *v = e->arg ? mt_str_of(e->arg) : NULL;
		if (strcmp(e->defname, "delimiter") == 0 && v && strlen(v) == 1)
			f->delim = v[0];
		else if (strcmp(e->defname, "quote") == 0 && v && strlen(v) == 1)
			f->quote = v[0];
		else if (strcmp(e->defname, "escape") == 0 && v && strlen(v) == 1)
			f->escape = v[0];
		else if (strcmp(e->defname, "null") == 0 && v && strlen(v) < sizeof(f->null_str)) {
			snprintf(f->null_str, sizeof(f->null_str), "%s", v);
			f->null_len = strlen(v);
		} else if (strcmp(e->defname, "header") == 0)
			f->header =
			    !e->arg || (v ? strcmp(v, "false") && strcmp(v, "off") && strcmp(v, "0")
			                  : e->arg->node_case != PG_QUERY__NODE__NODE_BOOLEAN ||
			                        e->arg->boolean->boolval);
		else if (strcmp(e->defname, "encoding") == 0 ||
		         (strcmp(e->defname, "delimiter") == 0 ||
		          strcmp(e->defname, "quote") == 0 || strcmp(e->defname, "escape") == 0 ||
		          strcmp(e->defname, "null") == 0))
			mt_refuse(t, "0A000",
			          "use this COPY option with masked data (%s): masking cannot "
			          "read such rows",
			          e->defname);
	}
}

static struct shape *copy_stmt(struct tr *t, struct scope *sc, const PgQuery__CopyStmt *c,
                               struct pw_mask_plan *hint)
{
	if (c->is_from)
		return NULL;
	struct shape *s = NULL;
	if (c->query)
		s = mt_stmt_shape(t, sc, c->query);
	else if (c->relation) {
		struct scope *in = mt_alloc(t, sizeof(*in));
		if (!in)
			return NULL;
		in->up = sc;
		s = target_rel(t, in, c->relation);
		if (s && c->n_attlist && !s->unknown) {
			struct shape *sub = mt_new_shape(t, (int)c->n_attlist);
			for (int i = 0; sub && i < sub->n; i++) {
				const char *name = mt_str_of(c->attlist[i]);
				bool f = false;
				sub->cols[i].name = name;
				sub->cols[i].t = name ? mt_column_in(s, name, &f) : s->all;
			}
			if (sub)
				mt_shape_seal(sub);
			s = sub;
		}
	}
	if ((c->filename && c->filename[0]) || c->is_program) {
		if (holds_masks(s))
			mt_refuse(t, "42501", "COPY masked data to a server file or program");
		return NULL;
	}
	hint->copy = true;
	copy_options(t, c, &hint->fmt);
	return s;
}

/* Nested statements of anything else (CREATE RULE's actions, ...): their checks apply. */
static void nested(struct tr *t, struct scope *sc, msg_t *m);

struct shape *mt_stmt_shape_hint(struct tr *t, struct scope *up, const node_t *n,
                                 struct pw_mask_plan *hint)
{
	if (!n || t->denied)
		return NULL;
	const struct pw_policy *p = &t->sc->id->policy;
	(void)p;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		return mt_select_shape(t, up, n->select_stmt);
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		return insert_stmt(t, up, n->insert_stmt);
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		return update_stmt(t, up, n->update_stmt);
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		return delete_stmt(t, up, n->delete_stmt);
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		merge_stmt(t, up, n->merge_stmt);
		return NULL;
	case PG_QUERY__NODE__NODE_COPY_STMT:
		return hint ? copy_stmt(t, up, n->copy_stmt, hint) : NULL;
	case PG_QUERY__NODE__NODE_CREATE_TABLE_AS_STMT: {
		struct shape *s = mt_stmt_shape(t, up, n->create_table_as_stmt->query);
		if (holds_masks(s))
			mt_refuse(t, "42501", "copy masked data with CREATE TABLE AS");
		return NULL;
	}
	case PG_QUERY__NODE__NODE_VIEW_STMT: {
		struct shape *s = mt_stmt_shape(t, up, n->view_stmt->query);
		if (holds_masks(s))
			mt_refuse(t, "42501", "make a view of masked data");
		return NULL;
	}
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT: {
		struct shape *s = mt_stmt_shape(t, up, n->declare_cursor_stmt->query);
		if (hint && n->declare_cursor_stmt->portalname)
			snprintf(hint->declares, sizeof(hint->declares), "%s",
			         n->declare_cursor_stmt->portalname);
		return s;
	}
	case PG_QUERY__NODE__NODE_PREPARE_STMT: {
		struct shape *s = mt_stmt_shape(t, up, n->prepare_stmt->query);
		if (hint && n->prepare_stmt->name)
			snprintf(hint->prepares, sizeof(hint->prepares), "%s",
			         n->prepare_stmt->name);
		return s;
	}
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		mt_stmt_shape(t, up,
		              n->explain_stmt->query); /* its checks; EXPLAIN shows no values */
		return NULL;
	case PG_QUERY__NODE__NODE_FETCH_STMT:
		if (hint && n->fetch_stmt->portalname && !n->fetch_stmt->ismove)
			snprintf(hint->fetches, sizeof(hint->fetches), "%s",
			         n->fetch_stmt->portalname);
		return NULL;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		for (size_t i = 0; i < n->execute_stmt->n_params; i++)
			mt_expr(t, up, n->execute_stmt->params[i]);
		if (hint && n->execute_stmt->name)
			snprintf(hint->executes, sizeof(hint->executes), "%s",
			         n->execute_stmt->name);
		return NULL;
	case PG_QUERY__NODE__NODE_DO_STMT:
	case PG_QUERY__NODE__NODE_CREATE_FUNCTION_STMT:
		mt_refuse(t, "42501",
		          "run code the server runs (DO, CREATE FUNCTION): masking cannot "
		          "follow what it reads");
		return NULL;
	case PG_QUERY__NODE__NODE_RENAME_STMT:
	case PG_QUERY__NODE__NODE_ALTER_OBJECT_SCHEMA_STMT:
		mt_refuse(t, "42501",
		          "rename or move objects: masks name columns by schema, table and "
		          "column");
		return NULL;
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT: {
		struct scope *in = mt_alloc(t, sizeof(*in));
		if (in && holds_masks(target_rel(t, in, n->alter_table_stmt->relation)))
			mt_refuse(t, "42501", "alter a relation with masked columns");
		return NULL;
	}
	case PG_QUERY__NODE__NODE_CALL_STMT: {
		t->touches = true; /* a procedure may read masked tables and say what it read */
		struct taint a = CLEAN;
		const PgQuery__FuncCall *f = n->call_stmt->funccall;
		for (size_t i = 0; f && i < f->n_args; i++)
			a = mt_join(a, mt_expr(t, up, f->args[i]));
		if (mt_tainted(a))
			mt_refuse(t, "42501", "pass masked data to a procedure");
		return mt_unknown_shape(t, (struct taint){PW_MK_DERIVED, true, false, -1, 0});
	}
	default: {
		msg_t *m = n->node_case != PG_QUERY__NODE__NODE__NOT_SET ? (msg_t *)n->alias : NULL;
		if (m)
			nested(t, up, m);
		return NULL;
	}
	}
}

struct shape *mt_stmt_shape(struct tr *t, struct scope *up, const node_t *n)
{
	return mt_stmt_shape_hint(t, up, n, NULL);
}

static void nested(struct tr *t, struct scope *sc, msg_t *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	for (unsigned i = 0; i < d->n_fields && !t->denied; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		size_t k = 1;
		msg_t *const *arr;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			k = *(const size_t *)(base + f->quantifier_offset);
			arr = *(msg_t *const *const *)(base + f->offset);
		} else {
			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
				continue;
			arr = (msg_t *const *)(base + f->offset);
			if (!arr[0])
				continue;
		}
		for (size_t j = 0; j < k && !t->denied; j++) {
			if (arr[j]->descriptor == &pg_query__node__descriptor) {
				const node_t *n = (const node_t *)arr[j];
				switch (n->node_case) {
				case PG_QUERY__NODE__NODE_SELECT_STMT:
				case PG_QUERY__NODE__NODE_INSERT_STMT:
				case PG_QUERY__NODE__NODE_UPDATE_STMT:
				case PG_QUERY__NODE__NODE_DELETE_STMT:
				case PG_QUERY__NODE__NODE_MERGE_STMT:
					mt_stmt_shape(t, sc, n);
					continue;
				default:
					break;
				}
			}
			nested(t, sc, arr[j]);
		}
	}
}
