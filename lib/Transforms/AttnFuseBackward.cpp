//===- AttnFuseBackward.cpp - find the backward of unfused attention ------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// In a training graph the forward's P = softmax(L), L = mask(bias +
// softcap(c · Q·Kᵀ)), O = P·V (AttnFuseMatch.cpp) also feeds the backward
// that autograd builds for it. Given the gradient dO of O, the matcher
// accepts, with every contraction and view compared by the labels of its
// traced operands (AttnFuseMatch.h), so any layout the views spell (bhsd,
// or bshd through transposes as torch's transpose(1, 2) emits) and linalg
// or tosa ops alike (tosa.matmul, tosa.transpose, tosa.reshape, tosa
// element-wise ops and keep-dim reductions):
//
//   1. dV = Pᵀ·dO: a contraction over i of P (the P that P·V reads, through
//      the same views and casts) and dO; dO is read like the output,
//      [batch..., Sq, Dv], with Q's batch parts.
//   2. dP = dO·Vᵀ: a contraction over dv of the same dO and the forward's V
//      (repeated the same way), read in the scores space [batch..., i, j].
//   3. dS: what dQ and dK contract, traced through views and casts to a
//      tensor of the scores space, as a product of
//        - the softmax backward, P ⊙ (dP − R) or dP ⊙ P − P ⊙ R, where R is
//          rowsum_j(dP ⊙ P) (autograd) or Delta = rowsum_dv(dO ⊙ O)
//          (FlashAttention), read broadcast along j; each rowsum a
//          reduction of the product, or one reduction generic whose body
//          multiplies and adds; P a factor whole, even where P itself is a
//          product (tosa's e · 1/sum);
//        - 1 − t·t, t the forward's tanh, exactly when the forward has a
//          softcap;
//        - constants: the scale, and softcap's c and 1/c;
//        - optionally masks select(pred, ·, 0) that zero only keys the
//          forward masks (P, hence dS, is 0 there already).
//   4. dQ = dS·K and dK = dSᵀ·Q: contractions over j and i of dS with the
//      forward's K (repeated the same way) and Q (unscaled, or scaled as the
//      forward scaled it).
//   5. Each gradient followed from its contraction to the value it ends in,
//      through batch reshapes (tensor or tosa), transposes and casts; for
//      dK and dV through the sum over the GQA group (the repeated batch
//      part); for dQ through a constant scale. It ends where its batch
//      parts are those of Q (dQ) or K and V (dK, dV).
//   6. The scale: dS's constant times dQ's tail scale, and times the scale
//      on the Q that dK reads, each equals the forward's scale.
//
// Each of dQ, dK and dV may be missing (autograd builds no chain for an
// input that needs no gradient) or dead, as long as one is there; with dQ or
// dK there, so is dS (and dP); without dV, dO is what dP contracts with V.
// Each that is there passes every check above. Anything else --
// a transpose over the wrong dims, another P or V, a rowsum over another
// dim, another scale, a mask the forward does not have -- leaves the
// backward unfused, and with it the forward, whose scores then escape.
//
//===----------------------------------------------------------------------===//

#include "AttnFuseMatch.h"

#include "attn/Transforms/Transforms.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fuse;

//===----------------------------------------------------------------------===//
// Labels
//===----------------------------------------------------------------------===//

static bool sameLabels(const Labels &a, const Labels &b) {
  if (a.size() != b.size())
    return false;
  for (auto [x, y] : llvm::zip_equal(a, b))
    if (x.role != y.role || x.path != y.path || x.size != y.size)
      return false;
  return true;
}

static Labels swapRowCol(Labels dims) {
  for (DimLabel &l : dims)
    if (l.role == DimLabel::Row)
      l.role = DimLabel::Col;
    else if (l.role == DimLabel::Col)
      l.role = DimLabel::Row;
  return dims;
}

/// Batch parts other than size-1 ones (reshapes may add or drop those).
static Labels getNonUnitParts(const Labels &dims) {
  Labels parts;
  for (const DimLabel &l : getBatchParts(dims))
    if (l.size != 1)
      parts.push_back(l);
  return parts;
}

static bool closeTo(double a, double b) {
  return std::fabs(a - b) <= 1e-6 * std::fabs(b);
}

static RankedTensorType getTensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

/// The scores space labelled canonically: batch dims with their paths, Row
/// = i, Col = j.
static Labels getSpaceLabels(const AttentionMatch &m) {
  RankedTensorType type = getTensorType(m.space);
  Labels dims;
  for (unsigned s = 0; s < m.iDim; ++s)
    dims.push_back({DimLabel::Batch, m.spacePaths[s], type.getDimSize(s)});
  dims.push_back({DimLabel::Row, {}, type.getDimSize(m.iDim)});
  dims.push_back({DimLabel::Col, {}, type.getDimSize(m.jDim)});
  return dims;
}

//===----------------------------------------------------------------------===//
// Backward contractions
//===----------------------------------------------------------------------===//

namespace {
/// What one operand of a backward contraction must trace to: `source` (any
/// when null) with canonical labels `dims` and repeats `reps` (any when
/// `anyDims`). `contractedIsRow`: the contracted dim is the operand's
/// canonical Row (getContraction calls it Col, so the labels are swapped).
struct Expected {
  Value source;
  Labels dims, reps;
  bool contractedIsRow = false;
  bool allowScale = false;
  bool anyDims = false;
};

/// A matched backward contraction: its operands playing `a` and `b`, traced
/// and labelled canonically, and its result labelled with a's free dim as
/// Row and b's as Col.
struct GradContraction {
  Operation *op = nullptr;
  Trace a, b;
  Labels result;
};
} // namespace

static bool fits(Trace &t, const Expected &e) {
  if (e.contractedIsRow)
    t.dims = swapRowCol(t.dims);
  if ((e.source && t.source != e.source) || (!e.allowScale && t.scale != 1.0))
    return false;
  return e.anyDims ||
         (sameLabels(t.dims, e.dims) && sameLabels(t.reps, e.reps));
}

/// Matches contraction `op` with one operand as `a` and the other as `b`.
static std::optional<GradContraction>
matchGradContraction(Operation *op, const Expected &a, const Expected &b) {
  FailureOr<Contraction> c = getContraction(op);
  if (failed(c))
    return std::nullopt;
  RankedTensorType type = getTensorType(c->result);
  for (bool swapped : {false, true}) {
    GradContraction g;
    g.op = op;
    g.a = traceOperand(swapped ? c->rhs : c->lhs,
                       swapped ? c->rhsDims : c->lhsDims, a.allowScale);
    g.b = traceOperand(swapped ? c->lhs : c->rhs,
                       swapped ? c->lhsDims : c->rhsDims, b.allowScale);
    if (!fits(g.a, a) || !fits(g.b, b))
      continue;
    unsigned nb = c->numBatch;
    for (unsigned t = 0; t < nb; ++t)
      g.result.push_back({DimLabel::Batch, {(int64_t)t}, type.getDimSize(t)});
    g.result.push_back(
        {swapped ? DimLabel::Col : DimLabel::Row, {}, type.getDimSize(nb)});
    g.result.push_back(
        {swapped ? DimLabel::Row : DimLabel::Col, {}, type.getDimSize(nb + 1)});
    return g;
  }
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Following a gradient forward to its end
//===----------------------------------------------------------------------===//

/// An expand/collapse_shape user, or a tosa.reshape of static shapes:
/// labels of its result.
static Value stepReshape(Operation *user, Labels &dims) {
  std::optional<SmallVector<ReassociationIndices>> groups;
  bool expand = isa<tensor::ExpandShapeOp>(user);
  if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(user)) {
    groups = attn::getReshapeReassociation(user);
  } else if (auto r = dyn_cast<tosa::ReshapeOp>(user)) {
    auto in = getTensorType(r.getInput1());
    auto out = getTensorType(r.getResult());
    if (!in.hasStaticShape() || !out.hasStaticShape())
      return {};
    groups = getReassociationIndicesForReshape(in, out);
    expand = out.getRank() > in.getRank();
  }
  if (!groups)
    return {};
  Value r = user->getResult(0);
  RankedTensorType rt = getTensorType(r);
  Labels next(rt.getRank(), DimLabel{DimLabel::Unit, {}, 1});
  if (failed(expand ? labelCollapseSource(*groups, rt, dims, next)
                    : labelExpandSource(*groups, rt, dims, next)))
    return {};
  dims = std::move(next);
  return r;
}

/// A transpose user (linalg, tosa, a permuting copy generic).
static Value stepTranspose(Operation *user, Labels &dims) {
  SmallVector<int64_t> perm;
  if (auto t = dyn_cast<linalg::TransposeOp>(user)) {
    perm = llvm::to_vector(t.getPermutation());
  } else if (auto t = dyn_cast<tosa::TransposeOp>(user)) {
    for (int32_t p : t.getPerms())
      perm.push_back(p);
  } else if (auto l = dyn_cast<linalg::LinalgOp>(user)) {
    AffineMap in = getCopyMap(l);
    if (!in || !in.isPermutation())
      return {};
    for (unsigned r = 0; r < in.getNumResults(); ++r)
      perm.push_back(in.getDimPosition(r));
  }
  if (perm.size() != dims.size())
    return {};
  Labels next;
  for (int64_t p : perm)
    next.push_back(dims[p]);
  dims = std::move(next);
  return user->getResult(0);
}

/// A sum of `v` over one dim whose label is in `sumParts` (the GQA group):
/// a linalg reduction of one input read in order, init 0, body addf.
static Value stepGroupSum(Operation *user, Value v, Labels &dims,
                          Labels &sumParts) {
  auto l = dyn_cast<linalg::LinalgOp>(user);
  if (!l || !l.hasPureTensorSemantics() || l.getNumDpsInputs() != 1 ||
      l.getNumDpsInits() != 1 || l.getNumReductionLoops() != 1 ||
      l.getDpsInputOperand(0)->get() != v || !l.getBlock())
    return {};
  Block *body = l.getBlock();
  auto yield = dyn_cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield && yield.getNumOperands() == 1
                 ? yield.getOperand(0).getDefiningOp<arith::AddFOp>()
                 : arith::AddFOp();
  Value in = body->getArgument(0), acc = body->getArgument(1);
  if (!add || !((add.getLhs() == in && add.getRhs() == acc) ||
                (add.getLhs() == acc && add.getRhs() == in)))
    return {};
  ExprBuilder initBuilder;
  if (!initBuilder.build(l.getDpsInitOperand(0)->get())->isConst(0) ||
      !l.getMatchingIndexingMap(l.getDpsInputOperand(0)).isIdentity())
    return {};
  SmallVector<utils::IteratorType> iters = l.getIteratorTypesArray();
  unsigned red =
      llvm::find(iters, utils::IteratorType::reduction) - iters.begin();
  auto summed = llvm::find_if(sumParts, [&](const DimLabel &p) {
    return sameLabels({p}, {dims[red]});
  });
  if (summed == sumParts.end())
    return {};
  Value r = user->getResult(0);
  RankedTensorType rt = getTensorType(r);
  Labels next;
  for (auto [pos, e] : llvm::enumerate(
           l.getMatchingIndexingMap(l.getDpsInitOperand(0)).getResults())) {
    if (auto d = dyn_cast<AffineDimExpr>(e); d && d.getPosition() != red) {
      next.push_back(dims[d.getPosition()]);
      next.back().size = rt.getDimSize(pos);
    } else if (isa<AffineConstantExpr>(e) && rt.getDimSize(pos) == 1) {
      next.push_back({DimLabel::Unit, {}, 1});
    } else {
      return {};
    }
  }
  sumParts.erase(summed);
  dims = std::move(next);
  return r;
}

/// An element-wise cast of `v`, or (if `allowScale`) a multiply or divide
/// by a constant.
static Value stepCastOrScale(Operation *user, Value v, double &scale,
                             bool allowScale) {
  if (user->getNumResults() != 1)
    return {};
  Value r = user->getResult(0);
  auto rt = dyn_cast<RankedTensorType>(r.getType());
  if (!rt || rt.getShape() != getTensorType(v).getShape())
    return {};
  ExprBuilder builder;
  const Expr *e = builder.build(r);
  auto isV = [&](const Expr *x) {
    return x->origin == v && x->originMap.isIdentity();
  };
  if (e->kind != Expr::Kind::Op)
    return {};
  if (e->op == ExprOp::FCast && isV(e->operands[0]))
    return r;
  if (!allowScale || (e->op != ExprOp::Mul && e->op != ExprOp::Div))
    return {};
  for (unsigned k = 0; k < 2; ++k) {
    if (e->op == ExprOp::Div && k == 1)
      break;
    std::optional<double> c = getConstant(e->operands[1 - k]);
    if (c && isV(e->operands[k])) {
      scale *= e->op == ExprOp::Mul ? *c : 1.0 / *c;
      return r;
    }
  }
  return {};
}

/// Follows gradient contraction `g` forward to the last value on its chain
/// of single uses whose batch parts are `parts`, having summed `sumParts`
/// and scaled by `wantScale` (no scale steps when it is 1).
static std::optional<GradientMatch>
followGradient(const GradContraction &g, const Labels &parts, Labels sumParts,
               double wantScale, SetVector<Operation *> &ops) {
  bool allowScale = wantScale != 1.0;
  constexpr unsigned kMaxSteps = 16;
  Value v = g.op->getResult(0);
  Labels dims = g.result;
  double scale = 1.0;
  SmallVector<Operation *> chain;
  std::optional<GradientMatch> end;
  unsigned endOps = 0;
  Labels wantParts = getNonUnitParts(parts);
  for (unsigned n = 0; n < kMaxSteps; ++n) {
    if (sumParts.empty() && closeTo(scale, wantScale) &&
        sameLabels(getNonUnitParts(dims), wantParts)) {
      end = GradientMatch{g.op, v, dims, scale};
      endOps = chain.size();
    }
    if (!v.hasOneUse())
      break;
    Operation *user = *v.getUsers().begin();
    Value next = stepReshape(user, dims);
    if (!next)
      next = stepTranspose(user, dims);
    if (!next)
      next = stepGroupSum(user, v, dims, sumParts);
    if (!next)
      next = stepCastOrScale(user, v, scale, allowScale);
    if (!next)
      break;
    chain.push_back(user);
    v = next;
  }
  if (end)
    ops.insert(chain.begin(), chain.begin() + endOps);
  return end;
}

//===----------------------------------------------------------------------===//
// The matcher
//===----------------------------------------------------------------------===//

namespace {
/// A product of factors: constants, masks select(pred, ·, 0), the rest.
struct Product {
  double constant = 1.0;
  SmallVector<const Expr *> factors;
  SmallVector<std::pair<const Expr *, bool>> masks; ///< (pred, negate)
};

/// Matches the backward of one forward attention (see the file header).
class BackwardMatcher {
public:
  BackwardMatcher(AttentionMatch &m) : m(m), space(getSpaceLabels(m)) {}

  LogicalResult match();

private:
  LogicalResult findContractions();
  LogicalResult matchDO(const Trace &t);
  FailureOr<double> matchScoresGrad(Value dS);
  LogicalResult matchSoftmaxGrad(ArrayRef<const Expr *> factors,
                                 double &constant);
  bool isSoftcapFactor(const Expr *e) const;
  bool isP(const Expr *e) const { return equal(stripCasts(e), pRef); }
  bool isDP(const Expr *e);
  bool isRowSum(const Expr *e);
  bool isDelta(const Expr *a, const Expr *b);
  bool masksAreForwards(ArrayRef<std::pair<const Expr *, bool>> masks);
  LogicalResult followGradients();
  void flatten(const Expr *e, Product &p) const;

  AttentionMatch &m;
  Labels space;
  ExprBuilder builder;
  const Expr *pRef = nullptr, *tanhRef = nullptr, *dPRef = nullptr;
  std::optional<GradContraction> dv, dq, dk, dP;
  BackwardMatch result;
  SetVector<Operation *> ops;
};
} // namespace

void BackwardMatcher::flatten(const Expr *e, Product &p) const {
  e = stripCasts(e);
  // P is a factor whole, even when it is itself a product (tosa's softmax
  // multiplies by the reciprocal of the sum).
  if (pRef && isP(e)) {
    p.factors.push_back(e);
    return;
  }
  if (std::optional<double> c = getConstant(e)) {
    p.constant *= *c;
    return;
  }
  if (e->kind == Expr::Kind::Op) {
    switch (e->op) {
    case ExprOp::Mul:
      flatten(e->operands[0], p);
      flatten(e->operands[1], p);
      return;
    case ExprOp::Div:
      if (std::optional<double> c = getConstant(e->operands[1])) {
        p.constant /= *c;
        flatten(e->operands[0], p);
        return;
      }
      break;
    case ExprOp::Neg:
      p.constant = -p.constant;
      flatten(e->operands[0], p);
      return;
    case ExprOp::Select:
      for (unsigned k : {1u, 2u}) {
        if (getConstant(e->operands[3 - k]) != 0.0)
          continue;
        p.masks.push_back({e->operands[0], /*negate=*/k == 2});
        flatten(e->operands[k], p);
        return;
      }
      break;
    default:
      break;
    }
  }
  p.factors.push_back(e);
}

/// Finds dV, dQ and dK among the contractions that read the scores.
LogicalResult BackwardMatcher::findContractions() {
  Expected p{m.p.source, m.p.dims, {}, /*contractedIsRow=*/true};
  Expected anyDO{{}, {}, {}, /*contractedIsRow=*/true};
  anyDO.anyDims = true;
  Expected dsOverJ{{}, space, {}, /*contractedIsRow=*/false};
  Expected dsOverI{{}, space, {}, /*contractedIsRow=*/true};
  Expected k{m.k.source, m.k.dims, m.k.reps, /*contractedIsRow=*/true};
  Expected q{m.q.source,
             m.q.dims,
             {},
             /*contractedIsRow=*/true,
             /*allowScale=*/true};
  SetVector<Operation *> slice;
  getForwardSlice(m.qk.op, &slice);
  auto take = [](std::optional<GradContraction> &slot,
                 std::optional<GradContraction> g) -> LogicalResult {
    if (slot)
      return failure(); // Two candidates: not autograd's graph.
    slot = std::move(g);
    return success();
  };
  for (Operation *op : slice) {
    if (op == m.pv.op || failed(getContraction(op)))
      continue;
    LogicalResult taken = success();
    if (auto g = matchGradContraction(op, p, anyDO))
      taken = take(dv, std::move(g));
    else if (auto g = matchGradContraction(op, dsOverJ, k))
      taken = take(dq, std::move(g));
    else if (auto g = matchGradContraction(op, dsOverI, q))
      taken = take(dk, std::move(g));
    if (failed(taken))
      return failure();
  }
  // Some gradient must be there; dO comes from dV, or else from dP (found
  // with dS).
  if (!dv && !dq && !dk)
    return failure();
  return dv ? matchDO(dv->b) : success();
}

/// dO: read like the output, [Q's batch parts..., Sq, Dv], not repeated.
LogicalResult BackwardMatcher::matchDO(const Trace &t) {
  if (!t.reps.empty() || !sameLabels(getBatchParts(t.dims), m.qParts))
    return failure();
  unsigned rows = 0, cols = 0;
  for (const DimLabel &l : t.dims) {
    if (l.role == DimLabel::Row && compatible(l.size, m.sq))
      ++rows;
    else if (l.role == DimLabel::Col && l.size == m.dv)
      ++cols;
    else if (l.role != DimLabel::Batch && l.role != DimLabel::Unit)
      return failure();
  }
  if (rows != 1 || cols != 1)
    return failure();
  result.dO = t;
  return success();
}

/// Whether `e` is 1 − t·t for the forward's tanh t.
bool BackwardMatcher::isSoftcapFactor(const Expr *e) const {
  e = stripCasts(e);
  if (!tanhRef || e->kind != Expr::Kind::Op || e->op != ExprOp::Sub ||
      getConstant(e->operands[0]) != 1.0)
    return false;
  const Expr *sq = stripCasts(e->operands[1]);
  return sq->kind == Expr::Kind::Op && sq->op == ExprOp::Mul &&
         equal(stripCasts(sq->operands[0]), tanhRef) &&
         equal(stripCasts(sq->operands[1]), tanhRef);
}

/// Whether `e` reads dP = dO·Vᵀ in the scores space (the result of the
/// contraction, or a batch expand_shape of it, in space order).
bool BackwardMatcher::isDP(const Expr *e) {
  e = stripCasts(e);
  if (dPRef)
    return equal(e, dPRef);
  if (e->kind != Expr::Kind::Tensor || !e->map.isIdentity())
    return false;
  Operation *op = getScoresContraction(e->tensor);
  if (!op)
    return false;
  Operation *expand = e->tensor.getDefiningOp();
  SmallVector<SmallVector<int64_t, 4>> paths;
  if (op != expand) {
    paths = getGroupPaths(*getBatchReshapeGroups(expand));
  } else {
    for (unsigned t = 0; t < m.iDim; ++t)
      paths.push_back({(int64_t)t});
  }
  // Without dV, dP is where dO is found.
  bool findDO = !result.dO.source;
  Expected dO{result.dO.source, result.dO.dims, {}, /*contractedIsRow=*/false};
  dO.anyDims = findDO;
  Expected v{m.v.source, m.v.dims, m.v.reps, /*contractedIsRow=*/false};
  std::optional<GradContraction> g = matchGradContraction(op, dO, v);
  if (paths != m.spacePaths || !g || g->result.back().role != DimLabel::Col ||
      (findDO && failed(matchDO(g->a))))
    return false;
  if (op != expand)
    ops.insert(expand);
  dP = std::move(g);
  dPRef = e;
  return true;
}

/// Whether `a` and `b` are dO and O read in the scores space with the
/// space's j standing for dv (as a rowsum over dv reads them).
bool BackwardMatcher::isDelta(const Expr *a, const Expr *b) {
  auto labelsOf = [&](const Expr *leaf, Labels &dims) {
    RankedTensorType type = getTensorType(leaf->tensor);
    for (auto [pos, r] : llvm::enumerate(leaf->map.getResults())) {
      int64_t size = type.getDimSize(pos);
      auto d = dyn_cast<AffineDimExpr>(r);
      if (!d) {
        if (size != 1)
          return false;
        dims.push_back({DimLabel::Unit, {}, 1});
      } else if (d.getPosition() < m.iDim) {
        dims.push_back({DimLabel::Batch, m.spacePaths[d.getPosition()], size});
      } else {
        dims.push_back(
            {d.getPosition() == m.iDim ? DimLabel::Row : DimLabel::Col,
             {},
             size});
      }
    }
    return true;
  };
  // O: the P·V result, or a batch expand_shape of it (as the space is of
  // Q·Kᵀ), read in order.
  auto isO = [&](const Expr *e) {
    if (e->kind != Expr::Kind::Tensor || !e->map.isIdentity())
      return false;
    Value o = m.pv.result;
    if (e->tensor == o)
      return m.qk.numBatch == m.iDim;
    Operation *def = e->tensor.getDefiningOp();
    return isa_and_nonnull<tensor::ExpandShapeOp>(def) &&
           def->getOperand(0) == o && getBatchReshapeGroups(def) &&
           getGroupPaths(*getBatchReshapeGroups(def)) == m.spacePaths;
  };
  auto isDO = [&](const Expr *e) {
    Labels dims;
    if (e->kind != Expr::Kind::Tensor || !labelsOf(e, dims))
      return false;
    Trace t = traceOperand(e->tensor, dims, /*allowScale=*/false);
    return t.source == result.dO.source && t.reps.empty() &&
           sameLabels(t.dims, result.dO.dims);
  };
  a = stripCasts(a);
  b = stripCasts(b);
  return (isDO(a) && isO(b)) || (isDO(b) && isO(a));
}

/// Whether `e` is R: rowsum_j(dP ⊙ P) or Delta = rowsum_dv(dO ⊙ O).
bool BackwardMatcher::isRowSum(const Expr *e) {
  e = stripCasts(e);
  if (e->kind != Expr::Kind::Reduce || e->op != ExprOp::Add || e->dim != m.jDim)
    return false;
  Product w;
  flatten(e->operands[0], w);
  if (w.constant != 1.0 || !w.masks.empty() || w.factors.size() != 2)
    return false;
  const Expr *x = w.factors[0], *y = w.factors[1];
  return (isP(x) && isDP(y)) || (isP(y) && isDP(x)) || isDelta(x, y);
}

/// The softmax backward among `factors` (what is left of dS's product
/// without constants, masks and softcap): P ⊙ (dP − R) or dP ⊙ P − P ⊙ R.
LogicalResult BackwardMatcher::matchSoftmaxGrad(ArrayRef<const Expr *> factors,
                                                double &constant) {
  auto isSub = [](const Expr *e) {
    return e->kind == Expr::Kind::Op && e->op == ExprOp::Sub;
  };
  if (factors.size() == 2) {
    for (unsigned k = 0; k < 2; ++k) {
      const Expr *diff = factors[1 - k];
      if (isP(factors[k]) && isSub(diff) && isDP(diff->operands[0]) &&
          isRowSum(diff->operands[1]))
        return success();
    }
    return failure();
  }
  if (factors.size() != 1 || !isSub(factors[0]))
    return failure();
  Product x, y;
  flatten(factors[0]->operands[0], x);
  flatten(factors[0]->operands[1], y);
  if (x.factors.size() != 2 || y.factors.size() != 2 || !x.masks.empty() ||
      !y.masks.empty() || !closeTo(x.constant, y.constant))
    return failure();
  constant *= x.constant;
  bool dpTimesP = (isP(x.factors[0]) && isDP(x.factors[1])) ||
                  (isP(x.factors[1]) && isDP(x.factors[0]));
  bool pTimesR = (isP(y.factors[0]) && isRowSum(y.factors[1])) ||
                 (isP(y.factors[1]) && isRowSum(y.factors[0]));
  return success(dpTimesP && pTimesR);
}

/// Masks on the gradient path must zero only keys the forward masks.
bool BackwardMatcher::masksAreForwards(
    ArrayRef<std::pair<const Expr *, bool>> masks) {
  auto classify = [&](Value v) { return classifySize(m, v); };
  MaskSizes sizes{m.sq, m.sk, m.equalLengths, classify};
  for (auto [pred, negate] : masks) {
    std::optional<Band> band =
        getPredicateBand(pred, negate, m.iDim, m.jDim, sizes);
    if (!band)
      return false;
    Band both = m.band;
    both.intersect(*band);
    if (both.lo != m.band.lo || both.hi != m.band.hi)
      return false;
  }
  return true;
}

/// Matches dS (a tensor of the scores space); returns its constant factor.
FailureOr<double> BackwardMatcher::matchScoresGrad(Value dS) {
  Product p;
  flatten(builder.build(dS), p);
  if (!masksAreForwards(p.masks))
    return failure();
  SmallVector<const Expr *> rest;
  unsigned softcaps = 0;
  for (const Expr *f : p.factors) {
    if (m.softcap && isSoftcapFactor(f))
      ++softcaps;
    else
      rest.push_back(f);
  }
  if (softcaps != (m.softcap ? 1u : 0u) ||
      failed(matchSoftmaxGrad(rest, p.constant)))
    return failure();
  return p.constant;
}

/// Checks dS and its scale, and follows those of dQ, dK and dV that the
/// graph computes to their ends.
LogicalResult BackwardMatcher::followGradients() {
  FailureOr<double> cq = failure(), ck = failure();
  if (dq)
    cq = matchScoresGrad(dq->a.source);
  if (dk)
    ck =
        dq && dk->a.source == dq->a.source ? cq : matchScoresGrad(dk->a.source);
  if ((dq && (failed(cq) || !(*cq > 0))) ||
      (dk && (failed(ck) || !closeTo(*ck * dk->b.scale, m.scale))))
    return failure();
  // dS read by dQ or dK needs dP (and, without dV, gives dO).
  if ((dq || dk) && !dP)
    return failure();
  std::optional<GradientMatch> q, k, v;
  if (dq && !(q = followGradient(*dq, m.qParts, {}, m.scale / *cq, ops)))
    return failure();
  if (dk &&
      !(k = followGradient(*dk, getBatchParts(m.k.dims), m.k.reps, 1.0, ops)))
    return failure();
  if (dv &&
      !(v = followGradient(*dv, getBatchParts(m.v.dims), m.v.reps, 1.0, ops)))
    return failure();
  // The fused ops go where P·V was and before the first gradient.
  for (std::optional<GradientMatch> *g : {&q, &k, &v}) {
    if (!*g)
      continue;
    Operation *def = (*g)->root.getDefiningOp();
    if (def->getBlock() != m.pv.op->getBlock() ||
        !m.pv.op->isBeforeInBlock(def))
      return failure();
  }
  result.dq = q.value_or(GradientMatch{});
  result.dk = k.value_or(GradientMatch{});
  result.dv = v.value_or(GradientMatch{});
  return success();
}

LogicalResult BackwardMatcher::match() {
  if (!sameLabels(m.p.dims, space) || !m.p.reps.empty())
    return failure();
  pRef = stripCasts(builder.build(m.space));
  if (m.softcap) {
    // The forward's tanh (one softcap; every copy of it is equal).
    SmallVector<const Expr *> stack = {pRef};
    while (!stack.empty() && !tanhRef) {
      const Expr *e = stripCasts(stack.pop_back_val());
      if (e->kind == Expr::Kind::Op && e->op == ExprOp::Tanh)
        tanhRef = e;
      stack.append(e->operands.begin(), e->operands.end());
    }
  }
  if (failed(findContractions()) || failed(followGradients()))
    return failure();

  // Commit: the contractions, their operands' views, dS's expression.
  for (std::optional<GradContraction> *g : {&dv, &dq, &dk, &dP}) {
    if (!*g)
      continue;
    ops.insert((*g)->op);
    for (const Trace *t : {&(*g)->a, &(*g)->b})
      for (Operation *op : t->ops)
        result.inputOps.insert(op);
  }
  // P's and dS's views belong to the scores, not to the inputs.
  for (std::optional<GradContraction> *g : {&dv, &dq, &dk}) {
    if (!*g)
      continue;
    for (Operation *op : (*g)->a.ops) {
      result.inputOps.remove(op);
      ops.insert(op);
    }
  }
  ops.insert(builder.getVisitedOps().begin(), builder.getVisitedOps().end());
  result.dP = dP ? dP->op : nullptr;
  for (Operation *op : result.inputOps)
    m.absorbed.insert(op);
  for (Operation *op : ops)
    m.absorbed.insert(op);
  m.backward = std::move(result);
  return success();
}

LogicalResult fuse::matchBackward(AttentionMatch &m) {
  BackwardMatcher matcher(m);
  return matcher.match();
}
