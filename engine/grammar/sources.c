/* sources: the small grammar sources — a whole-output regular expression and a list of choices. */
#include <stdio.h>

#include "engine/grammar/gram_internal.h"
#include "engine/grammar/regex.h"

struct gram *gram_from_regex(const char *re, size_t n, const struct gram_limits *lim, struct err *e)
{
    struct gb b;
    gb_init(&b, lim, 0);
    int32_t root = gb_rule(&b, "root");
    gb_rule_define(&b, root, rx_build(&b, re, n, GB_RAW, false, "regex"));
    return gram_compile(&b, root, e);
}

struct gram *gram_from_choices(const char *const *s, const size_t *len, int n,
                               const struct gram_limits *lim, struct err *e)
{
    struct gb b;
    gb_init(&b, lim, 0);
    if (n < 1) gb_fail(&b, "choice: the list is empty");
    int32_t root = gb_rule(&b, "root");
    struct gfrag f = {0};
    for (int i = 0; i < n && !b.failed; i++) {
        gb_spend(&b, (int64_t)len[i] + 1);
        struct gfrag c = gb_lit(&b, s[i], len[i]);
        f = i ? gb_alt(&b, f, c) : c;
    }
    gb_rule_define(&b, root, f);
    return gram_compile(&b, root, e);
}
