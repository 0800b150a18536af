// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu 2>&1 | FileCheck %s

// Variants the gated delta kernels do not take: a located diagnostic each.

// A chunk of 32 tokens at head dim 512 with per-channel gates does not fit
// shared memory.
// CHECK: attn-lower-to-gpu-gated-delta-invalid.mlir:[[@LINE+2]]:12: error: 'attn.gated_delta_rule' op the gated delta GPU kernels keep a chunk in shared memory: head dims 512 / 512 with chunks of 32 need 359424 bytes (at most 232448)
func.func @too_wide(%q: tensor<1x8x1x512xbf16>, %k: tensor<1x8x1x512xbf16>, %v: tensor<1x8x1x512xbf16>, %g: tensor<1x8x1x512xf32>, %beta: tensor<1x8x1xf32>) -> (tensor<1x8x1x512xbf16>, tensor<1x1x512x512xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta gate_kind = channel : (tensor<1x8x1x512xbf16>, tensor<1x8x1x512xbf16>, tensor<1x8x1x512xbf16>, tensor<1x8x1x512xf32>, tensor<1x8x1xf32>) -> (tensor<1x8x1x512xbf16>, tensor<1x1x512x512xf32>)
  return %o, %s : tensor<1x8x1x512xbf16>, tensor<1x1x512x512xf32>
}

// -----

// Rows of 66 elements are not 16-byte aligned.
// CHECK: attn-lower-to-gpu-gated-delta-invalid.mlir:[[@LINE+2]]:12: error: 'attn.gated_delta_rule' op the gated delta GPU kernels need head dims that are multiples of 4 (16-byte rows); got 66 / 64
func.func @odd(%q: tensor<1x8x1x66xbf16>, %k: tensor<1x8x1x66xbf16>, %v: tensor<1x8x1x64xbf16>, %g: tensor<1x8x1xf32>, %beta: tensor<1x8x1xf32>) -> (tensor<1x8x1x64xbf16>, tensor<1x1x66x64xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta : (tensor<1x8x1x66xbf16>, tensor<1x8x1x66xbf16>, tensor<1x8x1x64xbf16>, tensor<1x8x1xf32>, tensor<1x8x1xf32>) -> (tensor<1x8x1x64xbf16>, tensor<1x1x66x64xf32>)
  return %o, %s : tensor<1x8x1x64xbf16>, tensor<1x1x66x64xf32>
}
