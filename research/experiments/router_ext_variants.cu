// Variants of router_small_m_ext's kernel (gemmbench/backends/ext/router_small_m.cu), for
// research/experiments/router_ext_variants.py: where its time goes at M = 1..16, and what a CTA-per-expert
// CUDA kernel can reach. Every variant: out[M, N] = x[M, K] @ w[N, K].T, bf16 -> fp32, K % 8 == 0.
//
// - baseline: the product's kernel as it was first measured (tokens read from global memory inside the
//   loop over a thread's weight vectors, so each step waits for its token loads);
// - registers: every load of a step (weights and tokens) written before the first multiply, unconditionally,
//   as asm statements the compiler keeps in order (it still places some multiplies between them);
// - staged: the tokens copied with cp.async into a per-thread landing buffer in shared memory (no
//   registers held while in flight), the weights into registers, then one wait; kExperts rows per CTA;
// - staged_all: the weights too through cp.async;
// - floors: an empty kernel of N CTAs, and a kernel that only reads the weight (a CTA per row).

#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_pipeline.h>

#include <string>

namespace {

constexpr int kVector = 8;

__device__ inline void to_float8(const uint4& packed, float (&values)[kVector]) {
  const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
  for (int i = 0; i < kVector / 2; ++i) {
    const float2 pair = __bfloat1622float2(pairs[i]);
    values[2 * i] = pair.x;
    values[2 * i + 1] = pair.y;
  }
}

// A 16-byte read-only load that the compiler keeps in program order with the others (an __ldg is moved
// next to its use, so that a thread's loads wait in turn instead of all being in flight at once).
__device__ inline uint4 load_in_order(const uint4* address) {
  uint4 value;
  asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
               : "l"(address));
  return value;
}

__device__ inline float dot8(const float (&a)[kVector], const float (&b)[kVector], float sum) {
#pragma unroll
  for (int i = 0; i < kVector; ++i) sum = fmaf(a[i], b[i], sum);
  return sum;
}

// Adds every thread's sums[slot] in a fixed order and stores slot s at out[token * n + first + expert].
template <int kThreads, int kExperts, int kTokens>
__device__ inline void reduce_and_store(float (&sums)[kExperts][kTokens], float* out, int n, int first) {
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
  for (int slot = threadIdx.x; slot < kExperts * kTokens; slot += kThreads) {
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) total += per_warp[i][slot];
    const int e = slot / kTokens, t = slot % kTokens;
    out[static_cast<int64_t>(t) * n + first + e] = total;
  }
}

template <int kTokens, int kThreads, int kUnroll>
__global__ void __launch_bounds__(kThreads) baseline(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                                     float* __restrict__ out, int n, int k) {
  const int vectors = k / kVector;
  const uint4* weight = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(blockIdx.x) * k);
  const uint4* tokens = reinterpret_cast<const uint4*>(x);
  float sums[1][kTokens] = {};
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
        sums[0][t] = dot8(acts, weights, sums[0][t]);
      }
    }
  }
  reduce_and_store<kThreads, 1, kTokens>(sums, out, n, blockIdx.x);
}

template <int kTokens, int kThreads, int kUnroll>
__global__ void __launch_bounds__(kThreads) registers(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                                      float* __restrict__ out, int n, int k) {
  const int vectors = k / kVector;
  const uint4* weight = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(blockIdx.x) * k);
  const uint4* tokens = reinterpret_cast<const uint4*>(x);
  float sums[1][kTokens] = {};
  for (int base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
    uint4 loaded[kUnroll];
    uint4 acts_loaded[kTokens][kUnroll];
    // Unconditional loads, all issued before any use (a vector past the end reads the last one again
    // and is zeroed after).
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) loaded[u] = load_in_order(weight + min(base + u * kThreads, vectors - 1));
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        acts_loaded[t][u] = load_in_order(tokens + static_cast<int64_t>(t) * vectors + min(base + u * kThreads, vectors - 1));
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (base + u * kThreads >= vectors) loaded[u] = make_uint4(0, 0, 0, 0);
      float weights[kVector];
      to_float8(loaded[u], weights);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        float acts[kVector];
        to_float8(acts_loaded[t][u], acts);
        sums[0][t] = dot8(acts, weights, sums[0][t]);
      }
    }
  }
  reduce_and_store<kThreads, 1, kTokens>(sums, out, n, blockIdx.x);
}

template <int kTokens, int kThreads, int kUnroll, int kExperts, bool kStageWeights = false>
__global__ void __launch_bounds__(kThreads) staged(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                                                   float* __restrict__ out, int n, int k) {
  // [kTokens (+ kExperts)][kUnroll][kThreads]: each thread reads back only what it copied itself
  extern __shared__ uint4 landing[];
  const int vectors = k / kVector;
  const int first = blockIdx.x * kExperts;
  const uint4* tokens = reinterpret_cast<const uint4*>(x);
  float sums[kExperts][kTokens] = {};
  for (int base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
    uint4 loaded[kExperts][kUnroll];
#pragma unroll
    for (int e = 0; e < kExperts; ++e) {
      const uint4* weight = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(first + e) * k);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int v = base + u * kThreads;
        if constexpr (kStageWeights) {
          if (v < vectors)
            __pipeline_memcpy_async(&landing[((kTokens + e) * kUnroll + u) * kThreads + threadIdx.x], weight + v,
                                    sizeof(uint4));
        } else {
          loaded[e][u] = v < vectors ? __ldg(weight + v) : make_uint4(0, 0, 0, 0);
        }
      }
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
      for (int e = 0; e < kExperts; ++e)
        to_float8(kStageWeights ? landing[((kTokens + e) * kUnroll + u) * kThreads + threadIdx.x] : loaded[e][u],
                  weights[e]);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        float acts[kVector];
        to_float8(landing[(t * kUnroll + u) * kThreads + threadIdx.x], acts);
#pragma unroll
        for (int e = 0; e < kExperts; ++e) sums[e][t] = dot8(acts, weights[e], sums[e][t]);
      }
    }
  }
  reduce_and_store<kThreads, kExperts, kTokens>(sums, out, n, first);
}

__global__ void empty(float*) {}

template <int kThreads, int kUnroll>
__global__ void __launch_bounds__(kThreads) read_weight(const __nv_bfloat16* __restrict__ w, float* __restrict__ out, int k) {
  const int vectors = k / kVector;
  const uint4* weight = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(blockIdx.x) * k);
  unsigned int folded = 0;
  for (int base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int v = base + u * kThreads;
      loaded[u] = v < vectors ? __ldg(weight + v) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) folded ^= loaded[u].x ^ loaded[u].y ^ loaded[u].z ^ loaded[u].w;
  }
  if (folded == 0x12345678u) out[blockIdx.x] = 1.0f;  // keeps the loads; practically never stores
}

template <typename Kernel>
void launch(Kernel kernel, int grid, int threads, size_t shared, const torch::Tensor& x, const torch::Tensor& w,
            torch::Tensor& out) {
  if (shared > 0)  // with the static shared memory, even 48 KB of dynamic needs the opt-in
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  kernel<<<grid, threads, shared, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()), reinterpret_cast<const __nv_bfloat16*>(w.data_ptr()),
      out.data_ptr<float>(), static_cast<int>(w.size(0)), static_cast<int>(w.size(1)));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <int kTokens>
bool run_tokens(const std::string& variant, const torch::Tensor& x, const torch::Tensor& w, torch::Tensor& out) {
  const int n = static_cast<int>(w.size(0));
#define STAGED(THREADS, UNROLL, EXPERTS)                                                                   \
  if (variant == "staged_t" #THREADS "_u" #UNROLL "_e" #EXPERTS) {                                        \
    launch(staged<kTokens, THREADS, UNROLL, EXPERTS>, n / EXPERTS, THREADS,                               \
           sizeof(uint4) * kTokens * UNROLL * THREADS, x, w, out);                                        \
    return true;                                                                                          \
  }
  if (variant == "baseline") return launch(baseline<kTokens, 128, 8>, n, 128, 0, x, w, out), true;
  if constexpr (kTokens <= 8) {  // beyond, the tokens' registers spill
    if (variant == "registers_t256_u4") return launch(registers<kTokens, 256, 4>, n, 256, 0, x, w, out), true;
    if (variant == "registers_t512_u2") return launch(registers<kTokens, 512, 2>, n, 512, 0, x, w, out), true;
  }
  if constexpr (kTokens <= 4) {
    if (variant == "registers_t1024_u1") return launch(registers<kTokens, 1024, 1>, n, 1024, 0, x, w, out), true;
  }
  if (variant == "staged_all_t256_u4_e1")
    return launch(staged<kTokens, 256, 4, 1, true>, n, 256, sizeof(uint4) * (kTokens + 1) * 4 * 256, x, w, out), true;
  STAGED(128, 8, 2)
  STAGED(256, 4, 1)
  STAGED(256, 4, 2)
  STAGED(128, 4, 2)
  STAGED(128, 2, 2)
#undef STAGED
  return false;
}

}  // namespace

void run(const std::string& variant, const torch::Tensor& x, const torch::Tensor& w, torch::Tensor& out) {
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int n = static_cast<int>(w.size(0)), k = static_cast<int>(w.size(1));
  if (variant == "empty") {
    empty<<<n, 128, 0, stream>>>(out.data_ptr<float>());
    return;
  }
  if (variant == "read_weight") {
    read_weight<128, 8><<<n, 128, 0, stream>>>(reinterpret_cast<const __nv_bfloat16*>(w.data_ptr()), out.data_ptr<float>(), k);
    return;
  }
  bool known = false;
  switch (x.size(0)) {
    case 1: known = run_tokens<1>(variant, x, w, out); break;
    case 2: known = run_tokens<2>(variant, x, w, out); break;
    case 4: known = run_tokens<4>(variant, x, w, out); break;
    case 8: known = run_tokens<8>(variant, x, w, out); break;
    case 16: known = run_tokens<16>(variant, x, w, out); break;
    default: break;
  }
  TORCH_CHECK(known, "no variant ", variant, " for M = ", x.size(0));
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("run", &run); }
