// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s

// The sparse ops have no GPU kernels yet: a located error each, not a
// silent pass-through (their reference lowering is attn-decompose-sparse).

// CHECK: attn-lower-to-gpu-sparse-unsupported.mlir:[[@LINE+2]]:8: error: 'attn.sparse_attention' op has no GPU kernel yet; attn-decompose-sparse gives its reference lowering (CPU pipeline)
func.func @sparse(%q: tensor<1x64x16x128xbf16>, %k: tensor<1x512x1x128xbf16>, %v: tensor<1x512x1x128xbf16>, %i: tensor<1x64x1x8xi32>) -> tensor<1x64x16x128xbf16> {
  %o = attn.sparse_attention %q, %k, %v, %i block_size = 64 mask = <causal> : (tensor<1x64x16x128xbf16>, tensor<1x512x1x128xbf16>, tensor<1x512x1x128xbf16>, tensor<1x64x1x8xi32>) -> tensor<1x64x16x128xbf16>
  return %o : tensor<1x64x16x128xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-unsupported.mlir:[[@LINE+2]]:8: error: 'attn.lightning_indexer' op has no GPU kernel yet
func.func @indexer(%q: tensor<1x64x64x128xbf16>, %k: tensor<1x512x128xbf16>, %w: tensor<1x64x64xf32>) -> tensor<1x64x32xi32> {
  %t = attn.lightning_indexer %q, %k, %w top_k = 32 mask = <causal> : (tensor<1x64x64x128xbf16>, tensor<1x512x128xbf16>, tensor<1x64x64xf32>) -> tensor<1x64x32xi32>
  return %t : tensor<1x64x32xi32>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-unsupported.mlir:[[@LINE+2]]:8: error: 'attn.nsa' op has no GPU kernel yet
func.func @nsa(%q: tensor<1x40x4x16xf32>, %k: tensor<1x40x2x16xf32>, %v: tensor<1x40x2x8xf32>, %kc: tensor<1x9x2x16xf32>, %vc: tensor<1x9x2x8xf32>, %g: tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x8xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x8xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x8xf32>
  return %o : tensor<1x40x4x8xf32>
}
