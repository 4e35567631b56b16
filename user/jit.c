/* Just-in-time roles (see jit.h): the set-up SQL, the janitor thread that drops the roles of
 * ended sessions, and the start-up sweep of roles a dead pgwardd left behind. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "pgward/audit_events.h"
#include "pgward/caller.h"
#include "pgward/jw.h"
#include "pgward/jit.h"
#include "pgward/log.h"
#include "pgward/pgconn.h"

/* ------------------------------------------------------------------------------------ */
/* who we are                                                                            */

/* Facts about this host and process, computed once (pthread_once) and read-only after: safe
 * to read from any thread without a lock. */
static struct {
	char host[9];             /* 8 hex */
	char tag[9];              /* 8 hex, random per process */
	unsigned long long start; /* clock ticks after boot */
	unsigned long long pidns; /* inode of /proc/self/ns/pid; 0 if unknown */
} me;
static pthread_once_t me_once = PTHREAD_ONCE_INIT;

static void me_init(void)
{
	char id[64] = "";
	FILE *f = fopen("/etc/machine-id", "re");
	if (f) {
		if (!fgets(id, sizeof(id), f))
			id[0] = 0;
		fclose(f);
	}
	bool ok = strlen(id) >= 8;
	for (int i = 0; ok && i < 8; i++)
		ok = isxdigit((unsigned char)id[i]);
	if (ok) {
		for (int i = 0; i < 8; i++)
			me.host[i] = (char)tolower((unsigned char)id[i]);
		me.host[8] = 0;
	} else {
		/* no machine-id (some containers): FNV-1a of the hostname */
		char name[256] = "";
		gethostname(name, sizeof(name) - 1);
		uint32_t h = 2166136261u;
		for (const char *p = name; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
		snprintf(me.host, sizeof(me.host), "%08" PRIx32, h);
	}
	uint32_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	snprintf(me.tag, sizeof(me.tag), "%08" PRIx32, r);
	me.start = pw_proc_start_ticks((long)getpid());
	struct stat st;
	me.pidns = stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

const char *pw_jit_host_id(void)
{
	pthread_once(&me_once, me_init);
	return me.host;
}

void pw_jit_role_name(uint64_t serial, char out[PW_NAME_MAX])
{
	pthread_once(&me_once, me_init);
	snprintf(out, PW_NAME_MAX, PW_JIT_PREFIX "%s_%s_%" PRIx64, me.host, me.tag, serial);
}

/* ------------------------------------------------------------------------------------ */
/* the set-up SQL                                                                        */

/* A PostgreSQL name: 1..63 bytes (0 when empty is allowed), NUL-terminated within its
 * PW_NAME_MAX array, valid UTF-8. */
static bool name_ok(const char *s, bool empty_ok)
{
	size_t n = strnlen(s, PW_NAME_MAX);
	return n < PW_NAME_MAX && (n > 0 || empty_ok) && pw_utf8_valid(s, strlen(s));
}

struct sb {
	char *p;
	size_t len, cap;
	bool bad; /* overflow or invalid input */
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (b->bad || b->len + n >= b->cap) {
		b->bad = true;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_str(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* As quote_ident, but always quoted: a name is never read as a keyword. */
static void sb_ident(struct sb *b, const char *s)
{
	sb_put(b, "\"", 1);
	for (; *s; s++) {
		sb_put(b, s, 1);
		if (*s == '"')
			sb_put(b, "\"", 1);
	}
	sb_put(b, "\"", 1);
}

/* '...' with ' doubled. A backslash is refused: it would mean something else with
 * standard_conforming_strings off, and E'' is never used. */
static void sb_lit(struct sb *b, const char *s)
{
	sb_put(b, "'", 1);
	for (; *s; s++) {
		if (*s == '\\')
			b->bad = true;
		sb_put(b, s, 1);
		if (*s == '\'')
			sb_put(b, "'", 1);
	}
	sb_put(b, "'", 1);
}

/* A comment value with what would break "key=value key=value" %-encoded. */
static void pct_encode(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	for (; *s && o + 4 < cap; s++) {
		uint8_t c = (uint8_t)*s;
		if (c <= 0x20 || c == 0x7f || c == '%' || c == '=' || c == '\\')
			o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
		else
			out[o++] = (char)c;
	}
	out[o] = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static const char *const table_privs[] = {"SELECT",   "INSERT",     "UPDATE",  "DELETE",
                                          "TRUNCATE", "REFERENCES", "TRIGGER", "ALL"};

int pw_role_setup_sql(const char *role, char *out, size_t cap)
{
	struct sb b = {out, 0, cap, false};
	if (!out || cap == 0 || !role || !name_ok(role, false))
		return -1;
	out[0] = 0;
	sb_str(&b, "SET ROLE ");
	sb_ident(&b, role);
	if (b.bad) {
		out[0] = 0;
		return -1;
	}
	return (int)b.len;
}

int pw_jit_setup_sql(const struct pw_identity *id, const char *role, const char *database,
                     char *out, size_t cap)
{
	const struct pw_policy *p = &id->policy;
	if (!out || cap == 0 || !role || !database)
		return -1;
	out[0] = 0;
	if (strlen(role) >= PW_NAME_MAX || !name_ok(role, false) ||
	    strlen(database) >= PW_NAME_MAX || !name_ok(database, false) ||
	    !name_ok(id->name, false) || p->n_member_of < 0 || p->n_grants < 0 ||
	    (p->n_member_of && !p->member_of) || (p->n_grants && !p->grants))
		return -1;
	pthread_once(&me_once, me_init);

	struct sb b = {.p = out, .cap = cap};
	char db_enc[3 * PW_NAME_MAX], id_enc[3 * PW_NAME_MAX], comment[512];
	pct_encode(database, db_enc, sizeof(db_enc));
	pct_encode(id->name, id_enc, sizeof(id_enc));
	snprintf(comment, sizeof(comment),
	         "pgward-jit host=%s pid=%ld start=%llu pidns=%llu db=%s identity=%s", me.host,
	         (long)getpid(), me.start, me.pidns, db_enc, id_enc);

	sb_str(&b, "CREATE ROLE ");
	sb_ident(&b, role);
	sb_str(&b, " NOLOGIN; COMMENT ON ROLE ");
	sb_ident(&b, role);
	sb_str(&b, " IS ");
	sb_lit(&b, comment);
	for (int i = 0; i < p->n_member_of; i++) {
		if (!name_ok(p->member_of[i], false))
			goto bad;
		sb_str(&b, "; GRANT ");
		sb_ident(&b, p->member_of[i]);
		sb_str(&b, " TO ");
		sb_ident(&b, role);
	}
	for (int i = 0; i < p->n_grants; i++) {
		const struct pw_grant *g = &p->grants[i];
		if (!name_ok(g->schema, false) || !name_ok(g->table, true) || g->n_privileges < 1 ||
		    g->n_privileges > PW_MAX_GRANT_PRIVS)
			goto bad;
		/* USAGE once per schema, before its first grant */
		bool seen = false;
		for (int k = 0; k < i && !seen; k++)
			seen = strcmp(p->grants[k].schema, g->schema) == 0;
		if (!seen) {
			sb_str(&b, "; GRANT USAGE ON SCHEMA ");
			sb_ident(&b, g->schema);
			sb_str(&b, " TO ");
			sb_ident(&b, role);
		}
		sb_str(&b, "; GRANT ");
		for (int k = 0; k < g->n_privileges; k++) {
			/* spliced as keywords: only PostgreSQL's own table privilege names */
			size_t n = strnlen(g->privileges[k], sizeof(g->privileges[k])), j;
			for (j = 0; j < sizeof(table_privs) / sizeof(table_privs[0]); j++)
				if (n < sizeof(g->privileges[k]) &&
				    strcasecmp(g->privileges[k], table_privs[j]) == 0)
					break;
			if (j == sizeof(table_privs) / sizeof(table_privs[0]))
				goto bad;
			if (k)
				sb_str(&b, ", ");
			sb_str(&b, table_privs[j]);
		}
		if (g->table[0]) {
			sb_str(&b, " ON TABLE ");
			sb_ident(&b, g->schema);
			sb_str(&b, ".");
			sb_ident(&b, g->table);
		} else {
			sb_str(&b, " ON ALL TABLES IN SCHEMA ");
			sb_ident(&b, g->schema);
		}
		sb_str(&b, " TO ");
		sb_ident(&b, role);
	}
	/* the login must be a member: for SET ROLE now, and for DROP OWNED BY later */
	sb_str(&b, "; GRANT ");
	sb_ident(&b, role);
	sb_str(&b, " TO CURRENT_USER; SET ROLE ");
	sb_ident(&b, role);
	if (b.bad)
		goto bad;
	return (int)b.len;
bad:
	out[0] = 0; /* never half a script */
	return -1;
}

/* ------------------------------------------------------------------------------------ */
/* the janitor                                                                           */

enum job_kind { JOB_DROP, JOB_SWEEP };

struct job {
	struct job *next;
	enum job_kind kind;
	struct pw_runtime *rt; /* referenced */
	int upstream;
	char database[PW_NAME_MAX]; /* drop: the session's database */
	char role[PW_NAME_MAX];
	uint32_t backend_pid;
	int attempts;
	int retry_s;        /* sweep: the next retry's delay */
	int64_t not_before; /* monotonic ms */
};

#define DROP_ATTEMPTS    4 /* then 1 s, 2 s, 4 s apart */
#define SWEEP_RETRY_MIN  30
#define SWEEP_RETRY_MAX  600
#define DROP_SCRIPT_SIZE (4 * PW_NAME_MAX + 64)

/* The queue between the worker threads (every session end may queue a drop) and the one
 * janitor thread, plus its life cycle and counters: shared by nature, so under one mutex,
 * with a condition variable to wake the janitor. Nothing here is touched per message. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* on CLOCK_MONOTONIC; signalled on queue, stop and exit */
	struct job *head;
	int n;         /* queued + in progress */
	bool running;  /* a janitor thread exists */
	bool stopping; /* exit once the queue is empty (or past stop_deadline) */
	int64_t stop_deadline;
	uint64_t done, failed;
} jq = {.mu = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t jq_once = PTHREAD_ONCE_INIT;

static void jq_init(void)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&jq.cv, &a);
	pthread_condattr_destroy(&a);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void job_free(struct job *j)
{
	pw_runtime_unref(j->rt);
	free(j);
}

/* Per-step timeout of the janitor's connections: the upstream's, cut to what is left when
 * stopping. Called without the lock; a stale read of the deadline only shortens a wait. */
static int step_timeout(const struct job *j)
{
	int t = j->rt->cfg->upstreams[j->upstream].connect_timeout_ms;
	pthread_mutex_lock(&jq.mu);
	bool stopping = jq.stopping;
	int64_t left = jq.stop_deadline - now_ms();
	pthread_mutex_unlock(&jq.mu);
	if (stopping && left < t)
		t = left < 100 ? 100 : (int)left;
	return t;
}

/* DROP OWNED BY + DROP ROLE on c; a role already gone counts as dropped. */
static int drop_role(struct pw_pgconn *c, const char *role, bool owned, char *err, size_t errlen)
{
	char sql[DROP_SCRIPT_SIZE];
	struct sb b = {.p = sql, .cap = sizeof(sql)};
	if (owned) {
		sb_str(&b, "DROP OWNED BY ");
		sb_ident(&b, role);
		sb_str(&b, "; ");
	}
	sb_str(&b, "DROP ROLE ");
	sb_ident(&b, role);
	if (b.bad) {
		pw_errf(err, errlen, "role name too long");
		return -1;
	}
	if (pw_pgconn_exec(c, sql, NULL, NULL, err, errlen) == 0)
		return 0;
	return strstr(err, " 42704: ") ? 0 : -1;
}

static void ignore_row(void *arg, int ncols, const char *const *vals)
{
	(void)arg, (void)ncols, (void)vals;
}

/* The janitor's connection, kept from one drop to the next while they go to the same upstream
 * and database (a burst of sessions ending costs one login, not one each) and closed when the
 * queue runs dry or a drop fails. Touched only by the janitor thread: no lock. */
static struct {
	struct pw_pgconn *c;
	struct pw_runtime *rt; /* referenced while c is open */
	int upstream;
	char database[PW_NAME_MAX];
} held;

static void held_close(void)
{
	pw_pgconn_close(held.c);
	if (held.rt)
		pw_runtime_unref(held.rt);
	memset(&held, 0, sizeof(held));
}

static int run_drop(struct job *j, char *err, size_t errlen)
{
	int t = step_timeout(j);
	if (held.c && (held.rt != j->rt || held.upstream != j->upstream ||
	               strcmp(held.database, j->database) != 0))
		held_close();
	if (!held.c) {
		if (!(held.c = pw_pgconn_open(j->rt, j->upstream, j->database, t, err, errlen)))
			return -1;
		held.rt = pw_runtime_ref(j->rt);
		held.upstream = j->upstream;
		snprintf(held.database, sizeof(held.database), "%s", j->database);
	}
	if (j->backend_pid) {
		/* the session's backend may still run a statement as the role: end it, and wait
		 * for it (PostgreSQL 14+) so that the role is not dropped from under it. Only a
		 * backend of our own login: a reused pid of anybody else's is left alone. */
		char q[256], e[256];
		snprintf(q, sizeof(q),
		         "SELECT pg_catalog.pg_terminate_backend(a.pid, %d) FROM "
		         "pg_catalog.pg_stat_activity a WHERE a.pid = %" PRIu32
		         " AND a.usename = session_user",
		         t / 2 < 5000 ? t / 2 : 5000, j->backend_pid);
		if (pw_pgconn_exec(held.c, q, ignore_row, NULL, e, sizeof(e)) < 0 &&
		    strstr(e, " 42883: ")) {
			snprintf(q, sizeof(q),
			         "SELECT pg_catalog.pg_terminate_backend(a.pid) FROM "
			         "pg_catalog.pg_stat_activity a WHERE a.pid = %" PRIu32
			         " AND a.usename = session_user",
			         j->backend_pid);
			(void)pw_pgconn_exec(held.c, q, ignore_row, NULL, e, sizeof(e));
		}
	}
	int rc = drop_role(held.c, j->role, true, err, errlen);
	if (rc < 0)
		held_close(); /* whatever went wrong, the retry starts afresh */
	return rc;
}

/* ---- the sweep ---- */

struct found {
	int n, cap;
	struct {
		char role[PW_NAME_MAX];
		char db[PW_NAME_MAX];
	} * r;
	bool oom;
};

/* Parse "pgward-jit host=... pid=... start=... pidns=... db=... identity=..." into the
 * values the sweep needs. False when it is not one of ours. */
static bool parse_comment(const char *s, char host[9], long *pid, unsigned long long *start,
                          unsigned long long *pidns, char db[PW_NAME_MAX])
{
	static const char head[] = "pgward-jit ";
	bool h = false, p = false, st = false, ns = false, d = false;
	if (strncmp(s, head, sizeof(head) - 1) != 0)
		return false;
	s += sizeof(head) - 1;
	while (*s) {
		const char *end = strchr(s, ' ');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		char tok[3 * PW_NAME_MAX + 16], val[3 * PW_NAME_MAX + 16];
		if (len >= sizeof(tok))
			return false;
		memcpy(tok, s, len);
		tok[len] = 0;
		s += len + (end ? 1 : 0);
		char *eq = strchr(tok, '=');
		if (!eq)
			continue;
		*eq = 0;
		/* %-decode the value */
		size_t o = 0;
		for (const char *v = eq + 1; *v; v++) {
			int a, b;
			if (*v == '%' && (a = hexval(v[1])) >= 0 && (b = hexval(v[2])) >= 0) {
				val[o++] = (char)(a << 4 | b);
				v += 2;
			} else {
				val[o++] = *v;
			}
		}
		val[o] = 0;
		char *e;
		if (strcmp(tok, "host") == 0 && strlen(val) == 8) {
			memcpy(host, val, 9);
			h = true;
		} else if (strcmp(tok, "pid") == 0) {
			*pid = strtol(val, &e, 10);
			p = !*e && *pid > 0;
		} else if (strcmp(tok, "start") == 0) {
			*start = strtoull(val, &e, 10);
			st = !*e && val[0];
		} else if (strcmp(tok, "pidns") == 0) {
			*pidns = strtoull(val, &e, 10);
			ns = !*e && val[0];
		} else if (strcmp(tok, "db") == 0 && o < PW_NAME_MAX && o == strlen(val)) {
			memcpy(db, val, o + 1);
			d = o > 0;
		}
	}
	return h && p && st && ns && d;
}

static void collect(void *arg, int ncols, const char *const *vals)
{
	struct found *f = arg;
	char host[9], db[PW_NAME_MAX];
	long pid = 0;
	unsigned long long start = 0, pidns = 0;
	if (ncols != 2 || !vals[0] || !vals[1] || strlen(vals[0]) >= PW_NAME_MAX ||
	    !parse_comment(vals[1], host, &pid, &start, &pidns, db))
		return;
	/* ours: this host, this PID namespace (another namespace's pids mean nothing here) */
	if (strcmp(host, me.host) != 0 || pidns != me.pidns || !me.pidns)
		return;
	/* a live pgwardd (this one included) still uses it */
	if (pw_proc_start_ticks(pid) == start)
		return;
	if (f->n == f->cap) {
		int cap = f->cap ? f->cap * 2 : 16;
		void *r = realloc(f->r, (size_t)cap * sizeof(*f->r));
		if (!r) {
			f->oom = true;
			return;
		}
		f->r = r;
		f->cap = cap;
	}
	snprintf(f->r[f->n].role, PW_NAME_MAX, "%s", vals[0]);
	snprintf(f->r[f->n].db, PW_NAME_MAX, "%s", db);
	f->n++;
}

static void count(bool ok)
{
	pthread_mutex_lock(&jq.mu);
	if (ok)
		jq.done++;
	else
		jq.failed++;
	pthread_mutex_unlock(&jq.mu);
}

/* Returns 0 when the upstream was swept (each role dropped or counted failed), -1 when it
 * could not be listed. */
static int run_sweep(struct job *j, char *err, size_t errlen)
{
	pthread_once(&me_once, me_init);
	const struct pw_upstream *u = &j->rt->cfg->upstreams[j->upstream];
	static const char list_sql[] =
	    "SELECT r.rolname, d.description FROM pg_catalog.pg_roles r JOIN "
	    "pg_catalog.pg_shdescription d ON d.objoid = r.oid AND d.classoid = "
	    "'pg_catalog.pg_authid'::pg_catalog.regclass WHERE r.rolname LIKE 'pgward\\_jit\\_%'";
	/* any database can list roles: the configured one, else those every cluster has */
	const char *dbs[] = {u->database[0] ? u->database : "postgres", "template1"};
	struct pw_pgconn *c = NULL;
	for (size_t i = 0; !c && i < (u->database[0] ? 1u : 2u); i++)
		c = pw_pgconn_open(j->rt, j->upstream, dbs[i], step_timeout(j), err, errlen);
	if (!c)
		return -1;
	struct found f = {0};
	int rc = pw_pgconn_exec(c, list_sql, collect, &f, err, errlen);
	if (rc == 0 && f.oom) {
		pw_errf(err, errlen, "out of memory");
		rc = -1;
	}
	/* one connection to the database of the role at hand, kept while the next is in the
	 * same one */
	struct pw_pgconn *dc = NULL;
	char dc_db[PW_NAME_MAX] = "";
	for (int i = 0; rc == 0 && i < f.n; i++) {
		char e[512];
		const char *role = f.r[i].role, *db = f.r[i].db;
		if (!dc || strcmp(dc_db, db) != 0) {
			pw_pgconn_close(dc);
			dc = pw_pgconn_open(j->rt, j->upstream, db, step_timeout(j), e, sizeof(e));
			snprintf(dc_db, sizeof(dc_db), "%s", db);
		}
		int r;
		if (dc) {
			r = drop_role(dc, role, true, e, sizeof(e));
		} else if (strstr(e, " 3D000: ")) {
			/* its database is gone, and with it whatever the role held there */
			r = drop_role(c, role, false, e, sizeof(e));
		} else {
			r = -1;
		}
		if (r == 0) {
			pw_info(
			    "jit: dropped role %s left by a pgwardd that is gone (upstream \"%s\", "
			    "database %s)",
			    role, u->name, PW_Q(db));
			pw_audit_jit_role("dropped", role, u->name, 0, NULL);
		} else
			pw_warn("jit: cannot drop role %s left by a pgwardd that is gone: %s", role,
			        PW_Q(e));
		count(r == 0);
	}
	pw_pgconn_close(dc);
	pw_pgconn_close(c);
	free(f.r);
	return rc;
}

/* ---- the thread ---- */

static void *janitor(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&jq.mu);
	for (;;) {
		int64_t now = now_ms();
		struct job **pick = NULL;
		for (struct job **pp = &jq.head; *pp; pp = &(*pp)->next)
			if (!pick || (*pp)->not_before <= (*pick)->not_before)
				pick = pp; /* the oldest of equals: new jobs go in at the head */
		bool leave = jq.stopping && (!pick || now >= jq.stop_deadline ||
		                             (*pick)->not_before > jq.stop_deadline);
		if (held.c && (leave || !pick || (*pick)->not_before > now)) {
			/* idle or leaving: no connection is kept open at the upstream (re-checked
			 * after: the lock is let go meanwhile) */
			pthread_mutex_unlock(&jq.mu);
			held_close();
			pthread_mutex_lock(&jq.mu);
			continue;
		}
		if (leave)
			break; /* what is left waits for the next start's sweep */
		if (!pick) {
			pthread_cond_wait(&jq.cv, &jq.mu);
			continue;
		}
		if ((*pick)->not_before > now) {
			int64_t until = (*pick)->not_before;
			if (jq.stopping && jq.stop_deadline < until)
				until = jq.stop_deadline;
			struct timespec ts = {.tv_sec = until / 1000,
			                      .tv_nsec = (long)(until % 1000) * 1000000};
			pthread_cond_timedwait(&jq.cv, &jq.mu, &ts);
			continue;
		}
		struct job *j = *pick;
		*pick = j->next;
		pthread_mutex_unlock(&jq.mu);

		char err[1024] = "";
		const char *up = j->rt->cfg->upstreams[j->upstream].name;
		bool requeue = false;
		if (j->kind == JOB_DROP) {
			int rc = run_drop(j, err, sizeof(err));
			j->attempts++;
			if (rc == 0) {
				pw_debug("jit: dropped role %s (upstream \"%s\")", j->role, up);
				pw_audit_jit_role("dropped", j->role, up, 0, NULL);
				count(true);
			} else if (j->attempts < DROP_ATTEMPTS) {
				pw_info("jit: drop of role %s failed (attempt %d), retrying: %s",
				        j->role, j->attempts, PW_Q(err));
				j->not_before = now_ms() + 1000 * (1 << (j->attempts - 1));
				requeue = true;
			} else {
				pw_warn("jit: cannot drop role %s (upstream \"%s\", database %s) "
				        "after %d attempts; the next start's sweep drops it: %s",
				        j->role, up, PW_Q(j->database), j->attempts, PW_Q(err));
				pw_audit_jit_role("drop_failed", j->role, up, 0, err);
				count(false);
			}
		} else if (run_sweep(j, err, sizeof(err)) < 0) {
			pw_warn(
			    "jit: cannot sweep upstream \"%s\" for roles left by a dead pgwardd "
			    "(retrying in %d s): %s",
			    up, j->retry_s, PW_Q(err));
			j->not_before = now_ms() + 1000LL * j->retry_s;
			j->retry_s =
			    j->retry_s * 2 > SWEEP_RETRY_MAX ? SWEEP_RETRY_MAX : j->retry_s * 2;
			requeue = true;
		}

		pthread_mutex_lock(&jq.mu);
		if (requeue) {
			j->next = jq.head;
			jq.head = j;
		} else {
			jq.n--;
			job_free(j);
		}
	}
	/* stopping: give up what is left */
	while (jq.head) {
		struct job *j = jq.head;
		jq.head = j->next;
		jq.n--;
		if (j->kind == JOB_DROP) {
			jq.failed++;
			pw_warn("jit: stopping before role %s was dropped; the next start's sweep "
			        "drops it",
			        j->role);
		}
		job_free(j);
	}
	jq.running = false;
	pthread_cond_broadcast(&jq.cv);
	pthread_mutex_unlock(&jq.mu);
	return NULL;
}

/* With jq.mu held. The thread is detached: pw_jit_stop waits for it through jq.running. */
static int ensure_thread(void)
{
	if (jq.running) {
		jq.stopping = false; /* a stop in progress: the thread goes on */
		return 0;
	}
	/* no process signal is ever delivered to the janitor (and a write to a closed TLS
	 * connection raises no SIGPIPE in it) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	int rc = pthread_create(&t, &a, janitor, NULL);
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	jq.running = true;
	jq.stopping = false;
	return 0;
}

static void enqueue(struct job *j)
{
	j->next = jq.head;
	jq.head = j;
	jq.n++;
	pthread_cond_broadcast(&jq.cv);
}

void pw_jit_drop(struct pw_runtime *rt, int upstream, const char *database, const char *role,
                 uint32_t backend_pid)
{
	pthread_once(&jq_once, jq_init);
	if (!rt || upstream < 0 || upstream >= rt->cfg->n_upstreams || !role ||
	    strlen(role) >= PW_NAME_MAX || (database && strlen(database) >= PW_NAME_MAX)) {
		pw_warn("jit: invalid drop request for role %s", role ? role : "?");
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		pw_warn("jit: out of memory; role %s is left to the next start's sweep", role);
		return;
	}
	j->kind = JOB_DROP;
	j->rt = pw_runtime_ref(rt);
	j->upstream = upstream;
	snprintf(j->database, sizeof(j->database), "%s", database ? database : "");
	snprintf(j->role, sizeof(j->role), "%s", role);
	j->backend_pid = backend_pid;
	j->not_before = now_ms();
	pthread_mutex_lock(&jq.mu);
	if (ensure_thread() < 0) {
		jq.failed++;
		pthread_mutex_unlock(&jq.mu);
		pw_warn("jit: cannot start the janitor thread; role %s is left to the next start's "
		        "sweep",
		        role);
		job_free(j);
		return;
	}
	enqueue(j);
	pthread_mutex_unlock(&jq.mu);
}

int pw_jit_start(struct pw_runtime *rt)
{
	pthread_once(&jq_once, jq_init);
	pthread_once(&me_once, me_init);
	const struct pw_config *cfg = rt->cfg;
	bool *want = calloc((size_t)cfg->n_upstreams + 1, sizeof(bool));
	if (!want)
		return -1;
	for (int i = 0; i < cfg->n_identities; i++) {
		const struct pw_identity *id = &cfg->identities[i];
		if (!id->policy.jit)
			continue;
		for (int k = 0; k < cfg->n_upstreams; k++)
			if (id->upstream < 0 || id->upstream == k)
				want[k] = true;
	}
	pthread_mutex_lock(&jq.mu);
	if (ensure_thread() < 0) {
		pthread_mutex_unlock(&jq.mu);
		free(want);
		return -1;
	}
	for (int k = 0; k < cfg->n_upstreams; k++) {
		struct job *j;
		if (!want[k] || !(j = calloc(1, sizeof(*j))))
			continue;
		j->kind = JOB_SWEEP;
		j->rt = pw_runtime_ref(rt);
		j->upstream = k;
		j->retry_s = SWEEP_RETRY_MIN;
		j->not_before = now_ms();
		enqueue(j);
	}
	pthread_mutex_unlock(&jq.mu);
	free(want);
	return 0;
}

void pw_jit_stop(int timeout_ms)
{
	pthread_once(&jq_once, jq_init);
	pthread_mutex_lock(&jq.mu);
	if (!jq.running) {
		pthread_mutex_unlock(&jq.mu);
		return;
	}
	jq.stopping = true;
	jq.stop_deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	pthread_cond_broadcast(&jq.cv);
	/* the janitor's own waits end at the deadline; a little more for a step in flight
	 * (its timeouts are cut to the deadline too) */
	int64_t until = jq.stop_deadline + 2000;
	struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000};
	while (jq.running)
		if (pthread_cond_timedwait(&jq.cv, &jq.mu, &ts) == ETIMEDOUT)
			break;
	if (jq.running)
		pw_warn("jit: the janitor did not stop in time; %d drop(s) still pending", jq.n);
	pthread_mutex_unlock(&jq.mu);
}

void pw_jit_stats(uint64_t *done, uint64_t *failed, int *queued)
{
	pthread_mutex_lock(&jq.mu);
	if (done)
		*done = jq.done;
	if (failed)
		*failed = jq.failed;
	if (queued)
		*queued = jq.n;
	pthread_mutex_unlock(&jq.mu);
}
