// bf16 x bf16 -> fp32 GEMMs through cuBLAS and cuBLASLt, as PyTorch custom operators.
//
// out[M, N] = x[M, K] @ w[N, K].T, row-major. cuBLAS is column-major, so this computes
// out.T (N x M) = op(w) (N x K) * x.T (K x M) with w transposed: the "TN" layout of vLLM's
// router_gemm_bf16_fp32, which dispatches to the same nvjet kernels as torch.mm(out_dtype=).
//
// Both run on PyTorch's handles and current stream (and cuBLASLt on PyTorch's workspace), so
// they mix with other PyTorch work and can be captured in a CUDA graph.

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/Exceptions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <torch/library.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "router_limits.h"

// router_small_m.cu, router_small_m_mma.cu and rms_norm.cu: gemmbench's own kernels (the router_small_m_ext
// and router_small_m_mma backends, the norm_pdl context's producer). Where they do not compile, the
// extension is built without the tensor-core one (GEMMBENCH_NO_MMA_KERNEL), then without all three
// (GEMMBENCH_NO_ROUTER_KERNEL), so that the other operators stay available.
#ifndef GEMMBENCH_NO_ROUTER_KERNEL
void launch_router_small_m(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, bool pdl);
#ifndef GEMMBENCH_NO_MMA_KERNEL
void launch_router_small_m_mma(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, int warps, int splits,
                               bool pdl);
#endif
void launch_rms_norm(const at::Tensor& h, const at::Tensor& weight, double eps, at::Tensor& x, int64_t trigger);
#endif

namespace {

// Heuristic results asked of cuBLASLt per shape; lt_algo_count reports how many it gave, and the
// cublaslt_tuned_ext backend times the first few of them (LT_TUNE_CANDIDATES in Python).
constexpr int kMaxAlgos = 16;

// Error messages are built from std::string and std::to_string, never by streaming numbers: on the
// GPU machine (PyTorch 2.11 wheel, extension built with the system g++) streaming an integer from this
// library (std::ostream::_M_insert<long>, as c10::str does) crashed inside libstdc++.
std::string dims(const at::Tensor& t) {
  std::string text = "[";
  for (int64_t i = 0; i < t.dim(); ++i) text += (i ? ", " : "") + std::to_string(t.size(i));
  return text + "]";
}

void require(bool ok, const char* op, const std::string& what) {
  TORCH_CHECK(ok, (std::string(op) + ": " + what).c_str());
}

void check_operands(const char* op, const at::Tensor& x, const at::Tensor& w) {
  require(x.is_cuda() && w.is_cuda(), op,
          "x and w must be CUDA tensors, got " + x.device().str() + " and " + w.device().str());
  require(x.device() == w.device(), op,
          "x and w must be on the same device, got " + x.device().str() + " and " + w.device().str());
  require(x.scalar_type() == at::kBFloat16 && w.scalar_type() == at::kBFloat16, op,
          std::string("x and w must be bfloat16, got ") + c10::toString(x.scalar_type()) + " and " +
              c10::toString(w.scalar_type()));
  require(x.dim() == 2 && w.dim() == 2, op,
          "x and w must be 2-D, got " + std::to_string(x.dim()) + "-D and " + std::to_string(w.dim()) + "-D");
  require(x.size(1) == w.size(1), op,
          "K mismatch: x is " + dims(x) + ", w is " + dims(w) + "; both must be [*, K]");
  require(x.is_contiguous() && w.is_contiguous(), op, "x and w must be contiguous");
  require(x.size(0) <= INT32_MAX && w.size(0) <= INT32_MAX && x.size(1) <= INT32_MAX, op,
          "dimensions must fit in 32 bits");
}

void check_inputs(const char* op, const at::Tensor& x, const at::Tensor& w, const at::Tensor& out) {
  check_operands(op, x, w);
  require(out.is_cuda() && out.device() == x.device(), op,
          "out must be on " + x.device().str() + ", got " + out.device().str());
  require(out.scalar_type() == at::kFloat, op,
          std::string("out must be float32, got ") + c10::toString(out.scalar_type()));
  require(out.dim() == 2 && out.size(0) == x.size(0) && out.size(1) == w.size(0) && out.is_contiguous(), op,
          "out must be a contiguous [" + std::to_string(x.size(0)) + ", " + std::to_string(w.size(0)) +
              "] tensor, got " + dims(out));
}

at::Tensor new_output(const at::Tensor& x, const at::Tensor& w) {
  return at::empty({x.size(0), w.size(0)}, x.options().dtype(at::kFloat));
}

void gemm_ex_out(const at::Tensor& x, const at::Tensor& w, at::Tensor& out) {
  check_inputs("gemm_ex", x, w, out);
  const c10::cuda::CUDAGuard guard(x.device());
  const int m = x.size(0), n = w.size(0), k = x.size(1);
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  TORCH_CUDABLAS_CHECK(cublasSetStream(handle, at::cuda::getCurrentCUDAStream()));
  TORCH_CUDABLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w.data_ptr(), CUDA_R_16BF, k,
                                    x.data_ptr(), CUDA_R_16BF, k, &beta, out.data_ptr(), CUDA_R_32F, n,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Descriptors and heuristic results of one (device, M, N, K, workspace) shape, made once and kept:
// asking the heuristic on every call would add host time that a serving engine does not pay.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  std::vector<cublasLtMatmulHeuristicResult_t> algos;
};

using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, size_t>;

const LtPlan& lt_plan(cublasLtHandle_t lt, int device, int m, int n, int k, size_t workspace) {
  static std::mutex mutex;
  static std::map<PlanKey, LtPlan> plans;
  const std::lock_guard<std::mutex> lock(mutex);
  const PlanKey key{device, m, n, k, workspace};
  auto found = plans.find(key);
  if (found != plans.end()) return found->second;

  LtPlan plan;
  TORCH_CUDABLAS_CHECK(cublasLtMatmulDescCreate(&plan.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  TORCH_CUDABLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  TORCH_CUDABLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, CUDA_R_16BF, k, n, k));  // w, stored K x N
  TORCH_CUDABLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, CUDA_R_16BF, k, m, k));  // x, stored K x M
  TORCH_CUDABLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, CUDA_R_32F, n, m, n));   // out, N x M

  cublasLtMatmulPreference_t preference = nullptr;
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  TORCH_CUDABLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
  plan.algos.resize(kMaxAlgos);
  int returned = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(lt, plan.op, plan.a, plan.b, plan.c, plan.c,
                                                               preference, kMaxAlgos, plan.algos.data(), &returned);
  cublasLtMatmulPreferenceDestroy(preference);
  TORCH_CUDABLAS_CHECK(status);
  require(returned > 0, "lt", "cuBLASLt offers no algorithm for a bf16 x bf16 -> fp32 GEMM of M=" +
                                  std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k));
  plan.algos.resize(returned);
  return plans.emplace(key, std::move(plan)).first->second;
}

const LtPlan& lt_plan_for(const at::Tensor& x, const at::Tensor& w) {
  return lt_plan(at::cuda::getCurrentCUDABlasLtHandle(), x.get_device(), x.size(0), w.size(0), x.size(1),
                 at::cuda::getCUDABlasLtWorkspaceSize());
}

void lt_out(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, int64_t algo) {
  check_inputs("lt", x, w, out);
  const c10::cuda::CUDAGuard guard(x.device());
  if (x.size(0) == 0 || w.size(0) == 0) return;
  const LtPlan& plan = lt_plan_for(x, w);
  require(algo >= 0 && algo < static_cast<int64_t>(plan.algos.size()), "lt",
          "algorithm index " + std::to_string(algo) + " out of range; this shape has " +
              std::to_string(plan.algos.size()) + " (see lt_algo_count)");
  const float alpha = 1.0f, beta = 0.0f;
  TORCH_CUDABLAS_CHECK(cublasLtMatmul(at::cuda::getCurrentCUDABlasLtHandle(), plan.op, &alpha, w.data_ptr(), plan.a,
                                      x.data_ptr(), plan.b, &beta, out.data_ptr(), plan.c, out.data_ptr(), plan.c,
                                      &plan.algos[algo].algo, at::cuda::getCUDABlasLtWorkspace(),
                                      at::cuda::getCUDABlasLtWorkspaceSize(), at::cuda::getCurrentCUDAStream()));
}

int64_t lt_algo_count(const at::Tensor& x, const at::Tensor& w) {
  check_operands("lt_algo_count", x, w);
  const c10::cuda::CUDAGuard guard(x.device());
  return static_cast<int64_t>(lt_plan_for(x, w).algos.size());
}

#ifndef GEMMBENCH_NO_ROUTER_KERNEL
// The most tokens router_small_m_out's kernel holds (one template instance per count), and the elements of
// K in its 16-byte loads.
constexpr int64_t kRouterMaxTokens = 16;
constexpr int64_t kRouterVector = 8;

// What both router kernels take: 1 <= M <= kRouterMaxTokens, K a multiple of kRouterVector, 16-byte
// aligned operands.
void check_router_inputs(const char* op, const at::Tensor& x, const at::Tensor& w, const at::Tensor& out) {
  check_inputs(op, x, w, out);
  require(x.size(0) >= 1 && x.size(0) <= kRouterMaxTokens, op,
          "M must be 1.." + std::to_string(kRouterMaxTokens) + ", got " + std::to_string(x.size(0)));
  require(x.size(1) % kRouterVector == 0, op,
          "K must be a multiple of " + std::to_string(kRouterVector) + ", got " + std::to_string(x.size(1)));
  require(reinterpret_cast<std::uintptr_t>(x.data_ptr()) % 16 == 0 &&
              reinterpret_cast<std::uintptr_t>(w.data_ptr()) % 16 == 0,
          op, "x and w must start on 16-byte boundaries");
}

void router_small_m_out(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, bool pdl) {
  check_router_inputs("router_small_m", x, w, out);
  if (w.size(0) == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  launch_router_small_m(x, w, out, pdl);
}

#ifndef GEMMBENCH_NO_MMA_KERNEL
// The tensor-core kernel (router_small_m_mma.cu) needs thread block clusters: sm90 and later.
constexpr int kClusterMajor = 9;

void router_small_m_mma_out(const at::Tensor& x, const at::Tensor& w, at::Tensor& out, bool pdl, int64_t warps,
                            int64_t splits) {
  check_router_inputs("router_small_m_mma", x, w, out);
  require(warps == 0 || warps == 4 || warps == 8 || warps == 16, "router_small_m_mma",
          "warps must be 0 (the kernel's choice), 4, 8 or 16, got " + std::to_string(warps));
  require(splits >= 0 && splits <= gemmbench::kRouterMaxSplits, "router_small_m_mma",
          "splits must be 0 (the kernel's choice) or 1.." + std::to_string(gemmbench::kRouterMaxSplits) + ", got " +
              std::to_string(splits));
  if (w.size(0) == 0) return;
  const c10::cuda::CUDAGuard guard(x.device());
  int major = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, x.get_device()));
  require(major >= kClusterMajor, "router_small_m_mma",
          "needs an sm90 or later GPU (thread block clusters), got sm" + std::to_string(major) + "x");
  launch_router_small_m_mma(x, w, out, static_cast<int>(warps), static_cast<int>(splits), pdl);
}
#endif

// rms_norm_out's trigger positions (rms_norm.cu): never, at the start, after the stores.
constexpr int64_t kTriggerPositions = 3;

void rms_norm_out(const at::Tensor& h, const at::Tensor& weight, double eps, at::Tensor& x, int64_t trigger) {
  require(h.is_cuda() && weight.is_cuda() && x.is_cuda(), "rms_norm", "h, weight and x must be CUDA tensors");
  require(h.scalar_type() == at::kBFloat16 && weight.scalar_type() == at::kBFloat16 &&
              x.scalar_type() == at::kBFloat16,
          "rms_norm", "h, weight and x must be bf16");
  require(h.dim() == 2 && x.sizes() == h.sizes() && weight.dim() == 1 && weight.size(0) == h.size(1),
          "rms_norm", "h and x must be [M, K] and weight [K], got h " + dims(h) + ", weight " + dims(weight) +
                          ", x " + dims(x));
  require(h.is_contiguous() && x.is_contiguous() && weight.is_contiguous(), "rms_norm",
          "h, weight and x must be contiguous");
  require(h.size(1) % kRouterVector == 0, "rms_norm",
          "K must be a multiple of " + std::to_string(kRouterVector) + ", got " + std::to_string(h.size(1)));
  require(trigger >= 0 && trigger < kTriggerPositions, "rms_norm", "trigger must be 0, 1 or 2");
  const c10::cuda::CUDAGuard guard(h.device());
  launch_rms_norm(h, weight, eps, x, trigger);
}
#endif

at::Tensor gemm_ex(const at::Tensor& x, const at::Tensor& w) {
  at::Tensor out = new_output(x, w);
  gemm_ex_out(x, w, out);
  return out;
}

at::Tensor lt(const at::Tensor& x, const at::Tensor& w, int64_t algo) {
  at::Tensor out = new_output(x, w);
  lt_out(x, w, out, algo);
  return out;
}

}  // namespace

TORCH_LIBRARY(gemmbench, m) {
  m.def("gemm_ex(Tensor x, Tensor w) -> Tensor");
  m.def("gemm_ex_out(Tensor x, Tensor w, Tensor(a!) out) -> ()");
  m.def("lt(Tensor x, Tensor w, int algo=0) -> Tensor");
  m.def("lt_out(Tensor x, Tensor w, Tensor(a!) out, int algo=0) -> ()");
  m.def("lt_algo_count(Tensor x, Tensor w) -> int");
}

// CUDA runs the GEMMs; CPU reaches the same input checks, so a CPU tensor gets a clear message
// instead of the dispatcher's "could not run with arguments from the CPU backend".
#define GEMMBENCH_IMPL(KEY)                      \
  TORCH_LIBRARY_IMPL(gemmbench, KEY, m) {        \
    m.impl("gemm_ex", &gemm_ex);                 \
    m.impl("gemm_ex_out", &gemm_ex_out);         \
    m.impl("lt", &lt);                           \
    m.impl("lt_out", &lt_out);                   \
    m.impl("lt_algo_count", &lt_algo_count);     \
  }
GEMMBENCH_IMPL(CUDA)
GEMMBENCH_IMPL(CPU)

#ifndef GEMMBENCH_NO_ROUTER_KERNEL
TORCH_LIBRARY_FRAGMENT(gemmbench, m) {
  m.def("router_small_m_out(Tensor x, Tensor w, Tensor(a!) out, bool pdl=False) -> ()");
  m.def("rms_norm_out(Tensor h, Tensor weight, float eps, Tensor(a!) x, int trigger=1) -> ()");
}
TORCH_LIBRARY_IMPL(gemmbench, CUDA, m) {
  m.impl("router_small_m_out", &router_small_m_out);
  m.impl("rms_norm_out", &rms_norm_out);
}
TORCH_LIBRARY_IMPL(gemmbench, CPU, m) {
  m.impl("router_small_m_out", &router_small_m_out);
  m.impl("rms_norm_out", &rms_norm_out);
}
#ifndef GEMMBENCH_NO_MMA_KERNEL
TORCH_LIBRARY_FRAGMENT(gemmbench, m) {
  m.def("router_small_m_mma_out(Tensor x, Tensor w, Tensor(a!) out, bool pdl=False, int warps=0, int splits=0) -> ()");
}
TORCH_LIBRARY_IMPL(gemmbench, CUDA, m) { m.impl("router_small_m_mma_out", &router_small_m_mma_out); }
TORCH_LIBRARY_IMPL(gemmbench, CPU, m) { m.impl("router_small_m_mma_out", &router_small_m_mma_out); }
#endif
#endif
