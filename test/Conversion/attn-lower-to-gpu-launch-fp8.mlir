// RUN: attn-opt %s --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" | FileCheck %s

// The host code of an FP8 attention: the descales are the op's operands
// (checked against [B, Hkv]), never memory the program allocates; only the
// output is allocated. The e4m3 tensors' TMA maps are maps of bytes (ui8).
// CHECK-LABEL: func.func @fp8
// CHECK-SAME: %[[DQ:[a-z0-9]+]]: tensor<?x8xf32>, %[[DK:[a-z0-9]+]]: tensor<?x8xf32>, %[[DV:[a-z0-9]+]]: tensor<?x8xf32>
// CHECK: bufferization.to_buffer %[[DQ]] read_only
// CHECK: cf.assert {{.*}} "attn.attention at {{.*}}: dim 0 of 'descale_q' differs from B"
// CHECK: bufferization.to_buffer %[[DK]] read_only
// CHECK: bufferization.to_buffer %[[DV]] read_only
// CHECK-NOT: memref.alloc({{.*}}) : memref<?x?xf32>
// CHECK: memref.alloc({{.*}}) : memref<?x32x?x128xbf16>
// CHECK-NOT: memref.alloc
// CHECK: attn.tensor_map = !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x128xui8
// CHECK: gpu.launch_func @attn_f8e4m3_d128_dv128_bhsd_obf16_descalehead_causal_wgmma
func.func @fp8(%q: tensor<?x32x?x128xf8E4M3FN>, %k: tensor<?x8x?x128xf8E4M3FN>, %v: tensor<?x8x?x128xf8E4M3FN>, %dq: tensor<?x8xf32>, %dk: tensor<?x8xf32>, %dv: tensor<?x8xf32>) -> tensor<?x32x?x128xbf16> {
  %o = attn.attention %q, %k, %v descale(%dq, %dk, %dv) mask = <causal> : (tensor<?x32x?x128xf8E4M3FN>, tensor<?x8x?x128xf8E4M3FN>, tensor<?x8x?x128xf8E4M3FN>, tensor<?x8xf32>, tensor<?x8xf32>, tensor<?x8xf32>) -> tensor<?x32x?x128xbf16>
  return %o : tensor<?x32x?x128xbf16>
}
