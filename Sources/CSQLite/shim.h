#ifndef SEGMENTER_CSQLITE_SHIM_H
#define SEGMENTER_CSQLITE_SHIM_H
#include <sqlite3.h>
/* SQLITE_TRANSIENT is a macro cast that Swift cannot import. */
static inline sqlite3_destructor_type segmenter_sqlite_transient(void) { return SQLITE_TRANSIENT; }
/* Memory statistics take a process-wide mutex on every allocation, which serialises
   connections working on different threads. Call before the first connection opens. */
static inline int segmenter_sqlite_disable_memstatus(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
#endif
