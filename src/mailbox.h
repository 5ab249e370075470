/*
 * mailbox.h - run a function on an event loop's thread from any thread.
 * The decision-log writer uses it to wake the worker whose request it has
 * just committed.
 */
#ifndef SOVGATE_MAILBOX_H
#define SOVGATE_MAILBOX_H

struct event_base;
struct mailbox;

typedef void (*mailbox_fn)(void *arg, int status);

struct mailbox *mailbox_new(struct event_base *base);
/* Pending messages are dropped; call only after the loop stopped posting. */
void mailbox_free(struct mailbox *mb);	/* NULL is a no-op */
/* Thread-safe; fn(arg, status) runs later on mb's loop, in posting order. */
void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg, int status);

#endif
