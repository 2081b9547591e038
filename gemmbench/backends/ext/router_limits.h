// Limits the operators' checks (cublas_gemm.cpp) and the kernels (router_small_m_mma.cu) share.
#pragma once

namespace gemmbench {

// The most CTAs router_small_m_mma splits K across: its cluster size, which sm90 allows up to 16 where a
// kernel opts in; the first CTA's shared memory holds a partial tile from each of the others.
constexpr int kRouterMaxSplits = 16;

}  // namespace gemmbench
