/* Unit tests for user/config_control.c: the "control", "metrics" and "approvals" sections and an
 * identity's "approvals" (who decides its held statements), as tables: each case a
 * configuration fragment and what it must give, or the JSON path and message it must fail
 * with. Users and groups are the ones every Debian system has (root 0, daemon 1, bin 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgward/config.h"
#include "check.h"
#include "config_fixture.h"

#define ROOT(X)                                                                                    \
	"{'listen': [{'host': '127.0.0.1', 'port': 1}], 'upstreams': {'u': {'host': "              \
	"'127.0.0.1', 'user': 'x'}}, 'identities': [{'name': 'a', 'auth': 'trust', "               \
	"'upstream': 'u'" X "}]"
#define TOP(X) ROOT("") ", " X "}"
#define ID(X)  ROOT(", " X) "}"

static struct pw_config *load(const char *json, char *err, size_t errlen)
{
	struct pw_config *c = NULL;
	if (pw_config_load_string(json, "t.json", &c, err, errlen) < 0)
		return NULL;
	return c;
}

static void test_ok(void)
{
	char err[1024] = "";
	struct pw_config *c = load(jq(ROOT("") "}"), err, sizeof(err));
	CHECK(c && !c->control.enabled && !c->metrics.enabled && c->approvals.timeout_s == 300 &&
	          c->approvals.n_notify == 0 && c->approvals.db_upstream == -1 &&
	          c->approvals.node[0] && c->approvals.notify_timeout_s == 30,
	      "defaults: no socket, no metrics, approvals 300 s, no command, no database (%s)",
	      err);
	pw_config_unref(c);

	c = load(jq(TOP("'control': {}")), err, sizeof(err));
	CHECK(c && c->control.enabled &&
	          strcmp(c->control.socket, "/run/pgward/control.sock") == 0 &&
	          c->control.mode == 0600 && c->control.owner == -1 && c->control.group == -1 &&
	          !c->control.n_readers && !c->control.n_operators,
	      "control {}: the default socket, 0600, pgwardd's owner, nobody else (%s)", err);
	pw_config_unref(c);

	c = load(jq(TOP("'control': {'socket': '/tmp/x.sock', 'mode': '0660', 'owner': 'daemon', "
	                "'group': '2', 'readers': ['daemon', '0'], 'operators': 'bin'}")),
	         err, sizeof(err));
	CHECK(c && c->control.mode == 0660 && c->control.owner == 1 && c->control.group == 2 &&
	          c->control.n_readers == 2 && c->control.readers[0] == 1 &&
	          c->control.readers[1] == 0 && c->control.n_operators == 1 &&
	          c->control.operators[0] == 2,
	      "control: names and numbers resolved (%s)", err);
	pw_config_unref(c);

	c = load(jq(TOP("'metrics': {'port': 9999}")), err, sizeof(err));
	CHECK(c && c->metrics.enabled && c->metrics.port == 9999 &&
	          strcmp(c->metrics.host, "127.0.0.1") == 0,
	      "metrics: localhost by default (%s)", err);
	pw_config_unref(c);

	c = load(jq(TOP("'approvals': {'timeout_seconds': 60, 'notify': ['/bin/cat', '-u'], "
	                "'notify_timeout_seconds': 5, 'node': 'n1', 'database': {'upstream': 'u', "
	                "'schema': 'fleet_1'}}")),
	         err, sizeof(err));
	CHECK(c && c->approvals.timeout_s == 60 && c->approvals.n_notify == 2 &&
	          strcmp(c->approvals.notify[1], "-u") == 0 && c->approvals.notify_timeout_s == 5 &&
	          strcmp(c->approvals.node, "n1") == 0 && c->approvals.db_upstream == 0 &&
	          strcmp(c->approvals.db_schema, "fleet_1") == 0 &&
	          strcmp(c->approvals.db_database, "postgres") == 0,
	      "approvals: every key read, the database's defaults (%s)", err);
	pw_config_unref(c);

	c = load(jq(ID("'approvals': {'users': ['daemon', '0'], 'groups': 'bin', "
	               "'timeout_seconds': 7}")),
	         err, sizeof(err));
	const struct pw_policy *p = c ? &c->identities[0].policy : NULL;
	CHECK(p && p->n_approver_uids == 2 && p->approver_uids[0] == 1 &&
	          p->approver_uids[1] == 0 && p->n_approver_gids == 1 && p->approver_gids[0] == 2 &&
	          p->approval_timeout_s == 7,
	      "identity approvals: users, groups, timeout (%s)", err);
	pw_config_unref(c);
}

static void test_errors(void)
{
	static const struct {
		const char *json, *path, *says;
	} cases[] = {
	    {TOP("'control': {'socket': 'rel.sock'}"), "$.control.socket", "absolute path"},
	    {TOP("'control': {'mode': '660'}"), "$.control.mode", "octal mode"},
	    {TOP("'control': {'mode': '01777'}"), "$.control.mode", "octal mode"},
	    {TOP("'control': {'mode': 384}"), "$.control.mode", "string"},
	    {TOP("'control': {'owner': 'no-such-user-pgward'}"), "$.control.owner",
	     "no user named"},
	    {TOP("'control': {'readers': ['no-such-group-pgward']}"), "$.control.readers[0]",
	     "no group named"},
	    {TOP("'control': {'operators': []}"), "$.control.operators", NULL},
	    {TOP("'control': {'sockets': '/x'}"), "$.control", "sockets"},
	    {TOP("'metrics': {'port': 0}"), "$.metrics.port", NULL},
	    {TOP("'approvals': {'timeout_seconds': 0}"), "$.approvals.timeout_seconds", NULL},
	    {TOP("'approvals': {'notify': 'cat'}"), "$.approvals.notify[0]", "absolute path"},
	    {TOP("'approvals': {'database': {'upstream': 'nope'}}"),
	     "$.approvals.database.upstream", "no upstream named"},
	    {TOP("'approvals': {'database': {'upstream': 'u', 'schema': 'Bad-Name'}}"),
	     "$.approvals.database.schema", "plain lower-case name"},
	    {TOP("'approvals': {'database': {}}"), "$.approvals.database", "upstream"},
	    {ID("'approvals': {'users': ['no-such-user-pgward']}"),
	     "$.identities[0].approvals.users[0]", "no user named"},
	    {ID("'approvals': {'admins': ['root']}"), "$.identities[0].approvals", "admins"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[1024] = "", prefix[256];
		struct pw_config *c = load(jq(cases[i].json), err, sizeof(err));
		snprintf(prefix, sizeof(prefix), "t.json: %s", cases[i].path);
		CHECK(!c && strncmp(err, prefix, strlen(prefix)) == 0 &&
		          (!cases[i].says || strstr(err, cases[i].says)),
		      "refused at %s: %s", cases[i].path, err);
		if (c)
			pw_config_unref(c);
	}
}

int main(void)
{
	(void)fixture_s; /* the shared fixtures' file writers: not needed here */
	(void)fixture;
	fixtures_start();
	test_ok();
	test_errors();
	fixtures_end();
	return check_done();
}
