/* Content detectors for masking (issue: inline masking): find sensitive values inside a text
 * cell whatever column they came from. Each detector runs in time linear in the text (a scan
 * for its anchor, then a bounded look around it: no backtracking), and checks what can be
 * checked (a card's Luhn digit, an IBAN's mod-97, an SSN's reserved ranges, an address as
 * inet_pton reads it) so that near misses are not masked. */
#ifndef PGWARD_DETECT_H
#define PGWARD_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pw_detector {
	PW_DET_EMAIL,
	PW_DET_CARD,  /* payment card numbers: 13-19 digits (spaces or dashes between), Luhn */
	PW_DET_SSN,   /* US social security numbers: AAA-GG-SSSS outside the unissued ranges */
	PW_DET_PHONE, /* E.164: + then 8 to 15 digits */
	PW_DET_IBAN,  /* country, check digits, up to 30 more: mod 97 = 1 */
	PW_DET_IPV4,
	PW_DET_IPV6,
	PW_DET_JWT,     /* three base64url parts, the header a JSON object ("eyJ") */
	PW_DET_AWS_KEY, /* AKIA/ASIA access key ids */
	PW_DET_GITHUB,  /* ghp_, gho_, ghu_, ghs_, ghr_ and github_pat_ tokens */
	PW_DET_SLACK,   /* xoxb-, xoxp-, xoxa-, xoxr-, xoxs- tokens */
	PW_DET_PEM_KEY, /* -----BEGIN ... PRIVATE KEY----- up to its END line */
	PW_DET_N
};
#define PW_DET_ALL ((1u << PW_DET_N) - 1)

/* The detector's name in the configuration ("email", "card", ...), and back (-1: none). */
const char *pw_detector_name(enum pw_detector d);
int pw_detector_from_name(const char *name);

struct pw_detect_match {
	size_t off, len;
	enum pw_detector what;
};

/* The first match at or after from in s[0, n) of the detectors in the set (a bit per
 * enum pw_detector); false when there is none. Matches do not overlap when callers go on
 * from off + len. */
bool pw_detect_next(const uint8_t *s, size_t n, size_t from, uint32_t set,
                    struct pw_detect_match *m);
#endif
