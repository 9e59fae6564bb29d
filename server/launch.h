/* launch: how this seekd process runs — alone, or as one rank of an MPI job — and whether the
 * parallel layout asked for fits that launch. A plain launch never calls into MPI. */
#ifndef SEEKD_LAUNCH_H
#define SEEKD_LAUNCH_H

#include <stdbool.h>

#include "engine/comm_mpi.h"
#include "engine/err.h"

/* The parallel layout (vLLM's option names). */
struct launch_layout {
    int tensor_parallel_size;
    int data_parallel_size;
    bool enable_expert_parallel;
};

struct launch {
    struct comm_mpi *w; /* NULL: a plain launch (one rank) */
    int rank, size;
};

/* Refuses what is not implemented yet, naming the option; 0 when the layout can run. */
int launch_check_layout(const struct launch_layout *lay, struct err *e);

/* A layout of several ranks in a process that MPI did not start: seekd starts them itself —
 * `mpirun -np N --bind-to none --oversubscribe <this binary> argv...` as a child (argv: the
 * subcommand and its arguments; each rank finds itself under MPI) — and stays as the launcher:
 * SIGTERM, SIGINT and SIGHUP go to the ranks themselves (rank 0 drains and stops the others; mpirun
 * would kill them a second after), and *exit_code becomes mpirun's. Returns 1 when the job ran,
 * 0 at once when there is nothing to start (one rank, or already under MPI), -1 with a message. */
int launch_self(const struct launch_layout *lay, int argc, char **argv, int *exit_code,
                struct err *e);

/* Starts MPI when this process was launched by it, and checks that the job has exactly the
 * ranks the layout needs. -1 with a message, MPI still up: rank 0 says it, then every rank calls
 * launch_finish, whose MPI_Finalize waits for all, so that no rank's exit (which makes mpirun
 * kill the job) comes before rank 0 has said why. */
int launch_start(struct launch *l, const struct launch_layout *lay, struct err *e);

/* The GPUs this rank drives, from the --gpus list devices [n]: under MPI with several listed,
 * the one at this rank's index on its machine (so `--gpus 0-7` gives eight local ranks a GPU
 * each); otherwise the list unchanged. Returns the new count. */
int launch_devices(const struct launch *l, int *devices, int n);

/* MPI_Finalize when MPI was started. */
void launch_finish(struct launch *l);

#endif
