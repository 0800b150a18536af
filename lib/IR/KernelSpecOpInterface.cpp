//===- KernelSpecOpInterface.cpp - the kernel specs of attn's ops ---------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// What each op computes, as kernel specs. Sizes a spec needs but the op
// leaves dynamic are passed on as ShapedType::kDynamic: the kernels'
// eligibility checks report them, with the reason, at the op.
//
//===----------------------------------------------------------------------===//

#include "attn/IR/KernelSpecOpInterface.h"

#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

using namespace mlir;
using namespace mlir::attn;

#include "attn/IR/KernelSpecOpInterface.cpp.inc"

static Type getElementType(Value v) {
  return cast<ShapedType>(v.getType()).getElementType();
}

/// The scalar type of `v`'s elements; the op verifiers admit only types
/// kernels know, so an unknown one is reported, not assumed.
static FailureOr<ScalarType> getScalarTypeOf(Operation *op, Value v) {
  Type t = getElementType(v);
  if (std::optional<ScalarType> s = getScalarType(t))
    return *s;
  return op->emitOpError() << "has no GPU kernel for element type " << t;
}

/// The element type of the optional sinks operand `sinks` into `out`.
static LogicalResult getSinksType(Operation *op, Value sinks,
                                  std::optional<ScalarType> &out) {
  if (!sinks)
    return success();
  FailureOr<ScalarType> t = getScalarTypeOf(op, sinks);
  if (failed(t))
    return failure();
  out = *t;
  return success();
}

static std::optional<double> getDouble(std::optional<APFloat> x) {
  if (!x)
    return std::nullopt;
  return x->convertToDouble();
}

/// The dense attention spec of `op` (attn.attention or attn.attention_grad:
/// the same operands and variant attributes).
template <typename OpT>
static FailureOr<AttentionSpec> getAttentionSpec(OpT op) {
  AttentionShape shape = op.getAttentionShape();
  AttentionSpec s;
  FailureOr<ScalarType> dtype = getScalarTypeOf(op, op.getQuery()),
                        outDtype = getScalarTypeOf(op, op.getOutput());
  if (failed(dtype) || failed(outDtype))
    return failure();
  s.dtype = *dtype;
  if (*outDtype != *dtype)
    s.outDtype = *outDtype;
  s.headDim = shape.headDim;
  s.valueHeadDim = shape.valueHeadDim;
  s.layout = op.getLayout();
  s.mask = MaskSpec::get(op.getMaskOrNone());
  s.scale = op.getEffectiveScale().value_or(0.0);
  s.softcap = getDouble(op.getSoftcap());
  if (Value bias = op.getBias()) {
    FailureOr<ScalarType> t = getScalarTypeOf(op, bias);
    if (failed(t))
      return failure();
    s.bias = *t;
    auto type = cast<RankedTensorType>(bias.getType());
    for (int64_t d = 0; d < 4; ++d)
      s.biasBroadcast[d] = type.getDimSize(d) == 1;
  }
  if (failed(getSinksType(op, op.getSinks(), s.sinks)))
    return failure();
  return s;
}

LogicalResult AttentionOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  if (getPositionOffset())
    return emitOpError("has a position_offset, which no GPU kernel takes yet "
                       "(attn-to-cpu runs it)");
  FailureOr<AttentionSpec> s = getAttentionSpec(*this);
  if (failed(s))
    return failure();
  s->lse = static_cast<bool>(getLse());
  if (Value descale = getDescaleQ())
    s->descale = cast<RankedTensorType>(descale.getType()).getRank() == 0
                     ? DescaleMode::Tensor
                     : DescaleMode::Head;
  specs.push_back(*s);
  return success();
}

LogicalResult
AttentionGradOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  FailureOr<AttentionSpec> s = getAttentionSpec(*this);
  if (failed(s))
    return failure();
  AttentionGradSpec grad{*s};
  grad.deterministic = getDeterministic();
  specs.push_back(grad);
  return success();
}

/// Whether `value` is the first columns of `key`: a zero-offset, unit-stride
/// tensor.extract_slice of it that keeps every dim but the last whole
/// (static and equal, or `tensor.dim` of the source). DeepSeek MLA's latent
/// cache, where each key row also holds its value row.
static bool isPrefixOfKey(Value value, Value key) {
  auto slice = value.getDefiningOp<tensor::ExtractSliceOp>();
  if (!slice || slice.getSource() != key || !slice.hasUnitStride() ||
      !slice.hasZeroOffset())
    return false;
  auto source = cast<RankedTensorType>(slice.getSource().getType());
  auto result = slice.getResultType();
  if (result.getRank() != source.getRank() || source.getRank() != 4)
    return false;
  SmallVector<OpFoldResult> sizes = slice.getMixedSizes();
  for (int64_t d = 0; d < 3; ++d) {
    if (std::optional<int64_t> s = getConstantIntValue(sizes[d])) {
      if (source.isDynamicDim(d) || *s != source.getDimSize(d))
        return false;
      continue;
    }
    auto dim = dyn_cast<Value>(sizes[d]).getDefiningOp<tensor::DimOp>();
    std::optional<int64_t> index = dim ? dim.getConstantIndex() : std::nullopt;
    if (!dim || dim.getSource() != slice.getSource() || index != d)
      return false;
  }
  return true;
}

LogicalResult
PagedAttentionOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  PagedAttentionShape shape = getPagedShape();
  PagedAttentionSpec s;
  FailureOr<ScalarType> dtype = getScalarTypeOf(*this, getOutput()),
                        table = getScalarTypeOf(*this, getBlockTable()),
                        lens = getScalarTypeOf(*this, getSeqLens());
  if (failed(dtype) || failed(table) || failed(lens))
    return failure();
  s.dtype = *dtype;
  s.headDim = shape.headDim;
  s.valueHeadDim = shape.valueHeadDim;
  s.pageSize = shape.pageSize;
  s.cacheLayout = getCacheLayout();
  s.tableDtype = *table;
  s.lensDtype = *lens;
  s.mask = MaskSpec::get(getMaskOrNone());
  s.scale = getEffectiveScale().value_or(0.0);
  s.softcap = getDouble(getSoftcap());
  s.valuesArePrefixOfKeys = isPrefixOfKey(getValueCache(), getKeyCache());
  if (failed(getSinksType(*this, getSinks(), s.sinks)))
    return failure();
  s.lse = static_cast<bool>(getLse());
  specs.push_back(s);
  return success();
}

LogicalResult
GatedDeltaRuleOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  GatedDeltaSpec s;
  FailureOr<ScalarType> dtype = getScalarTypeOf(*this, getQuery()),
                        gate = getScalarTypeOf(*this, getGate()),
                        beta = getScalarTypeOf(*this, getBeta());
  if (failed(dtype) || failed(gate) || failed(beta))
    return failure();
  s.dtype = *dtype;
  s.keyHeadDim = getQuery().getType().getDimSize(3);
  s.valueHeadDim = getValue().getType().getDimSize(3);
  // The chunk length does not change the result: the kernels take at most
  // kMaxGatedDeltaChunk, the op's own if smaller.
  s.chunk = std::min<int64_t>(getChunkSize(), kMaxGatedDeltaChunk);
  s.gateKind = getGateKind();
  s.gateDtype = *gate;
  s.betaDtype = *beta;
  s.qkL2norm = getQkL2norm();
  s.scale = getEffectiveScale().value_or(0.0);
  s.initialState = static_cast<bool>(getInitialState());
  specs.push_back(s);
  return success();
}

LogicalResult
SparseAttentionOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  // The host compacts each (query row, KV head)'s selections into the page
  // table of one sequence of the paged kernels: pages of block_size keys,
  // causality folded into the lengths (python/attn/gpu.py).
  if (getMaskOrNone().isWindow())
    return emitOpError(
        "runs on the paged kernels with causal or no mask (the host folds "
        "causality into each row's length); a window mask has no GPU kernel");
  std::optional<double> scale = getEffectiveScale();
  if (!scale)
    return emitOpError("GPU kernels need a static head dim or a scale");
  PagedAttentionSpec s;
  FailureOr<ScalarType> dtype = getScalarTypeOf(*this, getQuery());
  if (failed(dtype))
    return failure();
  s.dtype = *dtype;
  s.headDim = getQuery().getType().getDimSize(3);
  s.valueHeadDim = cast<ShapedType>(getValue().getType()).getDimSize(3);
  s.pageSize = getBlockSize();
  // Scale and softcap as f32 attributes of the paged op the call amounts to.
  s.scale = roundToF32(*scale);
  if (std::optional<double> softcap = getDouble(getSoftcap()))
    s.softcap = roundToF32(*softcap);
  s.valuesArePrefixOfKeys = isPrefixOfKey(getValue(), getKey());
  if (failed(getSinksType(*this, getSinks(), s.sinks)))
    return failure();
  s.lse = static_cast<bool>(getLse());
  specs.push_back(s);
  return success();
}

LogicalResult
LightningIndexerOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  IndexerSpec s;
  FailureOr<ScalarType> dtype = getScalarTypeOf(*this, getQuery()),
                        weights = getScalarTypeOf(*this, getWeights());
  if (failed(dtype) || failed(weights))
    return failure();
  auto q = cast<ShapedType>(getQuery().getType());
  s.dtype = *dtype;
  s.heads = q.getDimSize(2);
  s.headDim = q.getDimSize(3);
  s.weightsDtype = *weights;
  s.mask = MaskSpec::get(getMaskOrNone());
  specs.push_back(s);
  return success();
}

LogicalResult NsaOp::getKernelSpecs(SmallVectorImpl<KernelSpec> &specs) {
  // The block selection; the branches run on paged and attention kernels
  // that the host picks by their own specs (python/attn/gpu.py).
  NsaSelectSpec s;
  FailureOr<ScalarType> dtype = getScalarTypeOf(*this, getQuery());
  if (failed(dtype))
    return failure();
  auto q = cast<ShapedType>(getQuery().getType());
  s.dtype = *dtype;
  s.headDim = q.getDimSize(3);
  s.valueHeadDim = cast<ShapedType>(getValue().getType()).getDimSize(3);
  s.queryHeads = q.getDimSize(2);
  s.kvHeads = cast<ShapedType>(getKey().getType()).getDimSize(2);
  s.cmpBlock = getCmpBlock();
  s.cmpStride = getCmpStride();
  s.selBlock = getSelBlock();
  s.numSelected = getNumSelected();
  s.initialBlocks = getInitialBlocks();
  s.localBlocks = getLocalBlocks();
  s.scale = getEffectiveScale().value_or(0.0);
  specs.push_back(s);
  return success();
}
