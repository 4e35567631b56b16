/* Masking's tracer, its ground: taints, the rules, relations and views, names and
 * expressions. See mask_trace.h. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_trace.h"
#include "pgward/detect.h"
#include "pgward/inspect.h"
#include "pgward/sql_parse.h"

/* ---- memory and refusals ----------------------------------------------------------------- */

void *mt_alloc(struct tr *t, size_t n)
{
	if (t->nmem == t->capmem) {
		size_t cap = t->capmem ? 2 * t->capmem : 64;
		void **m = realloc(t->mem, cap * sizeof(*m));
		if (!m)
			return NULL;
		t->mem = m;
		t->capmem = cap;
	}
	void *p = calloc(1, n ? n : 1);
	if (p)
		t->mem[t->nmem++] = p;
	return p;
}

__attribute__((format(printf, 3, 4))) void mt_refuse(struct tr *t, const char *state,
                                                     const char *fmt, ...)
{
	if (t->denied)
		return;
	char why[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	t->denied = true;
	pw_deny_set(t->d, state, "pgward: identity %s may not %s (masking)", t->sc->id->name, why);
}

struct shape *mt_new_shape(struct tr *t, int n)
{
	struct shape *s = mt_alloc(t, sizeof(*s));
	if (!s || (n && !(s->cols = mt_alloc(t, (size_t)n * sizeof(*s->cols))))) {
		mt_refuse(t, "53200", "be masked: out of memory");
		return NULL;
	}
	s->n = n;
	s->all = CLEAN;
	return s;
}

/* ---- taints ------------------------------------------------------------------------------ */

bool mt_tainted(struct taint a)
{
	return a.kind != PW_MK_CLEAN;
}

/* Two parts of one value: masked if either is; predicates only if both allow them. */
struct taint mt_join(struct taint a, struct taint b)
{
	struct taint r = mt_tainted(a) ? a : b;
	if (mt_tainted(a) && mt_tainted(b))
		r.kind = PW_MK_DERIVED;
	r.detect = a.detect || b.detect;
	r.pred_ok = a.pred_ok && b.pred_ok;
	r.type = 0;
	return r;
}

/* A value computed from t. */
struct taint mt_derive(struct taint t)
{
	/* computed from a column a detector rule names: a transformed secret (reversed, split,
	 * hex) is past what detectors find, so it is masked whole */
	if (mt_tainted(t) || t.detect)
		t.kind = PW_MK_DERIVED;
	t.type = 0;
	return t;
}

void mt_shape_seal(struct shape *s)
{
	struct taint a = s->unknown ? s->all : CLEAN;
	for (int i = 0; i < s->n; i++)
		a = mt_join(a, s->cols[i].t);
	s->all = mt_derive(a);
}

/* ---- the identity's rules ----------------------------------------------------------------- */

static bool col_glob(const char (*globs)[PW_COLGLOB_MAX], int n, const char *full)
{
	for (int i = 0; i < n; i++)
		if (fnmatch(globs[i], full, 0) == 0)
			return true;
	return false;
}

/* What the rules say of schema.table.column. */
struct taint mt_col_taint(const struct pw_mask_scope *sc, const char *schema, const char *table,
                          const char *column, uint32_t type)
{
	char full[3 * PW_SQL_NAMELEN + 3];
	struct taint t = CLEAN;
	const struct pw_policy *p = &sc->id->policy;
	snprintf(full, sizeof(full), "%s.%s.%s", schema, table, column);
	t.type = type;
	if (col_glob((const char(*)[PW_COLGLOB_MAX])p->unmask, p->n_unmask, full))
		return t;
	for (int i = 0; i < p->n_rules; i++) {
		const struct pw_rule *r = &p->rules[i];
		if (r->action != PW_ACT_MASK || !r->n_columns ||
		    !col_glob((const char(*)[PW_COLGLOB_MAX])r->columns, r->n_columns, full))
			continue;
		if (r->detectors) {
			t.detect = true;
			t.pred_ok = t.pred_ok && r->predicates;
			if (t.rule < 0)
				t.rule = (int16_t)i;
		} else if (!mt_tainted(t)) {
			t.kind = PW_MK_COLUMN;
			t.rule = (int16_t)i;
			t.pred_ok = r->predicates;
		}
	}
	return t;
}

/* A view or materialized view: DERIVED in every column when its rule reads masked data. */
struct taint mt_view_taint(const struct pw_mask_scope *sc, const struct pw_catalog *cat,
                           const struct pw_cat_rel *v, int depth)
{
	struct taint t = CLEAN;
	if (depth > 16) {
		t.kind = PW_MK_DERIVED; /* views of views that deep: not followed, masked */
		t.pred_ok = false;
		return t;
	}
	for (int i = 0; i < v->ndeps; i++) {
		const struct pw_cat_rel *b = pw_catalog_relation(cat, v->deps[2 * i]);
		uint32_t att = v->deps[2 * i + 1];
		if (!b)
			continue; /* pg_catalog's own relations hold no masked column */
		if (b->kind == 'v' || b->kind == 'm') {
			t = mt_join(t, mt_view_taint(sc, cat, b, depth + 1));
			continue;
		}
		for (int k = 0; k < b->ncols; k++)
			if (b->cols[k] && (att == 0 || att == (uint32_t)k + 1))
				t = mt_join(t, mt_col_taint(sc, b->schema, b->name, b->cols[k], 0));
	}
	return mt_derive(t);
}

/* A view's columns from its definition, traced as a subquery: NULL when it cannot be read
 * (the caller takes the dependencies' coarser answer). */
static struct shape *view_shape(struct tr *t, const struct pw_cat_rel *rel)
{
	if (!rel->def || t->in_view > 16 ||
	    t->ntrees == (int)(sizeof(t->trees) / sizeof(t->trees[0])))
		return NULL;
	PgQueryProtobufParseResult pr = pg_query_parse_protobuf(rel->def);
	PgQuery__ParseResult *tree = NULL;
	if (!pr.error)
		tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
		                                      (const uint8_t *)pr.parse_tree.data);
	pg_query_free_protobuf_parse_result(pr);
	if (!tree)
		return NULL;
	t->trees[t->ntrees++] = tree;
	if (tree->n_stmts != 1 || !tree->stmts[0]->stmt ||
	    tree->stmts[0]->stmt->node_case != PG_QUERY__NODE__NODE_SELECT_STMT)
		return NULL;
	t->in_view++;
	struct shape *s = mt_select_shape(t, NULL, tree->stmts[0]->stmt->select_stmt);
	t->in_view--;
	int n = 0;
	for (int k = 0; k < rel->ncols; k++)
		n += rel->cols[k] != NULL;
	if (!s || s->unknown || s->n != n)
		return NULL;
	struct shape *v = mt_new_shape(t, n);
	if (!v)
		return NULL;
	for (int k = 0, i = 0; k < rel->ncols; k++)
		if (rel->cols[k]) {
			v->cols[i].name = rel->cols[k];
			v->cols[i].t = s->cols[i].t;
			if (rel->kind == 'm' && mt_tainted(v->cols[i].t))
				v->cols[i].t.kind = PW_MK_DERIVED; /* a copy, not the column */
			i++;
		}
	mt_shape_seal(v);
	return v;
}

/* A relation's columns as the rules see them. */
static struct shape *rel_shape(struct tr *t, const struct pw_cat_rel *rel)
{
	struct shape *s = mt_new_shape(t, rel->ncols);
	if (!s)
		return NULL;
	struct taint v = CLEAN;
	bool view = rel->kind == 'v' || rel->kind == 'm';
	if (view) {
		struct shape *vs = view_shape(t, rel);
		if (t->denied)
			return NULL;
		if (vs) {
			if (mt_tainted(vs->all) || vs->all.detect)
				t->touches = true;
			return vs;
		}
		v = mt_view_taint(t->sc, t->cat, rel, 0);
	}
	int n = 0;
	for (int k = 0; k < rel->ncols; k++) {
		if (!rel->cols[k])
			continue; /* dropped: not in the relation's rows */
		s->cols[n].name = rel->cols[k];
		s->cols[n].t = view ? v
		                    : mt_col_taint(t->sc, rel->schema, rel->name, rel->cols[k],
		                                   rel->types ? rel->types[k] : 0);
		if (view && mt_tainted(v))
			s->cols[n].t.detect = true;
		n++;
	}
	s->n = n;
	mt_shape_seal(s);
	if (mt_tainted(s->all) || s->all.detect)
		t->touches = true;
	return s;
}

/* ---- names -------------------------------------------------------------------------------- */

/* protobuf-c leaves an unset string "": no name */
const char *mt_nz(const char *s)
{
	return s && s[0] ? s : NULL;
}

const char *mt_str_of(const node_t *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_STRING ? mt_nz(n->string->sval) : NULL;
}

bool mt_is_star(const node_t *n)
{
	return n && n->node_case == PG_QUERY__NODE__NODE_A_STAR;
}

/* Relations whose rows hold other sessions' or earlier statements' values. */
static bool value_holding(const char *name)
{
	static const char *const names[] = {"pg_stats",
	                                    "pg_stats_ext",
	                                    "pg_stats_ext_exprs",
	                                    "pg_statistic",
	                                    "pg_statistic_ext_data",
	                                    "pg_stat_activity",
	                                    "pg_prepared_statements",
	                                    "pg_cursors",
	                                    "pg_stat_statements",
	                                    "pg_largeobject",
	                                    "pg_stat_statements_info"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

struct shape *mt_unknown_shape(struct tr *t, struct taint all)
{
	struct shape *s = mt_new_shape(t, 0);
	if (s) {
		s->unknown = true;
		s->all = all;
	}
	return s;
}

static const struct cte *find_cte(const struct scope *sc, const char *name)
{
	for (; sc; sc = sc->up)
		for (const struct cte *c = sc->ctes; c; c = c->next)
			if (strcmp(c->name, name) == 0)
				return c;
	return NULL;
}

/* A RangeVar: a CTE in scope, else every relation of the catalog it may resolve to. */
struct shape *mt_range_var(struct tr *t, const struct scope *sc, const PgQuery__RangeVar *rv)
{
	const char *schema = rv->schemaname && rv->schemaname[0] ? rv->schemaname : NULL;
	const char *name = mt_nz(rv->relname) ? rv->relname : "";
	if ((!schema || strcmp(schema, "pg_catalog") == 0) && value_holding(name)) {
		mt_refuse(t, "42501", "read %s: it holds values of other statements", name);
		return NULL;
	}
	if (!schema) {
		const struct cte *c = find_cte(sc, name);
		if (c)
			return c->s;
		if (t->in_view)
			return mt_unknown_shape(t,
			                        CLEAN); /* pg_catalog's: the definition says so */
	}
	const struct pw_policy_session *ps = t->sc->ps;
	const struct pw_cat_rel *found[PW_POLICY_MAX_PATH + 1];
	int nf = 0;
	if (schema) {
		const struct pw_cat_rel *r = pw_catalog_relation_named(t->cat, schema, name);
		if (r)
			found[nf++] = r;
	} else if (ps && !ps->path_unknown) {
		for (size_t i = 0; i < ps->n_path && nf < PW_POLICY_MAX_PATH; i++) {
			const char *s = strcmp(ps->path[i], "$user") == 0 ? ps->user : ps->path[i];
			const struct pw_cat_rel *r = pw_catalog_relation_named(t->cat, s, name);
			if (r)
				found[nf++] = r;
		}
	} else {
		/* the path is not known: any schema's relation of that name */
		mt_refuse(
		    t, "0A000",
		    "read %s while its search_path is unknown: which relation it names cannot "
		    "be told",
		    name);
		return NULL;
	}
	if (nf == 0)
		return mt_unknown_shape(t,
		                        CLEAN); /* pg_catalog's, or a temporary table: no masks */
	if (nf == 1)
		return rel_shape(t, found[0]);
	/* several candidates (the server takes the first that exists for it): all of them */
	struct taint all = CLEAN;
	for (int i = 0; i < nf; i++) {
		struct shape *s = rel_shape(t, found[i]);
		if (!s)
			return NULL;
		all = mt_join(all, s->all);
	}
	return mt_unknown_shape(t, all);
}

/* Apply an alias's column names to s (a copy). */
struct shape *mt_renamed(struct tr *t, struct shape *s, const PgQuery__Alias *a)
{
	if (!s || !a || !a->n_colnames)
		return s;
	struct shape *c = mt_new_shape(t, s->n);
	if (!c)
		return NULL;
	*c = (struct shape){.n = s->n, .cols = c->cols, .unknown = s->unknown, .all = s->all};
	for (int i = 0; i < s->n; i++)
		c->cols[i] = s->cols[i];
	if (s->unknown) {
		/* renamed columns of an unknown shape: which is which is still unknown */
		return c;
	}
	for (size_t i = 0; i < a->n_colnames && (int)i < c->n; i++)
		c->cols[i].name = mt_str_of(a->colnames[i]);
	return c;
}

/* ---- expressions -------------------------------------------------------------------------- */

/* Whatever an unplaceable name could be: columns without a known name and unknown shapes of
 * every scope, and the SELECT's own output. */
struct taint mt_anything(const struct scope *sc)
{
	struct taint a = CLEAN;
	for (; sc; sc = sc->up) {
		for (int i = 0; i < sc->n; i++) {
			const struct shape *s = sc->rtes[i].s;
			if (s->unknown)
				a = mt_join(a, s->all);
			for (int k = 0; k < s->n; k++)
				if (!s->cols[k].name)
					a = mt_join(a, s->cols[k].t);
		}
		if (sc->out)
			for (int k = 0; k < sc->out->n; k++)
				if (!sc->out->cols[k].name)
					a = mt_join(a, sc->out->cols[k].t);
	}
	return mt_derive(a);
}

/* Column c of one relation entry, or of every one of a scope (rte NULL). found: placed. */
struct taint mt_column_in(const struct shape *s, const char *c, bool *found)
{
	struct taint a = CLEAN;
	int hits = 0;
	for (int k = 0; k < s->n; k++)
		if (s->cols[k].name && strcmp(s->cols[k].name, c) == 0) {
			a = hits++ ? mt_join(a, s->cols[k].t) : s->cols[k].t;
			*found = true;
		}
	return a;
}

const struct rte *mt_find_rte(const struct scope *sc, const char *alias)
{
	for (; sc; sc = sc->up)
		for (int i = sc->n - 1; i >= 0; i--)
			if (sc->rtes[i].alias && strcmp(sc->rtes[i].alias, alias) == 0)
				return &sc->rtes[i];
	return NULL;
}

static bool is_system_column(const char *c)
{
	static const char *const names[] = {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"};
	for (size_t i = 0; c && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(c, names[i]) == 0)
			return true;
	return false;
}

static struct taint every_column(const struct scope *sc)
{
	struct taint a = CLEAN;
	for (; sc; sc = sc->up)
		for (int i = 0; i < sc->n; i++)
			a = mt_join(a, sc->rtes[i].s->all);
	return mt_derive(a);
}

static struct taint column_ref(const struct scope *sc, const PgQuery__ColumnRef *cr)
{
	size_t n = cr->n_fields;
	if (n == 0)
		return mt_anything(sc);
	bool star = mt_is_star(cr->fields[n - 1]);
	const char *last = star ? NULL : mt_str_of(cr->fields[n - 1]);
	if (n == 1 && star) { /* a bare * inside an expression (count(*) is not one) */
		struct taint a = CLEAN;
		for (const struct scope *s = sc; s; s = s->up)
			for (int i = 0; i < s->n; i++)
				a = mt_join(a, s->rtes[i].s->all);
		return mt_derive(a);
	}
	if (n >= 2) {
		const char *rel = mt_str_of(cr->fields[n - 2]);
		const struct rte *r = rel ? mt_find_rte(sc, rel) : NULL;
		if (r) {
			if (star)
				return r->s->all;
			bool found = false;
			struct taint a = mt_column_in(r->s, last ? last : "", &found);
			if (found && !r->s->unknown)
				return a;
			if (!found && !r->s->unknown && is_system_column(last))
				return CLEAN; /* p.ctid, p.xmin */
			return mt_join(a, r->s->all.kind ? mt_derive(r->s->all) : r->s->all);
		}
		if (n == 2 && rel) {
			/* a column of composite type and its field: the column's taint */
			for (const struct scope *s = sc; s; s = s->up)
				for (int i = 0; i < s->n; i++) {
					bool found = false;
					struct taint a = mt_column_in(s->rtes[i].s, rel, &found);
					if (found)
						return mt_derive(a);
				}
		}
		/* a qualifier no entry has: it may be any of them */
		return mt_join(mt_anything(sc), every_column(sc));
	}
	/* one name: a column of the innermost scope that has it, or a whole row */
	for (const struct scope *s = sc; s; s = s->up) {
		bool found = false;
		struct taint a = CLEAN;
		for (int i = 0; i < s->n; i++) {
			bool f = false;
			struct taint c = mt_column_in(s->rtes[i].s, last, &f);
			if (f)
				a = found ? mt_join(a, c) : c;
			found |= f;
		}
		const struct rte *r = NULL;
		for (int i = 0; i < s->n; i++)
			if (s->rtes[i].alias && strcmp(s->rtes[i].alias, last) == 0)
				r = &s->rtes[i];
		if (r) /* a whole-row reference (or a column of the same name: both) */
			a = found ? mt_join(a, mt_derive(r->s->all)) : mt_derive(r->s->all);
		if (s->out) { /* ORDER BY and GROUP BY may name an output column */
			bool f = false;
			struct taint o = mt_column_in(s->out, last, &f);
			if (f) {
				a = found || r ? mt_join(a, o) : o;
				found = true;
			}
		}
		if (found || r) {
			bool unknown = false;
			for (int i = 0; i < s->n; i++)
				unknown |= s->rtes[i].s->unknown;
			return unknown ? mt_join(a, mt_anything(s)) : a;
		}
	}
	/* a name no entry has: a system column, or a column the catalog does not know yet
	 * (renamed since it was read): then it may be any column of any entry */
	return is_system_column(last) ? CLEAN : mt_join(mt_anything(sc), every_column(sc));
}

/* Built-ins that read tables named in text, or values other statements left: refused to an
 * identity with masks whatever its guardrails. */
static bool reads_elsewhere(const char *name)
{
	static const char *const prefixes[] = {"query_to_xml",
	                                       "table_to_xml",
	                                       "cursor_to_xml",
	                                       "schema_to_xml",
	                                       "database_to_xml",
	                                       "dblink",
	                                       "pg_stat_get_activity",
	                                       "pg_stat_get_backend_activity",
	                                       "pg_stat_statements",
	                                       "pg_cursor",
	                                       "pg_prepared_statement",
	                                       "ts_stat",
	                                       "xpath_table",
	                                       "crosstab",
	                                       "connectby",
	                                       "ts_rewrite",
	                                       "pg_logical_slot",
	                                       "lo_get",
	                                       "loread",
	                                       "pg_read"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static struct taint func_call(struct tr *t, struct scope *sc, const PgQuery__FuncCall *f)
{
	const char *name = f->n_funcname ? mt_str_of(f->funcname[f->n_funcname - 1]) : NULL;
	const char *schema = f->n_funcname > 1 ? mt_str_of(f->funcname[f->n_funcname - 2]) : NULL;
	struct taint a = CLEAN;
	for (size_t i = 0; i < f->n_args; i++)
		a = mt_join(a, mt_expr(t, sc, f->args[i]));
	for (size_t i = 0; i < f->n_agg_order; i++)
		mt_predicate(t, mt_expr(t, sc, f->agg_order[i]), "an aggregate's ORDER BY");
	if (f->agg_filter)
		mt_predicate(t, mt_expr(t, sc, f->agg_filter), "an aggregate's FILTER");
	if (f->over) {
		for (size_t i = 0; i < f->over->n_partition_clause; i++)
			mt_predicate(t, mt_expr(t, sc, f->over->partition_clause[i]),
			             "PARTITION BY");
		for (size_t i = 0; i < f->over->n_order_clause; i++)
			mt_predicate(t, mt_expr(t, sc, f->over->order_clause[i]),
			             "a window's ORDER BY");
	}
	if (!name)
		return mt_derive(a);
	if (reads_elsewhere(name)) {
		mt_refuse(t, "42501", "call %s(): it can read values masking does not see", name);
		return mt_derive(a);
	}
	struct pw_sql_func sf = {.nargs = (int16_t)f->n_args};
	snprintf(sf.schema, sizeof(sf.schema), "%s", schema ? schema : "");
	snprintf(sf.name, sizeof(sf.name), "%s", name);
	char why[128] = "";
	bool writes = !t->sc->ps || pw_policy_call_writes(t->sc->ps, &sf, why, sizeof(why));
	if (writes && mt_tainted(a)) {
		mt_refuse(t, "42501", "pass masked data to %s() (%s): it could keep or show it",
		          name, why[0] ? why : "a function with side effects");
		return mt_derive(a);
	}
	const struct pw_cat_func *first = NULL;
	size_t k =
	    t->sc->ps && t->sc->ps->cat ? pw_catalog_lookup(t->sc->ps->cat, name, &first) : 0;
	bool user = k == 0, retset = k == 0;
	for (size_t i = 0; i < k; i++) {
		user |= !first[i].builtin;
		retset |= first[i].retset;
	}
	/* a set-returning call makes as many rows as its arguments say: a predicate */
	if (retset)
		mt_predicate(t, a, "a set-returning function's arguments");
	if (writes && !mt_tainted(a) && user) {
		/* a function defined in the database may read masked tables itself: its
		 * result is masked and the statement's errors scrubbed */
		t->touches = true;
		struct taint u = {PW_MK_DERIVED, true, false, -1, 0};
		return u;
	}
	return mt_derive(a);
}

/* (p).ssn, a field of a whole-row reference: the column itself, as p.ssn is; any other
 * indirection (a subscript, a field of a function's result): computed from what it reads. */
static struct taint indirection(struct tr *t, struct scope *sc, const PgQuery__AIndirection *ind)
{
	const node_t *arg = ind->arg;
	if (arg && arg->node_case == PG_QUERY__NODE__NODE_COLUMN_REF &&
	    arg->column_ref->n_fields == 1 && ind->n_indirection == 1) {
		const char *rel = mt_str_of(arg->column_ref->fields[0]);
		const char *col = mt_str_of(ind->indirection[0]);
		const struct rte *r = rel && col ? mt_find_rte(sc, rel) : NULL;
		bool f = false, other = false;
		/* only when rel is a relation's name and no column of the scope is called so */
		for (const struct scope *s = sc; r && s; s = s->up)
			for (int i = 0; i < s->n; i++)
				mt_column_in(s->rtes[i].s, rel, &other);
		struct taint a =
		    r && !other && !r->s->unknown ? mt_column_in(r->s, col, &f) : CLEAN;
		if (f)
			return a;
	}
	return mt_children(t, sc, (msg_t *)ind);
}

/* CASE: its conditions (and the value compared) choose what comes out: predicates. */
static struct taint case_expr(struct tr *t, struct scope *sc, const PgQuery__CaseExpr *c)
{
	struct taint arg = c->arg ? mt_expr(t, sc, c->arg) : CLEAN, a = arg;
	for (size_t i = 0; i < c->n_args; i++) {
		const node_t *w = c->args[i];
		if (w->node_case != PG_QUERY__NODE__NODE_CASE_WHEN) {
			a = mt_join(a, mt_expr(t, sc, w));
			continue;
		}
		struct taint cond = mt_join(arg, mt_expr(t, sc, w->case_when->expr));
		mt_predicate(t, cond, "a CASE condition");
		a = mt_join(a, mt_join(cond, mt_expr(t, sc, w->case_when->result)));
	}
	if (c->defresult)
		a = mt_join(a, mt_expr(t, sc, c->defresult));
	return mt_derive(a);
}

static struct taint sublink(struct tr *t, struct scope *sc, const PgQuery__SubLink *s)
{
	struct taint a = s->testexpr ? mt_expr(t, sc, s->testexpr) : CLEAN;
	struct shape *sh = s->subselect ? mt_stmt_shape(t, sc, s->subselect) : NULL;
	if (sh)
		a = mt_join(a, sh->all);
	return mt_derive(a);
}

/* Every child of a message, through the protobuf descriptors: the taint of all of them. */
bool mt_each_child(msg_t *m, bool (*fn)(msg_t *child, void *arg), void *arg)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		size_t k = 1;
		msg_t *const *arr = (msg_t *const *)(base + f->offset);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			k = *(const size_t *)(base + f->quantifier_offset);
			arr = *(msg_t *const *const *)(base + f->offset);
		} else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		           *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
			continue;
		}
		for (size_t j = 0; j < k; j++)
			if (arr[j] && !fn(arr[j], arg))
				return false;
	}
	return true;
}

struct children {
	struct tr *t;
	struct scope *sc;
	struct taint a;
};

static bool child_taint(msg_t *c, void *arg)
{
	struct children *x = arg;
	if (c->descriptor == &pg_query__node__descriptor) {
		x->a = mt_join(x->a, mt_expr(x->t, x->sc, (const node_t *)c));
	} else if (c->descriptor == &pg_query__select_stmt__descriptor) {
		struct shape *s = mt_select_shape(x->t, x->sc, (const PgQuery__SelectStmt *)c);
		if (s)
			x->a = mt_join(x->a, s->all);
	} else {
		x->a = mt_join(x->a, mt_children(x->t, x->sc, c));
	}
	return !x->t->denied;
}

struct taint mt_children(struct tr *t, struct scope *sc, msg_t *m)
{
	struct children x = {t, sc, CLEAN};
	mt_each_child(m, child_taint, &x);
	return mt_derive(x.a);
}

struct taint mt_expr(struct tr *t, struct scope *sc, const node_t *n)
{
	if (!n || t->denied)
		return CLEAN;
	if (++t->depth > 4000) { /* the parse stack holds it; the refusal is for bounded work */
		mt_refuse(t, "54001", "be masked: the statement is nested too deeply");
		t->depth--;
		return CLEAN;
	}
	struct taint a;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_COLUMN_REF:
		a = column_ref(sc, n->column_ref);
		break;
	case PG_QUERY__NODE__NODE_FUNC_CALL:
		a = func_call(t, sc, n->func_call);
		break;
	case PG_QUERY__NODE__NODE_SUB_LINK:
		a = sublink(t, sc, n->sub_link);
		break;
	case PG_QUERY__NODE__NODE_CASE_EXPR:
		a = case_expr(t, sc, n->case_expr);
		break;
	case PG_QUERY__NODE__NODE_A_INDIRECTION:
		a = indirection(t, sc, n->a_indirection);
		break;
	case PG_QUERY__NODE__NODE_A_CONST:
	case PG_QUERY__NODE__NODE_PARAM_REF:
		a = CLEAN;
		break;
	case PG_QUERY__NODE__NODE_SELECT_STMT: {
		struct shape *s = mt_select_shape(t, sc, n->select_stmt);
		a = s ? mt_derive(s->all) : CLEAN;
		break;
	}
	default: {
		msg_t *m = n->node_case != PG_QUERY__NODE__NODE__NOT_SET ? (msg_t *)n->alias : NULL;
		a = m ? mt_children(t, sc, m) : CLEAN;
		break;
	}
	}
	t->depth--;
	return a;
}

void mt_predicate(struct tr *t, struct taint a, const char *where)
{
	if (!mt_tainted(a) || a.pred_ok)
		return;
	const struct pw_policy *p = &t->sc->id->policy;
	if (a.rule >= 0 && a.rule < p->n_rules && p->rules[a.rule].name[0])
		mt_refuse(t, "42501", "use masked data in %s (mask rule %d \"%s\")", where,
		          a.rule + 1, p->rules[a.rule].name);
	else if (a.rule >= 0)
		mt_refuse(t, "42501", "use masked data in %s (mask rule %d)", where, a.rule + 1);
	else
		mt_refuse(t, "42501", "use masked data in %s", where);
}
