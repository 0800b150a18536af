// An attribute the attn dialect does not define.
func.func @f(%q: tensor<1x4x8x32xf16>) attributes {
  x = #attn.variant<gqa> } {
  return
}
