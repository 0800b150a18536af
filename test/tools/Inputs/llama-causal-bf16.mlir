func.func @attention(%q: tensor<1x32x128x128xbf16>, %k: tensor<1x8x128x128xbf16>, %v: tensor<1x8x128x128xbf16>) -> tensor<1x32x128x128xbf16> {
  %o = attn.attention %q, %k, %v mask = <causal> : (tensor<1x32x128x128xbf16>, tensor<1x8x128x128xbf16>, tensor<1x8x128x128xbf16>) -> tensor<1x32x128x128xbf16>
  return %o : tensor<1x32x128x128xbf16>
}
