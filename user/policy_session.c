/* The per-session policy state and the checks at a session's start. See
 * include/pgward/policy_session.h. */
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/policy_session.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- session state ------------------------------------------------------------------- */

static void path_add(struct pw_policy_session *ps, const char *name)
{
	for (size_t i = 0; i < ps->n_path; i++)
		if (strcmp(ps->path[i], name) == 0)
			return;
	if (ps->n_path == PW_POLICY_MAX_PATH) {
		ps->path_unknown = true; /* too many to keep: judge as if unknown */
		return;
	}
	snprintf(ps->names[ps->n_path], sizeof(ps->names[0]), "%s", name);
	ps->path[ps->n_path] = ps->names[ps->n_path];
	ps->n_path++;
}

int pw_policy_session_init(struct pw_policy_session *ps, const char *search_path,
                           const char *current_user, const char *existing)
{
	struct pw_sql_setting st;
	int rc = 0;

	memset(ps, 0, sizeof(*ps));
	snprintf(ps->user, sizeof(ps->user), "%s", current_user ? current_user : "");
	if (pw_sql_split_path(search_path ? search_path : "\"$user\", public", &st) < 0) {
		ps->path_unknown = true;
		rc = -1;
	}
	for (size_t o = 0; rc == 0 && o < st.value_len; o += strlen(st.value + o) + 1)
		path_add(ps, st.value + o);
	if (existing && pw_sql_split_path(existing, &st) == 0) {
		for (size_t o = 0; o < st.value_len && ps->n_existing < PW_POLICY_MAX_PATH;
		     o += strlen(st.value + o) + 1)
			snprintf(ps->existing[ps->n_existing++], PW_SQL_NAMELEN, "%s",
			         st.value + o);
		ps->existing_known = true;
	}
	/* a fresh session has no temporary tables: pg_temp shadows nothing until it makes one */
	ps->sql.no_temp_tables = true;
	return rc;
}

void pw_policy_session_catalog(struct pw_policy_session *ps, struct pw_catalog *cat)
{
	struct pw_catalog *old = ps->cat;
	ps->cat = pw_catalog_ref(cat);
	pw_catalog_release(old);
}

void pw_policy_session_free(struct pw_policy_session *ps)
{
	pw_sql_session_free(&ps->sql);
	pw_catalog_release(ps->cat);
	ps->cat = NULL;
}

/* A path entry the server may search: one that existed at the session's start, or that the
 * newest catalog snapshot knows (a schema made since). */
static bool schema_exists(const void *arg, const char *schema)
{
	const struct pw_policy_session *ps = arg;

	for (size_t i = 0; i < ps->n_existing; i++)
		if (strcmp(ps->existing[i], schema) == 0)
			return true;
	return pw_catalog_has_schema(ps->cat, schema);
}

static void widen(struct pw_policy_session *ps, const struct pw_sql_setting *s)
{
	if (strcmp(s->name, "search_path") != 0 ||
	    (s->how != PW_SQL_SET_SET && s->how != PW_SQL_SET_CONFIG))
		return; /* a RESET returns to the upstream's path, already a candidate */
	if (!s->value_known) {
		ps->path_unknown = true;
		return;
	}
	for (size_t o = 0; o < s->value_len; o += strlen(s->value + o) + 1)
		path_add(ps, s->value + o);
}

bool pw_policy_session_widened(const struct pw_policy_session *ps, const struct pw_sql_result *r,
                               struct pw_policy_session *out)
{
	bool any = false;
	for (int i = 0; ps && i < r->nsets; i++) {
		const struct pw_sql_setting *s = &r->sets[i];
		if (s->stmt + 1 >= r->nstmts || strcmp(s->name, "search_path") != 0 ||
		    (s->how != PW_SQL_SET_SET && s->how != PW_SQL_SET_CONFIG))
			continue;
		if (!any) {
			*out = *ps;
			/* the copy's path entries point into its own names */
			for (size_t k = 0; k < out->n_path; k++)
				out->path[k] =
				    ps->path[k] == ps->names[k] ? out->names[k] : ps->path[k];
		}
		any = true;
		widen(out, s);
	}
	return any;
}

static int analyse_in(struct pw_policy_session *ps, const char *sql, size_t len,
                      struct pw_sql_result *out, char *err, size_t errlen)
{
	ps->sql.user = ps->user;
	ps->sql.search_path = ps->path;
	ps->sql.n_search_path = ps->n_path;
	ps->sql.schema_exists = ps->existing_known || ps->cat ? schema_exists : NULL;
	ps->sql.schema_arg = ps;
	return pw_sql_analyse(sql, len, &ps->sql, out, err, errlen);
}

int pw_policy_analyse(struct pw_policy_session *ps, const char *sql, size_t len,
                      struct pw_sql_result *out, char *err, size_t errlen)
{
	if (!ps)
		return pw_sql_analyse(sql, len, NULL, out, err, errlen);
	if (analyse_in(ps, sql, len, out, err, errlen) < 0)
		return -1;
	/* a SET search_path before the text's last statement: the statements after it are
	 * read with the schemas it names as candidates too (all of them: wider is stricter) */
	struct pw_policy_session wide;
	if (!pw_policy_session_widened(ps, out, &wide))
		return 0;
	int rc = analyse_in(&wide, sql, len, out, err, errlen);
	ps->sql.search_path = ps->path; /* the session's own again */
	ps->sql.n_search_path = ps->n_path;
	ps->sql.schema_arg = ps;
	return rc;
}

int pw_policy_session_apply(struct pw_policy_session *ps, const struct pw_sql_result *r,
                            const char *name)
{
	int rc = pw_sql_session_apply(&ps->sql, r);

	if (name && name[0] && r->nstmts == 1 && pw_sql_prepared_remember(&ps->sql, name, r, 0))
		rc = -1;
	for (int i = 0; i < r->nstmts; i++) {
		const struct pw_sql_stmt *st = &r->stmts[i];
		/* temp tables can come from the statement itself or from code it runs */
		if ((st->flags & (PW_SQL_F_CREATES_TEMP | PW_SQL_F_BODY)) ||
		    (st->runs & ((1u << PW_SQL_CALL) | (1u << PW_SQL_DO))))
			ps->sql.no_temp_tables = false;
	}
	for (int i = 0; i < r->nsets; i++)
		widen(ps, &r->sets[i]);
	return rc;
}

/* ---- names and calls, read in the session's context ---------------------------------- */

bool pw_policy_rel_unresolved(const struct pw_policy_session *ps, const struct pw_sql_rel *r)
{
	return (r->flags & PW_SQL_R_UNRESOLVED) ||
	       ((r->flags & PW_SQL_R_UNQUALIFIED) && ps && ps->path_unknown);
}

/* Is schema one an unqualified call may find its function in? pg_catalog always (searched
 * first unless listed later); the session's path ("$user" as its role); any schema when the
 * path is unknown or there is no session. pg_temp never: the server does not look there for
 * functions unless the call names it. */
static bool in_path(const struct pw_policy_session *ps, const char *schema)
{
	if (strcmp(schema, "pg_catalog") == 0)
		return true;
	if (!ps || ps->path_unknown)
		return strncmp(schema, "pg_temp", 7) != 0;
	for (size_t i = 0; i < ps->n_path; i++) {
		const char *p = strcmp(ps->path[i], "$user") == 0 ? ps->user : ps->path[i];
		if (strcmp(p, schema) == 0)
			return true;
	}
	return false;
}

/* Could the server pick function c for call f? By schema and by the number of arguments
 * (defaults and VARIADIC widen it; a call whose count is unknown fits all). */
static bool candidate(const struct pw_policy_session *ps, const struct pw_sql_func *f,
                      const struct pw_cat_func *c)
{
	if (f->schema[0] ? strcmp(f->schema, c->schema) != 0 : !in_path(ps, c->schema))
		return false;
	if (f->nargs < 0)
		return true;
	int lo = c->nargs - c->nargdefaults - (c->variadic ? 1 : 0);
	return f->nargs >= lo && (c->variadic || f->nargs <= c->nargs);
}

/* Volatile built-ins that only read: allowed where reads are. */
static const char *const read_safe[] = {
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "currval",
    "lastval",
    "current_query",
    "pg_is_in_recovery",
    "pg_is_wal_replay_paused",
    "pg_get_wal_replay_pause_state",
    "pg_current_wal_lsn",
    "pg_current_wal_insert_lsn",
    "pg_current_wal_flush_lsn",
    "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn",
    "pg_last_xact_replay_timestamp",
    "pg_database_size",
    "pg_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_total_relation_size",
    "pg_tablespace_size",
    "pg_notification_queue_usage",
    "pg_jit_available",
    "pg_partition_tree",
    "pg_partition_ancestors",
    "pg_collation_actual_version",
    "pg_database_collation_actual_version",
    "pg_xact_status",
    "txid_status",
    "pg_stat_get_xact_*",
};
/* Built-ins that are not volatile yet have an effect: they assign a transaction id. */
static const char *const effects[] = {"txid_current", "pg_current_xact_id"};
/* Built-ins that are not volatile yet read what no relation rule covers: other sessions'
 * statements, addresses and progress. */
static const char *const sensitive[] = {
    "pg_stat_get_activity",     "pg_stat_get_backend_*",    "pg_stat_get_progress_info",
    "pg_stat_get_wal_senders",  "pg_stat_get_wal_receiver", "pg_stat_get_subscription*",
    "pg_get_replication_slots",
};

static bool listed(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(list[i], name, 0) == 0)
			return true;
	return false;
}

bool pw_policy_call_writes(const struct pw_policy_session *ps, const struct pw_sql_func *f,
                           char *why, size_t len)
{
	const struct pw_cat_func *c;
	size_t n = ps && ps->cat ? pw_catalog_lookup(ps->cat, f->name, &c) : 0;
	bool any = false, volatile_ = false, user = false, secdef = false;

	for (size_t i = 0; i < n; i++) {
		if (!candidate(ps, f, &c[i]))
			continue;
		any = true;
		user |= !c[i].builtin;
		secdef |= c[i].secdef;
		volatile_ |= c[i].volatility == 'v';
	}
	const char *r = NULL;
	if (!ps || !ps->cat)
		r = "pgward has no catalog to tell what it does";
	else if (!any)
		r = "not a function pgward's catalog of the database knows";
	else if (secdef)
		r = "a SECURITY DEFINER function";
	else if (user)
		r = "a function defined in the database";
	else if (listed(sensitive, N_ELEMS(sensitive), f->name))
		r = "a built-in that reads other sessions' activity";
	else if ((volatile_ && !listed(read_safe, N_ELEMS(read_safe), f->name)) ||
	         listed(effects, N_ELEMS(effects), f->name))
		r = "a built-in with side effects";
	if (r && why)
		snprintf(why, len, "%s", r);
	return r != NULL;
}

/* Does glob name call f? Qualified calls compare as written. An unqualified call matches an
 * allowing glob only when every function it may resolve to (by the catalog; without one, in
 * every schema of the path and pg_catalog) matches; a restricting glob when its name part
 * does. */
bool pw_policy_call_matches(const struct pw_policy_session *ps, const struct pw_sql_func *f,
                            const char *glob, bool allow)
{
	char full[2 * PW_SQL_NAMELEN + 2];
	const char *dot = strchr(glob, '.');

	if (!dot)
		return fnmatch(glob, f->name, 0) == 0;
	if (f->schema[0]) {
		snprintf(full, sizeof(full), "%s.%s", f->schema, f->name);
		return fnmatch(glob, full, 0) == 0;
	}
	if (!allow)
		return fnmatch(dot + 1, f->name, 0) == 0;
	if (ps && ps->cat) {
		const struct pw_cat_func *c;
		size_t n = pw_catalog_lookup(ps->cat, f->name, &c), m = 0;
		for (size_t i = 0; i < n; i++) {
			if (!candidate(ps, f, &c[i]))
				continue;
			snprintf(full, sizeof(full), "%s.%s", c[i].schema, f->name);
			if (fnmatch(glob, full, 0) != 0)
				return false;
			m++;
		}
		return m > 0;
	}
	snprintf(full, sizeof(full), "pg_catalog.%s", f->name);
	if (fnmatch(glob, full, 0) != 0)
		return false;
	if (!ps || ps->path_unknown)
		return false;
	for (size_t i = 0; i < ps->n_path; i++) {
		const char *s = strcmp(ps->path[i], "$user") == 0 ? ps->user : ps->path[i];
		snprintf(full, sizeof(full), "%s.%s", s, f->name);
		if (fnmatch(glob, full, 0) != 0)
			return false;
	}
	return true;
}

/* ---- session-level checks ------------------------------------------------------------ */

bool pw_policy_in_window(const struct pw_policy *p, time_t now)
{
	if (!p->n_windows)
		return true;
	for (int i = 0; i < p->n_windows; i++) {
		const struct pw_window *w = &p->windows[i];
		struct tm tm;
		if (!(w->utc ? gmtime_r(&now, &tm) : localtime_r(&now, &tm)))
			continue;
		int day = (tm.tm_wday + 6) % 7, yday = (day + 6) % 7;
		int min = tm.tm_hour * 60 + tm.tm_min;
		if (w->from_min < w->to_min) {
			if ((w->days & (1u << day)) && min >= w->from_min && min < w->to_min)
				return true;
		} else if (((w->days & (1u << day)) && min >= w->from_min) ||
		           ((w->days & (1u << yday)) && min < w->to_min)) {
			return true; /* the window runs past midnight */
		}
	}
	return false;
}

int pw_policy_admit(const struct pw_identity *id, const struct pw_config *c, const char *database,
                    int ups_idx, time_t now, char *msg, size_t len)
{
	const struct pw_policy *p = &id->policy;
	bool ok = p->n_databases == 0;

	for (int i = 0; i < p->n_databases && !ok; i++)
		ok = fnmatch(p->databases[i], database, 0) == 0;
	if (!ok) {
		snprintf(msg, len, "pgward: identity %s may not use database \"%s\"", id->name,
		         database);
		return -1;
	}
	ok = p->n_upstreams == 0;
	for (int i = 0; i < p->n_upstreams && !ok; i++)
		ok = p->upstreams[i] == ups_idx;
	if (!ok) {
		snprintf(msg, len, "pgward: identity %s may not use upstream \"%s\"", id->name,
		         ups_idx >= 0 && ups_idx < c->n_upstreams ? c->upstreams[ups_idx].name
		                                                  : "?");
		return -1;
	}
	if (!pw_policy_in_window(p, now)) {
		snprintf(msg, len, "pgward: identity %s may connect only within its time windows",
		         id->name);
		return -1;
	}
	return 0;
}

/* ---- sessions per identity ----------------------------------------------------------- */

/* Shared by all workers (an identity's sessions land on any of them); taken once at a
 * session's start and end, never per message. Keyed by name so that a reload keeps counts. */
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct count {
	char name[PW_NAME_MAX];
	int n;
} * counts;
static size_t n_counts, cap_counts;

static struct count *count_find(const char *name, bool add)
{
	for (size_t i = 0; i < n_counts; i++)
		if (strcmp(counts[i].name, name) == 0)
			return &counts[i];
	if (!add)
		return NULL;
	if (n_counts == cap_counts) {
		size_t cap = cap_counts ? cap_counts * 2 : 16;
		struct count *c = realloc(counts, cap * sizeof(*c));
		if (!c)
			return NULL;
		counts = c;
		cap_counts = cap;
	}
	struct count *c = &counts[n_counts++];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->n = 0;
	return c;
}

bool pw_policy_session_acquire(const char *identity, int max)
{
	bool ok = false;

	pthread_mutex_lock(&count_lock);
	struct count *c = count_find(identity, true);
	if (c && (max <= 0 || c->n < max)) {
		c->n++;
		ok = true;
	}
	pthread_mutex_unlock(&count_lock);
	return ok; /* no memory for the count: refuse rather than run uncounted */
}

void pw_policy_session_release(const char *identity)
{
	pthread_mutex_lock(&count_lock);
	struct count *c = count_find(identity, false);
	if (c && c->n > 0)
		c->n--;
	pthread_mutex_unlock(&count_lock);
}

int pw_policy_session_count(const char *identity)
{
	pthread_mutex_lock(&count_lock);
	struct count *c = count_find(identity, false);
	int n = c ? c->n : 0;
	pthread_mutex_unlock(&count_lock);
	return n;
}
