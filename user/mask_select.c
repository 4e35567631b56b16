/* Masking's tracer, its statements: FROM, SELECT, set operations, CTEs and every statement that
 * returns rows or could copy masked data. See mask_trace.h. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* A join: both sides' entries, its condition (a predicate), its merged columns. */
static struct shape *join_item(struct tr *t, struct scope *sc, const PgQuery__JoinExpr *j)
{
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
			struct taint c = l->cols[i].name ? mt_column_in(r, l->cols[i].name, &f)
			                                 : mt_derive(r->all);
			if (f || !l->cols[i].name)
				a = mt_join(a, mt_join(l->cols[i].t, c));
		}
		mt_predicate(t, a, "a NATURAL JOIN");
	}
	struct shape *s = join_shape(t, l, r, j);
	if (j->join_using_alias && mt_nz(j->join_using_alias->aliasname) && s && !s->unknown) {
		/* JOIN ... USING (a, b) AS j: j names the merged columns alone */
		struct shape *u = mt_new_shape(t, (int)j->n_using_clause);
		for (int i = 0; u && i < u->n && i < s->n; i++)
			u->cols[i] = s->cols[i];
		if (u)
			mt_shape_seal(u);
		mt_add_rte(t, sc, j->join_using_alias->aliasname, u);
	} else if (j->join_using_alias && mt_nz(j->join_using_alias->aliasname)) {
		mt_add_rte(t, sc, j->join_using_alias->aliasname,
		           mt_unknown_shape(t, mt_join(l ? l->all : CLEAN, r ? r->all : CLEAN)));
	}
	if (j->alias) {
		s = mt_renamed(t, s, j->alias);
		mt_add_rte(t, sc, mt_nz(j->alias->aliasname), s);
	}
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
		/* LATERAL sees the entries before it; otherwise a name in it skips this FROM and
		 * is looked up in the queries around (the CTEs of this one stay visible) */
		struct scope *in = sc;
		if (!rs->lateral) {
			if (!(in = mt_alloc(t, sizeof(*in))))
				return NULL;
			in->up = sc->up;
			in->ctes = sc->ctes;
		}
		struct shape *s = mt_renamed(t, mt_stmt_shape(t, in, rs->subquery), rs->alias);
		mt_add_rte(t, sc, rs->alias ? mt_nz(rs->alias->aliasname) : NULL, s);
		return s;
	}
	case PG_QUERY__NODE__NODE_RANGE_FUNCTION: {
		const PgQuery__RangeFunction *rf = n->range_function;
		struct taint a = CLEAN;
		for (size_t i = 0; i < rf->n_functions; i++)
			a = mt_join(a, mt_expr(t, sc, rf->functions[i]));
		/* how many rows it makes is what its arguments say */
		mt_predicate(t, a, "a function in FROM");
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
	case PG_QUERY__NODE__NODE_JOIN_EXPR:
		return join_item(t, sc, n->join_expr);
	default: {
		/* XMLTABLE, TABLESAMPLE and the rest: whatever they read, in unknown columns; how
		 * many rows they make is what they read says (an XPath is a predicate) */
		msg_t *m = n->node_case != PG_QUERY__NODE__NODE__NOT_SET ? (msg_t *)n->alias : NULL;
		struct taint a = m ? mt_children(t, sc, m) : CLEAN;
		mt_predicate(t, a, "a table function in FROM");
		struct shape *s = mt_unknown_shape(t, a);
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

/* What a CTE's columns carry, to compare two readings of it. */
static bool same_shape(const struct shape *a, const struct shape *b)
{
	if (!a || !b || a->n != b->n || a->unknown != b->unknown || a->all.kind != b->all.kind ||
	    a->all.detect != b->all.detect)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->cols[i].t.kind != b->cols[i].t.kind ||
		    a->cols[i].t.detect != b->cols[i].t.detect)
			return false;
	return true;
}

static struct shape *cte_body(struct tr *t, struct scope *sc, const PgQuery__CommonTableExpr *c)
{
	struct shape *s = mt_stmt_shape(t, sc, c->ctequery);
	if (s && c->n_aliascolnames) {
		PgQuery__Alias a = {.n_colnames = c->n_aliascolnames, .colnames = c->aliascolnames};
		s = mt_renamed(t, s, &a);
	}
	return s ? s : mt_unknown_shape(t, CLEAN);
}

/* WITH: a plain one's CTEs each see the ones before it only (a CTE named like a table reads
 * the table in its body); a RECURSIVE one's all see each other, read over and over from
 * nothing carried until no reading changes (at most 8 rounds; unsettled: all masked). */
void mt_with_clause(struct tr *t, struct scope *sc, const PgQuery__WithClause *w)
{
	if (!w)
		return;
	struct cte *first = sc->ctes;
	for (size_t i = 0; i < w->n_ctes && !t->denied; i++) {
		const node_t *nd = w->ctes[i];
		if (nd->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
			continue;
		const PgQuery__CommonTableExpr *c = nd->common_table_expr;
		struct cte *e = mt_alloc(t, sizeof(*e));
		if (!e)
			return;
		e->name = mt_nz(c->ctename) ? c->ctename : "";
		e->s = w->recursive ? mt_unknown_shape(t, CLEAN) : cte_body(t, sc, c);
		e->next = sc->ctes;
		sc->ctes = e;
	}
	if (!w->recursive || t->denied)
		return;
	bool settled = false;
	for (int round = 0; round < 8 && !settled && !t->denied; round++) {
		settled = true;
		struct cte *e = sc->ctes;
		for (size_t i = w->n_ctes; i-- > 0 && e && e != first;) {
			const node_t *nd = w->ctes[i];
			if (nd->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
				continue;
			struct shape *s = cte_body(t, sc, nd->common_table_expr);
			settled &= same_shape(s, e->s);
			e->s = s;
			e = e->next;
		}
	}
	if (!settled) /* what it carries still grew: all of it masked */
		for (struct cte *e = sc->ctes; e && e != first; e = e->next)
			e->s =
			    mt_unknown_shape(t, (struct taint){PW_MK_DERIVED, true, false, -1, 0});
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

struct shape *mt_target_list(struct tr *t, struct scope *sc, node_t *const *tl, size_t n)
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
		    !(v && (v->node_case == PG_QUERY__NODE__NODE_COLUMN_REF ||
		            v->node_case == PG_QUERY__NODE__NODE_A_INDIRECTION)))
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
	mt_with_clause(t, sc, s->with_clause);
	struct shape *out = NULL;
	if (s->op != PG_QUERY__SET_OPERATION__SETOP_NONE &&
	    s->op != PG_QUERY__SET_OPERATION__SET_OPERATION_UNDEFINED) {
		out = setop_shape(t, mt_select_shape(t, sc, s->larg),
		                  mt_select_shape(t, sc, s->rarg));
		/* UNION (not ALL), INTERSECT and EXCEPT compare rows */
		if (out && (s->op != PG_QUERY__SET_OPERATION__SETOP_UNION || !s->all))
			mt_predicate(t, out->all, "UNION, INTERSECT or EXCEPT (they compare rows)");
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
		out = mt_target_list(t, sc, s->target_list, s->n_target_list);
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
