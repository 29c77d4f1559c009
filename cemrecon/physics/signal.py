"""Polyenergetic Beer-Lambert forward model and quantum noise.

For one beam and pixel, with N(E) photons per bin reaching the detector plane
(no object), transmission T(E) = exp(-sum_m mu_m(E) t_m) and CsI absorption
probability eta(E) (:mod:`cemrecon.physics.detector`; an absorbed photon deposits E),
the expected detector signal and its second moment are

    mean   = sum_E N(E) T(E) eta(E) E      = sum_E N T e(E)        [keV]
    second = sum_E N(E) T(E) eta(E) E^2    = sum_E N T e(E) E      [keV^2]

with e(E) = eta(E) E the expected absorbed energy per *incident* photon.  The absorbed
photons in each bin are Poisson with mean N T eta and each deposits E, so ``second`` is
exactly the variance of this compound-Poisson signal.  (Writing ``sum N T e(E)^2``
would underestimate it by the factor eta.)  Every pixel is polyenergetic: no effective
energy is used anywhere.
"""

from __future__ import annotations

import logging
import threading
from typing import Mapping

import numpy as np

from cemrecon.errors import PhysicsError
from cemrecon.physics import _constants as C
from cemrecon.physics.spectra import Beam, spectrum

__all__ = ["SignalModel", "sample_signal", "IODINE", "PATH_MATERIALS"]

log = logging.getLogger(__name__)

#: key for iodine in ``paths``: an areal density in mg/cm^2 (not a length)
IODINE = "iodine"
#: materials accepted in ``paths`` (lengths in cm), plus ``"iodine"`` (mg/cm^2)
PATH_MATERIALS = ("adipose", "glandular", "skin", "muscle", "hydroxyapatite", "calcium_oxalate", "pmma",
                  "cu", IODINE)

#: pixels per kernel call: bounds the temporary (n_mat x chunk) float64 buffer (~10 MB)
_CHUNK = 1 << 18


def attenuation_per_unit(material: str, energies_keV) -> np.ndarray:
    """Attenuation per unit of ``paths``: 1/cm for materials, cm^2/mg for iodine."""
    from cemrecon.physics.materials import mass_atten_cm2_g, mu_linear_cm

    if material not in PATH_MATERIALS:
        raise PhysicsError(
            f"paths key {material!r} is not a known material; accepted: {', '.join(PATH_MATERIALS)}"
        )
    if material == IODINE:
        return mass_atten_cm2_g("iodine", energies_keV) * 1e-3  # cm^2/g -> cm^2/mg
    return mu_linear_cm(material, energies_keV)


class SignalModel:
    """Polyenergetic forward model of one beam on an energy-integrating CsI detector.

    Parameters
    ----------
    beam : Beam
    pixel_mm : float, optional
        Pixel pitch in mm (default 0.1); photons per pixel scale with its square.
    paddle_pmma_mm, cover_mm, sid_mm, csi_mm : float, optional
        Paddle, detector cover, source-to-detector distance and CsI thickness
        (defaults: 2.5 mm PMMA, 1 mm carbon fibre, 650 mm, 0.2 mm).

    Attributes
    ----------
    energies_keV : ndarray
        Energy bin centres.
    photons_per_mAs : ndarray
        Photons per bin per pixel per mAs at the detector (no object).
    absorbed_keV : ndarray
        Expected absorbed energy per incident photon, e(E) = eta(E) E.

    Examples
    --------
    >>> import numpy as np
    >>> model = SignalModel(Beam("Rh", "Ag", 0.03, 30))
    >>> mean, second = model.moments({"adipose": np.full((2, 2), 2.0), "glandular": 2.0}, mas=50.0)
    >>> mean.shape
    (2, 2)
    """

    def __init__(
        self,
        beam: Beam,
        *,
        pixel_mm: float = 0.1,
        paddle_pmma_mm: float = C.PADDLE_PMMA_MM,
        cover_mm: float = C.DETECTOR_COVER_MM,
        sid_mm: float = C.SID_MM,
        csi_mm: float = C.CSI_THICKNESS_MM,
    ):
        from cemrecon.physics.detector import absorbed_energy_keV, pixel_area_mm2

        from cemrecon.physics.spectra import checked_mm

        pixel_mm = checked_mm("pixel_mm", pixel_mm, 0.0, 10.0, open_low=True)
        csi_mm = checked_mm("csi_mm", csi_mm, 0.0, 5.0, open_low=True)
        self.beam = beam
        self.pixel_mm = float(pixel_mm)
        self.spectrum = spectrum(beam, paddle_pmma_mm=paddle_pmma_mm, cover_mm=cover_mm, sid_mm=sid_mm)
        energies = self.spectrum.energies_keV
        photons = self.spectrum.fluence_per_mm2_per_mAs * pixel_area_mm2(pixel_mm)
        absorbed = absorbed_energy_keV(energies, csi_mm=csi_mm)
        # Drop bins below the peak of the detected spectrum that together carry
        # < SIGNAL_FLOOR_REL of the open-field signal (for HE beams: everything below the
        # Cu K edge window and 9-18 keV behind 0.3 mm Cu).  Every material attenuates those
        # low-energy bins more than the bins kept (for iodine below its K edge the relative
        # gain is < exp(0.035 per mg/cm^2)), so the relative error of any signal stays near
        # that floor; the kernel does ~20-30 % less work.
        weight = photons * absorbed
        below_peak = np.flatnonzero(np.arange(len(weight)) < int(np.argmax(weight)))
        order = below_peak[np.argsort(weight[below_peak], kind="stable")]
        dropped = order[np.cumsum(weight[order]) < C.SIGNAL_FLOOR_REL * weight.sum()]
        keep = np.ones(len(weight), dtype=bool)
        keep[dropped] = False
        self.energies_keV = energies[keep]
        self.photons_per_mAs = photons[keep]
        self.absorbed_keV = absorbed[keep]
        # per-bin weights of the two moments (no object, per mAs)
        self._a1 = self.photons_per_mAs * self.absorbed_keV
        self._a2 = self._a1 * self.energies_keV
        for a in (self.energies_keV, self.photons_per_mAs, self.absorbed_keV, self._a1, self._a2):
            a.setflags(write=False)
        self._mu: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"SignalModel({self.beam!r}, pixel_mm={self.pixel_mm})"

    def attenuation(self, material: str) -> np.ndarray:
        """Per-bin attenuation per unit path (1/cm; cm^2/mg for iodine), cached."""
        mu = self._mu.get(material)
        if mu is None:
            mu = attenuation_per_unit(material, self.energies_keV)
            mu.setflags(write=False)
            self._mu[material] = mu
        return mu

    def spectral_transmission(self, paths: Mapping[str, float]) -> np.ndarray:
        """Per-bin transmission exp(-sum mu t) for *scalar* paths (used for slabs)."""
        s = np.zeros_like(self.energies_keV)
        for name, value in paths.items():
            v = float(value)
            if not v >= 0:
                raise ValueError(f"paths[{name!r}] must be >= 0, got {v}")
            s += self.attenuation(name) * v
        return np.exp(-s)

    def moments(self, paths: Mapping[str, object], mas=1.0) -> tuple[np.ndarray, np.ndarray]:
        """Expected absorbed energy per pixel (keV) and its second moment (keV^2).

        Parameters
        ----------
        paths : mapping
            Material name -> path length in cm (``"iodine"`` -> areal density in
            mg/cm^2).  Values are scalars or arrays of any mutually broadcastable shapes.
            Inputs are not modified.
        mas : float or array_like, optional
            Tube current-time product; both moments scale linearly with it.

        Returns
        -------
        mean_keV, second_moment_keV2 : ndarray of float64
            Of the broadcast shape of the path arrays (and ``mas``).
        """
        if not isinstance(paths, Mapping):
            raise TypeError(f"paths must be a mapping of material -> path, got {type(paths).__name__}")
        a1 = self._a1
        a2 = self._a2
        varying: list[tuple[str, np.ndarray]] = []
        shapes = []
        for name, value in paths.items():
            mu = self.attenuation(name)  # validates the name
            arr = np.asarray(value)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"paths[{name!r}] must be numeric, got dtype {arr.dtype}")
            if arr.size == 0:
                shapes.append(arr.shape)
                continue
            lo = arr.min()
            if not lo >= 0:  # also catches NaN
                raise ValueError(f"paths[{name!r}] must be finite and >= 0; minimum is {lo}")
            if not np.isfinite(arr.max()):
                raise ValueError(f"paths[{name!r}] must be finite")
            shapes.append(arr.shape)
            if arr.size == 1:
                # spatially constant: fold it into the spectrum (exact)
                tr = np.exp(-mu * float(arr.reshape(-1)[0]))
                a1 = a1 * tr
                a2 = a2 * tr
            else:
                varying.append((name, arr))
        try:
            shape = np.broadcast_shapes(*shapes, np.shape(mas))
        except ValueError:
            raise ValueError(
                "paths arrays (and mas) must be broadcastable; shapes: "
                + ", ".join(f"{k}={np.shape(v)}" for k, v in paths.items())
                + f", mas={np.shape(mas)}"
            ) from None
        mas_arr = np.asarray(mas, dtype=np.float64)
        if mas_arr.size and not mas_arr.min() >= 0:
            raise ValueError(f"mas must be >= 0, got minimum {mas_arr.min()}")
        n_pix = int(np.prod(shape, dtype=np.int64))
        path_shape = np.broadcast_shapes(*shapes) if shapes else ()
        n_path = int(np.prod(path_shape, dtype=np.int64))
        if not varying:
            mean = np.full(path_shape, float(a1.sum()))
            second = np.full(path_shape, float(a2.sum()))
        else:
            from cemrecon.physics import _kernels

            # numba's thread pool from the main thread only: worker threads run the
            # serial kernel (GIL released), so concurrent callers never nest thread pools
            main = threading.current_thread() is threading.main_thread()
            kernel = _kernels.moments_kernel if main else _kernels.moments_kernel_serial

            mu = np.ascontiguousarray(np.stack([self.attenuation(k) for k, _ in varying], axis=0))
            flats = []
            for _, arr in varying:
                if arr.shape == path_shape and arr.flags.c_contiguous:
                    flats.append(arr.reshape(-1))
                else:
                    flats.append(np.ascontiguousarray(np.broadcast_to(arr, path_shape)).reshape(-1))
            mean = np.empty(n_path, dtype=np.float64)
            second = np.empty(n_path, dtype=np.float64)
            buf = np.empty((len(flats), min(_CHUNK, n_path)), dtype=np.float64)
            for i0 in range(0, n_path, _CHUNK):
                i1 = min(i0 + _CHUNK, n_path)
                b = buf[:, : i1 - i0]
                for m, f in enumerate(flats):
                    b[m] = f[i0:i1]
                kernel(b, mu, a1, a2, mean[i0:i1], second[i0:i1])
            mean = mean.reshape(path_shape)
            second = second.reshape(path_shape)
        if mas_arr.ndim == 0 and mean.shape == shape:
            mean *= float(mas_arr)
            second *= float(mas_arr)
        else:
            mean = np.broadcast_to(mean * mas_arr, shape).copy()
            second = np.broadcast_to(second * mas_arr, shape).copy()
        log.debug("moments: %d pixels, %d varying materials, %d bins", n_pix, len(varying), len(a1))
        return mean, second

    def log_signal(self, paths: Mapping[str, object]) -> np.ndarray:
        """ln of the expected signal per mAs: ``ln moments(paths, 1)[0]`` (flat-field free)."""
        mean, _ = self.moments(paths, 1.0)
        with np.errstate(divide="ignore"):
            return np.log(mean)

    def slab_log_signal(self, paths: Mapping[str, float]) -> float:
        """ln of the expected signal per mAs for *scalar* paths (a uniform slab)."""
        tr = self.spectral_transmission(paths)
        return float(np.log(np.sum(self.photons_per_mAs * self.absorbed_keV * tr)))

    def slab_mean_attenuation(self, paths: Mapping[str, float], material: str) -> float:
        """Signal-weighted mean attenuation -d ln S / d t_material for a uniform slab."""
        w = self.photons_per_mAs * self.absorbed_keV * self.spectral_transmission(paths)
        return float(np.sum(w * self.attenuation(material)) / np.sum(w))


def sample_signal(mean_keV, second_moment_keV2, rng) -> np.ndarray:
    """Draw a quantum-noise realisation of an energy-integrated signal.

    A compound-Poisson signal (Poisson photons, each depositing a random energy) is
    realised as a scaled Poisson variable with the same mean and variance: the
    Swank-equivalent number of quanta ``N_eq = mean^2 / second`` is drawn,
    ``k ~ Poisson(N_eq)``, and ``signal = k * second / mean``.  Then
    ``E[signal] = mean`` and ``Var[signal] = second`` exactly.

    Parameters
    ----------
    mean_keV, second_moment_keV2 : array_like
        Outputs of :meth:`SignalModel.moments` (broadcastable).
    rng : numpy.random.Generator or int or None
        Random generator (an int seeds a new ``default_rng``).

    Returns
    -------
    ndarray of float64
        Noisy signal in keV; 0 where ``mean`` is 0.
    """
    rng = np.random.default_rng(rng)
    mean = np.asarray(mean_keV, dtype=np.float64)
    second = np.asarray(second_moment_keV2, dtype=np.float64)
    if mean.size and (not np.all(mean >= 0) or not np.all(second >= 0)):
        raise ValueError("mean_keV and second_moment_keV2 must be finite and >= 0")
    mean, second = np.broadcast_arrays(mean, second)
    ok = (mean > 0) & (second > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eq = np.where(ok, mean * mean / np.where(ok, second, 1.0), 0.0)
        scale = np.where(ok, second / np.where(ok, mean, 1.0), 0.0)
    return rng.poisson(n_eq).astype(np.float64) * scale
