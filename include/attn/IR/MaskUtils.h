//===- MaskUtils.h - IR for the semantics of #attn.mask ---------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The band of keys a mask admits, materialized as index arithmetic. Every
// lowering (attn-tile, the GPU kernels) uses these, so the meaning of a mask
// is written once (MaskAttr::getAdmittedKeys is its constant-folded twin).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_MASKUTILS_H
#define ATTN_IR_MASKUTILS_H

#include "attn/IR/AttnDialect.h"

#include "mlir/IR/Builders.h"

namespace mlir {
namespace attn {

/// A mask whose window extents may be index values computed at run time
/// (kernels that take them as arguments) instead of the attribute's: null
/// `left`/`right` take the attribute's. Run-time extents must lie in
/// [0, 2^40] (the kernels clamp their arguments so).
struct MaskBand {
  MaskAttr mask;
  Value left, right;
};

/// The half-open range [lo, hi) of keys admitted for the query row at key
/// position `pos` (= row + Sk - Sq, bottom-right aligned), clamped to
/// [0, sk). Index values; the range may be empty (lo >= hi).
std::pair<Value, Value> buildAdmittedKeys(OpBuilder &b, Location loc,
                                          MaskAttr mask, Value pos, Value sk);

std::pair<Value, Value> buildAdmittedKeys(OpBuilder &b, Location loc,
                                          const MaskBand &band, Value pos,
                                          Value sk);

/// The inverse of buildAdmittedKeys: the half-open range [lo, hi) of key
/// positions whose band intersects the keys [keyBegin, keyEnd) (a non-empty
/// range). Rows at positions outside it admit none of those keys; rows
/// inside may still admit none when their band is clipped at 0 or `sk`. The
/// range is unbounded above (hi = `maxPos`) when the mask has no left
/// extent, and is [minPos, maxPos) for no mask.
std::pair<Value, Value> buildAdmittingPositions(OpBuilder &b, Location loc,
                                                MaskAttr mask, Value keyBegin,
                                                Value keyEnd, Value minPos,
                                                Value maxPos);
std::pair<Value, Value> buildAdmittingPositions(OpBuilder &b, Location loc,
                                                const MaskBand &band,
                                                Value keyBegin, Value keyEnd,
                                                Value minPos, Value maxPos);

/// Whether `key` lies in the band of the row at key position `pos` (an i1;
/// the bound key < Sk is not included). Null for a mask that admits every key.
Value buildAdmitsKey(OpBuilder &b, Location loc, MaskAttr mask, Value pos,
                     Value key);
Value buildAdmitsKey(OpBuilder &b, Location loc, const MaskBand &band,
                     Value pos, Value key);

/// The number of keys of a paged sequence (attn.paged_attention): its
/// length `len`, a value read from `seq_lens`, clamped to [0, `capacity`]
/// (max_pages * page_size). Every lowering of the op goes through this, so
/// no length, whatever the tensor holds, makes one read past its row of
/// the block table.
Value buildPagedSequenceLength(OpBuilder &b, Location loc, Value len,
                               Value capacity);

} // namespace attn
} // namespace mlir

#endif // ATTN_IR_MASKUTILS_H
