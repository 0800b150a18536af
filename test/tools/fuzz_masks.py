# Semantic fuzzing of attn-fuse's mask analysis: "never changes what is
# masked", checked by running both sides.
#
# From a seed, builds unfused linalg attention graphs (batch_matmul, a
# linalg.generic that masks the scores, linalg.softmax, batch_matmul) whose
# mask is a random predicate over linalg.index values: cmpi of every
# predicate on index, i64, i32, i16 and i8 (index_cast / index_castui,
# extsi / extui / trunci, so narrow types wrap), addi / subi / muli / shli,
# min / max signed and unsigned, divsi / remsi / floordivsi / ceildivsi by
# constants, andi / ori / xori (and xori with true as negation), select on
# i1, constants, the batch index, the sizes as constants, and now and then a
# test of the score itself (cmpf). Half of the
# predicates are built to be bands (two comparisons of a·j + b·i + c, in
# random spellings), the rest are anything. The mask is applied as
# select(pred, s, m), select(pred, m, s), s + select(pred, 0, m) or
# s + select(pred, m, 0), with m = -inf, the lowest finite f32 (the masking
# values attn-fuse knows), or -1e4 (which it must treat as a bias or leave
# alone). Sq and Sk are 1 to 20, independently. The graphs: static 3-D ones,
# 4-D ones with dynamic sequence lengths (the mask may read Sq and Sk through
# tensor.dim; run at three size pairs), constant mask tensors (bands, bands
# with one element flipped, random bits), and training graphs (forward +
# autograd backward, the backward re-applying the same mask, none, or
# another one: attn.attention_grad must take the forward's mask only).
#
# Every graph goes through `attn-opt --attn-fuse`, which must succeed. Where
# it fused (an attn.attention appears), the graph runs on the CPU with and
# without fusion (attn-to-cpu, mlir-runner) on the same random inputs, and
# the outputs must agree within 1e-5 of their scale (for training graphs dQ,
# dK and dV too, where no row is all masked). The one documented
# difference (docs/AttnPasses.md, attn-fuse's numerics): a row whose keys are
# all masked gives 0 fused, where the unfused graph gives NaN (-inf) or the
# uniform average of V (the lowest finite value); such rows must be exactly
# 0 fused, and the unfused side must be NaN or that average. A fused output
# with a NaN fails.
#
# Failing graphs are written under --out with the reason; `--seed S --only N`
# regenerates input N. The output ends with "N inputs, M fused, K failures".
#
# One RUN line: 120 inputs (about 25 fused), about 1 min on 2 busy cores. A
# longer campaign: --seed N --count 2000.
#
# REQUIRES: numpy
# RUN: rm -rf %t && mkdir -p %t
# RUN: %numpy_python %s --attn-opt attn-opt --seed 1 --count 120 --out %t


import argparse
import os
import random
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))

INT_TYPES = ["index", "i64", "i32", "i16", "i8"]
LOWEST_F32 = "0xFF7FFFFF"
BIG_NEGATIVE = "-1.000000e+04"
NEG_INF = "0xFF800000"
PREDICATES = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]


class Body:
    """The ops of the mask's linalg.generic body, in SSA order."""

    def __init__(self, rng, sq, sk, dynamic):
        self.rng, self.sq, self.sk, self.dynamic = rng, sq, sk, dynamic
        self.lines, self.n, self.consts = [], 0, {}

    def fresh(self):
        self.n += 1
        return f"%v{self.n}"

    def emit(self, text):
        name = self.fresh()
        self.lines.append(f"    {name} = {text}")
        return name

    def const(self, value, ty):
        key = (value, ty)
        if key not in self.consts:
            if ty == "i1":
                self.consts[key] = self.emit(f"arith.constant {'true' if value else 'false'}")
            else:
                self.consts[key] = self.emit(f"arith.constant {value} : {ty}")
        return self.consts[key]

    # Integers -------------------------------------------------------------

    def index_leaf(self, which):
        return {"i": "%i", "j": "%j", "b": "%b"}[which]

    def cast(self, v, src, dst):
        """v of type src as type dst."""
        if src == dst:
            return v
        r = self.rng
        if src == "index" or dst == "index":
            op = r.choice(["arith.index_cast", "arith.index_castui"])
            return self.emit(f"{op} {v} : {src} to {dst}")
        width = lambda t: int(t[1:])
        if width(dst) > width(src):
            op = r.choice(["arith.extsi", "arith.extui"])
        else:
            op = "arith.trunci"
        return self.emit(f"{op} {v} : {src} to {dst}")

    def leaf(self, ty):
        r = self.rng
        roll = r.random()
        if roll < 0.42:
            v, src = self.index_leaf("i"), "index"
        elif roll < 0.84:
            v, src = self.index_leaf("j"), "index"
        elif roll < 0.88:
            v, src = self.index_leaf("b"), "index"
        elif roll < 0.93 and self.dynamic:
            v, src = r.choice(["%sq", "%sk"]), "index"
        elif roll < 0.93:
            return self.const(r.choice([self.sq, self.sk, self.sk - self.sq]), ty)
        else:
            return self.const(r.randint(-24, 24), ty)
        if ty != "index" and r.random() < 0.3:
            # Cast through another integer type first (i64 → i8 wraps).
            mid = r.choice(INT_TYPES[1:])
            return self.cast(self.cast(v, src, mid), mid, ty)
        return self.cast(v, src, ty)

    def integer(self, ty, depth):
        r = self.rng
        if depth <= 0 or r.random() < 0.3:
            return self.leaf(ty)
        roll = r.random()
        if roll < 0.45:
            op = r.choice(["addi", "subi", "addi", "subi", "muli", "maxsi", "minsi", "maxui", "minui"])
            a = self.integer(ty, depth - 1)
            b = self.const(r.randint(-3, 8), ty) if op == "muli" and r.random() < 0.7 \
                else self.integer(ty, depth - 1)
            return self.emit(f"arith.{op} {a}, {b} : {ty}")
        if roll < 0.6:
            op = r.choice(["divsi", "remsi", "floordivsi", "ceildivsi", "divui", "remui"])
            a = self.integer(ty, depth - 1)
            return self.emit(f"arith.{op} {a}, {self.const(r.randint(1, 5), ty)} : {ty}")
        if roll < 0.68:
            a = self.integer(ty, depth - 1)
            return self.emit(f"arith.shli {a}, {self.const(r.randint(0, 3), ty)} : {ty}")
        if roll < 0.76:
            c = self.boolean(depth - 1)
            a, b = self.integer(ty, depth - 1), self.integer(ty, depth - 1)
            return self.emit(f"arith.select {c}, {a}, {b} : {ty}")
        if roll < 0.88 and ty != "index":
            # From another integer type.
            src = r.choice(INT_TYPES)
            return self.cast(self.integer(src, depth - 1), src, ty)
        return self.leaf(ty)

    # Booleans -------------------------------------------------------------

    def compare(self, a, b, ty, predicates=PREDICATES):
        return self.emit(f"arith.cmpi {self.rng.choice(predicates)}, {a}, {b} : {ty}")

    def boolean(self, depth):
        r = self.rng
        roll = r.random()
        if depth <= 0 or roll < 0.45:
            ty = r.choice(INT_TYPES)
            return self.compare(self.integer(ty, depth), self.integer(ty, depth), ty)
        if roll < 0.8:
            op = r.choice(["andi", "ori", "xori"])
            return self.emit(f"arith.{op} {self.boolean(depth - 1)}, {self.boolean(depth - 1)} : i1")
        if roll < 0.9:
            return self.emit(f"arith.xori {self.boolean(depth - 1)}, {self.const(1, 'i1')} : i1")
        if roll < 0.95:
            c, a, b = self.boolean(depth - 1), self.boolean(depth - 1), self.boolean(depth - 1)
            return self.emit(f"arith.select {c}, {a}, {b} : i1")
        if roll < 0.98:
            # A data-dependent test of the score itself: never a band.
            pred = r.choice(["ogt", "olt", "oge", "ule", "une", "ord"])
            return self.emit(f"arith.cmpf {pred}, %x, {self.const(r.choice(['0.0', '-1.0', '0x7FC00000']), 'f32')} : f32")
        return self.const(r.random() < 0.5, "i1")

    def linear(self, ty):
        """a·j + b·i + c in a random spelling: mostly a = -b (a band's
        bound), sometimes not."""
        r = self.rng
        terms = []
        a = r.choice([1, 1, 1, -1, 2, -2])
        b = -a if r.random() < 0.85 else r.choice([-2, -1, 1, 2])
        for var, coeff in (("j", a), ("i", b)):
            v = self.cast(self.index_leaf(var), "index", ty)
            sign = "pos"
            if coeff < 0 and r.random() < 0.5:
                sign, coeff = "neg", -coeff
            if coeff != 1:
                v = self.emit(f"arith.muli {v}, {self.const(coeff, ty)} : {ty}") if r.random() < 0.6 \
                    else (self.emit(f"arith.shli {v}, {self.const(1, ty)} : {ty}") if coeff == 2 else
                          self.emit(f"arith.muli {self.const(coeff, ty)}, {v} : {ty}"))
            terms.append((sign, v))
        if self.dynamic and r.random() < 0.85:
            # The bottom-right offset: a·j - a·i - a·(Sk - Sq) bounds the
            # distance from the bottom-right diagonal (sometimes without its
            # factor a: then no band).
            sk, sq = self.cast("%sk", "index", ty), self.cast("%sq", "index", ty)
            if a != 1 and r.random() < 0.85:
                k = self.const(a, ty)
                sk = self.emit(f"arith.muli {sk}, {k} : {ty}")
                sq = self.emit(f"arith.muli {sq}, {k} : {ty}")
            terms += [("neg", sk), ("pos", sq)]
        c = r.randint(-12, 12)
        r.shuffle(terms)
        acc = None
        for sign, v in terms:
            if acc is None:
                acc = v if sign == "pos" else self.emit(f"arith.subi {self.const(0, ty)}, {v} : {ty}")
            else:
                acc = self.emit(f"arith.{'addi' if sign == 'pos' else 'subi'} {acc}, {v} : {ty}")
        if c:
            acc = self.emit(f"arith.addi {acc}, {self.const(c, ty)} : {ty}")
        return acc

    def band(self):
        """One or two comparisons of linear forms against 0 or a constant."""
        r = self.rng
        sides = []
        for _ in range(r.choice([1, 2, 2])):
            # With dynamic sizes a narrow type wraps for some size: no band.
            ty = r.choice(["index", "index", "i64", "i32"] if self.dynamic else INT_TYPES)
            lhs = self.linear(ty)
            rhs = self.const(r.choice([0, 0, r.randint(-8, 8)]), ty)
            if r.random() < 0.5:
                lhs, rhs = rhs, lhs
            sides.append(self.compare(lhs, rhs, ty, PREDICATES if r.random() < 0.3 else
                                      ["slt", "sle", "sgt", "sge"]))
        if len(sides) == 1:
            return sides[0]
        op = r.choice(["andi", "andi", "ori", "xori"])
        return self.emit(f"arith.{op} {sides[0]}, {sides[1]} : i1")


STATIC_GRAPH = """#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @{name}(%q: {Q}, %kt: {KT}, %v: {V}) -> {Q} {{
  %zero = arith.constant 0.0 : f32
  %m = arith.constant {m} : f32
  %se = tensor.empty() : {S}
  %sf = linalg.fill ins(%zero : f32) outs(%se : {S}) -> {S}
  %s = linalg.batch_matmul ins(%q, %kt : {Q}, {KT}) outs(%sf : {S}) -> {S}
  %l = linalg.generic {{indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%s : {S}) outs(%se : {S}) {{
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
{body}
    linalg.yield %r : f32
  }} -> {S}
  %pe = tensor.empty() : {S}
  %p = linalg.softmax dimension(2) ins(%l : {S}) outs(%pe : {S}) -> {S}
  %oe = tensor.empty() : {Q}
  %of = linalg.fill ins(%zero : f32) outs(%oe : {Q}) -> {Q}
  %o = linalg.batch_matmul ins(%p, %v : {S}, {V}) outs(%of : {Q}) -> {Q}
  return %o : {Q}
}}
"""

# A constant mask tensor ([Sq, Sk] or [B, Sq, Sk]; i1 selected on, or f32
# added), which attn-fuse scans row by row.
CONSTANT_GRAPH = """#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @{name}(%q: {Q}, %kt: {KT}, %v: {V}) -> {Q} {{
  %zero = arith.constant 0.0 : f32
  %m = arith.constant {m} : f32
  %mask = arith.constant dense<{values}> : {MT}
  %se = tensor.empty() : {S}
  %sf = linalg.fill ins(%zero : f32) outs(%se : {S}) -> {S}
  %s = linalg.batch_matmul ins(%q, %kt : {Q}, {KT}) outs(%sf : {S}) -> {S}
  %l = linalg.generic {{indexing_maps = [#id3, {mmap}, #id3], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%s, %mask : {S}, {MT}) outs(%se : {S}) {{
  ^bb0(%x: f32, %c: {ME}, %out: f32):
{body}
    linalg.yield %r : f32
  }} -> {S}
  %pe = tensor.empty() : {S}
  %p = linalg.softmax dimension(2) ins(%l : {S}) outs(%pe : {S}) -> {S}
  %oe = tensor.empty() : {Q}
  %of = linalg.fill ins(%zero : f32) outs(%oe : {Q}) -> {Q}
  %o = linalg.batch_matmul ins(%p, %v : {S}, {V}) outs(%of : {Q}) -> {Q}
  return %o : {Q}
}}
"""

# A training graph (torch-mlir's shape of forward + autograd backward, as in
# attn-fuse-backward.mlir): the mask on the scaled scores, and the backward
# re-applying the same mask, none, or another one (which must not fuse as
# the forward's).
TRAINING_GRAPH = """#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @{name}(%q: {Q}, %k: {K}, %v: {K}, %do: {Q}) -> ({Q}, {Q}, {K}, {K}) {{
  %m = arith.constant {m} : f32
  %c = arith.constant 0.5 : f32
  %zero = arith.constant 0.0 : f32
  %kte = tensor.empty() : {KT}
  %kt = linalg.transpose ins(%k : {K}) outs(%kte : {KT}) permutation = [0, 2, 1]
  %se = tensor.empty() : {S}
  %sf = linalg.fill ins(%zero : f32) outs(%se : {S}) -> {S}
  %s = linalg.batch_matmul ins(%q, %kt : {Q}, {KT}) outs(%sf : {S}) -> {S}
  %l = linalg.generic {{indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%s : {S}) outs(%se : {S}) {{
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
    %sc = arith.mulf %x, %c : f32
{forward}
    linalg.yield %r : f32
  }} -> {S}
  %p = linalg.softmax dimension(2) ins(%l : {S}) outs(%se : {S}) -> {S}
  %oe = tensor.empty() : {Q}
  %of = linalg.fill ins(%zero : f32) outs(%oe : {Q}) -> {Q}
  %o = linalg.batch_matmul ins(%p, %v : {S}, {K}) outs(%of : {Q}) -> {Q}
  %pte = tensor.empty() : {ST}
  %pt = linalg.transpose ins(%p : {S}) outs(%pte : {ST}) permutation = [0, 2, 1]
  %ke = tensor.empty() : {K}
  %kf = linalg.fill ins(%zero : f32) outs(%ke : {K}) -> {K}
  %dv = linalg.batch_matmul ins(%pt, %do : {ST}, {Q}) outs(%kf : {K}) -> {K}
  %vte = tensor.empty() : {KT}
  %vt = linalg.transpose ins(%v : {K}) outs(%vte : {KT}) permutation = [0, 2, 1]
  %dp = linalg.batch_matmul ins(%do, %vt : {Q}, {KT}) outs(%sf : {S}) -> {S}
  %dpp = linalg.mul ins(%dp, %p : {S}, {S}) outs(%se : {S}) -> {S}
  %re = tensor.empty() : {R}
  %rf = linalg.fill ins(%zero : f32) outs(%re : {R}) -> {R}
  %sum = linalg.reduce ins(%dpp : {S}) outs(%rf : {R}) dimensions = [2]
    (%in: f32, %acc: f32) {{
      %0 = arith.addf %in, %acc : f32
      linalg.yield %0 : f32
    }}
  %sumb = linalg.broadcast ins(%sum : {R}) outs(%se : {S}) dimensions = [2]
  %psum = linalg.mul ins(%p, %sumb : {S}, {S}) outs(%se : {S}) -> {S}
  %dl = linalg.sub ins(%dpp, %psum : {S}, {S}) outs(%se : {S}) -> {S}
  %ds = linalg.generic {{indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%dl : {S}) outs(%se : {S}) {{
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 0 : index
    %i = linalg.index 1 : index
    %j = linalg.index 2 : index
{backward}
    linalg.yield %r : f32
  }} -> {S}
  %kte2 = tensor.empty() : {K}
  %ktt = linalg.transpose ins(%kt : {KT}) outs(%kte2 : {K}) permutation = [0, 2, 1]
  %dq = linalg.batch_matmul ins(%ds, %ktt : {S}, {K}) outs(%of : {Q}) -> {Q}
  %qte = tensor.empty() : {QT}
  %qt = linalg.transpose ins(%q : {Q}) outs(%qte : {QT}) permutation = [0, 2, 1]
  %dktf = linalg.fill ins(%zero : f32) outs(%kte : {KT}) -> {KT}
  %dkt = linalg.batch_matmul ins(%qt, %ds : {QT}, {S}) outs(%dktf : {KT}) -> {KT}
  %dke = tensor.empty() : {K}
  %dk = linalg.transpose ins(%dkt : {KT}) outs(%dke : {K}) permutation = [0, 2, 1]
  return %o, %dq, %dk, %dv : {Q}, {Q}, {K}, {K}
}}
"""

# Dynamic sequence lengths (4-D, [1, 2, ?, D]): Sq and Sk are tensor.dim of
# Q and K, which the mask may read; the contractions are linalg.generic.
DYNAMIC_GRAPH = """#id4 = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
#q = affine_map<(b, h, i, j, d) -> (b, h, i, d)>
#k = affine_map<(b, h, i, j, d) -> (b, h, j, d)>
#s = affine_map<(b, h, i, j, d) -> (b, h, i, j)>
#p = affine_map<(b, h, i, d, j) -> (b, h, i, j)>
#v = affine_map<(b, h, i, d, j) -> (b, h, j, d)>
#o = affine_map<(b, h, i, d, j) -> (b, h, i, d)>
func.func @{name}(%q: {T}, %k: {T}, %v: {T}) -> {T} {{
  %c2 = arith.constant 2 : index
  %zero = arith.constant 0.0 : f32
  %m = arith.constant {m} : f32
  %sq = tensor.dim %q, %c2 : {T}
  %sk = tensor.dim %k, %c2 : {T}
  %se = tensor.empty(%sq, %sk) : {S}
  %sf = linalg.fill ins(%zero : f32) outs(%se : {S}) -> {S}
  %s = linalg.generic {{indexing_maps = [#q, #k, #s], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}} ins(%q, %k : {T}, {T}) outs(%sf : {S}) {{
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %0 = arith.mulf %a, %bb : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  }} -> {S}
  %l = linalg.generic {{indexing_maps = [#id4, #id4], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}} ins(%s : {S}) outs(%se : {S}) {{
  ^bb0(%x: f32, %out: f32):
    %b = linalg.index 1 : index
    %i = linalg.index 2 : index
    %j = linalg.index 3 : index
{body}
    linalg.yield %r : f32
  }} -> {S}
  %pe = tensor.empty(%sq, %sk) : {S}
  %p = linalg.softmax dimension(3) ins(%l : {S}) outs(%pe : {S}) -> {S}
  %oe = tensor.empty(%sq) : {T}
  %of = linalg.fill ins(%zero : f32) outs(%oe : {T}) -> {T}
  %o = linalg.generic {{indexing_maps = [#p, #v, #o], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}} ins(%p, %v : {S}, {T}) outs(%of : {T}) {{
  ^bb0(%a: f32, %bb: f32, %acc: f32):
    %0 = arith.mulf %a, %bb : f32
    %1 = arith.addf %acc, %0 : f32
    linalg.yield %1 : f32
  }} -> {T}
  return %o : {T}
}}
"""

D = 4


class Case:
    """Input `index` of `seed`: the graph's text, its function, its sizes
    (Sq, Sk; with dynamic ones, those the generator drew), whether they are
    dynamic, and the masking value."""

    def __init__(self, seed, index):
        rng = random.Random(seed * 1_000_003 + index)
        self.name = f"mask_{seed}_{index}"
        roll = rng.random()
        self.dynamic, constant = roll < 0.3, roll >= 0.8
        self.training = 0.6 <= roll < 0.8
        self.sq = rng.randint(1, 20)
        self.sk = self.sq if rng.random() < 0.4 else rng.randint(1, 20)
        if constant:
            self.m = rng.choices([NEG_INF, LOWEST_F32, BIG_NEGATIVE], weights=[7, 2, 1])[0]
            self.text = self.constant_graph(rng)
            return
        if self.training:
            self.m = rng.choices([NEG_INF, LOWEST_F32], weights=[4, 1])[0]
            self.text = self.training_graph(rng)
            return
        body = Body(rng, self.sq, self.sk, self.dynamic)
        pred = body.band() if rng.random() < 0.5 else body.boolean(rng.randint(1, 3))
        if rng.random() < 0.15:
            pred = body.emit(f"arith.xori {pred}, {body.const(1, 'i1')} : i1")
        self.m = rng.choices([NEG_INF, LOWEST_F32, BIG_NEGATIVE], weights=[7, 2, 1])[0]
        form = rng.choice(["keep", "drop", "add_keep", "add_drop"])
        if form == "keep":
            body.lines.append(f"    %r = arith.select {pred}, %x, %m : f32")
        elif form == "drop":
            body.lines.append(f"    %r = arith.select {pred}, %m, %x : f32")
        else:
            on, off = ("%zero", "%m") if form == "add_keep" else ("%m", "%zero")
            body.lines.append(f"    %mm = arith.select {pred}, {on}, {off} : f32")
            body.lines.append("    %r = arith.addf %x, %mm : f32")
        lines = "\n".join(body.lines)
        if self.dynamic:
            self.text = DYNAMIC_GRAPH.format(name=self.name, m=self.m, body=lines,
                                             T=f"tensor<1x2x?x{D}xf32>", S="tensor<1x2x?x?xf32>")
        else:
            t = lambda a, b: f"tensor<2x{a}x{b}xf32>"
            self.text = STATIC_GRAPH.format(name=self.name, m=self.m, body=lines, Q=t(self.sq, D),
                                            KT=t(D, self.sk), V=t(self.sk, D), S=t(self.sq, self.sk))

    def constant_graph(self, rng):
        """The graph with a constant mask: a band (lo <= j - i <= hi, bounds
        past the ends included), now and then with one element flipped, or
        random bits; per batch now and then."""
        sq, sk = self.sq, self.sk
        lo, hi = rng.randint(-sq - 2, sk + 1), rng.randint(-sq - 2, sk + 1)
        lo, hi = min(lo, hi), max(lo, hi)
        if rng.random() < 0.3:
            lo = None
        elif rng.random() < 0.3:
            hi = None
        noise = rng.random()

        def plane():
            if noise < 0.2:
                return [[rng.random() < 0.6 for _ in range(sk)] for _ in range(sq)]
            bits = [[(lo is None or j - i >= lo) and (hi is None or j - i <= hi)
                     for j in range(sk)] for i in range(sq)]
            if noise < 0.5:
                i, j = rng.randrange(sq), rng.randrange(sk)
                bits[i][j] = not bits[i][j]
            return bits

        batched = rng.random() < 0.2
        planes = [plane(), plane()] if batched and noise < 0.5 else [plane()]
        if batched and len(planes) == 1:
            planes = planes * 2
        additive = rng.random() < 0.4
        word = (lambda b: "0.0" if b else self.m) if additive else \
            (lambda b: "true" if b else "false")
        rows = lambda p: "[" + ", ".join("[" + ", ".join(word(b) for b in r) + "]" for r in p) + "]"
        values = ("[" + ", ".join(rows(p) for p in planes) + "]") if batched else rows(planes[0])
        elt = "f32" if additive else "i1"
        mt = f"tensor<{'2x' if batched else ''}{sq}x{sk}x{elt}>"
        mmap = "#id3" if batched else "affine_map<(d0, d1, d2) -> (d1, d2)>"
        if additive:
            body = "    %r = arith.addf %x, %c : f32"
        elif rng.random() < 0.5:
            body = "    %r = arith.select %c, %x, %m : f32"
        else:
            body = ("    %t = arith.constant true\n    %nc = arith.xori %c, %t : i1\n"
                    "    %r = arith.select %nc, %m, %x : f32")
        t = lambda a, b: f"tensor<2x{a}x{b}xf32>"
        return CONSTANT_GRAPH.format(name=self.name, m=self.m, values=values, MT=mt, ME=elt,
                                     mmap=mmap, body=body, Q=t(sq, D), KT=t(D, sk),
                                     V=t(sk, D), S=t(sq, sk))

    def training_graph(self, rng):
        """The training graph: a band (mostly) or any predicate on the
        forward's scaled scores, and in the backward the same mask (its ops
        again), none, or another predicate."""
        forward = Body(rng, self.sq, self.sk, False)
        pred = forward.band() if rng.random() < 0.7 else forward.boolean(rng.randint(1, 2))
        drop = rng.random() < 0.3
        forward.lines.append(f"    %r = arith.select {pred}, %m, %sc : f32" if drop else
                             f"    %r = arith.select {pred}, %sc, %m : f32")
        mode = rng.choices(["same", "none", "other"], weights=[6, 2, 2])[0]
        if mode == "none":
            backward = ["    %r = arith.mulf %x, %c : f32"]
        else:
            lines = forward.lines[:-1]
            if mode == "other":
                other = Body(rng, self.sq, self.sk, False)
                pred = other.band() if rng.random() < 0.7 else other.boolean(1)
                lines = other.lines
            backward = lines + [
                f"    %mm = arith.select {pred}, %zero, %x : f32" if drop else
                f"    %mm = arith.select {pred}, %x, %zero : f32",
                "    %r = arith.mulf %mm, %c : f32"]
        t = lambda a, b: f"tensor<2x{a}x{b}xf32>"
        return TRAINING_GRAPH.format(
            name=self.name, m=self.m, forward="\n".join(forward.lines),
            backward="\n".join(backward), Q=t(self.sq, D), K=t(self.sk, D), KT=t(D, self.sk),
            QT=t(D, self.sq), S=t(self.sq, self.sk), ST=t(self.sk, self.sq),
            R=f"tensor<2x{self.sq}xf32>")

    def sizes(self):
        """The (Sq, Sk) to run at: the drawn ones, and with dynamic sizes
        two more (one of them Sq = Sk) that a mask fused for one size only
        would get wrong."""
        if not self.dynamic:
            return [(self.sq, self.sk)]
        rng = random.Random(self.name)
        n = rng.randint(1, 20)
        return [(self.sq, self.sk), (n, n), (rng.randint(1, 20), rng.randint(1, 20))]

    def inputs(self, sq, sk, rng):
        """Q, K (Kᵀ for the static graph), V and the output's shape."""
        if self.training:
            shapes = [(2, sq, D), (2, sk, D), (2, sk, D), (2, sq, D)]
            results = [((2, sq, D), "f32"), ((2, sq, D), "f32"), ((2, sk, D), "f32"),
                       ((2, sk, D), "f32")]
        elif self.dynamic:
            shapes = [(1, 2, sq, D), (1, 2, sk, D), (1, 2, sk, D)]
            results = [((1, 2, sq, D), "f32")]
        else:
            shapes = [(2, sq, D), (2, D, sk), (2, sk, D)]
            results = [((2, sq, D), "f32")]
        args = [(rng.standard_normal(s).astype(np.float32), "f32") for s in shapes]
        return args, results


def compare(case, fused, unfused, v):
    """(None when the fused output is the unfused one's up to the documented
    rows whose keys are all masked, else where they differ; how many such
    rows there were)."""
    if np.isnan(fused).any():
        return "the fused output has a NaN", 0
    empty = 0
    rows = lambda x: x.reshape(-1, x.shape[-2], x.shape[-1])
    fused, unfused, v = rows(fused), rows(unfused), rows(v).astype(np.float64)
    for bb in range(fused.shape[0]):
        mean = v[bb].mean(axis=0)
        for row in range(fused.shape[1]):
            a, b = fused[bb, row].astype(np.float64), unfused[bb, row].astype(np.float64)
            if np.isnan(b).any() or (case.m == LOWEST_F32 and np.allclose(b, mean, atol=1e-5)
                                     and not np.allclose(a, b, atol=1e-5)):
                # A row whose keys are all masked.
                if np.any(a != 0):
                    return (f"batch·head {bb} row {row}: unfused {b} (all keys masked), fused {a} "
                            f"(expected 0)"), empty
                empty += 1
                continue
            bound = 1e-5 * max(1.0, float(np.abs(b).max()))
            if case.m == BIG_NEGATIVE:
                # -1e4 is a bias, not a mask: the logits it shifts carry
                # f32's absolute error at 1e4 (about 1e-3), rounded apart
                # in the unfused sum and the fused op's exp2 domain.
                bound += 16 * 2.0 ** -23 * 1e4 * float(np.abs(v[bb]).max())
            if float(np.abs(a - b).max()) > bound:
                return f"batch·head {bb} row {row}: fused {a} != unfused {b}", empty
    return None, empty


def compare_gradients(fused, unfused):
    """None when every gradient agrees within 1e-5 of its scale (f32 both
    sides; the fused backward's blocks sum in another order)."""
    for name, a, b in zip(("dQ", "dK", "dV"), fused, unfused):
        if np.isnan(a).any():
            return f"the fused {name} has a NaN"
        scale = max(1.0, float(np.abs(b).max()))
        err = float(np.abs(a.astype(np.float64) - b).max())
        if not err <= 1e-5 * scale:
            return f"{name}: fused and unfused differ by {err:.3g} (scale {scale:.3g})"
    return None


def check(cpu, opt, seed, index):
    """(None when input `index` is fine, else the reason; the fused op's
    mask attribute, or None where it did not fuse)."""
    case = Case(seed, index)
    fused = subprocess.run([opt, "-", "--attn-fuse"], input=case.text.encode(),
                           capture_output=True, timeout=120)
    if fused.returncode:
        return f"attn-fuse failed (exit {fused.returncode}):\n{fused.stderr.decode()[-2000:]}", None
    out = fused.stdout.decode()
    if "attn.attention" not in out:
        return None, None
    op = out[out.find("attn.attention"):]
    attr = op.split("scale")[0]
    attr = attr[attr.find("mask"):].strip() if "mask" in attr else "no mask (every key)"
    attr += " + bias" if "bias" in op.split(":")[0] else ""
    attr += " (dynamic sizes)" if case.dynamic else ""
    attr += " (constant mask)" if "%mask = arith.constant" in case.text else ""
    if case.training:
        attr += " (training: + attention_grad)" if "attn.attention_grad" in out else \
            " (training: forward only)"
    rng = np.random.default_rng(index)
    for sq, sk in case.sizes():
        args, results = case.inputs(sq, sk, rng)
        dyn = (2,) if case.dynamic else ()
        # The training graphs' backward loops with small blocks, so that
        # their band-limited loops and edge masks run at these sizes.
        lower = "--attn-to-cpu=block-q=8 block-kv=8" if case.training else "--attn-to-cpu"
        try:
            unfused = cpu.run(case.text, case.name, args, results, flags=("--attn-to-cpu",),
                              timeout=120, dynamic=dyn)
            fusedv = cpu.run(case.text, case.name, args, results,
                             flags=("--attn-fuse", lower), timeout=120, dynamic=dyn)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            return f"Sq {sq}, Sk {sk}: a CPU run failed: {str(err)[-2000:]}", attr
        reason, empty = compare(case, fusedv[0], unfused[0], args[2][0])
        # Gradients are compared where no row is all masked: there the
        # unfused graph's NaN (or uniform) rows reach every dK and dV row.
        if not reason and case.training and not empty:
            reason = compare_gradients(fusedv[1:], unfused[1:])
        if reason:
            return f"Sq {sq}, Sk {sk}: {reason}", attr
    return None, attr


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--attn-opt", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--only", type=int, help="check input N only (and print it)")
    ap.add_argument("--out", help="directory for failing inputs")
    args = ap.parse_args()
    import shutil
    opt = shutil.which(args.attn_opt) or args.attn_opt
    os.environ["ATTN_OPT"] = opt
    from attn import cpu
    if cpu.tools() is None:
        print("error: attn-opt, mlir-runner or its runner libraries (mlir-22-tools, "
              "libmlir-22-dev) not found", file=sys.stderr)
        return 2
    indices = [args.only] if args.only is not None else range(args.count)
    fused, failures, kinds = 0, 0, {}
    for k in indices:
        if args.only is not None:
            print(Case(args.seed, k).text)
        reason, attr = check(cpu, opt, args.seed, k)
        if attr is not None:
            fused += 1
            kinds[attr] = kinds.get(attr, 0) + 1
        if reason:
            failures += 1
            print(f"FAIL input {k}: {reason}")
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                with open(os.path.join(args.out, f"seed{args.seed}-{k}.mlir"), "w") as f:
                    f.write(f"// {reason}\n// python3 {os.path.basename(__file__)} "
                            f"--attn-opt attn-opt --seed {args.seed} --only {k}\n")
                    f.write(Case(args.seed, k).text)
    for attr, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {n:5d} fused as {attr}")
    print(f"{len(indices)} inputs, {fused} fused, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
