/* cmd_logits: `seekd logits` — runs token ids through the model and writes float32 logits
 * [n_tokens, vocab] as a .npy file. One prefill by default; --chunk N prefills N tokens per
 * step; --decode feeds one token per step through the KV cache. Tests and benchmarks use it to
 * compare seekd with the reference implementation.
 *
 * Under MPI (`mpirun -np N seekd logits --data-parallel-size N ...` or `--tensor-parallel-size
 * N`) every rank loads the model; rank 0 plans each step and broadcasts the plan (stepcast), every
 * rank runs it (with data parallelism all of it, with tensor parallelism its part, gathering the
 * logits), rank 0 checks that every rank's logits are bit-identical to its own and writes the
 * file. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/model/model.h"
#include "engine/model/synth.h"
#include "engine/stepcast.h"
#include "server/commands.h"
#include "server/launch.h"

struct logits_opts {
    const char *model, *out, *tokens;
    int chunk;       /* tokens per step; 0 = all at once */
    int first;       /* --first: tokens of the first step (then chunk per step); 0: chunk */
    int block_size;
    int threads;     /* 0 = one per core */
    enum dtype kv_dtype;
    int kv_dtype_set;      /* else: bf16 under DeepSeek's FP8 recipe, f32 otherwise */
    struct comm *tp_comm;  /* tensor parallelism: this rank's group; NULL: none */
    enum backend_kind backend;
    enum numerics numerics; /* AUTO until the model is loaded (backend_numerics) */
    const char *dump_dir;  /* --dump-stages */
    const char *synthetic; /* a config.json whose weights come from --seed (engine/model/synth.h) */
    uint64_t seed;
    int no_graphs;         /* --no-cuda-graphs */
    int devices[BACKEND_MAX_DEVICES];
    int n_devices;
    struct launch_layout layout;
    int stats;       /* print the backend's figures to stderr at the end */
};

static void logits_usage(FILE *f)
{
    fprintf(f, "usage: seekd logits (--model PATH | --synthetic CONFIG [--seed N]) --tokens ID,ID,...\n"
               "                    --out FILE.npy\n"
               "                    [--decode | --chunk N] [--first N] [--block-size N]\n"
               "                    [--kv-dtype f32|bf16|f16]\n"
               "                    [--threads N] [--backend auto|cpu|cuda]\n"
               "                    [--numerics ref|bf16|fast|auto]\n"
               "                    [--gpus LIST] [--stats] [--dump-stages DIR] [--no-cuda-graphs]\n"
               "                    [--data-parallel-size N] [--tensor-parallel-size N]\n"
               "                    [--enable-expert-parallel]\n"
               "\n"
               "Writes float32 logits [n_tokens, vocab_size] of every position.\n"
               "  --synthetic C   the model of config.json C with weights generated from --seed\n"
               "                  (default 1) instead of a checkpoint\n"
               "  --decode        one token per step through the KV cache\n"
               "  --chunk N       prefill N tokens per step\n"
               "  --first N       the first step takes N tokens, the rest as --decode or --chunk\n"
               "                  say (a prefill, then decode steps)\n"
               "  --block-size N  KV cache block size in tokens (default 64)\n"
               "  --kv-dtype T    KV cache storage: f32, bf16 or f16 (default: bf16 under DeepSeek's\n"
               "                  FP8 recipe, f32 otherwise)\n"
               "  --threads N     worker threads (default 0: one per core)\n"
               "  --backend B     what runs the model (default auto: CUDA if usable, else CPU)\n"
               "  --numerics M    step arithmetic: ref (default: exact F32, the reference), bf16\n"
               "                  (BF16 matmul inputs where the backend has faster kernels; CUDA\n"
               "                  runs it as ref), fast (DeepSeek's FP8 recipe, on the CPU an exact\n"
               "                  emulation of the GPU's; for a GGUF file's quantisation blocks,\n"
               "                  8-bit activations with integer dots) or auto (as seekd serve:\n"
               "                  fast on CUDA; on the CPU fast for GGUF quantisation blocks,\n"
               "                  else ref)\n"
               "  --gpus LIST     CUDA devices, e.g. 0 (default: device 0)\n"
               "  --stats         print the backend's figures (steps, forward seconds, bytes)\n"
               "  --dump-stages D write every stage of every layer of every step under D (fast\n"
               "                  numerics), for seekd check-stages\n"
               "  --no-cuda-graphs  run decode steps kernel by kernel (CUDA, fast numerics)\n"
               "  --data-parallel-size N   under mpirun -np N: every rank runs the steps rank 0\n"
               "                  plans; their logits must be identical\n"
               "  --tensor-parallel-size N under mpirun -np N: each rank computes its part of\n"
               "                  every layer (heads, experts, MLP and vocabulary rows); the\n"
               "                  logits are gathered on every rank\n"
               "  --enable-expert-parallel  with --data-parallel-size N: each rank holds 1/N of\n"
               "                  the experts, the routed rows travel to them and back\n"
               "                  (all-to-all); with --tensor-parallel-size the experts are\n"
               "                  split whole across the ranks either way\n");
}

/* Parses "1,2,3" into a fresh array; -1 on anything that is not a list of integers. */
static int parse_tokens(const char *s, int32_t **out, int *n)
{
    int cap = 16;
    *n = 0;
    *out = malloc((size_t)cap * sizeof **out);
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || (*end && *end != ',')) return -1;
        if (*n == cap) *out = realloc(*out, (size_t)(cap *= 2) * sizeof **out);
        (*out)[(*n)++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    return *n > 0 ? 0 : -1;
}

static int parse_opts(int argc, char **argv, struct logits_opts *o)
{
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'}, {"tokens", required_argument, 0, 't'},
        {"out", required_argument, 0, 'o'},   {"chunk", required_argument, 0, 'c'},
        {"decode", no_argument, 0, 'd'},      {"block-size", required_argument, 0, 'b'},
        {"kv-dtype", required_argument, 0, 'k'}, {"threads", required_argument, 0, 'j'},
        {"backend", required_argument, 0, 'B'}, {"numerics", required_argument, 0, 'N'},
        {"gpus", required_argument, 0, 'G'}, {"stats", no_argument, 0, 'S'},
        {"dump-stages", required_argument, 0, 'P'}, {"synthetic", required_argument, 0, 'Y'},
        {"seed", required_argument, 0, 'R'}, {"no-cuda-graphs", no_argument, 0, 'g'},
        {"first", required_argument, 0, 'F'}, {"help", no_argument, 0, 'h'},
        {"tensor-parallel-size", required_argument, 0, 'T'},
        {"data-parallel-size", required_argument, 0, 'D'},
        {"enable-expert-parallel", no_argument, 0, 'E'}, {0, 0, 0, 0}};
    *o = (struct logits_opts){.block_size = 64, .kv_dtype = DT_F32, .backend = BACKEND_AUTO, .seed = 1,
                              .layout = {.tensor_parallel_size = 1, .data_parallel_size = 1}};
    struct err e = {0};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'm': o->model = optarg; break;
        case 't': o->tokens = optarg; break;
        case 'o': o->out = optarg; break;
        case 'c': o->chunk = atoi(optarg); if (o->chunk < 1) return -1; break;
        case 'd': o->chunk = 1; break;
        case 'F': o->first = atoi(optarg); if (o->first < 1) return -1; break;
        case 'b': o->block_size = atoi(optarg); if (o->block_size < 1) return -1; break;
        case 'k':
            if (strcmp(optarg, "f32") == 0) o->kv_dtype = DT_F32;
            else if (strcmp(optarg, "bf16") == 0) o->kv_dtype = DT_BF16;
            else if (strcmp(optarg, "f16") == 0) o->kv_dtype = DT_F16;
            else return -1;
            o->kv_dtype_set = 1;
            break;
        case 'j': o->threads = atoi(optarg); if (o->threads < 0) return -1; break;
        case 'B':
            if (strcmp(optarg, "auto") == 0) o->backend = BACKEND_AUTO;
            else if (strcmp(optarg, "cpu") == 0) o->backend = BACKEND_CPU;
            else if (strcmp(optarg, "cuda") == 0) o->backend = BACKEND_CUDA;
            else return -1;
            break;
        case 'N':
            if (strcmp(optarg, "ref") == 0) o->numerics = NUMERICS_REF;
            else if (strcmp(optarg, "bf16") == 0) o->numerics = NUMERICS_BF16;
            else if (strcmp(optarg, "fast") == 0) o->numerics = NUMERICS_FAST;
            else if (strcmp(optarg, "auto") == 0) o->numerics = NUMERICS_AUTO;
            else return -1;
            break;
        case 'G':
            o->n_devices = backend_parse_devices(optarg, o->devices, BACKEND_MAX_DEVICES, &e);
            if (o->n_devices < 0) return fprintf(stderr, "seekd logits: --gpus %s\n", e.msg), -1;
            break;
        case 'T':
            o->layout.tensor_parallel_size = atoi(optarg);
            if (o->layout.tensor_parallel_size < 1) return -1;
            break;
        case 'D':
            o->layout.data_parallel_size = atoi(optarg);
            if (o->layout.data_parallel_size < 1) return -1;
            break;
        case 'E': o->layout.enable_expert_parallel = true; break;
        case 'S': o->stats = 1; break;
        case 'P': o->dump_dir = optarg; break;
        case 'Y': o->synthetic = optarg; break;
        case 'R': o->seed = strtoull(optarg, NULL, 10); break;
        case 'g': o->no_graphs = 1; break;
        case 'h': logits_usage(stdout); exit(0);
        default: return -1;
        }
    }
    return !o->model != !o->synthetic && o->out && o->tokens && optind == argc ? 0 : -1;
}

/* Writes a C-order float32 2-D array in .npy format version 1.0. */
static int write_npy(const char *path, const float *data, int rows, int cols)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                     rows, cols);
    int total = (10 + n + 1 + 63) / 64 * 64; /* magic+version+len, dict, newline; 64-aligned */
    int hlen = total - 10;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned char len[2] = {(unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    fwrite(len, 1, 2, f);
    fprintf(f, "%s%*s\n", hdr, hlen - n - 1, "");
    size_t count = (size_t)rows * (size_t)cols;
    int ok = fwrite(data, sizeof *data, count, f) == count;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* One line of the backend's figures, for benchmarks (tests/cuda/device_check.sh reads it). */
static void print_stats(const struct backend_ops *ops, const struct backend *b)
{
    struct backend_stats st;
    ops->stats(b, &st);
    fprintf(stderr,
            "stats: backend %s, steps %llu, forward_s %.6f, weight_bytes %llu, kv_bytes %llu, "
            "workspace_bytes %llu, device %s\n",
            ops->name, (unsigned long long)st.steps, st.t_forward,
            (unsigned long long)st.weight_bytes, (unsigned long long)st.kv_bytes,
            (unsigned long long)st.workspace_bytes, st.device);
}

/* Rank 0: plans each step of `chunk` tokens, sends the plan to the other ranks, runs it. */
static int lead_steps(const struct backend_ops *ops, struct backend *b, struct comm *c,
                      const struct logits_opts *o, const int32_t *tokens, int n, float *logits,
                      int vocab, struct err *e)
{
    int chunk = o->chunk ? o->chunk : n, n_blocks = (n + o->block_size - 1) / o->block_size;
    /* Blocks in reverse order, so that logical and physical positions differ. */
    int32_t *table = malloc((size_t)n_blocks * sizeof *table);
    for (int i = 0; i < n_blocks; i++) table[i] = n_blocks - 1 - i;
    int rc = 0;
    for (int p = 0, len; p < n && rc == 0; p += len) {
        int step = p == 0 && o->first ? o->first : chunk;
        len = n - p < step ? n - p : step;
        struct batch_seq seq = {.start = 0, .n_tokens = len, .pos0 = p, .block_table = table,
                                .logits = BATCH_LOGITS_ALL};
        struct batch bt = {.n_tokens = len, .tokens = tokens + p, .n_seqs = 1, .seqs = &seq};
        rc = stepcast_send(c, STEPCAST_STEP, &bt, o->block_size, NULL, 0, e);
        if (rc == 0) rc = ops->forward(b, &bt, logits + (size_t)p * vocab, e);
    }
    free(table);
    return rc == 0 ? stepcast_send(c, STEPCAST_STOP, NULL, 0, NULL, 0, e) : rc;
}

/* The other ranks: run rank 0's plans until it says stop; logits rows back to back. */
static int follow_steps(const struct backend_ops *ops, struct backend *b, struct comm *c,
                        float *logits, int vocab, struct err *e)
{
    struct wire_step plan;
    int kind, rc = 0;
    while (rc == 0 && (kind = stepcast_recv(c, 0, &plan, e)) == STEPCAST_STEP) {
        rc = ops->forward(b, &plan.batch, logits, e);
        logits += (size_t)batch_n_logits(&plan.batch) * vocab;
        wire_step_free(&plan);
    }
    return rc == 0 && kind == STEPCAST_STOP ? 0 : -1;
}

/* Every rank says whether it is ready; -1 naming the ranks that are not (this one: its own
 * message stays). */
static int all_ready(struct comm *c, int ok, struct err *e)
{
    int64_t mine = ok, *all = calloc((size_t)c->size, sizeof *all);
    struct err ce;
    if (comm_exchange(c, &mine, 1, all, &ce) != 0) ok = 0, *e = ce;
    for (int r = 0; r < c->size && ok; r++)
        if (!all[r]) ok = 0, err_set(e, "rank %d failed to start (its output says why)", r);
    free(all);
    return ok ? 0 : -1;
}

/* Numerics auto made what it means for this backend and model (backend_numerics), and the
 * default KV dtype: bf16 where the fast numerics emulate DeepSeek's FP8 recipe (its latent
 * cache is BF16), else f32 — also under fast for GGUF quantisation blocks. */
static void resolve_numerics(struct logits_opts *o, const struct backend_ops *ops, const struct model *m)
{
    o->numerics = backend_numerics(ops, m, o->numerics);
    if (!o->kv_dtype_set)
        o->kv_dtype = backend_fp8_recipe(m, o->numerics) ? DT_BF16 : DT_F32;
}

/* Runs the tokens through the model on every rank of c; logits of every position. */
static int run_steps(const struct backend_ops *ops, const struct model *m,
                     const struct logits_opts *o, struct comm *c, const int32_t *tokens, int n,
                     float *logits, struct err *e)
{
    int chunk = o->chunk ? o->chunk : n, n_blocks = (n + o->block_size - 1) / o->block_size;
    if (o->first > chunk) chunk = o->first < n ? o->first : n;
    struct backend_opts bo = {.numerics = o->numerics, .max_tokens = chunk, .max_logits = chunk,
                              .block_size = o->block_size, .kv_dtype = o->kv_dtype,
                              .kv_blocks = n_blocks, .threads = o->threads,
                              .devices = o->devices, .n_devices = o->n_devices,
                              .dump_dir = o->dump_dir, .graphs = !o->no_graphs,
                              .tp_comm = o->tp_comm,
                              .ep_comm = o->layout.data_parallel_size > 1 &&
                                                 o->layout.enable_expert_parallel ? c : NULL};
    struct backend *b = m && logits ? ops->create(m, &bo, e) : NULL;
    if (all_ready(c, b != NULL, e) != 0) {
        if (b) ops->destroy(b);
        return -1;
    }
    int vocab = m->cfg.vocab_size;
    int rc = c->rank == 0 ? lead_steps(ops, b, c, o, tokens, n, logits, vocab, e)
                          : follow_steps(ops, b, c, logits, vocab, e);
    if (o->stats && rc == 0 && c->rank == 0) print_stats(ops, b);
    ops->destroy(b);
    return rc;
}

static uint64_t fnv1a(const void *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

/* Data parallelism: every rank ran the same steps; their logits must be identical. */
static int same_on_every_rank(struct comm *c, const float *logits, size_t n, struct err *e)
{
    int64_t mine = (int64_t)fnv1a(logits, n * sizeof *logits);
    int64_t *all = calloc((size_t)c->size, sizeof *all);
    int rc = comm_exchange(c, &mine, 1, all, e);
    for (int r = 1; r < c->size && rc == 0; r++)
        if (all[r] != all[0]) rc = err_set(e, "rank %d's logits differ from rank 0's", r);
    free(all);
    return rc;
}

/* Loads the model, runs the steps on every rank, checks the ranks agree; rank 0 writes. */
static int logits_on(struct comm *c, struct logits_opts *o, const int32_t *tokens, int n)
{
    struct err e = {0};
    char note[320] = "";
    int rc = 1;
    const struct backend_ops *ops = backend_select(o->backend, note, sizeof note, &e);
    int fill = ops && strcmp(ops->name, "cpu") == 0; /* a GPU generates synthetic weights itself */
    struct model *m = !ops ? NULL
                      : o->synthetic ? synth_load(o->synthetic, o->seed, fill, o->threads, &e)
                                     : model_load(o->model, &e);
    if (note[0] && c->rank == 0) fprintf(stderr, "seekd logits: %s\n", note);
    if (m && o->backend == BACKEND_AUTO) ops = backend_for_model(ops, m, note, sizeof note);
    if (note[0] && m && o->backend == BACKEND_AUTO && c->rank == 0)
        fprintf(stderr, "seekd logits: %s\n", note);
    if (m) resolve_numerics(o, ops, m);
    size_t count = m ? (size_t)n * (size_t)m->cfg.vocab_size : 0;
    float *logits = m ? malloc(count * sizeof *logits) : NULL;
    if (m && !logits) err_set(&e, "cannot allocate logits for %d tokens", n);
    if (run_steps(ops ? ops : backend_cpu(), m, o, c, tokens, n, logits, &e) != 0 ||
        (c->size > 1 && same_on_every_rank(c, logits, count, &e) != 0))
        fprintf(stderr, "seekd: %s\n", e.msg);
    else if (c->rank == 0 && write_npy(o->out, logits, n, m->cfg.vocab_size) != 0)
        fprintf(stderr, "seekd: cannot write %s: %s\n", o->out, strerror(errno));
    else rc = 0;
    free(logits);
    model_destroy(m);
    return rc;
}

int cmd_logits(int argc, char **argv)
{
    struct logits_opts o;
    int32_t *tokens = NULL;
    int n = 0, rc = 1;
    struct err e = {0};
    if (parse_opts(argc, argv, &o) != 0 || parse_tokens(o.tokens, &tokens, &n) != 0) {
        logits_usage(stderr);
        free(tokens);
        return 2;
    }
    struct launch ln = {.rank = 0, .size = 1};
    int code, self = launch_self(&o.layout, argc, argv, &code, &e);
    if (self > 0) { /* the ranks ran under mpirun, started here */
        free(tokens);
        return code;
    }
    if (self < 0 || launch_start(&ln, &o.layout, &e) != 0) {
        if (ln.rank == 0) fprintf(stderr, "seekd logits: %s\n", e.msg);
        fflush(stderr);
        launch_finish(&ln);
        free(tokens);
        return 2;
    }
    o.n_devices = launch_devices(&ln, o.devices, o.n_devices);
    struct comm *c = ln.w ? comm_mpi_split(ln.w, 0, ln.rank, &e) : comm_self();
    if (!c) fprintf(stderr, "seekd logits: %s\n", e.msg);
    int tp = o.layout.tensor_parallel_size;
    if (c && tp > 1) /* every group of tp ranks splits the model; each group runs every plan */
        o.tp_comm = comm_mpi_split(ln.w, ln.rank / tp, ln.rank, &e);
    if (c && tp > 1 && !o.tp_comm) fprintf(stderr, "seekd logits: %s\n", e.msg);
    else if (c) rc = logits_on(c, &o, tokens, n);
    comm_destroy(o.tp_comm);
    comm_destroy(c);
    launch_finish(&ln);
    free(tokens);
    return rc;
}
