/* The parse and its guards: see include/pgward/sql_parse.h.
 *
 * What recurses once per level of a deep expression is not the parser but the tree: the
 * protobuf packer and reader of libpg_query and our walk. So a text is first scanned for an
 * upper bound of its depth (the nesting guard) and then parsed and walked on a big private
 * stack (a ucontext fiber), never on a worker's own. */
#include "pgward/sql_parse.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>

#include "pgward/sql_walk.h"

/* ASan (gcc says so with __SANITIZE_ADDRESS__, clang with __has_feature) is told about the
 * switches to and from the parse stack */
#if defined(__SANITIZE_ADDRESS__)
#define PW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PW_ASAN 1
#endif
#endif
#ifdef PW_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* nesting guard limits (see depth_guard) */
#define PAREN_LEVELS 8
#define CHAIN_LEVELS 2
#define MAX_LEVELS   20000
#define GUARD_FROM   (MAX_LEVELS / PAREN_LEVELS) /* shorter texts cannot reach MAX_LEVELS */

/* ---- the big stack ----------------------------------------------------------------------- */

/* Stack for the parse and walk. The nesting guard below admits at most MAX_LEVELS node levels
 * of about 1 KiB each (2 to 3 KiB under ASan, measured by test_sql): 160 MiB leaves a margin
 * of 4. The mapping is reserved lazily (MAP_NORESERVE): only the pages a parse really touches
 * become memory, and they are handed back after a deep parse. One per thread, created on
 * first use. */
#define PARSE_STACK_SIZE (96ul << 20)
#define GUARD_SIZE       (64ul << 10)

struct fiber {
	char *map;
	ucontext_t caller, ctx;
	void (*fn)(void *);
	void *arg;
	const void *caller_bottom; /* ASan: the caller's stack, to switch back to */
	size_t caller_size;
};

/* thread-local: each worker thread parses on its own stack; freed by the key destructor */
static __thread struct fiber fib;
/* test_sql's measurement: set once it asks (pw_sql__stack_touched); thread-local */
static __thread bool measure_stack;
static __thread size_t touched;
static size_t stack_touched(void);
static pthread_key_t fib_key;
static pthread_once_t fib_once = PTHREAD_ONCE_INIT;

static void fib_free(void *p)
{
	struct fiber *f = p;

	if (f && f->map) {
		munmap(f->map, PARSE_STACK_SIZE + GUARD_SIZE);
		f->map = NULL;
	}
}

static void fib_key_init(void)
{
	(void)pthread_key_create(&fib_key, fib_free);
}

static void fib_entry(void)
{
#ifdef PW_ASAN
	/* ASan must know both stacks, or LeakSanitizer stops scanning the thread's own */
	__sanitizer_finish_switch_fiber(NULL, &fib.caller_bottom, &fib.caller_size);
#endif
	fib.fn(fib.arg);
#ifdef PW_ASAN
	__sanitizer_start_switch_fiber(NULL, fib.caller_bottom, fib.caller_size);
#endif
}

static int on_big_stack(void (*fn)(void *), void *arg, size_t textlen)
{
	if (!fib.map) {
		char *m = mmap(NULL, PARSE_STACK_SIZE + GUARD_SIZE, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (m == MAP_FAILED)
			return -1;
		/* the guard below the stack turns an overflow into a clean SIGSEGV */
		if (mprotect(m, GUARD_SIZE, PROT_NONE) != 0) {
			munmap(m, PARSE_STACK_SIZE + GUARD_SIZE);
			return -1;
		}
		fib.map = m;
		pthread_once(&fib_once, fib_key_init);
		pthread_setspecific(fib_key, &fib);
	}
	fib.fn = fn;
	fib.arg = arg;
	if (getcontext(&fib.ctx) != 0)
		return -1;
	fib.ctx.uc_stack.ss_sp = fib.map + GUARD_SIZE;
	fib.ctx.uc_stack.ss_size = PARSE_STACK_SIZE;
	fib.ctx.uc_link = &fib.caller;
	makecontext(&fib.ctx, fib_entry, 0);
#ifdef PW_ASAN
	void *fake;
	__sanitizer_start_switch_fiber(&fake, fib.map + GUARD_SIZE, PARSE_STACK_SIZE);
#endif
	if (swapcontext(&fib.caller, &fib.ctx) != 0)
		return -1;
#ifdef PW_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
	/* a long text may have touched many stack pages: give all but the top 1 MiB back */
	if (textlen >= GUARD_FROM) {
		if (measure_stack)
			touched = stack_touched();
		madvise(fib.map + GUARD_SIZE, PARSE_STACK_SIZE - (1ul << 20), MADV_DONTNEED);
	}
	return 0;
}

/* For test_sql's measurement only: the stack the deepest parse since the last call touched. */
size_t pw_sql__stack_touched(void);
size_t pw_sql__stack_touched(void)
{
	size_t t = touched > stack_touched() ? touched : stack_touched();
	measure_stack = true;
	touched = 0;
	return t;
}

static size_t stack_touched(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = PARSE_STACK_SIZE / page, i;
	unsigned char *vec;
	size_t lowest = n;

	if (!fib.map || !(vec = malloc(n)))
		return 0;
	if (mincore(fib.map + GUARD_SIZE, PARSE_STACK_SIZE, vec) == 0)
		for (i = 0; i < n; i++)
			if (vec[i] & 1) {
				lowest = i;
				break;
			}
	free(vec);
	return (n - lowest) * page;
}

/* ---- nesting guard ----------------------------------------------------------------------- */

/* What recurses is not the parser (bison keeps its own stack, and refuses more than 10000
 * states with "memory exhausted", as the server does) but the tree: libpg_query's protobuf
 * writer, the reader and the walk recurse once per node level, about 1 KiB of stack each
 * (tests/unit/test_sql.c measures it: 2 KiB for a "+" level, 6 to 7 KiB for a sub-select or a
 * WITH level). So before parsing, an upper bound of the tree's depth is taken from the server's
 * own scanner's tokens, in node levels:
 *   - an open '(' '[' or CASE: PAREN_LEVELS (a sub-select, a call, a CTE: several nodes);
 *   - every token that nests its left side one level deeper: an operator, NOT, IS, COLLATE,
 *     AT, LIKE, BETWEEN, IN, JOIN, UNION, INTERSECT, EXCEPT...: CHAIN_LEVELS, summed since the
 *     last ',' ';' AND or OR of the same parenthesis level (AND and OR lists are flat: the
 *     server's makeAndExpr/makeOrExpr append to the list on their left);
 * summed over the enclosing levels. A statement over MAX_LEVELS is refused with 54001: the
 * server itself refuses far less deep ones (stack depth limit exceeded), and a 5,000-term OR
 * or a 200 KB VALUES list is flat. The stack below holds MAX_LEVELS with a margin of 4 (more
 * than the ASan build's frames need: test_sql measures that build too). */

static bool chain_keyword(const char *t, size_t n)
{
	static const char *const kw[] = {"not",       "is",       "isnull",  "notnull", "collate",
	                                 "at",        "like",     "ilike",   "similar", "between",
	                                 "in",        "operator", "escape",  "join",    "union",
	                                 "intersect", "except",   "overlaps"};

	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (strlen(kw[i]) == n && strncasecmp(t, kw[i], n) == 0)
			return true;
	return false;
}

static bool op_token(const char *t, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("+-*/<>=~!@#%^&|`?:", t[i]))
			return false;
	return true;
}

static int depth_guard(const char *text, size_t len, char *err, size_t errlen)
{
	PgQueryScanResult sr;
	PgQuery__ScanResult *toks;
	/* per open level: the node levels its chain adds */
	static __thread uint32_t chain[MAX_LEVELS / PAREN_LEVELS + 2];
	int level = 0, rc = 0;
	long total = 0;

	if (len < GUARD_FROM)
		return 0;
	sr = pg_query_scan(text);
	if (sr.error) { /* the parser will report it properly */
		pg_query_free_scan_result(sr);
		return 0;
	}
	toks = pg_query__scan_result__unpack(NULL, sr.pbuf.len, (const uint8_t *)sr.pbuf.data);
	if (!toks) {
		pg_query_free_scan_result(sr);
		snprintf(err, errlen, "cannot scan the statement");
		return -1;
	}
	chain[0] = 0;
	for (size_t i = 0; i < toks->n_tokens && rc == 0; i++) {
		const PgQuery__ScanToken *t = toks->tokens[i];
		const char *p = text + t->start;
		size_t n = (size_t)(t->end - t->start);
		bool kw = t->keyword_kind != PG_QUERY__KEYWORD_KIND__NO_KEYWORD;

		if (t->token == PG_QUERY__TOKEN__SQL_COMMENT ||
		    t->token == PG_QUERY__TOKEN__C_COMMENT)
			continue;
		if ((n == 1 && (*p == '(' || *p == '[')) ||
		    (kw && n == 4 && !strncasecmp(p, "case", 4))) {
			chain[++level] = 0;
			total += PAREN_LEVELS;
		} else if ((n == 1 && (*p == ')' || *p == ']')) ||
		           (kw && n == 3 && !strncasecmp(p, "end", 3))) {
			if (level > 0) {
				total -= chain[level] + PAREN_LEVELS;
				level--;
			}
		} else if ((n == 1 && (*p == ',' || *p == ';')) ||
		           (kw && ((n == 3 && !strncasecmp(p, "and", 3)) ||
		                   (n == 2 && !strncasecmp(p, "or", 2))))) {
			/* a list: its members start afresh (an AND or OR list node: one level) */
			uint32_t base = n == 1 ? 0 : CHAIN_LEVELS;
			total += (long)base - (long)chain[level];
			chain[level] = base;
		} else if ((kw && chain_keyword(p, n)) || (!kw && op_token(p, n))) {
			chain[level] += CHAIN_LEVELS;
			total += CHAIN_LEVELS;
		}
		if (level > MAX_LEVELS / PAREN_LEVELS || total > MAX_LEVELS) {
			snprintf(
			    err, errlen,
			    "statement too complex: nested too deeply (more than %d node levels) "
			    "at position %d",
			    MAX_LEVELS, t->start + 1);
			rc = -1;
		}
	}
	pg_query__scan_result__free_unpacked(toks, NULL);
	pg_query_free_scan_result(sr);
	return rc;
}

/* ---- parse ------------------------------------------------------------------------------- */

struct parse_job {
	const char *text;
	size_t len;
	struct pw_sql_result *r;
	char *err;
	size_t errlen;
	int rc;
	bool value_sensitive; /* the analysis read a constant: cache by exact text */
	/* pw_sql_parse_tree: what the tree is for instead of the walk */
	int (*fn)(const PgQuery__ParseResult *tree, void *arg);
	void *arg;
};

static void parse_job_run(void *p)
{
	struct parse_job *j = p;
	PgQueryProtobufParseResult pr = {0};
	PgQuery__ParseResult *tree = NULL;

	j->rc = -1;
	if (depth_guard(j->text, j->len, j->err, j->errlen) != 0)
		return;
	pr = pg_query_parse_protobuf(j->text);
	if (pr.error) {
		snprintf(j->err, j->errlen, "%s at position %d",
		         pr.error->message ? pr.error->message : "", pr.error->cursorpos);
		if (j->r)
			j->r->error_pos = pr.error->cursorpos;
		goto out;
	}
	tree = pg_query__parse_result__unpack(NULL, pr.parse_tree.len,
	                                      (const uint8_t *)pr.parse_tree.data);
	if (!tree) {
		snprintf(j->err, j->errlen, "cannot read the parse tree");
		goto out;
	}
	j->rc = j->fn ? j->fn(tree, j->arg)
	              : pw_sql_walk(tree, j->r, &j->value_sensitive, j->err, j->errlen);
out:
	if (tree)
		pg_query__parse_result__free_unpacked(tree, NULL);
	pg_query_free_protobuf_parse_result(pr);
}

int pw_sql_parse(const char *text, size_t len, struct pw_sql_result *r, bool *value_sensitive,
                 char *err, size_t errlen)
{
	struct parse_job job = {
	    .text = text, .len = len, .r = r, .err = err, .errlen = errlen, .rc = -1};

	if (on_big_stack(parse_job_run, &job, len) != 0) {
		snprintf(err, errlen, "cannot set up the parse stack: %s", strerror(errno));
		return -1;
	}
	*value_sensitive = job.value_sensitive;
	return job.rc;
}

int pw_sql_parse_tree(const char *text, size_t len,
                      int (*fn)(const struct PgQuery__ParseResult *tree, void *arg), void *arg,
                      char *err, size_t errlen)
{
	struct parse_job job = {
	    .text = text, .len = len, .err = err, .errlen = errlen, .rc = -1, .fn = fn, .arg = arg};

	if (on_big_stack(parse_job_run, &job, len) != 0) {
		snprintf(err, errlen, "cannot set up the parse stack: %s", strerror(errno));
		return -1;
	}
	return job.rc;
}
