//===- KernelSpec.cpp - kernel specs and their JSON form ------------------===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "attn/IR/KernelSpec.h"

#include "attn/IR/AttnOps.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
namespace json = llvm::json;

StringRef mlir::attn::stringifyScalarType(ScalarType t) {
  switch (t) {
  case ScalarType::F16:
    return "f16";
  case ScalarType::BF16:
    return "bf16";
  case ScalarType::F32:
    return "f32";
  case ScalarType::I32:
    return "i32";
  case ScalarType::I64:
    return "i64";
  case ScalarType::F8E4M3:
    return "f8e4m3";
  }
  llvm_unreachable("unknown scalar type");
}

std::optional<ScalarType> mlir::attn::symbolizeScalarType(StringRef s) {
  return llvm::StringSwitch<std::optional<ScalarType>>(s)
      .Case("f16", ScalarType::F16)
      .Case("bf16", ScalarType::BF16)
      .Case("f32", ScalarType::F32)
      .Case("i32", ScalarType::I32)
      .Case("i64", ScalarType::I64)
      .Case("f8e4m3", ScalarType::F8E4M3)
      .Default(std::nullopt);
}

std::optional<ScalarType> mlir::attn::getScalarType(Type t) {
  if (t.isF16())
    return ScalarType::F16;
  if (t.isBF16())
    return ScalarType::BF16;
  if (t.isF32())
    return ScalarType::F32;
  if (t.isSignlessInteger(32))
    return ScalarType::I32;
  if (t.isSignlessInteger(64))
    return ScalarType::I64;
  if (isa<Float8E4M3FNType>(t))
    return ScalarType::F8E4M3;
  return std::nullopt;
}

Type mlir::attn::getType(MLIRContext *ctx, ScalarType t) {
  switch (t) {
  case ScalarType::F16:
    return Float16Type::get(ctx);
  case ScalarType::BF16:
    return BFloat16Type::get(ctx);
  case ScalarType::F32:
    return Float32Type::get(ctx);
  case ScalarType::I32:
    return IntegerType::get(ctx, 32);
  case ScalarType::I64:
    return IntegerType::get(ctx, 64);
  case ScalarType::F8E4M3:
    return Float8E4M3FNType::get(ctx);
  }
  llvm_unreachable("unknown scalar type");
}

MaskSpec MaskSpec::get(MaskAttr mask) {
  if (!mask)
    return {};
  return {mask.getKind(), mask.getLeft(), mask.getRight()};
}

MaskAttr MaskSpec::getAttr(MLIRContext *ctx) const {
  return MaskAttr::get(ctx, kind, left, right);
}

/// Leaves `s`'s values to run time (AttentionSpec, PagedAttentionSpec).
template <typename Spec> static void leaveValuesToRunTime(Spec &s) {
  if (s.runtimeValues || s.scale < 0)
    return;
  s.runtimeValues = true;
  s.scale = 0;
  if (s.softcap)
    s.softcap = 0.0;
  s.mask.left = s.mask.right = 0;
}

KernelSpec mlir::attn::withRuntimeValues(const KernelSpec &spec) {
  KernelSpec out = spec;
  if (auto *s = std::get_if<AttentionSpec>(&out))
    leaveValuesToRunTime(*s);
  else if (auto *s = std::get_if<AttentionGradSpec>(&out))
    leaveValuesToRunTime(s->forward);
  else if (auto *s = std::get_if<PagedAttentionSpec>(&out))
    leaveValuesToRunTime(*s);
  return out;
}

KernelSpecValues mlir::attn::getKernelSpecValues(const KernelSpec &spec) {
  auto get = [](const auto &s) {
    KernelSpecValues v;
    v.scale = s.scale;
    v.softcap = s.softcap;
    if (s.mask.isWindow()) {
      v.windowLeft = s.mask.left;
      v.windowRight = s.mask.right;
    }
    return v;
  };
  if (auto *s = std::get_if<AttentionSpec>(&spec))
    return get(*s);
  if (auto *s = std::get_if<AttentionGradSpec>(&spec))
    return get(s->forward);
  if (auto *s = std::get_if<PagedAttentionSpec>(&spec))
    return get(*s);
  return {};
}

bool mlir::attn::usesFp8(const KernelSpec &spec) {
  auto is = [](std::optional<ScalarType> t) { return t == ScalarType::F8E4M3; };
  auto any = [&](std::initializer_list<std::optional<ScalarType>> ts) {
    return llvm::any_of(ts, is);
  };
  auto attention = [&](const AttentionSpec &s) {
    return any({s.dtype, s.outDtype, s.bias, s.sinks});
  };
  return std::visit(
      [&](const auto &s) -> bool {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, AttentionSpec>)
          return attention(s);
        else if constexpr (std::is_same_v<T, AttentionGradSpec>)
          return attention(s.forward);
        else if constexpr (std::is_same_v<T, PagedAttentionSpec>)
          return any({s.dtype, s.tableDtype, s.lensDtype, s.sinks});
        else if constexpr (std::is_same_v<T, GatedDeltaSpec>)
          return any({s.dtype, s.gateDtype, s.betaDtype});
        else if constexpr (std::is_same_v<T, NsaSelectSpec>)
          return is(s.dtype);
        else
          return any({s.dtype, s.weightsDtype});
      },
      spec);
}

StringRef mlir::attn::stringifyDescaleMode(DescaleMode m) {
  switch (m) {
  case DescaleMode::None:
    return "none";
  case DescaleMode::Tensor:
    return "tensor";
  case DescaleMode::Head:
    return "head";
  }
  llvm_unreachable("unknown descale mode");
}

std::optional<DescaleMode> mlir::attn::symbolizeDescaleMode(StringRef s) {
  return llvm::StringSwitch<std::optional<DescaleMode>>(s)
      .Case("none", DescaleMode::None)
      .Case("tensor", DescaleMode::Tensor)
      .Case("head", DescaleMode::Head)
      .Default(std::nullopt);
}

double mlir::attn::roundToF32(double x) {
  return static_cast<double>(static_cast<float>(x));
}

StringRef mlir::attn::getKernelSpecOp(const KernelSpec &spec) {
  return std::visit(
      [](const auto &s) -> StringRef {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, AttentionSpec>)
          return "attention";
        else if constexpr (std::is_same_v<T, AttentionGradSpec>)
          return "attention_grad";
        else if constexpr (std::is_same_v<T, PagedAttentionSpec>)
          return "paged_attention";
        else if constexpr (std::is_same_v<T, GatedDeltaSpec>)
          return "gated_delta_rule";
        else if constexpr (std::is_same_v<T, NsaSelectSpec>)
          return "nsa";
        else
          return "lightning_indexer";
      },
      spec);
}

//===----------------------------------------------------------------------===//
// To JSON
//===----------------------------------------------------------------------===//

static StringRef stringifyKernelKind(AttentionKernelKind k) {
  switch (k) {
  case AttentionKernelKind::Auto:
    return "auto";
  case AttentionKernelKind::Baseline:
    return "baseline";
  case AttentionKernelKind::Mma:
    return "mma";
  case AttentionKernelKind::Wgmma:
    return "wgmma";
  }
  llvm_unreachable("unknown kernel kind");
}

static json::Value optionalDouble(std::optional<double> x) {
  return x ? json::Value(*x) : json::Value(nullptr);
}

/// What a spec that leaves its values to run time writes for them.
static constexpr const char *kRuntime = "runtime";

/// "mask" and, for windows, "window_left" / "window_right" ("runtime" for
/// kernels that take them as arguments).
static void addMask(json::Object &o, const MaskSpec &mask,
                    bool runtime = false) {
  o["mask"] = stringifyMaskKind(mask.kind);
  if (mask.isWindow()) {
    o["window_left"] = runtime ? json::Value(kRuntime) : json::Value(mask.left);
    o["window_right"] =
        runtime ? json::Value(kRuntime) : json::Value(mask.right);
  }
}

/// "scale" and "softcap": numbers, or "runtime" for kernels that take them
/// as arguments (a softcap's absence is null either way).
static void addValues(json::Object &o, double scale,
                      std::optional<double> softcap, bool runtime) {
  if (runtime) {
    o["scale"] = kRuntime;
    o["softcap"] = softcap ? json::Value(kRuntime) : json::Value(nullptr);
    return;
  }
  o["scale"] = roundToF32(scale);
  o["softcap"] = optionalDouble(softcap);
}

/// "sinks" and, with sinks, "sinks_dtype".
static void addSinks(json::Object &o, std::optional<ScalarType> sinks) {
  o["sinks"] = sinks.has_value();
  if (sinks)
    o["sinks_dtype"] = stringifyScalarType(*sinks);
}

json::Object mlir::attn::preferToJSON(ArrayRef<SizeRange> prefer) {
  json::Object o;
  for (const SizeRange &range : prefer)
    o[range.size] = json::Array{range.lo, range.hi ? json::Value(*range.hi)
                                                   : json::Value(nullptr)};
  return o;
}

static json::Object toJSONFields(const AttentionSpec &s) {
  json::Object o{{"dtype", stringifyScalarType(s.dtype)},
                 {"head_dim", s.headDim},
                 {"value_head_dim", s.valueHeadDim},
                 {"layout", stringifyLayout(s.layout)},
                 {"bias", s.bias.has_value()},
                 {"lse", s.lse},
                 {"kernel", stringifyKernelKind(s.kernel)}};
  addValues(o, s.scale, s.softcap, s.runtimeValues);
  addMask(o, s.mask, s.runtimeValues);
  addSinks(o, s.sinks);
  if (s.bias) {
    o["bias_dtype"] = stringifyScalarType(*s.bias);
    o["bias_broadcast"] = json::Array(s.biasBroadcast);
  }
  // FP8's keys, written only where they say something, so that the specs
  // of other inputs keep their JSON (and their manifests' keys).
  if (s.outDtype)
    o["out_dtype"] = stringifyScalarType(*s.outDtype);
  if (s.descale != DescaleMode::None)
    o["descale"] = stringifyDescaleMode(s.descale);
  if (s.blockQ)
    o["block_q"] = s.blockQ;
  if (s.blockKV)
    o["block_kv"] = s.blockKV;
  if (!s.prefer.empty())
    o["prefer"] = preferToJSON(s.prefer);
  if (s.persistent)
    o["persistent"] = true;
  return o;
}

/// The forward's keys, less what the backward does not use; "kernel" only
/// where it pins the backward's tensor-core kernel ("mma" or "wgmma").
static json::Object toJSONFields(const AttentionGradSpec &s) {
  json::Object o = toJSONFields(s.forward);
  for (StringRef unused :
       {"lse", "block_q", "block_kv", "prefer", "persistent"})
    o.erase(unused);
  if (s.forward.kernel != AttentionKernelKind::Mma &&
      s.forward.kernel != AttentionKernelKind::Wgmma)
    o.erase("kernel");
  // Written only where it is false, so that the deterministic backward's
  // specs (and manifests) keep their JSON.
  if (!s.deterministic)
    o["deterministic"] = false;
  if (s.dqAtomics)
    o["dq_reduce"] = "atomic";
  return o;
}

static json::Object toJSONFields(const PagedAttentionSpec &s) {
  json::Object o{
      {"dtype", stringifyScalarType(s.dtype)},
      {"head_dim", s.headDim},
      {"value_head_dim", s.valueHeadDim},
      {"page_size", s.pageSize},
      {"cache_layout", stringifyCacheLayout(s.cacheLayout)},
      {"table_dtype", stringifyScalarType(s.tableDtype)},
      {"lens_dtype", stringifyScalarType(s.lensDtype)},
      {"values", s.valuesArePrefixOfKeys ? "key_prefix" : "separate"},
      {"lse", s.lse}};
  addValues(o, s.scale, s.softcap, s.runtimeValues);
  addMask(o, s.mask, s.runtimeValues);
  addSinks(o, s.sinks);
  return o;
}

static json::Object toJSONFields(const GatedDeltaSpec &s) {
  return json::Object{{"dtype", stringifyScalarType(s.dtype)},
                      {"key_head_dim", s.keyHeadDim},
                      {"value_head_dim", s.valueHeadDim},
                      {"chunk", s.chunk},
                      {"gate_kind", stringifyGateKind(s.gateKind)},
                      {"gate_dtype", stringifyScalarType(s.gateDtype)},
                      {"beta_dtype", stringifyScalarType(s.betaDtype)},
                      {"qk_l2norm", s.qkL2norm},
                      {"scale", roundToF32(s.scale)},
                      {"initial_state", s.initialState}};
}

static json::Object toJSONFields(const NsaSelectSpec &s) {
  return json::Object{{"dtype", stringifyScalarType(s.dtype)},
                      {"head_dim", s.headDim},
                      {"value_head_dim", s.valueHeadDim},
                      {"q_heads", s.queryHeads},
                      {"kv_heads", s.kvHeads},
                      {"cmp_block", s.cmpBlock},
                      {"cmp_stride", s.cmpStride},
                      {"sel_block", s.selBlock},
                      {"num_selected", s.numSelected},
                      {"initial_blocks", s.initialBlocks},
                      {"local_blocks", s.localBlocks},
                      {"scale", roundToF32(s.scale)}};
}

static json::Object toJSONFields(const IndexerSpec &s) {
  json::Object o{{"dtype", stringifyScalarType(s.dtype)},
                 {"heads", s.heads},
                 {"head_dim", s.headDim},
                 {"weights_dtype", stringifyScalarType(s.weightsDtype)}};
  addMask(o, s.mask);
  return o;
}

json::Object mlir::attn::toJSON(const KernelSpec &spec) {
  json::Object o =
      std::visit([](const auto &s) { return toJSONFields(s); }, spec);
  o["op"] = getKernelSpecOp(spec);
  o["version"] = kKernelSpecVersion;
  return o;
}

//===----------------------------------------------------------------------===//
// From JSON
//===----------------------------------------------------------------------===//

namespace {
/// Reads the fields of one spec object, remembering the first error with
/// its key. Optional keys keep the field's default.
class SpecReader {
public:
  explicit SpecReader(const json::Object &o) : o(o) {}

  /// An integer of at least `minimum` and at most kMaxDimSize: sizes are
  /// positive, block counts non-negative, and none larger than the ops take
  /// (a kernel generator need not guard against a negative head dim, nor
  /// its byte counts against overflow).
  template <typename T>
  void integer(StringRef key, T &out, bool required = true,
               int64_t minimum = 1) {
    readInteger(key, out, required, minimum, /*bounded=*/true);
  }
  /// A window extent: a non-negative integer, unbounded as the mask
  /// attribute's (the kernels clamp it).
  void windowExtent(StringRef key, int64_t &out) {
    readInteger(key, out, /*required=*/true, /*minimum=*/0,
                /*bounded=*/false);
  }
  void boolean(StringRef key, bool &out, bool required = false) {
    const json::Value *v = o.get(key);
    if (!v)
      return missing(key, required);
    std::optional<bool> x = v->getAsBoolean();
    if (!x)
      return error(key, "expected true or false");
    out = *x;
  }
  /// A number, rounded to f32 (scales and softcaps are f32 attributes).
  void number(StringRef key, double &out) {
    const json::Value *v = o.get(key);
    if (!v)
      return missing(key, true);
    std::optional<double> x = v->getAsNumber();
    if (!x)
      return error(key, "expected a number");
    // Kernels and manifests hold it as an f32 (JSON has no infinity).
    if (!std::isfinite(roundToF32(*x)))
      return error(key, "expected a finite number within f32's range");
    out = roundToF32(*x);
  }
  /// A number or null (absent).
  void optionalNumber(StringRef key, std::optional<double> &out) {
    const json::Value *v = o.get(key);
    if (!v || v->getAsNull())
      return;
    double x = 0;
    number(key, x);
    out = x;
  }
  template <typename T>
  void enumeration(StringRef key, T &out,
                   function_ref<std::optional<T>(StringRef)> parse,
                   bool required = true) {
    const json::Value *v = o.get(key);
    if (!v)
      return missing(key, required);
    std::optional<StringRef> s = v->getAsString();
    std::optional<T> x = s ? parse(*s) : std::nullopt;
    if (!x)
      return error(key, "unknown value");
    out = *x;
  }
  void scalar(StringRef key, ScalarType &out, bool required = true) {
    enumeration<ScalarType>(key, out, symbolizeScalarType, required);
  }
  void mask(MaskSpec &out) {
    enumeration<MaskKind>(
        "mask", out.kind, [](StringRef v) { return symbolizeMaskKind(v); },
        /*required=*/false);
    if (out.isWindow()) {
      windowExtent("window_left", out.left);
      windowExtent("window_right", out.right);
    }
  }
  /// The values a dense or paged spec may leave to run time: "scale" a
  /// number (every value compiled in) or "runtime" / absent (every value a
  /// kernel argument); then "softcap" null, or a number (compiled) or
  /// "runtime", and window extents integers (compiled) or "runtime" /
  /// absent, as the scale says. A spec mixing the two is refused: one
  /// switch decides which kernel serves it.
  void values(MaskSpec &mask, double &scale, std::optional<double> &softcap,
              bool &runtime) {
    const json::Value *v = o.get("scale");
    runtime = !v || isRuntime(v);
    if (!runtime)
      number("scale", scale);
    if (const json::Value *cap = o.get("softcap"); cap && !cap->getAsNull()) {
      if (isRuntime(cap) != runtime)
        return mixed("softcap");
      if (runtime)
        softcap = 0.0;
      else
        optionalNumber("softcap", softcap);
      // softcap · tanh(s / softcap): 0 would make every score NaN.
      if (softcap && *softcap <= 0 && !runtime)
        return error("softcap", "expected a positive number");
    }
    enumeration<MaskKind>(
        "mask", mask.kind, [](StringRef v) { return symbolizeMaskKind(v); },
        /*required=*/false);
    if (!mask.isWindow())
      return;
    for (auto [key, out] :
         {std::pair<StringRef, int64_t *>{"window_left", &mask.left},
          {"window_right", &mask.right}}) {
      const json::Value *extent = o.get(key);
      if (runtime && extent && !isRuntime(extent))
        return mixed(key);
      if (!runtime && extent && isRuntime(extent))
        return mixed(key);
      if (!runtime)
        windowExtent(key, *out);
    }
  }
  void sinks(std::optional<ScalarType> &out) {
    bool has = false;
    boolean("sinks", has);
    if (!has)
      return;
    ScalarType t = ScalarType::F32;
    scalar("sinks_dtype", t, /*required=*/false);
    out = t;
  }

  /// "prefer": {"<size>": [lo, hi or null], ...} with the sizes named in
  /// `sizes`, 0 <= lo < hi.
  void prefer(std::vector<SizeRange> &out, ArrayRef<StringRef> sizes) {
    const json::Value *v = o.get("prefer");
    if (!v)
      return;
    const json::Object *ranges = v->getAsObject();
    if (!ranges)
      return error("prefer", "expected an object of size ranges");
    for (const auto &[size, range] : *ranges) {
      if (!llvm::is_contained(sizes, StringRef(size))) {
        std::string known = llvm::join(sizes, ", ");
        return error("prefer", ("unknown size '" + StringRef(size) +
                                "' (ranges are of " + known + ")")
                                   .str());
      }
      const json::Array *bounds = range.getAsArray();
      std::optional<int64_t> lo = bounds && bounds->size() == 2
                                      ? (*bounds)[0].getAsInteger()
                                      : std::nullopt;
      if (!lo || *lo < 0)
        return error("prefer", ("'" + StringRef(size) +
                                "': expected [lo, hi] or [lo, null], 0 <= lo")
                                   .str());
      SizeRange parsed{size.str(), *lo, std::nullopt};
      if (!(*bounds)[1].getAsNull()) {
        parsed.hi = (*bounds)[1].getAsInteger();
        if (!parsed.hi || *parsed.hi <= *lo)
          return error("prefer",
                       ("'" + StringRef(size) +
                        "': the upper bound must be an integer above lo, or "
                        "null")
                           .str());
      }
      out.push_back(std::move(parsed));
    }
    // json::Object is unordered: one order, that of the size names.
    llvm::sort(out, [](const SizeRange &a, const SizeRange &b) {
      return a.size < b.size;
    });
  }

  bool ok() const { return firstError.empty(); }
  const std::string &getError() const { return firstError; }
  /// Records that `key`'s value, read well, breaks a rule between keys.
  void invalid(StringRef key, const Twine &what) { error(key, what.str()); }

private:
  template <typename T>
  void readInteger(StringRef key, T &out, bool required, int64_t minimum,
                   bool bounded) {
    const json::Value *v = o.get(key);
    if (!v)
      return missing(key, required);
    std::optional<int64_t> x = v->getAsInteger();
    if (!x)
      return error(key, "expected an integer");
    if (*x < minimum)
      return error(key,
                   ("expected an integer of at least " + Twine(minimum)).str());
    if (bounded && *x > kMaxDimSize)
      return error(key, "expected at most 2^31 - 1, the largest size attn "
                        "takes");
    out = *x;
  }
  static bool isRuntime(const json::Value *v) {
    return v->getAsString() == StringRef(kRuntime);
  }
  void mixed(StringRef key) {
    error(key, "give scale, softcap and window extents all as numbers or all "
               "as \"runtime\"");
  }
  void missing(StringRef key, bool required) {
    if (required)
      error(key, "missing");
  }
  void error(StringRef key, StringRef what) {
    if (!firstError.empty())
      return;
    firstError = ("'" + key + "': " + what).str();
  }

  const json::Object &o;
  std::string firstError;
};
} // namespace

static std::optional<AttentionKernelKind> symbolizeKernelKind(StringRef s) {
  return llvm::StringSwitch<std::optional<AttentionKernelKind>>(s)
      .Case("auto", AttentionKernelKind::Auto)
      .Case("baseline", AttentionKernelKind::Baseline)
      .Case("mma", AttentionKernelKind::Mma)
      .Case("wgmma", AttentionKernelKind::Wgmma)
      .Default(std::nullopt);
}

static void read(SpecReader &r, AttentionSpec &s, const json::Object &o) {
  r.scalar("dtype", s.dtype);
  if (o.get("out_dtype")) {
    ScalarType out = s.dtype;
    r.scalar("out_dtype", out);
    if (out != s.dtype)
      s.outDtype = out;
  }
  r.enumeration<DescaleMode>("descale", s.descale, symbolizeDescaleMode,
                             /*required=*/false);
  r.integer("head_dim", s.headDim);
  s.valueHeadDim = s.headDim;
  r.integer("value_head_dim", s.valueHeadDim, /*required=*/false);
  r.enumeration<Layout>(
      "layout", s.layout, [](StringRef v) { return symbolizeLayout(v); },
      /*required=*/false);
  r.values(s.mask, s.scale, s.softcap, s.runtimeValues);
  bool bias = false;
  r.boolean("bias", bias);
  if (bias) {
    ScalarType t = s.dtype;
    r.scalar("bias_dtype", t, /*required=*/false);
    s.bias = t;
    if (const json::Array *a = o.getArray("bias_broadcast"))
      for (auto [i, x] : llvm::enumerate(*a))
        if (i < 4)
          s.biasBroadcast[i] = x.getAsBoolean().value_or(false);
  }
  r.sinks(s.sinks);
  r.boolean("lse", s.lse);
  r.enumeration<AttentionKernelKind>("kernel", s.kernel, symbolizeKernelKind,
                                     /*required=*/false);
  r.integer("block_q", s.blockQ, /*required=*/false, /*minimum=*/0);
  r.integer("block_kv", s.blockKV, /*required=*/false, /*minimum=*/0);
  r.prefer(s.prefer, {"Sk", "Sq"});
  r.boolean("persistent", s.persistent);
}

static void read(SpecReader &r, AttentionGradSpec &s, const json::Object &o) {
  read(r, s.forward, o);
  s.forward.lse = false;
  // "mma" and "wgmma" pin the dK/dV kernel (mma.sync, or the sm_90a wgmma
  // body); any other kind leaves the choice to the kernel option and chip.
  if (s.forward.kernel != AttentionKernelKind::Mma &&
      s.forward.kernel != AttentionKernelKind::Wgmma)
    s.forward.kernel = AttentionKernelKind::Auto;
  s.forward.blockQ = s.forward.blockKV = 0;
  s.forward.prefer.clear();
  s.forward.persistent = false;
  r.boolean("deterministic", s.deterministic);
  // "dq_reduce": how the fused dQ's shares are added ("bulk" or "atomic").
  r.enumeration<bool>(
      "dq_reduce", s.dqAtomics,
      [](StringRef v) -> std::optional<bool> {
        if (v == "bulk" || v == "atomic")
          return v == "atomic";
        return std::nullopt;
      },
      /*required=*/false);
  // It only says something about the fused dQ, which the deterministic
  // backward does not have: ignored there, as the JSON of such a spec shows.
  if (s.deterministic)
    s.dqAtomics = false;
}

static void read(SpecReader &r, PagedAttentionSpec &s, const json::Object &o) {
  r.scalar("dtype", s.dtype);
  r.integer("head_dim", s.headDim);
  s.valueHeadDim = s.headDim;
  r.integer("value_head_dim", s.valueHeadDim, /*required=*/false);
  r.integer("page_size", s.pageSize);
  r.enumeration<CacheLayout>(
      "cache_layout", s.cacheLayout,
      [](StringRef v) { return symbolizeCacheLayout(v); }, /*required=*/false);
  r.scalar("table_dtype", s.tableDtype, /*required=*/false);
  r.scalar("lens_dtype", s.lensDtype, /*required=*/false);
  r.values(s.mask, s.scale, s.softcap, s.runtimeValues);
  bool prefix = false;
  r.enumeration<bool>(
      "values", prefix,
      [](StringRef v) -> std::optional<bool> {
        if (v == "key_prefix")
          return true;
        if (v == "separate")
          return false;
        return std::nullopt;
      },
      /*required=*/false);
  s.valuesArePrefixOfKeys = prefix;
  r.sinks(s.sinks);
  r.boolean("lse", s.lse);
}

static void read(SpecReader &r, GatedDeltaSpec &s, const json::Object &) {
  r.scalar("dtype", s.dtype);
  r.integer("key_head_dim", s.keyHeadDim);
  s.valueHeadDim = s.keyHeadDim;
  r.integer("value_head_dim", s.valueHeadDim, /*required=*/false);
  r.integer("chunk", s.chunk);
  r.enumeration<GateKind>(
      "gate_kind", s.gateKind, [](StringRef v) { return symbolizeGateKind(v); },
      /*required=*/false);
  r.scalar("gate_dtype", s.gateDtype, /*required=*/false);
  r.scalar("beta_dtype", s.betaDtype, /*required=*/false);
  r.boolean("qk_l2norm", s.qkL2norm);
  r.number("scale", s.scale);
  r.boolean("initial_state", s.initialState);
}

static void read(SpecReader &r, NsaSelectSpec &s, const json::Object &) {
  r.scalar("dtype", s.dtype);
  r.integer("head_dim", s.headDim);
  s.valueHeadDim = s.headDim;
  r.integer("value_head_dim", s.valueHeadDim, /*required=*/false);
  r.integer("q_heads", s.queryHeads);
  r.integer("kv_heads", s.kvHeads);
  r.integer("cmp_block", s.cmpBlock);
  r.integer("cmp_stride", s.cmpStride);
  r.integer("sel_block", s.selBlock);
  r.integer("num_selected", s.numSelected);
  r.integer("initial_blocks", s.initialBlocks, /*required=*/true,
            /*minimum=*/0);
  r.integer("local_blocks", s.localBlocks, /*required=*/true, /*minimum=*/0);
  r.number("scale", s.scale);
  // Each KV head serves a whole group of query heads (the op verifier's
  // rule; found missing here by fuzz_specs.py, seed 4950).
  if (r.ok() && s.queryHeads % s.kvHeads != 0)
    r.invalid("q_heads",
              "expected a multiple of kv_heads (" + Twine(s.kvHeads) + ")");
}

static void read(SpecReader &r, IndexerSpec &s, const json::Object &) {
  r.scalar("dtype", s.dtype);
  r.integer("heads", s.heads);
  r.integer("head_dim", s.headDim);
  r.scalar("weights_dtype", s.weightsDtype, /*required=*/false);
  r.mask(s.mask);
}

template <typename T>
static std::optional<KernelSpec> readSpec(const json::Object &o,
                                          std::string *why) {
  T spec;
  SpecReader r(o);
  read(r, spec, o);
  if (!r.ok()) {
    if (why)
      *why = r.getError();
    return std::nullopt;
  }
  return KernelSpec(spec);
}

std::optional<KernelSpec> mlir::attn::parseKernelSpec(const json::Value &value,
                                                      std::string *why) {
  auto fail = [&](const Twine &msg) -> std::optional<KernelSpec> {
    if (why)
      *why = msg.str();
    return std::nullopt;
  };
  const json::Object *o = value.getAsObject();
  if (!o)
    return fail("a kernel spec is a JSON object");
  if (std::optional<int64_t> v = o->getInteger("version"))
    if (*v != kKernelSpecVersion)
      return fail("spec version " + Twine(*v) + ", this compiler reads " +
                  Twine(kKernelSpecVersion));
  // "op" defaults to dense attention, whose manifests' variants predate it.
  StringRef op = o->getString("op").value_or("attention");
  if (op == "attention")
    return readSpec<AttentionSpec>(*o, why);
  if (op == "attention_grad")
    return readSpec<AttentionGradSpec>(*o, why);
  if (op == "paged_attention")
    return readSpec<PagedAttentionSpec>(*o, why);
  if (op == "gated_delta_rule")
    return readSpec<GatedDeltaSpec>(*o, why);
  if (op == "nsa")
    return readSpec<NsaSelectSpec>(*o, why);
  if (op == "lightning_indexer")
    return readSpec<IndexerSpec>(*o, why);
  return fail("unknown kernel spec op '" + op +
              "' (attention, attention_grad, paged_attention, "
              "gated_delta_rule, nsa, lightning_indexer)");
}
