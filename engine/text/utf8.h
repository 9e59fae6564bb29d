/* utf8: UTF-8 validation and the lossy "replace each maximal invalid subpart with U+FFFD" rule
 * that Rust's String::from_utf8_lossy (and so HF tokenizers' decode) applies. */
#ifndef SEEKD_UTF8_H
#define SEEKD_UTF8_H

#include <stddef.h>
#include <stdint.h>

enum utf8_scan {
    UTF8_CHAR = 1,       /* a complete, valid character */
    UTF8_INCOMPLETE = 0, /* a valid prefix that the end of the input cut short */
    UTF8_INVALID = -1,   /* a maximal invalid subpart: replace it with one U+FFFD */
};

/* Classifies the sequence starting at s[0] (n >= 1); *len gets the bytes it covers. */
enum utf8_scan utf8_scan(const uint8_t *s, size_t n, size_t *len, uint32_t *cp);

/* Returns the offset of the first invalid or truncated byte, or n when all of s is valid. */
size_t utf8_valid_len(const uint8_t *s, size_t n);

/* Appends s to out (growing the buffer with realloc), replacing invalid subparts with U+FFFD.
 * When final is 0, a truncated last character is not written: its length is returned so the
 * caller can keep it for the next call; otherwise it is replaced and 0 is returned. */
size_t utf8_lossy_append(char **out, size_t *n_out, size_t *cap, const uint8_t *s, size_t n,
                         int final);

#endif
