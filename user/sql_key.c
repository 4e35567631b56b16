/* Normalised cache keys: see include/pgward/sql_key.h. */
#include "pgward/sql_key.h"

#include <stdbool.h>
#include <string.h>

#include "pgward/sql_types.h"

/* Texts that differ only in literals ("... WHERE aid = 17" and "... = 42", "email = 'a@b'")
 * have the same analysis, unless a decision read a constant (then the analysis is cached by
 * its exact text: see const_string()). The key is the text with every literal replaced by a
 * marker byte naming its kind as the server's scanner does (an integer that fits int32, with
 * its range; any other number; a standard '...' string), everything else kept byte for byte. Keys
 * and exact texts live apart in the cache (struct centry.normalized).
 *
 * The invariant: two texts with one key have the same analysis. That holds only if this
 * scanner finds every literal where PostgreSQL's does (src/backend/parser/scan.l, 15); so it
 * follows the server only over a small, proven part of the lexical grammar and gives up (no
 * key: the exact text is the key) on everything else: any control byte but tab and newline
 * (\r ends a -- comment for the server), a backslash, DEL, '$' not followed by a digit (dollar
 * quotes), a nested or unterminated block comment, E'' B'' X'' N'' and U&'' U&"" prefixes, an
 * unterminated quote, a string that may continue on a later line, a number running into a
 * letter, a run of 64 operator characters. tests/unit/test_sqlkey.c proves the keys
 * against the server's own scanner (pg_query_scan) and cached analyses against fresh ones. */
#define PW_KEY_ICONST 1 /* 1..53 */
#define PW_KEY_SCONST 2
#define PW_KEY_FCONST 3
/* The grammar itself checks a few integers (a column number in 1..32767, float(p) with p in
 * 1..53): an integer's marker also says which of these ranges holds it. */
#define PW_KEY_ICONST_0     4 /* 0 */
#define PW_KEY_ICONST_INT16 5 /* 54..32767 */
#define PW_KEY_ICONST_INT32 6 /* 32768..2147483647 */

/* What a literal's span is, for the tests: [start, end) in the text and its marker. */
struct key_span {
	size_t start, end;
	char kind;
};

static bool key_byte_ok(unsigned char c)
{
	return (c >= 0x20 && c != 0x7f && c != '\\') || c == '\t' || c == '\n';
}

/* PostgreSQL's ident_start / ident_cont (scan.l): letters, '_', bytes >= 0x80; digits and '$'
 * continue an identifier. */
static bool ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* The marker of the integer digits [a, b): FCONST when it does not fit the server's int32
 * (process_integer_literal), else its range. */
static char integer_kind(const char *s, size_t a, size_t b)
{
	unsigned long v = 0;

	while (a < b && s[a] == '0')
		a++;
	if (b - a > 10 || (b - a == 10 && memcmp(s + a, "2147483647", 10) > 0))
		return PW_KEY_FCONST;
	for (; a < b; a++)
		v = v * 10 + (unsigned long)(s[a] - '0');
	return v == 0       ? PW_KEY_ICONST_0
	       : v <= 53    ? PW_KEY_ICONST
	       : v <= 32767 ? PW_KEY_ICONST_INT16
	                    : PW_KEY_ICONST_INT32;
}

/* After a string literal ending at i: may the next '...' be joined to it? The server joins
 * them when only blanks and -- comments with at least one newline lie between (scan.l's
 * quotecontinue); libpg_query's scanner, which returns comments as tokens, joins them across
 * newlines but not across a comment. Either way no key is made for such a text. */
static bool string_may_continue(const char *s, size_t n, size_t i)
{
	bool crossed = false;

	while (i < n) {
		if (s[i] == ' ' || s[i] == '\t') {
			i++;
		} else if (s[i] == '\n') {
			crossed = true;
			i++;
		} else if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
			crossed = true;
			while (i < n && s[i] != '\n')
				i++;
		} else {
			break;
		}
	}
	return crossed && i < n && s[i] == '\'';
}

/* The scanners of the tokens the key copies or replaces. Each takes the token's first byte at
 * i and returns the index just past it, or 0 to give up (no key for the text). */

/* A block comment. */
static size_t block_comment_end(const char *s, size_t n, size_t i)
{
	for (size_t j = i + 2;; j++) {
		if (j + 1 >= n)
			return 0; /* unterminated */
		if (s[j] == '/' && s[j + 1] == '*')
			return 0; /* nested: not followed here */
		if (s[j] == '*' && s[j + 1] == '/')
			return j + 2;
	}
}

/* A quoted identifier ("" inside stays inside). */
static size_t quoted_ident_end(const char *s, size_t n, size_t i)
{
	if (i + 1 < n && s[i + 1] == '"' && !(i + 2 < n && s[i + 2] == '"'))
		return 0; /* "": the server's zero-length identifier error */
	for (i++;; i++) {
		if (i == n)
			return 0;
		if (s[i] == '"') {
			if (i + 1 < n && s[i + 1] == '"') {
				i++;
				continue;
			}
			return i + 1;
		}
	}
}

/* A standard '...' string, unless a later one may continue it. */
static size_t string_end(const char *s, size_t n, size_t i)
{
	for (i++;; i++) {
		if (i == n)
			return 0; /* unterminated */
		if (s[i] == '\'') {
			if (i + 1 < n && s[i + 1] == '\'') {
				i++; /* '' stays inside */
				continue;
			}
			break;
		}
	}
	i++;
	return string_may_continue(s, n, i) ? 0 : i;
}

/* A number: digits, a fraction, an exponent; *integer when it has neither. */
static size_t number_end(const char *s, size_t n, size_t i, bool *integer)
{
	*integer = true;
	while (i < n && is_digit((unsigned char)s[i]))
		i++;
	/* "1..5": the integer 1, then "..", as the server's decimalfail */
	if (i < n && s[i] == '.' && !(i + 1 < n && s[i + 1] == '.')) {
		*integer = false;
		for (i++; i < n && is_digit((unsigned char)s[i]);)
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t k = i + 1;
		if (k < n && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < n && is_digit((unsigned char)s[k])) {
			*integer = false;
			for (i = k; i < n && is_digit((unsigned char)s[i]);)
				i++;
		}
	}
	/* a number running into a letter: the server's *_junk and realfail rules */
	return i < n && ident_start((unsigned char)s[i]) ? 0 : i;
}

/* Only bytes the key follows, and no operator of 64 characters or more (the server's
 * "operator too long"). */
static bool key_text_ok(const char *s, size_t n)
{
	size_t oprun = 0;

	for (size_t k = 0; k < n; k++) {
		if (!key_byte_ok((unsigned char)s[k]))
			return false;
		oprun = strchr("~!@#^&|`?+-*/%<>=", s[k]) ? oprun + 1 : 0;
		if (oprun >= PW_SQL_NAMELEN)
			return false;
	}
	return true;
}

/* Writes the key of s[0, n) into out (at most n + 1 bytes) and returns its length, or 0 when
 * there is no key (nothing replaced, or given up). spans (may be NULL) gets the literals. */
static size_t normalize_spans(const char *s, size_t n, char *out, struct key_span *spans,
                              size_t maxspans, size_t *nspans)
{
	size_t o = 0, i = 0, ns = 0;

	if (!key_text_ok(s, n))
		return 0;
	out[o++] = 1; /* no text starts so: tells a key from a text in logs and dumps */
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t st = i, end;
		char kind;
		bool integer;

		if (c == '-' && i + 1 < n && s[i + 1] == '-') {
			while (i < n && s[i] != '\n')
				out[o++] = s[i++];
			continue;
		}
		if ((c == '/' && i + 1 < n && s[i + 1] == '*') || c == '"') {
			end = c == '"' ? quoted_ident_end(s, n, i) : block_comment_end(s, n, i);
			if (!end)
				return 0;
			memcpy(out + o, s + i, end - i);
			o += end - i;
			i = end;
			continue;
		}
		if (c == '\'') {
			if (!(i = string_end(s, n, i)))
				return 0;
			kind = PW_KEY_SCONST;
			goto literal;
		}
		if (c == '$') {
			if (i + 1 >= n || !is_digit((unsigned char)s[i + 1]))
				return 0; /* a dollar quote */
			out[o++] = s[i++];
			while (i < n && is_digit((unsigned char)s[i]))
				out[o++] = s[i++];
			if (i < n && ident_start((unsigned char)s[i]))
				return 0; /* $1abc: the server's param_junk */
			continue;
		}
		if (c == '.' && i + 1 < n && s[i + 1] == '.') {
			out[o++] = s[i++]; /* "..", a token of its own (dot_dot) */
			out[o++] = s[i++];
			continue;
		}
		if (ident_start(c)) {
			while (i < n && ident_cont((unsigned char)s[i]))
				out[o++] = s[i++];
			/* E'' B'' X'' N'' read their text otherwise; U&'' and U&"" have escapes */
			if (i - st == 1 && i < n && s[i] == '\'' && strchr("eEbBxXnN", c))
				return 0;
			if (i - st == 1 && (c == 'u' || c == 'U') && i < n && s[i] == '&')
				return 0;
			continue;
		}
		if (is_digit(c) || (c == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1]))) {
			if (!(i = number_end(s, n, i, &integer)))
				return 0;
			kind = integer ? integer_kind(s, st, i) : PW_KEY_FCONST;
			goto literal;
		}
		out[o++] = s[i++];
		continue;
	literal:
		out[o++] = kind;
		if (spans && ns < maxspans)
			spans[ns] = (struct key_span){.start = st, .end = i, .kind = kind};
		ns++;
	}
	if (nspans)
		*nspans = ns;
	return ns ? o : 0;
}

size_t pw_sql_key(const char *s, size_t n, char *out)
{
	return normalize_spans(s, n, out, NULL, 0, NULL);
}

/* For tests/unit/test_sqlkey.c: the key (out holds n + 1 bytes) and the literal spans. */
size_t pw_sql__key(const char *s, size_t n, char *out, size_t *starts, size_t *ends, char *kinds,
                   size_t maxspans, size_t *nspans);
size_t pw_sql__key(const char *s, size_t n, char *out, size_t *starts, size_t *ends, char *kinds,
                   size_t maxspans, size_t *nspans)
{
	struct key_span sp[256];
	size_t ns = 0, klen = normalize_spans(s, n, out, sp, 256, &ns);

	*nspans = 0;
	if (!klen)
		return 0;
	for (size_t k = 0; k < ns && k < maxspans && k < 256; k++) {
		starts[k] = sp[k].start;
		ends[k] = sp[k].end;
		kinds[k] = sp[k].kind;
	}
	*nspans = ns < maxspans && ns <= 256 ? ns : (maxspans < 256 ? maxspans : 256);
	return klen;
}
