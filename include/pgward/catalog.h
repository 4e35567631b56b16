/* What the server's catalog says, cached per upstream and database: every function (built-in
 * or not, its schema, arguments, volatility, SECURITY DEFINER, language, owner), so that a
 * call is judged by what the function is rather than by its name; every schema, so that an
 * unqualified name is resolved only against the schemas of its search_path that exist; and
 * every relation of the database's own schemas with its columns (table OID + column number ->
 * schema.table.column), which masking resolves result columns with (a view's columns to their
 * base columns is masking's to add, from the view's definition). Masking
 * will resolve result columns through the same snapshots (table OID + column number ->
 * schema.table.column).
 *
 * A snapshot is read by a background thread through pgwardd's own maintenance connection
 * (pgconn.c) in one REPEATABLE READ transaction, is immutable once published and reference
 * counted: workers read it without locks. It is refreshed after DDL seen in any session
 * (pw_catalog_invalidate) and after the upstream's catalog_ttl_seconds; sessions switch to the
 * new one at their next statement. A function or schema created outside pgward is seen once
 * the snapshot is refreshed: within catalog_ttl_seconds. */
#ifndef PGWARD_CATALOG_H
#define PGWARD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgward/runtime.h"

#define PW_CAT_FIRST_NORMAL_OID 16384u /* FirstNormalObjectId: below it, the server's own */

struct pw_cat_func {
	const char *schema, *name, *lang, *owner; /* into the snapshot (copies) */
	uint32_t oid;
	int16_t nargs, nargdefaults;
	bool variadic;   /* provariadic: the last argument takes a list */
	bool secdef;     /* SECURITY DEFINER */
	bool builtin;    /* oid < FirstNormalObjectId: shipped with the server release */
	char volatility; /* 'i' immutable, 's' stable, 'v' volatile */
	char kind;       /* 'f' function, 'p' procedure, 'a' aggregate, 'w' window */
	bool retset;     /* returns a set: in a select list it multiplies rows */
};

/* A relation of the database's own schemas (not pg_catalog, information_schema, pg_toast or
 * temporary ones) with its columns, for masking: a result column's table OID and column number
 * (RowDescription) name schema.table.column through it. */
struct pw_cat_rel {
	uint32_t oid;
	const char *schema, *name;
	char kind; /* 'r' table, 'v' view, 'm' materialized view, 'p' partitioned, 'f' foreign */
	int ncols; /* the highest column number */
	const char **cols;     /* cols[attnum - 1]: the column's name; NULL for a dropped column */
	const uint32_t *types; /* types[attnum - 1]: the column's type OID (NULL: none known) */
	/* a view's or materialized view's rule reads these columns: (relation OID, column
	 * number) pairs, 2 * ndeps numbers; column 0: the whole row */
	int ndeps;
	const uint32_t *deps;
	/* a view's or materialized view's definition (pg_get_viewdef with search_path
	 * pg_catalog: every other name schema-qualified), or NULL */
	const char *def;
};

struct pw_catalog;

/* A snapshot from rows (the loader and tests): the functions and the names of the schemas
 * (temporary ones left out); the strings are copied. NULL on no memory. */
struct pw_catalog *pw_catalog_build(const struct pw_cat_func *funcs, size_t n,
                                    const char *const *schemas, size_t nschemas);
/* Give a snapshot that is not published yet its relations (copied, sorted by OID): rels[i].cols
 * has rels[i].ncols entries. -1 on no memory (the snapshot keeps none). */
int pw_catalog_set_relations(struct pw_catalog *c, const struct pw_cat_rel *rels, size_t n);
struct pw_catalog *pw_catalog_ref(struct pw_catalog *c);
void pw_catalog_release(struct pw_catalog *c); /* NULL is fine */

/* The functions named name (every schema), contiguous: *first and the count. */
size_t pw_catalog_lookup(const struct pw_catalog *c, const char *name,
                         const struct pw_cat_func **first);
size_t pw_catalog_size(const struct pw_catalog *c);
/* The relation with that OID, or NULL; its column number n is cols[n - 1]. */
/* The relation schema.name, or NULL. */
const struct pw_cat_rel *pw_catalog_relation_named(const struct pw_catalog *c, const char *schema,
                                                   const char *name);
const struct pw_cat_rel *pw_catalog_relation(const struct pw_catalog *c, uint32_t oid);
/* Does a schema of that name exist (pg_temp_N and pg_toast_temp_N are not listed)? */
bool pw_catalog_has_schema(const struct pw_catalog *c, const char *name);

enum pw_cat_state {
	PW_CAT_READY,   /* *out holds a referenced snapshot */
	PW_CAT_LOADING, /* queued or loading: ask again after the change callback */
	PW_CAT_FAILED,  /* the last load failed (err says why); retried after 5 s */
};

/* The current snapshot of upstream ui of rt for database db; one older than the upstream's
 * catalog_ttl_seconds (or invalidated) serves while a reload runs. Never blocks: loads run on
 * the catalog thread (started on first use). */
enum pw_cat_state pw_catalog_acquire(struct pw_runtime *rt, int ui, const char *db,
                                     struct pw_catalog **out, char *err, size_t errlen);
/* Has a newer snapshot of c's upstream and database been published? (One relaxed atomic load:
 * callers check it per statement.) */
bool pw_catalog_superseded(const struct pw_catalog *c);
/* The newest snapshot of c's upstream and database, referenced (c itself when none newer). */
struct pw_catalog *pw_catalog_newest(struct pw_catalog *c);
/* DDL ran through a session: reload c's upstream and database soon. */
void pw_catalog_invalidate(const struct pw_catalog *c);
/* Called (on the catalog thread) after every publish or failed load: wakes waiting sessions. */
void pw_catalog_on_change(void (*fn)(void));
/* Stop the thread (loads in flight are given up) and free every snapshot not referenced. */
void pw_catalog_stop(void);

/* Load synchronously over a new connection (the loader thread). NULL with err. */
struct pw_catalog *pw_catalog_load(const struct pw_runtime *rt, int ui, const char *db, char *err,
                                   size_t errlen);
struct pw_pgconn;
/* The same over an open connection (pgwardctl policy explain); name: the upstream's, for
 * messages. The connection stays open and usable. */
struct pw_catalog *pw_catalog_load_on(struct pw_pgconn *c, const char *name, char *err,
                                      size_t errlen);

/* Counters for logs and tests: loads done, loads failed. */
void pw_catalog_stats(uint64_t *loads, uint64_t *failures);

#endif
