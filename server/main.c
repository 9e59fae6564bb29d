/* main: the seekd command line — dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "engine/backend.h"
#include "server/commands.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: seekd COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  serve     serve a model over an OpenAI-compatible HTTP API\n"
            "  logits    run a prompt through a model and write its logits as .npy\n"
            "  bench     load-test an OpenAI-compatible server (TTFT, TPOT, throughput)\n"
            "  check-stages  recompute a fast-numerics stage dump on the CPU, stage by stage\n"
            "  version   print the version\n"
            "\n"
            "Run 'seekd COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "logits") == 0) return cmd_logits(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "check-stages") == 0) return cmd_check_stages(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("seekd %s\nbackends: cpu%s\n", SEEKD_VERSION, backend_cuda() ? ", cuda" : "");
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "seekd: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
