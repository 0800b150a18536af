//===- KernelBody.h - building a kernel body in phases ----------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Internal to lib/Conversion/AttnToGPU: what the gated delta and sparse
// selection kernels build the same way. FragmentEmitter adds to Emitter the
// mma.sync fragments, 4-wide f32 vectors and unrolled thread rounds;
// KernelBody is the base of a kernel's builder class, whose methods are the
// kernel's phases and whose members are the values the phases share.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELBODY_H
#define ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELBODY_H

#include "KernelCommon.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace mlir {
namespace attn {
namespace detail {

/// Emitter with mma.sync fragments (of element type `elt`), f32 vectors of
/// four, the tf32 helpers and the warp-level helpers of the gated delta and
/// sparse selection kernels.
struct FragmentEmitter : Emitter {
  Type elt;

  /// `x + k`; `x` itself for k = 0.
  Value plus(Value x, int64_t k) { return k ? add(x, idx(k)) : x; }
  Value exp(Value x) { return math::ExpOp::create(b, x); }
  Value rsqrt(Value x) { return math::RsqrtOp::create(b, x); }
  Value zeros(VectorType t) {
    return arith::ConstantOp::create(
        b, t, DenseElementsAttr::get(t, b.getZeroAttr(t.getElementType())));
  }

  //===--- mma.sync fragments of `elt` ---------------------------------===//

  /// `n` consecutive elements of `mem` (flat or 2-D) at `indices`, which
  /// the caller knows to be n-element aligned: said so, or the backend
  /// splits the load into 2-byte ones (memrefs carry no alignment).
  Value vec(int64_t n, Value mem, ValueRange indices) {
    int64_t bytes = n * elt.getIntOrFloatBitWidth() / 8;
    return vector::LoadOp::create(b, VectorType::get({n}, elt), mem, indices,
                                  /*nontemporal=*/false,
                                  b.getI64IntegerAttr(bytes));
  }
  Value pair(Value mem, ValueRange indices) { return vec(2, mem, indices); }
  /// A vector<n x 2 x elt> fragment from its rows.
  Value fragment(ArrayRef<Value> rows) {
    auto t = VectorType::get({static_cast<int64_t>(rows.size()), 2}, elt);
    Value v = zeros(t);
    for (auto [i, row] : llvm::enumerate(rows))
      v = vector::InsertOp::create(b, row, v,
                                   ArrayRef<int64_t>{static_cast<int64_t>(i)});
    return v;
  }
  Value at(Value acc, int64_t i, int64_t j) {
    return vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i, j});
  }
  /// D = A·B + C for one m16n8k16 tile (KernelCommon.h: buildMmaSync).
  Value mmaSync(Value a, Value bFrag, Value c) {
    return buildMmaSync(b, b.getLoc(), a, bFrag, c);
  }
  /// Copies `rows` x `dim` elements of `src` (row r, column c at flat index
  /// `at(r, c)`) into rows of `dst`, 8 elements (16 bytes) per copy, `step`
  /// threads from `first`; `dim` a multiple of 8.
  void copyRows8(Value first, int64_t step, int64_t rows, int64_t dim,
                 Value src, Value dst, function_ref<Value(Value, Value)> at) {
    loop(first, idx(rows * dim / 8), idx(step), [&](Value i) {
      Value r = div(mul(i, idx(8)), idx(dim)),
            c = rem(mul(i, idx(8)), idx(dim));
      Value v = vec(8, src, at(r, c));
      storeVec(v, dst, {r, c});
    });
  }

  //===--- tf32 m16n8k8 tiles (f32 scalars) ----------------------------===//

  /// `x` rounded to tf32 (KernelCommon.h: roundToTf32).
  Value tf32(Value x) { return roundToTf32(b, b.getLoc(), x); }
  /// D = A·B + C for one m16n8k8 tf32 tile (KernelCommon.h: buildMmaTf32).
  SmallVector<Value> mmaTf32(ArrayRef<Value> a, ArrayRef<Value> bFrag,
                             ArrayRef<Value> c) {
    return SmallVector<Value>(buildMmaTf32(b, b.getLoc(), a, bFrag, c));
  }

  //===--- vector<4xf32> -----------------------------------------------===//

  VectorType vec4Type() { return VectorType::get({4}, b.getF32Type()); }
  /// Four f32 of `m` at `at`.
  Value load4(Value m, ValueRange at) {
    return vector::LoadOp::create(b, vec4Type(), m, at);
  }
  /// Stores vector `v` into `m` at `at`.
  void storeVec(Value v, Value m, ValueRange at) {
    vector::StoreOp::create(b, v, m, at);
  }
  Value splat4(Value x) {
    return vector::BroadcastOp::create(b, vec4Type(), x);
  }
  /// The sum of a vector<4xf32>'s elements, from 0.
  Value sum4(Value v) {
    Value out = f(0.0);
    for (int64_t r = 0; r < 4; ++r)
      out = fadd(out, vector::ExtractOp::create(b, v, ArrayRef<int64_t>{r}));
    return out;
  }

  //===--- threads and warps -------------------------------------------===//

  /// Runs `fn(x, guarded)` for x = first + k·step, k = 0, 1, ... while
  /// k·step < total: `first` is a thread's (or warp's) index in [0, step),
  /// the rounds are unrolled and the last is guarded by x < total when it
  /// is partial (`guarded`: `fn` runs inside that guard).
  void rounds(Value first, int64_t step, int64_t total,
              function_ref<void(Value, bool)> fn) {
    for (int64_t k = 0; k * step < total; ++k) {
      Value x = add(first, idx(k * step));
      if ((k + 1) * step <= total)
        fn(x, /*guarded=*/false);
      else
        when(lt(x, idx(total)), [&] { fn(x, /*guarded=*/true); });
    }
  }
  void rounds(Value first, int64_t step, int64_t total,
              function_ref<void(Value)> fn) {
    rounds(first, step, total, [&](Value x, bool) { fn(x); });
  }
  /// Sum over the 8 lane groups of an m16n8 accumulator (lanes 4 apart).
  Value rowGroupSum(Value v) { return laneSum(v, 8, 4); }
  void syncWarp() {
    NVVM::SyncWarpOp::create(
        b, arith::ConstantOp::create(b, b.getI32IntegerAttr(-1)));
  }

  //===--- logic, casts and what Emitter lacks -------------------------===//

  Value lor(Value x, Value y) { return arith::OrIOp::create(b, x, y); }
  /// Index <-> integer casts.
  Value cast(Type t, Value x) { return arith::IndexCastOp::create(b, t, x); }
  Value umin(Value x, Value y) { return arith::MinUIOp::create(b, x, y); }
  Value fgt(Value x, Value y) {
    return arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, x, y);
  }
};

/// The base of a kernel body's builder: a builder at the start of the
/// kernel function, the emitter, the function's arguments in order and
/// views of its dynamic shared memory, carved one after another. A kernel's
/// builder derives from it; its methods are the kernel's phases.
class KernelBody {
protected:
  /// `elt`: the element type of the emitter's mma.sync fragments.
  KernelBody(OpBuilder &builder, gpu::GPUFuncOp func, Location loc, Type elt)
      : b(loc, builder), e{{b}, elt}, func(func), body(func.getBody().front()) {
    b.setInsertionPointToStart(&body);
  }

  /// The next argument of the kernel function.
  Value arg() { return body.getArgument(nextArg++); }
  /// A view of type `t` (f32 if null) and shape `dims` of the dynamic
  /// shared memory, after the previous views.
  Value shared(ArrayRef<int64_t> dims, Type t = {}) {
    if (!t)
      t = b.getF32Type();
    if (!smem)
      smem = getDynamicSharedMemory(b, b.getLoc(), func);
    auto space = gpu::AddressSpaceAttr::get(
        b.getContext(), gpu::GPUDialect::getWorkgroupAddressSpace());
    Value v =
        memref::ViewOp::create(b, MemRefType::get(dims, t, AffineMap(), space),
                               smem, e.idx(sharedBytes), ValueRange{});
    int64_t n = t.getIntOrFloatBitWidth() / 8;
    for (int64_t d : dims)
      n *= d;
    sharedBytes += n;
    return v;
  }

  ImplicitLocOpBuilder b;
  FragmentEmitter e;
  gpu::GPUFuncOp func;
  Block &body;
  /// The bytes of shared memory the views take.
  int64_t sharedBytes = 0;

private:
  unsigned nextArg = 0;
  Value smem;
};

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_CONVERSION_ATTNTOGPU_KERNELBODY_H
