/* The startup "options" parameter read as the server reads it (user/options.c): a table of
 * strings and the settings they make, or the server's refusal. The same reading is checked
 * against the server itself by tests/integration/optdiff.py. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "pgward/options.h"

struct out {
	char text[2048];
	size_t len;
};

static int collect(void *arg, const char *name, const char *value)
{
	struct out *o = arg;
	o->len += (size_t)snprintf(o->text + o->len, sizeof(o->text) - o->len, "%s%s=%s",
	                           o->len ? "|" : "", name, value);
	return 0;
}

static const struct {
	const char *options;
	const char *settings; /* "a=1|b=2", or NULL when refused */
	const char *error;    /* a part of the refusal */
} cases[] = {
    {"", "", NULL},
    {"   ", "", NULL},
    {"-c search_path=a", "search_path=a", NULL},
    {"-csearch_path=a", "search_path=a", NULL},
    {"--search_path=a", "search_path=a", NULL},
    {"--search-path=a", "search_path=a", NULL},
    {"-c search-path=a-b", "search_path=a-b", NULL},
    /* combined switches: -E (ignored for clients) then -c with the next word */
    {"-Ec search_path=x", "search_path=x", NULL},
    {"-ec search_path=x", "datestyle=euro|search_path=x", NULL},
    {"-e-role=x", "datestyle=euro|role=x", NULL},
    {"-Pe", "ignore_system_indexes=true|datestyle=euro", NULL},
    /* backslashes: the next character as it is, blanks included; a trailing one dropped */
    {"-c application_name=a\\ b", "application_name=a b", NULL},
    {"-c application_name=a\\\\b", "application_name=a\\b", NULL},
    {"-c application_name=ab\\", "application_name=ab", NULL},
    {"-c\\ search_path=x", " search_path=x", NULL}, /* no such setting: the server says so */
    {"-c search_path=\"a b\"", NULL, "invalid command-line argument"},
    {"-c search_path=\"a\\ b\"", "search_path=\"a b\"", NULL},
    /* an argument is the rest of the word or the next word, whatever it is */
    {"-c -e=1", "_e=1", NULL},
    {"-c --", NULL, "-c -- requires a value"},
    {"-S 4MB -W 1", "work_mem=4MB|post_auth_delay=1", NULL},
    {"-d 3", "log_min_messages=debug3|log_statement=all|debug_print_parse=true", NULL},
    {"-d0", "log_min_messages=notice", NULL},
    {"-fs -fh", "enable_seqscan=false|enable_hashjoin=false", NULL},
    {"-fq", NULL, "invalid command-line argument for server process: -fq"},
    {"-tpa -tpl -te", "log_parser_stats=true|log_planner_stats=true|log_executor_stats=true", NULL},
    {"-tx", NULL, "invalid command-line argument"},
    {"-j -n -T -b -E -r x -v 3 -D /tmp -C y", "", NULL},
    {"-O -s", "allow_system_table_mods=true|log_statement_stats=true", NULL},
    {"-B 1 -p 2 -N 3 -k /x -h y -i -l -F",
     "shared_buffers=1|port=2|max_connections=3|unix_socket_directories=/x|listen_addresses=y|"
     "listen_addresses=*|ssl=true|fsync=false",
     NULL},
    /* -c and -- need a value */
    {"-c search_path", NULL, "-c search_path requires a value"},
    {"--work_mem", NULL, "--work_mem requires a value"},
    {"-c", NULL, "invalid command-line argument"},
    /* words that are no switches end the connection; "--" ends the switches */
    {"x", NULL, "invalid command-line argument for server process: x"},
    {"-c a=1 x", NULL, "invalid command-line argument for server process: x"},
    {"-", NULL, "invalid command-line argument"},
    {"-c a=1 --", "a=1", NULL},
    {"-c a=1 -- -c b=2", NULL, "invalid command-line argument for server process: -c"},
    {"-x", NULL, "invalid command-line argument for server process: -x"},
    {"-:", NULL, "invalid command-line argument"},
    {"-c a=1=2", "a=1=2", NULL},
    {"-c =1", "=1", NULL},
    {"\t-c\ta=1\n-e", "a=1|datestyle=euro", NULL},
};

/* replication as ProcessStartupPacket reads it (parse_bool, and "database"); the same list is
 * checked against the server by tests/integration/repldiff.py */
static const struct {
	const char *value;
	enum pw_replication want;
} repl[] = {
    {NULL, PW_REPL_NONE},
    /* booleans false: every prefix of "false" and "no", "off" and "of", "0" */
    {"f", PW_REPL_NONE},
    {"fa", PW_REPL_NONE},
    {"fal", PW_REPL_NONE},
    {"fals", PW_REPL_NONE},
    {"false", PW_REPL_NONE},
    {"FALSE", PW_REPL_NONE},
    {"fAlS", PW_REPL_NONE},
    {"n", PW_REPL_NONE},
    {"no", PW_REPL_NONE},
    {"NO", PW_REPL_NONE},
    {"of", PW_REPL_NONE},
    {"off", PW_REPL_NONE},
    {"OfF", PW_REPL_NONE},
    {"0", PW_REPL_NONE},
    /* booleans true: a physical walsender */
    {"t", PW_REPL_PHYSICAL},
    {"T", PW_REPL_PHYSICAL},
    {"tr", PW_REPL_PHYSICAL},
    {"TRu", PW_REPL_PHYSICAL},
    {"true", PW_REPL_PHYSICAL},
    {"TRUE", PW_REPL_PHYSICAL},
    {"y", PW_REPL_PHYSICAL},
    {"ye", PW_REPL_PHYSICAL},
    {"yes", PW_REPL_PHYSICAL},
    {"YeS", PW_REPL_PHYSICAL},
    {"on", PW_REPL_PHYSICAL},
    {"ON", PW_REPL_PHYSICAL},
    {"1", PW_REPL_PHYSICAL},
    /* exactly "database": a logical walsender */
    {"database", PW_REPL_LOGICAL},
    /* anything else is the server's FATAL */
    {"", PW_REPL_INVALID},
    {"o", PW_REPL_INVALID},
    {"O", PW_REPL_INVALID},
    {"offf", PW_REPL_INVALID},
    {"onn", PW_REPL_INVALID},
    {"truex", PW_REPL_INVALID},
    {"falsey", PW_REPL_INVALID},
    {"yess", PW_REPL_INVALID},
    {"nope", PW_REPL_INVALID},
    {" true", PW_REPL_INVALID},
    {"true ", PW_REPL_INVALID},
    {" 0", PW_REPL_INVALID},
    {"00", PW_REPL_INVALID},
    {"01", PW_REPL_INVALID},
    {"10", PW_REPL_INVALID},
    {"2", PW_REPL_INVALID},
    {"DATABASE", PW_REPL_INVALID},
    {"Database", PW_REPL_INVALID},
    {"databas", PW_REPL_INVALID},
    {"d", PW_REPL_INVALID},
    {"databasex", PW_REPL_INVALID},
    {"\xe2\x80\x8btrue", PW_REPL_INVALID},
};

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct out o = {.len = 0};
		char err[256] = "";
		o.text[0] = 0;
		int rc = pw_options_parse(cases[i].options, collect, &o, err, sizeof(err));
		if (cases[i].settings)
			CHECK(rc == 0 && strcmp(o.text, cases[i].settings) == 0,
			      "options case %zu: %s (%s)", i + 1, cases[i].settings,
			      rc ? err : o.text);
		else
			CHECK(rc < 0 && strstr(err, cases[i].error),
			      "options case %zu: refused (%s)", i + 1, err);
	}
	/* a setting the caller refuses stops the reading */
	struct out o = {.len = 0};
	char err[64];
	CHECK(pw_options_parse("-c a=1 -c b=2", NULL, NULL, err, sizeof(err)) == 0,
	      "without a callback the options are only checked");
	CHECK(pw_options_parse("-c role=x -c b=2", collect, &o, err, sizeof(err)) == 0 &&
	          strcmp(o.text, "role=x|b=2") == 0,
	      "every setting is reported in order");
	for (size_t i = 0; i < sizeof(repl) / sizeof(repl[0]); i++) {
		enum pw_replication got = pw_startup_replication(repl[i].value);
		char msg[256] = "";
		bool refused = pw_replication_refused(repl[i].value, msg, sizeof(msg));
		CHECK(got == repl[i].want && refused == (repl[i].want != PW_REPL_NONE),
		      "replication \"%s\": %s (got %s)", repl[i].value ? repl[i].value : "(absent)",
		      pw_replication_name(repl[i].want), pw_replication_name(got));
	}
	char msg[256];
	CHECK(pw_replication_refused("ye", msg, sizeof(msg)) && strstr(msg, "replication \"ye\"") &&
	          strstr(msg, "physical walsender"),
	      "the refusal names the value and what the server makes of it (%s)", msg);
	/* parse_bool_with_len reads len bytes only: a prefix of a longer buffer */
	bool b = true;
	CHECK(pw_parse_bool("yesterday", 3, &b) && b, "parse_bool over a length: \"yes\"");
	CHECK(pw_parse_bool("offside", 2, &b) && !b, "parse_bool over a length: \"of\"");
	CHECK(!pw_parse_bool("", 0, &b) && !b, "parse_bool: empty is no boolean");
	return check_done();
}
