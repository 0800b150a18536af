//===- HostLaunch.h - host code that launches attn's kernels ----*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The host side of the launch contract (docs/kernel-spec.md, "Manifests"):
// given an op's kernels, emits in its place the code a launcher would run --
// buffers of its operands, allocations of its results and workspaces, each
// kernel's grid evaluated from the runtime sizes, TMA descriptors, and one
// gpu.launch_func per kernel -- on tensors, so that one-shot bufferization
// and the rest of the program pipeline see ordinary IR.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_HOSTLAUNCH_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_HOSTLAUNCH_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir {
namespace attn {

/// Replaces `op` by host code that runs it on `kernels` (the manifests of
/// its kernels, as KernelGenerator::add returned them, in build order).
/// Fails with an error at the op when the op has no host lowering, or when
/// its shapes cannot satisfy the kernels' contract.
LogicalResult replaceWithKernelLaunches(RewriterBase &rewriter, Operation *op,
                                        ArrayRef<DictionaryAttr> kernels,
                                        ModuleOp module);

} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_HOSTLAUNCH_H
