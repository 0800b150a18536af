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
// Sq and Sk are variables of the sets: pinned to their values when static;
// when one is dynamic the sets range over every size (and Sq = Sk where the
// IR proves it), a band bounds the offset from the bottom-right diagonal,
// and index values outside the mask that provably are Sq or Sk (tensor.dim,
// tensor.empty sizes, arithmetic on them) are read as those variables.
//
//===----------------------------------------------------------------------===//

#include "MaskAnalysis.h"

#include "mlir/Analysis/Presburger/PresburgerRelation.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Utils/IndexingUtils.h"
#include "mlir/IR/Matchers.h"
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

/// c_i * i + c_j * j + c_q * Sq + c_k * Sk + c: the columns of a Presburger
/// constraint over (i, j, Sq, Sk).
struct LinearForm {
  int64_t i = 0, j = 0, q = 0, k = 0, c = 0;
  SmallVector<int64_t, 5> coeffs() const { return {i, j, q, k, c}; }
  LinearForm operator-() const { return {-i, -j, -q, -k, -c}; }
  /// `this` + s * `o`.
  LinearForm plus(const LinearForm &o, int64_t s = 1) const {
    return {i + s * o.i, j + s * o.j, q + s * o.q, k + s * o.k, c + s * o.c};
  }
  LinearForm times(int64_t s) const { return LinearForm().plus(*this, s); }
  bool isConstant() const { return !i && !j && !q && !k; }
};

/// Builds the sets of (i, j, Sq, Sk) that masks admit, and bands on the
/// domain. Every set carries what is known of the sizes: a static size pins
/// its variable, a dynamic one ranges over [1, 2^31 - 1] (what
/// attn.attention takes; the domain is empty below), and Sq = Sk when the IR
/// proves it. Set equality then means equality for every such size.
class MaskSets {
public:
  MaskSets(unsigned iDim, unsigned jDim, const MaskSizes &sizes)
      : iDim(iDim), jDim(jDim), sizes(sizes),
        space(PresburgerSpace::getSetSpace(/*numDims=*/4)) {}

  /// The set admitted by `pred` (negated if `negate`) over the quarter plane
  /// i, j >= 0; exact on the domain. None if the predicate is not readable.
  std::optional<PresburgerSet> predicate(const Expr *pred, bool negate);

  /// 0 <= i < Sq, 0 <= j < Sk, intersected with `forms` >= 0.
  PresburgerSet domain(ArrayRef<LinearForm> forms = {}) const {
    return PresburgerSet(polyhedron({{1, 0, 0, 0, 0},
                                     {-1, 0, 1, 0, -1},
                                     {0, 1, 0, 0, 0},
                                     {0, -1, 0, 1, -1}},
                                    forms));
  }
  /// The band on the domain.
  PresburgerSet band(const Band &b) const {
    SmallVector<LinearForm, 2> forms;
    if (b.lo)
      forms.push_back(diagonal().plus({0, 0, 0, 0, -*b.lo})); // d - lo >= 0
    if (b.hi)
      forms.push_back((-diagonal()).plus({0, 0, 0, 0, *b.hi})); // hi - d >= 0
    return domain(forms);
  }
  /// The smallest band containing `s` (empty: none); a side along which `s`
  /// is unbounded stays unbounded.
  std::optional<Band> hull(const PresburgerSet &s) const;

private:
  /// What a band bounds: j - i, or j - i - (Sk - Sq) with a dynamic size.
  LinearForm diagonal() const {
    return sizes.isDynamic() ? LinearForm{-1, 1, 1, -1, 0}
                             : LinearForm{-1, 1, 0, 0, 0};
  }
  IntegerPolyhedron polyhedron(ArrayRef<LinearForm> ineqs,
                               ArrayRef<LinearForm> more = {}) const;
  PresburgerSet halfSpaces(ArrayRef<LinearForm> forms) const {
    return PresburgerSet(polyhedron({{1, 0, 0, 0, 0}, {0, 1, 0, 0, 0}}, forms));
  }
  std::optional<LinearForm> linearize(const Expr *e) const;
  std::optional<LinearForm> linearize(Value v, unsigned depth = 0) const;
  std::optional<PresburgerSet> compare(const Expr *cmp, bool negate) const;
  bool isNonNegative(const LinearForm &f) const {
    // Empty iff f >= 0 everywhere on the domain: D ∩ {f <= -1}.
    return domain({(-f).plus({0, 0, 0, 0, -1})}).isIntegerEmpty();
  }

  unsigned iDim, jDim;
  const MaskSizes &sizes;
  PresburgerSpace space;
};

} // namespace

/// Index arithmetic stays far from overflow: sizes are below 2^31 and every
/// coefficient is checked against this.
static constexpr int64_t kLimit = int64_t(1) << 40;

static std::optional<LinearForm> bounded(const LinearForm &r) {
  for (int64_t x : r.coeffs())
    if (std::abs(x) > kLimit)
      return std::nullopt;
  return r;
}

/// `a` * `b` where one of them is a constant; none otherwise.
static std::optional<LinearForm> multiply(LinearForm a, LinearForm b) {
  if (!a.isConstant())
    std::swap(a, b);
  if (!a.isConstant())
    return std::nullopt;
  // Both factors are bounded by 2^40, their product is not: check first.
  for (int64_t x : b.coeffs())
    if (x && std::abs(a.c) > kLimit / std::abs(x))
      return std::nullopt;
  return bounded(b.times(a.c));
}

IntegerPolyhedron MaskSets::polyhedron(ArrayRef<LinearForm> ineqs,
                                       ArrayRef<LinearForm> more) const {
  IntegerPolyhedron p(ineqs.size() + more.size() + 4, 3, 5, space);
  for (ArrayRef<LinearForm> list : {ineqs, more})
    for (const LinearForm &f : list)
      p.addInequality(f.coeffs());
  for (auto [size, unit] :
       {std::make_pair(sizes.sq, LinearForm{0, 0, 1, 0, 0}),
        std::make_pair(sizes.sk, LinearForm{0, 0, 0, 1, 0})}) {
    if (!ShapedType::isDynamic(size)) {
      p.addEquality(unit.plus({0, 0, 0, 0, -size}).coeffs());
      continue;
    }
    p.addInequality(unit.plus({0, 0, 0, 0, -1}).coeffs());
    p.addInequality((-unit).plus({0, 0, 0, 0, kMaxDimSize}).coeffs());
  }
  if (sizes.isDynamic() && sizes.equal)
    p.addEquality({0, 0, 1, -1, 0});
  return p;
}

std::optional<LinearForm> MaskSets::linearize(Value v, unsigned depth) const {
  // A scalar outside the mask: a constant, a proven size, or index
  // arithmetic on those.
  APInt c;
  if (matchPattern(v, m_ConstantInt(&c)))
    return c.getSignificantBits() > 41
               ? std::nullopt
               : bounded(LinearForm{0, 0, 0, 0, c.getSExtValue()});
  if (sizes.classify)
    if (std::optional<SizeSym> size = sizes.classify(v))
      return *size == SizeSym::Sq ? LinearForm{0, 0, 1, 0, 0}
                                  : LinearForm{0, 0, 0, 1, 0};
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return std::nullopt;
  if (isa<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
          arith::ExtUIOp, arith::TruncIOp>(def))
    return linearize(def->getOperand(0), depth + 1);
  if (!isa<arith::AddIOp, arith::SubIOp, arith::MulIOp>(def))
    return std::nullopt;
  std::optional<LinearForm> a = linearize(def->getOperand(0), depth + 1);
  std::optional<LinearForm> b = linearize(def->getOperand(1), depth + 1);
  if (!a || !b)
    return std::nullopt;
  if (isa<arith::MulIOp>(def))
    return multiply(*a, *b);
  return bounded(a->plus(*b, isa<arith::AddIOp>(def) ? 1 : -1));
}

std::optional<LinearForm> MaskSets::linearize(const Expr *e) const {
  switch (e->kind) {
  case Expr::Kind::Index:
    if (e->dim == iDim)
      return LinearForm{1, 0, 0, 0, 0};
    if (e->dim == jDim)
      return LinearForm{0, 1, 0, 0, 0};
    return std::nullopt; // a batch or head index
  case Expr::Kind::Const:
    if (e->value != std::trunc(e->value) ||
        std::fabs(e->value) > (double)kLimit)
      return std::nullopt;
    return LinearForm{0, 0, 0, 0, (int64_t)e->value};
  case Expr::Kind::Symbol:
    return linearize(e->tensor);
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
  // Linear only when one factor of a product is a constant.
  if (e->op == ExprOp::MulI)
    return multiply(*a, *b);
  return bounded(a->plus(*b, e->op == ExprOp::AddI ? 1 : -1));
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
  LinearForm f = a->plus(*b, -1);
  LinearForm neg = -f;
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
  // min(diagonal) and min(-diagonal) over each disjunct, as the
  // lexicographic minimum of (d, i, j, Sq, Sk) with d = +-diagonal added as
  // the first variable.
  bool empty = true, loUnbounded = false, hiUnbounded = false;
  Band band;
  for (const IntegerRelation &disjunct : s.getAllDisjuncts()) {
    for (int64_t sign : {1, -1}) {
      IntegerRelation r = disjunct;
      r.insertVar(VarKind::SetDim, 0);
      // d - sign * diagonal = 0, with d the new first column.
      SmallVector<int64_t, 6> eq = {1};
      for (int64_t x : diagonal().times(-sign).coeffs())
        eq.push_back(x);
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
                                           const MaskSizes &sizes) {
  MaskSets sets(iDim, jDim, sizes);
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
  if (ShapedType::isDynamic(sq) || ShapedType::isDynamic(sk))
    return std::nullopt;
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
                                          const MaskSizes &sizes) {
  // Query row i sits at p = i + off. With static sizes the band is on
  // d = j - i and off = Sk - Sq; otherwise it is already on d - off.
  bool dynamic = sizes.isDynamic();
  int64_t off = dynamic ? 0 : sizes.sk - sizes.sq;
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
  else if (dynamic) // An unbounded side reaches past every key of any size.
    mask = MaskAttr::getWindow(ctx, left.value_or(kMaxDimSize),
                               right.value_or(kMaxDimSize));
  else // An unbounded side becomes an extent that reaches past every key.
    mask = MaskAttr::getWindow(ctx, left.value_or(sizes.sk),
                               right.value_or(sizes.sq));

  // The attribute's own set (MaskAttr's definition) must be the band's. An
  // extent beyond sq + sk clamps to it: |j - i| < max(sq, sk) on the domain.
  Band admitted;
  int64_t reach =
      dynamic ? std::numeric_limits<int64_t>::max() : sizes.sq + sizes.sk;
  if (mask.isCausal())
    admitted.hi = off;
  if (mask.isWindow()) {
    admitted.lo = off - std::min(mask.getLeft(), reach);
    admitted.hi = off + std::min(mask.getRight(), reach);
  }
  MaskSets sets(/*iDim=*/0, /*jDim=*/1, sizes);
  if (!sets.band(admitted).isEqual(sets.band(band)))
    return std::nullopt;
  return mask;
}
