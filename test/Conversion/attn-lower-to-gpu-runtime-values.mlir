// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host kernel=baseline" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host chip=sm_90a kernel=auto" | FileCheck %s --check-prefix=WGMMA
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" | FileCheck %s --check-prefix=HOST
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host kernel=baseline specialize-values" | FileCheck %s --check-prefix=SPECIALIZED

// By default a kernel takes the scale, the softcap's value and the window's
// extents as arguments after its sizes (KernelSpec.h: runtimeValues;
// docs/kernel-spec.md), so that ops differing only in them share it. At its
// entry they become the exp2-domain factors (scale / softcap before the
// tanh, softcap·log2 e after it) and the extents clamped to [0, 2^40].

// The manifest: the value parameters and "runtime" in the variant and spec.
// CHECK: attn.kernels = {attn_f16_d64_dv64_bhsd_window_cap = {
// CHECK-SAME: {dtype = "f32", kind = "scalar", name = "scale", role = "value"}, {dtype = "f32", kind = "scalar", name = "softcap", role = "value"}, {dtype = "i64", kind = "scalar", name = "window_left", role = "value"}, {dtype = "i64", kind = "scalar", name = "window_right", role = "value"}]
// CHECK-SAME: spec = {{{[^}]*}}scale = "runtime"{{[^}]*}}softcap = "runtime"{{[^}]*}}window_left = "runtime", window_right = "runtime"}
// CHECK-SAME: variant = {{{[^}]*}}scale = "runtime"{{[^}]*}}softcap = "runtime"{{[^}]*}}window_left = "runtime", window_right = "runtime"}
// CHECK-LABEL: gpu.func @attn_f16_d64_dv64_bhsd_window_cap(
// CHECK-SAME: %{{.*}}: index, %[[SK:.*]]: index, %[[SCALE:.*]]: f32, %[[CAP:.*]]: f32, %[[LEFT:.*]]: index, %[[RIGHT:.*]]: index)
// CHECK: %[[FACTOR:.*]] = arith.divf %[[SCALE]], %[[CAP]] : f32
// CHECK: %[[LOG2E:.*]] = arith.constant 1.44269502 : f32
// CHECK: %[[CAPFACTOR:.*]] = arith.mulf %[[CAP]], %[[LOG2E]] : f32
// CHECK: %[[L0:.*]] = arith.maxsi %[[LEFT]], %{{.*}} : index
// CHECK: %[[L:.*]] = arith.minsi %[[L0]], %c1099511627776 : index
// CHECK: %[[R0:.*]] = arith.maxsi %[[RIGHT]], %{{.*}} : index
// CHECK: %[[R:.*]] = arith.minsi %[[R0]], %c1099511627776{{.*}} : index
// The band of keys from the run-time extents: [pos - left, pos + right].
// CHECK: arith.addi %[[R]], %c1
// CHECK: arith.subi %{{.*}}, %[[L]] : index
// The logit: q·k times the factor, tanh, times softcap·log2 e.
// CHECK: %[[S:.*]] = arith.mulf %{{.*}}, %[[FACTOR]] : f32
// CHECK: %[[T:.*]] = math.tanh %[[S]] : f32
// CHECK: arith.mulf %[[T]], %[[CAPFACTOR]] : f32

// Specialized: the numbers in the name, no value parameters.
// SPECIALIZED-NOT: name = "scale"
// SPECIALIZED: variant = {bias = false, dtype = "f16", head_dim = 64 : i64, layout = "bhsd", lse = false, mask = "window", scale = 2.500000e-01 : f64, sinks = false, softcap = 30 : i64, value_head_dim = 64 : i64, window_left = 31 : i64, window_right = 2 : i64}
// SPECIALIZED: gpu.func @attn_f16_d64_dv64_bhsd_window_l31_r2_s3e800000_cap41f00000(
// SPECIALIZED-SAME: %{{.*}}: index, %{{.*}}: index) private

// The host passes the op's values as constants (HostLaunch.cpp).
// HOST-LABEL: func.func @dense
// HOST-DAG: %[[S:.*]] = arith.constant 2.500000e-01 : f32
// HOST-DAG: %[[C:.*]] = arith.constant 3.000000e+01 : f32
// HOST-DAG: %[[L:.*]] = arith.constant 31 : index
// HOST: gpu.launch_func @attn_f16_d64_dv64_bhsd_window_cap_wgmma::{{.*}}, %[[S]] : f32, %[[C]] : f32, %[[L]] : index, %c2{{(_[0-9]+)?}} : index, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr, %{{.*}} : !llvm.ptr)
func.func @dense(%q: tensor<1x8x100x64xf16>, %k: tensor<1x2x100x64xf16>, %v: tensor<1x2x100x64xf16>) -> tensor<1x8x100x64xf16> {
  %o = attn.attention %q, %k, %v mask = <window, left = 31, right = 2> scale = 0.25 softcap = 30.0 : (tensor<1x8x100x64xf16>, tensor<1x2x100x64xf16>, tensor<1x2x100x64xf16>) -> tensor<1x8x100x64xf16>
  return %o : tensor<1x8x100x64xf16>
}

// -----

// Ops differing only in their values share one kernel (and its length
// alternative, which these 256 keys launch: docs/design-length-choice.md).
// WGMMA: attn.kernels = {attn_bf16_d128_dv128_bhsd_causal_wgmma = {
// WGMMA-NOT: attn_bf16_d128_dv128_bhsd_causal_s
// WGMMA-SAME: attn_bf16_d128_dv128_bhsd_causal_wgmma_q64_kv64_pSk0to2049 = {
// WGMMA-NOT: attn_bf16_d128_dv128_bhsd_causal_s
// WGMMA-COUNT-1: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma(
// WGMMA-COUNT-1: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_q64_kv64_pSk0to2049(
// WGMMA-NOT: gpu.func @attn_bf16
// HOST-LABEL: func.func @shared
// HOST: %[[S1:.*]] = arith.constant 0.0883883461 : f32
// HOST: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_wgmma_q64_kv64_pSk0to2049::{{.*}}, %[[S1]] : f32,
// HOST: %[[S2:.*]] = arith.constant 1.250000e-01 : f32
// HOST: gpu.launch_func @attn_bf16_d128_dv128_bhsd_causal_wgmma_q64_kv64_pSk0to2049::{{.*}}, %[[S2]] : f32,
func.func @shared(%q: tensor<1x8x256x128xbf16>) -> tensor<1x8x256x128xbf16> {
  %a = attn.attention %q, %q, %q mask = <causal> : (tensor<1x8x256x128xbf16>, tensor<1x8x256x128xbf16>, tensor<1x8x256x128xbf16>) -> tensor<1x8x256x128xbf16>
  %b = attn.attention %a, %q, %q mask = <causal> scale = 0.125 : (tensor<1x8x256x128xbf16>, tensor<1x8x256x128xbf16>, tensor<1x8x256x128xbf16>) -> tensor<1x8x256x128xbf16>
  return %b : tensor<1x8x256x128xbf16>
}

// -----

// Paged kernels take them last, after VStride; the host passes the op's.
// CHECK-LABEL: gpu.func @attn_paged_bf16_d128_dv128_nhd_p16_window(
// CHECK-SAME: %{{.*}}: index, %[[VSTRIDE:.*]]: index, %[[PSCALE:.*]]: f32, %[[PLEFT:.*]]: index, %[[PRIGHT:.*]]: index)
// CHECK: %[[PLOG2E:.*]] = arith.constant 1.44269502 : f32
// CHECK: arith.mulf %[[PSCALE]], %[[PLOG2E]] : f32
// CHECK: arith.maxsi %[[PLEFT]]
// CHECK: arith.maxsi %[[PRIGHT]]
// HOST-LABEL: func.func @paged
// HOST-DAG: %[[PS:.*]] = arith.constant 1.250000e-01 : f32
// HOST-DAG: %[[PL:.*]] = arith.constant 255 : index
// HOST: gpu.launch_func @attn_paged_bf16_d128_dv128_nhd_p16_window::{{.*}}, %[[PS]] : f32, %[[PL]] : index, %{{.*}} : index)
func.func @paged(%q: tensor<4x1x32x128xbf16>, %kc: tensor<64x16x8x128xbf16>, %vc: tensor<64x16x8x128xbf16>, %t: tensor<4x16xi32>, %l: tensor<4xi32>) -> tensor<4x1x32x128xbf16> {
  %o = attn.paged_attention %q, %kc, %vc, %t, %l mask = <window, left = 255, right = 0> scale = 0.125 : (tensor<4x1x32x128xbf16>, tensor<64x16x8x128xbf16>, tensor<64x16x8x128xbf16>, tensor<4x16xi32>, tensor<4xi32>) -> tensor<4x1x32x128xbf16>
  return %o : tensor<4x1x32x128xbf16>
}
