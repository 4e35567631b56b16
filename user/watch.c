/* `session watch` lines: see include/pgward/watch.h. */
#include <time.h>

#include "pgward/control.h"
#include "pgward/jw.h"
#include "pgward/sql_class.h"
#include "pgward/watch.h"

#define WATCH_TEXT_MAX 4096

void pw_watch_statement(const struct pw_caller *c, const struct pw_stmt *m, const char *decision,
                        const struct pw_deny *d, const struct pw_inspect_facts *f,
                        const char *approval)
{
	static __thread struct pw_jw w; /* the thread's builder: its memory is kept */
	struct timespec ts;
	char when[40];
	if (!pw_control_watched(PW_TOPIC_STATEMENTS))
		return;
	if (!w.max_field)
		pw_jw_init(&w, WATCH_TEXT_MAX);
	pw_jw_reset(&w);
	clock_gettime(CLOCK_REALTIME, &ts);
	pw_jw_time(when, sizeof(when), ts.tv_sec, ts.tv_nsec);
	pw_jw_obj(&w, NULL);
	pw_jw_str(&w, "ts", when);
	pw_jw_uint(&w, "session", c->serial);
	pw_jw_str(&w, "identity", c->identity ? c->identity->name : NULL);
	pw_jw_strn(&w, "type", (const char *)&m->type, 1);
	if (m->type == 'Q' || m->type == 'P')
		pw_jw_strn(&w, "text", m->sql, m->sql_len);
	else
		pw_jw_null(&w, "text");
	pw_jw_str(&w, "decision", decision);
	if (f) {
		pw_jw_str(&w, "by", f->d.approved ? "approval" : pw_decided_by_name(f->d.by));
		if (f->d.by == PW_BY_RULE && f->d.rule)
			pw_jw_int(&w, "rule", f->d.rule);
		else
			pw_jw_null(&w, "rule");
		pw_jw_str(&w, "guardrail",
		          f->d.by == PW_BY_GUARDRAIL ? pw_guardrail_name(f->d.guardrail) : NULL);
	} else {
		pw_jw_str(&w, "by", "limit");
		pw_jw_null(&w, "rule");
		pw_jw_null(&w, "guardrail");
	}
	pw_jw_str(&w, "sqlstate", d ? d->sqlstate : NULL);
	pw_jw_str(&w, "message", d ? d->message : NULL);
	pw_jw_str(&w, "approval", approval && approval[0] ? approval : NULL);
	pw_jw_obj_end(&w);
	if (pw_jw_ok(&w))
		pw_control_publish(PW_TOPIC_STATEMENTS, c->serial, w.p, w.len);
}
