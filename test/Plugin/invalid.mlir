// The verifier runs inside stock mlir-opt too.
// RUN: mlir-opt %s --load-dialect-plugin=%attn_plugin -verify-diagnostics

func.func @group_not_divisible(%q: tensor<1x32x8x64xf16>, %k: tensor<1x6x8x64xf16>) {
  // expected-error @+1 {{query head count (32) must be a multiple of the key/value head count (6)}}
  %o = attn.attention %q, %k, %k : (tensor<1x32x8x64xf16>, tensor<1x6x8x64xf16>, tensor<1x6x8x64xf16>) -> tensor<1x32x8x64xf16>
  return
}
