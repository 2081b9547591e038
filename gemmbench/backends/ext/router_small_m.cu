// router_small_m_ext's kernel: out[M, N] = x[M, K] @ w[N, K].T, bf16 x bf16 -> fp32, for M <= 16 tokens.
//
// The design of TensorRT-LLM's dsv3RouterGemm (docs/design.md, specialised router kernels), written anew:
// a CTA per expert (output column), or per pair of experts; each thread reads 16-byte vectors (8 bf16) of
// the experts' weight rows and the same K slice of every token, multiplies in fp32, and the CTA adds its
// threads' sums in a fixed order (warp shuffles, then shared memory), so every call gives the same bits.
// The token count is a template parameter, so the per-token sums live in registers. No workspace, no
// atomics, one kernel per call on the current stream (capturable in CUDA graphs).
//
// What makes it fast is that the bytes a thread needs are in flight before the thread waits for any: a
// router GEMM at M <= 16 is one DRAM round trip of a few MB. Two ways, by token count (`Layout` below;
// the configurations measured on the H200 by research/experiments/router_ext_variants.py, docs/tiers.md):
// - tokens in registers: the weight and token vectors loaded by asm statements, which the compiler keeps
//   in program order (device.cuh says why);
// - tokens staged: copied with cp.async into a landing buffer in shared memory that holds them without
//   registers (each thread reads back only what it copied, so no barrier), the weights into registers,
//   then one wait; two experts per CTA share the tokens.

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>
#include <cuda_pipeline.h>

#include <cstdint>
#include <type_traits>

#include "device.cuh"

namespace {

using gemmbench::load_token, gemmbench::load_weight, gemmbench::let_dependents_launch, gemmbench::wait_for_producer;

constexpr int kVector = 8;  // bf16 per 16-byte load

// One way to compute: threads per CTA, vectors per thread per step, experts per CTA, and whether the
// tokens go through shared memory.
template <int kThreadsPerCta, int kVectorsPerStep, int kExpertsPerCta, bool kTokensStaged>
struct Configuration {
  static constexpr int kThreads = kThreadsPerCta, kUnroll = kVectorsPerStep, kExperts = kExpertsPerCta;
  static constexpr bool kStageTokens = kTokensStaged;
};

// The variants of research/experiments/router_ext_variants.cu this kernel takes, by token count: on the
// H200 (cold L2, graph time), the fastest for most of the DeepSeek-V3, Kimi-K2 and V4-Flash routers.
using TokensInRegisters = Configuration<512, 2, 1, false>;  // registers_t512_u2, M <= 2
using TokensStagedWide = Configuration<256, 4, 2, true>;    // staged_t256_u4_e2, M = 3-8 (registers run short)
using TokensStagedNarrow = Configuration<128, 2, 2, true>;  // staged_t128_u2_e2, M = 9-16

template <int kTokens>
struct Layout : std::conditional_t<kTokens <= 2, TokensInRegisters,
                                   std::conditional_t<kTokens <= 8, TokensStagedWide, TokensStagedNarrow>> {
  // The staged tokens' landing buffer, [kTokens][kUnroll][kThreads] vectors.
  static constexpr size_t kLandingBytes =
      Layout::kStageTokens ? sizeof(uint4) * kTokens * Layout::kUnroll * Layout::kThreads : 0;
};

__device__ inline void to_float8(const uint4& packed, float (&values)[kVector]) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
  for (int i = 0; i < kVector / 2; ++i) {
    const float2 pair = __bfloat1622float2(pairs[i]);
    values[2 * i] = pair.x;
    values[2 * i + 1] = pair.y;
  }
}

__device__ inline float dot8(const float (&a)[kVector], const float (&b)[kVector], float sum) {
#pragma unroll
  for (int i = 0; i < kVector; ++i) sum = fmaf(a[i], b[i], sum);
  return sum;
}

}  // namespace

// At global scope, so that the profiler shows `void gemmbench_router_small_m_ext<M>(...)`, which
// gemmbench's decoder knows as its own.
template <int kTokens>
__global__ void __launch_bounds__(Layout<kTokens>::kThreads)
    gemmbench_router_small_m_ext(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                 float* __restrict__ out, int n, int k) {
  using L = Layout<kTokens>;
  constexpr int kThreads = L::kThreads, kUnroll = L::kUnroll, kExperts = L::kExperts;
  extern __shared__ uint4 landing[];  // [kTokens][kUnroll][kThreads], when the tokens are staged
  const int vectors = k / kVector;
  const int first = blockIdx.x * kExperts;
  const uint4* tokens = reinterpret_cast<const uint4*>(x);
  const uint4* rows[kExperts];
#pragma unroll
  for (int e = 0; e < kExperts; ++e)  // an expert past N (odd N) reads the last row; its sums are not stored
    rows[e] = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(first + e, n - 1)) * k);

  // Dependents may start launching at once: they wait for this grid's completion themselves.
  let_dependents_launch();
  float sums[kExperts][kTokens] = {};
  bool tokens_ready = false;  // the producer of x has finished (PDL), checked before the first load of x
  for (int base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
    uint4 weights_loaded[kExperts][kUnroll];
    if constexpr (L::kStageTokens) {
#pragma unroll
      for (int e = 0; e < kExperts; ++e) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int v = base + u * kThreads;
          weights_loaded[e][u] = load_weight(rows[e] + min(v, vectors - 1));
        }
      }
      if (!tokens_ready) {  // the weights' loads are in flight; x is the producer's output
        wait_for_producer();
        tokens_ready = true;
      }
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int v = base + u * kThreads;
          if (v < vectors)
            __pipeline_memcpy_async(&landing[(t * kUnroll + u) * kThreads + threadIdx.x],
                                    tokens + static_cast<int64_t>(t) * vectors + v, sizeof(uint4));
        }
      }
      __pipeline_commit();
      __pipeline_wait_prior(0);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (base + u * kThreads >= vectors) break;
        float weights[kExperts][kVector];
#pragma unroll
        for (int e = 0; e < kExperts; ++e) to_float8(weights_loaded[e][u], weights[e]);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          float acts[kVector];
          to_float8(landing[(t * kUnroll + u) * kThreads + threadIdx.x], acts);
#pragma unroll
          for (int e = 0; e < kExperts; ++e) sums[e][t] = dot8(acts, weights[e], sums[e][t]);
        }
      }
    } else {
      // Unconditional loads (a vector past the end reads the last one again, and its weight is zeroed
      // below). The token is not zeroed too: where x's last 8 elements hold an Inf, that adds 0 * Inf =
      // NaN where float64 gives +-Inf. Zeroing it cost up to 5% at M <= 2 without PDL and up to 12% with it on
      // the H200 (research/experiments/router_ext_ab.py, docs/tiers.md), for an input whose routing is lost anyway.
      uint4 tokens_loaded[kTokens][kUnroll];
#pragma unroll
      for (int e = 0; e < kExperts; ++e) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) weights_loaded[e][u] = load_weight(rows[e] + min(base + u * kThreads, vectors - 1));
      }
      if (!tokens_ready) {
        wait_for_producer();
        tokens_ready = true;
      }
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
          tokens_loaded[t][u] = load_token(tokens + static_cast<int64_t>(t) * vectors + min(base + u * kThreads, vectors - 1));
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const bool past_end = base + u * kThreads >= vectors;
        float weights[kExperts][kVector];
#pragma unroll
        for (int e = 0; e < kExperts; ++e) to_float8(past_end ? make_uint4(0, 0, 0, 0) : weights_loaded[e][u], weights[e]);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          float acts[kVector];
          to_float8(tokens_loaded[t][u], acts);
#pragma unroll
          for (int e = 0; e < kExperts; ++e) sums[e][t] = dot8(acts, weights[e], sums[e][t]);
        }
      }
    }
  }

  constexpr int kWarps = kThreads / 32;
  __shared__ float per_warp[kWarps][kExperts * kTokens];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int e = 0; e < kExperts; ++e) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      float sum = sums[e][t];
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      if (lane == 0) per_warp[warp][e * kTokens + t] = sum;
    }
  }
  __syncthreads();
  if (!tokens_ready) wait_for_producer();  // a thread with no vector to load still must not store early
  for (int slot = threadIdx.x; slot < kExperts * kTokens; slot += kThreads) {
    const int e = slot / kTokens, t = slot % kTokens;
    if (first + e >= n) continue;
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) total += per_warp[i][slot];
    out[static_cast<int64_t>(t) * n + first + e] = total;
  }
}

namespace {

template <int kTokens>
void launch(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, bool pdl) {
  using L = Layout<kTokens>;
  const int n = static_cast<int>(w.size(0)), k = static_cast<int>(x.size(1));
  if constexpr (L::kLandingBytes > 0) {
    // Beside the static shared memory, any dynamic amount needs the opt-in (asked per call: it is per
    // device, and costs far less than the launch).
    C10_CUDA_CHECK(cudaFuncSetAttribute(gemmbench_router_small_m_ext<kTokens>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(L::kLandingBytes)));
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((n + L::kExperts - 1) / L::kExperts);
  config.blockDim = dim3(L::kThreads);
  config.dynamicSmemBytes = L::kLandingBytes;
  config.stream = c10::cuda::getCurrentCUDAStream();
  cudaLaunchAttribute attribute = {};  // PDL: may start while the previous kernel on the stream drains
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = pdl ? 1 : 0;
  config.attrs = &attribute;
  config.numAttrs = 1;
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, gemmbench_router_small_m_ext<kTokens>,
                                    reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()),
                                    reinterpret_cast<const __nv_bfloat16*>(w.data_ptr()), out.data_ptr<float>(), n, k));
}

}  // namespace

// Called by router_small_m_out (cublas_gemm.cpp) once its checks passed: 1 <= M <= 16, K a multiple of
// 8, operands 16-byte aligned.
void launch_router_small_m(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, bool pdl) {
  switch (x.size(0)) {
    case 1: return launch<1>(x, w, out, pdl);
    case 2: return launch<2>(x, w, out, pdl);
    case 3: return launch<3>(x, w, out, pdl);
    case 4: return launch<4>(x, w, out, pdl);
    case 5: return launch<5>(x, w, out, pdl);
    case 6: return launch<6>(x, w, out, pdl);
    case 7: return launch<7>(x, w, out, pdl);
    case 8: return launch<8>(x, w, out, pdl);
    case 9: return launch<9>(x, w, out, pdl);
    case 10: return launch<10>(x, w, out, pdl);
    case 11: return launch<11>(x, w, out, pdl);
    case 12: return launch<12>(x, w, out, pdl);
    case 13: return launch<13>(x, w, out, pdl);
    case 14: return launch<14>(x, w, out, pdl);
    case 15: return launch<15>(x, w, out, pdl);
    case 16: return launch<16>(x, w, out, pdl);
    default: TORCH_CHECK(false, "router_small_m: M must be 1..16");
  }
}
