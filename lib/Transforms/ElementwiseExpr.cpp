//===- ElementwiseExpr.cpp - element-wise view of tensor graphs -----------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "ElementwiseExpr.h"

#include "attn/Transforms/Transforms.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallBitVector.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::fuse;

/// Deepest chain of producers the builder follows, and the most nodes it
/// creates for one pattern application; past either it stops at a leaf.
static constexpr unsigned kMaxDepth = 48;
static constexpr size_t kMaxNodes = 20000;

Expr *ExprBuilder::create(Expr::Kind kind) {
  arena.emplace_back();
  arena.back().kind = kind;
  return &arena.back();
}

Expr *ExprBuilder::leaf(Value tensor, AffineMap map) {
  Expr *e = create(Expr::Kind::Tensor);
  e->tensor = tensor;
  e->map = map;
  return e;
}

Expr *ExprBuilder::build(Value tensor) {
  auto type = cast<ShapedType>(tensor.getType());
  return build(tensor, AffineMap::getMultiDimIdentityMap(type.getRank(),
                                                         tensor.getContext()));
}

/// The (op, predicate) of an arith/math/tosa operation, or Unknown.
static std::pair<ExprOp, int64_t> classify(Operation *op) {
  using P = std::pair<ExprOp, int64_t>;
  return TypeSwitch<Operation *, P>(op)
      .Case([](arith::AddFOp) { return P{ExprOp::Add, 0}; })
      .Case([](arith::SubFOp) { return P{ExprOp::Sub, 0}; })
      .Case([](arith::MulFOp) { return P{ExprOp::Mul, 0}; })
      .Case([](arith::DivFOp) { return P{ExprOp::Div, 0}; })
      .Case<arith::MaximumFOp, arith::MaxNumFOp>(
          [](auto) { return P{ExprOp::Max, 0}; })
      .Case([](arith::NegFOp) { return P{ExprOp::Neg, 0}; })
      .Case([](math::ExpOp) { return P{ExprOp::Exp, 0}; })
      .Case([](math::TanhOp) { return P{ExprOp::Tanh, 0}; })
      .Case<arith::ExtFOp, arith::TruncFOp>(
          [](auto) { return P{ExprOp::FCast, 0}; })
      .Case([](arith::SelectOp) { return P{ExprOp::Select, 0}; })
      .Case([](arith::CmpFOp c) {
        return P{ExprOp::CmpF, static_cast<int64_t>(c.getPredicate())};
      })
      .Case([](arith::CmpIOp c) {
        return P{ExprOp::CmpI, static_cast<int64_t>(c.getPredicate())};
      })
      .Case([](arith::AndIOp) { return P{ExprOp::AndI, 0}; })
      .Case([](arith::OrIOp) { return P{ExprOp::OrI, 0}; })
      .Case([](arith::XOrIOp) { return P{ExprOp::XOrI, 0}; })
      .Case([](arith::AddIOp) { return P{ExprOp::AddI, 0}; })
      .Case([](arith::SubIOp) { return P{ExprOp::SubI, 0}; })
      .Case([](arith::MulIOp) { return P{ExprOp::MulI, 0}; })
      .Case<arith::IndexCastOp, arith::IndexCastUIOp, arith::ExtSIOp,
            arith::ExtUIOp, arith::TruncIOp>(
          [](auto) { return P{ExprOp::IntCast, 0}; })
      // tosa element-wise ops.
      .Case([](tosa::AddOp) { return P{ExprOp::Add, 0}; })
      .Case([](tosa::SubOp) { return P{ExprOp::Sub, 0}; })
      .Case([](tosa::MulOp) { return P{ExprOp::Mul, 0}; })
      .Case([](tosa::MaximumOp) { return P{ExprOp::Max, 0}; })
      .Case([](tosa::NegateOp) { return P{ExprOp::Neg, 0}; })
      .Case([](tosa::ReciprocalOp) { return P{ExprOp::Recip, 0}; })
      .Case([](tosa::ExpOp) { return P{ExprOp::Exp, 0}; })
      .Case([](tosa::TanhOp) { return P{ExprOp::Tanh, 0}; })
      .Case([](tosa::SelectOp) { return P{ExprOp::Select, 0}; })
      .Case([](tosa::LogicalAndOp) { return P{ExprOp::AndI, 0}; })
      .Case([](tosa::LogicalOrOp) { return P{ExprOp::OrI, 0}; })
      .Case([](tosa::CastOp c) {
        bool fp = isa<FloatType>(getElementTypeOrSelf(c.getInput())) &&
                  isa<FloatType>(getElementTypeOrSelf(c.getType()));
        return P{fp ? ExprOp::FCast : ExprOp::Unknown, 0};
      })
      .Case<tosa::GreaterOp, tosa::GreaterEqualOp, tosa::EqualOp>([](auto c) {
        bool fp = isa<FloatType>(getElementTypeOrSelf(c.getInput1()));
        int64_t pred;
        if (isa<tosa::GreaterOp>(c))
          pred = fp ? (int64_t)arith::CmpFPredicate::OGT
                    : (int64_t)arith::CmpIPredicate::sgt;
        else if (isa<tosa::GreaterEqualOp>(c))
          pred = fp ? (int64_t)arith::CmpFPredicate::OGE
                    : (int64_t)arith::CmpIPredicate::sge;
        else
          pred = fp ? (int64_t)arith::CmpFPredicate::OEQ
                    : (int64_t)arith::CmpIPredicate::eq;
        return P{fp ? ExprOp::CmpF : ExprOp::CmpI, pred};
      })
      .Default([](Operation *) { return P{ExprOp::Unknown, 0}; });
}

/// Number of the operands of `op` that carry data (tosa ops carry
/// zero-points and shifts as trailing operands).
static unsigned getNumDataOperands(Operation *op, ExprOp kind) {
  if (isa<tosa::MulOp>(op))
    return 2; // input1, input2, shift
  if (isa<tosa::NegateOp>(op))
    return 1; // input1, input1_zp, output_zp
  switch (kind) {
  case ExprOp::Neg:
  case ExprOp::Recip:
  case ExprOp::Exp:
  case ExprOp::Tanh:
  case ExprOp::FCast:
  case ExprOp::IntCast:
    return 1;
  case ExprOp::Select:
    return 3;
  default:
    return 2;
  }
}

/// Whether `op` is a contraction (linalg reduction with two inputs, or
/// tosa.matmul).
static bool isContraction(Operation *op) {
  if (!op)
    return false;
  if (isa<tosa::MatMulOp>(op))
    return true;
  auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
  return linalgOp && linalgOp.getNumReductionLoops() > 0 &&
         linalgOp.getNumDpsInputs() == 2;
}

Expr *ExprBuilder::build(Value tensor, AffineMap map) {
  if (depth >= kMaxDepth || arena.size() >= kMaxNodes)
    return leaf(tensor, map);
  ++depth;
  llvm::scope_exit restore([&] { --depth; });

  Expr *e = nullptr;
  Operation *def = tensor.getDefiningOp();
  DenseElementsAttr attr;
  if (def && matchPattern(tensor, m_Constant(&attr))) {
    if (attr.isSplat()) {
      e = create(Expr::Kind::Const);
      Type elt = attr.getElementType();
      if (isa<FloatType>(elt))
        e->value = attr.getSplatValue<APFloat>().convertToDouble();
      else if (elt.isInteger(1))
        e->value = attr.getSplatValue<bool>() ? 1 : 0;
      else if (elt.isIntOrIndex())
        e->value = attr.getSplatValue<APInt>().getSExtValue();
    } else {
      e = create(Expr::Kind::ConstTensor);
      e->constant = attr;
      e->tensor = tensor;
      e->map = map;
    }
  } else if (auto fill = dyn_cast_or_null<linalg::FillOp>(def)) {
    FloatAttr f;
    if (matchPattern(fill.value(), m_Constant(&f))) {
      visited.push_back(def);
      e = create(Expr::Kind::Const);
      e->value = f.getValueAsDouble();
    }
  } else if (auto softmax = dyn_cast_or_null<linalg::SoftmaxOp>(def)) {
    AffineExpr d = map.getResult(softmax.getDimension());
    if (auto dimExpr = dyn_cast<AffineDimExpr>(d)) {
      visited.push_back(def);
      e = create(Expr::Kind::Softmax);
      e->dim = dimExpr.getPosition();
      e->operands.push_back(build(softmax.getInput(), map));
    }
  } else if (def && isa<linalg::LinalgOp>(def)) {
    e = fromLinalg(def, tensor, map);
  } else if (def && isa<tosa::TosaDialect>(def->getDialect())) {
    e = fromTosa(def, tensor, map);
  } else if (def &&
             isa<arith::ArithDialect, math::MathDialect>(def->getDialect())) {
    e = fromTensorArith(def, map);
  } else if (def && isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def) &&
             !isContraction(def->getOperand(0).getDefiningOp())) {
    // A reshape of a contraction result stays a leaf: the matcher reads the
    // batch split of Q·Kᵀ from it.
    e = fromReshape(def, tensor, map);
  }
  if (!e)
    e = leaf(tensor, map);
  if (!e->origin) {
    e->origin = tensor;
    e->originMap = map;
  }
  return e;
}

/// A reduction's result is read broadcast along the reduced dim: the one
/// space dim that `map` (space -> result) does not read. None if zero or
/// several dims are unread.
static std::optional<unsigned> getSingleDroppedDim(AffineMap map) {
  llvm::SmallBitVector used(map.getNumDims());
  for (AffineExpr r : map.getResults())
    if (auto d = dyn_cast<AffineDimExpr>(r))
      used.set(d.getPosition());
  if (used.count() + 1 != map.getNumDims())
    return std::nullopt;
  return used.find_first_unset();
}

Expr *ExprBuilder::fromLinalg(Operation *op, Value result, AffineMap map) {
  auto linalgOp = cast<linalg::LinalgOp>(op);
  if (!linalgOp.hasPureTensorSemantics() || linalgOp.getNumDpsInits() != 1 ||
      op->getNumRegions() != 1 || !linalgOp.getBlock())
    return nullptr;
  Block *body = linalgOp.getBlock();
  auto yield = dyn_cast<linalg::YieldOp>(body->getTerminator());
  if (!yield || yield.getNumOperands() != 1)
    return nullptr;
  OpOperand *init = linalgOp.getDpsInitOperand(0);
  AffineMap outMap = linalgOp.getMatchingIndexingMap(init);
  SmallVector<utils::IteratorType> iters = linalgOp.getIteratorTypesArray();
  unsigned numReduction = llvm::count(iters, utils::IteratorType::reduction);

  if (numReduction == 0) {
    // Element-wise: loop dims are the result dims (up to a permutation).
    if (!outMap.isPermutation() ||
        !linalgOp.getMatchingBlockArgument(init).use_empty())
      return nullptr;
    visited.push_back(op);
    return scalar(yield.getOperand(0), op,
                  inversePermutation(outMap).compose(map));
  }

  // A reduction over one loop dimension: the max of a single input, or the
  // sum of a value the body computes from its inputs without the
  // accumulator (a fused map-reduce such as rowsum(a ⊙ b)).
  unsigned numInputs = linalgOp.getNumDpsInputs();
  if (numReduction != 1 || numInputs == 0)
    return nullptr;
  unsigned red =
      llvm::find(iters, utils::IteratorType::reduction) - iters.begin();
  Operation *comb = yield.getOperand(0).getDefiningOp();
  if (!comb || comb->getBlock() != body)
    return nullptr;
  BlockArgument in = body->getArgument(0), acc = body->getArgument(numInputs);
  ExprOp kind = ExprOp::Unknown;
  Value summand = in;
  auto isInAcc = [&](Value a, Value b) {
    return numInputs == 1 && ((a == in && b == acc) || (a == acc && b == in));
  };
  if (isa<arith::AddFOp>(comb) && acc.hasOneUse() &&
      llvm::is_contained(comb->getOperands(), acc)) {
    kind = ExprOp::Add;
    summand = comb->getOperand(comb->getOperand(0) == acc ? 1 : 0);
  } else if (isa<arith::MaximumFOp, arith::MaxNumFOp>(comb) &&
             isInAcc(comb->getOperand(0), comb->getOperand(1)))
    kind = ExprOp::Max;
  else if (auto sel = dyn_cast<arith::SelectOp>(comb)) {
    // select(cmpf(ogt|oge|ugt|uge, in, acc), in, acc)
    auto cmp = sel.getCondition().getDefiningOp<arith::CmpFOp>();
    using Pred = arith::CmpFPredicate;
    if (cmp && cmp.getLhs() == in && cmp.getRhs() == acc &&
        sel.getTrueValue() == in && sel.getFalseValue() == acc &&
        llvm::is_contained({Pred::OGT, Pred::OGE, Pred::UGT, Pred::UGE},
                           cmp.getPredicate()))
      kind = ExprOp::Max;
  }
  if (kind == ExprOp::Unknown)
    return nullptr;

  // The init must be the neutral element: 0 for sums, -inf (or the lowest
  // float) for maxima.
  ExprBuilder initBuilder;
  Expr *initExpr = initBuilder.build(init->get());
  if (initExpr->kind != Expr::Kind::Const)
    return nullptr;
  if (kind == ExprOp::Add && initExpr->value != 0)
    return nullptr;
  if (kind == ExprOp::Max && !(initExpr->value <= -3.38e38))
    return nullptr;

  // The consumer reads the reduction broadcast along exactly one space dim:
  // the reduced one.
  std::optional<unsigned> reduced = getSingleDroppedDim(map);
  if (!reduced)
    return nullptr;
  unsigned reducedSpaceDim = *reduced;

  // Space -> loop map: parallel loops through the output map, the reduced
  // loop to the reduced space dim.
  SmallVector<AffineExpr> loopExprs(iters.size());
  for (unsigned l = 0; l < iters.size(); ++l) {
    if (l == red) {
      loopExprs[l] = getAffineDimExpr(reducedSpaceDim, op->getContext());
      continue;
    }
    std::optional<unsigned> pos =
        outMap.getResultPosition(getAffineDimExpr(l, op->getContext()));
    if (!pos)
      return nullptr;
    loopExprs[l] = map.getResult(*pos);
  }
  // Any keep-dim position of the output must be read at 0.
  for (auto [p, r] : llvm::enumerate(outMap.getResults()))
    if (!isa<AffineDimExpr>(r) && !map.getResult(p).isSymbolicOrConstant())
      return nullptr;
  AffineMap loopMap =
      AffineMap::get(map.getNumDims(), 0, loopExprs, op->getContext());
  visited.push_back(op);
  Expr *e = create(Expr::Kind::Reduce);
  e->op = kind;
  e->dim = reducedSpaceDim;
  e->operands.push_back(scalar(summand, op, loopMap));
  return e;
}

Expr *ExprBuilder::scalar(Value v, Operation *op, AffineMap loopMap) {
  auto linalgOp = cast<linalg::LinalgOp>(op);
  Block *body = linalgOp.getBlock();
  if (auto arg = dyn_cast<BlockArgument>(v)) {
    if (arg.getOwner() == body &&
        arg.getArgNumber() < linalgOp.getNumDpsInputs()) {
      OpOperand *input = linalgOp.getDpsInputOperand(arg.getArgNumber());
      return build(input->get(),
                   linalgOp.getMatchingIndexingMap(input).compose(loopMap));
    }
    if (!op->isAncestor(arg.getOwner()->getParentOp()) &&
        arg.getType().isIntOrIndex()) {
      Expr *e = create(Expr::Kind::Symbol);
      e->tensor = arg;
      return e;
    }
    Expr *e = create(Expr::Kind::Op);
    return e; // Unknown scalar.
  }
  Operation *def = v.getDefiningOp();
  Attribute cst;
  if (!matchPattern(v, m_Constant(&cst)) && !op->isAncestor(def) &&
      v.getType().isIntOrIndex()) {
    // A captured index or integer (a runtime size, say): the mask analysis
    // decides what it is.
    Expr *e = create(Expr::Kind::Symbol);
    e->tensor = v;
    return e;
  }
  if (matchPattern(v, m_Constant(&cst))) {
    Expr *e = create(Expr::Kind::Const);
    if (auto f = dyn_cast<FloatAttr>(cst))
      e->value = f.getValueAsDouble();
    else if (auto i = dyn_cast<IntegerAttr>(cst))
      e->value = i.getType().isInteger(1) ? (i.getValue().isZero() ? 0 : 1)
                                          : i.getValue().getSExtValue();
    else
      e->op = ExprOp::Unknown, e->kind = Expr::Kind::Op;
    return e;
  }
  if (auto index = dyn_cast<linalg::IndexOp>(def)) {
    AffineExpr r = loopMap.getResult(index.getDim());
    if (auto d = dyn_cast<AffineDimExpr>(r)) {
      Expr *e = create(Expr::Kind::Index);
      e->dim = d.getPosition();
      return e;
    }
    if (auto c = dyn_cast<AffineConstantExpr>(r)) {
      Expr *e = create(Expr::Kind::Const);
      e->value = c.getValue();
      return e;
    }
    return create(Expr::Kind::Op);
  }
  Expr *e = create(Expr::Kind::Op);
  if (def->getBlock() != body || depth >= kMaxDepth)
    return e; // A captured non-constant scalar: opaque.
  auto [kind, pred] = classify(def);
  e->op = kind;
  e->predicate = pred;
  if (kind == ExprOp::Unknown)
    return e;
  ++depth;
  for (Value operand : def->getOperands())
    e->operands.push_back(scalar(operand, op, loopMap));
  --depth;
  return e;
}

/// Map from the dims of `result` to the dims of `operand` under numpy-style
/// broadcasting of equal-rank tosa operands (size-1 dims read at 0).
static std::optional<AffineMap> getBroadcastMap(Value operand, Value result) {
  auto opType = dyn_cast<RankedTensorType>(operand.getType());
  auto resType = dyn_cast<RankedTensorType>(result.getType());
  if (!opType || !resType || opType.getRank() != resType.getRank())
    return std::nullopt;
  SmallVector<AffineExpr> exprs;
  MLIRContext *ctx = result.getContext();
  for (int64_t d = 0; d < opType.getRank(); ++d) {
    if (opType.getDimSize(d) == 1 && resType.getDimSize(d) != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else if (opType.getDimSize(d) == resType.getDimSize(d))
      exprs.push_back(getAffineDimExpr(d, ctx));
    else
      return std::nullopt;
  }
  return AffineMap::get(opType.getRank(), 0, exprs, ctx);
}

Expr *ExprBuilder::fromTosa(Operation *op, Value result, AffineMap map) {
  MLIRContext *ctx = op->getContext();
  // Reductions keep the reduced axis with size 1.
  if (isa<tosa::ReduceMaxOp, tosa::ReduceSumOp>(op)) {
    Value input = op->getOperand(0);
    auto axis = op->getAttrOfType<IntegerAttr>("axis").getInt();
    if (!map.getResult(axis).isSymbolicOrConstant())
      return nullptr;
    std::optional<unsigned> reduced = getSingleDroppedDim(map);
    if (!reduced)
      return nullptr;
    SmallVector<AffineExpr> exprs(map.getResults());
    exprs[axis] = getAffineDimExpr(*reduced, ctx);
    visited.push_back(op);
    Expr *e = create(Expr::Kind::Reduce);
    e->op = isa<tosa::ReduceMaxOp>(op) ? ExprOp::Max : ExprOp::Add;
    e->dim = *reduced;
    e->operands.push_back(
        build(input, AffineMap::get(map.getNumDims(), 0, exprs, ctx)));
    return e;
  }
  auto [kind, pred] = classify(op);
  if (kind == ExprOp::Unknown || op->getNumResults() != 1)
    return nullptr;
  if (auto mul = dyn_cast<tosa::MulOp>(op)) {
    // Float multiplies must not shift.
    APInt shift;
    if (!isa<FloatType>(getElementTypeOrSelf(mul.getType())) &&
        !(matchPattern(mul.getShift(), m_ConstantInt(&shift)) &&
          shift.isZero()))
      return nullptr;
  }
  SmallVector<AffineMap> maps;
  unsigned n = getNumDataOperands(op, kind);
  for (unsigned i = 0; i < n; ++i) {
    std::optional<AffineMap> m = getBroadcastMap(op->getOperand(i), result);
    if (!m)
      return nullptr;
    maps.push_back(m->compose(map));
  }
  visited.push_back(op);
  Expr *e = create(Expr::Kind::Op);
  e->op = kind;
  e->predicate = pred;
  for (unsigned i = 0; i < n; ++i)
    e->operands.push_back(build(op->getOperand(i), maps[i]));
  return e;
}

Expr *ExprBuilder::fromTensorArith(Operation *op, AffineMap map) {
  auto [kind, pred] = classify(op);
  if (kind == ExprOp::Unknown || op->getNumResults() != 1 ||
      !isa<RankedTensorType>(op->getResult(0).getType()))
    return nullptr;
  for (Value operand : op->getOperands())
    if (operand.getType() != op->getResult(0).getType() &&
        cast<ShapedType>(operand.getType()).getShape() !=
            cast<ShapedType>(op->getResult(0).getType()).getShape())
      return nullptr;
  visited.push_back(op);
  Expr *e = create(Expr::Kind::Op);
  e->op = kind;
  e->predicate = pred;
  for (Value operand : op->getOperands())
    e->operands.push_back(build(operand, map));
  return e;
}

std::optional<SmallVector<SmallVector<int64_t, 2>>>
attn::getReshapeReassociation(Operation *op) {
  SmallVector<SmallVector<int64_t, 2>> groups;
  int64_t rank;
  if (auto e = dyn_cast_or_null<tensor::ExpandShapeOp>(op)) {
    groups = e.getReassociationIndices();
    rank = e.getResultType().getRank();
  } else if (auto c = dyn_cast_or_null<tensor::CollapseShapeOp>(op)) {
    groups = c.getReassociationIndices();
    rank = c.getSrcType().getRank();
  } else {
    return std::nullopt;
  }
  int64_t next = 0;
  for (const SmallVector<int64_t, 2> &group : groups)
    for (int64_t d : group)
      if (d != next++)
        return std::nullopt;
  if (next != rank)
    return std::nullopt;
  return groups;
}

Expr *ExprBuilder::fromReshape(Operation *op, Value result, AffineMap map) {
  // Only reshapes that insert or drop unit dims: every reassociation group
  // has at most one non-unit dim.
  Value src = op->getOperand(0);
  auto srcType = cast<RankedTensorType>(src.getType());
  auto resType = cast<RankedTensorType>(result.getType());
  if (!srcType.hasStaticShape() || !resType.hasStaticShape())
    return nullptr;
  MLIRContext *ctx = op->getContext();
  SmallVector<AffineExpr> exprs(srcType.getRank(),
                                getAffineConstantExpr(0, ctx));
  std::optional<SmallVector<SmallVector<int64_t, 2>>> groups =
      getReshapeReassociation(op);
  if (!groups)
    return nullptr;
  if (isa<tensor::ExpandShapeOp>(op)) {
    for (auto [s, group] : llvm::enumerate(*groups)) {
      if (srcType.getDimSize(s) == 1)
        continue;
      auto nonUnit = llvm::make_filter_range(
          group, [&](int64_t d) { return resType.getDimSize(d) != 1; });
      if (std::distance(nonUnit.begin(), nonUnit.end()) != 1)
        return nullptr;
      exprs[s] = map.getResult(*nonUnit.begin());
    }
  } else {
    for (auto [r, group] : llvm::enumerate(*groups)) {
      unsigned nonUnit = 0;
      for (int64_t s : group)
        if (srcType.getDimSize(s) != 1) {
          exprs[s] = map.getResult(r);
          ++nonUnit;
        }
      if (nonUnit > 1)
        return nullptr;
    }
  }
  visited.push_back(op);
  return build(src, AffineMap::get(map.getNumDims(), 0, exprs, ctx));
}

bool fuse::equal(const Expr *a, const Expr *b) {
  if (a == b)
    return true;
  if (a->kind != b->kind || a->op != b->op || a->predicate != b->predicate ||
      a->dim != b->dim || a->tensor != b->tensor || a->map != b->map ||
      a->constant != b->constant || a->operands.size() != b->operands.size())
    return false;
  if (a->kind == Expr::Kind::Const && a->value != b->value)
    return false;
  if (a->kind == Expr::Kind::Op && a->op == ExprOp::Unknown)
    return false;
  for (auto [x, y] : llvm::zip(a->operands, b->operands))
    if (!equal(x, y))
      return false;
  return true;
}

bool fuse::reads(const Expr *e, Value tensor) {
  if (e->tensor == tensor)
    return true;
  return llvm::any_of(e->operands,
                      [&](const Expr *o) { return reads(o, tensor); });
}

const Expr *fuse::stripCasts(const Expr *e) {
  while (e->kind == Expr::Kind::Op && e->op == ExprOp::FCast)
    e = e->operands[0];
  return e;
}

std::optional<double> fuse::getConstant(const Expr *e) {
  e = stripCasts(e);
  if (e->kind == Expr::Kind::Const)
    return e->value;
  // Fold the constant arithmetic frontends leave around scales
  // (reciprocal(8.0), 1.0 / sqrt_d, -x).
  if (e->kind != Expr::Kind::Op || e->operands.empty())
    return std::nullopt;
  std::optional<double> a = getConstant(e->operands[0]);
  if (!a)
    return std::nullopt;
  if (e->op == ExprOp::Recip)
    return 1.0 / *a;
  if (e->op == ExprOp::Neg)
    return -*a;
  if (e->operands.size() != 2)
    return std::nullopt;
  std::optional<double> b = getConstant(e->operands[1]);
  if (!b)
    return std::nullopt;
  switch (e->op) {
  case ExprOp::Mul:
    return *a * *b;
  case ExprOp::Div:
    return *a / *b;
  default:
    return std::nullopt;
  }
}

void fuse::print(const Expr *e, raw_ostream &os) {
  static const char *names[] = {
      "add", "sub",  "mul",   "div",    "max",  "neg",     "recip",
      "exp", "tanh", "fcast", "select", "cmpf", "cmpi",    "andi",
      "ori", "xori", "addi",  "subi",   "muli", "intcast", "?"};
  switch (e->kind) {
  case Expr::Kind::Tensor:
    os << "T(" << e->tensor.getLoc() << ", " << e->map << ")";
    return;
  case Expr::Kind::Const:
    os << e->value;
    return;
  case Expr::Kind::ConstTensor:
    os << "C(" << e->map << ")";
    return;
  case Expr::Kind::Index:
    os << "i" << e->dim;
    return;
  case Expr::Kind::Symbol:
    os << "S(" << e->tensor.getLoc() << ")";
    return;
  case Expr::Kind::Reduce:
    os << "reduce_" << names[(int)e->op] << "@" << e->dim << "(";
    print(e->operands[0], os);
    os << ")";
    return;
  case Expr::Kind::Softmax:
    os << "softmax@" << e->dim << "(";
    print(e->operands[0], os);
    os << ")";
    return;
  case Expr::Kind::Op:
    os << names[(int)e->op];
    if (e->op == ExprOp::CmpI || e->op == ExprOp::CmpF)
      os << e->predicate;
    os << "(";
    llvm::interleaveComma(e->operands, os,
                          [&](const Expr *o) { print(o, os); });
    os << ")";
    return;
  }
}
