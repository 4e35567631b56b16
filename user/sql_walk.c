/* The analyser's tree walk: see include/pgward/sql_walk.h. Every node is reached through the
 * protobuf descriptors, so a node kind nobody handles is still walked for the relations and
 * calls below it; the kinds that name relations, functions or settings have their own case. */
#include "pgward/sql_walk.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "pgward/sql_class.h"
#include "pgward/sql_setting.h"

typedef const ProtobufCMessage msg_t;

struct walk {
	struct pw_sql_result *r;
	int stmt;
	uint8_t mode;          /* access of the RangeVars met now */
	bool noexec;           /* EXPLAIN without ANALYZE: writes are reported as reads */
	uint8_t set_how;       /* VariableSetStmt met directly or under ALTER ROLE/DATABASE */
	const char *ctes[256]; /* CTE names in scope (unqualified references to them) */
	int nctes;
	char *err;
	size_t errlen;
	int failed;
	bool value_sensitive; /* a decision read a constant (set_config's name, EXPLAIN's
	                       * ANALYZE 0, a search_path): see sql_key.h */
};

static void visit(struct walk *w, msg_t *m);

static int fail(struct walk *w, const char *what)
{
	if (!w->failed)
		snprintf(w->err, w->errlen, "statement too complex: more than %s", what);
	w->failed = 1;
	return -1;
}

static const char *str_or(const char *s)
{
	return s ? s : "";
}

/* Copies with a length check: names are at most 63 bytes after the scanner truncates them. */
static void copy_name(char *dst, const char *src)
{
	snprintf(dst, PW_SQL_NAMELEN, "%s", str_or(src));
}

static void lower_name(char *dst, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i < PW_SQL_NAMELEN - 1; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = 0;
}

static struct pw_sql_stmt *cur(struct walk *w)
{
	return &w->r->stmts[w->stmt];
}

static void add_rel(struct walk *w, const char *schema, const char *name, uint8_t access)
{
	struct pw_sql_rel *rel;

	if (w->r->nrels >= PW_SQL_MAX_RELS) {
		fail(w, "the relation limit");
		return;
	}
	if (w->noexec)
		access = PW_SQL_READ;
	rel = &w->r->rels[w->r->nrels++];
	copy_name(rel->schema, schema);
	copy_name(rel->name, name);
	rel->access = access;
	rel->flags = 0;
	rel->stmt = (uint16_t)w->stmt;
}

static bool is_cte(struct walk *w, const char *name)
{
	for (int i = w->nctes - 1; i >= 0; i--)
		if (strcmp(w->ctes[i], name) == 0)
			return true;
	return false;
}

static void range_var(struct walk *w, const PgQuery__RangeVar *rv, uint8_t access, bool cte_ok)
{
	const char *schema = str_or(rv->schemaname);

	if (!rv->relname || !*rv->relname)
		return;
	/* a CTE name hides a relation only when written unqualified */
	if (cte_ok && !*schema && is_cte(w, rv->relname))
		return;
	if (rv->relpersistence && rv->relpersistence[0] == 't') {
		cur(w)->flags |= PW_SQL_F_CREATES_TEMP;
		if (!*schema)
			schema = "pg_temp";
	}
	add_rel(w, schema, rv->relname, access);
}

static bool skipped(const void *const *skip, size_t n, const void *p)
{
	for (size_t i = 0; i < n; i++)
		if (skip[i] && skip[i] == p)
			return true;
	return false;
}

/* walk_children(w, m, a, b...): every child but a, b... (NULL for none) */
#define walk_children(w, m, ...)                                                                   \
	walk_children_but(w, m, (const void *const[]){__VA_ARGS__},                                \
	                  sizeof((const void *const[]){__VA_ARGS__}) / sizeof(void *))

/* Children of any message, found through the protobuf descriptors, except those in skip (n
 * children or repeated fields' arrays the caller handles itself; NULLs are ignored). */
static void walk_children_but(struct walk *w, msg_t *m, const void *const *skip, size_t nskip)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields && !w->failed; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			msg_t *const *arr = *(msg_t *const *const *)(base + f->offset);

			if (n && skipped(skip, nskip, arr))
				continue;
			for (size_t j = 0; j < n && !w->failed; j++)
				visit(w, arr[j]);
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		msg_t *child = *(msg_t *const *)(base + f->offset);
		if (child && !skipped(skip, nskip, child))
			visit(w, child);
	}
}

static msg_t *node_inner(const PgQuery__Node *n)
{
	/* every member of the oneof is a message pointer at the same place */
	return n && n->node_case != PG_QUERY__NODE__NODE__NOT_SET ? (msg_t *)n->alias : NULL;
}

static bool is_dml(const PgQuery__Node *n)
{
	if (!n)
		return false;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_INSERT_STMT:
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
	case PG_QUERY__NODE__NODE_DELETE_STMT:
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		return true;
	default:
		return false;
	}
}

/* WITH: each CTE sees the earlier ones (all of them when RECURSIVE); the body sees all. The
 * names stay pushed until the caller restores w->nctes. */
static void with_clause(struct walk *w, const PgQuery__WithClause *wc)
{
	if (!wc)
		return;
	for (size_t pass = wc->recursive ? 0 : 1; pass < 2; pass++) {
		for (size_t i = 0; i < wc->n_ctes && !w->failed; i++) {
			const PgQuery__Node *n = wc->ctes[i];
			const PgQuery__CommonTableExpr *c;

			if (n->node_case != PG_QUERY__NODE__NODE_COMMON_TABLE_EXPR)
				continue;
			c = n->common_table_expr;
			if (pass == 0 || !wc->recursive) {
				if (w->nctes >= (int)(sizeof(w->ctes) / sizeof(w->ctes[0]))) {
					fail(w, "256 CTE names in scope");
					return;
				}
			}
			if (pass == 0) { /* RECURSIVE: push every name first */
				w->ctes[w->nctes++] = str_or(c->ctename);
				continue;
			}
			if (is_dml(c->ctequery))
				cur(w)->flags |= PW_SQL_F_CTE_DML;
			uint8_t mode = w->mode;
			w->mode = PW_SQL_READ;
			visit(w, (msg_t *)c->ctequery);
			w->mode = mode;
			if (!wc->recursive)
				w->ctes[w->nctes++] = str_or(c->ctename);
		}
	}
}

/* INSERT/UPDATE/DELETE/MERGE anywhere: the target is written, the rest read. */
static void dml(struct walk *w, msg_t *m, enum pw_sql_class cls, const PgQuery__RangeVar *target,
                const PgQuery__WithClause *wc, bool no_where)
{
	int nctes = w->nctes;
	uint8_t mode = w->mode;

	cur(w)->runs |= 1u << cls;

	with_clause(w, wc);
	if (target)
		range_var(w, target, PW_SQL_WRITE, false);
	if (no_where)
		cur(w)->flags |= PW_SQL_F_NO_WHERE;
	w->mode = PW_SQL_READ;
	walk_children(w, m, target, wc);
	w->mode = mode;
	w->nctes = nctes;
}

/* A constant's text, when a decision depends on it: the analysis then belongs to this exact
 * text, not to every text that differs from it in literals only (see sql_key.h). */
static const char *const_string(struct walk *w, const PgQuery__Node *n)
{
	while (n && n->node_case == PG_QUERY__NODE__NODE_TYPE_CAST)
		n = n->type_cast->arg;
	if (n && n->node_case == PG_QUERY__NODE__NODE_A_CONST &&
	    n->a_const->val_case == PG_QUERY__A__CONST__VAL_SVAL) {
		w->value_sensitive = true;
		return n->a_const->sval->sval;
	}
	if (n && n->node_case == PG_QUERY__NODE__NODE_STRING) {
		w->value_sensitive = true;
		return n->string->sval;
	}
	return NULL;
}

static struct pw_sql_setting *setting(struct walk *w, const char *name, uint8_t how)
{
	struct pw_sql_setting *s;
	char lname[PW_SQL_NAMELEN];

	lower_name(lname, name);
	if (strcmp(lname, "role") == 0 || strcmp(lname, "session_authorization") == 0)
		cur(w)->flags |= PW_SQL_F_ROLE_ESCAPE;
	else if (strcmp(lname, "standard_conforming_strings") == 0)
		cur(w)->flags |= PW_SQL_F_SCS_CHANGE;
	else if (strcmp(lname, "client_encoding") == 0 || strcmp(lname, "names") == 0)
		cur(w)->flags |= PW_SQL_F_ENCODING_CHANGE;
	else if (strcmp(lname, "all") == 0 && how == PW_SQL_SET_RESET)
		cur(w)->flags |=
		    PW_SQL_F_RESET_ALL | PW_SQL_F_SCS_CHANGE | PW_SQL_F_ENCODING_CHANGE;
	if (w->r->nsets >= PW_SQL_MAX_SETS) {
		fail(w, "the settings limit");
		return NULL;
	}
	s = &w->r->sets[w->r->nsets++];
	memset(s, 0, sizeof(*s));
	memcpy(s->name, lname, sizeof(s->name));
	s->how = how;
	s->stmt = (uint16_t)w->stmt;
	s->value_known = how == PW_SQL_SET_RESET;
	return s;
}

/* A function named by a (schema-qualified) name list; NULL when there is none. */
static struct pw_sql_func *add_func(struct walk *w, PgQuery__Node *const *names, size_t count,
                                    size_t *nparts)
{
	const char *parts[3] = {NULL, NULL, NULL};
	size_t n = 0;
	struct pw_sql_func *f;

	for (size_t i = 0; i < count && n < 3; i++)
		if (names[i]->node_case == PG_QUERY__NODE__NODE_STRING)
			parts[n++] = names[i]->string->sval;
	*nparts = n;
	if (n == 0)
		return NULL;
	if (w->r->nfuncs >= PW_SQL_MAX_FUNCS) {
		fail(w, "the function limit");
		return NULL;
	}
	f = &w->r->funcs[w->r->nfuncs++];
	copy_name(f->schema, n > 1 ? parts[n - 2] : "");
	copy_name(f->name, parts[n - 1]);
	f->stmt = (uint16_t)w->stmt;
	f->nargs = -1;
	return f;
}

/* A relation named by a text constant, as regclass input reads it: [schema.]name, double
 * quotes keep case and dots, other letters are folded. A computed name (or one that does not
 * read) is a relation nobody can name: no allowing rule covers it. */
static void regclass_arg(struct walk *w, const PgQuery__Node *arg, uint8_t access)
{
	const char *v = const_string(w, arg);
	char parts[2][PW_SQL_NAMELEN];
	int np = 0;
	bool ok = v != NULL;

	while (ok && *v && np < 2) {
		size_t n = 0;
		if (*v == '"') {
			for (v++;; v++) {
				if (!*v) {
					ok = false;
					break;
				}
				if (*v == '"' && v[1] != '"')
					break;
				if (*v == '"')
					v++;
				if (n < PW_SQL_NAMELEN - 1)
					parts[np][n++] = *v;
			}
			if (ok)
				v++;
		} else {
			while (*v && *v != '.') {
				if (n < PW_SQL_NAMELEN - 1)
					parts[np][n++] = (char)tolower((unsigned char)*v);
				v++;
			}
		}
		parts[np++][n] = 0;
		if (*v == '.')
			v++;
		else if (*v)
			ok = false;
	}
	if (!ok || *v || np == 0 || !parts[np - 1][0]) {
		add_rel(w, "?", "?", access); /* qualified: finish() keeps it as it is */
		if (!w->failed)
			w->r->rels[w->r->nrels - 1].flags |= PW_SQL_R_UNRESOLVED;
		return;
	}
	add_rel(w, np == 2 ? parts[0] : "", parts[np - 1], access);
}

static void func_call(struct walk *w, const PgQuery__FuncCall *fc)
{
	size_t n;
	struct pw_sql_func *f = add_func(w, fc->funcname, fc->n_funcname, &n);

	if (!f)
		return;
	f->nargs = (int16_t)(fc->n_args > INT16_MAX ? INT16_MAX : fc->n_args);
	if (strcmp(f->name, "set_config") == 0 &&
	    (n == 1 || strcmp(f->schema, "pg_catalog") == 0)) {
		const char *name = fc->n_args ? const_string(w, fc->args[0]) : NULL;

		struct pw_sql_setting *st = name ? setting(w, name, PW_SQL_SET_CONFIG) : NULL;

		if (st && fc->n_args > 1 &&
		    (strcmp(st->name, "client_encoding") == 0 ||
		     strcmp(st->name, "standard_conforming_strings") == 0)) {
			const char *v = const_string(w, fc->args[1]);

			st->value_known = v && pw_sql_value_add(st, v, strlen(v));
		}
		if (st && fc->n_args > 1 && strcmp(st->name, "search_path") == 0) {
			const char *v = const_string(w, fc->args[1]);

			st->value_known = v && pw_sql_value_split(st, v);
			if (!st->value_known)
				st->value_len = 0;
		}
		if (!name)
			cur(w)->flags |= PW_SQL_F_SET_CONFIG_DYNAMIC;
	}
	/* sequences named by text: nextval and setval write them, currval reads */
	bool seq_write = !strcmp(f->name, "nextval") || !strcmp(f->name, "setval");
	if ((seq_write || !strcmp(f->name, "currval")) &&
	    (n == 1 || strcmp(f->schema, "pg_catalog") == 0) && fc->n_args >= 1)
		regclass_arg(w, fc->args[0], seq_write ? PW_SQL_WRITE : PW_SQL_READ);
}

static void def_lang(struct walk *w, PgQuery__Node **opts, size_t n)
{
	struct pw_sql_stmt *s = cur(w);

	s->flags |= PW_SQL_F_BODY;
	if (!s->lang[0])
		copy_name(s->lang, "plpgsql");
	for (size_t i = 0; i < n; i++) {
		if (opts[i]->node_case != PG_QUERY__NODE__NODE_DEF_ELEM)
			continue;
		const PgQuery__DefElem *de = opts[i]->def_elem;
		const char *v = const_string(w, de->arg);
		if (strcmp(str_or(de->defname), "language") == 0 && v)
			lower_name(s->lang, v);
	}
}

/* List of String nodes (DROP TABLE a.b) -> relation. */
/* A relation named by a list [[catalog,] schema,] name, followed by `skip` more names (a
 * column's). */
static void name_list(struct walk *w, const PgQuery__Node *n, uint8_t access, size_t skip)
{
	const char *parts[4] = {NULL, NULL, NULL, NULL};
	size_t k = 0;

	if (!n || n->node_case != PG_QUERY__NODE__NODE_LIST)
		return;
	for (size_t i = 0; i < n->list->n_items && k < 4; i++)
		if (n->list->items[i]->node_case == PG_QUERY__NODE__NODE_STRING)
			parts[k++] = n->list->items[i]->string->sval;
	k = k > skip ? k - skip : 0;
	if (k)
		add_rel(w, k > 1 ? parts[k - 2] : "", parts[k - 1], access);
}

static bool is_relation_type(PgQuery__ObjectType t)
{
	switch (t) {
	case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
	case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
	case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
	case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
		return true;
	default:
		return false;
	}
}

/* Does a locking clause of this SELECT (FOR UPDATE, FOR SHARE ...) lock the FROM item known
 * as refname? Without OF it locks every one. */
static bool locks_item(const PgQuery__SelectStmt *s, const char *refname)
{
	for (size_t i = 0; i < s->n_locking_clause; i++) {
		const PgQuery__Node *n = s->locking_clause[i];
		const PgQuery__LockingClause *lc;

		if (n->node_case != PG_QUERY__NODE__NODE_LOCKING_CLAUSE)
			continue;
		lc = n->locking_clause;
		if (!lc->n_locked_rels)
			return true;
		for (size_t k = 0; k < lc->n_locked_rels; k++) {
			const PgQuery__Node *r = lc->locked_rels[k];
			if (r->node_case == PG_QUERY__NODE__NODE_RANGE_VAR && refname &&
			    strcmp(str_or(r->range_var->relname), refname) == 0)
				return true;
		}
	}
	return false;
}

static void select_stmt(struct walk *w, const PgQuery__SelectStmt *s, bool lock_all);

/* A FROM item of a SELECT with locking clauses: the tables it locks are accessed for lock
 * (as the server, which asks UPDATE privilege for them); a locked sub-select locks every
 * table in its own FROM. Everything else in the item is read. */
static void from_item(struct walk *w, const PgQuery__SelectStmt *s, const PgQuery__Node *n,
                      bool lock_all)
{
	if (!n || w->failed)
		return;
	if (n->node_case == PG_QUERY__NODE__NODE_RANGE_VAR) {
		const PgQuery__RangeVar *rv = n->range_var;
		const char *ref = rv->alias && rv->alias->aliasname && *rv->alias->aliasname
		                      ? rv->alias->aliasname
		                      : rv->relname;
		range_var(w, rv, lock_all || locks_item(s, ref) ? PW_SQL_LOCK : PW_SQL_READ, true);
	} else if (n->node_case == PG_QUERY__NODE__NODE_JOIN_EXPR) {
		const PgQuery__JoinExpr *j = n->join_expr;
		from_item(w, s, j->larg, lock_all);
		from_item(w, s, j->rarg, lock_all);
		walk_children(w, (msg_t *)j, j->larg, j->rarg);
	} else if (n->node_case == PG_QUERY__NODE__NODE_RANGE_SUBSELECT &&
	           n->range_subselect->subquery &&
	           n->range_subselect->subquery->node_case == PG_QUERY__NODE__NODE_SELECT_STMT) {
		const PgQuery__RangeSubselect *rs = n->range_subselect;
		const char *ref = rs->alias ? rs->alias->aliasname : NULL;
		select_stmt(w, rs->subquery->select_stmt, lock_all || locks_item(s, ref));
		walk_children(w, (msg_t *)rs, rs->subquery);
	} else {
		visit(w, (msg_t *)n);
	}
}

static void select_stmt(struct walk *w, const PgQuery__SelectStmt *s, bool lock_all)
{
	uint8_t mode = w->mode;
	int nctes = w->nctes;

	w->mode = PW_SQL_READ;
	with_clause(w, s->with_clause);
	if (s->into_clause && s->into_clause->rel) {
		/* SELECT INTO creates a table: DDL as much as CREATE TABLE AS */
		cur(w)->flags |= PW_SQL_F_SELECT_INTO;
		cur(w)->runs |= 1u << PW_SQL_DDL;
		range_var(w, s->into_clause->rel, PW_SQL_WRITE, false);
	}
	if (lock_all || s->n_locking_clause) {
		for (size_t i = 0; i < s->n_from_clause && !w->failed; i++)
			from_item(w, s, s->from_clause[i], lock_all);
		/* FOR UPDATE OF a, b names FROM items, not relations */
		walk_children(w, (msg_t *)s, s->with_clause, s->into_clause, s->from_clause,
		              s->locking_clause);
	} else {
		walk_children(w, (msg_t *)s, s->with_clause, s->into_clause);
	}
	w->mode = mode;
	w->nctes = nctes;
}

/* COPY: its relation is written (FROM) or read (TO); a query inside is read. */
static void copy_stmt(struct walk *w, const PgQuery__CopyStmt *s)
{
	if (s->is_program)
		cur(w)->flags |= PW_SQL_F_COPY_PROGRAM;
	else if (s->filename && *s->filename)
		cur(w)->flags |= PW_SQL_F_COPY_FILE;
	/* the tree cannot tell FROM '' (a server file: an error there) from FROM STDIN:
	 * COPY's analysis belongs to its exact text, never to a sibling with a file */
	w->value_sensitive = true;
	if (s->relation)
		range_var(w, s->relation, s->is_from ? PW_SQL_WRITE : PW_SQL_READ, false);
	w->mode = PW_SQL_READ;
	walk_children(w, (msg_t *)s, s->relation);
}

/* CREATE TABLE AS / SELECT INTO: the new table is written, the query read. */
static void create_table_as(struct walk *w, const PgQuery__CreateTableAsStmt *s)
{
	cur(w)->flags |= s->is_select_into ? PW_SQL_F_SELECT_INTO : PW_SQL_F_CREATE_TABLE_AS;
	if (s->into && s->into->rel)
		range_var(w, s->into->rel, PW_SQL_WRITE, false);
	w->mode = PW_SQL_READ;
	walk_children(w, (msg_t *)s, s->into);
}

/* DROP names relations by name lists, not by RangeVars. */
static void drop_stmt(struct walk *w, const PgQuery__DropStmt *s)
{
	if (is_relation_type(s->remove_type))
		for (size_t i = 0; i < s->n_objects; i++)
			name_list(w, s->objects[i], PW_SQL_WRITE, 0);
	else
		walk_children(w, (msg_t *)s, NULL);
}

/* SET / RESET (also under ALTER ROLE/DATABASE): the setting, and the values a decision needs
 * (client encoding, standard_conforming_strings, search_path). */
static void variable_set(struct walk *w, const PgQuery__VariableSetStmt *s)
{
	bool reset = s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
	             s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL;
	uint8_t how = w->set_how;

	if (how == PW_SQL_SET_SET &&
	    (reset || s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT))
		how = PW_SQL_SET_RESET;
	if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
		setting(w, "all", how == PW_SQL_SET_ALTER ? PW_SQL_SET_RESET : how);
		return;
	}
	if (!s->name || !*s->name)
		return;
	struct pw_sql_setting *st = setting(w, s->name, how);
	bool enc =
	    st && (strcmp(st->name, "client_encoding") == 0 || strcmp(st->name, "names") == 0 ||
	           strcmp(st->name, "standard_conforming_strings") == 0);

	if (enc && how != PW_SQL_SET_RESET) {
		/* SET NAMES 'x', SET client_encoding TO x, ALTER ROLE ... SET; also
		 * standard_conforming_strings' value */
		const char *v = s->n_args == 1 ? const_string(w, s->args[0]) : NULL;

		st->value_known = v && pw_sql_value_add(st, v, strlen(v));
	}
	if (st && how == PW_SQL_SET_SET && strcmp(st->name, "search_path") == 0) {
		/* SET search_path TO a, "B", 'c d': one schema per list element, as written (the
		 * scanner already folded unquoted names) */
		st->value_known = s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE;
		for (size_t i = 0; st->value_known && i < s->n_args; i++) {
			const char *v = const_string(w, s->args[i]);

			st->value_known = v && pw_sql_value_add(st, v, strlen(v));
		}
		if (!st->value_known)
			st->value_len = 0;
	}
}

/* COMMENT ON / SECURITY LABEL ON name a relation (or a column) by a name list. */
static void comment_on(struct walk *w, msg_t *m)
{
	bool comment = m->descriptor == &pg_query__comment_stmt__descriptor;
	PgQuery__ObjectType t = comment ? ((const PgQuery__CommentStmt *)m)->objtype
	                                : ((const PgQuery__SecLabelStmt *)m)->objtype;
	const PgQuery__Node *o = comment ? ((const PgQuery__CommentStmt *)m)->object
	                                 : ((const PgQuery__SecLabelStmt *)m)->object;

	if (is_relation_type(t))
		name_list(w, o, PW_SQL_WRITE, 0);
	else if (t == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN)
		name_list(w, o, PW_SQL_WRITE, 1);
	else
		walk_children(w, m, NULL);
}

static void visit(struct walk *w, msg_t *m)
{
	const ProtobufCMessageDescriptor *d;
	uint8_t mode = w->mode;
	int nctes = w->nctes;

	if (!m || w->failed)
		return;
	d = m->descriptor;
	if (d == &pg_query__node__descriptor) {
		visit(w, node_inner((const PgQuery__Node *)m));
	} else if (d == &pg_query__range_var__descriptor) {
		range_var(w, (const PgQuery__RangeVar *)m, w->mode, true);
	} else if (d == &pg_query__func_call__descriptor) {
		func_call(w, (const PgQuery__FuncCall *)m);
		walk_children(w, m, NULL);
	} else if (d == &pg_query__select_stmt__descriptor) {
		select_stmt(w, (const PgQuery__SelectStmt *)m, false);
	} else if (d == &pg_query__insert_stmt__descriptor) {
		const PgQuery__InsertStmt *s = (const PgQuery__InsertStmt *)m;
		dml(w, m, PW_SQL_INSERT, s->relation, s->with_clause, false);
	} else if (d == &pg_query__update_stmt__descriptor) {
		const PgQuery__UpdateStmt *s = (const PgQuery__UpdateStmt *)m;
		dml(w, m, PW_SQL_UPDATE, s->relation, s->with_clause, !s->where_clause);
	} else if (d == &pg_query__delete_stmt__descriptor) {
		const PgQuery__DeleteStmt *s = (const PgQuery__DeleteStmt *)m;
		dml(w, m, PW_SQL_DELETE, s->relation, s->with_clause, !s->where_clause);
	} else if (d == &pg_query__merge_stmt__descriptor) {
		const PgQuery__MergeStmt *s = (const PgQuery__MergeStmt *)m;
		dml(w, m, PW_SQL_MERGE, s->relation, s->with_clause, false);
	} else if (d == &pg_query__copy_stmt__descriptor) {
		copy_stmt(w, (const PgQuery__CopyStmt *)m);
	} else if (d == &pg_query__create_table_as_stmt__descriptor) {
		create_table_as(w, (const PgQuery__CreateTableAsStmt *)m);
	} else if (d == &pg_query__drop_stmt__descriptor) {
		drop_stmt(w, (const PgQuery__DropStmt *)m);
	} else if (d == &pg_query__lock_stmt__descriptor) {
		/* ACCESS SHARE (1) and ROW SHARE (2) lock; stronger modes block writers (or
		 * everyone): as much as a write */
		w->mode = ((const PgQuery__LockStmt *)m)->mode <= 2 ? PW_SQL_LOCK : PW_SQL_WRITE;
		walk_children(w, m, NULL);
	} else if (d == &pg_query__variable_set_stmt__descriptor) {
		variable_set(w, (const PgQuery__VariableSetStmt *)m);
		walk_children(w, m, NULL);
	} else if (d == &pg_query__alter_role_set_stmt__descriptor ||
	           d == &pg_query__alter_database_set_stmt__descriptor) {
		w->set_how = PW_SQL_SET_ALTER;
		walk_children(w, m, NULL);
		w->set_how = PW_SQL_SET_SET;
	} else if (d == &pg_query__do_stmt__descriptor) {
		const PgQuery__DoStmt *s = (const PgQuery__DoStmt *)m;
		def_lang(w, s->args, s->n_args);
	} else if (d == &pg_query__create_function_stmt__descriptor) {
		const PgQuery__CreateFunctionStmt *s = (const PgQuery__CreateFunctionStmt *)m;

		def_lang(w, s->options, s->n_options);
		if (s->sql_body)
			copy_name(cur(w)->lang, "sql");
		walk_children(w, m, NULL);
	} else if (d == &pg_query__create_trig_stmt__descriptor) {
		/* the trigger's function runs on every write of the table: named, so called */
		const PgQuery__CreateTrigStmt *s = (const PgQuery__CreateTrigStmt *)m;
		size_t n;

		add_func(w, s->funcname, s->n_funcname, &n);
		walk_children(w, m, NULL);
	} else if (d == &pg_query__comment_stmt__descriptor ||
	           d == &pg_query__sec_label_stmt__descriptor) {
		comment_on(w, m);
	} else if (d == &pg_query__alter_system_stmt__descriptor) {
		cur(w)->flags |= PW_SQL_F_ALTER_SYSTEM;
		walk_children(w, m, NULL);
	} else if (d == &pg_query__dropdb_stmt__descriptor) {
		cur(w)->flags |= PW_SQL_F_DROP_DATABASE;
		copy_name(cur(w)->object, ((const PgQuery__DropdbStmt *)m)->dbname);
	} else if (d == &pg_query__create_extension_stmt__descriptor) {
		cur(w)->flags |= PW_SQL_F_CREATE_EXTENSION;
		copy_name(cur(w)->object, ((const PgQuery__CreateExtensionStmt *)m)->extname);
		walk_children(w, m, NULL);
	} else {
		walk_children(w, m, NULL);
	}
	w->mode = mode;
	w->nctes = nctes;
}

/* EXPLAIN option "analyze": no argument means true; unknown spellings count as true (the
 * server would refuse them anyway, and over-reporting execution is the safe side). */
static bool explain_analyze(struct walk *w, const PgQuery__ExplainStmt *e)
{
	for (size_t i = 0; i < e->n_options; i++) {
		const PgQuery__Node *o = e->options[i];
		const PgQuery__Node *a;
		const char *v;

		if (o->node_case != PG_QUERY__NODE__NODE_DEF_ELEM ||
		    strcmp(str_or(o->def_elem->defname), "analyze") != 0)
			continue;
		a = o->def_elem->arg;
		if (!a)
			return true;
		if (a->node_case == PG_QUERY__NODE__NODE_INTEGER)
			return a->integer->ival != 0;
		if (a->node_case == PG_QUERY__NODE__NODE_BOOLEAN)
			return a->boolean->boolval;
		v = const_string(w, a);
		if (v && (!strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcmp(v, "0") ||
		          !strcasecmp(v, "no")))
			return false;
		return true;
	}
	return false;
}

static void statement(struct walk *w, const PgQuery__RawStmt *raw)
{
	const PgQuery__Node *n = raw->stmt;
	struct pw_sql_stmt *s = cur(w);

	s->cls = pw_sql_classify(n);
	s->runs = 1u << s->cls;
	pw_sql_stmt_tag(n, s->tag, sizeof(s->tag));
	s->location = raw->stmt_location;
	s->length = raw->stmt_len;
	/* utility statements name their objects to change them */
	w->mode = s->cls == PW_SQL_DDL || s->cls == PW_SQL_DCL || s->cls == PW_SQL_OTHER ||
	                  s->cls == PW_SQL_TRUNCATE
	              ? PW_SQL_WRITE
	              : PW_SQL_READ;
	w->nctes = 0;
	w->set_how = PW_SQL_SET_SET;
	switch (s->cls) {
	case PW_SQL_EXPLAIN: {
		const PgQuery__ExplainStmt *e = n->explain_stmt;

		s->inner = pw_sql_classify(e->query);
		s->runs |= 1u << s->inner;
		for (size_t i = 0; i < e->n_options; i++) {
			const PgQuery__Node *o = e->options[i];
			if (o->node_case == PG_QUERY__NODE__NODE_DEF_ELEM && o->def_elem->arg &&
			    (o->def_elem->arg->node_case == PG_QUERY__NODE__NODE_INTEGER ||
			     o->def_elem->arg->node_case == PG_QUERY__NODE__NODE_FLOAT))
				w->value_sensitive = true;
		}
		if (s->inner == PW_SQL_EXECUTE)
			copy_name(s->object, e->query->execute_stmt->name);
		if (explain_analyze(w, e))
			s->flags |= PW_SQL_F_EXPLAIN_ANALYZE;
		else
			s->flags |= PW_SQL_F_NOT_EXECUTED;
		w->noexec = !(s->flags & PW_SQL_F_EXPLAIN_ANALYZE);
		visit(w, (msg_t *)e->query);
		w->noexec = false;
		return;
	}
	case PW_SQL_PREPARE:
		s->inner = pw_sql_classify(n->prepare_stmt->query);
		s->runs |= 1u << s->inner;
		s->flags |= PW_SQL_F_NOT_EXECUTED;
		copy_name(s->object, n->prepare_stmt->name);
		break;
	case PW_SQL_EXECUTE:
		copy_name(s->object, n->execute_stmt->name);
		break;
	case PW_SQL_COPY_TO:
	case PW_SQL_COPY_FROM:
		s->inner = pw_sql_classify(n->copy_stmt->query);
		if (n->copy_stmt->query)
			s->runs |= 1u << s->inner;
		break;
	default:
		if (n->node_case == PG_QUERY__NODE__NODE_DEALLOCATE_STMT) {
			s->flags |= PW_SQL_F_FORGET_PREPARED;
			copy_name(s->object, n->deallocate_stmt->name); /* "" = ALL */
		} else if (n->node_case == PG_QUERY__NODE__NODE_DISCARD_STMT &&
		           n->discard_stmt->target == PG_QUERY__DISCARD_MODE__DISCARD_ALL) {
			/* DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT: the session
			 * leaves the role pgward put it in */
			s->flags |= PW_SQL_F_FORGET_PREPARED | PW_SQL_F_ROLE_ESCAPE;
		}
		break;
	}
	visit(w, (msg_t *)n);
}

int pw_sql_walk(const PgQuery__ParseResult *tree, struct pw_sql_result *r, bool *value_sensitive,
                char *err, size_t errlen)
{
	struct walk *w;
	int rc = -1;

	if (tree->n_stmts > PW_SQL_MAX_STMTS) {
		snprintf(err, errlen, "more than %d statements", PW_SQL_MAX_STMTS);
		return -1;
	}
	/* on the heap: the walk keeps 2 KiB of CTE names, and the parse stack is for depth */
	w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->r = r;
	w->err = err;
	w->errlen = errlen;
	for (size_t i = 0; i < tree->n_stmts && !w->failed; i++) {
		w->stmt = (int)i;
		r->nstmts = (int)i + 1;
		statement(w, tree->stmts[i]);
	}
	if (!w->failed)
		rc = 0;
	*value_sensitive = w->value_sensitive;
	free(w);
	return rc;
}
