/* match_internal: the matcher's layout and its stepping primitives, shared by match.c and
 * mask.c. Not for use outside engine/grammar. */
#ifndef SEEKD_GRAMMAR_MATCH_INTERNAL_H
#define SEEKD_GRAMMAR_MATCH_INTERNAL_H

#include "engine/grammar/gram_internal.h"
#include "engine/grammar/match.h"

#define GM_ROOT    (-1) /* below the root rule: popping here completes the document */
#define GM_UNKNOWN (-2) /* below a top whose stack is not known (classification walks) */

enum { GM_CAN_END = 1, GM_POP_UNKNOWN = 2 };

/* A stack top (a consuming state over an interned frame), or an interned frame itself (a
 * return state over the frame below it). */
struct gm_top {
    int32_t state, parent;
};

/* Tops reached at one depth of a walk. */
struct gm_level {
    struct gm_top *t;
    int32_t n, cap;
    unsigned flags;  /* GM_CAN_END, GM_POP_UNKNOWN reached while expanding */
    int32_t fr_mark; /* frames in use once this level was made */
};

struct gm {
    struct gram *g;
    struct gm_top *fr; /* [n_fr] interned frames */
    int32_t *fr_next;  /* [n_fr] hash chains, newest first */
    int32_t n_fr, cap_fr;
    int32_t *bucket; /* [n_bucket] chain heads, -1 empty */
    uint32_t n_bucket;
    int32_t live_fr;     /* frames alive after the last compaction */
    struct gm_level cur; /* the committed state */

    /* scratch for expand */
    struct gm_top *work;
    int32_t cap_work;
    uint64_t *vis_key; /* visited set: open addressing, stamped */
    uint32_t *vis_gen;
    uint32_t n_vis, gen;

    /* walk levels by depth (mask.c, accept_bytes) */
    struct gm_level *lv;
    int32_t n_lv;
    int64_t budget; /* work left in the current mask computation */
};

/* Tops reachable from the byte c out of in, expanded, into out (out->n reset). -1 with a message
 * when a bound is passed. */
int gm_step(struct gm *m, const struct gm_level *in, uint8_t c, struct gm_level *out,
            struct err *e);
/* Expands seeds (states just reached) into out. */
int gm_expand(struct gm *m, const struct gm_top *seeds, int32_t n, struct gm_level *out,
              struct err *e);
/* Drops frames interned after mark (newest first). */
void gm_rewind(struct gm *m, int32_t mark);
/* The walk level of depth d (grown on demand). */
struct gm_level *gm_level_at(struct gm *m, int32_t d);
void gm_level_copy(struct gm_level *dst, const struct gm_level *src);
/* Levels 0..max_depth+1 ready; level 0 holds just top. Returns level 0. */
struct gm_level *gm_walk_start(struct gm *m, int32_t max_depth, struct gm_top top);
/* A matcher without a state or a reference to g, for classification walks inside g's own cache
 * (a reference would keep g alive forever). */
struct gm *gm_bare(struct gram *g);
void gm_bare_destroy(struct gm *m);

#endif
