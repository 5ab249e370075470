/*
 * walbuf.c - see walbuf.h.
 *
 * Only WAL files are wrapped; the database file, its shared memory and
 * its locks are the unix VFS's own objects, untouched. In a WAL file the
 * wrapper gathers appends: a write that starts where the previous write
 * ended goes to the buffer, anything else (the WAL header after a
 * restart, a page rewritten in place, a checksum fixed up) first writes
 * out what is gathered and is then written as asked.
 *
 * When must the gathered frames be in the file? Before SQLite makes them
 * visible, which it does after the last frame of a commit: it then adds
 * them to the wal-index and publishes the new header, and only that lets
 * another connection read them. The last frame of a commit is the one
 * whose header (a 24-byte write; the WAL header is 32 bytes and pages are
 * at least 512) carries a non-zero database size, so the write after such
 * a header (its page) ends with a flush, and its error is the commit's
 * error: SQLite rolls the transaction back and the decision is not
 * forwarded. What SQLite may write after the commit frame before
 * publishing (checksum repairs after an in-place rewrite; with
 * synchronous=FULL and no power-safe overwrite, padding frames that are
 * themselves commit frames, and a sync) is never an append to gathered
 * frames, or is flushed by its own commit mark or by xSync. Reads, size,
 * truncation, sync and close flush first, so the connection itself never
 * sees a file without its own writes.
 *
 * Frames of a transaction that fails stay gathered until the next write;
 * they lie beyond the published end of the WAL, where SQLite ignores
 * them and its next commit overwrites them.
 */
#include "walbuf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* Gathered bytes before a flush. The unix VFS writes at most 128 KB - 1
 * in one call (it masks the length to 17 bits: SQLite's own writes are a
 * page of at most 64 KB), so a flush must stay under that. */
#define WB_CAP		(96 * 1024)
#define WB_FRAME_HDR	24		/* a WAL frame header's size */

struct wb_file {
	sqlite3_file base;		/* pMethods = &wb_io */
	sqlite3_file *real;		/* the unix VFS's file, after this */
	unsigned char *buf;		/* WB_CAP bytes once needed */
	sqlite3_int64 off;		/* file offset of buf[0] */
	int len;			/* bytes gathered */
	sqlite3_int64 end;		/* where the last write ended, or -1 */
	int seal_next;			/* last write: a commit frame's header */
};

/* The real file lives right after the wrapper, 8-byte aligned. */
#define WB_HDR	((sizeof(struct wb_file) + 7) & ~(size_t)7)

static sqlite3_vfs *unix_vfs;
static sqlite3_vfs wb_vfs;
static pthread_once_t wb_once = PTHREAD_ONCE_INIT;
static int wb_ok;
static atomic_uint_fast64_t n_sys, n_req;

#define REAL(file)	(((struct wb_file *)(file))->real)

/* Every write that reaches the file goes through here (counted). */
static int
real_write(struct wb_file *f, const void *p, int n, sqlite3_int64 off)
{
	atomic_fetch_add_explicit(&n_sys, 1, memory_order_relaxed);
	return f->real->pMethods->xWrite(f->real, p, n, off);
}

static int
wb_flush(struct wb_file *f)
{
	int len = f->len;

	f->len = 0;	/* on error too: the transaction fails, see above */
	return len > 0 ? real_write(f, f->buf, len, f->off) : SQLITE_OK;
}

static int
wb_close(sqlite3_file *file)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = wb_flush(f), rc2;

	rc2 = f->real->pMethods->xClose(f->real);
	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int
wb_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off)
{
	struct wb_file *f = (struct wb_file *)file;
	const unsigned char *p = data;
	int rc, seal = f->seal_next;

	atomic_fetch_add_explicit(&n_req, 1, memory_order_relaxed);
	f->seal_next = 0;
	if (f->len > 0 && off == f->off + f->len && amt <= WB_CAP - f->len) {
		memcpy(f->buf + f->len, data, (size_t)amt);
		f->len += amt;
	} else {
		/* An append starts gathering (if the buffer can be had). */
		int gather = off == f->end && amt < WB_CAP;

		if ((rc = wb_flush(f)) != SQLITE_OK)
			return rc;
		if (gather && f->buf == NULL)
			f->buf = malloc(WB_CAP);	/* NULL: write through */
		if (gather && f->buf != NULL) {
			memcpy(f->buf, data, (size_t)amt);
			f->off = off;
			f->len = amt;
		} else if ((rc = real_write(f, data, amt, off)) != SQLITE_OK) {
			f->end = -1;
			return rc;
		}
	}
	f->end = off + amt;
	if (seal)
		return wb_flush(f);
	if (amt == WB_FRAME_HDR && (p[4] | p[5] | p[6] | p[7]) != 0)
		f->seal_next = 1;
	return SQLITE_OK;
}

/* Reads, size, truncation and sync see the file with our writes in it. */
static int
wb_read(sqlite3_file *file, void *data, int amt, sqlite3_int64 off)
{
	int rc = wb_flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc :
	    REAL(file)->pMethods->xRead(REAL(file), data, amt, off);
}

static int
wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	int rc = wb_flush((struct wb_file *)file);

	((struct wb_file *)file)->end = -1;
	return rc != SQLITE_OK ? rc :
	    REAL(file)->pMethods->xTruncate(REAL(file), size);
}

static int
wb_sync(sqlite3_file *file, int flags)
{
	int rc = wb_flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc :
	    REAL(file)->pMethods->xSync(REAL(file), flags);
}

static int
wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	int rc = wb_flush((struct wb_file *)file);

	return rc != SQLITE_OK ? rc :
	    REAL(file)->pMethods->xFileSize(REAL(file), size);
}

/* The rest is the real file's. SQLite locks a WAL file through the
 * database's shared memory, never through these, but they answer. */

static int
wb_lock(sqlite3_file *file, int lock)
{
	return REAL(file)->pMethods->xLock(REAL(file), lock);
}

static int
wb_unlock(sqlite3_file *file, int lock)
{
	return REAL(file)->pMethods->xUnlock(REAL(file), lock);
}

static int
wb_check_reserved(sqlite3_file *file, int *out)
{
	return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}

static int
wb_file_control(sqlite3_file *file, int op, void *arg)
{
	return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}

static int
wb_sector_size(sqlite3_file *file)
{
	return REAL(file)->pMethods->xSectorSize(REAL(file));
}

static int
wb_device_chars(sqlite3_file *file)
{
	return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}

/* Version 1: a WAL file has no shared memory and is never mapped. */
static const sqlite3_io_methods wb_io = {
	.iVersion = 1,
	.xClose = wb_close,
	.xRead = wb_read,
	.xWrite = wb_write,
	.xTruncate = wb_truncate,
	.xSync = wb_sync,
	.xFileSize = wb_file_size,
	.xLock = wb_lock,
	.xUnlock = wb_unlock,
	.xCheckReservedLock = wb_check_reserved,
	.xFileControl = wb_file_control,
	.xSectorSize = wb_sector_size,
	.xDeviceCharacteristics = wb_device_chars,
};

static int
wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file,
    int flags, int *outflags)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc;

	(void)vfs;
	/* Everything but a WAL file is the unix VFS's file, in place (our
	 * szOsFile is larger than its). */
	if ((flags & SQLITE_OPEN_WAL) == 0)
		return unix_vfs->xOpen(unix_vfs, name, file, flags, outflags);
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)((char *)file + WB_HDR);
	f->end = -1;
	rc = unix_vfs->xOpen(unix_vfs, name, f->real, flags, outflags);
	/* SQLite calls xClose after a failed xOpen that set pMethods. */
	f->base.pMethods = f->real->pMethods != NULL ? &wb_io : NULL;
	return rc;
}

/* The VFS's other methods are the unix VFS's. */
static int
wb_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return unix_vfs->xDelete(unix_vfs, name, sync_dir);
}

static int
wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return unix_vfs->xAccess(unix_vfs, name, flags, out);
}

static int
wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return unix_vfs->xFullPathname(unix_vfs, name, n, out);
}

static void *
wb_dlopen(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return unix_vfs->xDlOpen(unix_vfs, name);
}

static void
wb_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	unix_vfs->xDlError(unix_vfs, n, msg);
}

static void (*wb_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return unix_vfs->xDlSym(unix_vfs, h, sym);
}

static void
wb_dlclose(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	unix_vfs->xDlClose(unix_vfs, h);
}

static int
wb_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return unix_vfs->xRandomness(unix_vfs, n, out);
}

static int
wb_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return unix_vfs->xSleep(unix_vfs, us);
}

static int
wb_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return unix_vfs->xCurrentTime(unix_vfs, out);
}

static int
wb_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return unix_vfs->xGetLastError(unix_vfs, n, out);
}

static int
wb_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return unix_vfs->xCurrentTimeInt64(unix_vfs, out);
}

static void
wb_init(void)
{
	unix_vfs = sqlite3_vfs_find("unix");
	if (unix_vfs == NULL || unix_vfs->iVersion < 2)
		return;
	wb_vfs.iVersion = 2;
	wb_vfs.szOsFile = (int)WB_HDR + unix_vfs->szOsFile;
	wb_vfs.mxPathname = unix_vfs->mxPathname;
	wb_vfs.zName = WALBUF_VFS;
	wb_vfs.xOpen = wb_open;
	wb_vfs.xDelete = wb_delete;
	wb_vfs.xAccess = wb_access;
	wb_vfs.xFullPathname = wb_full_pathname;
	wb_vfs.xDlOpen = wb_dlopen;
	wb_vfs.xDlError = wb_dlerror;
	wb_vfs.xDlSym = wb_dlsym;
	wb_vfs.xDlClose = wb_dlclose;
	wb_vfs.xRandomness = wb_randomness;
	wb_vfs.xSleep = wb_sleep;
	wb_vfs.xCurrentTime = wb_current_time;
	wb_vfs.xGetLastError = wb_last_error;
	wb_vfs.xCurrentTimeInt64 = wb_current_time64;
	wb_ok = sqlite3_vfs_register(&wb_vfs, 0) == SQLITE_OK;
}

int
walbuf_register(void)
{
	pthread_once(&wb_once, wb_init);
	return wb_ok ? 0 : -1;
}

void
walbuf_stats(uint64_t *syscalls, uint64_t *requested)
{
	*syscalls = atomic_load_explicit(&n_sys, memory_order_relaxed);
	*requested = atomic_load_explicit(&n_req, memory_order_relaxed);
}
