/* Command classes and tags of libpg_query's statement nodes: see include/pgward/sql_class.h. */
#include "pgward/sql_class.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

typedef const ProtobufCMessage msg_t;

enum pw_sql_class pw_sql_classify(const PgQuery__Node *n)
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
void pw_sql_stmt_tag(const PgQuery__Node *n, char *out, size_t len)
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
	/* every member of the node's oneof is a message pointer at the same place */
	msg_t *m = n && n->node_case != PG_QUERY__NODE__NODE__NOT_SET ? (msg_t *)n->alias : NULL;
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
