// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host" | FileCheck %s
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="drop-host" | FileCheck %s --check-prefix=MANIFEST

// Gated DeltaNet (Qwen3-Next heads: 16 key heads, 32 value heads, head dim
// 128, L2-normalized q and k) as chunked kernels, over chunks of 32 tokens (the
// op's chunk_size of 64 is capped: it does not change the result). The chunk
// kernel (256 threads, one block per chunk, value head and sequence) loads
// the chunk as f32, normalizes and scales, takes the cumulative log2 gates,
// builds A and Aqk, solves (I + A) T = diag(beta) by forward substitution
// (four lanes per column, shuffles) and writes W, U, Qg, Kg, Aqk and
// exp(G_last), the mma operands among them rounded to tf32. The state kernel
// (8 warps, 32 value columns) carries the state across the chunks as tf32
// mma.sync accumulators in registers, publishes it (rounded, transposed) to
// shared memory for the next chunk's W S and Qg S, and takes the workspace
// rows of a chunk by cp.async.
// CHECK-LABEL: gpu.module @attn_gdn_chunk_bf16_dk128_dv128_c32_headf32_betaf32_l2_s3db504f3
// CHECK: gpu.func @attn_gdn_chunk_bf16_dk128_dv128_c32_headf32_betaf32_l2_s3db504f3(%{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: index, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: memref.view {{.+}} to memref<32x132xf32, #gpu.address_space<workgroup>>
// CHECK: arith.extf %{{.+}} : vector<4xbf16> to vector<4xf32>
// CHECK: math.rsqrt
// CHECK: math.exp2
// CHECK: gpu.shuffle xor
// CHECK-LABEL: gpu.module @attn_gdn_state_bf16_dk128_dv128_c32
// CHECK: gpu.func @attn_gdn_state_bf16_dk128_dv128_c32(%{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xf32>, %{{.+}}: memref<?xbf16>, %{{.+}}: memref<?xf32>, %{{.+}}: index, %{{.+}}: index) kernel attributes {known_block_size = array<i32: 256, 1, 1>}
// CHECK: memref.view {{.+}} to memref<4x32x132xf32, #gpu.address_space<workgroup>>
// CHECK: memref.view {{.+}} to memref<2x32x136xf32, #gpu.address_space<workgroup>>
// CHECK: nvgpu.device_async_copy
// CHECK: scf.for
// CHECK:   nvgpu.device_async_wait
// CHECK:   gpu.barrier
// CHECK:   nvvm.mma.sync {{.+}} {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>, multiplicandAPtxType = #nvvm.mma_type<tf32>, multiplicandBPtxType = #nvvm.mma_type<tf32>, shape = #nvvm.shape<m = 16, n = 8, k = 8>}
// CHECK:   gpu.barrier
// CHECK:   arith.truncf %{{.+}} : f32 to bf16
// CHECK:   arith.andi %{{.+}}, %{{.+}} : i32
// The recurrent kernel (decode): the state tile in registers, a loop over
// the tokens with the norms and the two lane reductions (Sᵀk, Sᵀq).
// CHECK-LABEL: gpu.module @attn_gdn_recurrent_bf16_dk128_dv128_headf32_betaf32_l2_s3db504f3
// CHECK: scf.for
// CHECK:   math.rsqrt
// CHECK:   math.exp
// CHECK:   gpu.shuffle xor
// CHECK:   arith.truncf %{{.+}} : f32 to bf16
// MANIFEST: attn.kernels = {
// MANIFEST-SAME: attn_gdn_chunk_bf16_dk128_dv128_c32_headf32_betaf32_l2_s3db504f3 = {block = [256, 1, 1], dynamic_shared_memory = 59776 : i64, entry = "attn_gdn_chunk_bf16_dk128_dv128_c32_headf32_betaf32_l2_s3db504f3", grid = [{ceil_div = ["T", 32]}, "Hv", "B"], kernel = "gated_delta.chunk"
// MANIFEST-SAME: variant = {beta_dtype = "f32", chunk = 32 : i64, dtype = "bf16", gate_dtype = "f32", gate_kind = "head", key_head_dim = 128 : i64, op = "gated_delta_rule", qk_l2norm = true
// MANIFEST-SAME: attn_gdn_state_bf16_dk128_dv128_c32 = {block = [256, 1, 1], dynamic_shared_memory = 144384 : i64, entry = "attn_gdn_state_bf16_dk128_dv128_c32", grid = [4, "Hv", "B"]
// MANIFEST-SAME: variant = {chunk = 32 : i64, dtype = "bf16", initial_state = false
func.func @qwen3_next(%q: tensor<1x4096x16x128xbf16>, %k: tensor<1x4096x16x128xbf16>, %v: tensor<1x4096x32x128xbf16>, %g: tensor<1x4096x32xf32>, %beta: tensor<1x4096x32xf32>) -> (tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta qk_l2norm : (tensor<1x4096x16x128xbf16>, tensor<1x4096x16x128xbf16>, tensor<1x4096x32x128xbf16>, tensor<1x4096x32xf32>, tensor<1x4096x32xf32>) -> (tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>)
  return %o, %s : tensor<1x4096x32x128xbf16>, tensor<1x32x128x128xf32>
}

// -----

// Kimi Delta Attention: per-channel gates (exp of per-channel gate
// differences inside the dot products), an initial state, f16, head dim 100
// (32-column slices: the last one is partly empty).
// CHECK-LABEL: gpu.module @attn_gdn_chunk_f16_dk100_dv100_c32_channelf16_betaf32_s3dcccccd
// CHECK: memref.view {{.+}} to memref<32x104xf32, #gpu.address_space<workgroup>>
// CHECK-LABEL: gpu.module @attn_gdn_state_f16_dk100_dv100_c32_init
// MANIFEST: attn.kernels = {
// MANIFEST-SAME: attn_gdn_state_f16_dk100_dv100_c32_init = {block = [256, 1, 1], dynamic_shared_memory = 129920 : i64, entry = "attn_gdn_state_f16_dk100_dv100_c32_init", grid = [4, "Hv", "B"]
// MANIFEST-SAME: variant = {chunk = 32 : i64, dtype = "f16", initial_state = true
func.func @kda(%q: tensor<2x65x1x100xf16>, %k: tensor<2x65x1x100xf16>, %v: tensor<2x65x2x100xf16>, %g: tensor<2x65x2x100xf16>, %beta: tensor<2x65x2xf32>, %s0: tensor<2x2x100x100xf32>) -> (tensor<2x65x2x100xf16>, tensor<2x2x100x100xf32>) {
  %o, %s = attn.gated_delta_rule %q, %k, %v, %g, %beta initial_state(%s0) gate_kind = channel chunk_size = 32 : (tensor<2x65x1x100xf16>, tensor<2x65x1x100xf16>, tensor<2x65x2x100xf16>, tensor<2x65x2x100xf16>, tensor<2x65x2xf32>, tensor<2x2x100x100xf32>) -> (tensor<2x65x2x100xf16>, tensor<2x2x100x100xf32>)
  return %o, %s : tensor<2x65x2x100xf16>, tensor<2x2x100x100xf32>
}

