/* launch: the layout checks and MPI start-up shared by `seekd serve` and `seekd logits`. */
#include "server/launch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int launch_check_layout(const struct launch_layout *lay, struct err *e)
{
    if (lay->tensor_parallel_size > 1 && lay->data_parallel_size > 1 && lay->enable_expert_parallel)
        return err_set(e,
                       "enable_expert_parallel with tensor_parallel_size %d and data_parallel_size "
                       "%d together: not implemented yet (with either alone it is)",
                       lay->tensor_parallel_size, lay->data_parallel_size);
    if (lay->enable_expert_parallel && lay->tensor_parallel_size * lay->data_parallel_size == 1)
        return err_set(e, "enable_expert_parallel splits the experts across ranks: it needs "
                          "data_parallel_size or tensor_parallel_size above 1");
    return 0;
}

/* mpirun's arguments for want ranks of this binary running argv. NULL-terminated, allocated. */
static char **mpirun_args(int want, int argc, char **argv, struct err *e)
{
    static char exe[PATH_MAX], np[16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return err_set(e, "cannot find this binary to start %d ranks: %s", want, strerror(errno)), NULL;
    exe[n] = 0;
    snprintf(np, sizeof np, "%d", want);
    const char *head[] = {"mpirun", "-np", np, "--bind-to", "none", "--oversubscribe", exe};
    size_t nh = sizeof head / sizeof head[0];
    char **args = xcalloc(nh + (size_t)argc + 1, sizeof *args);
    memcpy(args, head, sizeof head);
    memcpy(args + nh, argv, (size_t)argc * sizeof *args);
    return args;
}

/* Sends sig to every child of parent (mpirun's: the ranks on this machine); to parent itself
 * while it has none yet. */
static void signal_children(pid_t parent, int sig)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int sent = 0;
    while (d && (de = readdir(d))) {
        char path[64], buf[512];
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        buf[n] = 0;
        char *close = strrchr(buf, ')'); /* "pid (comm) state ppid ...": comm may hold anything */
        int ppid = 0;
        if (close && sscanf(close + 1, " %*c %d", &ppid) == 1 && ppid == parent)
            sent += kill((pid_t)atoi(de->d_name), sig) == 0;
    }
    if (d) closedir(d);
    if (!sent) kill(parent, sig);
}

/* The launcher's life: signals to the ranks, until mpirun ends; its exit code. */
static int watch(pid_t child, const sigset_t *set)
{
    for (;;) {
        int sig = 0, status;
        sigwait(set, &sig);
        if (sig != SIGCHLD) {
            signal_children(child, sig); /* rank 0 drains and stops the others */
            continue;
        }
        if (waitpid(child, &status, WNOHANG) != child) continue;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
}

int launch_self(const struct launch_layout *lay, int argc, char **argv, int *exit_code,
                struct err *e)
{
    int want = lay->tensor_parallel_size * lay->data_parallel_size;
    if (want == 1 || comm_mpi_launched()) return 0;
    if (launch_check_layout(lay, e) != 0) return -1;
    char **args = mpirun_args(want, argc, argv, e);
    if (!args) return -1;
    sigset_t set, old;
    sigemptyset(&set);
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    fprintf(stderr, "seekd: starting %d ranks: mpirun -np %d --bind-to none --oversubscribe %s %s ...\n",
            want, want, args[6], argv[0]);
    fflush(stderr);
    pid_t child = fork();
    if (child == 0) { /* mpirun must see signals as usual: the caller may have blocked some */
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execvp("mpirun", args);
        fprintf(stderr, "seekd: tensor_parallel_size %d x data_parallel_size %d needs %d ranks, and "
                        "mpirun cannot be started to run them (%s): install Open MPI (apt-get "
                        "install openmpi-bin), or start seekd under MPI yourself, e.g. mpirun -np "
                        "%d seekd ...\n", lay->tensor_parallel_size, lay->data_parallel_size, want,
                strerror(errno), want);
        _exit(127);
    }
    free(args);
    if (child < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return err_set(e, "cannot start mpirun for %d ranks: %s", want, strerror(errno));
    }
    *exit_code = watch(child, &set);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 1;
}

int launch_start(struct launch *l, const struct launch_layout *lay, struct err *e)
{
    int want = lay->tensor_parallel_size * lay->data_parallel_size;
    *l = (struct launch){.rank = 0, .size = 1};
    if (!comm_mpi_launched()) {
        if (launch_check_layout(lay, e) != 0) return -1;
        if (want == 1) return 0;
        return err_set(e,
                       "tensor_parallel_size %d x data_parallel_size %d needs %d ranks: start "
                       "seekd under MPI, e.g. mpirun -np %d seekd ...",
                       lay->tensor_parallel_size, lay->data_parallel_size, want, want);
    }
    l->w = comm_mpi_init(e);
    if (!l->w) return -1;
    l->rank = comm_mpi_rank(l->w);
    l->size = comm_mpi_size(l->w);
    if (launch_check_layout(lay, e) != 0) return -1;
    if (l->size == want) return 0;
    return err_set(e,
                   "started as %d MPI ranks, but tensor_parallel_size %d x data_parallel_size %d "
                   "needs %d",
                   l->size, lay->tensor_parallel_size, lay->data_parallel_size, want);
}

int launch_devices(const struct launch *l, int *devices, int n)
{
    if (!l->w || n <= 1) return n;
    devices[0] = devices[comm_mpi_local_rank(l->w) % n];
    return 1;
}

void launch_finish(struct launch *l)
{
    comm_mpi_finalize(l->w);
    l->w = NULL;
}
