//===- HostLaunch.cpp - host code that launches attn's kernels ------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// Emits the launch contract of docs/kernel-spec.md as IR. The manifests are
// the only source of truth: a parameter's symbolic shape binds the size
// names to the dims of the op's operands (or checks them), the grid
// expressions are evaluated over those sizes, and whatever parameter is
// neither an operand nor a result of the op is a workspace allocated from
// its shape. An op family contributes only which parameter is which of its
// operands and results (getBinding).
//
//===----------------------------------------------------------------------===//

#include "HostLaunch.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace mlir::attn;

namespace {
class LaunchEmitter;

/// Which manifest parameters are the op's operands and results (every other
/// tensor parameter is a workspace), which of its kernels run, and the
/// sizes no operand defines.
struct Binding {
  llvm::StringMap<Value> inputs;
  llvm::StringMap<unsigned> outputs;
  /// The kernels to launch, by their manifest's "kernel", in order; empty:
  /// all of them, in build order.
  SmallVector<StringRef> kinds;
  /// A faster path for some sizes: where `fastWhen` is true at run time,
  /// the kernels `fastKinds` launch instead of `kinds`.
  SmallVector<StringRef> fastKinds;
  std::function<Value(LaunchEmitter &)> fastWhen;
  /// Defines the sizes no operand has (split counts, chunk counts), once
  /// the operands' sizes are bound.
  std::function<LogicalResult(LaunchEmitter &)> defineSizes;
};
} // namespace

namespace {
/// Emits the host side of one op's kernels.
class LaunchEmitter {
public:
  LaunchEmitter(RewriterBase &rewriter, Operation *op, ModuleOp module)
      : b(rewriter), op(op), module(module), loc(op->getLoc()) {}

  LogicalResult run(ArrayRef<DictionaryAttr> kernels, const Binding &binding);

  /// What size hooks (Binding::defineSizes) build with.
  OpBuilder &builder() { return b; }
  Location getLoc() const { return loc; }
  ModuleOp getModule() const { return module; }
  Value getSize(StringRef name) const { return sizes.lookup(name); }
  /// The current device's multiprocessor count (index), asked of the
  /// runtime at the insertion point.
  Value getMultiprocessorCount();
  void setSize(StringRef name, Value value) { sizes[name] = value; }
  /// The manifest of the kernel of kind `kind` among the op's kernels.
  DictionaryAttr getKernel(StringRef kind) const {
    for (DictionaryAttr manifest : kernels)
      if (auto k = manifest.getAs<StringAttr>("kernel"))
        if (k.getValue() == kind)
          return manifest;
    return nullptr;
  }
  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  InFlightDiagnostic error() { return op->emitOpError(); }

private:
  /// Binds the size names of `shape` (a manifest parameter's) to the dims
  /// of `buffer`: a first sighting defines the size, a later one is checked
  /// (statically where both are known, else at run time).
  LogicalResult bindShape(StringRef param, Value buffer, ArrayAttr shape);
  /// The size `entry` of a shape or grid expression, as an index.
  FailureOr<Value> evaluate(Attribute entry);
  /// A buffer of `type` whose dynamic dims are `shape`'s sizes.
  FailureOr<Value> allocate(StringRef param, MemRefType type, ArrayAttr shape);
  /// The kernel's arguments for parameter `param`, cast to `argType`.
  FailureOr<Value> getArgument(DictionaryAttr param, Type argType,
                               DictionaryAttr manifest);
  FailureOr<Value> getTensorMap(DictionaryAttr param, Type argType,
                                DictionaryAttr manifest);
  /// A value the kernel takes at run time (scale, softcap, a window
  /// extent; KernelSpec.h: runtimeValues): the op's, as a constant.
  FailureOr<Value> getValue(StringRef name, Type argType);
  LogicalResult launch(DictionaryAttr manifest);
  /// `slow`'s kernels in order, or, where the binding's fast path applies,
  /// `fast`'s.
  LogicalResult launchAll(ArrayRef<DictionaryAttr> slow,
                          ArrayRef<DictionaryAttr> fast,
                          const Binding &binding);
  /// The first of `preferred` whose manifest's "prefer" ranges hold the
  /// sizes at run time, else the next, ..., else launchAll(slow, fast).
  LogicalResult launchPreferred(ArrayRef<DictionaryAttr> preferred,
                                ArrayRef<DictionaryAttr> slow,
                                ArrayRef<DictionaryAttr> fast,
                                const Binding &binding);
  /// Whether the sizes are in the ranges of `manifest`'s "prefer" (an i1).
  FailureOr<Value> isPreferred(DictionaryAttr manifest);

  RewriterBase &b;
  Operation *op;
  ModuleOp module;
  Location loc;
  llvm::StringMap<Value> sizes;
  llvm::StringMap<Value> buffers;
  SmallVector<DictionaryAttr> kernels;
};
} // namespace

static MemRefType getIdentityBufferType(ShapedType tensor) {
  return MemRefType::get(tensor.getShape(), tensor.getElementType());
}

LogicalResult LaunchEmitter::bindShape(StringRef param, Value buffer,
                                       ArrayAttr shape) {
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() != static_cast<int64_t>(shape.size()))
    return error() << "operand '" << param << "' has rank " << type.getRank()
                   << ", its kernel takes rank " << shape.size();
  for (auto [dim, entry] : llvm::enumerate(shape.getValue())) {
    int64_t known = type.getDimSize(dim);
    Value actual = ShapedType::isDynamic(known)
                       ? memref::DimOp::create(b, loc, buffer, dim).getResult()
                       : index(known);
    std::optional<int64_t> expected;
    Value expectedValue;
    std::string what;
    if (auto literal = dyn_cast<IntegerAttr>(entry)) {
      expected = literal.getInt();
      what = std::to_string(*expected);
    } else if (auto name = dyn_cast<StringAttr>(entry)) {
      auto [it, inserted] = sizes.try_emplace(name.getValue(), actual);
      if (inserted)
        continue;
      expectedValue = it->second;
      if (std::optional<int64_t> c = getConstantIntValue(expectedValue))
        expected = *c;
      what = name.str();
    } else {
      return error() << "kernel parameter '" << param
                     << "' has a shape entry that is neither a size name nor "
                        "an integer: "
                     << entry;
    }
    if (expected && !ShapedType::isDynamic(known)) {
      if (*expected != known)
        return error() << "dim " << dim << " of operand '" << param << "' is "
                       << known << ", its kernel takes " << what << " = "
                       << *expected;
      continue;
    }
    // A dynamic dim: the kernel indexes by the first sighting of the size,
    // so a mismatch would read out of bounds. Checked before any launch.
    if (!expectedValue)
      expectedValue = index(*expected);
    Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, actual,
                                       expectedValue);
    std::string message;
    llvm::raw_string_ostream os(message);
    os << op->getName() << " at " << loc << ": dim " << dim << " of '" << param
       << "' differs from " << what;
    cf::AssertOp::create(b, loc, same, message);
  }
  return success();
}

Value LaunchEmitter::getMultiprocessorCount() {
  // The runtime's function (AttnRuntime.h), declared once per module.
  if (!module.lookupSymbol("attnRuntimeMultiprocessorCount")) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto decl =
        func::FuncOp::create(b, loc, "attnRuntimeMultiprocessorCount",
                             b.getFunctionType(TypeRange(), b.getI64Type()));
    decl.setPrivate();
  }
  auto count = func::CallOp::create(b, loc, "attnRuntimeMultiprocessorCount",
                                    b.getI64Type(), ValueRange());
  return arith::IndexCastOp::create(b, loc, b.getIndexType(),
                                    count.getResult(0));
}

FailureOr<Value> LaunchEmitter::evaluate(Attribute entry) {
  if (auto literal = dyn_cast<IntegerAttr>(entry))
    return index(literal.getInt());
  if (auto name = dyn_cast<StringAttr>(entry)) {
    auto it = sizes.find(name.getValue());
    // Persistent kernels' grids: the current device's SM count, asked where
    // the grid is evaluated (not kept in `sizes`: an alternative's launch
    // sits in a branch of its own).
    if (it == sizes.end() && name.getValue() == "SMs")
      return getMultiprocessorCount();
    if (it == sizes.end())
      return error() << "its kernels need the size '" << name.getValue()
                     << "', which no operand defines";
    return it->second;
  }
  auto expr = dyn_cast<DictionaryAttr>(entry);
  if (!expr || expr.size() != 1)
    return error() << "malformed grid expression " << entry;
  NamedAttribute operation = *expr.begin();
  auto operands = dyn_cast<ArrayAttr>(operation.getValue());
  if (!operands || operands.empty())
    return error() << "malformed grid expression " << entry;
  SmallVector<Value> values;
  for (Attribute operand : operands) {
    FailureOr<Value> value = evaluate(operand);
    if (failed(value))
      return failure();
    values.push_back(*value);
  }
  StringRef kind = operation.getName().getValue();
  if (kind == "mul" || kind == "min") {
    Value result = values.front();
    for (Value operand : ArrayRef(values).drop_front())
      result =
          kind == "mul"
              ? arith::MulIOp::create(b, loc, result, operand).getResult()
              : arith::MinUIOp::create(b, loc, result, operand).getResult();
    return result;
  }
  if (values.size() != 2 || (kind != "ceil_div" && kind != "div"))
    return error() << "malformed grid expression " << entry;
  if (kind == "div")
    return arith::DivUIOp::create(b, loc, values[0], values[1]).getResult();
  return arith::CeilDivUIOp::create(b, loc, values[0], values[1]).getResult();
}

FailureOr<Value> LaunchEmitter::allocate(StringRef param, MemRefType type,
                                         ArrayAttr shape) {
  if (type.getRank() != static_cast<int64_t>(shape.size()))
    return error() << "result '" << param << "' has rank " << type.getRank()
                   << ", its kernel writes rank " << shape.size();
  SmallVector<Value> dynamicSizes;
  for (auto [dim, entry] : llvm::enumerate(shape.getValue())) {
    if (!type.isDynamicDim(dim))
      continue;
    FailureOr<Value> size = evaluate(entry);
    if (failed(size))
      return failure();
    dynamicSizes.push_back(*size);
  }
  return memref::AllocOp::create(b, loc, type, dynamicSizes).getResult();
}

/// A buffer as the kernels take tensors: one flat run of elements.
static Value flatten(OpBuilder &b, Location loc, Value buffer, Type argType) {
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() == 0) {
    // A scalar (FP8's per-tensor descale): one element.
    buffer = memref::ExpandShapeOp::create(
        b, loc, MemRefType::get({1}, type.getElementType()), buffer,
        ArrayRef<ReassociationIndices>{});
  } else if (type.getRank() != 1) {
    ReassociationIndices all(type.getRank());
    std::iota(all.begin(), all.end(), 0);
    buffer = memref::CollapseShapeOp::create(
        b, loc, buffer, ArrayRef<ReassociationIndices>{all});
  }
  if (buffer.getType() != argType)
    buffer = memref::CastOp::create(b, loc, argType, buffer);
  return buffer;
}

FailureOr<Value> LaunchEmitter::getTensorMap(DictionaryAttr param, Type argType,
                                             DictionaryAttr manifest) {
  auto tensor = param.getAs<StringAttr>("tensor");
  auto box = param.getAs<ArrayAttr>("box");
  auto spec = manifest.getAs<DictionaryAttr>("spec");
  Value buffer = tensor ? buffers.lookup(tensor.getValue()) : Value();
  if (!buffer || !box || box.size() != 2 || !spec)
    return error() << "malformed tensormap parameter " << param;
  // gpu.launch_func passes an address, never the 128-byte descriptor.
  auto passing = param.getAs<StringAttr>("passing");
  if (passing && passing.getValue() != "global")
    return error() << "the kernel takes its TMA descriptors by value "
                      "(passing = "
                   << passing << "); a program launch needs them in memory";
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() != 4)
    return error() << "tensormap of a rank-" << type.getRank() << " tensor";
  // The manifest's box is (columns, rows) of one batch and head: the rows
  // run along the sequence dim of the layout (docs/kernel-spec.md).
  int64_t cols = cast<IntegerAttr>(box[0]).getInt();
  int64_t rows = cast<IntegerAttr>(box[1]).getInt();
  auto layout = spec.getAs<StringAttr>("layout");
  bool bshd = layout && layout.getValue() == "bshd";
  SmallVector<int64_t> boxShape = bshd ? SmallVector<int64_t>{1, rows, 1, cols}
                                       : SmallVector<int64_t>{1, 1, rows, cols};
  auto str = [&](StringRef key) {
    auto value = param.getAs<StringAttr>(key);
    return value ? value.getValue() : StringRef();
  };
  std::optional<nvgpu::TensorMapSwizzleKind> swizzle =
      llvm::StringSwitch<std::optional<nvgpu::TensorMapSwizzleKind>>(
          str("swizzle"))
          .Case("none", nvgpu::TensorMapSwizzleKind::SWIZZLE_NONE)
          .Case("32B", nvgpu::TensorMapSwizzleKind::SWIZZLE_32B)
          .Case("64B", nvgpu::TensorMapSwizzleKind::SWIZZLE_64B)
          .Case("128B", nvgpu::TensorMapSwizzleKind::SWIZZLE_128B)
          .Default(std::nullopt);
  std::optional<nvgpu::TensorMapL2PromoKind> l2 =
      llvm::StringSwitch<std::optional<nvgpu::TensorMapL2PromoKind>>(
          str("l2_promotion"))
          .Case("none", nvgpu::TensorMapL2PromoKind::L2PROMO_NONE)
          .Case("64B", nvgpu::TensorMapL2PromoKind::L2PROMO_64B)
          .Case("128B", nvgpu::TensorMapL2PromoKind::L2PROMO_128B)
          .Case("256B", nvgpu::TensorMapL2PromoKind::L2PROMO_256B)
          .Default(std::nullopt);
  std::optional<nvgpu::TensorMapOOBKind> oob =
      llvm::StringSwitch<std::optional<nvgpu::TensorMapOOBKind>>(
          str("oob_fill"))
          .Case("zero", nvgpu::TensorMapOOBKind::OOB_ZERO)
          .Case("nan", nvgpu::TensorMapOOBKind::OOB_NAN)
          .Default(std::nullopt);
  if (!swizzle || !l2 || !oob)
    return error() << "unknown tensormap swizzle, L2 promotion or fill in "
                   << param;
  MLIRContext *ctx = b.getContext();
  auto workgroup = gpu::AddressSpaceAttr::get(
      ctx, gpu::GPUDialect::getWorkgroupAddressSpace());
  // FP8 tensors are mapped as bytes, as the kernel's boxes are: ui8, the
  // map's UINT8 data type (nvgpu's lowering knows no f8 type, nor i8).
  Type boxElt = type.getElementType();
  if (isa<Float8E4M3FNType>(boxElt))
    boxElt = IntegerType::get(ctx, 8, IntegerType::Unsigned);
  auto descriptorType = nvgpu::TensorMapDescriptorType::get(
      ctx, MemRefType::get(boxShape, boxElt, AffineMap(), workgroup), *swizzle,
      *l2, *oob, nvgpu::TensorMapInterleaveKind::INTERLEAVE_NONE);
  // The descriptor is made after bufferization and buffer deallocation
  // (attn-gpu-device-memory), which reject nvgpu.tma.create.descriptor (it
  // declares no memory effects). Until then the kernel's pointer argument
  // is a cast of the buffer that carries the descriptor's type.
  auto marker = UnrealizedConversionCastOp::create(b, loc, argType, buffer);
  marker->setAttr(kTensorMapAttrName, TypeAttr::get(descriptorType));
  return marker.getResult(0);
}

FailureOr<Value> LaunchEmitter::getArgument(DictionaryAttr param, Type argType,
                                            DictionaryAttr manifest) {
  auto kind = param.getAs<StringAttr>("kind");
  auto name = param.getAs<StringAttr>("name");
  if (!kind || !name)
    return error() << "malformed kernel parameter " << param;
  if (kind.getValue() == "memref") {
    Value buffer = buffers.lookup(name.getValue());
    if (!buffer || !isa<MemRefType>(argType))
      return error() << "no buffer for kernel parameter '" << name.getValue()
                     << "'";
    return flatten(b, loc, buffer, argType);
  }
  auto role = param.getAs<StringAttr>("role");
  if (kind.getValue() == "scalar" && role && role.getValue() == "value")
    return getValue(name.getValue(), argType);
  if (kind.getValue() == "scalar") {
    FailureOr<Value> size = evaluate(name);
    if (failed(size))
      return failure();
    if (argType.isIndex())
      return *size;
    return arith::IndexCastOp::create(b, loc, argType, *size).getResult();
  }
  if (kind.getValue() == "tensormap")
    return getTensorMap(param, argType, manifest);
  return error() << "unknown kernel parameter kind '" << kind.getValue() << "'";
}

FailureOr<Value> LaunchEmitter::getValue(StringRef name, Type argType) {
  SmallVector<KernelSpec> specs;
  auto specOp = dyn_cast<KernelSpecOpInterface>(op);
  if (!specOp || failed(specOp.getKernelSpecs(specs)) || specs.empty())
    return error() << "has no kernel spec to take kernel parameter '" << name
                   << "' from";
  // The op's own spec: its values as the op states them (attn-lower-to-gpu
  // left them to run time in the kernel's).
  KernelSpecValues values = getKernelSpecValues(specs.front());
  std::optional<double> number = llvm::StringSwitch<std::optional<double>>(name)
                                     .Case("scale", values.scale)
                                     .Case("softcap", values.softcap)
                                     .Default(std::nullopt);
  if (number && isa<FloatType>(argType))
    return arith::ConstantOp::create(b, loc, FloatAttr::get(argType, *number))
        .getResult();
  std::optional<int64_t> extent =
      llvm::StringSwitch<std::optional<int64_t>>(name)
          .Case("window_left", values.windowLeft)
          .Case("window_right", values.windowRight)
          .Default(std::nullopt);
  if (extent && argType.isIndex())
    return index(*extent);
  return error() << "has no value for kernel parameter '" << name
                 << "' of type " << argType;
}

LogicalResult LaunchEmitter::launch(DictionaryAttr manifest) {
  auto entry = manifest.getAs<StringAttr>("entry");
  auto kernelModule =
      entry ? module.lookupSymbol<gpu::GPUModuleOp>(entry) : nullptr;
  auto kernel =
      kernelModule ? kernelModule.lookupSymbol<gpu::GPUFuncOp>(entry) : nullptr;
  auto params = manifest.getAs<ArrayAttr>("params");
  auto grid = manifest.getAs<ArrayAttr>("grid");
  auto block = manifest.getAs<ArrayAttr>("block");
  auto shared = manifest.getAs<IntegerAttr>("dynamic_shared_memory");
  if (!kernel || !params || !grid || !block || grid.size() != 3 ||
      block.size() != 3 || !shared || params.size() != kernel.getNumArguments())
    return error() << "malformed manifest for kernel " << entry;
  SmallVector<Value> arguments;
  for (auto [param, argType] : llvm::zip(params, kernel.getArgumentTypes())) {
    FailureOr<Value> argument =
        getArgument(cast<DictionaryAttr>(param), argType, manifest);
    if (failed(argument))
      return failure();
    arguments.push_back(*argument);
  }
  SmallVector<Value> gridSizes, blockSizes;
  for (Attribute size : grid) {
    FailureOr<Value> value = evaluate(size);
    if (failed(value))
      return failure();
    gridSizes.push_back(*value);
  }
  for (Attribute size : block)
    blockSizes.push_back(index(cast<IntegerAttr>(size).getInt()));
  Value sharedBytes = arith::ConstantIntOp::create(b, loc, shared.getInt(), 32);
  // A grid with a zero dim (an empty tensor) launches nothing: the runtime
  // skips it (CUDA rejects it), so no branch is needed here.
  gpu::LaunchFuncOp::create(
      b, loc, kernel, gpu::KernelDim3{gridSizes[0], gridSizes[1], gridSizes[2]},
      gpu::KernelDim3{blockSizes[0], blockSizes[1], blockSizes[2]}, sharedBytes,
      arguments);
  return success();
}

LogicalResult LaunchEmitter::launchAll(ArrayRef<DictionaryAttr> slow,
                                       ArrayRef<DictionaryAttr> fast,
                                       const Binding &binding) {
  auto launchEach = [&](ArrayRef<DictionaryAttr> manifests) {
    for (DictionaryAttr manifest : manifests)
      if (failed(launch(manifest)))
        return failure();
    return success();
  };
  if (fast.empty())
    return launchEach(slow);
  Value useFast = binding.fastWhen(*this);
  auto branch = scf::IfOp::create(b, loc, TypeRange(), useFast,
                                  /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(branch.thenBlock()->getTerminator());
  if (failed(launchEach(fast)))
    return failure();
  b.setInsertionPoint(branch.elseBlock()->getTerminator());
  return launchEach(slow);
}

FailureOr<Value> LaunchEmitter::isPreferred(DictionaryAttr manifest) {
  auto prefer = manifest.getAs<DictionaryAttr>("prefer");
  if (!prefer || prefer.empty())
    return error() << "malformed \"prefer\" in the manifest of kernel "
                   << manifest.get("entry");
  // Folded as built: static sizes give a constant, and the host code then
  // launches one kernel (eraseUnlaunchedAlternatives drops the other).
  Value all;
  auto both = [&](Value a, Value c) {
    return a ? b.createOrFold<arith::AndIOp>(loc, a, c) : c;
  };
  for (NamedAttribute range : prefer) {
    Value size = getSize(range.getName());
    auto bounds = dyn_cast<ArrayAttr>(range.getValue());
    auto lo = bounds && bounds.size() == 2 ? dyn_cast<IntegerAttr>(bounds[0])
                                           : IntegerAttr();
    auto hi = lo ? dyn_cast<IntegerAttr>(bounds[1]) : IntegerAttr();
    if (!size || !lo || (!hi && !isa<UnitAttr>(bounds[1])))
      return error() << "has no size '" << range.getName()
                     << "', or a malformed range of it, for the \"prefer\" "
                        "of kernel "
                     << manifest.get("entry");
    // Sizes are tensor extents, never negative: a range from 0 needs no
    // lower bound.
    if (lo.getInt() > 0)
      all = both(all,
                 b.createOrFold<arith::CmpIOp>(loc, arith::CmpIPredicate::sge,
                                               size, index(lo.getInt())));
    if (hi)
      all = both(all,
                 b.createOrFold<arith::CmpIOp>(loc, arith::CmpIPredicate::slt,
                                               size, index(hi.getInt())));
  }
  if (!all) // Every range was [0, unbounded).
    all = arith::ConstantIntOp::create(b, loc, 1, 1);
  return all;
}

LogicalResult LaunchEmitter::launchPreferred(ArrayRef<DictionaryAttr> preferred,
                                             ArrayRef<DictionaryAttr> slow,
                                             ArrayRef<DictionaryAttr> fast,
                                             const Binding &binding) {
  if (preferred.empty())
    return launchAll(slow, fast, binding);
  FailureOr<Value> holds = isPreferred(preferred.front());
  if (failed(holds))
    return failure();
  if (std::optional<int64_t> known = getConstantIntValue(*holds))
    return *known
               ? launch(preferred.front())
               : launchPreferred(preferred.drop_front(), slow, fast, binding);
  auto branch = scf::IfOp::create(b, loc, TypeRange(), *holds,
                                  /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPoint(branch.thenBlock()->getTerminator());
  if (failed(launch(preferred.front())))
    return failure();
  b.setInsertionPoint(branch.elseBlock()->getTerminator());
  return launchPreferred(preferred.drop_front(), slow, fast, binding);
}

LogicalResult LaunchEmitter::run(ArrayRef<DictionaryAttr> allKernels,
                                 const Binding &binding) {
  // The kernels this op launches, in order, and those of its fast path
  // (dropped if the generator made none of its kernels for this spec).
  kernels.assign(allKernels.begin(), allKernels.end());
  SmallVector<DictionaryAttr> slow, fast;
  for (StringRef kind : binding.kinds) {
    DictionaryAttr manifest = getKernel(kind);
    if (!manifest)
      return error() << "has no '" << kind << "' kernel to launch";
    slow.push_back(manifest);
  }
  for (StringRef kind : binding.fastKinds)
    if (DictionaryAttr manifest = getKernel(kind))
      fast.push_back(manifest);
  if (fast.size() != binding.fastKinds.size())
    fast.clear();
  if (binding.kinds.empty())
    slow = kernels;
  // Length alternatives (a manifest's "prefer"): each replaces the kernel
  // of its variant without one where its ranges hold the sizes, which
  // static shapes fold. They are tried in the order of their names, as
  // attn.gpu tries them; where only alternatives were built, the first
  // serves every other size.
  SmallVector<DictionaryAttr> preferred;
  llvm::erase_if(slow, [&](DictionaryAttr manifest) {
    if (!manifest.contains("prefer"))
      return false;
    preferred.push_back(manifest);
    return true;
  });
  llvm::sort(preferred, [](DictionaryAttr a, DictionaryAttr b) {
    auto name = [](DictionaryAttr m) {
      auto entry = m.getAs<StringAttr>("entry");
      return entry ? entry.getValue() : StringRef();
    };
    return name(a) < name(b);
  });
  if (slow.empty() && !preferred.empty()) {
    slow.push_back(preferred.front());
    preferred.erase(preferred.begin());
  }
  kernels = slow;
  llvm::append_range(kernels, fast);
  llvm::append_range(kernels, preferred);
  // Operands first, so that every size is defined before results and
  // workspaces are allocated from them.
  SmallVector<std::pair<DictionaryAttr, DictionaryAttr>> toAllocate;
  for (DictionaryAttr manifest : kernels) {
    auto params = manifest.getAs<ArrayAttr>("params");
    if (!params)
      return error() << "malformed manifest " << manifest;
    for (Attribute attr : params) {
      auto param = cast<DictionaryAttr>(attr);
      auto kind = param.getAs<StringAttr>("kind");
      auto name = param.getAs<StringAttr>("name");
      auto shape = param.getAs<ArrayAttr>("shape");
      if (!kind || kind.getValue() != "memref")
        continue;
      if (!name || !shape)
        return error() << "malformed kernel parameter " << param;
      if (buffers.count(name.getValue()))
        continue;
      Value tensor = binding.inputs.lookup(name.getValue());
      if (!tensor) {
        toAllocate.push_back({param, manifest});
        buffers[name.getValue()] = Value();
        continue;
      }
      auto tensorType = cast<RankedTensorType>(tensor.getType());
      Value buffer = bufferization::ToBufferOp::create(
          b, loc, getIdentityBufferType(tensorType), tensor,
          /*read_only=*/true);
      buffers[name.getValue()] = buffer;
      if (failed(bindShape(name.getValue(), buffer, shape)))
        return failure();
    }
  }
  if (binding.defineSizes && failed(binding.defineSizes(*this)))
    return failure();
  SmallVector<Value> results(op->getNumResults());
  for (auto [param, manifest] : toAllocate) {
    StringRef name = param.getAs<StringAttr>("name").getValue();
    auto shape = param.getAs<ArrayAttr>("shape");
    auto output = binding.outputs.find(name);
    MemRefType type;
    if (output != binding.outputs.end()) {
      type = getIdentityBufferType(
          cast<RankedTensorType>(op->getResult(output->second).getType()));
    } else {
      // A workspace: its element type is the parameter's dtype. Only the
      // kernels' scratch roles are allocated here: an input the binding
      // does not know must not become uninitialized memory.
      auto role = param.getAs<StringAttr>("role");
      if (!role ||
          !llvm::is_contained(
              ArrayRef<StringRef>{"workspace", "partial_output", "partial_lse"},
              role.getValue()))
        return error() << "has no operand for kernel parameter '" << name
                       << "' (role '" << (role ? role.getValue() : "") << "')";
      auto dtype = param.getAs<StringAttr>("dtype");
      auto kernel = module
                        .lookupSymbol<gpu::GPUModuleOp>(
                            manifest.getAs<StringAttr>("entry"))
                        .lookupSymbol<gpu::GPUFuncOp>(
                            manifest.getAs<StringAttr>("entry"));
      Type elt;
      for (auto [p, argType] : llvm::zip(manifest.getAs<ArrayAttr>("params"),
                                         kernel.getArgumentTypes()))
        if (p == param)
          elt = cast<MemRefType>(argType).getElementType();
      if (!elt || !dtype)
        return error() << "malformed workspace parameter " << param;
      type = MemRefType::get(
          SmallVector<int64_t>(shape.size(), ShapedType::kDynamic), elt);
    }
    FailureOr<Value> buffer = allocate(name, type, shape);
    if (failed(buffer))
      return failure();
    buffers[name] = *buffer;
    if (output != binding.outputs.end())
      results[output->second] = *buffer;
  }
  if (failed(launchPreferred(preferred, slow, fast, binding)))
    return failure();
  SmallVector<Value> replacements;
  for (auto [result, buffer] : llvm::zip(op->getResults(), results)) {
    if (!buffer)
      return error() << "no kernel writes result #" << result.getResultNumber();
    replacements.push_back(bufferization::ToTensorOp::create(
        b, loc, result.getType(), buffer, /*restrict=*/true,
        /*writable=*/true));
  }
  b.replaceOp(op, replacements);
  return success();
}

/// The split count of paged decode, as attn.gpu.num_splits chooses it: the
/// (sequence, KV head, value chunk, row tile) blocks of one split fill the
/// `resident` blocks per SM of the device's SMs in one wave, without
/// splitting under 256 keys of the longest sequence the table allows, and at
/// most 128 splits.
static LogicalResult definePagedSplits(LaunchEmitter &e) {
  OpBuilder &b = e.builder();
  Location loc = e.getLoc();
  DictionaryAttr split = e.getKernel("paged.mma.sync");
  auto spec = split ? split.getAs<DictionaryAttr>("spec") : nullptr;
  auto rows = split ? split.getAs<IntegerAttr>("rows_per_block") : nullptr;
  auto shared =
      split ? split.getAs<IntegerAttr>("dynamic_shared_memory") : nullptr;
  auto page = spec ? spec.getAs<IntegerAttr>("page_size") : nullptr;
  auto dv = spec ? spec.getAs<IntegerAttr>("value_head_dim") : nullptr;
  if (!rows || !shared || !page || !dv)
    return e.error() << "malformed paged split manifest";
  int64_t chunks = 1;
  if (auto c = split.getAs<IntegerAttr>("value_chunks"))
    chunks = c.getInt();
  // Shared memory bounds the blocks an SM holds (227 KiB usable on sm_90,
  // 1 KiB reserved per block); registers bound them to 2.
  int64_t resident = std::max<int64_t>(
      1, std::min<int64_t>(2, (227 * 1024) / (shared.getInt() + 1024)));
  Value hq = e.getSize("Hq"), hkv = e.getSize("Hkv"), sq = e.getSize("Sq"),
        batch = e.getSize("B"), maxPages = e.getSize("MaxPages");
  if (!hq || !hkv || !sq || !batch || !maxPages)
    return e.error() << "paged kernels without their sizes";
  auto mul = [&](Value x, Value y) {
    return arith::MulIOp::create(b, loc, x, y).getResult();
  };
  Value group = arith::DivUIOp::create(b, loc, hq, hkv);
  Value rowTiles = arith::CeilDivUIOp::create(b, loc, mul(group, sq),
                                              e.index(rows.getInt()));
  Value blocks = arith::MaxSIOp::create(
      b, loc, e.index(1), mul(mul(batch, mul(hkv, e.index(chunks))), rowTiles));
  Value slots = mul(e.getMultiprocessorCount(), e.index(resident));
  Value fill = arith::DivUIOp::create(b, loc, slots, blocks);
  Value keys = mul(maxPages, e.index(page.getInt()));
  Value cap = arith::MinSIOp::create(
      b, loc, arith::CeilDivUIOp::create(b, loc, keys, e.index(256)),
      e.index(128));
  Value splits = arith::MaxSIOp::create(
      b, loc, e.index(1), arith::MinSIOp::create(b, loc, fill, cap));
  e.setSize("Splits", splits);
  // Value row r of a dense cache (either layout) is at r * Dv.
  e.setSize("VStride", e.index(dv.getInt()));
  // The split kernel's grid holds the batch in z.
  Value fits = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ule, batch,
                                     e.index(65535));
  cf::AssertOp::create(b, loc, fits,
                       "attn.paged_attention: more than 65535 sequences in "
                       "one call (the split kernel's grid z limit)");
  return success();
}

/// The longest sequence the gated delta rule runs on its recurrent kernel
/// (python/attn/gpu.py's GATED_RECURRENT_MAX_TOKENS).
static constexpr int64_t kGatedRecurrentMaxTokens = 16;

/// The chunk count of the chunked gated delta kernels.
static LogicalResult defineGatedDeltaChunks(LaunchEmitter &e) {
  DictionaryAttr chunkKernel = e.getKernel("gated_delta.chunk");
  auto spec = chunkKernel ? chunkKernel.getAs<DictionaryAttr>("spec") : nullptr;
  auto chunk = spec ? spec.getAs<IntegerAttr>("chunk") : nullptr;
  Value tokens = e.getSize("T");
  if (!chunk || !tokens)
    return e.error() << "malformed gated delta manifest";
  e.setSize("Chunks",
            arith::CeilDivUIOp::create(e.builder(), e.getLoc(), tokens,
                                       e.index(chunk.getInt())));
  return success();
}

/// The parameters of the ops that have a host lowering.
static FailureOr<Binding> getBinding(Operation *op,
                                     ArrayRef<DictionaryAttr> kernels) {
  Binding binding;
  if (auto attention = dyn_cast<AttentionOp>(op)) {
    binding.inputs["q"] = attention.getQuery();
    binding.inputs["k"] = attention.getKey();
    binding.inputs["v"] = attention.getValue();
    if (Value bias = attention.getBias())
      binding.inputs["bias"] = bias;
    if (Value sinks = attention.getSinks())
      binding.inputs["sinks"] = sinks;
    // FP8's descales (the kernel's descale_q, descale_k, descale_v).
    for (auto [name, descale] :
         llvm::zip(ArrayRef<StringRef>{"descale_q", "descale_k", "descale_v"},
                   attention.getDescale()))
      binding.inputs[name] = descale;
    binding.outputs["o"] = 0;
    if (attention.getLse())
      binding.outputs["lse"] = 1;
    return binding;
  }
  if (auto grad = dyn_cast<AttentionGradOp>(op)) {
    binding.inputs["q"] = grad.getQuery();
    binding.inputs["k"] = grad.getKey();
    binding.inputs["v"] = grad.getValue();
    binding.inputs["o"] = grad.getOutput();
    binding.inputs["do"] = grad.getGradOutput();
    binding.inputs["lse"] = grad.getLse();
    if (Value bias = grad.getBias())
      binding.inputs["bias"] = bias;
    binding.outputs["dq"] = 0;
    binding.outputs["dk"] = 1;
    binding.outputs["dv"] = 2;
    if (Value sinks = grad.getSinks()) {
      binding.inputs["sinks"] = sinks;
      binding.outputs["dsinks"] = 3;
    }
    // The kernels in their manifests' "step" order, 0 .. n - 1, as
    // attn.gpu.attention_backward runs them (today dQ, which writes the
    // Delta workspace, then dK/dV, then dsinks with sinks).
    SmallVector<std::pair<int64_t, StringRef>> steps;
    for (DictionaryAttr manifest : kernels) {
      auto kind = manifest.getAs<StringAttr>("kernel");
      auto step = manifest.getAs<IntegerAttr>("step");
      if (kind && step && kind.getValue().starts_with("attention_grad."))
        steps.push_back({step.getInt(), kind.getValue()});
    }
    llvm::sort(steps);
    for (auto [i, entry] : llvm::enumerate(steps)) {
      if (entry.first != static_cast<int64_t>(i))
        return op->emitOpError()
               << "has no single kernel for step " << i << " of its backward";
      binding.kinds.push_back(entry.second);
    }
    if (steps.size() < 2)
      return op->emitOpError() << "has fewer than two backward kernels";
    return binding;
  }
  if (auto paged = dyn_cast<PagedAttentionOp>(op)) {
    for (DictionaryAttr manifest : kernels)
      if (auto spec = manifest.getAs<DictionaryAttr>("spec"))
        if (auto values = spec.getAs<StringAttr>("values"))
          if (values.getValue() != "separate")
            return op->emitOpError()
                   << "has no host lowering yet for a value cache that is "
                      "the first columns of the key cache (MLA's latent "
                      "cache): run it from Python (attn.gpu)";
    binding.inputs["q"] = paged.getQuery();
    binding.inputs["k_cache"] = paged.getKeyCache();
    binding.inputs["v_cache"] = paged.getValueCache();
    binding.inputs["block_table"] = paged.getBlockTable();
    binding.inputs["seq_lens"] = paged.getSeqLens();
    if (Value sinks = paged.getSinks())
      binding.inputs["sinks"] = sinks;
    binding.outputs["o"] = 0;
    if (paged.getLse())
      binding.outputs["lse"] = 1;
    binding.kinds = {"paged.mma.sync", "paged.combine"};
    binding.defineSizes = definePagedSplits;
    return binding;
  }
  if (auto gated = dyn_cast<GatedDeltaRuleOp>(op)) {
    binding.inputs["q"] = gated.getQuery();
    binding.inputs["k"] = gated.getKey();
    binding.inputs["v"] = gated.getValue();
    binding.inputs["g"] = gated.getGate();
    binding.inputs["beta"] = gated.getBeta();
    if (Value state = gated.getInitialState())
      binding.inputs["initial_state"] = state;
    binding.outputs["o"] = 0;
    binding.outputs["final_state"] = 1;
    // The chunked kernels serve every length; up to 16 tokens (decode)
    // the recurrent kernel alone is faster, as attn.gpu chooses
    // (GATED_RECURRENT_MAX_TOKENS).
    binding.kinds = {"gated_delta.chunk", "gated_delta.state"};
    binding.defineSizes = defineGatedDeltaChunks;
    binding.fastKinds = {"gated_delta.recurrent"};
    binding.fastWhen = [](LaunchEmitter &e) -> Value {
      return arith::CmpIOp::create(e.builder(), e.getLoc(),
                                   arith::CmpIPredicate::ule, e.getSize("T"),
                                   e.index(kGatedRecurrentMaxTokens));
    };
    return binding;
  }
  return op->emitOpError()
         << "has no host lowering yet: its kernels can be generated "
            "(attn-to-ptx, attn-compile) and launched from Python "
            "(attn.gpu), but not called from a compiled program";
}

LogicalResult
mlir::attn::replaceWithKernelLaunches(RewriterBase &rewriter, Operation *op,
                                      ArrayRef<DictionaryAttr> kernels,
                                      ModuleOp module) {
  FailureOr<Binding> binding = getBinding(op, kernels);
  if (failed(binding))
    return failure();
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  return LaunchEmitter(rewriter, op, module).run(kernels, *binding);
}
