// Generic form whose key does not match the query head dim.
func.func @f(%q: tensor<1x4x8x32xf16>, %k: tensor<1x4x8x64xf16>) {
  // The verifier must diagnose, not crash.
  %o = "attn.attention"(%q, %k, %k) <{operandSegmentSizes = array<i32: 1, 1, 1, 0, 0, 0, 0>}> : (tensor<1x4x8x32xf16>, tensor<1x4x8x64xf16>, tensor<1x4x8x64xf16>) -> tensor<1x4x8x32xf16>
  return
}
