// RUN: attn-opt %s | FileCheck %s
// attn.attention_grad round-trips, in the custom and the generic form.
// RUN: attn-opt %s | attn-opt | FileCheck %s
// RUN: attn-opt %s --mlir-print-op-generic | attn-opt | FileCheck %s

// CHECK-LABEL: func.func @mha_backward
// CHECK: %dq, %dk, %dv = attn.attention_grad %arg0, %arg1, %arg2, %arg3, %arg4, %arg5 :
// CHECK-SAME: -> (tensor<2x4x64x32xbf16>, tensor<2x4x96x32xbf16>, tensor<2x4x96x32xbf16>)
func.func @mha_backward(%q: tensor<2x4x64x32xbf16>, %k: tensor<2x4x96x32xbf16>,
                        %v: tensor<2x4x96x32xbf16>, %o: tensor<2x4x64x32xbf16>,
                        %do: tensor<2x4x64x32xbf16>, %lse: tensor<2x4x64xf32>)
    -> (tensor<2x4x64x32xbf16>, tensor<2x4x96x32xbf16>, tensor<2x4x96x32xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do, %lse
      : (tensor<2x4x64x32xbf16>, tensor<2x4x96x32xbf16>, tensor<2x4x96x32xbf16>,
         tensor<2x4x64x32xbf16>, tensor<2x4x64x32xbf16>, tensor<2x4x64xf32>)
      -> (tensor<2x4x64x32xbf16>, tensor<2x4x96x32xbf16>, tensor<2x4x96x32xbf16>)
  return %dq, %dk, %dv : tensor<2x4x64x32xbf16>, tensor<2x4x96x32xbf16>, tensor<2x4x96x32xbf16>
}

// Every variant attribute, GQA 8/2, D != Dv, bshd, bias and sinks (whose
// gradient is the fourth result).
// CHECK-LABEL: func.func @gqa_everything
// CHECK: %dq, %dk, %dv, %dsinks = attn.attention_grad %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} bias(%{{.+}}) sinks(%{{.+}}) layout = bshd mask = <window, left = 15, right = 0> scale = 1.250000e-01 softcap = 3.000000e+01 :
// CHECK-SAME: -> (tensor<1x16x8x48xf16>, tensor<1x16x2x48xf16>, tensor<1x16x2x32xf16>, tensor<8xf32>)
func.func @gqa_everything(%q: tensor<1x16x8x48xf16>, %k: tensor<1x16x2x48xf16>,
                          %v: tensor<1x16x2x32xf16>, %o: tensor<1x16x8x32xf16>,
                          %do: tensor<1x16x8x32xf16>, %lse: tensor<1x8x16xf32>,
                          %bias: tensor<1x8x1x16xf32>, %sinks: tensor<8xf32>)
    -> tensor<8xf32> {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %do, %lse
      bias(%bias) sinks(%sinks) layout = bshd mask = <window, left = 15, right = 0>
      scale = 0.125 softcap = 30.0
      : (tensor<1x16x8x48xf16>, tensor<1x16x2x48xf16>, tensor<1x16x2x32xf16>,
         tensor<1x16x8x32xf16>, tensor<1x16x8x32xf16>, tensor<1x8x16xf32>,
         tensor<1x8x1x16xf32>, tensor<8xf32>)
      -> (tensor<1x16x8x48xf16>, tensor<1x16x2x48xf16>, tensor<1x16x2x32xf16>, tensor<8xf32>)
  return %ds : tensor<8xf32>
}
