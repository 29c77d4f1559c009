"""Speed of the polyenergetic forward model (SignalModel.moments) on a full-field image.

Usage::

    python benchmarks/bench_physics_signal.py [--rows 2850] [--cols 2394] [--repeat 3]

Renders LE and HE moments of a random 5-material image (adipose, glandular, skin,
iodine, hydroxyapatite; skin constant, the others vary per pixel) and compares with a
chunked NumPy baseline (``exp(-t @ mu)`` per block of 65536 pixels) run in the same
process on the first 1/8 of the image, scaled.  Prints seconds and the speed ratio.
Not a test; numbers depend on the machine and its load (the CPU time, summed over
threads, is less sensitive to other processes than the wall time).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _numpy_baseline(model, paths, n_pix, block=65536):
    names = [k for k, v in paths.items() if np.ndim(v)]
    mu = np.stack([model.attenuation(k) for k in names])  # (n_mat, n_e)
    constant = sum(model.attenuation(k) * float(v) for k, v in paths.items() if not np.ndim(v))
    a1 = model.photons_per_mAs * model.absorbed_keV * np.exp(-constant)
    a2 = a1 * model.energies_keV
    flats = [paths[k].reshape(-1)[:n_pix] for k in names]
    mean = np.empty(n_pix)
    second = np.empty(n_pix)
    for i0 in range(0, n_pix, block):
        t = np.stack([f[i0:i0 + block] for f in flats], axis=1)
        tr = np.exp(-(t @ mu))
        mean[i0:i0 + block] = tr @ a1
        second[i0:i0 + block] = tr @ a2
    return mean, second


def main(argv=None) -> None:
    from cemrecon.physics import SignalModel, he_beam_for_thickness, le_beam_for_thickness

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2850)
    parser.add_argument("--cols", type=int, default=2394)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    shape = (args.rows, args.cols)
    g = rng.uniform(0.0, 1.0, shape)
    paths = {
        "skin": 0.3,
        "adipose": (1 - g) * 4.7,
        "glandular": g * 4.7,
        "iodine": rng.uniform(0.0, 2.0, shape),
        "hydroxyapatite": rng.uniform(0.0, 0.01, shape),
    }
    n_pix = g.size
    for beam in (le_beam_for_thickness(50.0), he_beam_for_thickness(50.0)):
        model = SignalModel(beam)
        model.moments({"adipose": np.ones(4)}, 1.0)  # compile / load the cache
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            mean, _ = model.moments(paths, 50.0)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        n_sub = n_pix // 8
        t0 = time.perf_counter()
        ref, _ = _numpy_baseline(model, paths, n_sub)
        t_np = (time.perf_counter() - t0) * n_pix / n_sub
        err = np.max(np.abs(mean.reshape(-1)[:n_sub] / (ref * 50.0) - 1))
        best = min(times)
        print(f"{beam}: {len(model.energies_keV)} bins, {n_pix / 1e6:.1f} Mpx, numba {best:.2f} s "
              f"(runs {', '.join(f'{t:.2f}' for t in times)}; CPU {min(cpu):.2f} s), numpy chunked ~{t_np:.2f} s, "
              f"speed-up x{t_np / best:.1f}, max rel diff {err:.1e}")


if __name__ == "__main__":
    main()
