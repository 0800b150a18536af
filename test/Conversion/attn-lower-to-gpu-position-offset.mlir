// RUN: not attn-opt %s --attn-lower-to-gpu 2>&1 | FileCheck %s
// A position offset (the mask of one block of a sharded sequence) has no GPU
// kernel yet: a located error, never a kernel that ignores it.

// CHECK: attn-lower-to-gpu-position-offset.mlir:[[@LINE+2]]:8: error: 'attn.attention' op has a position_offset, which no GPU kernel takes yet (attn-to-cpu runs it)
func.func @sharded_block(%q: tensor<1x2x32x64xbf16>, %k: tensor<1x2x64x64xbf16>, %v: tensor<1x2x64x64xbf16>, %off: index) -> tensor<1x2x32x64xbf16> {
  %o = attn.attention %q, %k, %v position_offset(%off) mask = <causal> : (tensor<1x2x32x64xbf16>, tensor<1x2x64x64xbf16>, tensor<1x2x64x64xbf16>, index) -> tensor<1x2x32x64xbf16>
  return %o : tensor<1x2x32x64xbf16>
}
