/* Unit tests for user/config.c: a full config, defaults, error messages (each must name the
 * offending JSON path), identity matching, and reference counting. */
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgward/config.h"
#include "pgward/detect.h"
#include "pgward/match.h"
#include "pgward/policy.h"
#include "pgward/policy_session.h"
#include "pgward/sql.h"
#include "check.h"
#include "config_fixture.h"

/* PostgreSQL-format verifier for the password "pencil" (salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096
 * iterations), computed independently with Python's hashlib. */
#define VERIFIER                                                                                   \
	"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=" \
	":"                                                                                        \
	"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

/* The smallest valid document, in the single-quote shorthand that jq() expands. */
#define MIN_LISTEN "'listen':[{'port':6432}]"
#define MIN_UP     "'upstreams':{'main':{'host':'db','user':'u'}}"
#define MIN_ID     "'identities':[{'name':'all','auth':'trust','upstream':'main'}]"
#define MINIMAL    "{" MIN_LISTEN "," MIN_UP "," MIN_ID "}"

/* Load must fail, leave *out NULL, and say "test.json: <path>: ...". Optionally the
 * message must also contain detail. */
static void expect_err(const char *what, const char *json, const char *jpath, const char *detail)
{
	struct pw_config *c = (struct pw_config *)&c; /* must be reset to NULL */
	char err[1024] = "", prefix[256];
	int rc = pw_config_load_string(json, "test.json", &c, err, sizeof(err));
	snprintf(prefix, sizeof(prefix), "test.json: %s: ", jpath);
	bool ok = rc == -1 && c == NULL && strncmp(err, prefix, strlen(prefix)) == 0 &&
	          (!detail || strstr(err, detail));
	CHECK(ok, "error: %s -> %s", what, err);
	if (!ok)
		printf("#   wanted prefix '%s' and '%s'\n", prefix, detail ? detail : "");
	if (rc == 0)
		pw_config_unref(c);
}

static struct pw_config *load_ok(const char *what, const char *json)
{
	struct pw_config *c = NULL;
	char err[1024] = "";
	int rc = pw_config_load_string(json, "test.json", &c, err, sizeof(err));
	CHECK(rc == 0 && c != NULL, "loads: %s%s%s", what, rc ? " -- " : "", err);
	return rc == 0 ? c : NULL;
}

static void test_full(void)
{
	const char *pw = fixture_s("app.pw", "s3cret\r\n");
	const char *crt = fixture_s("server.crt", "cert");
	const char *key = fixture_s("server.key", "key");
	const char *ca = fixture_s("ca.crt", "ca");
	const char *json = jq(
	    "{\n"
	    " 'workers': 3, 'log_level': 'debug', 'shutdown_grace_seconds': 2.5,\n"
	    " 'control': {'socket': '/run/pgward/control.sock'},\n"
	    " 'listen': [ {'host': '0.0.0.0', 'port': 6432},\n"
	    "             {'unix': '/tmp/.s.PGSQL.6432', 'mode': '0770'},\n"
	    "             {'unix': '/tmp/other.sock', 'mode': 384},\n"
	    "             {'port': 7000} ],\n"
	    " 'tls': {'cert': '%s', 'key': '%s'},\n"
	    " 'upstreams': {\n"
	    "   'main': {'host': 'db.example', 'port': 5433, 'unix_dir': null, 'database': 'app',\n"
	    "            'user': 'app_owner', 'password_file': '%s', 'sslmode': 'verify-full',\n"
	    "            'ca_file': '%s', 'allow_cleartext': true, 'connect_timeout_seconds': "
	    "1.5, 'max_connections': 90},\n"
	    "   'local': {'unix_dir': '/var/run/postgresql', 'user': 'postgres',\n"
	    "             'sslmode': 'disable'}\n"
	    " },\n"
	    " 'identities': [\n"
	    "   {'name': 'app', 'match': {'user': 'app*', 'database': 'app',\n"
	    "    'application_name': 'web-*'}, 'auth': 'password', 'scram_verifier': '" VERIFIER
	    "', 'upstream': 'main'},\n"
	    "   {'name': 'ops', 'match': {'user': 'postgres'}, 'auth': 'trust', 'upstream': "
	    "'local'},\n"
	    "   {'name': 'rest', 'auth': 'trust', 'upstream': 'main'}\n"
	    " ],\n"
	    " 'limits': {'max_message_bytes': 2048, 'max_statement_bytes': 100,\n"
	    "            'max_bind_bytes': 200, 'max_startup_bytes': 5000,\n"
	    "            'auth_timeout_seconds': 0.25}\n"
	    "}\n",
	    crt, key, pw, ca);
	struct pw_config *c = load_ok("full config", json);
	if (!c)
		return;
	CHECK(strcmp(c->path, "test.json") == 0, "full: path");
	CHECK(c->refcount == 1, "full: refcount starts at 1");
	CHECK(c->workers == 3, "full: workers");
	CHECK(c->log_level == PW_LOG_DEBUG, "full: log_level");
	CHECK(c->shutdown_grace_ms == 2500, "full: fractional shutdown grace in ms");
	CHECK(c->control.enabled && strcmp(c->control.socket, "/run/pgward/control.sock") == 0 &&
	          c->control.mode == 0600,
	      "full: control socket");

	CHECK(c->n_listen == 4, "full: 4 listeners");
	CHECK(!c->listen[0].is_unix && strcmp(c->listen[0].host, "0.0.0.0") == 0 &&
	          c->listen[0].port == 6432,
	      "full: listen[0] tcp");
	CHECK(c->listen[1].is_unix && strcmp(c->listen[1].unix_path, "/tmp/.s.PGSQL.6432") == 0 &&
	          c->listen[1].unix_mode == 0770,
	      "full: listen[1] unix, octal string mode");
	CHECK(c->listen[2].is_unix && c->listen[2].unix_mode == 0600, "full: integer mode 384");
	CHECK(!c->listen[3].is_unix && strcmp(c->listen[3].host, "127.0.0.1") == 0 &&
	          c->listen[3].port == 7000,
	      "full: default listen host");

	CHECK(c->tls_enabled && strcmp(c->tls_cert, crt) == 0 && strcmp(c->tls_key, key) == 0,
	      "full: tls");

	CHECK(c->n_upstreams == 2, "full: 2 upstreams");
	const struct pw_upstream *u = &c->upstreams[0];
	CHECK(strcmp(u->name, "main") == 0, "full: upstream order kept");
	CHECK(strcmp(u->host, "db.example") == 0 && u->port == 5433 && u->unix_dir[0] == '\0',
	      "full: main host/port, unix_dir null means absent");
	CHECK(strcmp(u->database, "app") == 0 && strcmp(u->user, "app_owner") == 0,
	      "full: main database/user");
	CHECK(u->has_password && strcmp(u->password, "s3cret") == 0,
	      "full: password read, \\r\\n stripped");
	CHECK(u->sslmode == PW_SSL_VERIFY_FULL && strcmp(u->ca_file, ca) == 0,
	      "full: sslmode, ca_file");
	CHECK(u->allow_cleartext && u->connect_timeout_ms == 1500, "full: cleartext, timeout");
	CHECK(u->max_connections == 90 && u->max_connections_set, "full: max_connections");
	u = &c->upstreams[1];
	CHECK(strcmp(u->name, "local") == 0 && u->host[0] == '\0' &&
	          strcmp(u->unix_dir, "/var/run/postgresql") == 0 && u->port == 5432,
	      "full: local unix_dir, default port");
	CHECK(!u->has_password && u->password[0] == '\0' && u->database[0] == '\0' &&
	          u->sslmode == PW_SSL_DISABLE && !u->allow_cleartext &&
	          u->connect_timeout_ms == 10000 && u->ca_file[0] == '\0',
	      "full: local defaults");

	CHECK(c->n_identities == 3, "full: 3 identities");
	const struct pw_identity *id = &c->identities[0];
	CHECK(strcmp(id->name, "app") == 0 && strcmp(id->match_user, "app*") == 0 &&
	          strcmp(id->match_database, "app") == 0 &&
	          strcmp(id->match_application_name, "web-*") == 0,
	      "full: identity app globs");
	CHECK(id->auth == PW_CLIENT_AUTH_PASSWORD && id->verifier.iterations == 4096 &&
	          id->upstream == 0,
	      "full: identity app auth, verifier, upstream");
	static const uint8_t salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
	                                 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
	static const uint8_t stored[32] = {0x58, 0x6e, 0x5d, 0xf2, 0x83, 0xe6, 0xdc, 0xeb,
	                                   0x5c, 0x3e, 0x79, 0x1d, 0x8b, 0x85, 0x28, 0xec,
	                                   0x19, 0x1e, 0x66, 0x40, 0x45, 0xce, 0x97, 0x17,
	                                   0x92, 0xe2, 0xe6, 0xb5, 0xbb, 0x13, 0xe2, 0xa6};
	static const uint8_t server[32] = {0xc1, 0xf3, 0xcb, 0xc1, 0xc1, 0x3a, 0x9d, 0x35,
	                                   0xa1, 0x4c, 0x09, 0x90, 0xee, 0xd9, 0x76, 0x29,
	                                   0xea, 0x22, 0x58, 0x63, 0xe5, 0x66, 0xa4, 0x31,
	                                   0x4a, 0xb9, 0x9f, 0x3f, 0x00, 0xe5, 0xd9, 0xd5};
	CHECK(id->verifier.salt_len == 16 && memcmp(id->verifier.salt, salt, 16) == 0 &&
	          memcmp(id->verifier.stored_key, stored, 32) == 0 &&
	          memcmp(id->verifier.server_key, server, 32) == 0,
	      "full: verifier salt, StoredKey, ServerKey decoded");
	id = &c->identities[1];
	CHECK(strcmp(id->name, "ops") == 0 && strcmp(id->match_user, "postgres") == 0 &&
	          id->match_database[0] == '\0' && id->match_application_name[0] == '\0' &&
	          id->auth == PW_CLIENT_AUTH_TRUST && id->upstream == 1,
	      "full: identity ops, missing match keys are empty");
	id = &c->identities[2];
	CHECK(strcmp(id->name, "rest") == 0 && id->match_user[0] == '\0' && id->upstream == 0,
	      "full: identity without match");

	CHECK(c->max_message_bytes == 2048 && c->max_statement_bytes == 100 &&
	          c->max_bind_bytes == 200 && c->max_startup_bytes == 5000 &&
	          c->auth_timeout_ms == 250,
	      "full: limits");
	pw_config_unref(c);
}

static void test_defaults(void)
{
	struct pw_config *c = load_ok("minimal config", jq(MINIMAL));
	if (!c)
		return;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int want = cpus < 1 ? 1 : cpus > 256 ? 256 : (int)cpus;
	CHECK(c->workers == want, "defaults: workers = online CPUs (%d)", c->workers);
	CHECK(c->log_level == PW_LOG_INFO, "defaults: log_level info");
	CHECK(c->shutdown_grace_ms == 30000, "defaults: shutdown grace 30 s");
	CHECK(!c->control.enabled, "defaults: no control socket");
	CHECK(c->n_listen == 1 && strcmp(c->listen[0].host, "127.0.0.1") == 0,
	      "defaults: listen host");
	CHECK(!c->tls_enabled, "defaults: no tls");
	CHECK(c->upstreams[0].port == 5432 && c->upstreams[0].sslmode == PW_SSL_PREFER &&
	          c->upstreams[0].connect_timeout_ms == 10000 && !c->upstreams[0].has_password,
	      "defaults: upstream port, sslmode, timeout");
	CHECK(c->upstreams[0].max_connections == PW_UPSTREAM_MAX_CONNECTIONS &&
	          PW_UPSTREAM_MAX_CONNECTIONS == 64 && !c->upstreams[0].max_connections_set,
	      "defaults: upstream max_connections 64, marked as not set");
	CHECK(c->max_message_bytes == 1073741824 && c->max_statement_bytes == 1048576 &&
	          c->max_bind_bytes == 67108864 && c->max_startup_bytes == 10000 &&
	          c->auth_timeout_ms == 60000,
	      "defaults: limits");
	pw_config_unref(c);

	c = load_ok("unix listener with default mode",
	            jq("{'listen':[{'unix':'/tmp/x.sock'}]," MIN_UP "," MIN_ID
	               ",'tls':null,'limits':{},'control':null,'workers':256}"));
	if (c) {
		CHECK(c->listen[0].is_unix && c->listen[0].unix_mode == 0777,
		      "defaults: unix mode 0777");
		CHECK(!c->tls_enabled && c->workers == 256, "defaults: null tls, workers 256");
		pw_config_unref(c);
	}
	c = load_ok("shutdown grace 0",
	            jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'shutdown_grace_seconds':0}"));
	if (c) {
		CHECK(c->shutdown_grace_ms == 0, "defaults: shutdown grace may be 0");
		pw_config_unref(c);
	}
	for (int i = 0; i < 4; i++) {
		static const char *const names[] = {"debug", "info", "warn", "error"};
		c = load_ok(names[i], jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'log_level':'%s'}",
		                         names[i]));
		if (c) {
			CHECK((int)c->log_level == i, "log_level %s", names[i]);
			pw_config_unref(c);
		}
	}
	for (int m = PW_SSL_DISABLE; m <= PW_SSL_VERIFY_FULL; m++) {
		const char *ca = fixture_s(m == 0 ? "ca0.crt" : "ca1.crt", "x");
		c = load_ok(pw_sslmode_name(m),
		            jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
		               "'sslmode':'%s','ca_file':'%s'}}," MIN_ID "}",
		               pw_sslmode_name(m), ca));
		if (c) {
			CHECK((int)c->upstreams[0].sslmode == m, "sslmode %s round-trips",
			      pw_sslmode_name(m));
			pw_config_unref(c);
		}
	}
	CHECK(strcmp(pw_sslmode_name(PW_SSL_VERIFY_CA), "verify-ca") == 0 &&
	          strcmp(pw_sslmode_name((enum pw_sslmode)99), "?") == 0,
	      "pw_sslmode_name");
}

static void test_password_files(void)
{
	char big[1100];
	memset(big, 'p', sizeof(big));
	struct {
		const char *name;
		size_t len;
		const char *content;
		const char *want; /* NULL: must fail */
	} cases[] = {
	    {"pw_plain", 4, "abcd", "abcd"},        {"pw_nl", 5, "abcd\n", "abcd"},
	    {"pw_two_nl", 6, "abcd\n\n", "abcd\n"}, /* only one line end is cut */
	    {"pw_spaces", 6, " ab c ", " ab c "},   {"pw_1023", 1023, big, ""},
	    {"pw_1023_crlf", 1025, NULL, ""},       {"pw_1024", 1024, big, NULL},
	    {"pw_only_nl", 1, "\n", NULL},          {"pw_nul", 3, "a\0b", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char content[1100];
		if (cases[i].content) {
			memcpy(content, cases[i].content, cases[i].len);
		} else {
			memcpy(content, big, 1023);
			memcpy(content + 1023, "\r\n", 2);
		}
		const char *p = fixture(cases[i].name, content, cases[i].len);
		struct pw_config *c = NULL;
		char err[1024] = "";
		int rc = pw_config_load_string(jq("{" MIN_LISTEN
		                                  ",'upstreams':{'main':{'host':'db','user':'u',"
		                                  "'password_file':'%s'}}," MIN_ID "}",
		                                  p),
		                               "t.json", &c, err, sizeof(err));
		if (!cases[i].want) {
			CHECK(rc == -1 && strstr(err, "$.upstreams.main.password_file") &&
			          strstr(err, p),
			      "password file %s rejected, message names it: %s", cases[i].name,
			      err);
		} else if (cases[i].len >= 1023) {
			CHECK(rc == 0 && strlen(c->upstreams[0].password) == 1023,
			      "password file %s: 1023 bytes accepted %s", cases[i].name, err);
		} else {
			CHECK(rc == 0 && strcmp(c->upstreams[0].password, cases[i].want) == 0,
			      "password file %s read exactly %s", cases[i].name, err);
		}
		if (rc == 0)
			pw_config_unref(c);
	}
}

static void test_errors(void)
{
	char longs[300];
	memset(longs, 'x', sizeof(longs));
	longs[299] = '\0';
	const char *pw_empty = fixture_s("empty.pw", "");
	const char *cert = fixture_s("c.crt", "x");

	expect_err("unknown top-level key", jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'wokers':2}"),
	           "$.wokers", "unknown key");
	expect_err("unknown nested key",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u','sslmod':"
	              "'require'}}," MIN_ID "}"),
	           "$.upstreams.main.sslmod", "unknown key (expected one of host, port");
	expect_err("unknown key in match",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','match':{'usr':'x'},"
	              "'auth':'trust','upstream':'main'}]}"),
	           "$.identities[0].match.usr", "unknown key");
	expect_err("max_connections 0",
	           jq("{" MIN_LISTEN
	              ",'upstreams':{'main':{'host':'db','user':'u','max_connections':"
	              "0}}," MIN_ID "}"),
	           "$.upstreams.main.max_connections", "expected an integer from 1 to 100000");
	expect_err("max_connections as a string",
	           jq("{" MIN_LISTEN
	              ",'upstreams':{'main':{'host':'db','user':'u','max_connections':"
	              "'10'}}," MIN_ID "}"),
	           "$.upstreams.main.max_connections", "expected an integer");
	expect_err("unknown key in limits",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'limits':{'max_messages':1}}"),
	           "$.limits.max_messages", "unknown key");
	expect_err("odd key gets bracket path",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'tls':{'cert file':'x'}}"),
	           "$.tls[\"cert file\"]", "unknown key");
	expect_err("workers wrong type", jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'workers':'2'}"),
	           "$.workers", "expected an integer from 1 to 256, got string");
	expect_err("workers zero", jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'workers':0}"),
	           "$.workers", "got 0");
	expect_err("workers too many", jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'workers':257}"),
	           "$.workers", "got 257");
	expect_err("workers real", jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'workers':2.0}"),
	           "$.workers", "got real");
	expect_err("bad log level",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'log_level':'verbose'}"),
	           "$.log_level", "expected one of debug, info, warn, error, got \"verbose\"");
	expect_err("log level wrong type",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'log_level':1}"), "$.log_level",
	           "got integer");
	expect_err("negative grace",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'shutdown_grace_seconds':-1}"),
	           "$.shutdown_grace_seconds", "got -1");
	expect_err("grace as string",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'shutdown_grace_seconds':'30'}"),
	           "$.shutdown_grace_seconds", "got string");
	expect_err("grace too large",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'shutdown_grace_seconds':1e12}"),
	           "$.shutdown_grace_seconds", "expected a number of seconds");
	expect_err(
	    "control socket too long",
	    jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'control':{'socket':'/%.110s'}}", longs),
	    "$.control.socket", "at most 107 bytes, got 111 bytes");
	expect_err("top level not an object", "[1,2]", "$", "expected an object, got array");

	expect_err("missing listen", jq("{" MIN_UP "," MIN_ID "}"), "$.listen",
	           "required key is missing");
	expect_err("empty listen", jq("{'listen':[]," MIN_UP "," MIN_ID "}"), "$.listen",
	           "at least one");
	expect_err("listen not array", jq("{'listen':{'port':1}," MIN_UP "," MIN_ID "}"),
	           "$.listen", "expected an array, got object");
	expect_err("listen element not object", jq("{'listen':[6432]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0]", "expected an object, got integer");
	expect_err("bad port",
	           jq("{'listen':[{'port':6432},{'port':70000}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[1].port", "expected an integer from 1 to 65535, got 70000");
	expect_err("port zero", jq("{'listen':[{'host':'::1','port':0}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0].port", "got 0");
	expect_err("host without port", jq("{'listen':[{'host':'::1'}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0].port", "required key is missing");
	expect_err("both host and unix",
	           jq("{'listen':[{'host':'::1','port':1,'unix':'/tmp/s'}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0]", "not both");
	expect_err("neither host nor unix", jq("{'listen':[{}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0]", "expected either host+port or unix");
	expect_err("unix path too long",
	           jq("{'listen':[{'unix':'/tmp/%.110s'}]," MIN_UP "," MIN_ID "}", longs),
	           "$.listen[0].unix", "at most 107 bytes");
	expect_err("mode as decimal 777",
	           jq("{'listen':[{'unix':'/tmp/s','mode':777}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0].mode", "got 777");
	expect_err("mode not octal",
	           jq("{'listen':[{'unix':'/tmp/s','mode':'0998'}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0].mode", "got \"0998\"");
	expect_err("mode on tcp", jq("{'listen':[{'port':1,'mode':'0777'}]," MIN_UP "," MIN_ID "}"),
	           "$.listen[0].mode", "only valid for a unix listener");
	expect_err(
	    "duplicate listener",
	    jq("{'listen':[{'port':5},{'host':'127.0.0.1','port':5}]," MIN_UP "," MIN_ID "}"),
	    "$.listen[1]", "duplicate of $.listen[0]");

	expect_err("tls without key",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'tls':{'cert':'%s'}}", cert),
	           "$.tls.key", "required key is missing");
	expect_err("tls cert unreadable",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID
	              ",'tls':{'cert':'/nonexistent/c.crt','key':'%s'}}",
	              cert),
	           "$.tls.cert", "cannot read \"/nonexistent/c.crt\": No such file");
	expect_err("tls wrong type", jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'tls':true}"),
	           "$.tls", "expected an object, got boolean");

	expect_err("missing upstreams", jq("{" MIN_LISTEN "," MIN_ID "}"), "$.upstreams",
	           "required key is missing");
	expect_err("empty upstreams", jq("{" MIN_LISTEN ",'upstreams':{}," MIN_ID "}"),
	           "$.upstreams", "at least one");
	expect_err(
	    "upstream name too long",
	    jq("{" MIN_LISTEN ",'upstreams':{'%.64s':{'host':'db','user':'u'}}," MIN_ID "}", longs),
	    "$.upstreams", "1 to 63 bytes");
	expect_err("upstream missing user",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db'}}," MIN_ID "}"),
	           "$.upstreams.main.user", "required key is missing");
	expect_err("upstream user null",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':null}}," MIN_ID "}"),
	           "$.upstreams.main.user", "got null");
	expect_err("over-long user",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'%.64s'}}," MIN_ID
	              "}",
	              longs),
	           "$.upstreams.main.user", "at most 63 bytes, got 64 bytes");
	expect_err("over-long host",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'%.256s','user':'u'}}," MIN_ID
	              "}",
	              longs),
	           "$.upstreams.main.host", "at most 255 bytes");
	expect_err("odd upstream name in path",
	           jq("{" MIN_LISTEN ",'upstreams':{'my db':{'host':'db','user':7}}," MIN_ID "}"),
	           "$.upstreams[\"my db\"].user", "expected a string, got integer");
	expect_err("upstream both host and unix_dir",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','unix_dir':'/run','user':"
	              "'u'}}," MIN_ID "}"),
	           "$.upstreams.main", "exactly one of host or unix_dir");
	expect_err("upstream neither host nor unix_dir",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'user':'u'}}," MIN_ID "}"),
	           "$.upstreams.main", "one of host or unix_dir");
	expect_err("upstream bad port",
	           jq("{" MIN_LISTEN
	              ",'upstreams':{'main':{'host':'db','user':'u','port':-5}}," MIN_ID "}"),
	           "$.upstreams.main.port", "got -5");
	expect_err("unix_dir socket path too long",
	           jq("{" MIN_LISTEN
	              ",'upstreams':{'main':{'unix_dir':'/%.100s','user':'u'}}," MIN_ID "}",
	              longs),
	           "$.upstreams.main.unix_dir", "xxx/.s.PGSQL.5432\" would be 115 bytes");
	{
		/* the exact message, as documented */
		struct pw_config *c = NULL;
		char err[512];
		int rc = pw_config_load_string(jq("{" MIN_LISTEN
		                                  ",'upstreams':{'main':{'host':'db','user':'u',"
		                                  "'sslmode':'requir'}}," MIN_ID "}"),
		                               "/etc/pgward.json", &c, err, sizeof(err));
		CHECK(rc == -1 && c == NULL &&
		          strcmp(err, "/etc/pgward.json: $.upstreams.main.sslmode: expected one "
		                      "of disable, prefer, require, verify-ca, verify-full, got "
		                      "\"requir\"") == 0,
		      "error: unknown sslmode, exact message: %s", err);
	}
	expect_err("verify-full without ca_file",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'sslmode':'verify-full'}}," MIN_ID "}"),
	           "$.upstreams.main.ca_file", "required when sslmode is verify-full");
	expect_err("verify-ca without ca_file",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'sslmode':'verify-ca'}}," MIN_ID "}"),
	           "$.upstreams.main.ca_file", "verify-ca");
	expect_err("ca_file unreadable",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'sslmode':'verify-ca','ca_file':'/nonexistent/ca'}}," MIN_ID "}"),
	           "$.upstreams.main.ca_file", "cannot read");
	expect_err("require over unix socket",
	           jq("{" MIN_LISTEN
	              ",'upstreams':{'main':{'unix_dir':'/run/postgresql','user':'u',"
	              "'sslmode':'require'}}," MIN_ID "}"),
	           "$.upstreams.main.sslmode", "TLS is not used on unix sockets");
	expect_err("missing password file",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'password_file':'%s/nope.pw'}}," MIN_ID "}",
	              dir),
	           "$.upstreams.main.password_file", "No such file or directory");
	expect_err("empty password file",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'password_file':'%s'}}," MIN_ID "}",
	              pw_empty),
	           "$.upstreams.main.password_file", "is empty");
	expect_err("password file is a directory",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'password_file':'%s'}}," MIN_ID "}",
	              dir),
	           "$.upstreams.main.password_file", "not a regular file");
	expect_err("allow_cleartext wrong type",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'allow_cleartext':'yes'}}," MIN_ID "}"),
	           "$.upstreams.main.allow_cleartext", "expected true or false, got string");
	expect_err("connect timeout zero",
	           jq("{" MIN_LISTEN ",'upstreams':{'main':{'host':'db','user':'u',"
	              "'connect_timeout_seconds':0}}," MIN_ID "}"),
	           "$.upstreams.main.connect_timeout_seconds", "got 0");
	expect_err("upstream not object", jq("{" MIN_LISTEN ",'upstreams':{'main':[]}," MIN_ID "}"),
	           "$.upstreams.main", "expected an object, got array");

	expect_err("missing identities", jq("{" MIN_LISTEN "," MIN_UP "}"), "$.identities",
	           "required key is missing");
	expect_err("empty identities", jq("{" MIN_LISTEN "," MIN_UP ",'identities':[]}"),
	           "$.identities", "at least one");
	expect_err(
	    "identity without name",
	    jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'auth':'trust','upstream':'main'}]}"),
	    "$.identities[0].name", "required key is missing");
	expect_err(
	    "unknown upstream in identity",
	    jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'trust',"
	       "'upstream':'main'},{'name':'b','auth':'trust','upstream':'main'},{'name':'c',"
	       "'auth':'trust','upstream':'mian'}]}"),
	    "$.identities[2].upstream", "no upstream named \"mian\"");
	expect_err("over-long upstream reference",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'trust',"
	              "'upstream':'%.70s'}]}",
	              longs),
	           "$.identities[0].upstream", "no upstream named");
	expect_err("duplicate identity name",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'trust',"
	              "'upstream':'main'},{'name':'a','auth':'trust','upstream':'main'}]}"),
	           "$.identities[1].name", "duplicate identity name \"a\" (also $.identities[0])");
	expect_err("bad verifier",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'password',"
	              "'scram_verifier':'md5abcdef','upstream':'main'}]}"),
	           "$.identities[0].scram_verifier", "invalid SCRAM-SHA-256 verifier: ");
	expect_err("malformed SCRAM verifier",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'password',"
	              "'scram_verifier':'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$abc:def',"
	              "'upstream':'main'}]}"),
	           "$.identities[0].scram_verifier", "invalid SCRAM-SHA-256 verifier: ");
	expect_err("verifier wrong type",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'password',"
	              "'scram_verifier':4096,'upstream':'main'}]}"),
	           "$.identities[0].scram_verifier", "expected a string, got integer");
	expect_err("password without verifier",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'password',"
	              "'upstream':'main'}]}"),
	           "$.identities[0].scram_verifier", "required key is missing");
	expect_err("verifier with trust",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'trust',"
	              "'scram_verifier':'" VERIFIER "','upstream':'main'}]}"),
	           "$.identities[0].scram_verifier", "not used with auth \"trust\"");
	expect_err("unknown auth",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','auth':'md5',"
	              "'upstream':'main'}]}"),
	           "$.identities[0].auth", "expected one of trust, password, jwt, got \"md5\"");
	expect_err("missing auth",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','upstream':'main'}]}"),
	           "$.identities[0].auth", "required key is missing");
	expect_err("match wrong type",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','match':'app*',"
	              "'auth':'trust','upstream':'main'}]}"),
	           "$.identities[0].match", "expected an object, got string");
	expect_err("over-long glob",
	           jq("{" MIN_LISTEN "," MIN_UP ",'identities':[{'name':'a','match':{'database':"
	              "'%.64s'},'auth':'trust','upstream':'main'}]}",
	              longs),
	           "$.identities[0].match.database", "at most 63 bytes");

	expect_err("limit too small",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'limits':{'max_message_bytes':10}}"),
	           "$.limits.max_message_bytes", "from 1024 to 2147483647, got 10");
	expect_err(
	    "startup limit above PostgreSQL's",
	    jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'limits':{'max_startup_bytes':10001}}"),
	    "$.limits.max_startup_bytes", "got 10001");
	expect_err("limit wrong type",
	           jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'limits':{'max_bind_bytes':'64M'}}"),
	           "$.limits.max_bind_bytes", "got string");
	expect_err(
	    "auth timeout negative",
	    jq("{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'limits':{'auth_timeout_seconds':-2}}"),
	    "$.limits.auth_timeout_seconds", "got -2");
}

static void test_syntax_and_files(void)
{
	char err[512], path[] = "/tmp/pgward-config-XXXXXX";
	struct pw_config *c = (struct pw_config *)&c;

	int rc = pw_config_load_string("{\n  \"workers\": 2,\n  \"listen\": [\n}\n", "bad.json", &c,
	                               err, sizeof(err));
	CHECK(rc == -1 && c == NULL && strncmp(err, "bad.json: line 4, column 1: ", 28) == 0,
	      "syntax error gives file, line and column: %s", err);
	rc = pw_config_load_string("{\"workers\": 2, \"workers\": 3}", "dup.json", &c, err,
	                           sizeof(err));
	CHECK(rc == -1 && strstr(err, "dup.json: line 1") && strstr(err, "duplicate"),
	      "duplicate JSON key is a syntax error: %s", err);
	rc = pw_config_load_string("", "empty.json", &c, err, sizeof(err));
	CHECK(rc == -1 && strncmp(err, "empty.json: line ", 17) == 0, "empty document: %s", err);

	/* pw_config_load on a real file */
	int fd = mkstemp(path);
	char json[512];
	snprintf(json, sizeof(json), "%s", jq(MINIMAL));
	CHECK(fd >= 0 && write(fd, json, strlen(json)) == (ssize_t)strlen(json) && close(fd) == 0,
	      "write temp config %s", path);
	c = NULL;
	rc = pw_config_load(path, &c, err, sizeof(err));
	CHECK(rc == 0 && c && strcmp(c->path, path) == 0 && c->n_identities == 1,
	      "pw_config_load reads a file");
	if (rc == 0)
		pw_config_unref(c);

	FILE *f = fopen(path, "w");
	fputs(jq("{\n 'listen': [{'port': 1}],\n 'upstreams': {'main': {'host': 'db', "
	         "'user': 'u'}}\n 'identities': []\n}\n"),
	      f);
	fclose(f);
	rc = pw_config_load(path, &c, err, sizeof(err));
	char want[128];
	snprintf(want, sizeof(want), "%s: line 4, column ", path);
	CHECK(rc == -1 && c == NULL && strncmp(err, want, strlen(want)) == 0,
	      "syntax error in a file names file and line 4: %s", err);

	/* a NUL byte inside the file must not end the document silently */
	f = fopen(path, "w");
	fwrite(json, 1, strlen(json), f);
	fwrite("\0garbage", 1, 8, f);
	fclose(f);
	rc = pw_config_load(path, &c, err, sizeof(err));
	snprintf(want, sizeof(want), "%s: line 1, column %zu: NUL byte", path, strlen(json) + 1);
	CHECK(rc == -1 && c == NULL && strncmp(err, want, strlen(want)) == 0,
	      "NUL byte inside the file is an error: %s", err);
	unlink(path);

	rc = pw_config_load(path, &c, err, sizeof(err));
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	CHECK(rc == -1 && c == NULL && strcmp(err, want) == 0, "missing config file: %s", err);
	rc = pw_config_load("/tmp", &c, err, sizeof(err));
	CHECK(rc == -1 && strcmp(err, "/tmp: not a regular file") == 0, "directory: %s", err);

	/* a tiny error buffer is filled safely, never overrun */
	char small[8];
	memset(small, 'z', sizeof(small));
	rc = pw_config_load_string("{}", "a-rather-long-name.json", &c, small, sizeof(small));
	CHECK(rc == -1 && memchr(small, '\0', sizeof(small)) != NULL,
	      "small error buffer is NUL-terminated");
	rc = pw_config_load_string("{}", "x.json", &c, NULL, 0);
	CHECK(rc == -1 && c == NULL, "NULL error buffer is allowed");
}

static void test_match(void)
{
	struct pw_config *c = load_ok(
	    "matching config",
	    jq("{" MIN_LISTEN ",'upstreams':{'a':{'host':'a','user':'u'},'b':{'host':'b','user':"
	       "'u'}},'identities':["
	       "{'name':'psql-admin','match':{'user':'admin','application_name':'psql'},"
	       "'auth':'trust','upstream':'a'},"
	       "{'name':'admin','match':{'user':'admin'},'auth':'trust','upstream':'b'},"
	       "{'name':'apps','match':{'user':'app_[0-9]*','database':'prod_*'},'auth':'trust',"
	       "'upstream':'a'},"
	       "{'name':'admin-shadow','match':{'user':'admin'},'auth':'trust','upstream':'a'},"
	       "{'name':'reports','match':{'database':'rep?rts','user':'','application_name':''}"
	       ",'auth':'trust','upstream':'b'}]}"));
	if (!c)
		return;
	const struct pw_identity *id;
	id = pw_config_match(c, "admin", "db", "psql");
	CHECK(id && strcmp(id->name, "psql-admin") == 0, "match: most specific listed first wins");
	id = pw_config_match(c, "admin", "db", "pgadmin");
	CHECK(id && strcmp(id->name, "admin") == 0 && id->upstream == 1,
	      "match: first match wins over a later identical one");
	id = pw_config_match(c, "admin", "db", NULL);
	CHECK(id && strcmp(id->name, "admin") == 0, "match: NULL app is \"\", not \"psql\"");
	id = pw_config_match(c, "app_7x", "prod_eu", "");
	CHECK(id && strcmp(id->name, "apps") == 0, "match: bracket and star globs");
	id = pw_config_match(c, "app_x", "prod_eu", "");
	CHECK(id == NULL, "match: bracket glob rejects a letter");
	id = pw_config_match(c, "app_1", "staging", "");
	CHECK(id == NULL, "match: every glob must match");
	id = pw_config_match(c, "anyone", "reports", "x");
	CHECK(id && strcmp(id->name, "reports") == 0, "match: empty globs match anything, ?");
	id = pw_config_match(c, "anyone", "rep/rts", "x");
	CHECK(id && strcmp(id->name, "reports") == 0, "match: flags 0, ? matches /");
	id = pw_config_match(c, "Admin", "db", "");
	CHECK(id == NULL, "match: case-sensitive");
	pw_config_unref(c);

	c = load_ok("match-all config", jq(MINIMAL));
	if (c) {
		id = pw_config_match(c, "", "", NULL);
		CHECK(id == &c->identities[0], "match: identity without match takes everyone");
		pw_config_unref(c);
	}
}

/* redirect.cgroups: a path relative to the cgroup v2 mount is resolved against it, and may not
 * climb out of it. */
static void test_redirect_paths(void)
{
#define RD(cg) "{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'redirect':{'cgroups':['" cg "']}}"
	expect_err("relative cgroup with ..", jq(RD("a/../../etc")), "$.redirect.cgroups[0]",
	           "may not hold \".\" or \"..\"");
	expect_err("relative cgroup ..", jq(RD("..")), "$.redirect.cgroups[0]", "\"..\"");
	expect_err("relative cgroup with .", jq(RD("./x")), "$.redirect.cgroups[0]", "\".\"");
	/* an existing child of the mount (this process's cgroup, or any), relative */
	char line[512] = "", mnt[256] = "";
	FILE *m = fopen("/proc/self/mounts", "re");
	char dev[256], dirn[256], type[64];
	while (m && fscanf(m, "%255s %255s %63s %*[^\n]\n", dev, dirn, type) == 3)
		if (strcmp(type, "cgroup2") == 0 && !mnt[0])
			snprintf(mnt, sizeof(mnt), "%s", dirn);
	if (m)
		fclose(m);
	DIR *d = mnt[0] ? opendir(mnt) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (e->d_type == DT_DIR && e->d_name[0] != '.') {
			snprintf(line, sizeof(line), "%s", e->d_name);
			break;
		}
	if (d)
		closedir(d);
	const char *rel = line;
	if (!mnt[0] || !rel[0]) {
		CHECK_SKIP("no cgroup v2 mount, or no cgroup below its root",
		           "relative cgroup resolves against the cgroup2 mount");
		return;
	}
	char json[1024];
	snprintf(json, sizeof(json), RD("%s"), rel);
	struct pw_config *c = load_ok("relative cgroup (an existing one)", jq("%s", json));
	char want[1024];
	snprintf(want, sizeof(want), "%s/%s", mnt, rel);
	CHECK(c && c->redirect.n_cgroups == 1 && strcmp(c->redirect.cgroups[0], want) == 0,
	      "relative cgroup %s resolves to %s (got %s)", rel, want,
	      c ? c->redirect.cgroups[0] : "-");
	pw_config_unref(c);
	expect_err("relative cgroup that does not exist", jq(RD("pgward-no-such-cgroup")),
	           "$.redirect.cgroups[0]", mnt);
#undef RD
}

/* redirect.netns_listeners: on by default with the redirect, false turns it off, a boolean */
static void test_redirect_netns(void)
{
#define RN(extra) "{" MIN_LISTEN "," MIN_UP "," MIN_ID ",'redirect':{'uids':[1000]" extra "}}"
	struct pw_config *c = load_ok("redirect without netns_listeners", jq(RN("")));
	CHECK(c && c->redirect.netns_listeners, "netns_listeners defaults to true");
	pw_config_unref(c);
	c = load_ok("redirect with netns_listeners false", jq(RN(",'netns_listeners':false")));
	CHECK(c && !c->redirect.netns_listeners, "netns_listeners false is kept");
	pw_config_unref(c);
	expect_err("netns_listeners not a boolean", jq(RN(",'netns_listeners':'yes'")),
	           "$.redirect.netns_listeners", NULL);
#undef RN
}

static void test_refcount(void)
{
	struct pw_config *c = load_ok("refcount config", jq(MINIMAL));
	if (!c)
		return;
	CHECK(pw_config_ref(c) == c && c->refcount == 2, "ref returns the same config, count 2");
	pw_config_ref(c);
	pw_config_unref(c);
	pw_config_unref(c);
	CHECK(c->refcount == 1, "two unrefs back to 1");
	pw_config_unref(c); /* frees: ASan flags a leak if not, a double free if twice */
	pw_config_unref(NULL);
	CHECK(pw_config_ref(NULL) == NULL, "ref/unref accept NULL");
}

/* The policy part of an identity: rules, guardrails, windows, roles, and what goes with them. */
static void test_policy(void)
{
#define BASE(ID)                                                                                   \
	"{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "              \
	"'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'trust', "               \
	"'upstream': 'u', " ID "}]}"
	struct pw_config *c = load_ok(
	    "rules, windows, role, guardrails",
	    jq(BASE("'databases': ['app_*'], 'upstreams': ['u'], 'role': 'ro', 'max_sessions': 3,"
	            "'windows': [{'days': ['mon-fri', 'sun'], 'from': '22:00', 'to': '06:00'}],"
	            "'guardrails': {'role_escape': false},"
	            "'rules': [{'name': 'r1', 'action': 'deny', 'class': ['delete', 'update'],"
	            "           'relations': ['public.orders'], 'facts': ['no_where']},"
	            "          {'action': 'allow', 'class': 'select', 'relations': 'public.*',"
	            "           'access': 'read', 'functions': ['lower', 'pg_catalog.*']}]")));
	if (c) {
		const struct pw_policy *p = &c->identities[0].policy;
		CHECK(p->n_rules == 2 && p->rules[0].action == PW_ACT_DENY &&
		          p->rules[0].classes == ((1u << PW_SQL_DELETE) | (1u << PW_SQL_UPDATE)) &&
		          p->rules[0].facts == PW_SQL_F_NO_WHERE && !strcmp(p->rules[0].name, "r1"),
		      "rule 1 read");
		CHECK(p->rules[1].action == PW_ACT_ALLOW && p->rules[1].access == PW_SQL_READ &&
		          p->rules[1].n_relations == 1 &&
		          !strcmp(p->rules[1].relations[0], "public.*") &&
		          p->rules[1].n_functions == 2,
		      "rule 2 read (one string is a list of one)");
		CHECK(p->n_windows == 1 && p->windows[0].days == 0x5f &&
		          p->windows[0].from_min == 22 * 60 && p->windows[0].to_min == 6 * 60 &&
		          p->windows[0].utc,
		      "window: mon-fri + sun, across midnight, UTC by default");
		CHECK(!strcmp(p->role, "ro") && p->max_sessions == 3 && p->n_databases == 1 &&
		          p->n_upstreams == 1 && p->upstreams[0] == 0,
		      "role, max_sessions, databases, upstreams");
		CHECK(p->guardrail_off[PW_GR_ROLE_ESCAPE] && !p->guardrail_off[PW_GR_NO_WHERE] &&
		          !p->guardrail_off[PW_GR_SUPERUSER_SETTINGS] && !p->allow_all,
		      "one guardrail off, the others on");
		/* Saturday is not listed: only Friday's window reaches into it, until 06:00 */
		time_t sat_0300 = 1763780400; /* 2025-11-22 03:00 UTC, a Saturday */
		time_t sat_2300 = sat_0300 + 20 * 3600;
		time_t sun_2300 = sat_2300 + 24 * 3600;
		CHECK(pw_policy_in_window(p, sat_0300), "Friday's window runs into Saturday 03:00");
		CHECK(!pw_policy_in_window(p, sat_2300), "no window on Saturday 23:00");
		CHECK(pw_policy_in_window(p, sun_2300), "Sunday 23:00 is inside");
		/* statements too: outside the window every statement is refused, inside the rules
		 * decide */
		static struct pw_sql_result r;
		struct pw_decision d;
		char e[256];
		CHECK(pw_sql_analyse("SELECT 1", 8, NULL, &r, e, sizeof(e)) == 0, "analysed");
		pw_policy_decide(c, &c->identities[0], NULL, &r, sat_2300, &d, NULL);
		CHECK(d.action == PW_ACT_DENY && d.by == PW_BY_WINDOW &&
		          !strcmp(d.sqlstate, "42501") &&
		          strstr(d.message, "identity a may run statements only within its time "
		                            "windows"),
		      "outside the window: %s", d.message);
		pw_policy_decide(c, &c->identities[0], NULL, &r, sun_2300, &d, NULL);
		CHECK(d.action == PW_ACT_ALLOW, "inside the window the rules allow SELECT 1");
		pw_config_unref(c);
	}
	c = load_ok("allow-all",
	            jq(BASE("'guardrails': {'all': false}, 'rules': [{'action': 'allow'}]")));
	CHECK(c && c->identities[0].policy.allow_all, "allow-all with the guardrails off");
	pw_config_unref(c);
	c = load_ok("jit role", jq(BASE("'jit_role': {'member_of': ['readers'], 'grants': ["
	                                "{'privileges': ['select', 'INSERT'], 'table': 'public.t'},"
	                                "{'privileges': 'SELECT', 'schema': 'rep'}]}")));
	if (c) {
		const struct pw_policy *p = &c->identities[0].policy;
		CHECK(p->jit && p->n_grants == 2 && !strcmp(p->grants[0].schema, "public") &&
		          !strcmp(p->grants[0].table, "t") &&
		          !strcmp(p->grants[0].privileges[0], "SELECT") && !p->grants[1].table[0] &&
		          p->n_member_of == 1,
		      "jit role grants read");
		pw_config_unref(c);
	}
	expect_err("unknown action", jq(BASE("'rules': [{'action': 'permit'}]")),
	           "$.identities[0].rules[0].action", "expected one of allow, deny, approve, mask");
	/* masking: mask rules say what is masked, with their own keys only */
	c = load_ok("mask rules", jq(BASE("'unmask': 'public.t.name', 'rules': ["
	                                  "{'action': 'mask', 'columns': 'public.t.ssn', "
	                                  "'strategy': 'partial', 'keep': 2, 'predicates': true},"
	                                  "{'action': 'mask', 'detectors': ['card', 'jwt'], "
	                                  "'strategy': 'redact'},{'action': 'allow'}]")));
	if (c) {
		const struct pw_policy *p = &c->identities[0].policy;
		CHECK(p->has_masks && p->n_unmask == 1 && p->rules[0].strategy == PW_MASK_PARTIAL &&
		          p->rules[0].keep == 2 && p->rules[0].predicates &&
		          !strcmp(p->rules[0].columns[0], "public.t.ssn") &&
		          p->rules[1].detectors == (1u << PW_DET_CARD | 1u << PW_DET_JWT),
		      "mask rules read: columns, strategy, keep, predicates, detectors, unmask");
		pw_config_unref(c);
	}
	expect_err("mask rule deciding",
	           jq(BASE("'rules': [{'action': 'mask', 'relations': 'public.*', 'strategy': "
	                   "'redact'}]")),
	           "$.identities[0].rules[0].relations", "a mask rule does not decide statements");
	expect_err("mask column not three parts",
	           jq(BASE("'rules': [{'action': 'mask', 'columns': 'public.t', 'strategy': "
	                   "'redact'}]")),
	           "$.identities[0].rules[0].columns[0]", "expected \"schema.table.column\"");
	expect_err("mask without strategy",
	           jq(BASE("'rules': [{'action': 'mask', 'columns': 'a.b.c'}]")),
	           "$.identities[0].rules[0].strategy", "required key is missing");
	expect_err("mask keep without partial",
	           jq(BASE("'rules': [{'action': 'mask', 'columns': 'a.b.c', 'strategy': 'null', "
	                   "'keep': 3}]")),
	           "$.identities[0].rules[0].keep", "only meaningful with");
	expect_err("strategy on an allow rule",
	           jq(BASE("'rules': [{'action': 'allow', 'strategy': 'redact'}]")),
	           "$.identities[0].rules[0].strategy", "only a rule with \"action\": \"mask\"");
	expect_err("unknown detector",
	           jq(BASE("'rules': [{'action': 'mask', 'detectors': 'bogus', 'strategy': "
	                   "'redact'}]")),
	           "$.identities[0].rules[0].detectors[0]", "expected \"all\" or a detector");
	expect_err("hash without a key",
	           jq(BASE("'rules': [{'action': 'mask', 'columns': 'a.b.c', 'strategy': "
	                   "'hash'}]")),
	           "$.identities[0].rules[0].strategy", "the hash strategy needs");
	expect_err("unmask without masks",
	           jq(BASE("'unmask': 'a.b.c', 'rules': [{'action': 'allow'}]")),
	           "$.identities[0].unmask", "only meaningful for an identity with mask rules");
	expect_err("unknown class", jq(BASE("'rules': [{'action': 'deny', 'class': ['drop']}]")),
	           "$.identities[0].rules[0].class[0]", "unknown command class \"drop\"");
	expect_err("unknown fact", jq(BASE("'rules': [{'action': 'deny', 'facts': ['huge']}]")),
	           "$.identities[0].rules[0].facts[0]", "unknown fact \"huge\"");
	expect_err("relation without schema",
	           jq(BASE("'rules': [{'action': 'deny', 'relations': ['orders']}]")),
	           "$.identities[0].rules[0].relations[0]", "expected \"schema.name\"");
	expect_err("access without relations",
	           jq(BASE("'rules': [{'action': 'allow', 'access': 'read'}]")),
	           "$.identities[0].rules[0].access",
	           "only meaningful with \"relations\" or \"functions\"");
	expect_err("parser_integrity off without allow-all",
	           jq(BASE("'guardrails': {'parser_integrity': false}, 'rules': [{'action': "
	                   "'allow', 'class': 'select'}]")),
	           "$.identities[0].guardrails", "allow everything");
	c = load_ok("superuser_settings switched off by name",
	            jq(BASE("'guardrails': {'superuser_settings': false}")));
	CHECK(c && c->identities[0].policy.guardrail_off[PW_GR_SUPERUSER_SETTINGS] &&
	          !strcmp(pw_guardrail_name(PW_GR_SUPERUSER_SETTINGS), "superuser_settings"),
	      "the guardrail superuser_settings has its name");
	pw_config_unref(c);
	expect_err("unknown guardrail", jq(BASE("'guardrails': {'copy': false}")),
	           "$.identities[0].guardrails.copy", "unknown key");
	expect_err("role and jit_role", jq(BASE("'role': 'r', 'jit_role': {}")),
	           "$.identities[0].jit_role", "exclude each other");
	expect_err("bad privilege",
	           jq(BASE("'jit_role': {'grants': [{'privileges': ['EXECUTE'], 'schema': 's'}]}")),
	           "$.identities[0].jit_role.grants[0].privileges[0]",
	           "expected a table privilege");
	expect_err("grant target", jq(BASE("'jit_role': {'grants': [{'privileges': ['SELECT']}]}")),
	           "$.identities[0].jit_role.grants[0]", "exactly one of");
	expect_err("bad time", jq(BASE("'windows': [{'from': '8:00', 'to': '18:00'}]")),
	           "$.identities[0].windows[0].from", "HH:MM");
	expect_err("bad day",
	           jq(BASE("'windows': [{'days': 'weekdays', 'from': '08:00', 'to': "
	                   "'18:00'}]")),
	           "$.identities[0].windows[0].days[0]", "mon-fri");
	expect_err("unknown upstream in the list", jq(BASE("'upstreams': ['nope']")),
	           "$.identities[0].upstreams[0]", "no upstream named \"nope\"");
	expect_err("jwt auth without the jwt section",
	           jq("{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "
	              "'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'jwt', "
	              "'upstream': 'u'}]}"),
	           "$.identities[0].auth", "needs the \"jwt\" section");
	expect_err("claims need jwt auth",
	           jq("{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "
	              "'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'trust', "
	              "'match': {'group': 'ci'}, 'upstream': 'u'}]}"),
	           "$.identities[0].match", "need auth \"jwt\"");
	expect_err("unsafe client encoding",
	           jq("{'client_encodings': ['UTF8', 'sjis'], 'listen': [{'host': '127.0.0.1', "
	              "'port': 1}], 'upstreams': {'u': {'host': '127.0.0.1', 'user': 'x'}}, "
	              "'identities': [{'name': 'a', 'auth': 'trust', 'upstream': 'u'}]}"),
	           "$.client_encodings[1]", "cannot be allowed");
	c = load_ok("client encodings", jq("{'client_encodings': ['utf-8', 'Latin1'], 'listen': "
	                                   "[{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': "
	                                   "{'host': '127.0.0.1', 'user': 'x'}}, 'identities': "
	                                   "[{'name': 'a', 'auth': 'trust', 'upstream': 'u'}]}"));
	CHECK(c && pw_config_encoding_allowed(c, "UTF8") &&
	          pw_config_encoding_allowed(c, "latin-1") &&
	          !pw_config_encoding_allowed(c, "SQL_ASCII"),
	      "client_encodings compared as PostgreSQL does");
	pw_config_unref(c);
#undef BASE
}

/* The trail's and the recordings' sections (docs/audit.md, docs/recording.md). */
static void test_evidence(void)
{
#define ROOT(X)                                                                                    \
	"{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "              \
	"'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'trust', "               \
	"'upstream': 'u'}], " X "}"
	struct pw_config *c = load_ok("no audit section", jq(ROOT("'workers': 1")));
	CHECK(c && !c->audit.enabled && !c->recording.enabled,
	      "no section: no trail, no recording");
	pw_config_unref(c);
	c = load_ok("audit defaults", jq(ROOT("'audit': {'file': '/tmp/pw-audit-test.jsonl'}")));
	CHECK(c && c->audit.enabled && c->audit.fsync == PW_AUDIT_FSYNC_INTERVAL &&
	          c->audit.fsync_interval_ms == 100 && !c->audit.drop_when_full &&
	          !c->audit.continue_on_failure && c->audit.parameters &&
	          c->audit.rotate_bytes == 256u << 20 && c->audit.rotate_seconds == 86400,
	      "audit defaults: interval 100 ms, wait, refuse, parameters, 256 MiB, a day");
	pw_config_unref(c);
	c = load_ok("audit set",
	            jq(ROOT("'audit': {'stdout': true, 'fsync': 'every', 'on_full': "
	                    "'drop', 'on_failure': 'continue', 'parameters': false}")));
	CHECK(c && c->audit.to_stdout && !c->audit.file[0] &&
	          c->audit.fsync == PW_AUDIT_FSYNC_EVERY && c->audit.drop_when_full &&
	          c->audit.continue_on_failure && !c->audit.parameters,
	      "audit keys read");
	pw_config_unref(c);
	c = load_ok("audit redact",
	            jq(ROOT("'audit': {'stdout': true, 'redact': ['ssn', 'email']}")));
	CHECK(c && c->audit.redact == ((1u << PW_DET_SSN) | (1u << PW_DET_EMAIL)),
	      "redact: the detectors named");
	pw_config_unref(c);
	c = load_ok("audit redact none", jq(ROOT("'audit': {'stdout': true, 'redact': []}")));
	CHECK(c && c->audit.redact == 0, "redact: []: nothing redacted");
	pw_config_unref(c);
	c = load_ok("audit redact default", jq(ROOT("'audit': {'stdout': true}")));
	CHECK(c && c->audit.redact == PW_AUDIT_REDACT_DEFAULT,
	      "redact: cards and secrets by default");
	pw_config_unref(c);
	expect_err("audit redact unknown", jq(ROOT("'audit': {'stdout': true, 'redact': 'pin'}")),
	           "$.audit.redact[0]", "expected \"all\" or a detector");
	expect_err("audit without a sink", jq(ROOT("'audit': {'fsync': 'every'}")), "$.audit",
	           "expected \"file\" or \"stdout\"");
	expect_err("audit file in no directory",
	           jq(ROOT("'audit': {'file': '/nonexistent-pgward/a.jsonl'}")), "$.audit.file",
	           "does not exist");
	expect_err("audit fsync misspelt", jq(ROOT("'audit': {'stdout': true, 'fsync': 'evry'}")),
	           "$.audit.fsync", "expected one of interval, every");
	expect_err("audit unknown key", jq(ROOT("'audit': {'stdout': true, 'sink': 'x'}")),
	           "$.audit.sink", "unknown key");
	expect_err("audit field limit over the ring",
	           jq(ROOT("'audit': {'stdout': true, 'ring_bytes': 65536, 'max_field_bytes': "
	                   "65536}")),
	           "$.audit.max_field_bytes", "a quarter of ring_bytes");
	c = load_ok("recording", jq(ROOT("'recording': {'dir': '/tmp', 'max_bytes': 4096}")));
	CHECK(c && c->recording.enabled && c->recording.max_bytes == 4096 &&
	          strcmp(c->recording.dir, "/tmp") == 0,
	      "recording read: dir, max_bytes");
	pw_config_unref(c);
	expect_err("recording dir missing", jq(ROOT("'recording': {'max_bytes': 4096}")),
	           "$.recording.dir", "required key is missing");
	expect_err("recording dir not a directory", jq(ROOT("'recording': {'dir': '/etc/passwd'}")),
	           "$.recording.dir", "is not a directory");
	expect_err("a recorded identity without a recording section",
	           jq("{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "
	              "'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'trust', "
	              "'upstream': 'u', 'record': true}]}"),
	           "$.identities[0].record", "needs a \"recording\" section");
	c = load_ok("a recorded identity",
	            jq("{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "
	               "'127.0.0.1', 'user': 'x'}}, 'recording': {'dir': '/tmp'}, 'identities': "
	               "[{'name': 'a', 'auth': 'trust', 'upstream': 'u', 'record': true}]}"));
	CHECK(c && c->identities[0].record, "record: true read");
	pw_config_unref(c);
#undef ROOT
}

int main(void)
{
	fixtures_start();
	test_evidence();
	test_full();
	test_defaults();
	test_password_files();
	test_errors();
	test_syntax_and_files();
	test_match();
	test_redirect_paths();
	test_redirect_netns();
	test_refcount();
	test_policy();
	fixtures_end();
	return check_done();
}
