/* The session: a client connection, its upstream connection, and the driver over the phases
 * between them. Each phase has its own state and file and returns an outcome; only this file
 * fails or closes a session:
 *   client_login.h   the first packet, TLS negotiation, the client's authentication;
 *   admit.h          identity, upstream and start-up policy once the client is who it claims;
 *   upstream_phase.h dialling the upstream (TLS), its login, and the role set-up;
 *   pool.h           parking and reusing upstream connections;
 *   relay.h          established: both directions scanned, statements judged, forwarded by
 *                    range (nothing is copied or re-encoded).
 * The worker's loop (loop.h) reaches sessions through the hooks at the end. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pgward/admit.h"
#include "pgward/analysis.h"
#include "pgward/buf.h"
#include "pgward/cancel.h"
#include "pgward/catalog.h"
#include "pgward/caller.h"
#include "pgward/client_login.h"
#include "pgward/conntrack.h"
#include "pgward/inspect.h"
#include "pgward/jit.h"
#include "pgward/judge.h"
#include "pgward/log.h"
#include "pgward/policy_session.h"
#include "pgward/pool.h"
#include "pgward/proto.h"
#include "pgward/relay.h"
#include "pgward/runtime.h"
#include "pgward/session.h"
#include "pgward/sock.h"
#include "pgward/upstream_conn.h"
#include "pgward/upstream_phase.h"

#define BUF_SIZE (64 * 1024)

enum state {
	ST_CLIENT_LOGIN, /* the client's first packets and authentication (client_login.h) */
	ST_CLIENT_TLS,   /* TLS handshake with the client */
	ST_UP_DIAL,      /* connecting to the upstream, TLS (upstream_phase.h) */
	ST_UP_LOGIN,     /* logging in upstream, then the role set-up (upstream_phase.h) */
	ST_CATALOG_WAIT, /* set up: waiting for the catalog snapshot the session needs */
	ST_READY,        /* established: pumping */
	ST_CANCEL,       /* forwarding a CancelRequest to an upstream */
	ST_CLOSING,      /* flushing a last message to the client */
};

struct pw_session {
	struct pw_session *prev, *next;
	struct pw_session *next_ready; /* on the worker's ready list (queued) */
	bool queued;
	struct pw_worker *w;
	struct pw_runtime *rt;
	uint64_t serial;
	enum state state;
	bool closed;
	uint64_t deadline_ms;
	char peer[64];
	bool peer_local; /* unix socket or loopback: a token may travel in clear */

	struct pw_sock cl, up;
	struct pw_buf cbuf; /* client -> upstream */
	struct pw_buf ubuf; /* upstream -> client */

	/* the phases' own state */
	struct pw_client_login client; /* startup packet, user, database, identity, claims */
	struct pw_dial dial;
	struct pw_up_login uplogin;
	struct pw_relay relay;
	struct pw_cancel_key key; /* the upstream's address and keys */
	uint8_t cancel_pkt[16];   /* ST_CANCEL: the CancelRequest to send */

	/* admitted */
	const struct pw_upstream *ups;
	int ups_idx;
	int *up_slot; /* one of the upstream's max_connections, held with the connection */
	bool counted; /* holds one of its identity's max_sessions */
	char role[PW_NAME_MAX]; /* the role the upstream session runs as; "" = login user */
	bool jit;               /* role is made for this session and dropped after it */
	char *setup_sql;        /* the Query that scopes the upstream session */
	bool truth_wanted;      /* its last row says what the session is (upstream_setup.h) */

	/* steered through the eBPF redirect: what the kernel recorded */
	bool steered;
	bool kernel_miss;
	struct pw_kernel_facts *kf;

	/* policy: search_path, prepared statements (ps_ready) */
	struct pw_policy_session ps;
	bool ps_ready;

	/* established. While a message is judged away (judge.away), nothing is read from the
	 * client and s is freed only once the verdict is back */
	struct pw_judge judge;
	bool orphan;  /* closed while judged away, and off the dead list: the job frees it */
	bool up_shut; /* the client's end was passed on to the upstream */
	/* a ParameterStatus the client already has (server_version): sent again after the
	 * client's end while a statement runs, so that a client that is gone (not half-closed)
	 * answers with a reset */
	uint8_t probe[96];
	size_t probe_len;
	bool probe_sent;

	/* connection reuse (upstream.reuse_connections) */
	uint8_t *up_startup; /* the StartupMessage sent upstream: the pool key */
	size_t up_startup_len;
	struct pw_preamble pre; /* the start-up as first sent to the client (pool.h) */
};

static uint64_t serial_counter; /* atomic */
/* sessions freed so far, all workers (atomic): the main thread gives memory back after bursts */
static uint64_t freed_counter;

uint64_t pw_session_freed(void)
{
	return __atomic_load_n(&freed_counter, __ATOMIC_RELAXED);
}

/* A worker's sessions (the loop's per-worker state, pw_worker_state): only session.c walks
 * these lists, and only on the worker's thread. */
struct session_set {
	struct pw_session *live;  /* doubly linked */
	struct pw_session *dead;  /* closed during this epoll batch, freed after it */
	struct pw_session *ready; /* yielded with work left: run again after the batch */
	struct pw_pool pool;      /* upstream connections whose clients left (reuse_connections) */
	int n_live;
};

static struct session_set *set_of(struct pw_worker *w)
{
	return pw_worker_state(w);
}

/* The database the upstream session is in. */
static const char *up_database(const struct pw_session *s)
{
	return s->ups->database[0] ? s->ups->database : s->client.database;
}

/* ------------------------------------------------------------------------------------ */
/* life cycle                                                                            */

static void session_close(struct pw_session *s, const char *why)
{
	if (s->closed)
		return;
	s->closed = true;
	if (why)
		pw_debug("session %llu %s: closed: %s", (unsigned long long)s->serial, s->peer,
		         PW_Q(why));
	pw_sock_close(&s->cl, true);
	pw_sock_close(&s->up, true);
	pw_runtime_upstream_put(s->up_slot);
	s->up_slot = NULL;
	pw_cancel_key_drop(&s->key);
	if (s->counted)
		pw_policy_session_release(s->client.id->name);
	s->counted = false;
	if (s->jit && s->uplogin.setup_sent) {
		/* the upstream connection is closed above: the janitor drops the role (and ends
		 * the backend, should it still be running a statement) from its own connection */
		pw_jit_drop(s->rt, s->ups_idx, up_database(s), s->role, s->key.t.pid);
		s->jit = false;
	}
	if (s->queued) {
		struct pw_session **pp = &set_of(s->w)->ready;
		while (*pp != s)
			pp = &(*pp)->next_ready;
		*pp = s->next_ready;
		s->queued = false;
	}
	/* unlink from the live list, park on the dead list until the epoll batch is done */
	struct session_set *set = set_of(s->w);
	if (s->prev)
		s->prev->next = s->next;
	else
		set->live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	set->n_live--;
	s->next = set->dead;
	s->prev = NULL;
	set->dead = s;
}

static void session_free(struct pw_session *s)
{
	pw_buf_free(&s->cbuf);
	pw_buf_free(&s->ubuf);
	pw_client_login_free(&s->client);
	free(s->up_startup);
	pw_preamble_free(&s->pre);
	free(s->kf);
	free(s->setup_sql);
	if (s->ps_ready)
		pw_policy_session_free(&s->ps);
	if (s->rt)
		pw_runtime_unref(s->rt);
	free(s);
	__atomic_add_fetch(&freed_counter, 1, __ATOMIC_RELAXED);
}

static void reap(struct session_set *set)
{
	while (set->dead) {
		struct pw_session *s = set->dead;
		set->dead = s->next;
		/* an analysis thread still reads its policy session and start-up: the job holds s
		 * and frees it when it comes back (pw_session_analysed) */
		if (s->judge.away)
			s->orphan = true;
		else
			session_free(s);
	}
}

/* Send a FATAL to the client and close once it is written. */
static void fatal(struct pw_session *s, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fatal(struct pw_session *s, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* the message may hold what the client sent (user, database, settings): one quoted value */
	pw_info("session %llu %s: FATAL %s: %s", (unsigned long long)s->serial, s->peer, sqlstate,
	        pw_logq((char[sizeof(msg) * 4 + 8]){0}, sizeof(msg) * 4 + 8, msg));
	/* drop whatever the client still had to receive that is not yet decided; in the
	 * middle of a message the client could not read an error any more: just close */
	pw_buf_truncate(&s->ubuf);
	if (s->cl.ev.fd < 0 || (s->state == ST_READY && pw_relay_mid_upstream(&s->relay)) ||
	    pw_msg_error(&s->ubuf, 'E', "FATAL", sqlstate, msg, NULL) < 0) {
		session_close(s, msg);
		return;
	}
	/* the upstream, if any, has no more business here */
	pw_sock_close(&s->up, false);
	pw_runtime_upstream_put(s->up_slot);
	s->up_slot = NULL;
	s->state = ST_CLOSING;
}

/* The upstream failed pgwardd's own login or set-up: the log says how, the client that it
 * cannot log in. */
static void upstream_fail(struct pw_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void upstream_fail(struct pw_session *s, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pw_warn("session %llu %s: upstream \"%s\": %s", (unsigned long long)s->serial, s->peer,
	        s->ups->name, PW_Q(msg));
	fatal(s, "08001", "pgward: cannot log in to upstream \"%s\": %s", s->ups->name, msg);
}

/* Established: from here the relay walks both directions (relay.h). rfq_pending: the
 * start-up's ReadyForQuery (tx) is still to come through it. */
static void enter_ready(struct pw_session *s, bool rfq_pending, char tx)
{
	const struct pw_config *cfg = s->rt->cfg;
	struct pw_relay_limits lim = {.max_message = cfg->max_message_bytes,
	                              .max_statement = cfg->max_statement_bytes,
	                              .max_bind = cfg->max_bind_bytes};
	pw_relay_start(&s->relay, &lim, rfq_pending, tx, s->ups->reuse_connections);
	pw_relay_each_upstream(&s->relay, s->pre.capturing);
	s->state = ST_READY;
	s->deadline_ms = 0;
}

static void session_event(struct pw_ev *ev, uint32_t events);

static struct pw_session *session_new(struct pw_worker *w)
{
	struct pw_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (pw_buf_init(&s->cbuf, BUF_SIZE) < 0 || pw_buf_init(&s->ubuf, BUF_SIZE) < 0) {
		pw_buf_free(&s->cbuf);
		free(s);
		return NULL;
	}
	s->w = w;
	s->serial = __atomic_add_fetch(&serial_counter, 1, __ATOMIC_RELAXED);
	s->cl.ev = (struct pw_ev){.fd = -1, .fn = session_event, .arg = s};
	s->up.ev = (struct pw_ev){.fd = -1, .fn = session_event, .arg = s};
	struct session_set *set = set_of(w);
	s->next = set->live;
	if (set->live)
		set->live->prev = s;
	set->live = s;
	set->n_live++;
	return s;
}

static void run(struct pw_session *s);

/* A steered connection: find the kernel's record of it by the tuple as this side sees it. */
static void kernel_lookup(struct pw_session *s, const struct sockaddr *peer)
{
	s->kernel_miss = true;
	struct pw_conn_info info;
	if (pw_conntrack_take_accepted(s->cl.ev.fd, peer, &info) < 0)
		return;
	s->kf = malloc(sizeof(*s->kf));
	if (!s->kf)
		return;
	pw_caller_from_kernel(&info, s->kf);
	s->kernel_miss = false;
}

void pw_session_accept(struct pw_worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                       bool steered)
{
	(void)len;
	struct pw_session *s = session_new(w);
	if (!s) {
		close(fd);
		return;
	}
	s->rt = pw_runtime_current();
	pw_format_addr(peer, s->peer, sizeof(s->peer));
	s->cl.ev.fd = fd;
	s->cl.rd = s->cl.wr = true;
	s->peer_local = pw_caller_local(peer);
	if (peer->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	s->deadline_ms = pw_worker_now(w) + (uint64_t)s->rt->cfg->auth_timeout_ms;
	s->steered = steered;
	if (steered) {
		kernel_lookup(s, peer);
		if (s->kernel_miss)
			pw_worker_count(w, PW_WC_TUPLE_MISSES);
	}
	if (pw_worker_watch(w, &s->cl.ev) < 0) {
		session_close(s, "epoll");
		return;
	}
	pw_debug("session %llu %s: accepted on worker %d", (unsigned long long)s->serial, s->peer,
	         pw_worker_index(w));
	run(s);
}

/* ------------------------------------------------------------------------------------ */
/* cancel requests                                                                       */

static unsigned upstream_mark(const struct pw_session *s)
{
	return s->rt->cfg->redirect.enabled ? s->rt->cfg->redirect.mark : 0;
}

/* s (with no client) becomes the CancelRequest for t on a connection of its own. */
static void send_cancel(struct pw_session *s, const struct pw_cancel_target *t)
{
	int fd = pw_upstream_open((const struct sockaddr *)&t->addr, t->addrlen, upstream_mark(s));
	if (fd < 0) {
		session_close(s, "cancel: cannot connect upstream");
		return;
	}
	pw_put_be32(s->cancel_pkt, 16);
	pw_put_be32(s->cancel_pkt + 4, PW_CANCEL_REQUEST);
	pw_put_be32(s->cancel_pkt + 8, t->pid);
	pw_put_be32(s->cancel_pkt + 12, t->real_key);
	s->up.ev.fd = fd;
	s->state = ST_CANCEL;
	s->deadline_ms = pw_worker_now(s->w) + 10000;
	if (pw_worker_watch(s->w, &s->up.ev) < 0)
		session_close(s, "cancel: epoll");
}

/* A client's CancelRequest: forwarded to the upstream its key names. */
static void start_cancel(struct pw_session *s, uint32_t pid, uint32_t key)
{
	struct pw_cancel_target t;
	pw_worker_count(s->w, PW_WC_CANCELS);
	if (pw_cancel_lookup(pid, key, &t) < 0) {
		/* as the server does: no answer, just close */
		pw_info("session %llu %s: cancel request for unknown key (pid %u)",
		        (unsigned long long)s->serial, s->peer, pid);
		session_close(s, "unknown cancel key");
		return;
	}
	/* the client is done: the server never answers a CancelRequest */
	pw_sock_close(&s->cl, false);
	pw_info("session %llu %s: forwarding cancel request for pid %u",
	        (unsigned long long)s->serial, s->peer, pid);
	send_cancel(s, &t);
}

/* The client of s is gone (its connection reset) while its statement runs: cancel it from a
 * session of its own, and close s now (its upstream connection with it; a just-in-time role's
 * backend is ended by the janitor), rather than let the statement run on unwatched. */
static void client_gone(struct pw_session *s)
{
	struct pw_session *c = s->key.t.pid ? session_new(s->w) : NULL;
	if (c) {
		c->rt = pw_runtime_ref(s->rt);
		snprintf(c->peer, sizeof(c->peer), "%s", s->peer);
		send_cancel(c, &s->key.t);
	}
	pw_info("session %llu %s: the client is gone with a statement running: cancelled, "
	        "upstream closed",
	        (unsigned long long)s->serial, s->peer);
	session_close(s, "client gone mid-statement");
}

/* ------------------------------------------------------------------------------------ */
/* connection reuse (pool.h)                                                             */

/* Can the upstream connection outlive this client? Only at a clean boundary: nothing in
 * flight either way, outside any transaction, start-up captured. */
static bool reusable(const struct pw_session *s)
{
	return s->ups && s->ups->reuse_connections && !s->role[0] && s->state == ST_READY &&
	       !s->judge.away && !s->judge.ready && pw_preamble_complete(&s->pre) &&
	       s->client.st.version == 0x30000 && pw_relay_quiet(&s->relay) && !s->up.eof &&
	       s->up.ev.fd >= 0 && !pw_buf_pending(&s->cbuf) && !pw_worker_stopping(s->w) &&
	       set_of(s->w)->pool.n < s->ups->pool_max_idle;
}

/* The client left at a clean boundary: its upstream connection goes to the pool, which
 * resets it for the next client; the session ends. */
static void park(struct pw_session *s)
{
	struct pw_upconn c = {.slot = s->up_slot,
	                      .t = s->key.t,
	                      .tls = s->dial.tls,
	                      .truth_known = s->uplogin.truth_seen,
	                      .truth = s->uplogin.truth,
	                      .key = s->up_startup,
	                      .key_len = s->up_startup_len};
	pw_sock_move(&c.sk, &s->up);
	pw_preamble_move(&c.pre, &s->pre);
	s->up_slot = NULL;
	s->up_startup = NULL;
	pw_pool_park(&set_of(s->w)->pool, &c, s->rt, s->ups_idx, s->ups);
	session_close(s, "the client left: its upstream connection is parked");
}

/* A parked connection with the same upstream and the same StartupMessage, taken over by s. */
static bool adopt(struct pw_session *s)
{
	struct pw_catalog *cat = NULL;
	char err[256];
	struct pw_upconn c;
	/* a session judged against what the server said of it: the parked one's, reset by
	 * DISCARD ALL to the same defaults, holds now; the catalog must be at hand */
	if (s->truth_wanted && pw_catalog_acquire(s->rt, s->ups_idx, up_database(s), &cat, err,
	                                          sizeof(err)) != PW_CAT_READY)
		return false;
	if (!pw_pool_take(&set_of(s->w)->pool, s->rt, s->ups_idx, s->up_startup, s->up_startup_len,
	                  s->truth_wanted, &c)) {
		if (cat)
			pw_catalog_release(cat);
		return false;
	}
	if (cat) {
		pw_policy_session_init(&s->ps, c.truth.path, c.truth.user, c.truth.schemas);
		pw_policy_session_catalog(&s->ps, cat);
		pw_catalog_release(cat);
		s->ps_ready = true;
	}
	s->uplogin.truth = c.truth;
	s->uplogin.truth_seen = c.truth_known;
	pw_sock_move(&s->up, &c.sk);
	s->up_slot = c.slot; /* the connection's slot comes with it */
	s->dial.tls = c.tls;
	s->key.t = c.t; /* its real pid and key */
	pw_preamble_move(&s->pre, &c.pre);
	free(c.key);
	if (pw_worker_rewatch(s->w, &s->up.ev) < 0) {
		fatal(s, "08001", "pgward: cannot watch the upstream connection");
		return true;
	}
	/* the client sees the start-up the first client saw, with a cancel key of its own */
	if (pw_buf_insert(&s->ubuf, s->pre.data, s->pre.len) < 0) {
		fatal(s, "53200", "pgward: out of memory");
		return true;
	}
	pw_cancel_key_give(&s->key, pw_buf_at_scan(&s->ubuf) - s->pre.len + s->pre.key_off);
	enter_ready(s, false, 'I');
	pw_debug("session %llu %s: reusing upstream connection (pid %u)",
	         (unsigned long long)s->serial, s->peer, s->key.pid);
	return true;
}

/* ------------------------------------------------------------------------------------ */
/* admission and the upstream                                                            */

/* One of the upstream's max_connections for s: a connection parked on this worker for another
 * client gives its own up if need be. False (the client told) when there is none. */
static bool upstream_slot(struct pw_session *s)
{
	const struct pw_upstream *u = s->ups;
	while (!(s->up_slot = pw_runtime_upstream_take(s->rt, s->ups_idx)))
		if (!pw_pool_drop_upstream(&set_of(s->w)->pool, u->name)) {
			fatal(
			    s, "53300",
			    "pgward: too many connections to upstream \"%s\" (its max_connections "
			    "is %d)",
			    u->name, u->max_connections);
			return false;
		}
	return true;
}

static void upstream_connect(struct pw_session *s)
{
	const struct pw_upstream *u = s->ups;
	struct pw_cancel_target *t = &s->key.t;
	if (!upstream_slot(s))
		return;
	if (pw_upstream_address(u, &t->addr, &t->addrlen) < 0) {
		fatal(s, "08001", "pgward: cannot resolve upstream \"%s\" (%s)", u->name,
		      u->unix_dir[0] ? u->unix_dir : u->host);
		return;
	}
	int fd = pw_upstream_open((struct sockaddr *)&t->addr, t->addrlen, upstream_mark(s));
	if (fd < 0) {
		fatal(s, "08001", "pgward: cannot connect to upstream \"%s\": %s", u->name,
		      strerror(errno));
		return;
	}
	s->up.ev.fd = fd;
	s->up.rd = false;
	s->up.wr = false;
	pw_dial_start(&s->dial, t->addr.ss_family);
	s->state = ST_UP_DIAL;
	s->deadline_ms = pw_worker_now(s->w) + (uint64_t)u->connect_timeout_ms;
	if (pw_worker_watch(s->w, &s->up.ev) < 0)
		fatal(s, "08001", "pgward: cannot watch the upstream connection");
}

/* Connected: the StartupMessage goes upstream, the login begins. */
static void upstream_login(struct pw_session *s)
{
	if (pw_buf_insert(&s->cbuf, s->up_startup, s->up_startup_len) < 0) {
		fatal(s, "53200", "pgward: out of memory");
		return;
	}
	pw_up_login_start(&s->uplogin, s->ups, s->dial.tls,
	                  s->ups->reuse_connections && !s->role[0], s->setup_sql, s->truth_wanted);
	s->state = ST_UP_LOGIN;
}

/* The client is who it claims: admit it (admit.h), then log in upstream. */
static void after_client_auth(struct pw_session *s)
{
	const struct pw_config *cfg = s->rt->cfg;
	const struct pw_client_login *c = &s->client;
	struct sockaddr_storage dst;
	struct pw_deny why;
	char who[1024] = "";

	if (s->steered)
		pw_caller_dialled(s->kf, &dst);
	s->ups_idx =
	    pw_admit_upstream(cfg, c->id, s->steered ? (struct sockaddr *)&dst : NULL, &why);
	if (s->ups_idx < 0) {
		fatal(s, why.sqlstate, "%s", why.message);
		return;
	}
	s->ups = &cfg->upstreams[s->ups_idx];
	if (s->steered)
		pw_caller_describe(s->kf, who, sizeof(who));
	pw_info("session %llu %s: user=%s database=%s identity=%s upstream=%s%s%s%s%s",
	        (unsigned long long)s->serial, s->peer, PW_Q(c->user), PW_Q(c->database),
	        c->id->name, s->ups->name, c->claims ? " sub=" : "",
	        c->claims ? PW_Q(c->claims->sub) : "", who[0] ? " caller: " : "", who);

	struct pw_admission a;
	int rc = pw_admit_session(cfg, c->id, s->ups, s->ups_idx, &c->st, c->database, s->serial,
	                          time(NULL), &a, &why);
	s->counted = a.counted; /* released when the session ends, admitted or not */
	snprintf(s->role, sizeof(s->role), "%s", a.role);
	s->jit = a.jit;
	s->setup_sql = a.setup_sql;
	s->truth_wanted = a.truth_wanted;
	if (rc < 0) {
		fatal(s, why.sqlstate, "%s", why.message);
		return;
	}
	if (a.allow_all) {
		pw_policy_session_init(&s->ps, NULL, s->role[0] ? s->role : s->ups->user, NULL);
		s->ps_ready = true;
	}
	free(s->up_startup);
	s->up_startup = NULL;
	if (pw_admit_startup_packet(&c->st, s->ups->user, up_database(s), &s->up_startup,
	                            &s->up_startup_len) < 0) {
		fatal(s, "08P01", "pgward: startup packet too large for the upstream");
		return;
	}
	if (s->ups->reuse_connections && !s->role[0] && adopt(s))
		return;
	upstream_connect(s);
}

/* An encryption request (read and cut): answered S (TLS follows) or N. False when the session
 * was closed. */
static bool answer_encryption(struct pw_session *s, bool ssl)
{
	bool yes = ssl && s->rt->client_tls;
	if (yes && pw_buf_unscanned(&s->cbuf) > 0) {
		/* bytes that arrived before the handshake could be injected by a man in the
		 * middle; PostgreSQL refuses them too (CVE-2021-23214) */
		fatal(s, "08P01", "received unencrypted data after SSL request");
		return true;
	}
	uint8_t ans = yes ? 'S' : 'N';
	if (send(s->cl.ev.fd, &ans, 1, MSG_NOSIGNAL) != 1) {
		session_close(s, "cannot answer SSL request");
		return false;
	}
	if (yes) {
		if (pw_sock_tls(&s->cl, s->rt->client_tls) < 0) {
			session_close(s, "SSL_new");
			return false;
		}
		s->state = ST_CLIENT_TLS;
	}
	return true;
}

/* ------------------------------------------------------------------------------------ */
/* what the server says of the session, and the end of the set-up                       */

/* A ParameterStatus from the upstream (upstream_setup.h): server_version is kept (the probe
 * of a client that may be gone); one the session cannot go on with ends it. */
static bool param_check(struct pw_session *s, const uint8_t *body, size_t len)
{
	const char *name, *val;
	struct pw_deny why;
	if (pw_setup_param(body, len, &name, &val, &why) < 0 ||
	    pw_setup_param_judge(s->rt->cfg, s->client.id, s->role, s->state == ST_READY, name, val,
	                         &why) < 0) {
		fatal(s, why.sqlstate, "%s", why.message);
		return false;
	}
	if (strcmp(name, "server_version") == 0 && len + PW_HDR <= sizeof(s->probe)) {
		s->probe[0] = 'S';
		pw_put_be32(s->probe + 1, (uint32_t)len + 4);
		memcpy(s->probe + PW_HDR, body, len);
		s->probe_len = len + PW_HDR;
	}
	return true;
}

/* The set-up is done: the session's statements are judged against what the server said of it
 * and the catalog snapshot that matches it. False while that snapshot is being loaded (the
 * session waits in ST_CATALOG_WAIT; the client does not have its ReadyForQuery yet) or when the
 * session was refused. */
static bool setup_done(struct pw_session *s)
{
	const struct pw_up_login *ul = &s->uplogin;
	if (!s->truth_wanted)
		return true;
	if (!s->ps_ready) {
		if (!ul->truth_seen) {
			upstream_fail(s,
			              "the session's set-up did not say what its search_path is");
			return false;
		}
		if (pw_policy_session_init(&s->ps, ul->truth.path, ul->truth.user,
		                           ul->truth.schemas) < 0)
			pw_warn(
			    "session %llu %s: search_path %s does not read: unqualified names are "
			    "left unresolved",
			    (unsigned long long)s->serial, s->peer, PW_Q(ul->truth.path));
		s->ps_ready = true;
	}
	struct pw_catalog *cat;
	char err[512];
	const char *db = up_database(s);
	switch (pw_catalog_acquire(s->rt, s->ups_idx, db, &cat, err, sizeof(err))) {
	case PW_CAT_READY:
		pw_policy_session_catalog(&s->ps, cat);
		pw_catalog_release(cat);
		return true;
	case PW_CAT_LOADING:
		if (s->state != ST_CATALOG_WAIT) {
			s->state = ST_CATALOG_WAIT;
			s->deadline_ms =
			    pw_worker_now(s->w) + (uint64_t)s->ups->connect_timeout_ms + 5000;
			pw_debug("session %llu %s: waiting for the catalog of %s",
			         (unsigned long long)s->serial, s->peer, PW_Q(db));
		}
		return false;
	default:
		pw_warn("session %llu %s: no catalog of upstream \"%s\" database %s: %s",
		        (unsigned long long)s->serial, s->peer, s->ups->name, PW_Q(db), PW_Q(err));
		fatal(s, "57P03",
		      "pgward: cannot judge this session's statements: the function catalog of "
		      "upstream \"%s\" (database %s) cannot be read",
		      s->ups->name, db);
		return false;
	}
}

/* What one outcome of the upstream login (upstream_phase.h) makes of the session. True: step
 * on. */
static bool up_login_outcome(struct pw_session *s, enum pw_up_outcome o, uint32_t len,
                             const char *err)
{
	uint8_t *p = pw_buf_at_scan(&s->ubuf);
	switch (o) {
	case PW_UP_MORE:
		return false;
	case PW_UP_NEXT:
		return true;
	case PW_UP_PARAM:
		if (!param_check(s, p + PW_HDR, len - 4))
			return false;
		pw_up_login_pass(&s->ubuf, &s->pre, len);
		return true;
	case PW_UP_KEY:
		pw_cancel_key_take(&s->key, p);
		pw_up_login_pass(&s->ubuf, &s->pre, len);
		return true;
	case PW_UP_RELAY:
		enter_ready(s, true, 'I');
		return false;
	case PW_UP_READY:
		if (!setup_done(s))
			return false; /* the ReadyForQuery stays where it is until the catalog is */
		pw_up_login_pass(&s->ubuf, &s->pre, len); /* it ends the capture */
		enter_ready(s, false, (char)p[5]);
		pw_debug("session %llu %s: upstream session set up%s%s",
		         (unsigned long long)s->serial, s->peer, s->role[0] ? " as role " : "",
		         s->role);
		return false;
	case PW_UP_REFUSED:
		if (err[0])
			pw_warn("session %llu %s: upstream \"%s\" refused the login: %s",
			        (unsigned long long)s->serial, s->peer, s->ups->name, PW_Q(err));
		s->state = ST_CLOSING;
		return false;
	case PW_UP_SETUP_FAILED:
		pw_warn("session %llu %s: identity %s: set-up failed upstream: %s",
		        (unsigned long long)s->serial, s->peer, s->client.id->name,
		        PW_Q(s->uplogin.setup_error));
		if (s->role[0])
			fatal(s, "42501",
			      "pgward: cannot set up the session of identity %s as role %s",
			      s->client.id->name, s->role);
		else
			fatal(s, "08001", "pgward: cannot set up the session of identity %s",
			      s->client.id->name);
		return false;
	case PW_UP_FAIL:
		upstream_fail(s, "%s", err);
		return false;
	case PW_UP_OOM:
		fatal(s, "53200", "pgward: out of memory");
		return false;
	}
	return false;
}

/* ------------------------------------------------------------------------------------ */
/* established: the relay, and the judging of what the client asks                       */

void pw_session_analysed(struct pw_analysis_job *j)
{
	struct pw_session *s = j->owner;
	if (s->closed) {
		/* the client went away meanwhile: the verdict has no use; s goes now, or with
		 * the rest of the dead list if it is still on it (closed in this very batch) */
		s->judge.away = false;
		pw_analysis_free(j);
		if (s->orphan)
			session_free(s);
		return;
	}
	pw_judge_back(&s->judge, j);
	run(s);
}

/* Who a message is judged for: the session's identity, names and policy state. */
static struct pw_caller caller_of(struct pw_session *s)
{
	return (struct pw_caller){.cfg = s->rt->cfg,
	                          .identity = s->client.id,
	                          .user = s->client.user,
	                          .database = s->client.database,
	                          .serial = s->serial,
	                          .ps = &s->ps};
}

/* The client side of the relay (judge.h). False when the session was closed. */
static bool relay_client(struct pw_session *s)
{
	struct pw_caller who = caller_of(s);
	if (pw_judge_client(&s->judge, &s->relay, &s->cbuf, &who, s->w, s, s->peer))
		return true;
	fatal(s, s->relay.fail.sqlstate, "%s", s->relay.fail.message);
	return false;
}

/* The upstream side of the relay: what the server says of the session is checked and
 * remembered here. False when the session was closed. */
static bool relay_upstream(struct pw_session *s)
{
	struct pw_relay *r = &s->relay;
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_upstream(r, &s->ubuf);
		uint8_t *p = pw_buf_at_scan(&s->ubuf);
		switch (o) {
		case PW_RELAY_FAIL:
			fatal(s, r->fail.sqlstate, "%s", r->fail.message);
			return false;
		case PW_RELAY_UP_BIG:
			/* start-up messages are small: one that is not is passed on as any other,
			 * and this connection is not kept for reuse */
			pw_preamble_abandon(&s->pre);
			continue;
		case PW_RELAY_UP_PARAM:
			if (!param_check(s, p + PW_HDR, r->total - PW_HDR))
				return false;
			break;
		case PW_RELAY_UP_KEY:
			pw_cancel_key_take(&s->key, p);
			break;
		case PW_RELAY_UP_MSG:
			break;
		default:
			return true;
		}
		if (s->pre.capturing) {
			/* start-up messages are kept for the next client (connection reuse) */
			pw_preamble_take(&s->pre, p, r->total);
			if (!s->pre.capturing)
				pw_relay_each_upstream(r, false);
		}
		pw_relay_pass(r, &s->ubuf);
	}
}

/* ------------------------------------------------------------------------------------ */
/* the driver                                                                            */

/* What one state's step did in a round of run(): nothing that would let another step go on
 * (STILL), something (MOVED: run another round), or the session is closed or parked for
 * good this time (STOP: run returns). */
enum step { STEP_STILL, STEP_MOVED, STEP_STOP };

static enum step moved_if(bool moved)
{
	return moved ? STEP_MOVED : STEP_STILL;
}

/* start-up packet, SASL and token exchanges with the client (client_login.h) */
static enum step step_client_login(struct pw_session *s)
{
	bool moved = false;
	if (s->cl.rd) {
		ssize_t r = pw_sock_fill(&s->cl, &s->cbuf);
		if (r < 0) {
			session_close(s, "client went away during start-up");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	while (s->state == ST_CLIENT_LOGIN) {
		struct pw_client_where at = {.cfg = s->rt->cfg,
		                             .tls = s->cl.ssl != NULL,
		                             .local = s->peer_local,
		                             .steered = s->steered,
		                             .kf = s->kernel_miss ? NULL : s->kf,
		                             .serial = s->serial,
		                             .peer = s->peer};
		struct pw_client_packet pk;
		struct pw_deny why;
		enum pw_client_outcome o =
		    pw_client_login_step(&s->client, &at, &s->cbuf, &s->ubuf, &pk, &why);
		switch (o) {
		case PW_CL_MORE:
			return moved_if(moved);
		case PW_CL_NEXT:
			break;
		case PW_CL_SSL:
		case PW_CL_GSS:
			if (!answer_encryption(s, o == PW_CL_SSL))
				return STEP_STOP;
			break;
		case PW_CL_CANCEL:
			start_cancel(s, pk.pid, pk.key);
			return s->closed ? STEP_STOP : STEP_MOVED;
		case PW_CL_AUTHED:
			after_client_auth(s);
			break;
		case PW_CL_FAIL:
			fatal(s, why.sqlstate, "%s", why.message);
			return s->closed ? STEP_STOP : STEP_MOVED;
		case PW_CL_CLOSE:
			session_close(s, "oom");
			return STEP_STOP;
		}
		if (s->closed)
			return STEP_STOP;
		moved = true;
	}
	return STEP_MOVED;
}

static enum step step_client_tls(struct pw_session *s)
{
	char err[400];
	int r = pw_sock_handshake(&s->cl, true, err, sizeof(err));
	if (r < 0) {
		pw_info("session %llu %s: TLS handshake failed: %s", (unsigned long long)s->serial,
		        s->peer, PW_Q(err));
		session_close(s, "TLS handshake failed");
		return STEP_STOP;
	}
	if (r == 0)
		return STEP_STILL;
	s->state = ST_CLIENT_LOGIN;
	s->cl.rd = true;
	return STEP_MOVED;
}

/* the upstream connect, its SSLRequest and TLS handshake (upstream_phase.h) */
static enum step step_up_dial(struct pw_session *s)
{
	char err[512];
	switch (pw_dial_step(&s->dial, &s->up, s->ups, s->rt->upstream_tls[s->ups_idx], err,
	                     sizeof(err))) {
	case PW_DIAL_WAIT:
		return STEP_STILL;
	case PW_DIAL_MOVED:
		return STEP_MOVED;
	case PW_DIAL_LOGIN:
		upstream_login(s);
		return STEP_MOVED;
	case PW_DIAL_FAIL:
		fatal(s, "08001", "pgward: %s", err);
		return STEP_MOVED;
	case PW_DIAL_FAIL_LOGIN:
		upstream_fail(s, "%s", err);
		return STEP_MOVED;
	}
	return STEP_STILL;
}

/* The upstream login's messages while the session stays in its state (and, waiting for the
 * catalog, the set-up's ReadyForQuery again). */
static bool up_login_run(struct pw_session *s)
{
	bool moved = false;
	enum state st = s->state;
	while (!s->closed && s->state == st) {
		uint32_t len = 0;
		char err[400] = "";
		enum pw_up_outcome o = pw_up_login_step(&s->uplogin, &s->ubuf, &s->cbuf, &s->pre,
		                                        &len, err, sizeof(err));
		moved |= o != PW_UP_MORE;
		if (!up_login_outcome(s, o, len, err))
			break;
	}
	return moved || s->state != st;
}

static enum step step_up_login(struct pw_session *s)
{
	bool moved = false;
	if (s->up.rd) {
		ssize_t r = pw_sock_fill(&s->up, &s->ubuf);
		if (r < 0) {
			upstream_fail(s, "%s",
			              pw_up_login_authed(&s->uplogin)
			                  ? "connection closed while setting up the session's role"
			                  : "connection closed during authentication");
			return STEP_MOVED;
		}
		moved |= r > 0;
	}
	return moved_if(up_login_run(s) || moved);
}

static enum step step_catalog_wait(struct pw_session *s)
{
	up_login_run(s);
	return moved_if(s->state != ST_CATALOG_WAIT);
}

/* The CancelRequest's connection is made: send it, and done. */
static enum step step_cancel(struct pw_session *s)
{
	if (!s->up.wr && !s->up.rd)
		return STEP_STILL;
	if (pw_sock_error(&s->up)) {
		session_close(s, "cancel: upstream connect failed");
		return STEP_STOP;
	}
	ssize_t w = send(s->up.ev.fd, s->cancel_pkt, 16, MSG_NOSIGNAL);
	if (w == 16 || (w < 0 && errno != EAGAIN)) {
		session_close(s, "cancel forwarded");
		return STEP_STOP;
	}
	s->up.wr = false;
	return STEP_STILL;
}

/* Established, after the relay: the ends of either side, a stop. */
static enum step ready_ends(struct pw_session *s, bool moved)
{
	/* after an EOF or Terminate, flush what is decided, then close */
	if ((s->cl.eof || pw_relay_terminated(&s->relay)) && !pw_buf_pending(&s->cbuf) &&
	    !s->up_shut && !s->judge.away) {
		if (reusable(s)) {
			park(s);
			return STEP_STOP;
		}
		/* pass the client's end on and keep relaying: the server answers what it already
		 * has, then closes, as it would for the client itself (a half-closed client still
		 * reads) */
		s->up_shut = true;
		pw_sock_shutdown(&s->up);
		s->deadline_ms = pw_worker_now(s->w) + 10000;
		moved = true;
	}
	bool running = pw_relay_busy(&s->relay); /* a statement (or a COPY) runs upstream */
	if (s->up_shut && s->cl.eof && !pw_relay_terminated(&s->relay) && running && s->probe_len &&
	    !s->probe_sent && !pw_relay_mid_upstream(&s->relay)) {
		/* is the client half-closed, or gone? A client that is gone answers this with a
		 * reset */
		if (pw_buf_insert(&s->ubuf, s->probe, s->probe_len) == 0)
			s->probe_sent = true;
		moved = true;
	}
	if (s->cl.eof && s->cl.hup && running && pw_sock_reset(&s->cl)) {
		client_gone(s);
		return STEP_STOP;
	}
	if (s->up.eof && !pw_buf_pending(&s->ubuf)) {
		session_close(s, "upstream closed");
		return STEP_STOP;
	}
	if (pw_worker_stopping(s->w) && pw_relay_tx_status(&s->relay) == 'I' && !running &&
	    !pw_buf_pending(&s->cbuf) && !pw_buf_unscanned(&s->cbuf) && !pw_buf_pending(&s->ubuf) &&
	    !pw_buf_unscanned(&s->ubuf)) {
		fatal(s, "57P01", "terminating connection due to administrator command");
		return STEP_MOVED;
	}
	return moved_if(moved);
}

/* Established: read both sides into the relay. */
static enum step step_ready(struct pw_session *s)
{
	bool moved = false;
	ssize_t r;
	if (s->cl.rd && !s->cl.eof && !pw_relay_terminated(&s->relay) && !s->judge.away) {
		r = pw_sock_fill(&s->cl, &s->cbuf);
		if (r == PW_IO_ERR) {
			session_close(s, "client read error");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	bool verdict = s->judge.ready;
	if (pw_buf_unscanned(&s->cbuf) && !relay_client(s))
		return STEP_MOVED;
	/* a verdict from an analysis thread came without any I/O: what it decided is to be
	 * written now */
	moved |= verdict && !s->judge.ready;
	if (s->up.rd && !s->up.eof) {
		r = pw_sock_fill(&s->up, &s->ubuf);
		if (r == PW_IO_ERR) {
			session_close(s, "upstream read error");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	if (pw_buf_unscanned(&s->ubuf) && !relay_upstream(s))
		return STEP_MOVED;
	return ready_ends(s, moved);
}

/* Each state's step (ST_CLOSING has none: run only flushes it). */
static enum step (*const steps[])(struct pw_session *) = {
    [ST_CLIENT_LOGIN] = step_client_login,
    [ST_CLIENT_TLS] = step_client_tls,
    [ST_UP_DIAL] = step_up_dial,
    [ST_UP_LOGIN] = step_up_login,
    [ST_CATALOG_WAIT] = step_catalog_wait,
    [ST_READY] = step_ready,
    [ST_CANCEL] = step_cancel,
};

/* Writes first (they free buffer space). STOP when the session is done with for now. */
static enum step step_writes(struct pw_session *s, bool *moved)
{
	ssize_t r;
	if (s->cl.ev.fd >= 0 && s->cl.wr && pw_buf_pending(&s->ubuf) && s->state != ST_CLIENT_TLS) {
		r = pw_sock_drain(&s->cl, &s->ubuf);
		if (r == PW_IO_ERR) {
			if (s->state == ST_READY && pw_relay_busy(&s->relay))
				client_gone(s);
			else
				session_close(s, "client write error");
			return STEP_STOP;
		}
		*moved |= r > 0;
	}
	if (s->state == ST_CLOSING) {
		if (!pw_buf_pending(&s->ubuf))
			session_close(s, NULL);
		return STEP_STOP;
	}
	if (s->up.ev.fd >= 0 && s->up.wr && pw_buf_pending(&s->cbuf) && s->state >= ST_UP_LOGIN &&
	    s->state != ST_CANCEL) {
		r = pw_sock_drain(&s->up, &s->cbuf);
		if (r == PW_IO_ERR) {
			fatal(s, "08006", "pgward: connection to upstream \"%s\" lost",
			      s->ups->name);
			return STEP_MOVED;
		}
		*moved |= r > 0;
	}
	return STEP_STILL;
}

/* Everything the session can do without blocking, until nothing moves. */
static void run(struct pw_session *s)
{
	for (int rounds = 0; !s->closed && rounds < 64; rounds++) {
		bool moved = false;
		enum step w = step_writes(s, &moved);
		if (w == STEP_STOP)
			return;
		if (w == STEP_MOVED)
			continue; /* failed: the FATAL goes out next round */
		enum step o = steps[s->state] ? steps[s->state](s) : STEP_STILL;
		if (o == STEP_STOP)
			return;
		if (o == STEP_STILL && !moved)
			return;
	}
	/* still moving after many rounds: give the other sessions a turn, and come back after
	 * the next epoll batch (edge-triggered: no new event would wake us for data already
	 * waiting in the socket) */
	if (!s->closed && !s->queued) {
		s->queued = true;
		s->next_ready = set_of(s->w)->ready;
		set_of(s->w)->ready = s;
	}
}

static void run_ready(struct session_set *set)
{
	struct pw_session *s = set->ready;
	set->ready = NULL;
	while (s) {
		struct pw_session *nx = s->next_ready;
		s->queued = false;
		s->next_ready = NULL;
		run(s);
		s = nx;
	}
}

/* A catalog snapshot was loaded: the sessions waiting for one go on. */
static void sessions_nudge(struct pw_worker *w)
{
	for (struct pw_session *s = set_of(w)->live, *nx; s; s = nx) {
		nx = s->next;
		if (s->state == ST_CATALOG_WAIT && !s->closed)
			run(s);
	}
}

static void session_event(struct pw_ev *ev, uint32_t events)
{
	struct pw_session *s = ev->arg;
	if (s->closed)
		return;
	pw_sock_events(ev == &s->cl.ev ? &s->cl : &s->up, events);
	run(s);
}

static void session_tick(struct pw_session *s)
{
	if (s->closed)
		return;
	if (s->state == ST_READY && s->up_shut && pw_worker_now(s->w) > s->deadline_ms) {
		session_close(s, "upstream did not close after the client left");
		return;
	}
	if (s->state == ST_CATALOG_WAIT)
		run(s); /* in case a load's wake-up came and went */
	if (s->closed)
		return;
	if (s->deadline_ms && pw_worker_now(s->w) > s->deadline_ms && s->state != ST_READY) {
		if (s->state == ST_CANCEL || s->state == ST_CLOSING)
			session_close(s, "timeout");
		else if (s->state == ST_CATALOG_WAIT)
			fatal(
			    s, "57P03",
			    "pgward: cannot judge this session's statements: the function catalog "
			    "of upstream \"%s\" was not read in time",
			    s->ups->name);
		else if (s->state >= ST_UP_DIAL)
			fatal(s, "08001", "pgward: timeout connecting to upstream \"%s\"",
			      s->ups->name);
		else
			fatal(s, "08006", "canceling authentication due to timeout");
		return;
	}
	if (pw_worker_stopping(s->w))
		run(s); /* an idle session ends now */
}

static void session_terminate(struct pw_session *s, const char *why)
{
	if (s->closed)
		return;
	if (s->state == ST_READY || s->state < ST_UP_DIAL) {
		fatal(s, "57P01", "%s", why);
		run(s);
	}
	session_close(s, why);
}

/* ---- the loop's hooks ---------------------------------------------------------------- */

static void *sessions_start(struct pw_worker *w)
{
	struct session_set *set = calloc(1, sizeof(*set));
	if (set)
		pw_pool_init(&set->pool, w);
	return set;
}

static bool sessions_after_batch(struct pw_worker *w)
{
	run_ready(set_of(w));
	reap(set_of(w));
	pw_pool_reap(&set_of(w)->pool);
	return set_of(w)->ready != NULL;
}

static void sessions_tick(struct pw_worker *w, bool terminate)
{
	for (struct pw_session *s = set_of(w)->live, *nx; s; s = nx) {
		nx = s->next;
		if (terminate)
			session_terminate(s, "terminating connection due to administrator command");
		else
			session_tick(s);
	}
	reap(set_of(w));
	pw_pool_tick(&set_of(w)->pool, pw_worker_now(w), terminate || pw_worker_stopping(w));
	pw_pool_reap(&set_of(w)->pool);
}

static int sessions_live(struct pw_worker *w)
{
	return set_of(w)->n_live;
}

static void sessions_end(struct pw_worker *w)
{
	reap(set_of(w));
	pw_pool_close_all(&set_of(w)->pool);
	free(set_of(w));
}

static const struct pw_loop_hooks hooks = {
    .worker_start = sessions_start,
    .accept = pw_session_accept,
    .after_batch = sessions_after_batch,
    .tick = sessions_tick,
    .nudge = sessions_nudge,
    .analysed = pw_session_analysed,
    .live = sessions_live,
    .worker_end = sessions_end,
};

const struct pw_loop_hooks *pw_session_hooks(void)
{
	return &hooks;
}
