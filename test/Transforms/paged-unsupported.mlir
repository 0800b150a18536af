// RUN: not attn-opt %s --attn-tile 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not attn-opt %s --attn-lower-to-gpu 2>&1 | FileCheck %s --check-prefix=GPU
// RUN: not attn-opt %s --attn-to-cpu 2>&1 | FileCheck %s --check-prefix=TILE

// Paged attention is verified and documented but not lowered yet: the passes
// say so at the op (not an unbufferized-op error, not a crash).
// TILE: paged-unsupported.mlir:[[@LINE+3]]:8: error: 'attn.paged_attention' op is not supported by attn-tile yet (only attn.attention is tiled)
// GPU: paged-unsupported.mlir:[[@LINE+2]]:8: error: 'attn.paged_attention' op is not supported by attn-lower-to-gpu yet (only attn.attention has GPU kernels)
func.func @decode(%q: tensor<2x1x8x64xf16>, %kc: tensor<10x16x2x64xf16>, %t: tensor<2x4xi32>, %l: tensor<2xi32>) -> tensor<2x1x8x64xf16> {
  %o = attn.paged_attention %q, %kc, %kc, %t, %l mask = <causal> : (tensor<2x1x8x64xf16>, tensor<10x16x2x64xf16>, tensor<10x16x2x64xf16>, tensor<2x4xi32>, tensor<2xi32>) -> tensor<2x1x8x64xf16>
  return %o : tensor<2x1x8x64xf16>
}
