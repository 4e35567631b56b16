/* Masking along a session's protocol: see include/pgward/mask_session.h.
 *
 * The server answers the client's messages in order, so what it owes is a queue: a Query's
 * statements, an Execute's portal, a Describe's statement or portal, a Sync. Each result
 * message is placed by the head of that queue: a RowDescription makes the columns of the
 * result that follows (or of the described statement or portal), DataRow and CopyData are
 * masked with them, CommandComplete and its kin move on, an error skips to the Sync, and
 * ReadyForQuery ends a Query or a Sync. */
#include "pgward/mask_session.h"

#include <stdlib.h>
#include <string.h>

#include "pgward/detect.h"
#include "pgward/proto.h"

#define MAX_QUEUE 65536 /* answers owed at once: a pipeline deeper than that is refused */
#define MAX_NAMES 1024  /* statements, portals, cursors, prepared statements: each */

/* A described result: per column, what RowDescription said (or nothing yet). */
struct cols {
	int n;
	struct pw_mask_col *c;
};

/* A prepared statement (protocol Parse or SQL PREPARE: the server keeps them together) or a
 * portal (protocol Bind or SQL DECLARE: likewise), as the server has confirmed it. */
struct named {
	struct named *next;
	char name[PW_SQL_NAMELEN];
	struct pw_mask_plan *plan;
	struct cols described; /* a Describe's RowDescription (portal: with its formats) */
	int nfmt;              /* portal: the Bind's result formats */
	int16_t *fmt;
	bool hold; /* a cursor WITH HOLD: it outlives its transaction */
};

struct names {
	struct named *head;
	int n;
};

enum ekind { E_QUERY, E_PARSE, E_BIND, E_DESCRIBE_S, E_DESCRIBE_P, E_EXECUTE, E_CLOSE, E_SYNC };

/* An answer the server owes. Names are looked up when the answer comes, so that they read
 * what the server has by then (a Bind pipelined after its Parse, a FETCH after its DECLARE). */
struct entry {
	uint8_t kind;
	int cur, n;                  /* E_QUERY: the statement whose answer comes, of n */
	struct pw_mask_plan **plans; /* E_QUERY: n plans (references) */
	struct pw_mask_plan *plan;   /* E_PARSE: the statement's */
	char name[PW_SQL_NAMELEN];   /* statement or portal; E_BIND: the portal */
	char stmt[PW_SQL_NAMELEN];   /* E_BIND: its statement */
	uint8_t what;                /* E_CLOSE: 'S' or 'P' */
	int nfmt;                    /* E_BIND: result formats */
	int16_t *fmt;
	struct named *obj; /* E_EXECUTE: the portal as it was when its answer began (a copy) */
};

struct pw_mask_session {
	struct pw_mask_scope sc;
	struct pw_mask_detectors det;
	struct pw_mask_ctx ctx;
	struct entry *q;
	size_t qhead, qlen, qcap; /* a ring */
	struct names stmts, portals;
	struct pw_mask_plan *opaque; /* for what pgward did not see made: every column masked */
	/* the result being sent */
	bool active;
	struct cols cur;
	bool copy;
	struct pw_copy_fmt fmt;
	struct pw_copy_state cst;
	struct pw_mask_out out;
	uint64_t rows, cells;
};

/* ---- names ------------------------------------------------------------------------------- */

static void named_free(struct named *o)
{
	if (!o)
		return;
	pw_mask_plan_unref(o->plan);
	free(o->described.c);
	free(o->fmt);
	free(o);
}

static struct named *find(struct names *ns, const char *name)
{
	for (struct named *o = ns->head; o; o = o->next)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

static void forget(struct names *ns, const char *name)
{
	for (struct named **pp = &ns->head; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			struct named *o = *pp;
			*pp = o->next;
			ns->n--;
			named_free(o);
			return;
		}
}

/* Every one, or (portals at a transaction's end) every one not held. */
static void forget_all(struct names *ns, bool keep_held)
{
	for (struct named **pp = &ns->head; *pp;) {
		struct named *o = *pp;
		if (keep_held && o->hold) {
			pp = &o->next;
			continue;
		}
		*pp = o->next;
		ns->n--;
		named_free(o);
	}
}

/* name gets plan (a new reference is taken); the old one of that name goes. */
static struct named *put(struct names *ns, const char *name, struct pw_mask_plan *plan,
                         struct pw_deny *d)
{
	struct pw_mask_plan *keep = pw_mask_plan_ref(plan); /* plan may be the old one's */
	forget(ns, name);
	struct named *o = ns->n < MAX_NAMES ? calloc(1, sizeof(*o)) : NULL;
	if (!o) {
		pw_mask_plan_unref(keep);
		if (ns->n >= MAX_NAMES)
			pw_deny_set(
			    d, "54000",
			    "pgward: more than %d prepared statements or portals in one masked "
			    "session",
			    MAX_NAMES);
		else
			pw_deny_set(d, "53200", "pgward: out of memory");
		return NULL;
	}
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->plan = keep;
	o->next = ns->head;
	ns->head = o;
	ns->n++;
	return o;
}

/* Does a live statement or portal read masked data? */
static bool holds_masked(const struct names *ns)
{
	for (const struct named *o = ns->head; o; o = o->next)
		if (!o->plan || o->plan->touches || !o->plan->mapped)
			return true;
	return false;
}

/* A copy of o for an answer still owed (o may be closed or replaced meanwhile). */
static struct named *snapshot(const struct named *o)
{
	struct named *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", o->name);
	c->plan = pw_mask_plan_ref(o->plan);
	if (o->described.n &&
	    (c->described.c = malloc((size_t)o->described.n * sizeof(*c->described.c)))) {
		memcpy(c->described.c, o->described.c,
		       (size_t)o->described.n * sizeof(*c->described.c));
		c->described.n = o->described.n;
	}
	if (o->nfmt && (c->fmt = malloc((size_t)o->nfmt * sizeof(*c->fmt)))) {
		memcpy(c->fmt, o->fmt, (size_t)o->nfmt * sizeof(*c->fmt));
		c->nfmt = o->nfmt;
	}
	return c;
}

/* What rows of plan p are masked by: for FETCH and EXECUTE, the cursor's or prepared
 * statement's plan as the server has it now (one pgward did not see made: all masked). */
static const struct pw_mask_plan *resolved(struct pw_mask_session *ms, const struct pw_mask_plan *p)
{
	if (!p)
		return ms->opaque;
	if (p->fetches[0] || p->executes[0]) {
		const struct named *o =
		    p->fetches[0] ? find(&ms->portals, p->fetches) : find(&ms->stmts, p->executes);
		return o && o->plan && !o->plan->fetches[0] && !o->plan->executes[0] ? o->plan
		                                                                     : ms->opaque;
	}
	return p;
}

/* A statement of plan p completed: the names it made or dropped, as the server did. */
static int completed(struct pw_mask_session *ms, struct pw_mask_plan *p, struct pw_deny *d)
{
	if (!p)
		return 0;
	if (p->close_all)
		forget_all(&ms->portals, false);
	if (p->deallocate_all)
		forget_all(&ms->stmts, false);
	if (p->closes[0])
		forget(&ms->portals, p->closes);
	if (p->deallocates[0])
		forget(&ms->stmts, p->deallocates);
	if (p->declares[0]) {
		struct named *o = put(&ms->portals, p->declares, p, d);
		if (!o)
			return -1;
		o->hold = p->hold;
	}
	if (p->prepares[0] && !put(&ms->stmts, p->prepares, p, d))
		return -1;
	return 0;
}

/* ---- the queue of answers owed ------------------------------------------------------------ */

static struct entry *head(struct pw_mask_session *ms)
{
	return ms->qlen ? &ms->q[ms->qhead] : NULL;
}

static void entry_free(struct entry *e)
{
	for (int i = 0; i < e->n; i++)
		pw_mask_plan_unref(e->plans[i]);
	free(e->plans);
	pw_mask_plan_unref(e->plan);
	free(e->fmt);
	named_free(e->obj);
	memset(e, 0, sizeof(*e));
}

static void pop(struct pw_mask_session *ms)
{
	if (!ms->qlen)
		return;
	entry_free(&ms->q[ms->qhead]);
	ms->qhead = (ms->qhead + 1) % ms->qcap;
	ms->qlen--;
	ms->active = false;
}

static int push(struct pw_mask_session *ms, struct entry *e, struct pw_deny *d)
{
	if (ms->qlen == ms->qcap) {
		struct entry *q = NULL;
		size_t cap = ms->qcap ? 2 * ms->qcap : 64;
		if (ms->qcap < MAX_QUEUE)
			q = calloc(cap, sizeof(*q));
		if (!q) {
			entry_free(e);
			return ms->qcap >= MAX_QUEUE
			           ? pw_deny_set(
			                 d, "54000",
			                 "pgward: more than %d messages pipelined in a masked "
			                 "session",
			                 MAX_QUEUE)
			           : pw_deny_set(d, "53200", "pgward: out of memory");
		}
		for (size_t i = 0; i < ms->qlen; i++)
			q[i] = ms->q[(ms->qhead + i) % ms->qcap];
		free(ms->q);
		ms->q = q;
		ms->qhead = 0;
		ms->qcap = cap;
	}
	ms->q[(ms->qhead + ms->qlen) % ms->qcap] = *e;
	ms->qlen++;
	return 0;
}

/* ---- the client's messages ---------------------------------------------------------------- */

struct pw_mask_session *pw_mask_session_new(const struct pw_mask_scope *sc)
{
	struct pw_mask_session *ms = calloc(1, sizeof(*ms));
	if (!ms || !(ms->opaque = pw_mask_plan_opaque())) {
		free(ms);
		return NULL;
	}
	ms->sc = *sc;
	pw_mask_detectors(sc->id, &ms->det);
	ms->ctx.key = sc->cfg->mask_key.len ? &sc->cfg->mask_key : NULL;
	ms->ctx.det = &ms->det;
	return ms;
}

void pw_mask_session_free(struct pw_mask_session *ms)
{
	if (!ms)
		return;
	while (ms->qlen)
		pop(ms);
	free(ms->q);
	forget_all(&ms->stmts, false);
	forget_all(&ms->portals, false);
	pw_mask_plan_unref(ms->opaque);
	free(ms->cur.c);
	pw_mask_out_free(&ms->out);
	free(ms);
}

int pw_mask_on_query(struct pw_mask_session *ms, struct pw_inspect_plans *plans, struct pw_deny *d)
{
	struct entry e = {.kind = E_QUERY};
	int n = plans ? plans->n : 0;
	if (n && !(e.plans = calloc((size_t)n, sizeof(*e.plans)))) {
		pw_inspect_plans_free(plans);
		return pw_deny_set(d, "53200", "pgward: out of memory");
	}
	for (int i = 0; i < n; i++) /* taken: the plans are the entry's now */
		e.plans[i] = plans->p[i];
	e.n = n;
	if (plans)
		plans->n = 0;
	return push(ms, &e, d);
}

int pw_mask_on_parse(struct pw_mask_session *ms, const char *name, struct pw_inspect_plans *plans,
                     struct pw_deny *d)
{
	/* one statement per Parse (more is the server's error): its plan, or none known */
	struct entry e = {.kind = E_PARSE};
	snprintf(e.name, sizeof(e.name), "%s", name);
	if (plans && plans->n == 1) {
		e.plan = plans->p[0];
		plans->n = 0;
	}
	pw_inspect_plans_free(plans);
	return push(ms, &e, d);
}

static int16_t be16(const uint8_t *p)
{
	return (int16_t)(p[0] << 8 | p[1]);
}

/* Bind: portal, statement, parameter formats and values, result formats. */
int pw_mask_on_bind(struct pw_mask_session *ms, const uint8_t *body, size_t len, struct pw_deny *d)
{
	const uint8_t *p = body, *end = body + len;
	const uint8_t *z1 = memchr(p, 0, len),
	              *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
	if (!z2 || end - z2 - 1 < 2)
		return pw_deny_set(d, "08P01", "invalid Bind message");
	p = z2 + 1;
	int nf = be16(p);
	p += 2;
	if (nf < 0 || end - p < 2 * nf + 2)
		return pw_deny_set(d, "08P01", "invalid Bind message");
	p += 2 * nf;
	int np = be16(p);
	p += 2;
	for (int i = 0; i < np; i++) {
		if (end - p < 4)
			return pw_deny_set(d, "08P01", "invalid Bind message");
		int32_t l = (int32_t)pw_be32(p);
		p += 4;
		if (l > 0 && end - p < l)
			return pw_deny_set(d, "08P01", "invalid Bind message");
		if (l > 0)
			p += l;
	}
	if (end - p < 2)
		return pw_deny_set(d, "08P01", "invalid Bind message");
	int nr = be16(p);
	p += 2;
	if (nr < 0 || end - p < 2 * nr)
		return pw_deny_set(d, "08P01", "invalid Bind message");
	struct entry e = {.kind = E_BIND, .nfmt = nr};
	snprintf(e.name, sizeof(e.name), "%s", (const char *)body);
	snprintf(e.stmt, sizeof(e.stmt), "%s", (const char *)z1 + 1);
	if (nr && !(e.fmt = malloc((size_t)nr * sizeof(*e.fmt))))
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < nr; i++)
		e.fmt[i] = be16(p + 2 * i);
	return push(ms, &e, d);
}

int pw_mask_on_client(struct pw_mask_session *ms, const uint8_t *msg, size_t len, struct pw_deny *d)
{
	struct entry e = {0};
	if (msg[0] == 'S') {
		e.kind = E_SYNC;
		return push(ms, &e, d);
	}
	if (msg[0] != 'D' && msg[0] != 'C' && msg[0] != 'E')
		return 0;
	const uint8_t *name = msg + (msg[0] == 'E' ? 5 : 6);
	if (len < (size_t)(name - msg) + 1 || !memchr(name, 0, len - (size_t)(name - msg)))
		return pw_deny_set(d, "08P01", "invalid %s message",
		                   msg[0] == 'D'   ? "Describe"
		                   : msg[0] == 'C' ? "Close"
		                                   : "Execute");
	snprintf(e.name, sizeof(e.name), "%s", (const char *)name);
	e.what = msg[0] == 'E' ? 'P' : msg[5];
	e.kind = msg[0] == 'E'   ? E_EXECUTE
	         : msg[0] == 'C' ? E_CLOSE
	         : e.what == 'S' ? E_DESCRIBE_S
	                         : E_DESCRIBE_P;
	return push(ms, &e, d);
}

/* ---- the server's messages ---------------------------------------------------------------- */

static int16_t fmt_of(const struct named *o, int i)
{
	if (!o || !o->nfmt)
		return 0;
	return o->nfmt == 1 ? o->fmt[0] : i < o->nfmt ? o->fmt[i] : 0;
}

/* RowDescription into cols under plan p (formats from the message, or from the portal). */
static int described(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                     const struct pw_mask_plan *p, const struct named *portal, struct cols *out,
                     struct pw_deny *d)
{
	const uint8_t *q = msg + 5, *end = msg + len;
	if (end - q < 2)
		return pw_deny_set(d, "08P01", "pgward: malformed RowDescription from the server");
	int n = be16(q);
	q += 2;
	if (n < 0)
		return pw_deny_set(d, "08P01", "pgward: malformed RowDescription from the server");
	struct pw_mask_col *c = n ? calloc((size_t)n, sizeof(*c)) : NULL;
	if (n && !c)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < n; i++) {
		const uint8_t *z = memchr(q, 0, (size_t)(end - q));
		if (!z || end - z - 1 < 18) {
			free(c);
			return pw_deny_set(d, "08P01",
			                   "pgward: malformed RowDescription from the server");
		}
		q = z + 1;
		uint32_t table = pw_be32(q), type = pw_be32(q + 6);
		int16_t att = be16(q + 4), f = be16(q + 16);
		if (portal)
			f = fmt_of(portal, i);
		pw_mask_column(&ms->sc, p, i, n, table, att, type, f, &c[i]);
		q += 18;
	}
	free(out->c);
	out->c = c;
	out->n = n;
	return 0;
}

/* The columns of an Execute's rows when no RowDescription was asked for: the plan's. */
static int planned(struct pw_mask_session *ms, const struct named *o, int n, struct cols *out,
                   struct pw_deny *d)
{
	const struct pw_mask_plan *p = resolved(ms, o->plan);
	struct pw_mask_col *c = n ? calloc((size_t)n, sizeof(*c)) : NULL;
	if (n && !c)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < n; i++) {
		uint32_t type = o->described.n == n ? o->described.c[i].type_oid : 0;
		if (!type && p->mapped && p->n == n)
			type = p->cols[i].type;
		pw_mask_column(&ms->sc, p, i, n, 0, 0, type, fmt_of(o, i), &c[i]);
	}
	free(out->c);
	out->c = c;
	out->n = n;
	return 0;
}

/* The portal an Execute's answer is about, as the server had it when the answer began. */
static struct named *executing(struct pw_mask_session *ms, struct entry *e)
{
	if (!e->obj) {
		const struct named *o = find(&ms->portals, e->name);
		struct named blank = {.plan = ms->opaque};
		e->obj = snapshot(o ? o : &blank);
	}
	return e->obj;
}

static const struct pw_mask_plan *current_plan(struct pw_mask_session *ms)
{
	struct entry *e = head(ms);
	if (!e)
		return ms->opaque;
	if (e->kind == E_QUERY)
		return resolved(ms, e->cur < e->n ? e->plans[e->cur] : NULL);
	if (e->kind == E_EXECUTE) {
		struct named *o = executing(ms, e);
		return o ? resolved(ms, o->plan) : ms->opaque;
	}
	return ms->opaque;
}

static int badly(struct pw_deny *d, const char *what)
{
	return pw_deny_set(d, "XX000",
	                   "pgward: masking lost its place in the protocol (%s): the session "
	                   "ends rather than show a value",
	                   what);
}

static int wire(int rc, struct pw_mask_session *ms, const uint8_t **out, size_t *outlen,
                struct pw_deny *d, const char *what)
{
	if (rc == PW_MASK_CHANGED) {
		*out = ms->out.data;
		*outlen = ms->out.len;
		ms->rows++;
		return 1;
	}
	if (rc == PW_MASK_SAME)
		return 0;
	if (rc == PW_MASK_NOMEM)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	return pw_deny_set(d, "XX000",
	                   "pgward: a %s could not be masked: the session ends rather than show it",
	                   what);
}

/* NotificationResponse: a payload with a detector's match is withheld. */
static int notification(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                        const uint8_t **out, size_t *outlen, struct pw_deny *d)
{
	const uint8_t *ch = msg + 9, *end = msg + len;
	const uint8_t *z = len > 9 ? memchr(ch, 0, (size_t)(end - ch)) : NULL;
	const uint8_t *pl = z ? z + 1 : NULL;
	const uint8_t *z2 = pl && pl < end ? memchr(pl, 0, (size_t)(end - pl)) : NULL;
	if (!z2)
		return pw_deny_set(d, "08P01", "pgward: malformed NotificationResponse");
	struct pw_detect_match m;
	if (!pw_detect_next(pl, (size_t)(z2 - pl), 0, PW_DET_ALL, &m))
		return 0;
	static const char red[] = "[redacted]";
	size_t n = (size_t)(pl - msg) + sizeof(red);
	if (ms->out.cap < n) {
		uint8_t *b = realloc(ms->out.data, n);
		if (!b)
			return pw_deny_set(d, "53200", "pgward: out of memory");
		ms->out.data = b;
		ms->out.cap = n;
	}
	memcpy(ms->out.data, msg, (size_t)(pl - msg));
	memcpy(ms->out.data + (pl - msg), red, sizeof(red));
	pw_put_be32(ms->out.data + 1, (uint32_t)(n - 1));
	ms->out.len = n;
	*out = ms->out.data;
	*outlen = n;
	return 1;
}

/* CopyOutResponse: the rows that follow are CopyData in the statement's format. */
static int copy_out(struct pw_mask_session *ms, const uint8_t *msg, size_t len, struct pw_deny *d)
{
	struct entry *e = head(ms);
	if (!e || (e->kind != E_QUERY && e->kind != E_EXECUTE))
		return badly(d, "a COPY no statement was owed");
	const struct pw_mask_plan *p = current_plan(ms);
	if (len < 8)
		return pw_deny_set(d, "08P01", "pgward: malformed CopyOutResponse");
	int n = be16(msg + 6);
	if (n < 0 || len < 8 + 2 * (size_t)n)
		return pw_deny_set(d, "08P01", "pgward: malformed CopyOutResponse");
	if (!p->copy)
		return badly(d, "a COPY from a statement that is not one");
	ms->fmt = p->fmt;
	if ((msg[5] == 1) != (ms->fmt.kind == PW_COPY_BINARY))
		return badly(d, "a COPY in another format than its statement says");
	struct pw_mask_col *c = n ? calloc((size_t)n, sizeof(*c)) : NULL;
	if (n && !c)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < n; i++)
		pw_mask_column(&ms->sc, p, i, n, 0, 0, p->mapped && p->n == n ? p->cols[i].type : 0,
		               msg[5], &c[i]);
	free(ms->cur.c);
	ms->cur.c = c;
	ms->cur.n = n;
	ms->copy = true;
	memset(&ms->cst, 0, sizeof(ms->cst));
	return 0;
}

/* ReadyForQuery: a Query or a Sync is answered, and what was owed before it is not; outside a
 * transaction, the portals and cursors not held are gone. */
static void ready(struct pw_mask_session *ms, const uint8_t *msg, size_t len)
{
	while (ms->qlen) {
		uint8_t k = head(ms)->kind;
		pop(ms);
		if (k == E_QUERY || k == E_SYNC)
			break;
	}
	ms->active = ms->copy = false;
	if (len >= 6 && msg[5] == 'I')
		forget_all(&ms->portals, true);
}

/* An error: a Query's later statements do not run; an extended group is skipped to Sync. */
static void failed(struct pw_mask_session *ms)
{
	struct entry *e = head(ms);
	ms->active = ms->copy = false;
	if (e && e->kind == E_QUERY) {
		e->cur = e->n;
		return;
	}
	while (ms->qlen && head(ms)->kind != E_SYNC)
		pop(ms);
}

static int rows_of(struct pw_mask_session *ms, const uint8_t *msg, size_t len, const uint8_t **out,
                   size_t *outlen, struct pw_deny *d)
{
	struct entry *e = head(ms);
	if (!e || (e->kind != E_QUERY && e->kind != E_EXECUTE) || ms->copy)
		return badly(d, "a row no statement was owed");
	if (!ms->active) {
		if (e->kind == E_QUERY)
			return badly(d, "a row before its RowDescription");
		if (len < 7)
			return pw_deny_set(d, "08P01", "pgward: malformed DataRow");
		struct named *o = executing(ms, e);
		if (!o)
			return pw_deny_set(d, "53200", "pgward: out of memory");
		if (planned(ms, o, o->described.n ? o->described.n : be16(msg + 5), &ms->cur, d) <
		    0)
			return -1;
		ms->active = true;
	}
	int rc = pw_mask_datarow(ms->cur.c, ms->cur.n, &ms->ctx, msg, len, &ms->out);
	return wire(rc, ms, out, outlen, d, "row");
}

/* The confirmations of Parse, Bind and Close: what the server now has. */
static int confirmed(struct pw_mask_session *ms, uint8_t type, struct pw_deny *d)
{
	struct entry *e = head(ms);
	uint8_t want = type == '1' ? E_PARSE : type == '2' ? E_BIND : E_CLOSE;
	if (!e || e->kind != want)
		return badly(d, "a confirmation no message was owed");
	struct named *o;
	if (type == '1') {
		if (!put(&ms->stmts, e->name, e->plan ? e->plan : ms->opaque, d))
			return -1;
	} else if (type == '2') {
		/* the statement's plan and described types; the Bind's formats */
		const struct named *st = find(&ms->stmts, e->stmt);
		if (!(o = put(&ms->portals, e->name, st ? st->plan : ms->opaque, d)))
			return -1;
		if (st && st->described.n &&
		    (o->described.c = malloc((size_t)st->described.n * sizeof(*o->described.c)))) {
			memcpy(o->described.c, st->described.c,
			       (size_t)st->described.n * sizeof(*o->described.c));
			o->described.n = st->described.n;
		}
		o->fmt = e->fmt;
		o->nfmt = e->nfmt;
		e->fmt = NULL;
	} else {
		forget(e->what == 'S' ? &ms->stmts : &ms->portals, e->name);
	}
	pop(ms);
	return 0;
}

/* A RowDescription: of the rows that follow, or of a described statement or portal. */
static int row_description(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                           struct pw_deny *d)
{
	struct entry *e = head(ms);
	if (e && e->kind == E_QUERY) {
		if (described(ms, msg, len, current_plan(ms), NULL, &ms->cur, d) < 0)
			return -1;
		ms->active = true;
		return 0;
	}
	if (!e || (e->kind != E_DESCRIBE_S && e->kind != E_DESCRIBE_P))
		return badly(d, "a RowDescription no statement was owed");
	bool portal = e->kind == E_DESCRIBE_P;
	struct named *o = find(portal ? &ms->portals : &ms->stmts, e->name);
	/* what is kept: the types and origins (a portal's with its formats) */
	if (o &&
	    described(ms, msg, len, resolved(ms, o->plan), portal ? o : NULL, &o->described, d) < 0)
		return -1;
	pop(ms);
	return 0;
}

/* CommandComplete and its kin: a statement's answer is over. */
static int statement_done(struct pw_mask_session *ms, uint8_t type, struct pw_deny *d)
{
	struct entry *e = head(ms);
	int rc = 0;
	ms->active = ms->copy = false;
	if (e && e->kind == E_QUERY) {
		if (type == 'C' && e->cur < e->n)
			rc = completed(ms, e->plans[e->cur], d);
		e->cur++;
	} else if (e && e->kind == E_EXECUTE) {
		struct named *o = executing(ms, e);
		if (type == 'C' && o)
			rc = completed(ms, o->plan, d);
		pop(ms);
	} else {
		rc = badly(d, "a command's end no statement was owed");
	}
	return rc;
}

int pw_mask_upstream(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                     const uint8_t **out, size_t *outlen, struct pw_deny *d)
{
	struct entry *e = head(ms);
	switch (msg[0]) {
	case 'T':
		return row_description(ms, msg, len, d);
	case 'n':
		if (e && (e->kind == E_DESCRIBE_S || e->kind == E_DESCRIBE_P))
			pop(ms);
		return 0;
	case '1':
	case '2':
	case '3':
		return confirmed(ms, msg[0], d);
	case 'D':
		return rows_of(ms, msg, len, out, outlen, d);
	case 'H':
		return copy_out(ms, msg, len, d);
	case 'd':
		if (!ms->copy)
			return badly(d, "COPY data outside a COPY");
		return wire(pw_mask_copydata(ms->cur.c, ms->cur.n, &ms->fmt, &ms->cst, &ms->ctx,
		                             msg, len, &ms->out),
		            ms, out, outlen, d, "COPY row");
	case 'W':
		return badly(d, "COPY BOTH");
	case 'C':
	case 'I':
	case 's':
		if (msg[0] == 's' && (!e || e->kind != E_EXECUTE))
			return badly(d, "a PortalSuspended no Execute was owed");
		return statement_done(ms, msg[0], d);
	case 'E':
	case 'N': {
		const struct pw_mask_plan *p = current_plan(ms);
		/* an error of no statement pgward planned (a Parse's, say), or raised while a
		 * cursor or prepared statement that reads masked data lives (a WITH HOLD cursor
		 * runs at COMMIT, MOVE runs its cursor): scrubbed hard */
		bool tainted = p->touches || !p->mapped || holds_masked(&ms->portals) ||
		               holds_masked(&ms->stmts);
		int rc = wire(pw_mask_scrub_notice(msg, len, tainted, &ms->ctx, &ms->out), ms, out,
		              outlen, d, "error message");
		if (rc >= 0 && msg[0] == 'E')
			failed(ms);
		if (rc > 0)
			ms->rows--; /* not a row */
		return rc;
	}
	case 'A':
		return notification(ms, msg, len, out, outlen, d);
	case 'Z':
		ready(ms, msg, len);
		return 0;
	default:
		return 0;
	}
}

void pw_mask_session_counts(const struct pw_mask_session *ms, uint64_t *rows, uint64_t *cells)
{
	*rows = ms->rows;
	*cells = ms->cells;
}
