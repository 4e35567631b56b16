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

/* A protocol statement or portal, an SQL cursor or prepared statement. */
struct named {
	struct named *next;
	char name[PW_SQL_NAMELEN];
	struct pw_mask_plan *plan;
	struct cols described; /* a Describe's RowDescription (portal: with its formats) */
	int nfmt;              /* portal: the Bind's result formats */
	int16_t *fmt;
};

struct names {
	struct named *head;
	int n;
};

enum ekind { E_QUERY, E_EXECUTE, E_DESCRIBE_S, E_DESCRIBE_P, E_SYNC };

struct entry {
	uint8_t kind;
	int cur, n;                  /* E_QUERY: the statement whose answer comes, of n */
	struct pw_mask_plan **plans; /* E_QUERY: n plans (references) */
	struct named *obj;           /* E_EXECUTE, E_DESCRIBE_*: the portal or statement (owned by
	                              * the maps: a Close before the answer leaves a copy here) */
};

struct pw_mask_session {
	struct pw_mask_scope sc;
	struct pw_mask_detectors det;
	struct pw_mask_ctx ctx;
	struct entry *q;
	size_t qhead, qlen, qcap; /* a ring */
	struct names stmts, portals, cursors, prepared;
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

static void forget_all(struct names *ns)
{
	while (ns->head) {
		struct named *o = ns->head;
		ns->head = o->next;
		named_free(o);
	}
	ns->n = 0;
}

/* name gets plan (a new reference is taken); the old one of that name goes. */
static struct named *put(struct names *ns, const char *name, struct pw_mask_plan *plan,
                         struct pw_deny *d)
{
	forget(ns, name);
	if (ns->n >= MAX_NAMES) {
		pw_deny_set(d, "54000",
		            "pgward: more than %d named statements, portals or cursors "
		            "in one masked session",
		            MAX_NAMES);
		return NULL;
	}
	struct named *o = calloc(1, sizeof(*o));
	if (!o) {
		pw_deny_set(d, "53200", "pgward: out of memory");
		return NULL;
	}
	snprintf(o->name, sizeof(o->name), "%s", name);
	o->plan = pw_mask_plan_ref(plan);
	o->next = ns->head;
	ns->head = o;
	ns->n++;
	return o;
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

static int push(struct pw_mask_session *ms, const struct entry *e, struct pw_deny *d)
{
	if (ms->qlen == ms->qcap) {
		if (ms->qcap >= MAX_QUEUE)
			return pw_deny_set(
			    d, "54000",
			    "pgward: more than %d messages pipelined in a masked session",
			    MAX_QUEUE);
		size_t cap = ms->qcap ? 2 * ms->qcap : 64;
		struct entry *q = calloc(cap, sizeof(*q));
		if (!q)
			return pw_deny_set(d, "53200", "pgward: out of memory");
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
	if (!ms)
		return NULL;
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
	forget_all(&ms->stmts);
	forget_all(&ms->portals);
	forget_all(&ms->cursors);
	forget_all(&ms->prepared);
	free(ms->cur.c);
	pw_mask_out_free(&ms->out);
	free(ms);
}

/* What a statement's rows are masked by: the cursor's or prepared statement's plan for FETCH
 * and EXECUTE (one pgward did not see made is masked whole); DECLARE and PREPARE remember
 * theirs. A new reference. */
static struct pw_mask_plan *resolve(struct pw_mask_session *ms, struct pw_mask_plan *p,
                                    struct pw_deny *d, int *rc)
{
	*rc = 0;
	if (!p)
		return pw_mask_plan_opaque();
	if (p->declares[0] && !put(&ms->cursors, p->declares, p, d))
		*rc = -1;
	if (p->prepares[0] && !put(&ms->prepared, p->prepares, p, d))
		*rc = -1;
	if (p->fetches[0] || p->executes[0]) {
		struct named *o = p->fetches[0] ? find(&ms->cursors, p->fetches)
		                                : find(&ms->prepared, p->executes);
		return o ? resolve(ms, o->plan, d, rc) : pw_mask_plan_opaque();
	}
	return pw_mask_plan_ref(p);
}

int pw_mask_on_query(struct pw_mask_session *ms, struct pw_inspect_plans *plans, struct pw_deny *d)
{
	struct entry e = {.kind = E_QUERY};
	int n = plans ? plans->n : 0, rc = 0;
	if (n && !(e.plans = calloc((size_t)n, sizeof(*e.plans))))
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < n && rc == 0; i++) {
		e.plans[i] = resolve(ms, plans->p[i], d, &rc);
		e.n = i + 1;
		if (!e.plans[i] && rc == 0)
			rc = pw_deny_set(d, "53200", "pgward: out of memory");
	}
	pw_inspect_plans_free(plans);
	if (rc == 0 && push(ms, &e, d) == 0)
		return 0;
	entry_free(&e);
	return -1;
}

int pw_mask_on_parse(struct pw_mask_session *ms, const char *name, struct pw_inspect_plans *plans,
                     struct pw_deny *d)
{
	/* one statement per Parse (more is the server's error): its plan, or none known */
	struct pw_mask_plan *p = plans && plans->n == 1 ? plans->p[0] : NULL;
	struct named *o = put(&ms->stmts, name, p, d);
	pw_inspect_plans_free(plans);
	if (o && !o->plan && !(o->plan = pw_mask_plan_opaque()))
		return pw_deny_set(d, "53200", "pgward: out of memory");
	return o ? 0 : -1;
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
	if (!z2)
		return pw_deny_set(d, "08P01", "invalid Bind message");
	const char *portal = (const char *)p, *stmt = (const char *)z1 + 1;
	p = z2 + 1;
	if (end - p < 2)
		return pw_deny_set(d, "08P01", "invalid Bind message");
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
	struct named *s = find(&ms->stmts, stmt);
	int rc;
	/* a statement pgward did not see parsed (the server refuses the Bind): masked whole */
	struct pw_mask_plan *plan = resolve(ms, s ? s->plan : NULL, d, &rc);
	if (!plan)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	struct named *o = rc == 0 ? put(&ms->portals, portal, plan, d) : NULL;
	pw_mask_plan_unref(plan);
	if (!o)
		return -1;
	if (nr && !(o->fmt = malloc((size_t)nr * sizeof(*o->fmt))))
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < nr; i++)
		o->fmt[i] = be16(p + 2 * i);
	o->nfmt = nr;
	return 0;
}

int pw_mask_on_client(struct pw_mask_session *ms, const uint8_t *msg, size_t len, struct pw_deny *d)
{
	const char *name = len > 6 ? (const char *)msg + 6 : "";
	if ((msg[0] == 'D' || msg[0] == 'C') && (len < 7 || msg[len - 1] != 0))
		return pw_deny_set(d, "08P01", "invalid %s message",
		                   msg[0] == 'D' ? "Describe" : "Close");
	if (msg[0] == 'E' && (len < 10 || !memchr(msg + 5, 0, len - 5)))
		return pw_deny_set(d, "08P01", "invalid Execute message");
	struct entry e = {0};
	switch (msg[0]) {
	case 'S':
		e.kind = E_SYNC;
		return push(ms, &e, d);
	case 'C':
		forget(msg[5] == 'S' ? &ms->stmts : &ms->portals, name);
		return 0;
	case 'D':
	case 'E': {
		bool stmt = msg[0] == 'D' && msg[5] == 'S';
		const char *n = msg[0] == 'E' ? (const char *)msg + 5 : name;
		struct named *o = find(stmt ? &ms->stmts : &ms->portals, n);
		/* unknown: the server answers with an error; should rows come, nothing shows */
		struct named blank = {0};
		if (!o) {
			blank.plan = pw_mask_plan_opaque();
			o = &blank;
		}
		e.kind = msg[0] == 'E' ? E_EXECUTE : stmt ? E_DESCRIBE_S : E_DESCRIBE_P;
		e.obj = snapshot(o);
		pw_mask_plan_unref(blank.plan);
		if (!e.obj || !e.obj->plan)
			return pw_deny_set(d, "53200", "pgward: out of memory");
		if (msg[0] == 'E' && o->plan && o->plan->declares[0]) {
			int rc;
			pw_mask_plan_unref(resolve(ms, o->plan, d, &rc));
			if (rc < 0)
				return -1;
		}
		if (push(ms, &e, d) == 0)
			return 0;
		entry_free(&e);
		return -1;
	}
	}
	return 0;
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
	struct pw_mask_col *c = n ? calloc((size_t)n, sizeof(*c)) : NULL;
	if (n && !c)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < n; i++) {
		uint32_t type = o->described.n == n ? o->described.c[i].type_oid : 0;
		pw_mask_column(&ms->sc, o->plan, i, n, 0, 0, type, fmt_of(o, i), &c[i]);
		if (!type && o->plan && o->plan->mapped && o->plan->n == n)
			c[i].type_oid = o->plan->cols[i].type;
	}
	free(out->c);
	out->c = c;
	out->n = n;
	return 0;
}

static const struct pw_mask_plan *current_plan(struct pw_mask_session *ms)
{
	struct entry *e = head(ms);
	if (!e)
		return NULL;
	if (e->kind == E_QUERY)
		return e->cur < e->n ? e->plans[e->cur] : NULL;
	return e->obj ? e->obj->plan : NULL;
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
	                   "pgward: a %s could not be masked: the session ends rather "
	                   "than show it",
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
	const struct pw_mask_plan *p = current_plan(ms);
	if (len < 8)
		return pw_deny_set(d, "08P01", "pgward: malformed CopyOutResponse");
	int n = be16(msg + 6);
	if (n < 0 || len < 8 + 2 * (size_t)n)
		return pw_deny_set(d, "08P01", "pgward: malformed CopyOutResponse");
	if (p && p->copy)
		ms->fmt = p->fmt;
	else
		pw_copy_fmt_default(&ms->fmt, PW_COPY_TEXT);
	if (msg[5] == 1)
		ms->fmt.kind = PW_COPY_BINARY;
	else if (ms->fmt.kind == PW_COPY_BINARY)
		return badly(d, "a COPY said binary and sent text");
	struct pw_mask_col *c = n ? calloc((size_t)n, sizeof(*c)) : NULL;
	if (n && !c)
		return pw_deny_set(d, "53200", "pgward: out of memory");
	for (int i = 0; i < n; i++) {
		pw_mask_column(&ms->sc, p, i, n, 0, 0, 0, msg[5], &c[i]);
		if (p && p->mapped && p->n == n)
			c[i].type_oid = p->cols[i].type;
	}
	free(ms->cur.c);
	ms->cur.c = c;
	ms->cur.n = n;
	ms->copy = true;
	memset(&ms->cst, 0, sizeof(ms->cst));
	return 0;
}

/* ReadyForQuery: a Query or a Sync is answered; what was still owed before it is not. */
static void ready(struct pw_mask_session *ms)
{
	while (ms->qlen) {
		uint8_t k = head(ms)->kind;
		pop(ms);
		if (k == E_QUERY || k == E_SYNC)
			break;
	}
	ms->copy = false;
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
	if (!e || (e->kind != E_QUERY && e->kind != E_EXECUTE))
		return badly(d, "a row no statement was owed");
	if (!ms->active) {
		if (e->kind == E_QUERY)
			return badly(d, "a row before its RowDescription");
		if (len < 7)
			return pw_deny_set(d, "08P01", "pgward: malformed DataRow");
		if (e->obj->described.n &&
		    planned(ms, e->obj, e->obj->described.n, &ms->cur, d) < 0)
			return -1;
		if (!e->obj->described.n && planned(ms, e->obj, be16(msg + 5), &ms->cur, d) < 0)
			return -1;
		ms->active = true;
	}
	int rc = pw_mask_datarow(ms->cur.c, ms->cur.n, &ms->ctx, msg, len, &ms->out);
	return wire(rc, ms, out, outlen, d, "row");
}

int pw_mask_upstream(struct pw_mask_session *ms, const uint8_t *msg, size_t len,
                     const uint8_t **out, size_t *outlen, struct pw_deny *d)
{
	struct entry *e = head(ms);
	const struct pw_mask_plan *p;
	switch (msg[0]) {
	case 'T':
		if (!e)
			return badly(d, "a RowDescription no statement was owed");
		if (e->kind == E_QUERY || e->kind == E_EXECUTE) {
			if (described(ms, msg, len, current_plan(ms), NULL, &ms->cur, d) < 0)
				return -1;
			ms->active = true;
			return 0;
		}
		if (e->kind == E_DESCRIBE_S || e->kind == E_DESCRIBE_P) {
			bool portal = e->kind == E_DESCRIBE_P;
			struct names *ns = portal ? &ms->portals : &ms->stmts;
			struct named *o = find(ns, e->obj->name);
			if (o && o->plan == e->obj->plan &&
			    described(ms, msg, len, o->plan, portal ? o : NULL, &o->described, d) <
			        0)
				return -1;
			pop(ms);
			return 0;
		}
		return badly(d, "a RowDescription where none was owed");
	case 'n':
		if (e && (e->kind == E_DESCRIBE_S || e->kind == E_DESCRIBE_P))
			pop(ms);
		return 0;
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
		ms->active = ms->copy = false;
		if (e && e->kind == E_QUERY)
			e->cur++;
		else if (e && e->kind == E_EXECUTE)
			pop(ms);
		return 0;
	case 'E':
	case 'N': {
		p = current_plan(ms);
		/* an error of no statement pgward planned (a Parse's, say): scrubbed hard */
		bool tainted = !p || p->touches;
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
		ready(ms);
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
