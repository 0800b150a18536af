//===- AttnFuseMatch.cpp - find unfused attention -------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The matcher anchors on the P·V contraction and reads backwards:
//
//   1. P·V: a contraction whose LHS P is [batch..., i, j] and RHS V is
//      [batch..., j, dv] (linalg contraction or tosa.matmul).
//   2. P as a scalar expression over the "scores space" [batch..., i, j]
//      (ElementwiseExpr.h), possibly seen through a collapse_shape that
//      merges batch dims: softmax over j, in one of its spellings, of the
//      logits L.
//   3. L peeled from the outside in: masks and bias (outermost), softcap,
//      scale, down to the Q·Kᵀ contraction result (possibly through an
//      expand_shape that splits batch dims). Masks are decided by the exact
//      analysis of MaskAnalysis.h.
//   4. Q, K and V traced back through transposes, reshapes, casts, a scale
//      on Q and the repeat_kv broadcast to their sources, each source dim
//      labelled by its role (batch part, row, column, unit).
//   5. Consistency of the batch factorization across Q, K, V and the output;
//      the GQA group from the repeat.
//   6. The scores used only inside the attention; when they are not, in a
//      training graph, the backward that takes the rest of their uses
//      (AttnFuseBackward.cpp), or no fusion at all.
//
//===----------------------------------------------------------------------===//

#include "AttnFuseMatch.h"

#include "attn/Transforms/Transforms.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Matchers.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fuse;

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

/// Recognizes linalg contractions (named or generic, any indexing maps) and
/// tosa.matmul with one m, n and k dim. Sizes may be dynamic.
FailureOr<Contraction> fuse::getContraction(Operation *op) {
  Contraction c;
  c.op = op;
  if (auto mm = dyn_cast<tosa::MatMulOp>(op)) {
    auto a = dyn_cast<RankedTensorType>(mm.getA().getType());
    auto b = dyn_cast<RankedTensorType>(mm.getB().getType());
    if (!a || !b)
      return failure();
    // Zero points must be zero for the plain product.
    for (Value zp : {mm.getAZp(), mm.getBZp()}) {
      DenseElementsAttr attr;
      if (!matchPattern(zp, m_Constant(&attr)) || !attr.isSplat())
        return failure();
      if (isa<FloatType>(attr.getElementType())
              ? !attr.getSplatValue<APFloat>().isZero()
              : !attr.getSplatValue<APInt>().isZero())
        return failure();
    }
    c.lhs = mm.getA();
    c.rhs = mm.getB();
    c.result = mm.getResult();
    c.numBatch = 1;
    c.lhsDims = {{DimLabel::Batch, {0}, a.getDimSize(0)},
                 {DimLabel::Row, {}, a.getDimSize(1)},
                 {DimLabel::Col, {}, a.getDimSize(2)}};
    c.rhsDims = {{DimLabel::Batch, {0}, b.getDimSize(0)},
                 {DimLabel::Col, {}, b.getDimSize(1)},
                 {DimLabel::Row, {}, b.getDimSize(2)}};
    return c;
  }
  auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
  if (!linalgOp || !linalgOp.hasPureTensorSemantics() ||
      linalgOp.getNumDpsInputs() != 2 || linalgOp.getNumDpsInits() != 1 ||
      !linalgOp.hasOnlyProjectedPermutations() ||
      !linalg::isaContractionOpInterface(linalgOp))
    return failure();
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(linalgOp);
  if (failed(dims) || dims->m.size() != 1 || dims->n.size() != 1 ||
      dims->k.size() != 1)
    return failure();
  // The output is [batch..., m, n] in this order.
  AffineMap outMap =
      linalgOp.getMatchingIndexingMap(linalgOp.getDpsInitOperand(0));
  unsigned rank = outMap.getNumResults();
  if (rank != dims->batch.size() + 2 ||
      outMap.getDimPosition(rank - 2) != dims->m[0] ||
      outMap.getDimPosition(rank - 1) != dims->n[0])
    return failure();
  DenseMap<unsigned, int64_t> batchIndex;
  for (unsigned t = 0; t + 2 < rank; ++t)
    batchIndex[outMap.getDimPosition(t)] = t;
  auto label = [&](OpOperand *operand, unsigned rowDim,
                   Labels &labels) -> LogicalResult {
    auto type = dyn_cast<RankedTensorType>(operand->get().getType());
    if (!type)
      return failure();
    AffineMap map = linalgOp.getMatchingIndexingMap(operand);
    for (auto [pos, r] : llvm::enumerate(map.getResults())) {
      unsigned d = cast<AffineDimExpr>(r).getPosition();
      int64_t size = type.getDimSize(pos);
      if (batchIndex.count(d))
        labels.push_back({DimLabel::Batch, {batchIndex[d]}, size});
      else if (d == rowDim)
        labels.push_back({DimLabel::Row, {}, size});
      else if (d == dims->k[0])
        labels.push_back({DimLabel::Col, {}, size});
      else
        return failure();
    }
    return success();
  };
  c.lhs = linalgOp.getDpsInputOperand(0)->get();
  c.rhs = linalgOp.getDpsInputOperand(1)->get();
  c.result = op->getResult(0);
  c.numBatch = rank - 2;
  if (failed(label(linalgOp.getDpsInputOperand(0), dims->m[0], c.lhsDims)) ||
      failed(label(linalgOp.getDpsInputOperand(1), dims->n[0], c.rhsDims)))
    return failure();
  // The contraction must start from zero: an init that is not a zero fill
  // would add to the scores or the output.
  ExprBuilder initBuilder;
  Expr *init = initBuilder.build(linalgOp.getDpsInitOperand(0)->get());
  if (!init->isConst(0))
    return failure();
  // Every batch dim must appear in both operands (no broadcast contraction).
  for (Labels *labels : {&c.lhsDims, &c.rhsDims})
    if (llvm::count_if(*labels, [](const DimLabel &l) {
          return l.role == DimLabel::Batch;
        }) != c.numBatch)
      return failure();
  return c;
}

/// Batch reshape: `op` is an expand/collapse_shape that keeps the last two
/// dims as singleton groups. Returns the groups of the batch dims.
std::optional<SmallVector<ReassociationIndices>>
fuse::getBatchReshapeGroups(Operation *op) {
  std::optional<SmallVector<ReassociationIndices>> reshape =
      getReshapeReassociation(op);
  if (!reshape)
    return std::nullopt;
  SmallVector<ReassociationIndices> groups = std::move(*reshape);
  if (groups.size() < 2 || groups[groups.size() - 1].size() != 1 ||
      groups[groups.size() - 2].size() != 1)
    return std::nullopt;
  groups.resize(groups.size() - 2);
  return groups;
}

/// Space batch paths for batch groups: group g of size 1 -> [g]; otherwise
/// its members get [g, idx].
SmallVector<SmallVector<int64_t, 4>>
fuse::getGroupPaths(ArrayRef<ReassociationIndices> groups) {
  SmallVector<SmallVector<int64_t, 4>> paths;
  for (auto [g, group] : llvm::enumerate(groups))
    for (auto [idx, d] : llvm::enumerate(group))
      paths.push_back(group.size() == 1
                          ? SmallVector<int64_t, 4>{(int64_t)g}
                          : SmallVector<int64_t, 4>{(int64_t)g, (int64_t)idx});
  return paths;
}

//===----------------------------------------------------------------------===//
// Provably equal sizes
//===----------------------------------------------------------------------===//

namespace {
/// A size the IR names: dim `second` of tensor `first`, index value `first`
/// (`second` = -1), or the static size `second` (null `first`).
using SizeAtom = std::pair<Value, int64_t>;
} // namespace

/// Sizes that the op defining `atom` makes equal to it. Each edge is an
/// equality the op's semantics impose on well-defined programs: a
/// destination-style result has its init's shape, the operands of a linalg op
/// agree on each loop's size (what linalg's own shape inference assumes),
/// tensor.empty and expand_shape name their dynamic sizes, reshapes keep a
/// dim whose group has no other non-unit member, element-wise ops keep
/// shapes, tensor.dim reads one.
static void getEqualSizes(SizeAtom atom, SmallVectorImpl<SizeAtom> &out) {
  auto [v, d] = atom;
  if (!v)
    return;
  if (d < 0) {
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)))
      out.push_back({Value(), c.getSExtValue()});
    else if (auto dim = v.getDefiningOp<tensor::DimOp>())
      if (std::optional<int64_t> index = dim.getConstantIndex())
        out.push_back({dim.getSource(), *index});
    return;
  }
  auto type = cast<RankedTensorType>(v.getType());
  if (!type.isDynamicDim(d)) {
    out.push_back({Value(), type.getDimSize(d)});
    return;
  }
  auto result = dyn_cast<OpResult>(v);
  if (!result)
    return;
  Operation *op = result.getOwner();
  // The group of `d` (of a reshape's larger side) and whether all its other
  // members are static units.
  auto onlyNonUnit = [](ArrayRef<int64_t> group, RankedTensorType t,
                        int64_t d) {
    return llvm::all_of(
        group, [&](int64_t x) { return x == d || t.getDimSize(x) == 1; });
  };
  if (auto empty = dyn_cast<tensor::EmptyOp>(op)) {
    out.push_back({empty.getDynamicSize(d), -1});
  } else if (auto cast = dyn_cast<tensor::CastOp>(op)) {
    out.push_back({cast.getSource(), d});
  } else if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(op)) {
    ReassociationIndices group = collapse.getReassociationIndices()[d];
    for (int64_t s : group)
      if (onlyNonUnit(group, collapse.getSrcType(), s))
        out.push_back({collapse.getSrc(), s});
  } else if (auto expand = dyn_cast<tensor::ExpandShapeOp>(op)) {
    if (auto size = dyn_cast<Value>(expand.getMixedOutputShape()[d]))
      out.push_back({size, -1});
    for (auto [s, group] : llvm::enumerate(expand.getReassociationIndices()))
      if (llvm::is_contained(group, d) &&
          onlyNonUnit(group, expand.getResultType(), d))
        out.push_back({expand.getSrc(), (int64_t)s});
  } else if (auto dps = dyn_cast<DestinationStyleOpInterface>(op)) {
    out.push_back({dps.getTiedOpOperand(result)->get(), d});
    if (auto softmax = dyn_cast<linalg::SoftmaxOp>(op))
      out.push_back({softmax.getInput(), d});
    auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
    if (!linalgOp)
      return;
    auto loop = dyn_cast<AffineDimExpr>(
        linalgOp.getIndexingMapMatchingResult(result).getResult(d));
    if (!loop)
      return;
    for (OpOperand &operand : op->getOpOperands())
      if (isa<RankedTensorType>(operand.get().getType()))
        for (auto [pos, r] : llvm::enumerate(
                 linalgOp.getMatchingIndexingMap(&operand).getResults()))
          if (r == loop)
            out.push_back({operand.get(), (int64_t)pos});
  } else if (OpTrait::hasElementwiseMappableTraits(op)) {
    for (Value operand : op->getOperands())
      if (auto t = dyn_cast<RankedTensorType>(operand.getType());
          t && t.getRank() == type.getRank())
        out.push_back({operand, d});
  }
}

/// Whether the IR proves sizes `a` and `b` equal: some size is reached from
/// both through the equalities of getEqualSizes (a bounded search).
static bool areEqualSizes(SizeAtom a, SizeAtom b) {
  constexpr size_t kMaxAtoms = 256;
  auto closure = [&](SizeAtom start) {
    SetVector<SizeAtom> seen;
    seen.insert(start);
    SmallVector<SizeAtom> next;
    for (size_t n = 0; n < seen.size() && seen.size() < kMaxAtoms; ++n) {
      next.clear();
      getEqualSizes(seen[n], next);
      seen.insert(next.begin(), next.end());
    }
    return seen;
  };
  SetVector<SizeAtom> fromA = closure(a);
  return llvm::any_of(closure(b),
                      [&](SizeAtom x) { return fromA.contains(x); });
}

//===----------------------------------------------------------------------===//
// Tracing Q, K and V to their sources
//===----------------------------------------------------------------------===//

/// If `op` only moves data (a linalg.generic whose body yields its single
/// input), the input's indexing map; otherwise null.
AffineMap fuse::getCopyMap(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || op.getNumReductionLoops() != 0 ||
      !op.getBlock())
    return {};
  auto yield = cast<linalg::YieldOp>(op.getBlock()->getTerminator());
  if (yield.getNumOperands() != 1 ||
      yield.getOperand(0) != op.getBlock()->getArgument(0))
    return {};
  AffineMap out = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  if (!out.isIdentity())
    return {};
  return op.getMatchingIndexingMap(op.getDpsInputOperand(0));
}

namespace {
/// One step of a trace through one kind of op: `op` is not of that kind
/// (Skip), is of that kind but cannot be looked through (Stop), or its
/// input is `input` (Next, `t` updated).
struct TraceStep {
  enum Kind { Skip, Stop, Next } kind;
  Value input;
  static TraceStep skip() { return {Skip, {}}; }
  static TraceStep stop() { return {Stop, {}}; }
  static TraceStep next(Value input) { return {Next, input}; }
};
} // namespace

static RankedTensorType getTensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// Labels of a collapse's source: a batch label splits into path parts; a
/// row/col/unit label goes to the group's single non-unit member.
LogicalResult fuse::labelCollapseSource(ArrayRef<ReassociationIndices> groups,
                                        RankedTensorType st, const Labels &dims,
                                        Labels &next) {
  for (auto [r, group] : llvm::enumerate(groups)) {
    const DimLabel &l = dims[r];
    if (group.size() == 1) {
      next[group[0]] = l;
      continue;
    }
    if (l.role == DimLabel::Batch) {
      for (auto [idx, s] : llvm::enumerate(group)) {
        next[s] = l;
        next[s].path.push_back(idx);
        next[s].size = st.getDimSize(s);
      }
      continue;
    }
    unsigned nonUnit = 0;
    for (int64_t s : group)
      if (st.getDimSize(s) != 1) {
        next[s] = l;
        ++nonUnit;
      }
    if (nonUnit > 1)
      return failure();
  }
  return success();
}

/// Labels of an expand's source: each group keeps its one labelled member.
LogicalResult fuse::labelExpandSource(ArrayRef<ReassociationIndices> groups,
                                      RankedTensorType st, const Labels &dims,
                                      Labels &next) {
  for (auto [s, group] : llvm::enumerate(groups)) {
    SmallVector<DimLabel> kept;
    for (int64_t r : group)
      if (dims[r].role != DimLabel::Unit &&
          !(dims[r].role == DimLabel::Batch && dims[r].size == 1 &&
            group.size() > 1 && st.getDimSize(s) != 1))
        kept.push_back(dims[r]);
    if (kept.size() > 1)
      return failure();
    if (kept.empty())
      continue; // stays Unit
    next[s] = kept[0];
    next[s].size = st.getDimSize(s);
  }
  return success();
}

/// Reshapes: tensor reshapes (a dynamic dim counts as non-unit) and tosa
/// reshapes with static shapes.
static TraceStep traceReshape(Operation *def, Trace &t) {
  SmallVector<ReassociationIndices> groups;
  Value src;
  bool collapse = false;
  if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(def)) {
    std::optional<SmallVector<ReassociationIndices>> reshape =
        getReshapeReassociation(def);
    if (!reshape)
      return TraceStep::stop();
    src = def->getOperand(0);
    groups = std::move(*reshape);
    collapse = isa<tensor::CollapseShapeOp>(def);
  } else if (auto r = dyn_cast<tosa::ReshapeOp>(def)) {
    auto in = dyn_cast<RankedTensorType>(r.getInput1().getType());
    auto out = dyn_cast<RankedTensorType>(r.getType());
    if (!in || !out || !in.hasStaticShape() || !out.hasStaticShape())
      return TraceStep::stop();
    std::optional<SmallVector<ReassociationIndices>> re =
        getReassociationIndicesForReshape(in, out);
    if (!re)
      return TraceStep::stop();
    src = r.getInput1();
    groups = *re;
    collapse = in.getRank() > out.getRank();
  } else {
    return TraceStep::skip();
  }
  RankedTensorType st = getTensorType(src);
  Labels next(st.getRank(), DimLabel{DimLabel::Unit, {}, 1});
  if (failed(collapse ? labelCollapseSource(groups, st, t.dims, next)
                      : labelExpandSource(groups, st, t.dims, next)))
    return TraceStep::stop();
  t.dims = std::move(next);
  t.ops.push_back(def);
  return TraceStep::next(src);
}

/// Broadcasts read at `bmap`: the dims they add must be batch parts (a
/// repeat) or unit dims.
static TraceStep traceBroadcast(Operation *def, Value src, AffineMap bmap,
                                Trace &t) {
  RankedTensorType st = getTensorType(src);
  Labels next(st.getRank(), DimLabel{DimLabel::Unit, {}, 1});
  llvm::SmallBitVector read(t.dims.size());
  for (auto [s, r] : llvm::enumerate(bmap.getResults())) {
    if (auto d = dyn_cast<AffineDimExpr>(r)) {
      next[s] = t.dims[d.getPosition()];
      next[s].size = st.getDimSize(s);
      read.set(d.getPosition());
    } else if (st.getDimSize(s) != 1) {
      return TraceStep::stop();
    }
  }
  for (unsigned r = 0; r < t.dims.size(); ++r) {
    if (read.test(r) || t.dims[r].size == 1)
      continue;
    if (t.dims[r].role != DimLabel::Batch)
      return TraceStep::stop();
    t.reps.push_back(t.dims[r]);
  }
  t.dims = std::move(next);
  t.ops.push_back(def);
  return TraceStep::next(src);
}

/// Transposes (linalg, tosa, copy generics with a permutation map) and
/// broadcasts (linalg.broadcast, copy generics with a projected map).
static TraceStep traceTransposeOrBroadcast(Operation *def, Trace &t) {
  SmallVector<int64_t> perm;
  Value src;
  if (auto tr = dyn_cast<linalg::TransposeOp>(def)) {
    perm = llvm::to_vector(tr.getPermutation());
    src = tr.getInput();
  } else if (auto tr = dyn_cast<tosa::TransposeOp>(def)) {
    perm = llvm::to_vector(
        llvm::map_range(tr.getPerms(), [](int32_t p) { return (int64_t)p; }));
    src = tr.getInput1();
  } else if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def)) {
    AffineMap in = getCopyMap(linalgOp);
    if (in && in.isPermutation()) {
      // `in` maps result dims (loops) to source dims: src dim in(r) <- r.
      Labels next(in.getNumResults(), DimLabel{DimLabel::Unit, {}, 1});
      for (unsigned r = 0; r < in.getNumResults(); ++r)
        next[in.getDimPosition(r)] = t.dims[r];
      t.dims = std::move(next);
      t.ops.push_back(def);
      return TraceStep::next(linalgOp.getDpsInputOperand(0)->get());
    }
    if (auto b = dyn_cast<linalg::BroadcastOp>(def))
      return traceBroadcast(def, b.getInput(),
                            b.getMatchingIndexingMap(b.getDpsInputOperand(0)),
                            t);
    if (in)
      return traceBroadcast(def, linalgOp.getDpsInputOperand(0)->get(), in, t);
  }
  if (perm.empty())
    return TraceStep::skip();
  Labels next(perm.size(), DimLabel{DimLabel::Unit, {}, 1});
  for (auto [r, p] : llvm::enumerate(perm))
    next[p] = t.dims[r];
  t.dims = std::move(next);
  t.ops.push_back(def);
  return TraceStep::next(src);
}

/// Element-wise casts and (for Q) a constant scale, in any spelling.
static TraceStep traceCastOrScale(Value v, Operation *def, Trace &t,
                                  bool allowScale) {
  ExprBuilder builder;
  const Expr *e = builder.build(v);
  auto sameShape = [&](const Expr *x) -> Value {
    if (!x->origin || !x->originMap.isIdentity() ||
        cast<ShapedType>(x->origin.getType()).getShape() !=
            cast<ShapedType>(v.getType()).getShape() ||
        x->origin == v)
      return {};
    return x->origin;
  };
  if (e->kind == Expr::Kind::Op && e->op == ExprOp::FCast) {
    if (Value x = sameShape(e->operands[0])) {
      t.ops.push_back(def);
      return TraceStep::next(x);
    }
  }
  if (allowScale && e->kind == Expr::Kind::Op &&
      (e->op == ExprOp::Mul || e->op == ExprOp::Div)) {
    for (unsigned i = 0; i < 2; ++i) {
      if (e->op == ExprOp::Div && i == 1)
        break;
      std::optional<double> c = getConstant(e->operands[1 - i]);
      Value x = sameShape(e->operands[i]);
      if (!c || !x || !(*c > 0) || !std::isfinite(*c))
        continue;
      t.scale *= e->op == ExprOp::Mul ? *c : 1.0 / *c;
      t.ops.push_back(def);
      return TraceStep::next(x);
    }
  }
  return TraceStep::stop();
}

/// One step back from `v` through a view, cast or (for Q) scale op.
/// Updates `t` and returns the op's input, or null when `v` is a source.
static Value traceStep(Value v, Trace &t, bool allowScale) {
  Operation *def = v.getDefiningOp();
  if (!def)
    return {};
  for (auto step : {traceReshape, traceTransposeOrBroadcast}) {
    TraceStep s = step(def, t);
    if (s.kind != TraceStep::Skip)
      return s.input;
  }
  return traceCastOrScale(v, def, t, allowScale).input;
}

Trace fuse::traceOperand(Value v, const Labels &dims, bool allowScale) {
  Trace t;
  t.dims = dims;
  while (Value next = traceStep(v, t, allowScale))
    v = next;
  t.source = v;
  return t;
}

/// Batch parts of a trace, sorted by path.
Labels fuse::getBatchParts(const Labels &dims) {
  Labels parts;
  for (const DimLabel &l : dims)
    if (l.role == DimLabel::Batch)
      parts.push_back(l);
  llvm::sort(parts, [](const DimLabel &a, const DimLabel &b) {
    return a.path < b.path;
  });
  return parts;
}

/// Whether Q part `q` and K/V part `kv`, at the same path, have the same
/// size. Static sizes say. Both parts split one contraction batch dim, whose
/// size the contraction makes the same for Q and K/V; so a dynamic part is
/// the same when the rest of that dim's split is static and of one size on
/// both sides (a zero there would hide a difference).
static bool haveSameSize(const DimLabel &q, const DimLabel &kv,
                         const Labels &qParts, const Trace &t,
                         const Labels &kvParts) {
  if (!ShapedType::isDynamic(q.size) && !ShapedType::isDynamic(kv.size))
    return q.size == kv.size;
  auto rest = [&](ArrayRef<const Labels *> lists) -> std::optional<int64_t> {
    int64_t product = 1;
    for (const Labels *list : lists)
      for (const DimLabel &p : *list)
        if (p.path[0] == q.path[0] && p.path != q.path &&
            (ShapedType::isDynamic(p.size) ||
             llvm::MulOverflow(product, p.size, product)))
          return std::nullopt;
    return product;
  };
  std::optional<int64_t> qRest = rest({&qParts});
  std::optional<int64_t> kvRest = rest({&kvParts, &t.reps});
  return qRest && kvRest && *qRest == *kvRest && *qRest != 0;
}

/// How K or V relates to Q's batch parts: per Q part, the KV size; and the
/// group size of the (single) grouped part.
static FailureOr<KVGrouping> matchKV(const Labels &qParts, const Trace &t) {
  Labels parts = getBatchParts(t.dims);
  KVGrouping g;
  unsigned used = 0;
  for (unsigned qi = 0; qi < qParts.size(); ++qi) {
    const DimLabel &q = qParts[qi];
    // Same part (MHA on this dim).
    auto same = llvm::find_if(
        parts, [&](const DimLabel &p) { return p.path == q.path; });
    if (same != parts.end()) {
      if (!haveSameSize(q, *same, qParts, t, parts))
        return failure();
      g.sizes.push_back(ShapedType::isDynamic(q.size) ? same->size : q.size);
      ++used;
      continue;
    }
    // A repeat of this whole part (MQA without a KV head dim).
    auto rep = llvm::find_if(
        t.reps, [&](const DimLabel &r) { return r.path == q.path; });
    if (rep != t.reps.end()) {
      if (g.groupedPart >= 0)
        return failure();
      g.sizes.push_back(1);
      g.group = q.size;
      g.groupedPart = qi;
      continue;
    }
    // repeat_kv: KV part at path+[0], repeat at path+[1].
    SmallVector<int64_t, 4> kvPath(q.path), repPath(q.path);
    kvPath.push_back(0);
    repPath.push_back(1);
    auto kv = llvm::find_if(
        parts, [&](const DimLabel &p) { return p.path == kvPath; });
    auto r = llvm::find_if(
        t.reps, [&](const DimLabel &p) { return p.path == repPath; });
    // With a dynamic size, the collapse that merged the KV part and the
    // repeat into Q's part (the contraction batch dim) makes them agree.
    if (kv == parts.end() || r == t.reps.end() || g.groupedPart >= 0 ||
        (!ShapedType::isDynamic(kv->size) && !ShapedType::isDynamic(r->size) &&
         !ShapedType::isDynamic(q.size) && kv->size * r->size != q.size))
      return failure();
    g.sizes.push_back(kv->size);
    g.group = r->size;
    g.groupedPart = qi;
    ++used;
  }
  if (used != parts.size())
    return failure();
  // Every repeat must have been accounted for.
  if (t.reps.size() > (g.groupedPart >= 0 ? 1u : 0u))
    return failure();
  return g;
}

//===----------------------------------------------------------------------===//
// The match
//===----------------------------------------------------------------------===//

/// Recognizes the softmax over the last space dim; returns the logits.
static const Expr *matchSoftmax(const Expr *p, unsigned jDim) {
  p = stripCasts(p);
  if (p->kind == Expr::Kind::Softmax)
    return p->dim == jDim ? stripCasts(p->operands[0]) : nullptr;
  if (p->kind != Expr::Kind::Op)
    return nullptr;
  auto isSum = [&](const Expr *r) -> const Expr * {
    r = stripCasts(r);
    return r->kind == Expr::Kind::Reduce && r->op == ExprOp::Add &&
                   r->dim == jDim
               ? r->operands[0]
               : nullptr;
  };
  // P = E / sum(E), E * (1 / sum(E)), E * recip(sum(E)).
  const Expr *num = nullptr, *den = nullptr;
  if (p->op == ExprOp::Div) {
    num = p->operands[0];
    den = isSum(p->operands[1]);
  } else if (p->op == ExprOp::Mul) {
    for (unsigned k = 0; k < 2 && !den; ++k) {
      const Expr *r = stripCasts(p->operands[1 - k]);
      if (r->kind != Expr::Kind::Op)
        continue;
      if (r->op == ExprOp::Recip)
        den = isSum(r->operands[0]);
      else if (r->op == ExprOp::Div && getConstant(r->operands[0]) == 1.0)
        den = isSum(r->operands[1]);
      if (den)
        num = p->operands[k];
    }
  }
  if (!num || !den || !equal(stripCasts(num), stripCasts(den)))
    return nullptr;
  const Expr *e = stripCasts(num);
  if (e->kind != Expr::Kind::Op || e->op != ExprOp::Exp)
    return nullptr;
  const Expr *x = stripCasts(e->operands[0]);
  // Stable: exp(L - max(L)).
  if (x->kind == Expr::Kind::Op && x->op == ExprOp::Sub) {
    const Expr *m = stripCasts(x->operands[1]);
    if (m->kind == Expr::Kind::Reduce && m->op == ExprOp::Max &&
        m->dim == jDim) {
      if (!equal(stripCasts(x->operands[0]), stripCasts(m->operands[0])))
        return nullptr;
      return stripCasts(x->operands[0]);
    }
  }
  return x; // Unstable: exp(L).
}

/// Whether `t` is a Q·Kᵀ contraction result, possibly split into more batch
/// dims by an expand_shape.
Operation *fuse::getScoresContraction(Value t) {
  Operation *def = t.getDefiningOp();
  if (!def)
    return nullptr;
  if (getBatchReshapeGroups(def) && isa<tensor::ExpandShapeOp>(def))
    def = def->getOperand(0).getDefiningOp();
  if (def && succeeded(getContraction(def)))
    return def;
  return nullptr;
}

static bool readsScores(const Expr *e) {
  if (e->kind == Expr::Kind::Tensor && getScoresContraction(e->tensor))
    return true;
  return llvm::any_of(e->operands, readsScores);
}

namespace {
/// Peels masks, bias, softcap and scale off the logits, from the outside
/// in: masks and bias first, then at most one softcap, then scales. Each
/// peel step tries one kind of layer.
class LogitsPeeler {
public:
  LogitsPeeler(AttentionMatch &m, unsigned iDim, unsigned jDim,
               const MaskSizes &sizes)
      : m(m), iDim(iDim), jDim(jDim), sizes(sizes) {}

  /// The scores leaf under the logits `l`, or null.
  const Expr *peel(const Expr *l);

  /// Why `peel` failed.
  FuseMiss getMiss() const { return miss; }

private:
  /// The layer was not of the step's kind (Skip), was but cannot be taken
  /// (Fail), or was peeled and `inner` is under it (Peeled).
  struct Step {
    enum Kind { Skip, Fail, Peeled } kind;
    const Expr *inner = nullptr;
  };
  static Step skip() { return {Step::Skip}; }
  static Step fail() { return {Step::Fail}; }
  static Step peeled(const Expr *inner) { return {Step::Peeled, inner}; }

  Step peelSelectMask(const Expr *l);
  Step peelAdditive(const Expr *l);
  Step peelSoftcap(const Expr *l);
  Step peelScale(const Expr *l);
  /// An additive constant mask of 0 / NEG.
  std::optional<Band> getAdditiveConstantBand(const Expr *mask) const;
  /// The band of a predicate mask.
  std::optional<Band> getBand(const Expr *pred, bool negate);

  enum Stage { Masks, Softcap, Scale };
  AttentionMatch &m;
  unsigned iDim, jDim;
  const MaskSizes &sizes;
  Stage stage = Masks;
  FuseMiss miss = FuseMiss::Logits;
};
} // namespace

const Expr *LogitsPeeler::peel(const Expr *l) {
  while (true) {
    l = stripCasts(l);
    if (l->kind == Expr::Kind::Tensor && l->map.isIdentity() &&
        getScoresContraction(l->tensor))
      return l;
    if (l->kind != Expr::Kind::Op || l->operands.empty())
      return nullptr;
    Step step = skip();
    for (auto peelStep :
         {&LogitsPeeler::peelSelectMask, &LogitsPeeler::peelAdditive,
          &LogitsPeeler::peelSoftcap, &LogitsPeeler::peelScale}) {
      step = (this->*peelStep)(l);
      if (step.kind != Step::Skip)
        break;
    }
    if (step.kind != Step::Peeled)
      return nullptr;
    l = step.inner;
  }
}

std::optional<Band> LogitsPeeler::getBand(const Expr *pred, bool negate) {
  if (std::optional<Band> band =
          getPredicateBand(pred, negate, iDim, jDim, sizes))
    return band;
  // A mask aligned top-left (j <= i) is a band only where Sq = Sk. With
  // dynamic sizes the IR does not prove equal, fusing it would change what
  // is masked whenever they differ: say so.
  if (sizes.isDynamic() && !sizes.equal) {
    MaskSizes equal = sizes;
    equal.equal = true;
    if (getPredicateBand(pred, negate, iDim, jDim, equal))
      miss = FuseMiss::MaskNeedsEqualLengths;
  }
  return std::nullopt;
}

/// select(pred, x, NEG) / select(pred, NEG, x): masks before any softcap
/// (or after the scale when there is none).
LogitsPeeler::Step LogitsPeeler::peelSelectMask(const Expr *l) {
  if (l->op != ExprOp::Select ||
      !(stage == Masks || (stage == Scale && !m.softcap)))
    return skip();
  const Expr *pred = l->operands[0];
  for (unsigned k : {1u, 2u}) {
    std::optional<double> neg = getConstant(l->operands[k == 1 ? 2 : 1]);
    const Expr *x = l->operands[k];
    if (!neg || !isMaskingValue(*neg) || !readsScores(x))
      continue;
    bool negate = k == 2;
    std::optional<Band> band;
    if (pred->kind == Expr::Kind::ConstTensor) {
      band = getConstantMaskBand(pred->constant, pred->map, iDim, jDim, m.sq,
                                 m.sk, [&](Attribute a) -> std::optional<bool> {
                                   auto b = dyn_cast<IntegerAttr>(a);
                                   if (!b)
                                     return std::nullopt;
                                   return b.getValue().isZero() == negate;
                                 });
    } else {
      band = getBand(pred, negate);
    }
    if (!band)
      return fail();
    m.band.intersect(*band);
    return peeled(x);
  }
  return fail();
}

std::optional<Band>
LogitsPeeler::getAdditiveConstantBand(const Expr *mask) const {
  return getConstantMaskBand(mask->constant, mask->map, iDim, jDim, m.sq, m.sk,
                             [&](Attribute a) -> std::optional<bool> {
                               auto f = dyn_cast<FloatAttr>(a);
                               if (!f)
                                 return std::nullopt;
                               double v = f.getValueAsDouble();
                               if (v == 0)
                                 return true;
                               if (isMaskingValue(v))
                                 return false;
                               return std::nullopt;
                             });
}

/// x + mask / x + bias, before any softcap or scale.
LogitsPeeler::Step LogitsPeeler::peelAdditive(const Expr *l) {
  if (l->op != ExprOp::Add || stage != Masks)
    return skip();
  for (unsigned k = 0; k < 2; ++k) {
    const Expr *x = l->operands[k], *mask = l->operands[1 - k];
    if (!readsScores(x) || readsScores(mask))
      continue;
    const Expr *sm = stripCasts(mask);
    if (sm->isConst(0))
      return peeled(x);
    if (sm->kind == Expr::Kind::Op && sm->op == ExprOp::Select) {
      std::optional<double> t = getConstant(sm->operands[1]);
      std::optional<double> f = getConstant(sm->operands[2]);
      if (t && f &&
          ((*t == 0 && isMaskingValue(*f)) ||
           (*f == 0 && isMaskingValue(*t)))) {
        std::optional<Band> band = getBand(sm->operands[0], /*negate=*/*t != 0);
        if (!band)
          return fail();
        m.band.intersect(*band);
        return peeled(x);
      }
    }
    if (sm->kind == Expr::Kind::ConstTensor) {
      if (std::optional<Band> band = getAdditiveConstantBand(sm)) {
        m.band.intersect(*band);
        return peeled(x);
      }
    }
    // Any other tensor is an additive bias, kept as is.
    if (m.bias || !mask->origin)
      return fail();
    m.bias = mask->origin;
    m.biasMap = mask->originMap;
    return peeled(x);
  }
  return fail();
}

/// softcap: c * tanh(x / c) or c * tanh(x * (1/c)), after the masks.
LogitsPeeler::Step LogitsPeeler::peelSoftcap(const Expr *l) {
  if (l->op != ExprOp::Mul || stage != Masks)
    return skip();
  for (unsigned k = 0; k < 2; ++k) {
    std::optional<double> c = getConstant(l->operands[1 - k]);
    const Expr *t = stripCasts(l->operands[k]);
    if (!c || !(*c > 0) || !std::isfinite(*c) || t->kind != Expr::Kind::Op ||
        t->op != ExprOp::Tanh)
      continue;
    const Expr *in = stripCasts(t->operands[0]);
    if (in->kind != Expr::Kind::Op)
      return fail();
    const Expr *x = nullptr;
    if (in->op == ExprOp::Div && getConstant(in->operands[1]) == *c)
      x = in->operands[0];
    for (unsigned q = 0; q < 2 && !x && in->op == ExprOp::Mul; ++q) {
      std::optional<double> inv = getConstant(in->operands[1 - q]);
      if (inv && std::fabs(*inv * *c - 1.0) < 1e-6)
        x = in->operands[q];
    }
    if (!x)
      return fail();
    m.softcap = *c;
    stage = Softcap;
    return peeled(x);
  }
  return skip();
}

/// scale: x * c, c * x, x / c.
LogitsPeeler::Step LogitsPeeler::peelScale(const Expr *l) {
  if (l->op != ExprOp::Mul && l->op != ExprOp::Div)
    return skip();
  for (unsigned k = 0; k < 2; ++k) {
    if (l->op == ExprOp::Div && k == 1)
      break;
    std::optional<double> c = getConstant(l->operands[1 - k]);
    if (!c || !(*c > 0) || !std::isfinite(*c) || !readsScores(l->operands[k]))
      continue;
    m.scale *= l->op == ExprOp::Mul ? *c : 1.0 / *c;
    stage = Scale;
    return peeled(l->operands[k]);
  }
  return skip();
}

std::optional<SizeSym> fuse::classifySize(const AttentionMatch &m, Value v) {
  if (areEqualSizes({v, -1}, {m.space, m.iDim}))
    return SizeSym::Sq;
  if (areEqualSizes({v, -1}, {m.space, m.jDim}))
    return SizeSym::Sk;
  return std::nullopt;
}

/// Matches P·V, the scores space, the softmax and the logits down to the
/// Q·Kᵀ contraction, and the batch paths of both contractions.
static LogicalResult matchScores(Operation *pvOp, AttentionMatch &m,
                                 FuseMiss &miss) {
  auto fail = [&](FuseMiss why) {
    miss = why;
    return failure();
  };
  FailureOr<Contraction> pv = getContraction(pvOp);
  if (failed(pv))
    return fail(FuseMiss::NotAContraction);
  m.pv = *pv;
  // P is [batch..., i, j] in this order.
  unsigned nb = pv->numBatch;
  for (unsigned t = 0; t < nb; ++t)
    if (pv->lhsDims[t].role != DimLabel::Batch || pv->lhsDims[t].path[0] != t)
      return fail(FuseMiss::PLayout);
  if (pv->lhsDims[nb].role != DimLabel::Row ||
      pv->lhsDims[nb + 1].role != DimLabel::Col)
    return fail(FuseMiss::PLayout);

  // The scores space: P, or what a batch collapse_shape merged into P.
  Value space = pv->lhs;
  SmallVector<SmallVector<int64_t, 4>> pvSpacePaths;
  for (unsigned t = 0; t < nb; ++t)
    pvSpacePaths.push_back({(int64_t)t});
  Operation *pvReshape = pv->lhs.getDefiningOp();
  if (auto groups = getBatchReshapeGroups(pvReshape);
      groups && isa<tensor::CollapseShapeOp>(pvReshape)) {
    space = pvReshape->getOperand(0);
    pvSpacePaths = getGroupPaths(*groups);
    m.absorbed.insert(pvReshape);
  }
  // Sq and Sk, static or not; the mask analysis reads runtime sizes in masks
  // as Sq or Sk where the IR proves them so.
  auto spaceType = cast<RankedTensorType>(space.getType());
  unsigned rank = spaceType.getRank();
  unsigned iDim = rank - 2, jDim = rank - 1;
  m.sq = spaceType.getDimSize(iDim);
  m.sk = spaceType.getDimSize(jDim);
  m.space = space;
  m.iDim = iDim;
  m.jDim = jDim;
  m.equalLengths = areEqualSizes({space, iDim}, {space, jDim});
  auto classify = [&](Value v) { return classifySize(m, v); };
  MaskSizes sizes{m.sq, m.sk, m.equalLengths, classify};

  ExprBuilder builder;
  const Expr *logits = matchSoftmax(builder.build(space), jDim);
  if (!logits)
    return fail(FuseMiss::NoSoftmax);
  LogitsPeeler peeler(m, iDim, jDim, sizes);
  const Expr *scores = peeler.peel(logits);
  if (!scores)
    return fail(peeler.getMiss());
  for (Operation *op : builder.getVisitedOps())
    m.absorbed.insert(op);

  // The Q·Kᵀ contraction and the space's batch paths seen from it.
  Operation *qkOp = getScoresContraction(scores->tensor);
  m.qk = *getContraction(qkOp);
  if (m.qk.numBatch != nb)
    return fail(FuseMiss::BatchRanks);
  SmallVector<SmallVector<int64_t, 4>> qkSpacePaths;
  if (qkOp != scores->tensor.getDefiningOp()) {
    Operation *expand = scores->tensor.getDefiningOp();
    qkSpacePaths = getGroupPaths(*getBatchReshapeGroups(expand));
    m.absorbed.insert(expand);
  } else {
    for (unsigned t = 0; t < nb; ++t)
      qkSpacePaths.push_back({(int64_t)t});
  }
  if (qkSpacePaths != pvSpacePaths)
    return fail(FuseMiss::BatchReshapes);
  m.spacePaths = qkSpacePaths;
  m.absorbed.insert(qkOp);
  m.absorbed.insert(pvOp);
  m.p = traceOperand(pv->lhs, pv->lhsDims, /*allowScale=*/false);
  return success();
}

/// Traces Q, K and V to their sources and checks that their batch parts,
/// heads and sizes line up.
static LogicalResult matchOperands(AttentionMatch &m, FuseMiss &miss) {
  auto fail = [&](FuseMiss why) {
    miss = why;
    return failure();
  };
  // Q is [batch..., i, d]; K is [batch..., j, d] (any order, the contraction
  // maps say which dim is which).
  m.q = traceOperand(m.qk.lhs, m.qk.lhsDims, /*allowScale=*/true);
  m.k = traceOperand(m.qk.rhs, m.qk.rhsDims, /*allowScale=*/false);
  m.v = traceOperand(m.pv.rhs, m.pv.rhsDims, /*allowScale=*/false);
  // P·V contracts V's key dim: V's contraction "row" is dv and its "col" is
  // the key position; swap so that V reads [batch..., Sk (row), Dv (col)].
  for (DimLabel &l : m.v.dims)
    if (l.role == DimLabel::Row)
      l.role = DimLabel::Col;
    else if (l.role == DimLabel::Col)
      l.role = DimLabel::Row;
  if (!m.q.reps.empty())
    return fail(FuseMiss::QRepeated);
  m.scale *= m.q.scale;

  m.qParts = getBatchParts(m.q.dims);
  if (m.qParts.size() > 2)
    return fail(FuseMiss::TooManyBatchDims);
  // Each Q part lies under one space batch dim.
  for (const DimLabel &part : m.qParts)
    if (llvm::none_of(m.spacePaths, [&](ArrayRef<int64_t> sp) {
          return isPrefix(sp, part.path) || isPrefix(part.path, sp);
        }))
      return fail(FuseMiss::QBatchDims);
  FailureOr<KVGrouping> kg = matchKV(m.qParts, m.k);
  FailureOr<KVGrouping> vg = matchKV(m.qParts, m.v);
  if (failed(kg) || failed(vg) || kg->sizes != vg->sizes ||
      kg->group != vg->group || kg->groupedPart != vg->groupedPart)
    return fail(FuseMiss::KVHeads);
  // Only the innermost part (the heads) may be grouped.
  if (kg->groupedPart >= 0 && kg->groupedPart + 1 != (int64_t)m.qParts.size())
    return fail(FuseMiss::GroupedDim);
  m.kGroup = *kg;

  auto sizeOf = [](const Trace &t,
                   DimLabel::Role role) -> std::optional<int64_t> {
    for (const DimLabel &l : t.dims)
      if (l.role == role)
        return l.size;
    return std::nullopt;
  };
  // Dynamic sizes are compared only with static ones: the ops traced through
  // keep these dims, so they agree at run time.
  auto fits = [&](const Trace &t, DimLabel::Role role, int64_t expected) {
    std::optional<int64_t> size = sizeOf(t, role);
    return size && compatible(*size, expected);
  };
  std::optional<int64_t> d = sizeOf(m.q, DimLabel::Col);
  std::optional<int64_t> dv = sizeOf(m.v, DimLabel::Col);
  if (!d || !dv || !fits(m.q, DimLabel::Row, m.sq) ||
      !fits(m.k, DimLabel::Row, m.sk) || !fits(m.v, DimLabel::Row, m.sk) ||
      !fits(m.k, DimLabel::Col, *d))
    return fail(FuseMiss::Sizes);
  m.d = *d;
  m.dv = *dv;
  // Every attn kernel is generated for static head dims (frontends keep them
  // static): a dynamic one stays unfused.
  if (ShapedType::isDynamic(m.d) || ShapedType::isDynamic(m.dv))
    return fail(FuseMiss::DynamicHeadDim);
  if (m.d <= 0 || m.dv <= 0)
    return fail(FuseMiss::Sizes);
  for (const Trace *t : {&m.q, &m.k, &m.v})
    for (Operation *op : t->ops)
      m.absorbed.insert(op);
  return success();
}

/// Whether the intermediate scores (and, in a training graph, the backward's
/// intermediates) stay inside the matched ops: only the forward output and
/// the gradients leave them; views of the inputs are free to have other
/// users.
static bool scoresStayInside(const AttentionMatch &m) {
  SetVector<Operation *> forward;
  getForwardSlice(m.qk.op, &forward);
  SetVector<Operation *> chain;
  chain.insert(m.qk.op);
  DenseSet<Operation *> exits = {m.pv.op};
  if (m.backward) {
    if (Operation *dP = m.backward->dP) {
      chain.insert(dP);
      getForwardSlice(dP, &forward);
    }
    for (const GradientMatch *g :
         {&m.backward->dq, &m.backward->dk, &m.backward->dv})
      if (g->root)
        exits.insert(g->root.getDefiningOp());
  }
  for (Operation *op : forward)
    if (m.absorbed.contains(op) &&
        !(m.backward && m.backward->inputOps.contains(op)))
      chain.insert(op);
  for (Operation *op : chain) {
    if (exits.contains(op))
      continue;
    for (Operation *user : op->getUsers())
      if (!chain.contains(user))
        return false;
  }
  return true;
}

FailureOr<AttentionMatch> fuse::matchAttention(Operation *pvOp, FuseMiss &miss,
                                               bool withBackward) {
  AttentionMatch m;
  if (failed(matchScores(pvOp, m, miss)) || failed(matchOperands(m, miss)))
    return failure();
  if (scoresStayInside(m))
    return m;
  // The scores have other users: in a training graph, the backward's. Fused
  // only when the backward takes all of them.
  if (withBackward && succeeded(matchBackward(m)) && scoresStayInside(m))
    return m;
  miss = FuseMiss::ScoresEscape;
  return failure();
}

StringRef fuse::getMessage(FuseMiss miss) {
  switch (miss) {
  case FuseMiss::NotAContraction:
    return "not a contraction";
  case FuseMiss::PLayout:
    return "P is not read as [batch..., i, j]";
  case FuseMiss::NoSoftmax:
    return "no softmax over the key dim";
  case FuseMiss::Logits:
    return "the logits are not scale/softcap/mask/bias of Q·Kᵀ";
  case FuseMiss::BatchRanks:
    return "Q·Kᵀ and P·V batch ranks differ";
  case FuseMiss::BatchReshapes:
    return "Q·Kᵀ and P·V batch reshapes differ";
  case FuseMiss::QRepeated:
    return "Q is repeated";
  case FuseMiss::TooManyBatchDims:
    return "more than two batch dims";
  case FuseMiss::QBatchDims:
    return "Q batch dims do not match the scores";
  case FuseMiss::KVHeads:
    return "K/V heads do not match Q heads";
  case FuseMiss::GroupedDim:
    return "the grouped dim is not the innermost batch dim";
  case FuseMiss::Sizes:
    return "sequence lengths or head dims do not line up";
  case FuseMiss::ScoresEscape:
    return "intermediate scores are used outside the attention";
  case FuseMiss::Mask:
    return "the mask is not a band that attn.attention can express";
  case FuseMiss::EmptyProblem:
    return "an empty batch, head count, sequence or head dim";
  case FuseMiss::KVHeadsDivide:
    return "KV heads do not divide query heads";
  case FuseMiss::SizeBounds:
    return "sizes beyond what attn.attention takes (dims up to 2^31 - 1, 2^48 "
           "elements)";
  case FuseMiss::QKVReshape:
    return "Q, K or V cannot be reshaped to [B, H, S, D]";
  case FuseMiss::ElementType:
    return "unsupported element type";
  case FuseMiss::OutputReshape:
    return "the output cannot be reshaped back";
  case FuseMiss::DynamicBias:
    return "dynamic bias";
  case FuseMiss::TransposedBias:
    return "transposed bias";
  case FuseMiss::BiasBroadcast:
    return "bias broadcast is not expressible";
  case FuseMiss::BiasReshape:
    return "bias cannot be reshaped";
  case FuseMiss::BiasElementType:
    return "unsupported bias element type";
  case FuseMiss::DynamicHeadDim:
    return "dynamic head dim";
  case FuseMiss::GradientReshape:
    return "a gradient (or dO) cannot be reshaped from [B, H, S, D]";
  case FuseMiss::MaskNeedsEqualLengths:
    return "the mask is aligned top-left, which is attn.attention's "
           "bottom-right mask only when Sq = Sk, and the IR does not prove "
           "the dynamic Sq and Sk equal";
  }
  llvm_unreachable("unknown attn-fuse miss");
}
