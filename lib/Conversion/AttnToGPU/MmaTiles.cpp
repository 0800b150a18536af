//===- MmaTiles.cpp - shared-memory tiles of the mma.sync kernels ---------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "MmaTiles.h"

#include "DenseKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

Value SwizzledTiles::swizzle(Value r, Value c, int64_t dim) {
  if ((dim / 8) % 8 != 0)
    return c;
  Value chunk =
      arith::XOrIOp::create(e.b, e.div(c, e.idx(8)), e.rem(r, e.idx(8)));
  return e.mul(chunk, e.idx(8));
}

Value SwizzledTiles::swizzledCol(int64_t chunkConst, Value bit, int64_t dim) {
  if ((dim / 8) % 8 != 0)
    return e.add(e.mul(bit, e.idx(8)), e.idx(chunkConst * 8));
  int64_t m = chunkConst & 7;
  Value &x = xorChunks[{bit.getAsOpaquePointer(), m}];
  if (!x) {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointAfter(lane8.getDefiningOp());
    if (Operation *def = bit.getDefiningOp())
      if (def->getBlock() == lane8.getDefiningOp()->getBlock() &&
          lane8.getDefiningOp()->isBeforeInBlock(def))
        e.b.setInsertionPointAfter(def);
    x = e.mul(arith::XOrIOp::create(e.b, e.add(bit, e.idx(m)), lane8),
              e.idx(8));
  }
  return e.add(x, e.idx((chunkConst & ~int64_t(7)) * 8));
}

Value SwizzledTiles::issueTile(Value src, Value dstBuf,
                               std::optional<Value> stage, int64_t rows,
                               Value heads, Value seqLen, Value head,
                               Value row0, Value limit, int64_t dim) {
  ImplicitLocOpBuilder &b = e.b;
  MLIRContext *ctx = b.getContext();
  auto asyncTokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  SmallVector<Value> tokens;
  for (int64_t k = 0; k < rows * dim / (threads * 8); ++k) {
    Value el = e.mul(e.add(tid, e.idx(k * threads)), e.idx(8));
    Value r = e.div(el, e.idx(dim)), c = e.rem(el, e.idx(dim));
    Value row = e.add(row0, r);
    Value inside = e.slt(row, limit);
    // Rows past the end read nothing (size 0) from a valid address.
    Value safeRow = e.sel(inside, row, c0);
    Value count = e.sel(inside, e.idx(8), c0);
    SmallVector<Value> dst;
    if (stage)
      dst.push_back(*stage);
    dst.append({r, swizzle(r, c, dim)});
    tokens.push_back(nvgpu::DeviceAsyncCopyOp::create(
        b, asyncTokenType, dstBuf, dst, src,
        ValueRange{e.add(
            getRowOffset(e, layout, batch, heads, seqLen, head, safeRow, dim),
            c)},
        b.getIndexAttr(8), count, /*bypassL1=*/b.getUnitAttr()));
  }
  return Value(nvgpu::DeviceAsyncCreateGroupOp::create(
      b, nvgpu::DeviceAsyncTokenType::get(ctx), tokens));
}

void SwizzledTiles::waitGroups(Value anyGroup, int32_t pending) {
  nvgpu::DeviceAsyncWaitOp::create(e.b, anyGroup,
                                   e.b.getI32IntegerAttr(pending));
}
