"""Batch layout: which texts share a forward pass, and where each text's tokens sit.

Texts are sorted by length and **packed**: several texts share a row, each with its own
position ids 0..n-1; transformers reads a position reset as a new sequence and keeps each
text's attention inside its own span (sliding windows included). Almost no compute goes to
padding, and attention cost is bounded by the row width. The padded layout (one text per row)
is the fallback; there, position ids come from the attention mask and the last-token index is
the last *real* token, so left and right padding give the same result. The official code takes
``mask.sum() - 1`` under left padding, which points into the padding for every shorter sequence
(paper §2.1; book: Methods › Activations, methods/activations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class BatchLayout:
    """One forward pass: token ids laid out in rows, and where each text's tokens ended up.

    The flattened (row × width) positions split into contiguous ``runs`` (their lengths): one
    per text and one per stretch of padding; ``text_runs`` says which run is each text's, and
    ``last`` is the flat position of each text's last real token. Pooling reads only these, so
    padded and packed layouts pool alike.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    runs: torch.Tensor
    text_runs: torch.Tensor
    last: torch.Tensor
    lengths: torch.Tensor
    rows: np.ndarray  # original text index of each slot

    @property
    def n_real(self) -> int:
        return int(self.lengths.sum())

    def to(self, device: torch.device) -> BatchLayout:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return BatchLayout(
            move(self.input_ids),
            move(self.position_ids),
            move(self.attention_mask),
            move(self.runs),
            move(self.text_runs),
            move(self.last),
            move(self.lengths),
            self.rows,
        )


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[np.ndarray]:
    """Padded mode: length-sorted batches whose size (rows × longest) fits the token budget.

    Longest first, so the peak memory and the slowest batch come at the start.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        rows = max(1, batch_tokens // longest)
        batches.append(order[start : start + rows])
        start += rows
    return batches


def plan_packed_batches(
    lengths: Sequence[int], batch_tokens: int, row_width: int
) -> list[list[list[int]]]:
    """Packed mode: batches → rows → text indices, first-fit-decreasing into rows.

    A batch's rows are ``max(row_width, its longest text)`` tokens wide and there are
    ``batch_tokens // width`` of them, so almost no position is padding while attention stays
    confined to short rows (its cost grows with the row width, not the batch).
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[list[list[int]]] = []
    rows: list[list[int]] = []
    room: list[int] = []
    width = n_rows = 0
    for idx in order:
        size = int(lengths[idx])
        slot = next((r for r, free in enumerate(room) if free >= size), None)
        if slot is None and len(rows) >= n_rows:  # batch full: start the next one
            if rows:
                batches.append(rows)
            width = max(row_width, size)
            n_rows = max(1, batch_tokens // width)
            rows, room = [], []
        if slot is None:
            rows.append([])
            room.append(width)
            slot = len(rows) - 1
        rows[slot].append(int(idx))
        room[slot] -= size
    if rows:
        batches.append(rows)
    return batches


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded to the longest sequence on ``side``."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, cols] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only (0 for padding): left padding = no padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, correct for left and right padding."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(positions.dtype)).argmax(dim=1)


def official_last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """The paper's ``mask.sum() - 1``: right only for right padding (kept for the comparison)."""
    return mask.sum(dim=1) - 1


def padded_layout(
    sequences: Sequence[Sequence[int]], rows: np.ndarray, pad_id: int, side: str
) -> BatchLayout:
    """One text per row, padded on ``side``; positions from the mask."""
    ids, mask = pad_batch(sequences, pad_id, side)
    n, width = ids.shape
    runs: list[int] = []
    text_runs: list[int] = []
    for seq in sequences:
        pad = width - len(seq)
        if pad and side == "left":
            runs.append(pad)
        text_runs.append(len(runs))
        runs.append(len(seq))
        if pad and side == "right":
            runs.append(pad)
    last = torch.arange(n) * width + last_token_index(mask)
    return BatchLayout(
        ids,
        position_ids_from_mask(mask),
        mask,
        torch.tensor(runs),
        torch.tensor(text_runs),
        last,
        mask.sum(1),
        np.asarray(rows),
    )


def packed_layout(
    sequences: Sequence[Sequence[int]], row_slots: Sequence[Sequence[int]], pad_id: int
) -> BatchLayout:
    """Several texts per row, each with its own positions 0..len-1 and no attention mask.

    transformers treats a position reset as a new sequence (packed format) and keeps every
    text's attention inside its own span, sliding windows included. Tail padding continues as
    one more "sequence" whose outputs are discarded. ``row_slots`` holds indices into
    ``sequences``.
    """
    width = max(sum(len(sequences[i]) for i in slots) for slots in row_slots)
    n_rows = len(row_slots)
    ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    runs: list[int] = []
    text_runs: list[int] = []
    last: list[int] = []
    order: list[int] = []
    for r, slots in enumerate(row_slots):
        col = 0
        for i in slots:
            size = len(sequences[i])
            ids[r, col : col + size] = torch.as_tensor(sequences[i], dtype=torch.long)
            positions[r, col : col + size] = torch.arange(size)
            text_runs.append(len(runs))
            runs.append(size)
            last.append(r * width + col + size - 1)
            order.append(i)
            col += size
        if col < width:
            positions[r, col:] = torch.arange(width - col)
            runs.append(width - col)
    run_lengths = torch.tensor(runs)
    text_index = torch.tensor(text_runs)
    return BatchLayout(
        ids,
        positions,
        None,
        run_lengths,
        text_index,
        torch.tensor(last),
        run_lengths[text_index],
        np.asarray(order),
    )
