/* log: text or JSON lines to stderr or a file, levels, access lines, reopen on SIGHUP. */
#include "server/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define LINE_MAX_BYTES 4096

struct log {
    pthread_mutex_t mu; /* guards fd across reopen and keeps lines whole */
    int fd;             /* 2 (stderr) or the opened file */
    char *path;         /* NULL: stderr */
    enum log_format fmt;
    enum log_level min;
    char prefix[32];    /* put before every message ("rank 1: "); set before any thread logs */
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int open_file(const char *path, struct err *e)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) err_set(e, "log_file %s: %s", path, strerror(errno));
    return fd;
}

struct log *log_create(const char *path, enum log_format fmt, enum log_level min, struct err *e)
{
    int fd = 2;
    if (path && *path && (fd = open_file(path, e)) < 0) return NULL;
    struct log *l = xcalloc(1, sizeof *l);
    *l =
        (struct log){.fd = fd, .path = path && *path ? strdup(path) : NULL, .fmt = fmt, .min = min};
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void log_destroy(struct log *l)
{
    if (!l) return;
    if (l->fd != 2) close(l->fd);
    pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
}

void log_set_prefix(struct log *l, const char *prefix)
{
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
}

int log_reopen(struct log *l, struct err *e)
{
    if (!l->path) return 0;
    int fd = open_file(l->path, e);
    if (fd < 0) return -1;
    pthread_mutex_lock(&l->mu);
    int old = l->fd;
    l->fd = fd;
    pthread_mutex_unlock(&l->mu);
    close(old);
    return 0;
}

int log_enabled(const struct log *l, enum log_level lv)
{
    return lv >= (l ? l->min : LOGL_INFO);
}

/* RFC 3339 UTC with milliseconds: 2026-01-02T03:04:05.678Z. */
static void timestamp(double now, char *buf, size_t cap)
{
    time_t sec = (time_t)now;
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)((now - (double)sec) * 1000) % 1000);
}

/* Writes a JSON object as one line and frees it. */
static size_t json_line(json_t *o, char *buf, size_t cap)
{
    size_t n = json_dumpb(o, buf, cap - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (n >= cap - 1) n = 0; /* too long for a line: dropped rather than cut mid-object */
    buf[n++] = '\n';
    return n;
}

/* Clamps a snprintf result to the buffer and ends the line. */
static size_t end_line(int n, char *buf, size_t cap)
{
    size_t len = n < 0 ? 0 : (size_t)n >= cap - 1 ? cap - 2 : (size_t)n;
    buf[len++] = '\n';
    buf[len] = 0;
    return len;
}

size_t log_format_msg(enum log_format fmt, enum log_level lv, double now, const char *msg,
                      char *buf, size_t cap)
{
    char ts[40];
    timestamp(now, ts, sizeof ts);
    if (fmt == LOG_JSON)
        return json_line(
            json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[lv], "msg", msg), buf, cap);
    return end_line(snprintf(buf, cap, "%s %-5s %s", ts, level_names[lv], msg), buf, cap);
}

size_t log_format_access(enum log_format fmt, double now, const struct log_access *a, char *buf,
                         size_t cap)
{
    char ts[40];
    timestamp(now, ts, sizeof ts);
    double ttft_ms = a->ttft_s < 0 ? -1 : a->ttft_s * 1000, dur_ms = a->duration_s * 1000;
    const char *finish = a->finish ? a->finish : "none";
    if (fmt == LOG_JSON) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:f, s:f, s:s}", "ts", ts,
                              "level", "info", "msg", "access", "id", a->id ? a->id : "-", "path",
                              a->path ? a->path : "-", "status", a->status, "prompt_tokens",
                              a->prompt_tokens, "completion_tokens", a->completion_tokens,
                              "ttft_ms", ttft_ms, "duration_ms", dur_ms, "finish_reason", finish);
        if (a->ttft_s < 0) json_object_set_new(o, "ttft_ms", json_null());
        return json_line(o, buf, cap);
    }
    char ttft[32] = "-";
    if (a->ttft_s >= 0) snprintf(ttft, sizeof ttft, "%.1f", ttft_ms);
    int n = snprintf(buf, cap,
                     "%s info  access id=%s path=%s status=%d prompt_tokens=%d "
                     "completion_tokens=%d ttft_ms=%s duration_ms=%.1f finish_reason=%s",
                     ts, a->id ? a->id : "-", a->path ? a->path : "-", a->status, a->prompt_tokens,
                     a->completion_tokens, ttft, dur_ms, finish);
    return end_line(n, buf, cap);
}

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void write_line(struct log *l, const char *buf, size_t n)
{
    if (!l) {
        (void)!write(2, buf, n);
        return;
    }
    pthread_mutex_lock(&l->mu);
    (void)!write(l->fd, buf, n);
    pthread_mutex_unlock(&l->mu);
}

void log_msg(struct log *l, enum log_level lv, const char *fmt, ...)
{
    if (!log_enabled(l, lv)) return;
    char msg[LINE_MAX_BYTES / 2], buf[LINE_MAX_BYTES];
    va_list ap;
    size_t at = l ? (size_t)snprintf(msg, sizeof msg, "%s", l->prefix) : 0;
    va_start(ap, fmt);
    vsnprintf(msg + at, sizeof msg - at, fmt, ap);
    va_end(ap);
    size_t n = log_format_msg(l ? l->fmt : LOG_TEXT, lv, wall_now(), msg, buf, sizeof buf);
    write_line(l, buf, n);
}

void log_access(struct log *l, const struct log_access *a)
{
    if (!log_enabled(l, LOGL_INFO)) return;
    char buf[LINE_MAX_BYTES];
    size_t n = log_format_access(l ? l->fmt : LOG_TEXT, wall_now(), a, buf, sizeof buf);
    write_line(l, buf, n);
}
