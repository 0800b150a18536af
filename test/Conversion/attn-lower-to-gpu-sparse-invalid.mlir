// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s

// attn.sparse_attention runs on the paged kernels (with causal or no mask),
// and the NSA and indexer kernels take only what they were built for: a
// located error each, never a pass-through or a wrong kernel.

// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.sparse_attention' op runs on the paged kernels with causal or no mask (the host folds causality into each row's length); a window mask has no GPU kernel
func.func @sparse_window(%q: tensor<1x64x16x128xbf16>, %k: tensor<1x512x1x128xbf16>, %v: tensor<1x512x1x128xbf16>, %i: tensor<1x64x1x8xi32>) -> tensor<1x64x16x128xbf16> {
  %o = attn.sparse_attention %q, %k, %v, %i block_size = 64 mask = <window, left = 127, right = 0> : (tensor<1x64x16x128xbf16>, tensor<1x512x1x128xbf16>, tensor<1x512x1x128xbf16>, tensor<1x64x1x8xi32>) -> tensor<1x64x16x128xbf16>
  return %o : tensor<1x64x16x128xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.sparse_attention' op runs on the paged kernels: the paged GPU kernel takes f16 or bf16 (got f32)
func.func @sparse_f32(%q: tensor<1x64x16x128xf32>, %k: tensor<1x512x1x128xf32>, %v: tensor<1x512x1x128xf32>, %i: tensor<1x64x1x8xi32>) -> tensor<1x64x16x128xf32> {
  %o = attn.sparse_attention %q, %k, %v, %i block_size = 64 : (tensor<1x64x16x128xf32>, tensor<1x512x1x128xf32>, tensor<1x512x1x128xf32>, tensor<1x64x1x8xi32>) -> tensor<1x64x16x128xf32>
  return %o : tensor<1x64x16x128xf32>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.lightning_indexer' op the indexer GPU kernel takes f16 or bf16 (got f32)
func.func @indexer_f32(%q: tensor<1x64x64x128xf32>, %k: tensor<1x512x128xf32>, %w: tensor<1x64x64xf32>) -> tensor<1x64x32xi32> {
  %t = attn.lightning_indexer %q, %k, %w top_k = 32 mask = <causal> : (tensor<1x64x64x128xf32>, tensor<1x512x128xf32>, tensor<1x64x64xf32>) -> tensor<1x64x32xi32>
  return %t : tensor<1x64x32xi32>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.lightning_indexer' op the indexer GPU kernel needs static head counts and dims, positive multiples of 16, at most 128 heads of at most 256 (got 8 x 128)
func.func @indexer_heads(%q: tensor<1x64x8x128xbf16>, %k: tensor<1x512x128xbf16>, %w: tensor<1x64x8xf32>) -> tensor<1x64x32xi32> {
  %t = attn.lightning_indexer %q, %k, %w top_k = 32 : (tensor<1x64x8x128xbf16>, tensor<1x512x128xbf16>, tensor<1x64x8xf32>) -> tensor<1x64x32xi32>
  return %t : tensor<1x64x32xi32>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.nsa' op the NSA GPU kernels take f16 or bf16 (got f32)
func.func @nsa_f32(%q: tensor<1x40x4x16xf32>, %k: tensor<1x40x2x16xf32>, %v: tensor<1x40x2x16xf32>, %kc: tensor<1x9x2x16xf32>, %vc: tensor<1x9x2x16xf32>, %g: tensor<1x40x4x3xf32>) -> tensor<1x40x4x16xf32> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 8 cmp_stride = 4 sel_block = 8 num_selected = 3 window = 6 : (tensor<1x40x4x16xf32>, tensor<1x40x2x16xf32>, tensor<1x40x2x16xf32>, tensor<1x9x2x16xf32>, tensor<1x9x2x16xf32>, tensor<1x40x4x3xf32>) -> tensor<1x40x4x16xf32>
  return %o : tensor<1x40x4x16xf32>
}

// -----

// Value columns past 128 that are not whole 128-column chunks, with D != Dv:
// no tiling of the branches' kernels takes them (the paper's 192 / 128 is
// taken, attn-lower-to-gpu-sparse.mlir).
// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.nsa' op the NSA GPU kernels need head dims that are multiples of 16 up to 256, with D = Dv or Dv up to 128 or a multiple of 128 (got 256 / 192)
func.func @nsa_d256_dv192(%q: tensor<1x64x64x256xbf16>, %k: tensor<1x64x4x256xbf16>, %v: tensor<1x64x4x192xbf16>, %kc: tensor<1x3x4x256xbf16>, %vc: tensor<1x3x4x192xbf16>, %g: tensor<1x64x64x3xbf16>) -> tensor<1x64x64x192xbf16> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 16 window = 512 : (tensor<1x64x64x256xbf16>, tensor<1x64x4x256xbf16>, tensor<1x64x4x192xbf16>, tensor<1x3x4x256xbf16>, tensor<1x3x4x192xbf16>, tensor<1x64x64x3xbf16>) -> tensor<1x64x64x192xbf16>
  return %o : tensor<1x64x64x192xbf16>
}

// -----

// CHECK: attn-lower-to-gpu-sparse-invalid.mlir:[[@LINE+2]]:8: error: 'attn.nsa' op the NSA block selection packs a KV head's query heads into one 16-row tile: at most 16 per KV head (got 32)
func.func @nsa_group32(%q: tensor<1x64x32x64xbf16>, %k: tensor<1x64x1x64xbf16>, %v: tensor<1x64x1x64xbf16>, %kc: tensor<1x3x1x64xbf16>, %vc: tensor<1x3x1x64xbf16>, %g: tensor<1x64x32x3xbf16>) -> tensor<1x64x32x64xbf16> {
  %o = attn.nsa %q, %k, %v, %kc, %vc, %g cmp_block = 32 cmp_stride = 16 sel_block = 64 num_selected = 16 window = 512 : (tensor<1x64x32x64xbf16>, tensor<1x64x1x64xbf16>, tensor<1x64x1x64xbf16>, tensor<1x3x1x64xbf16>, tensor<1x3x1x64xbf16>, tensor<1x64x32x3xbf16>) -> tensor<1x64x32x64xbf16>
  return %o : tensor<1x64x32x64xbf16>
}
