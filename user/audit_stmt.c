/* One session's statement records. See user/audit_session_int.h. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_session_int.h"
#include "pgward/audit.h"
#include "pgward/detect.h"
#include "pgward/policy.h"
#include "pgward/proto.h"
#include "pgward/sql_cache.h"
#include "pgward/sql_class.h"
#include "pgward/sql_key.h"

/* s (n bytes) as the value at key (NULL: an array element), with what the trail's detectors
 * find (card numbers, tokens, keys: pw_audit_redact) replaced by "[redacted:<detector>]". */
void pw_as_text(struct pw_audit_session *as, struct pw_jw *w, const char *key, const char *s,
                size_t n)
{
	uint32_t set = pw_audit_redact();
	struct pw_detect_match m;
	if (!set || !s || !pw_detect_next((const uint8_t *)s, n, 0, set, &m)) {
		pw_jw_strn(w, key, s, n);
		return;
	}
	struct pw_jw *b = &as->scratch;
	pw_jw_reset(b);
	size_t from = 0;
	do {
		char mark[48];
		int k = snprintf(mark, sizeof(mark), "[redacted:%s]", pw_detector_name(m.what));
		pw_jw_append(b, s + from, m.off - from);
		pw_jw_append(b, mark, (size_t)k);
		from = m.off + m.len;
	} while (from < n && pw_detect_next((const uint8_t *)s, n, from, set, &m));
	pw_jw_append(b, s + from, n - from);
	if (pw_jw_ok(b))
		pw_jw_strn(w, key, b->p, b->len);
	else
		pw_jw_str(w, key, "[redacted]"); /* no memory for the copy: nothing of it */
}

void pw_as_fingerprint(struct pw_jw *w, const char *sql, size_t len)
{
	uint64_t h = pw_sql_fingerprint(sql, len);
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(h >> (56 - 8 * i));
	pw_jw_hex(w, "fingerprint", b, sizeof(b));
}

/* decision, by, rule, guardrail, classes; and the refusal */
void pw_as_decision(struct pw_jw *w, bool refused, const struct pw_deny *d,
                    const struct pw_inspect_facts *f)
{
	pw_jw_str(w, "decision", refused ? "deny" : f && f->d.approved ? "approved" : "allow");
	if (!refused && f && f->d.approved)
		pw_jw_str(w, "approval", f->approval);
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
void pw_as_emit(struct pw_audit_session *as, struct entry *e, const char *status)
{
	struct pw_jw *w = pw_audit_begin_at("statement", &e->ts);
	if (!w)
		return;
	pw_jw_uint(w, "session", as->serial);
	pw_jw_str(w, "identity", as->identity);
	if (e->kind == K_EXECUTE) {
		pw_jw_str(w, "protocol", "extended");
		pw_jw_str(w, "portal", e->name);
		if (e->prep) {
			pw_jw_raw(w, NULL, e->prep->frag.p, e->prep->frag.len);
		} else {
			/* a statement this session never saw prepared, or forgotten (over
			 * PW_AUDIT_NAMES or the memory budget: its "prepared" record has it) */
			pw_jw_str(w, "statement", e->stmt);
			pw_jw_null(w, "text");
		}
		if (e->body.len)
			pw_jw_raw(w, NULL, e->body.p, e->body.len);
	} else {
		pw_jw_raw(w, NULL, e->body.p, e->body.len);
	}
	pw_jw_str(w, "status", status);
	pw_jw_arr(w, "commands");
	if (e->tags.len)
		pw_jw_raw(w, NULL, e->tags.p, e->tags.len);
	pw_jw_arr_end(w);
	if (e->tags_cut)
		pw_jw_uint(w, "commands_cut", e->tags_cut);
	pw_jw_uint(w, "rows", e->rows);
	if (e->sqlstate[0])
		pw_jw_str(w, "sqlstate", e->sqlstate);
	else
		pw_jw_null(w, "sqlstate");
	pw_jw_uint(w, "duration_us", pw_as_now_us(NULL) - e->start_us);
	pw_audit_end(w);
	as->recorded++;
}

/* A refused message's record, written at once (nothing of it reaches the server). */
void pw_as_emit_refused(struct pw_audit_session *as, const struct pw_stmt *m,
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
		pw_as_text(as, w, "text", m->sql, m->sql_len);
		pw_as_fingerprint(w, m->sql, m->sql_len);
	} else {
		pw_jw_null(w, "text");
	}
	pw_as_decision(w, true, d, f);
	pw_jw_str(w, "status", "refused");
	pw_jw_arr(w, "commands");
	pw_jw_arr_end(w);
	pw_jw_uint(w, "rows", 0);
	pw_jw_str(w, "sqlstate", d->sqlstate);
	pw_jw_uint(w, "duration_us", 0);
	pw_audit_end(w);
	as->recorded++;
}

static int16_t be16(const uint8_t *p)
{
	return (int16_t)(p[0] << 8 | p[1]);
}

/* A Bind's parameters into w as "parameters":[...]: text ones as strings, binary ones as
 * {"binary":"<hex>"}, NULL as null. False when the message is malformed (the server refuses
 * it then; nothing is recorded of its values). */
bool pw_as_bind_params(struct pw_audit_session *as, struct pw_jw *w, const uint8_t *body,
                       size_t len)
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
	/* the parameters of one record stay within half the field limit together (the rest are
	 * counted, not written): a record always fits its ring */
	size_t from = w->len, budget = as->max_field ? as->max_field / 2 : SIZE_MAX;
	int cut = 0;
	pw_jw_arr(w, "parameters");
	for (int i = 0; i < np; i++) {
		if (end - p < 4)
			return false;
		int32_t l = (int32_t)pw_be32(p);
		p += 4;
		if (l > 0 && end - p < l)
			return false;
		int fmt = nf == 0 ? 0 : be16(fmts + 2 * (nf == 1 ? 0 : i));
		size_t used = w->len - from, keep = w->max_field;
		if (used >= budget) {
			cut++;
			pw_jw_null(w, NULL);
			if (l > 0)
				p += l;
			continue;
		}
		/* each value within what is left of the budget (the writer cuts and says so) */
		w->max_field = budget - used < keep || !keep ? budget - used : keep;
		if (l < 0) {
			pw_jw_null(w, NULL);
		} else if (fmt == 0) {
			pw_as_text(as, w, NULL, (const char *)p, (size_t)l);
		} else {
			pw_jw_obj(w, NULL);
			struct pw_detect_match dm;
			if (pw_detect_next(p, (size_t)l, 0, pw_audit_redact(), &dm))
				pw_jw_str(w, "binary", "[redacted]");
			else
				pw_jw_hex(w, "binary", p, (size_t)l);
			pw_jw_uint(w, "bytes", (uint64_t)l);
			pw_jw_obj_end(w);
		}
		w->max_field = keep;
		if (l > 0)
			p += l;
	}
	pw_jw_arr_end(w);
	if (cut)
		pw_jw_int(w, "parameters_cut", cut);
	return true;
}

void pw_as_emit_prepared(struct pw_audit_session *as, const struct prep *p)
{
	struct pw_jw *w = pw_audit_begin("statement");
	if (!w)
		return;
	pw_jw_uint(w, "session", as->serial);
	pw_jw_str(w, "identity", as->identity);
	pw_jw_str(w, "protocol", "parse");
	pw_jw_raw(w, NULL, p->frag.p, p->frag.len);
	pw_jw_str(w, "status", "prepared");
	pw_audit_end(w);
}
