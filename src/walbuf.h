/*
 * walbuf.h - an SQLite VFS that writes each WAL commit with one write.
 *
 * SQLite writes a WAL frame as two writes, its 24-byte header and then
 * its page, and a group commit of a few decisions dirties ten to twenty
 * pages (the tables' and three indexes' right edges, their parents when
 * a leaf splits, the chain heads, page 1 as the file grows): twenty to
 * forty pwrite calls per commit, about four per request under load, the
 * writer thread's largest system cost. This VFS is the system's "unix"
 * VFS with one change: the frames a transaction appends to the WAL are
 * gathered in memory and written together when the commit frame is
 * complete, so a commit is one pwrite. A commit still returns only after its frames are in the
 * file: a crash of sovgate right after it loses nothing, and another
 * connection (the checkpointer, `sovgate log query`) never sees a frame
 * that is not in the file.
 */
#ifndef SOVGATE_WALBUF_H
#define SOVGATE_WALBUF_H

#include <stdint.h>

/* The VFS's name for sqlite3_open_v2. */
#define WALBUF_VFS	"sovgate-walbuf"

/* Register the VFS (not as the default). Idempotent and thread-safe.
 * Returns 0, or -1 if SQLite has no "unix" VFS to build on. */
int walbuf_register(void);

/* Write calls made to WAL files through this VFS since the start, and the
 * writes SQLite asked for (tests and benchmarks). */
void walbuf_stats(uint64_t *syscalls, uint64_t *requested);

#endif
