/* One session's statements in the audit trail. See include/pgward/audit_session.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/audit.h"
#include "pgward/audit_session.h"
#include "pgward/policy.h"
#include "pgward/proto.h"
#include "pgward/sql_class.h"
#include "pgward/sql_key.h"
#include "pgward/sql_cache.h"

#define NAME_CAP 64

/* A prepared statement (or the unnamed one), as its Parse said: the record's members for it
 * (statement, text, fingerprint, decision), shared by the portals bound to it. */
struct prep {
	struct prep *next; /* in the session's list (or the free list) */
	int refs;
	char name[NAME_CAP];
	struct pw_jw frag;
};

/* A portal the server holds (Bind confirmed), or one on its way. */
struct portal {
	struct portal *next;
	char name[NAME_CAP];
	struct prep *prep; /* a reference; NULL: its statement was forgotten */
	struct pw_jw params;
};

enum kind { K_QUERY, K_CALL, K_PARSE, K_BIND, K_DESCRIBE, K_EXECUTE, K_CLOSE, K_SYNC };

struct entry {
	struct entry *next;
	enum kind kind;
	bool refused; /* its record is written already; it waits for the sentinel's error */
	bool failed;  /* the server's error came */
	bool statement_of_describe; /* K_DESCRIBE of a statement: 't' then 'T' or 'n' */
	char close_what;            /* K_CLOSE: 'S' or 'P' */
	char name[NAME_CAP];        /* K_PARSE, K_CLOSE: statement or portal; K_BIND, K_EXECUTE:
	                             * the portal */
	char stmt[NAME_CAP];        /* K_BIND: its statement */
	struct prep *prep;          /* K_PARSE: the statement it makes */
	struct timespec ts;         /* when the client's message came */
	uint64_t start_us;
	uint64_t rows;
	char sqlstate[6];
	struct pw_jw body; /* K_QUERY, K_CALL: the record's members known at the start;
	                    * K_BIND: its parameters */
	struct pw_jw tags; /* the command tags, as JSON array elements */
};

struct pw_audit_session {
	uint64_t serial;
	const char *identity;
	uint64_t recorded;
	struct entry *head, *tail, *free_entries;
	struct prep *preps, *free_preps;
	struct portal *portals, *free_portals;
	int n_preps, n_portals;
	size_t max_field;
};

static uint64_t now_us(struct timespec *wall)
{
	struct timespec m;
	if (wall)
		clock_gettime(CLOCK_REALTIME, wall);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return (uint64_t)m.tv_sec * 1000000u + (uint64_t)m.tv_nsec / 1000u;
}

/* A protocol name as a key: a long one keeps its start and a hash of the whole. */
static void name_key(char *out, const char *name)
{
	size_t n = strlen(name);
	if (n < NAME_CAP) {
		memcpy(out, name, n + 1);
		return;
	}
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)name[i]) * 1099511628211ull;
	memcpy(out, name, 40);
	static const char hex[] = "0123456789abcdef";
	out[40] = '#';
	for (int i = 0; i < 16; i++)
		out[41 + i] = hex[(h >> (60 - 4 * i)) & 15];
	out[57] = '\0';
}

/* ---- the names the server holds ---- */

static void prep_put(struct pw_audit_session *as, struct prep *p)
{
	if (p && --p->refs == 0) {
		p->next = as->free_preps;
		as->free_preps = p;
	}
}

static struct prep *prep_new(struct pw_audit_session *as)
{
	struct prep *p = as->free_preps;
	if (p) {
		as->free_preps = p->next;
	} else if ((p = calloc(1, sizeof(*p)))) {
		pw_jw_init(&p->frag, as->max_field);
	} else {
		return NULL;
	}
	pw_jw_reset(&p->frag);
	p->refs = 1;
	p->next = NULL;
	return p;
}

/* Unlink and release the statement (or portal) called name; its list in *head. */
static void prep_forget(struct pw_audit_session *as, const char *name)
{
	for (struct prep **pp = &as->preps; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			struct prep *p = *pp;
			*pp = p->next;
			as->n_preps--;
			prep_put(as, p);
			return;
		}
}

static void portal_release(struct pw_audit_session *as, struct portal *o)
{
	prep_put(as, o->prep);
	o->prep = NULL;
	o->next = as->free_portals;
	as->free_portals = o;
	as->n_portals--;
}

static void portal_forget(struct pw_audit_session *as, const char *name)
{
	for (struct portal **pp = &as->portals; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			struct portal *o = *pp;
			*pp = o->next;
			portal_release(as, o);
			return;
		}
}

/* Keep a list at its cap: the oldest (last) goes. */
static void prep_trim(struct pw_audit_session *as)
{
	if (as->n_preps < PW_AUDIT_NAMES)
		return;
	struct prep **pp = &as->preps;
	while ((*pp)->next)
		pp = &(*pp)->next;
	struct prep *p = *pp;
	*pp = NULL;
	as->n_preps--;
	prep_put(as, p);
}

static void portal_trim(struct pw_audit_session *as)
{
	if (as->n_portals < PW_AUDIT_NAMES)
		return;
	struct portal **pp = &as->portals;
	while ((*pp)->next)
		pp = &(*pp)->next;
	struct portal *o = *pp;
	*pp = NULL;
	portal_release(as, o);
}

static struct prep *prep_find(struct pw_audit_session *as, const char *name)
{
	for (struct prep *p = as->preps; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static struct portal *portal_find(struct pw_audit_session *as, const char *name)
{
	for (struct portal *o = as->portals; o; o = o->next)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

/* ---- the queue of what the server owes ---- */

static struct entry *entry_new(struct pw_audit_session *as, enum kind k)
{
	struct entry *e = as->free_entries;
	if (e) {
		as->free_entries = e->next;
	} else if ((e = calloc(1, sizeof(*e)))) {
		pw_jw_init(&e->body, as->max_field);
		pw_jw_init(&e->tags, 0);
	} else {
		return NULL;
	}
	struct pw_jw body = e->body, tags = e->tags;
	memset(e, 0, sizeof(*e));
	e->body = body;
	e->tags = tags;
	pw_jw_reset(&e->body);
	pw_jw_reset(&e->tags);
	e->kind = k;
	e->start_us = now_us(&e->ts);
	return e;
}

static void push(struct pw_audit_session *as, struct entry *e)
{
	e->next = NULL;
	if (as->tail)
		as->tail->next = e;
	else
		as->head = e;
	as->tail = e;
}

static void pop(struct pw_audit_session *as)
{
	struct entry *e = as->head;
	if (!e)
		return;
	as->head = e->next;
	if (!as->head)
		as->tail = NULL;
	prep_put(as, e->prep);
	e->prep = NULL;
	e->next = as->free_entries;
	as->free_entries = e;
}

/* ---- records ---- */

static void fingerprint(struct pw_jw *w, const char *sql, size_t len)
{
	/* texts that differ only in their literals share one: the analyser's cache key */
	char *key = pw_sql_cache_keybuf(len + 2);
	size_t klen = key ? pw_sql_key(sql, len, key) : 0;
	const char *s = klen ? key : sql;
	size_t n = klen ? klen : len;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(h >> (56 - 8 * i));
	pw_jw_hex(w, "fingerprint", b, sizeof(b));
}

/* decision, by, rule, guardrail, classes; and the refusal */
static void decision(struct pw_jw *w, bool refused, const struct pw_deny *d,
                     const struct pw_inspect_facts *f)
{
	pw_jw_str(w, "decision", refused ? "deny" : "allow");
	if (f) {
		pw_jw_str(w, "by", pw_decided_by_name(f->d.by));
		if (f->d.by == PW_BY_RULE && f->d.rule)
			pw_jw_int(w, "rule", f->d.rule);
		else
			pw_jw_null(w, "rule");
		if (f->d.by == PW_BY_GUARDRAIL)
			pw_jw_str(w, "guardrail", pw_guardrail_name(f->d.guardrail));
		else
			pw_jw_null(w, "guardrail");
		pw_jw_arr(w, "classes");
		for (int c = 0; c < 32; c++)
			if (f->classes & (1u << c))
				pw_jw_str(w, NULL, pw_sql_class_name((enum pw_sql_class)c));
		pw_jw_arr_end(w);
	} else {
		pw_jw_str(w, "by", "limit");
	}
	if (refused) {
		pw_jw_str(w, "refusal_sqlstate", d->sqlstate);
		pw_jw_str(w, "refusal", d->message);
	}
}

/* Write the record of e (a Query, FunctionCall or Execute) with its ending. */
static void emit(struct pw_audit_session *as, struct entry *e, const char *status)
{
	struct pw_jw *w = pw_audit_begin_at("statement", &e->ts);
	if (!w)
		return;
	pw_jw_uint(w, "session", as->serial);
	pw_jw_str(w, "identity", as->identity);
	if (e->kind == K_EXECUTE) {
		struct portal *o = portal_find(as, e->name);
		pw_jw_str(w, "protocol", "extended");
		pw_jw_str(w, "portal", e->name);
		if (o && o->prep)
			pw_jw_raw(w, NULL, o->prep->frag.p, o->prep->frag.len);
		else
			pw_jw_null(w, "text");
		if (o && o->params.len)
			pw_jw_raw(w, NULL, o->params.p, o->params.len);
	} else {
		pw_jw_raw(w, NULL, e->body.p, e->body.len);
	}
	pw_jw_str(w, "status", status);
	pw_jw_arr(w, "commands");
	if (e->tags.len)
		pw_jw_raw(w, NULL, e->tags.p, e->tags.len);
	pw_jw_arr_end(w);
	pw_jw_uint(w, "rows", e->rows);
	if (e->sqlstate[0])
		pw_jw_str(w, "sqlstate", e->sqlstate);
	else
		pw_jw_null(w, "sqlstate");
	pw_jw_uint(w, "duration_us", now_us(NULL) - e->start_us);
	pw_audit_end(w);
	as->recorded++;
}

/* A refused message's record, written at once (nothing of it reaches the server). */
static void emit_refused(struct pw_audit_session *as, const struct pw_stmt *m,
                         const struct pw_deny *d, const struct pw_inspect_facts *f)
{
	struct pw_jw *w = pw_audit_begin("statement");
	if (!w)
		return;
	static const struct {
		uint8_t type;
		const char *name;
	} protocols[] = {{'Q', "simple"}, {'P', "parse"}, {'B', "bind"}, {'F', "function_call"}};
	const char *proto = "?";
	for (size_t i = 0; i < sizeof(protocols) / sizeof(protocols[0]); i++)
		if (protocols[i].type == m->type)
			proto = protocols[i].name;
	pw_jw_uint(w, "session", as->serial);
	pw_jw_str(w, "identity", as->identity);
	pw_jw_str(w, "protocol", proto);
	if (m->type == 'P' || m->type == 'B')
		pw_jw_str(w, m->type == 'P' ? "statement" : "portal", m->name ? m->name : "");
	if (m->sql) {
		pw_jw_strn(w, "text", m->sql, m->sql_len);
		fingerprint(w, m->sql, m->sql_len);
	} else {
		pw_jw_null(w, "text");
	}
	decision(w, true, d, f);
	pw_jw_str(w, "status", "refused");
	pw_jw_arr(w, "commands");
	pw_jw_arr_end(w);
	pw_jw_uint(w, "rows", 0);
	pw_jw_str(w, "sqlstate", d->sqlstate);
	pw_jw_uint(w, "duration_us", 0);
	pw_audit_end(w);
	as->recorded++;
}

/* ---- the client's side ---- */

struct pw_audit_session *pw_audit_session_new(uint64_t serial, const char *identity)
{
	if (!pw_audit_on())
		return NULL;
	struct pw_audit_session *as = calloc(1, sizeof(*as));
	if (!as)
		return NULL;
	as->serial = serial;
	as->identity = identity;
	as->max_field = pw_audit_max_field();
	return as;
}

static void free_list_entries(struct entry *e)
{
	while (e) {
		struct entry *n = e->next;
		pw_jw_free(&e->body);
		pw_jw_free(&e->tags);
		free(e);
		e = n;
	}
}

uint64_t pw_audit_session_free(struct pw_audit_session *as)
{
	if (!as)
		return 0;
	while (as->head) {
		struct entry *e = as->head;
		if (!e->refused &&
		    (e->kind == K_QUERY || e->kind == K_CALL || e->kind == K_EXECUTE))
			emit(as, e, "unfinished");
		pop(as);
	}
	while (as->portals) {
		struct portal *o = as->portals;
		as->portals = o->next;
		portal_release(as, o);
	}
	while (as->preps) {
		struct prep *p = as->preps;
		as->preps = p->next;
		prep_put(as, p);
	}
	free_list_entries(as->free_entries);
	for (struct prep *p = as->free_preps, *n; p; p = n) {
		n = p->next;
		pw_jw_free(&p->frag);
		free(p);
	}
	for (struct portal *o = as->free_portals, *n; o; o = n) {
		n = o->next;
		pw_jw_free(&o->params);
		free(o);
	}
	uint64_t n = as->recorded;
	free(as);
	return n;
}

static int16_t be16(const uint8_t *p)
{
	return (int16_t)(p[0] << 8 | p[1]);
}

/* A Bind's parameters into w as "parameters":[...]: text ones as strings, binary ones as
 * {"binary":"<hex>"}, NULL as null. False when the message is malformed (the server refuses
 * it then; nothing is recorded of its values). */
static bool bind_params(struct pw_jw *w, const uint8_t *body, size_t len)
{
	const uint8_t *p = body, *end = body + len;
	const uint8_t *z1 = memchr(p, 0, len),
	              *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
	if (!z2 || end - z2 - 1 < 2)
		return false;
	p = z2 + 1;
	int nf = be16(p);
	p += 2;
	if (nf < 0 || end - p < 2 * nf + 2)
		return false;
	const uint8_t *fmts = p;
	p += 2 * nf;
	int np = be16(p);
	p += 2;
	if (np < 0 || (nf > 1 && nf != np))
		return false;
	pw_jw_arr(w, "parameters");
	for (int i = 0; i < np; i++) {
		if (end - p < 4)
			return false;
		int32_t l = (int32_t)pw_be32(p);
		p += 4;
		if (l > 0 && end - p < l)
			return false;
		int fmt = nf == 0 ? 0 : be16(fmts + 2 * (nf == 1 ? 0 : i));
		if (l < 0) {
			pw_jw_null(w, NULL);
		} else if (fmt == 0) {
			pw_jw_strn(w, NULL, (const char *)p, (size_t)l);
		} else {
			pw_jw_obj(w, NULL);
			pw_jw_hex(w, "binary", p, (size_t)l);
			pw_jw_obj_end(w);
		}
		if (l > 0)
			p += l;
	}
	pw_jw_arr_end(w);
	return true;
}

void pw_audit_on_statement(struct pw_audit_session *as, const struct pw_stmt *m, bool refused,
                           const struct pw_deny *d, const struct pw_inspect_facts *f)
{
	if (!as)
		return;
	if (refused) {
		/* the relay sends a sentinel in its place: its error comes back in order */
		if (d)
			emit_refused(as, m, d, f);
		struct entry *e =
		    entry_new(as, m->type == 'Q' || m->type == 'F' ? K_QUERY : K_PARSE);
		if (!e)
			return;
		e->refused = true;
		push(as, e);
		return;
	}
	struct entry *e;
	switch (m->type) {
	case 'Q':
	case 'F':
		if (!(e = entry_new(as, m->type == 'Q' ? K_QUERY : K_CALL)))
			return;
		pw_jw_str(&e->body, "protocol", m->type == 'Q' ? "simple" : "function_call");
		if (m->type == 'Q') {
			pw_jw_strn(&e->body, "text", m->sql, m->sql_len);
			fingerprint(&e->body, m->sql, m->sql_len);
		} else {
			pw_jw_null(&e->body, "text");
		}
		decision(&e->body, false, d, f);
		break;
	case 'P':
		if (!(e = entry_new(as, K_PARSE)))
			return;
		name_key(e->name, m->name ? m->name : "");
		if (!(e->prep = prep_new(as))) {
			e->next = as->free_entries; /* never pushed: back to the free list */
			as->free_entries = e;
			return;
		}
		memcpy(e->prep->name, e->name, NAME_CAP);
		pw_jw_str(&e->prep->frag, "statement", m->name ? m->name : "");
		pw_jw_strn(&e->prep->frag, "text", m->sql, m->sql_len);
		fingerprint(&e->prep->frag, m->sql, m->sql_len);
		decision(&e->prep->frag, false, d, f);
		break;
	case 'B':
		if (!(e = entry_new(as, K_BIND)))
			return;
		name_key(e->name, m->name ? m->name : "");
		name_key(e->stmt, m->stmt ? m->stmt : "");
		if (pw_audit_parameters() && !bind_params(&e->body, m->body, m->len))
			pw_jw_reset(&e->body);
		break;
	default:
		return;
	}
	push(as, e);
}

void pw_audit_on_oversize(struct pw_audit_session *as, uint8_t type, const struct pw_deny *d)
{
	if (!as)
		return;
	struct pw_stmt m = {.type = type};
	pw_audit_on_statement(as, &m, true, d, NULL);
}

void pw_audit_on_client(struct pw_audit_session *as, const uint8_t *msg, size_t len)
{
	if (!as || len < PW_HDR)
		return;
	const char *body = (const char *)msg + PW_HDR;
	size_t blen = len - PW_HDR;
	enum kind k;
	switch (msg[0]) {
	case 'D':
		k = K_DESCRIBE;
		break;
	case 'E':
		k = K_EXECUTE;
		break;
	case 'C':
		k = K_CLOSE;
		break;
	case 'S':
		k = K_SYNC;
		break;
	default:
		return;
	}
	struct entry *e = entry_new(as, k);
	if (!e)
		return;
	if ((k == K_DESCRIBE || k == K_CLOSE) && blen >= 2 && memchr(body + 1, 0, blen - 1)) {
		e->statement_of_describe = body[0] == 'S';
		e->close_what = body[0];
		name_key(e->name, body + 1);
	} else if (k == K_EXECUTE && blen >= 1 && memchr(body, 0, blen)) {
		name_key(e->name, body);
	}
	push(as, e);
}

/* ---- the server's side ---- */

/* The rows a command tag reports: its last word when that is a number ("SELECT 3",
 * "INSERT 0 1", "COPY 5"); 0 for the rest ("CREATE TABLE"). */
static uint64_t tag_rows(const char *tag, size_t n)
{
	size_t i = n;
	while (i > 0 && tag[i - 1] >= '0' && tag[i - 1] <= '9')
		i--;
	if (i == n || (i > 0 && tag[i - 1] != ' '))
		return 0;
	uint64_t v = 0;
	for (; i < n; i++)
		v = v * 10 + (uint64_t)(tag[i] - '0');
	return v;
}

static void completed(struct entry *e, const uint8_t *msg, size_t len)
{
	const char *tag = (const char *)msg + PW_HDR;
	size_t n = strnlen(tag, len - PW_HDR);
	pw_jw_strn(&e->tags, NULL, tag, n);
	e->rows += tag_rows(tag, n);
}

static void error_of(struct entry *e, const uint8_t *msg, size_t len)
{
	const char *c = pw_error_field(msg + PW_HDR, len - PW_HDR, 'C');
	snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", c ? c : "?????");
	e->failed = true;
}

/* An error in an extended group: the server skips the rest of it up to the Sync. */
static void skip_group(struct pw_audit_session *as)
{
	while (as->head && as->head->kind != K_SYNC) {
		struct entry *e = as->head;
		if (e->kind == K_EXECUTE && !e->refused)
			emit(as, e, "skipped");
		pop(as);
	}
}

/* ReadyForQuery: what it ends (a Query, a FunctionCall, a Sync) and anything before it the
 * server did not answer. tx 'I': outside a transaction, where no portal lives. */
static void ready(struct pw_audit_session *as, char tx)
{
	while (as->head) {
		struct entry *e = as->head;
		bool last = e->kind == K_SYNC || e->kind == K_QUERY || e->kind == K_CALL;
		if (!e->refused && (e->kind == K_QUERY || e->kind == K_CALL))
			emit(as, e, e->failed ? "error" : "done");
		else if (!e->refused && e->kind == K_EXECUTE)
			emit(as, e, "skipped");
		pop(as);
		if (last)
			break;
	}
	if (tx == 'I')
		while (as->portals)
			portal_forget(as, as->portals->name);
}

/* BindComplete: the portal exists, bound to the statement its Bind named. */
static void bound(struct pw_audit_session *as, struct entry *e)
{
	portal_forget(as, e->name);
	portal_trim(as);
	struct portal *o = as->free_portals;
	if (o) {
		as->free_portals = o->next;
	} else if ((o = calloc(1, sizeof(*o)))) {
		pw_jw_init(&o->params, 0);
	} else {
		return;
	}
	memcpy(o->name, e->name, NAME_CAP);
	o->prep = prep_find(as, e->stmt);
	if (o->prep)
		o->prep->refs++;
	/* the parameters move to the portal: the two buffers change places */
	struct pw_jw t = o->params;
	o->params = e->body;
	e->body = t;
	pw_jw_reset(&e->body);
	o->next = as->portals;
	as->portals = o;
	as->n_portals++;
}

/* ParseComplete: the statement exists under its name (the unnamed one replaced). */
static void parsed(struct pw_audit_session *as, struct entry *e)
{
	prep_forget(as, e->name);
	prep_trim(as);
	e->prep->next = as->preps;
	as->preps = e->prep;
	as->n_preps++;
	e->prep = NULL; /* the list holds its reference now */
}

static void closed(struct pw_audit_session *as, struct entry *e)
{
	if (e->close_what == 'S')
		prep_forget(as, e->name);
	else
		portal_forget(as, e->name);
}

/* An answer of an extended-protocol message at the head. */
static void answer(struct pw_audit_session *as, struct entry *e, uint8_t t, const uint8_t *msg,
                   size_t len)
{
	switch (e->kind) {
	case K_PARSE:
		if (t == '1' && e->prep)
			parsed(as, e);
		break;
	case K_BIND:
		if (t == '2')
			bound(as, e);
		break;
	case K_CLOSE:
		if (t == '3')
			closed(as, e);
		break;
	case K_DESCRIBE:
		if (t != 'T' && t != 'n')
			return; /* 't' comes first for a statement */
		break;
	case K_EXECUTE:
		if (t == 'C') {
			completed(e, msg, len);
			emit(as, e, "done");
		} else if (t == 'I') {
			emit(as, e, "done");
		} else if (t == 's') {
			emit(as, e, "suspended");
		} else {
			return; /* rows, COPY: not yet */
		}
		break;
	default:
		return;
	}
	pop(as);
}

void pw_audit_on_upstream(struct pw_audit_session *as, const uint8_t *msg, size_t len)
{
	if (!as || len < PW_HDR)
		return;
	uint8_t t = msg[0];
	if (!pw_audit_tracked(t))
		return;
	if (t == 'Z') {
		ready(as, len > PW_HDR ? (char)msg[PW_HDR] : 'I');
		return;
	}
	struct entry *e = as->head;
	if (!e || e->kind == K_SYNC)
		return; /* nothing of ours is answered: an asynchronous error, a FATAL */
	if (e->kind == K_QUERY || e->kind == K_CALL) {
		if (t == 'C')
			completed(e, msg, len);
		else if (t == 'E' && !e->failed)
			error_of(e, msg, len);
		return; /* it ends at its ReadyForQuery */
	}
	if (t == 'E') {
		if (e->kind == K_EXECUTE && !e->refused) {
			error_of(e, msg, len);
			emit(as, e, "error");
		}
		pop(as);
		skip_group(as);
		return;
	}
	answer(as, e, t, msg, len);
}

void pw_audit_on_refusal_back(struct pw_audit_session *as)
{
	if (!as || !as->head)
		return;
	struct entry *e = as->head;
	if (e->kind == K_QUERY || e->kind == K_CALL) {
		e->failed = true;
		return; /* its ReadyForQuery follows */
	}
	pop(as);
	skip_group(as);
}
