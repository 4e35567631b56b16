/* Approvals shared by a fleet through a control database (see include/pgward/approval_db.h and
 * docs/approvals.md). Two connections: the listener thread's (LISTEN, the queued writes of the
 * holding node, the poll) and the control thread's (decide, get, list). Every value goes into
 * the SQL as a literal made by one function (sq_lit), with standard_conforming_strings on. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "approval_db_int.h"
#include "pgward/approval_db.h"
#include "pgward/log.h"
#include "pgward/pgconn.h"

#define CHANNEL     "pgward_approvals"
#define APP_NAME    "pgward-approvals"
#define LOCK_KEY    "8099573715263840624" /* "pgwardap": the schema's creation, fleet-wide */
#define QUEUE_MAX   4096
#define CALL_MS     5000 /* each step of a connection, each query */
#define SLICE_MS    200  /* the listener looks at its queue at least this often */
#define POLL_MS     2000
#define BACKOFF_MAX 30
#define FLUSH_MS    2000 /* at stop, what is queued gets this long */
#define LIST_MAX    256
#define GRACE       "interval '5 seconds'" /* past expires: the holding node did not say */

/* ---- SQL text ---- */

struct sql {
	char *p;
	size_t len, cap;
	bool bad; /* out of memory, or a value no literal can carry */
};

static char schema_q[2 * PW_NAME_MAX + 3]; /* the schema as a quoted identifier */

static void sq_add(struct sql *q, const char *s, size_t n)
{
	if (q->bad)
		return;
	if (q->len + n + 1 > q->cap) {
		size_t cap = (q->len + n + 1) * 2;
		char *p = realloc(q->p, cap);
		if (!p) {
			q->bad = true;
			return;
		}
		q->p = p;
		q->cap = cap;
	}
	memcpy(q->p + q->len, s, n);
	q->len += n;
	q->p[q->len] = 0;
}

/* SQL of ours (never a value): "@S" stands for the schema. */
static void sq_raw(struct sql *q, const char *s)
{
	for (const char *at; (at = strstr(s, "@S")); s = at + 2) {
		sq_add(q, s, (size_t)(at - s));
		sq_add(q, schema_q, strlen(schema_q));
	}
	sq_add(q, s, strlen(s));
}

static __attribute__((format(printf, 2, 3))) void sq_fmt(struct sql *q, const char *fmt, ...)
{
	char b[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(b))
		q->bad = true;
	else
		sq_add(q, b, (size_t)n);
}

/* The one way a value gets into SQL: '...' with every ' doubled. Sound only with
 * standard_conforming_strings on (every connection here sets it), where a backslash is an
 * ordinary character; a NUL byte cannot be carried at all. */
static void sq_litn(struct sql *q, const char *s, size_t n)
{
	if (memchr(s, 0, n)) {
		q->bad = true;
		return;
	}
	sq_add(q, "'", 1);
	for (const char *qt; (qt = memchr(s, '\'', n)); n -= (size_t)(qt + 1 - s), s = qt + 1)
		sq_add(q, s, (size_t)(qt + 1 - s)), sq_add(q, "'", 1);
	sq_add(q, s, n);
	sq_add(q, "'", 1);
}

/* NULL (and, with empty_null, ""): SQL NULL. */
static void sq_lit(struct sql *q, const char *s, bool empty_null)
{
	if (!s || (empty_null && !s[0]))
		sq_add(q, "NULL", 4);
	else
		sq_litn(q, s, strlen(s));
}

char *pw_adb_literal(const char *s, size_t len)
{
	struct sql q = {0};
	sq_litn(&q, s, len);
	if (q.bad)
		free(q.p);
	return q.bad ? NULL : q.p;
}

/* Run q on c (rows to fn) and free its text: 0, or -1 with err set. */
static int sq_exec(struct pw_pgconn *c, struct sql *q, pw_pgconn_row_fn fn, void *arg, char *err,
                   size_t errlen)
{
	int rc = -1;
	if (q->bad)
		pw_errf(err, errlen, "out of memory");
	else
		rc = pw_pgconn_exec(c, q->p, fn, arg, err, errlen);
	free(q->p);
	*q = (struct sql){0};
	return rc;
}

/* ---- the module's state ---- */

static void (*apply_fn)(const struct pw_approval_row *) = pw_approval_apply;

void pw_adb_set_apply(void (*fn)(const struct pw_approval_row *row))
{
	apply_fn = fn ? fn : pw_approval_apply;
}

/* Set by pw_approval_db_start before the thread exists, read-only until the stop. */
static struct pw_runtime *rt_ref;
static int db_ui;
static char db_name[PW_NAME_MAX], node[PW_NAME_MAX];
static atomic_bool on;

/* The writes queued for the listener by any thread, and the stop: one mutex. */
struct op {
	struct op *next;
	char id[PW_APPROVAL_ID_MAX];
	bool settle; /* its answer says which decision won */
	int tries;
	char sql[]; /* its statement */
};
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* the stop, for the back-off's sleep */
	struct op *head, *tail;
	int n;
	bool stop;
	uint64_t dropped;
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static pthread_t listener_thread;
static bool listener_up;

/* The row the control thread decides, until 2 s after: the listener leaves it alone, so that
 * the caller applies its own decision and says it made it (rather than finding it applied
 * already); a later poll applies it if the caller did not. */
static pthread_mutex_t dmu = PTHREAD_MUTEX_INITIALIZER;
static char deciding[PW_APPROVAL_ID_MAX];
static int64_t deciding_until;

/* The control thread's connection: opened on first use and kept. */
static pthread_mutex_t cmu = PTHREAD_MUTEX_INITIALIZER;
static struct pw_pgconn *cconn;
static int64_t cconn_retry_ms; /* after a failed open, calls fail at once until then */
static char cconn_err[256];

bool pw_approval_db_on(void)
{
	return atomic_load(&on);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_notify(void *arg, const char *channel, const char *payload);

/* A connection as the module uses them: standard_conforming_strings on (sq_lit depends on
 * it), nothing resolved through a search_path the database's settings chose, and for the
 * listener, LISTEN. */
static struct pw_pgconn *open_conn(bool listen, char *err, size_t errlen)
{
	struct pw_pgconn *c =
	    pw_pgconn_open_app(rt_ref, db_ui, db_name, APP_NAME, CALL_MS, err, errlen);
	const char *set = "SET standard_conforming_strings = on; SET search_path = pg_catalog";
	char sql[160];
	snprintf(sql, sizeof(sql), "%s%s", set, listen ? "; LISTEN " CHANNEL : "");
	if (c && listen)
		pw_pgconn_on_notify(c, on_notify, NULL);
	if (c && pw_pgconn_exec(c, sql, NULL, NULL, err, errlen) < 0) {
		pw_pgconn_close(c);
		return NULL;
	}
	return c;
}

/* ---- rows ---- */

/* A row's columns, in the order row_parse reads them, the last one to follow: ROW_JSON or NULL.
 * ROW_JSON is the request with its state and decision from the columns (approval show's
 * object, built by the server: the columns are the truth, whoever wrote them). */
#define ROW_COLS                                                                                   \
	"id, node, identity, state, agent_uid, array_to_string(approver_uids, ','), "              \
	"array_to_string(approver_gids, ','), decided_by, decided_uid, scope, for_seconds, "       \
	"reason, "
#define ROW_JSON                                                                                   \
	"((CASE jsonb_typeof(request) WHEN 'object' THEN request ELSE '{}' END) || "               \
	"jsonb_build_object('id', id, 'node', node, 'state', state, 'decided', "                   \
	"CASE WHEN state = 'pending' THEN NULL ELSE jsonb_build_object('at', "                     \
	"to_char(decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "            \
	"'by', decided_by, 'uid', decided_uid, 'scope', scope, 'for_seconds', for_seconds, "       \
	"'reason', reason) END))::text"
#define ROW_NCOLS 13

void pw_approval_row_free(struct pw_approval_row *r)
{
	if (!r)
		return;
	free(r->request);
	r->request = NULL;
}

static int parse_ids(const char *s, unsigned *out)
{
	int n = 0;
	for (char *end; s && *s && n < PW_MAX_APPROVERS; s = *end ? end + 1 : end) {
		unsigned long v = strtoul(s, &end, 10);
		if (end == s)
			break;
		out[n++] = (unsigned)v;
	}
	return n;
}

/* One row's text values into r (request: a copy, or NULL). False when it is not one. */
static bool row_parse(struct pw_approval_row *r, int n, const char *const *v)
{
	memset(r, 0, sizeof(*r));
	if (n != ROW_NCOLS || !v[0] || !v[3])
		return false;
	snprintf(r->id, sizeof(r->id), "%s", v[0]);
	snprintf(r->node, sizeof(r->node), "%s", v[1] ? v[1] : "");
	snprintf(r->identity, sizeof(r->identity), "%s", v[2] ? v[2] : "");
	r->state = PW_AS_PENDING;
	for (int s = PW_AS_PENDING; s <= PW_AS_WITHDRAWN; s++)
		if (strcmp(v[3], pw_approval_state_name((enum pw_approval_state)s)) == 0)
			r->state = (enum pw_approval_state)s;
	r->has_agent_uid = v[4] != NULL;
	r->agent_uid = v[4] ? (uid_t)strtoul(v[4], NULL, 10) : 0;
	r->n_uids = parse_ids(v[5], r->uids);
	r->n_gids = parse_ids(v[6], r->gids);
	snprintf(r->decided_by, sizeof(r->decided_by), "%s", v[7] ? v[7] : "");
	r->decided_uid = v[8] ? strtoll(v[8], NULL, 10) : -1;
	r->scope = PW_SCOPE_ONCE; /* NULL (a tool that set only the state): once */
	if (v[9])
		(void)pw_approval_scope_parse(v[9], &r->scope);
	r->for_s = v[10] ? atoi(v[10]) : 0;
	snprintf(r->reason, sizeof(r->reason), "%s", v[11] ? v[11] : "");
	/* printed as it is on the control socket: UTF-8 only (a SQL_ASCII database may hold
	 * anything); jsonb's text has no line breaks */
	r->request = v[12] && pw_utf8_valid(v[12], strlen(v[12])) ? strdup(v[12]) : NULL;
	return true;
}

/* Collects the first row of a result. */
struct one {
	struct pw_approval_row *r;
	int rows;
	bool bad;
};

static void one_row(void *arg, int n, const char *const *v)
{
	struct one *o = arg;
	if (o->rows++ == 0 && !row_parse(o->r, n, v))
		o->bad = true;
}

/* ---- writes (the holding node's): queued for the listener ---- */

static void enqueue(const char *id, struct sql *s, bool settle)
{
	struct op *o = s->bad ? NULL : malloc(sizeof(*o) + s->len + 1);
	if (o) {
		o->next = NULL;
		o->settle = settle;
		o->tries = 0;
		snprintf(o->id, sizeof(o->id), "%s", id);
		memcpy(o->sql, s->p, s->len + 1);
	}
	free(s->p);
	pthread_mutex_lock(&q.mu);
	bool stop = q.stop, full = q.n >= QUEUE_MAX || stop;
	if (o && !full) {
		if (q.tail)
			q.tail->next = o;
		else
			q.head = o;
		q.tail = o;
		q.n++;
		o = NULL;
	} else {
		full = true;
	}
	uint64_t dropped = full ? ++q.dropped : 0;
	pthread_mutex_unlock(&q.mu);
	free(o);
	const char *why = s->bad ? "out of memory" : stop ? "stopping" : "the queue is full";
	if (full && (dropped == 1 || dropped % 100 == 0)) /* once, then every 100th */
		pw_warn("approvals: request %s: not written to the control database (%s; %llu so "
		        "far): it is decided on this node only",
		        id, why, (unsigned long long)dropped);
}

void pw_approval_db_insert(const struct pw_approval_row *r)
{
	if (!pw_approval_db_on())
		return;
	struct sql s = {0};
	sq_raw(&s, "INSERT INTO @S.approvals (id, node, session, identity, agent_uid, "
	           "approver_uids, approver_gids, request, created, expires) SELECT ");
	sq_lit(&s, r->id, false);
	sq_raw(&s, ", ");
	sq_lit(&s, r->node[0] ? r->node : node, false);
	/* session and times from the request itself, each only when it reads as one */
	sq_raw(&s,
	       ", CASE WHEN j->>'session' ~ '^[0-9]{1,18}$' THEN (j->>'session')::bigint END, ");
	sq_lit(&s, r->identity, false);
	if (r->has_agent_uid)
		sq_fmt(&s, ", %u, ARRAY[", (unsigned)r->agent_uid);
	else
		sq_raw(&s, ", NULL, ARRAY[");
	for (int i = 0; i < r->n_uids && i < PW_MAX_APPROVERS; i++)
		sq_fmt(&s, "%s%u", i ? ", " : "", r->uids[i]);
	sq_raw(&s, "]::bigint[], ARRAY[");
	for (int i = 0; i < r->n_gids && i < PW_MAX_APPROVERS; i++)
		sq_fmt(&s, "%s%u", i ? ", " : "", r->gids[i]);
	sq_raw(&s,
	       "]::bigint[], j - 'state' - 'decided', coalesce(CASE WHEN j->>'created' ~ "
	       "'^\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z$' THEN (j->>'created')::timestamptz END, now()), "
	       "CASE WHEN j->>'expires' ~ '^\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z$' THEN "
	       "(j->>'expires')::timestamptz END FROM (SELECT ");
	sq_lit(&s, r->request ? r->request : "{}", false);
	sq_raw(&s, "::jsonb AS j) x ON CONFLICT (id) DO NOTHING");
	enqueue(r->id, &s, false);
}

/* "SET state = ..., decided_* = ...": the decision's columns (scope only for an approval,
 * for_seconds only for a fingerprint grant, as approval show has them). */
static void sq_decided(struct sql *s, enum pw_approval_state st, const char *by, long long uid,
                       enum pw_approval_scope scope, int for_s, const char *reason)
{
	bool yes = st == PW_AS_APPROVED;
	sq_raw(s, "SET state = ");
	sq_lit(s, pw_approval_state_name(st), false);
	sq_raw(s, ", decided_at = now(), decided_by = ");
	sq_lit(s, by, true);
	if (uid >= 0)
		sq_fmt(s, ", decided_uid = %lld", uid);
	else
		sq_raw(s, ", decided_uid = NULL");
	sq_raw(s, ", scope = ");
	sq_lit(s, yes ? pw_approval_scope_name(scope) : NULL, false);
	if (yes && scope == PW_SCOPE_FINGERPRINT)
		sq_fmt(s, ", for_seconds = %d", for_s);
	else
		sq_raw(s, ", for_seconds = NULL");
	sq_raw(s, ", reason = ");
	sq_lit(s, reason, true);
}

void pw_approval_db_settle(const char *id, enum pw_approval_state st, const char *by, long long uid,
                           enum pw_approval_scope scope, int for_s, const char *reason)
{
	if (!pw_approval_db_on() || st == PW_AS_PENDING)
		return;
	/* the state that won comes back: the update's, or the row's when it was decided first */
	struct sql s = {0};
	sq_raw(&s, "WITH u AS (UPDATE @S.approvals ");
	sq_decided(&s, st, by, uid, scope, for_s, reason);
	sq_raw(&s, " WHERE id = ");
	sq_lit(&s, id, false);
	sq_raw(&s, " AND state = 'pending' RETURNING state) SELECT (SELECT count(*) FROM u), "
	           "coalesce((SELECT state FROM u), (SELECT state FROM @S.approvals WHERE id = ");
	sq_lit(&s, id, false);
	sq_raw(&s, ")), ");
	sq_lit(&s, pw_approval_state_name(st), false);
	enqueue(id, &s, true);
}

void pw_approval_db_withdraw(const char *id, const char *why)
{
	pw_approval_db_settle(id, PW_AS_WITHDRAWN, "pgwardd", -1, PW_SCOPE_ONCE, 0, why);
}

/* ---- the listener thread ---- */

/* Ids of this node's rows that notifications named, to read once the connection is idle. */
static struct {
	char id[64][PW_APPROVAL_ID_MAX];
	int n;
	bool overflow; /* more than fit: poll instead */
} heard;

static void on_notify(void *arg, const char *channel, const char *payload)
{
	(void)arg;
	size_t nl = strlen(node);
	if (strcmp(channel, CHANNEL) != 0 || strncmp(payload, node, nl) != 0 ||
	    payload[nl] != '-' || strlen(payload) >= PW_APPROVAL_ID_MAX)
		return; /* another node's (a first cut: fetch_decided checks the node column) */
	for (int i = 0; i < heard.n; i++)
		if (strcmp(heard.id[i], payload) == 0)
			return;
	if (heard.n == (int)(sizeof(heard.id) / sizeof(heard.id[0])))
		heard.overflow = true;
	else
		snprintf(heard.id[heard.n++], PW_APPROVAL_ID_MAX, "%s", payload);
}

static void apply_row(void *arg, int n, const char *const *v)
{
	struct pw_approval_row r;
	(void)arg;
	bool ok = row_parse(&r, n, v) && r.state != PW_AS_PENDING;
	pthread_mutex_lock(&dmu);
	ok = ok && (strcmp(r.id, deciding) != 0 || now_ms() >= deciding_until);
	pthread_mutex_unlock(&dmu);
	if (ok)
		apply_fn(&r); /* approval.c ignores a row it does not hold as pending */
	pw_approval_row_free(&r);
}

/* The decided rows of this node: those notifications named, or (poll) all decided in the
 * last 10 minutes. */
static int fetch_decided(struct pw_pgconn *c, bool poll, char *err, size_t errlen)
{
	struct sql s = {0};
	sq_raw(&s, "SELECT " ROW_COLS "NULL FROM @S.approvals WHERE node = ");
	sq_lit(&s, node, false);
	sq_raw(&s, " AND state <> 'pending' AND ");
	if (poll) {
		sq_raw(&s, "decided_at > now() - interval '10 minutes'");
	} else {
		sq_raw(&s, "id IN (");
		for (int i = 0; i < heard.n; i++) {
			sq_raw(&s, i ? ", " : "");
			sq_lit(&s, heard.id[i], false);
		}
		sq_raw(&s, ")");
	}
	heard.n = 0;
	return sq_exec(c, &s, apply_row, NULL, err, errlen);
}

/* A settle's answer: (updated, the state that won, ours). */
static void settle_answer(void *arg, int n, const char *const *v)
{
	const char *id = arg;
	if (n == 3 && v[0] && strcmp(v[0], "0") == 0 && v[2]) {
		if (!v[1])
			pw_debug("approvals: request %s has no row in the control database", id);
		else if (strcmp(v[1], v[2]) != 0)
			pw_warn("approvals: request %s was %s here but %s in the control database "
			        "first",
			        id, v[2], v[1]);
	}
}

/* Run the queued writes. -1 when the connection broke (the op stays at the head). */
static int drain(struct pw_pgconn *c, int64_t deadline)
{
	for (;;) {
		pthread_mutex_lock(&q.mu);
		struct op *o = q.head;
		if (o && !(q.head = o->next))
			q.tail = NULL;
		q.n -= o != NULL;
		pthread_mutex_unlock(&q.mu);
		if (!o)
			return 0;
		char err[512];
		int rc = pw_pgconn_exec(c, o->sql, o->settle ? settle_answer : NULL, o->id, err,
		                        sizeof(err));
		if (rc < 0 && pw_pgconn_ok(c))
			pw_warn("approvals: request %s: the control database refused a write: %s",
			        o->id, err);
		if (rc < 0 && !pw_pgconn_ok(c) && ++o->tries < 3) {
			pthread_mutex_lock(&q.mu); /* again on the next connection */
			o->next = q.head;
			q.head = o;
			if (!q.tail)
				q.tail = o;
			q.n++;
			pthread_mutex_unlock(&q.mu);
			return -1;
		}
		if (rc < 0 && !pw_pgconn_ok(c))
			pw_warn(
			    "approvals: request %s: a write to the control database given up: %s",
			    o->id, err);
		free(o);
		if (!pw_pgconn_ok(c))
			return -1;
		if (deadline && now_ms() >= deadline)
			return 0;
	}
}

/* Sleep ms unless stopped (0: not at all); true when stopping. */
static bool nap(int ms)
{
	struct timespec ts; /* the condition's clock (a jump of it only bends a back-off) */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&q.mu);
	while (!q.stop && pthread_cond_timedwait(&q.cv, &q.mu, &ts) != ETIMEDOUT)
		;
	bool stop = q.stop;
	pthread_mutex_unlock(&q.mu);
	return stop;
}

/* One round on a sound connection: writes, what notifications named, the poll when due, then
 * a short wait for notifications. -1 (err set) when the connection is lost. */
static int round_trip(struct pw_pgconn *c, int64_t *next_poll, char *err, size_t errlen)
{
	if (drain(c, 0) < 0) {
		pw_errf(err, errlen, "a write failed on a lost connection");
		return -1;
	}
	static bool refused; /* said once, until a read works again */
	bool poll = heard.overflow || now_ms() >= *next_poll;
	int rc = heard.n || poll ? fetch_decided(c, poll, err, errlen) : 0;
	if (rc < 0 && !pw_pgconn_ok(c))
		return -1;
	if (rc < 0 && !refused)
		pw_warn("approvals: cannot read the control database's decisions: %s", err);
	refused = rc < 0;
	if (poll) {
		heard.overflow = false;
		*next_poll = now_ms() + POLL_MS;
	}
	return pw_pgconn_wait(c, SLICE_MS, on_notify, NULL, err, errlen) < 0 ? -1 : 0;
}

static void *listener(void *arg)
{
	struct pw_pgconn *c = arg; /* the start's, LISTENing already */
	const struct pw_upstream *u = &rt_ref->cfg->upstreams[db_ui];
	int backoff = 1;
	bool down = false; /* said in the log: each change of state is logged once */
	int64_t next_poll = 0;
	char err[512];
	while (!nap(0)) {
		if (!c && !(c = open_conn(true, err, sizeof(err)))) {
			if (!down)
				pw_warn(
				    "approvals: the control database (upstream \"%s\", database "
				    "%s) cannot be reached, retrying (1 s to %d s apart): %s",
				    u->name, PW_Q(db_name), BACKOFF_MAX, err);
			down = true;
			if (nap(backoff * 1000))
				break;
			backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
			continue;
		}
		if (round_trip(c, &next_poll, err, sizeof(err)) == 0) {
			if (down)
				pw_info("approvals: the control database (upstream \"%s\") is "
				        "reachable again",
				        u->name);
			down = false;
			backoff = 1; /* only once a round worked: a server that drops every
			                connection at once is not asked every second */
			continue;
		}
		if (pw_pgconn_ok(c))
			continue;
		if (!down)
			pw_warn("approvals: lost the control database's connection (upstream "
			        "\"%s\"), reconnecting: %s",
			        u->name, err);
		down = true;
		pw_pgconn_close(c);
		c = NULL;
		next_poll = 0; /* what was decided meanwhile: the first round polls */
		if (nap(backoff * 1000))
			break;
		backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
	}
	if (c) /* what the stop withdrew, while there is time */
		(void)drain(c, now_ms() + FLUSH_MS);
	pw_pgconn_close(c);
	return NULL;
}

/* ---- the schema ---- */

static const char schema_sql[] =
    "SELECT pg_advisory_xact_lock(" LOCK_KEY ");"
    "CREATE SCHEMA IF NOT EXISTS @S;"
    "CREATE TABLE IF NOT EXISTS @S.approvals (id text PRIMARY KEY, node text NOT NULL, "
    "session bigint, identity text NOT NULL, agent_uid bigint, approver_uids bigint[], "
    "approver_gids bigint[], request jsonb NOT NULL, state text NOT NULL DEFAULT 'pending' "
    "CHECK (state IN ('pending', 'approved', 'denied', 'timed_out', 'withdrawn')), "
    "created timestamptz NOT NULL DEFAULT now(), expires timestamptz, decided_at timestamptz, "
    "decided_by text, decided_uid bigint, "
    "scope text CHECK (scope IN ('once', 'fingerprint', 'session')), for_seconds int, "
    "reason text);"
    "CREATE INDEX IF NOT EXISTS approvals_node_state ON @S.approvals (node, state);"
    /* any tool may decide a row; none may decide it twice, and the time and the database
     * user are filled in when it does not say */
    "CREATE OR REPLACE FUNCTION @S.approvals_check() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path = pg_catalog AS $pgw$ BEGIN "
    "IF OLD.state <> 'pending' AND NEW.state IS DISTINCT FROM OLD.state THEN "
    "RAISE EXCEPTION 'approval request % is % already', OLD.id, OLD.state "
    "USING ERRCODE = '55000'; END IF; "
    "IF OLD.state = 'pending' AND NEW.state <> 'pending' THEN "
    "NEW.decided_at := coalesce(NEW.decided_at, now()); "
    "NEW.decided_by := coalesce(NEW.decided_by, session_user); END IF; "
    "RETURN NEW; END $pgw$;"
    /* whoever writes the row wakes the node that holds its session */
    "CREATE OR REPLACE FUNCTION @S.approvals_notify() RETURNS trigger LANGUAGE plpgsql "
    "SET search_path = pg_catalog AS $pgw$ BEGIN "
    "PERFORM pg_notify('" CHANNEL "', NEW.id); RETURN NULL; END $pgw$;"
    "DO $pgw$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = "
    "'@S.approvals'::regclass AND tgname = 'approvals_check') THEN "
    "CREATE TRIGGER approvals_check BEFORE UPDATE ON @S.approvals FOR EACH ROW "
    "EXECUTE PROCEDURE @S.approvals_check(); END IF; "
    "IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = "
    "'@S.approvals'::regclass AND tgname = 'approvals_notify') THEN "
    "CREATE TRIGGER approvals_notify AFTER INSERT OR UPDATE ON @S.approvals FOR EACH ROW "
    "EXECUTE PROCEDURE @S.approvals_notify(); END IF; END $pgw$";

/* ---- start, stop ---- */

int pw_approval_db_start(const struct pw_runtime *rt, char *err, size_t errlen)
{
	const struct pw_approvals_config *a = &rt->cfg->approvals;
	if (a->db_upstream < 0)
		return 0;
	if (pw_approval_db_on() || listener_up || a->db_upstream >= rt->cfg->n_upstreams) {
		pw_errf(err, errlen, "approvals: the control database: %s",
		        listener_up ? "started already" : "no such upstream");
		return -1;
	}
	rt_ref = pw_runtime_ref((struct pw_runtime *)rt);
	db_ui = a->db_upstream;
	snprintf(db_name, sizeof(db_name), "%s", a->db_database);
	snprintf(node, sizeof(node), "%s", a->node);
	/* validated as [a-z_][a-z0-9_]* by the configuration: quoted all the same */
	char *o = schema_q;
	*o++ = '"';
	for (const char *p = a->db_schema; *p; *o++ = *p++)
		if (*p == '"')
			*o++ = '"';
	memcpy(o, "\"", 2);

	char e[512];
	struct sql s = {0};
	sq_raw(&s, schema_sql);
	struct pw_pgconn *c = open_conn(true, e, sizeof(e));
	if (!c || sq_exec(c, &s, NULL, NULL, e, sizeof(e)) < 0) {
		free(s.p);
		pw_errf(err, errlen,
		        "approvals: the control database (upstream \"%s\", database %s, "
		        "schema %s): %s",
		        rt->cfg->upstreams[db_ui].name, db_name, a->db_schema, e);
		goto fail;
	}
	q.stop = false;
	atomic_store(&on, true);
	/* no process signal reaches the listener (nor SIGPIPE from a TLS write) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&listener_thread, NULL, listener, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pw_errf(err, errlen, "approvals: cannot start the control database's thread");
		goto fail;
	}
	listener_up = true;
	pw_info("approvals: shared through the control database (upstream \"%s\", database %s, "
	        "schema %s) as node %s",
	        rt->cfg->upstreams[db_ui].name, PW_Q(db_name), a->db_schema, PW_Q(node));
	return 0;
fail:
	atomic_store(&on, false);
	pw_pgconn_close(c);
	pw_runtime_unref(rt_ref);
	rt_ref = NULL;
	return -1;
}

void pw_approval_db_stop(void)
{
	if (!listener_up)
		return;
	pthread_mutex_lock(&q.mu);
	q.stop = true; /* nothing more is queued; what is flushes for FLUSH_MS at most */
	pthread_cond_broadcast(&q.cv);
	pthread_mutex_unlock(&q.mu);
	pthread_join(listener_thread, NULL);
	listener_up = false;
	atomic_store(&on, false);
	pthread_mutex_lock(&q.mu);
	int left = q.n;
	while (q.head) {
		struct op *o = q.head;
		q.head = o->next;
		free(o);
	}
	q.tail = NULL;
	q.n = 0;
	pthread_mutex_unlock(&q.mu);
	if (left)
		pw_warn("approvals: %d write(s) to the control database not made at stop", left);
	pthread_mutex_lock(&cmu);
	pw_pgconn_close(cconn);
	cconn = NULL;
	cconn_retry_ms = 0;
	pthread_mutex_unlock(&cmu);
	pw_runtime_unref(rt_ref);
	rt_ref = NULL;
}

/* ---- the control thread's calls ---- */

/* Run q on the control thread's connection (opened when needed and kept; a kept one found
 * lost is replaced once) and free its text. 0, or -1 with err set. */
static int ctl_exec(struct sql *q, pw_pgconn_row_fn fn, void *arg, char *err, size_t errlen)
{
	int rc = -1;
	pthread_mutex_lock(&cmu);
	for (int attempt = 0; attempt < 2 && !q->bad; attempt++) {
		bool kept = cconn != NULL;
		/* after a failed open, a dead server is not asked again at each call */
		if (!cconn && now_ms() < cconn_retry_ms) {
			pw_errf(err, errlen, "%s", cconn_err);
			break;
		}
		if (!cconn && !(cconn = open_conn(false, err, errlen))) {
			snprintf(cconn_err, sizeof(cconn_err), "%s", err);
			cconn_retry_ms = now_ms() + CALL_MS;
			break;
		}
		if ((rc = pw_pgconn_exec(cconn, q->p, fn, arg, err, errlen)) == 0 ||
		    pw_pgconn_ok(cconn))
			break;
		pw_pgconn_close(cconn);
		cconn = NULL;
		if (!kept)
			break;
	}
	pthread_mutex_unlock(&cmu);
	if (q->bad)
		pw_errf(err, errlen, "out of memory");
	free(q->p);
	*q = (struct sql){0}; /* ready for the next statement */
	return rc;
}

/* Run s for at most one row into row: 0 (filled), 2 (none), -1 (err set). */
static int ctl_row(struct sql *s, struct pw_approval_row *row, char *err, size_t errlen)
{
	struct pw_approval_row tmp;
	struct one o = {.r = &tmp};
	int rc = ctl_exec(s, one_row, &o, err, errlen) < 0 ? -1 : o.rows ? 0 : 2;
	if (rc == 0 && o.bad) {
		pw_errf(err, errlen, "the control database: an unexpected row");
		rc = -1;
	}
	if (rc == 0) {
		pw_approval_row_free(row);
		*row = tmp;
	}
	return rc;
}

static bool ready(char *err, size_t errlen)
{
	if (!pw_approval_db_on())
		pw_errf(err, errlen, "no control database is configured");
	return pw_approval_db_on();
}

static void mark_deciding(const char *id, int64_t until)
{
	pthread_mutex_lock(&dmu);
	snprintf(deciding, sizeof(deciding), "%s", id);
	deciding_until = until;
	pthread_mutex_unlock(&dmu);
}

static int decide(const char *id, enum pw_approval_state st, const char *by, long long uid,
                  enum pw_approval_scope scope, int for_s, const char *reason,
                  struct pw_approval_row *row, char *err, size_t errlen)
{
	/* a person's decision comes too late past the expiry (plus a grace for the clocks):
	 * the holding node times it out, or, when that node is gone, the row says so here */
	bool person = st == PW_AS_APPROVED || st == PW_AS_DENIED;
	struct sql s = {0};
	sq_raw(&s, "UPDATE @S.approvals ");
	sq_decided(&s, st, by, uid, scope, for_s, reason);
	sq_raw(&s, " WHERE id = ");
	sq_lit(&s, id, false);
	sq_raw(&s, " AND state = 'pending'");
	if (person)
		sq_raw(&s, " AND (expires IS NULL OR expires > now() - " GRACE ")");
	sq_raw(&s, " RETURNING " ROW_COLS ROW_JSON);
	int rc = ctl_row(&s, row, err, errlen);
	if (rc != 2)
		return rc;
	if (person) {
		sq_raw(&s, "UPDATE @S.approvals ");
		sq_decided(&s, PW_AS_TIMED_OUT, "pgwardd", -1, PW_SCOPE_ONCE, 0,
		           "nobody decided in time (its node did not say)");
		sq_raw(&s, " WHERE id = ");
		sq_lit(&s, id, false);
		sq_raw(&s, " AND state = 'pending' AND expires <= now() - " GRACE "; ");
	}
	sq_raw(&s, "SELECT " ROW_COLS ROW_JSON " FROM @S.approvals WHERE id = ");
	sq_lit(&s, id, false);
	rc = ctl_row(&s, row, err, errlen);
	return rc == 0 ? 1 : rc;
}

int pw_approval_db_decide(const char *id, enum pw_approval_state st, const char *by, long long uid,
                          enum pw_approval_scope scope, int for_s, const char *reason,
                          struct pw_approval_row *row, char *err, size_t errlen)
{
	if (!ready(err, errlen))
		return -1;
	if (st == PW_AS_PENDING) {
		pw_errf(err, errlen, "a decision cannot be \"pending\"");
		return -1;
	}
	mark_deciding(id, INT64_MAX);
	int rc = decide(id, st, by, uid, scope, for_s, reason, row, err, errlen);
	mark_deciding(id, now_ms() + POLL_MS);
	return rc;
}

int pw_approval_db_get(const char *id, struct pw_approval_row *row, char *err, size_t errlen)
{
	if (!ready(err, errlen))
		return -1;
	struct sql s = {0};
	sq_raw(&s, "SELECT " ROW_COLS ROW_JSON " FROM @S.approvals WHERE id = ");
	sq_lit(&s, id, false);
	return ctl_row(&s, row, err, errlen);
}

static void list_row(void *arg, int n, const char *const *v)
{
	if (n == 1 && v[0] && pw_utf8_valid(v[0], strlen(v[0]))) /* as row_parse */
		pw_jw_raw(arg, NULL, v[0], strlen(v[0]));
}

int pw_approval_db_list(struct pw_jw *w, bool all, char *err, size_t errlen)
{
	if (!ready(err, errlen))
		return -1;
	/* the newest LIST_MAX, shown oldest first as the node's own list is */
	struct sql s = {0};
	sq_raw(&s, "SELECT j FROM (SELECT " ROW_JSON " AS j, created, id FROM @S.approvals "
	           "WHERE node <> ");
	sq_lit(&s, node, false);
	if (!all) /* a pending row past its expiry: its node is gone or has not said yet */
		sq_raw(&s, " AND state = 'pending' AND (expires IS NULL OR expires > now())");
	sq_fmt(&s, " ORDER BY created DESC, id DESC LIMIT %d) t ORDER BY created, id", LIST_MAX);
	return ctl_exec(&s, list_row, w, err, errlen);
}
