//===- RewriteUtils.h - helpers of the decomposition patterns ---*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_REWRITEUTILS_H
#define ATTN_LIB_TRANSFORMS_REWRITEUTILS_H

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir {
namespace attn {

/// Replaces `op` by `values`, each cast (tensor.cast) to the type of the
/// result it replaces where the two differ. The verifiers accept result
/// types that are only compatible with the operands' (a static dim where
/// the operands have a dynamic one, and back); a decomposition builds its
/// values from the operands, so the types can differ in static-ness.
inline void replaceOpWithCasts(RewriterBase &rewriter, Operation *op,
                               ValueRange values) {
  SmallVector<Value> replacements;
  for (auto [value, result] : llvm::zip_equal(values, op->getResults()))
    replacements.push_back(value.getType() == result.getType()
                               ? value
                               : tensor::CastOp::create(rewriter, op->getLoc(),
                                                        result.getType(), value)
                                     .getResult());
  rewriter.replaceOp(op, replacements);
}

} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_REWRITEUTILS_H
