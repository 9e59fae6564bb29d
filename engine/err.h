/* err: the error value every fallible engine call fills in.
 *
 * Two tiers (see docs/ARCHITECTURE.md): impossible states abort with file:line (ERR_FATAL);
 * anything a request or a model file can cause returns -1 and leaves a message in a struct err
 * that the caller shows to the user unchanged. */
#ifndef SEEKD_ERR_H
#define SEEKD_ERR_H

#include <stddef.h>

struct err {
    char msg[512];
    int busy; /* 1: the server lacked a resource (memory) for this call, not the input at fault:
               * worth a retry later (HTTP 503, not 400) */
};

/* Formats the message (printf-style) and returns -1, so `return err_set(e, ...);` reads well.
 * e may be NULL. Clears busy. */
int err_set(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* err_set for a failure of the server's resources (sets busy). */
int err_busy(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message: "prefix: old message" (busy unchanged). Returns -1. */
int err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "file:line: message" to stderr and aborts: for states no input can produce. */
void err_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define ERR_FATAL(...) err_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

/* malloc/calloc that abort on exhaustion (used only for small bookkeeping). */
void *xcalloc(size_t n, size_t size);
void *xmalloc(size_t size);
void *xrealloc(void *p, size_t size);

#endif
