/* hugemap: aligned read-only mappings of model files, and their move into anonymous huge pages
 * (hugemap.h). */
#include "engine/model/hugemap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { HUGE_PAGE = 2u << 20 };

static size_t page_up(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

void *hm_map(int fd, size_t size)
{
    size_t span = page_up(size) + HUGE_PAGE;
    char *res = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) return MAP_FAILED;
    char *a = (char *)(((uintptr_t)res + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    void *m = mmap(a, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (m == MAP_FAILED) {
        munmap(res, span);
        return MAP_FAILED;
    }
    if (a > res) munmap(res, (size_t)(a - res));
    if (res + span > a + page_up(size))
        munmap(a + page_up(size), (size_t)(res + span - (a + page_up(size))));
    madvise(m, size, MADV_HUGEPAGE); /* advice only: the kernel may not offer file huge pages */
    return m;
}

/* Reads size bytes of fd into a, 64 MiB at a time, letting each piece's page cache go after it. */
static int read_all(int fd, const char *path, char *a, size_t size, const struct hm_report *rep,
                    uint64_t *done, uint64_t total, struct err *e)
{
    size_t piece = 64u << 20;
    for (size_t off = 0; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece, got = 0;
        while (got < n) {
            ssize_t r = pread(fd, a + off + got, n - got, (off_t)(off + got));
            if (r <= 0)
                return err_set(e, "%s: read failed: %s", path,
                               r < 0 ? strerror(errno) : "short file");
            got += (size_t)r;
        }
        posix_fadvise(fd, (off_t)off, (off_t)n, POSIX_FADV_DONTNEED);
        *done += n;
        if (rep && rep->fn) rep->fn(rep->arg, *done, total);
    }
    return 0;
}

int hm_move(const char *path, void *map, size_t size, const struct hm_report *rep, uint64_t *done,
            uint64_t total, struct err *e)
{
    size_t len = page_up(size), span = len + HUGE_PAGE;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    char *res = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) {
        close(fd);
        return err_set(e, "%s: no memory for a copy of %zu bytes", path, size);
    }
    char *a = (char *)(((uintptr_t)res + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    madvise(a, len, MADV_HUGEPAGE);
    int rc = read_all(fd, path, a, size, rep, done, total, e);
    if (rc == 0 && (mprotect(a, len, PROT_READ) != 0 ||
                    mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, map) == MAP_FAILED))
        rc = err_set(e, "%s: cannot move the copy onto the mapping: %s", path, strerror(errno));
    if (rc == 0) posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* the file's pages, now unmapped */
    char *end = res + span, *rest = rc == 0 ? a + len : a; /* what was moved is gone from here */
    if (a > res) munmap(res, (size_t)(a - res));
    if (end > rest) munmap(rest, (size_t)(end - rest));
    close(fd);
    return rc;
}
