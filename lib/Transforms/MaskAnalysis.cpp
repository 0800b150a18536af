//===- MaskAnalysis.cpp - exact mask analysis for attn-fuse ---------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// A predicate mask is turned into a Presburger set over (i, j):
//
//   1. Index arithmetic (linalg.index of the row and column dims, constants,
//      addi/subi, muli by a constant, integer casts) becomes a linear form
//      a*i + b*j + c. Any other index (batch, head) or operation rejects.
//   2. Comparisons become half-spaces (ne: a union of two); negation is
//      pushed down to the comparisons with arith::invertPredicate, through
//      andi/ori (De Morgan), xori (xor with true is a negation; a general
//      xor is (a & !b) | (!a & b)) and select on i1 ((c & a) | (!c & b)).
//   3. The set S is compared with bands lo <= j - i <= hi on the domain
//      D = [0, Sq) x [0, Sk) with PresburgerSet::isEqual. Candidate bounds
//      come from S over the quarter plane i, j >= 0 first (a spelling that
//      is a band there keeps its own bounds, so the attribute does not depend
//      on the spelling), then from S on D (a side that D already clamps is
//      dropped).
//
// attn-fuse only matches static shapes (P with a dynamic shape is a miss),
// so Sq and Sk are always known here; the analysis needs them.
//
//===----------------------------------------------------------------------===//

#include "MaskAnalysis.h"

#include "mlir/Analysis/Presburger/PresburgerRelation.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fuse;
using namespace mlir::presburger;

bool fuse::isMaskingValue(double v) {
  return v == -INFINITY || v == -65504.0 || v == -3.3895313892515355e38 ||
         v == (double)-std::numeric_limits<float>::max();
}

//===----------------------------------------------------------------------===//
// Sets over (i, j)
//===----------------------------------------------------------------------===//

namespace {

/// c_i * i + c_j * j + c: the columns of a Presburger constraint over (i, j).
struct LinearForm {
  int64_t i = 0, j = 0, c = 0;
  SmallVector<int64_t, 3> coeffs() const { return {i, j, c}; }
};

/// Builds the sets of (i, j) that masks admit, and bands on the domain.
class MaskSets {
public:
  MaskSets(unsigned iDim, unsigned jDim, int64_t sq, int64_t sk)
      : iDim(iDim), jDim(jDim), sq(sq), sk(sk),
        space(PresburgerSpace::getSetSpace(/*numDims=*/2)) {}

  /// The set admitted by `pred` (negated if `negate`) over the quarter plane
  /// i, j >= 0; exact on the domain. None if the predicate is not readable.
  std::optional<PresburgerSet> predicate(const Expr *pred, bool negate);

  /// 0 <= i < sq, 0 <= j < sk, intersected with `forms` >= 0.
  PresburgerSet domain(ArrayRef<LinearForm> forms = {}) const {
    return PresburgerSet(polyhedron(
        {{1, 0, 0}, {-1, 0, sq - 1}, {0, 1, 0}, {0, -1, sk - 1}}, forms));
  }
  /// The band on the domain.
  PresburgerSet band(const Band &b) const {
    SmallVector<LinearForm, 2> forms;
    if (b.lo)
      forms.push_back({-1, 1, -*b.lo}); // j - i - lo >= 0
    if (b.hi)
      forms.push_back({1, -1, *b.hi}); // hi - (j - i) >= 0
    return domain(forms);
  }
  /// The smallest band containing `s` (empty: none); a side along which `s`
  /// is unbounded stays unbounded.
  std::optional<Band> hull(const PresburgerSet &s) const;

private:
  IntegerPolyhedron polyhedron(ArrayRef<LinearForm> ineqs,
                               ArrayRef<LinearForm> more = {}) const {
    IntegerPolyhedron p(ineqs.size() + more.size(), 0, 3, space);
    for (ArrayRef<LinearForm> list : {ineqs, more})
      for (const LinearForm &f : list)
        p.addInequality(f.coeffs());
    return p;
  }
  PresburgerSet halfSpaces(ArrayRef<LinearForm> forms) const {
    return PresburgerSet(polyhedron({{1, 0, 0}, {0, 1, 0}}, forms));
  }
  std::optional<LinearForm> linearize(const Expr *e) const;
  std::optional<PresburgerSet> compare(const Expr *cmp, bool negate) const;
  bool isNonNegative(const LinearForm &f) const {
    // Empty iff f >= 0 everywhere on the domain: D ∩ {f <= -1}.
    return domain({{-f.i, -f.j, -f.c - 1}}).isIntegerEmpty();
  }

  unsigned iDim, jDim;
  int64_t sq, sk;
  PresburgerSpace space;
};

} // namespace

std::optional<LinearForm> MaskSets::linearize(const Expr *e) const {
  // Index arithmetic stays far from overflow: sizes are below 2^31 and
  // constants are checked here.
  constexpr double kLimit = 1ll << 40;
  switch (e->kind) {
  case Expr::Kind::Index:
    if (e->dim == iDim)
      return LinearForm{1, 0, 0};
    if (e->dim == jDim)
      return LinearForm{0, 1, 0};
    return std::nullopt; // a batch or head index
  case Expr::Kind::Const:
    if (e->value != std::trunc(e->value) || std::fabs(e->value) > kLimit)
      return std::nullopt;
    return LinearForm{0, 0, (int64_t)e->value};
  case Expr::Kind::Op:
    break;
  default:
    return std::nullopt;
  }
  if (e->op == ExprOp::IntCast)
    return linearize(e->operands[0]);
  if (e->op != ExprOp::AddI && e->op != ExprOp::SubI && e->op != ExprOp::MulI)
    return std::nullopt;
  std::optional<LinearForm> a = linearize(e->operands[0]);
  std::optional<LinearForm> b = linearize(e->operands[1]);
  if (!a || !b)
    return std::nullopt;
  LinearForm r;
  if (e->op == ExprOp::MulI) {
    // Linear only when one factor is a constant.
    if (a->i || a->j)
      std::swap(a, b);
    if (a->i || a->j)
      return std::nullopt;
    r = {a->c * b->i, a->c * b->j, a->c * b->c};
  } else {
    int64_t s = e->op == ExprOp::AddI ? 1 : -1;
    r = {a->i + s * b->i, a->j + s * b->j, a->c + s * b->c};
  }
  if (std::abs(r.i) > kLimit || std::abs(r.j) > kLimit ||
      std::abs(r.c) > kLimit)
    return std::nullopt;
  return r;
}

std::optional<PresburgerSet> MaskSets::compare(const Expr *cmp,
                                               bool negate) const {
  std::optional<LinearForm> a = linearize(cmp->operands[0]);
  std::optional<LinearForm> b = linearize(cmp->operands[1]);
  if (!a || !b)
    return std::nullopt;
  using P = arith::CmpIPredicate;
  auto p = static_cast<P>(cmp->predicate);
  if (negate)
    p = arith::invertPredicate(p);
  // Unsigned comparisons: on values that are non-negative everywhere on the
  // domain, x <u y is x <s y. If either side can be negative there (its
  // unsigned reading wraps), the mask is not read.
  bool isUnsigned = p == P::ult || p == P::ule || p == P::ugt || p == P::uge;
  if (isUnsigned && (!isNonNegative(*a) || !isNonNegative(*b)))
    return std::nullopt;
  // f = a - b; each predicate is one or two constraints f' >= 0.
  LinearForm f{a->i - b->i, a->j - b->j, a->c - b->c};
  LinearForm neg{-f.i, -f.j, -f.c};
  auto minus1 = [](LinearForm x) {
    --x.c;
    return x;
  };
  switch (p) {
  case P::slt:
  case P::ult:
    return halfSpaces({minus1(neg)});
  case P::sle:
  case P::ule:
    return halfSpaces({neg});
  case P::sgt:
  case P::ugt:
    return halfSpaces({minus1(f)});
  case P::sge:
  case P::uge:
    return halfSpaces({f});
  case P::eq:
    return halfSpaces({f, neg});
  case P::ne:
    return halfSpaces({minus1(f)}).unionSet(halfSpaces({minus1(neg)}));
  }
  return std::nullopt;
}

std::optional<PresburgerSet> MaskSets::predicate(const Expr *pred,
                                                 bool negate) {
  if (pred->kind == Expr::Kind::Const && (pred->value == 0 || pred->value == 1))
    return (pred->value == 1) != negate ? halfSpaces({})
                                        : PresburgerSet::getEmpty(space);
  if (pred->kind != Expr::Kind::Op)
    return std::nullopt;
  auto both = [&](const Expr *x, bool nx, const Expr *y, bool ny,
                  bool conj) -> std::optional<PresburgerSet> {
    std::optional<PresburgerSet> sx = predicate(x, nx);
    std::optional<PresburgerSet> sy = predicate(y, ny);
    if (!sx || !sy)
      return std::nullopt;
    return conj ? sx->intersect(*sy) : sx->unionSet(*sy);
  };
  const auto &ops = pred->operands;
  switch (pred->op) {
  case ExprOp::CmpI:
    return compare(pred, negate);
  case ExprOp::AndI:
  case ExprOp::OrI:
    // De Morgan: a negated conjunction is a disjunction of negations.
    return both(ops[0], negate, ops[1], negate,
                (pred->op == ExprOp::AndI) != negate);
  case ExprOp::XOrI: {
    for (unsigned k = 0; k < 2; ++k)
      if (ops[k]->isConst(1))
        return predicate(ops[1 - k], !negate);
    // a ^ b = (a & !b) | (!a & b); !(a ^ b) = (a & b) | (!a & !b).
    std::optional<PresburgerSet> x = both(ops[0], false, ops[1], !negate, true);
    std::optional<PresburgerSet> y = both(ops[0], true, ops[1], negate, true);
    if (!x || !y)
      return std::nullopt;
    return x->unionSet(*y);
  }
  case ExprOp::Select: {
    // select(c, a, b) on i1 = (c & a) | (!c & b).
    std::optional<PresburgerSet> x = both(ops[0], false, ops[1], negate, true);
    std::optional<PresburgerSet> y = both(ops[0], true, ops[2], negate, true);
    if (!x || !y)
      return std::nullopt;
    return x->unionSet(*y);
  }
  default:
    return std::nullopt;
  }
}

std::optional<Band> MaskSets::hull(const PresburgerSet &s) const {
  // min(j - i) and min(i - j) over each disjunct, as the lexicographic
  // minimum of (d, i, j) with d = +-(j - i) added as the first variable.
  bool empty = true, loUnbounded = false, hiUnbounded = false;
  Band band;
  for (const IntegerRelation &disjunct : s.getAllDisjuncts()) {
    for (int64_t sign : {1, -1}) {
      IntegerRelation r = disjunct;
      r.insertVar(VarKind::SetDim, 0);
      SmallVector<int64_t, 4> eq(r.getNumCols(), 0);
      eq[0] = 1;
      eq[1] = sign;  // i
      eq[2] = -sign; // j
      r.addEquality(eq);
      MaybeOptimum<SmallVector<DynamicAPInt, 8>> min = r.findIntegerLexMin();
      if (min.isEmpty())
        break;
      empty = false;
      if (min.isUnbounded()) {
        (sign == 1 ? loUnbounded : hiUnbounded) = true;
        continue;
      }
      int64_t d = int64_t((*min)[0]);
      if (sign == 1)
        band.lo = band.lo ? std::min(*band.lo, d) : d;
      else
        band.hi = band.hi ? std::max(*band.hi, -d) : -d;
    }
  }
  if (empty)
    return std::nullopt;
  if (loUnbounded)
    band.lo.reset();
  if (hiUnbounded)
    band.hi.reset();
  return band;
}

std::optional<Band> fuse::getPredicateBand(const Expr *pred, bool negate,
                                           unsigned iDim, unsigned jDim,
                                           int64_t sq, int64_t sk) {
  MaskSets sets(iDim, jDim, sq, sk);
  std::optional<PresburgerSet> formula = sets.predicate(pred, negate);
  if (!formula)
    return std::nullopt;
  PresburgerSet admitted = formula->intersect(sets.domain());
  std::optional<Band> band = sets.hull(*formula);
  if (band && admitted.isEqual(sets.band(*band)))
    return band;
  band = sets.hull(admitted);
  if (!band) // Nothing admitted: an empty band, which no attribute is.
    return Band{1, 0};
  if (!admitted.isEqual(sets.band(*band)))
    return std::nullopt;
  // Drop the bounds that the domain already implies.
  for (std::optional<int64_t> Band::*side : {&Band::lo, &Band::hi}) {
    Band looser = *band;
    (looser.*side).reset();
    if (admitted.isEqual(sets.band(looser)))
      band = looser;
  }
  return band;
}

//===----------------------------------------------------------------------===//
// Constant masks
//===----------------------------------------------------------------------===//

// A constant mask is data, not a spelling: it is scanned row by row (each
// row must admit one contiguous run of keys) and the candidate band is
// checked against every row.
std::optional<Band> fuse::getConstantMaskBand(
    DenseElementsAttr attr, AffineMap map, unsigned iDim, unsigned jDim,
    int64_t sq, int64_t sk,
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

//===----------------------------------------------------------------------===//
// Mask attributes
//===----------------------------------------------------------------------===//

std::optional<MaskAttr> fuse::getMaskAttr(MLIRContext *ctx, const Band &band,
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
  MaskAttr mask;
  if (!left && !right)
    mask = MaskAttr::getNone(ctx);
  else if (!left && *right == 0)
    mask = MaskAttr::getCausal(ctx);
  else // An unbounded side becomes an extent that reaches past every key.
    mask = MaskAttr::getWindow(ctx, left.value_or(sk), right.value_or(sq));

  // The attribute's own set (MaskAttr's definition) must be the band's. An
  // extent beyond sq + sk clamps to it: |j - i| < max(sq, sk) on the domain.
  Band admitted;
  int64_t reach = sq + sk;
  if (mask.isCausal())
    admitted.hi = off;
  if (mask.isWindow()) {
    admitted.lo = off - std::min(mask.getLeft(), reach);
    admitted.hi = off + std::min(mask.getRight(), reach);
  }
  MaskSets sets(/*iDim=*/0, /*jDim=*/1, sq, sk);
  if (!sets.band(admitted).isEqual(sets.band(band)))
    return std::nullopt;
  return mask;
}
