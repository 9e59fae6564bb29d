/* hugemap: model files mapped read-only at 2 MiB-aligned addresses, and moved from the page cache
 * into anonymous memory backed by transparent huge pages at those same addresses — for every
 * weight format that reads its tensors in place (safetensors, GGUF).
 *
 * Weights read from huge pages stream faster: a 4 KiB page is a TLB miss, and the hardware
 * prefetchers stop at its end. The move costs no more memory than the mapping (the page cache is
 * let go piece by piece as the copy is made), but the file is read whole at once, the copy is
 * private to this process, and the next process reads the file again from disk. */
#ifndef SEEKD_HUGEMAP_H
#define SEEKD_HUGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* size bytes of fd mapped read-only at a 2 MiB-aligned address (MADV_HUGEPAGE advised, for
 * kernels that keep file pages in huge folios); MAP_FAILED on failure. */
void *hm_map(int fd, size_t size);

/* Progress of a move: bytes read so far of all the files moved together. */
struct hm_report {
    void (*fn)(void *arg, uint64_t done, uint64_t total);
    void *arg;
};

/* Reads the file at path (size bytes, mapped whole at map by hm_map) into fresh anonymous memory
 * advised for huge pages and moves that memory onto map: the same addresses, read-only again.
 * *done counts the bytes read (of total, for rep). On failure the mapping is left serving. */
int hm_move(const char *path, void *map, size_t size, const struct hm_report *rep, uint64_t *done,
            uint64_t total, struct err *e);

#endif
