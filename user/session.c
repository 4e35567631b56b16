/* The session: a client connection, its upstream connection, and the driver over the phases
 * between them. Each phase has its own state and file and returns an outcome; only this file
 * fails or closes a session:
 *   opening.h   from the client's first packet to the established relay (client_login.h,
 *               admit.h, pool.h, upstream_phase.h in turn);
 *   relay.h     established: both directions scanned, forwarded by range (nothing is copied
 *               or re-encoded); judge.h decides what the relay stops at;
 *   pool.h      the upstream connection of a client that left, kept for the next one.
 * The worker's loop (loop.h) reaches sessions through the hooks at the end. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgward/analysis.h"
#include "pgward/approval.h"
#include "pgward/metrics.h"
#include "pgward/audit.h"
#include "pgward/audit_session.h"
#include "pgward/evidence.h"
#include "pgward/buf.h"
#include "pgward/cancel.h"
#include "pgward/inspect.h"
#include "pgward/judge.h"
#include "pgward/log.h"
#include "pgward/opening.h"
#include "pgward/pool.h"
#include "pgward/proto.h"
#include "pgward/relay.h"
#include "pgward/mask_session.h"
#include "pgward/runtime.h"
#include "pgward/session.h"
#include "pgward/sock.h"
#include "pgward/upstream_conn.h"

#include "session_int.h"

#define BUF_SIZE (64 * 1024)

static uint64_t serial_counter; /* atomic */
/* sessions freed so far, all workers (atomic): the main thread gives memory back after bursts */
static uint64_t freed_counter;

uint64_t pw_session_freed(void)
{
	return __atomic_load_n(&freed_counter, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------------------ */
/* life cycle                                                                            */

/* The session's client bytes since the last count, into the metrics. */
static void count_bytes(struct pw_session *s)
{
	pw_metric_add(PW_M_BYTES_FROM_CLIENTS, (int64_t)(s->cl.bytes_in - s->told_in));
	pw_metric_add(PW_M_BYTES_TO_CLIENTS, (int64_t)(s->cl.bytes_out - s->told_out));
	s->told_in = s->cl.bytes_in;
	s->told_out = s->cl.bytes_out;
}

static void session_close(struct pw_session *s, const char *why)
{
	if (s->closed)
		return;
	s->closed = true;
	if (s->judge.held) /* its client is gone, or an operator ended it: nobody waits */
		pw_approval_withdraw(s->judge.approval, false, why ? why : "the session ended");
	count_bytes(s);
	if (why)
		pw_debug("session %llu %s: closed: %s", (unsigned long long)s->serial, s->peer,
		         PW_Q(why));
	pw_evidence_end(&s->ev, &s->op, &s->cl, why, pw_worker_now(s->w));
	pw_sock_close(&s->cl, true);
	pw_sock_close(&s->up, true);
	pw_opening_end(&s->op);
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
	pw_opening_free(&s->op);
	pw_mask_session_free(s->mask);
	pw_buf_free(&s->mstage);
	pw_evidence_free(&s->ev);
	pw_judge_free(&s->judge);
	pw_metric_add(PW_M_SESSIONS_LIVE, -1);
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
	pw_evidence_fatal(&s->ev, &s->op, s->state == ST_OPENING, sqlstate, msg);
	if (s->state == ST_OPENING)
		pw_metric_add(PW_M_SESSIONS_REFUSED, 1);
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
	pw_opening_upstream_gone(&s->op);
	/* a client that never reads it is closed at the deadline */
	if (s->state == ST_OPENING)
		s->deadline_ms = s->op.deadline_ms;
	else if (!s->deadline_ms)
		s->deadline_ms = pw_worker_now(s->w) + 10000;
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
	pw_relay_start(&s->relay, &lim, rfq_pending, tx, s->op.ups->reuse_connections);
	pw_relay_each_upstream(&s->relay, s->op.pre.capturing);
	s->state = ST_READY;
	s->deadline_ms = 0;
	if (s->op.client.id->policy.has_masks) {
		struct pw_mask_scope sc = {.cfg = cfg, .id = s->op.client.id, .ps = &s->op.ps};
		if (!(s->mask = pw_mask_session_new(&sc)) ||
		    pw_buf_init(&s->mstage, BUF_SIZE) < 0) {
			fatal(s, "53200", "pgward: out of memory");
			return;
		}
		pw_relay_masking(&s->relay, true);
		/* rewritten rows grow a batch: keep that room rather than give it back and
		 * take it again at every batch */
		pw_buf_keep(&s->ubuf, 4 * BUF_SIZE);
	}
	pw_metric_identity(s->op.client.id->name, PW_IM_SESSIONS);
	if (pw_evidence_start(&s->ev, &s->op, &s->cl, &s->cbuf, &s->ubuf, &s->relay,
	                      pw_worker_now(s->w)) < 0)
		fatal(s, "53200", "pgward: out of memory");
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
	clock_gettime(CLOCK_REALTIME, &s->started);
	pw_metric_add(PW_M_SESSIONS_LIVE, 1);
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
	if (peer->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	struct pw_opening_io io = {.cl = &s->cl,
	                           .up = &s->up,
	                           .cbuf = &s->cbuf,
	                           .ubuf = &s->ubuf,
	                           .w = w,
	                           .pool = &set_of(w)->pool,
	                           .rt = s->rt,
	                           .serial = s->serial,
	                           .peer = s->peer};
	pw_metric_add(PW_M_SESSIONS_TOTAL, 1);
	pw_opening_start(&s->op, &io, peer, steered);
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

/* s (with no client) becomes the CancelRequest for t on a connection of its own. */
static void send_cancel(struct pw_session *s, const struct pw_cancel_target *t)
{
	int fd = pw_upstream_open((const struct sockaddr *)&t->addr, t->addrlen,
	                          pw_upstream_mark(s->rt->cfg));
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
	if (pw_cancel_lookup(pid, key, &t) == 0 && pw_approval_cancel_session(t.session))
		/* its statement waits for approval: withdrawn, the client gets 57014; the cancel
		 * still goes on, for what its session may run before that statement */
		pw_info("session %llu %s: cancel request withdrew the approval request of session "
		        "%llu",
		        (unsigned long long)s->serial, s->peer, (unsigned long long)t.session);
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
	struct pw_session *c = s->op.key.t.pid ? session_new(s->w) : NULL;
	if (c) {
		c->rt = pw_runtime_ref(s->rt);
		snprintf(c->peer, sizeof(c->peer), "%s", s->peer);
		send_cancel(c, &s->op.key.t);
	}
	pw_info("session %llu %s: the client is gone with a statement running: cancelled, "
	        "upstream closed",
	        (unsigned long long)s->serial, s->peer);
	session_close(s, "client gone mid-statement");
}

/* Can the upstream connection outlive this client? Only at a clean boundary: nothing in
 * flight either way, outside any transaction, start-up captured. */
static bool reusable(const struct pw_session *s)
{
	return s->state == ST_READY && !pw_judge_parked(&s->judge) && !s->judge.ready &&
	       pw_relay_quiet(&s->relay) && !s->up.eof && s->up.ev.fd >= 0 &&
	       !pw_buf_pending(&s->cbuf) && !pw_worker_stopping(s->w) &&
	       pw_opening_reusable(&s->op);
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
	                          .identity = s->op.client.id,
	                          .user = s->op.client.user,
	                          .database = s->op.client.database,
	                          .serial = s->serial,
	                          .ps = &s->op.ps,
	                          .mask = s->mask,
	                          .audit = s->ev.audit,
	                          .client = s->peer,
	                          .kf = s->op.kf,
	                          .worker = pw_worker_index(s->w),
	                          .client_fd = s->cl.ev.fd};
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

/* Masking: bytes the relay decided since *mark (offset from start) go to the batch. */
static int stage(struct pw_session *s, size_t *mark)
{
	struct pw_buf *b = &s->ubuf;
	size_t at = b->scan - b->start;
	if (at > *mark && pw_buf_append(&s->mstage, b->data + b->start + *mark, at - *mark) < 0)
		return -1;
	*mark = at;
	return 0;
}

/* A masked session's message at scan: its rewritten form (or itself) to the batch. */
static int mask_message(struct pw_session *s, size_t *mark, struct pw_deny *why)
{
	struct pw_relay *r = &s->relay;
	const uint8_t *p = pw_buf_at_scan(&s->ubuf), *out = p;
	size_t outlen = r->total;
	int rc = pw_mask_upstream(s->mask, p, r->total, &out, &outlen, why);
	if (rc < 0)
		return -1;
	if (pw_buf_append(&s->mstage, rc ? out : p, rc ? outlen : r->total) < 0)
		return pw_deny_set(why, "53200", "pgward: out of memory");
	pw_relay_pass(r, &s->ubuf);
	*mark = s->ubuf.scan - s->ubuf.start;
	return 0;
}

/* The upstream side of the relay: what the server says of the session is checked and
 * remembered here. A masked session's messages are rewritten as a batch: every whole message
 * read is staged (rewritten or as it is) and the batch put back in one piece, so that a
 * message changing length costs its own bytes only; on a failure the batch is dropped, never
 * sent. False when the session was closed. */
static bool relay_upstream(struct pw_session *s)
{
	struct pw_relay *r = &s->relay;
	struct pw_buf *b = &s->ubuf;
	size_t from = b->scan - b->start, mark = from; /* offsets: the buffer may move */
	struct pw_deny why;
	if (s->mask)
		pw_buf_clear(&s->mstage);
	for (;;) {
		enum pw_relay_outcome o = pw_relay_scan_upstream(r, b);
		uint8_t *p = pw_buf_at_scan(b);
		if (s->mask && o != PW_RELAY_FAIL && stage(s, &mark) < 0) {
			pw_deny_set(&why, "53200", "pgward: out of memory");
			o = PW_RELAY_FAIL;
			r->fail = (struct pw_deny){.sqlstate = "53200"};
			snprintf(r->fail.message, sizeof(r->fail.message), "%s", why.message);
		}
		switch (o) {
		case PW_RELAY_FAIL:
			if (s->mask)
				b->scan = b->start + from; /* the batch is not sent */
			fatal(s, r->fail.sqlstate, "%s", r->fail.message);
			return false;
		case PW_RELAY_UP_BIG:
			/* start-up messages are small: one that is not is passed on as any other,
			 * and this connection is not kept for reuse */
			pw_opening_not_reusable(&s->op);
			continue;
		case PW_RELAY_UP_NOTE:
			pw_audit_on_upstream(s->ev.audit, p, r->total);
			pw_relay_pass(r, b);
			continue;
		case PW_RELAY_UP_REFUSAL:
			pw_audit_on_refusal_back(s->ev.audit);
			continue;
		case PW_RELAY_UP_MASK:
			pw_audit_on_upstream(s->ev.audit, p, r->total);
			if (mask_message(s, &mark, &why) < 0) {
				b->scan = b->start + from;
				fatal(s, why.sqlstate, "%s", why.message);
				return false;
			}
			continue;
		case PW_RELAY_UP_PARAM:
		case PW_RELAY_UP_KEY:
		case PW_RELAY_UP_MSG:
			pw_audit_on_upstream(s->ev.audit, p, r->total);
			break;
		default:
			if (s->mask && pw_buf_redo(b, b->start + from, pw_buf_at_scan(&s->mstage),
			                           pw_buf_unscanned(&s->mstage)) < 0) {
				b->scan = b->start + from;
				fatal(s, "53200", "pgward: out of memory");
				return false;
			}
			pw_buf_clear(&s->mstage);
			if (s->mask && s->mstage.cap > 16 * BUF_SIZE)
				pw_buf_settle(&s->mstage); /* a big batch's room goes back */
			return true;
		}
		if (pw_opening_after(&s->op, p, r->total, &why) < 0) {
			if (s->mask)
				b->scan = b->start + from;
			fatal(s, why.sqlstate, "%s", why.message);
			return false;
		}
		pw_relay_each_upstream(r, s->op.pre.capturing);
		pw_relay_pass(r, b);
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

/* From the client's first packet to the relay (opening.h). */
static enum step step_opening(struct pw_session *s)
{
	struct pw_opening *op = &s->op;
	switch (pw_opening_step(op)) {
	case PW_OPEN_STILL:
		return STEP_STILL;
	case PW_OPEN_MOVED:
		return STEP_MOVED;
	case PW_OPEN_READY:
		enter_ready(s, op->rfq_pending, op->tx);
		return STEP_MOVED;
	case PW_OPEN_CANCEL:
		start_cancel(s, op->cancel_pid, op->cancel_key);
		return s->closed ? STEP_STOP : STEP_MOVED;
	case PW_OPEN_FAIL:
		fatal(s, op->fail.sqlstate, "%s", op->fail.message);
		return s->closed ? STEP_STOP : STEP_MOVED;
	case PW_OPEN_FLUSH:
		s->deadline_ms = op->deadline_ms;
		s->state = ST_CLOSING;
		return STEP_MOVED;
	case PW_OPEN_CLOSE:
		break;
	}
	session_close(s, op->close_why);
	return STEP_STOP;
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
	    !s->up_shut && !pw_judge_parked(&s->judge)) {
		if (reusable(s)) {
			pw_opening_park(&s->op);
			session_close(s, "the client left: its upstream connection is parked");
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
	if (s->up_shut && s->cl.eof && !pw_relay_terminated(&s->relay) && running &&
	    s->op.probe_len && !s->probe_sent && !pw_relay_mid_upstream(&s->relay)) {
		/* is the client half-closed, or gone? A client that is gone answers this with a
		 * reset */
		if (pw_buf_insert(&s->ubuf, s->op.probe, s->op.probe_len) == 0)
			s->probe_sent = true;
		moved = true;
	}
	if (s->cl.eof && s->cl.hup && running && pw_sock_reset(&s->cl)) {
		client_gone(s);
		return STEP_STOP;
	}
	if (s->up.eof && !pw_buf_pending(&s->ubuf)) {
		/* after the client's own end was passed on, the server's close is its answer: the
		 * reason is the client's (the trail's session_end and the recording say so) */
		session_close(s, !s->up_shut ? "upstream closed"
		                 : pw_relay_terminated(&s->relay)
		                     ? "the client ended the session"
		                     : "the client closed its connection");
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
	if (s->judge.held && s->cl.hup) {
		/* nothing is read from a held client: its end is seen by the event alone */
		session_close(s, "the client left while its statement waited for approval");
		return STEP_STOP;
	}
	if (s->cl.rd && !s->cl.eof && !pw_relay_terminated(&s->relay) &&
	    !pw_judge_parked(&s->judge)) {
		r = pw_sock_fill(&s->cl, &s->cbuf);
		if (r == PW_IO_ERR) {
			session_close(s, "client read error");
			return STEP_STOP;
		}
		moved |= r > 0;
	}
	bool verdict = s->judge.ready || s->judge.approved_once;
	if (pw_buf_unscanned(&s->cbuf) && !relay_client(s))
		return STEP_MOVED;
	/* a verdict from an analysis thread or a person came without any I/O: what it decided
	 * is to be written now */
	moved |= verdict && !s->judge.ready && !s->judge.approved_once;
	/* a masked session reads a buffer's worth once the client has taken the last one:
	 * its rewritten batch then fits the room kept (pw_buf_keep) without moving or growing
	 * the buffer, and memory stays bounded however many rows come */
	if (s->up.rd && !s->up.eof && (!s->mask || !pw_buf_pending(&s->ubuf))) {
		r = s->mask ? pw_sock_fill_upto(&s->up, &s->ubuf, BUF_SIZE)
		            : pw_sock_fill(&s->up, &s->ubuf);
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
    [ST_OPENING] = step_opening,
    [ST_READY] = step_ready,
    [ST_CANCEL] = step_cancel,
};

/* Writes first (they free buffer space). STOP when the session is done with for now. */
static enum step step_writes(struct pw_session *s, bool *moved)
{
	ssize_t r;
	if (s->cl.ev.fd >= 0 && s->cl.wr && pw_buf_pending(&s->ubuf) &&
	    (s->state != ST_OPENING || pw_opening_client_writable(&s->op))) {
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
	if (s->up.ev.fd >= 0 && s->up.wr && pw_buf_pending(&s->cbuf) && s->state != ST_CANCEL &&
	    (s->state != ST_OPENING || pw_opening_upstream_writable(&s->op))) {
		r = pw_sock_drain(&s->up, &s->cbuf);
		if (r == PW_IO_ERR) {
			fatal(s, "08006", "pgward: connection to upstream \"%s\" lost",
			      s->op.ups->name);
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
		if (s->state == ST_OPENING && pw_opening_waits_catalog(&s->op) && !s->closed)
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
	uint64_t now = pw_worker_now(s->w);
	count_bytes(s);
	if (s->state == ST_READY && s->up_shut && now > s->deadline_ms) {
		session_close(s, "upstream did not close after the client left");
		return;
	}
	if (s->state == ST_OPENING) {
		if (pw_opening_waits_catalog(&s->op))
			run(s); /* in case a load's wake-up came and went */
		if (!s->closed && s->state == ST_OPENING && now > s->op.deadline_ms) {
			struct pw_deny d;
			pw_opening_timeout(&s->op, &d);
			fatal(s, d.sqlstate, "%s", d.message);
			return;
		}
	} else if (s->deadline_ms && now > s->deadline_ms && s->state != ST_READY) {
		session_close(s, "timeout");
		return;
	}
	if (!s->closed && pw_worker_stopping(s->w))
		run(s); /* an idle session ends now */
}

void pw_session_run(struct pw_session *s)
{
	if (!s->closed)
		run(s);
}

static void session_terminate(struct pw_session *s, const char *why);

void pw_session_end_now(struct pw_session *s, const char *why)
{
	pw_metric_add(PW_M_SESSIONS_KILLED, 1);
	session_terminate(s, why);
}

static void session_terminate(struct pw_session *s, const char *why)
{
	if (s->closed)
		return;
	if (s->state == ST_READY || (s->state == ST_OPENING && pw_opening_client_side(&s->op))) {
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
	pw_metrics_cache_sync();
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
	pw_audit_thread_done();
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
