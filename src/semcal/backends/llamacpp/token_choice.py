"""Token choice: one draw per sequence from a logits matrix, with its log-probability.

The draw is vectorised in numpy over the ``(rows, vocab)`` logits that llama.cpp fills for a
batch: one softmax pass gives both the draw (inverse CDF on blocked cumulative sums) and the
exact log-probability of the drawn token under the model's unmodified distribution. Each
sequence brings its own uniform, from its own seeded generator (see ``scheduler._Seq``).
"""

from __future__ import annotations

import numpy as np

from semcal.errors import InputError

#: block width of the blocked cumulative sums used to draw from a softmax row
_BLOCK = 1024


def choose_tokens(
    logits: np.ndarray,
    rows: np.ndarray,
    uniforms: np.ndarray | None,
    temperature: float,
    top_p: float = 1.0,
    want_logprobs: bool = True,
    work: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Draw one token per sequence from rows of a logits matrix.

    Args:
        logits: ``(m, V)`` float32 raw logits (one row per distinct distribution).
        rows: ``(k,)`` int, the logits row each of the ``k`` sequences draws from.
        uniforms: ``(k,)`` floats in [0, 1), one per sequence; ignored (may be None) when
            ``temperature == 0`` (greedy: the first arg-max).
        temperature, top_p: the sampling distribution is ``softmax(logits / temperature)``
            restricted to the smallest set of most likely tokens whose mass reaches ``top_p``.
        want_logprobs: also return the log-probability of each chosen token under the
            *unmodified* distribution ``softmax(logits)``.
        work: optional ``(>= m, V)`` float32 scratch buffer (avoids an allocation per step).

    Returns:
        ``(tokens, logprobs)``: ``(k,)`` int64 token ids and ``(k,)`` float64 log-probabilities
        (``<= 0``), or ``None`` for the latter when not asked for.
    """
    logits = np.asarray(logits)
    m, vocab = logits.shape
    rows = np.asarray(rows, dtype=np.int64)
    if work is None or work.shape[0] < m or work.shape[1] != vocab:
        work = np.empty((m, vocab), dtype=np.float32)
    buf = work[:m]
    top = logits.max(axis=1)

    def log_norm() -> np.ndarray:
        # log sum_j exp(x_j - max) per row, at temperature 1
        np.subtract(logits, top[:, None], out=buf)
        np.exp(buf, out=buf)
        return np.log(buf.sum(axis=1, dtype=np.float64))

    if temperature == 0:
        tokens = logits.argmax(axis=1)[rows]
        if not want_logprobs:
            return tokens, None
        return tokens, -log_norm()[rows]

    np.subtract(logits, top[:, None], out=buf)
    if temperature != 1:
        buf *= np.float32(1.0 / temperature)
    np.exp(buf, out=buf)
    block_cdf = _block_cdf(buf)
    totals = block_cdf[:, -1]
    if uniforms is None:
        raise InputError("uniforms are required when temperature > 0")
    u = np.asarray(uniforms, dtype=np.float64)
    tokens = np.empty(len(rows), dtype=np.int64)
    if top_p >= 1.0:
        _inverse_cdf_draw(buf, block_cdf, rows, u, tokens)
    else:
        for j, (r, t) in enumerate(zip(rows, u)):
            tokens[j] = _nucleus_draw(buf[r], float(totals[r]), top_p, float(t))
    if not want_logprobs:
        return tokens, None
    lse = np.log(totals) if temperature == 1 else log_norm()
    chosen = logits[rows, tokens].astype(np.float64)
    return tokens, np.minimum(chosen - top[rows] - lse[rows], 0.0)


def _block_cdf(buf: np.ndarray) -> np.ndarray:
    """Cumulative sums over blocks of ``_BLOCK`` columns of ``(m, V)`` weights, ``(m, blocks)``
    float64: one pass gives the normaliser (last column) and a coarse CDF to search."""
    m, vocab = buf.shape
    n_full = vocab // _BLOCK
    parts = []
    if n_full:
        parts.append(buf[:, : n_full * _BLOCK].reshape(m, n_full, _BLOCK).sum(axis=2, dtype=np.float64))
    if vocab % _BLOCK:
        parts.append(buf[:, n_full * _BLOCK :].sum(axis=1, dtype=np.float64)[:, None])
    return np.cumsum(np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0], axis=1)


def _inverse_cdf_draw(
    buf: np.ndarray, block_cdf: np.ndarray, rows: np.ndarray, u: np.ndarray, tokens: np.ndarray
) -> None:
    """Fill ``tokens[j]`` with the draw of uniform ``u[j]`` from row ``rows[j]`` of the weights
    ``buf``: find the block in the coarse CDF, then the token inside that block."""
    targets = u * block_cdf[rows, -1]
    blocks = (block_cdf[rows] <= targets[:, None]).sum(axis=1)
    blocks = np.minimum(blocks, block_cdf.shape[1] - 1)
    for j, (r, b, t) in enumerate(zip(rows, blocks, targets)):
        start = int(b) * _BLOCK
        seg = buf[r, start : start + _BLOCK]
        before = block_cdf[r, b - 1] if b > 0 else 0.0
        local = np.cumsum(seg, dtype=np.float64) + before
        i = int(np.searchsorted(local, t, side="right"))
        i = min(i, len(seg) - 1)
        while i > 0 and seg[i] == 0:  # rounding at the very end of a block
            i -= 1
        tokens[j] = start + i


def _nucleus_draw(weights: np.ndarray, total: float, top_p: float, u: float) -> int:
    """Draw from the top-p nucleus of one row of unnormalised weights (``(V,)`` float32)."""
    vocab = weights.shape[0]
    k = min(vocab, 256)
    while True:
        if k < vocab:
            cand = np.argpartition(weights, vocab - k)[vocab - k :]
        else:
            cand = np.arange(vocab)
        cand = cand[np.argsort(-weights[cand], kind="stable")]
        mass = np.cumsum(weights[cand], dtype=np.float64) / total
        if mass[-1] >= top_p or k == vocab:
            keep = min(int(np.searchsorted(mass, top_p, side="left")) + 1, len(cand))
            kept = mass[:keep]
            i = int(np.searchsorted(kept, u * kept[-1], side="right"))
            return int(cand[min(i, keep - 1)])
        k = min(vocab, k * 8)
