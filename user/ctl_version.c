/* pgwardctl version (and -V): pgward's version and the libraries' it runs with, as bpftool -V
 * says its own. */
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pg_query.h>

#include "pgward/ctl.h"

struct version_info {
	const char *pgward, *libbpf, *libpg_query, *openssl, *jansson;
};

static void version_plain(const struct version_info *v)
{
	printf("pgwardctl v%s\n", v->pgward);
	printf("using libbpf %s, libpg_query (PostgreSQL %s grammar), %s, jansson %s\n", v->libbpf,
	       v->libpg_query, v->openssl, v->jansson);
}

static void version_json(const struct version_info *v)
{
	json_t *j = json_object();
	json_object_set_new(j, "version", json_string(v->pgward));
	json_object_set_new(j, "libbpf", json_string(v->libbpf));
	json_object_set_new(j, "libpg_query", json_string(v->libpg_query));
	json_object_set_new(j, "openssl", json_string(v->openssl));
	json_object_set_new(j, "jansson", json_string(v->jansson));
	pw_ctl_print_json(j);
}

int pw_ctl_version(int argc, char **argv)
{
	if (argc > 0 && strcmp(argv[0], "help") != 0)
		return pw_ctl_err(PW_CTL_USAGE, "usage: pgwardctl version");
	if (argc > 0) {
		printf("pgwardctl version\n    pgwardctl's version and its libraries'\n");
		return PW_CTL_OK;
	}
	/* the libraries' versions are the ones loaded, not the headers', where they say so */
	struct version_info v = {.pgward = PW_VERSION,
	                         .libbpf = libbpf_version_string(),
	                         .libpg_query = PG_VERSION,
	                         .openssl = OpenSSL_version(OPENSSL_VERSION),
	                         .jansson = jansson_version_str()};
	if (pw_ctl_json)
		version_json(&v);
	else
		version_plain(&v);
	return PW_CTL_OK;
}
