# SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
"""Runs attn's paged, latent, gated delta and NSA kernels alone -- no torch
reference, whose cuBLAS calls make compute-sanitizer's racecheck fail with
"Internal Sanitizer Error: failed to handle a hardware exception" on this
driver (docs/gpu-results.md) -- for the cases named on the command line (all
paged and gated cases by default). The input to .ci/gpu-suite's racecheck of
those kernels (NSA's only when named); exits non-zero if a kernel launch
fails."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import torch  # noqa: E402

import gpu_cases  # noqa: E402
import test_gpu  # noqa: E402  (input builders)
from attn import gpu  # noqa: E402

BUNDLES = os.environ.get("ATTN_BUNDLES", "build/bundles")


def main(ids):
    for c in gpu_cases.PAGED_CASES:
        if ids and c["id"] not in ids:
            continue
        q, kc, vc, table, lens, _, _, sinks = test_gpu.paged_inputs(c)
        gpu.paged_attention(q, kc, vc, table, lens, causal=c["causal"], window=c["window"],
                            softcap=c["softcap"], scale=c["scale"], sinks=sinks,
                            cache_layout=c["layout"], return_lse=c["lse"],
                            num_splits_override=c["splits"], bundles=BUNDLES)
        torch.cuda.synchronize()
        print(f"ran {c['id']}")
    for c in gpu_cases.GATED_CASES:
        if ids and c["id"] not in ids:
            continue
        q, k, v, g, beta, s0 = test_gpu.gated_inputs(c)
        gpu.gated_delta_rule(q, k, v, g, beta, initial_state=s0, qk_l2norm=c["l2norm"],
                             scale=c["scale"], bundles=BUNDLES)
        torch.cuda.synchronize()
        print(f"ran {c['id']}")
    for c in gpu_cases.NSA_CASES:
        if c["id"] not in ids:
            continue
        q, k, v, kc, vc, gates = test_gpu.nsa_inputs(c)
        gpu.nsa(q, k, v, kc, vc, gates, cmp_block=c["cmp_block"], cmp_stride=c["cmp_stride"],
                sel_block=c["sel_block"], num_selected=c["num_selected"], window=c["window"],
                bundles=BUNDLES)
        torch.cuda.synchronize()
        print(f"ran {c['id']}")


if __name__ == "__main__":
    main(set(sys.argv[1:]))
