"""The latent-attention family: published architectures as subsets of the write / gather / broadcast stages.

=================  =====  ======  =========  ======  ==========================================================
module             write  gather  broadcast  causal  in one line
=================  =====  ======  =========  ======  ==========================================================
Perceiver                   ✓                        latents gather, self-attend; ``repeats`` gathers again
PerceiverIO                 ✓        ✓               gathers once, then output queries read the latents
PerceiverAR                 ✓                  ✓     the last M positions are the latents, block-causal
ISAB                        ✓        ✓               m inducing points: gather, then broadcast (B, N, D)
PMA                         ✓                        k seeds pool a set into (B, k, D)
Luna                        ✓        ✓               pack / unpack; the packed sequence goes to the next layer
LunaCausal                  ✓        ✓         ✓     running sums / t = linear attention; l × d_head per head
SlotAttention        ✓                               slots compete for inputs (softmax over slots), GRU, rounds
Linformer                   ✓        ✓               K, V projected along the sequence to length k; N fixed
Nystromformer               ✓        ✓               landmarks = segment means; softmax · pinv · softmax ≈ full
=================  =====  ======  =========  ======  ==========================================================

Every module follows the package's calling convention, ``forward(x (B, N, D), *, mask=None, causal=False,
return_maps=False, …)`` (keyword-only after x), checks its input and returns ``out`` or, with ``return_maps=True``,
``(out, LatentMaps)`` — one maps type with the stages by name (then it runs the explicit teaching path; without,
the fast path — same numbers). Class attributes say what it is: ``stages``, ``returns_tokens``, ``is_causal`` and
``causal_note`` (``causal=True`` on a non-causal one is a clear error). Every attention inside is
:class:`lattn.attention.Attention`, except where the maths differs (Linformer, causal Luna, Slot Attention: the
reasons are listed in :mod:`lattn.attention`). :mod:`lattn.family.registry` lists them (and says which files a new
member touches); :mod:`lattn.family.compare` runs them side by side: the comparison table, the future-leak
measurement. :mod:`lattn.family.linear` is causal linear attention (what causal Luna's running sums are);
:mod:`lattn.family.global_tokens` puts global tokens *beside* a local window, for contrast with latents.
"""

from ._common import FeedForward
from .global_tokens import LocalGlobalAttention
from .linear import causal_linear_attention
from .linformer import Linformer
from .luna import Luna, LunaCausal, LunaOutput, LunaState
from .nystrom import Nystromformer
from .perceiver import LatentBlock, Perceiver, PerceiverAR, PerceiverIO
from .set_transformer import ISAB, MAB, PMA
from .slot import SlotAttention

__all__ = [
    "ISAB",
    "MAB",
    "PMA",
    "FeedForward",
    "LatentBlock",
    "Linformer",
    "LocalGlobalAttention",
    "Luna",
    "LunaCausal",
    "LunaOutput",
    "LunaState",
    "Nystromformer",
    "Perceiver",
    "PerceiverAR",
    "PerceiverIO",
    "SlotAttention",
    "causal_linear_attention",
]
