//===- KernelSpec.h - what a GPU kernel computes ----------------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// A kernel spec describes what a family of GPU kernels computes, with no
// reference to the op that asked for it: attn ops state the specs they need
// (KernelSpecOpInterface), attn-lower-to-gpu and `attn-compile --spec`
// generate kernels from specs only, and the same JSON object is the
// "variant" of each kernel's manifest and the key python/attn/gpu.py looks
// kernels up by. docs/kernel-spec.md documents the schema.
//
// Every field of a spec is compiled into its kernels, except the values a
// dense or paged spec leaves to run time (`runtimeValues`: scale, softcap
// and window extents); what a kernel takes at run time (those values,
// batch, head counts, sequence lengths, pages, splits) is in the manifest's
// parameters.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_IR_KERNELSPEC_H
#define ATTN_IR_KERNELSPEC_H

#include "attn/IR/AttnDialect.h"

#include "mlir/IR/Types.h"
#include "llvm/Support/JSON.h"

#include <array>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mlir {
class MLIRContext;
namespace attn {

/// The schema version: bumped whenever a field changes meaning, so that
/// caches and bundle directories of older compilers are not matched.
/// Version 2: scale, softcap and window extents may be "runtime".
inline constexpr int64_t kKernelSpecVersion = 2;

/// The element types kernels take and produce. F8E4M3 is MLIR's f8E4M3FN
/// (FP8 attention's inputs; the sm_90a dense kernel takes it).
enum class ScalarType { F16, BF16, F32, I32, I64, F8E4M3 };

/// `f16`, `bf16`, `f32`, `i32`, `i64`: the MLIR spelling; `f8e4m3` for
/// f8E4M3FN.
llvm::StringRef stringifyScalarType(ScalarType t);
std::optional<ScalarType> symbolizeScalarType(llvm::StringRef s);
/// The scalar type of `t`, if kernels take it.
std::optional<ScalarType> getScalarType(Type t);
Type getType(MLIRContext *ctx, ScalarType t);

/// A structural mask (#attn.mask): the kind and, for windows, its extents.
struct MaskSpec {
  MaskKind kind = MaskKind::None;
  int64_t left = 0, right = 0;

  static MaskSpec get(MaskAttr mask);
  MaskAttr getAttr(MLIRContext *ctx) const;
  bool isWindow() const { return kind == MaskKind::Window; }
  bool operator==(const MaskSpec &o) const {
    return kind == o.kind && left == o.left && right == o.right;
  }
};

/// How FP8 attention's descale factors are given (attn.attention's
/// `descale` operands): none (inputs are not FP8), one per tensor, or one
/// per batch and KV head ([B, Hkv], FlashAttention-3's).
enum class DescaleMode { None, Tensor, Head };
/// `none`, `tensor`, `head`.
llvm::StringRef stringifyDescaleMode(DescaleMode m);
std::optional<DescaleMode> symbolizeDescaleMode(llvm::StringRef s);

/// A half-open range [lo, hi) of one of a kernel's run-time sizes (a size
/// name of its manifest: "Sq" or "Sk" for dense attention); no `hi`: up
/// from `lo`.
struct SizeRange {
  std::string size;
  int64_t lo = 0;
  std::optional<int64_t> hi;

  bool contains(int64_t x) const { return x >= lo && (!hi || x < *hi); }
  bool operator==(const SizeRange &o) const {
    return size == o.size && lo == o.lo && hi == o.hi;
  }
};

/// A spec's "prefer" as JSON: {"<size>": [lo, hi or null], ...}.
llvm::json::Object preferToJSON(llvm::ArrayRef<SizeRange> prefer);

/// Which body a dense attention kernel gets. `Auto` is resolved by the
/// lowering for its chip (tensor cores wherever the variant allows them).
enum class AttentionKernelKind { Auto, Baseline, Mma, Wgmma };

/// Dense softmax attention (attn.attention; NSA's window branch): one
/// kernel, grid (query blocks, Hq, B).
struct AttentionSpec {
  /// The element type of Q, K and V (and of O, unless `outDtype` is set).
  ScalarType dtype = ScalarType::F16;
  /// The output's element type where it is not `dtype` (FP8 inputs: bf16,
  /// f16 or f32).
  std::optional<ScalarType> outDtype;
  /// FP8 inputs' descale factors (DescaleMode::None for other inputs).
  DescaleMode descale = DescaleMode::None;
  int64_t headDim = 0, valueHeadDim = 0;
  Layout layout = Layout::BHSD;
  MaskSpec mask;
  /// Rounded to f32, as the op's attribute is.
  double scale = 0;
  std::optional<double> softcap;
  /// The scale, the softcap's value and the window's extents are kernel
  /// arguments (the fields above hold 0 for them; the softcap's presence
  /// and the mask's kind stay compiled in): one kernel serves every value.
  bool runtimeValues = false;
  /// The bias' element type and which of its [B, Hq, Sq, Sk] dims are 1.
  std::optional<ScalarType> bias;
  std::array<bool, 4> biasBroadcast = {false, false, false, false};
  std::optional<ScalarType> sinks;
  bool lse = false;
  AttentionKernelKind kernel = AttentionKernelKind::Auto;
  /// Query rows per block and keys per step of the mma.sync kernel; 0 for
  /// the variant's default.
  int64_t blockQ = 0, blockKV = 0;
  /// Where the kernel is one of its variant's length alternatives
  /// (docs/design-length-choice.md): the sizes at which launchers prefer it
  /// to the variant's kernel without `prefer`, all ranges holding. Like the
  /// block sizes, it is tiling: what the kernel computes is the same.
  std::vector<SizeRange> prefer;
  /// The sm_90a kernel's persistent schedule: a grid of at most one block
  /// per resident slot (the launcher's SM count), each block walking query
  /// tiles, whose next tile's Q and first K/V tiles load while the current
  /// one finishes (WgmmaKernel.cpp). Tiling too: the same result.
  bool persistent = false;
};

/// The backward of dense attention (attn.attention_grad): the dQ kernel
/// (which also writes each row's Delta = rowsum(dO ⊙ O) to a workspace),
/// then the dK/dV kernel and, with sinks, the sink-gradient kernel; one
/// launch order, given by the manifests' "step".
struct AttentionGradSpec {
  /// The forward's variant; its `lse` and block sizes are unused (the
  /// backward reads the LSE; its kernels are its own). Its `kernel` is Auto
  /// or Wgmma: the opt-in sm_90a dK/dV kernel, which Auto never picks.
  AttentionSpec forward;
  /// Whether every gradient is summed in a fixed order (no atomics). False
  /// lets the sm_90a kernels fuse dQ into the dK/dV kernel, which adds each
  /// key block's share of dQ into an f32 workspace with atomics
  /// (FlashAttention-3's backward); variants that kernel does not take run
  /// the deterministic kernels under this spec's names.
  bool deterministic = true;
  /// With `deterministic` false: the fused dQ's shares added element by
  /// element with f32 atomics by the consumers ("dq_reduce": "atomic")
  /// instead of by bulk reductions of a producer thread ("bulk", the
  /// default). A tuning choice, as the forward's block sizes are.
  bool dqAtomics = false;
};

/// Paged decode (attn.paged_attention; sparse attention's compacted lists):
/// a split kernel (per row-tile count for latent caches) and a combine
/// kernel.
struct PagedAttentionSpec {
  ScalarType dtype = ScalarType::F16;
  int64_t headDim = 0, valueHeadDim = 0, pageSize = 0;
  CacheLayout cacheLayout = CacheLayout::NHD;
  ScalarType tableDtype = ScalarType::I32, lensDtype = ScalarType::I32;
  MaskSpec mask;
  double scale = 0;
  std::optional<double> softcap;
  /// As AttentionSpec::runtimeValues.
  bool runtimeValues = false;
  /// The values are the first Dv columns of the key rows (MLA's latent
  /// cache): the latent split kernels, which read each row once.
  bool valuesArePrefixOfKeys = false;
  std::optional<ScalarType> sinks;
  bool lse = false;
};

/// The longest chunk the gated delta kernels keep in shared memory.
inline constexpr int64_t kMaxGatedDeltaChunk = 32;

/// The chunked gated delta rule (attn.gated_delta_rule): the chunk, state
/// and recurrent kernels.
struct GatedDeltaSpec {
  ScalarType dtype = ScalarType::F32;
  int64_t keyHeadDim = 0, valueHeadDim = 0;
  /// The kernels' chunk length (at most kMaxGatedDeltaChunk; the op's own
  /// if smaller).
  int64_t chunk = 0;
  GateKind gateKind = GateKind::Head;
  ScalarType gateDtype = ScalarType::F32, betaDtype = ScalarType::F32;
  bool qkL2norm = false;
  double scale = 0;
  bool initialState = false;
};

/// NSA's block selection (attn.nsa; its branches run on paged and attention
/// kernels of their own specs).
struct NsaSelectSpec {
  ScalarType dtype = ScalarType::F16;
  /// Dv is the branches' (the selected branch's kernel, nsa.attend, reads
  /// values); the selection reads keys only.
  int64_t headDim = 0, valueHeadDim = 0, queryHeads = 0, kvHeads = 0;
  int64_t cmpBlock = 0, cmpStride = 0, selBlock = 0, numSelected = 0;
  int64_t initialBlocks = 0, localBlocks = 0;
  double scale = 0;
};

/// DSA's lightning indexer scores (attn.lightning_indexer).
struct IndexerSpec {
  ScalarType dtype = ScalarType::F16;
  int64_t heads = 0, headDim = 0;
  ScalarType weightsDtype = ScalarType::F32;
  MaskSpec mask;
};

using KernelSpec =
    std::variant<AttentionSpec, AttentionGradSpec, PagedAttentionSpec,
                 GatedDeltaSpec, NsaSelectSpec, IndexerSpec>;

/// The spec's "op" key: attention, attention_grad, paged_attention,
/// gated_delta_rule, nsa, lightning_indexer.
llvm::StringRef getKernelSpecOp(const KernelSpec &spec);

/// The spec as JSON, with "op" and "version": the keys of docs/kernel-spec.md.
llvm::json::Object toJSON(const KernelSpec &spec);

/// Reads a spec; a missing key takes its default where the schema gives one.
/// Fails, with the reason and its JSON path in `why`, on an unknown "op", a
/// key of the wrong type or an unknown enum spelling. The values are
/// checked by the kernels' own eligibility tests, not here.
std::optional<KernelSpec> parseKernelSpec(const llvm::json::Value &json,
                                          std::string *why);

/// `spec` with its scale, softcap value and window extents left to run time
/// (`runtimeValues`, the values zeroed), where its family takes them so:
/// dense and paged attention with a scale that is not negative (the wgmma
/// kernel takes the row maximum of unscaled scores, which only a
/// non-negative scale preserves). Other specs are returned as they are.
KernelSpec withRuntimeValues(const KernelSpec &spec);

/// The spec's scale, softcap and window extents as a kernel that leaves
/// them to run time takes them (attn-lower-to-gpu's host launches pass
/// these): null where the spec has no such value.
struct KernelSpecValues {
  std::optional<double> scale, softcap;
  std::optional<int64_t> windowLeft, windowRight;
};
KernelSpecValues getKernelSpecValues(const KernelSpec &spec);

/// Whether `spec` takes or produces f8E4M3FN data, for which there is no
/// GPU kernel yet.
bool usesFp8(const KernelSpec &spec);

/// Rounds `x` to the nearest f32: scales and softcaps are f32 attributes.
double roundToF32(double x);

} // namespace attn
} // namespace mlir

#endif // ATTN_IR_KERNELSPEC_H
