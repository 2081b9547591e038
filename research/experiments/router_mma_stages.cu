// Stages of router_small_m_mma's kernel left out, for research/experiments/router_mma_stages.py: where its
// time goes without PDL. It includes the product's source (so `full` is the product kernel itself, and the
// variants share its loads and mma steps) and adds one kernel of the same grid and CTA (8 warps, up to 4
// chunks of K per warp, one 8-token tile: M <= 8) that stops after a stage:
// - empty: nothing but PDL's calls and one store;
// - loads: the weight's loads before the wait for the producer and the tokens' after it, as the product
//   issues them, folded into one word that decides a store (so that every load is waited for);
// - multiply: the loads and the mma steps, the warps' tiles added in the CTA, and the CTA's partial stored
//   as if it were the sum: no cluster reduction (the output is not the product; timing only);
// - global reduction: the whole GEMM without clusters: each CTA stores its partial tile into a workspace in
//   global memory and counts itself in on its row tile's counter; the last CTA of a tile adds the partials
//   in rank order, stores the sums and resets the counter (exact, and the same bits every call).
// Each can launch with the product's clusters of `splits` CTAs or as plain CTAs, with PDL or without.

#include "../../gemmbench/backends/ext/router_small_m_mma.cu"

#include <torch/extension.h>

namespace {

enum Stage : int { kEmpty = 0, kLoads = 1, kMultiply = 2, kGlobalReduction = 3 };
constexpr int kStageWarps = 8, kStageChunksPerWarp = 4;
// A folded word no load gives in practice: the store it guards keeps the loads' results in use.
constexpr uint32_t kNeverFolded = 0x9e3779b9u;

template <int kStage>
__global__ void __launch_bounds__(kStageWarps * 32)
    router_mma_stage(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                     float* __restrict__ out, int m, int n, int k, int chunks_per_split,
                     float* __restrict__ partials, unsigned int* __restrict__ arrived) {
  let_dependents_launch();
  if constexpr (kStage == kEmpty) {
    wait_for_producer();
    if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0) out[0] = 0.0f;
    return;
  } else {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int g = lane / kLanesPerRow, t = lane % kLanesPerRow;
    const int vectors = k / kVector;
    const int first_row = blockIdx.y * kRowsPerTile;
    const __nv_bfloat16* row_g = w + static_cast<int64_t>(min(first_row + g, n - 1)) * k;
    const __nv_bfloat16* row_g8 = w + static_cast<int64_t>(min(first_row + g + 8, n - 1)) * k;
    const int chunk_end = min((blockIdx.x + 1) * chunks_per_split, (vectors + kLanesPerRow - 1) / kLanesPerRow);
    float sums[kFragment] = {};
    uint32_t folded = 0;
    bool tokens_ready = false;
    for (int base = blockIdx.x * chunks_per_split + warp; base < chunk_end; base += kStageWarps * kStageChunksPerWarp) {
      uint4 weights[kStageChunksPerWarp][2], tokens[kStageChunksPerWarp];
#pragma unroll
      for (int c = 0; c < kStageChunksPerWarp; ++c) {
        const bool in_split = base + c * kStageWarps < chunk_end;
        const int v = min((base + c * kStageWarps) * kLanesPerRow + t, vectors - 1);
        weights[c][0] = in_split ? load_weight(row_g + static_cast<int64_t>(v) * kVector) : make_uint4(0, 0, 0, 0);
        weights[c][1] = in_split ? load_weight(row_g8 + static_cast<int64_t>(v) * kVector) : make_uint4(0, 0, 0, 0);
      }
      if (!tokens_ready) {
        wait_for_producer();
        tokens_ready = true;
      }
#pragma unroll
      for (int c = 0; c < kStageChunksPerWarp; ++c) {
        const bool in_split = base + c * kStageWarps < chunk_end;
        const int v = min((base + c * kStageWarps) * kLanesPerRow + t, vectors - 1);
        const __nv_bfloat16* address = x + static_cast<int64_t>(min(g, m - 1)) * k + static_cast<int64_t>(v) * kVector;
        tokens[c] = in_split && g < m ? load_token(address) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int c = 0; c < kStageChunksPerWarp; ++c) {
        if constexpr (kStage == kLoads) {
          folded ^= weights[c][0].x ^ weights[c][0].w ^ weights[c][1].y ^ tokens[c].z;
        } else {
          mma_chunk(sums, weights[c][0], weights[c][1], tokens[c]);
        }
      }
    }
    if (!tokens_ready) wait_for_producer();
    if constexpr (kStage == kLoads) {
      if (folded == kNeverFolded) out[0] = 1.0f;
      return;
    } else {
      __shared__ float per_warp[kStageWarps][kFragment * 32];
#pragma unroll
      for (int r = 0; r < kFragment; ++r) per_warp[warp][r * 32 + lane] = sums[r];
      __syncthreads();
      constexpr int kValues = kFragment * 32;
      float total = 0.0f;
      if (threadIdx.x < kValues) {
#pragma unroll
        for (int from = 0; from < kStageWarps; ++from) total += per_warp[from][threadIdx.x];
      }
      if constexpr (kStage == kGlobalReduction) {
        // partials: [row tiles][splits][kValues]; arrived: one counter per row tile, zero between calls.
        // The fences around the count are the CUDA samples' threadFenceReduction pattern (the outputs
        // were checked against float64 before timing).
        const int splits = gridDim.x;
        float* tile_partials = partials + static_cast<int64_t>(blockIdx.y) * splits * kValues;
        if (threadIdx.x < kValues) tile_partials[blockIdx.x * kValues + threadIdx.x] = total;
        __threadfence();
        __syncthreads();
        __shared__ bool last;
        if (threadIdx.x == 0) last = atomicAdd(&arrived[blockIdx.y], 1u) == static_cast<unsigned>(splits - 1);
        __syncthreads();
        if (!last) return;
        __threadfence();
        if (threadIdx.x < kValues) {
          total = 0.0f;
          for (int rank = 0; rank < splits; ++rank) total += __ldcg(&tile_partials[rank * kValues + threadIdx.x]);
        }
        if (threadIdx.x == 0) arrived[blockIdx.y] = 0;
      }
      if (threadIdx.x >= kValues) return;
      const int r = threadIdx.x / 32, owner = threadIdx.x % 32;
      const int row = first_row + owner / kLanesPerRow + (r >= 2 ? 8 : 0);
      const int token = 2 * (owner % kLanesPerRow) + (r & 1);
      if (row < n && token < m) out[static_cast<int64_t>(token) * n + row] = total;
    }
  }
}

}  // namespace

// stage -1: the product kernel (8 warps, `splits`); 0-3: the stage kernel above, in clusters of `splits`
// CTAs where `cluster`, else as plain CTAs. `partials` (fp32, row tiles x splits x 128) and `arrived`
// (int32, one per row tile, zeroed once) are the global reduction's workspace.
void run(int64_t stage, bool cluster, int64_t splits, bool pdl, const at::Tensor& x, const at::Tensor& w,
         at::Tensor& out, at::Tensor& partials, at::Tensor& arrived) {
  TORCH_CHECK(x.size(0) <= kTokensPerTile, "the stage kernels take M <= 8");
  if (stage < 0) return launch_router_small_m_mma(x, w, out, kStageWarps, static_cast<int>(splits), pdl);
  const int m = static_cast<int>(x.size(0)), n = static_cast<int>(w.size(0)), k = static_cast<int>(x.size(1));
  const int chunks = (k / kVector + kLanesPerRow - 1) / kLanesPerRow;
  const auto kernel = stage == kEmpty              ? router_mma_stage<kEmpty>
                      : stage == kLoads            ? router_mma_stage<kLoads>
                      : stage == kMultiply         ? router_mma_stage<kMultiply>
                                                   : router_mma_stage<kGlobalReduction>;
  const int tiles = (n + kRowsPerTile - 1) / kRowsPerTile;
  TORCH_CHECK(partials.numel() >= static_cast<int64_t>(tiles) * splits * kFragment * 32 && arrived.numel() >= tiles,
              "the workspace is too small");
  if (cluster && splits > kPortableClusterSize)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(splits), (n + kRowsPerTile - 1) / kRowsPerTile);
  config.blockDim = dim3(kStageWarps * 32);
  config.stream = c10::cuda::getCurrentCUDAStream();
  cudaLaunchAttribute attributes[2] = {};
  attributes[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[0].val.programmaticStreamSerializationAllowed = pdl ? 1 : 0;
  attributes[1].id = cudaLaunchAttributeClusterDimension;
  attributes[1].val.clusterDim.x = static_cast<unsigned>(splits);
  attributes[1].val.clusterDim.y = 1;
  attributes[1].val.clusterDim.z = 1;
  config.attrs = attributes;
  config.numAttrs = cluster ? 2 : 1;
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()),
                                    reinterpret_cast<const __nv_bfloat16*>(w.data_ptr()), out.data_ptr<float>(), m,
                                    n, k, static_cast<int>((chunks + splits - 1) / splits), partials.data_ptr<float>(),
                                    reinterpret_cast<unsigned int*>(arrived.data_ptr<int>())));
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("run", &run); }
