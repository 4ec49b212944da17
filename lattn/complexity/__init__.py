"""What attention costs: analytic FLOPs and memory of full vs latent attention, checked against PyTorch's counters.

Full attention scores every token against every token, so its cost grows with N²; latent attention routes the N
tokens through M learned latents in three stages (write, gather, broadcast), each an N×M cross-attention, so its
cost grows with N·M. The package writes both costs down as formulas of one :class:`Shape` (B, N, M, H, d_head,
dtype) and provides the instruments they are checked against:

* :mod:`~lattn.complexity.costs` — :class:`Shape`, :class:`Cost` and the formulas of full and latent attention
  (FLOPs, bytes, the crossover N, the curves notebook 02 draws), and :func:`human_bytes` to print sizes;
* :mod:`~lattn.complexity.family` — the formulas of the family members (:mod:`lattn.family`), built on those;
* :mod:`~lattn.complexity.instruments` — :func:`count_flops` (FlopCounterMode that knows the CPU fused kernel),
  :func:`without_projections`, :func:`measured_flops`, :func:`peak_bytes`. Timing is :mod:`lattn.bench`'s job.

Conventions:

* **FLOPs** count matrix multiplications only, 2 per multiply-add, exactly as
  :class:`torch.utils.flop_counter.FlopCounterMode` does. Softmax, scaling, masking, renormalising and residual
  additions are elementwise O(N·M) or O(N·D) work that neither the formulas nor the counter include.
* The **attention core** is the attention itself — scores q·kᵀ and the weighted sum of the values; the **whole
  module** adds the ``nn.Linear`` projections (q, k, v, out; bias additions are not counted).
  :func:`without_projections` turns a real module into its core, so the counter can check both.
* **Memory** has one definition, used by notebooks 01 and 02 and their explorers: *the bytes an attention call
  must hold at its peak* — its inputs q, k, v, its output and, on a path that materialises them, the float32 maps
  (:attr:`Cost.peak_bytes`; for latent attention the largest stage, plus the maps earlier stages keep). It is what
  any implementation of that path needs (a lower bound). :func:`peak_bytes` measures what PyTorch's eager code
  creates (more: e.g. the teaching path keeps the scores and the weights alive together); on an attention core,
  whose q, k, v are views of its input, that is compared with :func:`created_bytes` (output and maps).
"""

from . import costs, family, instruments
from .costs import *  # noqa: F403 — the formulas of full and latent attention, Shape, Cost
from .family import *  # noqa: F403 — the family's formulas
from .instruments import *  # noqa: F403 — the counters

__all__ = [*costs.__all__, *family.__all__, *instruments.__all__]
