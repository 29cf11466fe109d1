#ifndef SEGMENTER_WAL_BUFFER_H
#define SEGMENTER_WAL_BUFFER_H

/* The name of the VFS that `segmenter_wal_buffer_register` adds. */
#define SEGMENTER_WAL_BUFFER_VFS "segmenter-wal-buffer"

/* Registers (once; later calls return the first result) a VFS over the default one that
   gathers a transaction's WAL frames in memory and writes them with one pwrite: SQLite
   writes each frame as two pwrites (header, page), so a commit of N pages costs 2N system
   calls, and at 1 KiB pages the kernel's per-call work was a third of the service's CPU
   under a real-time load. Returns an SQLite result code. */
int segmenter_wal_buffer_register(void);

#endif
