/* notify: sd_notify over AF_UNIX SOCK_DGRAM, and WATCHDOG_USEC parsing. */
#include "server/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int notify_parse_addr(const char *value, struct sockaddr_un *addr, socklen_t *len)
{
    size_t n = value ? strlen(value) : 0;
    if (n < 2 || n >= sizeof addr->sun_path || (value[0] != '/' && value[0] != '@')) return -1;
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, value, n);
    if (value[0] == '@') addr->sun_path[0] = 0; /* abstract: a leading NUL, no terminator */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (value[0] == '/'));
    return 0;
}

uint64_t notify_parse_watchdog(const char *usec, const char *wpid, pid_t pid)
{
    if (!usec || !*usec) return 0;
    if (wpid && *wpid) {
        char *end;
        long p = strtol(wpid, &end, 10);
        if (*end || p != (long)pid) return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(usec, &end, 10);
    if (errno || *end || usec[0] == '-') return 0;
    return v;
}

int notify_open(struct notify *n, struct err *e)
{
    *n = (struct notify){.fd = -1};
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !*sock) return 0;
    if (notify_parse_addr(sock, &n->addr, &n->addr_len) != 0)
        return err_set(e, "NOTIFY_SOCKET \"%s\" is not a socket path or @name", sock);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) return err_set(e, "NOTIFY_SOCKET: socket: %s", strerror(errno));
    n->watchdog_usec =
        notify_parse_watchdog(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid());
    return 0;
}

void notify_close(struct notify *n)
{
    if (n->fd >= 0) close(n->fd);
    n->fd = -1;
}

int notify_send(struct notify *n, const char *fmt, ...)
{
    if (!n || n->fd < 0) return 0;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof msg) return -1;
    ssize_t sent =
        sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&n->addr, n->addr_len);
    return sent == len ? 0 : -1;
}
