// drop-host removes every host op, whatever uses what: top-level ops other
// than functions (the module body is a graph region) and attention ops at
// the module's top level. Their kernels are still generated.
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host kernel=auto specialize-values" | FileCheck %s --strict-whitespace
// CHECK: module attributes {attn.kernels = {attn_f16_d64_dv64_bhsd_causal_s3e000000_mma = {{.+}}, attn_f16_d64_dv64_bhsd_none_s3e000000_mma = {{.+}}}, gpu.container_module}
// CHECK-NEXT: gpu.module @attn_f16_d64_dv64_bhsd_none_s3e000000_mma
// CHECK: gpu.module @attn_f16_d64_dv64_bhsd_causal_s3e000000_mma
// Nothing but the kernels at the top level (indented by two).
// CHECK-NOT: {{^  [^ g}]}}
%b = arith.addi %a, %a : i32
%a = arith.constant 1 : i32
func.func @f(%q: tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16> {
  %o = attn.attention %q, %q, %q : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
  return %o : tensor<1x2x16x64xf16>
}
%t = tensor.empty() : tensor<1x2x16x64xf16>
%top = attn.attention %t, %t, %t mask = <causal> : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>

// -----

// auto falls back to the baseline kernel for a variant no tensor-core kernel
// takes, with a remark; require-tensor-cores makes it an error.
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="kernel=auto specialize-values" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REMARK
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="kernel=auto require-tensor-cores specialize-values" -o /dev/null 2>&1 | FileCheck %s --check-prefix=REQUIRE
// REMARK: attn-lower-to-gpu-host.mlir:[[@LINE+3]]:8: remark: runs on the thread-per-row baseline kernel: no tensor-core kernel takes this variant (
// REQUIRE: attn-lower-to-gpu-host.mlir:[[@LINE+2]]:8: error: 'attn.attention' op no tensor-core kernel takes this variant ({{.+}}) and require-tensor-cores is set
func.func @f32_softcap(%q: tensor<1x2x16x80xf32>) -> tensor<1x2x16x80xf32> {
  %o = attn.attention %q, %q, %q softcap = 30.0 : (tensor<1x2x16x80xf32>, tensor<1x2x16x80xf32>, tensor<1x2x16x80xf32>) -> tensor<1x2x16x80xf32>
  return %o : tensor<1x2x16x80xf32>
}
