#ifndef SEGMENTER_CFREETDS_SHIM_H
#define SEGMENTER_CFREETDS_SHIM_H
#include <sybfront.h>
#include <sybdb.h>
/* dbopen and the DBSETL* setters are macros, which Swift cannot import. */
static inline DBPROCESS *segmenter_tds_open(LOGINREC *login, const char *server) { return tdsdbopen(login, server, 1); }
static inline RETCODE segmenter_tds_set_user(LOGINREC *login, const char *value) { return dbsetlname(login, value, DBSETUSER); }
static inline RETCODE segmenter_tds_set_password(LOGINREC *login, const char *value) { return dbsetlname(login, value, DBSETPWD); }
static inline RETCODE segmenter_tds_set_app(LOGINREC *login, const char *value) { return dbsetlname(login, value, DBSETAPP); }
static inline RETCODE segmenter_tds_set_database(LOGINREC *login, const char *value) { return dbsetlname(login, value, DBSETDBNAME); }
static inline RETCODE segmenter_tds_set_charset(LOGINREC *login, const char *value) { return dbsetlname(login, value, DBSETCHARSET); }
#endif
