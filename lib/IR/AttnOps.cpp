//===- AttnOps.cpp - attn operations --------------------------------------===//
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
        /*bias=*/Value(), /*sinks=*/Value(), Layout::BHSD, mask,
        /*scale=*/FloatAttr(), /*softcap=*/FloatAttr());
}

void AttentionOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getOutput(), "attn");
  if (Value lse = getLse())
    setNameFn(lse, "lse");
}

AttentionShape AttentionOp::getAttentionShape() {
  unsigned h = getHeadDimPos(getLayout()), s = getSeqDimPos(getLayout());
  ArrayRef<int64_t> q = getQuery().getType().getShape();
  ArrayRef<int64_t> k = getKey().getType().getShape();
  ArrayRef<int64_t> v = getValue().getType().getShape();
  return AttentionShape{q[0], q[h], k[h], q[s], k[s], q[3], v[3]};
}

MaskAttr AttentionOp::getMaskOrNone() {
  if (std::optional<MaskAttr> mask = getMask())
    return *mask;
  return MaskAttr::getNone(getContext());
}

std::optional<double> AttentionOp::getEffectiveScale() {
  if (std::optional<APFloat> scale = getScale())
    return scale->convertToDouble();
  int64_t d = getAttentionShape().headDim;
  if (ShapedType::isDynamic(d) || d <= 0)
    return std::nullopt;
  return 1.0 / std::sqrt(static_cast<double>(d));
}

std::optional<int64_t> AttentionOp::getGroupSize() {
  AttentionShape shape = getAttentionShape();
  if (ShapedType::isDynamic(shape.queryHeads) ||
      ShapedType::isDynamic(shape.kvHeads) || shape.kvHeads == 0)
    return std::nullopt;
  return shape.queryHeads / shape.kvHeads;
}

/// Formats a size for diagnostics.
static std::string fmt(int64_t size) {
  return ShapedType::isDynamic(size) ? "?" : std::to_string(size);
}

/// Whether two sizes may be equal (equal, or either dynamic).
static bool compatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// The checks attn.attention and attn.paged_attention share: sinks [Hq] of
/// the query element type or f32, the LSE result [B, Hq, Sq] f32, and the
/// positive finite scale and softcap.
static LogicalResult verifySinksLseAndScalars(
    Operation *op, Value sinks, Value lse, Type elementType, int64_t batch,
    int64_t queryHeads, int64_t querySeqLen, std::optional<APFloat> scale,
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
             << "lse result must be "
             << RankedTensorType::get(expected,
                                      Float32Type::get(op->getContext()))
             << " ([B, Hq, Sq], f32), got " << lseType;
  }
  if (scale && (!scale->isFiniteNonZero() || scale->isNegative()))
    return op->emitOpError() << "scale must be a positive finite number, got "
                             << scale->convertToDouble();
  if (softcap && (!softcap->isFiniteNonZero() || softcap->isNegative()))
    return op->emitOpError()
           << "softcap must be a positive finite number, got "
           << softcap->convertToDouble();
  return success();
}

LogicalResult AttentionOp::verify() {
  Layout layout = getLayout();
  const char *qkvShape =
      layout == Layout::BHSD ? "[B, H, S, D]" : "[B, S, H, D]";

  // Ranks and element types of query, key, value and output.
  RankedTensorType queryType = getQuery().getType();
  Type elementType = queryType.getElementType();
  if (!elementType.isF16() && !elementType.isBF16() && !elementType.isF32())
    return emitOpError("query element type must be f16, bf16 or f32, got ")
           << elementType;
  auto checkMain = [&](StringRef name,
                       RankedTensorType type) -> LogicalResult {
    if (type.getRank() != 4)
      return emitOpError() << name << " must be a rank-4 tensor " << qkvShape
                           << " (layout " << stringifyLayout(layout)
                           << "), got rank " << type.getRank();
    if (type.getElementType() != elementType)
      return emitOpError() << name << " element type " << type.getElementType()
                           << " does not match query element type "
                           << elementType;
    return success();
  };
  RankedTensorType keyType = getKey().getType();
  RankedTensorType valueType = getValue().getType();
  RankedTensorType outputType = getOutput().getType();
  if (failed(checkMain("query", queryType)) ||
      failed(checkMain("key", keyType)) ||
      failed(checkMain("value", valueType)) ||
      failed(checkMain("output", outputType)))
    return failure();

  AttentionShape shape = getAttentionShape();
  unsigned hPos = getHeadDimPos(layout), sPos = getSeqDimPos(layout);
  ArrayRef<int64_t> k = keyType.getShape(), v = valueType.getShape();
  ArrayRef<int64_t> o = outputType.getShape();

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
    return emitOpError("key must have at least one head");
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
    return emitOpError("query head dim must be positive");
  if (shape.valueHeadDim == 0)
    return emitOpError("value head dim must be positive");

  // Output: [B, Hq, Sq, Dv] in the layout.
  SmallVector<int64_t> expectedOut(queryType.getShape());
  expectedOut[3] = shape.valueHeadDim;
  for (auto [got, expected] : llvm::zip_equal(o, expectedOut)) {
    if (!compatible(got, expected))
      return emitOpError() << "output shape " << outputType
                           << " is incompatible with the expected "
                           << RankedTensorType::get(expectedOut, elementType)
                           << " (query shape with the value head dim)";
  }

  // Bias: rank 4, each dimension 1 or the matching [B, Hq, Sq, Sk] size.
  if (Value bias = getBias()) {
    auto biasType = cast<RankedTensorType>(bias.getType());
    if (biasType.getRank() != 4)
      return emitOpError() << "bias must be a rank-4 tensor [B, Hq, Sq, Sk] "
                              "(size-1 dimensions broadcast), got rank "
                           << biasType.getRank();
    Type biasElt = biasType.getElementType();
    if (biasElt != elementType && !biasElt.isF32())
      return emitOpError() << "bias element type " << biasElt
                           << " must be the query element type ("
                           << elementType << ") or f32";
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

  return verifySinksLseAndScalars(*this, getSinks(), getLse(), elementType,
                                  shape.batch, shape.queryHeads,
                                  shape.querySeqLen, getScale(), getSoftcap());
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
  return PagedAttentionShape{q[0], q[2],       k[headPos], q[1], q[3],
                             v[3], k[slotPos], k[0],       maxPages};
}

MaskAttr PagedAttentionOp::getMaskOrNone() {
  if (std::optional<MaskAttr> mask = getMask())
    return *mask;
  return MaskAttr::getNone(getContext());
}

std::optional<double> PagedAttentionOp::getEffectiveScale() {
  if (std::optional<APFloat> scale = getScale())
    return scale->convertToDouble();
  int64_t d = getPagedShape().headDim;
  if (ShapedType::isDynamic(d) || d <= 0)
    return std::nullopt;
  return 1.0 / std::sqrt(static_cast<double>(d));
}

LogicalResult PagedAttentionOp::verify() {
  CacheLayout layout = getCacheLayout();
  const char *cacheShape = layout == CacheLayout::NHD
                               ? "[P, page_size, Hkv, D]"
                               : "[P, Hkv, page_size, D]";
  RankedTensorType queryType = getQuery().getType();
  Type elementType = queryType.getElementType();
  if (!elementType.isF16() && !elementType.isBF16() && !elementType.isF32())
    return emitOpError("query element type must be f16, bf16 or f32, got ")
           << elementType;
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
                         << tableType.getElementType() << "), got "
                         << lensType;

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
