// RUN: not attn-opt %s --attn-lower-to-gpu 2>&1 | FileCheck %s

// A chunk of 64 tokens at head dim 256 with per-channel gates does not fit
// shared memory: a located diagnostic.
// CHECK: attn-lower-to-gpu-gated-delta-invalid.mlir:[[@LINE+2]]:12: error: 'attn.gated_delta_rule' op the gated delta GPU kernels keep a chunk in shared memory: head dims 256 / 256 with chunks of 64 need 296448 bytes (at most 232448)
func.func @too_wide(%q: tensor<1x8x1x256xbf16>, %k: tensor<1x8x1x256xbf16>, %v: tensor<1x8x1x256xbf16>, %g: tensor<1x8x1x256xf32>, %beta: tensor<1x8x1xf32>) -> (tensor<1x8x1x256xbf16>, tensor<1x1x256x256xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta gate_kind = channel : (tensor<1x8x1x256xbf16>, tensor<1x8x1x256xbf16>, tensor<1x8x1x256xbf16>, tensor<1x8x1x256xf32>, tensor<1x8x1xf32>) -> (tensor<1x8x1x256xbf16>, tensor<1x1x256x256xf32>)
  return %o, %s : tensor<1x8x1x256xbf16>, tensor<1x1x256x256xf32>
}
