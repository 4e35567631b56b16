/* The session: a client connection, its upstream connection, and the state machine between
 * them. Start-up (SSL negotiation, client authentication, upstream login) is handled message
 * by message; once established, bytes are pumped as ranges through two direction buffers
 * while a scanner walks the message headers, so that the inspection hook sees every
 * Query/Parse/Bind and nothing else is copied or re-encoded. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "pgward/admit.h"
#include "pgward/analysis.h"
#include "pgward/auth.h"
#include "pgward/buf.h"
#include "pgward/cancel.h"
#include "pgward/catalog.h"
#include "pgward/caller.h"
#include "pgward/client_login.h"
#include "pgward/inspect.h"
#include "pgward/jit.h"
#include "pgward/jwt.h"
#include "pgward/policy_session.h"
#include "pgward/conntrack.h"
#include "pgward/pool.h"
#include "pgward/options.h"
#include "pgward/log.h"
#include "pgward/proto.h"
#include "pgward/relay.h"
#include "pgward/runtime.h"
#include "pgward/session.h"
#include "pgward/tls.h"
#include "pgward/upstream_conn.h"
#include "pgward/upstream_login.h"
#include "pgward/upstream_setup.h"

#define BUF_SIZE     (64 * 1024)
#define AUTH_MSG_MAX 8192 /* largest message accepted while authenticating, either side */

enum state {
	ST_STARTUP,      /* waiting for the client's first packet */
	ST_CLIENT_TLS,   /* TLS handshake with the client */
	ST_SASL_INIT,    /* sent AuthenticationSASL, waiting for SASLInitialResponse */
	ST_SASL_CONT,    /* sent SASLContinue, waiting for SASLResponse */
	ST_TOKEN,        /* asked for a password: the client's JWT */
	ST_UP_CONNECT,   /* connecting to the upstream */
	ST_UP_SSLREQ,    /* sent SSLRequest upstream, waiting for S/N */
	ST_UP_TLS,       /* TLS handshake with the upstream */
	ST_UP_AUTH,      /* sent StartupMessage upstream, answering its authentication */
	ST_UP_SETUP,     /* logged in: role set-up and what the server says of the session */
	ST_CATALOG_WAIT, /* set up: waiting for the catalog snapshot the session needs */
	ST_READY,        /* established: pumping */
	ST_CANCEL,       /* forwarding a CancelRequest to an upstream */
	ST_CLOSING,      /* flushing a last message to the client */
	ST_POOL_RESET,   /* client gone: DISCARD ALL sent upstream, waiting for its answer */
	ST_POOL_IDLE,    /* parked upstream connection, waiting for the next client */
};

struct sock {
	struct pw_ev ev;
	SSL *ssl;
	bool rd, wr; /* readiness as last reported (edge-triggered) */
	bool hup;    /* the peer's end was reported: read on until EOF, whatever a read returns */
	bool eof;
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

	struct sock cl, up;
	struct pw_buf cbuf; /* client -> upstream */
	struct pw_buf ubuf; /* upstream -> client */

	/* start-up */
	uint8_t *startup; /* copy of the client's StartupMessage (params point into it) */
	size_t startup_len;
	struct pw_startup st;
	const char *user, *database;
	const struct pw_identity *id;
	const struct pw_upstream *ups;
	int ups_idx;
	struct pw_scram_server scram_s;
	struct pw_login login; /* the upstream login (upstream_login.h) */
	bool login_started;
	bool up_tls;
	int *up_slot; /* one of the upstream's max_connections, held with the connection */

	/* established: the scanners' state (relay.h) */
	struct pw_relay relay;
	/* the message at the client buffer's scan is being judged by an analysis thread
	 * (analysis.h): nothing is read from the client meanwhile, and s is freed only once the
	 * verdict is back; then verdict_ready holds it for the message */
	bool analysing, verdict_ready;
	bool orphan; /* closed while analysing, and off the dead list: the job frees it */
	enum pw_verdict verdict;
	struct pw_deny verdict_d;
	bool up_shut; /* the client's end was passed on to the upstream */
	/* a ParameterStatus the client already has (server_version): sent again after the
	 * client's end while a statement runs, so that a client that is gone (not half-closed)
	 * answers with a reset */
	uint8_t probe[96];
	size_t probe_len;
	bool probe_sent;
	bool u_error_in_group; /* pool reset: the server failed the DISCARD ALL */

	uint32_t be_pid, our_key;
	bool key_registered;
	struct pw_cancel_target cancel; /* the upstream's address, for the cancel map */
	uint8_t cancel_pkt[16];

	/* steered through the eBPF redirect: what the kernel recorded */
	bool steered;
	bool kernel_miss;
	struct pw_kernel_facts *kf;

	/* connection reuse (upstream.reuse_connections) */
	uint8_t *up_startup; /* the StartupMessage sent upstream: the pool key */
	size_t up_startup_len;
	struct pw_preamble pre;      /* the start-up as first sent to the client (pool.h) */
	struct pw_pool_entry pool_e; /* on the worker's pool while parked */

	/* policy */
	struct pw_policy_session ps; /* search_path, prepared statements (ps_ready) */
	bool ps_ready;
	bool counted;           /* holds one of its identity's max_sessions */
	char role[PW_NAME_MAX]; /* the role the upstream session runs as; "" = login user */
	bool jit;               /* role is made for this session and dropped after it */
	char *setup_sql;        /* the Query that scopes the upstream session */
	bool setup_sent;
	char setup_error[256];
	/* what the server said of the session at its start (the set-up's last statement) */
	bool truth_wanted, truth_seen;
	struct pw_truth truth;        /* search_path, current user, schemas (upstream_setup.h) */
	struct pw_jwt_claims *claims; /* auth "jwt": the verified token's claims */
	bool peer_local;              /* unix socket or loopback: a token may travel in clear */
};

static uint64_t serial_counter; /* atomic */
/* sessions freed so far, all workers (atomic): the main thread gives memory back after bursts */
static uint64_t freed_counter;

uint64_t pw_session_freed(void)
{
	return __atomic_load_n(&freed_counter, __ATOMIC_RELAXED);
}
static void pool_remove(struct pw_session *s);

/* A worker's sessions (the loop's per-worker state, pw_worker_state): only session.c walks
 * these lists, and only on the worker's thread. */
struct session_set {
	struct pw_session *live;  /* doubly linked */
	struct pw_session *dead;  /* closed during this epoll batch, freed after it */
	struct pw_session *ready; /* yielded with work left: run again after the batch */
	struct pw_pool pool;      /* parked upstream connections (reuse_connections) */
	int n_live;
};

static struct session_set *set_of(struct pw_worker *w)
{
	return pw_worker_state(w);
}

static struct pw_session *parked_session(struct pw_pool_entry *e)
{
	return e ? (struct pw_session *)((char *)e - offsetof(struct pw_session, pool_e)) : NULL;
}

/* ------------------------------------------------------------------------------------ */
/* socket I/O, plain or TLS                                                              */

enum { IO_WOULDBLOCK = 0, IO_EOF = -1, IO_ERR = -2 };

static ssize_t sock_read(struct sock *k, uint8_t *p, size_t n)
{
	if (k->ssl) {
		int r = SSL_read(k->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		if (r > 0)
			return r;
		int e = SSL_get_error(k->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			k->rd = false;
			return IO_WOULDBLOCK;
		}
		ERR_clear_error();
		return e == SSL_ERROR_ZERO_RETURN ? IO_EOF : IO_ERR;
	}
	ssize_t r = read(k->ev.fd, p, n);
	if (r > 0) {
		/* edge-triggered: a short read drained the socket, new data raises a new edge;
		 * but not the peer's end when it came with the data (one edge for both): after a
		 * hang-up, read until EOF */
		if ((size_t)r < n && !k->hup)
			k->rd = false;
		return r;
	}
	if (r == 0)
		return IO_EOF;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		k->rd = false;
		return IO_WOULDBLOCK;
	}
	if (errno == EINTR)
		return IO_WOULDBLOCK;
	return IO_ERR;
}

static ssize_t sock_write(struct sock *k, const uint8_t *p, size_t n)
{
	if (k->ssl) {
		int r = SSL_write(k->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
		if (r > 0)
			return r;
		int e = SSL_get_error(k->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			k->wr = false;
			return IO_WOULDBLOCK;
		}
		ERR_clear_error();
		return IO_ERR;
	}
	ssize_t r = send(k->ev.fd, p, n, MSG_NOSIGNAL);
	if (r >= 0) {
		if ((size_t)r < n)
			k->wr = false;
		return r;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		k->wr = false;
		return IO_WOULDBLOCK;
	}
	if (errno == EINTR)
		return IO_WOULDBLOCK;
	return IO_ERR;
}

/* Read what fits into b. Returns bytes read (>0), IO_WOULDBLOCK, IO_EOF or IO_ERR. */
static ssize_t fill(struct sock *k, struct pw_buf *b)
{
	if (pw_buf_space(b) < 1024)
		pw_buf_compact(b);
	if (!pw_buf_space(b))
		return IO_WOULDBLOCK;
	ssize_t r = sock_read(k, pw_buf_tail(b), pw_buf_space(b));
	if (r > 0)
		pw_buf_filled(b, (size_t)r);
	else if (r == IO_EOF)
		k->eof = true;
	return r;
}

/* Write the decided bytes of b. Returns bytes written, IO_WOULDBLOCK or IO_ERR. */
static ssize_t drain(struct sock *k, struct pw_buf *b)
{
	size_t n = pw_buf_pending(b);
	if (!n)
		return 0;
	ssize_t r = sock_write(k, pw_buf_head(b), n);
	if (r > 0)
		pw_buf_written(b, (size_t)r);
	return r;
}

/* ------------------------------------------------------------------------------------ */
/* life cycle                                                                            */

static void session_close(struct pw_session *s, const char *why)
{
	if (s->closed)
		return;
	s->closed = true;
	if (s->state == ST_POOL_IDLE)
		pool_remove(s);
	if (why)
		pw_debug("session %llu %s: closed: %s", (unsigned long long)s->serial, s->peer,
		         PW_Q(why));
	struct sock *ks[2] = {&s->cl, &s->up};
	for (int i = 0; i < 2; i++) {
		struct sock *k = ks[i];
		if (k->ssl) {
			if (!k->eof)
				SSL_shutdown(k->ssl); /* best effort close_notify */
			SSL_free(k->ssl);
			k->ssl = NULL;
		}
		if (k->ev.fd >= 0) {
			close(k->ev.fd); /* also removes it from epoll */
			k->ev.fd = -1;
		}
	}
	pw_runtime_upstream_put(s->up_slot);
	s->up_slot = NULL;
	if (s->key_registered)
		pw_cancel_unregister(s->be_pid, s->our_key);
	s->key_registered = false;
	if (s->counted)
		pw_policy_session_release(s->id->name);
	s->counted = false;
	if (s->jit && s->setup_sent) {
		/* the upstream connection is closed above: the janitor drops the role (and ends
		 * the backend, should it still be running a statement) from its own connection */
		pw_jit_drop(s->rt, s->ups_idx, s->ups->database[0] ? s->ups->database : s->database,
		            s->role, s->cancel.pid);
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
	free(s->startup);
	free(s->up_startup);
	pw_preamble_free(&s->pre);
	free(s->kf);
	free(s->setup_sql);
	free(s->claims);
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
		if (s->analysing)
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
	if (s->up.ev.fd >= 0) {
		if (s->up.ssl) {
			SSL_free(s->up.ssl);
			s->up.ssl = NULL;
		}
		close(s->up.ev.fd);
		s->up.ev.fd = -1;
	}
	pw_runtime_upstream_put(s->up_slot);
	s->up_slot = NULL;
	s->state = ST_CLOSING;
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
	if (peer->sa_family == AF_UNIX)
		s->peer_local = true;
	else if (peer->sa_family == AF_INET)
		s->peer_local =
		    (ntohl(((const struct sockaddr_in *)peer)->sin_addr.s_addr) >> 24) == 127;
	else if (peer->sa_family == AF_INET6)
		s->peer_local =
		    IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)peer)->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)peer)->sin6_addr) &&
		     ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr[12] == 127);
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
/* upstream connection                                                                   */

static unsigned upstream_mark(const struct pw_session *s)
{
	return s->rt->cfg->redirect.enabled ? s->rt->cfg->redirect.mark : 0;
}

/* One of the upstream's max_connections for s: a connection parked on this worker for another
 * client gives its own up if need be. False (the client told) when there is none. */
static bool upstream_slot(struct pw_session *s)
{
	const struct pw_upstream *u = s->ups;
	while (!(s->up_slot = pw_runtime_upstream_take(s->rt, s->ups_idx))) {
		struct pw_session *o =
		    parked_session(pw_pool_find_upstream(&set_of(s->w)->pool, u->name));
		if (!o) {
			fatal(
			    s, "53300",
			    "pgward: too many connections to upstream \"%s\" (its max_connections "
			    "is %d)",
			    u->name, u->max_connections);
			return false;
		}
		session_close(o, "pool: its slot is wanted by a new session");
	}
	return true;
}

static void upstream_connect(struct pw_session *s)
{
	const struct pw_upstream *u = s->ups;
	if (!upstream_slot(s))
		return;
	if (pw_upstream_address(u, &s->cancel.addr, &s->cancel.addrlen) < 0) {
		fatal(s, "08001", "pgward: cannot resolve upstream \"%s\" (%s)", u->name,
		      u->unix_dir[0] ? u->unix_dir : u->host);
		return;
	}
	int fd = pw_upstream_open((struct sockaddr *)&s->cancel.addr, s->cancel.addrlen,
	                          upstream_mark(s));
	if (fd < 0) {
		fatal(s, "08001", "pgward: cannot connect to upstream \"%s\": %s", u->name,
		      strerror(errno));
		return;
	}
	s->up.ev.fd = fd;
	s->up.rd = false;
	s->up.wr = false;
	s->state = ST_UP_CONNECT;
	s->deadline_ms = pw_worker_now(s->w) + (uint64_t)u->connect_timeout_ms;
	if (pw_worker_watch(s->w, &s->up.ev) < 0)
		fatal(s, "08001", "pgward: cannot watch the upstream connection");
}

/* Build and queue the StartupMessage for the upstream: the client's parameters, with the
 * user (and, if configured, the database) replaced by the upstream's. */
static int build_upstream_startup(struct pw_session *s)
{
	uint8_t pkt[16384];
	size_t off = 8;
	const char *db = s->ups->database[0] ? s->ups->database : s->database;
	bool have_db = false;
#define PUT(str)                                                                                   \
	do {                                                                                       \
		size_t l_ = strlen(str) + 1;                                                       \
		if (off + l_ + 1 > sizeof(pkt))                                                    \
			return -1;                                                                 \
		memcpy(pkt + off, str, l_);                                                        \
		off += l_;                                                                         \
	} while (0)
	for (int i = 0; i < s->st.n; i++) {
		const char *k = s->st.key[i], *v = s->st.val[i];
		if (strcmp(k, "user") == 0)
			v = s->ups->user;
		else if (strcmp(k, "database") == 0) {
			v = db;
			have_db = true;
		}
		PUT(k);
		PUT(v);
	}
	if (!have_db) {
		PUT("database");
		PUT(db);
	}
#undef PUT
	pkt[off++] = 0;
	pw_put_be32(pkt, (uint32_t)off);
	pw_put_be32(pkt + 4, s->st.version);
	free(s->up_startup);
	if (!(s->up_startup = malloc(off)))
		return -1;
	memcpy(s->up_startup, pkt, off);
	s->up_startup_len = off;
	return 0;
}

static void register_cancel_key(struct pw_session *s, uint8_t *msg);
static void rekey(struct pw_session *s, uint8_t *msg);

static void upstream_ready_to_login(struct pw_session *s)
{
	if (pw_buf_insert(&s->cbuf, s->up_startup, s->up_startup_len) < 0) {
		fatal(s, "53200", "pgward: out of memory");
		return;
	}
	s->state = ST_UP_AUTH;
}

/* ---- connection reuse ---- */

static void pool_remove(struct pw_session *s)
{
	pw_pool_remove(&set_of(s->w)->pool, &s->pool_e);
}

/* Can the upstream connection outlive this client? Only at a clean boundary: nothing in
 * flight either way, outside any transaction, start-up captured. */
static bool reusable(const struct pw_session *s)
{
	return s->ups && s->ups->reuse_connections && !s->role[0] && s->state == ST_READY &&
	       !s->analysing && !s->verdict_ready && pw_preamble_complete(&s->pre) &&
	       s->st.version == 0x30000 && pw_relay_quiet(&s->relay) && !s->up.eof &&
	       s->up.ev.fd >= 0 && !pw_buf_pending(&s->cbuf) && !pw_worker_stopping(s->w) &&
	       set_of(s->w)->pool.n < s->ups->pool_max_idle;
}

/* The client is gone: reset the upstream connection and park it. */
static void park(struct pw_session *s)
{
	if (s->cl.ssl) {
		SSL_free(s->cl.ssl);
		s->cl.ssl = NULL;
	}
	if (s->cl.ev.fd >= 0)
		close(s->cl.ev.fd);
	s->cl.ev.fd = -1;
	if (s->key_registered)
		pw_cancel_unregister(s->be_pid, s->our_key);
	s->key_registered = false;
	if (s->counted)
		pw_policy_session_release(s->id->name);
	s->counted = false;
	pw_buf_clear(&s->cbuf);
	pw_buf_clear(&s->ubuf);
	static const char q[] = "DISCARD ALL";
	s->u_error_in_group = false;
	pw_relay_expect(&s->relay);
	s->state = ST_POOL_RESET;
	s->deadline_ms = pw_worker_now(s->w) + 10000;
	if (pw_msg_raw(&s->cbuf, 'Q', q, sizeof(q)) < 0)
		session_close(s, "oom");
}

/* The answer to DISCARD ALL: drop it all, park on a clean ReadyForQuery. */
/* The upstream's next message while pgwardd talks to it itself (login, role set-up, reset):
 * small ones only, read whole. Its start, with its length word in *len; NULL while it is
 * incomplete, or when its length is out of bounds (*bad: the caller says how it fails). */
static uint8_t *upstream_small_message(struct pw_session *s, uint32_t *len, bool *bad)
{
	struct pw_buf *b = &s->ubuf;
	*bad = false;
	if (pw_buf_unscanned(b) < PW_HDR)
		return NULL;
	uint8_t *p = pw_buf_at_scan(b);
	*len = pw_be32(p + 1);
	if (*len < 4 || *len > AUTH_MSG_MAX) {
		*bad = true;
		return NULL;
	}
	if (pw_buf_unscanned(b) < (size_t)*len + 1) {
		pw_buf_reserve_at_scan(b,
		                       (size_t)*len + 1); /* within the buffer's size: no failure */
		return NULL;
	}
	return p;
}

static bool pool_reset_step(struct pw_session *s)
{
	struct pw_buf *b = &s->ubuf;
	uint32_t len;
	bool bad;
	uint8_t *p = upstream_small_message(s, &len, &bad);
	if (bad)
		session_close(s, "pool: bad message during reset");
	if (!p)
		return false;
	uint8_t t = p[0], st = p[5];
	pw_buf_cut(b, (size_t)len + 1);
	if (t == 'E')
		s->u_error_in_group = true;
	if (t != 'Z')
		return true;
	if (s->u_error_in_group || st != 'I') {
		session_close(s, "pool: reset failed");
		return false;
	}
	pw_relay_caught_up(&s->relay);
	s->state = ST_POOL_IDLE;
	s->deadline_ms = pw_worker_now(s->w) + (uint64_t)s->ups->pool_idle_timeout_ms;
	s->pool_e = (struct pw_pool_entry){.rt = s->rt,
	                                   .ups_idx = s->ups_idx,
	                                   .ups_name = s->ups->name,
	                                   .key = s->up_startup,
	                                   .key_len = s->up_startup_len};
	pw_pool_park(&set_of(s->w)->pool, &s->pool_e, pw_worker_now(s->w));
	pw_debug("pool: parked upstream connection (pid %u) of \"%s\"", s->be_pid, s->ups->name);
	return false;
}

/* A parked connection with the same upstream and the same StartupMessage, taken over by s. */
static bool adopt(struct pw_session *s)
{
	struct pw_session *o = parked_session(
	    pw_pool_find(&set_of(s->w)->pool, s->rt, s->ups_idx, s->up_startup, s->up_startup_len));
	if (!o)
		return false;
	if (s->truth_wanted) {
		/* the session is the parked one's, reset by DISCARD ALL to the same defaults: what
		 * the server said of it then holds now; the catalog must be at hand */
		struct pw_catalog *cat;
		char err[256];
		const char *db = s->ups->database[0] ? s->ups->database : s->database;
		if (!o->ps_ready || pw_catalog_acquire(s->rt, s->ups_idx, db, &cat, err,
		                                       sizeof(err)) != PW_CAT_READY)
			return false;
		pw_policy_session_init(&s->ps, o->truth.path, o->truth.user, o->truth.schemas);
		pw_policy_session_catalog(&s->ps, cat);
		pw_catalog_release(cat);
		s->truth = o->truth;
		s->truth_seen = s->ps_ready = true;
	}
	pool_remove(o);
	s->up.ev.fd = o->up.ev.fd;
	s->up.ssl = o->up.ssl;
	s->up.rd = s->up.wr = true;
	s->up_slot = o->up_slot; /* the connection's slot comes with it */
	o->up_slot = NULL;
	o->up.ev.fd = -1;
	o->up.ssl = NULL;
	if (pw_worker_rewatch(s->w, &s->up.ev) < 0) {
		close(s->up.ev.fd);
		s->up.ev.fd = -1;
		pw_runtime_upstream_put(s->up_slot);
		s->up_slot = NULL;
		session_close(o, "pool: epoll");
		return false;
	}
	s->up_tls = o->up_tls;
	s->cancel = o->cancel;
	pw_preamble_move(&s->pre, &o->pre);
	session_close(o, NULL);
	/* the client sees the start-up the first client saw, with a cancel key of its own */
	if (pw_buf_insert(&s->ubuf, s->pre.data, s->pre.len) < 0) {
		fatal(s, "53200", "pgward: out of memory");
		return true;
	}
	/* s->cancel holds the parked connection's real pid and key */
	rekey(s, pw_buf_at_scan(&s->ubuf) - s->pre.len + s->pre.key_off);
	enter_ready(s, false, 'I');
	pw_debug("session %llu %s: reusing upstream connection (pid %u)",
	         (unsigned long long)s->serial, s->peer, s->be_pid);
	return true;
}

static void upstream_start_tls(struct pw_session *s)
{
	SSL *ssl = SSL_new(s->rt->upstream_tls[s->ups_idx]);
	if (!ssl || SSL_set_fd(ssl, s->up.ev.fd) != 1 || pw_tls_upstream_prepare(ssl, s->ups) < 0) {
		SSL_free(ssl);
		fatal(s, "08001", "pgward: cannot set up TLS to upstream \"%s\"", s->ups->name);
		return;
	}
	s->up.ssl = ssl;
	s->up_tls = true;
	s->state = ST_UP_TLS;
}

/* ------------------------------------------------------------------------------------ */
/* client start-up                                                                       */

static void send_cancel(struct pw_session *s, const struct pw_cancel_target *t);

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
	if (s->cl.ssl) {
		SSL_free(s->cl.ssl);
		s->cl.ssl = NULL;
	}
	close(s->cl.ev.fd);
	s->cl.ev.fd = -1;
	pw_info("session %llu %s: forwarding cancel request for pid %u",
	        (unsigned long long)s->serial, s->peer, pid);
	send_cancel(s, &t);
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

/* Is a statement (or a COPY) running upstream: answers still owed? */
static bool statement_running(const struct pw_session *s)
{
	return pw_relay_busy(&s->relay);
}

/* Did the client's connection end in a reset (the peer is gone, not half-closed)? */
static bool client_reset(const struct pw_session *s)
{
	int e = 0;
	socklen_t l = sizeof(e);
	return s->cl.ev.fd >= 0 && getsockopt(s->cl.ev.fd, SOL_SOCKET, SO_ERROR, &e, &l) == 0 &&
	       (e == ECONNRESET || e == EPIPE || e == ETIMEDOUT);
}

/* The client of s is gone (its connection reset) while its statement runs: cancel it from a
 * session of its own, and close s now (its upstream connection with it; a just-in-time role's
 * backend is ended by the janitor), rather than let the statement run on unwatched. */
static void client_gone(struct pw_session *s)
{
	struct pw_session *c = s->cancel.pid ? session_new(s->w) : NULL;
	if (c) {
		c->rt = pw_runtime_ref(s->rt);
		snprintf(c->peer, sizeof(c->peer), "%s", s->peer);
		send_cancel(c, &s->cancel);
	}
	pw_info("session %llu %s: the client is gone with a statement running: cancelled, "
	        "upstream closed",
	        (unsigned long long)s->serial, s->peer);
	session_close(s, "client gone mid-statement");
}

/* The address a steered client dialled, as the kernel recorded it. */
static void dialled_addr(const struct pw_session *s, struct sockaddr_storage *dst)
{
	memset(dst, 0, sizeof(*dst));
	if (s->kf->info.family == AF_INET) {
		struct sockaddr_in *a = (void *)dst;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = s->kf->info.orig_addr[0];
		a->sin_port = s->kf->info.orig_port;
	} else {
		struct sockaddr_in6 *a = (void *)dst;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, s->kf->info.orig_addr, 16);
		a->sin6_port = s->kf->info.orig_port;
	}
}

/* The client is who it claims: admit it (admit.h), then log in upstream. */
static void after_client_auth(struct pw_session *s)
{
	const struct pw_config *cfg = s->rt->cfg;
	struct sockaddr_storage dst;
	struct pw_deny why;
	char who[1024] = "";

	if (s->steered)
		dialled_addr(s, &dst);
	s->ups_idx =
	    pw_admit_upstream(cfg, s->id, s->steered ? (struct sockaddr *)&dst : NULL, &why);
	if (s->ups_idx < 0) {
		fatal(s, why.sqlstate, "%s", why.message);
		return;
	}
	s->ups = &cfg->upstreams[s->ups_idx];
	if (s->steered)
		pw_caller_describe(s->kf, who, sizeof(who));
	pw_info("session %llu %s: user=%s database=%s identity=%s upstream=%s%s%s%s%s",
	        (unsigned long long)s->serial, s->peer, PW_Q(s->user), PW_Q(s->database),
	        s->id->name, s->ups->name, s->claims ? " sub=" : "",
	        s->claims ? PW_Q(s->claims->sub) : "", who[0] ? " caller: " : "", who);

	struct pw_admission a;
	int rc = pw_admit_session(cfg, s->id, s->ups, s->ups_idx, &s->st, s->database, s->serial,
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
	if (build_upstream_startup(s) < 0) {
		fatal(s, "08P01", "pgward: startup packet too large for the upstream");
		return;
	}
	if (s->ups->reuse_connections && !s->role[0] && adopt(s))
		return;
	upstream_connect(s);
}

/* A complete StartupMessage is in s->startup: who is this, and how do they prove it? */
static void handle_startup_message(struct pw_session *s)
{
	struct pw_client_hello h;
	struct pw_deny why;
	if (pw_client_hello(s->startup, s->startup_len, &h, &why) < 0) {
		fatal(s, why.sqlstate, "%s", why.message);
		return;
	}
	s->st = h.st;
	s->user = h.user;
	s->database = h.database;
	const struct pw_config *cfg = s->rt->cfg;
	const char *app = h.application_name;
	char who[1024] = "";
	if (s->steered) {
		if (s->kernel_miss) {
			/* steered, yet the kernel has no record: never guess who this is */
			fatal(s, "28000",
			      "pgward: connection not identified by the kernel (no record for "
			      "%s)",
			      s->peer);
			return;
		}
		pw_caller_describe(s->kf, who, sizeof(who));
		s->id = pw_config_match_facts(cfg, s->user, s->database, app, &s->kf->view);
	} else {
		s->id = pw_config_match(cfg, s->user, s->database, app);
	}
	if (!s->id) {
		fatal(s, "28000",
		      "pgward: no identity matches user \"%s\", database \"%s\", "
		      "application_name \"%s\"%s%s",
		      s->user, s->database, app ? app : "", who[0] ? "; caller: " : "", who);
		return;
	}
	if (s->id->auth == PW_CLIENT_AUTH_TRUST) {
		after_client_auth(s);
		return;
	}
	if (s->id->auth == PW_CLIENT_AUTH_JWT) {
		/* the token is a bearer secret: never over a network in clear text */
		if (!s->cl.ssl && !s->peer_local) {
			fatal(s, "28000",
			      "pgward: identity %s authenticates with a token, which needs an SSL "
			      "connection",
			      s->id->name);
			return;
		}
		if (pw_msg_auth(&s->ubuf, PW_AUTH_REQ_CLEARTEXT, NULL, 0) < 0) {
			session_close(s, "oom");
			return;
		}
		s->state = ST_TOKEN;
		return;
	}
	static const char mech[] = "SCRAM-SHA-256\0"; /* list ends with an empty name */
	if (pw_msg_auth(&s->ubuf, PW_AUTH_REQ_SASL, mech, sizeof(mech)) < 0) {
		session_close(s, "oom");
		return;
	}
	s->state = ST_SASL_INIT;
}

/* An encryption request: answered S (TLS follows) or N. False when the session was closed. */
static bool answer_encryption(struct pw_session *s, bool ssl)
{
	struct pw_buf *b = &s->cbuf;
	pw_buf_cut(b, 8);
	bool yes = ssl && s->rt->client_tls;
	if (yes && pw_buf_unscanned(b) > 0) {
		/* bytes that arrived before the handshake could be injected by a man in the
		 * middle; PostgreSQL refuses them too (CVE-2021-23214) */
		fatal(s, "08P01", "received unencrypted data after SSL request");
		return false;
	}
	uint8_t ans = yes ? 'S' : 'N';
	if (send(s->cl.ev.fd, &ans, 1, MSG_NOSIGNAL) != 1) {
		session_close(s, "cannot answer SSL request");
		return false;
	}
	if (yes) {
		s->cl.ssl = SSL_new(s->rt->client_tls);
		if (!s->cl.ssl || SSL_set_fd(s->cl.ssl, s->cl.ev.fd) != 1) {
			session_close(s, "SSL_new");
			return false;
		}
		s->state = ST_CLIENT_TLS;
	}
	return true;
}

/* The client's first packets (client_login.h). Returns true when something was consumed
 * (the caller loops). */
static bool client_startup_step(struct pw_session *s)
{
	struct pw_buf *b = &s->cbuf;
	struct pw_client_packet pk;
	struct pw_deny why;
	pw_client_packet(b, (uint32_t)s->rt->cfg->max_startup_bytes, s->cl.ssl != NULL, &pk, &why);
	switch (pk.kind) {
	case PW_CP_MORE:
		return false;
	case PW_CP_FAIL:
		fatal(s, why.sqlstate, "%s", why.message);
		return false;
	case PW_CP_SSL:
	case PW_CP_GSS:
		return answer_encryption(s, pk.kind == PW_CP_SSL);
	case PW_CP_CANCEL:
		start_cancel(s, pk.pid, pk.key);
		return false;
	case PW_CP_STARTUP:
		break;
	}
	s->startup = malloc(pk.len);
	if (!s->startup) {
		session_close(s, "oom");
		return false;
	}
	memcpy(s->startup, pw_buf_at_scan(b), pk.len);
	s->startup_len = pk.len;
	pw_buf_cut(b, pk.len);
	handle_startup_message(s);
	return true;
}

/* The client's next authentication message: its body, or NULL (incomplete, or refused and
 * the session failed). */
static const uint8_t *client_auth_message(struct pw_session *s, const char *what, uint32_t min,
                                          uint32_t max, bool token, size_t *blen)
{
	struct pw_deny why;
	const uint8_t *body =
	    pw_client_auth_message(&s->cbuf, what, min, max, token, s->user, blen, &why);
	if (!body && why.sqlstate[0]) {
		if (strcmp(why.sqlstate, "53200") && *blen)
			pw_info("session %llu %s: %s of %zu bytes refused",
			        (unsigned long long)s->serial, s->peer, what, *blen);
		fatal(s, why.sqlstate, "%s", why.message);
	}
	return body;
}

/* The client's PasswordMessage carrying its token. */
static bool client_token_step(struct pw_session *s)
{
	const struct pw_config *cfg = s->rt->cfg;
	size_t blen = 0;
	/* too short or too long to be a token: refused like a bad one */
	const uint8_t *body =
	    client_auth_message(s, "password response", 5, PW_JWT_MAX_TOKEN + 5, true, &blen);
	if (!body)
		return false;
	char detail[256];
	struct pw_deny why;
	s->claims = calloc(1, sizeof(*s->claims));
	if (!s->claims) {
		session_close(s, "oom");
		return false;
	}
	int rc = pw_client_token(cfg, body, blen, s->user, time(NULL), s->claims, &why, detail,
	                         sizeof(detail));
	/* a bearer token: no copy left behind */
	explicit_bzero((uint8_t *)pw_buf_at_scan(&s->cbuf), blen + PW_HDR);
	pw_buf_cut(&s->cbuf, blen + PW_HDR);
	if (rc < 0) {
		pw_info("session %llu %s: token refused for identity %s: %s",
		        (unsigned long long)s->serial, s->peer, s->id->name, PW_Q(detail));
		fatal(s, why.sqlstate, "%s", why.message);
		return false;
	}
	/* the claims may pick a later identity; only token identities match from here */
	const char *app = pw_startup_get(&s->st, "application_name");
	const struct pw_identity *id =
	    pw_config_match_ex(cfg, (int)(s->id - cfg->identities), s->user, s->database, app,
	                       s->steered && s->kf ? &s->kf->view : NULL, s->claims);
	if (!id) {
		pw_info("session %llu %s: no identity matches the token of sub %s",
		        (unsigned long long)s->serial, s->peer, PW_Q(s->claims->sub));
		fatal(s, "28000", "pgward: token authentication failed for user \"%s\"", s->user);
		return false;
	}
	s->id = id;
	after_client_auth(s); /* the upstream's AuthenticationOk will be the client's */
	return false;
}

/* SASLInitialResponse / SASLResponse from the client. */
static bool client_sasl_step(struct pw_session *s)
{
	size_t blen = 0;
	const uint8_t *body =
	    client_auth_message(s, "SASL response", 4, AUTH_MSG_MAX, false, &blen);
	if (!body)
		return false;
	char out[PW_SCRAM_MSG_MAX], detail[256];
	size_t outlen = 0;
	struct pw_deny why;
	bool initial = s->state == ST_SASL_INIT;
	int rc = pw_client_sasl(&s->scram_s, &s->id->verifier, initial, body, blen, s->user, out,
	                        sizeof(out), &outlen, &why, detail, sizeof(detail));
	pw_buf_cut(&s->cbuf, blen + PW_HDR);
	if (rc < 0) {
		if (!strcmp(why.sqlstate, "28P01"))
			pw_info("session %llu %s: password authentication failed for user %s: %s",
			        (unsigned long long)s->serial, s->peer, PW_Q(s->user),
			        PW_Q(detail));
		else if (detail[0])
			pw_info("session %llu %s: SASL exchange failed: %s",
			        (unsigned long long)s->serial, s->peer, PW_Q(detail));
		fatal(s, why.sqlstate, "%s", why.message);
		return false;
	}
	if (initial) {
		pw_msg_auth(&s->ubuf, PW_AUTH_REQ_SASL_CONT, out, outlen);
		s->state = ST_SASL_CONT;
		return true;
	}
	pw_msg_auth(&s->ubuf, PW_AUTH_REQ_SASL_FIN, out, outlen);
	after_client_auth(s);
	return true;
}

/* ------------------------------------------------------------------------------------ */
/* upstream authentication                                                               */

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

/* Give the client a cancel key of its own for s->cancel (pid, real key), written into the
 * BackendKeyData at msg. */
static void rekey(struct pw_session *s, uint8_t *msg)
{
	if (s->key_registered)
		pw_cancel_unregister(s->be_pid, s->our_key);
	s->be_pid = s->cancel.pid;
	s->our_key = pw_cancel_register(&s->cancel);
	s->key_registered = true;
	pw_put_be32(msg + 9, s->our_key);
}

static void register_cancel_key(struct pw_session *s, uint8_t *msg)
{
	/* msg is a BackendKeyData as the upstream sent it: remember its real key, register a
	 * key of our own, and put that in the message the client will see */
	s->cancel.pid = pw_be32(msg + 5);
	s->cancel.real_key = pw_be32(msg + 9);
	rekey(s, msg);
}
/* One authentication exchange message from the upstream. Returns true when consumed. */
static bool upstream_auth_step(struct pw_session *s)
{
	struct pw_buf *b = &s->ubuf;
	uint32_t len;
	bool bad;
	uint8_t *p = upstream_small_message(s, &len, &bad);
	if (bad)
		upstream_fail(s, "invalid message length %u during authentication", len);
	if (!p)
		return false;
	const uint8_t *body = p + PW_HDR;
	size_t blen = len - 4;
	const struct pw_upstream *u = s->ups;

	switch (p[0]) {
	case 'E': {
		/* the server's own FATAL (wrong database, too many connections...): the client
		 * gets it as it is, the log says which upstream */
		const char *m = pw_error_field(body, blen, 'M');
		pw_warn("session %llu %s: upstream \"%s\" refused the login: %s",
		        (unsigned long long)s->serial, s->peer, u->name, PW_Q(m));
		pw_buf_advance(b, (size_t)len + 1);
		pw_buf_truncate(b);
		s->state = ST_CLOSING;
		return false;
	}
	case 'v': /* NegotiateProtocolVersion: the client must see it */
	case 'N':
		pw_buf_advance(b, (size_t)len + 1);
		return true;
	case 'R':
		break;
	default:
		upstream_fail(s, "unexpected message type '%c' during authentication", p[0]);
		return false;
	}
	uint8_t out[PW_LOGIN_MSG_MAX];
	char err[256];
	size_t outlen;
	if (!s->login_started) {
		pw_login_init(&s->login, u, s->up_tls);
		s->login_started = true;
	}
	switch (pw_login_step(&s->login, body, blen, out, sizeof(out), &outlen, err, sizeof(err))) {
	case PW_LOGIN_AUTHED:
		/* forwarded as it is: from here the upstream's bytes go to the client */
		pw_buf_advance(b, (size_t)len + 1);
		if (u->reuse_connections && !s->role[0])
			pw_preamble_begin(&s->pre, p, (size_t)len + 1);
		if (s->setup_sql) {
			s->state = ST_UP_SETUP; /* the client waits until the set-up is done */
			return true;
		}
		/* the ReadyForQuery that ends the start-up goes through the relay */
		enter_ready(s, true, 'I');
		return true;
	case PW_LOGIN_SEND:
		pw_buf_cut(b, (size_t)len + 1);
		return !outlen || pw_msg_raw(&s->cbuf, 'p', out, outlen) == 0;
	default:
		upstream_fail(s, "%s", err);
		return false;
	}
}

/* ------------------------------------------------------------------------------------ */
/* what the server reports, and the role set-up                                          */

/* A ParameterStatus from the upstream (upstream_setup.h): server_version is kept (the probe
 * of a client that may be gone); one the session cannot go on with ends it. */
static bool param_check(struct pw_session *s, const uint8_t *body, size_t len)
{
	const char *name, *val;
	struct pw_deny why;
	if (pw_setup_param(body, len, &name, &val, &why) < 0 ||
	    pw_setup_param_judge(s->rt->cfg, s->id, s->role, s->state == ST_READY, name, val,
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
	if (!s->truth_wanted)
		return true;
	if (!s->ps_ready) {
		if (!s->truth_seen) {
			upstream_fail(s,
			              "the session's set-up did not say what its search_path is");
			return false;
		}
		if (pw_policy_session_init(&s->ps, s->truth.path, s->truth.user, s->truth.schemas) <
		    0)
			pw_warn(
			    "session %llu %s: search_path %s does not read: unqualified names are "
			    "left unresolved",
			    (unsigned long long)s->serial, s->peer, PW_Q(s->truth.path));
		s->ps_ready = true;
	}
	struct pw_catalog *cat;
	char err[512];
	const char *db = s->ups->database[0] ? s->ups->database : s->database;
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

/* Logged in: the upstream's start-up messages go to the client, except its ReadyForQuery,
 * which is held while the set-up runs (the client cannot send anything before it); the
 * set-up's own answers are dropped (its last row is read first), and its ReadyForQuery is the
 * one the client gets. */
static bool setup_step(struct pw_session *s)
{
	struct pw_buf *b = &s->ubuf;
	uint32_t len;
	bool bad;
	uint8_t *p = upstream_small_message(s, &len, &bad);
	if (bad)
		upstream_fail(s, "invalid message length %u while setting up the session", len);
	if (!p)
		return false;
	size_t total = (size_t)len + 1;
	switch (p[0]) {
	case 'S':
		if (!param_check(s, p + PW_HDR, len - 4))
			return false;
		pw_preamble_take(&s->pre, p, total);
		pw_buf_advance(b,
		               total); /* is_superuser after SET ROLE is news for the client too */
		return true;
	case 'K':
		if (len != 12) {
			upstream_fail(s, "malformed BackendKeyData");
			return false;
		}
		register_cancel_key(s, p);
		pw_preamble_take(&s->pre, p, total);
		pw_buf_advance(b, total);
		return true;
	case 'N':
		if (s->setup_sent) {
			pw_buf_cut(b, total);
		} else {
			pw_preamble_take(&s->pre, p, total);
			pw_buf_advance(b, total);
		}
		return true;
	case 'C':
	case 'T':
		if (!s->setup_sent)
			break;
		pw_buf_cut(b, total);
		return true;
	case 'D':
		if (!s->setup_sent)
			break;
		if (s->truth_wanted && !s->truth_seen)
			s->truth_seen = pw_setup_truth_row(p + PW_HDR, len - 4, &s->truth);
		pw_buf_cut(b, total);
		return true;
	case 'E':
		if (!s->setup_sent) {
			/* a FATAL right after the login: the client gets it as it is */
			pw_buf_advance(b, total);
			pw_buf_truncate(b);
			s->state = ST_CLOSING;
			return false;
		}
		if (!s->setup_error[0]) {
			const char *m = pw_error_field(p + PW_HDR, len - 4, 'M');
			snprintf(s->setup_error, sizeof(s->setup_error), "%s", m ? m : "?");
		}
		pw_buf_cut(b, total);
		return true;
	case 'Z':
		if (len != 5)
			break;
		if (!s->setup_sent) {
			pw_buf_cut(b, total);
			s->setup_sent = true;
			if (pw_msg_raw(&s->cbuf, 'Q', s->setup_sql, strlen(s->setup_sql) + 1) < 0) {
				fatal(s, "53200", "pgward: out of memory");
				return false;
			}
			return true;
		}
		if (s->setup_error[0]) {
			pw_warn("session %llu %s: identity %s: set-up failed upstream: %s",
			        (unsigned long long)s->serial, s->peer, s->id->name,
			        PW_Q(s->setup_error));
			if (s->role[0])
				fatal(s, "42501",
				      "pgward: cannot set up the session of identity %s as role %s",
				      s->id->name, s->role);
			else
				fatal(s, "08001",
				      "pgward: cannot set up the session of identity %s",
				      s->id->name);
			return false;
		}
		if (!setup_done(s))
			return false; /* the ReadyForQuery stays where it is until the catalog is */
		pw_preamble_take(&s->pre, p, total); /* the ReadyForQuery ends the capture */
		pw_buf_advance(b, total);
		enter_ready(s, false, (char)p[5]);
		pw_debug("session %llu %s: upstream session set up%s%s",
		         (unsigned long long)s->serial, s->peer, s->role[0] ? " as role " : "",
		         s->role);
		return true;
	default:
		break;
	}
	upstream_fail(s, "unexpected message type '%c' while setting up the session", p[0]);
	return false;
}

/* A session waiting for its catalog snapshot: ask again (after a load, or at a tick). */
static void catalog_wait_step(struct pw_session *s)
{
	uint32_t len;
	bool bad;
	uint8_t *p = upstream_small_message(s, &len, &bad);
	if (!p || p[0] != 'Z' || len != 5 || !setup_done(s))
		return;
	pw_preamble_take(&s->pre, p, (size_t)len + 1); /* the ReadyForQuery ends the capture */
	pw_buf_advance(&s->ubuf, (size_t)len + 1);
	enter_ready(s, false, (char)p[5]);
}

/* ------------------------------------------------------------------------------------ */
/* established: the scanners                                                             */

/* A text long enough to stall the loop while it is parsed: judged by an analysis thread with
 * the same function, the session parked until the verdict is back (pw_session_analysed).
 * False when there is no analysis thread (judge it here). */
static bool judge_away(struct pw_session *s, const struct pw_caller *who, const struct pw_stmt *m)
{
	struct pw_analysis_job *j = malloc(sizeof(*j) + m->len);
	if (!j)
		return false;
	memset(j, 0, sizeof(*j));
	j->text = (char *)(j + 1);
	memcpy(j->text, m->body, m->len);
	j->w = s->w;
	j->owner = s;
	j->who = *who;
	j->m = *m;
	/* the same message in the copy: the session's buffer may move meanwhile */
	const char *base = (const char *)m->body;
	j->m.body = (const uint8_t *)j->text;
	j->m.sql = m->sql ? j->text + (m->sql - base) : NULL;
	j->m.name = m->name ? j->text + (m->name - base) : NULL;
	j->m.stmt = m->stmt ? j->text + (m->stmt - base) : NULL;
	if (!pw_analysis_submit(j)) {
		free(j);
		return false;
	}
	s->analysing = true;
	pw_worker_job_out(s->w);
	return true;
}

void pw_session_analysed(struct pw_analysis_job *j)
{
	struct pw_session *s = j->owner;
	s->analysing = false;
	if (s->closed) {
		/* the client went away meanwhile: the verdict has no use; s goes now, or with
		 * the rest of the dead list if it is still on it (closed in this very batch) */
		pw_analysis_free(j);
		if (s->orphan)
			session_free(s);
		return;
	}
	pw_inspect_count(j->m.type, j->v, j->unreadable);
	s->verdict_ready = true;
	s->verdict = j->v;
	s->verdict_d = j->d;
	pw_analysis_free(j);
	run(s);
}

/* Who a message is judged for: the session's identity, names and policy state. */
static struct pw_caller caller_of(struct pw_session *s)
{
	return (struct pw_caller){.cfg = s->rt->cfg,
	                          .identity = s->id,
	                          .user = s->user,
	                          .database = s->database,
	                          .serial = s->serial,
	                          .ps = &s->ps};
}

/* The client side of the relay, and the judging of what it asks about. False when the
 * session was closed. */
static bool relay_client(struct pw_session *s)
{
	struct pw_relay *r = &s->relay;
	if (s->analysing)
		return true; /* parked until the verdict on the message at scan is back */
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_client(r, &s->cbuf);
		if (o == PW_RELAY_REFUSED) {
			pw_info("session %llu %s: denied %c: %s %s", (unsigned long long)s->serial,
			        s->peer, r->stmt.type, r->fail.sqlstate, PW_Q(r->fail.message));
			continue;
		}
		if (o == PW_RELAY_FAIL) {
			fatal(s, r->fail.sqlstate, "%s", r->fail.message);
			return false;
		}
		if (o != PW_RELAY_JUDGE)
			return true; /* more bytes, refusals on their way, or a Terminate held */
		const struct pw_stmt *m = &r->stmt;
		struct pw_caller who = caller_of(s);
		struct pw_deny d;
		enum pw_verdict v;
		if (s->verdict_ready) {
			/* judged by an analysis thread while the session was parked */
			s->verdict_ready = false;
			v = s->verdict;
			d = s->verdict_d;
		} else if (m->type != 'B' && m->type != 'F' &&
		           m->sql_len >= PW_ANALYSIS_AWAY_BYTES && judge_away(s, &who, m)) {
			return true;
		} else {
			v = pw_inspect(&who, m, &d);
		}
		if (v == PW_DENY)
			pw_info("session %llu %s: denied %c: %s %s", (unsigned long long)s->serial,
			        s->peer, m->type, d.sqlstate, PW_Q(d.message));
		if (pw_relay_decide(r, &s->cbuf, v == PW_DENY, &d) == PW_RELAY_FAIL) {
			fatal(s, r->fail.sqlstate, "%s", r->fail.message);
			return false;
		}
	}
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
			register_cancel_key(s, p);
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
/* the pump                                                                              */

static int handshake(struct pw_session *s, struct sock *k, bool server)
{
	ERR_clear_error();
	int r = server ? SSL_accept(k->ssl) : SSL_connect(k->ssl);
	if (r == 1)
		return 1;
	int e = SSL_get_error(k->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		k->rd = false;
		return 0;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		k->wr = false;
		return 0;
	}
	char buf[256];
	pw_tls_error(buf, sizeof(buf));
	if (server) {
		pw_info("session %llu %s: TLS handshake failed: %s", (unsigned long long)s->serial,
		        s->peer, PW_Q(buf));
		session_close(s, "TLS handshake failed");
	} else {
		long v = SSL_get_verify_result(k->ssl);
		upstream_fail(s, "TLS handshake failed: %s%s%s", buf, v != X509_V_OK ? ": " : "",
		              v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
	}
	return -1;
}

/* What one state's step did in a round of run(): nothing that would let another step go on
 * (STILL), something (MOVED: run another round), or the session is closed or parked for
 * good this time (STOP: run returns). */
enum step { STEP_STILL, STEP_MOVED, STEP_STOP };

static enum step moved_if(bool moved)
{
	return moved ? STEP_MOVED : STEP_STILL;
}

static bool in_client_login(const struct pw_session *s)
{
	return s->state == ST_STARTUP || s->state == ST_SASL_INIT || s->state == ST_SASL_CONT ||
	       s->state == ST_TOKEN;
}

/* start-up packet, SASL and token exchanges with the client */
static enum step step_client_login(struct pw_session *s)
{
	bool moved = false;
	if (s->cl.rd) {
		ssize_t r = fill(&s->cl, &s->cbuf);
		if (r < 0) {
			session_close(s, "client went away during start-up");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	while (!s->closed && in_client_login(s)) {
		bool step = s->state == ST_STARTUP ? client_startup_step(s)
		            : s->state == ST_TOKEN ? client_token_step(s)
		                                   : client_sasl_step(s);
		if (!step)
			break;
		moved = true;
	}
	return moved_if(moved);
}

static enum step step_client_tls(struct pw_session *s)
{
	int r = handshake(s, &s->cl, true);
	if (r < 0)
		return STEP_STOP;
	if (r == 0)
		return STEP_STILL;
	s->state = ST_STARTUP;
	s->cl.rd = true;
	return STEP_MOVED;
}

/* the upstream connect is done (or failed): a CancelRequest goes out, or the login begins */
static enum step step_up_connect(struct pw_session *s)
{
	if (!s->up.wr && !s->up.rd)
		return STEP_STILL;
	int err = 0;
	socklen_t el = sizeof(err);
	getsockopt(s->up.ev.fd, SOL_SOCKET, SO_ERROR, &err, &el);
	if (err) {
		if (s->state == ST_CANCEL) {
			session_close(s, "cancel: upstream connect failed");
			return STEP_STOP;
		}
		fatal(s, "08001", "pgward: cannot connect to upstream \"%s\": %s", s->ups->name,
		      strerror(err));
		return STEP_MOVED;
	}
	if (s->state == ST_CANCEL) {
		ssize_t w = send(s->up.ev.fd, s->cancel_pkt, 16, MSG_NOSIGNAL);
		if (w == 16 || (w < 0 && errno != EAGAIN)) {
			session_close(s, "cancel forwarded");
			return STEP_STOP;
		}
		s->up.wr = false;
		return STEP_STILL;
	}
	if (s->cancel.addr.ss_family != AF_UNIX && s->ups->sslmode != PW_SSL_DISABLE) {
		uint8_t req[8];
		pw_put_be32(req, 8);
		pw_put_be32(req + 4, PW_SSL_REQUEST);
		if (send(s->up.ev.fd, req, 8, MSG_NOSIGNAL) != 8) {
			fatal(s, "08001", "pgward: cannot write to upstream \"%s\"", s->ups->name);
			return STEP_MOVED;
		}
		s->state = ST_UP_SSLREQ;
		s->up.rd = true;
	} else {
		upstream_ready_to_login(s);
	}
	return STEP_MOVED;
}

static enum step step_up_sslreq(struct pw_session *s)
{
	if (!s->up.rd)
		return STEP_STILL;
	uint8_t c;
	ssize_t n = recv(s->up.ev.fd, &c, 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		s->up.rd = false;
		return STEP_STILL;
	}
	if (n != 1 || (c != 'S' && c != 'N')) {
		upstream_fail(s, "bad answer to SSL request");
		return STEP_MOVED;
	}
	if (c == 'S') {
		upstream_start_tls(s);
	} else if (s->ups->sslmode >= PW_SSL_REQUIRE) {
		upstream_fail(s, "server does not support SSL, but sslmode is %s",
		              pw_sslmode_name(s->ups->sslmode));
	} else {
		upstream_ready_to_login(s);
	}
	return STEP_MOVED;
}

static enum step step_up_tls(struct pw_session *s)
{
	int r = handshake(s, &s->up, false);
	if (r < 0)
		return STEP_MOVED; /* failed: the FATAL goes out next round */
	if (r == 0)
		return STEP_STILL;
	upstream_ready_to_login(s);
	s->up.rd = s->up.wr = true;
	return STEP_MOVED;
}

/* Read from the upstream, then run step while the session stays in the same state. */
static enum step upstream_steps(struct pw_session *s, bool (*step)(struct pw_session *),
                                const char *lost)
{
	bool moved = false;
	enum state st = s->state;
	if (s->up.rd) {
		ssize_t r = fill(&s->up, &s->ubuf);
		if (r < 0) {
			upstream_fail(s, "%s", lost);
			return STEP_MOVED;
		}
		moved |= r > 0;
	}
	while (!s->closed && s->state == st && step(s))
		moved = true;
	return moved_if(moved || s->state != st);
}

static enum step step_up_auth(struct pw_session *s)
{
	return upstream_steps(s, upstream_auth_step, "connection closed during authentication");
}

static enum step step_up_setup(struct pw_session *s)
{
	return upstream_steps(s, setup_step,
	                      "connection closed while setting up the session's role");
}

static enum step step_catalog_wait(struct pw_session *s)
{
	catalog_wait_step(s);
	return moved_if(s->state == ST_READY);
}

/* Established, after the relay: the ends of either side, a stop. */
static enum step ready_ends(struct pw_session *s, bool moved)
{
	/* after an EOF or Terminate, flush what is decided, then close */
	if ((s->cl.eof || pw_relay_terminated(&s->relay)) && !pw_buf_pending(&s->cbuf) &&
	    !s->up_shut && !s->analysing) {
		if (reusable(s)) {
			park(s);
			return STEP_MOVED;
		}
		/* pass the client's end on and keep relaying: the server answers what it already
		 * has, then closes, as it would for the client itself (a half-closed client still
		 * reads) */
		s->up_shut = true;
		if (!s->up.ssl)
			shutdown(s->up.ev.fd, SHUT_WR);
		else
			SSL_shutdown(s->up.ssl);
		s->deadline_ms = pw_worker_now(s->w) + 10000;
		moved = true;
	}
	if (s->up_shut && s->cl.eof && !pw_relay_terminated(&s->relay) && statement_running(s) &&
	    s->probe_len && !s->probe_sent && !pw_relay_mid_upstream(&s->relay)) {
		/* is the client half-closed, or gone? A client that is gone answers this with a
		 * reset */
		if (pw_buf_insert(&s->ubuf, s->probe, s->probe_len) == 0)
			s->probe_sent = true;
		moved = true;
	}
	if (s->cl.eof && s->cl.hup && statement_running(s) && client_reset(s)) {
		client_gone(s);
		return STEP_STOP;
	}
	if (s->up.eof && !pw_buf_pending(&s->ubuf)) {
		session_close(s, "upstream closed");
		return STEP_STOP;
	}
	if (pw_worker_stopping(s->w) && pw_relay_tx_status(&s->relay) == 'I' &&
	    !pw_relay_busy(&s->relay) && !pw_buf_pending(&s->cbuf) && !pw_buf_unscanned(&s->cbuf) &&
	    !pw_buf_pending(&s->ubuf) && !pw_buf_unscanned(&s->ubuf)) {
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
	if (s->cl.rd && !s->cl.eof && !pw_relay_terminated(&s->relay) && !s->analysing) {
		r = fill(&s->cl, &s->cbuf);
		if (r == IO_ERR) {
			session_close(s, "client read error");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	bool verdict = s->verdict_ready;
	if (pw_buf_unscanned(&s->cbuf) && !relay_client(s))
		return STEP_MOVED;
	/* a verdict from an analysis thread came without any I/O: what it decided is to be
	 * written now */
	moved |= verdict && !s->verdict_ready;
	if (s->up.rd && !s->up.eof) {
		r = fill(&s->up, &s->ubuf);
		if (r == IO_ERR) {
			session_close(s, "upstream read error");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	if (pw_buf_unscanned(&s->ubuf) && !relay_upstream(s))
		return STEP_MOVED;
	return ready_ends(s, moved);
}

static enum step step_pool_reset(struct pw_session *s)
{
	bool moved = false;
	if (s->up.rd) {
		ssize_t r = fill(&s->up, &s->ubuf);
		if (r < 0) {
			session_close(s, "pool: upstream closed during reset");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	while (!s->closed && s->state == ST_POOL_RESET && pool_reset_step(s))
		moved = true;
	return moved_if(moved);
}

static enum step step_pool_idle(struct pw_session *s)
{
	/* a parked connection has nothing to say: a FATAL from an administrator, or EOF.
	 * Either way it is done. */
	if (s->up.rd && fill(&s->up, &s->ubuf) != IO_WOULDBLOCK) {
		session_close(s, "pool: parked upstream connection ended");
		return STEP_STOP;
	}
	return STEP_STILL;
}

/* Each state's step (ST_CLOSING has none: run only flushes it). */
static enum step (*const steps[])(struct pw_session *) = {
    [ST_STARTUP] = step_client_login,      [ST_CLIENT_TLS] = step_client_tls,
    [ST_SASL_INIT] = step_client_login,    [ST_SASL_CONT] = step_client_login,
    [ST_TOKEN] = step_client_login,        [ST_UP_CONNECT] = step_up_connect,
    [ST_UP_SSLREQ] = step_up_sslreq,       [ST_UP_TLS] = step_up_tls,
    [ST_UP_AUTH] = step_up_auth,           [ST_UP_SETUP] = step_up_setup,
    [ST_CATALOG_WAIT] = step_catalog_wait, [ST_READY] = step_ready,
    [ST_CANCEL] = step_up_connect,         [ST_POOL_RESET] = step_pool_reset,
    [ST_POOL_IDLE] = step_pool_idle,
};

/* Writes first (they free buffer space). STOP when the session is done with for now. */
static enum step step_writes(struct pw_session *s, bool *moved)
{
	ssize_t r;
	if (s->cl.ev.fd >= 0 && s->cl.wr && pw_buf_pending(&s->ubuf) && s->state != ST_CLIENT_TLS) {
		r = drain(&s->cl, &s->ubuf);
		if (r == IO_ERR) {
			if (s->state == ST_READY && statement_running(s))
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
	if (s->up.ev.fd >= 0 && s->up.wr && pw_buf_pending(&s->cbuf) && s->state >= ST_UP_AUTH &&
	    s->state != ST_CANCEL) {
		r = drain(&s->up, &s->cbuf);
		if (r == IO_ERR) {
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
	struct sock *k = ev == &s->cl.ev ? &s->cl : &s->up;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		k->rd = true;
	if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
		k->hup = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		k->wr = true;
	if (k->ssl) /* TLS reads can need writes and the other way round */
		k->rd = k->wr = true;
	run(s);
}

static void session_tick(struct pw_session *s)
{
	if (s->closed)
		return;
	if ((s->state == ST_POOL_IDLE || s->state == ST_POOL_RESET) &&
	    (pw_worker_stopping(s->w) || pw_worker_now(s->w) > s->deadline_ms)) {
		session_close(s, "pool: idle timeout");
		return;
	}
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
		else if (s->state >= ST_UP_CONNECT)
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
	if (s->state == ST_READY || s->state < ST_UP_CONNECT) {
		fatal(s, "57P01", "%s", why);
		run(s);
	}
	session_close(s, why);
}

/* ---- the loop's hooks ---------------------------------------------------------------- */

static void *sessions_start(struct pw_worker *w)
{
	(void)w;
	return calloc(1, sizeof(struct session_set));
}

static bool sessions_after_batch(struct pw_worker *w)
{
	run_ready(set_of(w));
	reap(set_of(w));
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
}

static int sessions_live(struct pw_worker *w)
{
	return set_of(w)->n_live;
}

static void sessions_end(struct pw_worker *w)
{
	reap(set_of(w));
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
