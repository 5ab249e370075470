/*
 * mailbox.c - see mailbox.h. A mutex-protected FIFO and one libevent user
 * event; event_active() is safe from other threads because main() calls
 * evthread_use_pthreads() before any base exists.
 */
#include "mailbox.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

struct msg {
	mailbox_fn fn;
	void *arg;
	int status;
	struct msg *next;
};

struct mailbox {
	pthread_mutex_t mu;
	struct msg *head, *tail;
	struct event *ev;
};

static void
mailbox_run(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	struct msg *m, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&mb->mu);
	m = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	for (; m; m = next) {
		next = m->next;
		m->fn(m->arg, m->status);
		free(m);
	}
}

struct mailbox *
mailbox_new(struct event_base *base)
{
	struct mailbox *mb = xcalloc(1, sizeof(*mb));

	pthread_mutex_init(&mb->mu, NULL);
	mb->ev = event_new(base, -1, 0, mailbox_run, mb);
	if (mb->ev == NULL)
		fatal("mailbox: event_new failed");
	return mb;
}

void
mailbox_free(struct mailbox *mb)
{
	struct msg *m, *next;

	if (mb == NULL)
		return;
	event_free(mb->ev);
	for (m = mb->head; m; m = next) {
		next = m->next;
		free(m);
	}
	pthread_mutex_destroy(&mb->mu);
	free(mb);
}

void
mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg, int status)
{
	struct msg *m = xmalloc(sizeof(*m));
	int was_empty;

	m->fn = fn;
	m->arg = arg;
	m->status = status;
	m->next = NULL;
	pthread_mutex_lock(&mb->mu);
	was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = m;
	else
		mb->head = m;
	mb->tail = m;
	pthread_mutex_unlock(&mb->mu);
	if (was_empty)
		event_active(mb->ev, 0, 0);
}
