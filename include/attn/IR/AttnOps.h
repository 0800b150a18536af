//===- AttnOps.h - attn operations ------------------------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Declares the operations of the attn dialect.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_ATTNOPS_H
#define ATTN_IR_ATTNOPS_H

#include "attn/IR/AttnDialect.h"
#include "attn/IR/KernelSpecOpInterface.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir {
namespace attn {

/// The largest size attn takes, of a dimension or an integer size attribute
/// (and of a kernel spec's sizes): every lowering's index arithmetic
/// (element offsets, their products with strides, tile counts) stays within
/// int64 below it, and no real program is refused.
inline constexpr int64_t kMaxDimSize = (int64_t(1) << 31) - 1;

/// Whether the static sizes of `shape` are ones attn's ops take: each
/// dimension at most 2^31 - 1 and at most 2^48 elements in all, so that no
/// lowering's index arithmetic overflows (dynamic sizes are not counted).
/// Every op verifier checks its tensors with this; passes that create ops
/// check before they do.
bool isWithinSizeBounds(ArrayRef<int64_t> shape);

/// The sizes of one attention problem, independent of the tensor layout.
/// Each size is ShapedType::kDynamic when unknown.
struct AttentionShape {
  int64_t batch;
  int64_t queryHeads;
  int64_t kvHeads;
  int64_t querySeqLen;
  int64_t keySeqLen;
  int64_t headDim;
  int64_t valueHeadDim;
};

/// The sizes of a paged attention problem (ShapedType::kDynamic if dynamic).
struct PagedAttentionShape {
  int64_t batch;
  int64_t queryHeads;
  int64_t kvHeads;
  int64_t querySeqLen;
  int64_t headDim;
  int64_t valueHeadDim;
  int64_t pageSize;
  int64_t numPages;
  int64_t maxPages;
};

/// Position of the head and sequence dimensions of a 4-D query, key, value
/// or output tensor in `layout`.
inline unsigned getHeadDimPos(Layout layout) {
  return layout == Layout::BHSD ? 1 : 2;
}
inline unsigned getSeqDimPos(Layout layout) {
  return layout == Layout::BHSD ? 2 : 1;
}

} // namespace attn
} // namespace mlir

#define GET_OP_CLASSES
#include "attn/IR/AttnOps.h.inc"

#endif // ATTN_IR_ATTNOPS_H
