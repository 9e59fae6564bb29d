/* utf8: validation and lossy conversion (U+FFFD per maximal invalid subpart, as Rust does). */
#include "engine/text/utf8.h"

#include "engine/err.h"

#include <stdlib.h>
#include <string.h>

/* Valid range of the second byte for each lead byte (Unicode Table 3-7); lo > hi means "not a
 * lead byte". */
static void second_byte_range(uint8_t lead, uint8_t *lo, uint8_t *hi, size_t *need)
{
    *lo = 0x80, *hi = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) *need = 2;
    else if (lead == 0xE0) *need = 3, *lo = 0xA0;
    else if (lead == 0xED) *need = 3, *hi = 0x9F;
    else if (lead >= 0xE1 && lead <= 0xEF) *need = 3;
    else if (lead == 0xF0) *need = 4, *lo = 0x90;
    else if (lead == 0xF4) *need = 4, *hi = 0x8F;
    else if (lead >= 0xF1 && lead <= 0xF3) *need = 4;
    else *need = 0, *lo = 1, *hi = 0;
}

enum utf8_scan utf8_scan(const uint8_t *s, size_t n, size_t *len, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *len = 1, *cp = s[0];
        return UTF8_CHAR;
    }
    uint8_t lo, hi;
    size_t need;
    second_byte_range(s[0], &lo, &hi, &need);
    if (!need) {
        *len = 1;
        return UTF8_INVALID;
    }
    uint32_t c = s[0] & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *len = i;
            return UTF8_INCOMPLETE;
        }
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) {
            *len = i;
            return UTF8_INVALID;
        }
        c = (c << 6) | (b & 0x3F);
    }
    *len = need, *cp = c;
    return UTF8_CHAR;
}

size_t utf8_valid_len(const uint8_t *s, size_t n)
{
    size_t i = 0, len;
    uint32_t cp;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (utf8_scan(s + i, n - i, &len, &cp) != UTF8_CHAR) return i;
        i += len;
    }
    return n;
}

static void append(char **out, size_t *n_out, size_t *cap, const void *p, size_t n)
{
    if (*n_out + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *n_out + n + 1) c *= 2;
        char *q = realloc(*out, c);
        if (!q) ERR_FATAL("out of memory (%zu bytes)", c);
        *out = q, *cap = c;
    }
    memcpy(*out + *n_out, p, n);
    *n_out += n;
    (*out)[*n_out] = 0;
}

size_t utf8_lossy_append(char **out, size_t *n_out, size_t *cap, const uint8_t *s, size_t n,
                         int final)
{
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0, run = 0, len;
    uint32_t cp;
    append(out, n_out, cap, "", 0);
    while (i < n) {
        enum utf8_scan r = s[i] < 0x80 ? UTF8_CHAR : utf8_scan(s + i, n - i, &len, &cp);
        if (s[i] < 0x80) len = 1;
        if (r == UTF8_CHAR) {
            i += len, run += len;
            continue;
        }
        append(out, n_out, cap, s + i - run, run);
        run = 0;
        if (r == UTF8_INCOMPLETE && !final) return len;
        append(out, n_out, cap, fffd, sizeof fffd);
        i += len;
    }
    append(out, n_out, cap, s + i - run, run);
    return 0;
}
