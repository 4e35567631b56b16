/* Content detectors. See include/pgward/detect.h.
 *
 * Every detector is tried only where a match may start: at its anchor, with nothing before it
 * that would make the value part of a longer token (the left boundary). A try looks ahead a
 * bounded distance, or, for the long ones (JWT, PEM), once per token: so the whole scan is
 * linear in the text. */
#include <arpa/inet.h>
#include <string.h>

#include "pgward/detect.h"

static const char *const names[PW_DET_N] = {
    [PW_DET_EMAIL] = "email",       [PW_DET_CARD] = "card",
    [PW_DET_SSN] = "ssn",           [PW_DET_PHONE] = "phone",
    [PW_DET_IBAN] = "iban",         [PW_DET_IPV4] = "ipv4",
    [PW_DET_IPV6] = "ipv6",         [PW_DET_JWT] = "jwt",
    [PW_DET_AWS_KEY] = "aws_key",   [PW_DET_GITHUB] = "github_token",
    [PW_DET_SLACK] = "slack_token", [PW_DET_PEM_KEY] = "private_key",
};

const char *pw_detector_name(enum pw_detector d)
{
	return (unsigned)d < PW_DET_N ? names[d] : "?";
}

int pw_detector_from_name(const char *name)
{
	for (int i = 0; i < PW_DET_N; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

static bool digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}

static bool alpha(uint8_t c)
{
	return upper(c) || (c >= 'a' && c <= 'z');
}

static bool alnum(uint8_t c)
{
	return digit(c) || alpha(c);
}

static bool hex(uint8_t c)
{
	return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool b64url(uint8_t c)
{
	return alnum(c) || c == '-' || c == '_';
}

static bool email_local(uint8_t c)
{
	return alnum(c) || (c && strchr(".!#$%&'*+/=?^_`{|}~-", c));
}

/* The text around: what precedes i, what follows a match ending at e. */
struct text {
	const uint8_t *s;
	size_t n;
};

static uint8_t before(const struct text *t, size_t i)
{
	return i ? t->s[i - 1] : 0;
}

static uint8_t at(const struct text *t, size_t i)
{
	return i < t->n ? t->s[i] : 0;
}

static bool prefix(const struct text *t, size_t i, const char *p)
{
	size_t l = strlen(p);
	return i + l <= t->n && !memcmp(t->s + i, p, l);
}

/* ---- numbers ---- */

static bool luhn(const uint8_t *d, size_t n)
{
	unsigned sum = 0;
	for (size_t k = 0; k < n; k++) {
		unsigned v = d[n - 1 - k];
		if (k % 2 && (v *= 2) > 9)
			v -= 9;
		sum += v;
	}
	return sum % 10 == 0;
}

/* Where separators stand in a card number of m digits (sep[k]: one after digit k): none, or
 * the printed groups: 4-4-4-4 (then up to 3 more), or 4-6-5 and 4-6-4. */
static bool card_groups(const char *sep, size_t m)
{
	int pos[8], np = 0;
	char first = 0;
	for (size_t k = 0; k + 1 < m; k++)
		if (sep[k]) {
			if (np == 8 || (first && sep[k] != first))
				return false;
			first = sep[k];
			pos[np++] = (int)k + 1;
		}
	if (!np)
		return true;
	if (pos[0] != 4)
		return false;
	if (np == 2 && pos[1] == 10)
		return m == 14 || m == 15; /* 4-6-4, 4-6-5 */
	for (int k = 1; k < np; k++)
		if (pos[k] != pos[k - 1] + 4)
			return false;
	return (int)m - pos[np - 1] <= 4 && (int)m - pos[np - 1] >= 1;
}

/* 13 to 19 digits, single spaces or dashes between printed groups: the longest that passes
 * Luhn. */
static size_t card(const struct text *t, size_t i)
{
	if (!digit(at(t, i)) || alnum(before(t, i)))
		return 0;
	uint8_t d[19];
	char sep[19] = {0};
	size_t end[19], nd = 0, k = i;
	while (nd < 19 && digit(at(t, k))) {
		d[nd] = at(t, k) - '0';
		end[nd++] = ++k;
		if ((at(t, k) == ' ' || at(t, k) == '-') && digit(at(t, k + 1)))
			sep[nd - 1] = (char)at(t, k++);
	}
	for (size_t m = nd; m >= 13; m--)
		if (!digit(at(t, end[m - 1])) && !alpha(at(t, end[m - 1])) && card_groups(sep, m) &&
		    luhn(d, m))
			return end[m - 1] - i;
	return 0;
}

static unsigned num(const struct text *t, size_t i, size_t n)
{
	unsigned v = 0;
	for (size_t k = 0; k < n; k++)
		v = v * 10 + (unsigned)(at(t, i + k) - '0');
	return v;
}

static bool digits(const struct text *t, size_t i, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (!digit(at(t, i + k)))
			return false;
	return true;
}

/* AAA-GG-SSSS (or with spaces), none of the never-issued ranges. */
static size_t ssn(const struct text *t, size_t i)
{
	if (alnum(before(t, i)) || !digits(t, i, 3))
		return 0;
	uint8_t sep = at(t, i + 3);
	if ((sep != '-' && sep != ' ') || !digits(t, i + 4, 2) || at(t, i + 6) != sep ||
	    !digits(t, i + 7, 4) || alnum(at(t, i + 11)))
		return 0;
	unsigned area = num(t, i, 3), group = num(t, i + 4, 2), serial = num(t, i + 7, 4);
	if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
		return 0;
	return 11;
}

/* E.164: + then 8 to 15 digits, the first not 0. */
static size_t phone(const struct text *t, size_t i)
{
	if (at(t, i) != '+' || alnum(before(t, i)) || !digit(at(t, i + 1)) || at(t, i + 1) == '0')
		return 0;
	size_t k = i + 1;
	while (k - i - 1 < 16 && digit(at(t, k)))
		k++;
	size_t nd = k - i - 1;
	return nd >= 8 && nd <= 15 && !alnum(at(t, k)) ? k - i : 0;
}

/* Country, check digits, 11 to 30 letters or digits (single spaces between groups allowed):
 * the longest whose mod 97 is 1. */
static size_t iban(const struct text *t, size_t i)
{
	if (!upper(at(t, i)) || !upper(at(t, i + 1)) || !digit(at(t, i + 2)) ||
	    !digit(at(t, i + 3)) || alnum(before(t, i)))
		return 0;
	uint8_t c[34];
	size_t end[34], nc = 0, k = i;
	while (nc < 34 && (upper(at(t, k)) || digit(at(t, k)))) {
		c[nc] = at(t, k);
		end[nc++] = ++k;
		if (at(t, k) == ' ' && (upper(at(t, k + 1)) || digit(at(t, k + 1))))
			k++;
	}
	for (size_t m = nc; m >= 15; m--) {
		if (alnum(at(t, end[m - 1])))
			continue;
		/* the first four moved to the end, letters as 10..35, mod 97 digit by digit */
		unsigned r = 0;
		for (size_t q = 0; q < m; q++) {
			uint8_t ch = c[(q + 4) % m];
			if (digit(ch))
				r = (r * 10 + (ch - '0')) % 97;
			else
				r = (r * 100 + (unsigned)(ch - 'A' + 10)) % 97;
		}
		if (r == 1)
			return end[m - 1] - i;
	}
	return 0;
}

/* ---- addresses ---- */

static size_t ipv4(const struct text *t, size_t i)
{
	if (!digit(at(t, i)) || alnum(before(t, i)) || before(t, i) == '.')
		return 0;
	size_t k = i;
	for (int part = 0; part < 4; part++) {
		if (part && (at(t, k) != '.' || !digit(at(t, k + 1))))
			return 0;
		if (part)
			k++;
		size_t s = k;
		while (k - s < 3 && digit(at(t, k)))
			k++;
		if (digit(at(t, k)) || num(t, s, k - s) > 255 || (k - s > 1 && at(t, s) == '0'))
			return 0;
	}
	return alnum(at(t, k)) || (at(t, k) == '.' && digit(at(t, k + 1))) ? 0 : k - i;
}

static bool ipv6_char(uint8_t c)
{
	return hex(c) || c == ':' || c == '.';
}

/* A run of hex digits, colons and dots that inet_pton reads as IPv6, with two groups at
 * least (so that "std::" is not an address). */
static size_t ipv6(const struct text *t, size_t i)
{
	uint8_t c0 = at(t, i);
	if (!(hex(c0) || c0 == ':') || ipv6_char(before(t, i)) || alnum(before(t, i)))
		return 0;
	size_t k = i;
	int colons = 0, groups = 0;
	bool in_group = false;
	while (k - i < 46 && ipv6_char(at(t, k))) {
		if (at(t, k) == ':') {
			colons++;
			in_group = false;
		} else if (!in_group) {
			groups++;
			in_group = true;
		}
		k++;
	}
	while (k > i && at(t, k - 1) == '.') /* a sentence's full stop */
		k--;
	if (colons < 2 || groups < 2 || k - i > 45 || alnum(at(t, k)))
		return 0;
	char buf[46];
	struct in6_addr a;
	memcpy(buf, t->s + i, k - i);
	buf[k - i] = 0;
	return inet_pton(AF_INET6, buf, &a) == 1 ? k - i : 0;
}

/* ---- tokens ---- */

static size_t run_of(const struct text *t, size_t k, bool (*ok)(uint8_t))
{
	size_t s = k;
	while (k < t->n && ok(t->s[k]))
		k++;
	return k - s;
}

/* Three base64url parts, the first a JSON object's ("eyJ"). */
static size_t jwt(const struct text *t, size_t i)
{
	if (!prefix(t, i, "eyJ") || b64url(before(t, i)) || before(t, i) == '.')
		return 0;
	size_t k = i;
	for (int part = 0; part < 3; part++) {
		if (part && at(t, k++) != '.')
			return 0;
		size_t l = run_of(t, k, b64url);
		if (!l)
			return 0;
		k += l;
	}
	return at(t, k) == '.' ? 0 : k - i;
}

static bool upper_or_digit(uint8_t c)
{
	return upper(c) || digit(c);
}

static bool token_char(uint8_t c)
{
	return alnum(c) || c == '_';
}

static bool slack_char(uint8_t c)
{
	return alnum(c) || c == '-';
}

/* A fixed prefix, then exactly len characters of a class (or at least len, open). */
static size_t prefixed(const struct text *t, size_t i, const char *p, size_t len, bool open,
                       bool (*ok)(uint8_t))
{
	if (!prefix(t, i, p) || token_char(before(t, i)))
		return 0;
	size_t k = i + strlen(p), l = run_of(t, k, ok);
	if (l < len || (!open && l != len))
		return 0;
	return k + l - i;
}

/* The same, for any prefix of a NULL-ended list. */
static size_t any_prefixed(const struct text *t, size_t i, const char *const *p, size_t len,
                           bool open, bool (*ok)(uint8_t))
{
	size_t l = 0;
	for (; *p && !l; p++)
		l = prefixed(t, i, *p, len, open, ok);
	return l;
}

static size_t aws_key(const struct text *t, size_t i)
{
	static const char *const p[] = {"AKIA", "ASIA", NULL};
	return any_prefixed(t, i, p, 16, false, upper_or_digit);
}

static size_t github(const struct text *t, size_t i)
{
	static const char *const p[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_", NULL};
	size_t l = any_prefixed(t, i, p, 36, false, alnum);
	return l ? l : prefixed(t, i, "github_pat_", 82, false, token_char);
}

static size_t slack(const struct text *t, size_t i)
{
	static const char *const p[] = {"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", NULL};
	return any_prefixed(t, i, p, 10, true, slack_char);
}

static const uint8_t *find(const uint8_t *s, size_t n, const char *what)
{
	size_t l = strlen(what);
	return n >= l ? memmem(s, n, what, l) : NULL;
}

/* -----BEGIN [...]PRIVATE KEY----- to its -----END [...]PRIVATE KEY-----; with no end, the rest
 * of the text (a key cut short is still a key). */
static size_t pem_key(const struct text *t, size_t i)
{
	if (!prefix(t, i, "-----BEGIN "))
		return 0;
	size_t k = i + 11, lim = k + 40 < t->n ? k + 40 : t->n;
	const uint8_t *h = find(t->s + k, lim - k, "PRIVATE KEY-----");
	if (!h)
		return 0;
	k = (size_t)(h - t->s) + 16;
	const uint8_t *e = find(t->s + k, t->n - k, "-----END ");
	if (!e)
		return t->n - i;
	k = (size_t)(e - t->s) + 9;
	const uint8_t *f = find(t->s + k, t->n - k, "KEY-----");
	return f ? (size_t)(f - t->s) + 8 - i : t->n - i;
}

/* local@domain.tld: up to 64 before the @, labels of letters, digits and dashes, a top level
 * of two letters at least. */
static size_t email(const struct text *t, size_t i)
{
	if (!email_local(at(t, i)) || email_local(before(t, i)) || at(t, i) == '.')
		return 0;
	size_t k = i;
	while (k - i < 64 && email_local(at(t, k)))
		k++;
	if (at(t, k) != '@' || at(t, k - 1) == '.')
		return 0;
	size_t d = ++k, last_dot = 0, tld = 0;
	while (k - d < 253) {
		size_t l = run_of(t, k, slack_char); /* a label: letters, digits, dashes */
		if (!l || l > 63 || at(t, k) == '-' || at(t, k + l - 1) == '-')
			break;
		tld = run_of(t, k, alpha) == l ? l : 0;
		k += l;
		if (at(t, k) != '.' || !alnum(at(t, k + 1)))
			break;
		last_dot = k++;
	}
	return last_dot && tld >= 2 && k > last_dot ? k - i : 0;
}

static size_t (*const tries[PW_DET_N])(const struct text *, size_t) = {
    [PW_DET_EMAIL] = email,   [PW_DET_CARD] = card,   [PW_DET_SSN] = ssn,
    [PW_DET_PHONE] = phone,   [PW_DET_IBAN] = iban,   [PW_DET_IPV4] = ipv4,
    [PW_DET_IPV6] = ipv6,     [PW_DET_JWT] = jwt,     [PW_DET_AWS_KEY] = aws_key,
    [PW_DET_GITHUB] = github, [PW_DET_SLACK] = slack, [PW_DET_PEM_KEY] = pem_key,
};

bool pw_detect_next(const uint8_t *s, size_t n, size_t from, uint32_t set,
                    struct pw_detect_match *m)
{
	struct text t = {s, n};
	for (size_t i = from; i < n; i++) {
		/* the longest match starting here: a card number is not also a phone's digits */
		size_t best = 0;
		int what = -1;
		for (int d = 0; d < PW_DET_N; d++) {
			if (!(set & (1u << d)))
				continue;
			size_t l = tries[d](&t, i);
			if (l > best) {
				best = l;
				what = d;
			}
		}
		if (what >= 0) {
			*m = (struct pw_detect_match){.off = i, .len = best, .what = what};
			return true;
		}
	}
	return false;
}
