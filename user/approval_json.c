/* A request as JSON: approval show's object, the notification, the trail's records. See
 * user/approval_int.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/audit_events.h"
#include "pgward/policy.h"
#include "pgward/sql_class.h"

#include "approval_int.h"

static void time_str(char *out, size_t cap, const struct timespec *ts)
{
	pw_jw_time(out, cap, ts->tv_sec, ts->tv_nsec);
}

/* ---- one request as JSON: show, list, decide, the notification, the trail ---- */

static void write_stmt(struct pw_jw *w, const struct req *r)
{
	pw_jw_obj(w, "statement");
	pw_jw_strn(w, "type", (const char *)&r->type, 1);
	pw_jw_strn(w, "text", r->text, r->len);
	if (r->text_bytes > r->len)
		pw_jw_uint(w, "text_bytes", r->text_bytes);
	uint8_t fp[8];
	for (int i = 0; i < 8; i++)
		fp[i] = (uint8_t)(r->fingerprint >> (56 - 8 * i));
	pw_jw_hex(w, "fingerprint", fp, sizeof(fp));
	pw_jw_arr(w, "classes");
	for (int c = 0; c < 32; c++)
		if (r->classes & (1u << c))
			pw_jw_str(w, NULL, pw_sql_class_name((enum pw_sql_class)c));
	pw_jw_arr_end(w);
	pw_jw_int(w, "statements", r->nstmts); /* all of them run when it is approved */
	pw_jw_str(w, "reason", r->d.reason);
	pw_jw_str(w, "by", pw_decided_by_name(r->d.by));
	if (r->d.by == PW_BY_RULE && r->d.rule)
		pw_jw_int(w, "rule", r->d.rule);
	else
		pw_jw_null(w, "rule");
	pw_jw_str(w, "guardrail",
	          r->d.by == PW_BY_GUARDRAIL ? pw_guardrail_name(r->d.guardrail) : NULL);
	pw_jw_obj_end(w);
}

/* The request's members into the object open in w. */
void pw_approval_write(struct pw_jw *w, const struct req *r)
{
	char when[40];
	pw_jw_str(w, "id", r->id);
	pw_jw_str(w, "state", pw_approval_state_name(r->state));
	pw_jw_str(w, "node", r->node);
	pw_jw_uint(w, "session", r->session);
	pw_jw_str(w, "identity", r->identity);
	pw_jw_str(w, "user", r->user);
	pw_jw_str(w, "database", r->database);
	pw_jw_str(w, "client", r->client);
	pw_jw_raw(w, "kernel", r->kernel, strlen(r->kernel));
	write_stmt(w, r);
	time_str(when, sizeof(when), &r->created);
	pw_jw_str(w, "created", when);
	struct timespec exp = r->created;
	exp.tv_sec += r->timeout_s;
	time_str(when, sizeof(when), &exp);
	pw_jw_str(w, "expires", when);
	if (r->state == PW_AS_PENDING) {
		pw_jw_null(w, "decided");
		return;
	}
	pw_jw_obj(w, "decided");
	time_str(when, sizeof(when), &r->decided_at);
	pw_jw_str(w, "at", when);
	pw_jw_str(w, "by", r->decided_by);
	if (r->decided_uid >= 0)
		pw_jw_int(w, "uid", r->decided_uid);
	else
		pw_jw_null(w, "uid");
	pw_jw_str(w, "scope", r->state == PW_AS_APPROVED ? pw_approval_scope_name(r->scope) : NULL);
	if (r->state == PW_AS_APPROVED && r->scope == PW_SCOPE_FINGERPRINT)
		pw_jw_int(w, "for_seconds", r->for_s);
	else
		pw_jw_null(w, "for_seconds");
	pw_jw_str(w, "reason", r->reason[0] ? r->reason : NULL);
	pw_jw_obj_end(w);
}

char *pw_approval_kernel_json(const struct pw_kernel_facts *kf)
{
	struct pw_jw w;
	pw_jw_init(&w, 0);
	pw_jw_obj(&w, NULL);
	pw_audit_kernel(&w, "k", kf);
	pw_jw_obj_end(&w);
	char *out = NULL;
	/* {"k":VALUE}: the value alone */
	if (pw_jw_ok(&w) && w.len > 6)
		out = strndup(w.p + 5, w.len - 6);
	pw_jw_free(&w);
	return out;
}
