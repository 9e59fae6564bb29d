/* log: the daemon's log — one line per event, as text or as one JSON object, with a level; an
 * access line per finished request; the file is reopened on SIGHUP (logrotate).
 *
 * A struct log is made once by `seekd serve` and passed to whoever logs; every call is
 * thread-safe (one write(2) per line under a mutex). Request and prompt text never appear at
 * info level: an access line carries ids, counts and times only. */
#ifndef SEEKD_LOG_H
#define SEEKD_LOG_H

#include "engine/err.h"

/* Same order as enum opt_log_level. */
enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };
enum log_format { LOG_TEXT, LOG_JSON };

struct log;

/* What one finished request reports. */
struct log_access {
    const char *id;   /* the response id ("chatcmpl-…") */
    const char *path; /* the endpoint */
    int status;       /* HTTP status */
    int prompt_tokens, completion_tokens;
    double ttft_s; /* time to the first token; < 0: none came */
    double duration_s;
    const char *finish; /* finish reason of the first choice */
};

/* Opens the log: path NULL or "" writes to stderr, else appends to path. NULL with a message. */
struct log *log_create(const char *path, enum log_format fmt, enum log_level min, struct err *e);
void log_destroy(struct log *l);

/* Puts prefix before every message line from now on (a rank of an MPI job names itself). Call
 * before other threads log. */
void log_set_prefix(struct log *l, const char *prefix);

/* Reopens the file (after logrotate moved it); stderr needs nothing. -1: the old file stays. */
int log_reopen(struct log *l, struct err *e);

/* 1 when messages of level lv are written. */
int log_enabled(const struct log *l, enum log_level lv);

/* Writes one message line. l may be NULL (then stderr, text, info). */
void log_msg(struct log *l, enum log_level lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes one access line (level info). */
void log_access(struct log *l, const struct log_access *a);

/* Formats a line into buf without writing it (the unit tests). Returns its length. */
size_t log_format_msg(enum log_format fmt, enum log_level lv, double now, const char *msg,
                      char *buf, size_t cap);
size_t log_format_access(enum log_format fmt, double now, const struct log_access *a, char *buf,
                         size_t cap);

#endif
