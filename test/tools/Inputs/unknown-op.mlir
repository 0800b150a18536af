// An op the attn dialect does not define.
func.func @f(%q: tensor<1x4x8x32xf16>) {
  %o = attn.flash %q : tensor<1x4x8x32xf16>
  return
}
