"""Camera response: photo-electrons to pixels, noise, saturation, peak time, trigger.

The functions work on whole batches of events (arrays ``(N, n_pixels)``).
"""

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["HexPixelLookup", "PatchTrigger", "digitise"]


class HexPixelLookup:
    """Camera position -> pixel index for a camera on a hexagonal lattice (rows along x).

    Each point is assigned to its nearest lattice site (cube rounding), i.e. to the hexagonal
    pixel that contains it; points outside the camera get ``-1`` (the camera edge cut).
    """

    def __init__(self, geometry):
        x = geometry.pix_x.to_value("m")
        y = geometry.pix_y.to_value("m")
        dist, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
        self.pitch = float(np.min(dist[:, 1]))
        q, r = self._axial(x, y)
        q_int, r_int = np.rint(q).astype(int), np.rint(r).astype(int)
        if not (np.allclose(q, q_int, atol=1e-3) and np.allclose(r, r_int, atol=1e-3)):
            raise ValueError(
                f"Camera {geometry.name!r} is not a hexagonal lattice with rows along x"
            )
        self._q0, self._r0 = q_int.min(), r_int.min()
        shape = (q_int.max() - self._q0 + 1, r_int.max() - self._r0 + 1)
        self._table = np.full(shape, -1, dtype=np.int64)
        self._table[q_int - self._q0, r_int - self._r0] = np.arange(len(x))
        self.n_pixels = len(x)

    def _axial(self, x, y):
        r = y / (self.pitch * np.sqrt(3) / 2)
        q = x / self.pitch - 0.5 * r
        return q, r

    def __call__(self, x, y):
        """Pixel index of each point ``(x, y)`` [m], -1 outside the camera."""
        q, r = self._axial(np.asarray(x), np.asarray(y))
        s = -q - r
        rq, rr, rs = np.rint(q), np.rint(r), np.rint(s)
        dq, dr, ds = np.abs(rq - q), np.abs(rr - r), np.abs(rs - s)
        fix_q = (dq > dr) & (dq > ds)
        fix_r = ~fix_q & (dr > ds)
        rq = np.where(fix_q, -rr - rs, rq)
        rr = np.where(fix_r, -rq - rs, rr)
        iq = rq.astype(np.int64) - self._q0
        ir = rr.astype(np.int64) - self._r0
        inside = (iq >= 0) & (iq < self._table.shape[0]) & (ir >= 0) & (ir < self._table.shape[1])
        out = np.full(iq.shape, -1, dtype=np.int64)
        out[inside] = self._table[iq[inside], ir[inside]]
        return out


class PatchTrigger:
    """Sum trigger over 7-pixel patches (a pixel and its next neighbours).

    An event triggers when any patch sum of the (noisy) charge reaches the threshold [p.e.].
    """

    def __init__(self, geometry):
        self.patches = geometry.neighbor_matrix_sparse.astype(np.float64).tolil()
        self.patches.setdiag(1.0)
        self.patches = self.patches.tocsr()
        self.max_patch_size = int(np.max(np.diff(self.patches.indptr)))

    def max_patch_sum(self, charge):
        """Largest patch sum of each event, ``charge`` of shape ``(N, n_pixels)``."""
        return np.asarray((self.patches @ charge.T).max(axis=0)).ravel()

    def __call__(self, charge, threshold):
        """True for the events ``(N, n_pixels)`` with a patch sum of at least ``threshold``."""
        return self.max_patch_sum(charge) >= threshold


def digitise(n_pe, rng, excess_noise, nsb_mean_pe, electronic_noise, saturation):
    """Charge [p.e.] of ``n_pe`` photo-electrons with PMT, night-sky and electronic noise.

    * PMT excess noise: the sum of ``n`` single-p.e. amplitudes of relative width
      ``excess_noise`` is ``n + sqrt(n) * excess_noise * N(0, 1)``;
    * night-sky background: ``Poisson(nsb_mean_pe) - nsb_mean_pe`` (pedestal subtracted, so
      empty pixels go slightly negative) plus Gaussian electronic noise;
    * saturation: the charge is clipped at ``saturation``.
    """
    n_pe = np.asarray(n_pe, dtype=np.float64)
    charge = n_pe + np.sqrt(n_pe) * excess_noise * rng.standard_normal(n_pe.shape)
    if nsb_mean_pe > 0:
        charge += rng.poisson(nsb_mean_pe, size=n_pe.shape) - nsb_mean_pe
    if electronic_noise > 0:
        charge += electronic_noise * rng.standard_normal(n_pe.shape)
    return np.minimum(charge, saturation)
