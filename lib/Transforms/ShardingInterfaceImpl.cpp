//===- ShardingInterfaceImpl.cpp - attn ops on a device grid --------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn.attention's ShardingInterface. Its iteration space has six loops,
//
//   (b, h, i, j, d, e) = (batch, query head, query row, key, head dim,
//                         value head dim),
//
// with Q[b, h, i, d], K[b, h / G, j, d], V[b, h / G, j, e], O[b, h, i, e],
// lse[b, h, i], bias[b|0, h|0, i|0, j|0] and sinks[h] (G = Hq / Hkv, the
// dims of Q, K, V and O permuted by the layout). b, h and i are parallel:
// splitting them gives each device an independent attention. Splitting h
// splits Hq and Hkv by the same device count, so Hkv must be divisible by it
// and each device keeps whole GQA groups. j (the keys) is a reduction:
// each device attends to its key block, and the partial results merge by
// their log-sum-exp (see partitionKeyShards). d and e are not split.
//
// Splitting i or j moves a block of rows or keys away from the positions
// the mask was written for; the partitioned op gets a position_offset that
// puts the block back where the whole problem's mask has it.
//
//===----------------------------------------------------------------------===//

#include "attn/Transforms/ShardingInterfaceImpl.h"
#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterfaceImpl.h"
#include "mlir/Dialect/Shard/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "llvm/ADT/SmallVectorExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using shard::GridAxis;
using shard::Sharding;
using shard::ShardingOption;

namespace {

/// The loops of attn.attention's iteration space.
enum Loop : int {
  kBatch,
  kHead,
  kQueryRow,
  kKey,
  kHeadDim,
  kValueHeadDim,
  kNumLoops,
  /// A dimension that follows no loop (a size-1, broadcast bias dim).
  kNone = -1,
};

/// What an operand or result is to attn.attention, in the order of its ODS
/// operand groups, then its results.
enum class Role {
  Query,
  Key,
  Value,
  Bias,
  Sinks,
  PositionOffset,
  Descale,
  Output,
  Lse
};

} // namespace

/// The name of `loop` in diagnostics.
static const char *getLoopName(int loop) {
  static const char *names[] = {"batch",        "head",     "query sequence",
                                "key sequence", "head dim", "value head dim"};
  return names[loop];
}

/// The role of operand `i` of `op` (Q, K and V may be one value, as a
/// self-attention may be written, so operands are told apart by position).
static Role getOperandRole(AttentionOp op, unsigned i) {
  for (unsigned group = 0;; ++group) {
    auto [start, length] = op.getODSOperandIndexAndLength(group);
    if (i >= start && i < start + length)
      return static_cast<Role>(group);
  }
}

/// The loop each dimension of a tensor of `role` follows in `op` (none for
/// the index operand).
static SmallVector<int> getRoleLoops(AttentionOp op, Role role) {
  bool bhsd = op.getLayout() == Layout::BHSD;
  auto main = [&](int seq, int last) -> SmallVector<int> {
    if (bhsd)
      return {kBatch, kHead, seq, last};
    return {kBatch, seq, kHead, last};
  };
  switch (role) {
  case Role::Query:
    return main(kQueryRow, kHeadDim);
  case Role::Key:
    return main(kKey, kHeadDim);
  case Role::Value:
    return main(kKey, kValueHeadDim);
  case Role::Output:
    return main(kQueryRow, kValueHeadDim);
  case Role::Lse:
    return {kBatch, kHead, kQueryRow};
  case Role::Sinks:
    return {kHead};
  case Role::Bias: {
    auto type = cast<RankedTensorType>(op.getBias().getType());
    SmallVector<int> loops = {kBatch, kHead, kQueryRow, kKey};
    for (unsigned d = 0; d < 4; ++d)
      if (type.getDimSize(d) == 1)
        loops[d] = kNone;
    return loops;
  }
  case Role::PositionOffset:
    return {};
  case Role::Descale:
    // FP8 descales: one per tensor, or per (batch, KV head).
    if (cast<RankedTensorType>(op.getDescale()[0].getType()).getRank() == 0)
      return {};
    return {kBatch, kHead};
  }
  llvm_unreachable("unknown role");
}

static SmallVector<int> getOperandLoops(AttentionOp op, unsigned i) {
  return getRoleLoops(op, getOperandRole(op, i));
}

static SmallVector<int> getResultLoops(AttentionOp op, unsigned i) {
  return getRoleLoops(op, i == 0 ? Role::Output : Role::Lse);
}

/// The grid axes loop `loop` is split along in `option` (none if the
/// option's array stops before it).
static ArrayRef<GridAxis> getLoopAxes(const ShardingOption &option, int loop) {
  if (loop < 0 || loop >= static_cast<int>(option.shardingArray.size()))
    return {};
  return option.shardingArray[loop];
}

/// The sharding of a tensor whose dims follow `loops` under `option`.
static Sharding getTensorSharding(MLIRContext *ctx,
                                  const ShardingOption &option,
                                  ArrayRef<int> loops) {
  SmallVector<SmallVector<GridAxis>> split;
  for (int loop : loops)
    split.emplace_back(getLoopAxes(option, loop));
  shard::removeTrailingEmptySubArray(split);
  SmallVector<shard::GridAxesAttr> axes;
  for (ArrayRef<GridAxis> a : split)
    axes.push_back(shard::GridAxesAttr::get(ctx, a));
  return Sharding::get(option.grid, axes);
}

/// The loop sharding the annotated operands and results of `op` imply:
/// each split dim assigns its axes to the loop it follows (`loopsOf`:
/// operand i, or result i with `result`). Fails silently on a conflict (two
/// annotations splitting one loop differently, one grid axis splitting two
/// loops, two grids). A split of a dim that follows no loop is an error
/// with `strict`, else a warning and ignored (propagation then reshards
/// that tensor whole there); `whyWhole` says why that dim cannot split.
static FailureOr<ShardingOption> collectLoopSharding(
    Operation *op, int numLoops,
    function_ref<SmallVector<int>(bool result, unsigned i)> loopsOf,
    function_ref<std::string(bool result, unsigned i, unsigned dim)> whyWhole,
    ArrayRef<Sharding> operandShardings, ArrayRef<Sharding> resultShardings,
    bool strict, bool *reported = nullptr) {
  ShardingOption option;
  option.shardingArray.resize(numLoops);
  bool annotated = false;
  auto visit = [&](Sharding sharding, bool result,
                   unsigned i) -> LogicalResult {
    if (!sharding)
      return success();
    annotated = true;
    if (option.grid && option.grid != sharding.getGridAttr())
      return failure();
    option.grid = sharding.getGridAttr();
    SmallVector<int> loops = loopsOf(result, i);
    for (auto [dim, axes] : llvm::enumerate(sharding.getSplitAxes())) {
      if (axes.empty())
        continue;
      if (dim >= loops.size() || loops[dim] == kNone) {
        std::string why = whyWhole(result, i, dim);
        if (strict) {
          if (reported)
            *reported = true;
          return op->emitOpError() << why;
        }
        op->emitWarning() << why << "; it stays whole";
        continue;
      }
      SmallVector<GridAxis> &slot = option.shardingArray[loops[dim]];
      if (!slot.empty() && ArrayRef<GridAxis>(slot) != axes.asArrayRef())
        return failure();
      slot.assign(axes.asArrayRef().begin(), axes.asArrayRef().end());
    }
    return success();
  };
  for (auto [i, sharding] : llvm::enumerate(operandShardings))
    if (failed(visit(sharding, /*result=*/false, i)))
      return failure();
  for (auto [i, sharding] : llvm::enumerate(resultShardings))
    if (failed(visit(sharding, /*result=*/true, i)))
      return failure();

  // A grid axis splits at most one loop.
  SmallVector<GridAxis> used;
  for (ArrayRef<GridAxis> axes : option.shardingArray)
    for (GridAxis axis : axes) {
      if (llvm::is_contained(used, axis))
        return failure();
      used.push_back(axis);
    }
  option.empty = !annotated;
  return option;
}

/// attn.attention's loop sharding (collectLoopSharding): only a broadcast
/// bias dim follows no loop.
static FailureOr<ShardingOption>
collectLoopSharding(AttentionOp op, ArrayRef<Sharding> operandShardings,
                    ArrayRef<Sharding> resultShardings, bool strict,
                    bool *reported = nullptr) {
  return collectLoopSharding(
      op, kNumLoops,
      [&](bool result, unsigned i) {
        return result ? getResultLoops(op, i) : getOperandLoops(op, i);
      },
      [](bool, unsigned, unsigned dim) {
        return ("cannot split dimension " + Twine(dim) +
                " of a bias operand that is broadcast (size 1) there")
            .str();
      },
      operandShardings, resultShardings, strict, reported);
}

/// Why `op` cannot split `loop` along the grid axes `axes` (empty when it
/// can): only batch, heads, query rows and keys split, each into equal parts
/// of static size, heads into whole GQA groups.
static std::string whyUnsplittable(AttentionOp op, int loop,
                                   ArrayRef<GridAxis> axes,
                                   shard::GridOp grid) {
  std::string reason;
  llvm::raw_string_ostream os(reason);
  AttentionShape shape = op.getAttentionShape();
  int64_t sizes[kNumLoops] = {shape.batch,       shape.kvHeads,
                              shape.querySeqLen, shape.keySeqLen,
                              shape.headDim,     shape.valueHeadDim};
  int64_t devices = shard::collectiveProcessGroupSize(axes, grid);
  int64_t size = sizes[loop];
  if (loop == kHeadDim || loop == kValueHeadDim)
    os << "cannot split the " << getLoopName(loop)
       << ": attention is sharded over batch, heads, query sequence or key "
          "sequence";
  else if (ShapedType::isDynamic(devices))
    os << "cannot split the " << getLoopName(loop)
       << " over grid axes of dynamic size";
  else if (ShapedType::isDynamic(size))
    os << "cannot split the " << getLoopName(loop)
       << " of dynamic size: the shards must be of static size";
  else if (size % devices != 0 && loop == kHead)
    os << "cannot split " << shape.queryHeads << " query heads over "
       << shape.kvHeads << " key/value heads into " << devices
       << " parts: each part must hold whole groups of "
       << shape.queryHeads / shape.kvHeads
       << " query heads, so the key/value head count must be divisible by "
          "the number of devices";
  else if (size % devices != 0)
    os << "cannot split the " << getLoopName(loop) << " of size " << size
       << " into " << devices << " equal parts";
  return reason;
}

//===----------------------------------------------------------------------===//
// Partitioning
//===----------------------------------------------------------------------===//

/// An f32 tensor of the shape of `like` (static sizes from its type, dynamic
/// ones read from it).
static Value emptyLike(ImplicitLocOpBuilder &b, Value like, Type elt) {
  auto type = cast<RankedTensorType>(like.getType());
  SmallVector<Value> dyn;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dyn.push_back(tensor::DimOp::create(b, like, d));
  return tensor::EmptyOp::create(b, type.getShape(), elt, dyn);
}

/// An element-wise linalg.generic over the iteration space of `outs`' first
/// tensor, its inputs read through `maps`, `body` giving one value per
/// output.
static SmallVector<Value> elementwise(
    ImplicitLocOpBuilder &b, ValueRange ins, ArrayRef<AffineMap> maps,
    ValueRange outs,
    function_ref<SmallVector<Value>(OpBuilder &, Location, ValueRange)> body) {
  unsigned rank = cast<RankedTensorType>(outs[0].getType()).getRank();
  SmallVector<AffineMap> all(maps);
  all.append(outs.size(),
             AffineMap::getMultiDimIdentityMap(rank, b.getContext()));
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, TypeRange(outs), ins, outs, all, iterators,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        linalg::YieldOp::create(nb, nl, body(nb, nl, args));
      });
  return SmallVector<Value>(generic.getResults());
}

/// The finite maximum m̂ of the rows' LSE maxima `m` and the sinks `sink`
/// (null without sinks): -inf (no key on any device, no sink) becomes 0,
/// so that exp(x - m̂) is 0, never NaN, for x = -inf.
static Value finiteMax(OpBuilder &b, Location loc, Value m, Value sink) {
  if (sink)
    m = arith::MaximumFOp::create(b, loc, m, sink);
  Value ninf = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(-INFINITY));
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  Value empty =
      arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, m, ninf);
  return arith::SelectOp::create(b, loc, empty, zero, m);
}

/// Merges the partial results of devices that each attended to one block of
/// the keys: `out` [.., Dv] (in the op's layout) and `lse` [B, Hq, Sq] of
/// this device, `sinks` [Hq] (null without sinks), reduced over the grid
/// axes `axes`. With lse_r the LSE of device r's block,
///
///   1. m    = max_r lse_r                         (all_reduce max)
///   2. m̂    = max(m, sink), -inf -> 0;  w_r = exp(lse_r - m̂)
///   3. l    = sum_r w_r + exp(sink - m̂)           (all_reduce sum)
///   4. acc  = sum_r w_r · O_r                     (all_reduce sum)
///   5. lse  = m̂ + log l;  O = acc / l (0 where l = 0)
///
/// so that lse = log sum_r exp(lse_r) (with the sink) and O = sum_r
/// exp(lse_r - lse) O_r. A device whose block admits no key of a row has
/// lse_r = -inf and O_r = 0 there, and contributes nothing; a row no device
/// admits (and no sink) gets O = 0 and lse = -inf, never NaN. The merge is
/// in f32 whatever the element type.
static std::pair<Value, Value>
mergeKeyShards(ImplicitLocOpBuilder &b, StringRef grid, ArrayRef<GridAxis> axes,
               Layout layout, Value out, Value lse, Value sinks) {
  MLIRContext *ctx = b.getContext();
  Type f32 = b.getF32Type();
  Type elt = cast<RankedTensorType>(out.getType()).getElementType();
  AffineExpr d0, d1, d2, d3;
  bindDims(ctx, d0, d1, d2, d3);
  AffineMap id3 = AffineMap::getMultiDimIdentityMap(3, ctx);
  AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  AffineMap sinkMap = AffineMap::get(3, 0, {d1}, ctx);
  // The row (b, h, i) of an element of O in the layout.
  AffineMap rowMap = layout == Layout::BHSD
                         ? AffineMap::get(4, 0, {d0, d1, d2}, ctx)
                         : AffineMap::get(4, 0, {d0, d2, d1}, ctx);

  // Step 1.
  Value m = shard::AllReduceOp::create(b, lse.getType(), grid, axes, lse,
                                       shard::ReductionKind::Max);
  // Step 2.
  SmallVector<Value> ins = {lse, m};
  SmallVector<AffineMap> maps = {id3, id3};
  if (sinks) {
    ins.push_back(sinks);
    maps.push_back(sinkMap);
  }
  auto sinkOf = [&](OpBuilder &nb, Location nl, ValueRange a) -> Value {
    if (!sinks)
      return Value();
    Value s = a[2];
    return s.getType() == f32 ? s : arith::ExtFOp::create(nb, nl, f32, s);
  };
  Value w =
      elementwise(b, ins, maps, {emptyLike(b, lse, f32)},
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    Value mh = finiteMax(nb, nl, a[1], sinkOf(nb, nl, a));
                    Value x = arith::SubFOp::create(nb, nl, a[0], mh);
                    return SmallVector<Value>{math::ExpOp::create(nb, nl, x)};
                  })[0];
  // Step 3 (the devices' part).
  Value l = shard::AllReduceOp::create(b, w.getType(), grid, axes, w,
                                       shard::ReductionKind::Sum);
  // Step 4.
  Value acc = elementwise(
      b, {out, w}, {id4, rowMap}, {emptyLike(b, out, f32)},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value o = a[0].getType() == f32
                      ? a[0]
                      : arith::ExtFOp::create(nb, nl, f32, a[0]);
        return SmallVector<Value>{arith::MulFOp::create(nb, nl, o, a[1])};
      })[0];
  acc = shard::AllReduceOp::create(b, acc.getType(), grid, axes, acc,
                                   shard::ReductionKind::Sum);
  // Steps 3 (the sink's part) and 5: the LSE and the total weight.
  ins = {l, m};
  maps = {id3, id3};
  if (sinks) {
    ins.push_back(sinks);
    maps.push_back(sinkMap);
  }
  SmallVector<Value> lseAndTotal = elementwise(
      b, ins, maps, {emptyLike(b, lse, f32), emptyLike(b, lse, f32)},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value sink = sinkOf(nb, nl, a);
        Value mh = finiteMax(nb, nl, a[1], sink);
        Value total = a[0];
        if (sink)
          total = arith::AddFOp::create(
              nb, nl, total,
              math::ExpOp::create(nb, nl,
                                  arith::SubFOp::create(nb, nl, sink, mh)));
        Value lseRow = arith::AddFOp::create(
            nb, nl, mh, math::LogOp::create(nb, nl, total));
        return SmallVector<Value>{lseRow, total};
      });
  // Step 5: the output.
  Value merged = elementwise(
      b, {acc, lseAndTotal[1]}, {id4, rowMap}, {emptyLike(b, out, elt)},
      [&](OpBuilder &nb, Location nl, ValueRange a) {
        Value zero = arith::ConstantOp::create(nb, nl, nb.getF32FloatAttr(0));
        Value some = arith::CmpFOp::create(nb, nl, arith::CmpFPredicate::OGT,
                                           a[1], zero);
        Value o = arith::SelectOp::create(
            nb, nl, some, arith::DivFOp::create(nb, nl, a[0], a[1]), zero);
        if (elt != f32)
          o = arith::TruncFOp::create(nb, nl, elt, o);
        return SmallVector<Value>{o};
      })[0];
  return {merged, lseAndTotal[0]};
}

/// The position offset of this device's block of query rows and keys: with
/// the device's block of Sq' rows at row qo and of Sk' keys at key ko, its
/// local row i is global row qo + i at key position qo + i + Sk - Sq, and
/// local key j is global key ko + j, so the local problem (rows at
/// i + Sk' - Sq') needs the offset (qo + Sq' - Sq) + (Sk - Sk' - ko).
static Value buildPositionOffset(ImplicitLocOpBuilder &b, shard::GridOp grid,
                                 AttentionOp op, const ShardingOption &option,
                                 Value given) {
  AttentionShape shape = op.getAttentionShape();
  Value offset = given;
  auto add = [&](Value term) {
    offset = offset ? arith::AddIOp::create(b, offset, term) : term;
  };
  auto block = [&](int loop, int64_t size, int64_t sign) {
    ArrayRef<GridAxis> axes = getLoopAxes(option, loop);
    if (axes.empty())
      return;
    int64_t local = size / shard::collectiveProcessGroupSize(axes, grid);
    // (block start) and the constant part, with the sign of the term.
    Value index = shard::createProcessLinearIndex(grid.getSymName(), axes, b);
    Value start = arith::MulIOp::create(
        b, index, arith::ConstantIndexOp::create(b, local));
    Value shift = arith::ConstantIndexOp::create(b, sign * (local - size));
    add(sign > 0 ? Value(arith::AddIOp::create(b, start, shift))
                 : Value(arith::SubIOp::create(b, shift, start)));
  };
  block(kQueryRow, shape.querySeqLen, +1);
  block(kKey, shape.keySeqLen, -1);
  return offset;
}

/// Whether `sharding` splits the dims of a tensor as `expected` does (absent
/// trailing entries mean "not split").
static bool sameSplit(Sharding sharding, Sharding expected) {
  if (!sharding)
    return !expected || llvm::all_of(expected.getSplitAxes(),
                                     [](auto axes) { return axes.empty(); });
  ArrayRef<shard::GridAxesAttr> a = sharding.getSplitAxes(),
                                e = expected.getSplitAxes();
  for (size_t d = 0; d < std::max(a.size(), e.size()); ++d) {
    ArrayRef<GridAxis> x =
        d < a.size() ? a[d].asArrayRef() : ArrayRef<GridAxis>();
    ArrayRef<GridAxis> y =
        d < e.size() ? e[d].asArrayRef() : ArrayRef<GridAxis>();
    if (x != y)
      return false;
  }
  return sharding.getStaticHaloSizes().empty() &&
         sharding.getStaticShardedDimsOffsets().empty() &&
         sharding.getDynamicHaloSizes().empty() &&
         sharding.getDynamicShardedDimsOffsets().empty();
}

//===----------------------------------------------------------------------===//
// The external model
//===----------------------------------------------------------------------===//

namespace {

/// attn.attention's ShardingInterface (see the file comment).
struct AttentionShardingModel
    : public shard::ShardingInterface::ExternalModel<AttentionShardingModel,
                                                     AttentionOp> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *) const {
    using utils::IteratorType;
    return {IteratorType::parallel,  IteratorType::parallel,
            IteratorType::parallel,  IteratorType::reduction,
            IteratorType::reduction, IteratorType::parallel};
  }

  /// The keys reduce by the log-sum-exp merge (generic), the head dim by a
  /// sum.
  SmallVector<shard::ReductionKind>
  getReductionLoopIteratorKinds(Operation *) const {
    return {shard::ReductionKind::Generic, shard::ReductionKind::Sum};
  }

  /// K's and V's head is h floordiv G: the maps exist when G is static.
  SmallVector<AffineMap> getIndexingMaps(Operation *operation) const {
    auto op = cast<AttentionOp>(operation);
    std::optional<int64_t> group = op.getGroupSize();
    if (!group)
      return {};
    MLIRContext *ctx = op.getContext();
    auto map = [&](Role role, ArrayRef<int> loops) {
      SmallVector<AffineExpr> exprs;
      bool kv =
          role == Role::Key || role == Role::Value || role == Role::Descale;
      for (int loop : loops) {
        if (loop == kNone) {
          exprs.push_back(getAffineConstantExpr(0, ctx));
          continue;
        }
        AffineExpr e = getAffineDimExpr(loop, ctx);
        exprs.push_back(kv && loop == kHead ? e.floorDiv(*group) : e);
      }
      return AffineMap::get(kNumLoops, 0, exprs, ctx);
    };
    SmallVector<AffineMap> maps;
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      maps.push_back(map(getOperandRole(op, i), getOperandLoops(op, i)));
    for (unsigned i = 0; i < op->getNumResults(); ++i)
      maps.push_back(
          map(i == 0 ? Role::Output : Role::Lse, getResultLoops(op, i)));
    return maps;
  }

  /// The split the annotations ask for, less the loops that cannot be split
  /// so (each with a warning at the op saying why): propagation then
  /// reshards those operands whole, which is correct if slower.
  FailureOr<ShardingOption>
  getShardingOption(Operation *operation, ArrayRef<Sharding> operandShardings,
                    ArrayRef<Sharding> resultShardings) const {
    auto op = cast<AttentionOp>(operation);
    FailureOr<ShardingOption> option = collectLoopSharding(
        op, operandShardings, resultShardings, /*strict=*/false);
    if (failed(option) || option->empty)
      return option;
    SymbolTableCollection symbolTable;
    shard::GridOp grid = shard::getGridOrNull(op, option->grid, symbolTable);
    if (!grid) {
      op.emitWarning() << "sharding refers to " << option->grid
                       << ", which is not a shard.grid";
      return failure();
    }
    for (int loop = 0; loop < kNumLoops; ++loop) {
      SmallVector<GridAxis> &axes = option->shardingArray[loop];
      if (axes.empty())
        continue;
      std::string reason = whyUnsplittable(op, loop, axes, grid);
      if (reason.empty())
        continue;
      op.emitWarning() << reason << "; the " << getLoopName(loop)
                       << " stays whole";
      axes.clear();
    }
    shard::removeTrailingEmptySubArray(option->shardingArray);
    return option;
  }

  FailureOr<std::vector<Sharding>>
  getShardingAnnotations(Operation *operation,
                         const ShardingOption &option) const {
    auto op = cast<AttentionOp>(operation);
    MLIRContext *ctx = op.getContext();
    std::vector<Sharding> shardings;
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      shardings.push_back(
          isa<RankedTensorType>(op->getOperand(i).getType())
              ? getTensorSharding(ctx, option, getOperandLoops(op, i))
              : Sharding());
    for (unsigned i = 0; i < op->getNumResults(); ++i)
      shardings.push_back(
          getTensorSharding(ctx, option, getResultLoops(op, i)));
    return shardings;
  }

  LogicalResult addShardingAnnotations(Operation *operation, OpBuilder &b,
                                       const ShardingOption &option) const {
    FailureOr<std::vector<Sharding>> shardings =
        getShardingAnnotations(operation, option);
    if (failed(shardings))
      return failure();
    unsigned numOperands = operation->getNumOperands();
    for (OpResult r : operation->getResults()) {
      OpBuilder::InsertionGuard guard(b);
      shard::maybeInsertTargetShardingAnnotation(
          (*shardings)[numOperands + r.getResultNumber()], r, b);
    }
    for (OpOperand &operand : operation->getOpOperands()) {
      Sharding sharding = (*shardings)[operand.getOperandNumber()];
      if (!sharding)
        continue;
      OpBuilder::InsertionGuard guard(b);
      shard::maybeInsertSourceShardingAnnotation(sharding, operand, b);
    }
    return success();
  }

  /// Batch, head and query-row splits clone the op on the local shards
  /// (with a position offset for a split of the rows of a masked op); a
  /// key split runs the op on the local keys, with its LSE and without the
  /// sinks, and merges the devices' results (mergeKeyShards).
  LogicalResult
  partition(Operation *operation, ArrayRef<Value> partitionedOperands,
            ArrayRef<Sharding> operandShardings,
            ArrayRef<Sharding> resultShardings, IRMapping &partitionMap,
            SymbolTableCollection &symbolTable, OpBuilder &builder) const {
    auto op = cast<AttentionOp>(operation);
    bool reported = false;
    FailureOr<ShardingOption> option = collectLoopSharding(
        op, operandShardings, resultShardings, /*strict=*/true, &reported);
    if (failed(option) && reported)
      return failure();
    if (failed(option))
      return op.emitOpError("has operand and result shardings that split "
                            "its loops inconsistently");
    shard::GridOp grid =
        option->empty ? shard::GridOp()
                      : shard::getGridOrNull(op, option->grid, symbolTable);
    if (!option->empty && !grid)
      return op.emitOpError() << "sharding refers to " << option->grid
                              << ", which is not a shard.grid";
    for (int loop = 0; loop < kNumLoops && grid; ++loop) {
      ArrayRef<GridAxis> axes = getLoopAxes(*option, loop);
      std::string reason =
          axes.empty() ? "" : whyUnsplittable(op, loop, axes, grid);
      if (!reason.empty())
        return op.emitOpError(reason);
    }
    if (option->empty) {
      shard::partitionFullyReplicatedOperation(
          *op, partitionedOperands, operandShardings, resultShardings,
          partitionMap, symbolTable, builder);
      return success();
    }
    // Every operand and result must be split as the loops are.
    FailureOr<std::vector<Sharding>> expected =
        getShardingAnnotations(op, *option);
    for (auto [i, sharding] : llvm::enumerate(operandShardings))
      if (isa<RankedTensorType>(op->getOperand(i).getType()) &&
          !sameSplit(sharding, (*expected)[i]))
        return op.emitOpError()
               << "operand " << i << " is not split as the loops are ("
               << "expected the sharding sharding-propagation gives)";
    for (auto [i, sharding] : llvm::enumerate(resultShardings))
      if (!sameSplit(sharding, (*expected)[op->getNumOperands() + i]))
        return op.emitOpError()
               << "result " << i << " is not split as the loops are ("
               << "expected the sharding sharding-propagation gives)";

    ImplicitLocOpBuilder b(op.getLoc(), builder);
    IRMapping local;
    for (auto [operand, value] :
         llvm::zip_equal(op->getOperands(), partitionedOperands))
      local.map(operand, value);

    Value offset =
        op.getPositionOffset() ? local.lookup(op.getPositionOffset()) : Value();
    if (!op.getMaskOrNone().isNone())
      offset = buildPositionOffset(b, grid, op, *option, offset);

    ArrayRef<GridAxis> keyAxes = getLoopAxes(*option, kKey);
    bool keysSplit = !keyAxes.empty();
    auto outType = cast<RankedTensorType>(
        shard::shardType(op.getOutput().getType(), grid, resultShardings[0]));
    // The LSE: the op's, or one the merge of a key split needs.
    auto lseShape = [&]() -> RankedTensorType {
      SmallVector<int64_t> shape = {
          outType.getDimSize(0),
          outType.getDimSize(getHeadDimPos(op.getLayout())),
          outType.getDimSize(getSeqDimPos(op.getLayout()))};
      return RankedTensorType::get(shape, b.getF32Type());
    };
    RankedTensorType lseType =
        op.getLse() || keysSplit ? lseShape() : RankedTensorType();
    Value sinks = op.getSinks() ? local.lookup(op.getSinks()) : Value();
    Value bias = op.getBias() ? local.lookup(op.getBias()) : Value();
    auto partial = AttentionOp::create(
        b, outType, lseType, local.lookup(op.getQuery()),
        local.lookup(op.getKey()), local.lookup(op.getValue()), bias,
        keysSplit ? Value() : sinks, offset,
        llvm::map_to_vector(op.getDescale(),
                            [&](Value d) { return local.lookup(d); }),
        op.getLayout(), op.getMaskAttr(), op.getScaleAttr(),
        op.getSoftcapAttr());

    Value out = partial.getOutput(), lse = partial.getLse();
    if (keysSplit)
      std::tie(out, lse) = mergeKeyShards(b, grid.getSymName(), keyAxes,
                                          op.getLayout(), out, lse, sinks);
    partitionMap.map(op.getOutput(), out);
    if (op.getLse())
      partitionMap.map(op.getLse(), lse);
    return success();
  }
};

} // namespace

//===----------------------------------------------------------------------===//
// attn.paged_attention and attn.gated_delta_rule: batch and head splits
//===----------------------------------------------------------------------===//

/// The two loops these ops split: batch and heads (the value heads of the
/// gated delta rule, the query heads of paged attention). Both are
/// parallel, so each device runs the op on its shards and nothing is
/// communicated. Everything else stays whole: the gated delta rule's tokens
/// are a recurrence (a split would hand the state from device to device), a
/// paged cache's pages are shared by every sequence of the batch, head dims
/// are contracted.
namespace {
enum HeadLoop : int { kSplitBatch, kSplitHead, kNumHeadLoops };
} // namespace

/// The loop each dim of operand i (or result i, with `result`) of a paged
/// or gated delta op follows: kSplitBatch, kSplitHead or kNone.
static SmallVector<int> getHeadLoops(Operation *op, bool result, unsigned i) {
  const int B = kSplitBatch, H = kSplitHead, X = kNone;
  if (isa<GatedDeltaRuleOp>(op)) {
    // Results: output [B, T, Hv, Dv], final_state [B, Hv, Dk, Dv].
    // Operands: q, k [B, T, Hk, Dk], v [B, T, Hv, Dv], gate [B, T, Hv(, Dk)],
    // beta [B, T, Hv], initial_state [B, Hv, Dk, Dv].
    if (result)
      return i == 0 ? SmallVector<int>{B, X, H, X}
                    : SmallVector<int>{B, H, X, X};
    if (i == 5)
      return {B, H, X, X};
    SmallVector<int> loops = {B, X, H};
    loops.resize(cast<RankedTensorType>(op->getOperand(i).getType()).getRank(),
                 X);
    return loops;
  }
  auto paged = cast<PagedAttentionOp>(op);
  // Results: output [B, Sq, Hq, Dv], lse [B, Hq, Sq]. Operands: q
  // [B, Sq, Hq, D], the caches [P, page, Hkv, D] (nhd) or [P, Hkv, page, D]
  // (hnd), block_table [B, pages], seq_lens [B], sinks [Hq].
  if (result)
    return i == 0 ? SmallVector<int>{B, X, H, X} : SmallVector<int>{B, H, X};
  switch (i) {
  case 0:
    return {B, X, H, X};
  case 1:
  case 2:
    return paged.getCacheLayout() == CacheLayout::NHD
               ? SmallVector<int>{X, X, H, X}
               : SmallVector<int>{X, H, X, X};
  case 3:
    return {B, X};
  case 4:
    return {B};
  default:
    return {H};
  }
}

/// The batch size and the number of heads a head split must divide: the
/// key heads (gated delta) or KV heads (paged), so that each device keeps
/// whole groups of the heads that share one.
static std::pair<int64_t, int64_t> getHeadLoopSizes(Operation *op) {
  auto dim = [&](Value v, unsigned d) {
    return cast<RankedTensorType>(v.getType()).getDimSize(d);
  };
  if (auto gated = dyn_cast<GatedDeltaRuleOp>(op))
    return {dim(gated.getOutput(), 0), dim(gated.getKey(), 2)};
  auto paged = cast<PagedAttentionOp>(op);
  unsigned headDim = paged.getCacheLayout() == CacheLayout::NHD ? 2 : 1;
  return {dim(paged.getOutput(), 0), dim(paged.getKeyCache(), headDim)};
}

/// Why `op` cannot split `loop` over `axes` (empty when it can).
static std::string whyHeadLoopUnsplittable(Operation *op, int loop,
                                           ArrayRef<GridAxis> axes,
                                           shard::GridOp grid) {
  auto [batch, groups] = getHeadLoopSizes(op);
  int64_t size = loop == kSplitBatch ? batch : groups;
  int64_t devices = shard::collectiveProcessGroupSize(axes, grid);
  StringRef what = loop == kSplitBatch ? "batch" : "heads";
  StringRef groupName = isa<GatedDeltaRuleOp>(op) ? "key" : "key/value";
  if (ShapedType::isDynamic(devices))
    return ("cannot split the " + what + " over grid axes of dynamic size")
        .str();
  if (ShapedType::isDynamic(size))
    return ("cannot split the " + what +
            " of dynamic size: the shards must be of static size")
        .str();
  if (size % devices == 0)
    return "";
  if (loop == kSplitBatch)
    return ("cannot split the batch of size " + Twine(size) + " into " +
            Twine(devices) + " equal parts")
        .str();
  return ("cannot split " + Twine(size) + " " + groupName + " heads into " +
          Twine(devices) +
          " parts: each part must hold whole groups of the heads that share "
          "one")
      .str();
}

namespace {

/// The ShardingInterface of attn.paged_attention and attn.gated_delta_rule
/// (see HeadLoop): batch and head splits, no communication.
template <typename OpTy>
struct HeadShardingModel
    : public shard::ShardingInterface::ExternalModel<HeadShardingModel<OpTy>,
                                                     OpTy> {
  SmallVector<utils::IteratorType> getLoopIteratorTypes(Operation *) const {
    return {utils::IteratorType::parallel, utils::IteratorType::parallel};
  }

  /// No affine maps: the tensors' other dims follow no loop of this
  /// iteration space (getShardingOption and partition below do not need
  /// them).
  SmallVector<AffineMap> getIndexingMaps(Operation *) const { return {}; }

  static FailureOr<ShardingOption> collect(Operation *op,
                                           ArrayRef<Sharding> operandShardings,
                                           ArrayRef<Sharding> resultShardings,
                                           bool strict,
                                           bool *reported = nullptr) {
    return collectLoopSharding(
        op, kNumHeadLoops,
        [&](bool result, unsigned i) { return getHeadLoops(op, result, i); },
        [&](bool result, unsigned i, unsigned dim) {
          return ("cannot split dimension " + Twine(dim) + " of " +
                  (result ? "result " : "operand ") + Twine(i) + ": " +
                  op->getName().getStringRef() +
                  " is sharded over batch and heads only")
              .str();
        },
        operandShardings, resultShardings, strict, reported);
  }

  FailureOr<ShardingOption>
  getShardingOption(Operation *op, ArrayRef<Sharding> operandShardings,
                    ArrayRef<Sharding> resultShardings) const {
    FailureOr<ShardingOption> option =
        collect(op, operandShardings, resultShardings, /*strict=*/false);
    if (failed(option) || option->empty)
      return option;
    SymbolTableCollection symbolTable;
    shard::GridOp grid = shard::getGridOrNull(op, option->grid, symbolTable);
    if (!grid) {
      op->emitWarning() << "sharding refers to " << option->grid
                        << ", which is not a shard.grid";
      return failure();
    }
    for (int loop = 0; loop < kNumHeadLoops; ++loop) {
      SmallVector<GridAxis> &axes = option->shardingArray[loop];
      std::string reason =
          axes.empty() ? "" : whyHeadLoopUnsplittable(op, loop, axes, grid);
      if (reason.empty())
        continue;
      op->emitWarning() << reason << "; it stays whole";
      axes.clear();
    }
    shard::removeTrailingEmptySubArray(option->shardingArray);
    return option;
  }

  FailureOr<std::vector<Sharding>>
  getShardingAnnotations(Operation *op, const ShardingOption &option) const {
    std::vector<Sharding> shardings;
    for (unsigned i = 0; i < op->getNumOperands(); ++i)
      shardings.push_back(getTensorSharding(op->getContext(), option,
                                            getHeadLoops(op, false, i)));
    for (unsigned i = 0; i < op->getNumResults(); ++i)
      shardings.push_back(getTensorSharding(op->getContext(), option,
                                            getHeadLoops(op, true, i)));
    return shardings;
  }

  LogicalResult addShardingAnnotations(Operation *op, OpBuilder &b,
                                       const ShardingOption &option) const {
    FailureOr<std::vector<Sharding>> shardings =
        getShardingAnnotations(op, option);
    if (failed(shardings))
      return failure();
    unsigned numOperands = op->getNumOperands();
    for (OpResult r : op->getResults()) {
      OpBuilder::InsertionGuard guard(b);
      shard::maybeInsertTargetShardingAnnotation(
          (*shardings)[numOperands + r.getResultNumber()], r, b);
    }
    for (OpOperand &operand : op->getOpOperands()) {
      OpBuilder::InsertionGuard guard(b);
      shard::maybeInsertSourceShardingAnnotation(
          (*shardings)[operand.getOperandNumber()], operand, b);
    }
    return success();
  }

  /// The op on the local shards: every operand and result must be split
  /// as the loops are (as sharding-propagation leaves them).
  LogicalResult partition(Operation *op, ArrayRef<Value> partitionedOperands,
                          ArrayRef<Sharding> operandShardings,
                          ArrayRef<Sharding> resultShardings,
                          IRMapping &partitionMap,
                          SymbolTableCollection &symbolTable,
                          OpBuilder &builder) const {
    bool reported = false;
    FailureOr<ShardingOption> option = collect(
        op, operandShardings, resultShardings, /*strict=*/true, &reported);
    if (failed(option) && reported)
      return failure();
    if (failed(option))
      return op->emitOpError("has operand and result shardings that split "
                             "its loops inconsistently");
    if (option->empty) {
      shard::partitionFullyReplicatedOperation(
          *op, partitionedOperands, operandShardings, resultShardings,
          partitionMap, symbolTable, builder);
      return success();
    }
    shard::GridOp grid = shard::getGridOrNull(op, option->grid, symbolTable);
    if (!grid)
      return op->emitOpError() << "sharding refers to " << option->grid
                               << ", which is not a shard.grid";
    for (int loop = 0; loop < kNumHeadLoops; ++loop) {
      ArrayRef<GridAxis> axes = getLoopAxes(*option, loop);
      std::string reason =
          axes.empty() ? "" : whyHeadLoopUnsplittable(op, loop, axes, grid);
      if (!reason.empty())
        return op->emitOpError(reason);
    }
    FailureOr<std::vector<Sharding>> expected =
        getShardingAnnotations(op, *option);
    for (auto [i, sharding] : llvm::enumerate(operandShardings))
      if (!sameSplit(sharding, (*expected)[i]))
        return op->emitOpError()
               << "operand " << i << " is not split as the loops are ("
               << "expected the sharding sharding-propagation gives)";
    for (auto [i, sharding] : llvm::enumerate(resultShardings))
      if (!sameSplit(sharding, (*expected)[op->getNumOperands() + i]))
        return op->emitOpError()
               << "result " << i << " is not split as the loops are ("
               << "expected the sharding sharding-propagation gives)";
    IRMapping local;
    for (auto [operand, value] :
         llvm::zip_equal(op->getOperands(), partitionedOperands))
      local.map(operand, value);
    Operation *clone = builder.clone(*op, local);
    for (auto [result, sharding] :
         llvm::zip_equal(clone->getResults(), resultShardings))
      result.setType(shard::shardType(result.getType(), grid, sharding));
    for (auto [result, value] :
         llvm::zip_equal(op->getResults(), clone->getResults()))
      partitionMap.map(result, value);
    return success();
  }
};

} // namespace

void mlir::attn::registerShardingInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, AttnDialect *) {
    AttentionOp::attachInterface<AttentionShardingModel>(*ctx);
    PagedAttentionOp::attachInterface<HeadShardingModel<PagedAttentionOp>>(
        *ctx);
    GatedDeltaRuleOp::attachInterface<HeadShardingModel<GatedDeltaRuleOp>>(
        *ctx);
    ctx->loadDialect<shard::ShardDialect, linalg::LinalgDialect,
                     arith::ArithDialect, math::MathDialect,
                     tensor::TensorDialect>();
  });
}
