// attn.attention_grad has no GPU kernels yet: the GPU pipelines refuse it
// at the op, with a non-zero exit, instead of dropping it. (attn-to-cpu
// lowers it through attn-tile; python/tests/test_cpu_grad.py runs it.)
// RUN: not attn-opt %s --attn-to-llvm 2>&1 | FileCheck %s --check-prefix=GPU
// RUN: not attn-opt %s --attn-to-ptx 2>&1 | FileCheck %s --check-prefix=GPU
// RUN: not attn-opt %s --attn-lower-to-gpu="chip=sm_80" 2>&1 | FileCheck %s --check-prefix=GPU
// GPU: attn-grad-unsupported.mlir:[[@LINE+3]]:{{[0-9]+}}: error: 'attn.attention_grad' op has no GPU lowering yet
func.func @backward(%q: tensor<1x4x64x32xf16>, %lse: tensor<1x4x64xf32>)
    -> (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %q, %q, %lse mask = <causal>
      : (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>,
         tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64xf32>)
      -> (tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>)
  return %dq, %dk, %dv : tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>, tensor<1x4x64x32xf16>
}
