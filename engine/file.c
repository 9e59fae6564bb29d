/* file: regular files only, opened without blocking, read whole within a size limit. */
#include "engine/file.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int file_open_regular(const char *path, struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

char *file_read(const char *path, size_t max, size_t *n, struct err *e)
{
    int fd = file_open_regular(path, e);
    if (fd < 0) return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > max) {
        err_set(e, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (!buf) {
        err_set(e, "%s: cannot allocate %zu bytes", path, size + 1);
        goto out;
    }
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    if (got < size) {
        err_set(e, "%s: read %zu of %zu bytes: %s", path, got, size, got ? "file shrank" : strerror(errno));
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[size] = 0;
    if (n) *n = size;
out:
    close(fd);
    return buf;
}
