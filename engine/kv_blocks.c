/* kv_blocks: block ids, refcounts, the free list, and the prefix cache (hash table + LRU).
 *
 * Owns: every block's state and the token ids of cached blocks (to check hash collisions).
 * Does not own: block tables' lifetimes (sequences hold them) or any KV memory (the backend). */
#include "engine/kv_blocks.h"

#include <stdlib.h>
#include <string.h>

#define NONE (-1)

struct kvb_block {
    int32_t ref_count;
    bool hashed;       /* registered in the hash table (full and computed) */
    uint32_t gen;      /* bumped each time the block leaves the cache */
    uint64_t hash;     /* chained content hash, when hashed */
    int32_t parent_id; /* parent block's id and generation, when hashed (NONE: first block) */
    uint32_t parent_gen;
    int32_t next_in_bucket; /* hash chain */
    int32_t lru_prev;       /* LRU list of cached blocks */
    int32_t lru_next;
};

struct kvb {
    int32_t n_blocks;
    int32_t block_size;
    struct kvb_block *blocks; /* [n_blocks] */
    int32_t *tokens;          /* [n_blocks, block_size] token ids of hashed blocks */
    int32_t *free_ids;        /* [n_blocks] stack: free_ids[n_free-1] is taken next */
    int32_t n_free;
    int32_t lru_head; /* least recently used cached block, evicted first */
    int32_t lru_tail;
    int32_t n_cached;
    int32_t *buckets; /* [bucket_mask+1] first block of each hash chain */
    uint32_t bucket_mask;
    kvb_hash_fn hash;
    bool caching;     /* prefix caching on: full blocks are registered and looked up */
};

/* Where a walk along a chain of cached blocks stands: the last block's hash and identity. */
struct chain {
    uint64_t hash;
    int32_t id;
    uint32_t gen;
};

static const struct chain chain_root = {0, NONE, 0};

/* ---- creation and small queries ------------------------------------------------------------ */

struct kvb *kvb_create(int32_t n_blocks, int32_t block_size)
{
    if (n_blocks < 1 || block_size < 1) ERR_FATAL("kvb_create(%d, %d)", n_blocks, block_size);
    struct kvb *kv = xcalloc(1, sizeof *kv);
    kv->n_blocks = n_blocks;
    kv->block_size = block_size;
    kv->blocks = xcalloc((size_t)n_blocks, sizeof *kv->blocks);
    kv->tokens = xcalloc((size_t)n_blocks * (size_t)block_size, sizeof *kv->tokens);
    kv->free_ids = xcalloc((size_t)n_blocks, sizeof *kv->free_ids);
    uint32_t n_buckets = 1;
    while (n_buckets < (uint32_t)n_blocks) n_buckets <<= 1;
    kv->bucket_mask = n_buckets - 1;
    kv->buckets = xcalloc(n_buckets, sizeof *kv->buckets);
    for (uint32_t i = 0; i < n_buckets; i++) kv->buckets[i] = NONE;
    for (int32_t i = 0; i < n_blocks; i++) { /* pushed in reverse: block 0 is taken first */
        kv->free_ids[i] = n_blocks - 1 - i;
        kv->blocks[i].lru_prev = kv->blocks[i].lru_next = NONE;
    }
    kv->n_free = n_blocks;
    kv->lru_head = kv->lru_tail = NONE;
    kv->hash = kvb_hash_fnv;
    kv->caching = true;
    return kv;
}

void kvb_destroy(struct kvb *kv)
{
    if (!kv) return;
    free(kv->blocks);
    free(kv->tokens);
    free(kv->free_ids);
    free(kv->buckets);
    free(kv);
}

uint64_t kvb_hash_fnv(uint64_t parent, const int32_t *tokens, int32_t n_tokens)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) h = (h ^ ((parent >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    for (int32_t t = 0; t < n_tokens; t++) {
        uint32_t v = (uint32_t)tokens[t];
        for (int i = 0; i < 4; i++) h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ull;
    }
    return h;
}

void kvb_set_hash(struct kvb *kv, kvb_hash_fn fn)
{
    if (kv->n_free != kv->n_blocks) ERR_FATAL("kvb_set_hash on a cache in use");
    kv->hash = fn ? fn : kvb_hash_fnv;
}

int32_t kvb_blocks_in_budget(uint64_t budget_bytes, int32_t block_size, int32_t n_layers,
                             int32_t latent_dim, int32_t bytes_per_elem)
{
    uint64_t per_block =
        (uint64_t)block_size * (uint64_t)n_layers * (uint64_t)latent_dim * (uint64_t)bytes_per_elem;
    if (per_block == 0) return 0;
    uint64_t n = budget_bytes / per_block;
    return n > INT32_MAX ? INT32_MAX : (int32_t)n;
}

int32_t kvb_block_size(const struct kvb *kv)
{
    return kv->block_size;
}

int32_t kvb_n_blocks(const struct kvb *kv)
{
    return kv->n_blocks;
}

int32_t kvb_blocks_for(const struct kvb *kv, int32_t n_tokens)
{
    return (int32_t)(((int64_t)n_tokens + kv->block_size - 1) / kv->block_size);
}

int32_t kvb_n_available(const struct kvb *kv)
{
    return kv->n_free + kv->n_cached;
}

void kvb_stats(const struct kvb *kv, struct kvb_stats *st)
{
    st->n_blocks = kv->n_blocks;
    st->n_free = kv->n_free;
    st->n_cached = kv->n_cached;
    st->n_used = kv->n_blocks - kv->n_free - kv->n_cached;
}

/* ---- LRU list and hash table --------------------------------------------------------------- */

static void lru_remove(struct kvb *kv, int32_t id)
{
    struct kvb_block *b = &kv->blocks[id];
    if (b->lru_prev != NONE)
        kv->blocks[b->lru_prev].lru_next = b->lru_next;
    else
        kv->lru_head = b->lru_next;
    if (b->lru_next != NONE)
        kv->blocks[b->lru_next].lru_prev = b->lru_prev;
    else
        kv->lru_tail = b->lru_prev;
    b->lru_prev = b->lru_next = NONE;
    kv->n_cached--;
}

static void lru_append(struct kvb *kv, int32_t id)
{
    struct kvb_block *b = &kv->blocks[id];
    b->lru_prev = kv->lru_tail;
    b->lru_next = NONE;
    if (kv->lru_tail != NONE)
        kv->blocks[kv->lru_tail].lru_next = id;
    else
        kv->lru_head = id;
    kv->lru_tail = id;
    kv->n_cached++;
}

static const int32_t *block_tokens(const struct kvb *kv, int32_t id)
{
    return kv->tokens + (size_t)id * (size_t)kv->block_size;
}

/* The cached block with this hash, parent and content, or NONE. */
static int32_t find(const struct kvb *kv, uint64_t hash, struct chain parent, const int32_t *tokens)
{
    size_t n_bytes = (size_t)kv->block_size * sizeof *tokens;
    for (int32_t id = kv->buckets[hash & kv->bucket_mask]; id != NONE;
         id = kv->blocks[id].next_in_bucket) {
        const struct kvb_block *b = &kv->blocks[id];
        if (b->hash == hash && b->parent_id == parent.id && b->parent_gen == parent.gen &&
            memcmp(block_tokens(kv, id), tokens, n_bytes) == 0)
            return id;
    }
    return NONE;
}

static void hash_insert(struct kvb *kv, int32_t id, uint64_t hash, struct chain parent,
                        const int32_t *tokens)
{
    struct kvb_block *b = &kv->blocks[id];
    b->hashed = true;
    b->hash = hash;
    b->parent_id = parent.id;
    b->parent_gen = parent.gen;
    memcpy(kv->tokens + (size_t)id * (size_t)kv->block_size, tokens,
           (size_t)kv->block_size * sizeof *tokens);
    int32_t *head = &kv->buckets[hash & kv->bucket_mask];
    b->next_in_bucket = *head;
    *head = id;
}

/* Takes a block out of the cache; its generation changes so cached children stop matching. */
static void hash_remove(struct kvb *kv, int32_t id)
{
    struct kvb_block *b = &kv->blocks[id];
    int32_t *link = &kv->buckets[b->hash & kv->bucket_mask];
    while (*link != id) link = &kv->blocks[*link].next_in_bucket;
    *link = b->next_in_bucket;
    b->next_in_bucket = NONE;
    b->hashed = false;
    b->gen++;
}

/* ---- taking and releasing blocks ----------------------------------------------------------- */

/* A block for new content: a free one, else the least recently used cached one. */
static int32_t take_fresh(struct kvb *kv)
{
    int32_t id;
    if (kv->n_free > 0) {
        id = kv->free_ids[--kv->n_free];
    } else {
        id = kv->lru_head;
        if (id == NONE) ERR_FATAL("kv cache: no block to take (caller skipped the check)");
        lru_remove(kv, id);
        hash_remove(kv, id);
    }
    kv->blocks[id].ref_count = 1;
    return id;
}

/* One more reference to a block found in the cache. */
static void take_cached(struct kvb *kv, int32_t id)
{
    if (kv->blocks[id].ref_count++ == 0) lru_remove(kv, id);
}

static void release(struct kvb *kv, int32_t id)
{
    struct kvb_block *b = &kv->blocks[id];
    if (b->ref_count <= 0)
        ERR_FATAL("kv cache: block %d released at refcount %d", id, b->ref_count);
    if (--b->ref_count > 0) return;
    if (b->hashed)
        lru_append(kv, id);
    else
        kv->free_ids[kv->n_free++] = id;
}

static void table_reserve(struct kvb_table *t, int32_t n)
{
    if (n <= t->cap) return;
    int32_t cap = t->cap ? t->cap : 4;
    while (cap < n) cap *= 2;
    int32_t *ids = xcalloc((size_t)cap, sizeof *ids);
    if (t->n_ids) memcpy(ids, t->ids, (size_t)t->n_ids * sizeof *ids);
    free(t->ids);
    t->ids = ids;
    t->cap = cap;
}

static struct chain table_chain(const struct kvb_table *t)
{
    if (t->n_hashed == 0) return chain_root;
    return (struct chain){t->chain_hash, t->parent_id, t->parent_gen};
}

static void table_set_chain(struct kvb_table *t, struct chain c)
{
    t->chain_hash = c.hash;
    t->parent_id = c.id;
    t->parent_gen = c.gen;
}

/* ---- prefix lookup and allocation ---------------------------------------------------------- */

/* Walks the cache along tokens' full blocks (never the last token); stores the hit ids in ids
 * (when not NULL) and where the walk ended in *end. */
static struct kvb_hit walk(const struct kvb *kv, const int32_t *tokens, int32_t n_tokens,
                           int32_t *ids, struct chain *end)
{
    struct kvb_hit hit = {0, 0};
    struct chain c = chain_root;
    int32_t bs = kv->block_size, max = n_tokens > 0 && kv->caching ? (n_tokens - 1) / bs : 0;
    for (; hit.n_blocks < max; hit.n_blocks++) {
        const int32_t *blk = tokens + (size_t)hit.n_blocks * (size_t)bs;
        uint64_t h = kv->hash(c.hash, blk, bs);
        int32_t id = find(kv, h, c, blk);
        if (id == NONE) break;
        if (kv->blocks[id].ref_count == 0) hit.n_idle++;
        if (ids) ids[hit.n_blocks] = id;
        c = (struct chain){h, id, kv->blocks[id].gen};
    }
    if (end) *end = c;
    return hit;
}

void kvb_set_caching(struct kvb *kv, bool on)
{
    kv->caching = on;
}

struct kvb_hit kvb_lookup(const struct kvb *kv, const int32_t *tokens, int32_t n_tokens)
{
    return walk(kv, tokens, n_tokens, NULL, NULL);
}

bool kvb_can_allocate(const struct kvb *kv, struct kvb_hit hit, int32_t n_cover)
{
    int32_t n_new = kvb_blocks_for(kv, n_cover) - hit.n_blocks;
    if (n_new < 0) n_new = 0;
    return n_new + hit.n_idle <= kvb_n_available(kv);
}

int32_t kvb_allocate(struct kvb *kv, struct kvb_table *t, const int32_t *tokens, int32_t n_tokens,
                     int32_t n_cover)
{
    if (t->n_ids != 0) ERR_FATAL("kvb_allocate into a non-empty table");
    struct kvb_hit hit = kvb_lookup(kv, tokens, n_tokens);
    if (!kvb_can_allocate(kv, hit, n_cover)) return -1;
    int32_t n_want = kvb_blocks_for(kv, n_cover);
    table_reserve(t, n_want > hit.n_blocks ? n_want : hit.n_blocks);
    struct chain end;
    walk(kv, tokens, n_tokens, t->ids, &end);
    for (int32_t i = 0; i < hit.n_blocks; i++) take_cached(kv, t->ids[i]);
    t->n_ids = t->n_hashed = hit.n_blocks;
    table_set_chain(t, end);
    while (t->n_ids < n_want) t->ids[t->n_ids++] = take_fresh(kv);
    return hit.n_blocks * kv->block_size;
}

bool kvb_can_grow(const struct kvb *kv, const struct kvb_table *t, int32_t n_cover)
{
    return kvb_blocks_for(kv, n_cover) - t->n_ids <= kvb_n_available(kv);
}

int kvb_grow(struct kvb *kv, struct kvb_table *t, int32_t n_cover)
{
    if (!kvb_can_grow(kv, t, n_cover)) return -1;
    int32_t n_want = kvb_blocks_for(kv, n_cover);
    table_reserve(t, n_want);
    while (t->n_ids < n_want) t->ids[t->n_ids++] = take_fresh(kv);
    return 0;
}

/* ---- commit, free, fork -------------------------------------------------------------------- */

/* Registers the table's next full block, or finds the cached twin that already stands for it;
 * either way the chain advances to the block that later lookups will walk through. */
static void commit_one(struct kvb *kv, struct kvb_table *t, const int32_t *blk)
{
    int32_t id = t->ids[t->n_hashed];
    struct chain parent = table_chain(t);
    uint64_t h = kv->hash(parent.hash, blk, kv->block_size);
    int32_t twin = kv->blocks[id].hashed ? id : find(kv, h, parent, blk);
    if (twin == NONE) {
        hash_insert(kv, id, h, parent, blk);
        twin = id;
    }
    const struct kvb_block *b = &kv->blocks[twin];
    table_set_chain(t, (struct chain){b->hash, twin, b->gen});
    t->n_hashed++;
}

void kvb_commit(struct kvb *kv, struct kvb_table *t, const int32_t *tokens, int32_t n_computed)
{
    int32_t n_full = n_computed / kv->block_size;
    if (n_full > t->n_ids) ERR_FATAL("kvb_commit: %d tokens but %d blocks", n_computed, t->n_ids);
    while (kv->caching && t->n_hashed < n_full)
        commit_one(kv, t, tokens + (size_t)t->n_hashed * (size_t)kv->block_size);
}

void kvb_free(struct kvb *kv, struct kvb_table *t)
{
    for (int32_t i = t->n_ids - 1; i >= 0; i--) release(kv, t->ids[i]);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

int kvb_fork(struct kvb *kv, const struct kvb_table *src, int32_t n_computed, struct kvb_table *dst,
             struct kvb_copy *copy)
{
    int32_t n_full = n_computed / kv->block_size, n_part = n_computed % kv->block_size ? 1 : 0;
    if (dst->n_ids != 0) ERR_FATAL("kvb_fork into a non-empty table");
    if (n_full + n_part > src->n_ids) ERR_FATAL("kvb_fork past the source table");
    if (n_part && kvb_n_available(kv) == 0) return -1;
    table_reserve(dst, n_full + n_part);
    for (int32_t i = 0; i < n_full; i++) {
        dst->ids[i] = src->ids[i];
        take_cached(kv, src->ids[i]);
    }
    dst->n_ids = n_full;
    if (src->n_hashed <= n_full) { /* else kvb_commit rebuilds the chain from the blocks */
        dst->n_hashed = src->n_hashed;
        table_set_chain(dst, table_chain(src));
    }
    if (!n_part) return 0;
    dst->ids[dst->n_ids++] = take_fresh(kv);
    *copy = (struct kvb_copy){src->ids[n_full], dst->ids[n_full]};
    return 1;
}

/* ---- invariants ---------------------------------------------------------------------------- */

/* Counts references from the tables into refs[]; a table must not hold a block twice. */
static int count_table_refs(const struct kvb *kv, const struct kvb_table *const *tables,
                            int32_t n_tables, int32_t *refs, int32_t *stamp, struct err *e)
{
    for (int32_t t = 0; t < n_tables; t++) {
        const struct kvb_table *tb = tables[t];
        if (tb->n_hashed > tb->n_ids || tb->n_ids > tb->cap)
            return err_set(e, "table %d: n_hashed %d, n_ids %d, cap %d", t, tb->n_hashed, tb->n_ids,
                           tb->cap);
        for (int32_t i = 0; i < tb->n_ids; i++) {
            int32_t id = tb->ids[i];
            if (id < 0 || id >= kv->n_blocks) return err_set(e, "table %d: bad id %d", t, id);
            if (stamp[id] == t + 1) return err_set(e, "table %d holds block %d twice", t, id);
            stamp[id] = t + 1;
            refs[id]++;
        }
    }
    return 0;
}

/* Marks each block's list (1 free, 2 LRU) in where[], failing on a block listed twice. */
static int check_lists(const struct kvb *kv, int32_t *where, struct err *e)
{
    for (int32_t i = 0; i < kv->n_free; i++) {
        int32_t id = kv->free_ids[i];
        if (where[id]) return err_set(e, "block %d twice in the free list", id);
        where[id] = 1;
        if (kv->blocks[id].ref_count != 0 || kv->blocks[id].hashed)
            return err_set(e, "free block %d: refcount %d, hashed %d", id, kv->blocks[id].ref_count,
                           kv->blocks[id].hashed);
    }
    int32_t n = 0, prev = NONE;
    for (int32_t id = kv->lru_head; id != NONE; prev = id, id = kv->blocks[id].lru_next, n++) {
        if (where[id] || n > kv->n_blocks) return err_set(e, "block %d twice in lists", id);
        where[id] = 2;
        const struct kvb_block *b = &kv->blocks[id];
        if (b->lru_prev != prev || b->ref_count != 0 || !b->hashed)
            return err_set(e, "cached block %d: bad links, refcount or hash state", id);
    }
    if (n != kv->n_cached || prev != kv->lru_tail)
        return err_set(e, "LRU list holds %d blocks, n_cached %d", n, kv->n_cached);
    return 0;
}

/* Every hashed block sits in its own bucket exactly once, and nothing else does. */
static int check_buckets(const struct kvb *kv, struct err *e)
{
    int32_t n_in_buckets = 0, n_hashed = 0;
    for (uint32_t bk = 0; bk <= kv->bucket_mask; bk++)
        for (int32_t id = kv->buckets[bk]; id != NONE; id = kv->blocks[id].next_in_bucket) {
            if (!kv->blocks[id].hashed || (kv->blocks[id].hash & kv->bucket_mask) != bk)
                return err_set(e, "block %d misplaced in bucket %u", id, bk);
            if (++n_in_buckets > kv->n_blocks) return err_set(e, "hash chain loops");
        }
    for (int32_t id = 0; id < kv->n_blocks; id++) n_hashed += kv->blocks[id].hashed;
    if (n_hashed != n_in_buckets)
        return err_set(e, "%d hashed blocks, %d in buckets", n_hashed, n_in_buckets);
    return 0;
}

static int check_refs(const struct kvb *kv, const int32_t *refs, const int32_t *where,
                      struct err *e)
{
    int32_t n_used = 0;
    for (int32_t id = 0; id < kv->n_blocks; id++) {
        if (refs[id] != kv->blocks[id].ref_count)
            return err_set(e, "block %d: refcount %d but %d table references", id,
                           kv->blocks[id].ref_count, refs[id]);
        if ((refs[id] > 0) == (where[id] != 0))
            return err_set(e, "block %d: %d references, list %d", id, refs[id], where[id]);
        n_used += refs[id] > 0;
    }
    if (kv->n_free + kv->n_cached + n_used != kv->n_blocks)
        return err_set(e, "free %d + cached %d + used %d != %d blocks", kv->n_free, kv->n_cached,
                       n_used, kv->n_blocks);
    return 0;
}

int kvb_check(const struct kvb *kv, const struct kvb_table *const *tables, int32_t n_tables,
              struct err *e)
{
    int32_t *refs = xcalloc((size_t)kv->n_blocks, sizeof *refs);
    int32_t *stamp = xcalloc((size_t)kv->n_blocks, sizeof *stamp);
    int32_t *where = xcalloc((size_t)kv->n_blocks, sizeof *where);
    int rc = count_table_refs(kv, tables, n_tables, refs, stamp, e);
    if (rc == 0) rc = check_lists(kv, where, e);
    if (rc == 0) rc = check_buckets(kv, e);
    if (rc == 0) rc = check_refs(kv, refs, where, e);
    free(refs);
    free(stamp);
    free(where);
    return rc;
}
