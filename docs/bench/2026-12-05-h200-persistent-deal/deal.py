#!/usr/bin/env python3
"""How evenly the persistent kernel's deals spread causal work over its blocks.

A model, not a measurement: a tile's cost is its key blocks (query block q of a
causal head visits q + 1) plus C key blocks of fixed cost (Q load, prologue,
normalization, store: 3.4-3.8 blocks' worth at d128 by
docs/bench/2026-12-04-h200-016b5eb-short). A deal's efficiency is the mean
block's work over the busiest block's (1.0: every block finishes together).

Deals:
  grid+stride   stop 46's: the grid's orders (MHA: a head's blocks together,
                heaviest first; GQA: FlashAttention-3's L2 groups), t += grid.
  sorted+snake  the kernel's since this change: heaviest first across every
                (batch, head) pair (getTileCoordinates), round k of block b
                taking k*grid + b, or k*grid + grid - 1 - b in odd rounds
                (getPersistentTile).
  grid+dynamic  what the hardware does for the grid of one block a tile: the
                next block goes to the first free SM (a lower bound on its
                imbalance; it still pays the fixed cost serially).

It also checks, exhaustively over small shapes, that the snake deal with the
trip count of forEachTile is a bijection onto [0, tiles).
"""
import heapq

C = 3.5  # fixed cost of a tile, in key blocks


def grid_order(nb, pairs, group):
    """DenseKernel.cpp's grid orders as tile -> query block (heaviest first)."""
    out = []
    for t in range(nb * pairs):
        span = group * nb
        g, r = divmod(t, span)
        first = g * group
        size = min(group, pairs - first)
        h = r // size
        out.append(nb - 1 - h)
    return out


def sorted_order(nb, pairs):
    """getTileCoordinates with a mask: level t // pairs is query block nb-1-level."""
    return [nb - 1 - t // pairs for t in range(nb * pairs)]


def snake_tile(k, grid, block):
    return k * grid + (grid - 1 - block if k % 2 else block)


def snake_rounds(tiles, grid, block):
    rounds = tiles // grid
    return rounds + (1 if snake_tile(rounds, grid, block) < tiles else 0)


def efficiency(order, grid, deal):
    loads = [0.0] * grid
    if deal == "dynamic":
        heap = [(0.0, b) for b in range(grid)]
        for q in order:
            f, b = heapq.heappop(heap)
            heapq.heappush(heap, (f + q + 1 + C, b))
        loads = [f for f, _ in heap]
    else:
        for b in range(grid):
            n = snake_rounds(len(order), grid, b) if deal == "snake" else len(range(b, len(order), grid))
            for k in range(n):
                t = snake_tile(k, grid, b) if deal == "snake" else b + k * grid
                loads[b] += order[t] + 1 + C
    return sum(loads) / grid / max(loads)


def check_bijection():
    for tiles in range(1, 400):
        for grid in range(1, 40):
            seen = [snake_tile(k, grid, b) for b in range(grid) for k in range(snake_rounds(tiles, grid, b))]
            assert sorted(seen) == list(range(tiles)), (tiles, grid)


def main():
    check_bijection()
    print("snake deal: a bijection for tiles < 400, grid < 40")
    shapes = [  # name, S, batch, Hq, Hkv, head dim, blocks (132 SMs; 2 a SM at d64)
        ("d64 causal 1k x 16", 1024, 16, 32, 32, 64, 264),
        ("d64 causal 2k x 8", 2048, 8, 32, 32, 64, 264),
        ("d64 causal 4k x 4", 4096, 4, 32, 32, 64, 264),
        ("d128 causal 1k x 16", 1024, 16, 16, 16, 128, 132),
        ("d128 causal 2k x 8", 2048, 8, 16, 16, 128, 132),
        ("d128 causal 4k x 4", 4096, 4, 16, 16, 128, 132),
        ("d128 causal 16k x 1", 16384, 1, 16, 16, 128, 132),
        ("GQA 32/8 causal 1k x 16", 1024, 16, 32, 8, 128, 132),
        ("GQA 32/8 causal 8k x 1", 8192, 1, 32, 8, 128, 132),
    ]
    print(f"{'shape':26s} {'grid+stride':>12s} {'sorted+snake':>13s} {'grid+dynamic':>13s}")
    for name, s, batch, hq, hkv, d, grid in shapes:
        nb, pairs = -(-s // 128), batch * hq
        kv_heads = max(1, (24 << 20) // (s * 4 * d))
        group = min(kv_heads * (hq // hkv), pairs)
        grid_o = grid_order(nb, pairs, group if hq > hkv else 1)
        print(f"{name:26s} {efficiency(grid_o, grid, 'stride'):12.3f} "
              f"{efficiency(sorted_order(nb, pairs), grid, 'snake'):13.3f} "
              f"{efficiency(grid_o, grid, 'dynamic'):13.3f}")


if __name__ == "__main__":
    main()
