/* sched: the continuous-batching policy — admission, chunked prefill, preemption, step output.
 *
 * Owns: the waiting queue and running list (and so every live sequence), the block manager, the
 * buffers that hold one step's batch, pending fork copies, finished records and the counters. */
#include "engine/sched.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct pending_copy {
    int64_t child_id;
    struct kvb_copy copy;
};

struct sched {
    struct sched_config cfg;
    struct kvb *kv;
    struct seq_list waiting; /* FIFO; preempted sequences re-enter at the front */
    struct seq_list running; /* in admission order; the last one is preempted first */
    uint64_t n_arrivals;

    /* the planned step, valid until sched_update */
    int32_t *tokens;         /* [max_num_batched_tokens] */
    struct batch_seq *bseqs; /* [max_num_seqs] */
    int64_t *seq_ids;        /* [max_num_seqs] */
    bool *sample;            /* [max_num_seqs] */
    struct seq **step_seqs;  /* [max_num_seqs] */
    int32_t n_step_seqs;
    int32_t n_step_tokens;
    bool step_pending; /* a step was planned and its update has not come yet */
    bool step_decodes; /* the step being planned has a decode: prefill chunks are capped */

    struct kvb_copy *copies; /* [n_copies] copies of forks, in order */
    int64_t *copy_children;  /* [n_copies] the child each copy is for */
    int32_t n_copies;
    int32_t n_copies_emitted; /* leading copies already handed to the backend */
    int32_t cap_copies;

    struct sched_finished *finished; /* [n_finished] not yet taken */
    int32_t n_finished;
    int32_t cap_finished;

    int64_t prefix_cache_queries;
    int64_t prefix_cache_hits;
    int64_t n_preemptions;
};

/* ---- creation ------------------------------------------------------------------------------ */

static int check_config(const struct sched_config *c, struct err *e)
{
    if (c->n_blocks < 1) return err_set(e, "scheduler: n_blocks %d < 1", c->n_blocks);
    if (c->block_size < 0) return err_set(e, "scheduler: block_size %d < 0", c->block_size);
    if (c->max_num_batched_tokens < 1)
        return err_set(e, "scheduler: max_num_batched_tokens %d < 1", c->max_num_batched_tokens);
    if (c->max_num_seqs < 1) return err_set(e, "scheduler: max_num_seqs %d < 1", c->max_num_seqs);
    return 0;
}

struct sched *sched_create(const struct sched_config *cfg, struct err *e)
{
    if (check_config(cfg, e)) return NULL;
    struct sched *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (!s->cfg.block_size) s->cfg.block_size = KVB_DEFAULT_BLOCK_SIZE;
    s->kv = kvb_create(s->cfg.n_blocks, s->cfg.block_size);
    kvb_set_caching(s->kv, !s->cfg.no_prefix_caching);
    size_t n_seqs = (size_t)cfg->max_num_seqs;
    s->tokens = xcalloc((size_t)cfg->max_num_batched_tokens, sizeof *s->tokens);
    s->bseqs = xcalloc(n_seqs, sizeof *s->bseqs);
    s->seq_ids = xcalloc(n_seqs, sizeof *s->seq_ids);
    s->sample = xcalloc(n_seqs, sizeof *s->sample);
    s->step_seqs = xcalloc(n_seqs, sizeof *s->step_seqs);
    return s;
}

static void destroy_list(struct sched *s, struct seq_list *l)
{
    for (int32_t i = 0; i < l->n; i++) {
        kvb_free(s->kv, &l->items[i]->table);
        seq_destroy(l->items[i]);
    }
    seq_list_destroy(l);
}

void sched_destroy(struct sched *s)
{
    if (!s) return;
    destroy_list(s, &s->running);
    destroy_list(s, &s->waiting);
    kvb_destroy(s->kv);
    free(s->tokens);
    free(s->bseqs);
    free(s->seq_ids);
    free(s->sample);
    free(s->step_seqs);
    free(s->copies);
    free(s->copy_children);
    free(s->finished);
    free(s);
}

/* ---- requests in and out ------------------------------------------------------------------- */

static bool id_in_use(const struct sched *s, int64_t id)
{
    return seq_list_find(&s->waiting, id) >= 0 || seq_list_find(&s->running, id) >= 0;
}

int sched_check_fit(const struct sched_config *cfg, int32_t n_prompt, int32_t max_tokens,
                    struct err *e)
{
    /* the last sampled token is never computed, so the cache holds at most n - 1 positions */
    int64_t n_positions = (int64_t)n_prompt + max_tokens - 1;
    int64_t n_need = (n_positions + cfg->block_size - 1) / cfg->block_size;
    if (n_need > cfg->n_blocks)
        return err_set(e,
                       "request needs %" PRId64 " KV cache blocks (%d prompt + %d max_tokens "
                       "tokens, %d per block) but the whole cache has %d blocks",
                       n_need, n_prompt, max_tokens, cfg->block_size, cfg->n_blocks);
    return 0;
}

int sched_add(struct sched *s, const struct sched_req *r, struct err *e)
{
    if (r->n_prompt < 1 || !r->prompt) return err_set(e, "the prompt is empty");
    if (r->max_tokens < 1)
        return err_set(e, "max_tokens must be at least 1, got %d", r->max_tokens);
    if (r->n_stop_ids < 0 || (r->n_stop_ids > 0 && !r->stop_ids))
        return err_set(e, "bad stop token list (%d ids)", r->n_stop_ids);
    if (id_in_use(s, r->id)) return err_set(e, "request id %" PRId64 " is already in use", r->id);
    if (sched_check_fit(&s->cfg, r->n_prompt, r->max_tokens, e) != 0) return -1;
    struct seq *q = seq_create(r->id, s->n_arrivals++, r->prompt, r->n_prompt, r->max_tokens,
                               r->stop_ids, r->n_stop_ids);
    seq_list_push_back(&s->waiting, q);
    return 0;
}

bool sched_abort(struct sched *s, int64_t id)
{
    const struct seq_list *l = &s->running;
    int32_t i = seq_list_find(l, id);
    if (i < 0) i = seq_list_find(l = &s->waiting, id);
    if (i < 0) return false;
    l->items[i]->abort_requested = true;
    return true;
}

static void drop_copies_of(struct sched *s, int64_t child_id)
{
    int32_t n = s->n_copies_emitted;
    for (int32_t i = s->n_copies_emitted; i < s->n_copies; i++) {
        if (s->copy_children[i] == child_id) continue;
        s->copies[n] = s->copies[i];
        s->copy_children[n++] = s->copy_children[i];
    }
    s->n_copies = n;
}

/* Forgets the copies the backend has been given (it did them before the step's forward). */
static void drop_emitted_copies(struct sched *s)
{
    if (s->n_copies_emitted == 0) return;
    int32_t n_left = s->n_copies - s->n_copies_emitted;
    memmove(s->copies, s->copies + s->n_copies_emitted, (size_t)n_left * sizeof *s->copies);
    memmove(s->copy_children, s->copy_children + s->n_copies_emitted,
            (size_t)n_left * sizeof *s->copy_children);
    s->n_copies = n_left;
    s->n_copies_emitted = 0;
}

static void push_copy(struct sched *s, int64_t child_id, struct kvb_copy c)
{
    if (s->n_copies == s->cap_copies) {
        s->cap_copies = s->cap_copies ? 2 * s->cap_copies : 8;
        s->copies = realloc(s->copies, (size_t)s->cap_copies * sizeof *s->copies);
        s->copy_children =
            realloc(s->copy_children, (size_t)s->cap_copies * sizeof *s->copy_children);
        if (!s->copies || !s->copy_children) ERR_FATAL("out of memory");
    }
    s->copies[s->n_copies] = c;
    s->copy_children[s->n_copies++] = child_id;
}

/* Records why q ended, releases its blocks and frees it. The caller unlinks it from its list. */
static void finish_seq(struct sched *s, struct seq *q, enum seq_finish why)
{
    if (s->n_finished == s->cap_finished) {
        s->cap_finished = s->cap_finished ? 2 * s->cap_finished : 16;
        s->finished = realloc(s->finished, (size_t)s->cap_finished * sizeof *s->finished);
        if (!s->finished) ERR_FATAL("out of memory");
    }
    s->finished[s->n_finished++] = (struct sched_finished){
        .id = q->id,
        .reason = why,
        .n_prompt = q->n_prompt,
        .n_generated = seq_n_generated(q),
        .n_cached = q->n_cached,
    };
    drop_copies_of(s, q->id);
    kvb_free(s->kv, &q->table);
    seq_destroy(q);
}

int32_t sched_take_finished(struct sched *s, struct sched_finished *out, int32_t cap)
{
    int32_t n = s->n_finished < cap ? s->n_finished : cap;
    if (n <= 0) return 0;
    memcpy(out, s->finished, (size_t)n * sizeof *out);
    memmove(s->finished, s->finished + n, (size_t)(s->n_finished - n) * sizeof *out);
    s->n_finished -= n;
    return n;
}

/* ---- fork (n > 1) -------------------------------------------------------------------------- */

/* The parent as sched_fork needs it: running, its last token sampled and not yet computed. */
static struct seq *fork_parent(struct sched *s, int64_t parent_id, struct err *e)
{
    int32_t i = seq_list_find(&s->running, parent_id);
    if (i < 0) {
        err_set(e, "fork: request %" PRId64 " is not running", parent_id);
        return NULL;
    }
    struct seq *p = s->running.items[i];
    if (s->step_pending || p->abort_requested || seq_n_generated(p) < 1 ||
        p->n_computed != p->n_tokens - 1) {
        err_set(e, "fork: request %" PRId64 " is not just after a sampled token", parent_id);
        return NULL;
    }
    return p;
}

int sched_fork(struct sched *s, int64_t parent_id, int64_t child_id, int32_t first_token,
               struct err *e)
{
    struct seq *p = fork_parent(s, parent_id, e);
    if (!p) return -1;
    if (id_in_use(s, child_id))
        return err_set(e, "request id %" PRId64 " is already in use", child_id);
    struct seq *c = seq_clone(p, child_id, first_token);
    c->arrival = s->n_arrivals++;
    enum seq_finish why = seq_finish_reason(c, false);
    if (why != SEQ_FINISH_NONE) {
        finish_seq(s, c, why);
        return 0;
    }
    struct kvb_copy copy;
    int n_copies = -1;
    if (s->running.n < s->cfg.max_num_seqs)
        n_copies = kvb_fork(s->kv, &p->table, p->n_computed, &c->table, &copy);
    if (n_copies < 0) { /* no room now: recompute later, the prefix cache has the full blocks */
        seq_list_push_front(&s->waiting, c);
        return 0;
    }
    c->n_computed = p->n_computed;
    c->status = SEQ_RUNNING;
    seq_list_push_back(&s->running, c);
    if (n_copies == 1) push_copy(s, child_id, copy);
    return 0;
}

/* ---- planning a step ----------------------------------------------------------------------- */

static void drop_aborted_in(struct sched *s, struct seq_list *l)
{
    for (int32_t i = 0; i < l->n;) {
        struct seq *q = l->items[i];
        if (!q->abort_requested) {
            i++;
            continue;
        }
        seq_list_remove_at(l, i);
        finish_seq(s, q, SEQ_FINISH_ABORT);
    }
}

/* Frees the running sequence's blocks and queues it first, to be recomputed. */
static void preempt(struct sched *s, int32_t i)
{
    struct seq *q = s->running.items[i];
    seq_list_remove_at(&s->running, i);
    drop_copies_of(s, q->id);
    kvb_free(s->kv, &q->table);
    q->n_computed = 0;
    q->status = SEQ_WAITING;
    seq_list_push_front(&s->waiting, q);
    s->n_preemptions++;
}

static bool is_decode(const struct seq *q)
{
    return q->n_tokens - q->n_computed == 1;
}

/* Appends q's next n_new tokens to the step's batch. */
static void add_to_batch(struct sched *s, struct seq *q, int32_t n_new)
{
    int32_t k = s->n_step_seqs++;
    bool last = q->n_computed + n_new == q->n_tokens;
    s->bseqs[k] = (struct batch_seq){
        .start = s->n_step_tokens,
        .n_tokens = n_new,
        .pos0 = q->n_computed,
        .block_table = q->table.ids,
        .logits = last ? BATCH_LOGITS_LAST : BATCH_LOGITS_NONE,
    };
    memcpy(s->tokens + s->n_step_tokens, q->tokens + q->n_computed,
           (size_t)n_new * sizeof *s->tokens);
    s->n_step_tokens += n_new;
    s->seq_ids[k] = q->id;
    s->sample[k] = last;
    s->step_seqs[k] = q;
}

/* Preempts from the newest end until q (at index i) can cover n_cover positions. Returns false
 * when q itself had to go. */
static bool make_room(struct sched *s, int32_t i, int32_t n_cover, int32_t *n_decodes_after,
                      bool *preempted)
{
    struct seq *q = s->running.items[i];
    while (!kvb_can_grow(s->kv, &q->table, n_cover)) {
        int32_t last = s->running.n - 1;
        if (last != i && is_decode(s->running.items[last])) (*n_decodes_after)--;
        preempt(s, last);
        *preempted = true;
        if (last == i) return false;
    }
    return true;
}

static int32_t count_decodes(const struct seq_list *l)
{
    int32_t n = 0;
    for (int32_t i = 0; i < l->n; i++) n += is_decode(l->items[i]);
    return n;
}

/* Running sequences, in order: a decode token each, or a prefill chunk from what the budget has
 * left after reserving one token for every later decode. Returns whether it preempted. */
static bool schedule_running(struct sched *s, int32_t *budget)
{
    bool preempted = false;
    int32_t n_decodes_after = count_decodes(&s->running);
    for (int32_t i = 0; *budget > 0 && i < s->running.n; i++) {
        struct seq *q = s->running.items[i];
        bool decode = is_decode(q);
        n_decodes_after -= decode;
        int32_t n_new = q->n_tokens - q->n_computed;
        int32_t avail = decode ? *budget : *budget - n_decodes_after;
        if (n_new > avail) n_new = avail;
        if (!decode && s->step_decodes && s->cfg.prefill_chunk > 0 && n_new > s->cfg.prefill_chunk)
            n_new = s->cfg.prefill_chunk;
        if (n_new <= 0) continue;
        if (!make_room(s, i, q->n_computed + n_new, &n_decodes_after, &preempted)) break;
        if (kvb_grow(s->kv, &q->table, q->n_computed + n_new)) ERR_FATAL("grow after check");
        add_to_batch(s, q, n_new);
        *budget -= n_new;
    }
    return preempted;
}

/* Admits the head of the queue if its first chunk's blocks are there; returns the chunk length,
 * or 0 (nothing changed). The longest cached prefix is taken, not recomputed. */
static int32_t count_decodes(const struct seq_list *l);

static int32_t admit(struct sched *s, struct seq *q, int32_t budget)
{
    struct kvb_hit hit = kvb_lookup(s->kv, q->tokens, q->n_tokens);
    int32_t n_cached = hit.n_blocks * s->cfg.block_size;
    int32_t n_new = q->n_tokens - n_cached;
    if (n_new > budget) n_new = budget;
    if (s->step_decodes && s->cfg.prefill_chunk > 0 && n_new > s->cfg.prefill_chunk)
        n_new = s->cfg.prefill_chunk;
    if (!kvb_can_allocate(s->kv, hit, n_cached + n_new)) return 0;
    if (kvb_allocate(s->kv, &q->table, q->tokens, q->n_tokens, n_cached + n_new) != n_cached)
        ERR_FATAL("kv cache: allocation disagrees with its lookup");
    q->n_computed = n_cached;
    q->status = SEQ_RUNNING;
    if (!q->admitted_once) q->n_cached = n_cached;
    q->admitted_once = true;
    s->prefix_cache_queries += q->n_tokens;
    s->prefix_cache_hits += n_cached;
    return n_new;
}

static void schedule_waiting(struct sched *s, int32_t *budget)
{
    while (*budget > 0 && s->waiting.n > 0 && s->running.n < s->cfg.max_num_seqs) {
        struct seq *q = s->waiting.items[0];
        int32_t n_new = admit(s, q, *budget);
        if (n_new == 0) break;
        seq_list_remove_at(&s->waiting, 0);
        seq_list_push_back(&s->running, q);
        add_to_batch(s, q, n_new);
        *budget -= n_new;
    }
}

static void fill_out(struct sched *s, struct sched_out *out)
{
    out->batch = (struct batch){
        .n_tokens = s->n_step_tokens,
        .tokens = s->tokens,
        .n_seqs = s->n_step_seqs,
        .seqs = s->bseqs,
    };
    out->seq_ids = s->seq_ids;
    out->sample = s->sample;
    out->copies = s->copies;
    out->n_copies = s->n_copies;
    s->n_copies_emitted = s->n_copies;
}

void sched_step(struct sched *s, struct sched_out *out)
{
    if (s->step_pending) ERR_FATAL("sched_step before the previous step's sched_update");
    drop_emitted_copies(s);
    drop_aborted_in(s, &s->running);
    drop_aborted_in(s, &s->waiting);
    s->n_step_seqs = s->n_step_tokens = 0;
    int32_t budget = s->cfg.max_num_batched_tokens;
    s->step_decodes = count_decodes(&s->running) > 0;
    if (!schedule_running(s, &budget)) schedule_waiting(s, &budget);
    fill_out(s, out);
    s->step_pending = s->n_step_seqs > 0;
}

/* ---- after the step ------------------------------------------------------------------------ */

void sched_update(struct sched *s, const int32_t *sampled, const bool *stop)
{
    if (!s->step_pending) ERR_FATAL("sched_update without a planned step");
    for (int32_t k = 0; k < s->n_step_seqs; k++) {
        struct seq *q = s->step_seqs[k];
        q->n_computed += s->bseqs[k].n_tokens;
        kvb_commit(s->kv, &q->table, q->tokens, q->n_computed);
        if (!s->sample[k]) continue;
        seq_append(q, sampled[k]);
        q->finish = seq_finish_reason(q, stop && stop[k]);
        if (q->finish != SEQ_FINISH_NONE) q->status = SEQ_FINISHED;
    }
    for (int32_t i = 0; i < s->running.n;) {
        struct seq *q = s->running.items[i];
        if (q->status != SEQ_FINISHED) {
            i++;
            continue;
        }
        seq_list_remove_at(&s->running, i);
        finish_seq(s, q, q->finish);
    }
    s->step_pending = false;
    drop_emitted_copies(s);
}

/* ---- queries ------------------------------------------------------------------------------- */

bool sched_has_work(const struct sched *s)
{
    return s->waiting.n > 0 || s->running.n > 0;
}

void sched_stats(const struct sched *s, struct sched_stats *st)
{
    struct kvb_stats kst;
    kvb_stats(s->kv, &kst);
    st->n_requests_running = s->running.n;
    st->n_requests_waiting = s->waiting.n;
    st->kv_cache_usage = (double)kst.n_used / kst.n_blocks;
    st->prefix_cache_queries = s->prefix_cache_queries;
    st->prefix_cache_hits = s->prefix_cache_hits;
    st->n_preemptions = s->n_preemptions;
}

const struct kvb *sched_kv(const struct sched *s)
{
    return s->kv;
}

static int check_seq(const struct sched *s, const struct seq *q, enum seq_status want,
                     struct err *e)
{
    if (q->status != want) return err_set(e, "seq %" PRId64 ": status %d", q->id, q->status);
    if (q->n_computed < 0 || q->n_computed >= q->n_tokens)
        return err_set(e, "seq %" PRId64 ": %d of %d computed", q->id, q->n_computed, q->n_tokens);
    if (want == SEQ_WAITING && (q->table.n_ids || q->n_computed))
        return err_set(e, "waiting seq %" PRId64 " holds blocks", q->id);
    if (q->table.n_ids < kvb_blocks_for(s->kv, q->n_computed) ||
        q->table.n_hashed > q->n_computed / s->cfg.block_size)
        return err_set(e, "seq %" PRId64 ": table of %d blocks (%d hashed), %d computed", q->id,
                       q->table.n_ids, q->table.n_hashed, q->n_computed);
    return 0;
}

int sched_check(const struct sched *s, struct err *e)
{
    if (s->running.n > s->cfg.max_num_seqs)
        return err_set(e, "%d running > max_num_seqs %d", s->running.n, s->cfg.max_num_seqs);
    for (int32_t i = 0; i < s->waiting.n; i++)
        if (check_seq(s, s->waiting.items[i], SEQ_WAITING, e)) return -1;
    const struct kvb_table **tables = xcalloc((size_t)s->running.n + 1, sizeof *tables);
    int rc = 0;
    for (int32_t i = 0; i < s->running.n && rc == 0; i++) {
        rc = check_seq(s, s->running.items[i], SEQ_RUNNING, e);
        tables[i] = &s->running.items[i]->table;
    }
    if (rc == 0) rc = kvb_check(s->kv, tables, s->running.n, e);
    free(tables);
    return rc;
}
