/* The catalog cache: snapshots, their registry and the thread that loads them. See
 * include/pgward/catalog.h. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/catalog.h"
#include "pgward/log.h"
#include "pgward/pgconn.h"

#define RETRY_MS 5000 /* a failed load is tried again after this */
#define MIN_RELOAD_MS                                                                              \
	1000 /* a snapshot is read again at most this often (a client calling                      \
	      * names the catalog does not know must not keep the server busy) */

struct entry;

struct pw_catalog {
	int refcount;        /* atomic */
	struct entry *entry; /* the registry's entry it was published under; NULL: built */
	uint64_t gen;        /* the entry's generation it was published as */
	size_t n;
	struct pw_cat_func *funcs; /* sorted by name, then schema */
	size_t nschemas;
	const char **schemas; /* sorted */
	size_t nrels;
	struct pw_cat_rel *rels; /* sorted by OID; one allocation with its names (relmem) */
	void *relmem;
	/* the login role the catalog was read as, when the server said it is a superuser
	 * ("": not one, or not known) */
	char superuser[PW_NAME_MAX];
};

/* ---- snapshots -------------------------------------------------------------------------- */

static int cmp_func(const void *a, const void *b)
{
	const struct pw_cat_func *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->schema, y->schema);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct pw_catalog *pw_catalog_build(const struct pw_cat_func *funcs, size_t n,
                                    const char *const *schemas, size_t nschemas)
{
	size_t strs = 0;
	for (size_t i = 0; i < n; i++)
		strs += strlen(funcs[i].schema) + strlen(funcs[i].name) + strlen(funcs[i].lang) +
		        strlen(funcs[i].owner) + 4;
	for (size_t i = 0; i < nschemas; i++)
		strs += strlen(schemas[i]) + 1;
	/* one block: the header, the arrays, the strings */
	struct pw_catalog *c =
	    calloc(1, sizeof(*c) + n * sizeof(*funcs) + nschemas * sizeof(char *) + strs);
	if (!c)
		return NULL;
	c->refcount = 1;
	c->n = n;
	c->funcs = (struct pw_cat_func *)(c + 1);
	c->nschemas = nschemas;
	c->schemas = (const char **)(c->funcs + n);
	char *p = (char *)(c->schemas + nschemas);
	for (size_t i = 0; i < n; i++) {
		struct pw_cat_func *f = &c->funcs[i];
		*f = funcs[i];
		const char *src[4] = {funcs[i].schema, funcs[i].name, funcs[i].lang,
		                      funcs[i].owner};
		const char **dst[4] = {&f->schema, &f->name, &f->lang, &f->owner};
		for (int k = 0; k < 4; k++) {
			size_t l = strlen(src[k]) + 1;
			memcpy(p, src[k], l);
			*dst[k] = p;
			p += l;
		}
	}
	for (size_t i = 0; i < nschemas; i++) {
		size_t l = strlen(schemas[i]) + 1;
		memcpy(p, schemas[i], l);
		c->schemas[i] = p;
		p += l;
	}
	qsort(c->funcs, n, sizeof(*c->funcs), cmp_func);
	qsort(c->schemas, nschemas, sizeof(*c->schemas), cmp_str);
	return c;
}

bool pw_catalog_has_schema(const struct pw_catalog *c, const char *name)
{
	return c && bsearch(&name, c->schemas, c->nschemas, sizeof(*c->schemas), cmp_str) != NULL;
}

struct pw_catalog *pw_catalog_ref(struct pw_catalog *c)
{
	if (c)
		__atomic_add_fetch(&c->refcount, 1, __ATOMIC_RELAXED);
	return c;
}

void pw_catalog_release(struct pw_catalog *c)
{
	if (c && __atomic_sub_fetch(&c->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
		free(c->relmem);
		free(c);
	}
}

static int cmp_rel(const void *a, const void *b)
{
	uint32_t x = ((const struct pw_cat_rel *)a)->oid, y = ((const struct pw_cat_rel *)b)->oid;
	return x < y ? -1 : x > y;
}

int pw_catalog_set_relations(struct pw_catalog *c, const struct pw_cat_rel *rels, size_t n)
{
	size_t ptrs = 0, strs = 0, nums = 0;
	for (size_t i = 0; i < n; i++) {
		strs += strlen(rels[i].schema) + strlen(rels[i].name) + 2;
		strs += rels[i].def ? strlen(rels[i].def) + 1 : 0;
		ptrs += (size_t)rels[i].ncols;
		nums += (size_t)rels[i].ncols + 2 * (size_t)rels[i].ndeps;
		for (int k = 0; k < rels[i].ncols; k++)
			strs += rels[i].cols[k] ? strlen(rels[i].cols[k]) + 1 : 0;
	}
	/* one block: the relations, every column array, the types and dependencies, the names */
	char *m =
	    malloc(n * sizeof(*rels) + ptrs * sizeof(char *) + nums * sizeof(uint32_t) + strs);
	if (!m)
		return -1;
	struct pw_cat_rel *r = (struct pw_cat_rel *)m;
	const char **cols = (const char **)(r + n);
	uint32_t *num = (uint32_t *)(cols + ptrs);
	char *p = (char *)(num + nums);
	for (size_t i = 0; i < n; i++) {
		r[i] = rels[i];
		r[i].cols = cols;
		for (int k = 0; k < rels[i].ncols; k++) {
			const char *col = rels[i].cols[k];
			cols[k] = col ? memcpy(p, col, strlen(col) + 1) : NULL;
			p += col ? strlen(col) + 1 : 0;
		}
		cols += rels[i].ncols;
		r[i].types = num;
		for (int k = 0; k < rels[i].ncols; k++)
			num[k] = rels[i].types ? rels[i].types[k] : 0;
		num += rels[i].ncols;
		r[i].deps = num;
		for (int k = 0; k < 2 * rels[i].ndeps; k++)
			num[k] = rels[i].deps[k];
		num += 2 * rels[i].ndeps;
		r[i].schema = memcpy(p, rels[i].schema, strlen(rels[i].schema) + 1);
		p += strlen(rels[i].schema) + 1;
		r[i].name = memcpy(p, rels[i].name, strlen(rels[i].name) + 1);
		p += strlen(rels[i].name) + 1;
		if (rels[i].def) {
			r[i].def = memcpy(p, rels[i].def, strlen(rels[i].def) + 1);
			p += strlen(rels[i].def) + 1;
		}
	}
	qsort(r, n, sizeof(*r), cmp_rel);
	free(c->relmem);
	c->relmem = m;
	c->rels = r;
	c->nrels = n;
	return 0;
}

const struct pw_cat_rel *pw_catalog_relation_named(const struct pw_catalog *c, const char *schema,
                                                   const char *name)
{
	/* a scan: masking asks only for the relations a statement names */
	for (size_t i = 0; c && i < c->nrels; i++)
		if (strcmp(c->rels[i].name, name) == 0 && strcmp(c->rels[i].schema, schema) == 0)
			return &c->rels[i];
	return NULL;
}

const struct pw_cat_rel *pw_catalog_relation(const struct pw_catalog *c, uint32_t oid)
{
	struct pw_cat_rel key = {.oid = oid};
	return c && c->nrels ? bsearch(&key, c->rels, c->nrels, sizeof(key), cmp_rel) : NULL;
}

size_t pw_catalog_lookup(const struct pw_catalog *c, const char *name,
                         const struct pw_cat_func **first)
{
	size_t lo = 0, hi = c ? c->n : 0;

	*first = NULL;
	while (lo < hi) { /* the first entry whose name is >= name */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(c->funcs[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (c && end < c->n && strcmp(c->funcs[end].name, name) == 0)
		end++;
	if (end > lo)
		*first = &c->funcs[lo];
	return end - lo;
}

size_t pw_catalog_size(const struct pw_catalog *c)
{
	return c ? c->n : 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

static const char load_sql[] =
    "SELECT p.oid, n.nspname, p.proname, p.pronargs, p.pronargdefaults, "
    "p.provariadic OPERATOR(pg_catalog.<>) 0, p.provolatile, p.prosecdef, p.prokind, "
    "l.lanname, pg_catalog.pg_get_userbyid(p.proowner), p.proretset "
    "FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace "
    "JOIN pg_catalog.pg_language l ON l.oid OPERATOR(pg_catalog.=) p.prolang";

/* The relations of the database's own schemas and their columns, one row per column (a
 * relation without any: one row with a NULL column), in OID and column order. */
static const char rel_sql[] =
    "SELECT c.oid, n.nspname, c.relname, c.relkind, a.attnum, a.attname, a.atttypid "
    "FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid "
    "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped "
    "WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,v,m,p,f}'::pg_catalog.\"char\"[]) "
    "AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}') "
    "AND NOT pg_catalog.starts_with(n.nspname, 'pg_toast') "
    "AND NOT pg_catalog.starts_with(n.nspname, 'pg_temp_') "
    "ORDER BY c.oid, a.attnum";

/* Who the catalog connection (the upstream's login role, no SET ROLE) is: pgwardd warns once
 * per upstream when it is a superuser. */
static const char login_sql[] = "SELECT CURRENT_USER, pg_catalog.current_setting('is_superuser')";

/* What each view's and materialized view's rule reads: (view, relation, column) with column 0
 * for a whole row, in view order (the order of rel_sql). */
static const char deps_sql[] =
    "SELECT DISTINCT r.ev_class, d.refobjid, d.refobjsubid "
    "FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d "
    "ON d.objid OPERATOR(pg_catalog.=) r.oid "
    "AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
    "AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
    "WHERE d.refobjid OPERATOR(pg_catalog.<>) r.ev_class ORDER BY 1, 2, 3";

/* Views' definitions, every name outside pg_catalog schema-qualified (masking reads them). */
static const char viewdef_path_sql[] = "SET LOCAL search_path = pg_catalog";
static const char viewdef_sql[] =
    "SELECT c.oid, pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c "
    "WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog.\"char\"[]) ORDER BY 1";

static const char schema_sql[] = "SELECT s.nspname FROM pg_catalog.pg_namespace s WHERE NOT "
                                 "pg_catalog.starts_with(s.nspname, 'pg_temp_') AND NOT "
                                 "pg_catalog.starts_with(s.nspname, 'pg_toast_temp_')";

struct rows {
	char superuser[PW_NAME_MAX]; /* login_sql: the login role, if it is a superuser */
	struct pw_cat_func *f;
	size_t n, cap;
	char **schemas;
	size_t nschemas, capschemas;
	struct pw_cat_rel *rels;
	size_t nrels, caprels;
	bool bad;
};

/* A column row of rel_sql: a new relation when the OID changes. Dropped columns keep their
 * number with a NULL name. */
static void on_rel(void *arg, int ncols, const char *const *v)
{
	struct rows *r = arg;
	if (r->bad)
		return;
	if (ncols != 7 || !v[0] || !v[1] || !v[2] || !v[3]) {
		r->bad = true;
		return;
	}
	uint32_t oid = (uint32_t)strtoul(v[0], NULL, 10);
	if (!r->nrels || r->rels[r->nrels - 1].oid != oid) {
		if (r->nrels == r->caprels) {
			size_t cap = r->caprels ? r->caprels * 2 : 256;
			struct pw_cat_rel *p = realloc(r->rels, cap * sizeof(*p));
			if (!p) {
				r->bad = true;
				return;
			}
			r->rels = p;
			r->caprels = cap;
		}
		struct pw_cat_rel *rel = &r->rels[r->nrels++];
		memset(rel, 0, sizeof(*rel));
		rel->oid = oid;
		rel->schema = strdup(v[1]);
		rel->name = strdup(v[2]);
		rel->kind = v[3][0];
		if (!rel->schema || !rel->name)
			r->bad = true;
	}
	struct pw_cat_rel *rel = &r->rels[r->nrels - 1];
	if (!v[4] || !v[5])
		return; /* a relation without columns */
	long attnum = strtol(v[4], NULL, 10);
	if (attnum < 1 || attnum > 1600) { /* MaxHeapAttributeNumber */
		r->bad = true;
		return;
	}
	if (attnum > rel->ncols) {
		const char **c = realloc(rel->cols, (size_t)attnum * sizeof(*c));
		uint32_t *t =
		    c ? realloc((uint32_t *)rel->types, (size_t)attnum * sizeof(*t)) : NULL;
		if (c)
			rel->cols = c;
		if (!c || !t) {
			r->bad = true;
			return;
		}
		for (long k = rel->ncols; k < attnum; k++) {
			c[k] = NULL;
			t[k] = 0;
		}
		rel->types = t;
		rel->ncols = (int)attnum;
	}
	((uint32_t *)rel->types)[attnum - 1] = v[6] ? (uint32_t)strtoul(v[6], NULL, 10) : 0;
	if (!(rel->cols[attnum - 1] = strdup(v[5])))
		r->bad = true;
}

/* A row of viewdef_sql: the view is among the relations already read (sorted by OID). */
static void on_viewdef(void *arg, int ncols, const char *const *v)
{
	struct rows *r = arg;
	if (r->bad || ncols != 2 || !v[0] || !v[1])
		return;
	struct pw_cat_rel key = {.oid = (uint32_t)strtoul(v[0], NULL, 10)};
	struct pw_cat_rel *rel =
	    r->nrels ? bsearch(&key, r->rels, r->nrels, sizeof(key), cmp_rel) : NULL;
	if (rel && !rel->def && !(rel->def = strdup(v[1])))
		r->bad = true;
}

/* A row of deps_sql: the view is among the relations already read (sorted by OID). */
static void on_dep(void *arg, int ncols, const char *const *v)
{
	struct rows *r = arg;
	if (r->bad)
		return;
	if (ncols != 3 || !v[0] || !v[1] || !v[2]) {
		r->bad = true;
		return;
	}
	struct pw_cat_rel key = {.oid = (uint32_t)strtoul(v[0], NULL, 10)};
	struct pw_cat_rel *rel =
	    r->nrels ? bsearch(&key, r->rels, r->nrels, sizeof(key), cmp_rel) : NULL;
	if (!rel)
		return; /* a view of a schema the catalog leaves out */
	uint32_t *d = realloc((uint32_t *)rel->deps, 2 * ((size_t)rel->ndeps + 1) * sizeof(*d));
	if (!d) {
		r->bad = true;
		return;
	}
	d[2 * rel->ndeps] = (uint32_t)strtoul(v[1], NULL, 10);
	d[2 * rel->ndeps + 1] = (uint32_t)strtoul(v[2], NULL, 10);
	rel->deps = d;
	rel->ndeps++;
}

static void on_login(void *arg, int ncols, const char *const *v)
{
	struct rows *r = arg;
	if (ncols == 2 && v[0] && v[1] && strcmp(v[1], "on") == 0)
		snprintf(r->superuser, sizeof(r->superuser), "%s", v[0]);
}

static void on_schema(void *arg, int ncols, const char *const *v)
{
	struct rows *r = arg;
	if (r->bad)
		return;
	if (ncols != 1 || !v[0]) {
		r->bad = true;
		return;
	}
	if (r->nschemas == r->capschemas) {
		size_t cap = r->capschemas ? r->capschemas * 2 : 64;
		char **p = realloc(r->schemas, cap * sizeof(*p));
		if (!p) {
			r->bad = true;
			return;
		}
		r->schemas = p;
		r->capschemas = cap;
	}
	if (!(r->schemas[r->nschemas++] = strdup(v[0])))
		r->bad = true;
}

static char *str_dup(const char *s)
{
	return strdup(s ? s : "");
}

static void on_func(void *arg, int ncols, const char *const *v)
{
	struct rows *r = arg;
	if (r->bad)
		return;
	if (ncols != 12 || !v[0] || !v[1] || !v[2] || !v[6] || !v[8]) {
		r->bad = true;
		return;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 4096;
		struct pw_cat_func *f = realloc(r->f, cap * sizeof(*f));
		if (!f) {
			r->bad = true;
			return;
		}
		r->f = f;
		r->cap = cap;
	}
	struct pw_cat_func *f = &r->f[r->n];
	memset(f, 0, sizeof(*f));
	f->oid = (uint32_t)strtoul(v[0], NULL, 10);
	f->schema = str_dup(v[1]);
	f->name = str_dup(v[2]);
	f->nargs = (int16_t)atoi(v[3] ? v[3] : "0");
	f->nargdefaults = (int16_t)atoi(v[4] ? v[4] : "0");
	f->variadic = v[5] && v[5][0] == 't';
	f->volatility = v[6][0];
	f->secdef = v[7] && v[7][0] == 't';
	f->kind = v[8][0];
	f->retset = v[11] && v[11][0] == 't';
	f->lang = str_dup(v[9]);
	f->owner = str_dup(v[10]);
	f->builtin = f->oid < PW_CAT_FIRST_NORMAL_OID;
	r->n++;
	if (!f->schema || !f->name || !f->lang || !f->owner)
		r->bad = true;
}

static void rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free((char *)r->f[i].schema);
		free((char *)r->f[i].name);
		free((char *)r->f[i].lang);
		free((char *)r->f[i].owner);
	}
	free(r->f);
	for (size_t i = 0; i < r->nschemas; i++)
		free(r->schemas[i]);
	free(r->schemas);
	for (size_t i = 0; i < r->nrels; i++) {
		free((char *)r->rels[i].schema);
		free((char *)r->rels[i].name);
		for (int k = 0; k < r->rels[i].ncols; k++)
			free((char *)r->rels[i].cols[k]);
		free(r->rels[i].cols);
		free((uint32_t *)r->rels[i].types);
		free((uint32_t *)r->rels[i].deps);
		free((char *)r->rels[i].def);
	}
	free(r->rels);
}

struct pw_catalog *pw_catalog_load(const struct pw_runtime *rt, int ui, const char *db, char *err,
                                   size_t errlen)
{
	const struct pw_upstream *u = &rt->cfg->upstreams[ui];
	struct pw_pgconn *c = pw_pgconn_open(rt, ui, db, u->connect_timeout_ms, err, errlen);
	if (!c)
		return NULL;
	struct pw_catalog *cat = pw_catalog_load_on(c, u->name, err, errlen);
	pw_pgconn_close(c);
	return cat;
}

struct pw_catalog *pw_catalog_load_on(struct pw_pgconn *c, const char *name, char *err,
                                      size_t errlen)
{
	struct rows r = {0};
	struct pw_catalog *cat = NULL;

	/* one snapshot of the catalog for the functions and the schemas alike */
	if (pw_pgconn_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL, NULL, err,
	                   errlen) == 0 &&
	    pw_pgconn_exec(c, load_sql, on_func, &r, err, errlen) == 0 &&
	    pw_pgconn_exec(c, schema_sql, on_schema, &r, err, errlen) == 0 &&
	    pw_pgconn_exec(c, rel_sql, on_rel, &r, err, errlen) == 0 &&
	    pw_pgconn_exec(c, deps_sql, on_dep, &r, err, errlen) == 0 &&
	    pw_pgconn_exec(c, viewdef_path_sql, NULL, NULL, err, errlen) == 0 &&
	    pw_pgconn_exec(c, viewdef_sql, on_viewdef, &r, err, errlen) == 0 &&
	    pw_pgconn_exec(c, login_sql, on_login, &r, err, errlen) == 0 &&
	    pw_pgconn_exec(c, "COMMIT", NULL, NULL, err, errlen) == 0) {
		if (r.bad || r.n == 0 || r.nschemas == 0)
			pw_errf(err, errlen, "upstream \"%s\": unexpected catalog rows", name);
		else if (!(cat = pw_catalog_build(r.f, r.n, (const char *const *)r.schemas,
		                                  r.nschemas)) ||
		         pw_catalog_set_relations(cat, r.rels, r.nrels) < 0) {
			pw_catalog_release(cat);
			cat = NULL;
			pw_errf(err, errlen, "out of memory");
		} else
			memcpy(cat->superuser, r.superuser, sizeof(cat->superuser));
	}
	rows_free(&r);
	return cat;
}

/* ---- the registry and its thread -------------------------------------------------------- */

/* One upstream (by address, login and database, stable across reloads) and database. */
struct entry {
	struct entry *next;
	char key[PW_HOST_MAX + PATH_MAX + 3 * PW_NAME_MAX + 32];
	struct pw_catalog *snap; /* current, referenced by the registry */
	uint64_t gen;            /* atomic: bumped on every publish */
	bool queued, loading, stale, failed;
	bool warned_superuser; /* the superuser login was logged for this upstream */
	char error[256];
	uint64_t loaded_ms, failed_ms;
	int ttl_ms;
	/* what to load with: the runtime of the latest acquire (referenced) and its index */
	struct pw_runtime *rt;
	int ui;
	char db[PW_NAME_MAX];
};

/* Shared by the workers and the catalog thread; taken at a session's start, when a snapshot
 * is superseded (rare), and by the thread around a load: never per statement. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct entry *entries;
	bool running, stopping;
	pthread_t thread;
	void (*notify)(void);
	uint64_t loads, failures;
} reg = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void make_key(const struct pw_upstream *u, const char *db, char *out, size_t len)
{
	snprintf(out, len, "%s|%d|%s|%s|%s", u->host, u->port, u->unix_dir, u->user, db);
}

static struct entry *find_entry(const char *key, bool add)
{
	for (struct entry *e = reg.entries; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (!add)
		return NULL;
	struct entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->next = reg.entries;
	reg.entries = e;
	return e;
}

static void *loader(void *arg);

/* With reg.mu held: was e's upstream (its key without the database) said to log in as a
 * superuser already? Marks it so when not. */
static bool superuser_warned(struct entry *e)
{
	size_t n = strrchr(e->key, '|') - e->key + 1;
	for (struct entry *o = reg.entries; o; o = o->next)
		if (o->warned_superuser && strncmp(o->key, e->key, n) == 0 &&
		    !strchr(o->key + n, '|'))
			return true;
	e->warned_superuser = true;
	return false;
}

/* With reg.mu held. */
static bool ensure_thread(void)
{
	if (reg.running)
		return true;
	if (reg.stopping)
		return false;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread blocks every signal (SIGPIPE) */
	int rc = pthread_create(&reg.thread, NULL, loader, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pw_error("catalog: cannot start the loader thread");
		return false;
	}
	reg.running = true;
	return true;
}

/* With reg.mu held: queue a (re)load of e. */
static void queue(struct entry *e)
{
	if (e->queued || e->loading || !e->rt)
		return;
	e->queued = true;
	if (ensure_thread())
		pthread_cond_broadcast(&reg.cv);
}

static void notify(void)
{
	void (*fn)(void);
	pthread_mutex_lock(&reg.mu);
	fn = reg.notify;
	pthread_mutex_unlock(&reg.mu);
	if (fn)
		fn();
}

static void *loader(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&reg.mu);
	while (!reg.stopping) {
		struct entry *e = reg.entries;
		while (e && !e->queued)
			e = e->next;
		if (!e) {
			pthread_cond_wait(&reg.cv, &reg.mu);
			continue;
		}
		uint64_t age = now_ms() - e->loaded_ms;
		if (e->snap && age < MIN_RELOAD_MS) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t wait = MIN_RELOAD_MS - age;
			ts.tv_sec += (time_t)(wait / 1000);
			ts.tv_nsec += (long)(wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&reg.cv, &reg.mu, &ts);
			continue;
		}
		e->queued = false;
		e->loading = true;
		struct pw_runtime *rt = pw_runtime_ref(e->rt);
		int ui = e->ui;
		char db[PW_NAME_MAX], err[512] = "";
		snprintf(db, sizeof(db), "%s", e->db);
		pthread_mutex_unlock(&reg.mu);

		uint64_t t0 = now_ms();
		struct pw_catalog *c = pw_catalog_load(rt, ui, db, err, sizeof(err));
		char ups[PW_NAME_MAX];
		snprintf(ups, sizeof(ups), "%s", rt->cfg->upstreams[ui].name);
		pw_runtime_unref(rt);

		pthread_mutex_lock(&reg.mu);
		e->loading = false;
		if (c) {
			struct pw_catalog *old = e->snap;
			c->entry = e;
			c->gen = e->gen + 1;
			e->snap = c;
			__atomic_store_n(&e->gen, c->gen, __ATOMIC_RELEASE);
			e->loaded_ms = now_ms();
			e->stale = e->failed = false;
			reg.loads++;
			pw_info(
			    "catalog: %zu functions, %zu schemas, %zu relations of %s loaded in "
			    "%llu ms",
			    c->n, c->nschemas, c->nrels, PW_Q(e->key),
			    (unsigned long long)(now_ms() - t0));
			if (c->superuser[0] && !superuser_warned(e))
				/* every setting and statement an identity without a role of its own
				 * makes runs with these rights; guardrails narrow them, grants do
				 * better */
				pw_warn(
				    "upstream %s logs in as superuser %s: sessions without a fixed "
				    "or "
				    "just-in-time role run with superuser rights, and the server "
				    "ignores its own privilege checks for them; give pgwardd a "
				    "least-privilege login role: see docs/configuration.md, \"A "
				    "least-privilege "
				    "login role\"",
				    ups, c->superuser);
			pthread_mutex_unlock(&reg.mu);
			pw_catalog_release(old);
		} else {
			e->failed = true;
			e->failed_ms = now_ms();
			snprintf(e->error, sizeof(e->error), "%s", err);
			reg.failures++;
			pthread_mutex_unlock(&reg.mu);
			pw_warn("catalog: cannot load %s: %s", PW_Q(e->key), PW_Q(err));
		}
		notify();
		pthread_mutex_lock(&reg.mu);
	}
	pthread_mutex_unlock(&reg.mu);
	return NULL;
}

enum pw_cat_state pw_catalog_acquire(struct pw_runtime *rt, int ui, const char *db,
                                     struct pw_catalog **out, char *err, size_t errlen)
{
	const struct pw_upstream *u = &rt->cfg->upstreams[ui];
	char key[sizeof(((struct entry *)0)->key)];
	enum pw_cat_state st;
	uint64_t now = now_ms();

	*out = NULL;
	make_key(u, db, key, sizeof(key));
	pthread_mutex_lock(&reg.mu);
	struct entry *e = find_entry(key, true);
	if (!e) {
		pthread_mutex_unlock(&reg.mu);
		pw_errf(err, errlen, "out of memory");
		return PW_CAT_FAILED;
	}
	if (e->rt != rt) { /* load with the newest configuration seen */
		struct pw_runtime *old = e->rt;
		e->rt = pw_runtime_ref(rt);
		if (old)
			pw_runtime_unref(old);
	}
	e->ui = ui;
	e->ttl_ms = u->catalog_ttl_ms;
	snprintf(e->db, sizeof(e->db), "%s", db);
	if (e->snap) {
		if (e->stale || now - e->loaded_ms > (uint64_t)e->ttl_ms)
			queue(e); /* refreshed in the background; this one serves meanwhile */
		*out = pw_catalog_ref(e->snap);
		st = PW_CAT_READY;
	} else if (e->failed && now - e->failed_ms < RETRY_MS && !e->queued && !e->loading) {
		pw_errf(err, errlen, "%s", e->error);
		st = PW_CAT_FAILED;
	} else {
		queue(e);
		st = reg.running ? PW_CAT_LOADING : PW_CAT_FAILED;
		if (st == PW_CAT_FAILED)
			pw_errf(err, errlen, "the catalog loader is not running");
	}
	pthread_mutex_unlock(&reg.mu);
	return st;
}

bool pw_catalog_superseded(const struct pw_catalog *c)
{
	return c && c->entry && __atomic_load_n(&c->entry->gen, __ATOMIC_ACQUIRE) != c->gen;
}

struct pw_catalog *pw_catalog_newest(struct pw_catalog *c)
{
	struct pw_catalog *n = c;
	if (!c || !c->entry)
		return pw_catalog_ref(c);
	pthread_mutex_lock(&reg.mu);
	if (c->entry->snap)
		n = c->entry->snap;
	pw_catalog_ref(n);
	pthread_mutex_unlock(&reg.mu);
	return n;
}

void pw_catalog_invalidate(const struct pw_catalog *c)
{
	if (!c || !c->entry)
		return;
	pthread_mutex_lock(&reg.mu);
	c->entry->stale = true;
	queue(c->entry);
	pthread_mutex_unlock(&reg.mu);
}

void pw_catalog_on_change(void (*fn)(void))
{
	pthread_mutex_lock(&reg.mu);
	reg.notify = fn;
	pthread_mutex_unlock(&reg.mu);
}

void pw_catalog_stop(void)
{
	pthread_mutex_lock(&reg.mu);
	bool running = reg.running;
	reg.stopping = true;
	pthread_cond_broadcast(&reg.cv);
	pthread_mutex_unlock(&reg.mu);
	/* a load in flight ends within its upstream's connect timeout per step */
	if (running)
		pthread_join(reg.thread, NULL);
	pthread_mutex_lock(&reg.mu);
	reg.running = false;
	for (struct entry *e = reg.entries, *nx; e; e = nx) {
		nx = e->next;
		if (e->snap)
			e->snap->entry = NULL; /* a session may still hold it */
		pw_catalog_release(e->snap);
		if (e->rt)
			pw_runtime_unref(e->rt);
		free(e);
	}
	reg.entries = NULL;
	pthread_mutex_unlock(&reg.mu);
}

void pw_catalog_stats(uint64_t *loads, uint64_t *failures)
{
	pthread_mutex_lock(&reg.mu);
	if (loads)
		*loads = reg.loads;
	if (failures)
		*failures = reg.failures;
	pthread_mutex_unlock(&reg.mu);
}
