//===- AttnToGPU.h - attn to GPU kernels ------------------------*- C++ -*-===//

#ifndef ATTN_CONVERSION_ATTNTOGPU_H
#define ATTN_CONVERSION_ATTNTOGPU_H

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Support/LLVM.h"

#include <string>

namespace mlir {
class OpBuilder;
namespace attn {
class AttentionOp;

/// A generated kernel and its calling contract (JSON).
struct AttentionKernel {
  gpu::GPUFuncOp func;
  std::string manifest;
};

/// Which kernel body to generate.
enum class KernelKind {
  Baseline, ///< a thread per query row, no tensor cores (every variant)
  Mma,      ///< mma.sync tensor cores (f16/bf16, head dims % 16 == 0, <= 128)
};

/// The kernel name of `op`'s variant: equal for ops that can share a kernel.
std::string getAttentionKernelName(AttentionOp op, KernelKind kind);

/// Keys per pipeline step of the tensor-core kernel for head dims d / dv.
int64_t getMmaKeysPerStep(int64_t d, int64_t dv);

/// Whether the tensor-core kernel supports `op`'s variant.
bool isMmaKernelEligible(AttentionOp op);

/// Adds (or finds) the kernel for `op`'s variant in `module`.
FailureOr<AttentionKernel> buildAttentionKernel(OpBuilder &builder,
                                                gpu::GPUModuleOp module,
                                                AttentionOp op,
                                                KernelKind kind);

/// The kernel arguments the tensor-core body reads.
struct MmaKernelArgs {
  Value q, k, v, bias, sinks, o, lse;
  Value batch, hq, hkv, sq, sk;
  SmallVector<bool, 4> biasBroadcast;
};

/// Emits the tensor-core kernel body into `func` (see MmaKernel.cpp).
void buildMmaKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                        AttentionOp op, const MmaKernelArgs &args);

} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_ATTNTOGPU_H
