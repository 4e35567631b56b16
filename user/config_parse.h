/* Private to the configuration reader (config*.c): the sections parsed in files of their own,
 * and what they share. Everything public is in pgward/config.h. */
#ifndef PGWARD_CONFIG_PARSE_H
#define PGWARD_CONFIG_PARSE_H

#include <jansson.h>

#include "pgward/config.h"
#include "pgward/jsonpath.h"

#define N_ELEMS(a)  (sizeof(a) / sizeof((a)[0]))
#define SECONDS_MAX 2147483.0 /* so that the value in ms still fits an int */

/* One step of a section: a failure stops the section unless the reader collects errors, when
 * it is noted in bad and the next step runs, so that one check reports every error it can. */
#define STEP(x, bad, call)                                                                         \
	do {                                                                                       \
		if ((call) < 0) {                                                                  \
			(bad) = true;                                                              \
			if (pw_jp_stop(x))                                                         \
				return -1;                                                         \
		}                                                                                  \
	} while (0)

/* config.c: a required top-level section, a non-empty array (or object) of what ("listener"),
 * into *v; returns zeroed room for its elements, or NULL when it is missing, empty or there is
 * no memory (said through x). */
void *pw_cfg_section(struct pw_jp *x, const json_t *root, const char *key, bool array,
                     const char *what, size_t elem, json_t **v);
/* config.c: a secret file (a password, a key) read whole, up to cap bytes into buf (*n of
 * them; cap reached: more may follow), its mode in *mode (may be NULL); what names it in
 * messages ("password file"). 0, or -1 said through x. The caller wipes buf. */
int pw_cfg_read_secret(struct pw_jp *x, const char *jp, const char *file, const char *what,
                       void *buf, size_t cap, size_t *n, unsigned *mode);
/* config_upstream.c */
int pw_cfg_parse_upstreams(struct pw_jp *x, const json_t *root, struct pw_config *c);
/* config_audit.c: the trail (audit.h) */
int pw_cfg_parse_audit(struct pw_jp *x, const json_t *root, struct pw_config *c);
/* config_record.c: where session recordings go (record.h); before the identities */
int pw_cfg_parse_recording(struct pw_jp *x, const json_t *root, struct pw_config *c);
/* config_redirect.c */
int pw_cfg_parse_redirect(struct pw_jp *x, const json_t *root, struct pw_config *c);
/* config_control.c: "control", "metrics" and "approvals" (after the upstreams), and an
 * identity's "approvals" (who decides its held statements) */
int pw_cfg_parse_control(struct pw_jp *x, const json_t *root, struct pw_config *c);
int pw_cfg_identity_approvals(struct pw_jp *x, const json_t *e, const char *jp,
                              struct pw_policy *p);
/* config_policy.c: identities with their policies, after upstreams, redirect and jwt */
int pw_cfg_parse_identities(struct pw_jp *x, const json_t *root, struct pw_config *c);
void pw_cfg_policy_free(struct pw_policy *p);
/* config_mask.c: a rule's mask keys (and none on another rule), an identity's unmask list
 * after its rules, and the key file after the identities */
int pw_cfg_mask_rule(struct pw_jp *x, const json_t *e, const char *jp, struct pw_rule *r);
int pw_cfg_mask_policy(struct pw_jp *x, const json_t *e, const char *jp, struct pw_policy *p);
int pw_cfg_mask_key(struct pw_jp *x, const json_t *root, struct pw_config *c);
/* config_mask.c: a list of detector names (or "all") at key of e into *set (a bit per
 * enum pw_detector); 0 when absent (set untouched), -1 said through x */
int pw_cfg_detector_set(struct pw_jp *x, const json_t *e, const char *jp, const char *key,
                        uint32_t *set);

#endif
