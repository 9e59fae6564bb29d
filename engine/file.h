/* file: opening and reading the files a checkpoint is made of, safely. Only regular files are
 * accepted: a FIFO or a device named like a model file would block start-up forever or never
 * end (/dev/zero), so it is refused with a message instead. */
#ifndef SEEKD_FILE_H
#define SEEKD_FILE_H

#include <stddef.h>

#include "engine/err.h"

/* Opens path read-only (close-on-exec) if it is a regular file; -1 with "path: ..." in e.
 * Never blocks: a FIFO is opened non-blocking, seen for what it is and closed. */
int file_open_regular(const char *path, struct err *e);

/* Reads a whole regular file of at most max bytes into a malloc'd, NUL-terminated buffer; *n
 * (may be NULL) gets its length. NULL with "path: ..." in e. */
char *file_read(const char *path, size_t max, size_t *n, struct err *e);

#endif
