//===- AttnFuse.cpp - rewrite unfused attention into attn.attention -------===//
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
//      expand_shape that splits batch dims).
//   4. Q, K and V traced back through transposes, reshapes, casts, a scale
//      on Q and the repeat_kv broadcast to their sources, each source dim
//      labelled by its role (batch part, row, column, unit).
//   5. Consistency of the batch factorization across Q, K, V and the output;
//      the GQA group from the repeat; exact mask analysis.
//   6. Rewrite: bring Q, K, V (and bias) to [B, H, S, D], create
//      attn.attention, reshape/convert its result to the replaced value, and
//      erase what became dead.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/Transforms.h"

#include "ElementwiseExpr.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>

namespace mlir {
namespace attn {
#define GEN_PASS_DEF_ATTNFUSE
#include "attn/Transforms/Passes.h.inc"
} // namespace attn
} // namespace mlir

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fuse;

namespace {

//===----------------------------------------------------------------------===//
// Dimension labels
//===----------------------------------------------------------------------===//

/// What one dimension of a traced tensor is. Batch dims carry a path: the
/// index of the contraction batch dim they come from, then the position
/// within each reshape group that split it (outer first). Paths order batch
/// parts the way row-major flattening does.
struct DimLabel {
  enum Role { Batch, Row, Col, Unit } role;
  SmallVector<int64_t, 4> path;
  int64_t size;
};

using Labels = SmallVector<DimLabel, 5>;

static bool isPrefix(ArrayRef<int64_t> prefix, ArrayRef<int64_t> path) {
  return prefix.size() <= path.size() &&
         prefix == path.take_front(prefix.size());
}

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

/// A two-operand contraction out[batch..., m, n] = sum_k lhs * rhs.
struct Contraction {
  Operation *op;
  Value lhs, rhs, result;
  Labels lhsDims, rhsDims; ///< Batch [t] / Row (m or n) / Col (k).
  unsigned numBatch;
};

/// Recognizes linalg contractions (named or generic, any indexing maps) and
/// tosa.matmul with static shapes and one m, n and k dim.
static FailureOr<Contraction> getContraction(Operation *op) {
  Contraction c;
  c.op = op;
  if (auto mm = dyn_cast<tosa::MatMulOp>(op)) {
    auto a = cast<RankedTensorType>(mm.getA().getType());
    auto b = cast<RankedTensorType>(mm.getB().getType());
    if (!a.hasStaticShape() || !b.hasStaticShape())
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
    if (!type || !type.hasStaticShape())
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
static std::optional<SmallVector<ReassociationIndices>>
getBatchReshapeGroups(Operation *op) {
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
static SmallVector<SmallVector<int64_t, 4>>
getGroupPaths(ArrayRef<ReassociationIndices> groups) {
  SmallVector<SmallVector<int64_t, 4>> paths;
  for (auto [g, group] : llvm::enumerate(groups))
    for (auto [idx, d] : llvm::enumerate(group))
      paths.push_back(group.size() == 1
                          ? SmallVector<int64_t, 4>{(int64_t)g}
                          : SmallVector<int64_t, 4>{(int64_t)g, (int64_t)idx});
  return paths;
}

//===----------------------------------------------------------------------===//
// Tracing Q, K and V to their sources
//===----------------------------------------------------------------------===//

/// A contraction operand traced back to its source tensor.
struct Trace {
  Value source;
  Labels dims;                   ///< Labels of the source's dims.
  Labels reps;                   ///< Batch parts created by a broadcast.
  SmallVector<Operation *> ops;  ///< Ops looked through.
  double scale = 1.0;            ///< Constant factor peeled off (Q only).
};

/// If `op` only moves data (a linalg.generic whose body yields its single
/// input), the input's indexing map; otherwise null.
static AffineMap getCopyMap(linalg::LinalgOp op) {
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

/// One step back from `v` through a view, cast or (for Q) scale op.
/// Updates `t` and returns the op's input, or null when `v` is a source.
static Value traceStep(Value v, Trace &t, bool allowScale) {
  Operation *def = v.getDefiningOp();
  if (!def)
    return {};
  auto srcType = [&](Value s) { return cast<RankedTensorType>(s.getType()); };

  // Reshapes (tensor or tosa) with static shapes.
  SmallVector<ReassociationIndices> groups;
  Value src;
  bool collapse = false;
  if (isa<tensor::CollapseShapeOp, tensor::ExpandShapeOp>(def)) {
    std::optional<SmallVector<ReassociationIndices>> reshape =
        getReshapeReassociation(def);
    if (!reshape)
      return {};
    src = def->getOperand(0);
    groups = std::move(*reshape);
    collapse = isa<tensor::CollapseShapeOp>(def);
  } else if (auto r = dyn_cast<tosa::ReshapeOp>(def)) {
    auto in = dyn_cast<RankedTensorType>(r.getInput1().getType());
    auto out = dyn_cast<RankedTensorType>(r.getType());
    if (!in || !out || !in.hasStaticShape() || !out.hasStaticShape())
      return {};
    std::optional<SmallVector<ReassociationIndices>> re =
        getReassociationIndicesForReshape(in, out);
    if (!re)
      return {};
    src = r.getInput1();
    groups = *re;
    collapse = in.getRank() > out.getRank();
  }
  if (src) {
    RankedTensorType st = srcType(src);
    if (!st.hasStaticShape())
      return {};
    Labels next(st.getRank(), DimLabel{DimLabel::Unit, {}, 1});
    if (collapse) {
      for (auto [r, group] : llvm::enumerate(groups)) {
        const DimLabel &l = t.dims[r];
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
        // Row/col/unit: one non-unit member keeps the label.
        unsigned nonUnit = 0;
        for (int64_t s : group)
          if (st.getDimSize(s) != 1) {
            next[s] = l;
            ++nonUnit;
          }
        if (nonUnit > 1)
          return {};
      }
    } else {
      for (auto [s, group] : llvm::enumerate(groups)) {
        SmallVector<DimLabel> kept;
        for (int64_t r : group)
          if (t.dims[r].role != DimLabel::Unit &&
              !(t.dims[r].role == DimLabel::Batch && t.dims[r].size == 1 &&
                group.size() > 1 && st.getDimSize(s) != 1))
            kept.push_back(t.dims[r]);
        if (kept.size() > 1)
          return {};
        if (kept.empty())
          continue; // stays Unit
        next[s] = kept[0];
        next[s].size = st.getDimSize(s);
      }
    }
    t.dims = std::move(next);
    t.ops.push_back(def);
    return src;
  }

  // Transposes.
  SmallVector<int64_t> perm;
  if (auto tr = dyn_cast<linalg::TransposeOp>(def)) {
    perm = llvm::to_vector(tr.getPermutation());
    src = tr.getInput();
  } else if (auto tr = dyn_cast<tosa::TransposeOp>(def)) {
    perm = llvm::to_vector(llvm::map_range(
        tr.getPerms(), [](int32_t p) { return (int64_t)p; }));
    src = tr.getInput1();
  } else if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def)) {
    AffineMap in = getCopyMap(linalgOp);
    if (in && in.isPermutation()) {
      // out[d] = in[map(d)]: source dim map(d) gets the label of result d.
      for (unsigned d = 0; d < in.getNumResults(); ++d)
        perm.push_back(0);
      AffineMap inv = inversePermutation(in);
      for (unsigned d = 0; d < in.getNumResults(); ++d)
        perm[d] = inv.getDimPosition(d);
      // perm[d] = result dim that reads source dim d; express as result->src.
      SmallVector<int64_t> resToSrc(in.getNumResults());
      for (unsigned r = 0; r < in.getNumResults(); ++r)
        resToSrc[r] = in.getDimPosition(r);
      // in maps result dims (loops) to source dims: src dim in(r) <- r.
      Labels next(in.getNumResults(), DimLabel{DimLabel::Unit, {}, 1});
      for (unsigned r = 0; r < in.getNumResults(); ++r)
        next[in.getDimPosition(r)] = t.dims[r];
      t.dims = std::move(next);
      t.ops.push_back(def);
      return linalgOp.getDpsInputOperand(0)->get();
    }
    // Broadcasts: linalg.broadcast, or a copy generic with a projected map.
    AffineMap bmap;
    if (auto b = dyn_cast<linalg::BroadcastOp>(def)) {
      bmap = b.getMatchingIndexingMap(b.getDpsInputOperand(0));
      src = b.getInput();
    } else if (in) {
      bmap = in;
      src = linalgOp.getDpsInputOperand(0)->get();
    }
    if (bmap) {
      RankedTensorType st = srcType(src);
      Labels next(st.getRank(), DimLabel{DimLabel::Unit, {}, 1});
      llvm::SmallBitVector read(t.dims.size());
      for (auto [s, r] : llvm::enumerate(bmap.getResults())) {
        if (auto d = dyn_cast<AffineDimExpr>(r)) {
          next[s] = t.dims[d.getPosition()];
          next[s].size = st.getDimSize(s);
          read.set(d.getPosition());
        } else if (st.getDimSize(s) != 1) {
          return {};
        }
      }
      for (unsigned r = 0; r < t.dims.size(); ++r) {
        if (read.test(r) || t.dims[r].size == 1)
          continue;
        if (t.dims[r].role != DimLabel::Batch)
          return {};
        t.reps.push_back(t.dims[r]);
      }
      t.dims = std::move(next);
      t.ops.push_back(def);
      return src;
    }
  }
  if (!perm.empty()) {
    Labels next(perm.size(), DimLabel{DimLabel::Unit, {}, 1});
    for (auto [r, p] : llvm::enumerate(perm))
      next[p] = t.dims[r];
    t.dims = std::move(next);
    t.ops.push_back(def);
    return src;
  }

  // Element-wise casts and (for Q) a constant scale, in any spelling.
  ExprBuilder builder;
  const Expr *e = builder.build(v);
  auto sameShape = [&](const Expr *x) -> Value {
    if (!x->origin || !x->originMap.isIdentity() ||
        cast<ShapedType>(x->origin.getType()).getShape() !=
            cast<ShapedType>(v.getType()).getShape() || x->origin == v)
      return {};
    return x->origin;
  };
  if (e->kind == Expr::Kind::Op && e->op == ExprOp::FCast) {
    if (Value x = sameShape(e->operands[0])) {
      t.ops.push_back(def);
      return x;
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
      return x;
    }
  }
  return {};
}

static Trace traceOperand(Value v, const Labels &dims, bool allowScale) {
  Trace t;
  t.dims = dims;
  while (Value next = traceStep(v, t, allowScale))
    v = next;
  t.source = v;
  return t;
}

/// Batch parts of a trace, sorted by path.
static Labels getBatchParts(const Labels &dims) {
  Labels parts;
  for (const DimLabel &l : dims)
    if (l.role == DimLabel::Batch)
      parts.push_back(l);
  llvm::sort(parts, [](const DimLabel &a, const DimLabel &b) {
    return a.path < b.path;
  });
  return parts;
}

/// How K or V relates to Q's batch parts: per Q part, the KV size; and the
/// group size of the (single) grouped part.
struct KVGrouping {
  SmallVector<int64_t> sizes;
  int64_t group = 1;
  int64_t groupedPart = -1;
};

static FailureOr<KVGrouping> matchKV(const Labels &qParts, const Trace &t) {
  Labels parts = getBatchParts(t.dims);
  KVGrouping g;
  unsigned used = 0;
  for (unsigned qi = 0; qi < qParts.size(); ++qi) {
    const DimLabel &q = qParts[qi];
    // Same part (MHA on this dim).
    auto same = llvm::find_if(parts, [&](const DimLabel &p) {
      return p.path == q.path;
    });
    if (same != parts.end()) {
      if (same->size != q.size)
        return failure();
      g.sizes.push_back(q.size);
      ++used;
      continue;
    }
    // A repeat of this whole part (MQA without a KV head dim).
    auto rep = llvm::find_if(t.reps, [&](const DimLabel &r) {
      return r.path == q.path;
    });
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
    auto kv = llvm::find_if(parts, [&](const DimLabel &p) {
      return p.path == kvPath;
    });
    auto r = llvm::find_if(t.reps, [&](const DimLabel &p) {
      return p.path == repPath;
    });
    if (kv == parts.end() || r == t.reps.end() || g.groupedPart >= 0 ||
        kv->size * r->size != q.size)
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
// Masks
//===----------------------------------------------------------------------===//

/// Keys admitted by a mask, as a band on d = j - i: lo <= d <= hi.
struct Band {
  std::optional<int64_t> lo, hi;
  void intersect(const Band &o) {
    if (o.lo)
      lo = lo ? std::max(*lo, *o.lo) : *o.lo;
    if (o.hi)
      hi = hi ? std::min(*hi, *o.hi) : *o.hi;
  }
};

/// Whether `v` is a masking value: -inf or the lowest finite f16/bf16/f32
/// (what frontends use as torch.finfo(dtype).min).
static bool isMaskingValue(double v) {
  return v == -INFINITY || v == -65504.0 || v == -3.3895313892515355e38 ||
         v == (double)-std::numeric_limits<float>::max();
}

/// a*i + b*j + c for integer index expressions.
struct Linear {
  int64_t i = 0, j = 0, c = 0;
};

static std::optional<Linear> linearize(const Expr *e, unsigned iDim,
                                       unsigned jDim) {
  switch (e->kind) {
  case Expr::Kind::Index:
    if (e->dim == iDim)
      return Linear{1, 0, 0};
    if (e->dim == jDim)
      return Linear{0, 1, 0};
    return std::nullopt;
  case Expr::Kind::Const:
    return Linear{0, 0, (int64_t)e->value};
  case Expr::Kind::Op: {
    if (e->op == ExprOp::IntCast)
      return linearize(e->operands[0], iDim, jDim);
    if (e->op != ExprOp::AddI && e->op != ExprOp::SubI)
      return std::nullopt;
    auto a = linearize(e->operands[0], iDim, jDim);
    auto b = linearize(e->operands[1], iDim, jDim);
    if (!a || !b)
      return std::nullopt;
    int64_t s = e->op == ExprOp::AddI ? 1 : -1;
    return Linear{a->i + s * b->i, a->j + s * b->j, a->c + s * b->c};
  }
  default:
    return std::nullopt;
  }
}

/// The band a predicate (or its negation) admits; only conjunctions of
/// comparisons between j - i and constants are bands.
static std::optional<Band> getBand(const Expr *pred, bool negate,
                                   unsigned iDim, unsigned jDim) {
  if (pred->kind != Expr::Kind::Op)
    return std::nullopt;
  if (pred->op == ExprOp::XOrI) {
    // xor with true is a negation.
    for (unsigned k = 0; k < 2; ++k)
      if (pred->operands[k]->isConst(1))
        return getBand(pred->operands[1 - k], !negate, iDim, jDim);
    return std::nullopt;
  }
  if ((pred->op == ExprOp::AndI && !negate) ||
      (pred->op == ExprOp::OrI && negate)) {
    auto a = getBand(pred->operands[0], negate, iDim, jDim);
    auto b = getBand(pred->operands[1], negate, iDim, jDim);
    if (!a || !b)
      return std::nullopt;
    a->intersect(*b);
    return a;
  }
  if (pred->op != ExprOp::CmpI)
    return std::nullopt;
  auto a = linearize(pred->operands[0], iDim, jDim);
  auto b = linearize(pred->operands[1], iDim, jDim);
  if (!a || !b)
    return std::nullopt;
  // x = a - b = s*(j - i) + c with s = +-1.
  int64_t xi = a->i - b->i, xj = a->j - b->j, c = a->c - b->c;
  if (!((xi == -1 && xj == 1) || (xi == 1 && xj == -1)))
    return std::nullopt;
  using P = arith::CmpIPredicate;
  auto p = static_cast<P>(pred->predicate);
  // Unsigned comparisons are signed ones when both sides are non-negative:
  // a bare index or a non-negative constant.
  auto nonNegative = [](const Linear &l) {
    return (l.i == 0 && l.j == 0 && l.c >= 0) ||
           (l.c == 0 && ((l.i == 1 && l.j == 0) || (l.i == 0 && l.j == 1)));
  };
  if (nonNegative(*a) && nonNegative(*b)) {
    switch (p) {
    case P::ult: p = P::slt; break;
    case P::ule: p = P::sle; break;
    case P::ugt: p = P::sgt; break;
    case P::uge: p = P::sge; break;
    default: break;
    }
  }
  if (negate) {
    switch (p) {
    case P::slt: p = P::sge; break;
    case P::sle: p = P::sgt; break;
    case P::sgt: p = P::sle; break;
    case P::sge: p = P::slt; break;
    default: return std::nullopt;
    }
  }
  // Normalize to d = j - i compared with k: for s = -1, x = -(d) + c, so
  // x < 0 <=> d > c.
  Band band;
  bool flip = xj == -1;
  int64_t k = flip ? c : -c; // d OP k (before flipping OP)
  if (flip) {
    switch (p) {
    case P::slt: p = P::sgt; break;
    case P::sle: p = P::sge; break;
    case P::sgt: p = P::slt; break;
    case P::sge: p = P::sle; break;
    default: break;
    }
  }
  switch (p) {
  case P::slt: band.hi = k - 1; break;
  case P::sle: band.hi = k; break;
  case P::sgt: band.lo = k + 1; break;
  case P::sge: band.lo = k; break;
  case P::eq: band.lo = k; band.hi = k; break;
  default: return std::nullopt;
  }
  return band;
}

/// The band admitted by a constant mask read at `map` over the space, where
/// `admitted(value)` says whether an element admits its key. Fails unless
/// the mask is the same for every batch index and exactly a band.
static std::optional<Band>
getConstantMaskBand(DenseElementsAttr attr, AffineMap map, unsigned iDim,
                    unsigned jDim, int64_t sq, int64_t sk,
                    function_ref<std::optional<bool>(Attribute)> admitted) {
  auto type = cast<ShapedType>(attr.getType());
  // Batch dims must be broadcast; i and j read directly or broadcast.
  int64_t iPos = -1, jPos = -1;
  for (auto [pos, r] : llvm::enumerate(map.getResults())) {
    if (auto d = dyn_cast<AffineDimExpr>(r)) {
      if (d.getPosition() == iDim)
        iPos = pos;
      else if (d.getPosition() == jDim)
        jPos = pos;
      else if (type.getDimSize(pos) != 1)
        return std::nullopt;
    } else if (type.getDimSize(pos) != 1) {
      return std::nullopt;
    }
  }
  SmallVector<int64_t> strides = computeStrides(type.getShape());
  auto values = attr.getValues<Attribute>();
  SmallVector<std::pair<int64_t, int64_t>> rows(sq);
  for (int64_t i = 0; i < sq; ++i) {
    int64_t a = sk, b = 0; // admitted keys [a, b), must be contiguous
    int64_t count = 0;
    for (int64_t j = 0; j < sk; ++j) {
      int64_t idx = (iPos >= 0 ? i * strides[iPos] : 0) +
                    (jPos >= 0 ? j * strides[jPos] : 0);
      std::optional<bool> ok = admitted(values[idx]);
      if (!ok)
        return std::nullopt;
      if (*ok) {
        a = std::min(a, j);
        b = j + 1;
        ++count;
      }
    }
    if (count == 0)
      a = b = 0;
    else if (count != b - a)
      return std::nullopt;
    rows[i] = {a, b};
  }
  // Candidate band from rows whose ends are not clamped, then exact check.
  Band band;
  for (int64_t i = 0; i < sq; ++i) {
    auto [a, b] = rows[i];
    if (a == b)
      continue;
    if (a > 0)
      band.lo = band.lo ? std::min(*band.lo, a - i) : a - i;
    if (b < sk)
      band.hi = band.hi ? std::max(*band.hi, b - 1 - i) : b - 1 - i;
  }
  for (int64_t i = 0; i < sq; ++i) {
    int64_t a = band.lo ? std::max<int64_t>(0, i + *band.lo) : 0;
    int64_t b = band.hi ? std::min<int64_t>(sk, i + *band.hi + 1) : sk;
    if (a >= b)
      a = b = 0;
    if (rows[i] != std::make_pair(a, b))
      return std::nullopt;
  }
  return band;
}

/// The mask attribute admitting exactly `band` (bottom-right aligned).
static std::optional<MaskAttr> getMaskAttr(MLIRContext *ctx, const Band &band,
                                           int64_t sq, int64_t sk) {
  // Query row i sits at p = i + off; d = j - i.
  int64_t off = sk - sq;
  std::optional<int64_t> right, left;
  if (band.hi)
    right = *band.hi - off;
  if (band.lo)
    left = off - *band.lo;
  if ((right && *right < 0) || (left && *left < 0))
    return std::nullopt;
  if (!left && !right)
    return MaskAttr::getNone(ctx);
  if (!left && *right == 0)
    return MaskAttr::getCausal(ctx);
  // An unbounded side becomes an extent that reaches past every key.
  return MaskAttr::getWindow(ctx, left.value_or(sk), right.value_or(sq));
}

//===----------------------------------------------------------------------===//
// The match
//===----------------------------------------------------------------------===//

/// What attn-fuse found, ready for the rewrite.
struct AttentionMatch {
  Contraction qk, pv;
  Trace q, k, v;
  Labels qParts;
  KVGrouping kGroup;
  int64_t sq = 0, sk = 0, d = 0, dv = 0;
  Band band;
  double scale = 1.0;
  std::optional<double> softcap;
  Value bias;
  AffineMap biasMap;
  SmallVector<SmallVector<int64_t, 4>> spacePaths;
  SetVector<Operation *> absorbed;
};

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
static Operation *getScoresContraction(Value t) {
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

/// Peels masks, bias, softcap and scale off the logits. Returns the scores
/// leaf, or null.
static const Expr *matchLogits(const Expr *l, AttentionMatch &m,
                               unsigned iDim, unsigned jDim,
                               int64_t sq, int64_t sk) {
  enum Stage { Masks = 0, Softcap = 1, Scale = 2 } stage = Masks;
  MLIRContext *ctx = nullptr;
  (void)ctx;
  while (true) {
    l = stripCasts(l);
    if (l->kind == Expr::Kind::Tensor && l->map.isIdentity() &&
        getScoresContraction(l->tensor))
      return l;
    if (l->kind != Expr::Kind::Op || l->operands.empty())
      return nullptr;
    bool selectMaskOk = stage == Masks || (stage == Scale && !m.softcap);

    // select(pred, x, NEG) / select(pred, NEG, x)
    if (l->op == ExprOp::Select && selectMaskOk) {
      const Expr *pred = l->operands[0];
      for (unsigned k : {1u, 2u}) {
        std::optional<double> neg = getConstant(l->operands[k == 1 ? 2 : 1]);
        const Expr *x = l->operands[k];
        if (!neg || !isMaskingValue(*neg) || !readsScores(x))
          continue;
        bool negate = k == 2;
        std::optional<Band> band;
        if (pred->kind == Expr::Kind::ConstTensor) {
          band = getConstantMaskBand(
              pred->constant, pred->map, iDim, jDim, sq, sk,
              [&](Attribute a) -> std::optional<bool> {
                auto b = dyn_cast<IntegerAttr>(a);
                if (!b)
                  return std::nullopt;
                return b.getValue().isZero() == negate;
              });
        } else {
          band = getBand(pred, negate, iDim, jDim);
        }
        if (!band)
          return nullptr;
        m.band.intersect(*band);
        l = x;
        goto next;
      }
      return nullptr;
    }

    // x + mask / x + bias
    if (l->op == ExprOp::Add && stage == Masks) {
      for (unsigned k = 0; k < 2; ++k) {
        const Expr *x = l->operands[k], *mask = l->operands[1 - k];
        if (!readsScores(x) || readsScores(mask))
          continue;
        const Expr *sm = stripCasts(mask);
        if (sm->isConst(0)) {
          l = x;
          goto next;
        }
        if (sm->kind == Expr::Kind::Op && sm->op == ExprOp::Select) {
          auto t = getConstant(sm->operands[1]), f = getConstant(sm->operands[2]);
          if (t && f && ((*t == 0 && isMaskingValue(*f)) ||
                         (*f == 0 && isMaskingValue(*t)))) {
            std::optional<Band> band =
                getBand(sm->operands[0], /*negate=*/*t != 0, iDim, jDim);
            if (!band)
              return nullptr;
            m.band.intersect(*band);
            l = x;
            goto next;
          }
        }
        if (sm->kind == Expr::Kind::ConstTensor) {
          std::optional<Band> band = getConstantMaskBand(
              sm->constant, sm->map, iDim, jDim, sq, sk,
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
          if (band) {
            m.band.intersect(*band);
            l = x;
            goto next;
          }
        }
        // Any other tensor is an additive bias, kept as is.
        if (m.bias || !mask->origin)
          return nullptr;
        m.bias = mask->origin;
        m.biasMap = mask->originMap;
        l = x;
        goto next;
      }
      return nullptr;
    }

    // softcap: c * tanh(x / c) or c * tanh(x * (1/c)).
    if (l->op == ExprOp::Mul && stage == Masks) {
      for (unsigned k = 0; k < 2; ++k) {
        std::optional<double> c = getConstant(l->operands[1 - k]);
        const Expr *t = stripCasts(l->operands[k]);
        if (!c || !(*c > 0) || !std::isfinite(*c) ||
            t->kind != Expr::Kind::Op || t->op != ExprOp::Tanh)
          continue;
        const Expr *in = stripCasts(t->operands[0]);
        if (in->kind != Expr::Kind::Op)
          return nullptr;
        const Expr *x = nullptr;
        if (in->op == ExprOp::Div && getConstant(in->operands[1]) == *c)
          x = in->operands[0];
        for (unsigned q = 0; q < 2 && !x && in->op == ExprOp::Mul; ++q) {
          std::optional<double> inv = getConstant(in->operands[1 - q]);
          if (inv && std::fabs(*inv * *c - 1.0) < 1e-6)
            x = in->operands[q];
        }
        if (!x)
          return nullptr;
        m.softcap = *c;
        stage = Softcap;
        l = x;
        goto next;
      }
    }

    // scale: x * c, c * x, x / c.
    if ((l->op == ExprOp::Mul || l->op == ExprOp::Div)) {
      for (unsigned k = 0; k < 2; ++k) {
        if (l->op == ExprOp::Div && k == 1)
          break;
        std::optional<double> c = getConstant(l->operands[1 - k]);
        if (!c || !(*c > 0) || !std::isfinite(*c) ||
            !readsScores(l->operands[k]))
          continue;
        m.scale *= l->op == ExprOp::Mul ? *c : 1.0 / *c;
        stage = Scale;
        l = l->operands[k];
        goto next;
      }
    }
    return nullptr;
  next:;
  }
}

/// Runs the whole match for P·V contraction `pvOp`.
static FailureOr<AttentionMatch> matchAttention(Operation *pvOp,
                                                std::string &why) {
  AttentionMatch m;
  auto fail = [&](const char *reason) {
    why = reason;
    return failure();
  };
  FailureOr<Contraction> pv = getContraction(pvOp);
  if (failed(pv))
    return fail("not a contraction");
  m.pv = *pv;
  // P is [batch..., i, j] in this order.
  unsigned nb = pv->numBatch;
  for (unsigned t = 0; t < nb; ++t)
    if (pv->lhsDims[t].role != DimLabel::Batch || pv->lhsDims[t].path[0] != t)
      return fail("P is not read as [batch..., i, j]");
  if (pv->lhsDims[nb].role != DimLabel::Row ||
      pv->lhsDims[nb + 1].role != DimLabel::Col)
    return fail("P is not read as [batch..., i, j]");

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
  auto spaceType = cast<RankedTensorType>(space.getType());
  if (!spaceType.hasStaticShape())
    return fail("P has a dynamic shape");
  unsigned rank = spaceType.getRank();
  unsigned iDim = rank - 2, jDim = rank - 1;
  m.sq = spaceType.getDimSize(iDim);
  m.sk = spaceType.getDimSize(jDim);

  ExprBuilder builder;
  const Expr *p = builder.build(space);
  const Expr *logits = matchSoftmax(p, jDim);
  if (!logits)
    return fail("no softmax over the key dim");
  const Expr *scores = matchLogits(logits, m, iDim, jDim, m.sq, m.sk);
  if (!scores)
    return fail("the logits are not scale/softcap/mask/bias of Q·Kᵀ");
  for (Operation *op : builder.getVisitedOps())
    m.absorbed.insert(op);

  // The Q·Kᵀ contraction and the space's batch paths seen from it.
  Operation *qkOp = getScoresContraction(scores->tensor);
  m.qk = *getContraction(qkOp);
  if (m.qk.numBatch != nb)
    return fail("Q·Kᵀ and P·V batch ranks differ");
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
    return fail("Q·Kᵀ and P·V batch reshapes differ");
  m.spacePaths = qkSpacePaths;
  m.absorbed.insert(qkOp);
  m.absorbed.insert(pvOp);

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
    return fail("Q is repeated");
  m.scale *= m.q.scale;

  m.qParts = getBatchParts(m.q.dims);
  if (m.qParts.size() > 2)
    return fail("more than two batch dims");
  // Each Q part lies under one space batch dim.
  for (const DimLabel &part : m.qParts)
    if (llvm::none_of(m.spacePaths, [&](ArrayRef<int64_t> sp) {
          return isPrefix(sp, part.path) || isPrefix(part.path, sp);
        }))
      return fail("Q batch dims do not match the scores");
  FailureOr<KVGrouping> kg = matchKV(m.qParts, m.k);
  FailureOr<KVGrouping> vg = matchKV(m.qParts, m.v);
  if (failed(kg) || failed(vg) || kg->sizes != vg->sizes ||
      kg->group != vg->group || kg->groupedPart != vg->groupedPart)
    return fail("K/V heads do not match Q heads");
  // Only the innermost part (the heads) may be grouped.
  if (kg->groupedPart >= 0 && kg->groupedPart + 1 != (int64_t)m.qParts.size())
    return fail("the grouped dim is not the innermost batch dim");
  m.kGroup = *kg;

  auto sizeOf = [](const Trace &t, DimLabel::Role role) -> int64_t {
    for (const DimLabel &l : t.dims)
      if (l.role == role)
        return l.size;
    return -1;
  };
  m.d = sizeOf(m.q, DimLabel::Col);
  if (sizeOf(m.q, DimLabel::Row) != m.sq || sizeOf(m.k, DimLabel::Row) != m.sk ||
      sizeOf(m.v, DimLabel::Row) != m.sk || sizeOf(m.k, DimLabel::Col) != m.d ||
      m.d <= 0)
    return fail("sequence lengths or head dims do not line up");
  m.dv = sizeOf(m.v, DimLabel::Col);
  if (m.dv <= 0)
    return fail("sequence lengths or head dims do not line up");
  for (const Trace *t : {&m.q, &m.k, &m.v})
    for (Operation *op : t->ops)
      m.absorbed.insert(op);

  // The scores must not be used outside the chain.
  SetVector<Operation *> forward;
  getForwardSlice(qkOp, &forward);
  SetVector<Operation *> chain;
  chain.insert(qkOp);
  for (Operation *op : forward)
    if (m.absorbed.contains(op))
      chain.insert(op);
  for (Operation *op : chain) {
    if (op == pvOp)
      continue;
    for (Operation *user : op->getUsers())
      if (!chain.contains(user))
        return fail("intermediate scores are used outside the attention");
  }
  return m;
}

//===----------------------------------------------------------------------===//
// The rewrite
//===----------------------------------------------------------------------===//

/// Reshapes `v` to `shape` (same elements, only unit dims and splits/merges
/// of adjacent dims); null if impossible.
static Value reshapeTo(RewriterBase &rewriter, Location loc, Value v,
                       ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getShape() == shape)
    return v;
  auto target = RankedTensorType::get(shape, type.getElementType());
  std::optional<SmallVector<ReassociationIndices>> re =
      getReassociationIndicesForReshape(type, target);
  if (!re)
    return {};
  if (target.getRank() > type.getRank())
    return tensor::ExpandShapeOp::create(rewriter, loc, target, v, *re);
  if (target.getRank() < type.getRank())
    return tensor::CollapseShapeOp::create(rewriter, loc, target, v, *re);
  return {};
}

/// Whether `reshapeTo` would succeed.
static bool canReshape(ArrayRef<int64_t> from, ArrayRef<int64_t> to,
                       MLIRContext *ctx) {
  if (from == to)
    return true;
  Type f32 = Float32Type::get(ctx);
  return from.size() != to.size() &&
         getReassociationIndicesForReshape(RankedTensorType::get(from, f32),
                                           RankedTensorType::get(to, f32))
             .has_value();
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

/// Brings a traced source to the 4-D bhsd shape `shape`.
static Value emitOperand(RewriterBase &rewriter, Location loc, const Trace &t,
                         ArrayRef<int64_t> shape) {
  Value v = t.source;
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> order = getCanonicalOrder(t.dims);
  if (!llvm::equal(order, llvm::seq<int64_t>(0, order.size()))) {
    SmallVector<int64_t> permuted;
    for (int64_t d : order)
      permuted.push_back(type.getDimSize(d));
    Value init = tensor::EmptyOp::create(rewriter, loc, permuted,
                                         type.getElementType());
    v = linalg::TransposeOp::create(rewriter, loc, v, init, order)->getResult(0);
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

static LogicalResult fuseAttention(RewriterBase &rewriter, Operation *pvOp,
                                   std::string &why) {
  auto fail = [&](const char *reason) {
    why = reason;
    return failure();
  };
  FailureOr<AttentionMatch> match = matchAttention(pvOp, why);
  if (failed(match))
    return failure(); // why is set
  AttentionMatch &m = *match;
  MLIRContext *ctx = pvOp->getContext();
  Location loc = pvOp->getLoc();

  std::optional<MaskAttr> mask = getMaskAttr(ctx, m.band, m.sq, m.sk);
  if (!mask)
    return fail("the mask is not a band that attn.attention can express");

  // Problem sizes: [B, H] from Q's batch parts, padded with leading 1s.
  SmallVector<int64_t> qb, kb;
  for (auto [idx, part] : llvm::enumerate(m.qParts)) {
    qb.push_back(part.size);
    kb.push_back(m.kGroup.sizes[idx]);
  }
  while (qb.size() < 2) {
    qb.insert(qb.begin(), 1);
    kb.insert(kb.begin(), 1);
  }
  SmallVector<int64_t> qShape = {qb[0], qb[1], m.sq, m.d};
  SmallVector<int64_t> kShape = {kb[0], kb[1], m.sk, m.d};
  SmallVector<int64_t> vShape = {kb[0], kb[1], m.sk, m.dv};
  SmallVector<int64_t> oShape = {qb[0], qb[1], m.sq, m.dv};
  // Empty problems (a zero batch or head count) are left alone: nothing to
  // fuse, and no head grouping to read off them.
  if (llvm::is_contained(qb, 0) || llvm::is_contained(kb, 0) || m.sq == 0 ||
      m.sk == 0 || m.d == 0 || m.dv == 0)
    return fail("an empty batch, head count, sequence or head dim");
  if (qb[0] != kb[0] || qb[1] % kb[1] != 0)
    return fail("KV heads do not divide query heads");
  for (ArrayRef<int64_t> shape : {qShape, kShape, vShape, oShape})
    if (!isWithinSizeBounds(shape))
      return fail("sizes beyond what attn.attention takes (dims up to "
                  "2^31 - 1, 2^48 elements)");
  if (!canReshape(permutedShape(m.q), qShape, ctx) ||
      !canReshape(permutedShape(m.k), kShape, ctx) ||
      !canReshape(permutedShape(m.v), vShape, ctx))
    return fail("Q, K or V cannot be reshaped to [B, H, S, D]");

  // Element types: compute in the sources' type when the result wants it,
  // otherwise in f32.
  Type srcElt = getElementTypeOrSelf(m.q.source.getType());
  for (const Trace *t : {&m.k, &m.v})
    if (getElementTypeOrSelf(t->source.getType()) != srcElt)
      srcElt = Float32Type::get(ctx);
  for (const Trace *t : {&m.q, &m.k, &m.v})
    if (!isAttnElementType(getElementTypeOrSelf(t->source.getType())))
      return fail("unsupported element type");
  Value root = m.pv.result;
  Type rootElt = getElementTypeOrSelf(root.getType());
  if (rootElt != srcElt)
    if (Operation *trunc = getTruncatingUser(root, srcElt)) {
      root = trunc->getResult(0);
      rootElt = srcElt;
      m.absorbed.insert(trunc);
    }
  Type elt = rootElt == srcElt ? srcElt : Float32Type::get(ctx);
  if (!isAttnElementType(rootElt) && !isa<Float64Type>(rootElt))
    return fail("unsupported element type");
  auto rootType = cast<RankedTensorType>(root.getType());
  if (!canReshape(oShape, rootType.getShape(), ctx))
    return fail("the output cannot be reshaped back");

  // Bias: [B|1, H|1, Sq|1, Sk|1], its dims in space order.
  Value bias;
  SmallVector<int64_t> biasShape;
  if (m.bias) {
    auto biasType = cast<RankedTensorType>(m.bias.getType());
    if (!biasType.hasStaticShape())
      return fail("dynamic bias");
    unsigned rank = m.biasMap.getNumDims();
    llvm::SmallBitVector read(rank);
    int64_t last = -1;
    for (auto [pos, r] : llvm::enumerate(m.biasMap.getResults())) {
      if (auto d = dyn_cast<AffineDimExpr>(r)) {
        if ((int64_t)d.getPosition() <= last)
          return fail("transposed bias"); // transposed bias
        last = d.getPosition();
        read.set(d.getPosition());
      } else if (biasType.getDimSize(pos) != 1) {
        return fail("bias broadcast is not expressible");
      }
    }
    // Q parts under a space dim take its size if the bias reads that dim.
    for (const DimLabel &part : m.qParts) {
      bool partRead = false, partBroadcast = false;
      for (auto [s, sp] : llvm::enumerate(m.spacePaths))
        if (isPrefix(sp, part.path) || isPrefix(part.path, sp))
          (read.test(s) ? partRead : partBroadcast) = true;
      if (partRead && partBroadcast)
        return fail("bias broadcast is not expressible");
      biasShape.push_back(partRead ? part.size : 1);
    }
    while (biasShape.size() < 2)
      biasShape.insert(biasShape.begin(), 1);
    biasShape.push_back(read.test(rank - 2) ? m.sq : 1);
    biasShape.push_back(read.test(rank - 1) ? m.sk : 1);
    if (!canReshape(biasType.getShape(), biasShape, ctx))
      return fail("bias cannot be reshaped");
    Type biasElt = biasType.getElementType();
    if (biasElt != elt && !biasElt.isF32() &&
        !(isa<FloatType>(biasElt) && biasElt.getIntOrFloatBitWidth() < 32))
      return fail("unsupported bias element type");
  }

  // Layout: when Q, K and V all come from [B, S, H, D] tensors (the layout
  // of the projections before HF's .transpose(1, 2)), read them in place
  // with layout = bshd instead of materializing transposes.
  bool bshd = m.qParts.size() == 2 && isBSHD(m.q) && isBSHD(m.k) && isBSHD(m.v);
  auto toBSHD = [](ArrayRef<int64_t> s) {
    return SmallVector<int64_t>{s[0], s[2], s[1], s[3]};
  };
  auto sourceShape = [](const Trace &t) {
    return cast<RankedTensorType>(t.source.getType()).getShape();
  };
  if (bshd && (!canReshape(sourceShape(m.q), toBSHD(qShape), ctx) ||
               !canReshape(sourceShape(m.k), toBSHD(kShape), ctx) ||
               !canReshape(sourceShape(m.v), toBSHD(vShape), ctx)))
    bshd = false;

  // Rewrite.
  rewriter.setInsertionPoint(root.getDefiningOp());
  auto operand = [&](const Trace &t, ArrayRef<int64_t> shape) {
    Value x = bshd ? reshapeTo(rewriter, loc, t.source, toBSHD(shape))
                   : emitOperand(rewriter, loc, t, shape);
    return convert(rewriter, loc, x, elt);
  };
  Value q = operand(m.q, qShape);
  Value k = operand(m.k, kShape);
  Value v = operand(m.v, vShape);
  if (m.bias) {
    bias = reshapeTo(rewriter, loc, m.bias, biasShape);
    Type biasElt = getElementTypeOrSelf(bias.getType());
    if (biasElt != elt && !biasElt.isF32())
      bias = convert(rewriter, loc, bias, Float32Type::get(ctx));
  }
  auto outType = RankedTensorType::get(bshd ? toBSHD(oShape) : oShape, elt);
  FloatAttr softcap;
  if (m.softcap)
    softcap = rewriter.getF32FloatAttr(*m.softcap);
  auto attn = AttentionOp::create(
      rewriter, loc, outType, /*lse=*/Type(), q, k, v, bias, /*sinks=*/Value(),
      bshd ? Layout::BSHD : Layout::BHSD, mask->isNone() ? MaskAttr() : *mask,
      rewriter.getF32FloatAttr(m.scale), softcap);
  Value out = attn.getOutput();
  if (bshd) {
    // The replaced value is [.., H, Sq, Dv]; a following transpose back to
    // [B, S, H, D] folds away under canonicalization.
    Value init = tensor::EmptyOp::create(rewriter, loc, oShape, elt);
    out = linalg::TransposeOp::create(rewriter, loc, out, init,
                                      ArrayRef<int64_t>{0, 2, 1, 3})
              ->getResult(0);
  }
  out = reshapeTo(rewriter, loc, out, rootType.getShape());
  out = convert(rewriter, loc, out, rootElt);
  rewriter.replaceAllUsesWith(root, out);

  // Erase what became dead: the absorbed ops and, transitively, producers
  // that only they used. Ops that were dead before are never visited.
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
  return success();
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

/// Fuse the attention whose P·V is a linalg contraction.
struct FuseLinalgAttention
    : public OpInterfaceRewritePattern<linalg::LinalgOp> {
  using OpInterfaceRewritePattern::OpInterfaceRewritePattern;
  LogicalResult matchAndRewrite(linalg::LinalgOp op,
                                PatternRewriter &rewriter) const override {
    std::string why;
    if (failed(fuseAttention(rewriter, op, why)))
      return rewriter.notifyMatchFailure(op, why);
    return success();
  }
};

/// Fuse the attention whose P·V is a tosa.matmul.
struct FuseTosaAttention : public OpRewritePattern<tosa::MatMulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(tosa::MatMulOp op,
                                PatternRewriter &rewriter) const override {
    std::string why;
    if (failed(fuseAttention(rewriter, op, why)))
      return rewriter.notifyMatchFailure(op, why);
    return success();
  }
};

/// Misses worth reporting: the contraction consumes a softmax.
static bool isLikelyAttention(StringRef why) {
  return why != "not a contraction" && why != "no softmax over the key dim" &&
         !why.starts_with("P ");
}

struct AttnFusePass : public attn::impl::AttnFuseBase<AttnFusePass> {
  using AttnFuseBase::AttnFuseBase;
  void runOnOperation() override {
    // One pass over the candidate P·V contractions in program order. A
    // single walk (no greedy fixpoint) leaves every op that is not part of a
    // recognized attention exactly as it was: no folding, no DCE elsewhere.
    SmallVector<Operation *> candidates;
    getOperation()->walk([&](Operation *op) {
      if (isa<linalg::LinalgOp, tosa::MatMulOp>(op))
        candidates.push_back(op);
    });
    struct Tracker : public RewriterBase::Listener {
      DenseSet<Operation *> erased;
      void notifyOperationErased(Operation *op) override { erased.insert(op); }
    } tracker;
    IRRewriter rewriter(&getContext(), &tracker);
    for (Operation *op : candidates) {
      if (tracker.erased.contains(op))
        continue;
      std::string why;
      if (failed(fuseAttention(rewriter, op, why)) && reportMisses &&
          isLikelyAttention(why))
        op->emitRemark("attn-fuse: not fused: ") << why;
    }
  }
};

} // namespace

void mlir::attn::populateAttnFusePatterns(RewritePatternSet &patterns) {
  patterns.add<FuseLinalgAttention, FuseTosaAttention>(patterns.getContext());
}
