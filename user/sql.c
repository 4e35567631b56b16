/* Statement analyser over libpg_query's protobuf tree. See include/pgward/sql.h.
 *
 * Flow: the text is parsed on a big private stack (deep expressions make the parser, the
 * protobuf packer and our walk recurse once per level), walked into a session-independent
 * "raw" result (unqualified names left unqualified, EXECUTE not expanded) which the per-thread
 * cache keeps, and only then resolved against the session (search_path, prepared store). */
#include "pgward/sql.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

/* ASan (gcc says so with __SANITIZE_ADDRESS__, clang with __has_feature) is told about the
 * switches to and from the parse stack */
#if defined(__SANITIZE_ADDRESS__)
#define PW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PW_ASAN 1
#endif
#endif
#ifdef PW_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

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
	                       * ANALYZE 0, a search_path): see normalize() */
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
 * text, not to every text that differs from it in literals only (see normalize()). */
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

/* Appends one schema name to a search_path value; false when it does not fit. */
static bool value_add(struct pw_sql_setting *s, const char *name, size_t n)
{
	if (n >= PW_SQL_NAMELEN)
		n = PW_SQL_NAMELEN - 1; /* the server truncates identifiers the same way */
	if ((size_t)s->value_len + n + 1 > sizeof(s->value))
		return false;
	memcpy(s->value + s->value_len, name, n);
	s->value[s->value_len + n] = 0;
	s->value_len = (uint16_t)(s->value_len + n + 1);
	return true;
}

/* set_config('search_path', 'a, "B"', ...): the text is split as the server splits a list
 * of identifiers (SplitIdentifierString): commas, blanks around names, double quotes keep
 * case and commas ("" is a quote), unquoted names are folded to lower case. */
static bool value_split(struct pw_sql_setting *s, const char *v)
{
	char name[PW_SQL_NAMELEN * 4];

	for (;;) {
		size_t n = 0;

		while (isspace((unsigned char)*v))
			v++;
		if (*v == '"') {
			for (v++;; v++) {
				if (!*v)
					return false; /* unterminated: the server refuses it */
				if (*v == '"') {
					if (v[1] != '"')
						break;
					v++;
				}
				if (n < sizeof(name) - 1)
					name[n++] = *v;
			}
			v++;
		} else {
			while (*v && *v != ',' && !isspace((unsigned char)*v)) {
				if (n < sizeof(name) - 1)
					name[n++] = (char)tolower((unsigned char)*v);
				v++;
			}
			if (n == 0)
				return *v == 0 && s->value_len == 0; /* '' is an empty path */
		}
		if (!value_add(s, name, n))
			return false;
		while (isspace((unsigned char)*v))
			v++;
		if (!*v)
			return true;
		if (*v++ != ',')
			return false;
	}
}

int pw_sql_split_path(const char *text, struct pw_sql_setting *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "search_path");
	out->value_known = value_split(out, text);
	if (!out->value_known)
		out->value_len = 0;
	return out->value_known ? 0 : -1;
}

int pw_sql_quote_ident(const char *name, char *out, size_t cap)
{
	size_t o = 0;

	if (cap < 3)
		return -1;
	out[o++] = '"';
	for (; *name; name++) {
		if (o + (*name == '"' ? 2 : 1) + 2 > cap)
			return -1;
		if (*name == '"')
			out[o++] = '"';
		out[o++] = *name;
	}
	out[o++] = '"';
	out[o] = 0;
	return (int)o;
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

			st->value_known = v && value_add(st, v, strlen(v));
		}
		if (st && fc->n_args > 1 && strcmp(st->name, "search_path") == 0) {
			const char *v = const_string(w, fc->args[1]);

			st->value_known = v && value_split(st, v);
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
		const PgQuery__CopyStmt *s = (const PgQuery__CopyStmt *)m;

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
		walk_children(w, m, s->relation);
	} else if (d == &pg_query__create_table_as_stmt__descriptor) {
		const PgQuery__CreateTableAsStmt *s = (const PgQuery__CreateTableAsStmt *)m;

		cur(w)->flags |=
		    s->is_select_into ? PW_SQL_F_SELECT_INTO : PW_SQL_F_CREATE_TABLE_AS;
		if (s->into && s->into->rel)
			range_var(w, s->into->rel, PW_SQL_WRITE, false);
		w->mode = PW_SQL_READ;
		walk_children(w, m, s->into);
	} else if (d == &pg_query__drop_stmt__descriptor) {
		const PgQuery__DropStmt *s = (const PgQuery__DropStmt *)m;

		if (is_relation_type(s->remove_type))
			for (size_t i = 0; i < s->n_objects; i++)
				name_list(w, s->objects[i], PW_SQL_WRITE, 0);
		else
			walk_children(w, m, NULL);
	} else if (d == &pg_query__lock_stmt__descriptor) {
		/* ACCESS SHARE (1) and ROW SHARE (2) lock; stronger modes block writers (or
		 * everyone): as much as a write */
		w->mode = ((const PgQuery__LockStmt *)m)->mode <= 2 ? PW_SQL_LOCK : PW_SQL_WRITE;
		walk_children(w, m, NULL);
	} else if (d == &pg_query__variable_set_stmt__descriptor) {
		const PgQuery__VariableSetStmt *s = (const PgQuery__VariableSetStmt *)m;
		bool reset = s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
		             s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL;
		uint8_t how = w->set_how;

		if (how == PW_SQL_SET_SET &&
		    (reset || s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_DEFAULT))
			how = PW_SQL_SET_RESET;
		if (s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL) {
			setting(w, "all", how == PW_SQL_SET_ALTER ? PW_SQL_SET_RESET : how);
		} else if (s->name && *s->name) {
			struct pw_sql_setting *st = setting(w, s->name, how);

			bool enc = st && (strcmp(st->name, "client_encoding") == 0 ||
			                  strcmp(st->name, "names") == 0 ||
			                  strcmp(st->name, "standard_conforming_strings") == 0);

			if (enc && how != PW_SQL_SET_RESET) {
				/* SET NAMES 'x', SET client_encoding TO x, ALTER ROLE ... SET; also
				 * standard_conforming_strings' value */
				const char *v = s->n_args == 1 ? const_string(w, s->args[0]) : NULL;

				st->value_known = v && value_add(st, v, strlen(v));
			}
			if (st && how == PW_SQL_SET_SET && strcmp(st->name, "search_path") == 0) {
				/* SET search_path TO a, "B", 'c d': one schema per list element, as
				 * written (the scanner already folded unquoted names) */
				st->value_known =
				    s->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_VALUE;
				for (size_t i = 0; st->value_known && i < s->n_args; i++) {
					const char *v = const_string(w, s->args[i]);

					st->value_known = v && value_add(st, v, strlen(v));
				}
				if (!st->value_known)
					st->value_len = 0;
			}
		}
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
		/* COMMENT ON / SECURITY LABEL ON name a relation (or a column) by a name list */
		PgQuery__ObjectType t = d == &pg_query__comment_stmt__descriptor
		                            ? ((const PgQuery__CommentStmt *)m)->objtype
		                            : ((const PgQuery__SecLabelStmt *)m)->objtype;
		const PgQuery__Node *o = d == &pg_query__comment_stmt__descriptor
		                             ? ((const PgQuery__CommentStmt *)m)->object
		                             : ((const PgQuery__SecLabelStmt *)m)->object;

		if (is_relation_type(t))
			name_list(w, o, PW_SQL_WRITE, 0);
		else if (t == PG_QUERY__OBJECT_TYPE__OBJECT_COLUMN)
			name_list(w, o, PW_SQL_WRITE, 1);
		else
			walk_children(w, m, NULL);
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

static enum pw_sql_class classify(const PgQuery__Node *n)
{
	if (!n)
		return PW_SQL_OTHER;
	switch (n->node_case) {
	case PG_QUERY__NODE__NODE_SELECT_STMT:
		return PW_SQL_SELECT;
	case PG_QUERY__NODE__NODE_INSERT_STMT:
		return PW_SQL_INSERT;
	case PG_QUERY__NODE__NODE_UPDATE_STMT:
		return PW_SQL_UPDATE;
	case PG_QUERY__NODE__NODE_DELETE_STMT:
		return PW_SQL_DELETE;
	case PG_QUERY__NODE__NODE_MERGE_STMT:
		return PW_SQL_MERGE;
	case PG_QUERY__NODE__NODE_COPY_STMT:
		return n->copy_stmt->is_from ? PW_SQL_COPY_FROM : PW_SQL_COPY_TO;
	case PG_QUERY__NODE__NODE_TRUNCATE_STMT:
		return PW_SQL_TRUNCATE;
	case PG_QUERY__NODE__NODE_CALL_STMT:
		return PW_SQL_CALL;
	case PG_QUERY__NODE__NODE_DO_STMT:
		return PW_SQL_DO;
	case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
		return PW_SQL_SET;
	case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
		return PW_SQL_TRANSACTION;
	case PG_QUERY__NODE__NODE_PREPARE_STMT:
		return PW_SQL_PREPARE;
	case PG_QUERY__NODE__NODE_EXECUTE_STMT:
		return PW_SQL_EXECUTE;
	case PG_QUERY__NODE__NODE_EXPLAIN_STMT:
		return PW_SQL_EXPLAIN;
	case PG_QUERY__NODE__NODE_GRANT_STMT:
	case PG_QUERY__NODE__NODE_GRANT_ROLE_STMT:
	case PG_QUERY__NODE__NODE_ALTER_DEFAULT_PRIVILEGES_STMT:
	case PG_QUERY__NODE__NODE_CREATE_ROLE_STMT:
	case PG_QUERY__NODE__NODE_ALTER_ROLE_STMT:
	case PG_QUERY__NODE__NODE_ALTER_ROLE_SET_STMT:
	case PG_QUERY__NODE__NODE_DROP_ROLE_STMT:
	case PG_QUERY__NODE__NODE_REASSIGN_OWNED_STMT:
	case PG_QUERY__NODE__NODE_DROP_OWNED_STMT:
		return PW_SQL_DCL;
	case PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT:
	case PG_QUERY__NODE__NODE_LOCK_STMT:
	case PG_QUERY__NODE__NODE_VACUUM_STMT:
	case PG_QUERY__NODE__NODE_CHECK_POINT_STMT:
	case PG_QUERY__NODE__NODE_DISCARD_STMT:
	case PG_QUERY__NODE__NODE_DEALLOCATE_STMT:
	case PG_QUERY__NODE__NODE_LISTEN_STMT:
	case PG_QUERY__NODE__NODE_UNLISTEN_STMT:
	case PG_QUERY__NODE__NODE_NOTIFY_STMT:
	case PG_QUERY__NODE__NODE_LOAD_STMT:
	case PG_QUERY__NODE__NODE_CLUSTER_STMT:
	case PG_QUERY__NODE__NODE_REINDEX_STMT:
	case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
	case PG_QUERY__NODE__NODE_FETCH_STMT:
	case PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT:
	case PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT:
	case PG_QUERY__NODE__NODE_ALTER_SYSTEM_STMT:
		return PW_SQL_OTHER;
	default:
		return PW_SQL_DDL;
	}
}

/* The command as PostgreSQL's command tags name it, for messages ("may not run NOTIFY"). */
static void stmt_tag(const PgQuery__Node *n, char *out, size_t len)
{
	static const char *const names[][2] = {
	    {"SelectStmt", "SELECT"},
	    {"InsertStmt", "INSERT"},
	    {"UpdateStmt", "UPDATE"},
	    {"DeleteStmt", "DELETE"},
	    {"MergeStmt", "MERGE"},
	    {"CopyStmt", "COPY"},
	    {"CreateStmt", "CREATE TABLE"},
	    {"DropStmt", "DROP"},
	    {"TruncateStmt", "TRUNCATE TABLE"},
	    {"CommentStmt", "COMMENT"},
	    {"VariableShowStmt", "SHOW"},
	    {"CheckPointStmt", "CHECKPOINT"},
	    {"ClosePortalStmt", "CLOSE CURSOR"},
	    {"ConstraintsSetStmt", "SET CONSTRAINTS"},
	    {"LockStmt", "LOCK TABLE"},
	    {"DoStmt", "DO"},
	    {"CallStmt", "CALL"},
	    {"ExplainStmt", "EXPLAIN"},
	    {"PrepareStmt", "PREPARE"},
	    {"ExecuteStmt", "EXECUTE"},
	    {"DeallocateStmt", "DEALLOCATE"},
	    {"GrantStmt", "GRANT"},
	    {"GrantRoleStmt", "GRANT ROLE"},
	    {"CreateTableAsStmt", "CREATE TABLE AS"},
	    {"IndexStmt", "CREATE INDEX"},
	    {"ViewStmt", "CREATE VIEW"},
	    {"CreateSeqStmt", "CREATE SEQUENCE"},
	    {"AlterSeqStmt", "ALTER SEQUENCE"},
	    {"CreatedbStmt", "CREATE DATABASE"},
	    {"DropdbStmt", "DROP DATABASE"},
	    {"AlterRoleSetStmt", "ALTER ROLE"},
	    {"AlterDatabaseSetStmt", "ALTER DATABASE"},
	    {"CreateTrigStmt", "CREATE TRIGGER"},
	    {"RuleStmt", "CREATE RULE"},
	    {"DeclareCursorStmt", "DECLARE CURSOR"},
	    {"SecLabelStmt", "SECURITY LABEL"},
	    {"RenameStmt", "ALTER"},
	    {"DefineStmt", "CREATE"},
	};
	msg_t *m = node_inner(n);
	const char *name = m ? m->descriptor->short_name : "";
	size_t o = 0;

	out[0] = 0;
	if (!m)
		return;
	if (m->descriptor == &pg_query__discard_stmt__descriptor) {
		static const char *const mode[] = {"DISCARD", "DISCARD ALL", "DISCARD PLANS",
		                                   "DISCARD SEQUENCES", "DISCARD TEMP"};
		unsigned k = (unsigned)((const PgQuery__DiscardStmt *)m)->target;
		snprintf(out, len, "%s", mode[k < 5 ? k : 0]);
		return;
	}
	if (m->descriptor == &pg_query__vacuum_stmt__descriptor) {
		snprintf(out, len, "%s",
		         ((const PgQuery__VacuumStmt *)m)->is_vacuumcmd ? "VACUUM" : "ANALYZE");
		return;
	}
	if (m->descriptor == &pg_query__fetch_stmt__descriptor) {
		snprintf(out, len, "%s",
		         ((const PgQuery__FetchStmt *)m)->ismove ? "MOVE" : "FETCH");
		return;
	}
	if (m->descriptor == &pg_query__variable_set_stmt__descriptor) {
		PgQuery__VariableSetKind k = ((const PgQuery__VariableSetStmt *)m)->kind;
		snprintf(out, len, "%s",
		         k == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET ||
		                 k == PG_QUERY__VARIABLE_SET_KIND__VAR_RESET_ALL
		             ? "RESET"
		             : "SET");
		return;
	}
	if (m->descriptor == &pg_query__transaction_stmt__descriptor) {
		static const char *const kind[] = {"TRANSACTION",
		                                   "BEGIN",
		                                   "START TRANSACTION",
		                                   "COMMIT",
		                                   "ROLLBACK",
		                                   "SAVEPOINT",
		                                   "RELEASE",
		                                   "ROLLBACK",
		                                   "PREPARE TRANSACTION",
		                                   "COMMIT PREPARED",
		                                   "ROLLBACK PREPARED"};
		unsigned k = (unsigned)((const PgQuery__TransactionStmt *)m)->kind;
		snprintf(out, len, "%s", kind[k < 11 ? k : 0]);
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i][0], name) == 0) {
			snprintf(out, len, "%s", names[i][1]);
			return;
		}
	/* AlterDomainStmt -> ALTER DOMAIN: the node's name, words split at capitals */
	size_t nl = strlen(name);
	if (nl > 4 && strcmp(name + nl - 4, "Stmt") == 0)
		nl -= 4;
	for (size_t i = 0; i < nl && o + 2 < len; i++) {
		if (i && isupper((unsigned char)name[i]))
			out[o++] = ' ';
		out[o++] = (char)toupper((unsigned char)name[i]);
	}
	out[o] = 0;
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

	s->cls = classify(n);
	s->runs = 1u << s->cls;
	stmt_tag(n, s->tag, sizeof(s->tag));
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

		s->inner = classify(e->query);
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
		s->inner = classify(n->prepare_stmt->query);
		s->runs |= 1u << s->inner;
		s->flags |= PW_SQL_F_NOT_EXECUTED;
		copy_name(s->object, n->prepare_stmt->name);
		break;
	case PW_SQL_EXECUTE:
		copy_name(s->object, n->execute_stmt->name);
		break;
	case PW_SQL_COPY_TO:
	case PW_SQL_COPY_FROM:
		s->inner = classify(n->copy_stmt->query);
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

/* nesting guard limits (see depth_guard) */
#define PAREN_LEVELS 8
#define CHAIN_LEVELS 2
#define MAX_LEVELS   20000
#define GUARD_FROM   (MAX_LEVELS / PAREN_LEVELS) /* shorter texts cannot reach MAX_LEVELS */

/* ---- the big stack ----------------------------------------------------------------------- */

/* Stack for the parse and walk. The nesting guard below admits at most MAX_LEVELS node levels
 * of about 1 KiB each (2 to 3 KiB under ASan, measured by test_sql): 160 MiB leaves a margin
 * of 4. The mapping is reserved lazily (MAP_NORESERVE): only the pages a parse really touches
 * become memory, and they are handed back after a deep parse. One per thread, created on
 * first use. */
#define PARSE_STACK_SIZE (96ul << 20)
#define GUARD_SIZE       (64ul << 10)

struct fiber {
	char *map;
	ucontext_t caller, ctx;
	void (*fn)(void *);
	void *arg;
	const void *caller_bottom; /* ASan: the caller's stack, to switch back to */
	size_t caller_size;
};

/* thread-local: each worker thread parses on its own stack; freed by the key destructor */
static __thread struct fiber fib;
/* test_sql's measurement: set once it asks (pw_sql__stack_touched); thread-local */
static __thread bool measure_stack;
static __thread size_t touched;
static size_t stack_touched(void);
static pthread_key_t fib_key;
static pthread_once_t fib_once = PTHREAD_ONCE_INIT;

static void fib_free(void *p)
{
	struct fiber *f = p;

	pw_sql_cache_clear(); /* the thread's cache goes with it */
	if (f && f->map) {
		munmap(f->map, PARSE_STACK_SIZE + GUARD_SIZE);
		f->map = NULL;
	}
}

static void fib_key_init(void)
{
	(void)pthread_key_create(&fib_key, fib_free);
}

static void fib_entry(void)
{
#ifdef PW_ASAN
	/* ASan must know both stacks, or LeakSanitizer stops scanning the thread's own */
	__sanitizer_finish_switch_fiber(NULL, &fib.caller_bottom, &fib.caller_size);
#endif
	fib.fn(fib.arg);
#ifdef PW_ASAN
	__sanitizer_start_switch_fiber(NULL, fib.caller_bottom, fib.caller_size);
#endif
}

static int on_big_stack(void (*fn)(void *), void *arg, size_t textlen)
{
	if (!fib.map) {
		char *m = mmap(NULL, PARSE_STACK_SIZE + GUARD_SIZE, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		/* the guard below the stack turns an overflow into a clean SIGSEGV */
		if (mprotect(m, GUARD_SIZE, PROT_NONE) != 0) {
			munmap(m, PARSE_STACK_SIZE + GUARD_SIZE);
			return -1;
		}
		fib.map = m;
		pthread_once(&fib_once, fib_key_init);
		pthread_setspecific(fib_key, &fib);
	}
	fib.fn = fn;
	fib.arg = arg;
	if (getcontext(&fib.ctx) != 0)
		return -1;
	fib.ctx.uc_stack.ss_sp = fib.map + GUARD_SIZE;
	fib.ctx.uc_stack.ss_size = PARSE_STACK_SIZE;
	fib.ctx.uc_link = &fib.caller;
	makecontext(&fib.ctx, fib_entry, 0);
#ifdef PW_ASAN
	void *fake;
	__sanitizer_start_switch_fiber(&fake, fib.map + GUARD_SIZE, PARSE_STACK_SIZE);
#endif
	if (swapcontext(&fib.caller, &fib.ctx) != 0)
		return -1;
#ifdef PW_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	/* a long text may have touched many stack pages: give all but the top 1 MiB back */
	if (textlen >= GUARD_FROM) {
		if (measure_stack)
			touched = stack_touched();
		madvise(fib.map + GUARD_SIZE, PARSE_STACK_SIZE - (1ul << 20), MADV_DONTNEED);
	}
	return 0;
}

/* For test_sql's measurement only: the stack the deepest parse since the last call touched. */
size_t pw_sql__stack_touched(void);
size_t pw_sql__stack_touched(void)
{
	size_t t = touched > stack_touched() ? touched : stack_touched();
	measure_stack = true;
	touched = 0;
	return t;
}

static size_t stack_touched(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = PARSE_STACK_SIZE / page, i;
	unsigned char *vec;
	size_t lowest = n;

	if (!fib.map || !(vec = malloc(n)))
		return 0;
	if (mincore(fib.map + GUARD_SIZE, PARSE_STACK_SIZE, vec) == 0)
		for (i = 0; i < n; i++)
			if (vec[i] & 1) {
				lowest = i;
				break;
			}
	free(vec);
	return (n - lowest) * page;
}

/* ---- nesting guard ----------------------------------------------------------------------- */

/* What recurses is not the parser (bison keeps its own stack, and refuses more than 10000
 * states with "memory exhausted", as the server does) but the tree: libpg_query's protobuf
 * writer, the reader and the walk recurse once per node level, about 1 KiB of stack each
 * (tests/unit/test_sql.c measures it: 2 KiB for a "+" level, 6 to 7 KiB for a sub-select or a
 * WITH level). So before parsing, an upper bound of the tree's depth is taken from the server's
 * own scanner's tokens, in node levels:
 *   - an open '(' '[' or CASE: PAREN_LEVELS (a sub-select, a call, a CTE: several nodes);
 *   - every token that nests its left side one level deeper: an operator, NOT, IS, COLLATE,
 *     AT, LIKE, BETWEEN, IN, JOIN, UNION, INTERSECT, EXCEPT...: CHAIN_LEVELS, summed since the
 *     last ',' ';' AND or OR of the same parenthesis level (AND and OR lists are flat: the
 *     server's makeAndExpr/makeOrExpr append to the list on their left);
 * summed over the enclosing levels. A statement over MAX_LEVELS is refused with 54001: the
 * server itself refuses far less deep ones (stack depth limit exceeded), and a 5,000-term OR
 * or a 200 KB VALUES list is flat. The stack below holds MAX_LEVELS with a margin of 4 (more
 * than the ASan build's frames need: test_sql measures that build too). */

static bool chain_keyword(const char *t, size_t n)
{
	static const char *const kw[] = {"not",       "is",       "isnull",  "notnull", "collate",
	                                 "at",        "like",     "ilike",   "similar", "between",
	                                 "in",        "operator", "escape",  "join",    "union",
	                                 "intersect", "except",   "overlaps"};

	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (strlen(kw[i]) == n && strncasecmp(t, kw[i], n) == 0)
			return true;
	return false;
}

static bool op_token(const char *t, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("+-*/<>=~!@#%^&|`?:", t[i]))
			return false;
	return true;
}

static int depth_guard(const char *text, size_t len, char *err, size_t errlen)
{
	PgQueryScanResult sr;
	PgQuery__ScanResult *toks;
	/* per open level: the node levels its chain adds */
	static __thread uint32_t chain[MAX_LEVELS / PAREN_LEVELS + 2];
	int level = 0, rc = 0;
	long total = 0;

	if (len < GUARD_FROM)
		return 0;
	sr = pg_query_scan(text);
	if (sr.error) { /* the parser will report it properly */
		pg_query_free_scan_result(sr);
		return 0;
	}
	toks = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	if (!toks) {
		pg_query_free_scan_result(sr);
		snprintf(err, errlen, "cannot scan the statement");
		return -1;
	}
	chain[0] = 0;
	for (size_t i = 0; i < toks->n_tokens && rc == 0; i++) {
		const PgQuery__ScanToken *t = toks->tokens[i];
		const char *p = text + t->start;
		size_t n = (size_t)(t->end - t->start);
		bool kw = t->keyword_kind != PG_QUERY__KEYWORD_KIND__NO_KEYWORD;

		if (t->token == PG_QUERY__TOKEN__SQL_COMMENT ||
		    t->token == PG_QUERY__TOKEN__C_COMMENT)
			continue;
		if ((n == 1 && (*p == '(' || *p == '[')) ||
		    (kw && n == 4 && !strncasecmp(p, "case", 4))) {
			chain[++level] = 0;
			total += PAREN_LEVELS;
		} else if ((n == 1 && (*p == ')' || *p == ']')) ||
		           (kw && n == 3 && !strncasecmp(p, "end", 3))) {
			if (level > 0) {
				total -= chain[level] + PAREN_LEVELS;
				level--;
			}
		} else if ((n == 1 && (*p == ',' || *p == ';')) ||
		           (kw && ((n == 3 && !strncasecmp(p, "and", 3)) ||
		                   (n == 2 && !strncasecmp(p, "or", 2))))) {
			/* a list: its members start afresh (an AND or OR list node: one level) */
			uint32_t base = n == 1 ? 0 : CHAIN_LEVELS;
			total += (long)base - (long)chain[level];
			chain[level] = base;
		} else if ((kw && chain_keyword(p, n)) || (!kw && op_token(p, n))) {
			chain[level] += CHAIN_LEVELS;
			total += CHAIN_LEVELS;
		}
		if (level > MAX_LEVELS / PAREN_LEVELS || total > MAX_LEVELS) {
			snprintf(
			    err, errlen,
			    "statement too complex: nested too deeply (more than %d node levels) "
			    "at position %d",
			    MAX_LEVELS, t->start + 1);
			rc = -1;
		}
	}
	pg_query__scan_result__free_unpacked(toks, NULL);
	pg_query_free_scan_result(sr);
	return rc;
}

/* ---- parse ------------------------------------------------------------------------------- */

/* Raw analysis: thread-local scratch so that worker stacks don't carry ~80 KiB results. */
static __thread struct pw_sql_result raw;

struct parse_job {
	const char *text;
	size_t len;
	struct pw_sql_result *r;
	char *err;
	size_t errlen;
	int rc;
	bool value_sensitive; /* the analysis read a constant: cache by exact text */
};

static void parse_job_run(void *p)
{
	struct parse_job *j = p;
	PgQueryProtobufParseResult pr = {0};
	PgQuery__ParseResult *tree = NULL;
	struct walk *w = NULL;

	j->rc = -1;
	if (depth_guard(j->text, j->len, j->err, j->errlen) != 0)
		return;
	pr = pg_query_parse_protobuf(j->text);
	if (pr.error) {
		snprintf(j->err, j->errlen, "%s at position %d", str_or(pr.error->message),
		         pr.error->cursorpos);
		j->r->error_pos = pr.error->cursorpos;
		goto out;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
	                                      (const uint8_t *)pr.parse_tree.data);
	if (!tree) {
		snprintf(j->err, j->errlen, "cannot read the parse tree");
		goto out;
	}
	if (tree->n_stmts > PW_SQL_MAX_STMTS) {
		snprintf(j->err, j->errlen, "more than %d statements", PW_SQL_MAX_STMTS);
		goto out;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(j->err, j->errlen, "out of memory");
		goto out;
	}
	w->r = j->r;
	w->err = j->err;
	w->errlen = j->errlen;
	for (size_t i = 0; i < tree->n_stmts && !w->failed; i++) {
		w->stmt = (int)i;
		j->r->nstmts = (int)i + 1;
		statement(w, tree->stmts[i]);
	}
	if (!w->failed)
		j->rc = 0;
	j->value_sensitive = w->value_sensitive;
out:
	free(w);
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(pr);
}

/* ---- cache ------------------------------------------------------------------------------- */

/* Per-thread LRU of raw analyses keyed by the exact text: open hash chains plus an LRU list.
 * Nothing in an entry depends on the session. thread-local: no locks, no sharing. */
#define CACHE_BUCKETS     2048
#define CACHE_MAX_ENTRIES 1024
#define CACHE_MAX_BYTES   (8u << 20)
#define CACHE_MAX_TEXT    (64u << 10) /* longer texts are not worth keeping */

struct centry {
	struct centry *chain, *prev, *next; /* hash chain; LRU list (head = most recent) */
	uint64_t hash;
	size_t len, bytes;
	bool normalized; /* keyed by a normalised key, not by an exact text */
	int nstmts, nrels, nfuncs, nsets;
	struct pw_sql_stmt *stmts;
	struct pw_sql_rel *rels;
	struct pw_sql_func *funcs;
	struct pw_sql_setting *sets;
	char *text;
};

struct cache {
	struct centry *bucket[CACHE_BUCKETS];
	struct centry *head, *tail;
	struct pw_sql_cache_stats st;
};

static __thread struct cache *cache; /* thread-local, see above */
/* thread-local: the key buffer of this thread's cache (as long as the longest text keyed) */
static __thread char *keybuf;
static __thread size_t keycap;

static uint64_t hash_text(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static void lru_unlink(struct cache *c, struct centry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(struct cache *c, struct centry *e)
{
	e->next = c->head;
	e->prev = NULL;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void cache_drop(struct cache *c, struct centry *e)
{
	struct centry **pp = &c->bucket[e->hash % CACHE_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	lru_unlink(c, e);
	c->st.entries--;
	c->st.bytes -= e->bytes;
	free(e);
}

static struct centry *cache_find(struct cache *c, const char *s, size_t n, uint64_t h,
                                 bool normalized)
{
	for (struct centry *e = c->bucket[h % CACHE_BUCKETS]; e; e = e->chain)
		if (e->hash == h && e->len == n && e->normalized == normalized &&
		    memcmp(e->text, s, n) == 0)
			return e;
	return NULL;
}

static void cache_put(struct cache *c, const char *s, size_t n, uint64_t h, bool normalized,
                      const struct pw_sql_result *r)
{
	size_t b_st = sizeof(struct pw_sql_stmt) * (size_t)r->nstmts;
	size_t b_rel = sizeof(struct pw_sql_rel) * (size_t)r->nrels;
	size_t b_fn = sizeof(struct pw_sql_func) * (size_t)r->nfuncs;
	size_t b_set = sizeof(struct pw_sql_setting) * (size_t)r->nsets;
	size_t bytes = sizeof(struct centry) + b_st + b_rel + b_fn + b_set + n;
	struct centry *e;
	char *p;

	if (n > CACHE_MAX_TEXT)
		return;
	while (c->tail &&
	       (c->st.entries >= CACHE_MAX_ENTRIES || c->st.bytes + bytes > CACHE_MAX_BYTES))
		cache_drop(c, c->tail);
	e = malloc(bytes);
	if (!e)
		return;
	memset(e, 0, sizeof(*e));
	p = (char *)(e + 1);
	/* the arrays first (all need at most pointer alignment), the text last */
	e->stmts = (void *)p;
	memcpy(p, r->stmts, b_st);
	p += b_st;
	e->rels = (void *)p;
	memcpy(p, r->rels, b_rel);
	p += b_rel;
	e->funcs = (void *)p;
	memcpy(p, r->funcs, b_fn);
	p += b_fn;
	e->sets = (void *)p;
	memcpy(p, r->sets, b_set);
	p += b_set;
	e->text = p;
	memcpy(p, s, n);
	e->hash = h;
	e->len = n;
	e->normalized = normalized;
	e->bytes = bytes;
	e->nstmts = r->nstmts;
	e->nrels = r->nrels;
	e->nfuncs = r->nfuncs;
	e->nsets = r->nsets;
	e->chain = c->bucket[h % CACHE_BUCKETS];
	c->bucket[h % CACHE_BUCKETS] = e;
	lru_front(c, e);
	c->st.entries++;
	c->st.bytes += bytes;
}

static void cache_get(const struct centry *e, struct pw_sql_result *r)
{
	r->nstmts = e->nstmts;
	r->nrels = e->nrels;
	r->nfuncs = e->nfuncs;
	r->nsets = e->nsets;
	r->error_pos = 0;
	memcpy(r->stmts, e->stmts, sizeof(*e->stmts) * (size_t)e->nstmts);
	memcpy(r->rels, e->rels, sizeof(*e->rels) * (size_t)e->nrels);
	memcpy(r->funcs, e->funcs, sizeof(*e->funcs) * (size_t)e->nfuncs);
	memcpy(r->sets, e->sets, sizeof(*e->sets) * (size_t)e->nsets);
}

static const struct pw_sql_cache_stats zero_stats;

const struct pw_sql_cache_stats *pw_sql_cache_stats_local(void)
{
	return cache ? &cache->st : &zero_stats;
}

void pw_sql_cache_clear(void)
{
	free(keybuf);
	keybuf = NULL;
	keycap = 0;
	if (!cache)
		return;
	while (cache->head)
		cache_drop(cache, cache->head);
	free(cache);
	cache = NULL;
}

/* ---- prepared statements ----------------------------------------------------------------- */

struct pw_sql_prepared {
	char name[PW_SQL_NAMELEN];
	enum pw_sql_class cls;
	uint32_t flags, runs;
	int nrels, nfuncs;
	struct pw_sql_rel *rels; /* resolved when remembered: the server fixes search_path then */
	struct pw_sql_func *funcs;
};

static int find_prepared(const struct pw_sql_session *s, const char *name)
{
	for (size_t i = 0; i < s->n_prepared; i++)
		if (strcmp(s->prepared[i]->name, name) == 0)
			return (int)i;
	return -1;
}

const struct pw_sql_prepared *pw_sql_prepared_lookup(const struct pw_sql_session *s,
                                                     const char *name)
{
	int i = s && name ? find_prepared(s, name) : -1;

	return i < 0 ? NULL : s->prepared[i];
}

enum pw_sql_class pw_sql_prepared_class(const struct pw_sql_prepared *p)
{
	return p->cls;
}

void pw_sql_prepared_forget(struct pw_sql_session *s, const char *name)
{
	for (size_t i = 0; i < s->n_prepared;) {
		if (!name || strcmp(s->prepared[i]->name, name) == 0) {
			free(s->prepared[i]);
			s->prepared[i] = s->prepared[--s->n_prepared];
			continue;
		}
		i++;
	}
}

int pw_sql_prepared_remember(struct pw_sql_session *s, const char *name,
                             const struct pw_sql_result *r, int i)
{
	const struct pw_sql_stmt *st;
	struct pw_sql_prepared *p;
	int nrels = 0, nfuncs = 0;

	if (i < 0 || i >= r->nstmts || strlen(name) >= PW_SQL_NAMELEN)
		return -1;
	st = &r->stmts[i];
	for (int k = 0; k < r->nrels; k++)
		nrels += r->rels[k].stmt == i;
	for (int k = 0; k < r->nfuncs; k++)
		nfuncs += r->funcs[k].stmt == i;
	pw_sql_prepared_forget(s, name);
	if (s->n_prepared >= PW_SQL_MAX_PREPARED)
		return -1;
	p = calloc(1, sizeof(*p) + sizeof(struct pw_sql_rel) * (size_t)nrels +
	                  sizeof(struct pw_sql_func) * (size_t)nfuncs);
	if (!p)
		return -1;
	p->rels = (struct pw_sql_rel *)(p + 1);
	p->funcs = (struct pw_sql_func *)(p->rels + nrels);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->cls = st->cls == PW_SQL_PREPARE ? st->inner : st->cls;
	p->flags = st->flags & ~(uint32_t)PW_SQL_F_NOT_EXECUTED;
	p->runs = (st->runs & ~(1u << PW_SQL_PREPARE)) | (1u << p->cls);
	for (int k = 0; k < r->nrels; k++)
		if (r->rels[k].stmt == i)
			p->rels[p->nrels++] = r->rels[k];
	for (int k = 0; k < r->nfuncs; k++)
		if (r->funcs[k].stmt == i)
			p->funcs[p->nfuncs++] = r->funcs[k];
	s->prepared[s->n_prepared++] = p;
	return 0;
}

int pw_sql_session_apply(struct pw_sql_session *s, const struct pw_sql_result *r)
{
	int rc = 0;

	for (int i = 0; i < r->nstmts; i++) {
		const struct pw_sql_stmt *st = &r->stmts[i];

		if (st->cls == PW_SQL_PREPARE) {
			if (pw_sql_prepared_remember(s, st->object, r, i) != 0)
				rc = -1;
		} else if (st->flags & PW_SQL_F_FORGET_PREPARED) {
			pw_sql_prepared_forget(s, st->object[0] ? st->object : NULL);
		}
	}
	return rc;
}

void pw_sql_session_free(struct pw_sql_session *s)
{
	pw_sql_prepared_forget(s, NULL);
}

/* ---- resolution -------------------------------------------------------------------------- */

static const char *const default_path[] = {"$user", "public"};

static int push_rel(struct pw_sql_result *out, const struct pw_sql_rel *src, const char *schema,
                    uint8_t flags)
{
	struct pw_sql_rel *rel;

	if (out->nrels >= PW_SQL_MAX_RELS)
		return -1;
	rel = &out->rels[out->nrels++];
	*rel = *src;
	copy_name(rel->schema, schema);
	rel->flags |= flags;
	return 0;
}

/* An unqualified name resolves, as the server searches: pg_temp first (unless listed in the
 * path, or known empty), then pg_catalog (unless listed; only "pg_*" names can be there: its
 * relations are fixed by the server release), then the path with "$user" expanded. Every
 * candidate is reported; more than one makes the name ambiguous. */
static int resolve(const struct pw_sql_rel *src, const struct pw_sql_session *sess,
                   struct pw_sql_result *out)
{
	const char *const *path = sess && sess->search_path ? sess->search_path : default_path;
	size_t npath = sess && sess->search_path ? sess->n_search_path : 2;
	const char *user = sess ? sess->user : NULL;
	const char *cand[PW_SQL_MAX_RELS];
	bool temp_listed = false, cat_listed = false;
	size_t n = 0;

	for (size_t i = 0; i < npath; i++) {
		temp_listed |= strcmp(path[i], "pg_temp") == 0;
		cat_listed |= strcmp(path[i], "pg_catalog") == 0;
	}
	if (!temp_listed && !(sess && sess->no_temp_tables))
		cand[n++] = "pg_temp";
	if (!cat_listed && strncmp(src->name, "pg_", 3) == 0)
		cand[n++] = "pg_catalog";
	for (size_t i = 0; i < npath && n < PW_SQL_MAX_RELS; i++) {
		const char *p = path[i];

		if (strcmp(p, "$user") == 0)
			p = user;
		if (!p || !*p)
			continue;
		if (strcmp(p, "pg_temp") == 0 && sess && sess->no_temp_tables)
			continue;
		if (strcmp(p, "pg_catalog") == 0 && strncmp(src->name, "pg_", 3) != 0)
			continue;
		if (sess && sess->schema_exists && strcmp(p, "pg_temp") != 0 &&
		    strcmp(p, "pg_catalog") != 0 && !sess->schema_exists(sess->schema_arg, p))
			continue; /* no such schema: the server skips it */
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= strcmp(cand[k], p) == 0;
		if (!dup)
			cand[n++] = p;
	}
	if (n == 0)
		return push_rel(out, src, "", PW_SQL_R_UNQUALIFIED | PW_SQL_R_UNRESOLVED);
	for (size_t k = 0; k < n; k++)
		if (push_rel(out, src, cand[k],
		             PW_SQL_R_UNQUALIFIED | (n > 1 ? PW_SQL_R_AMBIGUOUS : 0)) != 0)
			return -1;
	if (n > 1)
		out->stmts[src->stmt].flags |= PW_SQL_F_AMBIGUOUS;
	return 0;
}

static int same_string_prepared(struct pw_sql_result *out, int i, int j, bool explain)
{
	struct pw_sql_stmt *st = &out->stmts[i];
	int nrels = out->nrels;

	if (!explain)
		st->inner = out->stmts[j].inner;
	st->flags |= out->stmts[j].flags & ~(uint32_t)PW_SQL_F_NOT_EXECUTED;
	st->runs |= (out->stmts[j].runs & ~(1u << PW_SQL_PREPARE)) | (1u << out->stmts[j].inner);
	for (int k = 0; k < nrels; k++) {
		if (out->rels[k].stmt != j)
			continue;
		if (out->nrels >= PW_SQL_MAX_RELS)
			return -1;
		out->rels[out->nrels] = out->rels[k];
		out->rels[out->nrels].stmt = (uint16_t)i;
		if (explain && (st->flags & PW_SQL_F_NOT_EXECUTED))
			out->rels[out->nrels].access = PW_SQL_READ;
		out->nrels++;
	}
	return 0;
}

static int finish(const struct pw_sql_result *r, const struct pw_sql_session *sess,
                  struct pw_sql_result *out, char *err, size_t errlen)
{
	out->nstmts = r->nstmts;
	out->nfuncs = r->nfuncs;
	out->nsets = r->nsets;
	out->nrels = 0;
	out->error_pos = 0;
	memcpy(out->stmts, r->stmts, sizeof(r->stmts[0]) * (size_t)r->nstmts);
	memcpy(out->funcs, r->funcs, sizeof(r->funcs[0]) * (size_t)r->nfuncs);
	memcpy(out->sets, r->sets, sizeof(r->sets[0]) * (size_t)r->nsets);
	for (int i = 0; i < r->nrels; i++) {
		int rc = r->rels[i].schema[0] ? push_rel(out, &r->rels[i], r->rels[i].schema, 0)
		                              : resolve(&r->rels[i], sess, out);
		if (rc != 0)
			goto full;
	}
	/* EXECUTE runs what PREPARE stored */
	for (int i = 0; i < out->nstmts; i++) {
		struct pw_sql_stmt *st = &out->stmts[i];
		const struct pw_sql_prepared *p;

		bool explain = st->cls == PW_SQL_EXPLAIN && st->inner == PW_SQL_EXECUTE;

		if (st->cls != PW_SQL_EXECUTE && !explain)
			continue;
		/* a PREPARE earlier in the same string wins over the store */
		int j = i - 1;
		while (j >= 0 && !(out->stmts[j].cls == PW_SQL_PREPARE &&
		                   strcmp(out->stmts[j].object, st->object) == 0))
			j--;
		if (j >= 0) {
			if (same_string_prepared(out, i, j, explain) != 0)
				goto full;
			continue;
		}
		p = pw_sql_prepared_lookup(sess, st->object);
		if (!p) {
			st->flags |= PW_SQL_F_UNKNOWN_PREPARED;
			continue;
		}
		if (!explain)
			st->inner = p->cls;
		st->flags |= p->flags;
		st->runs |= p->runs;
		for (int k = 0; k < p->nrels; k++) {
			if (out->nrels >= PW_SQL_MAX_RELS)
				goto full;
			out->rels[out->nrels] = p->rels[k];
			out->rels[out->nrels].stmt = (uint16_t)i;
			/* EXPLAIN EXECUTE without ANALYZE plans only */
			if (explain && (st->flags & PW_SQL_F_NOT_EXECUTED))
				out->rels[out->nrels].access = PW_SQL_READ;
			out->nrels++;
		}
		for (int k = 0; k < p->nfuncs; k++) {
			if (out->nfuncs >= PW_SQL_MAX_FUNCS) {
				snprintf(err, errlen, "statement too complex: too many functions");
				return -1;
			}
			out->funcs[out->nfuncs] = p->funcs[k];
			out->funcs[out->nfuncs++].stmt = (uint16_t)i;
		}
	}
	return 0;
full:
	snprintf(err, errlen, "statement too complex: more than %d relations", PW_SQL_MAX_RELS);
	return -1;
}

/* ---- normalised cache keys ------------------------------------------------------------- */

/* Texts that differ only in literals ("... WHERE aid = 17" and "... = 42", "email = 'a@b'")
 * have the same analysis, unless a decision read a constant (then the analysis is cached by
 * its exact text: see const_string()). The key is the text with every literal replaced by a
 * marker byte naming its kind as the server's scanner does (an integer that fits int32, with
 * its range; any other number; a standard '...' string), everything else kept byte for byte. Keys
 * and exact texts live apart in the cache (struct centry.normalized).
 *
 * The invariant: two texts with one key have the same analysis. That holds only if this
 * scanner finds every literal where PostgreSQL's does (src/backend/parser/scan.l, 15); so it
 * follows the server only over a small, proven part of the lexical grammar and gives up (no
 * key: the exact text is the key) on everything else: any control byte but tab and newline
 * (\r ends a -- comment for the server), a backslash, DEL, '$' not followed by a digit (dollar
 * quotes), a nested or unterminated block comment, E'' B'' X'' N'' and U&'' U&"" prefixes, an
 * unterminated quote, a string that may continue on a later line, a number running into a
 * letter, a run of 64 operator characters. tests/unit/test_sqlkey.c proves the keys
 * against the server's own scanner (pg_query_scan) and cached analyses against fresh ones. */
#define PW_KEY_ICONST 1 /* 1..53 */
#define PW_KEY_SCONST 2
#define PW_KEY_FCONST 3
/* The grammar itself checks a few integers (a column number in 1..32767, float(p) with p in
 * 1..53): an integer's marker also says which of these ranges holds it. */
#define PW_KEY_ICONST_0     4 /* 0 */
#define PW_KEY_ICONST_INT16 5 /* 54..32767 */
#define PW_KEY_ICONST_INT32 6 /* 32768..2147483647 */

/* What a literal's span is, for the tests: [start, end) in the text and its marker. */
struct key_span {
	size_t start, end;
	char kind;
};

static bool key_byte_ok(unsigned char c)
{
	return (c >= 0x20 && c != 0x7f && c != '\\') || c == '\t' || c == '\n';
}

/* PostgreSQL's ident_start / ident_cont (scan.l): letters, '_', bytes >= 0x80; digits and '$'
 * continue an identifier. */
static bool ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* The marker of the integer digits [a, b): FCONST when it does not fit the server's int32
 * (process_integer_literal), else its range. */
static char integer_kind(const char *s, size_t a, size_t b)
{
	unsigned long v = 0;

	while (a < b && s[a] == '0')
		a++;
	if (b - a > 10 || (b - a == 10 && memcmp(s + a, "2147483647", 10) > 0))
		return PW_KEY_FCONST;
	for (; a < b; a++)
		v = v * 10 + (unsigned long)(s[a] - '0');
	return v == 0       ? PW_KEY_ICONST_0
	       : v <= 53    ? PW_KEY_ICONST
	       : v <= 32767 ? PW_KEY_ICONST_INT16
	                    : PW_KEY_ICONST_INT32;
}

/* After a string literal ending at i: may the next '...' be joined to it? The server joins
 * them when only blanks and -- comments with at least one newline lie between (scan.l's
 * quotecontinue); libpg_query's scanner, which returns comments as tokens, joins them across
 * newlines but not across a comment. Either way no key is made for such a text. */
static bool string_may_continue(const char *s, size_t n, size_t i)
{
	bool crossed = false;

	while (i < n) {
		if (s[i] == ' ' || s[i] == '\t') {
			i++;
		} else if (s[i] == '\n') {
			crossed = true;
			i++;
		} else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
			crossed = true;
			while (i < n && s[i] != '\n')
				i++;
		} else {
			break;
		}
	}
	return crossed && i < n && s[i] == '\'';
}

/* Writes the key of s[0, n) into out (at most n + 1 bytes) and returns its length, or 0 when
 * there is no key (nothing replaced, or given up). spans (may be NULL) gets the literals. */
static size_t normalize_spans(const char *s, size_t n, char *out, struct key_span *spans,
                              size_t maxspans, size_t *nspans)
{
	size_t o = 0, i = 0, ns = 0;

	size_t oprun = 0;
	for (size_t k = 0; k < n; k++) {
		if (!key_byte_ok((unsigned char)s[k]))
			return 0;
		/* an operator of 64 characters or more is the server's "operator too long" */
		oprun = strchr("~!@#^&|`?+-*/%<>=", s[k]) ? oprun + 1 : 0;
		if (oprun >= PW_SQL_NAMELEN)
			return 0;
	}
	out[o++] = 1; /* no text starts so: tells a key from a text in logs and dumps */
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t st = i;
		char kind;

		if (c == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				out[o++] = s[i++];
			continue;
		}
		if (c == '/' && i + 1 < n && s[i + 1] == '*') {
			size_t j = i + 2;
			for (;;) {
				if (j + 1 >= n)
					return 0; /* unterminated */
				if (s[j] == '/' && s[j + 1] == '*')
					return 0; /* nested: not followed here */
				if (s[j] == '*' && s[j + 1] == '/')
					break;
				j++;
			}
			j += 2;
			memcpy(out + o, s + i, j - i);
			o += j - i;
			i = j;
			continue;
		}
		if (c == '"') {
			if (i + 1 < n && s[i + 1] == '"' && !(i + 2 < n && s[i + 2] == '"'))
				return 0; /* "": the server's zero-length identifier error */
			for (out[o++] = s[i++];;) {
				if (i == n)
					return 0;
				out[o++] = s[i++];
				if (s[i - 1] == '"') {
					if (i < n && s[i] == '"') {
						out[o++] = s[i++];
						continue;
					}
					break;
				}
			}
			continue;
		}
		if (c == '\'') {
			for (i++;; i++) {
				if (i == n)
					return 0; /* unterminated */
				if (s[i] == '\'') {
					if (i + 1 < n && s[i + 1] == '\'') {
						i++; /* '' stays inside */
						continue;
					}
					break;
				}
			}
			i++;
			if (string_may_continue(s, n, i))
				return 0;
			kind = PW_KEY_SCONST;
			goto literal;
		}
		if (c == '$') {
			if (i + 1 >= n || !is_digit((unsigned char)s[i + 1]))
				return 0; /* a dollar quote */
			out[o++] = s[i++];
			while (i < n && is_digit((unsigned char)s[i]))
				out[o++] = s[i++];
			if (i < n && ident_start((unsigned char)s[i]))
				return 0; /* $1abc: the server's param_junk */
			continue;
		}
		if (c == '.' && i + 1 < n && s[i + 1] == '.') {
			out[o++] = s[i++]; /* "..", a token of its own (dot_dot) */
			out[o++] = s[i++];
			continue;
		}
		if (ident_start(c)) {
			while (i < n && ident_cont((unsigned char)s[i]))
				out[o++] = s[i++];
			/* E'' B'' X'' N'' read their text otherwise; U&'' and U&"" have escapes */
			if (i - st == 1 && i < n && s[i] == '\'' && strchr("eEbBxXnN", c))
				return 0;
			if (i - st == 1 && (c == 'u' || c == 'U') && i < n && s[i] == '&')
				return 0;
			continue;
		}
		if (is_digit(c) || (c == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1]))) {
			bool integer = true;

			while (i < n && is_digit((unsigned char)s[i]))
				i++;
			/* "1..5": the integer 1, then "..", as the server's decimalfail */
			if (i < n && s[i] == '.' && !(i + 1 < n && s[i + 1] == '.')) {
				integer = false;
				for (i++; i < n && is_digit((unsigned char)s[i]);)
					i++;
			}
			if (i < n && (s[i] == 'e' || s[i] == 'E')) {
				size_t k = i + 1;
				if (k < n && (s[k] == '+' || s[k] == '-'))
					k++;
				if (k < n && is_digit((unsigned char)s[k])) {
					integer = false;
					for (i = k; i < n && is_digit((unsigned char)s[i]);)
						i++;
				}
			}
			/* a number running into a letter: the server's *_junk and realfail rules */
			if (i < n && ident_start((unsigned char)s[i]))
				return 0;
			kind = integer ? integer_kind(s, st, i) : PW_KEY_FCONST;
			goto literal;
		}
		out[o++] = s[i++];
		continue;
	literal:
		out[o++] = kind;
		if (spans && ns < maxspans)
			spans[ns] = (struct key_span){.start = st, .end = i, .kind = kind};
		ns++;
	}
	if (nspans)
		*nspans = ns;
	return ns ? o : 0;
}

static size_t normalize(const char *s, size_t n, char *out)
{
	return normalize_spans(s, n, out, NULL, 0, NULL);
}

/* For tests/unit/test_sqlkey.c: the key (out holds n + 1 bytes) and the literal spans. */
size_t pw_sql__key(const char *s, size_t n, char *out, size_t *starts, size_t *ends, char *kinds,
                   size_t maxspans, size_t *nspans);
size_t pw_sql__key(const char *s, size_t n, char *out, size_t *starts, size_t *ends, char *kinds,
                   size_t maxspans, size_t *nspans)
{
	struct key_span sp[256];
	size_t ns = 0, klen = normalize_spans(s, n, out, sp, 256, &ns);

	*nspans = 0;
	if (!klen)
		return 0;
	for (size_t k = 0; k < ns && k < maxspans && k < 256; k++) {
		starts[k] = sp[k].start;
		ends[k] = sp[k].end;
		kinds[k] = sp[k].kind;
	}
	*nspans = ns < maxspans && ns <= 256 ? ns : (maxspans < 256 ? maxspans : 256);
	return klen;
}

static int analyse(const char *sql, size_t len, const struct pw_sql_session *sess,
                   struct pw_sql_result *out, char *err, size_t errlen, bool use_cache)
{
	struct parse_job job = {0};
	struct centry *e;
	uint64_t h;
	char *text;

	out->nstmts = out->nrels = out->nfuncs = out->nsets = 0;
	out->error_pos = 0;
	out->spans_approx = false;
	if (errlen)
		err[0] = 0;
	if (len > PW_SQL_MAX_TEXT) {
		snprintf(err, errlen, "statement text longer than %u bytes", PW_SQL_MAX_TEXT);
		return -1;
	}
	if (memchr(sql, 0, len)) {
		snprintf(err, errlen, "statement text contains a NUL byte");
		return -1;
	}
	if (!cache && !(cache = calloc(1, sizeof(*cache)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t klen = 0;
	if (!use_cache)
		goto parse;
	if (len + 2 > keycap) {
		char *k = realloc(keybuf, len + 2);
		if (k) {
			keybuf = k;
			keycap = len + 2;
		}
	}
	if (len + 2 <= keycap)
		klen = normalize(sql, len, keybuf);
	e = NULL;
	if (klen) {
		h = hash_text(keybuf, klen);
		e = cache_find(cache, keybuf, klen, h, true);
	}
	if (!e) {
		h = hash_text(sql, len);
		e = cache_find(cache, sql, len, h, false);
	}
	if (e) {
		int rc;
		cache->st.hits++;
		lru_unlink(cache, e);
		lru_front(cache, e);
		cache_get(e, &raw);
		rc = finish(&raw, sess, out, err, errlen);
		/* statement spans are those of the text first cached under this key */
		out->spans_approx = e->normalized;
		return rc;
	}
	cache->st.misses++;
parse:
	text = malloc(len + 1);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(text, sql, len);
	text[len] = 0;
	memset(&raw, 0, offsetof(struct pw_sql_result, stmts));
	memset(raw.stmts, 0, sizeof(raw.stmts));
	job.text = text;
	job.len = len;
	job.r = &raw;
	job.err = err;
	job.errlen = errlen;
	job.rc = -1;
	if (on_big_stack(parse_job_run, &job, len) != 0) {
		snprintf(err, errlen, "cannot set up the parse stack: %s", strerror(errno));
		job.rc = -1;
	}
	free(text);
	if (job.rc != 0) {
		out->error_pos = raw.error_pos;
		return -1;
	}
	if (use_cache && klen && !job.value_sensitive)
		cache_put(cache, keybuf, klen, hash_text(keybuf, klen), true, &raw);
	else if (use_cache)
		cache_put(cache, sql, len, hash_text(sql, len), false, &raw);
	return finish(&raw, sess, out, err, errlen);
}

int pw_sql_analyse(const char *sql, size_t len, const struct pw_sql_session *sess,
                   struct pw_sql_result *out, char *err, size_t errlen)
{
	return analyse(sql, len, sess, out, err, errlen, true);
}

int pw_sql_analyse_uncached(const char *sql, size_t len, const struct pw_sql_session *sess,
                            struct pw_sql_result *out, char *err, size_t errlen)
{
	return analyse(sql, len, sess, out, err, errlen, false);
}

const char *pw_sql_class_name(enum pw_sql_class c)
{
	static const char *const names[] = {
	    [PW_SQL_OTHER] = "other",
	    [PW_SQL_SELECT] = "select",
	    [PW_SQL_INSERT] = "insert",
	    [PW_SQL_UPDATE] = "update",
	    [PW_SQL_DELETE] = "delete",
	    [PW_SQL_MERGE] = "merge",
	    [PW_SQL_COPY_TO] = "copy_to",
	    [PW_SQL_COPY_FROM] = "copy_from",
	    [PW_SQL_DDL] = "ddl",
	    [PW_SQL_DCL] = "dcl",
	    [PW_SQL_TRUNCATE] = "truncate",
	    [PW_SQL_CALL] = "call",
	    [PW_SQL_DO] = "do",
	    [PW_SQL_SET] = "set",
	    [PW_SQL_TRANSACTION] = "transaction",
	    [PW_SQL_PREPARE] = "prepare",
	    [PW_SQL_EXECUTE] = "execute",
	    [PW_SQL_EXPLAIN] = "explain",
	};

	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}
