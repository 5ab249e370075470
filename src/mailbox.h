/*
 * mailbox.h - run a function on an event loop's thread from any thread.
 * The decision-log writer uses it to wake the worker whose request it has
 * just committed.
 */
#ifndef SOVGATE_MAILBOX_H
#define SOVGATE_MAILBOX_H

struct event_base;
struct mailbox;
struct mailbox_msg;

typedef void (*mailbox_fn)(void *arg, int status);

struct mailbox *mailbox_new(struct event_base *base);
/* Pending messages are dropped; call only after the loop stopped posting. */
void mailbox_free(struct mailbox *mb);	/* NULL is a no-op */
/* Thread-safe; fn(arg, status) runs later on mb's loop, in posting order. */
void mailbox_post(struct mailbox *mb, mailbox_fn fn, void *arg, int status);

/*
 * Messages gathered by one thread for several mailboxes and delivered
 * together: one lock and at most one eventfd write per mailbox. Posting
 * them one by one raced with the receiving loop, which emptied its box
 * between two posts, so each post wrote the eventfd and woke the loop
 * again. Order is kept per mailbox. Start from MAILBOX_BATCH_INIT; a
 * batch holds nothing after mailbox_batch_send.
 */
#define MAILBOX_BATCH_BOXES 8
struct mailbox_batch {
	struct {
		struct mailbox *mb;
		struct mailbox_msg *head, *tail;
	} box[MAILBOX_BATCH_BOXES];
	int n;
};
#define MAILBOX_BATCH_INIT { .n = 0 }
void mailbox_batch_add(struct mailbox_batch *b, struct mailbox *mb,
    mailbox_fn fn, void *arg, int status);
void mailbox_batch_send(struct mailbox_batch *b);

#endif
