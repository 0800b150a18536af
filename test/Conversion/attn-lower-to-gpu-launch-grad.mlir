// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-to-llvm="chip=sm_90a" | FileCheck %s --check-prefix=LLVM
// RUN: not attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto require-tensor-cores" 2>&1 | FileCheck %s --check-prefix=REQUIRE

// attn.attention_grad in a program: the host code launches the backward's
// kernels in their manifests' step order, as attn.gpu.attention_backward
// does: dQ, which also writes Delta = rowsum(dO * O) into a workspace
// allocated from the run-time sizes [B, Hq, Sq], then dK/dV (reading
// Delta), then, with sinks, the sink gradient. The forward's O and LSE
// reach the backward as buffers; nothing of the attn dialect is left.

// CHECK-LABEL: func.func @train
// CHECK: gpu.launch_func @[[FWD:attn_bf16_d64_dv64_bhsd_causal_lse_wgmma]]::@[[FWD]]
// CHECK: cf.assert {{.*}} "attn.attention_grad at {{.*}}: dim 2 of 'lse' differs from Sq"
// CHECK: %[[DELTA:.*]] = memref.alloc(%[[B:.*]], %c8{{.*}}, %[[SQ:.*]]) : memref<?x?x?xf32>
// CHECK: %[[DQ:.*]] = memref.alloc(%[[B]], %[[SQ]]) : memref<?x8x?x64xbf16>
// CHECK: %[[DK:.*]] = memref.alloc(%[[B]], %[[SK:.*]]) : memref<?x2x?x64xbf16>
// CHECK: %[[DV:.*]] = memref.alloc(%[[B]], %[[SK]]) : memref<?x2x?x64xbf16>
// CHECK: %[[DELTA1:.*]] = memref.collapse_shape %[[DELTA]] {{\[}}[0, 1, 2]] : memref<?x?x?xf32> into memref<?xf32>
// On sm_90a both dQ and dK/dV are wgmma kernels, which also take the tensor
// maps of Q, K, V and dO.
// CHECK: gpu.launch_func @[[DQK:attn_bf16_d64_dv64_bhsd_causal_bwd_dq_wgmma]]::@[[DQK]] {{.*}}threads in (%c384{{.*}}args({{.*}}%[[DELTA1]] : memref<?xf32>{{.*}}: !llvm.ptr, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr)
// CHECK: %[[DELTA2:.*]] = memref.collapse_shape %[[DELTA]] {{\[}}[0, 1, 2]]
// CHECK: gpu.launch_func @[[DKDV:attn_bf16_d64_dv64_bhsd_causal_bwd_dkdv_wgmma]]::@[[DKDV]] {{.*}}threads in (%c384{{.*}}args({{.*}}%[[DELTA2]] : memref<?xf32>{{.*}}: !llvm.ptr, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr)
// CHECK-DAG: bufferization.to_tensor %[[DQ]] restrict writable
// CHECK-DAG: bufferization.to_tensor %[[DK]] restrict writable
// CHECK-DAG: bufferization.to_tensor %[[DV]] restrict writable
// CHECK-NOT: attn.attention_grad
// CHECK: return

// The whole pipeline: a host function that launches the three kernels,
// which are binaries, and frees the Delta workspace with O and the LSE.
// LLVM-LABEL: llvm.func @train
// LLVM-COUNT-3: llvm.call @mgpuMemFree
// LLVM-DAG: gpu.binary @attn_bf16_d64_dv64_bhsd_causal_lse_wgmma
// LLVM-DAG: gpu.binary @attn_bf16_d64_dv64_bhsd_causal_bwd_dq_wgmma
// LLVM-DAG: gpu.binary @attn_bf16_d64_dv64_bhsd_causal_bwd_dkdv_wgmma
func.func @train(%q: tensor<?x8x?x64xbf16>, %k: tensor<?x2x?x64xbf16>, %v: tensor<?x2x?x64xbf16>, %do: tensor<?x8x?x64xbf16>) -> (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>) {
  %o, %lse = attn.attention %q, %k, %v mask = <causal> : (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>) -> (tensor<?x8x?x64xbf16>, tensor<?x8x?xf32>)
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do, %lse mask = <causal> : (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x8x?x64xbf16>, tensor<?x8x?xf32>) -> (tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>)
  return %dq, %dk, %dv : tensor<?x8x?x64xbf16>, tensor<?x2x?x64xbf16>, tensor<?x2x?x64xbf16>
}

// -----

// With sinks, a third launch after dK/dV writes their gradient (a result
// of the op, so not freed); the window's extents are the op's, as
// constants.
// CHECK-LABEL: func.func @train_sinks
// CHECK: %[[DS:.*]] = memref.alloc() : memref<4xf32>
// CHECK: gpu.launch_func @[[DQK:attn_f16_d32_dv32_bhsd_window_sinksf32_bwd_dq_mma]]::@[[DQK]] {{.*}}%c7{{.*}} : index, %c0{{.*}} : index)
// CHECK: gpu.launch_func @[[DKDV:attn_f16_d32_dv32_bhsd_window_sinksf32_bwd_dkdv_mma]]::@[[DKDV]]
// CHECK: gpu.launch_func @[[DSK:attn_f16_d32_dv32_bhsd_window_sinksf32_bwd_dsinks]]::@[[DSK]]
// CHECK: bufferization.to_tensor %[[DS]] restrict writable
// LLVM-LABEL: llvm.func @train_sinks
// LLVM-DAG: gpu.binary @attn_f16_d32_dv32_bhsd_window_sinksf32_bwd_dsinks
func.func @train_sinks(%q: tensor<2x4x100x32xf16>, %k: tensor<2x2x100x32xf16>, %v: tensor<2x2x100x32xf16>, %o: tensor<2x4x100x32xf16>, %do: tensor<2x4x100x32xf16>, %lse: tensor<2x4x100xf32>, %s: tensor<4xf32>) -> (tensor<2x4x100x32xf16>, tensor<2x2x100x32xf16>, tensor<2x2x100x32xf16>, tensor<4xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %do, %lse sinks(%s) mask = <window, left = 7, right = 0> scale = 0.125 : (tensor<2x4x100x32xf16>, tensor<2x2x100x32xf16>, tensor<2x2x100x32xf16>, tensor<2x4x100x32xf16>, tensor<2x4x100x32xf16>, tensor<2x4x100xf32>, tensor<4xf32>) -> (tensor<2x4x100x32xf16>, tensor<2x2x100x32xf16>, tensor<2x2x100x32xf16>, tensor<4xf32>)
  return %dq, %dk, %dv, %ds : tensor<2x4x100x32xf16>, tensor<2x2x100x32xf16>, tensor<2x2x100x32xf16>, tensor<4xf32>
}

// -----

// f32 has no tensor-core backward: a remark by default (the thread-per-row
// kernels run it); an error at the op under require-tensor-cores.
// CHECK-LABEL: func.func @train_f32
// CHECK: gpu.launch_func @[[DQK:attn_f32_d32_dv32_bhsd_none_bwd_dq]]::@[[DQK]]
// LLVM-LABEL: llvm.func @train_f32
// REQUIRE: attn-lower-to-gpu-launch-grad.mlir:[[@LINE+3]]:{{[0-9]+}}: error: 'attn.attention_grad' op {{.*}}no tensor-core backward takes this variant (the tensor-core backward needs f16 or bf16) and require-tensor-cores is set
func.func @train_f32(%q: tensor<1x2x16x32xf32>, %o: tensor<1x2x16x32xf32>, %lse: tensor<1x2x16xf32>)
    -> (tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>) {
  %dq, %dk, %dv = attn.attention_grad %q, %q, %q, %o, %o, %lse : (tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16xf32>) -> (tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>)
  return %dq, %dk, %dv : tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>, tensor<1x2x16x32xf32>
}
