/* notify: the systemd service notification protocol (sd_notify) without libsystemd — datagrams
 * of "KEY=VALUE\n" lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an
 * abstract-namespace name written with a leading '@'), and the watchdog interval from
 * $WATCHDOG_USEC / $WATCHDOG_PID.
 *
 * Not under systemd (no $NOTIFY_SOCKET) every call is a no-op, so callers never check. */
#ifndef SEEKD_NOTIFY_H
#define SEEKD_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "engine/err.h"

struct notify {
    int fd; /* -1: not under a service manager */
    struct sockaddr_un addr;
    socklen_t addr_len;
    uint64_t watchdog_usec; /* 0: no watchdog asked for */
};

/* Reads the environment. -1 with a message when NOTIFY_SOCKET is set but unusable. */
int notify_open(struct notify *n, struct err *e);
void notify_close(struct notify *n);

/* Fills addr from a NOTIFY_SOCKET value ("/run/…" or "@name"); -1 when it cannot be one. */
int notify_parse_addr(const char *value, struct sockaddr_un *addr, socklen_t *len);

/* The watchdog interval in microseconds from WATCHDOG_USEC, when WATCHDOG_PID is unset or is
 * pid; else 0. */
uint64_t notify_parse_watchdog(const char *usec, const char *wpid, pid_t pid);

/* Sends one datagram, printf-style ("READY=1", "STATUS=loading 40%"). 0 when sent or not under
 * systemd. */
int notify_send(struct notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
