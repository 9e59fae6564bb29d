/* kv_blocks: the block manager of the paged KV cache — block ids only, no model memory.
 *
 * The cache is n_blocks blocks of block_size token slots each. A sequence owns a block table
 * (struct kvb_table): position p of the sequence lives in slot p % block_size of block
 * ids[p / block_size]. Each block is in exactly one of three states:
 *   free    refcount 0, holds nothing worth keeping          (free list)
 *   used    refcount > 0, in one or more block tables         (maybe also in the prefix cache)
 *   cached  refcount 0, full and content-addressed            (prefix cache + LRU list)
 * Automatic prefix caching: once a full block has been computed (kvb_commit) it is registered
 * under a hash of its token ids chained with its parent block's hash. A new sequence takes the
 * longest cached prefix of full blocks instead of recomputing it. Lookups compare the token ids
 * and the parent block's identity, so a hash collision can cost a cache hit, never correctness.
 * Allocation takes free blocks first, then evicts cached blocks, least recently used first. */
#ifndef SEEKD_KV_BLOCKS_H
#define SEEKD_KV_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/err.h"

#define KVB_DEFAULT_BLOCK_SIZE 64

struct kvb;

/* One sequence's block table. A zeroed struct is a valid empty table. */
struct kvb_table {
    int32_t *ids; /* [n_ids] block ids */
    int32_t n_ids;
    int32_t cap;         /* allocated length of ids */
    int32_t n_hashed;    /* leading blocks already registered in (or matched from) the cache */
    uint64_t chain_hash; /* hash of block n_hashed-1; the next block's parent hash */
    int32_t parent_id;   /* cached block standing for block n_hashed-1 (its content twin) */
    uint32_t parent_gen; /* that block's generation, to notice it was evicted and reused */
};

/* What a prefix lookup found: n_blocks leading full blocks are cached; n_idle of them have
 * refcount 0, so taking them removes them from the evictable pool. */
struct kvb_hit {
    int32_t n_blocks;
    int32_t n_idle;
};

/* A block copy the backend must perform before the next forward (copy-on-write of a fork). */
struct kvb_copy {
    int32_t src;
    int32_t dst;
};

struct kvb_stats {
    int32_t n_blocks; /* total = n_free + n_cached + n_used */
    int32_t n_free;
    int32_t n_cached; /* refcount 0 but kept for prefix reuse; evictable */
    int32_t n_used;
};

/* Turns automatic prefix caching on (the default) or off. Off: nothing is registered or found,
 * and freed blocks return straight to the free list. Set it before the first allocation. */
void kvb_set_caching(struct kvb *kv, bool on);

/* Hash of one full block given its parent's hash (0 for the first block). */
typedef uint64_t (*kvb_hash_fn)(uint64_t parent, const int32_t *tokens, int32_t n_tokens);

struct kvb *kvb_create(int32_t n_blocks, int32_t block_size);
void kvb_destroy(struct kvb *kv);

/* The default hash: 64-bit FNV-1a over the parent hash and the token ids. */
uint64_t kvb_hash_fnv(uint64_t parent, const int32_t *tokens, int32_t n_tokens);
/* Replaces the hash function (tests force collisions with it). Only on an empty cache. */
void kvb_set_hash(struct kvb *kv, kvb_hash_fn fn);

/* Blocks that fit a memory budget: each block holds block_size latents of latent_dim elements
 * (kv_lora_rank + qk_rope_head_dim for MLA) in every one of n_layers layers. */
int32_t kvb_blocks_in_budget(uint64_t budget_bytes, int32_t block_size, int32_t n_layers,
                             int32_t latent_dim, int32_t bytes_per_elem);

int32_t kvb_block_size(const struct kvb *kv);
int32_t kvb_n_blocks(const struct kvb *kv);
/* Blocks needed to hold n_tokens positions. */
int32_t kvb_blocks_for(const struct kvb *kv, int32_t n_tokens);
/* Blocks an allocation can take now: free plus evictable cached. */
int32_t kvb_n_available(const struct kvb *kv);
void kvb_stats(const struct kvb *kv, struct kvb_stats *st);

/* Longest cached prefix of tokens, in full blocks, never all n_tokens (the last token must be
 * computed so that its logits exist). Changes nothing. */
struct kvb_hit kvb_lookup(const struct kvb *kv, const int32_t *tokens, int32_t n_tokens);
/* Whether an empty table can take the hit and grow to cover n_cover positions. */
bool kvb_can_allocate(const struct kvb *kv, struct kvb_hit hit, int32_t n_cover);
/* Fills an empty table: the cached prefix of tokens, then fresh blocks up to n_cover positions.
 * Returns the number of cached tokens, or -1 (table untouched) when blocks are short. */
int32_t kvb_allocate(struct kvb *kv, struct kvb_table *t, const int32_t *tokens, int32_t n_tokens,
                     int32_t n_cover);

/* Whether the table can grow to cover n_cover positions. */
bool kvb_can_grow(const struct kvb *kv, const struct kvb_table *t, int32_t n_cover);
/* Appends fresh blocks until the table covers n_cover positions; -1 (no change) if short. */
int kvb_grow(struct kvb *kv, struct kvb_table *t, int32_t n_cover);

/* Registers in the prefix cache every block of t that the first n_computed tokens fill. Call
 * after the step that computed them has run. */
void kvb_commit(struct kvb *kv, struct kvb_table *t, const int32_t *tokens, int32_t n_computed);

/* Releases every block of t (tail first, so a prefix outlives its tail in the LRU) and frees the
 * table's memory; t is empty afterwards. */
void kvb_free(struct kvb *kv, struct kvb_table *t);

/* Fork for n > 1: dst (empty) shares the blocks of src holding its first n_computed positions;
 * a trailing partial block is copied instead: *copy names the backend's copy. Returns the number
 * of copies (0 or 1), or -1 (dst untouched) when no block is available for the copy. */
int kvb_fork(struct kvb *kv, const struct kvb_table *src, int32_t n_computed, struct kvb_table *dst,
             struct kvb_copy *copy);

/* Checks every internal invariant and that refcounts equal the references from the given
 * tables (which must be all tables holding blocks). Returns 0, or -1 with a message. */
int kvb_check(const struct kvb *kv, const struct kvb_table *const *tables, int32_t n_tables,
              struct err *e);

#endif
