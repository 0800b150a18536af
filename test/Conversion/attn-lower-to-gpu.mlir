// RUN: attn-opt %s --attn-lower-to-gpu=specialize-values --canonicalize | FileCheck %s
// RUN: attn-opt %s --attn-lower-to-gpu="drop-host specialize-values" | FileCheck %s --check-prefix=DROP

// Two attentions of the same variant share one kernel; a third variant gets
// its own gpu.module. The calling contract is in attn.kernels.
// CHECK: module attributes {attn.kernels = {
// CHECK-SAME: attn_bf16_d64_dv64_bhsd_causal_s3e000000 = {block = [128, 1, 1], dynamic_shared_memory = 0 : i64, entry = "attn_bf16_d64_dv64_bhsd_causal_s3e000000", grid = [{ceil_div = ["Sq", 128]}, "Hq", "B"]
// The spec the kernel was built from (docs/kernel-spec.md), as resolved.
// CHECK-SAME: spec = {bias = false, dtype = "bf16", head_dim = 64 : i64, kernel = "baseline", layout = "bhsd", lse = false, mask = "causal", op = "attention", scale = 1.250000e-01 : f64, sinks = false, softcap, value_head_dim = 64 : i64, version = 2 : i64}
// CHECK-SAME: attn_f16_d128_dv128_bshd_window_l127_r0_s3db504f3_sinksf32_lse = {
// CHECK-SAME: gpu.container_module

// The host function is kept unless drop-host is set.
// CHECK: func.func @two_layers
// DROP-NOT: func.func
// DROP-COUNT-2: gpu.module

// CHECK: gpu.module @attn_bf16_d64_dv64_bhsd_causal_s3e000000 {
// CHECK: gpu.func @attn_bf16_d64_dv64_bhsd_causal_s3e000000(
// CHECK-SAME: %[[Q:.+]]: memref<?xbf16>, %[[K:.+]]: memref<?xbf16>, %[[V:.+]]: memref<?xbf16>, %[[O:.+]]: memref<?xbf16>,
// CHECK-SAME: %[[B:.+]]: index, %[[HQ:.+]]: index, %[[HKV:.+]]: index, %[[SQ:.+]]: index, %[[SK:.+]]: index)
// CHECK-SAME: private(%{{.+}} : memref<64xf32, #gpu.address_space<private>>, %{{.+}} : memref<64xf32, #gpu.address_space<private>>)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// CHECK: %[[BX:.+]] = gpu.block_id  x
// CHECK: %[[H:.+]] = gpu.block_id  y
// CHECK: %[[TX:.+]] = gpu.thread_id  x
// CHECK: scf.if
// GQA: KV head = h / (Hq / Hkv).
// CHECK:   %[[G:.+]] = arith.divui %[[HQ]], %[[HKV]]
// CHECK:   %[[KVH:.+]] = arith.divui %[[H]], %[[G]]
// Causal, bottom-right: the key loop ends at min(Sk, i + Sk - Sq + 1).
// CHECK:   %[[END:.+]] = arith.minsi %[[SK]], %{{.+}}
// CHECK:   %[[HI:.+]] = arith.maxsi %[[END]], %c0
// CHECK:   scf.for %{{.+}} = %c0 to %{{.+}} step %c1 iter_args(%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}) -> (f32, f32)
// CHECK:     arith.mulf
// CHECK:     math.exp2
// CHECK:     math.exp2
// CHECK: gpu.return
// CHECK-NOT: gpu.func @attn_bf16_d64_dv64_bhsd_causal_s3e000000

// The window's lower bound and the sinks' initial max.
// CHECK: gpu.module @attn_f16_d128_dv128_bshd_window_l127_r0_s3db504f3_sinksf32_lse
// CHECK:   arith.subi %{{.+}}, %c127
// CHECK:   memref.load %{{.+}}[%{{.+}}] : memref<?xf32>
// CHECK:   math.log2
func.func @two_layers(%q: tensor<1x8x100x64xbf16>, %k: tensor<1x2x100x64xbf16>, %v: tensor<1x2x100x64xbf16>,
                      %q2: tensor<2x50x8x128xf16>, %k2: tensor<2x50x2x128xf16>, %s: tensor<8xf32>)
    -> (tensor<1x8x100x64xbf16>, tensor<1x8x100x64xbf16>, tensor<2x50x8x128xf16>, tensor<2x8x50xf32>) {
  %a = attn.attention %q, %k, %v mask = <causal> : (tensor<1x8x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<1x2x100x64xbf16>) -> tensor<1x8x100x64xbf16>
  %b = attn.attention %a, %k, %v mask = <causal> : (tensor<1x8x100x64xbf16>, tensor<1x2x100x64xbf16>, tensor<1x2x100x64xbf16>) -> tensor<1x8x100x64xbf16>
  %c, %lse = attn.attention %q2, %k2, %k2 sinks(%s) layout = bshd mask = <window, left = 127, right = 0>
      : (tensor<2x50x8x128xf16>, tensor<2x50x2x128xf16>, tensor<2x50x2x128xf16>, tensor<8xf32>) -> (tensor<2x50x8x128xf16>, tensor<2x8x50xf32>)
  return %a, %b, %c, %lse : tensor<1x8x100x64xbf16>, tensor<1x8x100x64xbf16>, tensor<2x50x8x128xf16>, tensor<2x8x50xf32>
}
