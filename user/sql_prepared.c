/* The prepared-statement store of a session: see include/pgward/sql_prepared.h. A session's
 * store belongs to that session's thread (no locks). */
#include "pgward/sql_prepared.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pw_sql_prepared {
	char name[PW_SQL_NAMELEN];
	enum pw_sql_class cls;
	uint32_t flags, runs;
	int nrels, nfuncs;
	bool approved; /* prepared by a text a person approved (pw_sql_session.approving) */
	struct pw_sql_rel *rels; /* resolved when remembered: the server fixes search_path then */
	struct pw_sql_func *funcs;
};

static int find_prepared(const struct pw_sql_session *s, const char *name)
{
	for (size_t i = 0; i < s->n_prepared; i++)
		if (strcmp(s->prepared[i]->name, name) == 0)
			return (int)i;
	return -1;
}

const struct pw_sql_prepared *pw_sql_prepared_lookup(const struct pw_sql_session *s,
                                                     const char *name)
{
	int i = s && name ? find_prepared(s, name) : -1;

	return i < 0 ? NULL : s->prepared[i];
}

enum pw_sql_class pw_sql_prepared_class(const struct pw_sql_prepared *p)
{
	return p->cls;
}

bool pw_sql_prepared_approved(const struct pw_sql_prepared *p)
{
	return p->approved;
}

void pw_sql_prepared_forget(struct pw_sql_session *s, const char *name)
{
	for (size_t i = 0; i < s->n_prepared;) {
		if (!name || strcmp(s->prepared[i]->name, name) == 0) {
			free(s->prepared[i]);
			s->prepared[i] = s->prepared[--s->n_prepared];
			continue;
		}
		i++;
	}
}

int pw_sql_prepared_remember(struct pw_sql_session *s, const char *name,
                             const struct pw_sql_result *r, int i)
{
	const struct pw_sql_stmt *st;
	struct pw_sql_prepared *p;
	int nrels = 0, nfuncs = 0;

	if (i < 0 || i >= r->nstmts || strlen(name) >= PW_SQL_NAMELEN)
		return -1;
	st = &r->stmts[i];
	for (int k = 0; k < r->nrels; k++)
		nrels += r->rels[k].stmt == i;
	for (int k = 0; k < r->nfuncs; k++)
		nfuncs += r->funcs[k].stmt == i;
	/* A name prepared again while the store has it: the server refuses a PREPARE or a named
	 * Parse of a name it holds (42P05), unless the old one was deallocated in a way the
	 * store did not see (a protocol Close). Which one runs under the name is not known here:
	 * the entry becomes both, and EXECUTE is judged as the stricter of the two. The unnamed
	 * statement ("") is replaced, as the server replaces it. */
	int at = name[0] ? find_prepared(s, name) : -1;
	const struct pw_sql_prepared *old = at >= 0 ? s->prepared[at] : NULL;
	int orels = old ? old->nrels : 0, ofuncs = old ? old->nfuncs : 0;
	if (!old)
		pw_sql_prepared_forget(s, name);
	if (!old && s->n_prepared >= PW_SQL_MAX_PREPARED)
		return -1;
	p = calloc(1, sizeof(*p) + sizeof(struct pw_sql_rel) * (size_t)(nrels + orels) +
	                  sizeof(struct pw_sql_func) * (size_t)(nfuncs + ofuncs));
	if (!p)
		return -1;
	p->rels = (struct pw_sql_rel *)(p + 1);
	p->funcs = (struct pw_sql_func *)(p->rels + nrels + orels);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->cls = st->cls == PW_SQL_PREPARE ? st->inner : st->cls;
	p->flags = st->flags & ~(uint32_t)PW_SQL_F_NOT_EXECUTED;
	p->runs = (st->runs & ~(1u << PW_SQL_PREPARE)) | (1u << p->cls);
	p->approved = s->approving;
	for (int k = 0; k < r->nrels; k++)
		if (r->rels[k].stmt == i)
			p->rels[p->nrels++] = r->rels[k];
	for (int k = 0; k < r->nfuncs; k++)
		if (r->funcs[k].stmt == i)
			p->funcs[p->nfuncs++] = r->funcs[k];
	if (old) {
		p->approved |= old->approved;
		p->flags |= old->flags;
		p->runs |= old->runs;
		for (int k = 0; k < old->nrels; k++)
			p->rels[p->nrels++] = old->rels[k];
		for (int k = 0; k < old->nfuncs; k++)
			p->funcs[p->nfuncs++] = old->funcs[k];
		free(s->prepared[at]);
		s->prepared[at] = p;
		return 0;
	}
	s->prepared[s->n_prepared++] = p;
	return 0;
}

int pw_sql_session_apply(struct pw_sql_session *s, const struct pw_sql_result *r)
{
	int rc = 0;

	for (int i = 0; i < r->nstmts; i++) {
		const struct pw_sql_stmt *st = &r->stmts[i];

		if (st->cls == PW_SQL_PREPARE) {
			if (pw_sql_prepared_remember(s, st->object, r, i) != 0)
				rc = -1;
		} else if (st->flags & PW_SQL_F_FORGET_PREPARED) {
			pw_sql_prepared_forget(s, st->object[0] ? st->object : NULL);
		}
	}
	return rc;
}

void pw_sql_session_free(struct pw_sql_session *s)
{
	pw_sql_prepared_forget(s, NULL);
}

int pw_sql_prepared_expand(const struct pw_sql_prepared *p, struct pw_sql_result *out, int i,
                           bool explain)
{
	struct pw_sql_stmt *st = &out->stmts[i];

	if (!explain)
		st->inner = p->cls;
	st->flags |= p->flags;
	st->runs |= p->runs;
	for (int k = 0; k < p->nrels; k++) {
		if (out->nrels >= PW_SQL_MAX_RELS)
			return -1;
		out->rels[out->nrels] = p->rels[k];
		out->rels[out->nrels].stmt = (uint16_t)i;
		/* EXPLAIN EXECUTE without ANALYZE plans only */
		if (explain && (st->flags & PW_SQL_F_NOT_EXECUTED))
			out->rels[out->nrels].access = PW_SQL_READ;
		out->nrels++;
	}
	for (int k = 0; k < p->nfuncs; k++) {
		if (out->nfuncs >= PW_SQL_MAX_FUNCS)
			return -2;
		out->funcs[out->nfuncs] = p->funcs[k];
		out->funcs[out->nfuncs++].stmt = (uint16_t)i;
	}
	return 0;
}
