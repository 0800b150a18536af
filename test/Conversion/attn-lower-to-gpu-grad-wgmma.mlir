// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=wgmma drop-host" --canonicalize > %t
// RUN: FileCheck %s < %t
// RUN: FileCheck %s --check-prefix=M < %t
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s --check-prefix=AUTO
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=mma drop-host" | FileCheck %s --check-prefix=MMA
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" | FileCheck %s --check-prefix=SPLIT
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_80 kernel=auto drop-host" | FileCheck %s --check-prefix=MMA
// RUN: echo '{"op": "attention_grad", "dtype": "f16", "head_dim": 64, "mask": "causal", "kernel": "wgmma"}' \
// RUN:   | attn-compile --spec - -o %t.spec --chip=sm_90a | FileCheck %s --check-prefix=SPEC
// RUN: echo '{"op": "attention_grad", "dtype": "f16", "head_dim": 64, "mask": "causal", "kernel": "mma"}' \
// RUN:   | attn-compile --spec - -o %t.spec-mma --chip=sm_90a | FileCheck %s --check-prefix=SPEC-MMA
// RUN: echo '{"op": "attention_grad", "dtype": "f16", "head_dim": 64, "mask": "causal"}' \
// RUN:   | attn-compile --spec - -o %t.spec-auto --chip=sm_90a | FileCheck %s --check-prefix=SPEC-AUTO
// RUN: attn-opt %s --split-input-file --attn-to-ptx="chip=sm_90a kernel=wgmma" | FileCheck %s --check-prefix=PTX

// The sm_90a dQ and dK/dV kernels (AttentionGradWgmmaKernel.cpp): demanded
// by kernel=wgmma (the option or a spec's "kernel"), chosen by auto on
// sm_90a where they take the variant; kernel=mma (or a spec's "kernel":
// "mma") and other chips keep mma.sync. Each is a block of 384 threads: a
// producer warpgroup (one thread issues the TMA copies) and two consumer
// warpgroups of 64 rows (wgmma's M). dQ (step 0, which writes Delta) owns
// 128 query rows of one head and streams K and V in tiles of 64 keys;
// dK/dV (step 1) owns 128 keys of one KV head and streams Q and dO in tiles
// of 64 rows, each tile's lse2 and Delta copied from the `row_stats`
// workspace that dQ writes. Pinned kernels are named after the spec's "_wgmma" or "_mma",
// apart from the default backward's.

// M: attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dkdv_wgmma = {block = [384, 1, 1], dynamic_shared_memory = 132096 : i64, entry = "attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dkdv_wgmma", grid = [{ceil_div = ["Sk", 128]}, "Hkv", "B"], kernel = "attention_grad.dkdv"
// M-SAME: name = "delta", role = "workspace", shape = ["B", "Hq", "Sq"]}, {dtype = "f32", {{[^}]*}} name = "row_stats", role = "workspace", shape = ["B", "Hq", {ceil_div = ["Sq", 64]}, 128]}, {dtype = "bf16", {{[^}]*}} name = "dk"
// M-SAME: {box = [64, 64], kind = "tensormap", l2_promotion = "256B", name = "q_tma", oob_fill = "zero", passing = "param", role = "tma_descriptor", swizzle = "128B", tensor = "q"}, {box = [64, 128], kind = "tensormap", {{[^}]*}} tensor = "k"}, {box = [64, 128], kind = "tensormap", {{[^}]*}} tensor = "v"}, {box = [64, 64], kind = "tensormap", {{[^}]*}} tensor = "do"}]
// M-SAME: kernel = "wgmma"{{.*}}step = 1 : i64, tile = {block_kv = 128 : i64, block_q = 64 : i64, body = "wgmma", stages = 2 : i64}, variant = {bias = false, dtype = "bf16", head_dim = 128 : i64, kernel = "wgmma"
// M-SAME: attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dq_wgmma = {block = [384, 1, 1], dynamic_shared_memory = 132096 : i64, entry = "attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dq_wgmma", grid = [{ceil_div = ["Sq", 128]}, "Hq", "B"], kernel = "attention_grad.dq"
// M-SAME: name = "delta", role = "workspace", shape = ["B", "Hq", "Sq"]}, {dtype = "f32", {{[^}]*}} name = "row_stats", role = "workspace", shape = ["B", "Hq", {ceil_div = ["Sq", 64]}, 128]}, {dtype = "bf16", {{[^}]*}} name = "dq"
// M-SAME: {box = [64, 128], kind = "tensormap", {{[^}]*}} tensor = "q"}, {box = [64, 64], kind = "tensormap", {{[^}]*}} tensor = "k"}, {box = [64, 64], kind = "tensormap", {{[^}]*}} tensor = "v"}, {box = [64, 128], kind = "tensormap", {{[^}]*}} tensor = "do"}]
// M-SAME: step = 0 : i64, tile = {block_kv = 64 : i64, block_q = 128 : i64, body = "wgmma", stages = 2 : i64}

// dQ: Q and dO (128 rows, 64 KB) once, K and V (64 keys, 32 KB) per stage;
// Delta from global O and dO, two threads a row and one shuffle, written
// to the `delta` workspace (by the row's second thread); the row's lse2
// (first thread) and Delta (second) to the warpgroup's slots and, where the
// warpgroup's 64-row tile is one of the head's, to `row_stats`; S and dP by descriptors (m64n64), then dQ += dS·K with
// dS from registers and K MN-major (m64n128); dQ·scale in column pairs.
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dq_wgmma(
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 384, 1, 1>, nvvm.minctasm = 1 : i32}
// CHECK: !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x64xbf16
// CHECK: !nvgpu.tensormap.descriptor<tensor = memref<1x1x64x64xbf16
// CHECK: memref.view %{{.+}}[%c131072][] : {{.*}} to memref<2x2x64xf32, #gpu.address_space<workgroup>>
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.+}}[%c0], %c65536
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.+}}[%{{.+}}], %c32768
// CHECK: nvvm.setmaxregister  increase 240
// CHECK: gpu.shuffle  xor
// CHECK: memref.store %{{.+}}, %arg6[%{{.+}}] : memref<?xf32>
// CHECK: %[[STAT:.+]] = scf.if
// CHECK: memref.load %arg5
// CHECK: memref.store %[[STAT]], %view[
// CHECK: %[[TILED:.+]] = arith.cmpi slt, %{{.+}}, %arg12 : index
// CHECK: scf.if %[[TILED]] {
// CHECK: memref.store %[[STAT]], %arg7[%{{.+}}] : memref<?xf32>
// CHECK: nvvm.barrier id = %{{.+}} number_of_threads = %c128_i32
// CHECK: scf.for
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-COUNT-4: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: nvgpu.mbarrier.arrive
// CHECK: vector.store {{.+}} : memref<?xbf16>, vector<2xbf16>
// CHECK: gpu.return
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dkdv_wgmma(
// CHECK-SAME: %{{.+}}: index, %[[HQ:[a-z0-9]+]]: index, %[[HKV:[a-z0-9]+]]: index, %[[SQ:[a-z0-9]+]]: index, %[[SK:[a-z0-9]+]]: index, %{{.+}}: f32,
// CHECK-SAME: %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr, %{{.+}}: !llvm.ptr) kernel attributes {known_block_size = array<i32: 384, 1, 1>, nvvm.minctasm = 1 : i32}
// Q and dO boxes of 64 rows, K and V of 128.
// CHECK: %[[QMAP:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<1x1x64x64xbf16, #gpu.address_space<workgroup>>, swizzle = swizzle_128b
// CHECK: %[[KMAP:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x64xbf16
// CHECK: %[[VMAP:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<1x1x128x64xbf16
// CHECK: %[[DOMAP:.+]] = builtin.unrealized_conversion_cast %{{.+}} : !llvm.ptr to !nvgpu.tensormap.descriptor<tensor = memref<1x1x64x64xbf16
// The tiles' lse2 and Delta after K, V (64 KB) and the Q and dO rings
// (64 KB): [stage, lse2 | Delta, row].
// CHECK: %[[STATS:.+]] = memref.view %{{.+}}[%c131072][] : {{.*}} to memref<2x2x64xf32, #gpu.address_space<workgroup>>
// The query tiles: the group's heads times the tiles admitting the keys.
// CHECK: %[[GROUP:.+]] = arith.divui %[[HQ]], %[[HKV]] : index
// CHECK: %[[COUNT:.+]] = arith.muli %[[GROUP]], %{{.+}} : index
// mbarriers: K/V full, full[2] (the TMA thread's arrival and bytes),
// empty[2] (the 256 consumer threads: each releases the statistics it read).
// CHECK: %[[BARS:.+]] = nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 5>
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c0], %c1
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c1], %c1
// CHECK: nvgpu.mbarrier.init %[[BARS]][%c3], %c256
// CHECK: nvvm.fence.mbarrier.init
// CHECK: nvgpu.tma.prefetch.descriptor %[[QMAP]]
// CHECK: gpu.barrier
// Producer: K and V once (64 KB, two panels each), then Q and dO of each
// query tile (32 KB) and its row_stats tile (512 bytes, one bulk copy into
// the stage's statistics) once the consumers released the stage.
// CHECK: scf.if
// CHECK:   nvvm.setmaxregister  decrease 24
// CHECK:   nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%c0], %c65536
// The KV head and batch are getGradBlockIds' (a causal GQA block's; see
// attn-lower-to-gpu-grad-order.mlir).
// CHECK:   nvgpu.tma.async.load %[[KMAP]][%c0, %{{.+}}, %{{[^,]+}}, %{{[0-9a-z_]+}}], %[[BARS]][%c0]
// CHECK:   nvgpu.tma.async.load %[[KMAP]][%c64,
// CHECK:   nvgpu.tma.async.load %[[VMAP]][%c0,
// CHECK:   nvgpu.tma.async.load %[[VMAP]][%c64,
// CHECK:   scf.for %{{.+}} = %c0 to %[[COUNT]] step %c1 iter_args(
// CHECK:     nvgpu.mbarrier.try_wait.parity
// CHECK:     nvgpu.mbarrier.arrive.expect_tx %[[BARS]][%{{.+}}], %c33280
// CHECK:     nvvm.cp.async.bulk.shared.cluster.global %{{.+}}, %{{.+}}, %{{.+}}, %c512_i32 : !llvm.ptr<7>, <1>
// CHECK-COUNT-2: nvgpu.tma.async.load %[[QMAP]]
// CHECK-COUNT-2: nvgpu.tma.async.load %[[DOMAP]]
// Consumers: registers from the producer, K and V awaited once.
// CHECK: } else {
// CHECK:   nvvm.setmaxregister  increase 240
// CHECK:   nvgpu.mbarrier.try_wait.parity %[[BARS]][%c0], %false
// CHECK:   scf.for %{{.+}} = %c0 to %[[COUNT]] step %c1 iter_args
// The statistics arrive with the stage: no store or barrier of the
// consumers' own.
// CHECK-NOT: memref.store %{{.+}}, %[[STATS]][
// CHECK:     nvgpu.mbarrier.try_wait.parity
// Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ: two groups of 8 k-steps, K-major B.
// CHECK:     nvvm.wgmma.fence.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>, D[<f32>, {{.+}}], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
// CHECK:     nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>
// CHECK:     nvvm.wgmma.commit.group.sync.aligned
// No named barrier: the stage's full barrier covered the statistics.
// CHECK-NOT: nvvm.barrier id
// Pᵀ once Sᵀ is done: exp2(s·scale·log2 e - lse2) as an FMA and
// ex2.approx where no mask is needed, the masked copy otherwise.
// CHECK:     nvvm.wgmma.wait.group.sync.aligned 1
// CHECK:     scf.if
// CHECK:       vector.load %[[STATS]][%{{.+}}, %c0, %{{.+}}]
// CHECK:       %[[E:.+]] = math.fma
// CHECK:       llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"(%[[E]])
// CHECK:     } else {
// CHECK:       arith.select %{{.+}}, %{{.+}}, %cst
// CHECK:       llvm.call_intrinsic "llvm.nvvm.ex2.approx.ftz.f32"
// dV += Pᵀ·dO: Pᵀ packed into bf16 pairs is the register-A operand, dO
// MN-major (trans-b 1; its panels 64 rows x 128 bytes apart: the leading
// byte offset 8192 = 512 << 4 in bits 16-29 of the descriptor).
// CHECK:     vector.bitcast {{.+}} : vector<2xbf16> to vector<1xi32>
// CHECK:     nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: llvm.inline_asm has_side_effects asm_dialect = att "{\0A.reg .pred p;\0Asetp.ne.b32 p, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {{.+}}, p, 1, 1, 1;\0A}\0A"
// CHECK:     nvvm.wgmma.commit.group.sync.aligned
// dSᵀ = Pᵀ ⊙ (dPᵀ - Delta) once dPᵀ is done; dK += dSᵀ·Q alike.
// CHECK:     nvvm.wgmma.wait.group.sync.aligned 1
// CHECK:     vector.load %[[STATS]][%{{.+}}, %c1, %{{.+}}]
// CHECK:     arith.subf
// CHECK:     arith.mulf
// CHECK:     nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16
// CHECK:     nvvm.wgmma.commit.group.sync.aligned
// Both done: every consumer thread releases the stage (it read the
// statistics with plain loads), without a barrier.
// CHECK:     nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NEXT: arith.addi
// CHECK-NEXT: nvgpu.mbarrier.arrive %[[BARS]]
// dK·scale and dV staged where K and V were (after a barrier of the 256
// consumers), column pairs into swizzled rows, a warpgroup barrier, then 16
// bytes a thread to global memory, keys past Sk skipped.
// CHECK:   nvvm.barrier id = %{{.+}} number_of_threads = %{{.+}}
// CHECK:   %[[KSTAGED:.+]] = memref.view %{{.+}}[%c0][] : memref<0xi8, #gpu.address_space<workgroup>> to memref<16384xbf16, #gpu.address_space<workgroup>>
// CHECK:   vector.store {{.+}}, %[[KSTAGED]][{{.+}}] {alignment = 4 : i64} : memref<16384xbf16, #gpu.address_space<workgroup>>, vector<2xbf16>
// CHECK:   nvvm.barrier id = %{{.+}} number_of_threads = %{{.+}}
// CHECK:   vector.load %[[KSTAGED]][{{.+}}] {alignment = 16 : i64} : memref<16384xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK:   arith.cmpi slt, %{{.+}}, %[[SK]] : index
// CHECK:   vector.store {{.+}} {alignment = 16 : i64} : memref<?xbf16>, vector<8xbf16>
// CHECK: gpu.return

// The default backward takes the same bodies under names of its own, and
// its variant carries no "kernel"; kernel=mma and sm_80 keep mma.sync.
// AUTO: attn_bf16_d128_dv128_bhsd_causal_bwd_dkdv_wgmma = {block = [384, 1, 1]
// AUTO-NOT: kernel = "wgmma"
// AUTO-SAME: step = 1
// AUTO-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_dq_wgmma(
// AUTO-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_dkdv_wgmma(
// AUTO: nvvm.wgmma.mma_async
// MMA-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_dq_mma(
// MMA-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_dkdv_mma(
// MMA-NOT: wgmma

// PTX: gpu.binary @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dq_wgmma
// PTX: gpu.binary @attn_bf16_d128_dv128_bhsd_causal_wgmma_bwd_dkdv_wgmma
func.func @bf16_d128_causal(%q: tensor<1x8x300x128xbf16>, %k: tensor<1x2x300x128xbf16>, %v: tensor<1x2x300x128xbf16>,
                            %o: tensor<1x8x300x128xbf16>, %lse: tensor<1x8x300xf32>)
    -> (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse mask = <causal>
      : (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>,
         tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300xf32>)
      -> (tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>)
  return %dq, %dk, %dv : tensor<1x8x300x128xbf16>, tensor<1x2x300x128xbf16>, tensor<1x2x300x128xbf16>
}

// -----

// f16, D = 64 with Dv = 128 (the key and value panels counted apart), bshd,
// window, softcap (1 - tanh² in dSᵀ: no FMA-folded scale), bias, sinks (no
// effect on dK/dV; their gradient keeps its kernel, step 2).
// M: attn_f16_d64_dv128_bshd_window_cap_bias11nnf16_sinksf32_wgmma_bwd_dkdv_wgmma = {block = [384, 1, 1], dynamic_shared_memory = 99328 : i64
// M-SAME: step = 1
// M-SAME: attn_f16_d64_dv128_bshd_window_cap_bias11nnf16_sinksf32_wgmma_bwd_dq_wgmma = {{[{].*}}step = 0
// M-SAME: attn_f16_d64_dv128_bshd_window_cap_bias11nnf16_sinksf32_wgmma_bwd_dsinks = {{[{].*}}step = 2
// CHECK-LABEL: gpu.func @attn_f16_d64_dv128_bshd_window_cap_bias11nnf16_sinksf32_wgmma_bwd_dkdv_wgmma(
// CHECK: nvgpu.tensormap.descriptor<tensor = memref<1x64x1x64xf16
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.+}}[%c0], %c49152
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.+}}[%{{.+}}], %c25088
// CHECK: nvvm.setmaxregister  increase 240
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>, D[<f32>, {{.+}}], A[<f16>
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.+}} <m = 64, n = 64, k = 16>, D[<f32>, {{.+}}], A[<f16>
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: math.tanh
// CHECK-COUNT-4: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16
// CHECK: arith.subf %cst{{.*}}, %{{.+}} : f32
// CHECK-COUNT-4: llvm.inline_asm {{.+}}wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16
// CHECK-LABEL: gpu.func @attn_f16_d64_dv128_bshd_window_cap_bias11nnf16_sinksf32_wgmma_bwd_dsinks(
func.func @f16_d64_dv128_window(%q: tensor<1x64x4x64xf16>, %k: tensor<1x64x2x64xf16>, %v: tensor<1x64x2x128xf16>,
                                %o: tensor<1x64x4x128xf16>, %lse: tensor<1x4x64xf32>, %bias: tensor<1x1x64x64xf16>,
                                %sinks: tensor<4xf32>)
    -> (tensor<1x64x4x64xf16>, tensor<1x64x2x64xf16>, tensor<1x64x2x128xf16>, tensor<4xf32>) {
  %dq, %dk, %dv, %ds = attn.attention_grad %q, %k, %v, %o, %o, %lse bias(%bias) sinks(%sinks) layout = bshd
      mask = <window, left = 8, right = 2> softcap = 20.0
      : (tensor<1x64x4x64xf16>, tensor<1x64x2x64xf16>, tensor<1x64x2x128xf16>,
         tensor<1x64x4x128xf16>, tensor<1x64x4x128xf16>, tensor<1x4x64xf32>, tensor<1x1x64x64xf16>,
         tensor<4xf32>)
      -> (tensor<1x64x4x64xf16>, tensor<1x64x2x64xf16>, tensor<1x64x2x128xf16>, tensor<4xf32>)
  return %dq, %dk, %dv, %ds : tensor<1x64x4x64xf16>, tensor<1x64x2x64xf16>, tensor<1x64x2x128xf16>, tensor<4xf32>
}

// SPEC: attn_f16_d64_dv64_bhsd_causal_wgmma_bwd_dq_wgmma.{ptx,json}
// SPEC: attn_f16_d64_dv64_bhsd_causal_wgmma_bwd_dkdv_wgmma.{ptx,json}
// SPEC-MMA: attn_f16_d64_dv64_bhsd_causal_mma_bwd_dq_mma.{ptx,json}
// SPEC-MMA: attn_f16_d64_dv64_bhsd_causal_mma_bwd_dkdv_mma.{ptx,json}
// SPEC-AUTO: attn_f16_d64_dv64_bhsd_causal_bwd_dq_wgmma.{ptx,json}
// SPEC-AUTO: attn_f16_d64_dv64_bhsd_causal_bwd_dkdv_wgmma.{ptx,json}

// -----

// DeepSeek's MLA head dims, 192/128: past head dim 128 the tiles are of 32
// rows (dK/dV's query tiles, dQ's key tiles), and dK and dV of a
// consumer's 64 keys (160 registers a thread) still fit beside the 32-row
// Sᵀ and dPᵀ: one block computes both. A query tile's statistics are half
// a tile of row_stats, copied as its lse2 and its Delta (128 bytes each,
// 256 bytes apart in row_stats).
// SPLIT: attn_bf16_d192_dv128_bhsd_causal_bwd_dkdv_wgmma = {block = [384, 1, 1], dynamic_shared_memory = 123392 : i64, entry = "attn_bf16_d192_dv128_bhsd_causal_bwd_dkdv_wgmma", grid = [{ceil_div = ["Sk", 128]}, "Hkv", "B"]
// SPLIT-SAME: tile = {block_kv = 128 : i64, block_q = 32 : i64, body = "wgmma", stages = 2 : i64}
// SPLIT-SAME: attn_bf16_d192_dv128_bhsd_causal_bwd_dq_wgmma = {block = [384, 1, 1], dynamic_shared_memory = 123904 : i64, entry = "attn_bf16_d192_dv128_bhsd_causal_bwd_dq_wgmma", grid = [{ceil_div = ["Sq", 128]}, "Hq", "B"]
// SPLIT-SAME: tile = {block_kv = 32 : i64, block_q = 128 : i64, body = "wgmma", stages = 2 : i64}
// dQ: S and dP (12 + 8 k-steps), then dQ += dS·K (m64n192).
// SPLIT-LABEL: gpu.func @attn_bf16_d192_dv128_bhsd_causal_bwd_dq_wgmma(
// SPLIT-COUNT-20: <m = 64, n = 32, k = 16>
// SPLIT: wgmma.mma_async.sync.aligned.m64n192k16
// dK/dV: the statistics by two 128-byte copies; Sᵀ and dPᵀ (12 + 8
// k-steps), dV += Pᵀ·dO (m64n128), dK += dSᵀ·Q (m64n192), once each.
// SPLIT-LABEL: gpu.func @attn_bf16_d192_dv128_bhsd_causal_bwd_dkdv_wgmma(
// SPLIT: nvgpu.mbarrier.arrive.expect_tx %{{.+}}[%{{.+}}], %c20736
// SPLIT: %[[ROW:.+]] = arith.remui %{{.+}}, %{{.+}} : index
// SPLIT: nvvm.cp.async.bulk.shared.cluster.global %{{.+}}, %{{.+}}, %[[MBAR:.+]], %c128_i32
// SPLIT: arith.addi %{{.+}}, %[[ROW]] : index
// SPLIT: nvvm.cp.async.bulk.shared.cluster.global %{{.+}}, %{{.+}}, %[[MBAR]], %c128_i32
// SPLIT-COUNT-20: <m = 64, n = 32, k = 16>
// SPLIT-NOT: <m = 64, n = 32, k = 16>
// SPLIT: wgmma.mma_async.sync.aligned.m64n128k16
// SPLIT: wgmma.mma_async.sync.aligned.m64n192k16
// SPLIT-NOT: <m = 64, n = 32, k = 16>
func.func @mla_d192_dv128(%q: tensor<1x16x300x192xbf16>, %k: tensor<1x16x300x192xbf16>, %v: tensor<1x16x300x128xbf16>,
                          %o: tensor<1x16x300x128xbf16>, %lse: tensor<1x16x300xf32>)
    -> (tensor<1x16x300x192xbf16>, tensor<1x16x300x192xbf16>, tensor<1x16x300x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse mask = <causal> scale = 0.1352
      : (tensor<1x16x300x192xbf16>, tensor<1x16x300x192xbf16>, tensor<1x16x300x128xbf16>,
         tensor<1x16x300x128xbf16>, tensor<1x16x300x128xbf16>, tensor<1x16x300xf32>)
      -> (tensor<1x16x300x192xbf16>, tensor<1x16x300x192xbf16>, tensor<1x16x300x128xbf16>)
  return %dq, %dk, %dv : tensor<1x16x300x192xbf16>, tensor<1x16x300x192xbf16>, tensor<1x16x300x128xbf16>
}

// -----

// Head dims 256/128: dK and dV of a consumer's 64 keys (192 registers a
// thread) would not fit beside Sᵀ and dPᵀ, so a dK/dV block computes one of
// them (grid z [B, 2]: half 0 dV, from Sᵀ alone; half 1 dK).
// SPLIT: attn_bf16_d256_dv128_bhsd_causal_bwd_dkdv_wgmma = {{.*}}grid = [{ceil_div = ["Sk", 128]}, "Hkv", {mul = ["B", 2]}]
// SPLIT-LABEL: gpu.func @attn_bf16_d256_dv128_bhsd_causal_bwd_dkdv_wgmma(
// The z index is getGradBlockIds' (causal: the pair its section's deal
// gives the block, over Hkv).
// SPLIT: gpu.block_id  z
// SPLIT: %[[HALF:.+]] = arith.remui %[[Z:.+]], %c2 : index
// SPLIT: arith.divui %[[Z]], %c2
// SPLIT: %[[DV:.+]] = arith.cmpi eq, %[[HALF]], %c0
// SPLIT: scf.if %[[DV]] {
// dV: Sᵀ (16 k-steps over D = 256), then dV += Pᵀ·dO (m64n128).
// SPLIT-COUNT-16: <m = 64, n = 32, k = 16>
// SPLIT-NOT: <m = 64, n = 32, k = 16>
// SPLIT: wgmma.mma_async.sync.aligned.m64n128k16
// SPLIT: } else {
// dK: Sᵀ and dPᵀ (16 + 8 k-steps), then dK += dSᵀ·Q (m64n256).
// SPLIT-COUNT-24: <m = 64, n = 32, k = 16>
// SPLIT: wgmma.mma_async.sync.aligned.m64n256k16
func.func @d256_dv128(%q: tensor<1x8x300x256xbf16>, %k: tensor<1x8x300x256xbf16>, %v: tensor<1x8x300x128xbf16>,
                      %o: tensor<1x8x300x128xbf16>, %lse: tensor<1x8x300xf32>)
    -> (tensor<1x8x300x256xbf16>, tensor<1x8x300x256xbf16>, tensor<1x8x300x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %o, %lse mask = <causal>
      : (tensor<1x8x300x256xbf16>, tensor<1x8x300x256xbf16>, tensor<1x8x300x128xbf16>,
         tensor<1x8x300x128xbf16>, tensor<1x8x300x128xbf16>, tensor<1x8x300xf32>)
      -> (tensor<1x8x300x256xbf16>, tensor<1x8x300x256xbf16>, tensor<1x8x300x128xbf16>)
  return %dq, %dk, %dv : tensor<1x8x300x256xbf16>, tensor<1x8x300x256xbf16>, tensor<1x8x300x128xbf16>
}
