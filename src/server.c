/*
 * server.c - the data plane: client connections, request intake,
 * classification and decision, the decision-log handshake, and
 * forwarding with failover and streaming (SPEC §1, §3).
 *
 * Threads: N workers, each an event loop that owns its connections
 * outright; nothing here is shared between workers except the immutable
 * snapshot (reference-counted), backend health (atomics) and the
 * decision-log queue. The main thread only handles signals.
 *
 * Lifetimes: a conn owns at most one request at a time. A request that is
 * waiting for the log writer when its client goes away becomes an orphan:
 * the conn is freed, and the request is freed by the writer's callback,
 * which is guaranteed to run exactly once (dlog.h).
 */
#include "server.h"

#include "adapter.h"
#include "buildconf.h"
#include "classify.h"
#include "config.h"
#include "dlog.h"
#include "extract.h"
#include "gauth.h"
#include "health.h"
#include "http.h"
#include "jsonout.h"
#include "mailbox.h"
#include "metrics.h"
#include "admin.h"
#include "policy.h"
#include "snapshot.h"
#include "tlsserver.h"
#include "upstream.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <openssl/ssl.h>
#include <event2/dns.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

/* Upstream bytes waiting for a slow client before we stop reading the
 * upstream (backpressure); reading resumes below half of it. */
#define CLIENT_OUT_HIGH		(256 * 1024)
/* A non-stream answer is kept (up to this) to read its token usage. */
#define USAGE_BODY_MAX		(1024 * 1024)
#define SSE_LINE_MAX		(256 * 1024)
/* A pass-through JSON answer up to this size is validated before the
 * client sees a byte of it. */
#define HOLD_MAX		(8 * 1024 * 1024)
/* Input buffered while a request is in process (pipelining is bounded). */
#define CLIENT_IN_HIGH		(64 * 1024)
/* Access-log lines are written in batches. */
#define ALOG_FLUSH_MS		200
#define ALOG_FLUSH_BYTES	(32 * 1024)

struct worker;
struct request;

enum cstate { C_IDLE, C_HEAD, C_BODY, C_BUSY, C_CLOSING };

struct conn {
	struct worker *w;
	struct bufferevent *bev;
	struct http_parser *hp;
	struct event *timer;
	enum cstate state;
	struct request *req;
	int close_after;	/* close once the answer is written */
	int tls;
	char peer[64];
	struct conn *prev, *next;
	/* Output queued this turn, to write at its end (plain TCP only). */
	struct evbuffer_cb_entry *out_cb;
	int wdirty;
	struct conn *wnext;
};

enum attempt_stage { A_NONE, A_PREPARING, A_CONNECTING, A_WAITING,
	A_STREAMING };

struct attempt {
	const char *backend;	/* name, from the request's snapshot */
	char result[24];	/* ok, connection, timeout, stale_retry, ... */
	int status;
	int64_t ms;		/* -1: no status nor time (a stale retry) */
	char *error;		/* NULL if none */
};

struct request {
	struct conn *c;		/* NULL once the client is gone */
	struct worker *w;
	struct snapshot *snap;
	struct http_head *head;	/* the conn's parser owns it */
	struct evbuffer *body;
	char id[37];
	char path[128];		/* for the access log */
	const struct client_def *client;
	const char *client_name;	/* r->client's, from r->snap */
	enum endpoint ep;
	json_t *json;
	struct request_text text;	/* how the body may be forwarded */
	char *model;
	int stream;
	int declared;		/* level index or -1 */
	int classified;		/* level known */
	struct decision *dec;
	char *shadow_json;	/* the shadow policy's verdict, logged only */
	int logged;		/* a decision row was submitted */
	int usage_done;		/* token usage read from a held answer */
	int log_pending;	/* waiting for the writer's callback */
	int orphan;		/* client gone while log_pending */
	char action[8];

	/* forwarding */
	size_t cand;
	enum attempt_stage stage;
	struct upconn *up;
	struct http_parser *uhp;
	const struct adapter *ad;
	void *ad_st;
	void *prep_handle;	/* adapter credential wait, if any */
	int prepared;
	struct fwd_ctx fctx;
	char *upreq;		/* the built request of this attempt */
	size_t upreq_len;
	int stale_retried;
	int abandon;		/* set by the response head callback */
	struct event *utimer;
	int64_t t_attempt;
	struct attempt *att;	/* every attempt, in order */
	size_t natt, catt;
	int all_timeouts;
	const struct backend *answered;

	/* response to the client */
	int status;
	int resp_started;
	int resp_chunked;
	int resp_close_delimited;
	int throttled;
	int is_sse;
	int ad_ended;		/* resp_end was called */
	int head_deferred;	/* translated answer: head waits for the
				   adapter's first output, so a backend whose
				   answer cannot be translated can still be
				   failed over */
	int up_status;
	struct evbuffer *hold;	/* a pass-through JSON answer, held until it
				   is known to be whole and valid */
	char abandon_why[128];

	/* usage */
	struct evbuffer *usage_body;
	char *sse_line;
	size_t sse_len;
	int sse_overflow;
	int64_t prompt_tokens, completion_tokens, total_tokens;

	int64_t t0, t_first_byte;
	uint64_t bytes_in, bytes_out;
	char error[256];
};

/*
 * A worker's freed objects of one kind, kept for its next requests. Only
 * the worker's thread touches its lists. Under ASan nothing is kept, so
 * that ASan sees every object's lifetime.
 */
#define SPARES_MAX 32
struct spares {
	void *v[SPARES_MAX];
	int n;
};

/* A kept object (its old contents), or NULL. */
static void *
spare_get(struct spares *s)
{
	return !SG_ASAN && s->n > 0 ? s->v[--s->n] : NULL;
}

/* Keeps p, or frees it when the list is full. Takes ownership. */
static void
spare_put(struct spares *s, void *p)
{
	if (!SG_ASAN && p != NULL && s->n < SPARES_MAX)
		s->v[s->n++] = p;
	else
		free(p);
}

static void
spares_free(struct spares *s)
{
	while (s->n > 0)
		free(s->v[--s->n]);
}

struct worker {
	int id;
	int cpu;		/* the CPU it is pinned to, or -1 */
	pthread_t th;
	struct event_base *base;
	struct evdns_base *dns;
	struct evconnlistener *lst;
	evutil_socket_t fd;
	struct mailbox *mb;
	struct scan *scan;
	struct upstream_pool *pool;
	struct adapter_env env;
	struct limits lim;	/* of the latest snapshot this worker saw */
	struct evbuffer *alog;	/* access-log lines waiting to be written */
	/* A response head is written here, then moved to the client's
	 * output in one piece: each write into a bufferevent's output runs
	 * its callbacks (and re-adds its write event), some twenty times
	 * per head. */
	struct evbuffer *headbuf;
	struct event *alog_timer;
	struct dlog_batch *lb;	/* log rows of this loop turn */
	struct conn *wdirty;	/* connections with output queued this turn */
	struct event *turn_ev;	/* end of turn: hands lb over, writes wdirty */
	struct conn *conns;
	int nconns;
	int draining;
	/* Freed decisions and requests kept for the next requests: a
	 * decision (12 KB, 64 verdict slots) and a request (1,072 bytes)
	 * are both over glibc's thread-cache limit, and each malloc of one
	 * went through _int_malloc and consolidated the fast bins, which
	 * the parse tree's nodes had just filled. */
	struct spares dec_spare, req_spare;
};

struct server {
	const char *config_path;
	struct worker *w;
	int nw;
	struct dlog *dlog;
	atomic_int nconns;
	int max_conns;
	struct event_base *main_base;
	struct admin *admin;
	int draining;
	int64_t drain_deadline;
};

static struct server *S;

static void conn_close(struct conn *c, const char *why);
static void conn_next(struct conn *c);
static void conn_read_cb(struct bufferevent *bev, void *arg);
static void request_finish(struct request *r);
static void attempt_next(struct request *r);
static void attempt_connect(struct request *r);
static void utimer_cb(evutil_socket_t fd, short what, void *arg);
static void attempt_failed(struct request *r, const char *result,
    int status, const char *why, int timeout);
static void send_head_to_client(struct request *r, int status,
    const struct http_head *uh);

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void
tv_ms(struct timeval *tv, int64_t ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

static const char *
level_name(const struct request *r)
{
	if (!r->classified || r->snap == NULL || r->dec == NULL ||
	    r->dec->level < 0 || r->dec->level >= r->snap->policy->nlevels)
		return "unclassified";
	return r->snap->policy->levels[r->dec->level];
}

static const struct limits *
req_limits(const struct request *r)
{
	return &r->snap->cfg->limits;
}

static int64_t
backend_timeout(int64_t own, int64_t dflt)
{
	return own > 0 ? own : dflt;
}

/* ------------------------------------------------------------------ */
/* request lifecycle                                                    */

static struct request *
request_new(struct conn *c)
{
	struct request *r = spare_get(&c->w->req_spare);

	if (r != NULL)
		memset(r, 0, sizeof(*r));
	else
		r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->w = c->w;
	r->body = evbuffer_new();
	r->declared = -1;

	r->prompt_tokens = r->completion_tokens = r->total_tokens = -1;
	r->t0 = mono_ms();
	r->t_first_byte = -1;
	r->all_timeouts = 1;
	uuid_v7(r->id);
	return r;
}

static void
request_free(struct request *r)
{
	if (r == NULL)
		return;
	if (r->prep_handle && r->ad && r->ad->cancel)
		r->ad->cancel(r->prep_handle);
	if (r->utimer)
		event_free(r->utimer);
	upstream_close(r->up);
	http_parser_free(r->uhp);
	if (r->ad && r->ad_st && r->ad->resp_free)
		r->ad->resp_free(r->ad_st);
	evbuffer_free(r->body);
	if (r->hold)
		evbuffer_free(r->hold);
	if (r->usage_body)
		evbuffer_free(r->usage_body);
	free(r->sse_line);
	json_decref(r->json);
	for (size_t i = 0; i < r->natt; i++)
		free(r->att[i].error);
	free(r->att);
	free(r->model);
	free(r->upreq);
	free(r->shadow_json);
	snapshot_unref(r->snap);
	spare_put(&r->w->dec_spare, r->dec);
	spare_put(&r->w->req_spare, r);
}

/* ------------------------------------------------------------------ */
/* writing answers                                                      */

static void
write_common_headers(struct request *r, struct evbuffer *out)
{
	http_add_header(out, "X-Sovgate-Decision", r->id);
	http_add_header(out, "X-Sovgate-Level", level_name(r));
	if (r->answered)
		http_add_header(out, "X-Sovgate-Backend", r->answered->name);
}

/* A complete answer with a body we hold. */
static void
respond(struct request *r, int status, const char *ctype, const char *body,
    size_t len)
{
	struct conn *c = r->c;
	struct evbuffer *out;
	int close = c->close_after || c->w->draining ||
	    !r->head || !r->head->keep_alive;

	out = bufferevent_get_output(c->bev);
	http_add_status_line(out, status);
	write_common_headers(r, out);
	http_add_header(out, "Content-Type", ctype);
	http_add_str(out, "Content-Length: ");
	http_add_uint(out, len);
	http_add_str(out, close ? "\r\nConnection: close\r\n\r\n" :
	    "\r\n\r\n");
	evbuffer_add(out, body, len);
	if (close)
		c->close_after = 1;
	r->status = status;
	r->bytes_out += len;
	request_finish(r);
}

static void
respond_error(struct request *r, int status, const char *type,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
respond_error(struct request *r, int status, const char *type,
    const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *o, *e;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->error[0] == '\0')
		snprintf(r->error, sizeof(r->error), "%s: %.200s", code, msg);
	if (r->action[0] == '\0')
		snprintf(r->action, sizeof(r->action), "error");
	e = json_pack("{s:s, s:s, s:s, s:s}", "type", type, "code", code,
	    "message", msg, "decision_id", r->id);
	if (r->classified)
		json_object_set_new(e, "level", json_string(level_name(r)));
	o = json_pack("{s:o}", "error", e);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	respond(r, status, "application/json", s, strlen(s));
	free(s);
}

/* ------------------------------------------------------------------ */
/* the decision log                                                     */

static void
fingerprint(const struct snapshot *s, const struct scan_value *v,
    char out[65])
{
	unsigned char mac[32];

	hmac_sha256(NULL, s->fp_key, sizeof(s->fp_key), v->value, v->len,
	    mac);
	hex_encode(mac, 32, out);
}

static struct dlog_decision *
make_decision_row(struct request *r, const char *action, const char *reason)
{
	struct dlog_decision *d = dlog_decision_new();
	const struct policy *p = r->snap->policy;
	struct scan *sc = r->w->scan;
	size_t i;

	memcpy(d->id, r->id, sizeof(d->id));
	d->ts_ms = now_ms();
	d->client = r->client ? xstrdup(r->client->name) : NULL;
	d->endpoint = xstrdup(endpoint_path(r->ep));
	d->model = r->model ? xstrdup(r->model) : NULL;
	d->findings_json = r->classified ? scan_findings_json(sc) :
	    xstrdup("{}");
	d->declared_level = r->declared >= 0 ?
	    xstrdup(p->levels[r->declared]) : NULL;
	d->level = r->classified ? xstrdup(level_name(r)) : NULL;
	d->level_rule = r->classified ? xstrdup(r->dec->level_rule) : NULL;
	d->policy_name = xstrdup(p->name);
	memcpy(d->policy_sha256, p->sha256, sizeof(d->policy_sha256));
	d->action = xstrdup(action);
	d->shadow_json = r->shadow_json ? xstrdup(r->shadow_json) : NULL;
	d->reason = reason ? xstrdup(reason) : NULL;
	d->candidates_json = r->classified ?
	    decision_candidates_json(r->dec) : xstrdup("[]");
	if (r->classified && !r->dec->deny && r->dec->ncandidates > 0) {
		const struct backend *b = r->dec->candidates[0];

		d->backend = xstrdup(b->name);
		d->backend_facts_json = backend_facts_json(b);
		d->cloud_act = b->cloud_act;
	}
	if (r->classified && r->snap->has_fp_key && sc->nvalues > 0) {
		d->fps = xcalloc(sc->nvalues, sizeof(*d->fps));
		for (i = 0; i < sc->nvalues; i++) {
			d->fps[i].type = xstrdup(sc->values[i].type);
			fingerprint(r->snap, &sc->values[i], d->fps[i].hmac);
		}
		d->nfps = sc->nvalues;
	}
	return d;
}

static void conn_write_cb(struct bufferevent *bev, void *arg);

/*
 * Write a plain-TCP bufferevent's queued bytes now instead of in a later
 * turn. Queuing them made libevent ask epoll for EPOLLOUT, and a later
 * turn wrote them and dropped the interest again: two epoll_ctl calls and
 * one more turn per write, for sockets that are almost always writable.
 * With the worker's epoll change list, deleting the pending write event
 * here cancels the add before it reaches the kernel. What the socket does
 * not take stays with the bufferevent, whose timeouts and watermarks work
 * as before. TLS bufferevents are left alone. 1 if the output is empty.
 */
static int
bev_write_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd;
	int n;

	if (evbuffer_get_length(out) == 0)
		return 1;
	fd = bufferevent_getfd(bev);
	if (fd < 0 || bufferevent_openssl_get_ssl(bev) != NULL)
		return 0;
	/* A socket bufferevent keeps its output's front frozen so that only
	 * its own write drains it; do as that write does. On EAGAIN or an
	 * error the bufferevent's own write sees the rest. */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, fd);
	evbuffer_freeze(out, 1);
	if (n < 0 || evbuffer_get_length(out) > 0)
		return 0;
	event_del(&bev->ev_write);
	return 1;
}

/*
 * The end of a loop turn. Decision and outcome rows, and answers to
 * plain-TCP clients, wait until the other callbacks of the turn have run:
 * turn_ev, activated when there is something to do, goes to the tail of
 * the active queue, behind the turn's other ready connections. Then the
 * rows go to the writer in one hand-over, so that it commits those
 * requests together (alone, it committed one decision per transaction and
 * wrote the same pages to the WAL for each), and the answers are written.
 * A lone request waits for nothing: its turn ends at once.
 */
static void
turn_end(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct conn *c;

	(void)fd;
	(void)what;
	dlog_batch_submit(S->dlog, w->lb);
	while ((c = w->wdirty) != NULL) {
		w->wdirty = c->wnext;
		c->wnext = NULL;
		c->wdirty = 0;
		/* Drained: what the bufferevent's write callback would have
		 * done (it may close c). */
		if (bev_write_now(c->bev))
			conn_write_cb(c->bev, c);
	}
}

/* Activating an active event is a no-op, so this may run many times a
 * turn. */
static void
turn_end_kick(struct worker *w)
{
	event_active(w->turn_ev, 0, 0);
}

/* Bytes were queued on a plain-TCP client connection: write them at the
 * end of this turn. */
static void
client_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn *c = arg;

	(void)buf;
	if (info->n_added == 0 || c->wdirty)
		return;
	c->wdirty = 1;
	c->wnext = c->w->wdirty;
	c->w->wdirty = c;
	turn_end_kick(c->w);
}

static void
conn_unlist_dirty(struct conn *c)
{
	struct conn **pp;

	if (!c->wdirty)
		return;
	for (pp = &c->w->wdirty; *pp; pp = &(*pp)->wnext)
		if (*pp == c) {
			*pp = c->wnext;
			break;
		}
	c->wdirty = 0;
}

static void
noop_logged(void *arg, int ok)
{
	(void)arg;
	(void)ok;
}

/* Bad requests from an authenticated client and denials are logged but
 * not waited for: nothing is forwarded, so there is nothing to hold. */
static void
log_unforwarded(struct request *r, const char *action, const char *reason)
{
	struct dlog_decision *d;

	if (S->dlog == NULL || r->client == NULL)
		return;
	d = make_decision_row(r, action, reason);
	if (dlog_submit_decision(S->dlog, d, r->w->mb, noop_logged, NULL) == 0)
		r->logged = 1;
}

static void
log_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;

	(void)fd;
	(void)what;
	/* The writer will still call back; it then finds the request gone
	 * or answered. Make that visible by marking it orphan-like. */
	log_err("decision %s: log commit took longer than %lld ms; refusing",
	    r->id, (long long)req_limits(r)->log_timeout_ms);
	r->stage = A_NONE;
	snprintf(r->action, sizeof(r->action), "error");
	respond_error(r, 503, "service_unavailable", "decision_log_unavailable",
	    "the decision log could not record this request in time; "
	    "nothing was forwarded");
}

/* A request's one timer: first the wait for its decision row, then the
 * upstream attempts (one event for both; it was freed and made again per
 * request). */
static void
request_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;

	if (r->log_pending)
		log_wait_timeout(fd, what, arg);
	else
		utimer_cb(fd, what, arg);
}

/* What every attempt's adapter sees of the request, set once before the
 * first; attempt_next sets the backend and its model id. */
static void
fctx_init(struct request *r)
{
	memset(&r->fctx, 0, sizeof(r->fctx));
	r->fctx.ep = r->ep;
	r->fctx.body = r->json;
	r->fctx.stream = r->stream;
	r->fctx.client = r->head;
	fwd_ctx_set_text(&r->fctx, (const char *)evbuffer_pullup(r->body, -1),
	    evbuffer_get_length(r->body), &r->text);
}

static void
on_logged(void *arg, int ok)
{
	struct request *r = arg;

	r->log_pending = 0;
	if (r->orphan) {
		request_free(r);
		return;
	}
	if (r->c == NULL || r->c->req != r || r->status != 0)
		return;	/* answered already (timed out) */
	/* From here the timer guards the upstream attempts (log_pending
	 * is 0: request_timer_cb sends it to utimer_cb). */
	evtimer_del(r->utimer);
	if (!ok) {
		metrics_denial("decision_log_unavailable", 1);
		snprintf(r->action, sizeof(r->action), "error");
		respond_error(r, 503, "service_unavailable",
		    "decision_log_unavailable",
		    "the decision log cannot record decisions; nothing was "
		    "forwarded (fail closed)");
		return;
	}
	r->logged = 1;
	fctx_init(r);
	attempt_next(r);
}

/* ------------------------------------------------------------------ */
/* intake: auth, parse, classify, decide                                */

static int
authenticate(struct request *r)
{
	const char *h = http_head_get(r->head, "authorization");
	const char *key;

	if (h == NULL && r->c && r->c->tls) {
		/* No bearer key: a verified client certificate may name the
		 * client (tls.client_ca + clients[].cert_sha256). */
		SSL *ssl = bufferevent_openssl_get_ssl(r->c->bev);
		X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
		unsigned char md[32];
		unsigned int mdlen = sizeof(md);

		if (peer && SSL_get_verify_result(ssl) == X509_V_OK &&
		    X509_digest(peer, EVP_sha256(), md, &mdlen) == 1)
			r->client = config_find_client_by_cert(r->snap->cfg, md);
		if (r->client == NULL)
			return -1;
		r->client_name = r->client->name;
		return 0;
	}
	if (h == NULL || ascii_ncasecmp(h, "Bearer ", 7) != 0)
		return -1;
	key = h + 7;
	while (*key == ' ')
		key++;
	r->client = config_find_client(r->snap->cfg, key, strlen(key));
	if (r->client == NULL)
		return -1;
	r->client_name = r->client->name;
	return 0;
}

static void
handle_models(struct request *r)
{
	const char *m = r->snap->models_json;

	respond(r, 200, "application/json", m, strlen(m));
}

/* The shadow must not take the half-open probe of a real request. */
static int
shadow_is_down(void *ud, const struct backend *b)
{
	(void)ud;
	return health_peek_down(b->name);
}

/* A candidate policy evaluated on live traffic and logged beside the
 * real decision, never enforced. */
static void
decide_shadow(struct request *r, const struct decide_input *in,
    const char *declared)
{
	struct decide_input sin = *in;
	struct decision *sd = xmalloc(sizeof(*sd));	/* policy_decide sets it */

	sin.declared_level = declared ?
	    policy_level_index(r->snap->shadow, declared) : -1;
	if (policy_decide(r->snap->shadow, r->snap->backends, &sin,
	    shadow_is_down, NULL, sd) == 0)
		r->shadow_json = decision_summary_json(r->snap->shadow, sd);
	free(sd);
}

static void
handle_api(struct request *r)
{
	const struct limits *lim = req_limits(r);
	const char *decl;
	json_t *jm, *js;
	char err[256];
	size_t blen = evbuffer_get_length(r->body);
	const char *body = (const char *)evbuffer_pullup(r->body, -1);
	struct decide_input in;
	struct scan *sc = r->w->scan;
	struct dlog_decision *d;
	struct timeval tv;

	r->bytes_in = blen;
	r->json = request_parse_ex(body ? body : "", blen,
	    lim->max_json_depth, &r->text, err, sizeof(err));
	if (r->json == NULL) {
		log_unforwarded(r, "error", err);
		respond_error(r, 400, "invalid_request_error", "invalid_body",
		    "%s", err);
		return;
	}
	jm = json_object_get(r->json, "model");
	if (!json_is_string(jm) || json_string_length(jm) == 0) {
		log_unforwarded(r, "error", "missing or non-string model");
		respond_error(r, 400, "invalid_request_error", "invalid_model",
		    "the request must name a model as a non-empty string in "
		    "\"model\"");
		return;
	}
	r->model = xstrdup(json_string_value(jm));
	js = json_object_get(r->json, "stream");
	r->stream = json_is_true(js);

	decl = http_head_get(r->head, "x-sovgate-classification");
	if (decl != NULL) {
		r->declared = policy_level_index(r->snap->policy, decl);
		if (r->declared < 0) {
			log_unforwarded(r, "error", "unknown declared level");
			respond_error(r, 400, "invalid_request_error",
			    "invalid_classification",
			    "X-Sovgate-Classification '%.64s' is not a level "
			    "of policy '%s'", decl, r->snap->policy->name);
			return;
		}
	}

	scan_reset(sc);
	if (classify_request(r->snap->clf, sc, r->json, r->ep, err,
	    sizeof(err)) < 0) {
		log_unforwarded(r, "error", err);
		respond_error(r, 400, "invalid_request_error", "invalid_body",
		    "%s", err);
		return;
	}
	memset(&in, 0, sizeof(in));
	in.scan = sc;
	in.client = r->client->name;
	in.model = r->model;
	in.declared_level = r->declared;
	/* policy_decide sets it */
	if ((r->dec = spare_get(&r->w->dec_spare)) == NULL)
		r->dec = xmalloc(sizeof(*r->dec));
	if (policy_decide(r->snap->policy, r->snap->backends, &in,
	    health_is_down, NULL, r->dec) < 0) {
		/* Fail closed: no decision, no forwarding. */
		respond_error(r, 503, "service_unavailable", "policy_error",
		    "the policy could not decide this request");
		return;
	}
	r->classified = 1;
	if (r->snap->shadow)
		decide_shadow(r, &in, decl);
	{
		size_t i;

		for (i = 0; i < sc->ntypes; i++)
			metrics_finding(sc->types[i].type, sc->types[i].count);
	}

	if (r->dec->deny) {
		snprintf(r->action, sizeof(r->action), "deny");
		metrics_denial(r->dec->deny_code[0] ? r->dec->deny_code :
		    "no_allowed_backend", 0);
		log_unforwarded(r, "deny", r->dec->reason);
		respond_error(r, 403, "policy_denied", r->dec->deny_code[0] ?
		    r->dec->deny_code : "no_allowed_backend", "%s",
		    r->dec->reason);
		return;
	}
	snprintf(r->action, sizeof(r->action), "allow");
	if (S->dlog == NULL) {
		respond_error(r, 503, "service_unavailable",
		    "decision_log_unavailable", "no decision log");
		return;
	}
	d = make_decision_row(r, "allow", NULL);
	/* Values exist only for this request: forget them now. */
	scan_reset(sc);
	r->utimer = evtimer_new(r->w->base, request_timer_cb, r);
	tv_ms(&tv, lim->log_timeout_ms > 0 ? lim->log_timeout_ms : 5000);
	r->log_pending = 1;
	/* on_logged runs once the row is committed, or with ok = 0 if the
	 * log refused it (full or failing): then the request fails closed. */
	dlog_batch_decision(r->w->lb, d, r->w->mb, on_logged, r);
	turn_end_kick(r->w);
	evtimer_add(r->utimer, &tv);
}

static void
handle_request(struct conn *c)
{
	struct request *r = c->req;
	const char *url = r->head->url;
	const char *q = strchr(url, '?');
	size_t plen = q ? (size_t)(q - url) : strlen(url);
	char path[128];
	int is_post = strcmp(r->head->method, "POST") == 0;
	int is_get = strcmp(r->head->method, "GET") == 0;

	snprintf(path, sizeof(path), "%.*s", (int)(plen < 127 ? plen : 127),
	    url);
	memcpy(r->path, path, sizeof(r->path));
	r->snap = snapshot_current();
	if (r->snap != NULL)
		c->w->lim = r->snap->cfg->limits;
	if (r->snap == NULL) {
		respond_error(r, 503, "service_unavailable", "not_ready",
		    "no configuration loaded");
		return;
	}
	if (c->w->draining)
		c->close_after = 1;
	r->ep = endpoint_from_path(path);
	if (strcmp(path, "/v1/models") == 0) {
		if (!is_get) {
			respond_error(r, 405, "invalid_request_error",
			    "method_not_allowed", "use GET on /v1/models");
			return;
		}
	} else if (r->ep == EP_UNKNOWN) {
		respond_error(r, 404, "invalid_request_error", "not_found",
		    "unknown endpoint %s: sovgate serves /v1/chat/completions, "
		    "/v1/embeddings, /v1/fim/completions and /v1/models", path);
		return;
	} else if (!is_post) {
		respond_error(r, 405, "invalid_request_error",
		    "method_not_allowed", "use POST on %s", path);
		return;
	}
	if (authenticate(r) < 0) {
		respond_error(r, 401, "authentication_error", "invalid_api_key",
		    "missing or unknown client key: send "
		    "'Authorization: Bearer <client key>'");
		return;
	}
	if (r->ep == EP_UNKNOWN)
		handle_models(r);
	else
		handle_api(r);
}

/* ------------------------------------------------------------------ */
/* usage accounting on what the client receives                         */

/* Nesting allowed in a held JSON answer (tool-call schemas nest). */
#define ANSWER_MAX_DEPTH	256

/* A usage object's counts; USAGE_NONE where a key is absent or its (last)
 * value is not a JSON integer. */
#define USAGE_NONE	INT64_MIN
struct usage {
	int64_t prompt, completion, total;
};

/* A JSON integer's text (json_is_integer's sense: no fraction, no
 * exponent) into *out, or USAGE_NONE. */
static void
usage_int(const struct json_member *m, int64_t *out)
{
	size_t i = m->rawlen > 0 && m->raw[0] == '-';
	char num[32];

	*out = USAGE_NONE;
	if (m->rawlen == i || m->rawlen >= sizeof(num))
		return;
	for (; i < m->rawlen; i++)
		if (m->raw[i] < '0' || m->raw[i] > '9')
			return;
	memcpy(num, m->raw, m->rawlen);
	num[m->rawlen] = '\0';
	*out = strtoll(num, NULL, 10);
}

static void
usage_field(void *ud, const struct json_member *m)
{
	struct usage *u = ud;

	if (strcmp(m->key, "prompt_tokens") == 0)
		usage_int(m, &u->prompt);
	else if (strcmp(m->key, "completion_tokens") == 0)
		usage_int(m, &u->completion);
	else if (strcmp(m->key, "total_tokens") == 0)
		usage_int(m, &u->total);
}

/* The text of a usage object (held answer or stream chunk): each count it
 * holds as an integer replaces the request's; an invalid object changes
 * nothing. The one reader of usage, read in place. */
static void
usage_apply(struct request *r, const char *text, size_t len)
{
	struct usage u = { USAGE_NONE, USAGE_NONE, USAGE_NONE };
	char err[8];

	if (json_object_members(text, len, ANSWER_MAX_DEPTH, usage_field, &u,
	    err, sizeof(err)) < 0)
		return;
	if (u.prompt != USAGE_NONE)
		r->prompt_tokens = u.prompt;
	if (u.completion != USAGE_NONE)
		r->completion_tokens = u.completion;
	if (u.total != USAGE_NONE)
		r->total_tokens = u.total;
}

/* A member of a held answer: only "usage" matters. The last one wins, as
 * it would in a parsed object. */
static void
answer_member(void *ud, const struct json_member *m)
{
	struct request *r = ud;

	if (strcmp(m->key, "usage") != 0)
		return;
	r->prompt_tokens = r->completion_tokens = r->total_tokens = -1;
	if (m->rawlen > 0 && m->raw[0] == '{')
		usage_apply(r, m->raw, m->rawlen);
}

/*
 * Token usage without parsing a whole answer: find the "usage" key (a key
 * is the only place its quotes appear unescaped, apart from a value that
 * is exactly "usage") and parse just the object after it.
 */
static void
usage_from_text(struct request *r, const char *p, size_t n)
{
	const char *k = p, *end = p + n;

	while ((k = memmem(k, (size_t)(end - k), "\"usage\"", 7)) != NULL) {
		const char *q = k + 7, *start;
		int depth = 0, instr = 0;

		k += 7;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' ||
		    *q == '\n'))
			q++;
		if (q >= end || *q != ':')
			continue;
		q++;
		while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' ||
		    *q == '\n'))
			q++;
		if (q >= end || *q != '{')
			continue;
		start = q;
		for (; q < end; q++) {
			if (instr) {
				if (*q == '\\')
					q++;
				else if (*q == '"')
					instr = 0;
			} else if (*q == '"') {
				instr = 1;
			} else if (*q == '{') {
				depth++;
			} else if (*q == '}' && --depth == 0) {
				break;
			}
		}
		if (q >= end)
			return;
		usage_apply(r, start, (size_t)(q - start + 1));
		return;
	}
}

static void
sse_line_done(struct request *r)
{
	const char *p = r->sse_line;
	size_t n = r->sse_len;

	if (n < 5 || strncmp(p, "data:", 5) != 0)
		return;
	usage_from_text(r, p + 5, n - 5);
}

static void
usage_feed(struct request *r, const char *p, size_t n)
{
	size_t i;

	if (!r->is_sse) {
		if (r->usage_body && evbuffer_get_length(r->usage_body) + n <=
		    USAGE_BODY_MAX)
			evbuffer_add(r->usage_body, p, n);
		return;
	}
	for (i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '\n') {
			if (!r->sse_overflow)
				sse_line_done(r);
			r->sse_len = 0;
			r->sse_overflow = 0;
			continue;
		}
		if (ch == '\r')
			continue;
		if (r->sse_len == SSE_LINE_MAX) {
			r->sse_overflow = 1;
			continue;
		}
		if (r->sse_line == NULL)
			r->sse_line = xmalloc(SSE_LINE_MAX);
		r->sse_line[r->sse_len++] = ch;
	}
}

static void
usage_end(struct request *r)
{
	json_t *o;
	size_t n;

	if (r->is_sse || r->usage_body == NULL)
		return;
	n = evbuffer_get_length(r->usage_body);
	if (n == 0)
		return;
	(void)o;
	usage_from_text(r, (const char *)evbuffer_pullup(r->usage_body, -1), n);
}

/* ------------------------------------------------------------------ */
/* forwarding                                                           */

/* ms < 0 marks an entry without status and time (a stale retry). */
static void
add_attempt(struct request *r, const struct backend *b, const char *result,
    int status, int64_t ms, const char *error)
{
	struct attempt *a;

	if (r->natt == r->catt) {
		r->catt = r->catt ? r->catt * 2 : 4;
		r->att = xrealloc(r->att, r->catt * sizeof(*r->att));
	}
	a = &r->att[r->natt++];
	a->backend = b->name;	/* the request holds its snapshot */
	snprintf(a->result, sizeof(a->result), "%s", result);
	a->status = status;
	a->ms = ms;
	a->error = error ? xstrdup(error) : NULL;
}

static void
record_attempt(struct request *r, const struct backend *b, const char *result,
    int status, const char *error)
{
	add_attempt(r, b, result, status, mono_ms() - r->t_attempt, error);
	metrics_attempt(b->name, result);
}

/* [{"backend":..,"result":..,"status":..,"ms":..,"error":..}], the
 * outcome's attempts_json, written by hand (it was a jansson array built
 * and dumped for every request). */
static char *
attempts_json(const struct request *r)
{
	struct sb b = { NULL, 0, 0 };
	size_t i;

	sb_ch(&b, '[');
	for (i = 0; i < r->natt; i++) {
		const struct attempt *a = &r->att[i];

		sb_str(&b, i ? ",{\"backend\":" : "{\"backend\":");
		json_out_string(&b, a->backend, strlen(a->backend));
		sb_str(&b, ",\"result\":");
		json_out_string(&b, a->result, strlen(a->result));
		if (a->ms >= 0) {
			sb_str(&b, ",\"status\":");
			sb_int(&b, a->status);
			sb_str(&b, ",\"ms\":");
			sb_int(&b, a->ms);
		}
		if (a->error) {
			sb_str(&b, ",\"error\":");
			json_out_string(&b, a->error, strlen(a->error));
		}
		sb_ch(&b, '}');
	}
	sb_ch(&b, ']');
	return sb_take(&b);
}

static const struct backend *
cur_backend(const struct request *r)
{
	return r->dec->candidates[r->cand];
}

static int
is_failover_status(int status)
{
	return status == 408 || status == 424 || status == 429 ||
	    status >= 500;
}

static void
commit_deferred_head(struct request *r)
{
	r->head_deferred = 0;
	record_attempt(r, cur_backend(r), r->up_status < 400 ? "ok" :
	    "client_error", r->up_status, NULL);
	send_head_to_client(r, r->up_status, http_parser_head(r->uhp));
}

/* Writes upstream-bound client data framed for the client. */
static void
client_write_body(struct request *r, const char *p, size_t n)
{
	struct evbuffer *out;

	if (n == 0 || r->c == NULL)
		return;
	if (r->head_deferred)
		commit_deferred_head(r);
	out = bufferevent_get_output(r->c->bev);
	if (r->resp_chunked) {
		http_add_hex(out, n);
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add(out, p, n);
	if (r->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	r->bytes_out += n;
	usage_feed(r, p, n);
}

static void
client_write_evbuffer(struct request *r, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	if (n == 0)
		return;
	client_write_body(r, (const char *)evbuffer_pullup(b, -1), n);
	evbuffer_drain(b, n);
}

static void
backpressure_check(struct request *r)
{
	struct evbuffer *out;

	if (r->c == NULL || r->up == NULL)
		return;
	out = bufferevent_get_output(r->c->bev);
	if (!r->throttled && evbuffer_get_length(out) > CLIENT_OUT_HIGH) {
		/* The client reads slower than the upstream writes: stop
		 * reading the upstream until the client catches up, so
		 * memory stays bounded and TCP pushes back on the model. */
		r->throttled = 1;
		bufferevent_disable(r->up->bev, EV_READ);
		bufferevent_setwatermark(r->c->bev, EV_WRITE,
		    CLIENT_OUT_HIGH / 2, 0);
	}
}

static void
arm_utimer(struct request *r, int64_t ms)
{
	struct timeval tv;

	tv_ms(&tv, ms);
	evtimer_add(r->utimer, &tv);
}

static int64_t
idle_timeout_of(const struct request *r)
{
	return backend_timeout(cur_backend(r)->stream_idle_timeout_ms,
	    req_limits(r)->stream_idle_timeout_ms);
}

static void finish_stream_broken(struct request *r, const char *why);

static const char *
adapter_error(const struct request *r, const char *dflt)
{
	const char *e = NULL;

	if (r->ad && r->ad_st && r->ad->resp_error)
		e = r->ad->resp_error(r->ad_st);
	return e ? e : dflt;
}

static void
finish_stream_ok(struct request *r)
{
	struct evbuffer *tmp;

	if (r->hold) {
		struct evbuffer *h = r->hold;
		size_t n = evbuffer_get_length(h);
		char perr[160];
		/* Validated by our request parser (strict, UTF-8 too) without
		 * building a tree: the usage is read in place on the way. A
		 * tree was a third of the cost of a held answer. */
		int ok = n > 0 && json_object_members((const char *)
		    evbuffer_pullup(h, -1), n, ANSWER_MAX_DEPTH, answer_member,
		    r, perr, sizeof(perr)) == 0;

		r->hold = NULL;
		if (!ok) {
			evbuffer_free(h);
			finish_stream_broken(r, "the backend's answer is not "
			    "valid JSON");
			return;
		}
		r->usage_done = 1;	/* nothing more to read from the body */
		if (r->t_first_byte < 0)
			r->t_first_byte = mono_ms() - r->t0;
		client_write_evbuffer(r, h);
		evbuffer_free(h);
	}

	if (r->ad && r->ad->resp_end && r->ad_st) {
		int rc;

		tmp = evbuffer_new();
		rc = r->ad->resp_end(r->ad_st, 1, tmp);
		r->ad_ended = 1;
		client_write_evbuffer(r, tmp);
		evbuffer_free(tmp);
		if (rc < 0) {
			/* The backend ended its answer with an error of its
			 * own (an exception frame): the client must see it. */
			finish_stream_broken(r, adapter_error(r,
			    "the backend's answer ended in an error"));
			return;
		}
	}
	if (r->head_deferred)
		commit_deferred_head(r);	/* an empty answer */
	if (r->resp_chunked && r->c)
		evbuffer_add(bufferevent_get_output(r->c->bev), "0\r\n\r\n", 5);
	usage_end(r);
	request_finish(r);
}

/* The answer broke after the client got its head: say so in the stream
 * (an SSE error event) and end it; a plain body can only be cut. */
static void
finish_stream_broken(struct request *r, const char *why_in)
{
	char why[200];
	struct evbuffer *tmp;

	/* why may live in the adapter's state, which the paths below free. */
	snprintf(why, sizeof(why), "%s", why_in ? why_in : "");

	if (r->head_deferred && r->c) {
		/* Nothing reached the client: a failed attempt, not a
		 * broken stream. */
		r->head_deferred = 0;
		r->stage = A_WAITING;
		attempt_failed(r, "bad_response", r->up_status, why, 0);
		return;
	}
	snprintf(r->error, sizeof(r->error), "upstream broke mid-answer: %s",
	    why);
	if (r->c == NULL) {
		request_finish(r);
		return;
	}
	if (r->ad && r->ad->resp_end && r->ad_st && !r->ad_ended) {
		r->ad_ended = 1;
		tmp = evbuffer_new();
		r->ad->resp_end(r->ad_st, 0, tmp);
		client_write_evbuffer(r, tmp);
		evbuffer_free(tmp);
	}
	if (r->is_sse) {
		json_t *o = json_pack("{s:{s:s, s:s, s:s, s:s}}", "error",
		    "type", "upstream_error", "code", "stream_interrupted",
		    "message", why, "decision_id", r->id);
		char *s = json_dumps(o, JSON_COMPACT);
		char *ev = xasprintf("event: error\ndata: %s\n\n", s);

		client_write_body(r, ev, strlen(ev));
		free(ev);
		free(s);
		json_decref(o);
		if (r->resp_chunked)
			evbuffer_add(bufferevent_get_output(r->c->bev),
			    "0\r\n\r\n", 5);
	}
	/* A cut plain body must not look complete: close. */
	r->c->close_after = 1;
	request_finish(r);
}

static int
up_on_head(void *arg, struct http_head *uh)
{
	struct request *r = arg;
	const struct backend *b = cur_backend(r);

	if (uh->status >= 100 && uh->status < 200)
		return 0;	/* llhttp skips interim answers itself */
	evtimer_del(r->utimer);
	if (is_failover_status(uh->status)) {
		/* Nothing reached the client yet: this candidate failed. */
		r->abandon = uh->status;
		snprintf(r->abandon_why, sizeof(r->abandon_why),
		    "upstream answered %d", uh->status);
		return -1;
	}
	if (r->ad->resp_body == NULL && uh->status >= 200 && uh->status < 300) {
		/* A pass-through backend must answer in the shape the client
		 * asked for: SSE for a stream, JSON otherwise. Anything else
		 * (an HTML error page, a proxy's banner) is a failed attempt,
		 * not an answer. */
		const char *ct = http_head_get(uh, "content-type");
		int ok = ct != NULL && (r->stream ?
		    ascii_ncasecmp(ct, "text/event-stream", 17) == 0 :
		    ascii_ncasecmp(ct, "application/json", 16) == 0);

		if (!ok) {
			r->abandon = uh->status;
			snprintf(r->abandon_why, sizeof(r->abandon_why),
			    "unexpected content type '%.60s' for a%s answer",
			    ct ? ct : "(none)", r->stream ? " streamed" :
			    " JSON");
			return -1;
		}
		/* A JSON answer is held until complete and parsed, so a cut
		 * or malformed one can still fail over. */
		if (!r->stream)
			r->hold = evbuffer_new();
	}
	health_report(b, 1);
	r->answered = b;
	r->stage = A_STREAMING;
	r->up_status = uh->status;
	if (r->ad->resp_new)
		r->ad_st = r->ad->resp_new(&r->fctx, uh->status, uh);
	if (r->ad->resp_body || r->hold) {
		r->head_deferred = 1;
	} else {
		record_attempt(r, b, uh->status < 400 ? "ok" : "client_error",
		    uh->status, NULL);
		send_head_to_client(r, uh->status, uh);
	}
	arm_utimer(r, idle_timeout_of(r));
	return 0;
}

static int
up_on_body(void *arg, const char *p, size_t n)
{
	struct request *r = arg;

	if (r->stage != A_STREAMING)
		return 0;
	if (r->hold) {
		if (evbuffer_get_length(r->hold) + n <= HOLD_MAX) {
			evbuffer_add(r->hold, p, n);
			arm_utimer(r, idle_timeout_of(r));
			return 0;
		}
		/* Too large to hold: pass it on unvalidated from here. */
		{
			struct evbuffer *h = r->hold;

			r->hold = NULL;
			client_write_evbuffer(r, h);
			evbuffer_free(h);
		}
	}
	if (r->t_first_byte < 0) {
		r->t_first_byte = mono_ms() - r->t0;
		metrics_ttfb((double)r->t_first_byte / 1000.0);
	}
	if (r->ad->resp_body) {
		struct evbuffer *tmp = evbuffer_new();
		int rc = r->ad->resp_body(r->ad_st, p, n, tmp);

		client_write_evbuffer(r, tmp);
		evbuffer_free(tmp);
		if (rc < 0) {
			http_parser_fail(r->uhp, 502, adapter_error(r,
			    "the backend's answer could not be translated"));
			return -1;
		}
	} else {
		client_write_body(r, p, n);
	}
	arm_utimer(r, idle_timeout_of(r));
	return 0;
}

static const struct http_parser_cb up_cb = {
	.on_head = up_on_head,
	.on_body = up_on_body,
};

static void
up_done(struct request *r)
{
	struct http_head *uh = http_parser_head(r->uhp);
	int reusable = uh->keep_alive;

	evtimer_del(r->utimer);
	upstream_release(r->up, reusable);
	r->up = NULL;
	finish_stream_ok(r);
}

/*
 * The backend failed after its head was accepted. One place for it: the
 * connection goes, and either nothing reached the client yet (a held or
 * translated answer: finish_stream_broken turns it into a failed attempt,
 * which reports health) or the stream is cut and health is reported here.
 */
static void
upstream_broke(struct request *r, const char *why)
{
	upstream_close(r->up);
	r->up = NULL;
	evtimer_del(r->utimer);
	if (!r->head_deferred)
		health_report(cur_backend(r), 0);
	finish_stream_broken(r, why);
}

static void
up_handle_parse(struct request *r, enum http_parse_result res)
{
	if (res == HP_PAUSED) {
		up_done(r);
		return;
	}
	if (res == HP_ERROR) {
		if (r->abandon) {
			char why[sizeof(r->abandon_why)];
			int st = r->abandon;

			memcpy(why, r->abandon_why, sizeof(why));
			r->abandon = 0;
			attempt_failed(r, is_failover_status(st) ? "status" :
			    "bad_response", st, why, 0);
			return;
		}
		if (r->stage == A_STREAMING) {
			upstream_broke(r, http_parser_error(r->uhp));
			return;
		}
		attempt_failed(r, "bad_response", 0,
		    http_parser_error(r->uhp), 0);
	}
}

static void
up_read_cb(struct bufferevent *bev, void *arg)
{
	struct request *r = arg;
	enum http_parse_result res;

	res = http_parser_feed(r->uhp, bufferevent_get_input(bev));
	if (res != HP_MORE) {
		/* The request finished or moved on: r may be gone. */
		up_handle_parse(r, res);
		return;
	}
	if (r->c && r->stage == A_STREAMING)
		backpressure_check(r);
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct request *r = arg;
	enum http_parse_result res;

	(void)bev;
	if (what & BEV_EVENT_EOF) {
		/* Parse what is left, then let EOF end an EOF-framed body. */
		res = http_parser_feed(r->uhp, bufferevent_get_input(r->up->bev));
		if (res == HP_MORE)
			res = http_parser_eof(r->uhp);
		if (res == HP_PAUSED) {
			http_parser_head(r->uhp)->keep_alive = 0;
			up_done(r);
			return;
		}
		if (res == HP_ERROR) {
			up_handle_parse(r, res);
			return;
		}
	}
	if (r->stage == A_STREAMING) {
		upstream_broke(r, (what & BEV_EVENT_EOF) ?
		    "connection closed by the backend" :
		    "connection to the backend failed");
		return;
	}
	/* A pooled connection the server had closed while idle: resend once
	 * on a fresh one, before any response byte (not a failover). */
	if (r->up && r->up->reused && !r->stale_retried &&
	    !http_parser_started(r->uhp)) {
		r->stale_retried = 1;
		upstream_close(r->up);
		r->up = NULL;
		add_attempt(r, cur_backend(r), "stale_retry", 0, -1, NULL);
		attempt_connect(r);
		return;
	}
	attempt_failed(r, "connection", 0, (what & BEV_EVENT_EOF) ?
	    "connection closed before an answer" : "connection error", 0);
}

static void
utimer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct request *r = arg;

	(void)fd;
	(void)what;
	if (r->stage == A_STREAMING) {
		upstream_broke(r, "the backend stopped sending (stream idle "
		    "timeout)");
		return;
	}
	attempt_failed(r, "timeout", 0, r->stage == A_CONNECTING ?
	    "connect timeout" : "no answer before the first-byte timeout", 1);
}

static void
send_upstream(struct request *r)
{
	const struct backend *b = cur_backend(r);

	r->stage = A_WAITING;
	http_parser_free(r->uhp);
	r->uhp = http_parser_new(0, 64 * 1024, 200, &up_cb, r);
	bufferevent_setcb(r->up->bev, up_read_cb, NULL, up_event_cb, r);
	bufferevent_enable(r->up->bev, EV_READ | EV_WRITE);
	evbuffer_add(bufferevent_get_output(r->up->bev), r->upreq,
	    r->upreq_len);
	bev_write_now(r->up->bev);
	arm_utimer(r, backend_timeout(b->first_byte_timeout_ms,
	    req_limits(r)->upstream_first_byte_timeout_ms));
}

static void
up_ready(struct upconn *u, int ok, const char *err, void *arg)
{
	struct request *r = arg;

	(void)u;
	evtimer_del(r->utimer);
	if (!ok) {
		attempt_failed(r, "connect", 0, err, 0);
		return;
	}
	send_upstream(r);
}

static void
attempt_connect(struct request *r)
{
	const struct backend *b = cur_backend(r);
	char err[256];
	int now = 0;
	int64_t cto = backend_timeout(b->connect_timeout_ms,
	    req_limits(r)->upstream_connect_timeout_ms);

	r->stage = A_CONNECTING;
	r->up = upstream_get(r->w->pool, b, cto, up_ready, r, &now, err,
	    sizeof(err));
	if (r->up == NULL) {
		attempt_failed(r, "connect", 0, err, 0);
		return;
	}
	if (now) {
		send_upstream(r);
		return;
	}
	/* The connect timeout is the bufferevent's; this timer is a
	 * backstop covering DNS as well. */
	arm_utimer(r, cto + 1000);
}

static void
adapter_ready(void *arg, int ok, const char *err)
{
	struct request *r = arg;

	r->prep_handle = NULL;
	if (!ok) {
		attempt_failed(r, "credentials", 0, err, 0);
		return;
	}
	r->prepared = 1;
	attempt_next(r);
}

static void
attempt_next(struct request *r)
{
	char err[256];
	struct evbuffer *tmp;

	for (; r->cand < r->dec->ncandidates; r->cand++) {
		const struct backend *b = cur_backend(r);

		if (!r->prepared)
			r->t_attempt = mono_ms();
		r->ad = adapter_for(b->kind);
		if (r->ad == NULL) {
			record_attempt(r, b, "unsupported", 0,
			    "no adapter for this kind in this build");
			r->all_timeouts = 0;
			continue;
		}
		/* The rest of fctx is the request's (fctx_init). */
		r->fctx.b = b;
		r->fctx.model_id = backend_model_id(b, r->model);
		if (r->fctx.model_id == NULL)
			r->fctx.model_id = r->model;
		if (r->ad->prepare && !r->prepared) {
			int rc = r->ad->prepare(&r->fctx, &r->w->env,
			    adapter_ready, r, &r->prep_handle, err, sizeof(err));

			if (rc < 0) {
				record_attempt(r, b, "credentials", 0, err);
				health_report(b, 0);
				r->all_timeouts = 0;
				continue;
			}
			if (rc == 0) {
				r->stage = A_PREPARING;
				return;
			}
		}
		r->prepared = 0;
		tmp = evbuffer_new();
		if (r->ad->build(&r->fctx, tmp, err, sizeof(err)) < 0) {
			evbuffer_free(tmp);
			record_attempt(r, b, "build", 0, err);
			r->all_timeouts = 0;
			continue;
		}
		free(r->upreq);
		r->upreq_len = evbuffer_get_length(tmp);
		r->upreq = xmalloc(r->upreq_len);
		evbuffer_remove(tmp, r->upreq, r->upreq_len);
		evbuffer_free(tmp);
		r->stale_retried = 0;
		attempt_connect(r);
		return;
	}
	/* Every allowed candidate failed; none other may be tried. */
	snprintf(r->action, sizeof(r->action), "allow");
	{
		char sum[512];
		size_t i, o = 0;

		sum[0] = '\0';
		for (i = 0; i < r->natt && o < 400; i++) {
			const struct attempt *a = &r->att[i];
			int st = a->ms >= 0 ? a->status : 0;
			int n = snprintf(sum + o, sizeof(sum) - o, "%s%s %s",
			    i ? ", " : "", a->backend, a->result);

			if (n > 0 && (size_t)n < sizeof(sum) - o)
				o += (size_t)n;
			if (st > 0 && o < sizeof(sum) - 8)
				o += (size_t)snprintf(sum + o, sizeof(sum) - o,
				    " %d", st);
		}
		if (r->all_timeouts && r->natt > 0)
			respond_error(r, 504, "upstream_error",
			    "upstream_timeout", "every allowed backend timed "
			    "out (%s)", sum);
		else
			respond_error(r, 502, "upstream_error",
			    "upstream_failed", "every allowed backend failed "
			    "(%s)", sum[0] ? sum : "no candidate could be "
			    "reached");
	}
}

static void
attempt_failed(struct request *r, const char *result, int status,
    const char *why_in, int timeout)
{
	const struct backend *b = cur_backend(r);
	char why[256];

	/* why may point into the adapter's state or the parser, both freed
	 * below: keep a copy. */
	snprintf(why, sizeof(why), "%s", why_in ? why_in : "");
	evtimer_del(r->utimer);
	upstream_close(r->up);
	r->up = NULL;
	r->stage = A_NONE;
	r->answered = NULL;
	if (r->ad && r->ad_st && r->ad->resp_free)
		r->ad->resp_free(r->ad_st);
	r->ad_st = NULL;
	r->ad_ended = 0;
	if (r->hold) {
		evbuffer_free(r->hold);
		r->hold = NULL;
	}
	if (!timeout)
		r->all_timeouts = 0;
	record_attempt(r, b, result, status, why[0] ? why : NULL);
	health_report(b, 0);
	log_warn("decision %s: backend %s failed (%s%s%s); %s", r->id, b->name,
	    result, why[0] ? ": " : "", why,
	    r->cand + 1 < r->dec->ncandidates ? "failing over" :
	    "no allowed candidate left");
	if (r->c == NULL) {
		request_finish(r);
		return;
	}
	r->cand++;
	r->prepared = 0;
	if (r->cand < r->dec->ncandidates)
		metrics_failover();
	attempt_next(r);
}

static void
send_head_to_client(struct request *r, int status, const struct http_head *uh)
{
	/* Framing, cookies and our own identity are not the backend's. */
	static const struct http_name ours[] = {
		HTTP_NAME("content-length"), HTTP_NAME("content-type"),
		HTTP_NAME("set-cookie"), HTTP_NAME("server"), HTTP_NAME("date"),
	};
	struct conn *c = r->c;
	struct evbuffer *out = c->w->headbuf;
	const char *ct = NULL;
	size_t i;
	int http11 = r->head->http_major == 1 && r->head->http_minor >= 1;

	r->status = status;
	r->resp_started = 1;
	if (r->ad->resp_content_type)
		ct = r->ad->resp_content_type(r->ad_st);
	if (ct == NULL)
		ct = http_head_get(uh, "content-type");
	if (ct == NULL)
		ct = "application/json";
	r->is_sse = ascii_ncasecmp(ct, "text/event-stream", 17) == 0;
	if (!r->is_sse && !r->usage_done)
		r->usage_body = evbuffer_new();
	http_add_status_line(out, status);
	write_common_headers(r, out);
	http_add_header(out, "Content-Type", ct);
	/* The backend's own end-to-end headers (request ids, rate limits)
	 * are useful to the client; framing and cookies are ours. */
	for (i = 0; i < uh->nh; i++) {
		const struct http_header *h = &uh->h[i];
		const char *n = h->name;

		if (http_name_in(n, h->nlen, ours, ARRAY_LEN(ours)) ||
		    ascii_ncasecmp(n, "x-sovgate-", 10) == 0 ||
		    http_is_hop_by_hop(uh, n))
			continue;
		http_add_header(out, n, uh->h[i].value);
	}
	if (r->ad->resp_body == NULL && uh->content_length >= 0 &&
	    !uh->chunked) {
		http_add_str(out, "Content-Length: ");
		http_add_uint(out, (uint64_t)uh->content_length);
		evbuffer_add(out, "\r\n", 2);
	} else if (http11) {
		r->resp_chunked = 1;
		http_add_str(out, "Transfer-Encoding: chunked\r\n");
	} else {
		r->resp_close_delimited = 1;
		c->close_after = 1;
	}
	if (c->close_after || !r->head->keep_alive || c->w->draining) {
		c->close_after = 1;
		http_add_str(out, "Connection: close\r\n");
	}
	if (r->is_sse)
		http_add_str(out, "Cache-Control: no-cache\r\n");
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add_buffer(bufferevent_get_output(c->bev), out);
}

/* ------------------------------------------------------------------ */
/* finishing a request                                                  */

static void
submit_outcome(struct request *r)
{
	struct dlog_outcome *o;

	if (!r->logged || S->dlog == NULL)
		return;
	o = dlog_outcome_new();
	memcpy(o->decision_id, r->id, sizeof(o->decision_id));
	o->ts_ms = now_ms();
	o->status = r->status;
	o->attempts = 0;
	for (size_t i = 0; i < r->natt; i++)
		if (strcmp(r->att[i].result, "stale_retry") != 0)
			o->attempts++;
	o->attempts_json = attempts_json(r);
	o->backend = r->answered ? xstrdup(r->answered->name) : NULL;
	o->latency_ms = mono_ms() - r->t0;
	o->ttfb_ms = r->t_first_byte;
	o->bytes_in = (int64_t)r->bytes_in;
	o->bytes_out = (int64_t)r->bytes_out;
	o->prompt_tokens = r->prompt_tokens;
	o->completion_tokens = r->completion_tokens;
	o->total_tokens = r->total_tokens;
	o->error = r->error[0] ? xstrdup(r->error) : NULL;
	dlog_batch_outcome(r->w->lb, o);
	turn_end_kick(r->w);
}

static void
alog_flush(struct worker *w)
{
	/* Under the log lock so the batch does not interleave with other
	 * threads' lines; a failing stderr drops the batch, never blocks
	 * the worker in a loop. */
	log_lock();
	while (evbuffer_get_length(w->alog) > 0)
		if (evbuffer_write(w->alog, STDERR_FILENO) <= 0) {
			evbuffer_drain(w->alog, evbuffer_get_length(w->alog));
			break;
		}
	log_unlock();
}

static void
alog_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	alog_flush(arg);
}

/* The access-log line is gathered on the stack and appended at once. */
static void
evbuffer_sink(void *out, const void *p, size_t n)
{
	evbuffer_add(out, p, n);
}

#define LB_LIT(l, s)	gather_add((l), (s), sizeof(s) - 1)

static void
lb_str(struct gather *l, const char *s)
{
	gather_add(l, s, strlen(s));
}

static void
lb_int(struct gather *l, int64_t v)
{
	char d[24], *p = fmt_i64_before(d + sizeof(d), v);

	gather_add(l, p, (size_t)(d + sizeof(d) - p));
}

static void
access_log(struct request *r)
{
	struct evbuffer *b = r->w->alog;
	int64_t ms = mono_ms() - r->t0;
	char ts[32];
	unsigned char lbuf[1024];
	struct gather l = { evbuffer_sink, b, lbuf, 0, sizeof(lbuf) };

	metrics_request(r->client ? r->client_name : "", level_name(r),
	    r->answered ? r->answered->name : "", r->action, r->status,
	    (double)ms / 1000.0);

	/* Buffered per worker and written every ALOG_FLUSH_MS or when
	 * large: one write per batch instead of one per request. The line
	 * is assembled on the stack and appended once: thirty evbuffer_adds
	 * were most of the cost of this function. */
	fmt_rfc3339_ms(now_ms(), ts, sizeof(ts));
	lb_str(&l, ts);
	LB_LIT(&l, " info access id=");
	lb_str(&l, r->id);
	LB_LIT(&l, " client=");
	lb_str(&l, r->client ? r->client_name : "-");
	LB_LIT(&l, " endpoint=");
	lb_str(&l, r->path[0] ? r->path : "-");
	LB_LIT(&l, " level=");
	lb_str(&l, level_name(r));
	LB_LIT(&l, " action=");
	lb_str(&l, r->action[0] ? r->action : "-");
	LB_LIT(&l, " backend=");
	lb_str(&l, r->answered ? r->answered->name : "-");
	LB_LIT(&l, " status=");
	lb_int(&l, r->status > 0 ? r->status : 0);
	LB_LIT(&l, " attempts=");
	lb_int(&l, (int64_t)r->natt);
	LB_LIT(&l, " ms=");
	lb_int(&l, ms);
	LB_LIT(&l, " in=");
	lb_int(&l, (int64_t)r->bytes_in);
	LB_LIT(&l, " out=");
	lb_int(&l, (int64_t)r->bytes_out);
	LB_LIT(&l, " tokens=");
	lb_int(&l, r->total_tokens < 0 ? -1 : r->total_tokens);
	if (r->error[0]) {
		LB_LIT(&l, " error=");
		lb_str(&l, r->error);
	}
	LB_LIT(&l, "\n");
	gather_flush(&l);
	if (evbuffer_get_length(r->w->alog) >= ALOG_FLUSH_BYTES)
		alog_flush(r->w);
}

/* The answer is written (or abandoned): record, then free or orphan. */
static void
request_finish(struct request *r)
{
	struct conn *c = r->c;

	access_log(r);
	submit_outcome(r);
	/* Finding values live only as long as their request. */
	scan_reset(r->w->scan);
	if (c) {
		c->req = NULL;
		r->c = NULL;
		r->head = NULL;
	}
	if (r->log_pending) {
		r->orphan = 1;	/* on_logged frees it */
		upstream_close(r->up);
		r->up = NULL;
		if (r->utimer)
			evtimer_del(r->utimer);
	} else {
		request_free(r);
	}
	if (c)
		conn_next(c);
}

/* ------------------------------------------------------------------ */
/* client connections                                                   */

static void
conn_arm(struct conn *c, int64_t ms)
{
	struct timeval tv;

	tv_ms(&tv, ms);
	evtimer_add(c->timer, &tv);
}

/* Connection-phase limits come from the worker's copy, refreshed at every
 * request from the snapshot that request uses: no lock per phase. */
static const struct limits *
conn_limits(const struct conn *c)
{
	return &c->w->lim;
}

static void
conn_free(struct conn *c)
{
	struct worker *w = c->w;

	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub(&S->nconns, 1);
	metrics_conn(-1);
	event_free(c->timer);
	conn_unlist_dirty(c);
	if (c->out_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
		    c->out_cb);
	bufferevent_free(c->bev);
	http_parser_free(c->hp);
	free(c);
	if (w->draining && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

/* One teardown per connection, with its reason. */
static void
conn_close(struct conn *c, const char *why)
{
	struct request *r = c->req;

	if (why)
		log_debug("conn %s closed: %s", c->peer, why);
	if (r) {
		/* The client left: cancel the upstream request. */
		r->c = NULL;
		c->req = NULL;
		if (r->status == 0 || r->resp_started) {
			if (r->error[0] == '\0')
				snprintf(r->error, sizeof(r->error),
				    "client closed the connection (%s)",
				    why ? why : "");
			if (r->status == 0)
				r->status = 499;
		}
		upstream_close(r->up);
		r->up = NULL;
		if (r->prep_handle && r->ad && r->ad->cancel) {
			r->ad->cancel(r->prep_handle);
			r->prep_handle = NULL;
		}
		r->head = NULL;
		access_log(r);
		submit_outcome(r);
		if (r->log_pending) {
			r->orphan = 1;
			if (r->utimer)
				evtimer_del(r->utimer);
		} else {
			request_free(r);
		}
	}
	conn_free(c);
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case C_IDLE:
		conn_close(c, "keep-alive timeout");
		break;
	case C_HEAD:
	case C_BODY: {
		/* A slow (or slowloris) client: answer 408 and go. */
		struct evbuffer *out = bufferevent_get_output(c->bev);
		const char *m = "{\"error\":{\"type\":\"invalid_request_error\","
		    "\"code\":\"request_timeout\",\"message\":\"the request "
		    "was not received in time\"}}";

		log_info("conn %s: request not received in time; closing",
		    c->peer);
		evbuffer_add_printf(out, "HTTP/1.1 408 Request Timeout\r\n"
		    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s", strlen(m), m);
		c->state = C_CLOSING;
		bufferevent_disable(c->bev, EV_READ);
		conn_arm(c, 5000);
		break;
	}
	case C_CLOSING:
		conn_close(c, "could not flush before closing");
		break;
	case C_BUSY:
		break;
	}
}

/* A protocol error before a request exists: answer and close. */
static void
conn_reject(struct conn *c, int status, const char *why)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char id[37];
	json_t *o;
	char *s;

	uuid_v7(id);
	o = json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "type",
	    "invalid_request_error", "code", status == 413 ?
	    "body_too_large" : status == 431 ? "headers_too_large" :
	    "malformed_request", "message", why, "decision_id", id);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	log_info("conn %s: rejected with %d: %s", c->peer, status, why);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nX-Sovgate-Decision: %s\r\n"
	    "X-Sovgate-Level: unclassified\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", status, http_reason(status), id,
	    strlen(s), s);
	free(s);
	if (c->req) {
		request_free(c->req);
		c->req = NULL;
	}
	c->state = C_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	conn_arm(c, 5000);
}

static int
c_on_head(void *arg, struct http_head *hd)
{
	struct conn *c = arg;
	const struct limits *lim = conn_limits(c);
	const char *expect = http_head_get(hd, "expect");

	if (hd->content_length >= 0 &&
	    (uint64_t)hd->content_length > lim->max_body) {
		http_parser_fail(c->hp, 413, "request body larger than "
		    "limits.max_body");
		return -1;
	}
	if (expect != NULL) {
		if (ascii_casecmp(expect, "100-continue") != 0) {
			http_parser_fail(c->hp, 417,
			    "unsupported Expect header");
			return -1;
		}
		evbuffer_add_printf(bufferevent_get_output(c->bev),
		    "HTTP/1.1 100 Continue\r\n\r\n");
	}
	c->req = request_new(c);
	c->req->head = hd;
	c->state = C_BODY;
	conn_arm(c, lim->body_timeout_ms);
	return 0;
}

static int
c_on_body(void *arg, const char *p, size_t n)
{
	struct conn *c = arg;

	if (evbuffer_get_length(c->req->body) + n > conn_limits(c)->max_body) {
		http_parser_fail(c->hp, 413, "request body larger than "
		    "limits.max_body");
		return -1;
	}
	evbuffer_add(c->req->body, p, n);
	return 0;
}

static const struct http_parser_cb client_cb = {
	.on_head = c_on_head,
	.on_body = c_on_body,
};

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	enum http_parse_result res;

	if (c->state == C_BUSY || c->state == C_CLOSING)
		return;	/* pipelined bytes wait (bounded by the watermark) */
	if (evbuffer_get_length(in) == 0)
		return;
	if (c->state == C_IDLE) {
		c->state = C_HEAD;
		conn_arm(c, conn_limits(c)->header_timeout_ms);
	}
	res = http_parser_feed(c->hp, in);
	switch (res) {
	case HP_MORE:
		return;
	case HP_ERROR:
		conn_reject(c, http_parser_error_status(c->hp),
		    http_parser_error(c->hp));
		return;
	case HP_PAUSED:
		c->state = C_BUSY;
		evtimer_del(c->timer);
		handle_request(c);
		return;
	}
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct request *r = c->req;

	(void)bev;
	if (c->state == C_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_close(c, NULL);
		return;
	}
	if (r && r->throttled && r->up) {
		r->throttled = 0;
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		bufferevent_enable(r->up->bev, EV_READ);
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;		/* TLS handshake done */
	if (what & BEV_EVENT_TIMEOUT)
		conn_close(c, "client stopped reading (write timeout)");
	else if (what & BEV_EVENT_EOF)
		conn_close(c, c->req ? "client closed mid-request" :
		    "client closed");
	else if (c->tls && c->state == C_IDLE && c->req == NULL) {
		char why[200];
		unsigned long e = bufferevent_get_openssl_error(c->bev);

		snprintf(why, sizeof(why), "TLS failed: %s", e ?
		    ERR_reason_error_string(e) : "handshake or read error");
		conn_close(c, why);
	} else
		conn_close(c, "client connection error");
}

/* After an answer: next request on this connection, or close. */
static void
conn_next(struct conn *c)
{
	if (c->close_after) {
		c->state = C_CLOSING;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
			conn_close(c, NULL);
			return;
		}
		conn_arm(c, 10000);
		return;
	}
	http_parser_reset(c->hp);
	c->state = C_IDLE;
	conn_arm(c, conn_limits(c)->keepalive_timeout_ms);
	/* A pipelined request may already be here. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_read_cb(c->bev, c);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct worker *w = arg;
	struct conn *c;
	const struct limits *lim = &w->lim;
	struct timeval wt;
	int one = 1;

	(void)l;
	(void)salen;
	if (atomic_fetch_add(&S->nconns, 1) >= lim->max_connections) {
		atomic_fetch_sub(&S->nconns, 1);
		log_warn("refusing a connection: limits.max_connections (%d) "
		    "reached", lim->max_connections);
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	metrics_conn(1);
	c = xcalloc(1, sizeof(*c));
	c->w = w;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(c->peer, sizeof(c->peer), "%s:%d", a,
		    ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%d", a,
		    ntohs(s6->sin6_port));
	}
	{
		struct snapshot *s = snapshot_current();
		SSL *ssl = s && s->tls_ctx ? SSL_new(s->tls_ctx) : NULL;

		if (ssl) {
			c->bev = bufferevent_openssl_socket_new(w->base, fd, ssl,
			    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
			if (c->bev)
				bufferevent_openssl_set_allow_dirty_shutdown(
				    c->bev, 1);
			c->tls = 1;
		} else {
			c->bev = bufferevent_socket_new(w->base, fd,
			    BEV_OPT_CLOSE_ON_FREE);
		}
		snapshot_unref(s);
		if (c->bev == NULL) {
			log_err("conn %s: cannot set up the connection", c->peer);
			evutil_closesocket(fd);
			free(c);
			atomic_fetch_sub(&S->nconns, 1);
			metrics_conn(-1);
			return;
		}
	}
	c->hp = http_parser_new(1, lim->max_header_size,
	    (size_t)lim->max_headers, &client_cb, c);
	c->timer = evtimer_new(w->base, conn_timer_cb, c);
	c->state = C_IDLE;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	if (!c->tls)
		c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev),
		    client_out_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CLIENT_IN_HIGH);
	tv_ms(&wt, lim->stream_idle_timeout_ms);
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	/* Until the first byte, a connection is held to the header timeout
	 * (a connection that never speaks is a slowloris too). */
	c->state = C_HEAD;
	conn_arm(c, lim->header_timeout_ms);
	c->state = C_IDLE;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
}

/* ------------------------------------------------------------------ */
/* workers and the main thread                                          */

static void
worker_drain(void *arg, int status)
{
	struct worker *w = arg;
	struct conn *c, *next;

	(void)status;
	w->draining = 1;
	if (w->lst) {
		evconnlistener_free(w->lst);
		w->lst = NULL;
	}
	/* Idle keep-alive connections go now; busy ones finish. */
	for (c = w->conns; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE)
			conn_close(c, "draining");
		else
			c->close_after = 1;
	}
	if (w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

static void
worker_stop_now(void *arg, int status)
{
	struct worker *w = arg;

	(void)status;
	event_base_loopbreak(w->base);
}

/*
 * A worker's loop. The epoll change list batches the interest changes made
 * during one turn into the next epoll_wait: a bufferevent asks for
 * EPOLLOUT when an answer is queued and drops it once written, four
 * epoll_ctl calls per proxied request otherwise. It is safe here because
 * no socket descriptor is ever dup()ed (libevent's one caveat).
 */
static struct event_base *
worker_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *b;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	/* Only its own thread touches a worker's base: other threads reach
	 * it through its mailbox (an eventfd), so it needs no lock. */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return b;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	sigset_t all;

	char name[16];

	snprintf(name, sizeof(name), "sovgate-w%d", w->id);
	pthread_setname_np(pthread_self(), name);
	/* Signals belong to the main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	event_base_dispatch(w->base);
	/* A loopbreak may leave this turn's rows behind. */
	dlog_batch_submit(S->dlog, w->lb);
	alog_flush(w);
	return NULL;
}

static int
open_listener(const char *addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	int fd, one = 1;

	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss,
	    &sslen) < 0) {
		snprintf(err, errlen, "listen address '%s' is not HOST:PORT "
		    "with a numeric host", addr);
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* One socket per worker: the kernel spreads connections. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 ||
	    listen(fd, 1024) < 0) {
		close(fd);
		goto fail;
	}
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
	return -1;
}

/* Point stderr at the log file (again, after logrotate moved it). The
 * descriptor is swapped with dup2, so every thread's next write goes to
 * the new file without a lock. */
static int
open_log_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0)
		return -1;
	if (dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Bind as root, then run as the configured user. */
static int
drop_privileges(const struct gw_config *c)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		return 0;
	}
	if (c->user == NULL) {
		fprintf(stderr, "sovgate: refusing to run as root: set 'user: "
		    "NAME' in %s to drop to an unprivileged account after "
		    "binding (or 'user: root' to stay root deliberately)\n",
		    c->path);
		return -1;
	}
	if (strcmp(c->user, "root") == 0) {
		log_warn("running as root because %s says 'user: root'",
		    c->path);
		return 0;
	}
	pw = getpwnam(c->user);	/* startup only: may read files */
	if (pw == NULL) {
		fprintf(stderr, "sovgate: user '%s' (config 'user:') does not "
		    "exist\n", c->user);
		return -1;
	}
	/* Files created as root that the gateway must still open later (a
	 * reload reads the key; SQLite reopens its -wal and -shm). */
	{
		const char *own[] = { c->fingerprint_key_file, c->log_database,
			NULL, NULL, c->log_file };
		char *wal = c->log_database ? xasprintf("%s-wal",
		    c->log_database) : NULL;
		char *shm = c->log_database ? xasprintf("%s-shm",
		    c->log_database) : NULL;
		size_t i;

		own[2] = wal;
		own[3] = shm;
		for (i = 0; i < ARRAY_LEN(own); i++)
			if (own[i] && chown(own[i], pw->pw_uid, pw->pw_gid) < 0 &&
			    errno != ENOENT)
				log_warn("cannot give %s to user %s: %s", own[i],
				    c->user, strerror(errno));
		free(wal);
		free(shm);
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "sovgate: cannot switch to user '%s': %s\n",
		    c->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		fprintf(stderr, "sovgate: could regain root after dropping to "
		    "'%s'; refusing to run\n", c->user);
		return -1;
	}
	log_info("running as user %s (uid %u)", c->user, (unsigned)pw->pw_uid);
	return 0;
}

static void
do_reload(void)
{
	struct diags *d = diags_new();
	struct snapshot *s = snapshot_load(S->config_path, 1, d);
	char first[512];
	char *detail;

	if (s != NULL && (upstream_tls_prepare(s->backends, d) < 0 ||
	    tlsserver_prepare(s, d) < 0)) {
		snapshot_unref(s);
		s = NULL;
	}
	if (s == NULL) {
		diags_first_error(d, first, sizeof(first));
		log_err("reload rejected, the previous configuration stays in "
		    "force: %s", first);
		detail = xasprintf("{\"result\":\"rejected\",\"errors\":%zu}",
		    d->nerrors);
		if (S->dlog)
			dlog_submit_event(S->dlog, "reload", detail);
		metrics_reload(0);
		free(detail);
		diags_free(d);
		return;
	}
	diags_print(d, stderr);	/* warnings */
	detail = xasprintf("{\"result\":\"accepted\",\"policy\":\"%s\","
	    "\"policy_sha256\":\"%s\"}", s->policy->name, s->policy->sha256);
	log_info("reload accepted: policy %s (sha256 %s), %zu backends",
	    s->policy->name, s->policy->sha256, s->backends->n);
	metrics_reload(1);
	metrics_set_policy(s->policy->name, s->policy->sha256);
	snapshot_install(s);
	if (S->dlog)
		dlog_submit_event(S->dlog, "reload", detail);
	free(detail);
	diags_free(d);
}

static void
sig_cb(evutil_socket_t sig, short what, void *arg)
{
	int i;

	(void)what;
	(void)arg;
	if (sig == SIGUSR1) {
		struct snapshot *s = snapshot_current();

		if (s && s->cfg->log_file) {
			if (open_log_file(s->cfg->log_file) < 0)
				log_err("SIGUSR1: cannot reopen %s: %s; still "
				    "writing to the old file", s->cfg->log_file,
				    strerror(errno));
			else
				log_info("SIGUSR1: reopened %s",
				    s->cfg->log_file);
		}
		snapshot_unref(s);
		return;
	}
	if (sig == SIGHUP) {
		log_info("SIGHUP: reloading configuration, backends and policy");
		do_reload();
		return;
	}
	if (S->draining) {
		log_warn("second stop signal: stopping now");
		for (i = 0; i < S->nw; i++)
			mailbox_post(S->w[i].mb, worker_stop_now, &S->w[i], 0);
		return;
	}
	log_info("%s: draining (no new connections; in-flight requests "
	    "finish)", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	S->draining = 1;
	for (i = 0; i < S->nw; i++)
		mailbox_post(S->w[i].mb, worker_drain, &S->w[i], 0);
	event_base_loopexit(S->main_base, NULL);
}

static void
drain_deadline_cb(void *arg, int status)
{
	worker_stop_now(arg, status);
}

int
server_run(const char *config_path)
{
	struct diags *d = diags_new();
	struct snapshot *snap;
	struct server srv;
	char err[512];
	struct event *sigs[5];
	int signos[5] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1, 0 };
	int i, nw, rc = 0, ncpu, pin;
	int cpus[64];
	int64_t deadline;

	memset(&srv, 0, sizeof(srv));
	S = &srv;
	srv.config_path = config_path;
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		fatal("libevent without thread support");

	snap = snapshot_load(config_path, 1, d);
	if (snap == NULL || upstream_tls_prepare(snap->backends, d) < 0 ||
	    tlsserver_prepare(snap, d) < 0) {
		diags_print(d, stderr);
		fprintf(stderr, "sovgate: configuration has errors; not "
		    "starting (run 'sovgate check -c %s')\n", config_path);
		diags_free(d);
		snapshot_unref(snap);
		return 2;
	}
	diags_print(d, stderr);	/* warnings */
	diags_free(d);
	if (snap->cfg->log_file && open_log_file(snap->cfg->log_file) < 0) {
		fprintf(stderr, "sovgate: cannot open log_file %s: %s\n",
		    snap->cfg->log_file, strerror(errno));
		snapshot_unref(snap);
		return 2;
	}
	snapshot_install(snapshot_ref(snap));
	health_init(3, 10000);

	srv.dlog = dlog_open_ex(snap->cfg->log_database, snap->cfg->durability,
	    snap->cfg->batch_interval_ms, snap->cfg->log_sync_full ?
	    DLOG_SYNC_FULL : DLOG_SYNC_NORMAL, err, sizeof(err));
	if (srv.dlog == NULL) {
		fprintf(stderr, "sovgate: cannot open the decision log %s: %s\n",
		    snap->cfg->log_database, err);
		snapshot_unref(snap);
		return 2;
	}

	/* auto: one worker per CPU this process may use (a cpuset or
	 * taskset narrows that), not per CPU the machine has. */
	ncpu = cpus_allowed(cpus, (int)ARRAY_LEN(cpus));
	nw = snap->cfg->workers;
	if (nw <= 0) {
		long n = ncpu > 0 ? ncpu : sysconf(_SC_NPROCESSORS_ONLN);

		nw = n > 0 ? (int)n : 1;
	}
	if (nw > 64)
		nw = 64;
	/*
	 * cpu_affinity: auto pins worker i to the i-th of those CPUs when
	 * there is one worker per CPU. Unpinned, the kernel moved the
	 * upstream's and the client's threads, woken by a worker's writes,
	 * onto that worker's CPU, and the other CPU idled while they queued
	 * there (on 2 cores at c32: 12-16 % idle unpinned, 10-13 % pinned,
	 * and 5-9 % more requests per second). With fewer workers than CPUs
	 * a pinned worker could not move away from the log writer, so they
	 * stay unpinned.
	 */
	pin = snap->cfg->cpu_affinity && ncpu > 1 && nw == ncpu;
	srv.nw = nw;
	srv.w = xcalloc((size_t)nw, sizeof(*srv.w));
	/* The admin listener first: once the data port accepts connections
	 * (the kernel completes handshakes from listen() on), /metrics and
	 * /readyz answer too. A test harness that waited for the data port
	 * and then scraped could find the admin port not yet bound. */
	srv.main_base = event_base_new();
	metrics_set_policy(snap->policy->name, snap->policy->sha256);
	if (snap->cfg->admin_listen && snap->cfg->admin_listen[0]) {
		srv.admin = admin_new(srv.main_base, snap->cfg->admin_listen,
		    srv.dlog, err, sizeof(err));
		if (srv.admin == NULL) {
			fprintf(stderr, "sovgate: %s\n", err);
			return 2;
		}
	}
	for (i = 0; i < nw; i++) {
		struct worker *w = &srv.w[i];

		w->id = i;
		w->cpu = pin ? cpus[i] : -1;
		w->fd = open_listener(snap->cfg->listen, err, sizeof(err));
		if (w->fd < 0) {
			fprintf(stderr, "sovgate: %s\n", err);
			return 2;
		}
		w->base = worker_base_new();
		w->dns = evdns_base_new(w->base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (w->dns == NULL)	/* no resolv.conf: IP literals still work */
			w->dns = evdns_base_new(w->base,
			    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		w->mb = mailbox_new(w->base);
		w->scan = scan_new();
		w->pool = upstream_pool_new(w->base, w->dns);
		w->lim = snap->cfg->limits;
		w->lb = dlog_batch_new();
		w->turn_ev = event_new(w->base, -1, 0, turn_end, w);
		if (w->turn_ev == NULL)
			fatal("worker %d: event_new failed", i);
		w->alog = evbuffer_new();
		w->headbuf = evbuffer_new();
		w->alog_timer = event_new(w->base, -1, EV_PERSIST,
		    alog_timer_cb, w);
		{
			struct timeval atv = { 0, ALOG_FLUSH_MS * 1000 };

			event_add(w->alog_timer, &atv);
		}
		w->env.base = w->base;
		w->env.dns = w->dns;
		w->env.mb = w->mb;
		w->lst = evconnlistener_new(w->base, accept_cb, w,
		    LEV_OPT_CLOSE_ON_FREE, -1, w->fd);
		if (w->lst == NULL)
			fatal("evconnlistener_new failed");
	}
	for (i = 0; signos[i]; i++) {
		sigs[i] = evsignal_new(srv.main_base, signos[i], sig_cb, NULL);
		evsignal_add(sigs[i], NULL);
	}
	/* Everything that needs root (ports below 1024, the log's files) is
	 * open by now. */
	if (drop_privileges(snap->cfg) < 0)
		return 2;
	for (i = 0; i < nw; i++) {
		struct worker *w = &srv.w[i];

		pthread_create(&w->th, NULL, worker_main, w);
		/* Pinned before "ready" is printed, so from the first request
		 * on. */
		if (w->cpu >= 0 && pin_thread(w->th, w->cpu) < 0)
			log_warn("worker %d: cannot pin it to CPU %d (%s); the "
			    "kernel places it", i, w->cpu, strerror(errno));
	}

	{
		char *detail = xasprintf("{\"version\":\"%s\",\"policy\":\"%s\","
		    "\"policy_sha256\":\"%s\",\"workers\":%d}", PACKAGE_VERSION,
		    snap->policy->name, snap->policy->sha256, nw);

		dlog_submit_event(srv.dlog, "start", detail);
		free(detail);
	}
	log_info("sovgate %s listening on %s with %d worker%s%s; policy %s "
	    "(sha256 %s); %zu backends; decision log %s (%s)", PACKAGE_VERSION,
	    snap->cfg->listen, nw, nw == 1 ? "" : "s", pin ?
	    ", one pinned to each CPU" : "", snap->policy->name,
	    snap->policy->sha256, snap->backends->n, snap->cfg->log_database,
	    snap->cfg->durability == DUR_STRICT ? "strict" : "batched");
	printf("sovgate: ready on %s\n", snap->cfg->listen);
	fflush(stdout);

	event_base_dispatch(srv.main_base);

	/* Draining: wait for the workers, up to the drain timeout. */
	deadline = mono_ms() + (snap->cfg->limits.drain_timeout_ms > 0 ?
	    snap->cfg->limits.drain_timeout_ms : 30000);
	for (i = 0; i < nw; i++) {
		struct timespec ts;
		int64_t left = deadline - mono_ms();

		if (left < 0)
			left = 0;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_timedjoin_np(srv.w[i].th, NULL, &ts) != 0) {
			log_warn("drain timeout: worker %d still busy; stopping "
			    "it", i);
			mailbox_post(srv.w[i].mb, drain_deadline_cb, &srv.w[i], 0);
			pthread_join(srv.w[i].th, NULL);
			rc = 0;
		}
	}
	/* Token refreshers post to worker mailboxes: stop them first. */
	gauth_shutdown();
	dlog_submit_event(srv.dlog, "stop", "{\"reason\":\"signal\"}");
	dlog_close(srv.dlog);
	for (i = 0; signos[i]; i++)
		event_free(sigs[i]);
	for (i = 0; i < nw; i++) {
		struct worker *w = &srv.w[i];

		event_free(w->alog_timer);
		evbuffer_free(w->alog);
		evbuffer_free(w->headbuf);
		event_free(w->turn_ev);
		dlog_batch_free(w->lb);
		upstream_pool_free(w->pool);
		scan_free(w->scan);
		mailbox_free(w->mb);
		if (w->lst)
			evconnlistener_free(w->lst);
		evdns_base_free(w->dns, 0);
		event_base_free(w->base);
		spares_free(&w->dec_spare);
		spares_free(&w->req_spare);
	}
	free(srv.w);
	admin_free(srv.admin);
	event_base_free(srv.main_base);
	snapshot_unref(snap);
	snapshot_install(NULL);
	log_info("sovgate stopped");
	return rc;
}
