/* engine: the engine thread — submissions in, one scheduled forward step at a time, events out.
 *
 * Sequence ids are gen serial * GEN_MAX_CHOICES + choice, so a scheduler id names its request
 * and choice. Every step: take submissions and cancellations → sched_step → block copies →
 * forward → sample each sequence that asked (and fork the siblings of n > 1 after the first
 * token) → sched_update → end what finished → wake the server. */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/dp.h"
#include "engine/gen.h"
#include "engine/grammar/vocab.h"
#include "engine/lockstep.h"
#include "engine/masker.h"
#include "engine/metrics.h"
#include "engine/model/model.h"
#include "engine/sampler_cand.h"
#include "engine/sched.h"
#include "engine/vocab.h"
#include "engine/wire.h"
#include "engine/engine_internal.h"


static struct gen *find_gen(struct engine *eng, int64_t seq_id, int *choice)
{
    uint64_t serial = (uint64_t)seq_id / GEN_MAX_CHOICES;
    *choice = (int)(seq_id % GEN_MAX_CHOICES);
    for (struct gen *g = eng->live; g; g = g->next)
        if (g->serial == serial) return g;
    return NULL;
}

static int64_t seq_id_of(const struct gen *g, int c)
{
    return (int64_t)(g->serial * GEN_MAX_CHOICES + (uint64_t)c);
}

/* ---- submissions and cancellations (engine thread) ----------------------------------------- */

static void admit(struct engine *eng, struct gen *g)
{
    struct err e = {0};
    struct sched_req rq = {.id = seq_id_of(g, 0), .prompt = g->prompt, .n_prompt = g->p.n_prompt,
                           .max_tokens = g->p.max_tokens, .stop_ids = g->stop_ids,
                           .n_stop_ids = g->n_stop_ids};
    g->next = eng->live;
    eng->live = g;
    if (sched_add(eng->sched, &rq, &e) != 0)
        for (int c = 0; c < g->p.n; c++) gen_end_choice(g, c, GEN_FINISH_ERROR, e.msg);
}

/* Hands new requests to the scheduler and aborts the cancelled ones. */
static void take_requests(struct engine *eng)
{
    pthread_mutex_lock(&eng->mu);
    struct gen *in = eng->incoming;
    eng->incoming = NULL;
    eng->n_incoming = 0;
    pthread_mutex_unlock(&eng->mu);
    /* the list is newest first: admit in arrival order */
    struct gen *rev = NULL;
    while (in) {
        struct gen *next = in->next;
        in->next = rev;
        rev = in;
        in = next;
    }
    for (struct gen *next; rev; rev = next) {
        next = rev->next;
        admit(eng, rev);
    }
    for (struct gen *g = eng->live; g; g = g->next) {
        if (!__atomic_load_n(&g->cancel, __ATOMIC_ACQUIRE) || g->cancel_sent) continue;
        g->cancel_sent = 1;
        for (int c = 0; c < g->p.n; c++)
            if (!g->ch[c].ended && !sched_abort(eng->sched, seq_id_of(g, c)) && c > 0)
                gen_end_choice(g, c, GEN_FINISH_ABORT, NULL); /* a sibling never forked */
    }
}

static enum metrics_reason reason_of(enum gen_finish f)
{
    switch (f) {
    case GEN_FINISH_STOP: return MR_STOP;
    case GEN_FINISH_LENGTH: return MR_LENGTH;
    case GEN_FINISH_ABORT: return MR_ABORT;
    default: return MR_ERROR;
    }
}

/* Counters and the end-to-end latency of a request that has ended. */
static void record_done(struct engine *eng, const struct gen *g)
{
    metrics_observe(&eng->metrics, MH_E2E, now_s() - g->t_arrival);
    pthread_mutex_lock(&eng->metrics.mu);
    eng->metrics.prompt_tokens += g->p.n_prompt;
    for (int c = 0; c < g->p.n; c++) eng->metrics.request_success[reason_of(g->ch[c].finish)]++;
    pthread_mutex_unlock(&eng->metrics.mu);
}

/* Drops requests that have ended from the live list (the engine's reference). */
static void reap(struct engine *eng)
{
    for (struct gen **pp = &eng->live; *pp;) {
        struct gen *g = *pp;
        if (!gen_done(g)) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        __atomic_sub_fetch(&eng->n_live_seqs, g->p.n, __ATOMIC_RELAXED);
        record_done(eng, g);
        gen_notify(g);
        gen_unref(g);
    }
}

/* ---- grammar masks ----------------------------------------------------------------------------- */

/* Hands the masks of the sequences about to sample under a grammar to the masker; returns how
 * many there are. */
static int masks_start(struct engine *eng, const struct sched_out *out)
{
    int words = gv_words(eng->gv);
    masker_clear(eng->masker);
    for (int i = 0; i < out->batch.n_seqs; i++) {
        int c;
        struct gen *g = out->sample[i] ? find_gen(eng, out->seq_ids[i], &c) : NULL;
        struct gm *m = g ? gen_matcher(g, c) : NULL;
        eng->job_of[i] = m ? masker_add(eng->masker, m, g->stop_ids, g->n_stop_ids,
                                        eng->masks + (size_t)i * (size_t)words)
                           : -1;
    }
    return masker_run(eng->masker);
}

/* Waits for the step's n masks; counts the wait (what the forward did not hide) and the work. */
static void masks_wait(struct engine *eng, int n)
{
    double t0 = now_s(), cpu;
    masker_wait(eng->masker, &cpu);
    pthread_mutex_lock(&eng->metrics.mu);
    eng->metrics.grammar_wait_seconds += now_s() - t0;
    eng->metrics.grammar_mask_cpu_seconds += cpu;
    eng->metrics.grammar_masks += n;
    pthread_mutex_unlock(&eng->metrics.mu);
}

/* ---- one step -------------------------------------------------------------------------------- */

static enum gen_finish finish_of(enum seq_finish f)
{
    switch (f) {
    case SEQ_FINISH_STOP: return GEN_FINISH_STOP;
    case SEQ_FINISH_LENGTH: return GEN_FINISH_LENGTH;
    case SEQ_FINISH_ABORT: return GEN_FINISH_ABORT;
    default: return GEN_FINISH_ERROR;
    }
}

/* Starts sibling c with its first token: a fork sharing the parent's blocks, or — when the
 * parent already ended at its first token — a sequence of its own over prompt + token (its
 * full prompt blocks come from the prefix cache). */
static int start_sibling(struct engine *eng, struct gen *g, int c, int32_t token, struct err *e)
{
    if (sched_fork(eng->sched, seq_id_of(g, 0), seq_id_of(g, c), token, e) == 0) return 0;
    if (gen_is_stop_id(g, token)) return gen_end_choice(g, c, GEN_FINISH_STOP, NULL), 0;
    if (g->p.max_tokens <= 1) return gen_end_choice(g, c, GEN_FINISH_LENGTH, NULL), 0;
    int32_t *toks = xmalloc(((size_t)g->p.n_prompt + 1) * sizeof *toks);
    memcpy(toks, g->prompt, (size_t)g->p.n_prompt * sizeof *toks);
    toks[g->p.n_prompt] = token;
    struct sched_req rq = {.id = seq_id_of(g, c), .prompt = toks, .n_prompt = g->p.n_prompt + 1,
                           .max_tokens = g->p.max_tokens - 1, .stop_ids = g->stop_ids,
                           .n_stop_ids = g->n_stop_ids};
    int rc = sched_add(eng->sched, &rq, e);
    free(toks);
    return rc;
}

/* The mask of choice c's first token (the parent's logits); NULL when unconstrained. */
static const uint64_t *sibling_mask(struct engine *eng, struct gen *g, int c, struct err *e,
                                    int *failed)
{
    struct gm *m = gen_matcher(g, c);
    *failed = 0;
    if (!m) return NULL;
    if (gm_fill_mask(m, eng->gv, eng->fork_mask, g->stop_ids, g->n_stop_ids, e) != 0) *failed = 1;
    return eng->fork_mask;
}

/* n > 1: the siblings take their first token from the parent's first logits. */
static void fork_siblings(struct engine *eng, struct gen *g, const float *logits)
{
    struct err e = {0};
    for (int c = 1; c < g->p.n; c++) {
        struct smp_result r;
        int failed;
        const uint64_t *mask = sibling_mask(eng, g, c, &e, &failed);
        if (failed || smp_sample_masked(g->ch[c].smp, &g->p.sampling, logits,
                                        eng->m->cfg.vocab_size, mask, &r, &e) != 0) {
            gen_end_choice(g, c, GEN_FINISH_ERROR, e.msg);
            continue;
        }
        smp_accept(g->ch[c].smp, r.token);
        enum gen_take t = gen_take_token(g, c, &r);
        if (t == GEN_FAILED) {
            gen_end_choice(g, c, GEN_FINISH_ERROR, g->ch[c].error);
            continue;
        }
        if (!g->ch[c].ended && start_sibling(eng, g, c, r.token, &e) != 0)
            gen_end_choice(g, c, GEN_FINISH_ERROR, e.msg);
        if (t == GEN_STOPPED && !g->ch[c].ended) {
            gen_end_choice(g, c, GEN_FINISH_STOP, NULL);
            sched_abort(eng->sched, seq_id_of(g, c));
        }
    }
}

/* Time to first token, and the gap since the previous token of choice 0. */
static void record_token(struct engine *eng, struct gen *g, int c)
{
    double t = now_s();
    if (!g->t_first_token) {
        g->t_first_token = t;
        metrics_observe(&eng->metrics, MH_TTFT, t - g->t_arrival);
    } else if (c == 0) {
        metrics_observe(&eng->metrics, MH_ITL, t - g->t_last_token);
    }
    if (c == 0) g->t_last_token = t;
    pthread_mutex_lock(&eng->metrics.mu);
    eng->metrics.generation_tokens++;
    pthread_mutex_unlock(&eng->metrics.mu);
}

/* Queue time: from arrival to the first step that runs any of the request. */
static void record_scheduled(struct engine *eng, const struct sched_out *out)
{
    for (int i = 0; i < out->batch.n_seqs; i++) {
        int c;
        struct gen *g = find_gen(eng, out->seq_ids[i], &c);
        if (!g || g->t_scheduled) continue;
        g->t_scheduled = now_s();
        metrics_observe(&eng->metrics, MH_QUEUE, g->t_scheduled - g->t_arrival);
    }
}

/* The grammar mask of batch entry i, NULL when unconstrained; *failed when computing it failed
 * (the message in e). */
static const uint64_t *mask_of(struct engine *eng, int i, struct err *e, int *failed)
{
    int j = eng->job_of[i];
    *failed = 0;
    if (j < 0) return NULL;
    const uint64_t *mask = masker_result(eng->masker, j, e);
    *failed = !mask;
    return mask;
}

/* Logits row `row` of the step whole, in eng->logits (fetched when the step pre-filtered). */
static const float *whole_row(struct engine *eng, int row)
{
    float *lg = eng->logits + (size_t)row * (size_t)eng->m->cfg.vocab_size;
    if (eng->cands) eng->bops->fetch_row(eng->be, row, lg);
    return lg;
}

/* Samples one row: from its candidates when smp_sample_candidates proves them the same as the
 * whole row, else from the whole row. Anything that constrains a row beyond struct smp_params
 * (smp_sample_candidates cannot see it) must take the whole row: a grammar mask does. *lg: the
 * whole row when it was fetched, else NULL. */
static int sample_row(struct engine *eng, int row, struct gen *g, int c, const uint64_t *mask,
                      struct smp_result *r, const float **lg, struct err *e)
{
    *lg = NULL;
    int from_cands = eng->cands && !mask &&
                     smp_sample_candidates(g->ch[c].smp, &g->p.sampling, &eng->cands[row], r);
    pthread_mutex_lock(&eng->metrics.mu);
    if (from_cands) eng->metrics.sampled_candidates++;
    else eng->metrics.sampled_whole++;
    pthread_mutex_unlock(&eng->metrics.mu);
    if (from_cands) return 0;
    *lg = whole_row(eng, row);
    return smp_sample_masked(g->ch[c].smp, &g->p.sampling, *lg, eng->m->cfg.vocab_size, mask, r,
                             e);
}

/* Samples the sequences that asked; returns how many forks are pending into forks[]. */
static int sample_all(struct engine *eng, const struct sched_out *out, struct gen **forks,
                      const float **fork_logits)
{
    int row = 0, n_forks = 0;
    struct err e = {0};
    for (int i = 0; i < out->batch.n_seqs; i++) {
        int my_row = row;
        const float *lg = NULL;
        if (out->batch.seqs[i].logits != BATCH_LOGITS_NONE) row++;
        eng->sampled[i] = 0;
        eng->stopped[i] = false;
        if (!out->sample[i]) continue;
        int c, failed;
        struct gen *g = find_gen(eng, out->seq_ids[i], &c);
        struct smp_result r;
        const uint64_t *mask = g ? mask_of(eng, i, &e, &failed) : NULL;
        if (!g || failed || sample_row(eng, my_row, g, c, mask, &r, &lg, &e) != 0) {
            eng->stopped[i] = true; /* a broken row or grammar: end the sequence, say why */
            if (g) gen_end_choice(g, c, GEN_FINISH_ERROR, e.msg);
            continue;
        }
        eng->sampled[i] = r.token;
        smp_accept(g->ch[c].smp, r.token);
        record_token(eng, g, c);
        if (c == 0 && g->ch[0].n_generated == 0 && g->p.n > 1) { /* the siblings sample the whole row */
            forks[n_forks] = g;
            fork_logits[n_forks++] = lg ? lg : whole_row(eng, my_row);
        }
        enum gen_take t = gen_take_token(g, c, &r);
        eng->stopped[i] = t != GEN_GO_ON;
        if (t == GEN_FAILED) gen_end_choice(g, c, GEN_FINISH_ERROR, g->ch[c].error);
    }
    return n_forks;
}

static void finish_all(struct engine *eng)
{
    struct sched_finished f[64];
    int32_t n;
    while ((n = sched_take_finished(eng->sched, f, 64)) > 0)
        for (int i = 0; i < n; i++) {
            int c;
            struct gen *g = find_gen(eng, f[i].id, &c);
            if (!g) continue;
            if (c == 0) g->cached_tokens = f[i].n_cached;
            gen_end_choice(g, c, finish_of(f[i].reason), NULL);
        }
}

/* One scheduled step; returns false when there was nothing to run. */
static bool step(struct engine *eng)
{
    struct sched_out out;
    struct err e = {0};
    double t0 = now_s();
    sched_step(eng->sched, &out);
    if (eng->tp && (out.n_copies || out.batch.n_seqs) &&
        lockstep_send(eng->tp, &out.batch, eng->scfg.block_size, out.copies, out.n_copies, &e) != 0)
        ERR_FATAL("tensor parallelism: %s", e.msg); /* the ranks can no longer agree: end the job */
    if (out.n_copies) eng->bops->copy_blocks(eng->be, out.copies, out.n_copies);
    if (out.batch.n_seqs == 0) {
        finish_all(eng);
        return false;
    }
    record_scheduled(eng, &out);
    int n_masks = masks_start(eng, &out); /* computed while the forward runs */
    int rc = eng->cands ? eng->bops->forward_cands(eng->be, &out.batch, eng->cands, &e)
                        : eng->bops->forward(eng->be, &out.batch, eng->logits, &e);
    if (rc != 0) ERR_FATAL("the scheduler built a batch the model refused: %s", e.msg);
    if (n_masks) masks_wait(eng, n_masks);
    struct gen *forks[256];
    const float *fork_logits[256];
    int n_forks = sample_all(eng, &out, forks, fork_logits);
    sched_update(eng->sched, eng->sampled, eng->stopped);
    for (int i = 0; i < n_forks; i++) fork_siblings(eng, forks[i], fork_logits[i]);
    finish_all(eng);
    pthread_mutex_lock(&eng->metrics.mu);
    eng->metrics.step_seconds += now_s() - t0;
    pthread_mutex_unlock(&eng->metrics.mu);
    return true;
}

static void notify_all(struct engine *eng)
{
    for (struct gen *g = eng->live; g; g = g->next) gen_notify(g);
}

static void record_gauges(struct engine *eng, const struct sched_stats *st)
{
    struct metrics *m = &eng->metrics;
    pthread_mutex_lock(&eng->mu);
    int incoming = eng->n_incoming;
    pthread_mutex_unlock(&eng->mu);
    pthread_mutex_lock(&m->mu);
    m->n_running = st->n_requests_running;
    m->n_waiting = st->n_requests_waiting + incoming;
    m->kv_cache_usage = st->kv_cache_usage;
    m->prefix_cache_queries = st->prefix_cache_queries;
    m->prefix_cache_hits = st->prefix_cache_hits;
    m->n_preemptions = st->n_preemptions;
    struct kvb_stats ks;
    kvb_stats(sched_kv(eng->sched), &ks);
    m->kv_blocks_used = ks.n_used;
    m->kv_blocks_total = ks.n_blocks;
    pthread_mutex_unlock(&m->mu);
}

#ifdef SEEKD_FAULT_HOOKS
/* Test builds only: while the file named by SEEKD_FAULT_STALL exists, the loop hangs without a
 * heartbeat, as a wedged step would (tests/integration/test_daemon.py). */
static void fault_stall(void)
{
    const char *path = getenv("SEEKD_FAULT_STALL");
    while (path && access(path, F_OK) == 0) usleep(10 * 1000);
}
#else
static void fault_stall(void) {}
#endif

/* Expert parallelism: one round with the other ranks (engine/lockstep.h); whether this rank ran
 * a step, of its own work or an empty one serving the others' rows. *quit once every rank is
 * stopping. */
static bool ep_round(struct engine *eng, int stop, bool *quit)
{
    struct err e = {0};
    int any, all_stop, mine = sched_has_work(eng->sched);
    if (lockstep_round(eng->ep, mine, stop, &any, &all_stop, &e) != 0)
        ERR_FATAL("expert parallelism: %s", e.msg); /* the ranks can no longer agree: end the job */
    *quit = all_stop;
    if (all_stop || !any) return false;
    if (mine && step(eng)) return true;
    struct batch none = {0};
    if (eng->bops->forward(eng->be, &none, eng->logits, &e) != 0)
        ERR_FATAL("expert parallelism: %s", e.msg);
    return true;
}

static void *engine_main(void *arg)
{
    struct engine *eng = arg;
    for (;;) {
        fault_stall();
        __atomic_store_n(&eng->heartbeat_ns, now_ns(), __ATOMIC_RELEASE);
        pthread_mutex_lock(&eng->mu);
        int stop = eng->stop;
        pthread_mutex_unlock(&eng->mu);
        if (stop && !eng->ep) break; /* expert-parallel ranks stop together */
        take_requests(eng);
        bool quit = false;
        bool ran = eng->ep ? ep_round(eng, stop, &quit) : sched_has_work(eng->sched) && step(eng);
        if (quit) break;
        struct sched_stats st;
        sched_stats(eng->sched, &st);
        __atomic_store_n(&eng->n_waiting, st.n_requests_waiting, __ATOMIC_RELEASE);
        record_gauges(eng, &st);
        notify_all(eng);
        reap(eng);
        if (ran) continue;
        pthread_mutex_lock(&eng->mu);
        if (!eng->incoming && !eng->stop) { /* expert-parallel: the others' work is polled too */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (eng->ep ? 5 : 50) * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&eng->cv, &eng->mu, &ts);
        }
        pthread_mutex_unlock(&eng->mu);
    }
    struct err e = {0};
    if (eng->tp && lockstep_stop(eng->tp, &e) != 0)
        fprintf(stderr, "seekd: tensor parallelism: %s\n", e.msg);
    return NULL;
}

/* The engine thread of tensor-parallel ranks 1..: rank 0's steps until it says stop. */
static void *follower_main(void *arg)
{
    struct engine *eng = arg;
    if (lockstep_follow(eng->follower) != 0)
        fprintf(stderr, "seekd: tensor parallelism: %s\n", eng->follower->fault.msg);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

/* The KV cache's element type: as asked, or (auto) f16 for a GGUF model on the CPU, as
 * llama.cpp keeps it, and bf16 otherwise (DeepSeek's latent cache). */
static enum dtype kv_dtype_of(const struct engine *eng, const struct engine_opts *o)
{
    if (o->kv_cache_dtype >= 0) return (enum dtype)o->kv_cache_dtype;
    return eng->bops == backend_cpu() && eng->m->gguf.n_tensors ? DT_F16 : DT_BF16;
}

/* The backend (weights, KV pool, scratch) and a scheduler over its blocks. */
static int setup_backend(struct engine *eng, const struct engine_opts *o, struct err *e)
{
    struct backend_opts bo = {.numerics = o->numerics, .max_tokens = o->max_num_batched_tokens,
                              .max_logits = o->max_num_seqs, .block_size = o->block_size,
                              .kv_memory = o->kv_cache_memory, .threads = o->threads,
                              .huge_pages = o->huge_pages,
                              .devices = o->devices, .n_devices = o->n_devices,
                              .progress = o->progress, .graphs = o->cuda_graphs};
    eng->bops = o->backend ? o->backend : backend_cpu();
    if (o->backend_auto)
        eng->bops = backend_for_model(eng->bops, eng->m, eng->backend_note, sizeof eng->backend_note);
    bo.kv_dtype = kv_dtype_of(eng, o); /* for the backend the model ends up on */
    bo.numerics = eng->numerics = backend_numerics(eng->bops, eng->m, o->numerics);
    bo.sample_prefilter = o->sample_prefilter && eng->bops->forward_cands;
    if (bo.sample_prefilter) eng->cands = xcalloc((size_t)o->max_num_seqs, sizeof *eng->cands);
    bo.tp_comm = eng->tp, bo.ep_comm = eng->ep;
    eng->be = eng->bops->create(eng->m, &bo, e);
    if (eng->be) eng->bops->stats(eng->be, &eng->be_start);
    int32_t n_blocks = eng->be_start.n_blocks;
    struct comm *lc = eng->tp ? eng->tp : eng->ep; /* the ranks that must all start */
    eng->agreed = lc != NULL; /* tensor-parallel ranks share one pool; expert-parallel, their own */
    if (lc && lockstep_agree(lc, eng->be != NULL, eng->tp ? &n_blocks : NULL, e) != 0) return -1;
    if (!eng->be) return -1;
    eng->scfg = (struct sched_config){.n_blocks = n_blocks, .block_size = o->block_size,
                                      .max_num_batched_tokens = o->max_num_batched_tokens,
                                      .max_num_seqs = o->max_num_seqs,
                                      .no_prefix_caching = !o->enable_prefix_caching,
                                      .prefill_chunk = o->prefill_chunk > 0 ? o->prefill_chunk
                                                                            : eng->be_start.prefill_chunk};
    if (eng->tp && eng->tp->rank > 0) return 0; /* rank 0 schedules */
    eng->sched = sched_create(&eng->scfg, e);
    return eng->sched ? 0 : -1;
}

/* A tensor-parallel rank that fails before its backend is made still takes part in the
 * start-up agreement, so that the others hear of it instead of waiting. */
static void agree_failed(struct engine *eng)
{
    struct err ignored = {0};
    struct comm *lc = eng->tp ? eng->tp : eng->ep;
    if (lc && !eng->agreed) lockstep_agree(lc, 0, NULL, &ignored);
    eng->agreed = 1;
}

/* Starts the engine thread: the scheduling loop, or (tensor-parallel ranks 1..) the follower's. */
static int start_thread(struct engine *eng, struct err *e)
{
    void *(*fn)(void *) = engine_main;
    if (eng->tp && eng->tp->rank > 0) {
        eng->follower = xcalloc(1, sizeof *eng->follower);
        *eng->follower = (struct lockstep){.c = eng->tp, .bops = eng->bops, .be = eng->be,
                                           .logits = eng->logits};
        fn = follower_main;
    }
    if (pthread_create(&eng->thread, NULL, fn, eng) != 0) return err_set(e, "cannot start the engine thread");
    eng->thread_started = 1;
    return 0;
}

/* The context a request may use: max_model_len when set, else the model's own. Longer than the
 * model's context needs allow_long_max_model_len; longer than the KV pool holds is an error when
 * asked for, and clamped (engine_limits tells) when derived: a server whose every request
 * without max_tokens would be refused is worse than a shorter context. */
static int set_context(struct engine *eng, const struct engine_opts *o, struct err *e)
{
    int model_len = eng->m->cfg.max_position_embeddings;
    int64_t pool = (int64_t)eng->scfg.n_blocks * eng->scfg.block_size;
    if (o->max_model_len > model_len && !o->allow_long_max_model_len)
        return err_set(e, "max_model_len %d is longer than the model's context of %d tokens "
                          "(max_position_embeddings in config.json): positions past it were "
                          "never trained. Lower it, or pass --allow-long-max-model-len to serve "
                          "it anyway", o->max_model_len, model_len);
    if (o->max_model_len > pool)
        return err_set(e, "max_model_len %d is longer than the KV cache holds (%lld tokens in "
                          "kv_cache_memory): raise kv_cache_memory or lower max_model_len",
                       o->max_model_len, (long long)pool);
    eng->max_model_len = o->max_model_len > 0 ? o->max_model_len
                                              : (int)(model_len < pool ? model_len : pool);
    return 0;
}

struct engine *engine_create(const struct engine_opts *o, struct err *e)
{
    struct engine *eng = xcalloc(1, sizeof *eng);
    pthread_mutex_init(&eng->mu, NULL);
    metrics_init(&eng->metrics);
    pthread_cond_init(&eng->cv, NULL);
    eng->tp = o->tp_comm && o->tp_comm->size > 1 ? o->tp_comm : NULL;
    eng->ep = o->ep_comm && o->ep_comm->size > 1 ? o->ep_comm : NULL;
    eng->m = model_load_progress(o->model_dir, o->progress, e);
    if (!eng->m) goto fail;
    eng->tok = vocab_load(eng->m, o->model_dir, o->tokenizer_dir, e);
    if (!eng->tok) goto fail;
    if (gencfg_load(&eng->gen, eng->m->gguf.n_tensors ? &eng->m->gguf : NULL, o->model_dir, e) != 0)
        goto fail;
    if (tok_n_vocab(eng->tok) > eng->m->cfg.vocab_size) {
        err_set(e, "%s: the tokenizer has %d ids but the model only %d", o->model_dir,
                tok_n_vocab(eng->tok), eng->m->cfg.vocab_size);
        goto fail;
    }
    if (setup_backend(eng, o, e) != 0 || set_context(eng, o, e) != 0) goto fail;
    eng->max_queued = o->max_queued_requests;
    eng->max_request_bytes = o->max_request_memory;
    eng->budget_bytes = o->request_memory_budget;
    eng->max_text = 3 * tok_max_piece_bytes(eng->tok) + 4;
    eng->eos = tok_eos_id(eng->tok) >= 0 ? tok_eos_id(eng->tok) : eng->m->cfg.eos_token_id;
    eng->logits = xmalloc((size_t)o->max_num_seqs * (size_t)eng->m->cfg.vocab_size * sizeof(float));
    eng->sampled = xcalloc((size_t)o->max_num_seqs, sizeof *eng->sampled);
    eng->stopped = xcalloc((size_t)o->max_num_seqs, sizeof *eng->stopped);
    eng->gv = gv_create(eng->tok, eng->m->cfg.vocab_size);
    size_t words = (size_t)gv_words(eng->gv);
    eng->masks = xmalloc((size_t)o->max_num_seqs * words * sizeof *eng->masks);
    eng->job_of = xcalloc((size_t)o->max_num_seqs, sizeof *eng->job_of);
    eng->fork_mask = xmalloc(words * sizeof *eng->fork_mask);
    eng->masker = masker_create(eng->gv, o->max_num_seqs, e);
    if (!eng->masker) goto fail;
    eng->heartbeat_ns = now_ns();
    if (start_thread(eng, e) != 0) goto fail;
    return eng;
fail:
    agree_failed(eng);
    engine_destroy(eng);
    return NULL;
}

/* Ends every request still known to the engine with GEN_FINISH_ABORT. */
static void abort_everything(struct engine *eng)
{
    take_requests(eng);
    for (struct gen *g = eng->live; g; g = g->next)
        for (int c = 0; c < g->p.n; c++) gen_end_choice(g, c, GEN_FINISH_ABORT, NULL);
    reap(eng);
}

void engine_destroy(struct engine *eng)
{
    if (!eng) return;
    dp_destroy(eng->dp); /* the other ranks stop; requests relayed there end */
    if (eng->thread_started) {
        pthread_mutex_lock(&eng->mu);
        eng->stop = 1;
        pthread_cond_signal(&eng->cv);
        pthread_mutex_unlock(&eng->mu);
        pthread_join(eng->thread, NULL);
        abort_everything(eng);
    }
    masker_destroy(eng->masker);
    gv_destroy(eng->gv);
    free(eng->masks);
    free(eng->job_of);
    free(eng->fork_mask);
    if (eng->be) eng->bops->destroy(eng->be);
    free(eng->logits);
    free(eng->cands);
    free(eng->sampled);
    free(eng->stopped);
    free(eng->follower);
    sched_destroy(eng->sched);
    tok_destroy(eng->tok);
    model_destroy(eng->m);
    pthread_cond_destroy(&eng->cv);
    pthread_mutex_destroy(&eng->mu);
    metrics_destroy(&eng->metrics);
    free(eng);
}

const struct tok *engine_tokenizer(const struct engine *eng)
{
    return eng->tok;
}

const struct gv *engine_vocab(const struct engine *eng)
{
    return eng->gv;
}

void engine_metrics(struct engine *eng, struct metrics *out)
{
    metrics_snapshot(&eng->metrics, out);
    if (eng->dp) dp_metrics_add(eng->dp, out);
}

void engine_start_router(struct engine *eng, struct comm_mpi *w, double stall_s,
                         int32_t min_blocks, int stride)
{
    eng->scfg.n_blocks = min_blocks; /* a request must fit whichever rank takes it */
    eng->dp = dp_create(w, stall_s, stride);
}

int engine_routed(struct engine *eng, int64_t *out, int max)
{
    return eng->dp ? dp_routed(eng->dp, out, max) : 0;
}

int engine_fault(struct engine *eng, char *msg, size_t n)
{
    return eng->dp ? dp_fault(eng->dp, msg, n) : 0;
}

double engine_idle_s(const struct engine *eng)
{
    if (eng->follower) return lockstep_stalled_s(eng->follower, now_ns()); /* waiting is not idle */
    return (double)(now_ns() - __atomic_load_n(&eng->heartbeat_ns, __ATOMIC_ACQUIRE)) * 1e-9;
}

const char *engine_backend(const struct engine *eng, struct backend_stats *at_start)
{
    *at_start = eng->be_start;
    return eng->bops->name;
}

const struct gen_defaults *engine_gen_defaults(const struct engine *eng)
{
    return &eng->gen;
}

const char *engine_backend_note(const struct engine *eng)
{
    return eng->backend_note;
}

enum numerics engine_numerics(const struct engine *eng)
{
    return eng->numerics;
}

int engine_max_model_len(const struct engine *eng)
{
    return eng->max_model_len;
}

void engine_limits(const struct engine *eng, struct engine_limits *out)
{
    *out = (struct engine_limits){
        .max_model_len = eng->max_model_len,
        .model_context = eng->m->cfg.max_position_embeddings,
        .kv_tokens = (int64_t)eng->scfg.n_blocks * eng->scfg.block_size,
    };
}

int engine_alive(const struct engine *eng, double max_stall_s)
{
    if (eng->follower && __atomic_load_n(&eng->follower->failed, __ATOMIC_ACQUIRE)) return 0;
    return engine_idle_s(eng) <= max_stall_s;
}

