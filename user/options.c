/* The startup "options" parameter as the server reads it. See include/pgward/options.h. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgward/log.h"
#include "pgward/options.h"

#define MAX_WORDS 256
#define WORD_MAX                                                                                   \
	1024 /* a word longer than this is refused (the server's are as long as the                \
	      * startup packet allows; none of a sane client is near this) */

/* process_postgres_switches' option string: a letter, ':' when it takes an argument. */
static const char optstring[] = "B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:";

struct parse {
	pw_option_fn fn;
	void *arg;
	char *err;
	size_t errlen;
};

static int set(struct parse *p, const char *name, const char *value)
{
	return p->fn ? p->fn(p->arg, name, value) : 0;
}

/* -c and --: NAME=VALUE, '-' in the name read as '_' (ParseLongOption). */
static int long_option(struct parse *p, char flag, const char *optarg)
{
	const char *eq = strchr(optarg, '=');
	char name[WORD_MAX];

	if (!eq) {
		pw_errf(p->err, p->errlen,
		        flag == '-' ? "--%s requires a value" : "-c %s requires a value", optarg);
		return -1;
	}
	size_t n = (size_t)(eq - optarg);
	for (size_t i = 0; i < n; i++)
		name[i] = optarg[i] == '-' ? '_' : optarg[i];
	name[n] = 0;
	return set(p, name, eq + 1);
}

/* One switch of a client connection (secure == false in the server's terms). */
static int one_switch(struct parse *p, char flag, const char *optarg, const char *word)
{
	char buf[64];

	switch (flag) {
	case 'B':
		return set(p, "shared_buffers", optarg);
	case 'b': /* binary upgrade: the server's own command line only */
	case 'C': /* ignored */
	case 'D': /* the server's own command line only */
	case 'E':
	case 'j':
	case 'n':
	case 'r':
	case 'T':
	case 'v':
		return 0;
	case 'd': {
		int level = atoi(optarg);
		int rc;
		if (level > 0) {
			snprintf(buf, sizeof(buf), "debug%d", level);
			rc = set(p, "log_min_messages", buf);
		} else {
			rc = set(p, "log_min_messages", "notice");
		}
		if (!rc && level >= 2)
			rc = set(p, "log_statement", "all");
		if (!rc && level >= 3)
			rc = set(p, "debug_print_parse", "true");
		if (!rc && level >= 4)
			rc = set(p, "debug_print_plan", "true");
		if (!rc && level >= 5)
			rc = set(p, "debug_print_rewritten", "true");
		return rc;
	}
	case 'e':
		return set(p, "datestyle", "euro");
	case 'F':
		return set(p, "fsync", "false");
	case 'f': {
		static const char *const plan[][2] = {
		    {"s", "enable_seqscan"},       {"i", "enable_indexscan"},
		    {"o", "enable_indexonlyscan"}, {"b", "enable_bitmapscan"},
		    {"t", "enable_tidscan"},       {"n", "enable_nestloop"},
		    {"m", "enable_mergejoin"},     {"h", "enable_hashjoin"},
		};
		for (size_t i = 0; i < sizeof(plan) / sizeof(plan[0]); i++)
			if (optarg[0] == plan[i][0][0])
				return set(p, plan[i][1], "false");
		break; /* an error, as the server counts it */
	}
	case 'h':
		return set(p, "listen_addresses", optarg);
	case 'i':
		return set(p, "listen_addresses", "*");
	case 'k':
		return set(p, "unix_socket_directories", optarg);
	case 'l':
		return set(p, "ssl", "true");
	case 'N':
		return set(p, "max_connections", optarg);
	case 'O':
		return set(p, "allow_system_table_mods", "true");
	case 'P':
		return set(p, "ignore_system_indexes", "true");
	case 'p':
		return set(p, "port", optarg);
	case 'S':
		return set(p, "work_mem", optarg);
	case 's':
		return set(p, "log_statement_stats", "true");
	case 't':
		/* get_stats_option_name: "pa..." parser, "pl..." planner, "e..." executor */
		if (optarg[0] == 'p' && optarg[1] == 'a')
			return set(p, "log_parser_stats", "true");
		if (optarg[0] == 'p' && optarg[1] == 'l')
			return set(p, "log_planner_stats", "true");
		if (optarg[0] == 'e')
			return set(p, "log_executor_stats", "true");
		break;
	case 'W':
		return set(p, "post_auth_delay", optarg);
	case 'c':
	case '-':
		return long_option(p, flag, optarg);
	}
	pw_errf(p->err, p->errlen, "invalid command-line argument for server process: %s", word);
	return -1;
}

int pw_options_parse(const char *opt, pw_option_fn fn, void *arg, char *err, size_t errlen)
{
	static const char blanks[] = " \t\n\v\f\r"; /* isspace() in the C locale */
	struct parse p = {.fn = fn, .arg = arg, .err = err, .errlen = errlen};
	char *words[MAX_WORDS];
	size_t nwords = 0;
	int rc = 0;

	/* pg_split_opts: words split at blanks; a backslash takes the next character as it is
	 * (a blank included) and is itself dropped, also at the very end */
	while (*opt) {
		bool escaped = false;
		char w[WORD_MAX];
		size_t n = 0;

		while (*opt && strchr(blanks, *opt))
			opt++;
		if (!*opt)
			break;
		for (; *opt; opt++) {
			if (strchr(blanks, *opt) && !escaped)
				break;
			if (!escaped && *opt == '\\') {
				escaped = true;
				continue;
			}
			escaped = false;
			if (n + 1 >= sizeof(w)) {
				pw_errf(err, errlen, "startup options: a word longer than %d bytes",
				        WORD_MAX - 1);
				rc = -1;
				goto out;
			}
			w[n++] = *opt;
		}
		w[n] = 0;
		if (nwords == MAX_WORDS || !(words[nwords] = strdup(w))) {
			pw_errf(err, errlen, "startup options: more than %d words", MAX_WORDS);
			rc = -1;
			goto out;
		}
		nwords++;
	}

	/* getopt(3): each word starting with '-' (but "-" itself) holds switches; a switch
	 * that takes an argument takes the rest of its word, or else the next word whatever it
	 * is; "--" ends the switches. Any other word is an argument the server has no use
	 * for: it ends the connection. */
	size_t i = 0;
	for (; i < nwords && rc == 0; i++) {
		const char *w = words[i];
		if (w[0] != '-' || w[1] == 0)
			break;
		if (strcmp(w, "--") == 0) {
			i++;
			break;
		}
		for (const char *c = w + 1; *c && rc == 0; c++) {
			const char *o = *c != ':' ? strchr(optstring, *c) : NULL;
			if (!o) {
				pw_errf(err, errlen,
				        "invalid command-line argument for server process: %s", w);
				rc = -1;
				break;
			}
			if (o[1] != ':') {
				rc = one_switch(&p, *c, "", w);
				continue;
			}
			const char *optarg = c[1] ? c + 1 : i + 1 < nwords ? words[++i] : NULL;
			if (!optarg) {
				pw_errf(err, errlen,
				        "invalid command-line argument for server process: %s", w);
				rc = -1;
				break;
			}
			rc = one_switch(&p, *c, optarg, w);
			break; /* the argument was the rest of the word */
		}
	}
	if (rc == 0 && i < nwords) {
		pw_errf(err, errlen, "invalid command-line argument for server process: %s",
		        words[i]);
		rc = -1;
	}
out:
	for (size_t k = 0; k < nwords; k++)
		free(words[k]);
	return rc;
}

/* The server's pg_strncasecmp over n bytes: ASCII case folded, stops after a NUL in both. */
static bool prefix_of(const char *value, const char *word, size_t n)
{
	return strncasecmp(value, word, n) == 0;
}

bool pw_parse_bool(const char *v, size_t len, bool *result)
{
	bool ok = false, val = false;

	/* what decides is the first byte, then the whole value compared with the word over its
	 * own length: so only a prefix of the word matches, and "" matches nothing */
	switch (len ? v[0] : 0) {
	case 't':
	case 'T':
		ok = val = prefix_of(v, "true", len);
		break;
	case 'f':
	case 'F':
		ok = prefix_of(v, "false", len);
		break;
	case 'y':
	case 'Y':
		ok = val = prefix_of(v, "yes", len);
		break;
	case 'n':
	case 'N':
		ok = prefix_of(v, "no", len);
		break;
	case 'o':
	case 'O':
		/* at least two bytes compared: "o" alone is neither */
		if (prefix_of(v, "on", len > 2 ? len : 2))
			ok = val = true;
		else
			ok = prefix_of(v, "off", len > 2 ? len : 2);
		break;
	case '1':
		ok = val = len == 1;
		break;
	case '0':
		ok = len == 1;
		break;
	}
	if (result)
		*result = ok && val;
	return ok;
}

enum pw_replication pw_startup_replication(const char *value)
{
	bool on;

	if (!value)
		return PW_REPL_NONE;
	if (strcmp(value, "database") == 0) /* case-sensitive, unlike the booleans */
		return PW_REPL_LOGICAL;
	if (!pw_parse_bool(value, strlen(value), &on))
		return PW_REPL_INVALID;
	return on ? PW_REPL_PHYSICAL : PW_REPL_NONE;
}

const char *pw_replication_name(enum pw_replication r)
{
	static const char *const names[] = {
	    [PW_REPL_NONE] = "none",
	    [PW_REPL_PHYSICAL] = "physical",
	    [PW_REPL_LOGICAL] = "logical",
	    [PW_REPL_INVALID] = "invalid",
	};
	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

bool pw_replication_refused(const char *value, char *msg, size_t len)
{
	static const char *const what[] = {
	    [PW_REPL_PHYSICAL] = "the server reads it as true: a physical walsender",
	    [PW_REPL_LOGICAL] = "a logical walsender",
	    [PW_REPL_INVALID] = "not a value the server accepts",
	};
	enum pw_replication r = pw_startup_replication(value);

	if (r == PW_REPL_NONE)
		return false;
	snprintf(msg, len,
	         "pgward: replication connections are not supported through pgward "
	         "(replication \"%.40s\"%s: %s)",
	         value, strlen(value) > 40 ? "..." : "", what[r]);
	return true;
}
