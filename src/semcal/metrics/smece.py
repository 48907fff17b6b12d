"""Smooth expected calibration error (smECE, Błasiok & Nakkiran 2023), equal to ``relplot.smECE``.

What is computed
----------------
Let ``r_i = conf_i - correct_i`` be the signed residual of question ``i``. For a bandwidth
``sigma``, smooth both the residuals and the point masses with a Gaussian kernel that is
*reflected* at 0 and 1 (so mass near an endpoint, e.g. the many semantic confidences of exactly
1.0, is folded back into [0, 1] instead of leaking out):

    R(t) = sum_i K_sigma(t, conf_i) * r_i          D(t) = sum_i K_sigma(t, conf_i) + 1e-4

and average the absolute smoothed residual against the smoothed density over a regular mesh
``t_0..t_{m-1}`` of [0, 1]:

    smECE_sigma = sum_j |R(t_j)| / sum_j D(t_j)

``smECE`` is this quantity at the bandwidth where it equals the bandwidth itself,
``sigma* = smECE_sigma*``: ``sigma - smECE_sigma`` changes sign once on (0, 1], and a 10-step
bisection on [0, 1] locates it. The bisection keeps the *upper* end of its bracket (the last
bandwidth found with ``sigma >= smECE_sigma``; bandwidths below 1e-3 count as "below the fixed
point" without evaluation), so ``sigma`` is always a multiple of 1/1024 and the value returned
is smECE evaluated at that bandwidth.

Numerical recipe (the one relplot >= 1.0.2 uses; we reproduce it step by step)
---------------------------------------------------------------------------------
For a bandwidth ``sigma``:

1. Grid: ``G = max(2000, round(20 / sigma)) // 2 + 1`` equally spaced nodes on [0, 1].
2. Linear binning: a point at ``x`` (grid position ``p = x * (G - 1)``, lower node
   ``k = min(floor(p), G - 2)``) puts ``(1 - (p - k)) * w`` on node ``k`` and ``(p - k) * w``
   on node ``k + 1``. A confidence of exactly 1.0 therefore lands entirely on the last node and
   0.0 entirely on the first one.
3. Reflection: the node values ``v`` are extended to ``[v_{G-1}..v_1, v_0..v_{G-1}, v_{G-2}..v_0]``
   (mirror images about both endpoints, endpoints not duplicated).
4. Kernel: ``G`` samples of the Gaussian density with standard deviation ``sigma`` on the
   centred grid ``linspace(0, 1, G) - 0.5`` (*not* multiplied by the grid spacing: the sums are
   point-mass sums, as in ``sum_i K(t - x_i)``); convolve it with the extended values and keep
   the ``G`` outputs that line up with the original nodes.
5. Mesh: ``m = max(round(10 / sigma), 200)`` points ``linspace(0, 1, m)``; R and D are read off
   the node values by linear interpolation.

How we make it fast, and how close to relplot it stays
-------------------------------------------------------
relplot re-bins all ``n`` points for every bandwidth it evaluates (two ``np.add.at`` binnings
for each of up to 12 evaluations per smECE) and convolves directly, ``O(G^2)`` per bandwidth.
Here:

* The binning depends on the bandwidth only through ``G``, which is 1001 for every
  ``sigma >= 0.01``; we bin once per distinct ``G`` with ``np.bincount`` and reuse the node
  values for every bandwidth of the bisection. Memory is ``O(n + G)``: nothing of size
  ``n x mesh`` is ever formed.
* The reflected convolution of steps 3-4 is done in a transform domain instead of directly,
  ``O(G log G)`` rather than ``O(G^2)``. For odd ``G`` (every ``sigma >= 0.01``) the kernel is
  centred on a node and the mirror extension is the whole-sample symmetric extension, so the
  operation is diagonal in the type-I DCT; for even ``G`` (the kernel then sits half a node off
  centre) we convolve the extended values with a real FFT long enough that no circular
  wrap-around reaches the kept outputs.
* Bootstrap resamples are handled as rows of one batch: all their bisections run in lock-step
  and rows that need the same bandwidth share one batched transform.

These changes only reorder floating-point additions; every quantity in steps 1-5 is the
same. The transforms add an absolute error of about ``1e-16 * log2(G) * max|v| * max K`` per node
(relative to the totals, ~1e-13 or smaller), so smECE values agree with relplot to ~1e-12
(differences seen in the tests are below 1e-15).
The one way a larger difference can arise is through the bisection: if at one of the ten
bisection bandwidths ``sigma`` and ``smECE_sigma`` were equal to within ~1e-12, the two
implementations could branch differently and end at bandwidths 1/1024 apart. That needs an
exact coincidence; it does not happen on random data or on the endpoint-heavy cases in the tests
(which check agreement to 1e-6 on 20+ seeded random cases and on inputs full of exact 0.0 and
1.0 confidences).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sp_fft

from semcal.errors import InputError
from semcal.metrics._validate import check_pair

__all__ = ["SmeceResult", "SmoothCurve", "smece", "smece_at", "smooth_reliability"]

#: Added to the (un-normalised) kernel density before dividing by it.
DENSITY_EPS = 1e-4
#: Bandwidths below this are taken as "below the fixed point" without evaluating smECE there.
SIGMA_FLOOR = 1e-3
#: Bisection steps of the bandwidth search on [0, 1]; the bandwidth is a multiple of 2**-10.
BISECTION_STEPS = 10
_MIN_MESH = 200
_MIN_KERNEL_POINTS = 2000
# FFT work per batch: rows x FFT length stays below this many complex numbers (about 64 MB).
_FFT_BUDGET = 1 << 22


@dataclass(frozen=True)
class SmeceResult:
    """smECE and the bandwidth at which it was evaluated.

    ``value`` is in [0, 1]; ``sigma`` is the kernel bandwidth (in confidence units) chosen by the
    fixed-point search, a multiple of 1/1024 in (0, 1]. ``float(result)`` gives ``value``.
    """

    value: float
    sigma: float

    def __float__(self) -> float:
        return float(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class SmoothCurve:
    """A smoothed reliability curve on a mesh of [0, 1].

    ``mesh``: (m,) confidence values; ``mu``: (m,) kernel-regression estimate of P(correct | conf)
    (NaN where no data is near enough to say anything, i.e. the kernel density is below 1e-8 of
    its maximum); ``density``: (m,) kernel density of the confidences (integrates to ~1 over
    [0, 1]); ``sigma``: the bandwidth used.
    """

    mesh: np.ndarray
    mu: np.ndarray
    density: np.ndarray
    sigma: float


# ----------------------------------------------------------------------------- grid machinery


def _grid_points(sigma: float) -> int:
    """Number of kernel-grid nodes used at bandwidth ``sigma`` (step 1)."""
    return max(_MIN_KERNEL_POINTS, round(20.0 / sigma)) // 2 + 1


def _mesh_points(sigma: float) -> int:
    """Number of evaluation points of the smECE sum at bandwidth ``sigma`` (step 5)."""
    return max(round(10.0 / sigma), _MIN_MESH)


def _kernel_samples(sigma: float, nodes: int) -> np.ndarray:
    """The sampled Gaussian kernel of step 4: (nodes,) values centred on the middle node."""
    t = np.linspace(0.0, 1.0, nodes)
    var = sigma**2
    kernel = np.exp(-(t - 0.5) * (t - 0.5) / (2 * var))
    kernel /= np.sqrt(2 * np.pi) * sigma
    return kernel


def _fft_size(nodes: int) -> int:
    """Length of the circular convolution used for an even number of nodes.

    The kept outputs are indices ``[a, a + G)`` of the full linear convolution (length 4G - 3),
    ``a = G - 1 + G // 2``; a circular length ``L >= a + G`` aliases none of them.
    """
    return sp_fft.next_fast_len(2 * nodes - 1 + nodes // 2, real=True)


@functools.lru_cache(maxsize=128)
def _kernel_spectrum(sigma: float, nodes: int) -> np.ndarray:
    """Multipliers that apply the reflected kernel in a transform domain (cached).

    Odd ``G`` (always the case for sigma >= 0.01): the kernel is centred on a node and the
    mirror extension of step 3 is the whole-sample symmetric extension of period 2(G - 1), so
    the reflected convolution is diagonal in the type-I DCT: the multipliers are the DCT-I of
    the kernel's right half. Even ``G``: the kernel sits half a node off-centre, so we do the
    plain linear convolution of the extended values by real FFT; these are the kernel's
    spectrum at length :func:`_fft_size`.
    """
    kernel = _kernel_samples(sigma, nodes)
    if nodes % 2:
        half = np.zeros(nodes)
        half[: nodes // 2 + 1] = kernel[nodes // 2 :]
        spectrum = sp_fft.dct(half, type=1)
    else:
        spectrum = sp_fft.rfft(kernel, _fft_size(nodes))
    spectrum.flags.writeable = False
    return spectrum


@functools.lru_cache(maxsize=128)
def _interp_plan(nodes: int, mesh: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower node index and weight of the upper node for each of ``mesh`` points (step 5)."""
    t = np.linspace(0.0, 1.0, mesh)
    step = 1 / (nodes - 1)
    lower = (t * (nodes - 1)).astype(np.int64).clip(0, nodes - 2)
    weight = (t - lower * step) / step
    lower.flags.writeable = False
    weight.flags.writeable = False
    return lower, weight


#: threads for the batched transforms of bootstrap resamples (each row is transformed on its
#: own, so the result does not depend on the number of threads)
_FFT_WORKERS = max(1, min(os.cpu_count() or 1, 8))


def _reflect_convolve(values: np.ndarray, sigma: float, exact_ends: bool = False) -> np.ndarray:
    """Steps 3-4 on node values of shape (..., G); returns smoothed node values (..., G).

    ``exact_ends=True`` doubles the two end nodes first: the mirror image of a mass sitting on
    an end node is the node itself, and the extension of step 3 (which relplot uses, so smECE
    keeps it) leaves that image out, so mass at exactly 0 or 1 gets half the weight of mass
    just inside. The reliability *curve* uses the exact reflection.
    """
    nodes = values.shape[-1]
    if exact_ends:
        values = values.copy()
        values[..., 0] *= 2
        values[..., -1] *= 2
    spectrum = _kernel_spectrum(float(sigma), nodes)
    if nodes % 2:
        return sp_fft.idct(sp_fft.dct(values, type=1, axis=-1, workers=_FFT_WORKERS) * spectrum,
                           type=1, axis=-1, workers=_FFT_WORKERS)
    size = _fft_size(nodes)
    extended = np.concatenate([values[..., :0:-1], values, values[..., -2::-1]], axis=-1)
    full = sp_fft.irfft(sp_fft.rfft(extended, size, axis=-1, workers=_FFT_WORKERS) * spectrum, size,
                        axis=-1, workers=_FFT_WORKERS)
    first = nodes - 1 + nodes // 2
    return full[..., first : first + nodes]


def _to_mesh(node_values: np.ndarray, mesh: int) -> np.ndarray:
    """Linear interpolation of node values (..., G) onto ``linspace(0, 1, mesh)``."""
    lower, weight = _interp_plan(node_values.shape[-1], mesh)
    return node_values[..., lower] * (1 - weight) + node_values[..., lower + 1] * weight


class _Binned:
    """Node values of some per-point columns, for the full sample or for bootstrap resamples.

    ``columns`` has shape (c, n): the per-point weights to bin (e.g. ones and residuals).
    ``index`` (k, n) selects k resamples (rows of point indices); None means the sample itself
    (k = 1). Node values are computed once per grid size and per row, on demand.
    """

    def __init__(self, conf: np.ndarray, columns: np.ndarray, index: np.ndarray | None = None):
        self.conf = conf
        self.columns = columns
        self.index = index
        self.rows = 1 if index is None else index.shape[0]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._groups: tuple[np.ndarray, np.ndarray] | None = None
        if index is not None:
            self._groups = self._group(conf, columns, index)

    @staticmethod
    def _group(conf: np.ndarray, columns: np.ndarray,
               index: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Each resample's column sums per distinct confidence: (values (d,), sums (c, k, d)).

        Semantic confidence takes few values (at most M + 1 for M samples), so binning a
        resample's d sums instead of its n points makes every grid size after the first cheap;
        one pass over the k x n resampled points is paid here instead of one per grid size.
        None when the confidences are mostly distinct (nothing to save)."""
        values, inverse = np.unique(conf, return_inverse=True)
        d = values.size
        if 2 * d > conf.size:
            return None
        k = index.shape[0]
        flat = (inverse.ravel()[index] + (np.arange(k, dtype=np.int64) * d)[:, None]).ravel()
        gather = index.ravel()
        sums = np.stack([np.bincount(flat, weights=col[gather], minlength=k * d).reshape(k, d)
                         for col in columns])
        return values, sums

    def _bin(self, nodes: int, rows: np.ndarray) -> np.ndarray:
        # Linear binning (step 2). With k the lower node and f the fractional position, node j
        # receives sum_{k=j} (1 - f) w + sum_{k=j-1} f w = A[j] - B[j] + B[j-1] where
        # A = bincount(k, w) and B = bincount(k, f w): two passes over the points per column.
        if self._groups is not None:  # resamples summed per distinct confidence already
            return self._bin_groups(nodes, rows)
        pos = self.conf * (nodes - 1)
        lower = pos.astype(np.int64)
        np.minimum(lower, nodes - 2, out=lower)  # a confidence of exactly 1.0 -> f = 1
        frac = pos - lower
        ncol = self.columns.shape[0]
        if self.index is None:
            lo = lower
            count = 1
            gather = None
        else:
            sub = self.index[rows]  # (r, n) point indices
            count = len(rows)
            offsets = (np.arange(count, dtype=np.int64) * nodes)[:, None]
            lo = (lower[sub] + offsets).ravel()
            gather = sub.ravel()
        total = count * nodes
        out = np.empty((count, ncol, nodes))
        for j in range(ncol):
            col = self.columns[j]
            wf = frac * col
            if gather is not None:
                col, wf = col[gather], wf[gather]
            a = np.bincount(lo, weights=col, minlength=total).reshape(count, nodes)
            b = np.bincount(lo, weights=wf, minlength=total).reshape(count, nodes)
            grid = out[:, j]
            np.subtract(a, b, out=grid)
            grid[:, 1:] += b[:, :-1]
        return out

    def _bin_groups(self, nodes: int, rows: np.ndarray) -> np.ndarray:
        """Step 2 for resample rows from their per-value sums (see :meth:`_group`)."""
        values, sums = self._groups  # type: ignore[misc]
        pos = values * (nodes - 1)
        lower = pos.astype(np.int64)
        np.minimum(lower, nodes - 2, out=lower)
        frac = pos - lower
        count = len(rows)
        lo = (lower[None, :] + (np.arange(count, dtype=np.int64) * nodes)[:, None]).ravel()
        total = count * nodes
        out = np.empty((count, sums.shape[0], nodes))
        for j in range(sums.shape[0]):
            w = sums[j][rows]  # (count, d)
            a = np.bincount(lo, weights=w.ravel(), minlength=total).reshape(count, nodes)
            b = np.bincount(lo, weights=(w * frac).ravel(), minlength=total).reshape(count, nodes)
            grid = out[:, j]
            np.subtract(a, b, out=grid)
            grid[:, 1:] += b[:, :-1]
        return out

    def get(self, nodes: int, rows: np.ndarray) -> np.ndarray:
        """Node values of shape (len(rows), c, nodes) for the given row numbers."""
        if nodes not in self._cache:
            self._cache[nodes] = (
                np.zeros((self.rows, self.columns.shape[0], nodes)),
                np.zeros(self.rows, dtype=bool),
            )
        grids, have = self._cache[nodes]
        missing = rows[~have[rows]]
        if missing.size:
            grids[missing] = self._bin(nodes, missing)
            have[missing] = True
        return grids[rows]


def _row_batches(count: int, nodes: int):
    """Split ``count`` rows into batches whose FFT work stays within the budget."""
    step = max(1, _FFT_BUDGET // (2 * _fft_size(nodes)))
    for start in range(0, count, step):
        yield slice(start, min(count, start + step))


def _smece_at_rows(binned: _Binned, sigma: float, rows: np.ndarray) -> np.ndarray:
    """smECE at bandwidth ``sigma`` for the given rows of ``binned`` (columns: ones, residual)."""
    nodes = _grid_points(sigma)
    mesh = _mesh_points(sigma)
    out = np.empty(len(rows))
    for part in _row_batches(len(rows), nodes):
        smooth = _to_mesh(_reflect_convolve(binned.get(nodes, rows[part]), sigma), mesh)
        dens = smooth[:, 0] + DENSITY_EPS
        resid = smooth[:, 1] / dens
        out[part] = np.sum(np.abs(resid) * dens, axis=-1) / np.sum(dens, axis=-1)
    return out


def _smece_search(binned: _Binned) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point bandwidth search for every row at once; returns (sigma, smECE) arrays (k,).

    Each row runs its own bisection; at every step the rows are grouped by the bandwidth they
    need (there are few distinct ones), so each kernel FFT is shared by its whole group.
    """
    k = binned.rows
    all_rows = np.arange(k)

    def evaluate(sigmas: np.ndarray, rows: np.ndarray) -> np.ndarray:
        vals = np.empty(len(rows))
        for s in np.unique(sigmas):
            sel = sigmas == s
            vals[sel] = _smece_at_rows(binned, float(s), rows[sel])
        return vals

    start = np.ones(k)
    end = np.zeros(k)
    value = evaluate(start, all_rows)  # smECE at the current upper end of the bracket
    searching = ~(1.0 < value)  # a row whose smECE at sigma = 1 exceeds 1 keeps sigma = 1
    for _ in range(BISECTION_STEPS):
        mid = (start + end) / 2
        below = searching & (mid < SIGMA_FLOOR)
        need = searching & ~below
        rows = all_rows[need]
        vals = np.full(k, np.nan)
        if rows.size:
            vals[rows] = evaluate(mid[rows], rows)
        above_fixed_point = below | (mid < vals)  # NaN compares False
        lower_end = searching & above_fixed_point
        raise_start = searching & ~above_fixed_point
        end = np.where(lower_end, mid, end)
        start = np.where(raise_start, mid, start)
        value = np.where(raise_start, vals, value)
    return start, value


# ----------------------------------------------------------------------------- public API


def smece(conf: Any, correct: Any) -> SmeceResult:
    """Smooth ECE of confidences ``conf`` (n,) in [0, 1] against outcomes ``correct`` (n,) in {0, 1}.

    Equal to ``relplot.smECE(conf, correct, return_width=True)`` (relplot >= 1.0.2) up to
    floating-point rounding (~1e-12; see the module docstring for the recipe and the one
    theoretical exception). Runs in O(n + G log G) time and O(n + G) memory; 10**6 points take
    a fraction of a second.

    Returns
    -------
    SmeceResult(value, sigma): ``value`` in [0, 1]; ``sigma`` the fixed-point bandwidth.

    Notes
    -----
    For a constant confidence ``c`` with accuracy ``a`` the value is
    ``|c - a| * S / (S + m * 1e-4)`` where ``S`` is the kernel density summed over the ``m``
    mesh points (about ``n * (m - 1)``, less when a wide kernel is cut off by the finite kernel
    grid): slightly *below* ``|c - a|``, by a relative amount under ``1e-3 / n``, because of
    the density regulariser.

    Confidences of exactly 0.0 or 1.0 (common for semantic confidence: all samples agree) get
    *half* the weight of confidences just inside the interval. This is a property of relplot's
    discrete reflection (an end node's mirror image is itself and is not added), which we keep
    in order to equal relplot. Example at ``sigma = 0.01``: half the questions at confidence
    1.0 with accuracy 0, half at 0.5 with accuracy 0.5 gives 0.342 (binned ECE: 0.5); moving
    the first group to 0.999 gives 0.509. Compare with :func:`semcal.metrics.ece` when many
    confidences sit at the endpoints.

    Raises
    ------
    InputError
        For invalid inputs (see :func:`semcal.metrics._validate.check_pair`).
    """
    c, y = check_pair(conf, correct, where="smece")
    sigma, value = _smece_search(_Binned(c, np.stack([np.ones_like(c), c - y])))
    return SmeceResult(value=float(value[0]), sigma=float(sigma[0]))


def _check_sigma(sigma: Any, where: str) -> float:
    try:
        s = float(sigma)
    except (TypeError, ValueError) as exc:
        raise InputError(f"sigma must be a positive number, got {sigma!r}", where=where) from exc
    if not np.isfinite(s) or s <= 0:
        raise InputError(f"sigma must be a positive finite number, got {sigma!r}", where=where)
    if s < 1e-4:
        raise InputError(
            f"sigma = {s} is too small (the kernel grid would need {_grid_points(s)} nodes); "
            "use sigma >= 1e-4",
            where=where,
        )
    return s


def smece_at(conf: Any, correct: Any, sigma: float) -> float:
    """smECE at a fixed bandwidth ``sigma`` (no search); equals ``relplot.smECE_sigma``.

    ``conf``, ``correct``: arrays of shape (n,). ``sigma`` > 0 in confidence units (>= 1e-4).
    """
    c, y = check_pair(conf, correct, where="smece_at")
    s = _check_sigma(sigma, "smece_at")
    binned = _Binned(c, np.stack([np.ones_like(c), c - y]))
    return float(_smece_at_rows(binned, s, np.arange(1))[0])


def _curves(binned: _Binned, n: int, sigma: float, mesh_pts: int) -> tuple[np.ndarray, ...]:
    """Kernel regression of ``correct`` on ``conf`` for every row; columns are (ones, correct)."""
    nodes = _grid_points(sigma)
    rows = np.arange(binned.rows)
    mu = np.empty((binned.rows, mesh_pts))
    dens = np.empty((binned.rows, mesh_pts))
    for part in _row_batches(binned.rows, nodes):
        grids = binned.get(nodes, rows[part])
        smooth = _to_mesh(_reflect_convolve(grids, sigma, exact_ends=True), mesh_pts)
        d = smooth[:, 0]
        ok = d > 1e-8 * d.max(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(ok, smooth[:, 1] / np.where(ok, d, 1.0), np.nan)
        mu[part] = np.clip(m, 0.0, 1.0)
        dens[part] = np.clip(d, 0.0, None) / n
    return mu, dens


def smooth_reliability(
    conf: Any, correct: Any, sigma: float | None = None, mesh_pts: int = 200
) -> SmoothCurve:
    """Smoothed reliability curve: Nadaraya-Watson regression of ``correct`` on ``conf``.

    Uses the same reflected Gaussian kernel and grid as :func:`smece`; ``sigma`` defaults to the
    smECE bandwidth of the data. Returns a :class:`SmoothCurve` on ``linspace(0, 1, mesh_pts)``.

    Two deliberate differences from relplot's plotting helper: the curve is the plain ratio of
    kernel sums (relplot divides by ``density + 1e-4``, which pulls the curve toward 0 where data
    are sparse), NaN where the density vanishes; and the reflection at 0 and 1 is exact, so
    confidences of exactly 0.0 or 1.0 weigh as much as any other (see :func:`smece`, Notes) and
    the density integrates to 1 over [0, 1] (up to the kernel's cut-off at +-1/2).
    """
    c, y = check_pair(conf, correct, where="smooth_reliability")
    if sigma is None:
        sigma = smece(c, y).sigma
    s = _check_sigma(sigma, "smooth_reliability")
    if isinstance(mesh_pts, bool) or not isinstance(mesh_pts, (int, np.integer)) or mesh_pts < 2:
        raise InputError(f"mesh_pts must be an integer >= 2, got {mesh_pts!r}", "smooth_reliability")
    binned = _Binned(c, np.stack([np.ones_like(c), y]))
    mu, dens = _curves(binned, c.size, s, int(mesh_pts))
    return SmoothCurve(np.linspace(0.0, 1.0, int(mesh_pts)), mu[0], dens[0], s)


# ----------------------------------------------------------------------------- bootstrap hooks


def _smece_batch(conf: np.ndarray, correct: np.ndarray, index: np.ndarray) -> np.ndarray:
    """smECE of each resample ``conf[index[b]]`` (index: (k, n) ints); returns (k,)."""
    _, value = _smece_search(_Binned(conf, np.stack([np.ones_like(conf), conf - correct]), index))
    return value


def _smooth_curve_batch(
    conf: np.ndarray, correct: np.ndarray, index: np.ndarray, sigma: float, mesh_pts: int
) -> np.ndarray:
    """Reliability curves (k, mesh_pts) of each resample, at a fixed bandwidth."""
    mu, _ = _curves(_Binned(conf, np.stack([np.ones_like(conf), correct]), index), conf.size,
                    sigma, mesh_pts)
    return mu
