// attn.attention_grad's kernels are generated (attn-lower-to-gpu,
// attn-to-ptx), but no host code launches them yet: attn-to-llvm (and
// attn-lower-to-gpu with launch) refuse the op at the op, with a non-zero
// exit, instead of dropping it. (attn-to-cpu lowers it through attn-tile.)
// RUN: not attn-opt %s --attn-to-llvm 2>&1 | FileCheck %s
// RUN: not attn-opt %s --attn-lower-to-gpu="chip=sm_80 launch=1" 2>&1 | FileCheck %s
// CHECK: attn-grad-unsupported.mlir:[[@LINE+3]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no host launch lowering yet
func.func @backward(%q: tensor<1x4x64x32xf16>, %lse: tensor<1x4x64xf32>)
    -> (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse mask = <causal>
      : (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>,
         tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64xf32>)
      -> (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>)
  return %dq, %dk, %dv : tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>
}
