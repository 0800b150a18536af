//===- InitAttn.h - register attn dialects and passes -----------*- C++ -*-===//
//
// Part of attn, under the Apache License v2.0 with LLVM Exceptions.
// See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
// One place that registers everything attn provides, used by attn-opt, the
// mlir-opt plugin and embedding compilers.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_INITATTN_H
#define ATTN_INITATTN_H

#include "attn/Conversion/Passes.h"
#include "attn/Conversion/ShardToMPI.h"
#include "attn/IR/AttnDialect.h"
#include "attn/Pipelines/Pipelines.h"
#include "attn/Transforms/Passes.h"
#include "attn/Transforms/ShardingInterfaceImpl.h"

#include "mlir/IR/DialectRegistry.h"

namespace mlir {
namespace attn {

/// Adds the attn dialect (and the dialects its passes create) to `registry`,
/// with the shard dialect's ShardingInterface for attn.attention and the
/// memory effects of the mpi ops the attn-to-cpu pipeline's `mpi` option
/// bufferizes.
inline void registerAllAttnDialects(DialectRegistry &registry) {
  registry.insert<AttnDialect>();
  registerShardingInterfaceExternalModels(registry);
  registerMPIMemoryEffectModels(registry);
}

/// Registers attn's passes and pipelines with the global pass registry, so
/// that `--pass-pipeline` and textual pipelines can name them.
inline void registerAllAttnPasses() {
  // Idempotent: the plugin may call it from both entry points.
  static bool registered = false;
  if (registered)
    return;
  registered = true;
  registerAttnTransformsPasses();
  registerAttnConversionPasses();
  registerAttnPipelines();
}

} // namespace attn
} // namespace mlir

#endif // ATTN_INITATTN_H
