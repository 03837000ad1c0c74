// GEMM over OpenBLAS, made bit-reproducible.
//
// OpenBLAS (0.3.21 here) is NOT bit-reproducible across its own thread counts: its level-3
// driver splits C between threads, and an element computed by an edge micro-kernel in one split
// and by the main micro-kernel in another gets a different rounding (measured on Zen: ~6% of
// the elements of a 256x384x128 sgemm differ between 1 and 2 threads). Its thread count is
// process-wide and other code may change it. So:
// - OpenBLAS runs single-threaded: set to 1 before the first product and reset whenever
//   something else changed it. A single-threaded OpenBLAS call is a pure function of the shapes
//   and values, and is safe to call from several threads at once (OpenBLAS's documented mode for
//   multi-threaded applications).
// - The parallelism is ours: C is cut into blocks of kRowBlock rows, fixed by the shapes alone,
//   and each block is one single-threaded OpenBLAS call, whichever thread runs it.
// tests/nn/determinism_test.cpp checks the bits across thread counts and concurrent callers.
#include "nn/kernels/cpu/gemm.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <type_traits>

#include "nn/kernels/cpu/parallel.hpp"

namespace memento::nn::cpu::detail {

namespace {

// Rows of C per block: a multiple of every OpenBLAS micro-kernel height, and large enough that
// re-packing op(b) once per block costs ~1% of the block's multiply-adds.
constexpr int kRowBlock = 128;

void ensure_single_threaded_blas() {
  if (openblas_get_num_threads() == 1) return;
  static std::mutex mutex;
  const std::lock_guard lock(mutex);
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

template <typename T>
void gemm_block(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, T alpha, const T* a,
                int lda, const T* b, int ldb, T beta, T* c, int ldc) {
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    static_assert(std::is_same_v<T, double>, "gemm is instantiated for float and double only");
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
          int ldb, T beta, T* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    // cblas's leading-dimension rules reject an empty product; the result is beta * c.
    for (int i = 0; i < m; ++i) {
      T* row = c + static_cast<std::size_t>(i) * static_cast<std::size_t>(ldc);
      if (beta == T(0)) {
        std::fill(row, row + n, T(0));
      } else {
        for (int j = 0; j < n; ++j) row[j] *= beta;
      }
    }
    return;
  }
  ensure_single_threaded_blas();
  const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
  const auto blocks = static_cast<std::size_t>((m + kRowBlock - 1) / kRowBlock);
  const double work_per_block =
      static_cast<double>(std::min(m, kRowBlock)) * static_cast<double>(n) * k;
  parallel_for(blocks, work_per_block, [&](std::size_t blk) {
    const int row = static_cast<int>(blk) * kRowBlock;
    const int rows = std::min(kRowBlock, m - row);
    // Row `row` of op(a) starts `row` rows into a, or `row` columns into it when transposed.
    const std::size_t a_offset =
        trans_a ? static_cast<std::size_t>(row) : static_cast<std::size_t>(row) * lda;
    gemm_block<T>(ta, tb, rows, n, k, alpha, a + a_offset, lda, b, ldb, beta,
                  c + static_cast<std::size_t>(row) * ldc, ldc);
  });
}

template void gemm<float>(bool, bool, int, int, int, float, const float*, int, const float*, int,
                          float, float*, int);
template void gemm<double>(bool, bool, int, int, int, double, const double*, int, const double*,
                           int, double, double*, int);

}  // namespace memento::nn::cpu::detail
