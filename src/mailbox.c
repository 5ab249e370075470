/*
 * mailbox.c - see mailbox.h. A mutex-protected FIFO and an eventfd that
 * the owning loop reads. Posting to an empty box writes the eventfd;
 * the loop drains the box whole. Because nothing else crosses threads
 * into a worker's loop, the workers' bases run without libevent's locks
 * (EVENT_BASE_FLAG_NOLOCK): those were taken at every event_add and
 * event_del, a dozen times per request.
 */
#include "mailbox.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

struct mailbox_msg {
	mailbox_fn fn;
	void *arg;
	int status;
	struct mailbox_msg *next;
};

struct mailbox {
	pthread_mutex_t mu;
	struct mailbox_msg *head, *tail;
	int efd;		/* readable while the box may hold messages */
	struct event *ev;	/* EV_READ on efd, on the owner's base */
};

static void
mailbox_run(evutil_socket_t fd, short what, void *arg)
{
	struct mailbox *mb = arg;
	struct mailbox_msg *m, *next;

	uint64_t n;

	(void)what;
	/* Reset first: a post after this point writes again. */
	while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
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
	mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (mb->efd < 0)
		fatal("mailbox: eventfd: %s", strerror(errno));
	mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, mailbox_run,
	    mb);
	if (mb->ev == NULL || event_add(mb->ev, NULL) < 0)
		fatal("mailbox: cannot watch its eventfd");
	return mb;
}

void
mailbox_free(struct mailbox *mb)
{
	struct mailbox_msg *m, *next;

	if (mb == NULL)
		return;
	event_free(mb->ev);
	close(mb->efd);
	for (m = mb->head; m; m = next) {
		next = m->next;
		free(m);
	}
	pthread_mutex_destroy(&mb->mu);
	free(mb);
}

static struct mailbox_msg *
msg_new(mailbox_fn fn, void *arg, int status)
{
	struct mailbox_msg *m = xmalloc(sizeof(*m));

	m->fn = fn;
	m->arg = arg;
	m->status = status;
	m->next = NULL;
	return m;
}

/* Append the chain head..tail; wake the loop if the box was empty. */
static void
deliver(struct mailbox *mb, struct mailbox_msg *head, struct mailbox_msg *tail)
{
	int was_empty;

	pthread_mutex_lock(&mb->mu);
	was_empty = mb->head == NULL;
	if (mb->tail)
		mb->tail->next = head;
	else
		mb->head = head;
	mb->tail = tail;
	pthread_mutex_unlock(&mb->mu);
	if (was_empty) {
		uint64_t one = 1;

		/* Cannot fail but for an overflow of 2^64 - 1 posts. */
		while (write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
}

void
mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg, int status)
{
	struct mailbox_msg *m = msg_new(fn, arg, status);

	deliver(mb, m, m);
}

void
mailbox_batch_add(struct mailbox_batch *b, struct mailbox *mb,
    mailbox_fn fn, void *arg, int status)
{
	struct mailbox_msg *m = msg_new(fn, arg, status);
	int i;

	for (i = 0; i < b->n && b->box[i].mb != mb; i++)
		;
	if (i == MAILBOX_BATCH_BOXES) {
		/* Full: what is gathered goes now, which keeps each box's
		 * order (its earlier messages are sent first). */
		mailbox_batch_send(b);
		i = 0;
	}
	if (i == b->n) {
		b->box[i].mb = mb;
		b->box[i].head = b->box[i].tail = m;
		b->n++;
		return;
	}
	b->box[i].tail->next = m;
	b->box[i].tail = m;
}

void
mailbox_batch_send(struct mailbox_batch *b)
{
	int i;

	for (i = 0; i < b->n; i++)
		deliver(b->box[i].mb, b->box[i].head, b->box[i].tail);
	b->n = 0;
}
