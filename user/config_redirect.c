/* The "redirect" section of the configuration: which connections the eBPF programs steer into
 * pgwardd, and where they land. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config_parse.h"
#include "pgward/loader_host.h"

/* "10.0.0.0/8", "fd00::/8", "10.0.0.5" (a host). An IPv4-mapped IPv6 network is the IPv4
 * network it maps (the programs judge a mapped destination as IPv4); one wider than the
 * mapped range cannot be said in the one family and is refused. */
static int parse_cidr(struct pw_jp *x, const char *jp, const json_t *d, struct pw_cidr *c)
{
	char net[64], *slash = NULL;
	long bits = -1;
	if (json_is_string(d) && json_string_length(d) < sizeof(net)) {
		snprintf(net, sizeof(net), "%s", json_string_value(d));
		if ((slash = strchr(net, '/'))) {
			*slash = 0;
			char *end;
			bits = strtol(slash + 1, &end, 10);
			if (*end || end == slash + 1)
				bits = -1;
		}
		bool v6 = strchr(net, ':') != NULL;
		if (!slash)
			bits = v6 ? 128 : 32;
		memset(c, 0, sizeof(*c));
		c->family = v6 ? AF_INET6 : AF_INET;
		if (inet_pton(c->family, net, c->addr) != 1 || bits < 0 || bits > (v6 ? 128 : 32))
			bits = -1;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (bits >= 0 && v6 && memcmp(c->addr, mapped, 12) == 0) {
			if (bits < 96)
				return pw_jp_fail(
				    x, jp,
				    "an IPv4-mapped network shorter than /96 mixes families: "
				    "give the IPv4 and IPv6 networks separately");
			memmove(c->addr, c->addr + 12, 4);
			memset(c->addr + 4, 0, 12);
			c->family = AF_INET;
			bits -= 96;
		}
	}
	if (bits < 0)
		return pw_jp_fail(x, jp, "expected a CIDR such as \"10.0.0.0/8\" or \"fd00::/8\"");
	c->bits = (int)bits;
	/* host bits set: the trie would match on them; say what was meant instead */
	for (int i = (int)bits; i < (c->family == AF_INET ? 32 : 128); i++)
		if (c->addr[i / 8] & (0x80 >> (i % 8)))
			return pw_jp_fail(x, jp, "%s has bits set beyond its /%ld prefix", net,
			                  bits);
	return 0;
}

/* A cgroup as written: an absolute path, or one relative to the cgroup v2 mount
 * ("pgward.slice" is /sys/fs/cgroup/pgward.slice on a unified host, .../unified/pgward.slice
 * on a hybrid one), so one file serves both; "." and ".." are refused in the relative form,
 * which must stay below the mount. */
static int cgroup_dir(struct pw_jp *x, const char *sub, const char *v, char *out)
{
	if (v[0] == '/') {
		snprintf(out, PATH_MAX, "%s", v);
		return 0;
	}
	char q[PW_JP_QUOTE_MAX], mnt[PATH_MAX];
	for (const char *p = v; *p;) {
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return pw_jp_fail(x, sub,
			                  "cgroup %s: a relative path may not hold \".\" or \"..\"",
			                  pw_jp_quote(q, v));
		p += n + (p[n] == '/');
	}
	if (pw_host_cgroup_root(mnt, sizeof(mnt)) < 0)
		return pw_jp_fail(x, sub, "cgroup %s: no cgroup v2 mount to resolve it against",
		                  pw_jp_quote(q, v));
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", mnt, v) >= PATH_MAX)
		return pw_jp_fail(x, sub, "cgroup %s: the path is too long", pw_jp_quote(q, v));
	return 0;
}

/* who is steered: tasks in these cgroups, tasks of these uids */
static int parse_scope(struct pw_jp *x, const json_t *o, struct pw_redirect *r)
{
	char sub[PW_JP_PATH_MAX], q[PW_JP_QUOTE_MAX];

	json_t *cg = pw_jp_member(o, "cgroups"), *uids = pw_jp_member(o, "uids");
	if (!cg && !uids)
		return pw_jp_missing(x, o, "$.redirect.cgroups", "cgroups",
		                     "an array of cgroup v2 directories to steer (or \"uids\")");
	if (uids) {
		if (!json_is_array(uids) || json_array_size(uids) == 0 ||
		    json_array_size(uids) > PW_MAX_REDIRECT_UIDS)
			return pw_jp_fail(x, "$.redirect.uids", "expected an array of 1 to %d uids",
			                  PW_MAX_REDIRECT_UIDS);
		for (size_t i = 0; i < json_array_size(uids); i++) {
			json_t *v = json_array_get(uids, i);
			pw_jp_index(sub, "$.redirect.uids", i);
			/* root can detach the programs: scoping it would only pretend */
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 4294967294LL)
				return pw_jp_fail(
				    x, sub,
				    "expected a uid from 1 to 4294967294 (root cannot be "
				    "fenced: it can detach the programs)");
			r->uids[r->n_uids++] = (unsigned)json_integer_value(v);
		}
	}
	if (cg && (!json_is_array(cg) || json_array_size(cg) == 0 ||
	           json_array_size(cg) > PW_MAX_REDIRECT_CGROUPS))
		return pw_jp_fail(x, "$.redirect.cgroups", "expected an array of 1 to %d paths",
		                  PW_MAX_REDIRECT_CGROUPS);
	for (size_t i = 0; cg && i < json_array_size(cg); i++) {
		json_t *v = json_array_get(cg, i);
		pw_jp_index(sub, "$.redirect.cgroups", i);
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= PATH_MAX)
			return pw_jp_fail(x, sub, "expected a cgroup v2 directory path");
		char *dst = r->cgroups[r->n_cgroups++];
		if (cgroup_dir(x, sub, json_string_value(v), dst) < 0)
			return -1;
		struct stat st;
		if (stat(dst, &st) != 0 || !S_ISDIR(st.st_mode))
			return pw_jp_fail(x, sub, "cgroup %s does not exist", pw_jp_quote(q, dst));
	}
	return 0;
}

static int parse_ports(struct pw_jp *x, const json_t *o, struct pw_redirect *r)
{
	char sub[PW_JP_PATH_MAX];

	json_t *ports = pw_jp_member(o, "ports");
	if (ports) {
		if (!json_is_array(ports) || json_array_size(ports) == 0 ||
		    json_array_size(ports) > PW_MAX_REDIRECT_PORTS)
			return pw_jp_fail(x, "$.redirect.ports",
			                  "expected an array of 1 to %d ports",
			                  PW_MAX_REDIRECT_PORTS);
		for (size_t i = 0; i < json_array_size(ports); i++) {
			json_t *v = json_array_get(ports, i);
			pw_jp_index(sub, "$.redirect.ports", i);
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 65535)
				return pw_jp_fail(x, sub, "expected a port from 1 to 65535");
			r->ports[r->n_ports++] = (int)json_integer_value(v);
		}
	} else {
		r->ports[r->n_ports++] = 5432;
	}
	return 0;
}

static int parse_settings(struct pw_jp *x, const json_t *o, struct pw_redirect *r)
{
	const char *jp = "$.redirect";
	static const char *const fail_names[] = {"closed", "open"};
	static const char *const unix_names[] = {"refuse", "allow"};
	int rc;

	int fm = 0, um = 0;
	long long v;

	if (pw_jp_enum(x, o, jp, "fail_mode", fail_names, 2, 0, &fm) < 0 ||
	    pw_jp_enum(x, o, jp, "unix", unix_names, 2, 0, &um) < 0 ||
	    pw_jp_bool(x, o, jp, "fastpath", &r->fastpath) < 0 ||
	    pw_jp_bool(x, o, jp, "netns_listeners", &r->netns_listeners) < 0 ||
	    pw_jp_seconds(x, o, jp, "heartbeat_timeout_seconds", 0.01, SECONDS_MAX,
	                  &r->heartbeat_timeout_ms) < 0 ||
	    pw_jp_str(x, o, jp, "pin_path", r->pin_path, sizeof(r->pin_path), PW_JP_NONEMPTY) < 0 ||
	    pw_jp_str(x, o, jp, "overrides", r->overrides, sizeof(r->overrides), PW_JP_NONEMPTY) <
	        0 ||
	    pw_jp_str(x, o, jp, "listen4", r->listen4, sizeof(r->listen4), PW_JP_NONEMPTY) < 0 ||
	    pw_jp_str(x, o, jp, "listen6", r->listen6, sizeof(r->listen6), 0) < 0)
		return -1;
	r->fail_open = fm == 1;
	r->unix_refuse = um == 0;
	if ((rc = pw_jp_int(x, o, jp, "mark", 1, 4294967295LL, 0, &v)) < 0)
		return -1;
	if (rc)
		r->mark = (unsigned)v;
	if ((rc = pw_jp_int(x, o, jp, "listen4_port", 1, 65535, 0, &v)) < 0)
		return -1;
	if (rc)
		r->listen4_port = (int)v;
	r->listen6_port = r->listen4_port;
	if ((rc = pw_jp_int(x, o, jp, "listen6_port", 1, 65535, 0, &v)) < 0)
		return -1;
	if (rc)
		r->listen6_port = (int)v;
	return 0;
}

/* destinations steered, and networks refused whatever pgwardd says */
static int parse_nets(struct pw_jp *x, const json_t *o, struct pw_redirect *r)
{
	char sub[PW_JP_PATH_MAX];
	long long v;
	int rc;

	json_t *dsts = pw_jp_member(o, "destinations");
	if (dsts) {
		if (!json_is_array(dsts) || json_array_size(dsts) > PW_MAX_REDIRECT_DSTS)
			return pw_jp_fail(x, "$.redirect.destinations",
			                  "expected an array of at most %d CIDRs",
			                  PW_MAX_REDIRECT_DSTS);
		for (size_t i = 0; i < json_array_size(dsts); i++) {
			pw_jp_index(sub, "$.redirect.destinations", i);
			if (parse_cidr(x, sub, json_array_get(dsts, i),
			               &r->destinations[r->n_destinations++]) < 0)
				return -1;
		}
	}
	json_t *deny = pw_jp_member(o, "deny");
	if (deny) {
		if (!json_is_array(deny) || json_array_size(deny) > PW_MAX_REDIRECT_DENY)
			return pw_jp_fail(
			    x, "$.redirect.deny",
			    "expected an array of at most %d {\"net\": CIDR, \"port\": N}",
			    PW_MAX_REDIRECT_DENY);
		for (size_t i = 0; i < json_array_size(deny); i++) {
			static const char *const dkeys[] = {"net", "port", NULL};
			json_t *d = json_array_get(deny, i);
			pw_jp_index(sub, "$.redirect.deny", i);
			if (!json_is_object(d))
				return pw_jp_fail(
				    x, sub,
				    "expected {\"net\": \"10.0.0.5/32\", \"port\": 6432} "
				    "(no port: every port)");
			if (pw_jp_check_keys(x, d, sub, dkeys))
				return -1;
			char np[PW_JP_PATH_MAX + 8];
			snprintf(np, sizeof(np), "%s.net", sub);
			json_t *net = pw_jp_member(d, "net");
			if (!net)
				return pw_jp_missing(x, d, np, "net", "a CIDR");
			if (parse_cidr(x, np, net, &r->deny[r->n_deny]) < 0)
				return -1;
			r->deny_port[r->n_deny] = 0;
			if ((rc = pw_jp_int(x, d, sub, "port", 1, 65535, 0, &v)) < 0)
				return -1;
			if (rc)
				r->deny_port[r->n_deny] = (int)v;
			r->n_deny++;
		}
	}
	return 0;
}

/* where steered connections land: numeric addresses, as the programs compare them */
static int check_listen(struct pw_jp *x, const struct pw_redirect *r)
{
	char q[PW_JP_QUOTE_MAX];
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, r->listen4, &a4) != 1)
		return pw_jp_fail(x, "$.redirect.listen4",
		                  "expected a numeric IPv4 address, got %s",
		                  pw_jp_quote(q, r->listen4));
	if (r->listen6[0] && inet_pton(AF_INET6, r->listen6, &a6) != 1)
		return pw_jp_fail(x, "$.redirect.listen6",
		                  "expected a numeric IPv6 address, got %s",
		                  pw_jp_quote(q, r->listen6));
	return 0;
}

int pw_cfg_parse_redirect(struct pw_jp *x, const json_t *root, struct pw_config *c)
{
	static const char *const keys[] = {"cgroups",
	                                   "uids",
	                                   "deny",
	                                   "ports",
	                                   "fail_mode",
	                                   "fastpath",
	                                   "heartbeat_timeout_seconds",
	                                   "mark",
	                                   "pin_path",
	                                   "listen4",
	                                   "listen4_port",
	                                   "listen6",
	                                   "listen6_port",
	                                   "netns_listeners",
	                                   "destinations",
	                                   "unix",
	                                   "overrides",
	                                   NULL};
	struct pw_redirect *r = &c->redirect;
	bool bad = false;
	int rc;
	json_t *o = pw_jp_container(x, root, "$", "redirect", false, false, &rc);
	if (rc)
		return -1;
	if (!o)
		return 0;
	/* present, even when wrong: identities with kernel facts are judged against it */
	r->enabled = true;
	if (pw_jp_check_keys(x, o, "$.redirect", keys))
		return -1;
	r->heartbeat_timeout_ms = 1000;
	r->fastpath = true;   /* it wins every row of make bench (README) */
	r->mark = 0x70677764; /* "pgwd" */
	snprintf(r->pin_path, sizeof(r->pin_path), "/sys/fs/bpf/pgward");
	/* pgwardctl cgroup add|del write here (loader_show.h) */
	snprintf(r->overrides, sizeof(r->overrides), "/var/lib/pgward/cgroup-overrides.json");
	snprintf(r->listen4, sizeof(r->listen4), "127.0.0.1");
	snprintf(r->listen6, sizeof(r->listen6), "::1");
	r->listen4_port = 432;
	r->netns_listeners = true; /* agents in their own network namespaces (pods) */

	STEP(x, bad, parse_scope(x, o, r));
	STEP(x, bad, parse_ports(x, o, r));
	STEP(x, bad, parse_settings(x, o, r));
	STEP(x, bad, parse_nets(x, o, r));
	if (!bad)
		STEP(x, bad, check_listen(x, r));
	return bad ? -1 : 0;
}
