//===- AttnFuse.cpp - rewrite unfused attention into attn.attention -------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// The rewrite part of attn-fuse: the matcher (AttnFuseMatch.cpp) finds the
// attention and the mask analysis (MaskAnalysis.cpp) its mask; this file
// brings Q, K, V (and bias) to [B, H, S, D], creates attn.attention,
// reshapes/converts its result to the replaced value, and erases what became
// dead. The patterns anchor on the P·V contraction; the pass applies them in
// one walk.
//
//===----------------------------------------------------------------------===//

#include "AttnFuseMatch.h"

#include "attn/IR/AttnOps.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Rewrite/PatternApplicator.h"
#include "mlir/Transforms/RegionUtils.h"

#include <numeric>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNFUSE
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fuse;

//===----------------------------------------------------------------------===//
// The rewrite
//===----------------------------------------------------------------------===//

/// The reassociation of a reshape between `from` and `to` (ranks differ).
/// MLIR's inference gives up on runs of dynamic dims such as [?, 8, ?, D] to
/// [?, ?, D]; the shapes here are [batch..., S, D] on both sides, so all the
/// batch dims of the larger side merge into the one of the smaller, when the
/// expand (if it is one) can infer its single dynamic batch dim.
static std::optional<SmallVector<ReassociationIndices>>
getReassociation(ArrayRef<int64_t> from, ArrayRef<int64_t> to,
                 MLIRContext *ctx) {
  Type f32 = Float32Type::get(ctx);
  if (std::optional<SmallVector<ReassociationIndices>> re =
          getReassociationIndicesForReshape(RankedTensorType::get(from, f32),
                                            RankedTensorType::get(to, f32)))
    return re;
  ArrayRef<int64_t> large = from.size() > to.size() ? from : to;
  ArrayRef<int64_t> small = from.size() > to.size() ? to : from;
  if (small.size() != 3 || large.size() < 4 ||
      !compatible(small[1], large.take_back(2)[0]) || small[2] != large.back())
    return std::nullopt;
  ArrayRef<int64_t> batch = large.drop_back(2);
  if (large == to && llvm::count_if(batch, ShapedType::isDynamic) > 1)
    return std::nullopt;
  if (!ShapedType::isDynamic(small[0]) && !ShapedType::isDynamicShape(batch) &&
      computeProduct(batch) != small[0])
    return std::nullopt;
  int64_t nb = batch.size();
  return SmallVector<ReassociationIndices>{
      llvm::to_vector<2>(llvm::seq<int64_t>(0, nb)), {nb}, {nb + 1}};
}

/// Reshapes `v` to `shape` (same elements, only unit dims and splits/merges
/// of adjacent dims); null if impossible.
static Value reshapeTo(RewriterBase &rewriter, Location loc, Value v,
                       ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  auto target = RankedTensorType::get(shape, type.getElementType());
  if (target.getRank() == type.getRank())
    return {};
  std::optional<SmallVector<ReassociationIndices>> re =
      getReassociation(type.getShape(), shape, v.getContext());
  if (!re)
    return {};
  if (target.getRank() > type.getRank()) {
    // The reshapes here mostly insert unit dims: a dynamic result dim whose
    // group has no other non-unit dim is the source dim (tensor.dim), fewer
    // ops than the builder's general inference.
    SmallVector<OpFoldResult> outputShape;
    for (auto [s, group] : llvm::enumerate(*re))
      for (int64_t d : group) {
        if (!target.isDynamicDim(d)) {
          outputShape.push_back(rewriter.getIndexAttr(target.getDimSize(d)));
          continue;
        }
        if (llvm::any_of(group, [&](int64_t x) {
              return x != d && target.getDimSize(x) != 1;
            }))
          return tensor::ExpandShapeOp::create(rewriter, loc, target, v, *re);
        outputShape.push_back(tensor::getMixedSize(rewriter, loc, v, s));
      }
    return tensor::ExpandShapeOp::create(rewriter, loc, target, v, *re,
                                         outputShape);
  }
  return tensor::CollapseShapeOp::create(rewriter, loc, target, v, *re);
}

/// Whether `reshapeTo` would succeed.
static bool canReshape(ArrayRef<int64_t> from, ArrayRef<int64_t> to,
                       MLIRContext *ctx) {
  if (from == to)
    return true;
  return from.size() != to.size() &&
         getReassociation(from, to, ctx).has_value();
}

/// The permutation that orders a trace's source dims as [units, batch parts
/// by path, row, col].
static SmallVector<int64_t> getCanonicalOrder(const Labels &dims) {
  SmallVector<int64_t> order(dims.size());
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](int64_t d) {
    const DimLabel &l = dims[d];
    int rank = l.role == DimLabel::Unit    ? 0
               : l.role == DimLabel::Batch ? 1
               : l.role == DimLabel::Row   ? 2
                                           : 3;
    return std::make_tuple(rank, l.path, d);
  };
  llvm::sort(order, [&](int64_t a, int64_t b) { return key(a) < key(b); });
  return order;
}

/// Whether a trace's source is [batch part 0, row, batch part 1, col] (unit
/// dims aside): the bshd layout.
static bool isBSHD(const Trace &t) {
  SmallVector<const DimLabel *> dims;
  for (const DimLabel &l : t.dims)
    if (l.role != DimLabel::Unit)
      dims.push_back(&l);
  return dims.size() == 4 && dims[0]->role == DimLabel::Batch &&
         dims[1]->role == DimLabel::Row && dims[2]->role == DimLabel::Batch &&
         dims[3]->role == DimLabel::Col && dims[0]->path < dims[2]->path;
}

/// The bshd shape of a bhsd shape.
static SmallVector<int64_t> toBSHD(ArrayRef<int64_t> s) {
  return {s[0], s[2], s[1], s[3]};
}

/// Brings a traced source to the 4-D bhsd shape `shape`.
static Value emitOperand(RewriterBase &rewriter, Location loc, const Trace &t,
                         ArrayRef<int64_t> shape) {
  Value v = t.source;
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> order = getCanonicalOrder(t.dims);
  if (!llvm::equal(order, llvm::seq<int64_t>(0, order.size()))) {
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, v);
    SmallVector<OpFoldResult> permuted;
    for (int64_t d : order)
      permuted.push_back(sizes[d]);
    Value init =
        tensor::EmptyOp::create(rewriter, loc, permuted, type.getElementType());
    v = linalg::TransposeOp::create(rewriter, loc, v, init, order)
            ->getResult(0);
  }
  return reshapeTo(rewriter, loc, v, shape);
}

static SmallVector<int64_t> permutedShape(const Trace &t) {
  auto type = cast<RankedTensorType>(t.source.getType());
  SmallVector<int64_t> shape;
  for (int64_t d : getCanonicalOrder(t.dims))
    shape.push_back(type.getDimSize(d));
  return shape;
}

/// Converts a float tensor to element type `to` (extf/truncf on tensors).
static Value convert(RewriterBase &rewriter, Location loc, Value v, Type to) {
  auto type = cast<RankedTensorType>(v.getType());
  Type from = type.getElementType();
  if (from == to)
    return v;
  auto target = type.clone(to);
  if (to.getIntOrFloatBitWidth() > from.getIntOrFloatBitWidth())
    return arith::ExtFOp::create(rewriter, loc, target, v);
  return arith::TruncFOp::create(rewriter, loc, target, v);
}

static bool isAttnElementType(Type t) {
  return t.isF16() || t.isBF16() || t.isF32();
}

/// If the only use of `v` truncates it element-wise to `to`, that use.
static Operation *getTruncatingUser(Value v, Type to) {
  if (!v.hasOneUse())
    return nullptr;
  Operation *user = *v.getUsers().begin();
  if (user->getNumResults() != 1 ||
      getElementTypeOrSelf(user->getResult(0).getType()) != to ||
      cast<ShapedType>(user->getResult(0).getType()).getShape() !=
          cast<ShapedType>(v.getType()).getShape())
    return nullptr;
  ExprBuilder builder;
  const Expr *e = builder.build(user->getResult(0));
  if (e->kind == Expr::Kind::Op && e->op == ExprOp::FCast &&
      e->operands[0]->origin == v && e->operands[0]->originMap.isIdentity())
    return user;
  return nullptr;
}

namespace {
/// The [B, H, S, D] shapes of the fused problem.
struct ProblemShapes {
  SmallVector<int64_t> q, k, v, o;
};
} // namespace

/// The problem's shapes: [B, H] from Q's batch parts, padded with leading
/// 1s; fails unless attn.attention takes them and Q, K, V reshape to them.
static FailureOr<ProblemShapes>
getProblemShapes(const AttentionMatch &m, MLIRContext *ctx, FuseMiss &miss) {
  auto fail = [&](FuseMiss why) {
    miss = why;
    return failure();
  };
  SmallVector<int64_t> qb, kb;
  for (auto [idx, part] : llvm::enumerate(m.qParts)) {
    qb.push_back(part.size);
    kb.push_back(m.kGroup.sizes[idx]);
  }
  while (qb.size() < 2) {
    qb.insert(qb.begin(), 1);
    kb.insert(kb.begin(), 1);
  }
  // A sequence length dynamic in the scores may be static in an operand:
  // each operand keeps what its own type knows.
  auto rows = [](const Trace &t, int64_t size) {
    for (const DimLabel &l : t.dims)
      if (l.role == DimLabel::Row && ShapedType::isDynamic(size))
        return l.size;
    return size;
  };
  ProblemShapes s;
  s.q = {qb[0], qb[1], rows(m.q, m.sq), m.d};
  s.k = {kb[0], kb[1], rows(m.k, m.sk), m.d};
  s.v = {kb[0], kb[1], rows(m.v, m.sk), m.dv};
  s.o = {qb[0], qb[1], m.sq, m.dv};
  // Empty problems (a zero batch or head count) are left alone: nothing to
  // fuse, and no head grouping to read off them.
  if (llvm::is_contained(qb, 0) || llvm::is_contained(kb, 0) || m.sq == 0 ||
      m.sk == 0 || m.d == 0 || m.dv == 0)
    return fail(FuseMiss::EmptyProblem);
  if (!compatible(qb[0], kb[0]) ||
      (!ShapedType::isDynamic(qb[1]) && !ShapedType::isDynamic(kb[1]) &&
       qb[1] % kb[1] != 0))
    return fail(FuseMiss::KVHeadsDivide);
  for (ArrayRef<int64_t> shape : {s.q, s.k, s.v, s.o})
    if (!isWithinSizeBounds(shape))
      return fail(FuseMiss::SizeBounds);
  if (!canReshape(permutedShape(m.q), s.q, ctx) ||
      !canReshape(permutedShape(m.k), s.k, ctx) ||
      !canReshape(permutedShape(m.v), s.v, ctx))
    return fail(FuseMiss::QKVReshape);
  return s;
}

/// The bias shape [B|1, H|1, Sq|1, Sk|1], its dims in space order; fails
/// unless the bias reshapes to it and its element type is taken.
static FailureOr<SmallVector<int64_t>> getBiasShape(const AttentionMatch &m,
                                                    Type elt, MLIRContext *ctx,
                                                    FuseMiss &miss) {
  auto fail = [&](FuseMiss why) {
    miss = why;
    return failure();
  };
  auto biasType = cast<RankedTensorType>(m.bias.getType());
  if (!biasType.hasStaticShape())
    return fail(FuseMiss::DynamicBias);
  unsigned rank = m.biasMap.getNumDims();
  llvm::SmallBitVector read(rank);
  int64_t last = -1;
  for (auto [pos, r] : llvm::enumerate(m.biasMap.getResults())) {
    if (auto d = dyn_cast<AffineDimExpr>(r)) {
      if ((int64_t)d.getPosition() <= last)
        return fail(FuseMiss::TransposedBias);
      last = d.getPosition();
      read.set(d.getPosition());
    } else if (biasType.getDimSize(pos) != 1) {
      return fail(FuseMiss::BiasBroadcast);
    }
  }
  // Q parts under a space dim take its size if the bias reads that dim.
  SmallVector<int64_t> biasShape;
  for (const DimLabel &part : m.qParts) {
    bool partRead = false, partBroadcast = false;
    for (auto [s, sp] : llvm::enumerate(m.spacePaths))
      if (isPrefix(sp, part.path) || isPrefix(part.path, sp))
        (read.test(s) ? partRead : partBroadcast) = true;
    if (partRead && partBroadcast)
      return fail(FuseMiss::BiasBroadcast);
    biasShape.push_back(partRead ? part.size : 1);
  }
  while (biasShape.size() < 2)
    biasShape.insert(biasShape.begin(), 1);
  biasShape.push_back(read.test(rank - 2) ? m.sq : 1);
  biasShape.push_back(read.test(rank - 1) ? m.sk : 1);
  // A static bias over a dynamic dim would need a cast; not taken.
  if (ShapedType::isDynamicShape(biasShape))
    return fail(FuseMiss::DynamicBias);
  if (!canReshape(biasType.getShape(), biasShape, ctx))
    return fail(FuseMiss::BiasReshape);
  Type biasElt = biasType.getElementType();
  if (biasElt != elt && !biasElt.isF32() &&
      !(isa<FloatType>(biasElt) && biasElt.getIntOrFloatBitWidth() < 32))
    return fail(FuseMiss::BiasElementType);
  return biasShape;
}

/// Whether Q, K and V (and dO in a training graph) all come from [B, S, H,
/// D] tensors (the layout of the projections before HF's .transpose(1, 2))
/// that can be read in place with layout = bshd instead of materializing
/// transposes.
static bool useBSHD(const AttentionMatch &m, const ProblemShapes &s,
                    MLIRContext *ctx) {
  if (m.qParts.size() != 2 || !isBSHD(m.q) || !isBSHD(m.k) || !isBSHD(m.v))
    return false;
  auto sourceShape = [](const Trace &t) {
    return cast<RankedTensorType>(t.source.getType()).getShape();
  };
  if (m.backward &&
      (!isBSHD(m.backward->dO) ||
       !canReshape(sourceShape(m.backward->dO), toBSHD(s.o), ctx)))
    return false;
  return canReshape(sourceShape(m.q), toBSHD(s.q), ctx) &&
         canReshape(sourceShape(m.k), toBSHD(s.k), ctx) &&
         canReshape(sourceShape(m.v), toBSHD(s.v), ctx);
}

/// Erases what became dead: the absorbed ops and, transitively, producers
/// that only they used. Ops that were dead before are never visited.
static void eraseAbsorbed(RewriterBase &rewriter, const AttentionMatch &m) {
  SmallVector<Operation *> worklist(m.absorbed.rbegin(), m.absorbed.rend());
  DenseSet<Operation *> erased;
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    if (erased.contains(op) || !isOpTriviallyDead(op))
      continue;
    SetVector<Value> used(op->operand_begin(), op->operand_end());
    getUsedValuesDefinedAbove(op->getRegions(), used);
    for (Value operand : used)
      if (Operation *def = operand.getDefiningOp())
        worklist.push_back(def);
    erased.insert(op);
    rewriter.eraseOp(op);
  }
}

namespace {
/// What the rewrite decided before changing the IR.
struct FusePlan {
  MaskAttr mask;
  ProblemShapes shapes;
  /// The element type the fused ops compute in.
  Type elt;
  /// The value attn.attention replaces (P·V or its truncation).
  Value root;
  SmallVector<int64_t> biasShape;
  bool bshd = false;
};
} // namespace

/// The shape of `g`'s root with its dims in canonical order (what the
/// gradient reshapes to before a transpose into the root's order).
static SmallVector<int64_t> getPermutedRootShape(const GradientMatch &g) {
  auto type = cast<RankedTensorType>(g.root.getType());
  SmallVector<int64_t> shape;
  for (int64_t d : getCanonicalOrder(g.dims))
    shape.push_back(type.getDimSize(d));
  return shape;
}

/// Whether dO and the gradients reshape between their [B, H, S, D] shapes
/// and the values of the graph, which have element types the rewrite takes.
static LogicalResult checkBackward(const AttentionMatch &m,
                                   const ProblemShapes &s, MLIRContext *ctx,
                                   FuseMiss &miss) {
  const BackwardMatch &b = *m.backward;
  if (!isAttnElementType(getElementTypeOrSelf(b.dO.source.getType()))) {
    miss = FuseMiss::ElementType;
    return failure();
  }
  bool ok = canReshape(permutedShape(b.dO), s.o, ctx);
  for (auto [g, shape] :
       {std::pair{&b.dq, &s.q}, {&b.dk, &s.k}, {&b.dv, &s.v}}) {
    if (!g->root)
      continue; // Not computed (its input needs no gradient).
    Type elt = getElementTypeOrSelf(g->root.getType());
    if (!isAttnElementType(elt) && !isa<Float64Type>(elt)) {
      miss = FuseMiss::ElementType;
      return failure();
    }
    ok = ok && canReshape(*shape, getPermutedRootShape(*g), ctx);
  }
  if (!ok)
    miss = FuseMiss::GradientReshape;
  return success(ok);
}

/// Everything the rewrite checks: the mask attribute, the problem shapes,
/// the element types, the output (and gradient) reshapes, the bias and the
/// layout. Absorbs a truncation of P·V into the root.
static FailureOr<FusePlan> planFusion(AttentionMatch &m, MLIRContext *ctx,
                                      FuseMiss &miss) {
  auto fail = [&](FuseMiss why) {
    miss = why;
    return failure();
  };
  FusePlan plan;
  std::optional<MaskAttr> mask =
      getMaskAttr(ctx, m.band, MaskSizes{m.sq, m.sk, m.equalLengths});
  if (!mask)
    return fail(FuseMiss::Mask);
  plan.mask = mask->isNone() ? MaskAttr() : *mask;
  FailureOr<ProblemShapes> shapes = getProblemShapes(m, ctx, miss);
  if (failed(shapes))
    return failure();
  plan.shapes = std::move(*shapes);

  // Element types: compute in the sources' type when the result wants it,
  // otherwise in f32.
  Type srcElt = getElementTypeOrSelf(m.q.source.getType());
  for (const Trace *t : {&m.k, &m.v})
    if (getElementTypeOrSelf(t->source.getType()) != srcElt)
      srcElt = Float32Type::get(ctx);
  for (const Trace *t : {&m.q, &m.k, &m.v})
    if (!isAttnElementType(getElementTypeOrSelf(t->source.getType())))
      return fail(FuseMiss::ElementType);
  plan.root = m.pv.result;
  Type rootElt = getElementTypeOrSelf(plan.root.getType());
  if (rootElt != srcElt)
    if (Operation *trunc = getTruncatingUser(plan.root, srcElt)) {
      plan.root = trunc->getResult(0);
      rootElt = srcElt;
      m.absorbed.insert(trunc);
    }
  plan.elt = rootElt == srcElt ? srcElt : Float32Type::get(ctx);
  if (!isAttnElementType(rootElt) && !isa<Float64Type>(rootElt))
    return fail(FuseMiss::ElementType);
  auto rootType = cast<RankedTensorType>(plan.root.getType());
  if (!canReshape(plan.shapes.o, rootType.getShape(), ctx))
    return fail(FuseMiss::OutputReshape);
  if (m.backward && failed(checkBackward(m, plan.shapes, ctx, miss)))
    return failure();
  if (m.bias) {
    FailureOr<SmallVector<int64_t>> shape =
        getBiasShape(m, plan.elt, ctx, miss);
    if (failed(shape))
      return failure();
    plan.biasShape = std::move(*shape);
  }
  plan.bshd = useBSHD(m, plan.shapes, ctx);
  return plan;
}

/// Transposes a bshd result of the fused ops to bhsd (a following transpose
/// back folds away under canonicalization).
static Value transposeToBHSD(RewriterBase &rewriter, Location loc, Value x) {
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
  std::swap(sizes[1], sizes[2]);
  Value init = tensor::EmptyOp::create(rewriter, loc, sizes,
                                       getElementTypeOrSelf(x.getType()));
  return linalg::TransposeOp::create(rewriter, loc, x, init,
                                     ArrayRef<int64_t>{0, 2, 1, 3})
      ->getResult(0);
}

/// Brings gradient `g` ([B, H, S, D]) to the value of the graph it
/// replaces: a reshape to the root's dims in canonical order, a transpose
/// into the root's order, a conversion to its element type.
static Value emitGradient(RewriterBase &rewriter, Location loc, Value g,
                          const GradientMatch &gm) {
  auto rootType = cast<RankedTensorType>(gm.root.getType());
  SmallVector<int64_t> order = getCanonicalOrder(gm.dims);
  Value x = reshapeTo(rewriter, loc, g, getPermutedRootShape(gm));
  if (!llvm::equal(order, llvm::seq<int64_t>(0, order.size()))) {
    SmallVector<int64_t> perm = invertPermutationVector(order);
    SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(rewriter, loc, x);
    SmallVector<OpFoldResult> permuted;
    for (int64_t d : perm)
      permuted.push_back(sizes[d]);
    Value init = tensor::EmptyOp::create(rewriter, loc, permuted,
                                         getElementTypeOrSelf(x.getType()));
    x = linalg::TransposeOp::create(rewriter, loc, x, init, perm)->getResult(0);
  }
  return convert(rewriter, loc, x, rootType.getElementType());
}

/// Creates attn.attention_grad for the backward of `m` before its first
/// gradient and replaces the gradients.
static void
emitBackward(RewriterBase &rewriter, Location loc, const AttentionMatch &m,
             const FusePlan &plan, AttentionOp attn,
             function_ref<Value(const Trace &, ArrayRef<int64_t>)> operand) {
  const BackwardMatch &b = *m.backward;
  Operation *first = nullptr;
  for (const GradientMatch *g : {&b.dq, &b.dk, &b.dv}) {
    if (!g->root)
      continue;
    Operation *def = g->root.getDefiningOp();
    if (!first || def->isBeforeInBlock(first))
      first = def;
  }
  rewriter.setInsertionPoint(first);
  Value dO = operand(b.dO, plan.shapes.o);
  auto grad = AttentionGradOp::create(
      rewriter, loc, attn.getQuery().getType(), attn.getKey().getType(),
      attn.getValue().getType(), /*grad_sinks=*/Type(), attn.getQuery(),
      attn.getKey(), attn.getValue(), attn.getOutput(), dO, attn.getLse(),
      attn.getBias(), /*sinks=*/Value(), attn.getLayout(), attn.getMaskAttr(),
      attn.getScaleAttr(), attn.getSoftcapAttr());
  for (auto [g, value] : {std::pair{&b.dq, grad.getGradQuery()},
                          {&b.dk, grad.getGradKey()},
                          {&b.dv, grad.getGradValue()}}) {
    if (!g->root || g->root.use_empty())
      continue; // Not computed, or dead: its chain is erased with the rest.
    Value x = plan.bshd ? transposeToBHSD(rewriter, loc, value) : value;
    rewriter.replaceAllUsesWith(g->root, emitGradient(rewriter, loc, x, *g));
  }
}

/// Matches the attention ending in `pvOp` and rewrites it into
/// attn.attention (and, in a training graph, its backward into
/// attn.attention_grad); on failure, `miss` says why and the IR is
/// unchanged.
static LogicalResult fuseAttention(RewriterBase &rewriter, Operation *pvOp,
                                   FuseMiss &miss, bool fuseBackward) {
  FailureOr<AttentionMatch> match = matchAttention(pvOp, miss, fuseBackward);
  if (failed(match))
    return failure();
  AttentionMatch &m = *match;
  MLIRContext *ctx = pvOp->getContext();
  Location loc = pvOp->getLoc();
  FailureOr<FusePlan> planned = planFusion(m, ctx, miss);
  if (failed(planned))
    return failure();
  const FusePlan &plan = *planned;
  const ProblemShapes &shapes = plan.shapes;

  // Rewrite.
  rewriter.setInsertionPoint(plan.root.getDefiningOp());
  auto operand = [&](const Trace &t, ArrayRef<int64_t> shape) {
    Value x = plan.bshd ? reshapeTo(rewriter, loc, t.source, toBSHD(shape))
                        : emitOperand(rewriter, loc, t, shape);
    return convert(rewriter, loc, x, plan.elt);
  };
  Value q = operand(m.q, shapes.q);
  Value k = operand(m.k, shapes.k);
  Value v = operand(m.v, shapes.v);
  Value bias;
  if (m.bias) {
    bias = reshapeTo(rewriter, loc, m.bias, plan.biasShape);
    Type biasElt = getElementTypeOrSelf(bias.getType());
    if (biasElt != plan.elt && !biasElt.isF32())
      bias = convert(rewriter, loc, bias, Float32Type::get(ctx));
  }
  auto outType =
      RankedTensorType::get(plan.bshd ? toBSHD(shapes.o) : shapes.o, plan.elt);
  // A training graph needs the LSE for the backward.
  Type lseType;
  if (m.backward)
    lseType = RankedTensorType::get(ArrayRef(shapes.o).take_front(3),
                                    Float32Type::get(ctx));
  FloatAttr softcap;
  if (m.softcap)
    softcap = rewriter.getF32FloatAttr(*m.softcap);
  auto attn = AttentionOp::create(
      rewriter, loc, outType, lseType, q, k, v, bias, /*sinks=*/Value(),
      /*positionOffset=*/Value(), /*descale=*/ValueRange(),
      plan.bshd ? Layout::BSHD : Layout::BHSD, plan.mask,
      rewriter.getF32FloatAttr(m.scale), softcap);
  Value out = attn.getOutput();
  if (plan.bshd)
    out = transposeToBHSD(rewriter, loc, out);
  auto rootType = cast<RankedTensorType>(plan.root.getType());
  out = reshapeTo(rewriter, loc, out, rootType.getShape());
  out = convert(rewriter, loc, out, rootType.getElementType());
  rewriter.replaceAllUsesWith(plan.root, out);
  if (m.backward)
    emitBackward(rewriter, loc, m, plan, attn, operand);
  eraseAbsorbed(rewriter, m);
  return success();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

namespace {

template <typename OpTy>
using OpOrInterfacePattern =
    std::conditional_t<std::is_same_v<OpTy, linalg::LinalgOp>,
                       OpInterfaceRewritePattern<OpTy>, OpRewritePattern<OpTy>>;

/// Fuses the attention whose P·V is `OpTy` (a linalg contraction or a
/// tosa.matmul).
template <typename OpTy>
struct FuseAttention : public OpOrInterfacePattern<OpTy> {
  FuseAttention(MLIRContext *ctx, FuseMissCallback onMiss, bool fuseBackward)
      : OpOrInterfacePattern<OpTy>(ctx), onMiss(std::move(onMiss)),
        fuseBackward(fuseBackward) {}
  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    FuseMiss miss;
    if (succeeded(fuseAttention(rewriter, op, miss, fuseBackward)))
      return success();
    if (onMiss)
      onMiss(op, miss);
    return rewriter.notifyMatchFailure(op, getMessage(miss));
  }
  FuseMissCallback onMiss;
  bool fuseBackward;
};

struct AttnFusePass : public attn::impl::AttnFuseBase<AttnFusePass> {
  using AttnFuseBase::AttnFuseBase;
  void runOnOperation() override;
};

} // namespace

void fuse::populateAttnFusePatterns(RewritePatternSet &patterns,
                                    FuseMissCallback onMiss,
                                    bool fuseBackward) {
  patterns.add<FuseAttention<linalg::LinalgOp>, FuseAttention<tosa::MatMulOp>>(
      patterns.getContext(), onMiss, fuseBackward);
}

void mlir::attn::populateAttnFusePatterns(RewritePatternSet &patterns) {
  fuse::populateAttnFusePatterns(patterns, /*onMiss=*/nullptr,
                                 /*fuseBackward=*/true);
}

void AttnFusePass::runOnOperation() {
  RewritePatternSet patterns(&getContext());
  fuse::populateAttnFusePatterns(
      patterns,
      [&](Operation *op, FuseMiss miss) {
        if (reportMisses && isLikelyAttention(miss))
          op->emitRemark("attn-fuse: not fused: ") << getMessage(miss);
      },
      fuseBackward);
  FrozenRewritePatternSet frozen(std::move(patterns));
  PatternApplicator applicator(frozen);
  applicator.applyDefaultCostModel();

  // One pass over the candidate P·V contractions in program order. A single
  // walk (no greedy fixpoint) leaves every op that is not part of a
  // recognized attention exactly as it was: no folding, no DCE elsewhere.
  // (walkAndApplyPatterns would walk ops that a fusion erases after the
  // visited one, such as a truncating user of P·V.)
  SmallVector<Operation *> candidates;
  getOperation()->walk([&](Operation *op) {
    if (isa<linalg::LinalgOp, tosa::MatMulOp>(op))
      candidates.push_back(op);
  });
  struct Tracker : public RewriterBase::Listener {
    DenseSet<Operation *> erased;
    void notifyOperationErased(Operation *op) override { erased.insert(op); }
  } tracker;
  PatternRewriter rewriter(&getContext());
  rewriter.setListener(&tracker);
  for (Operation *op : candidates)
    if (!tracker.erased.contains(op))
      (void)applicator.matchAndRewrite(op, rewriter);
}
