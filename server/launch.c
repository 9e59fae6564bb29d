/* launch: the layout checks and MPI start-up shared by `seekd serve` and `seekd logits`. */
#include "server/launch.h"

#include <stdio.h>

int launch_check_layout(const struct launch_layout *lay, struct err *e)
{
    if (lay->tensor_parallel_size > 1 && lay->data_parallel_size > 1)
        return err_set(e,
                       "tensor_parallel_size %d with data_parallel_size %d: the two together are "
                       "not implemented yet (each alone is)",
                       lay->tensor_parallel_size, lay->data_parallel_size);
    if (lay->enable_expert_parallel && lay->tensor_parallel_size * lay->data_parallel_size == 1)
        return err_set(e, "enable_expert_parallel splits the experts across ranks: it needs "
                          "data_parallel_size or tensor_parallel_size above 1");
    return 0;
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
    if (launch_check_layout(lay, e) != 0) return launch_finish(l), -1;
    if (l->size == want) return 0;
    err_set(e,
            "started as %d MPI ranks, but tensor_parallel_size %d x data_parallel_size %d "
            "needs %d",
            l->size, lay->tensor_parallel_size, lay->data_parallel_size, want);
    launch_finish(l);
    return -1;
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
