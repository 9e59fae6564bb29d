/* k_cutlass_fp8: the one CUTLASS instantiation — Hopper's pointer-array grouped GEMM with FP8
 * blockwise scaling (cuda/cutlass_fp8.h says what it computes) — and a small kernel that writes
 * each group's problem size, pointers, strides and scale layouts on the device from the offsets,
 * so the host never learns the routing. Tiles 128 × 128 × 128, rows (tokens) on M: a decode step
 * streams each active expert's weights once whatever its few rows; prefill fills the tiles. */
#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/group_array_problem_shape.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/util/packed_stride.hpp"

#include "cuda/cutlass_fp8.h"

#include <cstdio>
#include <new>

using namespace cute;

namespace seekd_cut {

using ProblemShape = cutlass::gemm::GroupProblemShape<Shape<int, int, int>>;
using ElementA = cutlass::float_e4m3_t; /* activations [m][k] */
using LayoutA = cutlass::layout::RowMajor;
using ElementB = cutlass::float_e4m3_t; /* weights [n][k]: K × N column-major */
using LayoutB = cutlass::layout::ColumnMajor;
using ElementD = float;
using LayoutD = cutlass::layout::RowMajor;
using ElementAcc = float;
constexpr int AlignAB = 16, AlignD = 4;

using TileShape = Shape<_128, _128, _128>;
using ClusterShape = Shape<_1, _1, _1>;
using ScaleConfig = cutlass::detail::Sm90BlockwiseScaleConfig<1, 128, 128>;
using LayoutSFA = decltype(ScaleConfig::deduce_layoutSFA());
using LayoutSFB = decltype(ScaleConfig::deduce_layoutSFB());

using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
    cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc, ElementAcc, void, LayoutD *, AlignD,
    ElementD, LayoutD *, AlignD, cutlass::epilogue::PtrArrayTmaWarpSpecializedCooperative,
    cutlass::epilogue::fusion::LinearCombination<ElementD, ElementAcc, void, ElementAcc>>::CollectiveOp;

using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
    cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, cute::tuple<LayoutA *, LayoutSFA *>,
    AlignAB, ElementB, cute::tuple<LayoutB *, LayoutSFB *>, AlignAB, ElementAcc, TileShape, ClusterShape,
    cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
    cutlass::gemm::KernelPtrArrayTmaWarpSpecializedCooperativeFP8Blockwise>::CollectiveOp;

using Kernel = cutlass::gemm::kernel::GemmUniversal<ProblemShape, Mainloop, Epilogue>;
using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
using Shape3 = ProblemShape::UnderlyingProblemShape;
using StrideA = Kernel::InternalStrideA;
using StrideB = Kernel::InternalStrideB;
using StrideC = Kernel::InternalStrideC;
using StrideD = Kernel::InternalStrideD;

/* The per-group argument arrays, in one device allocation. */
struct arrays {
    Shape3 *problem;
    const ElementA **a;
    const ElementB **b;
    const float **sfa, **sfb;
    ElementD **d;
    StrideA *sa;
    StrideB *sb;
    StrideC *sc;
    StrideD *sd;
    LayoutSFA *lsfa;
    LayoutSFB *lsfb;
};

/* Group g's arguments from the offsets. */
__global__ void args_kernel(arrays a, int G, int N, int K, const int32_t *offset, const uint8_t *x,
                            const float *xs, const uint8_t *const *w, const float *const *ws, float *y,
                            int64_t ldy)
{
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= G) return;
    int m = offset[g + 1] - offset[g], kb = (K + 127) / 128;
    int64_t r0 = offset[g];
    a.problem[g] = Shape3(m, N, K);
    a.a[g] = reinterpret_cast<const ElementA *>(x + r0 * K);
    a.b[g] = reinterpret_cast<const ElementB *>(w[g]);
    a.sfa[g] = xs + r0 * kb;
    a.sfb[g] = ws[g];
    a.d[g] = y + r0 * ldy;
    a.sa[g] = cutlass::make_cute_packed_stride(StrideA{}, make_shape(m, K, 1));
    a.sb[g] = cutlass::make_cute_packed_stride(StrideB{}, make_shape(N, K, 1));
    a.sc[g] = cutlass::make_cute_packed_stride(StrideC{}, make_shape(m, (int)ldy, 1));
    a.sd[g] = cutlass::make_cute_packed_stride(StrideD{}, make_shape(m, (int)ldy, 1)); /* rows ldy apart */
    a.lsfa[g] = ScaleConfig::tile_atom_to_shape_SFA(make_shape(m, N, K, 1));
    a.lsfb[g] = ScaleConfig::tile_atom_to_shape_SFB(make_shape(m, N, K, 1));
}

/* Carves the arrays out of one allocation (each 256-byte aligned). */
size_t carve(arrays *a, char *base, int G)
{
    size_t at = 0;
    auto take = [&](size_t bytes) {
        char *p = base ? base + at : nullptr;
        at += (bytes + 255) / 256 * 256;
        return p;
    };
    a->problem = (Shape3 *)take(sizeof(Shape3) * G);
    a->a = (const ElementA **)take(sizeof(void *) * G);
    a->b = (const ElementB **)take(sizeof(void *) * G);
    a->sfa = (const float **)take(sizeof(void *) * G);
    a->sfb = (const float **)take(sizeof(void *) * G);
    a->d = (ElementD **)take(sizeof(void *) * G);
    a->sa = (StrideA *)take(sizeof(StrideA) * G);
    a->sb = (StrideB *)take(sizeof(StrideB) * G);
    a->sc = (StrideC *)take(sizeof(StrideC) * G);
    a->sd = (StrideD *)take(sizeof(StrideD) * G);
    a->lsfa = (LayoutSFA *)take(sizeof(LayoutSFA) * G);
    a->lsfb = (LayoutSFB *)take(sizeof(LayoutSFB) * G);
    return at;
}

} // namespace seekd_cut

using namespace seekd_cut;

struct kcut {
    int G, N, K;
    arrays a;
    void *arrays_mem, *workspace;
    size_t bytes;
    Gemm gemm;
};

static struct kcut *fail(struct kcut *c, char *why, size_t n_why, const char *what)
{
    if (why && n_why) snprintf(why, n_why, "%s", what);
    kcut_destroy(c);
    return nullptr;
}

extern "C" struct kcut *kcut_create(int n_groups, int64_t n, int64_t k, char *why, size_t n_why)
{
    struct kcut *c = new (std::nothrow) kcut();
    if (!c) return fail(c, why, n_why, "out of host memory");
    c->G = n_groups, c->N = (int)n, c->K = (int)k;
    size_t arr = carve(&c->a, nullptr, n_groups);
    if (cudaMalloc(&c->arrays_mem, arr) != cudaSuccess) return fail(c, why, n_why, "cannot allocate its argument arrays");
    carve(&c->a, (char *)c->arrays_mem, n_groups);
    int device = 0;
    cudaGetDevice(&device);
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGrouped,
        {n_groups, c->a.problem, nullptr},
        {c->a.a, c->a.sa, c->a.b, c->a.sb, c->a.sfa, c->a.lsfa, c->a.sfb, c->a.lsfb},
        {{}, nullptr, c->a.sc, c->a.d, c->a.sd},
        cutlass::KernelHardwareInfo::make_kernel_hardware_info<Kernel>(device)};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    if (Gemm::can_implement(args) != cutlass::Status::kSuccess) return fail(c, why, n_why, "CUTLASS cannot implement the shape");
    size_t ws = Gemm::get_workspace_size(args);
    if (cudaMalloc(&c->workspace, ws ? ws : 1) != cudaSuccess) return fail(c, why, n_why, "cannot allocate its workspace");
    if (c->gemm.initialize(args, c->workspace) != cutlass::Status::kSuccess)
        return fail(c, why, n_why, "CUTLASS's initialisation failed");
    c->bytes = arr + ws;
    return c;
}

extern "C" void kcut_destroy(struct kcut *c)
{
    if (!c) return;
    if (c->arrays_mem) cudaFree(c->arrays_mem);
    if (c->workspace) cudaFree(c->workspace);
    delete c;
}

extern "C" size_t kcut_bytes(const struct kcut *c)
{
    return c->bytes;
}

extern "C" cudaError_t kcut_run(struct kcut *c, const int32_t *offset, const uint8_t *x,
                                const float *xs, const uint8_t *const *w, const float *const *ws,
                                float *y, int64_t ldy, cudaStream_t s)
{
    args_kernel<<<(c->G + 127) / 128, 128, 0, s>>>(c->a, c->G, c->N, c->K, offset, x, xs, w, ws, y, ldy);
    cudaError_t rc = cudaGetLastError();
    if (rc != cudaSuccess) return rc;
    if (c->gemm.run(s) != cutlass::Status::kSuccess) return cudaErrorLaunchFailure;
    return cudaGetLastError();
}
