/* Masking plans: a statement's traced columns made a plan, and a result column of a plan made
 * what the wire does to it. See include/pgward/mask.h. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mask_trace.h"
#include "pgward/detect.h"
#include "pgward/inspect.h"
#include "pgward/sql_parse.h"

const char *pw_mask_kind_name(enum pw_mask_kind k)
{
	static const char *const names[] = {
	    [PW_MK_CLEAN] = "clean", [PW_MK_COLUMN] = "column", [PW_MK_DERIVED] = "derived"};
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

/* ---- plans -------------------------------------------------------------------------------- */

struct job {
	const struct pw_mask_scope *sc;
	const struct pw_sql_result *r;
	struct pw_mask_plan **plans;
	struct pw_deny *d;
};

static struct pw_mask_plan *plan_of(const struct shape *s, bool touches)
{
	int n = s && !s->unknown ? s->n : 0;
	struct pw_mask_plan *p = calloc(1, sizeof(*p) + (size_t)n * sizeof(p->cols[0]));
	if (!p)
		return NULL;
	p->refs = 1;
	p->touches = touches;
	p->mapped = !s || !s->unknown;
	p->n = n;
	for (int i = 0; i < n; i++)
		p->cols[i] = (struct pw_mask_src){.kind = s->cols[i].t.kind,
		                                  .detect = s->cols[i].t.detect,
		                                  .pred_ok = s->cols[i].t.pred_ok,
		                                  .rule = s->cols[i].t.rule,
		                                  .type = s->cols[i].t.type};
	return p;
}

static int plan_tree(const PgQuery__ParseResult *tree, void *arg)
{
	struct job *j = arg;
	if ((int)tree->n_stmts != j->r->nstmts && !(tree->n_stmts == 0 && j->r->nstmts <= 1)) {
		pw_deny_set(j->d, "0A000", "pgward: masking could not read the statement");
		return -1;
	}
	for (size_t i = 0; i < tree->n_stmts; i++) {
		struct tr t = {.sc = j->sc, .cat = j->sc->ps ? j->sc->ps->cat : NULL, .d = j->d};
		struct pw_mask_plan hint = {0};
		struct shape *s = mt_stmt_shape_hint(&t, NULL, tree->stmts[i]->stmt, &hint);
		if (!t.denied) {
			j->plans[i] =
			    plan_of(s, t.touches || (s && (mt_tainted(s->all) || s->all.detect)));
			if (!j->plans[i])
				pw_deny_set(j->d, "53200", "pgward: out of memory");
			else {
				/* what the statement said besides its columns */
				struct pw_mask_plan *p = j->plans[i];
				hint.refs = p->refs;
				hint.touches = p->touches;
				hint.mapped = p->mapped;
				hint.n = p->n;
				memcpy(p, &hint, sizeof(hint));
			}
		}
		for (size_t k = 0; k < t.nmem; k++)
			free(t.mem[k]);
		free(t.mem);
		for (int k = 0; k < t.ntrees; k++)
			pg_query__parse_result__free_unpacked(t.trees[k], NULL);
		if (t.denied || !j->plans[i])
			return -1;
	}
	return 0;
}

int pw_mask_plan_text(const struct pw_mask_scope *sc, const char *text, size_t len,
                      const struct pw_sql_result *r, struct pw_mask_plan **plans, struct pw_deny *d)
{
	char err[256];
	struct job j = {.sc = sc, .r = r, .plans = plans, .d = d};
	for (int i = 0; i < r->nstmts; i++)
		plans[i] = NULL;
	if (!sc->ps || !sc->ps->cat) {
		pw_deny_set(d, "0A000", "pgward: masking needs the catalog, which is not loaded");
		return -1;
	}
	/* the catalog is what masks rest on (which column is which): an identity with masks
	 * does not write it (UPDATE pg_attribute SET attname ...) */
	for (int i = 0; i < r->nrels; i++)
		if ((r->rels[i].access & PW_SQL_WRITE) &&
		    strcmp(r->rels[i].schema, "pg_catalog") == 0)
			return pw_deny_set(
			    d, "42501",
			    "pgward: identity %s may not write pg_catalog.%s: masks rest "
			    "on what the catalog says (masking)",
			    sc->id->name, r->rels[i].name);
	d->sqlstate[0] = 0;
	int rc = pw_sql_parse_tree(text, len, plan_tree, &j, err, sizeof(err));
	if (rc < 0) {
		for (int i = 0; i < r->nstmts; i++) {
			pw_mask_plan_unref(plans[i]);
			plans[i] = NULL;
		}
		if (!d->sqlstate[0])
			pw_deny_set(d, "42601", "pgward: masking could not read the statement: %s",
			            err);
	}
	return rc;
}

struct pw_mask_plan *pw_mask_plan_ref(struct pw_mask_plan *p)
{
	if (p)
		p->refs++; /* plans belong to one session, on one worker */
	return p;
}

void pw_mask_plan_unref(struct pw_mask_plan *p)
{
	if (p && --p->refs == 0)
		free(p);
}

struct pw_mask_plan *pw_mask_plan_opaque(void)
{
	struct pw_mask_plan *p = calloc(1, sizeof(*p));
	if (p) {
		p->refs = 1;
		p->touches = true;
	}
	return p;
}

/* ---- a result column ---------------------------------------------------------------------- */

void pw_mask_column(const struct pw_mask_scope *sc, const struct pw_mask_plan *p, int i, int n,
                    uint32_t table, int16_t attnum, uint32_t type, int16_t format,
                    struct pw_mask_col *out)
{
	const struct pw_policy *pol = &sc->id->policy;
	static const struct pw_mask_src clean = {PW_MK_CLEAN, false, true, -1, 0},
	                                masked = {PW_MK_DERIVED, true, false, -1, 0};
	/* rows of another width than planned, or of a statement planned to return none: which
	 * column is which is not known (the catalog changed meanwhile, a rule rewrote it) */
	struct pw_mask_src s = masked;
	if (p && p->rows_clean)
		s = clean;
	else if (p && p->mapped)
		s = n == p->n && i < p->n ? p->cols[i] : masked;
	else if (p && !p->touches)
		s = clean;
	const struct pw_catalog *cat = sc->ps ? sc->ps->cat : NULL;
	const struct pw_cat_rel *rel = table ? pw_catalog_relation(cat, table) : NULL;
	/* a table's column named by the RowDescription: what the rules say of it (a view's is
	 * the plan's, which traced the view's definition) */
	if (rel && rel->kind != 'v' && rel->kind != 'm' && attnum >= 1 && attnum <= rel->ncols &&
	    rel->cols[attnum - 1]) {
		struct taint o = mt_col_taint(sc, rel->schema, rel->name, rel->cols[attnum - 1], 0);
		if (o.kind != PW_MK_CLEAN && s.kind == PW_MK_CLEAN) {
			s.kind = o.kind;
			s.rule = o.rule;
		}
		s.detect |= o.detect;
	}
	memset(out, 0, sizeof(*out));
	out->type_oid = type ? type : s.type;
	out->format = format;
	if (s.kind != PW_MK_CLEAN) {
		const struct pw_rule *r =
		    s.rule >= 0 && s.rule < pol->n_rules ? &pol->rules[s.rule] : NULL;
		out->mask = true;
		out->strategy = PW_MASK_REDACT;
		if (r && s.kind == PW_MK_COLUMN) {
			out->strategy = r->strategy;
			out->keep = r->keep;
		} else if (r && r->strategy == PW_MASK_NULL) {
			out->strategy = PW_MASK_NULL;
		}
		/* a derived value is never hashed (hashes of chosen expressions would compare
		 * values), and its NULLs are masked too (NULLIF, CASE would tell) */
		out->nulls = s.kind == PW_MK_DERIVED;
		return;
	}
	bool all = false;
	for (int k = 0; k < pol->n_rules; k++)
		all |= pol->rules[k].action == PW_ACT_MASK && pol->rules[k].detectors &&
		       !pol->rules[k].n_columns;
	out->detect = s.detect || all;
}

void pw_mask_detectors(const struct pw_identity *id, struct pw_mask_detectors *out)
{
	memset(out, 0, sizeof(*out));
	const struct pw_policy *p = &id->policy;
	/* the first rule naming a detector gives its strategy */
	for (int k = 0; k < p->n_rules; k++) {
		const struct pw_rule *r = &p->rules[k];
		if (r->action != PW_ACT_MASK)
			continue;
		for (int d = 0; d < PW_DET_N; d++)
			if ((r->detectors & (1u << d)) && !(out->set & (1u << d))) {
				out->set |= 1u << d;
				out->strategy[d] = r->strategy;
				out->keep[d] = r->keep;
			}
	}
}
