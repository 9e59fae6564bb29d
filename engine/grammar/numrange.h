/* numrange: JSON numbers (or integers) between optional bounds, exactly, as a builder fragment
 * (numrange.c explains the encoding and why decimal comparison is exact). */
#ifndef SEEKD_GRAMMAR_NUMRANGE_H
#define SEEKD_GRAMMAR_NUMRANGE_H

#include "engine/grammar/build.h"

/* min/max: decimal text ("-1.5", "1e+20") or NULL; excl_*: the bound itself is excluded.
 * Fails the builder ("where: ...") when no number with at most 15 digits fits. */
struct gfrag gb_number(struct gb *b, bool integer, const char *min, bool excl_min, const char *max,
                       bool excl_max, const char *where);

#endif
