/* The masking part of the configuration: mask rules (columns or detectors, a strategy), an
 * identity's unmask list, and the hash strategy's key file. mask.c plans by them. */
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"
#include "pgward/detect.h"

static const char *const mask_keys[] = {"columns", "detectors", "strategy", "keep", "predicates"};

/* "schema.table.column" globs: all three parts, so that a mask cannot be read two ways. */
static int check_columns(struct pw_jp *x, const char *jp, const char *globs, int n)
{
	char sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];
	for (int i = 0; i < n; i++) {
		const char *g = globs + (size_t)i * PW_COLGLOB_MAX;
		const char *a = strchr(g, '.'), *b = a ? strchr(a + 1, '.') : NULL;
		if (!a || !b || a == g || b == a + 1 || !b[1] || strchr(b + 1, '.')) {
			pw_jp_index(sub, jp, (size_t)i);
			return pw_jp_fail(x, sub,
			                  "expected \"schema.table.column\" (globs allowed, as "
			                  "\"public.*.ssn\"), got %s",
			                  pw_jp_quote(q, g));
		}
	}
	return 0;
}

int pw_cfg_detector_set(struct pw_jp *x, const json_t *e, const char *jp, const char *key,
                        uint32_t *set)
{
	char jp2[PW_JP_PATH_MAX], sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX], *list = NULL;
	int n, rc = 0;
	if (!pw_jp_member(e, key))
		return 0;
	if (pw_jp_names(x, e, jp, key, PW_NAME_MAX, PW_DET_N + 1, &list, &n) < 0) {
		free(list);
		return -1;
	}
	*set = 0;
	pw_jp_key(jp2, jp, key);
	for (int i = 0; i < n && rc == 0; i++) {
		const char *name = list + (size_t)i * PW_NAME_MAX;
		int d = strcmp(name, "all") == 0 ? PW_DET_N : pw_detector_from_name(name);
		if (d < 0) {
			pw_jp_index(sub, jp2, (size_t)i);
			rc = pw_jp_fail(
			    x, sub,
			    "expected \"all\" or a detector (email, card, ssn, phone, iban, "
			    "ipv4, ipv6, jwt, aws_key, github_token, slack_token, "
			    "private_key), got %s",
			    pw_jp_quote(q, name));
		} else {
			*set |= d == PW_DET_N ? PW_DET_ALL : 1u << d;
		}
	}
	free(list);
	return rc;
}

static int rule_detectors(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	return pw_cfg_detector_set(x, e, jp, "detectors", &r->detectors);
}

int pw_cfg_mask_rule(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r)
{
	char sub[PW_JP_PATH_MAX];
	if (r->action != PW_ACT_MASK) {
		for (size_t k = 0; k < N_ELEMS(mask_keys); k++)
			if (pw_jp_member(e, mask_keys[k])) {
				pw_jp_key(sub, jp, mask_keys[k]);
				return pw_jp_fail(x, sub,
				                  "only a rule with \"action\": \"mask\" has it");
			}
		return 0;
	}
	/* a mask rule says what is masked; which statements run is for the other rules */
	static const char *const deciding[] = {"class", "relations", "functions", "access",
	                                       "facts"};
	for (size_t k = 0; k < N_ELEMS(deciding); k++)
		if (pw_jp_member(e, deciding[k])) {
			pw_jp_key(sub, jp, deciding[k]);
			return pw_jp_fail(
			    x, sub,
			    "a mask rule does not decide statements: name what it masks "
			    "with \"columns\" and \"detectors\"");
		}
	int strategy = 0, rc;
	long long keep = 4;
	const char *names[PW_MASK_N];
	for (int i = 0; i < PW_MASK_N; i++)
		names[i] = pw_mask_strategy_name((enum pw_mask_strategy)i);
	if (pw_jp_names(x, e, jp, "columns", PW_COLGLOB_MAX, 256, (char **)&r->columns,
	                &r->n_columns) < 0)
		return -1;
	pw_jp_key(sub, jp, "columns");
	if (check_columns(x, sub, (const char *)r->columns, r->n_columns) < 0 ||
	    rule_detectors(x, e, jp, r) < 0 ||
	    pw_jp_enum(x, e, jp, "strategy", names, PW_MASK_N, PW_JP_REQUIRED, &strategy) < 0 ||
	    (rc = pw_jp_int(x, e, jp, "keep", 1, 64, 0, &keep)) < 0 ||
	    pw_jp_bool(x, e, jp, "predicates", &r->predicates) < 0)
		return -1;
	r->strategy = (enum pw_mask_strategy)strategy;
	r->keep = (int)keep;
	if (!r->n_columns && !r->detectors)
		return pw_jp_fail(x, jp,
		                  "a mask rule needs \"columns\" (what it masks) or \"detectors\" "
		                  "(what it finds in text), or both");
	if (rc > 0 && r->strategy != PW_MASK_PARTIAL) {
		pw_jp_key(sub, jp, "keep");
		return pw_jp_fail(x, sub, "only meaningful with \"strategy\": \"partial\"");
	}
	if (r->predicates && !r->n_columns) {
		pw_jp_key(sub, jp, "predicates");
		return pw_jp_fail(x, sub, "only meaningful with \"columns\"");
	}
	return 0;
}

int pw_cfg_mask_policy(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p)
{
	char sub[PW_JP_PATH_MAX];
	for (int i = 0; i < p->n_rules; i++)
		p->has_masks |= p->rules[i].action == PW_ACT_MASK;
	if (pw_jp_names(x, e, jp, "unmask", PW_COLGLOB_MAX, 256, (char **)&p->unmask,
	                &p->n_unmask) < 0)
		return -1;
	pw_jp_key(sub, jp, "unmask");
	if (check_columns(x, sub, (const char *)p->unmask, p->n_unmask) < 0)
		return -1;
	if (p->n_unmask && !p->has_masks)
		return pw_jp_fail(x, sub, "only meaningful for an identity with mask rules");
	return 0;
}

static int read_key(struct pw_jp *x, const char *jp, const char *file, struct pw_mask_key *k)
{
	char q[PW_JP_QUOTE_MAX];
	uint8_t buf[PW_MASK_KEY_MAX + 1]; /* one more byte to see it is too long */
	size_t n = 0;
	unsigned mode = 0;
	int rc = pw_cfg_read_secret(x, jp, file, "key file", buf, sizeof(buf), &n, &mode);

	pw_jp_quote(q, file);
	if (rc == 0 && (n < 32 || n > PW_MASK_KEY_MAX))
		rc = pw_jp_fail(x, jp, "key file %s must hold 32 to %d bytes, it has %s%zu", q,
		                PW_MASK_KEY_MAX, n > PW_MASK_KEY_MAX ? "more than " : "",
		                n > PW_MASK_KEY_MAX ? (size_t)PW_MASK_KEY_MAX : n);
	else if (rc == 0 && (mode & 0077))
		rc = pw_jp_fail(x, jp, "key file %s is readable by others (mode %04o): chmod 600",
		                q, mode);
	if (rc == 0) {
		memcpy(k->k, buf, n);
		k->len = n;
	}
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int pw_cfg_mask_key(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	char file[PATH_MAX];
	int rc = pw_jp_str(x, root, "$", "mask_key_file", file, sizeof(file), PW_JP_NONEMPTY);
	if (rc < 0)
		return -1;
	if (rc)
		return read_key(x, "$.mask_key_file", file, &c->mask_key);
	for (int i = 0; i < c->n_identities; i++)
		for (int j = 0; j < c->identities[i].policy.n_rules; j++) {
			const struct pw_rule *r = &c->identities[i].policy.rules[j];
			if (r->action == PW_ACT_MASK && r->strategy == PW_MASK_HASH) {
				char jp[PW_JP_PATH_MAX];
				snprintf(jp, sizeof(jp), "$.identities[%d].rules[%d].strategy", i,
				         j);
				return pw_jp_fail(x, jp,
				                  "the hash strategy needs \"mask_key_file\"");
			}
		}
	return 0;
}
