// RUN: not attn-opt %s --attn-tile 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not attn-opt %s --pass-pipeline='builtin.module(attn-to-cpu)' 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not attn-opt %s --attn-lower-to-gpu 2>&1 | FileCheck %s --check-prefix=GPU

// attn.gated_delta_rule is in the dialect (verified, documented, with a
// float64 reference in python/attn/reference.py) but has no lowering yet:
// the passes say so at the op instead of failing later (not a crash, not an
// unbufferized-op error).
// TILE: gated-delta-unsupported.mlir:[[@LINE+3]]:12: error: 'attn.gated_delta_rule' op is not supported by attn-tile yet (only attn.attention is tiled)
// GPU: gated-delta-unsupported.mlir:[[@LINE+2]]:12: error: 'attn.gated_delta_rule' op is not supported by attn-lower-to-gpu yet (no GPU kernel for linear attention)
func.func @gdn(%q: tensor<1x8x2x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x4x8xf32>, %g: tensor<1x8x4xf32>, %b: tensor<1x8x4xf32>) -> (tensor<1x8x4x8xf32>, tensor<1x4x16x8xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %b : (tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4x8xf32>, tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> (tensor<1x8x4x8xf32>, tensor<1x4x16x8xf32>)
  return %o, %s : tensor<1x8x4x8xf32>, tensor<1x4x16x8xf32>
}
