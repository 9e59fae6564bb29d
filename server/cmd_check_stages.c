/* cmd_check_stages: `seekd check-stages` — the teacher-forced stage checker over a dump written
 * by `seekd logits --numerics fast --dump-stages DIR` (any backend): every stage recomputed on
 * the CPU from the dumped input to it, the first stage out of tolerance named
 * (engine/cpu/stage_check.h). Exit 0 when every stage is within tolerance, 1 otherwise. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/stage_check.h"
#include "engine/model/synth.h"
#include "server/commands.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: seekd check-stages (--model DIR | --synthetic CONFIG [--seed N]) --dump DIR\n"
               "                          [--threads N] [--vocab-cols N] [--verbose]\n"
               "\n"
               "Recomputes every dumped stage on the CPU from the dumped input to it and names\n"
               "the first one outside its tolerance.\n"
               "  --dump DIR      what seekd logits --dump-stages DIR wrote\n"
               "  --vocab-cols N  logits columns recomputed per row (default 4096; 0: all)\n"
               "  --verbose       a line for every stage, not only failing ones\n");
}

int cmd_check_stages(int argc, char **argv)
{
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'}, {"synthetic", required_argument, 0, 'Y'},
        {"seed", required_argument, 0, 'E'},  {"dump", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 'j'}, {"vocab-cols", required_argument, 0, 'v'},
        {"verbose", no_argument, 0, 'V'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model = NULL, *synthetic = NULL;
    uint64_t seed = 1;
    int threads = 0, ch;
    struct sc_opts o = {.max_vocab_cols = 4096, .out = stdout};
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'm': model = optarg; break;
        case 'Y': synthetic = optarg; break;
        case 'E': seed = strtoull(optarg, NULL, 10); break;
        case 'd': o.dump_dir = optarg; break;
        case 'j': threads = atoi(optarg); break;
        case 'v': o.max_vocab_cols = atoi(optarg); break;
        case 'V': o.verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model == !synthetic || !o.dump_dir || optind != argc) {
        usage(stderr);
        return 2;
    }
    struct err e = {0};
    struct model *m = synthetic ? synth_load(synthetic, seed, 1, threads, &e) : model_load(model, &e);
    if (!m) {
        fprintf(stderr, "seekd: %s\n", e.msg);
        return 1;
    }
    struct tp *tp = tp_create(threads);
    struct sc_result r;
    int rc = sc_check(m, tp, &o, &r, &e);
    if (rc != 0) fprintf(stderr, "seekd: %s\n", e.msg);
    else if (r.first[0])
        printf("check-stages: %d of %d stages out of tolerance in %d steps; the first: %s\n",
               r.n_failed, r.n_stages, r.n_steps, r.first);
    else
        printf("check-stages: all %d stages of %d steps within tolerance (%d tokens' routing "
               "taken from the dump at a margin below 1e-6)\n",
               r.n_stages, r.n_steps, r.n_forced);
    tp_destroy(tp);
    model_destroy(m);
    return rc != 0 || r.first[0] ? 1 : 0;
}
