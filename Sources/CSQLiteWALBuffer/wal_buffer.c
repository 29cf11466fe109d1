/*
 * A VFS shim that coalesces WAL writes (see wal_buffer.h for why).
 *
 * SQLite appends a commit's frames to the -wal file in order, then publishes the commit by
 * writing the wal-index header in shared memory: first copy, xShmBarrier on the database
 * file, second copy. Readers trust a header only when both copies agree. So frames may sit
 * in this process's memory until that barrier, as long as they reach the kernel before it
 * returns: the database file's barrier flushes its own WAL's buffer. Every other operation
 * on the WAL (read, sync, size, truncate, close, file control) flushes first, so SQLite
 * never sees the file behind what it wrote (checkpoints read frames back through xRead).
 *
 * SQLite skips the barrier only with a heap-memory WAL index (locking_mode=EXCLUSIVE), which no
 * connection here uses: there a commit's frames would reach the file only at the next flush.
 *
 * Failure: a buffered write cannot fail later for lack of space, because only bytes inside
 * space already allocated to the file are buffered (the file grows by fallocate, in 1 MiB
 * steps, through SQLITE_FCNTL_SIZE_HINT; where that fails the write goes straight through
 * and reports its own error). If the flush at the barrier fails anyway (an I/O error), the
 * process stops before the second header copy is written: the state is that of a process
 * killed mid-commit, which recovery handles (the commit frame never reached the file).
 *
 * Threads: a connection is used by one thread at a time, and its database file and WAL
 * file belong to that connection, so the buffer needs no lock. The link from a database
 * file to its WAL is made when the WAL opens: SQLite passes the WAL's name from the same
 * allocation as the database's, and sqlite3_filename_database() returns the very pointer
 * the database file was opened with; a registry under a mutex holds those pointers.
 */
#include "wal_buffer.h"

#include <sqlite3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The unix VFS writes at most 128 KiB - 1 per call (seekAndWriteFd masks the length with
   0x1ffff), so a flush stays under that. 64 KiB holds a commit of ~60 pages of 1 KiB. */
enum { BUFFER_CAPACITY = 64 * 1024, GROWTH_STEP = 1024 * 1024 };

typedef struct ShimFile ShimFile;
struct ShimFile {
    sqlite3_file base;          /* pMethods: this shim's */
    sqlite3_file *real;         /* the default VFS's file, allocated right after this struct */
    const char *name;           /* as passed to xOpen (a database's: the registry's key) */
    int isWal;
    /* A database file: its WAL, once open. A WAL: its database file, if found. */
    ShimFile *partner;
    ShimFile *nextDatabase;     /* the registry of open database files */
    /* A WAL file's pending bytes: [start, start + length) of the file. */
    unsigned char *buffer;
    sqlite3_int64 start;
    int length;
    /* How far the file's space is known to be allocated (WAL only). */
    sqlite3_int64 allocated;
};

static sqlite3_vfs shimVfs;
static sqlite3_vfs *realVfs;
static pthread_mutex_t registryLock = PTHREAD_MUTEX_INITIALIZER;
static ShimFile *openDatabases;

static int flushBuffer(ShimFile *file) {
    if (file->length == 0) return SQLITE_OK;
    int rc = file->real->pMethods->xWrite(file->real, file->buffer, file->length, file->start);
    file->length = 0;
    return rc;
}

/* Makes sure [0, end) of the WAL has space on disk; 0 when it could not. */
static int reserveSpace(ShimFile *file, sqlite3_int64 end) {
    if (end <= file->allocated) return 1;
    sqlite3_int64 target = (end + GROWTH_STEP - 1) / GROWTH_STEP * GROWTH_STEP;
    if (file->real->pMethods->xFileControl(file->real, SQLITE_FCNTL_SIZE_HINT, &target) != SQLITE_OK) return 0;
    sqlite3_int64 size = 0;
    if (file->real->pMethods->xFileSize(file->real, &size) != SQLITE_OK || size < end) return 0;
    file->allocated = size;
    return 1;
}

static int shimWrite(sqlite3_file *f, const void *data, int amount, sqlite3_int64 offset) {
    ShimFile *file = (ShimFile *)f;
    if (!file->isWal) return file->real->pMethods->xWrite(file->real, data, amount, offset);
    int contiguous = file->length > 0 && offset == file->start + file->length;
    if (!contiguous || file->length + amount > BUFFER_CAPACITY) {
        int rc = flushBuffer(file);
        if (rc != SQLITE_OK) return rc;
    }
    if (amount > BUFFER_CAPACITY || file->buffer == NULL || !reserveSpace(file, offset + amount)) {
        int rc = flushBuffer(file);
        if (rc != SQLITE_OK) return rc;
        return file->real->pMethods->xWrite(file->real, data, amount, offset);
    }
    if (file->length == 0) file->start = offset;
    memcpy(file->buffer + file->length, data, (size_t)amount);
    file->length += amount;
    return SQLITE_OK;
}

static int shimClose(sqlite3_file *f) {
    ShimFile *file = (ShimFile *)f;
    int rc = file->isWal ? flushBuffer(file) : SQLITE_OK;
    pthread_mutex_lock(&registryLock);
    if (file->partner != NULL) file->partner->partner = NULL;
    if (!file->isWal) {
        for (ShimFile **link = &openDatabases; *link != NULL; link = &(*link)->nextDatabase) {
            if (*link == file) { *link = file->nextDatabase; break; }
        }
    }
    pthread_mutex_unlock(&registryLock);
    free(file->buffer);
    int closed = file->real->pMethods->xClose(file->real);
    return rc != SQLITE_OK ? rc : closed;
}

/* Every call but a write sees the file as SQLite wrote it: pending bytes go first. */
#define FLUSH_OR_RETURN(file) do { int flushed = flushBuffer(file); if (flushed != SQLITE_OK) return flushed; } while (0)

static int shimRead(sqlite3_file *f, void *data, int amount, sqlite3_int64 offset) {
    ShimFile *file = (ShimFile *)f;
    FLUSH_OR_RETURN(file);
    return file->real->pMethods->xRead(file->real, data, amount, offset);
}

static int shimTruncate(sqlite3_file *f, sqlite3_int64 size) {
    ShimFile *file = (ShimFile *)f;
    FLUSH_OR_RETURN(file);
    if (size < file->allocated) file->allocated = size;
    return file->real->pMethods->xTruncate(file->real, size);
}

static int shimSync(sqlite3_file *f, int flags) {
    ShimFile *file = (ShimFile *)f;
    FLUSH_OR_RETURN(file);
    return file->real->pMethods->xSync(file->real, flags);
}

static int shimFileSize(sqlite3_file *f, sqlite3_int64 *size) {
    ShimFile *file = (ShimFile *)f;
    FLUSH_OR_RETURN(file);
    return file->real->pMethods->xFileSize(file->real, size);
}

static int shimFileControl(sqlite3_file *f, int op, void *arg) {
    ShimFile *file = (ShimFile *)f;
    FLUSH_OR_RETURN(file);
    return file->real->pMethods->xFileControl(file->real, op, arg);
}

static void shimShmBarrier(sqlite3_file *f) {
    ShimFile *file = (ShimFile *)f;
    ShimFile *wal = file->partner;
    int rc = wal != NULL ? flushBuffer(wal) : SQLITE_OK;
    if (rc != SQLITE_OK) {
        fprintf(stderr, "segmenter: writing the SQLite WAL of %s failed (%s) before its commit was published; stopping\n",
                file->name ? file->name : "a database", sqlite3_errstr(rc));
        abort();
    }
    file->real->pMethods->xShmBarrier(file->real);
}

/* The rest only forwards. */
static int shimLock(sqlite3_file *f, int level) { return ((ShimFile *)f)->real->pMethods->xLock(((ShimFile *)f)->real, level); }
static int shimUnlock(sqlite3_file *f, int level) { return ((ShimFile *)f)->real->pMethods->xUnlock(((ShimFile *)f)->real, level); }
static int shimCheckReservedLock(sqlite3_file *f, int *out) {
    return ((ShimFile *)f)->real->pMethods->xCheckReservedLock(((ShimFile *)f)->real, out);
}
static int shimSectorSize(sqlite3_file *f) { return ((ShimFile *)f)->real->pMethods->xSectorSize(((ShimFile *)f)->real); }
static int shimDeviceCharacteristics(sqlite3_file *f) {
    return ((ShimFile *)f)->real->pMethods->xDeviceCharacteristics(((ShimFile *)f)->real);
}
static int shimShmMap(sqlite3_file *f, int region, int size, int extend, void volatile **out) {
    return ((ShimFile *)f)->real->pMethods->xShmMap(((ShimFile *)f)->real, region, size, extend, out);
}
static int shimShmLock(sqlite3_file *f, int offset, int n, int flags) {
    return ((ShimFile *)f)->real->pMethods->xShmLock(((ShimFile *)f)->real, offset, n, flags);
}
static int shimShmUnmap(sqlite3_file *f, int deleteFlag) {
    return ((ShimFile *)f)->real->pMethods->xShmUnmap(((ShimFile *)f)->real, deleteFlag);
}
static int shimFetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out) {
    return ((ShimFile *)f)->real->pMethods->xFetch(((ShimFile *)f)->real, offset, amount, out);
}
static int shimUnfetch(sqlite3_file *f, sqlite3_int64 offset, void *page) {
    return ((ShimFile *)f)->real->pMethods->xUnfetch(((ShimFile *)f)->real, offset, page);
}

static const sqlite3_io_methods shimMethods = {
    3, shimClose, shimRead, shimWrite, shimTruncate, shimSync, shimFileSize, shimLock, shimUnlock,
    shimCheckReservedLock, shimFileControl, shimSectorSize, shimDeviceCharacteristics,
    shimShmMap, shimShmLock, shimShmBarrier, shimShmUnmap, shimFetch, shimUnfetch,
};

static int shimOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *outFlags) {
    (void)vfs;
    ShimFile *file = (ShimFile *)f;
    memset(file, 0, sizeof(*file));
    file->real = (sqlite3_file *)(file + 1);
    int rc = realVfs->xOpen(realVfs, name, file->real, flags, outFlags);
    if (rc != SQLITE_OK) {
        file->base.pMethods = NULL;  /* SQLite then does not call xClose */
        return rc;
    }
    file->name = name;
    file->isWal = (flags & SQLITE_OPEN_WAL) != 0;
    file->base.pMethods = &shimMethods;
    if (file->real->pMethods->iVersion < 3) {
        /* Not the unix VFS this was written against: forward nothing it cannot do. */
        file->real->pMethods->xClose(file->real);
        file->base.pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    pthread_mutex_lock(&registryLock);
    if (file->isWal) {
        const char *database = name ? sqlite3_filename_database(name) : NULL;
        for (ShimFile *candidate = openDatabases; candidate != NULL; candidate = candidate->nextDatabase) {
            if (candidate->name == database && candidate->partner == NULL) {
                candidate->partner = file;
                file->partner = candidate;
                break;
            }
        }
    } else if (flags & SQLITE_OPEN_MAIN_DB) {
        file->nextDatabase = openDatabases;
        openDatabases = file;
    }
    pthread_mutex_unlock(&registryLock);
    /* Only a WAL with a database to publish through may hold bytes back. */
    if (file->isWal && file->partner != NULL && !(flags & SQLITE_OPEN_READONLY)) {
        file->buffer = malloc(BUFFER_CAPACITY);
        sqlite3_int64 size = 0;
        if (file->real->pMethods->xFileSize(file->real, &size) == SQLITE_OK) file->allocated = size;
        int chunk = GROWTH_STEP;
        file->real->pMethods->xFileControl(file->real, SQLITE_FCNTL_CHUNK_SIZE, &chunk);
    }
    return SQLITE_OK;
}

/* The VFS itself forwards everything but xOpen to the default VFS. */
static int shimDelete(sqlite3_vfs *v, const char *name, int sync) { (void)v; return realVfs->xDelete(realVfs, name, sync); }
static int shimAccess(sqlite3_vfs *v, const char *name, int flags, int *out) { (void)v; return realVfs->xAccess(realVfs, name, flags, out); }
static int shimFullPathname(sqlite3_vfs *v, const char *name, int n, char *out) { (void)v; return realVfs->xFullPathname(realVfs, name, n, out); }
static void *shimDlOpen(sqlite3_vfs *v, const char *name) { (void)v; return realVfs->xDlOpen(realVfs, name); }
static void shimDlError(sqlite3_vfs *v, int n, char *out) { (void)v; realVfs->xDlError(realVfs, n, out); }
static void (*shimDlSym(sqlite3_vfs *v, void *handle, const char *symbol))(void) { (void)v; return realVfs->xDlSym(realVfs, handle, symbol); }
static void shimDlClose(sqlite3_vfs *v, void *handle) { (void)v; realVfs->xDlClose(realVfs, handle); }
static int shimRandomness(sqlite3_vfs *v, int n, char *out) { (void)v; return realVfs->xRandomness(realVfs, n, out); }
static int shimSleep(sqlite3_vfs *v, int micros) { (void)v; return realVfs->xSleep(realVfs, micros); }
static int shimCurrentTime(sqlite3_vfs *v, double *out) { (void)v; return realVfs->xCurrentTime(realVfs, out); }
static int shimGetLastError(sqlite3_vfs *v, int n, char *out) { (void)v; return realVfs->xGetLastError(realVfs, n, out); }
static int shimCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return realVfs->xCurrentTimeInt64(realVfs, out); }

static int registration = -1;
static pthread_once_t registerOnce = PTHREAD_ONCE_INIT;

static void registerShim(void) {
    realVfs = sqlite3_vfs_find(NULL);
    if (realVfs == NULL || realVfs->iVersion < 2) { registration = SQLITE_ERROR; return; }
    shimVfs.iVersion = 2;
    shimVfs.szOsFile = (int)sizeof(ShimFile) + realVfs->szOsFile;
    shimVfs.mxPathname = realVfs->mxPathname;
    shimVfs.zName = SEGMENTER_WAL_BUFFER_VFS;
    shimVfs.xOpen = shimOpen;
    shimVfs.xDelete = shimDelete;
    shimVfs.xAccess = shimAccess;
    shimVfs.xFullPathname = shimFullPathname;
    shimVfs.xDlOpen = shimDlOpen;
    shimVfs.xDlError = shimDlError;
    shimVfs.xDlSym = shimDlSym;
    shimVfs.xDlClose = shimDlClose;
    shimVfs.xRandomness = shimRandomness;
    shimVfs.xSleep = shimSleep;
    shimVfs.xCurrentTime = shimCurrentTime;
    shimVfs.xGetLastError = shimGetLastError;
    shimVfs.xCurrentTimeInt64 = shimCurrentTimeInt64;
    registration = sqlite3_vfs_register(&shimVfs, 0);
}

int segmenter_wal_buffer_register(void) {
    pthread_once(&registerOnce, registerShim);
    return registration;
}
