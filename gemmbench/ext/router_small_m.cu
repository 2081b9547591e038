// router_small_m_ext's kernel: out[M, N] = x[M, K] @ w[N, K].T, bf16 x bf16 -> fp32, for M <= 16 tokens.
//
// The design of TensorRT-LLM's dsv3RouterGemm (docs/design.md, specialised router kernels), written anew:
// one CTA per expert (output column) of kThreads threads; each thread reads 16-byte vectors (8 bf16) of
// the expert's weight row and the same K slice of every token, multiplies in fp32, and the CTA adds its
// threads' sums in a fixed order (warp shuffles, then shared memory), so every call gives the same bits.
// The token count is a template parameter, so the per-token sums live in registers. No workspace, no
// atomics, one kernel per call on the current stream (capturable in CUDA graphs).

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace {

constexpr int kThreads = 128;  // 4 warps per CTA, as dsv3RouterGemm
constexpr int kWarps = kThreads / 32;
constexpr int kVector = 8;  // bf16 per 16-byte load
// Vectors per thread that are loaded before any is used: K = 7168 is 7 vectors per thread at 128
// threads, so 8 keeps a whole router row's loads in flight at once.
constexpr int kUnroll = 8;

__device__ inline void to_float8(const uint4& packed, float (&values)[kVector]) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
  for (int i = 0; i < kVector / 2; ++i) {
    const float2 pair = __bfloat1622float2(pairs[i]);
    values[2 * i] = pair.x;
    values[2 * i + 1] = pair.y;
  }
}

}  // namespace

// At global scope, so that the profiler shows `void gemmbench_router_small_m_ext<M>(...)`, which
// gemmbench's decoder knows as its own.
template <int kTokens>
__global__ void __launch_bounds__(kThreads)
    gemmbench_router_small_m_ext(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                 float* __restrict__ out, int n, int k) {
  const int column = blockIdx.x;
  const int vectors = k / kVector;
  const uint4* weight = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(column) * k);
  const uint4* tokens = reinterpret_cast<const uint4*>(x);

  float sums[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) sums[t] = 0.0f;

  for (int base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int v = base + u * kThreads;
      loaded[u] = v < vectors ? __ldg(weight + v) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int v = base + u * kThreads;
      if (v >= vectors) break;
      float weights[kVector];
      to_float8(loaded[u], weights);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        float acts[kVector];
        to_float8(__ldg(tokens + static_cast<int64_t>(t) * vectors + v), acts);
#pragma unroll
        for (int i = 0; i < kVector; ++i) sums[t] = fmaf(acts[i], weights[i], sums[t]);
      }
    }
  }

  __shared__ float per_warp[kWarps][kTokens];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    float sum = sums[t];
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) per_warp[warp][t] = sum;
  }
  __syncthreads();
  if (threadIdx.x < kTokens) {
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) total += per_warp[i][threadIdx.x];
    out[static_cast<int64_t>(threadIdx.x) * n + column] = total;
  }
}

namespace {

template <int kTokens>
void launch(const at::Tensor& x, const at::Tensor& w, at::Tensor& out) {
  const int n = static_cast<int>(w.size(0)), k = static_cast<int>(x.size(1));
  gemmbench_router_small_m_ext<kTokens><<<n, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()), reinterpret_cast<const __nv_bfloat16*>(w.data_ptr()),
      out.data_ptr<float>(), n, k);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

// Called by router_small_m_out (cublas_gemm.cpp) once its checks passed: 1 <= M <= 16, K a multiple of
// 8, operands 16-byte aligned.
void launch_router_small_m(const at::Tensor& x, const at::Tensor& w, at::Tensor& out) {
  switch (x.size(0)) {
    case 1: return launch<1>(x, w, out);
    case 2: return launch<2>(x, w, out);
    case 3: return launch<3>(x, w, out);
    case 4: return launch<4>(x, w, out);
    case 5: return launch<5>(x, w, out);
    case 6: return launch<6>(x, w, out);
    case 7: return launch<7>(x, w, out);
    case 8: return launch<8>(x, w, out);
    case 9: return launch<9>(x, w, out);
    case 10: return launch<10>(x, w, out);
    case 11: return launch<11>(x, w, out);
    case 12: return launch<12>(x, w, out);
    case 13: return launch<13>(x, w, out);
    case 14: return launch<14>(x, w, out);
    case 15: return launch<15>(x, w, out);
    case 16: return launch<16>(x, w, out);
    default: TORCH_CHECK(false, "router_small_m: M must be 1..16");
  }
}
