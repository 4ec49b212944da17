"""What each schematic shows, as data: :class:`Stage` (one attention stage: query side, key side, softmax axis,
receiving side, causal/window), :class:`Diagram` (a stage list plus where the latents sit) and :data:`PRESETS`, the
course's mechanisms. No drawing here: :mod:`lattn.viz.diagram` turns these into geometry and pictures (and
re-exports every name, so ``from lattn.viz.diagram import PRESETS, Stage`` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["ATTENTION", "BROADCAST", "GATHER", "LATENT_SELF", "PRESETS", "SIDES", "STAGES", "WRITE", "Diagram", "Stage"]

SIDES = ("tokens", "latents")


@dataclass(frozen=True)
class Stage:
    """One attention stage between the token row and the latent row (or a row and itself). Its map is
    (n_query, n_key), e.g. write (N, M), gather (M, N), broadcast (N, M) as in :class:`~lattn.latent.LatentMaps`."""

    name: str  # the panel title: "write", "gather", "attention", …
    query: str  # the side whose rows score the other side: "tokens" or "latents"
    key: str  # the side being scored (its keys and values)
    softmax: str = "key"  # which axis the softmax normalises: "key" (usual), "query" (slot attention), "none"
    # ("none": fixed learned weights, e.g. Linformer's E and F)
    to: str = ""  # the side that receives information; "" = the query side (write: the latents)
    causal: bool = False  # link only source positions ≤ receiving positions
    window: int | None = None  # link only positions at most this far apart (a local window)
    note: str = ""  # one more caption line, e.g. "each latent takes the weighted mean"
    how: str = ""  # replaces the generated caption line when the weights are not a softmax of one kind (causal Luna)

    def __post_init__(self) -> None:
        for arg in ("query", "key"):
            if getattr(self, arg) not in SIDES:
                raise ValueError(f"Stage {self.name!r}: {arg} must be one of {SIDES}, got {getattr(self, arg)!r}")
        if self.softmax not in ("key", "query", "none"):
            raise ValueError(f"Stage {self.name!r}: softmax must be 'key', 'query' or 'none', got {self.softmax!r}")
        if self.to not in ("", self.query, self.key):
            raise ValueError(f"Stage {self.name!r}: to must be {self.query!r} or {self.key!r}, got {self.to!r}")
        if self.window is not None and (not isinstance(self.window, int) or self.window < 0):
            raise ValueError(f"Stage {self.name!r}: window must be an int ≥ 0 or None, got {self.window!r}")

    @property
    def receiver(self) -> str:
        return self.to or self.query

    @property
    def self_attention(self) -> bool:
        return self.query == self.key

    @property
    def caption(self) -> str:
        """e.g. 'tokens query latents · softmax over latents' (or ``how`` when given)."""
        if self.how:
            return self.how
        over = self.key if self.softmax == "key" else self.query
        if self.self_attention:
            over = "keys" if self.softmax == "key" else "queries"
        if self.softmax == "none":
            parts = [f"{self.key} mixed into {self.query}", "fixed learned weights, no softmax"]
        else:
            parts = [f"{self.query} query {self.key}", f"softmax over {over}"]
        if self.causal:
            parts.append("causal")
        if self.window is not None:
            parts.append(f"window ±{self.window}")
        return " · ".join(parts)


WRITE = Stage("write", "tokens", "latents", to="latents", note="each latent takes a weighted mean of the tokens")
GATHER = Stage("gather", "latents", "tokens", note="each latent reads the tokens")
BROADCAST = Stage("broadcast", "tokens", "latents", note="each token reads its answer from the latents")
STAGES = {s.name: s for s in (WRITE, GATHER, BROADCAST)}
ATTENTION = Stage("attention", "tokens", "tokens", note="every token scores every token")
LATENT_SELF = Stage("latent self-attention", "latents", "latents", note="cost M², whatever N")


@dataclass(frozen=True)
class Diagram:
    """A stage list and where the latents sit: "spread" (centred, no positions) or "last" (latent j sits at token
    position N − M + j, as in Perceiver AR; needed for causal stages that involve latents)."""

    stages: tuple[Stage, ...]
    latents_at: str = "spread"
    title: str = ""
    latent_name: str = "z"  # the latents' symbol: z₀ … z_{M−1} (ℓ for landmarks, r for registers)
    latent_row: str = "latents"  # what the captions call the latent row ("global tokens")


PRESETS: dict[str, Diagram] = {
    "latent": Diagram((WRITE, GATHER, BROADCAST), title="LatentAttention: tokens never score each other"),
    "perceiver": Diagram((GATHER,), title="Perceiver: latents gather from every token"),
    "perceiver_ar": Diagram(
        (replace(GATHER, causal=True, note="latent at position p reads tokens ≤ p"),),
        latents_at="last",
        title="Perceiver AR: block-causal gather, no link from the future",
    ),
    "isab": Diagram((GATHER, BROADCAST), title="Set Transformer ISAB: gather, then broadcast"),
    "luna": Diagram((replace(GATHER, name="pack"), replace(BROADCAST, name="unpack")), title="Luna: pack, then unpack"),
    "slot": Diagram(
        (replace(WRITE, name="slot attention", note="slots compete for each token, then take the weighted mean"),),
        title="Slot Attention = the write stage",
    ),
    "full": Diagram((ATTENTION,), title="full attention: N² links"),
    "causal": Diagram((replace(ATTENTION, causal=True, note="no token reads a later one"),), title="causal attention: each token reads itself and earlier tokens only"),
    "window": Diagram((replace(ATTENTION, window=1, note="each token reads its neighbours"),), title="local window: each token reads its neighbours only"),
    # added for notebook 04: one schematic per family member, and the extra tokens that sit *inside* attention
    # (window + global tokens have no preset: one attention under one joint mask, lattn.viz.family.joint_attention)
    "perceiver_repeats": Diagram(
        (GATHER, LATENT_SELF, replace(GATHER, name="gather again", note="the same latents read the tokens again")),
        title="Perceiver: gather, think, gather again (repeats share weights after the first)"),
    "perceiver_io": Diagram(
        (replace(GATHER, name="encode"), LATENT_SELF,
         replace(BROADCAST, name="decode", note="output queries (here the tokens) read the latents")),
        title="Perceiver IO: encode once, think, decode with output queries"),
    "perceiver_ar_full": Diagram(
        (replace(GATHER, causal=True, note="latent at position p reads tokens ≤ p"),
         replace(LATENT_SELF, causal=True, note="latents attend causally among themselves")),
        latents_at="last", title="Perceiver AR: the last M positions are the latents; both stages causal"),
    "pma": Diagram((replace(GATHER, name="pool", note="k seeds each take a summary of the whole set"),),
                   title="Set Transformer PMA: k seeds pool the set", latent_name="s", latent_row="seeds"),
    "luna_causal": Diagram(
        (replace(GATHER, name="causal pack", softmax="none", how="packed query tokens · weights φ > 0, no softmax",
                 note="drawn for t = N: position t packs only tokens ≤ t, ÷ t"),
         replace(BROADCAST, name="unpack", note="token t reads its own packed context (l slots)")),
        title="causal Luna: each position packs its own prefix", latent_name="p", latent_row="packed"),
    "linformer": Diagram(
        (replace(GATHER, name="project", softmax="none", note="E, F (k × N): learned, the same for every input"),
         replace(BROADCAST, name="attend", note="each token scores the k rows of E·K and reads F·V")),
        title="Linformer: K and V squeezed along the sequence to k rows by E, F (k × N; N fixed)", latent_name="f",
        latent_row="k rows"),
    "registers": Diagram(
        (replace(ATTENTION, note="each token's one softmax covers tokens and registers"),
         replace(GATHER, name="registers read", how="registers query tokens (and registers) · one softmax",
                 note="registers read every token and each other"),
         replace(BROADCAST, name="tokens read registers", softmax="none", how="tokens query registers · inside "
                 "panel 1's softmax", note="in panel 1's softmax; outputs dropped")),
        title="memory / register tokens: ONE full attention over N + r tokens, drawn in three parts", latent_name="r",
        latent_row="registers"),
    "nystrom": Diagram(
        (replace(GATHER, note="landmark s: mean of segment s's queries and keys"),
         Stage("pseudo-inverse", "latents", "latents", softmax="none", how="Z ≈ softmax(Q̃K̃ᵀ)⁺ · 6 iterations",
               note="an m × m correction, no softmax of its own"),
         replace(BROADCAST, note="each token reads the landmarks' corrected summary")),
        title="Nyströmformer: landmarks are segment means of the queries and keys; out = F̃ · (Z · (B̃ · V))",
        latent_name="ℓ", latent_row="landmarks"),
}  # fmt: skip
