//===- AttnOps.cpp - attn operations --------------------------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Builders, accessors and verifiers of the attn operations.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/AttnOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

#define GET_OP_CLASSES
#include "attn/IR/AttnOps.cpp.inc"

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

void AttentionOp::build(OpBuilder &builder, OperationState &state, Value query,
                        Value key, Value value, MaskAttr mask) {
  auto queryType = cast<RankedTensorType>(query.getType());
  auto valueType = cast<RankedTensorType>(value.getType());
  SmallVector<int64_t> outShape(queryType.getShape());
  outShape.back() = valueType.getShape().back();
  auto outType = RankedTensorType::get(outShape, queryType.getElementType());
  build(builder, state, outType, /*lse=*/Type(), query, key, value,
        /*bias=*/Value(), /*sinks=*/Value(), /*positionOffset=*/Value(),
        /*descale=*/ValueRange(), Layout::BHSD, mask,
        /*scale=*/FloatAttr(), /*softcap=*/FloatAttr());
}

void AttentionOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getOutput(), "attn");
  if (Value lse = getLse())
    setNameFn(lse, "lse");
}

/// The sizes of an attention problem from its query, key and value shapes,
/// read through `layout` (attn.attention and attn.attention_grad).
static AttentionShape attentionShape(Layout layout, ArrayRef<int64_t> q,
                                     ArrayRef<int64_t> k, ArrayRef<int64_t> v) {
  unsigned h = getHeadDimPos(layout), s = getSeqDimPos(layout);
  return AttentionShape{q[0], q[h], k[h], q[s], k[s], q[3], v[3]};
}

AttentionShape AttentionOp::getAttentionShape() {
  return attentionShape(getLayout(), getQuery().getType().getShape(),
                        getKey().getType().getShape(),
                        getValue().getType().getShape());
}

/// The scale of an attention op: the attribute, else 1/sqrt(head dim) for a
/// static, positive head dim.
static std::optional<double> effectiveScale(std::optional<APFloat> scale,
                                            int64_t headDim) {
  if (scale)
    return scale->convertToDouble();
  if (ShapedType::isDynamic(headDim) || headDim <= 0)
    return std::nullopt;
  return 1.0 / std::sqrt(static_cast<double>(headDim));
}

/// An op's optional mask, with an absent attribute meaning
/// `#attn.mask<none>`.
static MaskAttr maskOrNone(std::optional<MaskAttr> mask, MLIRContext *ctx) {
  return mask ? *mask : MaskAttr::getNone(ctx);
}

MaskAttr AttentionOp::getMaskOrNone() {
  return maskOrNone(getMask(), getContext());
}

std::optional<double> AttentionOp::getEffectiveScale() {
  return effectiveScale(getScale(), getAttentionShape().headDim);
}

std::optional<int64_t> AttentionOp::getGroupSize() {
  AttentionShape shape = getAttentionShape();
  if (ShapedType::isDynamic(shape.queryHeads) ||
      ShapedType::isDynamic(shape.kvHeads) || shape.kvHeads == 0)
    return std::nullopt;
  return shape.queryHeads / shape.kvHeads;
}

bool AttentionOp::isFp8() {
  return isa<Float8E4M3FNType>(getQuery().getType().getElementType());
}

/// Formats a size for diagnostics.
static std::string fmt(int64_t size) {
  return ShapedType::isDynamic(size) ? "?" : std::to_string(size);
}

/// Each tensor at most 2^48 elements (and each dimension at most
/// kMaxDimSize) -- far beyond any memory, so no real program is refused.
static constexpr int64_t kMaxElements = int64_t(1) << 48;

bool mlir::attn::isWithinSizeBounds(ArrayRef<int64_t> shape) {
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (ShapedType::isDynamic(d))
      continue;
    if (d > kMaxDimSize || (d != 0 && elements > kMaxElements / d))
      return false;
    elements *= d;
  }
  return true;
}

/// Bounds the static sizes of every tensor operand and result of `op`.
static LogicalResult verifySizeBounds(Operation *op) {
  auto check = [&](Type t) -> LogicalResult {
    auto tensor = dyn_cast<RankedTensorType>(t);
    if (!tensor || isWithinSizeBounds(tensor.getShape()))
      return success();
    for (int64_t d : tensor.getShape())
      if (!ShapedType::isDynamic(d) && d > kMaxDimSize)
        return op->emitOpError()
               << "dimension of size " << d << " in " << t
               << " exceeds the largest size attn takes (2^31 - 1)";
    return op->emitOpError() << t << " has more than 2^48 elements";
  };
  for (Type t : op->getOperandTypes())
    if (failed(check(t)))
      return failure();
  for (Type t : op->getResultTypes())
    if (failed(check(t)))
      return failure();
  return success();
}

/// Checks an integer size attribute lies in [lo, 2^31 - 1].
static LogicalResult verifySizeAttr(Operation *op, StringRef name,
                                    int64_t value, int64_t lo = 1) {
  if (value < lo || value > kMaxDimSize)
    return op->emitOpError()
           << name << " must be in [" << lo << ", 2^31 - 1], got " << value;
  return success();
}

/// Whether two sizes may be equal (equal, or either dynamic).
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// The checks attn.attention and attn.paged_attention share: sinks [Hq] of
/// the query element type or f32, the LSE result [B, Hq, Sq] f32, and the
/// positive finite scale and softcap.
static LogicalResult verifySinksLseAndScalars(Operation *op, Value sinks,
                                              Value lse, Type elementType,
                                              int64_t batch, int64_t queryHeads,
                                              int64_t querySeqLen,
                                              std::optional<APFloat> scale,
                                              std::optional<APFloat> softcap) {
  if (sinks) {
    auto sinksType = cast<RankedTensorType>(sinks.getType());
    if (sinksType.getRank() != 1 ||
        !compatible(sinksType.getDimSize(0), queryHeads))
      return op->emitOpError() << "sinks must be a rank-1 tensor of the "
                                  "query head count ("
                               << fmt(queryHeads) << "), got " << sinksType;
    Type sinksElt = sinksType.getElementType();
    if (sinksElt != elementType && !sinksElt.isF32())
      return op->emitOpError() << "sinks element type " << sinksElt
                               << " must be the query element type ("
                               << elementType << ") or f32";
  }
  if (lse) {
    auto lseType = cast<RankedTensorType>(lse.getType());
    SmallVector<int64_t> expected = {batch, queryHeads, querySeqLen};
    bool ok = lseType.getRank() == 3 && lseType.getElementType().isF32();
    for (unsigned d = 0; ok && d < 3; ++d)
      ok = compatible(lseType.getDimSize(d), expected[d]);
    if (!ok)
      return op->emitOpError()
             << (isa<OpResult>(lse) ? "lse result" : "lse operand")
             << " must be "
             << RankedTensorType::get(expected,
                                      Float32Type::get(op->getContext()))
             << " ([B, Hq, Sq], f32), got " << lseType;
  }
  if (scale && (!scale->isFiniteNonZero() || scale->isNegative()))
    return op->emitOpError() << "scale must be a positive finite number, got "
                             << scale->convertToDouble();
  if (softcap && (!softcap->isFiniteNonZero() || softcap->isNegative()))
    return op->emitOpError() << "softcap must be a positive finite number, got "
                             << softcap->convertToDouble();
  return success();
}

/// The query element type every attn op takes: f16, bf16 or f32, and
/// f8E4M3FN where `allowFp8` (attn.attention's FP8 forward).
static LogicalResult verifyQueryElementType(Operation *op, Type elementType,
                                            bool allowFp8 = false) {
  if (elementType.isF16() || elementType.isBF16() || elementType.isF32() ||
      (allowFp8 && isa<Float8E4M3FNType>(elementType)))
    return success();
  return op->emitOpError() << "query element type must be f16, bf16"
                           << (allowFp8 ? ", f32 or f8E4M3FN" : " or f32")
                           << ", got " << elementType;
}

/// The checks attn.attention and attn.attention_grad share: query, key,
/// value and output (the result, or the gradient op's operand) of one
/// element type, rank 4 in `layout`, with agreeing batch, heads, sequence
/// lengths and head dims; the bias, sinks, LSE, scale and softcap. With
/// `allowFp8`, f8E4M3FN inputs are accepted and their output's element type
/// left to the caller (verifyFp8Types).
static LogicalResult
verifyAttentionTensors(Operation *op, Layout layout, Value query, Value key,
                       Value value, Type output, Value bias, Value sinks,
                       Value lse, std::optional<APFloat> scale,
                       std::optional<APFloat> softcap, bool allowFp8 = false) {
  auto emitOpError = [&]() { return op->emitOpError(); };
  const char *qkvShape =
      layout == Layout::BHSD ? "[B, H, S, D]" : "[B, S, H, D]";

  // Ranks and element types of query, key, value and output.
  auto queryType = cast<RankedTensorType>(query.getType());
  Type elementType = queryType.getElementType();
  if (failed(verifySizeBounds(op)) ||
      failed(verifyQueryElementType(op, elementType, allowFp8)))
    return failure();
  bool fp8 = isa<Float8E4M3FNType>(elementType);
  auto checkMain = [&](StringRef name, RankedTensorType type) -> LogicalResult {
    if (type.getRank() != 4)
      return emitOpError() << name << " must be a rank-4 tensor " << qkvShape
                           << " (layout " << stringifyLayout(layout)
                           << "), got rank " << type.getRank();
    if (type.getElementType() != elementType && !(fp8 && name == "output"))
      return emitOpError() << name << " element type " << type.getElementType()
                           << " does not match query element type "
                           << elementType;
    return success();
  };
  auto keyType = cast<RankedTensorType>(key.getType());
  auto valueType = cast<RankedTensorType>(value.getType());
  auto outputType = cast<RankedTensorType>(output);
  if (failed(checkMain("query", queryType)) ||
      failed(checkMain("key", keyType)) ||
      failed(checkMain("value", valueType)) ||
      failed(checkMain("output", outputType)))
    return failure();

  unsigned hPos = getHeadDimPos(layout), sPos = getSeqDimPos(layout);
  ArrayRef<int64_t> k = keyType.getShape(), v = valueType.getShape();
  ArrayRef<int64_t> o = outputType.getShape();
  AttentionShape shape = attentionShape(layout, queryType.getShape(), k, v);
  auto mismatch = [&](StringRef what, int64_t got, StringRef ref,
                      int64_t expected) -> LogicalResult {
    return emitOpError() << what << " (" << fmt(got) << ") must equal " << ref
                         << " (" << fmt(expected) << ")";
  };

  // Batch.
  if (!compatible(k[0], shape.batch))
    return mismatch("key batch size", k[0], "query batch size", shape.batch);
  if (!compatible(v[0], shape.batch))
    return mismatch("value batch size", v[0], "query batch size", shape.batch);

  // Heads: key and value share Hkv; Hq is a multiple of Hkv.
  if (!compatible(v[hPos], k[hPos]))
    return mismatch("value head count", v[hPos], "key head count", k[hPos]);
  if (shape.kvHeads == 0)
    return op->emitOpError("key must have at least one head");
  if (shape.queryHeads == 0)
    return op->emitOpError("query must have at least one head");
  if (!ShapedType::isDynamic(shape.queryHeads) &&
      !ShapedType::isDynamic(shape.kvHeads) &&
      shape.queryHeads % shape.kvHeads != 0)
    return emitOpError() << "query head count (" << shape.queryHeads
                         << ") must be a multiple of the key/value head count ("
                         << shape.kvHeads << ")";

  // Sequence lengths and head dimensions.
  if (!compatible(v[sPos], k[sPos]))
    return mismatch("value sequence length", v[sPos], "key sequence length",
                    k[sPos]);
  if (!compatible(shape.headDim, k[3]))
    return mismatch("key head dim", k[3], "query head dim", shape.headDim);
  if (shape.headDim == 0)
    return op->emitOpError("query head dim must be positive");
  if (shape.valueHeadDim == 0)
    return op->emitOpError("value head dim must be positive");

  // Output: [B, Hq, Sq, Dv] in the layout.
  SmallVector<int64_t> expectedOut(queryType.getShape());
  expectedOut[3] = shape.valueHeadDim;
  for (auto [got, expected] : llvm::zip_equal(o, expectedOut)) {
    if (!compatible(got, expected))
      return emitOpError() << "output shape " << outputType
                           << " is incompatible with the expected "
                           << RankedTensorType::get(expectedOut,
                                                    outputType.getElementType())
                           << " (query shape with the value head dim)";
  }

  // Bias: rank 4, each dimension 1 or the matching [B, Hq, Sq, Sk] size.
  if (bias) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (biasType.getRank() != 4)
      return emitOpError() << "bias must be a rank-4 tensor [B, Hq, Sq, Sk] "
                              "(size-1 dimensions broadcast), got rank "
                           << biasType.getRank();
    Type biasElt = biasType.getElementType();
    if (biasElt != elementType && !biasElt.isF32())
      return emitOpError() << "bias element type " << biasElt
                           << " must be the query element type (" << elementType
                           << ") or f32";
    int64_t full[4] = {shape.batch, shape.queryHeads, shape.querySeqLen,
                       shape.keySeqLen};
    const char *names[4] = {"B", "Hq", "Sq", "Sk"};
    for (unsigned d = 0; d < 4; ++d) {
      int64_t got = biasType.getDimSize(d);
      if (got != 1 && !compatible(got, full[d]))
        return emitOpError()
               << "bias " << biasType << " is not broadcastable to [B, Hq, Sq, "
               << "Sk] = [" << fmt(full[0]) << ", " << fmt(full[1]) << ", "
               << fmt(full[2]) << ", " << fmt(full[3]) << "]: dimension " << d
               << " (" << names[d] << ") is " << fmt(got) << ", expected 1 or "
               << fmt(full[d]);
    }
  }

  return verifySinksLseAndScalars(op, sinks, lse, elementType, shape.batch,
                                  shape.queryHeads, shape.querySeqLen, scale,
                                  softcap);
}

/// The element types of FP8 attention, checked before the shapes: descales
/// exactly with f8E4M3FN inputs (three of them), a bf16, f16 or f32 output,
/// f32 bias and sinks. Key and value types are checked against the query's
/// by verifyAttentionTensors.
static LogicalResult verifyFp8Types(AttentionOp op) {
  Type elt = op.getQuery().getType().getElementType();
  size_t numDescales = op.getDescale().size();
  if (!op.isFp8()) {
    if (numDescales == 0)
      return success();
    return op.emitOpError() << "descale takes f8E4M3FN query, key and value, "
                               "got "
                            << elt;
  }
  if (numDescales == 0)
    return op.emitOpError(
        "f8E4M3FN query, key and value need descale(%q, %k, %v) operands "
        "(f32 factors, per tensor [] or per batch and KV head [B, Hkv]; "
        "pass constant ones for none)");
  if (numDescales != 3)
    return op.emitOpError() << "descale takes three operands (query, key, "
                               "value), got "
                            << numDescales;
  Type outElt = op.getOutput().getType().getElementType();
  if (!outElt.isBF16() && !outElt.isF16() && !outElt.isF32())
    return op.emitOpError() << "output element type of f8E4M3FN attention "
                               "must be bf16, f16 or f32, got "
                            << outElt;
  for (auto [name, v] : {std::pair<StringRef, Value>{"bias", op.getBias()},
                         {"sinks", op.getSinks()}})
    if (v && !cast<RankedTensorType>(v.getType()).getElementType().isF32())
      return op.emitOpError()
             << name << " element type "
             << cast<RankedTensorType>(v.getType()).getElementType()
             << " must be f32 with f8E4M3FN inputs";
  return success();
}

/// The descales' shapes (after verifyAttentionTensors): f32, all of one
/// type, each [] or [B, Hkv].
static LogicalResult verifyDescaleShapes(AttentionOp op) {
  if (op.getDescale().empty())
    return success();
  AttentionShape shape = op.getAttentionShape();
  MLIRContext *ctx = op.getContext();
  auto perHead = RankedTensorType::get({shape.batch, shape.kvHeads},
                                       Float32Type::get(ctx));
  auto perTensor = RankedTensorType::get({}, Float32Type::get(ctx));
  static constexpr StringLiteral names[] = {"query", "key", "value"};
  for (auto [name, v] : llvm::zip_equal(names, op.getDescale())) {
    auto type = cast<RankedTensorType>(v.getType());
    bool ok =
        type.getElementType().isF32() &&
        (type.getRank() == 0 ||
         (type.getRank() == 2 && compatible(type.getDimSize(0), shape.batch) &&
          compatible(type.getDimSize(1), shape.kvHeads)));
    if (!ok)
      return op.emitOpError()
             << "descale of " << name << " must be " << perTensor
             << " (per tensor) or " << perHead
             << " (per batch and KV head, [B, Hkv]), got " << type;
  }
  Type first = op.getDescale()[0].getType();
  for (Value v : op.getDescale().drop_front())
    if (v.getType() != first)
      return op.emitOpError()
             << "descales of query, key and value must have one type (all "
                "per tensor or all per KV head), got "
             << first << " and " << v.getType();
  return success();
}

LogicalResult AttentionOp::verify() {
  // The generic form may split the operands into groups of any sizes that
  // add up to their count (ODS checks only the sum); every accessor below
  // needs query, key and value to be one operand each, bias and sinks at
  // most one (descale is variadic; verifyFp8Types counts it).
  static constexpr StringLiteral groupNames[] = {
      "query", "key", "value", "bias", "sinks", "position_offset"};
  for (auto [i, size] : llvm::enumerate(getProperties().operandSegmentSizes)) {
    if (i >= std::size(groupNames))
      break;
    bool optional = i >= 3;
    if (size != 1 && !(optional && size == 0))
      return emitOpError() << "operandSegmentSizes gives " << groupNames[i]
                           << " " << size << " operands, expected "
                           << (optional ? "0 or 1" : "1");
  }
  if (getPositionOffset() && getMaskOrNone().isNone())
    return emitOpError("position_offset takes a causal or window mask (a "
                       "mask of none admits every key whatever the offset)");
  if (failed(verifyFp8Types(*this)))
    return failure();
  if (failed(verifyAttentionTensors(getOperation(), getLayout(), getQuery(),
                                    getKey(), getValue(), getOutput().getType(),
                                    getBias(), getSinks(), getLse(), getScale(),
                                    getSoftcap(), /*allowFp8=*/true)))
    return failure();
  return verifyDescaleShapes(*this);
}

//===----------------------------------------------------------------------===//
// AttentionGradOp
//===----------------------------------------------------------------------===//

void AttentionGradOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getGradQuery(), "dq");
  setNameFn(getGradKey(), "dk");
  setNameFn(getGradValue(), "dv");
  if (Value dsinks = getGradSinks())
    setNameFn(dsinks, "dsinks");
}

AttentionShape AttentionGradOp::getAttentionShape() {
  return attentionShape(getLayout(), getQuery().getType().getShape(),
                        getKey().getType().getShape(),
                        getValue().getType().getShape());
}

MaskAttr AttentionGradOp::getMaskOrNone() {
  return maskOrNone(getMask(), getContext());
}

std::optional<double> AttentionGradOp::getEffectiveScale() {
  return effectiveScale(getScale(), getAttentionShape().headDim);
}

LogicalResult AttentionGradOp::verify() {
  static constexpr StringLiteral operandNames[] = {
      "query", "key", "value", "output", "grad_output", "lse", "bias", "sinks"};
  for (auto [i, size] : llvm::enumerate(getProperties().operandSegmentSizes)) {
    bool optional = i >= 6;
    if (size != 1 && !(optional && size == 0))
      return emitOpError() << "operandSegmentSizes gives " << operandNames[i]
                           << " " << size << " operands, expected "
                           << (optional ? "0 or 1" : "1");
  }
  if (failed(verifyAttentionTensors(getOperation(), getLayout(), getQuery(),
                                    getKey(), getValue(), getOutput().getType(),
                                    getBias(), getSinks(), getLse(), getScale(),
                                    getSoftcap())))
    return failure();
  // Each gradient has the type of what it is the gradient of.
  auto same = [&](StringRef name, Value got, StringRef of,
                  Value want) -> LogicalResult {
    if (got.getType() == want.getType())
      return success();
    return emitOpError() << name << " must have the type of " << of << " ("
                         << want.getType() << "), got " << got.getType();
  };
  if (failed(same("grad_output", getGradOutput(), "output", getOutput())) ||
      failed(same("grad_query", getGradQuery(), "query", getQuery())) ||
      failed(same("grad_key", getGradKey(), "key", getKey())) ||
      failed(same("grad_value", getGradValue(), "value", getValue())))
    return failure();
  Value sinks = getSinks(), dsinks = getGradSinks();
  if (bool(sinks) != bool(dsinks))
    return emitOpError() << (sinks ? "sinks are given but there is no "
                                     "grad_sinks result"
                                   : "a grad_sinks result needs sinks");
  if (sinks && failed(same("grad_sinks", dsinks, "sinks", sinks)))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// PagedAttentionOp
//===----------------------------------------------------------------------===//

void PagedAttentionOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getOutput(), "attn");
  if (Value lse = getLse())
    setNameFn(lse, "lse");
}

/// Positions of the page-slot and head dimensions of a cache tensor.
static std::pair<unsigned, unsigned> cacheDims(CacheLayout layout) {
  return layout == CacheLayout::NHD ? std::make_pair(1u, 2u)
                                    : std::make_pair(2u, 1u);
}

PagedAttentionShape PagedAttentionOp::getPagedShape() {
  auto [slotPos, headPos] = cacheDims(getCacheLayout());
  ArrayRef<int64_t> q = getQuery().getType().getShape();
  ArrayRef<int64_t> k = getKeyCache().getType().getShape();
  ArrayRef<int64_t> v = getValueCache().getType().getShape();
  ArrayRef<int64_t> t = getBlockTable().getType().getShape();
  int64_t maxPages = t.size() == 2 ? t[1] : ShapedType::kDynamic;
  return PagedAttentionShape{q[0], q[2],       k[headPos], q[1],    q[3],
                             v[3], k[slotPos], k[0],       maxPages};
}

MaskAttr PagedAttentionOp::getMaskOrNone() {
  return maskOrNone(getMask(), getContext());
}

std::optional<double> PagedAttentionOp::getEffectiveScale() {
  return effectiveScale(getScale(), getPagedShape().headDim);
}

LogicalResult PagedAttentionOp::verify() {
  CacheLayout layout = getCacheLayout();
  const char *cacheShape = layout == CacheLayout::NHD
                               ? "[P, page_size, Hkv, D]"
                               : "[P, Hkv, page_size, D]";
  RankedTensorType queryType = getQuery().getType();
  Type elementType = queryType.getElementType();
  if (failed(verifySizeBounds(getOperation())) ||
      failed(verifyQueryElementType(getOperation(), elementType)))
    return failure();
  auto checkRank4 = [&](StringRef name, RankedTensorType type,
                        StringRef shape) -> LogicalResult {
    if (type.getRank() != 4)
      return emitOpError() << name << " must be a rank-4 tensor " << shape
                           << ", got rank " << type.getRank();
    if (type.getElementType() != elementType)
      return emitOpError() << name << " element type " << type.getElementType()
                           << " does not match query element type "
                           << elementType;
    return success();
  };
  RankedTensorType keyType = getKeyCache().getType();
  RankedTensorType valueType = getValueCache().getType();
  RankedTensorType outputType = getOutput().getType();
  if (failed(checkRank4("query", queryType, "[B, Sq, Hq, D]")) ||
      failed(checkRank4("key_cache", keyType, cacheShape)) ||
      failed(checkRank4("value_cache", valueType, cacheShape)) ||
      failed(checkRank4("output", outputType, "[B, Sq, Hq, Dv]")))
    return failure();

  // Block table [B, max_pages] and sequence lengths [B]: integers.
  RankedTensorType tableType = getBlockTable().getType();
  RankedTensorType lensType = getSeqLens().getType();
  auto isIndexInt = [](Type t) {
    return t.isSignlessInteger(32) || t.isSignlessInteger(64);
  };
  if (tableType.getRank() != 2 || !isIndexInt(tableType.getElementType()))
    return emitOpError() << "block_table must be a rank-2 tensor [B, "
                            "max_pages] of i32 or i64, got "
                         << tableType;
  if (lensType.getRank() != 1 ||
      lensType.getElementType() != tableType.getElementType())
    return emitOpError() << "seq_lens must be a rank-1 tensor [B] of the "
                            "block_table element type ("
                         << tableType.getElementType() << "), got " << lensType;

  PagedAttentionShape shape = getPagedShape();
  auto [slotPos, headPos] = cacheDims(layout);
  ArrayRef<int64_t> k = keyType.getShape(), v = valueType.getShape();
  auto mismatch = [&](StringRef what, int64_t got, StringRef ref,
                      int64_t expected) -> LogicalResult {
    return emitOpError() << what << " (" << fmt(got) << ") must equal " << ref
                         << " (" << fmt(expected) << ")";
  };
  if (!compatible(tableType.getDimSize(0), shape.batch))
    return mismatch("block_table batch size", tableType.getDimSize(0),
                    "query batch size", shape.batch);
  if (!compatible(lensType.getDimSize(0), shape.batch))
    return mismatch("seq_lens batch size", lensType.getDimSize(0),
                    "query batch size", shape.batch);
  if (!compatible(v[0], k[0]))
    return mismatch("value_cache page count", v[0], "key_cache page count",
                    k[0]);
  if (!compatible(v[slotPos], k[slotPos]))
    return mismatch("value_cache page size", v[slotPos], "key_cache page size",
                    k[slotPos]);
  if (!compatible(v[headPos], k[headPos]))
    return mismatch("value_cache head count", v[headPos],
                    "key_cache head count", k[headPos]);
  if (!compatible(k[3], shape.headDim))
    return mismatch("key_cache head dim", k[3], "query head dim",
                    shape.headDim);
  if (!ShapedType::isDynamic(shape.pageSize) &&
      (shape.pageSize < 1 || shape.pageSize > 256))
    return emitOpError() << "page size must be between 1 and 256, got "
                         << shape.pageSize;
  if (shape.kvHeads == 0)
    return emitOpError("key_cache must have at least one head");
  if (shape.queryHeads == 0)
    return emitOpError("query must have at least one head");
  if (!ShapedType::isDynamic(shape.queryHeads) &&
      !ShapedType::isDynamic(shape.kvHeads) &&
      shape.queryHeads % shape.kvHeads != 0)
    return emitOpError() << "query head count (" << shape.queryHeads
                         << ") must be a multiple of the key/value head count ("
                         << shape.kvHeads << ")";
  if (shape.headDim == 0 || shape.valueHeadDim == 0)
    return emitOpError("head dims must be positive");

  SmallVector<int64_t> expectedOut(queryType.getShape());
  expectedOut[3] = shape.valueHeadDim;
  for (auto [got, expected] :
       llvm::zip_equal(outputType.getShape(), expectedOut))
    if (!compatible(got, expected))
      return emitOpError() << "output shape " << outputType
                           << " is incompatible with the expected "
                           << RankedTensorType::get(expectedOut, elementType)
                           << " (query shape with the value head dim)";

  return verifySinksLseAndScalars(*this, getSinks(), getLse(), elementType,
                                  shape.batch, shape.queryHeads,
                                  shape.querySeqLen, getScale(), getSoftcap());
}

//===----------------------------------------------------------------------===//
// GatedDeltaRuleOp
//===----------------------------------------------------------------------===//

void GatedDeltaRuleOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getOutput(), "delta");
  setNameFn(getFinalState(), "state");
}

std::optional<double> GatedDeltaRuleOp::getEffectiveScale() {
  return effectiveScale(getScale(), getQuery().getType().getDimSize(3));
}

LogicalResult GatedDeltaRuleOp::verify() {
  RankedTensorType qType = getQuery().getType(), kType = getKey().getType(),
                   vType = getValue().getType(), gType = getGate().getType(),
                   betaType = getBeta().getType(),
                   oType = getOutput().getType(),
                   sType = getFinalState().getType();
  Type elementType = qType.getElementType();
  if (failed(verifySizeBounds(getOperation())) ||
      failed(verifyQueryElementType(getOperation(), elementType)))
    return failure();
  auto checkRank = [&](StringRef name, RankedTensorType type, int64_t rank,
                       StringRef shape) -> LogicalResult {
    if (type.getRank() != rank)
      return emitOpError() << name << " must be a rank-" << rank << " tensor "
                           << shape << ", got rank " << type.getRank();
    return success();
  };
  auto checkElement = [&](StringRef name, RankedTensorType type,
                          bool allowF32) -> LogicalResult {
    Type t = type.getElementType();
    if (t == elementType || (allowF32 && t.isF32()))
      return success();
    return emitOpError() << name << " element type " << t << " must be "
                         << (allowF32 ? "f32 or " : "") << "the query element "
                         << "type " << elementType;
  };
  bool channel = getGateKind() == GateKind::Channel;
  if (failed(checkRank("query", qType, 4, "[B, T, Hk, Dk]")) ||
      failed(checkRank("key", kType, 4, "[B, T, Hk, Dk]")) ||
      failed(checkRank("value", vType, 4, "[B, T, Hv, Dv]")) ||
      failed(checkRank("gate", gType, channel ? 4 : 3,
                       channel ? "[B, T, Hv, Dk] (gate_kind = channel)"
                               : "[B, T, Hv] (gate_kind = head)")) ||
      failed(checkRank("beta", betaType, 3, "[B, T, Hv]")) ||
      failed(checkRank("output", oType, 4, "[B, T, Hv, Dv]")) ||
      failed(checkRank("final_state", sType, 4, "[B, Hv, Dk, Dv]")))
    return failure();
  if (failed(checkElement("key", kType, false)) ||
      failed(checkElement("value", vType, false)) ||
      failed(checkElement("output", oType, false)) ||
      failed(checkElement("gate", gType, true)) ||
      failed(checkElement("beta", betaType, true)))
    return failure();
  if (!sType.getElementType().isF32())
    return emitOpError() << "final_state element type must be f32, got "
                         << sType.getElementType();

  ArrayRef<int64_t> q = qType.getShape(), k = kType.getShape(),
                    v = vType.getShape();
  int64_t batch = q[0], tokens = q[1], hk = q[2], dk = q[3];
  int64_t hv = v[2], dv = v[3];
  auto mismatch = [&](const Twine &what, int64_t got, StringRef ref,
                      int64_t expected) -> LogicalResult {
    return emitOpError() << what << " (" << fmt(got) << ") must equal " << ref
                         << " (" << fmt(expected) << ")";
  };
  static const char *qkNames[4] = {"batch size", "sequence length",
                                   "head count", "head dim"};
  for (unsigned d = 0; d < 4; ++d)
    if (!compatible(k[d], q[d]))
      return mismatch(Twine("key ") + qkNames[d], k[d],
                      (Twine("query ") + qkNames[d]).str(), q[d]);
  if (!compatible(v[0], batch))
    return mismatch("value batch size", v[0], "query batch size", batch);
  if (!compatible(v[1], tokens))
    return mismatch("value sequence length", v[1], "query sequence length",
                    tokens);
  if (!ShapedType::isDynamic(hk) && !ShapedType::isDynamic(hv) &&
      (hk == 0 || hv == 0 || hv % hk != 0))
    return emitOpError() << "value head count (" << hv
                         << ") must be a multiple of the key head count (" << hk
                         << ")";
  // Per-token tensors: [B, T, Hv (, Dk)].
  auto checkPerToken = [&](StringRef name, RankedTensorType type,
                           bool withDk) -> LogicalResult {
    ArrayRef<int64_t> s = type.getShape();
    int64_t expected[4] = {batch, tokens, hv, dk};
    static const char *refs[4] = {"query batch size", "query sequence length",
                                  "value head count", "key head dim"};
    for (unsigned d = 0; d < (withDk ? 4u : 3u); ++d)
      if (!compatible(s[d], expected[d]))
        return mismatch(Twine(name) + " dim " + Twine(d), s[d], refs[d],
                        expected[d]);
    return success();
  };
  if (failed(checkPerToken("gate", gType, channel)) ||
      failed(checkPerToken("beta", betaType, false)))
    return failure();
  // Output [B, T, Hv, Dv]; states [B, Hv, Dk, Dv].
  ArrayRef<int64_t> o = oType.getShape();
  int64_t oExpected[4] = {batch, tokens, hv, dv};
  static const char *oRefs[4] = {"query batch size", "query sequence length",
                                 "value head count", "value head dim"};
  for (unsigned d = 0; d < 4; ++d)
    if (!compatible(o[d], oExpected[d]))
      return mismatch(Twine("output dim ") + Twine(d), o[d], oRefs[d],
                      oExpected[d]);
  int64_t stateExpected[4] = {batch, hv, dk, dv};
  static const char *stateRefs[4] = {"query batch size", "value head count",
                                     "key head dim", "value head dim"};
  auto checkState = [&](StringRef name,
                        RankedTensorType type) -> LogicalResult {
    ArrayRef<int64_t> s = type.getShape();
    for (unsigned d = 0; d < 4; ++d)
      if (!compatible(s[d], stateExpected[d]))
        return mismatch(Twine(name) + " dim " + Twine(d), s[d], stateRefs[d],
                        stateExpected[d]);
    return success();
  };
  if (failed(checkState("final_state", sType)))
    return failure();
  if (Value init = getInitialState()) {
    auto initType = cast<RankedTensorType>(init.getType());
    if (failed(checkRank("initial_state", initType, 4, "[B, Hv, Dk, Dv]")))
      return failure();
    if (!initType.getElementType().isF32())
      return emitOpError() << "initial_state element type must be f32, got "
                           << initType.getElementType();
    if (failed(checkState("initial_state", initType)))
      return failure();
  }
  int64_t chunk = getChunkSize();
  if (chunk < 16 || chunk > 256 || !llvm::isPowerOf2_64(chunk))
    return emitOpError() << "chunk_size must be a power of two in [16, 256], "
                            "got "
                         << chunk;
  if (std::optional<APFloat> s = getScale())
    if (!(s->convertToDouble() > 0.0) || s->isInfinity())
      return emitOpError() << "scale must be positive and finite";
  if (!getEffectiveScale())
    return emitOpError("needs an explicit scale when the key head dim is "
                       "dynamic or 0");
  return success();
}

//===----------------------------------------------------------------------===//
// SparseAttentionOp
//===----------------------------------------------------------------------===//

void SparseAttentionOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getOutput(), "sparse");
  if (Value lse = getLse())
    setNameFn(lse, "lse");
}

MaskAttr SparseAttentionOp::getMaskOrNone() {
  return maskOrNone(getMask(), getContext());
}

std::optional<double> SparseAttentionOp::getEffectiveScale() {
  return effectiveScale(getScale(), getQuery().getType().getDimSize(3));
}

/// Query-like operands: f16, bf16 or f32 query, other operands of rank
/// `rank` and the query's element type.
static LogicalResult checkFloatOperand(Operation *op, StringRef name,
                                       RankedTensorType type, int64_t rank,
                                       StringRef shape, Type elementType) {
  if (type.getRank() != rank)
    return op->emitOpError() << name << " must be a rank-" << rank << " tensor "
                             << shape << ", got rank " << type.getRank();
  if (type.getElementType() != elementType)
    return op->emitOpError()
           << name << " element type " << type.getElementType()
           << " does not match query element type " << elementType;
  return success();
}

/// `what (got) must equal ref (expected)` unless the two may be equal.
static LogicalResult checkSize(Operation *op, StringRef what, int64_t got,
                               StringRef ref, int64_t expected) {
  if (compatible(got, expected))
    return success();
  return op->emitOpError() << what << " (" << fmt(got) << ") must equal " << ref
                           << " (" << fmt(expected) << ")";
}

LogicalResult SparseAttentionOp::verify() {
  Operation *op = getOperation();
  RankedTensorType queryType = getQuery().getType();
  Type elementType = queryType.getElementType();
  if (failed(verifySizeBounds(getOperation())) ||
      failed(verifyQueryElementType(getOperation(), elementType)))
    return failure();
  RankedTensorType keyType = getKey().getType();
  RankedTensorType valueType = getValue().getType();
  RankedTensorType outputType = getOutput().getType();
  RankedTensorType indicesType = getIndices().getType();
  if (failed(checkFloatOperand(op, "query", queryType, 4, "[B, Sq, Hq, D]",
                               elementType)) ||
      failed(checkFloatOperand(op, "key", keyType, 4, "[B, Sk, Hkv, D]",
                               elementType)) ||
      failed(checkFloatOperand(op, "value", valueType, 4, "[B, Sk, Hkv, Dv]",
                               elementType)) ||
      failed(checkFloatOperand(op, "output", outputType, 4, "[B, Sq, Hq, Dv]",
                               elementType)))
    return failure();
  Type indexElt = indicesType.getElementType();
  if (indicesType.getRank() != 4 ||
      !(indexElt.isSignlessInteger(32) || indexElt.isSignlessInteger(64)))
    return emitOpError() << "indices must be a rank-4 tensor [B, Sq, Hkv, N] "
                            "of i32 or i64, got "
                         << indicesType;

  ArrayRef<int64_t> q = queryType.getShape(), k = keyType.getShape(),
                    v = valueType.getShape(), idx = indicesType.getShape();
  if (failed(checkSize(op, "key batch size", k[0], "query batch size", q[0])) ||
      failed(
          checkSize(op, "value batch size", v[0], "query batch size", q[0])) ||
      failed(checkSize(op, "indices batch size", idx[0], "query batch size",
                       q[0])) ||
      failed(checkSize(op, "indices sequence length", idx[1],
                       "query sequence length", q[1])) ||
      failed(checkSize(op, "value sequence length", v[1], "key sequence length",
                       k[1])) ||
      failed(checkSize(op, "value head count", v[2], "key head count", k[2])) ||
      failed(checkSize(op, "indices head count", idx[2], "key head count",
                       k[2])) ||
      failed(checkSize(op, "key head dim", k[3], "query head dim", q[3])))
    return failure();
  if (k[2] == 0)
    return emitOpError("key must have at least one head");
  if (q[2] == 0)
    return emitOpError("query must have at least one head");
  if (!ShapedType::isDynamic(q[2]) && !ShapedType::isDynamic(k[2]) &&
      q[2] % k[2] != 0)
    return emitOpError() << "query head count (" << q[2]
                         << ") must be a multiple of the key/value head count ("
                         << k[2] << ")";
  if (q[3] == 0 || v[3] == 0)
    return emitOpError("head dims must be positive");
  if (idx[3] == 0)
    return emitOpError("indices must hold at least one index per row");
  if (failed(verifySizeAttr(op, "block_size", getBlockSizeAttr().getInt())))
    return failure();

  SmallVector<int64_t> expectedOut(q);
  expectedOut[3] = v[3];
  for (auto [got, expected] :
       llvm::zip_equal(outputType.getShape(), expectedOut))
    if (!compatible(got, expected))
      return emitOpError() << "output shape " << outputType
                           << " is incompatible with the expected "
                           << RankedTensorType::get(expectedOut, elementType)
                           << " (query shape with the value head dim)";
  if (failed(verifySinksLseAndScalars(op, getSinks(), getLse(), elementType,
                                      q[0], q[2], q[1], getScale(),
                                      getSoftcap())))
    return failure();
  if (!getEffectiveScale())
    return emitOpError("needs an explicit scale when the head dim is dynamic");
  return success();
}

//===----------------------------------------------------------------------===//
// LightningIndexerOp
//===----------------------------------------------------------------------===//

void LightningIndexerOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getIndices(), "topk");
  if (Value scores = getScores())
    setNameFn(scores, "scores");
}

MaskAttr LightningIndexerOp::getMaskOrNone() {
  return maskOrNone(getMask(), getContext());
}

LogicalResult LightningIndexerOp::verify() {
  Operation *op = getOperation();
  RankedTensorType queryType = getQuery().getType();
  Type elementType = queryType.getElementType();
  if (failed(verifySizeBounds(getOperation())) ||
      failed(verifyQueryElementType(getOperation(), elementType)))
    return failure();
  RankedTensorType keyType = getKey().getType();
  RankedTensorType weightsType = getWeights().getType();
  if (failed(checkFloatOperand(op, "query", queryType, 4, "[B, Sq, Hi, Di]",
                               elementType)) ||
      failed(
          checkFloatOperand(op, "key", keyType, 3, "[B, Sk, Di]", elementType)))
    return failure();
  Type weightsElt = weightsType.getElementType();
  if (weightsType.getRank() != 3 ||
      (weightsElt != elementType && !weightsElt.isF32()))
    return emitOpError() << "weights must be a rank-3 tensor [B, Sq, Hi] of "
                            "the query element type ("
                         << elementType << ") or f32, got " << weightsType;
  ArrayRef<int64_t> q = queryType.getShape(), k = keyType.getShape(),
                    w = weightsType.getShape();
  if (failed(checkSize(op, "key batch size", k[0], "query batch size", q[0])) ||
      failed(checkSize(op, "key head dim", k[2], "query head dim", q[3])) ||
      failed(checkSize(op, "weights batch size", w[0], "query batch size",
                       q[0])) ||
      failed(checkSize(op, "weights sequence length", w[1],
                       "query sequence length", q[1])) ||
      failed(
          checkSize(op, "weights head count", w[2], "query head count", q[2])))
    return failure();
  const int64_t topK = getTopKAttr().getInt();
  if (failed(verifySizeAttr(op, "top_k", topK)))
    return failure();

  RankedTensorType indicesType = getIndices().getType();
  SmallVector<int64_t> expected = {q[0], q[1], topK};
  bool ok = indicesType.getRank() == 3 &&
            indicesType.getElementType().isSignlessInteger(32);
  for (unsigned d = 0; ok && d < 3; ++d)
    ok = compatible(indicesType.getDimSize(d), expected[d]);
  // The last dim is top_k itself, known here: a dynamic one would leave
  // the lowering's static result disagreeing with the op's type.
  ok = ok && indicesType.getDimSize(2) == topK;
  if (!ok)
    return emitOpError() << "indices result must be "
                         << RankedTensorType::get(
                                expected, IntegerType::get(getContext(), 32))
                         << " ([B, Sq, top_k] i32), got " << indicesType;
  if (Value scores = getScores()) {
    auto scoresType = cast<RankedTensorType>(scores.getType());
    SmallVector<int64_t> want = {q[0], q[1], k[1]};
    bool good =
        scoresType.getRank() == 3 && scoresType.getElementType().isF32();
    for (unsigned d = 0; good && d < 3; ++d)
      good = compatible(scoresType.getDimSize(d), want[d]);
    if (!good)
      return emitOpError() << "scores result must be "
                           << RankedTensorType::get(
                                  want, Float32Type::get(getContext()))
                           << " ([B, Sq, Sk] f32), got " << scoresType;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// NsaOp
//===----------------------------------------------------------------------===//

void NsaOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getOutput(), "nsa");
}

std::optional<double> NsaOp::getEffectiveScale() {
  return effectiveScale(getScale(), getQuery().getType().getDimSize(3));
}

LogicalResult NsaOp::verify() {
  Operation *op = getOperation();
  RankedTensorType queryType = getQuery().getType();
  Type elementType = queryType.getElementType();
  if (failed(verifySizeBounds(getOperation())) ||
      failed(verifyQueryElementType(getOperation(), elementType)))
    return failure();
  RankedTensorType keyType = getKey().getType(),
                   valueType = getValue().getType(),
                   keyCmpType = getKeyCmp().getType(),
                   valueCmpType = getValueCmp().getType(),
                   gatesType = getGates().getType(),
                   outputType = getOutput().getType();
  if (failed(checkFloatOperand(op, "query", queryType, 4, "[B, Sq, Hq, D]",
                               elementType)) ||
      failed(checkFloatOperand(op, "key", keyType, 4, "[B, Sk, Hkv, D]",
                               elementType)) ||
      failed(checkFloatOperand(op, "value", valueType, 4, "[B, Sk, Hkv, Dv]",
                               elementType)) ||
      failed(checkFloatOperand(op, "key_cmp", keyCmpType, 4, "[B, Tc, Hkv, D]",
                               elementType)) ||
      failed(checkFloatOperand(op, "value_cmp", valueCmpType, 4,
                               "[B, Tc, Hkv, Dv]", elementType)) ||
      failed(checkFloatOperand(op, "output", outputType, 4, "[B, Sq, Hq, Dv]",
                               elementType)))
    return failure();
  Type gatesElt = gatesType.getElementType();
  if (gatesType.getRank() != 4 ||
      (gatesElt != elementType && !gatesElt.isF32()))
    return emitOpError() << "gates must be a rank-4 tensor [B, Sq, Hq, 3] of "
                            "the query element type ("
                         << elementType << ") or f32, got " << gatesType;
  ArrayRef<int64_t> q = queryType.getShape(), k = keyType.getShape(),
                    v = valueType.getShape(), kc = keyCmpType.getShape(),
                    vc = valueCmpType.getShape(), g = gatesType.getShape();
  for (auto [name, shape] : {std::pair<StringRef, ArrayRef<int64_t>>{"key", k},
                             {"value", v},
                             {"key_cmp", kc},
                             {"value_cmp", vc},
                             {"gates", g}})
    if (failed(checkSize(op, (name + Twine(" batch size")).str(), shape[0],
                         "query batch size", q[0])))
      return failure();
  if (failed(checkSize(op, "value sequence length", v[1], "key sequence length",
                       k[1])) ||
      failed(
          checkSize(op, "value_cmp length", vc[1], "key_cmp length", kc[1])) ||
      failed(checkSize(op, "value head count", v[2], "key head count", k[2])) ||
      failed(
          checkSize(op, "key_cmp head count", kc[2], "key head count", k[2])) ||
      failed(checkSize(op, "value_cmp head count", vc[2], "key head count",
                       k[2])) ||
      failed(checkSize(op, "key head dim", k[3], "query head dim", q[3])) ||
      failed(
          checkSize(op, "key_cmp head dim", kc[3], "query head dim", q[3])) ||
      failed(
          checkSize(op, "value_cmp head dim", vc[3], "value head dim", v[3])) ||
      failed(checkSize(op, "gates sequence length", g[1],
                       "query sequence length", q[1])) ||
      failed(
          checkSize(op, "gates head count", g[2], "query head count", q[2])) ||
      failed(checkSize(op, "gates last dim", g[3], "the branch count", 3)))
    return failure();
  if (ShapedType::isDynamic(q[2]) || ShapedType::isDynamic(k[2]))
    return emitOpError("needs static head counts");
  if (k[2] == 0 || q[2] % k[2] != 0)
    return emitOpError() << "query head count (" << q[2]
                         << ") must be a positive multiple of the key/value "
                            "head count ("
                         << k[2] << ")";
  if (q[3] == 0 || v[3] == 0)
    return emitOpError("head dims must be positive");
  if (q[2] == 0)
    return emitOpError("query head count must be positive");
  for (auto [name, attr] :
       {std::pair<StringRef, IntegerAttr>{"cmp_block", getCmpBlockAttr()},
        {"cmp_stride", getCmpStrideAttr()},
        {"sel_block", getSelBlockAttr()},
        {"num_selected", getNumSelectedAttr()},
        {"window", getWindowAttr()}})
    if (failed(verifySizeAttr(op, name, attr.getInt())))
      return failure();
  int64_t initial = getInitialBlocksAttr().getInt(),
          local = getLocalBlocksAttr().getInt();
  if (failed(verifySizeAttr(op, "initial_blocks", initial, 0)) ||
      failed(verifySizeAttr(op, "local_blocks", local, 0)))
    return failure();
  if (initial + local > getNumSelectedAttr().getInt())
    return emitOpError() << "the always-selected blocks (initial_blocks + "
                            "local_blocks = "
                         << initial + local << ") exceed num_selected ("
                         << getNumSelectedAttr().getInt() << ")";
  SmallVector<int64_t> expectedOut(q);
  expectedOut[3] = v[3];
  for (auto [got, expected] :
       llvm::zip_equal(outputType.getShape(), expectedOut))
    if (!compatible(got, expected))
      return emitOpError() << "output shape " << outputType
                           << " is incompatible with the expected "
                           << RankedTensorType::get(expectedOut, elementType);
  if (getScale() && !(getScale()->convertToDouble() > 0.0 &&
                      std::isfinite(getScale()->convertToDouble())))
    return emitOpError("scale must be positive and finite");
  if (!getEffectiveScale())
    return emitOpError("needs an explicit scale when the head dim is dynamic");
  return success();
}
