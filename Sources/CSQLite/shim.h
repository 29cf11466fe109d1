#ifndef SEGMENTER_CSQLITE_SHIM_H
#define SEGMENTER_CSQLITE_SHIM_H
#include <sqlite3.h>
/* SQLITE_TRANSIENT is a macro cast that Swift cannot import. */
static inline sqlite3_destructor_type segmenter_sqlite_transient(void) { return SQLITE_TRANSIENT; }
#endif
