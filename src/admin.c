/*
 * admin.c - see admin.h. One request per connection, answered and closed;
 * bounded like the data plane (head size, a timeout).
 */
#include "admin.h"

#include "backend.h"
#include "dlog.h"
#include "health.h"
#include "http.h"
#include "metrics.h"
#include "snapshot.h"
#include "upstream.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

struct admin {
	struct event_base *base;
	struct evconnlistener *lst;
	struct dlog *log;
};

struct aconn {
	struct admin *a;
	struct bufferevent *bev;
	struct http_parser *hp;
	int done;
};

static struct dlog *g_log;

static void
aconn_free(struct aconn *c)
{
	bufferevent_free(c->bev);
	http_parser_free(c->hp);
	free(c);
}

static void
reply(struct aconn *c, int status, const char *ctype, struct evbuffer *body)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
	    http_reason(status), ctype, evbuffer_get_length(body));
	evbuffer_add_buffer(out, body);
	c->done = 1;
	bufferevent_disable(c->bev, EV_READ);
}

static void
process_gauges(struct evbuffer *out)
{
	long rss_kb = 0, fds = 0;
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	DIR *d;
	struct snapshot *s;
	size_t i;

	/* Reading /proc is a few microseconds on the main thread, which
	 * serves no client traffic. */
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "VmRSS:", 6) == 0)
				rss_kb = atol(line + 6);
		fclose(f);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while (readdir(d))
			fds++;
		closedir(d);
		fds -= 2;
	}
	evbuffer_add_printf(out,
	    "# HELP sovgate_process_resident_memory_bytes Resident memory.\n"
	    "# TYPE sovgate_process_resident_memory_bytes gauge\n"
	    "sovgate_process_resident_memory_bytes %ld\n"
	    "# HELP sovgate_process_open_fds Open file descriptors.\n"
	    "# TYPE sovgate_process_open_fds gauge\n"
	    "sovgate_process_open_fds %ld\n"
	    "# HELP sovgate_upstream_connections Open upstream connections.\n"
	    "# TYPE sovgate_upstream_connections gauge\n"
	    "sovgate_upstream_connections %ld\n"
	    "# HELP sovgate_log_queue_depth Decision-log records waiting.\n"
	    "# TYPE sovgate_log_queue_depth gauge\n"
	    "sovgate_log_queue_depth %zu\n"
	    "# HELP sovgate_log_healthy 1 when the last log write succeeded.\n"
	    "# TYPE sovgate_log_healthy gauge\n"
	    "sovgate_log_healthy %d\n",
	    rss_kb * 1024, fds, upstream_open_count(),
	    g_log ? dlog_queue_depth(g_log) : 0,
	    g_log ? dlog_healthy(g_log) : 0);
	if (g_log) {
		uint64_t batches = 0, rows = 0;

		dlog_stats(g_log, &batches, &rows);
		evbuffer_add_printf(out,
		    "# HELP sovgate_log_commits_total Decision-log transactions "
		    "committed (group commits).\n"
		    "# TYPE sovgate_log_commits_total counter\n"
		    "sovgate_log_commits_total %llu\n"
		    "# HELP sovgate_log_rows_total Rows written by those "
		    "commits; rows/commits is the mean batch size.\n"
		    "# TYPE sovgate_log_rows_total counter\n"
		    "sovgate_log_rows_total %llu\n",
		    (unsigned long long)batches, (unsigned long long)rows);
	}
	s = snapshot_current();
	if (s) {
		evbuffer_add_printf(out, "# HELP sovgate_backend_up 0 while "
		    "passive health marks a backend down.\n"
		    "# TYPE sovgate_backend_up gauge\n");
		for (i = 0; i < s->backends->n; i++)
			evbuffer_add_printf(out,
			    "sovgate_backend_up{backend=\"%s\"} %d\n",
			    s->backends->v[i]->name,
			    !health_peek_down(s->backends->v[i]->name));
		snapshot_unref(s);
	}
}

static void
serve(struct aconn *c)
{
	struct http_head *hd = http_parser_head(c->hp);
	struct evbuffer *b = evbuffer_new();
	struct snapshot *s;
	const char *path = hd->url;

	if (strcmp(hd->method, "GET") != 0) {
		evbuffer_add_printf(b, "only GET\n");
		reply(c, 405, "text/plain", b);
	} else if (strcmp(path, "/healthz") == 0) {
		evbuffer_add_printf(b, "ok\n");
		reply(c, 200, "text/plain", b);
	} else if (strcmp(path, "/readyz") == 0) {
		const char *why = NULL;
		size_t i, up = 0;

		s = snapshot_current();
		if (s == NULL)
			why = "no configuration or policy loaded";
		else if (g_log == NULL || !dlog_healthy(g_log))
			why = "the decision log is not writable";
		else {
			for (i = 0; i < s->backends->n; i++)
				if (!health_peek_down(s->backends->v[i]->name))
					up++;
			if (up == 0)
				why = "every backend is marked down";
		}
		if (why) {
			evbuffer_add_printf(b, "not ready: %s\n", why);
			reply(c, 503, "text/plain", b);
		} else {
			evbuffer_add_printf(b, "ready: policy %s (sha256 %s), "
			    "%zu/%zu backends up\n", s->policy->name,
			    s->policy->sha256, up, s->backends->n);
			reply(c, 200, "text/plain", b);
		}
		snapshot_unref(s);
	} else if (strcmp(path, "/metrics") == 0) {
		metrics_render(b, process_gauges);
		reply(c, 200, "text/plain; version=0.0.4", b);
	} else {
		evbuffer_add_printf(b, "not found: try /healthz, /readyz or "
		    "/metrics\n");
		reply(c, 404, "text/plain", b);
	}
	evbuffer_free(b);
}

static const struct http_parser_cb admin_cb = { NULL, NULL, NULL };

static void
a_read(struct bufferevent *bev, void *arg)
{
	struct aconn *c = arg;
	struct evbuffer *b;

	if (c->done)
		return;
	switch (http_parser_feed(c->hp, bufferevent_get_input(bev))) {
	case HP_MORE:
		return;
	case HP_PAUSED:
		serve(c);
		return;
	case HP_ERROR:
		b = evbuffer_new();
		evbuffer_add_printf(b, "bad request: %s\n",
		    http_parser_error(c->hp));
		reply(c, 400, "text/plain", b);
		evbuffer_free(b);
		return;
	}
}

static void
a_write(struct bufferevent *bev, void *arg)
{
	struct aconn *c = arg;

	if (c->done && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		aconn_free(c);
}

static void
a_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	aconn_free(arg);
}

static void
a_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct admin *a = arg;
	struct aconn *c = xcalloc(1, sizeof(*c));
	struct timeval tv = { 10, 0 };

	(void)l;
	(void)sa;
	(void)salen;
	c->a = a;
	c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->hp = http_parser_new(1, 8192, 50, &admin_cb, c);
	bufferevent_setcb(c->bev, a_read, a_write, a_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct admin *
admin_new(struct event_base *base, const char *addr, struct dlog *log,
    char *err, size_t errlen)
{
	struct admin *a;
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss,
	    &sslen) < 0) {
		snprintf(err, errlen, "admin_listen '%s' is not HOST:PORT with "
		    "a numeric host", addr);
		return NULL;
	}
	a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->log = log;
	g_log = log;
	a->lst = evconnlistener_new_bind(base, a_accept, a,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    64, (struct sockaddr *)&ss, sslen);
	if (a->lst == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr,
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		free(a);
		return NULL;
	}
	return a;
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	evconnlistener_free(a->lst);
	free(a);
}
