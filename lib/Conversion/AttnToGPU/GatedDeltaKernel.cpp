//===- GatedDeltaKernel.cpp - chunked gated delta rule kernels ------------===//
//
// attn.gated_delta_rule (Gated DeltaNet, and Kimi Delta Attention with
// per-channel gates) as two kernels over chunks of C tokens, in f32.
//
// Within a chunk with incoming state S ([Dk, Dv]) and cumulative log gates
// G_i = g_0 + ... + g_i (per key channel for KDA, one per row for GDN), the
// recurrence is (docs/design-gated-delta.md)
//
//   A[i, j]   = beta_i Σ_d K[i, d] K[j, d] exp(G[i, d] - G[j, d])   (j < i)
//   Aqk[i, j] = Σ_d Q[i, d] K[j, d] exp(G[i, d] - G[j, d])          (j <= i)
//   T  = (I + A)^-1 diag(beta);  W = T (K ∘ exp(G));  U = T V
//   V' = U - W S
//   O  = (Q ∘ exp(G)) S + Aqk V'
//   S  = diag(exp(G_last)) S + (K ∘ exp(G_last - G))ᵀ V'
//
// * The chunk kernel (one block per chunk, value head and sequence, all
//   chunks at once) computes everything that does not need S: A and Aqk,
//   the triangular solve for T (forward substitution, four lanes per
//   column), W, U, Qg = Q ∘ exp(G), Kg = K ∘ exp(G_last - G) and
//   exp(G_last), into f32 workspaces.
// * The state kernel (one block per 16 value columns, value head and
//   sequence) carries S across the chunks in registers -- a thread holds
//   rows part, part + 8, ... of one column -- and per chunk computes V',
//   the output and the next state from the workspaces.
//
// Q and K are L2-normalized (if asked) and Q scaled in the chunk kernel.
// Decay factors are exp2 of log2-scaled gates; exp(G_i - G_j) is only
// evaluated for j <= i, where it is at most 1 for decaying gates.
//
//===----------------------------------------------------------------------===//

#include "KernelCommon.h"

#include "attn/Conversion/AttnToGPU.h"
#include "attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;
using attn::detail::createKernel;
using attn::detail::flat;
using attn::detail::hexBits;
using attn::detail::memrefParam;
using attn::detail::sizeParam;
using attn::detail::typeName;

namespace {
constexpr double kLog2e = 1.4426950408889634;
/// Threads of the chunk kernel; value columns per block and threads per
/// column (each owning every 8th row of S) in the state kernel.
constexpr int64_t kChunkThreads = 256, kColumns = 16, kParts = 8;
constexpr int64_t kStateThreads = kColumns * kParts;
constexpr int64_t kMaxSharedMemory = 227 * 1024;

/// The static sizes of a gated delta variant.
struct GdnShape {
  int64_t dk, dv, chunk;
  bool channel, l2norm, init;
  double scale;
  Type elt, gateElt, betaElt;

  static GdnShape get(GatedDeltaRuleOp op) {
    GdnShape s;
    auto q = cast<RankedTensorType>(op.getQuery().getType());
    auto v = cast<RankedTensorType>(op.getValue().getType());
    s.dk = q.getDimSize(3);
    s.dv = v.getDimSize(3);
    // The chunk length does not change the result: the kernels take at
    // most 64 (shared memory), the op's own if smaller.
    s.chunk = std::min<int64_t>(op.getChunkSize(), 64);
    s.channel = op.getGateKind() == GateKind::Channel;
    s.l2norm = op.getQkL2norm();
    s.init = static_cast<bool>(op.getInitialState());
    s.scale = op.getEffectiveScale().value_or(0.0);
    s.elt = q.getElementType();
    s.gateElt = cast<RankedTensorType>(op.getGate().getType()).getElementType();
    s.betaElt = cast<RankedTensorType>(op.getBeta().getType()).getElementType();
    return s;
  }
  int64_t gateCols() const { return channel ? dk : 1; }
  /// Chunk kernel: K, Q (rows padded by one against bank conflicts), V, G,
  /// beta, A, T.
  int64_t chunkSharedMemory() const {
    return 4 * (2 * chunk * (dk + 1) + chunk * (dv + 1) + chunk * gateCols() +
                chunk + 2 * chunk * (chunk + 1));
  }
  /// State kernel: W, Qg, Kg, U, Aqk, V', the inter-chunk outputs, exp(G_last).
  int64_t stateSharedMemory() const {
    return 4 * (3 * chunk * dk + chunk * kColumns + chunk * chunk +
                2 * chunk * kColumns + dk);
  }
};

/// Arithmetic on index and f32 values, and the small control-flow helpers
/// the two kernels share.
struct Emitter {
  ImplicitLocOpBuilder &b;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value f(double v) {
    return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
  }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value div(Value x, Value y) { return arith::DivUIOp::create(b, x, y); }
  Value rem(Value x, Value y) { return arith::RemUIOp::create(b, x, y); }
  Value lt(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ult, x, y);
  }
  Value le(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::ule, x, y);
  }
  Value eq(Value x, Value y) {
    return arith::CmpIOp::create(b, arith::CmpIPredicate::eq, x, y);
  }
  Value land(Value x, Value y) { return arith::AndIOp::create(b, x, y); }
  Value sel(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, c, x, y);
  }
  Value fadd(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value fsub(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
  Value fmul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value fma(Value x, Value y, Value z) {
    return math::FmaOp::create(b, x, y, z);
  }
  Value exp2(Value x) { return math::Exp2Op::create(b, x); }
  Value load(Value m, ValueRange i) { return memref::LoadOp::create(b, m, i); }
  void store(Value v, Value m, ValueRange i) {
    memref::StoreOp::create(b, v, m, i);
  }
  /// A load from global memory as f32.
  Value loadF32(Value m, Value i) {
    Value v = memref::LoadOp::create(b, m, i);
    return v.getType().isF32() ? v
                               : arith::ExtFOp::create(b, b.getF32Type(), v);
  }
  /// `m[i]` as f32 where `cond`, else 0 (nothing read).
  Value loadF32If(Value cond, Value m, Value i) {
    auto ifOp = scf::IfOp::create(b, TypeRange{b.getF32Type()}, cond,
                                  /*withElse=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    scf::YieldOp::create(b, loadF32(m, i));
    b.setInsertionPointToStart(&ifOp.getElseRegion().front());
    scf::YieldOp::create(b, f(0.0));
    return ifOp.getResult(0);
  }
  /// Runs `body` where `cond` holds.
  void when(Value cond, function_ref<void()> body) {
    auto ifOp = scf::IfOp::create(b, cond, /*withElse=*/false);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(&ifOp.getThenRegion().front());
    body();
  }
  /// for (i = lo; i < hi; i += step) body(i), carrying `init`.
  ValueRange loop(Value lo, Value hi, Value step, ValueRange init,
                  function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto forOp = scf::ForOp::create(b, lo, hi, step, init);
    OpBuilder::InsertionGuard guard(b);
    // Without iteration values the body comes with its yield.
    Block *block = forOp.getBody();
    if (!block->empty())
      block->back().erase();
    b.setInsertionPointToEnd(block);
    scf::YieldOp::create(
        b, body(forOp.getInductionVar(), forOp.getRegionIterArgs()));
    return forOp.getResults();
  }
  void loop(Value lo, Value hi, Value step, function_ref<void(Value)> body) {
    loop(lo, hi, step, ValueRange{}, [&](Value i, ValueRange) {
      body(i);
      return SmallVector<Value>{};
    });
  }
  /// The sum of `v` over the `lanes` lanes (a power of two) of a group.
  Value laneSum(Value v, int64_t lanes) {
    for (int32_t o = 1; o < lanes; o *= 2)
      v = fadd(v, gpu::ShuffleOp::create(b, v, o, 32, gpu::ShuffleMode::XOR)
                      .getShuffleResult());
    return v;
  }
  void barrier() { gpu::BarrierOp::create(b); }
};

/// Views of the dynamic shared memory, carved one after another.
struct SharedCarver {
  ImplicitLocOpBuilder &b;
  Value smem;
  Attribute space;
  int64_t offset = 0;

  Value operator()(ArrayRef<int64_t> dims) {
    auto type = MemRefType::get(dims, b.getF32Type(), AffineMap(), space);
    Value v = memref::ViewOp::create(
        b, type, smem, arith::ConstantIndexOp::create(b, offset), ValueRange{});
    int64_t n = 4;
    for (int64_t d : dims)
      n *= d;
    offset += n;
    return v;
  }
};

std::string variantName(GatedDeltaRuleOp op, StringRef kernel) {
  GdnShape s = GdnShape::get(op);
  std::string name;
  llvm::raw_string_ostream os(name);
  os << "attn_gdn_" << kernel << "_" << typeName(s.elt) << "_dk" << s.dk
     << "_dv" << s.dv << "_c" << s.chunk;
  if (kernel == "chunk") {
    os << "_" << stringifyGateKind(op.getGateKind()) << typeName(s.gateElt)
       << "_beta" << typeName(s.betaElt);
    if (s.l2norm)
      os << "_l2";
    os << "_s" << hexBits(s.scale);
  } else if (s.init) {
    os << "_init";
  }
  return name;
}
} // namespace

LogicalResult mlir::attn::checkGatedDeltaKernelEligible(GatedDeltaRuleOp op,
                                                        std::string *why) {
  auto fail = [&](const Twine &msg) {
    if (why)
      *why = msg.str();
    return failure();
  };
  auto q = cast<RankedTensorType>(op.getQuery().getType());
  auto v = cast<RankedTensorType>(op.getValue().getType());
  if (q.isDynamicDim(3) || v.isDynamicDim(3))
    return fail("the gated delta GPU kernels need static head dims");
  Type elt = q.getElementType();
  if (!elt.isF16() && !elt.isBF16() && !elt.isF32())
    return fail("the gated delta GPU kernels take f16, bf16 or f32 (got " +
                typeName(elt) + ")");
  GdnShape s = GdnShape::get(op);
  if (s.chunkSharedMemory() > kMaxSharedMemory ||
      s.stateSharedMemory() > kMaxSharedMemory)
    return fail("the gated delta GPU kernels keep a chunk in shared memory: "
                "head dims " +
                Twine(s.dk) + " / " + Twine(s.dv) + " with chunks of " +
                Twine(s.chunk) + " need " +
                Twine(std::max(s.chunkSharedMemory(), s.stateSharedMemory())) +
                " bytes (at most " + Twine(kMaxSharedMemory) + ")");
  return success();
}

/// The chunk kernel (see the file comment). Grid (chunks, Hv, B).
static void buildChunkKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                 GatedDeltaRuleOp op) {
  ImplicitLocOpBuilder b(op.getLoc(), builder);
  Block &body = func.getBody().front();
  b.setInsertionPointToStart(&body);
  Emitter e{b};
  const GdnShape s = GdnShape::get(op);
  const int64_t Dk = s.dk, Dv = s.dv, C = s.chunk, Gc = s.gateCols();
  unsigned n = 0;
  Value qArg = body.getArgument(n++), kArg = body.getArgument(n++),
        vArg = body.getArgument(n++), gArg = body.getArgument(n++),
        betaArg = body.getArgument(n++);
  Value wArg = body.getArgument(n++), uArg = body.getArgument(n++),
        qgArg = body.getArgument(n++), kgArg = body.getArgument(n++),
        aqkArg = body.getArgument(n++), gcArg = body.getArgument(n++);
  Value tLen = body.getArgument(n++), hk = body.getArgument(n++),
        hv = body.getArgument(n++);

  SharedCarver carve{b, attn::detail::getDynamicSharedMemory(b, b.getLoc(), func),
                     gpu::AddressSpaceAttr::get(
                         b.getContext(),
                         gpu::GPUDialect::getWorkgroupAddressSpace())};
  Value kS = carve({C, Dk + 1}), qS = carve({C, Dk + 1}),
        vS = carve({C, Dv + 1}), gS = carve({C, Gc}), betaS = carve({C}),
        aS = carve({C, C + 1}), tS = carve({C, C + 1});
  assert(carve.offset == s.chunkSharedMemory() && "shared memory layout");

  Value c0 = e.idx(0), c1 = e.idx(1);
  Value chunk = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value head = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value nThreads = e.idx(kChunkThreads);
  Value keyHead = e.div(head, e.div(hv, hk));
  Value t0 = e.mul(chunk, e.idx(C));
  Value rows = arith::MinUIOp::create(b, e.idx(C), e.sub(tLen, t0));
  Value numChunks = arith::CeilDivUIOp::create(b, tLen, e.idx(C));
  // Token row (b, t0 + i) of [B, T, H, dim] tensors, and of the [B, Hv, T,
  // dim] workspaces.
  auto tokenRow = [&](Value i, Value heads, Value h) {
    return e.add(e.mul(e.add(e.mul(bIdx, tLen), e.add(t0, i)), heads), h);
  };
  auto workRow = [&](Value i) {
    return e.add(e.mul(e.add(e.mul(bIdx, hv), head), tLen), e.add(t0, i));
  };

  // Rows of the chunk (zeros past the sequence): K, Q, V, gates (log2), beta.
  e.loop(tid, e.idx(C * Dk), nThreads, [&](Value x) {
    Value i = e.div(x, e.idx(Dk)), d = e.rem(x, e.idx(Dk));
    Value inside = e.lt(i, rows);
    Value at = e.add(e.mul(tokenRow(i, hk, keyHead), e.idx(Dk)), d);
    e.store(e.loadF32If(inside, kArg, at), kS, {i, d});
    e.store(e.loadF32If(inside, qArg, at), qS, {i, d});
    if (s.channel) {
      Value gAt = e.add(e.mul(tokenRow(i, hv, head), e.idx(Dk)), d);
      e.store(e.fmul(e.loadF32If(inside, gArg, gAt), e.f(kLog2e)), gS, {i, d});
    }
  });
  e.loop(tid, e.idx(C * Dv), nThreads, [&](Value x) {
    Value i = e.div(x, e.idx(Dv)), d = e.rem(x, e.idx(Dv));
    Value at = e.add(e.mul(tokenRow(i, hv, head), e.idx(Dv)), d);
    e.store(e.loadF32If(e.lt(i, rows), vArg, at), vS, {i, d});
  });
  e.loop(tid, e.idx(C), nThreads, [&](Value i) {
    Value inside = e.lt(i, rows);
    Value at = tokenRow(i, hv, head);
    e.store(e.loadF32If(inside, betaArg, at), betaS, {i});
    if (!s.channel)
      e.store(e.fmul(e.loadF32If(inside, gArg, at), e.f(kLog2e)), gS,
              {i, c0});
  });
  e.barrier();

  // L2 normalization of the Q and K rows (a warp per row), the scale.
  Value warp = e.div(tid, e.idx(32)), lane = e.rem(tid, e.idx(32));
  for (Value m : {qS, kS}) {
    double factor = m == qS ? s.scale : 1.0;
    if (!s.l2norm && factor == 1.0)
      continue;
    e.loop(warp, e.idx(C), e.idx(kChunkThreads / 32), [&](Value i) {
      Value inv = e.f(factor);
      if (s.l2norm) {
        Value ss = e.loop(lane, e.idx(Dk), e.idx(32), ValueRange{e.f(0.0)},
                          [&](Value d, ValueRange acc) {
                            Value x = e.load(m, {i, d});
                            return SmallVector<Value>{e.fma(x, x, acc[0])};
                          })[0];
        ss = e.laneSum(ss, 32);
        inv = e.fmul(math::RsqrtOp::create(b, e.fadd(ss, e.f(1e-6))),
                     e.f(factor));
      }
      e.loop(lane, e.idx(Dk), e.idx(32), [&](Value d) {
        e.store(e.fmul(e.load(m, {i, d}), inv), m, {i, d});
      });
    });
  }
  // Cumulative gates (rows past the sequence add 0, so the last row holds
  // G_last).
  e.loop(tid, e.idx(Gc), nThreads, [&](Value d) {
    e.loop(c1, e.idx(C), c1, ValueRange{e.load(gS, {c0, d})},
           [&](Value i, ValueRange acc) {
             Value g = e.fadd(acc[0], e.load(gS, {i, d}));
             e.store(g, gS, {i, d});
             return SmallVector<Value>{g};
           });
  });
  e.barrier();

  // A (strictly lower) and Aqk (lower, to the workspace).
  e.loop(tid, e.idx(C * C), nThreads, [&](Value x) {
    Value i = e.div(x, e.idx(C)), j = e.rem(x, e.idx(C));
    auto ifOp = scf::IfOp::create(b, TypeRange{b.getF32Type(), b.getF32Type()},
                                  e.le(j, i), /*withElse=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(&ifOp.getThenRegion().front());
      ValueRange dots = e.loop(
          c0, e.idx(Dk), c1, ValueRange{e.f(0.0), e.f(0.0)},
          [&](Value d, ValueRange acc) {
            Value kj = e.load(kS, {j, d});
            if (s.channel)
              kj = e.fmul(kj, e.exp2(e.fsub(e.load(gS, {i, d}),
                                            e.load(gS, {j, d}))));
            return SmallVector<Value>{e.fma(e.load(kS, {i, d}), kj, acc[0]),
                                      e.fma(e.load(qS, {i, d}), kj, acc[1])};
          });
      Value kk = dots[0], qk = dots[1];
      if (!s.channel) {
        Value decay =
            e.exp2(e.fsub(e.load(gS, {i, c0}), e.load(gS, {j, c0})));
        kk = e.fmul(kk, decay);
        qk = e.fmul(qk, decay);
      }
      Value a = e.sel(e.lt(j, i), e.fmul(kk, e.load(betaS, {i})), e.f(0.0));
      scf::YieldOp::create(b, ValueRange{a, qk});
      b.setInsertionPointToStart(&ifOp.getElseRegion().front());
      scf::YieldOp::create(b, ValueRange{e.f(0.0), e.f(0.0)});
    }
    e.store(ifOp.getResult(0), aS, {i, j});
    e.when(e.lt(i, rows), [&] {
      e.store(ifOp.getResult(1), aqkArg,
              {e.add(e.mul(workRow(i), e.idx(C)), j)});
    });
  });
  e.barrier();

  // T = (I + A)^-1 diag(beta) by forward substitution, column by column:
  // T[i, c] = beta_i [i = c] - Σ_{j < i} A[i, j] T[j, c]. Four lanes per
  // column split the sum (lane p takes j = p mod 4 and alone writes those
  // rows, so that it only reads its own writes).
  e.when(e.lt(tid, e.idx(4 * C)), [&] {
    Value col = e.div(tid, e.idx(4)), part = e.rem(tid, e.idx(4));
    e.loop(c0, e.idx(C), c1, [&](Value i) {
      Value partial =
          e.loop(part, i, e.idx(4), ValueRange{e.f(0.0)},
                 [&](Value j, ValueRange acc) {
                   return SmallVector<Value>{e.fma(
                       e.load(aS, {i, j}), e.load(tS, {j, col}), acc[0])};
                 })[0];
      Value sum = e.laneSum(partial, 4);
      Value diag = e.sel(e.eq(i, col), e.load(betaS, {i}), e.f(0.0));
      e.when(e.eq(e.rem(i, e.idx(4)), part),
             [&] { e.store(e.fsub(diag, sum), tS, {i, col}); });
    });
  });
  e.barrier();

  // Qg = Q ∘ exp(G), Kg = K ∘ exp(G_last - G) and exp(G_last) to the
  // workspaces; K becomes K ∘ exp(G) for W.
  Value last = e.idx(C - 1);
  e.loop(tid, e.idx(C * Dk), nThreads, [&](Value x) {
    Value i = e.div(x, e.idx(Dk)), d = e.rem(x, e.idx(Dk));
    Value gd = s.channel ? d : c0;
    Value g = e.load(gS, {i, gd}), gLast = e.load(gS, {last, gd});
    Value k = e.load(kS, {i, d});
    e.when(e.lt(i, rows), [&] {
      Value at = e.add(e.mul(workRow(i), e.idx(Dk)), d);
      e.store(e.fmul(e.load(qS, {i, d}), e.exp2(g)), qgArg, {at});
      e.store(e.fmul(k, e.exp2(e.fsub(gLast, g))), kgArg, {at});
    });
    e.store(e.fmul(k, e.exp2(g)), kS, {i, d});
  });
  e.loop(tid, e.idx(Dk), nThreads, [&](Value d) {
    Value at = e.add(
        e.mul(e.add(e.mul(e.add(e.mul(bIdx, hv), head), numChunks), chunk),
              e.idx(Dk)),
        d);
    e.store(e.exp2(e.load(gS, {last, s.channel ? d : c0})), gcArg, {at});
  });
  e.barrier();

  // W = T (K ∘ exp(G)) and U = T V (T is lower triangular).
  auto product = [&](Value src, int64_t dim, Value dst) {
    e.loop(tid, e.mul(rows, e.idx(dim)), nThreads, [&](Value x) {
      Value i = e.div(x, e.idx(dim)), d = e.rem(x, e.idx(dim));
      Value acc = e.loop(c0, e.add(i, c1), c1, ValueRange{e.f(0.0)},
                         [&](Value j, ValueRange a) {
                           return SmallVector<Value>{e.fma(
                               e.load(tS, {i, j}), e.load(src, {j, d}), a[0])};
                         })[0];
      e.store(acc, dst, {e.add(e.mul(workRow(i), e.idx(dim)), d)});
    });
  };
  product(kS, Dk, wArg);
  product(vS, Dv, uArg);
}

/// The state kernel (see the file comment). Grid (ceil(Dv / 16), Hv, B).
static void buildStateKernelBody(OpBuilder &builder, gpu::GPUFuncOp func,
                                 GatedDeltaRuleOp op) {
  ImplicitLocOpBuilder b(op.getLoc(), builder);
  Block &body = func.getBody().front();
  b.setInsertionPointToStart(&body);
  Emitter e{b};
  const GdnShape s = GdnShape::get(op);
  const int64_t Dk = s.dk, Dv = s.dv, C = s.chunk;
  const int64_t M = (Dk + kParts - 1) / kParts;
  unsigned n = 0;
  Value wArg = body.getArgument(n++), uArg = body.getArgument(n++),
        qgArg = body.getArgument(n++), kgArg = body.getArgument(n++),
        aqkArg = body.getArgument(n++), gcArg = body.getArgument(n++);
  Value initArg = s.init ? body.getArgument(n++) : Value();
  Value oArg = body.getArgument(n++), finalArg = body.getArgument(n++);
  Value tLen = body.getArgument(n++), hv = body.getArgument(n++);

  SharedCarver carve{b, attn::detail::getDynamicSharedMemory(b, b.getLoc(), func),
                     gpu::AddressSpaceAttr::get(
                         b.getContext(),
                         gpu::GPUDialect::getWorkgroupAddressSpace())};
  Value wS = carve({C, Dk}), qgS = carve({C, Dk}), kgS = carve({C, Dk}),
        uS = carve({C, kColumns}), aS = carve({C, C}),
        vnS = carve({C, kColumns}), onS = carve({C, kColumns}),
        gcS = carve({Dk});
  assert(carve.offset == s.stateSharedMemory() && "shared memory layout");

  Value c0 = e.idx(0), c1 = e.idx(1);
  Value slice = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value head = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value bIdx = gpu::BlockIdOp::create(b, gpu::Dimension::z);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value nThreads = e.idx(kStateThreads);
  Value local = e.div(tid, e.idx(kParts)), part = e.rem(tid, e.idx(kParts));
  Value col = e.add(e.mul(slice, e.idx(kColumns)), local);
  Value colOk = e.lt(col, e.idx(Dv));
  Value numChunks = arith::CeilDivUIOp::create(b, tLen, e.idx(C));
  Value headRow = e.add(e.mul(bIdx, hv), head);
  // This thread's rows of S: part + 8m, m < M.
  SmallVector<Value> rowOf, rowOk;
  for (int64_t m = 0; m < M; ++m) {
    rowOf.push_back(e.add(part, e.idx(kParts * m)));
    rowOk.push_back(e.land(e.lt(rowOf.back(), e.idx(Dk)), colOk));
  }
  auto stateAt = [&](int64_t m) {
    return e.add(e.mul(e.add(e.mul(headRow, e.idx(Dk)), rowOf[m]), e.idx(Dv)),
                 col);
  };
  SmallVector<Value> state;
  for (int64_t m = 0; m < M; ++m)
    state.push_back(s.init ? e.loadF32If(rowOk[m], initArg, stateAt(m))
                           : e.f(0.0));
  // rowOf[m] clamped into the rows (the loads of rows past Dk meet zero
  // state and are discarded).
  SmallVector<Value> rowIn;
  for (int64_t m = 0; m < M; ++m)
    rowIn.push_back(arith::MinUIOp::create(b, rowOf[m], e.idx(Dk - 1)));

  ValueRange finalState = e.loop(
      c0, numChunks, c1, state, [&](Value chunk, ValueRange sIn) {
        Value t0 = e.mul(chunk, e.idx(C));
        Value rows = arith::MinUIOp::create(b, e.idx(C), e.sub(tLen, t0));
        Value workRow0 = e.add(e.mul(headRow, tLen), t0);
        // The chunk's workspace rows into shared memory.
        e.loop(tid, e.mul(rows, e.idx(Dk)), nThreads, [&](Value x) {
          Value i = e.div(x, e.idx(Dk)), d = e.rem(x, e.idx(Dk));
          Value at = e.add(e.mul(workRow0, e.idx(Dk)), x);
          e.store(e.load(wArg, {at}), wS, {i, d});
          e.store(e.load(qgArg, {at}), qgS, {i, d});
          e.store(e.load(kgArg, {at}), kgS, {i, d});
        });
        e.loop(tid, e.mul(rows, e.idx(kColumns)), nThreads, [&](Value x) {
          Value i = e.div(x, e.idx(kColumns)), c = e.rem(x, e.idx(kColumns));
          Value gcol = e.add(e.mul(slice, e.idx(kColumns)), c);
          Value at = e.add(e.mul(e.add(workRow0, i), e.idx(Dv)), gcol);
          e.store(e.loadF32If(e.lt(gcol, e.idx(Dv)), uArg, at), uS, {i, c});
        });
        e.loop(tid, e.mul(rows, e.idx(C)), nThreads, [&](Value x) {
          Value i = e.div(x, e.idx(C)), j = e.rem(x, e.idx(C));
          e.store(e.load(aqkArg, {e.add(e.mul(workRow0, e.idx(C)), x)}), aS,
                  {i, j});
        });
        e.loop(tid, e.idx(Dk), nThreads, [&](Value d) {
          Value at = e.add(
              e.mul(e.add(e.mul(headRow, numChunks), chunk), e.idx(Dk)), d);
          e.store(e.load(gcArg, {at}), gcS, {d});
        });
        e.barrier();

        // V' = U - W S and the inter-chunk outputs Qg S, row by row.
        e.loop(c0, rows, c1, [&](Value i) {
          Value pw = e.f(0.0), pq = e.f(0.0);
          for (int64_t m = 0; m < M; ++m) {
            pw = e.fma(e.load(wS, {i, rowIn[m]}), sIn[m], pw);
            pq = e.fma(e.load(qgS, {i, rowIn[m]}), sIn[m], pq);
          }
          pw = e.laneSum(pw, kParts);
          pq = e.laneSum(pq, kParts);
          e.when(e.eq(part, c0), [&] {
            e.store(e.fsub(e.load(uS, {i, local}), pw), vnS, {i, local});
            e.store(pq, onS, {i, local});
          });
        });
        e.barrier();

        // O = Qg S + Aqk V' (lanes split j).
        e.loop(c0, rows, c1, [&](Value i) {
          Value partial =
              e.loop(part, e.add(i, c1), e.idx(kParts), ValueRange{e.f(0.0)},
                     [&](Value j, ValueRange acc) {
                       return SmallVector<Value>{e.fma(
                           e.load(aS, {i, j}), e.load(vnS, {j, local}),
                           acc[0])};
                     })[0];
          Value o = e.fadd(e.laneSum(partial, kParts), e.load(onS, {i, local}));
          e.when(e.land(e.eq(part, c0), colOk), [&] {
            Value at = e.add(
                e.mul(e.add(e.mul(e.add(e.mul(bIdx, tLen), e.add(t0, i)), hv),
                            head),
                      e.idx(Dv)),
                col);
            if (!s.elt.isF32())
              o = arith::TruncFOp::create(b, s.elt, o);
            e.store(o, oArg, {at});
          });
        });

        // S = diag(exp(G_last)) S + Kgᵀ V'.
        SmallVector<Value> decayed;
        for (int64_t m = 0; m < M; ++m)
          decayed.push_back(e.fmul(sIn[m], e.load(gcS, {rowIn[m]})));
        SmallVector<Value> next(
            e.loop(c0, rows, c1, decayed, [&](Value i, ValueRange acc) {
              Value vn = e.load(vnS, {i, local});
              SmallVector<Value> out;
              for (int64_t m = 0; m < M; ++m)
                out.push_back(e.fma(e.load(kgS, {i, rowIn[m]}), vn, acc[m]));
              return out;
            }));
        // Rows past Dk and columns past Dv stay 0.
        for (int64_t m = 0; m < M; ++m)
          next[m] = e.sel(rowOk[m], next[m], e.f(0.0));
        e.barrier();
        return next;
      });
  for (int64_t m = 0; m < M; ++m)
    e.when(rowOk[m], [&] { e.store(finalState[m], finalArg, {stateAt(m)}); });
}

LogicalResult
mlir::attn::buildGatedDeltaKernels(OpBuilder &builder, ModuleOp module,
                                   GatedDeltaRuleOp op,
                                   SmallVectorImpl<NamedAttribute> &manifests) {
  std::string why;
  if (failed(checkGatedDeltaKernelEligible(op, &why)))
    return op.emitOpError(why);
  const GdnShape s = GdnShape::get(op);
  Location loc = op.getLoc();
  Type f32 = builder.getF32Type(), index = builder.getIndexType();
  // Each kernel's variant names what it depends on: the chunk kernel the
  // inputs' preparation, the state kernel the initial state.
  llvm::json::Object chunkVariant{
      {"op", "gated_delta_rule"},
      {"dtype", typeName(s.elt)},
      {"key_head_dim", s.dk},
      {"value_head_dim", s.dv},
      {"chunk", s.chunk},
      {"gate_kind", stringifyGateKind(op.getGateKind())},
      {"gate_dtype", typeName(s.gateElt)},
      {"beta_dtype", typeName(s.betaElt)},
      {"qk_l2norm", s.l2norm},
      {"scale", static_cast<double>(static_cast<float>(s.scale))}};
  llvm::json::Object stateVariant{{"op", "gated_delta_rule"},
                                  {"dtype", typeName(s.elt)},
                                  {"key_head_dim", s.dk},
                                  {"value_head_dim", s.dv},
                                  {"chunk", s.chunk},
                                  {"initial_state", s.init}};
  llvm::json::Array gateShape{"B", "T", "Hv"};
  if (s.channel)
    gateShape.push_back(s.dk);
  auto work = [&](StringRef name, llvm::json::Array shape) {
    return memrefParam(name, "workspace", f32, std::move(shape));
  };

  // The chunk kernel.
  {
    std::string name = variantName(op, "chunk");
    llvm::json::Array params;
    params.push_back(memrefParam("q", "query", s.elt,
                                 llvm::json::Array{"B", "T", "Hk", s.dk}));
    params.push_back(memrefParam("k", "key", s.elt,
                                 llvm::json::Array{"B", "T", "Hk", s.dk}));
    params.push_back(memrefParam("v", "value", s.elt,
                                 llvm::json::Array{"B", "T", "Hv", s.dv}));
    params.push_back(memrefParam("g", "gate", s.gateElt, std::move(gateShape)));
    params.push_back(memrefParam("beta", "beta", s.betaElt,
                                 llvm::json::Array{"B", "T", "Hv"}));
    params.push_back(work("w", llvm::json::Array{"B", "Hv", "T", s.dk}));
    params.push_back(work("u", llvm::json::Array{"B", "Hv", "T", s.dv}));
    params.push_back(work("qg", llvm::json::Array{"B", "Hv", "T", s.dk}));
    params.push_back(work("kg", llvm::json::Array{"B", "Hv", "T", s.dk}));
    params.push_back(work("aqk", llvm::json::Array{"B", "Hv", "T", s.chunk}));
    params.push_back(work("gc", llvm::json::Array{"B", "Hv", "Chunks", s.dk}));
    for (StringRef size : {"T", "Hk", "Hv"})
      params.push_back(sizeParam(size));
    SmallVector<Type> argTypes{flat(s.elt),     flat(s.elt),      flat(s.elt),
                               flat(s.gateElt), flat(s.betaElt)};
    argTypes.append(6, flat(f32));
    argTypes.append(3, index);
    llvm::json::Object manifest{
        {"entry", name},
        {"params", std::move(params)},
        {"grid", llvm::json::Array{"Chunks", "Hv", "B"}},
        {"block", llvm::json::Array{kChunkThreads, 1, 1}},
        {"kernel", "gated_delta.chunk"},
        {"dynamic_shared_memory", s.chunkSharedMemory()},
        {"variant", std::move(chunkVariant)}};
    if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
      gpu::GPUFuncOp func =
          createKernel(builder, module, loc, name, argTypes, kChunkThreads);
      OpBuilder::InsertionGuard guard(builder);
      buildChunkKernelBody(builder, func, op);
      builder.setInsertionPointToEnd(&func.getBody().front());
      gpu::ReturnOp::create(builder, loc);
    }
    attn::detail::addManifest(builder, manifests, name, std::move(manifest));
  }

  // The state kernel.
  {
    std::string name = variantName(op, "state");
    llvm::json::Array params;
    params.push_back(work("w", llvm::json::Array{"B", "Hv", "T", s.dk}));
    params.push_back(work("u", llvm::json::Array{"B", "Hv", "T", s.dv}));
    params.push_back(work("qg", llvm::json::Array{"B", "Hv", "T", s.dk}));
    params.push_back(work("kg", llvm::json::Array{"B", "Hv", "T", s.dk}));
    params.push_back(work("aqk", llvm::json::Array{"B", "Hv", "T", s.chunk}));
    params.push_back(work("gc", llvm::json::Array{"B", "Hv", "Chunks", s.dk}));
    SmallVector<Type> argTypes(6, flat(f32));
    if (s.init) {
      params.push_back(memrefParam("initial_state", "initial_state", f32,
                                   llvm::json::Array{"B", "Hv", s.dk, s.dv}));
      argTypes.push_back(flat(f32));
    }
    params.push_back(
        memrefParam("o", "output", s.elt, llvm::json::Array{"B", "T", "Hv", s.dv}));
    params.push_back(memrefParam("final_state", "final_state", f32,
                                 llvm::json::Array{"B", "Hv", s.dk, s.dv}));
    argTypes.append({flat(s.elt), flat(f32)});
    for (StringRef size : {"T", "Hv"})
      params.push_back(sizeParam(size));
    argTypes.append(2, index);
    llvm::json::Object manifest{
        {"entry", name},
        {"params", std::move(params)},
        {"grid", llvm::json::Array{(s.dv + kColumns - 1) / kColumns, "Hv", "B"}},
        {"block", llvm::json::Array{kStateThreads, 1, 1}},
        {"kernel", "gated_delta.state"},
        {"dynamic_shared_memory", s.stateSharedMemory()},
        {"variant", std::move(stateVariant)}};
    if (!module.lookupSymbol<gpu::GPUModuleOp>(name)) {
      gpu::GPUFuncOp func =
          createKernel(builder, module, loc, name, argTypes, kStateThreads);
      OpBuilder::InsertionGuard guard(builder);
      buildStateKernelBody(builder, func, op);
      builder.setInsertionPointToEnd(&func.getBody().front());
      gpu::ReturnOp::create(builder, loc);
    }
    attn::detail::addManifest(builder, manifests, name, std::move(manifest));
  }
  return success();
}
