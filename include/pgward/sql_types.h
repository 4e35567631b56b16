/* The statement analyser's vocabulary (see sql.h): what an analysis reports per statement,
 * relation, function and setting, its limits, and what it needs to know of the session. Only
 * types and constants, shared by the analyser's files and its callers. */
#ifndef PGWARD_SQL_TYPES_H
#define PGWARD_SQL_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PW_SQL_MAX_TEXT     (1u << 20) /* longest text analysed; the parse stack is sized for it */
#define PW_SQL_MAX_STMTS    64
#define PW_SQL_MAX_RELS     256 /* after search_path expansion */
#define PW_SQL_MAX_FUNCS    128
#define PW_SQL_MAX_SETS     32
#define PW_SQL_MAX_PREPARED 256 /* SQL-level prepared statements remembered per session */
#define PW_SQL_NAMELEN      64  /* NAMEDATALEN: the scanner truncates identifiers to 63 bytes */

enum pw_sql_class {
	PW_SQL_OTHER = 0, /* utility: SHOW, LOCK, VACUUM, DISCARD, DEALLOCATE, ... */
	PW_SQL_SELECT,
	PW_SQL_INSERT,
	PW_SQL_UPDATE,
	PW_SQL_DELETE,
	PW_SQL_MERGE,
	PW_SQL_COPY_TO,
	PW_SQL_COPY_FROM,
	PW_SQL_DDL,
	PW_SQL_DCL, /* GRANT, REVOKE, roles */
	PW_SQL_TRUNCATE,
	PW_SQL_CALL,
	PW_SQL_DO,
	PW_SQL_SET, /* SET, RESET */
	PW_SQL_TRANSACTION,
	PW_SQL_PREPARE,
	PW_SQL_EXECUTE,
	PW_SQL_EXPLAIN,
};

/* Statement flags. */
#define PW_SQL_F_NO_WHERE        (1u << 0) /* UPDATE or DELETE without WHERE (anywhere inside) */
#define PW_SQL_F_CTE_DML         (1u << 1) /* INSERT/UPDATE/DELETE/MERGE inside a WITH */
#define PW_SQL_F_EXPLAIN_ANALYZE (1u << 2) /* the explained statement executes */
/* EXPLAIN without ANALYZE (writes shown as reads) and PREPARE (accesses kept for EXECUTE) */
#define PW_SQL_F_NOT_EXECUTED       (1u << 3)
#define PW_SQL_F_SELECT_INTO        (1u << 4)
#define PW_SQL_F_CREATE_TABLE_AS    (1u << 5) /* also CREATE MATERIALIZED VIEW */
#define PW_SQL_F_COPY_PROGRAM       (1u << 6)
#define PW_SQL_F_COPY_FILE          (1u << 7) /* a server-side file */
#define PW_SQL_F_BODY               (1u << 8) /* DO block or CREATE FUNCTION body; see lang */
#define PW_SQL_F_ROLE_ESCAPE        (1u << 9) /* SET/RESET ROLE, SESSION AUTHORIZATION, set_config */
#define PW_SQL_F_ALTER_SYSTEM       (1u << 10)
#define PW_SQL_F_DROP_DATABASE      (1u << 11)
#define PW_SQL_F_CREATE_EXTENSION   (1u << 12)
#define PW_SQL_F_SCS_CHANGE         (1u << 13) /* standard_conforming_strings set or reset */
#define PW_SQL_F_ENCODING_CHANGE    (1u << 14) /* client_encoding set or reset */
#define PW_SQL_F_SET_CONFIG_DYNAMIC (1u << 15) /* set_config() with a non-constant name */
#define PW_SQL_F_RESET_ALL          (1u << 16) /* RESET ALL (also flags SCS and encoding) */
#define PW_SQL_F_AMBIGUOUS          (1u << 17) /* an unqualified relation has several candidates */
#define PW_SQL_F_UNKNOWN_PREPARED   (1u << 18) /* EXECUTE of a name the session store lacks */
#define PW_SQL_F_CREATES_TEMP       (1u << 19) /* creates a temporary relation */
#define PW_SQL_F_FORGET_PREPARED    (1u << 20) /* DEALLOCATE name / ALL, DISCARD ALL */

/* Relation access and flags. */
#define PW_SQL_READ          1u
#define PW_SQL_WRITE         2u
#define PW_SQL_LOCK          4u /* row locks (FOR UPDATE/SHARE), LOCK TABLE ... ACCESS SHARE/ROW SHARE */
#define PW_SQL_R_UNQUALIFIED 1u /* written without schema; this is one resolution candidate */
#define PW_SQL_R_AMBIGUOUS   2u /* and there are others (pg_temp, pg_catalog or earlier) */
#define PW_SQL_R_UNRESOLVED  4u /* no candidate schema at all (empty search_path) */

/* How a setting is changed. */
enum pw_sql_set_how { PW_SQL_SET_SET, PW_SQL_SET_RESET, PW_SQL_SET_CONFIG, PW_SQL_SET_ALTER };

struct pw_sql_stmt {
	enum pw_sql_class cls;
	enum pw_sql_class inner; /* EXPLAIN, PREPARE, EXECUTE, COPY (query): the inner class */
	uint32_t flags;
	/* bit (1u << class) of everything the statement runs: itself and the INSERT/UPDATE/
	 * DELETE/MERGE nested in it (WITH, EXPLAIN, COPY (query), PREPARE'd text); set even when
	 * PW_SQL_F_NOT_EXECUTED says the text is only planned or stored */
	uint32_t runs;
	int location, length;        /* byte span in the text; length 0: to the end */
	char lang[PW_SQL_NAMELEN];   /* PW_SQL_F_BODY: the language ("plpgsql" by default) */
	char object[PW_SQL_NAMELEN]; /* PREPARE/EXECUTE/DEALLOCATE name, extension, database */
	char tag[32]; /* the command as the server names it: "NOTIFY", "DISCARD ALL" */
};

struct pw_sql_rel {
	char schema[PW_SQL_NAMELEN];
	char name[PW_SQL_NAMELEN];
	uint8_t access; /* PW_SQL_READ, PW_SQL_LOCK or PW_SQL_WRITE */
	uint8_t flags;  /* PW_SQL_R_* */
	uint16_t stmt;  /* index into stmts[] */
};

struct pw_sql_func {
	char schema[PW_SQL_NAMELEN]; /* "" when written unqualified */
	char name[PW_SQL_NAMELEN];
	uint16_t stmt;
	int16_t nargs; /* arguments written (VARIADIC counts one); -1: unknown (a trigger's) */
};

#define PW_SQL_VALUE_MAX 256
struct pw_sql_setting {
	char name[PW_SQL_NAMELEN]; /* lower case; "all" for RESET ALL */
	uint8_t how;               /* enum pw_sql_set_how; SET ... TO DEFAULT is a RESET */
	uint16_t stmt;
	/* search_path: the schema names set, each NUL-terminated, value_len bytes in all;
	 * client_encoding / NAMES, standard_conforming_strings: the one value. value_known is
	 * false when the value is not a constant (or too long to keep); true with no value for a
	 * RESET */
	bool value_known;
	uint16_t value_len;
	char value[PW_SQL_VALUE_MAX];
};

struct pw_sql_result {
	int nstmts, nrels, nfuncs, nsets;
	int error_pos;     /* on a parse error: 1-based byte position, 0 if none */
	bool spans_approx; /* from the cache entry of a text that differs in numbers only: the
	                    * statements' location/length are that text's */
	struct pw_sql_stmt stmts[PW_SQL_MAX_STMTS];
	struct pw_sql_rel rels[PW_SQL_MAX_RELS];
	struct pw_sql_func funcs[PW_SQL_MAX_FUNCS];
	struct pw_sql_setting sets[PW_SQL_MAX_SETS];
};

struct pw_sql_prepared; /* opaque store entry */

/* What the analysis needs to know of the session. Zero-initialise; the caller owns user and
 * search_path (they must outlive calls); the prepared store is managed by the functions below
 * and released with pw_sql_session_free(). */
struct pw_sql_session {
	const char *user;               /* expands "$user" */
	const char *const *search_path; /* schema names as the server holds them; NULL: default */
	size_t n_search_path;           /* ("$user", public) */
	bool no_temp_tables; /* the caller KNOWS the session has no temp tables: pg_temp can't
	                      * shadow; otherwise every unqualified name also resolves to pg_temp */
	/* when set: does this schema exist? Path entries that do not are no candidates (the
	 * server skips them too); NULL: every path entry is one */
	bool (*schema_exists)(const void *arg, const char *schema);
	const void *schema_arg;
	struct pw_sql_prepared *prepared[PW_SQL_MAX_PREPARED];
	size_t n_prepared;
	/* set while a text a person approved is applied: what it prepares is marked, so that a
	 * protocol Bind of it is judged again (an approval covers no later execution) */
	bool approving;
};

#endif
