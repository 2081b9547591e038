// What gemmbench's kernels share: the loads of a router GEMM's operands and programmatic dependent launch.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace gemmbench {

// A weight vector (16 bytes, 8 bf16): read once, so not kept in L1. A relaxed load, not a read-only one
// (.nc), in an asm statement: nvcc 13.0 kept these in program order with the other asm loads and ahead
// of griddepcontrol.wait (seen in the SASS; a speed matter, not a guarantee). Read-only loads it moved
// freely, next to their first use (a thread's loads then wait in turn) or below the wait (with PDL the
// weight then waited for the producer of x, for nothing).
__device__ inline uint4 load_weight(const void* address) {
  uint4 value;
  asm volatile("ld.relaxed.gpu.global.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
               : "l"(address));
  return value;
}

// A token vector (16 bytes of x), after wait_for_producer: never through the read-only path, which tells
// the compiler x is constant for the kernel's whole life, and lets it hoist the load above the wait, to
// before the producer of x has finished (it did, at M <= 2, in the first version of router_small_m.cu).
__device__ inline uint4 load_token(const void* address) {
  uint4 value;
  asm volatile("ld.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(value.x), "=r"(value.y), "=r"(value.z), "=r"(value.w)
               : "l"(address));
  return value;
}

// Programmatic dependent launch (sm90+): wait until the grid this one depends on has finished and its
// stores are visible, and let the grid that depends on this one start launching. Both are no-ops for a
// grid launched without the programmatic-serialization attribute.
__device__ inline void wait_for_producer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ inline void let_dependents_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

}  // namespace gemmbench
