/* One session's statements in the audit trail. See include/pgward/audit_session.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgward/audit.h"
#include "audit_session_int.h"
#include "pgward/audit_session.h"
#include "pgward/detect.h"
#include "pgward/policy.h"
#include "pgward/proto.h"
#include "pgward/sql_class.h"
#include "pgward/sql_key.h"
#include "pgward/sql_cache.h"

uint64_t pw_as_now_us(struct timespec *wall)
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
	uint64_t h = pw_fnv1a(name, n);
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
			as->prep_bytes -= p->frag.len;
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
/* Keep the prepared statements within PW_AUDIT_NAMES and PW_AUDIT_PREP_BYTES of texts:
 * the oldest go first (a named one's text is in its "prepared" record). */
static void prep_trim(struct pw_audit_session *as, size_t adding)
{
	while (as->preps &&
	       (as->n_preps >= PW_AUDIT_NAMES || as->prep_bytes + adding > PW_AUDIT_PREP_BYTES)) {
		struct prep **pp = &as->preps;
		while ((*pp)->next)
			pp = &(*pp)->next;
		struct prep *p = *pp;
		*pp = NULL;
		as->n_preps--;
		as->prep_bytes -= p->frag.len;
		prep_put(as, p);
	}
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
	e->start_us = pw_as_now_us(&e->ts);
	return e;
}

static void push(struct pw_audit_session *as, struct entry *e)
{
	as->n_entries++;
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
	as->n_entries--;
	as->head = e->next;
	if (!as->head)
		as->tail = NULL;
	prep_put(as, e->prep);
	e->prep = NULL;
	e->next = as->free_entries;
	as->free_entries = e;
}

/* ---- the client's side ---- */

struct pw_audit_session *pw_audit_session_new(uint64_t serial, const char *identity,
                                              bool rfq_pending)
{
	if (!pw_audit_on())
		return NULL;
	struct pw_audit_session *as = calloc(1, sizeof(*as));
	if (!as)
		return NULL;
	as->serial = serial;
	as->identity = identity;
	as->max_field = pw_audit_max_field();
	pw_jw_init(&as->scratch, 0);
	struct entry *e;
	if (rfq_pending && (e = entry_new(as, K_SYNC)))
		push(as, e); /* the start-up's ReadyForQuery answers it */
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
			pw_as_emit(as, e, "unfinished");
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
	pw_jw_free(&as->scratch);
	free(as);
	return n;
}

int pw_audit_on_statement(struct pw_audit_session *as, const struct pw_stmt *m, bool refused,
                          const struct pw_deny *d, const struct pw_inspect_facts *f)
{
	if (!as)
		return 0;
	if (refused) {
		/* the relay sends a sentinel in its place: its error comes back in order */
		if (d)
			pw_as_emit_refused(as, m, d, f);
		struct entry *e =
		    entry_new(as, m->type == 'Q' || m->type == 'F' ? K_QUERY : K_PARSE);
		if (!e)
			return -1;
		e->refused = true;
		push(as, e);
		return as->n_entries > PW_AUDIT_IN_FLIGHT ? -1 : 0;
	}
	struct entry *e;
	switch (m->type) {
	case 'Q':
	case 'F':
		if (!(e = entry_new(as, m->type == 'Q' ? K_QUERY : K_CALL)))
			return -1;
		pw_jw_str(&e->body, "protocol", m->type == 'Q' ? "simple" : "function_call");
		if (m->type == 'Q') {
			pw_as_text(as, &e->body, "text", m->sql, m->sql_len);
			pw_as_fingerprint(&e->body, m->sql, m->sql_len);
		} else {
			pw_jw_null(&e->body, "text");
		}
		pw_as_decision(&e->body, false, d, f);
		break;
	case 'P':
		if (!(e = entry_new(as, K_PARSE)))
			return -1;
		name_key(e->name, m->name ? m->name : "");
		if (!(e->prep = prep_new(as))) {
			e->next = as->free_entries; /* never pushed: back to the free list */
			as->free_entries = e;
			return -1;
		}
		memcpy(e->prep->name, e->name, NAME_CAP);
		pw_jw_str(&e->prep->frag, "statement", m->name ? m->name : "");
		pw_as_text(as, &e->prep->frag, "text", m->sql, m->sql_len);
		pw_as_fingerprint(&e->prep->frag, m->sql, m->sql_len);
		pw_as_decision(&e->prep->frag, false, d, f);
		break;
	case 'B':
		if (!(e = entry_new(as, K_BIND)))
			return -1;
		name_key(e->name, m->name ? m->name : "");
		name_key(e->stmt, m->stmt ? m->stmt : "");
		if (pw_audit_parameters() && !pw_as_bind_params(as, &e->body, m->body, m->len))
			pw_jw_reset(&e->body);
		break;
	default:
		return 0;
	}
	push(as, e);
	return as->n_entries > PW_AUDIT_IN_FLIGHT ? -1 : 0;
}

int pw_audit_on_oversize(struct pw_audit_session *as, uint8_t type, const struct pw_deny *d)
{
	struct pw_stmt m = {.type = type};
	return pw_audit_on_statement(as, &m, true, d, NULL);
}

/* What an Execute runs, taken when it is sent: the latest Bind of its portal still on its way
 * (and the latest Parse before that Bind of the statement it names), else the portal and
 * statement the server holds. Its record cannot then depend on what later messages do. */
static void resolve(struct pw_audit_session *as, struct entry *x)
{
	struct entry *b = NULL, *pe = NULL;
	for (struct entry *e = as->head; e; e = e->next)
		if (e->kind == K_BIND && !e->refused && strcmp(e->name, x->name) == 0)
			b = e;
	struct prep *p = NULL;
	const struct pw_jw *params = NULL;
	if (b) {
		for (struct entry *e = as->head; e && e != b; e = e->next)
			if (e->kind == K_PARSE && !e->refused && e->prep &&
			    !strcmp(e->name, b->stmt))
				pe = e;
		p = pe ? pe->prep : prep_find(as, b->stmt);
		params = &b->body;
		memcpy(x->stmt, b->stmt, NAME_CAP);
	} else {
		struct portal *o = portal_find(as, x->name);
		p = o ? o->prep : NULL;
		params = o ? &o->params : NULL;
	}
	if (p) {
		p->refs++;
		x->prep = p;
	}
	if (params && params->len)
		pw_jw_append(&x->body, params->p, params->len);
}

int pw_audit_on_client(struct pw_audit_session *as, const uint8_t *msg, size_t len)
{
	if (!as || len < PW_HDR)
		return 0;
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
		return 0;
	}
	struct entry *e = entry_new(as, k);
	if (!e)
		return -1;
	if ((k == K_DESCRIBE || k == K_CLOSE) && blen >= 2 && memchr(body + 1, 0, blen - 1)) {
		e->statement_of_describe = body[0] == 'S';
		e->close_what = body[0];
		name_key(e->name, body + 1);
	} else if (k == K_EXECUTE && blen >= 1 && memchr(body, 0, blen)) {
		name_key(e->name, body);
		resolve(as, e);
	}
	push(as, e);
	return as->n_entries > PW_AUDIT_IN_FLIGHT ? -1 : 0;
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
	if (e->tags.len > 16384)
		e->tags_cut++; /* a Query of thousands of statements: the record stays bounded */
	else
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
		if ((e->kind == K_EXECUTE || e->kind == K_QUERY || e->kind == K_CALL) &&
		    !e->refused)
			pw_as_emit(as, e, "skipped"); /* the server discards it up to the Sync */
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
			pw_as_emit(as, e, e->failed ? "error" : "done");
		else if (!e->refused && e->kind == K_EXECUTE)
			pw_as_emit(as, e, "skipped");
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
	/* the parameters move to the portal: the two buffers change places (each keeps its
	 * limit) */
	struct pw_jw t = o->params;
	o->params.p = e->body.p;
	o->params.len = e->body.len;
	o->params.cap = e->body.cap;
	e->body.p = t.p;
	e->body.cap = t.cap;
	pw_jw_reset(&e->body);
	o->next = as->portals;
	as->portals = o;
	as->n_portals++;
}

/* ParseComplete: the statement exists under its name (the unnamed one replaced). */
static void parsed(struct pw_audit_session *as, struct entry *e)
{
	prep_forget(as, e->name);
	prep_trim(as, e->prep->frag.len);
	if (e->name[0])
		pw_as_emit_prepared(as, e->prep); /* the trail keeps what a name stands for */
	e->prep->next = as->preps;
	as->preps = e->prep;
	as->n_preps++;
	as->prep_bytes += e->prep->frag.len;
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
			pw_as_emit(as, e, "done");
		} else if (t == 'I') {
			pw_as_emit(as, e, "done");
		} else if (t == 's') {
			pw_as_emit(as, e, "suspended");
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
			pw_as_emit(as, e, "error");
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
		if (!e->failed)
			snprintf(e->sqlstate, sizeof(e->sqlstate), "%s",
			         e->refused ? "42501" : "?????");
		e->failed = true;
		return; /* its ReadyForQuery follows */
	}
	if (e->kind == K_EXECUTE && !e->refused) {
		/* the relay took an error of this Execute's for a refusal (its message names the
		 * sentinel): it is the Execute's error all the same */
		snprintf(e->sqlstate, sizeof(e->sqlstate), "?????");
		e->failed = true;
		pw_as_emit(as, e, "error");
	}
	pop(as);
	skip_group(as);
}

void pw_audit_on_syncs_ignored(struct pw_audit_session *as, uint64_t n)
{
	if (!as || !n)
		return;
	/* the Syncs after the last Execute: the server ignored them in COPY IN */
	struct entry *last_exec = NULL;
	uint64_t syncs = 0;
	for (struct entry *e = as->head; e; e = e->next)
		if (e->kind == K_EXECUTE) {
			last_exec = e;
			syncs = 0;
		} else if (e->kind == K_SYNC) {
			syncs++;
		}
	uint64_t drop_from = syncs > n ? syncs - n : 0, k = 0;
	struct entry *prev = last_exec;
	for (struct entry *e = last_exec ? last_exec->next : as->head; e;) {
		struct entry *next = e->next;
		if (e->kind == K_SYNC && k++ >= drop_from) {
			if (prev)
				prev->next = next;
			else
				as->head = next;
			if (as->tail == e)
				as->tail = prev;
			e->next = as->free_entries;
			as->free_entries = e;
			as->n_entries--;
		} else {
			prev = e;
		}
		e = next;
	}
}
