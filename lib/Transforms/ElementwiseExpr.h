//===- ElementwiseExpr.h - element-wise view of tensor graphs ---*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// attn-fuse reads the unfused attention graph as scalar expressions: what one
// element of a tensor is, as a function of its indices, seen through the
// element-wise producers that frontends emit (linalg.generic bodies, named
// linalg element-wise ops, arith/math on tensors, tosa element-wise ops) and
// through the reductions and unit-dim reshapes between them. Matching on these
// expressions makes the matcher indifferent to how the frontend split the
// math into ops (one generic per op, one fused generic, named ops or tosa).
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_LIB_TRANSFORMS_ELEMENTWISEEXPR_H
#define ATTN_LIB_TRANSFORMS_ELEMENTWISEEXPR_H

#include "mlir/IR/AffineMap.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/ADT/SmallVector.h"

#include <deque>
#include <optional>

namespace mlir {
namespace attn {
namespace fuse {

/// The scalar operations the matcher distinguishes.
enum class ExprOp {
  Add,
  Sub,
  Mul,
  Div,
  Max,
  Neg,
  Recip,
  Exp,
  Tanh,  // float arithmetic
  FCast, // extf / truncf / tosa.cast
  Select,
  CmpF,
  CmpI, // predicates and selects
  AndI,
  OrI,
  XOrI,
  AddI,
  SubI,
  MulI,
  IntCast, // index arithmetic
  Unknown
};

/// One node of a scalar expression over a "space": the index space of the
/// tensor whose element the expression describes.
struct Expr {
  enum class Kind {
    /// An element of a tensor the builder did not look into, read at `map`
    /// (space dims -> tensor dims; results are dims or the constant 0).
    Tensor,
    /// A scalar constant (`value`), from a splat, a fill or a constant.
    Const,
    /// A non-splat constant tensor read at `map`.
    ConstTensor,
    /// The index of space dimension `dim`.
    Index,
    /// `op` applied to `operands`.
    Op,
    /// A reduction (`op` = Add or Max) of `operands[0]` over space dimension
    /// `dim`; the node's value does not depend on that dimension.
    Reduce,
    /// linalg.softmax of `operands[0]` over space dimension `dim`.
    Softmax,
    /// An index or integer scalar defined outside the linalg body that reads
    /// it (`tensor`), such as a runtime size: the same for every element.
    Symbol,
  };
  Kind kind;
  ExprOp op = ExprOp::Unknown;
  /// Comparison predicate (arith::CmpFPredicate / CmpIPredicate as integer).
  int64_t predicate = 0;
  double value = 0;
  unsigned dim = 0;
  Value tensor;
  AffineMap map;
  DenseElementsAttr constant;
  SmallVector<Expr *, 3> operands;
  /// The tensor (and map from the space) whose element this expression is,
  /// when the expression is a whole tensor operand of some op.
  Value origin;
  AffineMap originMap;

  bool isConst(double v) const { return kind == Kind::Const && value == v; }
};

/// Builds and owns expressions; records every op it looked through.
class ExprBuilder {
public:
  /// The expression of element `map(space)` of `tensor`, where `map` goes from
  /// the space's dims to the tensor's dims (results: dims or constant 0).
  Expr *build(Value tensor, AffineMap map);
  /// Same, with the identity map over `tensor`'s own index space.
  Expr *build(Value tensor);

  /// Ops whose semantics the expressions absorbed (inlined bodies,
  /// reductions, softmax, reshapes), in visit order.
  ArrayRef<Operation *> getVisitedOps() const { return visited; }

private:
  Expr *create(Expr::Kind kind);
  Expr *leaf(Value tensor, AffineMap map);
  Expr *fromLinalg(Operation *op, Value result, AffineMap map);
  Expr *fromReduction(Operation *op, Value input, AffineMap inputMap,
                      unsigned reducedLoop, ExprOp kind, Value result,
                      AffineMap map, unsigned resultReducedPos, bool keepDim);
  Expr *fromTosa(Operation *op, Value result, AffineMap map);
  Expr *fromTensorArith(Operation *op, AffineMap map);
  Expr *fromReshape(Operation *op, Value result, AffineMap map);
  Expr *scalar(Value v, Operation *linalgOp, AffineMap loopMap);

  std::deque<Expr> arena;
  SmallVector<Operation *> visited;
  unsigned depth = 0;
};

/// Structural equality of two expressions.
bool equal(const Expr *a, const Expr *b);

/// Whether `e` reads `tensor` anywhere.
bool reads(const Expr *e, Value tensor);

/// Strips float casts (extf/truncf) from the top of `e`.
const Expr *stripCasts(const Expr *e);

/// If `e` is a float scalar constant (possibly under casts), its value.
std::optional<double> getConstant(const Expr *e);

/// Prints `e` in a compact functional form (for debugging and remarks).
void print(const Expr *e, raw_ostream &os);

} // namespace fuse
} // namespace attn
} // namespace mlir

#endif // ATTN_LIB_TRANSFORMS_ELEMENTWISEEXPR_H
