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

/// The kernel name of `op`'s variant: equal for ops that can share a kernel.
std::string getAttentionKernelName(AttentionOp op);

/// Adds (or finds) the kernel for `op`'s variant in `module`.
FailureOr<AttentionKernel> buildAttentionKernel(OpBuilder &builder,
                                                gpu::GPUModuleOp module,
                                                AttentionOp op);

} // namespace attn
} // namespace mlir

#endif // ATTN_CONVERSION_ATTNTOGPU_H
