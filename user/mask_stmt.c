/* Masking's tracer, its statements: DML and RETURNING, COPY, CREATE TABLE AS and views,
 * cursors and prepared statements, and every other statement that could copy masked data or
 * rewrite what is read. See mask_trace.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mask_trace.h"
#include "pgward/config.h"

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
	return n ? mt_target_list(t, sc, rl, n) : NULL;
}

/* Writing a masked column: its unique and check constraints compare the value written with
 * what is stored (an error or a conflict tells): a predicate. cols: the ResTargets naming
 * the columns written (none: every column). */
static void written(struct tr *t, const struct shape *ts, node_t *const *cols, size_t n)
{
	if (!ts)
		return;
	if (!n || ts->unknown) {
		mt_predicate(t, ts->all, "writing a masked column (its constraints compare it)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const PgQuery__ResTarget *rt = cols[i]->node_case == PG_QUERY__NODE__NODE_RES_TARGET
		                                   ? cols[i]->res_target
		                                   : NULL;
		bool f = false;
		struct taint a = rt && mt_nz(rt->name) ? mt_column_in(ts, rt->name, &f) : ts->all;
		mt_predicate(t, f || !rt ? a : ts->all,
		             "writing a masked column (its constraints compare it)");
	}
}

static struct shape *insert_stmt(struct tr *t, struct scope *up, const PgQuery__InsertStmt *s)
{
	struct scope *sc = mt_alloc(t, sizeof(*sc));
	if (!sc)
		return NULL;
	sc->up = up;
	mt_with_clause(t, sc, s->with_clause);
	if (s->select_stmt) {
		struct shape *src = mt_stmt_shape(t, sc, s->select_stmt);
		if (src && (mt_tainted(src->all) || src->all.detect))
			mt_refuse(t, "42501", "copy masked data with INSERT ... SELECT");
	}
	struct shape *ts = target_rel(t, sc, s->relation);
	written(t, ts, s->cols, s->n_cols);
	if (s->on_conflict_clause) {
		const PgQuery__OnConflictClause *oc = s->on_conflict_clause;
		written(t, ts, oc->target_list, oc->n_target_list);
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
	mt_with_clause(t, sc, s->with_clause);
	written(t, target_rel(t, sc, s->relation), s->target_list, s->n_target_list);
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
	mt_with_clause(t, sc, s->with_clause);
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
	mt_with_clause(t, sc, s->with_clause);
	struct shape *target = target_rel(t, sc, s->relation);
	struct shape *src = mt_from_item(t, sc, s->source_relation);
	if (holds_masks(target) || holds_masks(src))
		mt_refuse(t, "42501",
		          "MERGE with masked data: its conditions and actions reveal or "
		          "copy it");
}

/* COPY's options: the format its rows come in. */
/* COPY's HEADER as the server reads it (defGetCopyHeaderChoice): no value, an integer 0 or
 * 1, or true, false, on, off in any case; -1 for what the server refuses. */
static int copy_header(const PgQuery__DefElem *e)
{
	if (!e->arg)
		return 1;
	if (e->arg->node_case == PG_QUERY__NODE__NODE_INTEGER)
		return e->arg->integer->ival == 0 ? 0 : e->arg->integer->ival == 1 ? 1 : -1;
	if (e->arg->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
		return e->arg->boolean->boolval;
	const char *v = mt_str_of(e->arg);
	if (!v)
		return -1;
	if (strcasecmp(v, "true") == 0 || strcasecmp(v, "on") == 0)
		return 1;
	if (strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0)
		return 0;
	return -1;
}

/* COPY's options: the format its rows come in. What masking could misread is refused. */
static void copy_options(struct tr *t, const PgQuery__CopyStmt *c, struct pw_copy_fmt *f,
                         bool masked)
{
	pw_copy_fmt_default(f, PW_COPY_TEXT);
	for (size_t i = 0; i < c->n_options; i++) {
		if (c->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *e = c->options[i]->def_elem;
		const char *v = e->arg ? mt_str_of(e->arg) : NULL;
		if (strcmp(e->defname, "format") == 0) {
			int kind = v && strcmp(v, "csv") == 0      ? PW_COPY_CSV
			           : v && strcmp(v, "binary") == 0 ? PW_COPY_BINARY
			           : v && strcmp(v, "text") == 0   ? PW_COPY_TEXT
			                                           : -1;
			if (kind < 0)
				mt_refuse(t, "0A000", "use COPY format %s with masked data",
				          v ? v : "?");
			else
				pw_copy_fmt_default(f, kind);
		}
	}
	for (size_t i = 0; i < c->n_options; i++) {
		if (c->options[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *e = c->options[i]->def_elem;
		const char *v = e->arg ? mt_str_of(e->arg) : NULL;
		char enc[PW_NAME_MAX];
		if (strcmp(e->defname, "format") == 0)
			continue;
		if (strcmp(e->defname, "header") == 0) {
			int h = copy_header(e);
			if (h < 0)
				mt_refuse(t, "0A000",
				          "use this COPY HEADER value with masked data");
			f->header = h == 1;
			continue;
		}
		if (strcmp(e->defname, "encoding") == 0 && v) {
			pw_encoding_normalize(v, enc);
			if (strcmp(enc, "UTF8") == 0)
				continue; /* the rows' bytes as masking reads them */
		}
		/* one-byte delimiter, quote and escape, a null string: what the reader takes */
		if (v && strlen(v) == 1 && (unsigned char)v[0] < 0x80) {
			if (strcmp(e->defname, "delimiter") == 0) {
				f->delim = v[0];
				continue;
			}
			if (strcmp(e->defname, "quote") == 0) {
				f->quote = v[0];
				continue;
			}
			if (strcmp(e->defname, "escape") == 0) {
				f->escape = v[0];
				continue;
			}
		}
		if (strcmp(e->defname, "null") == 0 && v && strlen(v) < sizeof(f->null_str) &&
		    (f->kind != PW_COPY_TEXT || !masked)) {
			/* text format does not quote a value equal to the null string: a guess at
			 * a masked value would come back as it is */
			snprintf(f->null_str, sizeof(f->null_str), "%s", v);
			f->null_len = strlen(v);
			continue;
		}
		if (strcmp(e->defname, "force_quote") == 0 ||
		    strcmp(e->defname, "force_not_null") == 0 ||
		    strcmp(e->defname, "force_null") == 0)
			continue; /* quoting of the output, which the reader takes either way */
		mt_refuse(
		    t, "0A000",
		    "use the COPY option %s with masked data: masking reads rows in the default "
		    "text, CSV or binary form only",
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
	copy_options(t, c, &hint->fmt, holds_masks(s) || t->touches);
	return s;
}

/* EXPLAIN's ANALYZE option, on (EXPLAIN ANALYZE, (ANALYZE), (ANALYZE true|on|1)). */
static bool explain_analyze(const PgQuery__ExplainStmt *e)
{
	for (size_t i = 0; i < e->n_options; i++) {
		const node_t *o = e->options[i];
		if (o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
		    strcmp(o->def_elem->defname, "analyze") != 0)
			continue;
		const node_t *a = o->def_elem->arg;
		const char *v = a ? mt_str_of(a) : NULL;
		if (!a || (a->node_case == PG_QUERY__NODE__NODE_INTEGER && a->integer->ival) ||
		    (a->node_case == PG_QUERY__NODE__NODE_BOOLEAN && a->boolean->boolval) ||
		    (v && strcasecmp(v, "false") && strcasecmp(v, "off")) ||
		    (!v && a->node_case != PG_QUERY__NODE__NODE_INTEGER &&
		     a->node_case != PG_QUERY__NODE__NODE_BOOLEAN))
			return true; /* on, or what cannot be read as off */
	}
	return false;
}

/* Does any relation m names (anywhere inside it) have masked columns? */
struct mentions {
	struct tr *t;
	bool found;
};

static bool mention(msg_t *m, void *arg)
{
	struct mentions *x = arg;
	if (m->descriptor == &pg_query__range_var__descriptor) {
		struct scope *in = mt_alloc(x->t, sizeof(*in));
		x->found |=
		    !in || holds_masks(mt_range_var(x->t, in, (const PgQuery__RangeVar *)m));
	} else {
		mt_each_child(m, mention, x);
	}
	return !x->found && !x->t->denied;
}

static bool mentions_masked(struct tr *t, msg_t *m)
{
	struct mentions x = {t, false};
	mention(m, &x);
	return x.found;
}

/* Nested statements of anything else (CREATE RULE's actions, ...): their checks apply. */
static void nested(struct tr *t, struct scope *sc, msg_t *m);
static bool mentions_masked(struct tr *t, msg_t *m);

/* The other statements: what they refuse, and the names they close or drop. */
static struct shape *utility(struct tr *t, struct scope *up, const node_t *n,
                             struct pw_mask_plan *hint)
{
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
		if (hint && mt_nz(n->close_portal_stmt->portalname))
			snprintf(hint->closes, sizeof(hint->closes), "%s",
			         n->close_portal_stmt->portalname);
		else if (hint)
			hint->close_all = true;
		return NULL;
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
		if (hint && mt_nz(n->deallocate_stmt->name))
			snprintf(hint->deallocates, sizeof(hint->deallocates), "%s",
			         n->deallocate_stmt->name);
		else if (hint)
			hint->deallocate_all = true;
		return NULL;
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
		if (hint && n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL)
			hint->close_all = hint->deallocate_all = true;
		return NULL;
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
		if (hint)
			hint->rows_clean = true; /* a setting's value */
		return NULL;
	case PG_QUERY__NODE__NODE_RULE_STMT:
		mt_refuse(t, "42501", "create a rule: it rewrites what statements read and return");
		return NULL;
	case PG_QUERY__NODE__NODE_CREATE_STMT: {
		/* a foreign key to a masked relation tests a guess against its column, and a
		 * child of one shares its rows (the new table's own name is not what it reads) */
		const PgQuery__CreateStmt *c = n->create_stmt;
		bool m = false;
		for (size_t i = 0; i < c->n_table_elts && !m; i++)
			m = mentions_masked(t, (msg_t *)c->table_elts[i]);
		for (size_t i = 0; i < c->n_inh_relations && !m; i++)
			m = mentions_masked(t, (msg_t *)c->inh_relations[i]);
		for (size_t i = 0; i < c->n_constraints && !m; i++)
			m = mentions_masked(t, (msg_t *)c->constraints[i]);
		if (m)
			mt_refuse(t, "42501",
			          "make a table that references, inherits or copies a "
			          "relation with masked columns");
		return NULL;
	}
	case PG_QUERY__NODE__NODE_INDEX_STMT:
	case PG_QUERY__NODE__NODE_CREATE_STATS_STMT:
	case PG_QUERY__NODE__NODE_CREATE_TRIG_STMT:
	case PG_QUERY__NODE__NODE_CREATE_POLICY_STMT:
	case PG_QUERY__NODE__NODE_ALTER_POLICY_STMT:
		/* their expressions run over the rows, and their errors quote them */
		if (mentions_masked(t, (msg_t *)n->alias))
			mt_refuse(t, "42501",
			          "index, constrain or police a relation with masked "
			          "columns");
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
	case PG_QUERY__NODE__NODE_ALTER_TABLE_STMT:
		/* the relation altered, or one it names (ATTACH PARTITION people) */
		if (mentions_masked(t, (msg_t *)n->alter_table_stmt))
			mt_refuse(t, "42501",
			          "alter a relation with masked columns, or attach one");
		return NULL;
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

struct shape *mt_stmt_shape_hint(struct tr *t, struct scope *up, const node_t *n,
                                 struct pw_mask_plan *hint)
{
	if (!n || t->denied)
		return NULL;
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
		if (hint && n->declare_cursor_stmt->portalname) {
			snprintf(hint->declares, sizeof(hint->declares), "%s",
			         n->declare_cursor_stmt->portalname);
			hint->hold = n->declare_cursor_stmt->options & 0x20; /* CURSOR_OPT_HOLD */
		}
		return s;
	}
	case PG_QUERY__NODE__NODE_PREPARE_STMT: {
		struct shape *s = mt_stmt_shape(t, up, n->prepare_stmt->query);
		if (hint && n->prepare_stmt->name)
			snprintf(hint->prepares, sizeof(hint->prepares), "%s",
			         n->prepare_stmt->name);
		return s;
	}
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT: {
		bool touched = t->touches;
		t->touches = false;
		mt_stmt_shape(t, up, n->explain_stmt->query); /* its checks */
		/* ANALYZE tells rows, memory, loops of what ran: of masked data, that is values */
		if (t->touches && explain_analyze(n->explain_stmt))
			mt_refuse(t, "42501", "EXPLAIN ANALYZE a statement that reads masked data");
		t->touches |= touched;
		if (hint)
			hint->rows_clean = true; /* a plan: no stored value */
		return NULL;
	}
	case PG_QUERY__NODE__NODE_FETCH_STMT:
		/* MOVE runs the cursor too (its errors are the cursor's), with no rows */
		if (hint && n->fetch_stmt->portalname)
			snprintf(hint->fetches, sizeof(hint->fetches), "%s",
			         n->fetch_stmt->portalname);
		return NULL;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		for (size_t i = 0; i < n->execute_stmt->n_params; i++)
			mt_expr(t, up, n->execute_stmt->params[i]);
		if (hint && n->execute_stmt->name)
			snprintf(hint->executes, sizeof(hint->executes), "%s",
			         n->execute_stmt->name);
		/* inside another statement (CREATE TABLE AS EXECUTE, EXPLAIN ANALYZE EXECUTE):
		 * what it reads is not known here, so it counts as masked data */
		if (!hint)
			t->touches = true;
		return hint
		           ? NULL
		           : mt_unknown_shape(t, (struct taint){PW_MK_DERIVED, true, false, -1, 0});
	default:
		return utility(t, up, n, hint);
	}
}
struct shape *mt_stmt_shape(struct tr *t, struct scope *up, const node_t *n)
{
	return mt_stmt_shape_hint(t, up, n, NULL);
}

struct nesting {
	struct tr *t;
	struct scope *sc;
};

static bool nest(msg_t *m, void *arg)
{
	struct nesting *x = arg;
	if (m->descriptor == &pg_query__node__descriptor) {
		const node_t *n = (const node_t *)m;
		switch (n->node_case) {
		case PG_QUERY__NODE__NODE_SELECT_STMT:
		case PG_QUERY__NODE__NODE_INSERT_STMT:
		case PG_QUERY__NODE__NODE_UPDATE_STMT:
		case PG_QUERY__NODE__NODE_DELETE_STMT:
		case PG_QUERY__NODE__NODE_MERGE_STMT:
			mt_stmt_shape(x->t, x->sc, n);
			return !x->t->denied;
		default:
			break;
		}
	}
	mt_each_child(m, nest, x);
	return !x->t->denied;
}

static void nested(struct tr *t, struct scope *sc, msg_t *m)
{
	struct nesting x = {t, sc};
	mt_each_child(m, nest, &x);
}
