/* A session's opening. See include/pgward/opening.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "pgward/audit_events.h"
#include "pgward/admit.h"
#include "pgward/catalog.h"
#include "pgward/conntrack.h"
#include "pgward/jit.h"
#include "pgward/log.h"
#include "pgward/metrics.h"
#include "pgward/opening.h"
#include "pgward/proto.h"
#include "pgward/upstream_conn.h"

enum {
	OP_CLIENT_LOGIN, /* the client's first packets and authentication (client_login.h) */
	OP_CLIENT_TLS,   /* TLS handshake with the client */
	OP_UP_DIAL,      /* connecting to the upstream, TLS (upstream_phase.h) */
	OP_UP_LOGIN,     /* logging in upstream, then the role set-up (upstream_phase.h) */
	OP_CATALOG_WAIT, /* set up: waiting for the catalog snapshot the session needs */
	OP_DONE,         /* established, or failed */
};

/* The outcome FAIL, with the client's FATAL. */
static enum pw_open_outcome fail(struct pw_opening *op, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum pw_open_outcome fail(struct pw_opening *op, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pw_deny_vset(&op->fail, sqlstate, fmt, ap);
	va_end(ap);
	op->state = OP_DONE;
	return PW_OPEN_FAIL;
}

static enum pw_open_outcome fail_with(struct pw_opening *op, const struct pw_deny *why)
{
	return fail(op, why->sqlstate, "%s", why->message);
}

static enum pw_open_outcome close_quietly(struct pw_opening *op, const char *why)
{
	op->close_why = why;
	op->state = OP_DONE;
	return PW_OPEN_CLOSE;
}

/* The upstream failed pgwardd's own login or set-up: the log says how, the client that it
 * cannot log in. */
static enum pw_open_outcome upstream_fail(struct pw_opening *op, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum pw_open_outcome upstream_fail(struct pw_opening *op, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pw_warn("session %llu %s: upstream \"%s\": %s", (unsigned long long)op->io.serial,
	        op->io.peer, op->ups->name, PW_Q(msg));
	return fail(op, "08001", "pgward: cannot log in to upstream \"%s\": %s", op->ups->name,
	            msg);
}

static enum pw_open_outcome ready(struct pw_opening *op, bool rfq_pending, char tx)
{
	op->rfq_pending = rfq_pending;
	op->tx = tx;
	op->state = OP_DONE;
	op->deadline_ms = 0;
	return PW_OPEN_READY;
}

static enum pw_open_outcome moved_if(bool moved)
{
	return moved ? PW_OPEN_MOVED : PW_OPEN_STILL;
}

/* The database the upstream session is in. */
static const char *up_database(const struct pw_opening *op)
{
	return op->ups->database[0] ? op->ups->database : op->client.database;
}

void pw_opening_start(struct pw_opening *op, const struct pw_opening_io *io,
                      const struct sockaddr *peer, bool steered)
{
	op->io = *io;
	op->state = OP_CLIENT_LOGIN;
	op->local = pw_caller_local(peer);
	op->deadline_ms = pw_worker_now(io->w) + (uint64_t)io->rt->cfg->auth_timeout_ms;
	op->steered = steered;
	op->key.session = io->serial;
	if (!steered)
		return;
	/* find the kernel's record of it by the tuple as this side sees it */
	struct pw_conn_info info;
	if (pw_conntrack_take_accepted(io->cl->ev.fd, peer, &info) == 0 &&
	    (op->kf = malloc(sizeof(*op->kf))))
		pw_caller_from_kernel(&info, op->kf);
	else {
		pw_worker_count(io->w, PW_WC_TUPLE_MISSES);
		pw_metric_add(PW_M_TUPLE_MISSES, 1);
		pw_audit_tuple_miss(io->serial, io->peer);
	}
}

/* ---- the upstream ---- */

/* A parked connection with the same upstream and the same StartupMessage, taken over. */
static bool adopt(struct pw_opening *op)
{
	struct pw_catalog *cat = NULL;
	char err[256];
	struct pw_upconn c;
	/* a session judged against what the server said of it: the parked one's, reset by
	 * DISCARD ALL to the same defaults, holds now; the catalog must be at hand */
	if (op->truth_wanted && pw_catalog_acquire(op->io.rt, op->ups_idx, up_database(op), &cat,
	                                           err, sizeof(err)) != PW_CAT_READY)
		return false;
	if (!pw_pool_take(op->io.pool, op->io.rt, op->ups_idx, op->up_startup, op->up_startup_len,
	                  op->truth_wanted, &c)) {
		if (cat)
			pw_catalog_release(cat);
		return false;
	}
	if (cat) {
		pw_policy_session_init(&op->ps, c.truth.path, c.truth.user, c.truth.schemas);
		pw_policy_session_catalog(&op->ps, cat);
		pw_catalog_release(cat);
		op->ps_ready = true;
	}
	op->uplogin.truth = c.truth;
	op->uplogin.truth_seen = c.truth_known;
	pw_sock_move(op->io.up, &c.sk);
	op->up_slot = c.slot; /* the connection's slot comes with it */
	op->dial.tls = c.tls;
	op->key.t = c.t; /* its real pid and key */
	pw_preamble_move(&op->pre, &c.pre);
	free(c.key);
	return true;
}

/* The adopted connection serves the client: the start-up its first client saw, with a cancel
 * key of its own. */
static enum pw_open_outcome connect_upstream(struct pw_opening *op);

static enum pw_open_outcome reuse(struct pw_opening *op)
{
	if (pw_worker_rewatch(op->io.w, &op->io.up->ev) < 0) {
		/* that connection is given up: a new one, as if none had been parked */
		pw_sock_close(op->io.up, false);
		pw_opening_upstream_gone(op);
		pw_preamble_free(&op->pre);
		if (op->truth_wanted && op->ps_ready) {
			pw_policy_session_free(&op->ps);
			op->ps_ready = false;
		}
		op->uplogin.truth_seen = false;
		return connect_upstream(op);
	}
	if (pw_buf_insert(op->io.ubuf, op->pre.data, op->pre.len) < 0)
		return fail(op, "53200", "pgward: out of memory");
	pw_cancel_key_give(&op->key, pw_buf_at_scan(op->io.ubuf) - op->pre.len + op->pre.key_off);
	pw_debug("session %llu %s: reusing upstream connection (pid %u)",
	         (unsigned long long)op->io.serial, op->io.peer, op->key.pid);
	return ready(op, false, 'I');
}

static enum pw_open_outcome connect_upstream(struct pw_opening *op)
{
	const struct pw_upstream *u = op->ups;
	struct pw_cancel_target *t = &op->key.t;
	/* one of the upstream's max_connections: a connection parked on this worker for another
	 * client gives its own up if need be */
	while (!(op->up_slot = pw_runtime_upstream_take(op->io.rt, op->ups_idx)))
		if (!pw_pool_drop_upstream(op->io.pool, u->name))
			return fail(op, "53300",
			            "pgward: too many connections to upstream \"%s\" (its "
			            "max_connections is %d)",
			            u->name, u->max_connections);
	if (pw_upstream_address(u, &t->addr, &t->addrlen) < 0)
		return fail(op, "08001", "pgward: cannot resolve upstream \"%s\" (%s)", u->name,
		            u->unix_dir[0] ? u->unix_dir : u->host);
	int fd = pw_upstream_open((struct sockaddr *)&t->addr, t->addrlen,
	                          pw_upstream_mark(op->io.rt->cfg));
	if (fd < 0)
		return fail(op, "08001", "pgward: cannot connect to upstream \"%s\": %s", u->name,
		            strerror(errno));
	struct pw_sock *k = op->io.up;
	k->ev.fd = fd;
	k->rd = k->wr = false;
	pw_dial_start(&op->dial, t->addr.ss_family);
	op->state = OP_UP_DIAL;
	op->deadline_ms = pw_worker_now(op->io.w) + (uint64_t)u->connect_timeout_ms;
	if (pw_worker_watch(op->io.w, &k->ev) < 0)
		return fail(op, "08001", "pgward: cannot watch the upstream connection");
	return PW_OPEN_MOVED;
}

/* The client is who it claims: admit it (admit.h), then an upstream connection. */
static enum pw_open_outcome admit(struct pw_opening *op)
{
	const struct pw_config *cfg = op->io.rt->cfg;
	const struct pw_client_login *c = &op->client;
	struct sockaddr_storage dst;
	struct pw_deny why;
	char who[1024] = "";

	if (op->steered)
		pw_caller_dialled(op->kf, &dst);
	op->ups_idx =
	    pw_admit_upstream(cfg, c->id, op->steered ? (struct sockaddr *)&dst : NULL, &why);
	if (op->ups_idx < 0)
		return fail_with(op, &why);
	op->ups = &cfg->upstreams[op->ups_idx];
	if (op->steered)
		pw_caller_describe(op->kf, who, sizeof(who));
	pw_info("session %llu %s: user=%s database=%s identity=%s upstream=%s%s%s%s%s",
	        (unsigned long long)op->io.serial, op->io.peer, PW_Q(c->user), PW_Q(c->database),
	        c->id->name, op->ups->name, c->claims ? " sub=" : "",
	        c->claims ? PW_Q(c->claims->sub) : "", who[0] ? " caller: " : "", who);

	struct pw_admission a;
	int rc = pw_admit_session(cfg, c->id, op->ups, op->ups_idx, &c->st, c->database,
	                          op->io.serial, time(NULL), &a, &why);
	op->counted = a.counted; /* released when the session ends, admitted or not */
	snprintf(op->role, sizeof(op->role), "%s", a.role);
	op->jit = a.jit;
	op->setup_sql = a.setup_sql;
	op->truth_wanted = a.truth_wanted;
	if (rc < 0)
		return fail_with(op, &why);
	if (a.allow_all) {
		pw_policy_session_init(&op->ps, NULL, op->role[0] ? op->role : op->ups->user, NULL);
		op->ps_ready = true;
	}
	if (pw_admit_startup_packet(&c->st, op->ups->user, up_database(op), &op->up_startup,
	                            &op->up_startup_len) < 0)
		return fail(op, "08P01", "pgward: startup packet too large for the upstream");
	if (op->ups->reuse_connections && !op->role[0] && adopt(op))
		return reuse(op);
	return connect_upstream(op);
}

/* ---- the client ---- */

/* An encryption request (read and cut): answered S (TLS follows) or N. */
static enum pw_open_outcome answer_encryption(struct pw_opening *op, bool ssl)
{
	SSL_CTX *ctx = op->io.rt->client_tls;
	bool yes = ssl && ctx;
	if (yes && pw_buf_unscanned(op->io.cbuf) > 0)
		/* bytes that arrived before the handshake could be injected by a man in the
		 * middle; PostgreSQL refuses them too (CVE-2021-23214) */
		return fail(op, "08P01", "received unencrypted data after SSL request");
	uint8_t ans = yes ? 'S' : 'N';
	if (send(op->io.cl->ev.fd, &ans, 1, MSG_NOSIGNAL) != 1)
		return close_quietly(op, "cannot answer SSL request");
	if (yes) {
		if (pw_sock_tls(op->io.cl, ctx) < 0)
			return close_quietly(op, "SSL_new");
		op->state = OP_CLIENT_TLS;
	}
	return PW_OPEN_MOVED;
}

/* start-up packet, SASL and token exchanges with the client (client_login.h) */
static enum pw_open_outcome client_login(struct pw_opening *op)
{
	bool moved = false;
	if (op->io.cl->rd) {
		ssize_t r = pw_sock_fill(op->io.cl, op->io.cbuf);
		if (r < 0)
			return close_quietly(op, "client went away during start-up");
		moved |= r > 0;
	}
	struct pw_client_where at = {.cfg = op->io.rt->cfg,
	                             .tls = op->io.cl->ssl != NULL,
	                             .local = op->local,
	                             .steered = op->steered,
	                             .kf = op->kf,
	                             .serial = op->io.serial,
	                             .peer = op->io.peer};
	struct pw_client_packet pk;
	struct pw_deny why;
	switch (pw_client_login_step(&op->client, &at, op->io.cbuf, op->io.ubuf, &pk, &why)) {
	case PW_CL_MORE:
		return moved_if(moved);
	case PW_CL_NEXT:
		return PW_OPEN_MOVED;
	case PW_CL_SSL:
		return answer_encryption(op, true);
	case PW_CL_GSS:
		return answer_encryption(op, false);
	case PW_CL_CANCEL:
		op->cancel_pid = pk.pid;
		op->cancel_key = pk.key;
		op->state = OP_DONE;
		return PW_OPEN_CANCEL;
	case PW_CL_AUTHED:
		return admit(op);
	case PW_CL_FAIL:
		return fail_with(op, &why);
	case PW_CL_CLOSE:
		break;
	}
	return close_quietly(op, "oom");
}

static enum pw_open_outcome client_tls(struct pw_opening *op)
{
	char err[400];
	int r = pw_sock_handshake(op->io.cl, true, err, sizeof(err));
	if (r < 0) {
		pw_info("session %llu %s: TLS handshake failed: %s",
		        (unsigned long long)op->io.serial, op->io.peer, PW_Q(err));
		return close_quietly(op, "TLS handshake failed");
	}
	if (r == 0)
		return PW_OPEN_STILL;
	op->state = OP_CLIENT_LOGIN;
	op->io.cl->rd = true;
	return PW_OPEN_MOVED;
}

/* ---- the upstream's login and set-up ---- */

/* A ParameterStatus from the upstream (upstream_setup.h): 0, or -1 with why filled when the
 * session cannot go on with it; server_version is kept as the probe. */
static int param(struct pw_opening *op, bool established, const uint8_t *body, size_t len,
                 struct pw_deny *why)
{
	const char *name, *val;
	if (pw_setup_param(body, len, &name, &val, why) < 0 ||
	    pw_setup_param_judge(op->io.rt->cfg, op->client.id, op->role, established, name, val,
	                         why) < 0)
		return -1;
	if (strcmp(name, "server_version") == 0 && len + PW_HDR <= sizeof(op->probe)) {
		op->probe[0] = 'S';
		pw_put_be32(op->probe + 1, (uint32_t)len + 4);
		memcpy(op->probe + PW_HDR, body, len);
		op->probe_len = len + PW_HDR;
	}
	return 0;
}

/* The connect, its SSLRequest and TLS handshake (upstream_phase.h). */
static enum pw_open_outcome dial(struct pw_opening *op)
{
	char err[512];
	switch (pw_dial_step(&op->dial, op->io.up, op->ups, op->io.rt->upstream_tls[op->ups_idx],
	                     err, sizeof(err))) {
	case PW_DIAL_WAIT:
		return PW_OPEN_STILL;
	case PW_DIAL_MOVED:
		return PW_OPEN_MOVED;
	case PW_DIAL_LOGIN:
		break;
	case PW_DIAL_FAIL:
		return fail(op, "08001", "pgward: %s", err);
	case PW_DIAL_FAIL_LOGIN:
		return upstream_fail(op, "%s", err);
	}
	/* connected: the StartupMessage goes upstream, the login begins */
	if (pw_buf_insert(op->io.cbuf, op->up_startup, op->up_startup_len) < 0)
		return fail(op, "53200", "pgward: out of memory");
	pw_up_login_start(&op->uplogin, op->ups, op->dial.tls,
	                  op->ups->reuse_connections && !op->role[0], op->setup_sql,
	                  op->truth_wanted);
	op->state = OP_UP_LOGIN;
	return PW_OPEN_MOVED;
}

/* The set-up is done: the session's statements are judged against what the server said of it
 * and the catalog snapshot that matches it. STILL while that snapshot is being loaded (the
 * client does not have its ReadyForQuery yet); MOVED when it is at hand. */
static enum pw_open_outcome judged_against(struct pw_opening *op)
{
	const struct pw_up_login *ul = &op->uplogin;
	if (!op->truth_wanted)
		return PW_OPEN_MOVED;
	if (!op->ps_ready) {
		if (!ul->truth_seen)
			return upstream_fail(
			    op, "the session's set-up did not say what its search_path is");
		if (pw_policy_session_init(&op->ps, ul->truth.path, ul->truth.user,
		                           ul->truth.schemas) < 0)
			pw_warn(
			    "session %llu %s: search_path %s does not read: unqualified names are "
			    "left unresolved",
			    (unsigned long long)op->io.serial, op->io.peer, PW_Q(ul->truth.path));
		op->ps_ready = true;
	}
	struct pw_catalog *cat;
	char err[512];
	const char *db = up_database(op);
	switch (pw_catalog_acquire(op->io.rt, op->ups_idx, db, &cat, err, sizeof(err))) {
	case PW_CAT_READY:
		pw_policy_session_catalog(&op->ps, cat);
		pw_catalog_release(cat);
		return PW_OPEN_MOVED;
	case PW_CAT_LOADING:
		if (op->state != OP_CATALOG_WAIT) {
			op->state = OP_CATALOG_WAIT;
			op->deadline_ms =
			    pw_worker_now(op->io.w) + (uint64_t)op->ups->connect_timeout_ms + 5000;
			pw_debug("session %llu %s: waiting for the catalog of %s",
			         (unsigned long long)op->io.serial, op->io.peer, PW_Q(db));
		}
		return PW_OPEN_STILL;
	default:
		pw_warn("session %llu %s: no catalog of upstream \"%s\" database %s: %s",
		        (unsigned long long)op->io.serial, op->io.peer, op->ups->name, PW_Q(db),
		        PW_Q(err));
		return fail(op, "57P03",
		            "pgward: cannot judge this session's statements: the function catalog "
		            "of upstream \"%s\" (database %s) cannot be read",
		            op->ups->name, db);
	}
}

/* What one outcome of the upstream login (upstream_phase.h) makes of the opening. */
static enum pw_open_outcome login_outcome(struct pw_opening *op, enum pw_up_outcome o, uint32_t len,
                                          const char *err)
{
	struct pw_buf *in = op->io.ubuf;
	uint8_t *p = pw_buf_at_scan(in);
	struct pw_deny why;
	switch (o) {
	case PW_UP_MORE:
		return PW_OPEN_STILL;
	case PW_UP_NEXT:
		return PW_OPEN_MOVED;
	case PW_UP_PARAM:
		if (param(op, false, p + PW_HDR, len - 4, &why) < 0)
			return fail_with(op, &why);
		pw_up_login_pass(in, &op->pre, len);
		return PW_OPEN_MOVED;
	case PW_UP_KEY:
		pw_cancel_key_take(&op->key, p);
		pw_up_login_pass(in, &op->pre, len);
		return PW_OPEN_MOVED;
	case PW_UP_RELAY:
		return ready(op, true, 'I');
	case PW_UP_READY: {
		enum pw_open_outcome j = judged_against(op);
		if (j != PW_OPEN_MOVED)
			return j; /* the ReadyForQuery stays where it is until the catalog is */
		char tx = (char)p[5];
		pw_up_login_pass(in, &op->pre, len); /* it ends the capture */
		pw_debug("session %llu %s: upstream session set up%s%s",
		         (unsigned long long)op->io.serial, op->io.peer,
		         op->role[0] ? " as role " : "", op->role);
		return ready(op, false, tx);
	}
	case PW_UP_REFUSED:
		if (err[0])
			pw_warn("session %llu %s: upstream \"%s\" refused the login: %s",
			        (unsigned long long)op->io.serial, op->io.peer, op->ups->name,
			        PW_Q(err));
		op->state = OP_DONE;
		return PW_OPEN_FLUSH;
	case PW_UP_SETUP_FAILED:
		pw_warn("session %llu %s: identity %s: set-up failed upstream: %s",
		        (unsigned long long)op->io.serial, op->io.peer, op->client.id->name,
		        PW_Q(op->uplogin.setup_error));
		if (op->role[0])
			return fail(op, "42501",
			            "pgward: cannot set up the session of identity %s as role %s",
			            op->client.id->name, op->role);
		return fail(op, "08001", "pgward: cannot set up the session of identity %s",
		            op->client.id->name);
	case PW_UP_FAIL:
		return upstream_fail(op, "%s", err);
	case PW_UP_OOM:
		break;
	}
	return fail(op, "53200", "pgward: out of memory");
}

/* The upstream's next message during the login and set-up (and, waiting for the catalog, the
 * set-up's ReadyForQuery again). */
static enum pw_open_outcome login(struct pw_opening *op)
{
	uint32_t len = 0;
	char err[400] = "";
	enum pw_up_outcome o = pw_up_login_step(&op->uplogin, op->io.ubuf, op->io.cbuf, &op->pre,
	                                        &len, err, sizeof(err));
	enum pw_open_outcome r = login_outcome(op, o, len, err);
	if (r != PW_OPEN_STILL || op->state != OP_UP_LOGIN || !op->io.up->rd)
		return r;
	/* what the server sent is all handled (a FATAL before its close included): read on */
	ssize_t n = pw_sock_fill(op->io.up, op->io.ubuf);
	if (n < 0)
		return upstream_fail(op, "%s",
		                     pw_up_login_authed(&op->uplogin)
		                         ? "connection closed while setting up the session's role"
		                         : "connection closed during authentication");
	return moved_if(n > 0);
}

enum pw_open_outcome pw_opening_step(struct pw_opening *op)
{
	switch (op->state) {
	case OP_CLIENT_LOGIN:
		return client_login(op);
	case OP_CLIENT_TLS:
		return client_tls(op);
	case OP_UP_DIAL:
		return dial(op);
	case OP_UP_LOGIN:
	case OP_CATALOG_WAIT:
		return login(op);
	default:
		return PW_OPEN_STILL;
	}
}

void pw_opening_timeout(const struct pw_opening *op, struct pw_deny *d)
{
	if (op->state == OP_CATALOG_WAIT)
		pw_deny_set(
		    d, "57P03",
		    "pgward: cannot judge this session's statements: the function catalog of "
		    "upstream \"%s\" was not read in time",
		    op->ups->name);
	else if (op->state >= OP_UP_DIAL)
		pw_deny_set(d, "08001", "pgward: timeout connecting to upstream \"%s\"",
		            op->ups->name);
	else
		pw_deny_set(d, "08006", "canceling authentication due to timeout");
}

bool pw_opening_client_side(const struct pw_opening *op)
{
	return op->state < OP_UP_DIAL;
}

bool pw_opening_client_writable(const struct pw_opening *op)
{
	return op->state != OP_CLIENT_TLS;
}

bool pw_opening_upstream_writable(const struct pw_opening *op)
{
	return op->state >= OP_UP_LOGIN;
}

bool pw_opening_waits_catalog(const struct pw_opening *op)
{
	return op->state == OP_CATALOG_WAIT;
}

/* ---- after the opening ---- */

bool pw_opening_reusable(const struct pw_opening *op)
{
	/* DISCARD ALL undoes what the set-up did (a role, an imposed search_path): a later
	 * client would get a session other than the one it would be judged against */
	return op->ups && op->ups->reuse_connections && !op->role[0] && !op->ups->n_search_path &&
	       pw_preamble_complete(&op->pre) && op->client.st.version == 0x30000 &&
	       op->io.pool->n < op->ups->pool_max_idle;
}

int pw_opening_after(struct pw_opening *op, uint8_t *msg, size_t total, struct pw_deny *why)
{
	if (msg[0] == 'S' && param(op, true, msg + PW_HDR, total - PW_HDR, why) < 0)
		return -1;
	if (msg[0] == 'K')
		pw_cancel_key_take(&op->key, msg);
	pw_preamble_take(&op->pre, msg, total); /* kept for the next client while capturing */
	return 0;
}

void pw_opening_not_reusable(struct pw_opening *op)
{
	pw_preamble_abandon(&op->pre);
}

void pw_opening_park(struct pw_opening *op)
{
	struct pw_upconn c = {.slot = op->up_slot,
	                      .t = op->key.t,
	                      .tls = op->dial.tls,
	                      .truth_known = op->uplogin.truth_seen,
	                      .truth = op->uplogin.truth,
	                      .key = op->up_startup,
	                      .key_len = op->up_startup_len};
	pw_sock_move(&c.sk, op->io.up);
	pw_preamble_move(&c.pre, &op->pre);
	op->up_slot = NULL;
	op->up_startup = NULL;
	pw_pool_park(op->io.pool, &c, op->io.rt, op->ups_idx, op->ups);
}

void pw_opening_upstream_gone(struct pw_opening *op)
{
	pw_runtime_upstream_put(op->up_slot);
	op->up_slot = NULL;
}

void pw_opening_end(struct pw_opening *op)
{
	pw_opening_upstream_gone(op);
	pw_cancel_key_drop(&op->key);
	if (op->counted)
		pw_policy_session_release(op->client.id->name);
	op->counted = false;
	if (op->jit && op->uplogin.setup_sent) {
		/* the upstream connection is closed already: the janitor drops the role (and ends
		 * the backend, should it still be running a statement) from its own connection */
		pw_jit_drop(op->io.rt, op->ups_idx, up_database(op), op->role, op->key.t.pid);
		op->jit = false;
	}
}

void pw_opening_free(struct pw_opening *op)
{
	pw_client_login_free(&op->client);
	free(op->up_startup);
	pw_preamble_free(&op->pre);
	free(op->kf);
	free(op->setup_sql);
	if (op->ps_ready)
		pw_policy_session_free(&op->ps);
	memset(op, 0, sizeof(*op));
}

void pw_opening_audit(const struct pw_opening *op, bool tls)
{
	struct pw_audit_start st = {
	    .serial = op->io.serial,
	    .client = op->io.peer,
	    .id = op->client.id,
	    .user = op->client.user,
	    .database = op->client.database,
	    .application_name = pw_startup_get(&op->client.st, "application_name"),
	    .startup = &op->client.st,
	    .kf = op->kf,
	    .steered = op->steered,
	    .claims = op->client.claims,
	    .ups = op->ups,
	    .role = op->role,
	    .jit = op->jit,
	    .tls = tls,
	};
	pw_audit_session_start(&st);
	if (op->jit)
		pw_audit_jit_role("created", op->role, op->ups->name, op->io.serial, NULL);
}
