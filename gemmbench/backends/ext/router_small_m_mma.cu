// router_small_m_mma's kernel: out[M, N] = x[M, K] @ w[N, K].T, bf16 x bf16 -> fp32, M <= 16,
// on sm90 and later (thread block clusters).
//
// A router GEMM at M <= 16 is one DRAM trip of a few MB of weight; what decides is how much of it is in
// flight at once, and how little else every SM has to do. This kernel:
// - tiles N by 16 expert rows (the m side of mma.sync.m16n8k16), the tokens the n side (one 8-column
//   tile up to M = 8, two up to 16), so that a CTA reads each token slice once per 16 rows, not once per
//   row as a CTA-per-row kernel does (at M = 16 that was 29 MB through L2 for DeepSeek-V3's router);
// - splits K across the CTAs of a thread block cluster (`splits` of them, one cluster per row tile), so
//   that even 64 rows fill the GPU; the cluster's CTAs store their partial tiles into its first CTA's
//   shared memory (distributed shared memory) with st.async, which counts the bytes in on the first CTA's
//   barrier, and leave; the first adds them in rank order: no workspace, no atomics, the same bits on
//   every call, and no CTA waits for another at the end but the first, for the bytes;
// - lets each lane load 16 contiguous bytes (8 bf16 of K) of its two weight rows and of its token: the
//   dot product does not care in which order K is summed, so a lane's 8 elements are the k positions its
//   mma fragments hold (two mma steps), for the weight and the token alike; no shuffles, no shared memory
//   on the way in;
// - issues a warp's weight loads for its whole share of K before any multiply (asm loads, kept in program
//   order), then, with PDL, waits for the producer of x, loads the tokens and multiplies.
//
// The floor this is measured against, and the figures: docs/tiers.md.

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>

#include <array>
#include <atomic>
#include <cstdint>

#include "device.cuh"
#include "router_limits.h"

namespace {

using gemmbench::load_token, gemmbench::load_weight, gemmbench::let_dependents_launch, gemmbench::wait_for_producer;

constexpr int kRowsPerTile = 16;             // expert rows per CTA: mma's m
constexpr int kTokensPerTile = 8;            // tokens per mma column tile: mma's n
constexpr int kLanesPerRow = 4;              // a row's 32-element chunk is read by 4 lanes, 16 bytes each
constexpr int kVector = 8;                   // bf16 per 16-byte load
constexpr int kFragment = 4;                 // fp32 accumulators per lane per column tile (16 x 8 / 32)
// CUDA guarantees clusters of up to 8 CTAs; sm90 takes 16 where the kernel opts in.
constexpr int kPortableClusterSize = 8;
constexpr int kMaxSplits = gemmbench::kRouterMaxSplits;

// D += A * B for one 16 x 8 x 16 step: A the 16 rows' k slice, B the 8 tokens'.
__device__ inline void mma_step(float (&d)[kFragment], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

// One chunk (32 elements of K) of rows g and g + 8 and of one token, as two mma steps. Lane (g, t) holds
// elements [8t, 8t + 8) of the chunk; mma's fragments give it the k positions {2t, 2t + 1, 2t + 8, 2t + 9}
// of each step, so the first step takes the vectors' first half (.x, .y) and the second the other (.z, .w):
// the same mapping for the weight (A) and the token (B), so that the products pair up.
__device__ inline void mma_chunk(float (&d)[kFragment], uint4 row_g, uint4 row_g8, uint4 token) {
  mma_step(d, row_g.x, row_g8.x, row_g.y, row_g8.y, token.x, token.y);
  mma_step(d, row_g.z, row_g8.z, row_g.w, row_g8.w, token.z, token.w);
}

// Cluster plumbing (sm90): the leader's barrier, the cluster-wide barrier, and an asynchronous store into
// the leader's shared memory that counts its bytes on the leader's barrier.
__device__ inline uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// The leader's barrier, expecting `bytes` from the other CTAs' stores (its one arrival is this call's).
__device__ inline void init_barrier_for(uint64_t* barrier, uint32_t bytes) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(barrier)) : "memory");
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(barrier)), "r"(bytes)
               : "memory");
}

__device__ inline void cluster_arrive() { asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory"); }

__device__ inline void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }

// The address of `local` (a __shared__ variable) in the leader's shared memory: the same variable there.
__device__ inline uint32_t in_leader(const void* local) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(remote) : "r"(shared_address(local)));
  return remote;
}

// Stores `value` into the leader's copy of `*local`; the leader's barrier counts its 4 bytes in when they
// have landed (no fence, no arrival: the leader's wait sees them).
__device__ inline void store_to_leader(float* local, float value, uint64_t* barrier) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.b32 [%0], %1, [%2];" ::"r"(in_leader(local)),
               "r"(__float_as_uint(value)), "r"(in_leader(barrier))
               : "memory");
}

// The leader waits until every other CTA's bytes have landed (phase 0 of its barrier completes).
__device__ inline void wait_for(uint64_t* barrier) {
  uint32_t done = 0;
  while (!done) {
    asm volatile(
        "{ .reg .pred complete; mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 complete, [%1], 0; "
        "selp.u32 %0, 1, 0, complete; }"
        : "=r"(done)
        : "r"(shared_address(barrier))
        : "memory");
  }
}

}  // namespace

// At global scope, so that the profiler shows `void gemmbench_router_small_m_mma<...>(...)`.
// kWarps warps per CTA; each loads up to kChunksPerWarp chunks before it multiplies (more make another
// round); kColumnTiles 8-token tiles (1 for M <= 8, 2 for M <= 16). Grid: (splits, row tiles), clusters of
// (splits, 1, 1); `chunks_per_split` chunks of K per CTA.
template <int kWarps, int kChunksPerWarp, int kColumnTiles>
__global__ void __launch_bounds__(kWarps * 32)
    gemmbench_router_small_m_mma(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                 float* __restrict__ out, int m, int n, int k, int chunks_per_split) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  let_dependents_launch();  // dependents wait for this grid's completion themselves
  const int split = blockIdx.x, splits = gridDim.x;  // the CTA's rank in its cluster, and the cluster's size
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / kLanesPerRow, t = lane % kLanesPerRow;
  const int vectors = k / kVector;
  const int first_row = blockIdx.y * kRowsPerTile;
  // Rows past N (N not a multiple of 16) read the last row; their sums are not stored.
  const __nv_bfloat16* row_g = w + static_cast<int64_t>(min(first_row + g, n - 1)) * k;
  const __nv_bfloat16* row_g8 = w + static_cast<int64_t>(min(first_row + g + 8, n - 1)) * k;
  const int chunk_end = min((split + 1) * chunks_per_split, (vectors + kLanesPerRow - 1) / kLanesPerRow);

  // The leader's (rank 0) landing place for the other CTAs' partial tiles, and the barrier that counts
  // their bytes in, set up before anything else. Every thread arrives on the cluster barrier here and
  // waits on it only before its stores into the leader, so the barrier is initialised before any store
  // reaches it, and the wait costs nothing: every CTA arrived long before, at its start.
  constexpr int kValues = kColumnTiles * kFragment * 32;  // one per (column tile, accumulator, lane)
  __shared__ float received[kMaxSplits - 1][kValues];
  __shared__ uint64_t tiles_in;
  if (splits > 1) {
    if (split == 0 && threadIdx.x == 0) init_barrier_for(&tiles_in, (splits - 1) * kValues * sizeof(float));
    cluster_arrive();
  }

  float sums[kColumnTiles][kFragment] = {};
  bool tokens_ready = false;
  for (int base = split * chunks_per_split + warp; base < chunk_end; base += kWarps * kChunksPerWarp) {
    uint4 weights[kChunksPerWarp][2];
#pragma unroll
    for (int c = 0; c < kChunksPerWarp; ++c) {
      // A chunk past the split is not loaded (the next split's CTA reads it); a vector past K (K not a
      // multiple of 32) reads the row's last vector again and is zeroed before the multiply.
      const bool in_split = base + c * kWarps < chunk_end;
      const int v = min((base + c * kWarps) * kLanesPerRow + t, vectors - 1);
      weights[c][0] = in_split ? load_weight(row_g + static_cast<int64_t>(v) * kVector) : make_uint4(0, 0, 0, 0);
      weights[c][1] = in_split ? load_weight(row_g8 + static_cast<int64_t>(v) * kVector) : make_uint4(0, 0, 0, 0);
    }
    if (!tokens_ready) {  // the weights are in flight; x is the producer's output
      wait_for_producer();
      tokens_ready = true;
    }
    uint4 tokens[kChunksPerWarp][kColumnTiles];
#pragma unroll
    for (int c = 0; c < kChunksPerWarp; ++c) {
      const int v = min((base + c * kWarps) * kLanesPerRow + t, vectors - 1);
#pragma unroll
      for (int j = 0; j < kColumnTiles; ++j) {
        const int token = j * kTokensPerTile + g;
        tokens[c][j] = token < m && base + c * kWarps < chunk_end ? load_token(x + static_cast<int64_t>(token) * k + static_cast<int64_t>(v) * kVector)
                                 : make_uint4(0, 0, 0, 0);
      }
    }
#pragma unroll
    for (int c = 0; c < kChunksPerWarp; ++c) {
      const int chunk = base + c * kWarps;
      if (chunk >= chunk_end) break;
      // A vector past K was loaded as the row's (and token's) last one again: both are zeroed, so that an
      // Inf there cannot make 0 * Inf = NaN.
      const bool past_k = chunk * kLanesPerRow + t >= vectors;
      const uint4 zero = make_uint4(0, 0, 0, 0);
      const uint4 row_g_chunk = past_k ? zero : weights[c][0], row_g8_chunk = past_k ? zero : weights[c][1];
#pragma unroll
      for (int j = 0; j < kColumnTiles; ++j) mma_chunk(sums[j], row_g_chunk, row_g8_chunk, past_k ? zero : tokens[c][j]);
    }
  }
  if (!tokens_ready) wait_for_producer();  // a warp with no chunk still must not store before the producer ends

  // The warps' tiles, added in warp order; then the cluster's, in rank order, by its first CTA (the
  // leader): the others store their tiles into the leader's shared memory and leave.
  constexpr int kThreads = kWarps * 32;
  constexpr int kValuesPerThread = (kValues + kThreads - 1) / kThreads;
  __shared__ float per_warp[kWarps][kValues];
#pragma unroll
  for (int j = 0; j < kColumnTiles; ++j) {
#pragma unroll
    for (int r = 0; r < kFragment; ++r) per_warp[warp][(j * kFragment + r) * 32 + lane] = sums[j][r];
  }
  __syncthreads();
  float totals[kValuesPerThread];
#pragma unroll
  for (int i = 0; i < kValuesPerThread; ++i) {
    const int value = threadIdx.x + i * kThreads;
    totals[i] = 0.0f;
    if (value < kValues) {
#pragma unroll
      for (int from = 0; from < kWarps; ++from) totals[i] += per_warp[from][value];
    }
  }
  if (splits > 1) {
    cluster_wait();  // the leader's barrier is initialised
    if (split != 0) {
#pragma unroll
      for (int i = 0; i < kValuesPerThread; ++i) {
        const int value = threadIdx.x + i * kThreads;
        if (value < kValues) store_to_leader(&received[split - 1][value], totals[i], &tiles_in);
      }
      return;
    }
    wait_for(&tiles_in);
  }
#pragma unroll
  for (int i = 0; i < kValuesPerThread; ++i) {
    const int value = threadIdx.x + i * kThreads;
    if (value >= kValues) continue;
    float total = totals[i];
    for (int rank = 1; rank < splits; ++rank) total += received[rank - 1][value];
    // value = (column tile j, accumulator r, lane): accumulator r holds row g (+ 8 for r >= 2) and token
    // 2t (+ 1 for odd r) of tile j (mma's C fragment).
    const int j = value / (kFragment * 32), r = (value / 32) % kFragment, owner = value % 32;
    const int row = first_row + owner / kLanesPerRow + (r >= 2 ? 8 : 0);
    const int token = j * kTokensPerTile + 2 * (owner % kLanesPerRow) + (r & 1);
    if (row < n && token < m) out[static_cast<int64_t>(token) * n + row] = total;
  }
#else
  __trap();  // built for an architecture without clusters (PTX JIT-compiled for a newer GPU): fail loudly
#endif
}

namespace {

// The warps per CTA and the split of K where the caller leaves them (0). Measured on the H200 over the
// five router GEMMs of docs/tiers.md at M = 1..16 (research/experiments/router_mma_variants.py): 8 warps
// and 8 splits were the fastest or within 3.3% of it everywhere but on the indexer's 64 rows, whose 4 row
// tiles make 32 CTAs at 8 splits, a quarter of the SMs: 16 splits were the fastest there. So: 8, and 16
// where 8 would leave more than half the SMs without a CTA (and a cluster of 16 fits: launch_tiles); fewer
// where K is so short that most warps would get no chunk.
constexpr int kDefaultWarps = 8;
constexpr int kDefaultSplits = 8;

int default_splits(int n, int k) {
  const int tiles = (n + kRowsPerTile - 1) / kRowsPerTile;
  const int chunks = (k / kVector + kLanesPerRow - 1) / kLanesPerRow;
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
  int splits = 2 * tiles * kDefaultSplits < sms ? kMaxSplits : kDefaultSplits;
  while (splits > 1 && 2 * chunks < splits * kDefaultWarps) splits /= 2;
  return splits;
}

// Whether clusters of 9..16 CTAs of one kernel run, per device and cluster size, asked once (the answer
// does not change while the process runs): 0 not asked yet, 1 they do, 2 they do not.
constexpr int kCachedDevices = 64;
using ClusterFits = std::array<std::array<std::atomic<int8_t>, kMaxSplits - kPortableClusterSize>, kCachedDevices>;

// Whether one cluster of `size` CTAs (more than 8) of `kernel`, launched as `config`, fits on the current
// device at all: sm90 allows up to 16 where the kernel opts in (done here), but only a GPC with room for
// them runs one (a MIG slice or a smaller part may not). An error from either call counts as "no" and is
// cleared, so that the kernel's own choice can fall back to a portable cluster.
bool large_cluster_fits(const void* kernel, const cudaLaunchConfig_t& config, int size, ClusterFits& known) {
  const int device = c10::cuda::current_device();
  std::atomic<int8_t>* answer = device < kCachedDevices ? &known[device][size - kPortableClusterSize - 1] : nullptr;
  if (answer != nullptr && answer->load() != 0) return answer->load() == 1;
  int clusters = 0;
  const bool asked = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess &&
                     cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) == cudaSuccess;
  if (!asked) (void)cudaGetLastError();
  const bool fits = asked && clusters > 0;
  if (answer != nullptr) answer->store(fits ? 1 : 2);
  return fits;
}

template <int kWarps, int kChunksPerWarp, int kColumnTiles>
void launch_tiles(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, int splits, bool pdl) {
  const int m = static_cast<int>(x.size(0)), n = static_cast<int>(w.size(0)), k = static_cast<int>(x.size(1));
  const int chunks = (k / kVector + kLanesPerRow - 1) / kLanesPerRow;
  const auto kernel = gemmbench_router_small_m_mma<kWarps, kChunksPerWarp, kColumnTiles>;
  const bool chosen_here = splits == 0;
  if (chosen_here) splits = default_splits(n, k);
  cudaLaunchConfig_t config = {};
  cudaLaunchAttribute attributes[2] = {};
  const auto shape = [&](int cluster_size) {
    config.gridDim = dim3(cluster_size, (n + kRowsPerTile - 1) / kRowsPerTile);
    attributes[0].id = cudaLaunchAttributeClusterDimension;
    attributes[0].val.clusterDim.x = cluster_size;
    attributes[0].val.clusterDim.y = 1;
    attributes[0].val.clusterDim.z = 1;
  };
  shape(splits);
  config.blockDim = dim3(kWarps * 32);
  config.stream = c10::cuda::getCurrentCUDAStream();
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;  // PDL
  attributes[1].val.programmaticStreamSerializationAllowed = pdl ? 1 : 0;
  config.attrs = attributes;
  config.numAttrs = 2;
  if (splits > kPortableClusterSize) {
    static ClusterFits known_to_fit{};  // one per kernel: the answer depends on its threads and shared memory
    if (!large_cluster_fits(reinterpret_cast<const void*>(kernel), config, splits, known_to_fit)) {
      TORCH_CHECK(chosen_here, "router_small_m_mma: this GPU cannot run clusters of ", splits,
                  " of the kernel's CTAs; take splits <= ", kPortableClusterSize, " (or 0, the kernel's choice)");
      splits = kPortableClusterSize;
      shape(splits);
    }
  }
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()),
                                    reinterpret_cast<const __nv_bfloat16*>(w.data_ptr()), out.data_ptr<float>(),
                                    m, n, k, (chunks + splits - 1) / splits));
}

}  // namespace

// Called by router_small_m_mma_out (cublas_gemm.cpp) once its checks passed: 1 <= M <= 16, K a multiple
// of 8, operands 16-byte aligned, an sm90+ device; `warps` 4, 8 or 16 (0: kDefaultWarps), `splits`
// 1..16 (0: default_splits).
void launch_router_small_m_mma(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, int warps, int splits,
                               bool pdl) {
  if (warps == 0) warps = kDefaultWarps;
  const bool two_tiles = x.size(0) > kTokensPerTile;
  // Chunks per warp before it multiplies: a split of DeepSeek-V3's K (224 chunks) over 8 CTAs in one round.
  switch (warps) {
    case 4: return two_tiles ? launch_tiles<4, 8, 2>(x, w, out, splits, pdl) : launch_tiles<4, 8, 1>(x, w, out, splits, pdl);
    case 8: return two_tiles ? launch_tiles<8, 4, 2>(x, w, out, splits, pdl) : launch_tiles<8, 4, 1>(x, w, out, splits, pdl);
    case 16: return two_tiles ? launch_tiles<16, 2, 2>(x, w, out, splits, pdl) : launch_tiles<16, 2, 1>(x, w, out, splits, pdl);
    default: TORCH_CHECK(false, "router_small_m_mma: warps must be 4, 8 or 16");
  }
}
