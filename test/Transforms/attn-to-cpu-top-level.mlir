// attn-to-cpu lowers the code of functions; code at the module's top level
// (an attention op on tensor.empty operands, an unrelated constant) is a
// located error before any pass runs, not a half-lowered module.
// RUN: not attn-opt %s --attn-to-cpu 2>&1 | FileCheck %s
// CHECK: attn-to-cpu-top-level.mlir:[[@LINE+1]]:6: error: 'tensor.empty' op is at the module's top level: attn-to-cpu lowers the code of functions; move it into a func.func
%t = tensor.empty() : tensor<1x2x16x64xf16>
%o = attn.attention %t, %t, %t : (tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>, tensor<1x2x16x64xf16>) -> tensor<1x2x16x64xf16>
func.func @f() { return }
