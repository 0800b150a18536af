// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_90a kernel=auto drop-host" --canonicalize > %t
// RUN: FileCheck %s < %t
// RUN: FileCheck %s --check-prefix=M < %t
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="chip=sm_80 kernel=auto drop-host" | FileCheck %s --check-prefix=SM80
// RUN: attn-opt %s --split-input-file --attn-lower-to-gpu="launch=1 chip=sm_90a kernel=auto" | FileCheck %s --check-prefix=HOST
// RUN: attn-opt %s --split-input-file | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: echo '{"op": "attention_grad", "dtype": "bf16", "head_dim": 128, "mask": "causal", "deterministic": false, "dq_reduce": "atomic"}' \
// RUN:   | attn-compile --spec - -o %t.atomic --chip=sm_90a | FileCheck %s --check-prefix=ATOMIC
// RUN: echo '{"op": "attention_grad", "dtype": "bf16", "head_dim": 64, "dq_reduce": "atomic"}' \
// RUN:   | attn-compile --spec - -o %t.det --chip=sm_90a | FileCheck %s --check-prefix=DET
// RUN: echo '{"op": "attention_grad", "dtype": "bf16", "head_dim": 128, "deterministic": false, "dq_reduce": "tree"}' \
// RUN:   | not attn-compile --spec - -o %t.bad --chip=sm_90a 2>&1 | FileCheck %s --check-prefix=BAD

// The non-deterministic backward (`deterministic = false`): on sm_90a, at
// head dims 64 and 128, dQ is added up inside the dK/dV kernel
// (FlashAttention-3's backward, AttentionGradDQAccum.cpp): step 0 `prep`
// writes Delta, each 64-row tile's lse2 and Delta into `row_stats` [B, Hq,
// ceil(Sq / 64), 128], and zeroes the f32 `dq_accum` workspace [B, Hq,
// ceil(Sq / 64), 64 D]; step 1 `dkdv_dq` copies a tile's row_stats with its
// Q and dO (one bulk copy of 512 bytes), stores each query tile's dSᵀ (swizzled,
// double-buffered by tile parity), takes dK's A operand from there, and
// computes its warpgroup's m64n64 share of dQ = dS·K, which it stages in
// shared memory (by tile parity) for a producer thread's bulk reductions
// into dq_accum (or, with "dq_reduce": "atomic", adds with 32 f32 atomics a
// thread); step 2 `dq_convert` writes dQ = dq_accum · scale. Its kernels
// are named "_bwd_nd_" beside the deterministic set's.

// M: attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dkdv_dq_wgmma = {block = [384, 1, 1], dynamic_shared_memory = 164864 : i64, entry = "attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dkdv_dq_wgmma", grid = [{ceil_div = ["Sk", 128]}, "Hkv", "B"], kernel = "attention_grad.dkdv_dq"
// M-SAME: name = "delta", role = "workspace", shape = ["B", "Hq", "Sq"]}, {dtype = "f32", {{[^}]*}} name = "row_stats", role = "workspace", shape = ["B", "Hq", {ceil_div = ["Sq", 64]}, 128]}, {dtype = "f32", {{[^}]*}} name = "dq_accum", role = "workspace", shape = ["B", "Hq", {ceil_div = ["Sq", 64]}, 4096]}
// M-SAME: step = 1 : i64, tile = {block_kv = 128 : i64, block_q = 64 : i64, body = "wgmma", stages = 2 : i64}, variant = {bias = false, deterministic = false,
// M-SAME: attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dq_convert = {block = [128, 1, 1], dynamic_shared_memory = 9216 : i64, entry = "attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dq_convert", grid = [{ceil_div = ["Sq", 64]}, "Hq", "B"], kernel = "attention_grad.dq_convert"
// M-SAME: name = "dq_accum", role = "workspace", shape = ["B", "Hq", {ceil_div = ["Sq", 64]}, 4096]}, {dtype = "bf16", {{[^}]*}} name = "dq", role = "grad_query"
// M-SAME: step = 2 : i64
// M-SAME: attn_bf16_d64_dv64_bhsd_causal_bwd_nd_prep = {block = [128, 1, 1], dynamic_shared_memory = 0 : i64, entry = "attn_bf16_d64_dv64_bhsd_causal_bwd_nd_prep", grid = [{ceil_div = ["Sq", 64]}, "Hq", "B"], kernel = "attention_grad.prep"
// M-SAME: name = "o", role = "output"
// M-SAME: name = "lse", role = "lse"
// M-SAME: name = "row_stats", role = "workspace", shape = ["B", "Hq", {ceil_div = ["Sq", 64]}, 128]}
// M-SAME: step = 0 : i64

// prep: the tile's 4096 f32 of dq_accum zeroed, four a store; then Delta
// from O and dO, 8 threads a row (16 bytes each: a warp's loads are whole
// rows), 4 passes of 16 rows, every load first, three shuffles a pass;
// then each thread writes one of the tile's 128 row_stats: a pass's Delta
// (lanes 0-3 of a row's 8, also into delta) or its lse2 (lanes 4-7, from
// the LSE).
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv64_bhsd_causal_bwd_nd_prep(
// CHECK-COUNT-8: vector.store %{{.+}}, %arg5[%{{.+}}] {alignment = 16 : i64} : memref<?xf32>, vector<4xf32>
// CHECK-NOT: gpu.shuffle
// CHECK-COUNT-8: vector.load %arg{{[01]}}[%{{.+}}] {alignment = 16 : i64} : memref<?xbf16>, vector<8xbf16>
// CHECK-COUNT-12: gpu.shuffle  xor
// CHECK: memref.store %{{.+}}, %arg3[%{{.+}}] : memref<?xf32>
// CHECK: memref.load %arg2[
// CHECK: memref.store %{{.+}}, %arg4[%{{.+}}] : memref<?xf32>
// CHECK-NOT: vector.store
// CHECK: gpu.return

// dK/dV with dQ's shares: four mbarriers more (dqFull of each tile parity:
// the 256 consumer threads; dqRead: the reducer). The producer's thread 32
// is the reducer: per tile, wait for the shares, two bulk reductions of 16
// KB (inline PTX: NVVM has no non-tensor bulk reduction), commit, wait
// until they have read shared memory, dqRead; its thread 0 waits for dqRead
// of the tile two back before loading a tile. The consumers: the dSᵀ
// buffers past the statistics (1024-aligned, 2 x 128 keys x 128 bytes); a
// thread's 16 pairs as 4-byte stores at chunk n ^ g (its row's word XOR
// 4n); the proxy fence and the barrier of the 256 consumers; dK += dSᵀ·Q
// with A from the buffer (K-major, row) and Q MN-major; once dV is done,
// dQ's share with both operands MN-major (trans-a: A col) over the
// warpgroup's 64 keys (head dim 64: one column panel); the stage released
// once dK is done; the 32 values into the staging buffers, the proxy
// fence, dqFull. No atomics.
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dkdv_dq_wgmma(
// CHECK: nvgpu.mbarrier.create -> <memorySpace = #gpu.address_space<workgroup>, num_barriers = 9>
// CHECK-COUNT-2: nvgpu.mbarrier.init %{{.+}}, %c256
// CHECK-COUNT-2: nvgpu.mbarrier.init %{{.+}}, %c1 :
// CHECK: nvvm.setmaxregister  decrease 24
// CHECK: arith.cmpi eq, %{{.+}}, %c32
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: llvm.inline_asm has_side_effects {{.*}}cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [g], [$1], 16384;
// CHECK: llvm.inline_asm has_side_effects {{.*}}cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [g], [$1], 16384;
// CHECK-NEXT: nvvm.cp.async.bulk.commit.group
// CHECK-NEXT: nvvm.cp.async.bulk.wait_group 0 {read}
// CHECK: nvgpu.mbarrier.arrive
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.try_wait.parity
// CHECK: nvgpu.mbarrier.arrive.expect_tx %{{.+}}, %c16896 :
// CHECK: nvvm.cp.async.bulk.shared.cluster.global %{{.+}}, %{{.+}}, %{{.+}}, %c512_i32
// CHECK: nvgpu.tma.async.load
// CHECK: nvvm.setmaxregister  increase 240
// CHECK-NOT: memref.load %arg4
// CHECK: memref.view %{{.+}}[%c66560][] : {{.*}} to memref<8192xi32, #gpu.address_space<workgroup>>
// CHECK: memref.store %{{.+}} : memref<8192xi32, #gpu.address_space<workgroup>>
// CHECK-COUNT-7: arith.xori %[[ROW:.+]], %c{{[0-9]+}} : index
// CHECK: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: nvvm.barrier id = %c3_i32 number_of_threads = %c256_i32
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <row>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 64, k = 16>, D[<f32>, <zero>], A[<bf16>, <one>, <col>], B[<bf16>, <one>, <row>]
// CHECK-COUNT-3: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<bf16>, <one>, <col>], B[<bf16>, <one>, <row>]
// CHECK-NEXT: nvvm.wgmma.commit.group.sync.aligned
// CHECK-NEXT: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: nvgpu.mbarrier.arrive
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK: memref.view %{{.+}}[%c99328][] : {{.*}} to memref<16384xf32, #gpu.address_space<workgroup>>
// CHECK-COUNT-32: memref.store %{{.+}} : memref<16384xf32, #gpu.address_space<workgroup>>
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK: nvgpu.mbarrier.arrive
// CHECK-NOT: memref.atomic_rmw
// CHECK: gpu.return

// convert: a thread takes 8 columns of one row four times (64 rows x 8
// chunks of a panel, 128 threads): first all its loads of dq_accum, two
// 16-byte loads a chunk (the row's even and odd columns; every row of a
// tile is there, no guard); times the scale, one 16-byte store a chunk into
// a shared tile of 64 rows of 72 elements; a barrier; then 8 threads a row
// read it back and, where the row is inside Sq, store whole rows of dQ.
// CHECK-LABEL: gpu.func @attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dq_convert(
// CHECK-COUNT-8: vector.load %arg0[%{{.+}}] {alignment = 16 : i64} : memref<?xf32>, vector<4xf32>
// CHECK: %[[TILE:.+]] = memref.view %{{.+}}[%c0][] : memref<0xi8, #gpu.address_space<workgroup>> to memref<4608xbf16, #gpu.address_space<workgroup>>
// CHECK-COUNT-4: vector.store %{{.+}}, %[[TILE]][%{{.+}}] {alignment = 16 : i64} : memref<4608xbf16, #gpu.address_space<workgroup>>, vector<8xbf16>
// CHECK-NEXT: gpu.barrier
// CHECK: vector.load %[[TILE]]
// CHECK-NEXT: arith.cmpi slt, %{{.+}}, %arg4 : index
// CHECK-NEXT: scf.if
// CHECK: vector.store %{{.+}}, %arg1[%{{.+}}] {alignment = 16 : i64} : memref<?xbf16>, vector<8xbf16>
// CHECK-COUNT-3: vector.store %{{.+}}, %arg1[%{{.+}}] {alignment = 16 : i64} : memref<?xbf16>, vector<8xbf16>
// CHECK-NOT: vector.load %arg0
// CHECK: gpu.return

// On sm_80 the variant keeps the deterministic mma.sync kernels, named
// after the non-deterministic spec.
// SM80-DAG: gpu.func @attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dq_mma(
// SM80-DAG: gpu.func @attn_bf16_d64_dv64_bhsd_causal_bwd_nd_dkdv_mma(
// SM80-NOT: atomic_rmw

// ROUNDTRIP-LABEL: func.func @fused_d64
// ROUNDTRIP: attn.attention_grad {{.*}} mask = <causal> {deterministic = false} :
func.func @fused_d64(%q: tensor<1x2x128x64xbf16>, %k: tensor<1x2x128x64xbf16>, %v: tensor<1x2x128x64xbf16>, %o: tensor<1x2x128x64xbf16>, %do: tensor<1x2x128x64xbf16>, %lse: tensor<1x2x128xf32>) -> (tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do, %lse mask = <causal> {deterministic = false} : (tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128xf32>) -> (tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>)
  return %dq, %dk, %dv : tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>, tensor<1x2x128x64xbf16>
}

// -----

// Head dim 128 in a program, GQA 8/2, dynamic sizes: the host allocates
// Delta, row_stats and dq_accum ([B, 8, ceil(Sq / 64), 8192] f32) and launches prep,
// dK/dV and convert in their step order; each consumer warpgroup takes one
// of dQ's two column panels over the block's 128 keys (8 k-steps).
// HOST-LABEL: func.func @train_d128
// HOST: %[[DELTA:.*]] = memref.alloc(%[[B:.*]], %c8{{.*}}, %[[SQ:.*]]) : memref<?x?x?xf32>
// HOST: %[[STATS:.*]] = memref.alloc(%[[B]], %c8{{.*}}, %{{.*}}, %c128{{.*}}) : memref<?x?x?x?xf32>
// HOST: %[[ACC:.*]] = memref.alloc(%[[B]], %c8{{.*}}, %{{.*}}, %c8192) : memref<?x?x?x?xf32>
// HOST: gpu.launch_func @[[PREP:attn_bf16_d128_dv128_bhsd_causal_bwd_nd_prep]]::@[[PREP]] blocks in (%{{.*}}, %c8{{.*}}, %[[B]])
// HOST: gpu.launch_func @[[DKDV:attn_bf16_d128_dv128_bhsd_causal_bwd_nd_dkdv_dq_wgmma]]::@[[DKDV]] {{.*}}threads in (%c384{{.*}} dynamic_shared_memory_size %c230400_i32
// HOST: gpu.launch_func @[[CONV:attn_bf16_d128_dv128_bhsd_causal_bwd_nd_dq_convert]]::@[[CONV]]
// HOST-NOT: attn.attention_grad
// CHECK-LABEL: gpu.func @attn_bf16_d128_dv128_bhsd_causal_bwd_nd_dkdv_dq_wgmma(
// CHECK-COUNT-2: cp.reduce.async.bulk
// CHECK: nvvm.barrier id = %c3_i32 number_of_threads = %c256_i32
// CHECK-COUNT-8: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 64, k = 16>, D[<f32>, <{{zero|one}}>], A[<bf16>, <one>, <col>], B[<bf16>, <one>, <row>]
func.func @train_d128(%q: tensor<?x8x?x128xbf16>, %k: tensor<?x2x?x128xbf16>, %v: tensor<?x2x?x128xbf16>, %o: tensor<?x8x?x128xbf16>, %do: tensor<?x8x?x128xbf16>, %lse: tensor<?x8x?xf32>) -> (tensor<?x8x?x128xbf16>, tensor<?x2x?x128xbf16>, tensor<?x2x?x128xbf16>) {
  %dq, %dk, %dv = attn.attention_grad %q, %k, %v, %o, %do, %lse mask = <causal> {deterministic = false} : (tensor<?x8x?x128xbf16>, tensor<?x2x?x128xbf16>, tensor<?x2x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?x128xbf16>, tensor<?x8x?xf32>) -> (tensor<?x8x?x128xbf16>, tensor<?x2x?x128xbf16>, tensor<?x2x?x128xbf16>)
  return %dq, %dk, %dv : tensor<?x8x?x128xbf16>, tensor<?x2x?x128xbf16>, tensor<?x2x?x128xbf16>
}

// The atomic twin (a spec's "dq_reduce": "atomic"; the op has no attribute
// for this tuning choice): its own names; any other value is an error.
// ATOMIC: attn_bf16_d128_dv128_bhsd_causal_bwd_nd_atomic_prep.{ptx,json}
// ATOMIC: attn_bf16_d128_dv128_bhsd_causal_bwd_nd_atomic_dkdv_dq_wgmma.{ptx,json}
// ATOMIC: attn_bf16_d128_dv128_bhsd_causal_bwd_nd_atomic_dq_convert.{ptx,json}
// A deterministic spec ignores "dq_reduce": its kernels and names are the
// deterministic backward's.
// DET: attn_bf16_d64_dv64_bhsd_none_bwd_dq_wgmma.{ptx,json}
// DET: attn_bf16_d64_dv64_bhsd_none_bwd_dkdv_wgmma.{ptx,json}
// BAD: 'dq_reduce': unknown value
