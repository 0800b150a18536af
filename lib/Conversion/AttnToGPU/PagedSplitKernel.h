//===- PagedSplitKernel.h - what the paged split kernels share --*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: the base of the two split kernels of
// paged decode (the general one of PagedKernel.cpp, the latent one of
// PagedLatentKernel.cpp). Both give a block packed query rows of one KV head
// of one sequence (row r = token · G + head % G) and one split of its keys,
// stream 64-key tiles through cp.async, compute S = Q·Kᵀ and O += P·V as
// m16n8k16 mma.sync with the online softmax on the accumulator fragments,
// and write a normalized partial output and log-sum-exp per split. What
// they build alike is here: the arguments, the block's prologue, Q's
// staging, cache addressing, the masked logits, the softmax step of a
// fragment row and the partial LSE.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_PAGEDSPLITKERNEL_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_PAGEDSPLITKERNEL_H

#include "KernelCommon.h"

#include "attn/IR/KernelSpec.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <array>
#include <optional>

namespace mlir {
namespace attn {
namespace detail {

/// Sets `*slots[i]` to argument i of `func`, for every argument.
void bindArguments(gpu::GPUFuncOp func, ArrayRef<Value *> slots);

/// The base of a paged split kernel builder: the spec's facts, the kernel's
/// arguments, the values of the prologue, and the phases both kernels
/// share. Each method emits at the builder's insertion point.
class PagedSplitKernel : protected Emitter {
protected:
  /// `separateValues`: the kernel takes a value cache (after the key cache)
  /// and its row stride VStride (last); else the values are the first Dv
  /// columns of the key rows.
  PagedSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                   const PagedAttentionSpec &spec, bool separateValues);
  /// For a kernel of another signature (NSA's selected branch): binds no
  /// argument; the subclass sets the ones its phases read.
  struct OwnArguments {};
  PagedSplitKernel(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                   const PagedAttentionSpec &spec, OwnArguments);

  /// A `dims` view of `t` at byte `at` of the dynamic shared memory `smem`.
  Value sharedView(Value smem, ArrayRef<int64_t> dims, Type t, int64_t at);

  /// Prologue, the block's coordinates: c0, c1; blockIdx.x = row tile ·
  /// Splits + split; blockIdx.y = KV head · valueChunks + value chunk (the
  /// chunk's columns from chunkCol0, chunks of `chunkCols`); blockIdx.z =
  /// the sequence; the thread's warp, lane and m16n8 fragment coordinates
  /// g = lane / 4, t = lane mod 4.
  void emitBlockIndices(int64_t valueChunks, int64_t chunkCols);

  /// Prologue, the block's keys: its `rowsPerBlock` packed rows from r0, the
  /// sequence's length (clamped to what its row of the table can name), and
  /// the keys [kBegin, kEnd) of the band of its rows (the band's ends only
  /// grow with the token) cut to its split (whole tiles of the length's
  /// share), in `steps` tiles of `keysPerTile`.
  void emitKeyRange(int64_t rowsPerBlock, int64_t keysPerTile);

  /// Key `offset` of tile `step` (tiles of `tileKeys` from kBegin).
  Value tileKey(Value step, Value offset);

  /// Element offset of packed row r's query (or output) [b, token, head, 0]
  /// in [B, Sq, Hq, dim].
  Value rowElement(Value r, int64_t dim);

  /// `m[i]` (the table's or the lengths' integer type) as an index.
  Value loadIndex(Value m, ValueRange i);

  /// Q's `rowsPerBlock` packed rows into `qS` [rows, D], 8 elements per
  /// thread and step over `threads` threads, rows past the packed rows
  /// zero; column c of row r goes to column swizzle(r, c, D).
  void stageQuery(Value qS, int64_t rowsPerBlock, int64_t threads,
                  function_ref<Value(Value, Value, int64_t)> swizzle);

  /// The table entry of `key`'s page (row `tableRow` of the table) where
  /// `valid`, else the row's first entry (set for every sequence), as an
  /// index.
  Value readPage(Value tableRow, Value valid, Value key);

  /// The row of the cache's [rows, D] view that holds slot `slot` of page
  /// `page` for this block's KV head.
  Value cacheRow(Value page, Value slot);

  /// A 16-byte cp.async of `src[srcIndex]` into `dst[dstIndices]`,
  /// zero-filled where `inside` is false.
  Value copyChunk(Value dst, ValueRange dstIndices, Value src, Value srcIndex,
                  Value inside);

  /// An ldmatrix x4 of `buffer` at `indices` (the lane's row and column):
  /// an A fragment (aType), or two B fragments.
  Value ldmatrix(Value buffer, ValueRange indices, bool transpose);

  /// The two B fragments (8-column tiles) of an ldmatrix x4 (transposed for
  /// V).
  std::pair<Value, Value> loadBPair(Value buffer, ValueRange indices,
                                    bool transpose);

  /// A zero accumulator fragment (cType).
  Value zeroAccumulator();

  /// The logits, in the exp2 domain, of S accumulator tiles `sAcc` (8 keys
  /// each from key `tileKey0`; rows g and g + 8 at key positions pos[0],
  /// pos[1]): x[i][2n + j] is row g + 8i's logit of key tileKey0 + 8n + 2t
  /// + j, -inf outside the row's band and the block's keys.
  std::array<SmallVector<Value>, 2>
  maskedLogits(ArrayRef<Value> sAcc, Value tileKey0, const Value pos[2]);
  /// The same with what admits a key given: `admits(i, key)` is whether row
  /// g + 8i takes key `key`.
  std::array<SmallVector<Value>, 2>
  maskedLogits(ArrayRef<Value> sAcc, Value tileKey0,
               function_ref<Value(int64_t, Value)> admits);

  /// One fragment row's online-softmax step to the running max `m` (-inf
  /// while no key is admitted): with m' = m, or 0 where m = -inf, the rescale
  /// alpha = 2^(mOld - m'), p = 2^(x - m') and l = lOld · alpha + Σ p.
  struct RowStep {
    Value alpha, l;
    SmallVector<Value> p;
  };
  RowStep softmaxStep(Value mOld, Value lOld, Value m, ArrayRef<Value> x);

  /// A [2x2] f32 accumulator fragment (rows g, g + 8) with row i times
  /// alpha[i].
  Value scaleRows(Value acc, Value alpha0, Value alpha1);

  /// The natural log-sum-exp of a row with max `m` (exp2 domain) and sum l.
  Value naturalLse(Value m, Value l);

  /// Packed row `row`'s index in the split's partial LSE [Splits, B, Sq,
  /// Hq] (its partial output row, in rows of Dv); `rowsAll` = B · Sq · Hq.
  Value partialRow(Value rowsAll, Value row);

  // The spec's facts.
  gpu::GPUFuncOp func;
  Location loc;
  MLIRContext *ctx;
  const int64_t D, Dv, P;
  const bool hnd;
  Type elt, f32;
  /// The mask; its window extents the kernel's arguments where the spec
  /// leaves them to run time (set by emitBlockIndices).
  MaskBand band;
  std::optional<double> softcap;
  /// The factor that takes a raw score to the exp2 domain (scale · log2 e,
  /// or scale / softcap before the tanh), compiled in.
  double factor;
  /// The spec leaves scale, softcap and window extents to run time: the
  /// kernel's last arguments (`valueArgs`), which emitBlockIndices turns
  /// into `scoreFactor`, `softcapFactor` and `band`'s extents.
  bool runtimeValues;
  SmallVector<Value, 4> valueArgs;
  Value scoreFactor, softcapFactor;
  /// The m16n8k16 fragments: A (`vector<4x2xT>`) and C (`vector<2x2xf32>`).
  VectorType aType, cType;

  // The arguments.
  Value qArg, kArg, vArg, tableArg, lensArg, oPart, lsePart;
  Value batch, hq, hkv, sq, maxPages, splits, vStride;

  // The prologue's values.
  Value c0, c1, bx, kvh, chunkCol0, bIdx, tid, split, rowTile, warp, lane, g, t;
  Value group, rows, r0, len, off, kBegin, kEnd, steps;
  int64_t tileKeys = 0;
};

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_PAGEDSPLITKERNEL_H
