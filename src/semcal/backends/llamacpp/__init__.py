"""llama.cpp sampling backend (CPU default), through llama-cpp-python's low-level API.

How one ``sample(prompts, n, params)`` call runs:

* Every prompt is evaluated **once**. Its KV cache is shared, not copied, by the sequences that
  continue it (``llama_memory_seq_cp`` on a unified KV cache only tags the prompt's cells with
  more sequence ids), and the logits of its last position are kept, so the first token of every
  sample is drawn from them without another forward pass.
* Up to ``n_parallel`` sequences — the samples of one prompt, or of several — are decoded
  **together**: each step sends one token per live sequence in one ``llama_decode`` batch, so the
  weights are read once per step for all of them (matrix–matrix work instead of ``n``
  matrix–vector passes). Finished sequences free their slot for the next sample or prompt.
* Consecutive prompts that share a prefix (few-shot examples) re-use its KV cells, within a
  call and from one call to the next: one extra sequence keeps the last prompt, and the next
  prompt evaluates only the tokens after the common prefix, in whole blocks of
  ``PREFIX_BLOCK`` tokens (``prefix_cache=True``, the default).
* Sampling is done here, vectorised in numpy over the ``(n_live, vocab)`` logits matrix that
  llama.cpp fills for the batch (only the last position of each sequence is computed, never the
  whole context). One softmax pass gives both the draw (inverse CDF on blocked cumulative sums)
  and the exact log-probability of the drawn token under the model's unmodified distribution.
* Sample ``i`` of a prompt draws its uniforms from its own ``numpy`` generator seeded with
  ``sample_seed(prompt_seed(params.seed, prompt), i)``. With llama.cpp's plain CPU
  kernels (``repack=False``, the default) a sequence's logits are bit-identical whatever else
  shares its batch. The prefix cache is built so that it changes no bit either: prompts are
  always evaluated in chunks that end at multiples of ``PREFIX_BLOCK`` (cached or not), only
  whole chunks are re-used, the cache is cut back to them before the rest of the prompt is
  evaluated (so it lands in the very cells a fresh evaluation would use), and a call starts from
  the previous call's cache only when that call had one prompt (otherwise the cells are
  interleaved and the call starts empty). So a one-prompt call — what the runner makes — gives
  the same bits whatever was sampled before (``tests/test_determinism.py``). An earlier cache
  that re-used any number of tokens and left the old prompt's cells in place moved
  log-probabilities by up to 0.05 nats depending on the previous prompt.
* Text-level stop strings are matched on the decoded text (so a stop string may span tokens);
  partial UTF-8 characters are held back until complete; end-of-generation tokens stop a sample.

The backend is a package of rooms with one job each:

* ``token_choice``: ``choose_tokens``, one seeded draw per sequence from a logits matrix, with
  its log-probability;
* ``cells``: KV-cell accounting (``_PromptCells``), the prefix cache and prompt evaluation
  (``PREFIX_BLOCK``), the planned context size (``CELL_BUDGET``);
* ``scheduler``: the batch scheduler (``_BatchRun``: admit prompts, start samples, one decode
  step for every live sequence, record finished samples);
* ``threads``: the default thread count from the cores other work leaves idle;
* ``sampler``: :class:`LlamaCppSampler`, which assembles them.

Every name other modules, scripts and tests use is importable from here; ``_default_threads``
reads ``_cores`` and ``_busy_cores`` from this package, so patching them here takes effect.
"""

from __future__ import annotations

# the names other modules, bench/ scripts and tests import from here
from semcal.backends.llamacpp.cells import CELL_BUDGET, PREFIX_BLOCK, _PromptCells  # noqa: F401
from semcal.backends.llamacpp.sampler import LlamaCppSampler
from semcal.backends.llamacpp.scheduler import _BatchRun, _Group, _Result, _Seq  # noqa: F401
from semcal.backends.llamacpp.threads import (  # noqa: F401
    _busy_cores,
    _cores,
    _cpu_times,
    _default_threads,
    log,
)
from semcal.backends.llamacpp.token_choice import _BLOCK, _nucleus_draw, choose_tokens  # noqa: F401

__all__ = ["LlamaCppSampler", "choose_tokens"]
