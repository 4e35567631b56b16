/* The analysis cache cannot lie: a bounded differential run (tests/unit/sqlkey.h) over texts
 * generated and mutated around the lexical boundaries (comments, quotes, escapes, numbers),
 * seeded from the policy corpus, PostgreSQL's regression SQL (PGWARD_REGRESS_SQL) and a list
 * of known traps. For every text: its cache key equals the server scanner's, and its analysis
 * through the cache equals a fresh parse. Also the known attacks, as fixed cases.
 * Environment: PGWARD_SQLKEY_SECONDS (default 30), PGWARD_SQLKEY_SEED (default: fixed). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "sqlkey.h"

static struct sqlkey_stats st;
static int shown;

static bool check_text(const char *t, size_t n)
{
	bool ok = sqlkey_check(t, n, &st, shown < 12 ? stdout : NULL);
	if (!ok)
		shown++;
	return ok;
}

static size_t key_of(const char *t, char *out)
{
	size_t s[1], e[1], ns;
	char k[1];
	size_t n = pw_sql__key(t, strlen(t), out, s, e, k, 0, &ns);
	out[n] = 0; /* keys are bytes; these ones hold no NUL */
	return n;
}

/* A text for a test's name: on one line. */
static const char *oneline(const char *t)
{
	static char b[128];
	size_t o = 0;
	for (; *t && o < sizeof(b) - 5; t++) {
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			o += (size_t)snprintf(b + o, sizeof(b) - o, "\\x%02x", (unsigned char)*t);
		else
			b[o++] = *t;
	}
	b[o] = 0;
	return b;
}

/* ---- fixed cases ---------------------------------------------------------------------- */

static struct pw_sql_result res;

static void test_fixed(void)
{
	char k1[256], k2[256], err[256];

	/* \r ends a -- comment for the server: no key is ever made around one */
	static const char *const cr[] = {
	    "SELECT 1 --\r'\n'x'",
	    "SELECT 'a' --\r'; DELETE FROM t; --'\n",
	    "SELECT 1 --\r'\nDELETE FROM t --'",
	    "SELECT 1\r",
	};
	for (size_t i = 0; i < sizeof(cr) / sizeof(cr[0]); i++)
		CHECK(key_of(cr[i], k1) == 0, "no key for a text with \\r (case %zu)", i + 1);
	/* nor for the other constructs the key scanner does not follow */
	static const char *const giveup[] = {
	    "SELECT E'\\'' , 1",    "SELECT $$ ' $$, 1",
	    "SELECT $a$ x $a$, 1",  "SELECT U&'d\\0061t', 1",
	    "SELECT U&\"x\", 1",    "SELECT B'101', 1",
	    "SELECT X'1f', 1",      "SELECT N'x', 1",
	    "SELECT 1 /* /* */ */", "SELECT 1 /* open",
	    "SELECT 'open, 1",      "SELECT 1x",
	    "SELECT 'a'\n'b', 1",   "SELECT 'a' -- c\n'b', 1",
	    "SELECT \x01, 1",       "SELECT 1 \\gset",
	    "SELECT 1\f",           "SELECT '\x7f', 1",
	};
	for (size_t i = 0; i < sizeof(giveup) / sizeof(giveup[0]); i++)
		CHECK(key_of(giveup[i], k1) == 0, "no key for %s", oneline(giveup[i]));
	/* numbers keep their kind: an int32 is not a numeric */
	key_of("SELECT 2147483647", k1);
	key_of("SELECT 2147483648", k2);
	CHECK(strcmp(k1, k2) != 0, "2147483647 and 2147483648 have different keys");
	key_of("FETCH 1 FROM c", k1);
	key_of("FETCH 1.5 FROM c", k2);
	CHECK(strcmp(k1, k2) != 0, "an integer and a decimal have different keys");
	key_of("SELECT 1", k1);
	key_of("SELECT 0000000000007", k2);
	CHECK(strcmp(k1, k2) == 0, "leading zeros keep an integer an integer");

	/* COPY ... TO '' looks like TO STDOUT in the tree: it must not lend its analysis to
	 * COPY ... TO '/tmp/x' (a server file) */
	pw_sql_cache_clear();
	CHECK(pw_sql_analyse("COPY orders TO ''", 17, NULL, &res, err, sizeof(err)) == 0,
	      "COPY TO '' analysed");
	const char *f = "COPY orders TO '/tmp/pgward-leak'";
	CHECK(pw_sql_analyse(f, strlen(f), NULL, &res, err, sizeof(err)) == 0 &&
	          (res.stmts[0].flags & PW_SQL_F_COPY_FILE),
	      "then COPY TO a file is still a server file");
	CHECK(check_text(f, strlen(f)), "and equals a fresh parse");
	/* a text of the same key that the parser reads otherwise: refused, not served */
	pw_sql_cache_clear();
	const char *a = "SELECT 'x', 1", *b = "SELECT 'a' -- c\n'b', 1";
	CHECK(check_text(a, strlen(a)) && check_text(b, strlen(b)),
	      "a string continued across a comment is parsed afresh");
	CHECK(pw_sql_analyse(b, strlen(b), NULL, &res, err, sizeof(err)) < 0,
	      "and refused (libpg_query does not join it, the server does)");
	/* DISCARD ALL leaves the session's role */
	CHECK(pw_sql_analyse("DISCARD ALL", 11, NULL, &res, err, sizeof(err)) == 0 &&
	          (res.stmts[0].flags & PW_SQL_F_ROLE_ESCAPE) &&
	          strcmp(res.stmts[0].tag, "DISCARD ALL") == 0,
	      "DISCARD ALL is a role escape, tagged DISCARD ALL");
	CHECK(pw_sql_analyse("DISCARD PLANS", 13, NULL, &res, err, sizeof(err)) == 0 &&
	          !(res.stmts[0].flags & PW_SQL_F_ROLE_ESCAPE),
	      "DISCARD PLANS is not");
	CHECK(pw_sql_analyse("NOTIFY ch, 'x'", 14, NULL, &res, err, sizeof(err)) == 0 &&
	          strcmp(res.stmts[0].tag, "NOTIFY") == 0,
	      "NOTIFY is tagged NOTIFY (%s)", res.stmts[0].tag);
}

/* ---- the generator ---------------------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t pick(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static char **seeds;
static size_t nseeds, capseeds;

static void add_seed(const char *s, size_t n)
{
	if (!n || memchr(s, 0, n))
		return;
	if (nseeds == capseeds) {
		capseeds = capseeds ? capseeds * 2 : 1024;
		seeds = realloc(seeds, capseeds * sizeof(*seeds));
		if (!seeds)
			abort();
	}
	seeds[nseeds] = malloc(n + 1);
	if (!seeds[nseeds])
		abort();
	memcpy(seeds[nseeds], s, n);
	seeds[nseeds++][n] = 0;
}

/* Known traps: the lexical corners, each a seed of its own. */
static const char *const traps[] = {
    "SELECT 1 --\r'\n'x'",
    "SELECT 'a' --\r'; DELETE FROM t; --'\n",
    "SELECT 'a' -- c\n'b'",
    "SELECT 'a'\n'b'",
    "SELECT 'a'\n\n  'b', 2",
    "SELECT 'a' /* c */\n'b'",
    "SELECT 1 /* a /* b */ c */ 2",
    "SELECT 1 /*/ x */ 2",
    "SELECT 1 /**/ 2",
    "SELECT 1 */ 2",
    "SELECT 1 +-- x\n 2",
    "SELECT 1 */* x */ 2",
    "SELECT $$ ' $$, 'x'",
    "SELECT $1, $2, '$$'",
    "SELECT $1$a$ x $a$",
    "SELECT E'\\'', 'x'",
    "SELECT e'x', 1",
    "SELECT xe'x', 1",
    "SELECT U&'\\0041', 1",
    "SELECT u&\"x\", 1",
    "SELECT n'x', 1",
    "SELECT b'1', x'1f', 1",
    "SELECT 1e5, 1.e5, .5, 1..2, 1.2.3, 2147483648, 00012",
    "SELECT 1e, 2",
    "SELECT 1e+, 2",
    "SELECT 'it''s', \"a\"\"b\", 1",
    "SELECT '\"', \"'\", 1",
    "SELECT 'x'::text, 1::int, '1'::int",
    "COPY orders TO ''",
    "COPY orders FROM '/tmp/x'",
    "COPY orders TO STDOUT",
    "SELECT set_config('search_path', 'a, b', false)",
    "SELECT set_config('application_name', 'x', false)",
    "SET search_path TO 'a', b",
    "EXPLAIN (ANALYZE 0) DELETE FROM orders",
    "EXPLAIN (ANALYZE 'off') DELETE FROM orders",
    "SELECT nextval('s'), currval('public.s'), setval('\"S\"', 1)",
    "SELECT * FROM orders WHERE id = 1; DELETE FROM orders WHERE id = 2",
    "SELECT 'a'; SELECT 'b' -- 'c'",
    "SELECT 1 -- ; DELETE FROM orders",
    "SELECT ';' , '--', '/*', '*/'",
    "DO 'BEGIN NULL; END'",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "PREPARE p AS SELECT 1; EXECUTE p",
    "SELECT 'x' FROM orders FOR UPDATE",
    "LOCK TABLE orders IN ACCESS SHARE MODE",
    "SELECT ts_rewrite('a'::tsquery, 'SELECT 1')",
};

/* Pieces the mutations insert: the bytes lexing turns on. */
static const char *const pieces[] = {
    "'",          "''",      "\"",
    "--",         "/*",      "*/",
    "\r",         "\n",      " ",
    "\t",         "$",       "$$",
    "$1",         "$a$",     "E",
    "e",          "U&",      "N",
    "B",          "X",       "\\",
    ";",          "1",       "1.5",
    ".5",         "1e5",     "x",
    ".",          "-",       "+",
    "*",          "/",       "(",
    ")",          ",",       "=",
    "'a'",        "\"a\"",   "DELETE FROM orders",
    "SELECT",     "--\r'",   "'\n'",
    " -- c\n",    "/* x */", "\x01",
    "2147483648",
};

/* Replacement literals, by kind, adversarial strings included. */
static const char *const ints[] = {"0", "1", "7", "42", "2147483647", "0000000001", "00"};
static const char *const floats[] = {"1.5", ".5",   "1e5",  "2147483648",
                                     "1.",  "1.e5", "3E-2", "99999999999999999999"};
static const char *const strings[] = {
    "''",
    "'x'",
    "'it''s'",
    "'--'",
    "'/*'",
    "'*/'",
    "'$$'",
    "'$1'",
    "'\"'",
    "';'",
    "'\n'",
    "'a''; DELETE FROM orders; --'",
    "'\xc3\xa9'",
    "'a'\n'b'",
    "'a' -- c\n'b'",
    "''''",
    "'E''x'''",
    "'\\'",
    "'--\r'",
    "'x' /* c */",
    "'public'",
    "'/tmp/x'",
    "'search_path'",
    "'role'",
    "'secret.keys'",
};

static const char *pick_literal(char kind)
{
	switch (kind) {
	case 1:
		return ints[pick(sizeof(ints) / sizeof(ints[0]))];
	case 3:
		return floats[pick(sizeof(floats) / sizeof(floats[0]))];
	default:
		return strings[pick(sizeof(strings) / sizeof(strings[0]))];
	}
}

static char *buf;
static size_t bufcap;

static void reserve(size_t n)
{
	if (n + 1 > bufcap) {
		bufcap = (n + 1) * 2;
		buf = realloc(buf, bufcap);
		if (!buf)
			abort();
	}
}

#define MAXSPANS 64

/* Each literal the key scanner found in t replaced (with probability 1/2, mostly by one of
 * its own kind) from the pools: texts that share t's key, or should not. */
static size_t swap_literals(const char *t, size_t n)
{
	char *key = malloc(n + 2);
	size_t s[MAXSPANS], e[MAXSPANS], ns = 0, o = 0, pos = 0;
	char k[MAXSPANS];

	if (!key)
		abort();
	if (!pw_sql__key(t, n, key, s, e, k, MAXSPANS, &ns))
		ns = 0;
	free(key);
	reserve(n + ns * 40 + 64);
	for (size_t i = 0; i < ns; i++) {
		memcpy(buf + o, t + pos, s[i] - pos);
		o += s[i] - pos;
		if (rnd() & 1) {
			char kind = (rnd() % 8) ? k[i] : (char)(1 + pick(3));
			const char *l = pick_literal(kind);
			memcpy(buf + o, l, strlen(l));
			o += strlen(l);
		} else {
			memcpy(buf + o, t + s[i], e[i] - s[i]);
			o += e[i] - s[i];
		}
		pos = e[i];
	}
	memcpy(buf + o, t + pos, n - pos);
	o += n - pos;
	buf[o] = 0;
	return o;
}

/* A random piece inserted somewhere, preferably next to a quote, a dash or a slash. */
static size_t insert_piece(const char *t, size_t n)
{
	size_t at = pick(n + 1);
	for (int tries = 0; tries < 8 && at < n && !strchr("'\"-/$ \n", t[at]); tries++)
		at = pick(n + 1);
	const char *p = pieces[pick(sizeof(pieces) / sizeof(pieces[0]))];
	size_t pl = strlen(p);
	reserve(n + pl);
	memcpy(buf, t, at);
	memcpy(buf + at, p, pl);
	memcpy(buf + at + pl, t + at, n - at);
	buf[n + pl] = 0;
	return n + pl;
}

static size_t delete_range(const char *t, size_t n)
{
	size_t a = pick(n + 1), l = 1 + pick(8);
	if (a + l > n)
		l = n - a;
	reserve(n);
	memcpy(buf, t, a);
	memcpy(buf + a, t + a + l, n - a - l);
	buf[n - l] = 0;
	return n - l;
}

static size_t soup(void)
{
	size_t o = 0, k = 2 + pick(10);
	reserve(512);
	o += (size_t)sprintf(buf, "%s", (rnd() & 1) ? "SELECT " : "");
	for (size_t i = 0; i < k; i++) {
		const char *p = pieces[pick(sizeof(pieces) / sizeof(pieces[0]))];
		o += (size_t)snprintf(buf + o, bufcap - o, "%s", p);
	}
	return o;
}

/* ---- seeds ------------------------------------------------------------------------------ */

static void load_corpus(void)
{
	FILE *f = fopen("tests/policy/corpus.tsv", "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;

	if (!f)
		return;
	while ((got = getline(&line, &cap, f)) > 0) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		line[got - 1] = line[got - 1] == '\n' ? 0 : line[got - 1];
		char *sql = strchr(line, '\t');
		sql = sql ? strchr(sql + 1, '\t') : NULL;
		if (!sql)
			continue;
		for (char *p = sql + 1, *q; p && *p; p = q ? q + 4 : NULL) {
			q = strstr(p, " || ");
			add_seed(p, q ? (size_t)(q - p) : strlen(p));
		}
	}
	free(line);
	fclose(f);
}

static void load_regress(void)
{
	const char *dir = getenv("PGWARD_REGRESS_SQL");
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;

	if (!d) {
		printf("# regression SQL not available (PGWARD_REGRESS_SQL): seeds from the policy "
		       "corpus and the trap list only\n");
		return;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char path[1024], *text = NULL;
		size_t tl = 0;
		if (l < 5 || strcmp(de->d_name + l - 4, ".sql"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "r"), *m = open_memstream(&text, &tl);
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		while (f && (got = getline(&line, &cap, f)) > 0)
			if (line[0] != '\\')
				fwrite(line, 1, (size_t)got, m);
		fclose(m);
		if (f)
			fclose(f);
		free(line);
		PgQuerySplitResult sp = pg_query_split_with_scanner(text);
		for (int i = 0; !sp.error && i < sp.n_stmts; i++) {
			const char *s = text + sp.stmts[i]->stmt_location;
			size_t sl =
			    sp.stmts[i]->stmt_len ? (size_t)sp.stmts[i]->stmt_len : strlen(s);
			if (sl < 2000)
				add_seed(s, sl);
		}
		pg_query_free_split_result(sp);
		free(text);
	}
	closedir(d);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_differential(void)
{
	const char *sec = getenv("PGWARD_SQLKEY_SECONDS"), *seed = getenv("PGWARD_SQLKEY_SEED");
	double budget = sec ? atof(sec) : 30, t0 = now_s();
	unsigned long rounds = 0;

	rng = seed ? strtoull(seed, NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (!rng)
		rng = 1;
	for (size_t i = 0; i < sizeof(traps) / sizeof(traps[0]); i++)
		add_seed(traps[i], strlen(traps[i]));
	load_corpus();
	load_regress();
	printf("# differential: %zu seeds, %.0f s, seed 0x%llx\n", nseeds, budget,
	       (unsigned long long)(seed ? strtoull(seed, NULL, 0) : 0x9e3779b97f4a7c15ull));
	/* every seed once, as it is */
	for (size_t i = 0; i < nseeds && now_s() - t0 < budget / 3; i++)
		check_text(seeds[i], strlen(seeds[i]));
	while (now_s() - t0 < budget) {
		for (int k = 0; k < 64; k++, rounds++) {
			const char *s = seeds[pick(nseeds)];
			size_t n = strlen(s), m;
			char *copy;
			switch (rnd() % 6) {
			case 0:
			case 1:
				m = swap_literals(s, n);
				break;
			case 2:
				m = insert_piece(s, n);
				break;
			case 3:
				m = delete_range(s, n);
				break;
			case 4:
				m = soup();
				break;
			default: {
				/* a mutation, then its literals swapped: siblings in the cache */
				m = insert_piece(s, n);
				copy = strdup(buf);
				check_text(copy, m);
				m = swap_literals(copy, m);
				free(copy);
				break;
			}
			}
			if (memchr(buf, 0, m))
				continue;
			check_text(buf, m);
			/* and two siblings of what was just cached */
			copy = strdup(buf);
			for (int j = 0; j < 2; j++) {
				size_t l = swap_literals(copy, m);
				check_text(buf, l);
			}
			free(copy);
		}
	}
	printf("# differential: %lu texts (%lu rounds), %lu keyed (%lu keyed by the scanner too), "
	       "%lu cache hits, %lu analysed, %lu refused\n",
	       st.texts, rounds, st.keyed, st.ref_keyed, st.hits, st.analysed, st.refused);
	CHECK(st.key_mismatch == 0,
	      "every key equals the server scanner's (%lu texts keyed, %lu "
	      "differ)",
	      st.keyed, st.key_mismatch);
	CHECK(st.cache_mismatch == 0,
	      "every analysis through the cache equals a fresh parse (%lu texts, %lu hits, %lu "
	      "differ)",
	      st.texts, st.hits, st.cache_mismatch);
	CHECK(st.texts > 10000 && st.hits > 1000,
	      "the run was long enough to mean something (%lu texts, %lu hits)", st.texts, st.hits);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_fixed();
	test_differential();
	pw_sql_cache_clear();
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i]);
	free(seeds);
	free(buf);
	return check_done();
}
