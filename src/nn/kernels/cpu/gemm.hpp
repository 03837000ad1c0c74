// The row-major GEMM behind the matmul and attention kernels.
#pragma once

namespace memento::nn::cpu::detail {

/// c[m,n] = alpha * op(a)[m,k] * op(b)[k,n] + beta * c[m,n], all row-major; op transposes when
/// the flag is set. Same bits on every call for the same shapes and values (see gemm.cpp).
template <typename T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
          int ldb, T beta, T* c, int ldc);

}  // namespace memento::nn::cpu::detail
