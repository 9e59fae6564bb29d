/* progress: reports the model load — a bar on a terminal (tensors, bytes, rate, ETA), plain log
 * lines otherwise, and STATUS= (plus watchdog pings) under systemd. It is the load_progress
 * callback that `seekd serve` hands to the engine, so engine/ never knows who is watching. */
#ifndef SEEKD_PROGRESS_H
#define SEEKD_PROGRESS_H

#include <stddef.h>

#include "engine/model/model.h"
#include "server/log.h"
#include "server/notify.h"

struct progress {
    struct log *log;
    struct notify *nt;       /* may be inactive (fd -1) */
    int tty;                 /* 1: draw a bar on stderr */
    double t0;               /* monotonic seconds at start */
    double last_line;        /* when the last line / STATUS went out */
    struct load_progress cb; /* pass &cb to the engine */
};

void progress_init(struct progress *p, struct log *log, struct notify *nt, int tty);

/* "42/1234 tensors, 1.5 GiB/40.0 GiB, 12.0 GiB/s, ETA 3s" for s at elapsed seconds. */
size_t progress_format(const struct load_status *s, double elapsed, char *buf, size_t cap);

#endif
