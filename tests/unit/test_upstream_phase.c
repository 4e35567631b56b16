/* The upstream login as a session phase (upstream_phase.h), as a table: what a server sends
 * from its first authentication request to the ReadyForQuery that ends the start-up, what the
 * phase says of each message, what of it reaches the client and what goes upstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "pgward/upstream_phase.h"

/* One server message, written short: a type letter and a body.
 *   R      AuthenticationOk            S      ParameterStatus server_version=15
 *   K      BackendKeyData (12 bytes)   k      BackendKeyData of a wrong length
 *   Z      ReadyForQuery, idle         N      NoticeResponse
 *   E      ErrorResponse               C T D  CommandComplete, RowDescription, DataRow
 *   B      a message too long to be read during a login */
static size_t message(uint8_t *out, char c)
{
	uint8_t body[9000];
	size_t n = 0;
	switch (c) {
	case 'R':
		memset(body, 0, 4);
		n = 4;
		break;
	case 'S':
		n = sizeof("server_version\00015");
		memcpy(body, "server_version\00015", n);
		break;
	case 'K':
		memcpy(body, "\0\0\0\1\0\0\0\2", 8);
		n = 8;
		break;
	case 'k':
		memcpy(body, "\0\0\0\1\0\0", 6);
		n = 6;
		break;
	case 'Z':
		body[0] = 'I';
		n = 1;
		break;
	case 'N':
	case 'E':
		n = sizeof("SERROR\0C42501\0Mno\0");
		memcpy(body, "SERROR\0C42501\0Mno\0", n);
		break;
	case 'D': /* three text columns: search_path, current_user, current_schemas */
		memcpy(body, "\0\3\0\0\0\6public\0\0\0\5agent\0\0\0\6public", 31);
		n = 31;
		break;
	case 'B':
		memset(body, 'x', sizeof(body));
		n = sizeof(body);
		c = 'N';
		break;
	default:
		n = 0;
		break;
	}
	out[0] = (uint8_t)c;
	out[1] = (uint8_t)((n + 4) >> 24);
	out[2] = (uint8_t)((n + 4) >> 16);
	out[3] = (uint8_t)((n + 4) >> 8);
	out[4] = (uint8_t)(n + 4);
	memcpy(out + 5, body, n);
	return n + 5;
}

struct row {
	const char *name;
	bool setup;       /* the identity has a set-up Query */
	const char *msgs; /* what the server sends, in order */
	/* what the phase says, one letter a step until it waits or ends: N next, P param, K key,
	 * L relay, Y ready, X refused, F set-up failed, ! fail, M more */
	const char *outcomes;
	const char *client;   /* the types the client is to receive */
	const char *upstream; /* the types pgwardd sends upstream */
};

static const struct row rows[] = {
    {"a login without a set-up: the relay takes over at AuthenticationOk", false, "RSKZ", "L", "R",
     ""},
    {"with a set-up: the start-up passes, its ReadyForQuery is held while the set-up runs", true,
     "RSKZCTDCZ", "NPKNNNNNY", "RSKZ", "Q"},
    {"the set-up fails upstream: its error is kept, its ReadyForQuery ends the session", true,
     "RZEZ", "NNNF", "R", "Q"},
    {"a FATAL during authentication goes to the client as it is", false, "E", "X", "E", ""},
    {"a FATAL right after the login goes to the client as it is", true, "RE", "NX", "RE", ""},
    {"notices before the set-up pass; the set-up's own are dropped", true, "RNZNCZ", "NNNNNY",
     "RNZ", "Q"},
    {"a ReadyForQuery before the authentication is done is not a login", false, "Z", "!", "", ""},
    {"a DataRow before the set-up was sent is not a start-up message", true, "RD", "N!", "R", ""},
    {"a BackendKeyData of a wrong length", true, "Rk", "N!", "R", ""},
    {"a message longer than a login's is refused, not read", false, "B", "!", "", ""},
    {"half a message waits for the rest", false, "", "M", "", ""},
};

static char type_at(const uint8_t *p)
{
	return (char)p[0];
}

/* The types of the whole messages in [p, p + n). */
static void types(const uint8_t *p, size_t n, char *out)
{
	size_t k = 0;
	while (n >= 5 && k < 31) {
		size_t len =
		    ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4]) + 1;
		out[k++] = type_at(p);
		if (len > n)
			break;
		p += len;
		n -= len;
	}
	out[k] = 0;
}

static char letter(enum pw_up_outcome o)
{
	static const char l[] = {
	    [PW_UP_MORE] = 'M',    [PW_UP_NEXT] = 'N',         [PW_UP_PARAM] = 'P',
	    [PW_UP_KEY] = 'K',     [PW_UP_RELAY] = 'L',        [PW_UP_READY] = 'Y',
	    [PW_UP_REFUSED] = 'X', [PW_UP_SETUP_FAILED] = 'F', [PW_UP_FAIL] = '!',
	    [PW_UP_OOM] = 'O'};
	return l[o];
}

static void run_row(const struct row *r)
{
	struct pw_upstream u = {0};
	snprintf(u.name, sizeof(u.name), "main");
	u.require_auth = PW_AUTH_ANY;
	struct pw_buf in, out;
	struct pw_preamble pre = {0};
	struct pw_up_login ul;
	if (pw_buf_init(&in, 64 * 1024) < 0 || pw_buf_init(&out, 64 * 1024) < 0)
		abort();
	pw_up_login_start(&ul, &u, false, false, r->setup ? "SELECT 1" : NULL, r->setup);
	uint8_t m[9100];
	for (const char *c = r->msgs; *c; c++)
		pw_buf_append(&in, m, message(m, *c));
	if (!*r->msgs) /* half a message */
		pw_buf_append(&in, "R\0\0", 3);
	char got[32] = "";
	size_t k = 0;
	for (;;) {
		uint32_t len = 0;
		char err[256];
		enum pw_up_outcome o =
		    pw_up_login_step(&ul, &in, &out, &pre, &len, err, sizeof(err));
		got[k++] = letter(o);
		got[k] = 0;
		if (o == PW_UP_PARAM || o == PW_UP_KEY || o == PW_UP_READY) {
			if (o == PW_UP_KEY)
				pw_buf_at_scan(&in)[9] ^= 0x55; /* the session's key of its own */
			pw_up_login_pass(&in, &pre, len);
			if (o == PW_UP_READY)
				break;
			continue;
		}
		if (o != PW_UP_NEXT || k >= sizeof(got) - 1)
			break;
	}
	char client[32], upstream[32];
	types(pw_buf_head(&in), pw_buf_pending(&in), client);
	types(pw_buf_head(&out), pw_buf_pending(&out), upstream);
	CHECK(!strcmp(got, r->outcomes) && !strcmp(client, r->client) &&
	          !strcmp(upstream, r->upstream),
	      "%s (outcomes %s, client gets %s, upstream gets %s)", r->name, got, client, upstream);
	if (r->setup && strchr(r->msgs, 'D') && strchr(got, 'Y'))
		CHECK(ul.truth_seen && !strcmp(ul.truth.path, "public") &&
		          !strcmp(ul.truth.user, "agent"),
		      "the set-up's last row says what the session is (%s as %s)", ul.truth.path,
		      ul.truth.user);
	pw_buf_free(&in);
	pw_buf_free(&out);
	pw_preamble_free(&pre);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		run_row(&rows[i]);
	return check_done();
}
