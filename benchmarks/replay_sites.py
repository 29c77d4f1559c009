"""A/B of the enhancement call on cached sites: simulate once, re-judge in seconds.

The calls experiment of ``validate_quantify.py`` spends ~3-5 s per view on the phantom and the
iodine map; the call itself (:func:`cemrecon.quantify.enhancement.measure_enhancement`) takes a
fraction of that.  ``cache`` runs the experiment once and stores, for every judged site, the
inputs of its final call, cropped to the window the call reads (``search_mm + ring_gap_mm``
around the box, plus a margin for the calcification dilation; the call never reads past it, so
a replay on the crop gives the same answer: tested).  ``replay`` re-judges the cached sites with
``EnhancementConfig`` overrides and prints the targets table and the calls that changed, toward
or away from the phantom's truth.

Usage::

    python benchmarks/replay_sites.py cache --seeds 20000-20023 [--view MLO --laterality L] OUT
    python benchmarks/replay_sites.py replay OUT [OUT2 ...] [--set z_detect=2.5] [--list]

What the replay cannot see: the second BPE pass of ``analyze`` (sites judged again when the
findings' own enhancement had raised the view's category) is taken as it was when cached.  A
change adopted from a replay is checked by the full experiment and, for a report, on fresh seeds.
The cache holds ~4-5 MB per view (pickles: read only caches you wrote).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib
import pickle
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate_quantify as vq  # noqa: E402

#: keyword arguments of measure_enhancement that are images (cropped with the map)
IMAGE_ARGS = ("breast_mask", "calc_mask", "fgt_mask", "glandular_index")
#: the scalar / list keyword arguments that are stored as they are
PLAIN_ARGS = ("pixel_mm", "source", "n_calcifications", "bpe_category", "masking_level_mg_cm2",
              "map_blur_mm")


def crop_site(iodine, bbox, kwargs: dict, config) -> dict:
    """The inputs of one ``measure_enhancement`` call, cropped to what the call reads.

    The call works in a window of ``search_mm + ring_gap_mm`` around the box (clipped to the
    image); the crop adds ``calc_dilation_px`` + 2 pixels so the dilated calcification mask is
    the same at the window's edge.  Box and exclusion boxes are shifted into the crop.
    """
    px = float(kwargs["pixel_mm"])
    pad = int(np.ceil((config.search_mm + config.ring_gap_mm) / px)) + config.calc_dilation_px + 2
    hh, ww = np.shape(iodine)
    r0, c0, r1, c1 = (int(v) for v in bbox)
    a0, b0 = max(0, r0 - pad), max(0, c0 - pad)
    a1, b1 = min(hh, r1 + pad), min(ww, c1 + pad)
    site = {"iodine": np.asarray(iodine)[a0:a1, b0:b1].copy(),
            "bbox": (r0 - a0, c0 - b0, r1 - a0, c1 - b0), "origin": (a0, b0)}
    for k in IMAGE_ARGS:
        v = kwargs.get(k)
        site[k] = None if v is None else np.asarray(v)[a0:a1, b0:b1].copy()
    site["exclude_boxes"] = [(o[0] - a0, o[1] - b0, o[2] - a0, o[3] - b0)
                             for o in kwargs.get("exclude_boxes") or ()]
    for k in PLAIN_ARGS:
        if k in kwargs:
            site[k] = kwargs[k]
    return site


def judge_site(site: dict, config):
    """``measure_enhancement`` on a cropped site (see :func:`crop_site`)."""
    from cemrecon.quantify.enhancement import measure_enhancement

    kw = {k: site[k] for k in IMAGE_ARGS + PLAIN_ARGS + ("exclude_boxes",) if k in site}
    return measure_enhancement(site["iodine"], site["bbox"], config=config, **kw)


def cache(seeds, out: Path, *, view: str = "CC", laterality: str = "R", scale: float = 0.5,
          log=print) -> None:
    """Run the calls experiment's views and store the final call inputs of each judged site."""
    from cemrecon.phantom.exam import simulate_view
    from cemrecon.quantify import AnalyzeConfig, UserRoi
    from cemrecon.quantify.enhancement import EnhancementConfig

    analyze_mod = importlib.import_module("cemrecon.quantify.analyze")
    real = analyze_mod.measure_enhancement
    recorded: list[tuple] = []  # (iodine, bbox, kwargs, result) of every call, by reference

    def recording(iodine, bbox, **kw):
        res = real(iodine, bbox, **kw)
        recorded.append((iodine, bbox, kw, res))
        return res

    out.mkdir(parents=True, exist_ok=True)
    cfg = AnalyzeConfig(detect_calcifications=False)
    for seed in seeds:
        lesions = vq.experiment_lesions(seed)
        for level in vq.LEVELS:
            t0 = time.perf_counter()
            sim = simulate_view(seed=seed, scale=scale, laterality=laterality, view=view,
                                bpe_level=level, lesions=lesions)
            truths = vq.judged_lesions(sim)
            rois = [UserRoi(laterality, view, tuple(les.calcification_bbox)) for les in truths]
            recorded.clear()
            with mock.patch.object(analyze_mod, "measure_enhancement", recording):
                res = vq._analyze_sim(sim, rois=rois, config=cfg)
            final = recorded[-len(res.rois):] if res.rois else []  # the last judging pass
            user = []
            for (iodine, bbox, kw, r), les in zip(
                    [c for c, r in zip(final, res.rois) if r.source == "user"], truths, strict=True):
                site = crop_site(iodine, bbox, kw, kw.get("config") or EnhancementConfig())
                site["cached_call"] = (r.enhancement, r.type, r.reason)
                site["truth"] = vq.site_truth(les, seed, level)
                user.append(site)
            write_view({"seed": seed, "level": level, "view": view, "laterality": laterality,
                        "bpe_truth": vq.LEVELS.index(sim.truth.bpe_level),
                        "bpe_pred": vq.LEVELS.index(res.bpe.category), "sites": user}, out)
            log(f"seed {seed} {level:8s}: {len(user)} sites [{time.perf_counter() - t0:.1f} s]")


def write_view(rec: dict, out: Path) -> Path:
    """Store one view's record (``seed``, ``level``, ``view``, ``laterality``, ``bpe_truth``,
    ``bpe_pred``, ``sites``) in ``out`` atomically, as :func:`load` reads it."""
    path = out / f"{rec['view']}{rec['laterality']}_{rec['seed']}_{rec['level']}.pkl.gz"
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wb", compresslevel=1) as f:
        pickle.dump(rec, f)
    tmp.replace(path)
    return path


def load(dirs) -> list[dict]:
    views = []
    for d in dirs:
        for path in sorted(Path(d).glob("*.pkl.gz")):
            with gzip.open(path) as f:
                views.append(pickle.load(f))
    return views


def replay(views: list[dict], config) -> tuple[list[int], list[int], list[dict]]:
    """Re-judge every cached site; sites as ``validate_quantify`` tabulates them, plus the
    cached call (``cached_call``)."""
    bt, bp, sites = [], [], []
    for v in views:
        bt.append(v["bpe_truth"])
        bp.append(v["bpe_pred"])
        for s in v["sites"]:
            r = judge_site(s, config)
            row = dict(s["truth"], **vq.call_fields(r), cached_call=s["cached_call"][0])
            sites.append(row)
    return bt, bp, sites


def _overrides(pairs) -> dict:
    from cemrecon.quantify.enhancement import EnhancementConfig

    fields = {f.name: f for f in dataclasses.fields(EnhancementConfig)}
    out = {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        if k not in fields:
            raise SystemExit(f"--set: EnhancementConfig has no field {k!r}")
        default = getattr(EnhancementConfig(), k)
        out[k] = (v.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)(v)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="simulate the calls experiment and cache the sites")
    c.add_argument("out", type=Path)
    c.add_argument("--seeds", required=True)
    c.add_argument("--view", choices=("CC", "MLO"), default="CC")
    c.add_argument("--laterality", choices=("R", "L"), default="R")
    c.add_argument("--scale", type=float, default=0.5)
    r = sub.add_parser("replay", help="re-judge cached sites with EnhancementConfig overrides")
    r.add_argument("dirs", nargs="+", type=Path)
    r.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    r.add_argument("--list", action="store_true", help="list every changed call")
    args = ap.parse_args(argv)
    if args.cmd == "cache":
        cache(vq._range(args.seeds), args.out, view=args.view, laterality=args.laterality,
              scale=args.scale, log=lambda m: print(m, file=sys.stderr, flush=True))
        return 0
    from cemrecon.quantify.enhancement import EnhancementConfig

    bt, bp, sites = replay(load(args.dirs), EnhancementConfig(**_overrides(args.set)))
    vq.print_table(vq.call_rows(bt, bp, sites))
    changed = [s for s in sites if s["call"] != s["cached_call"]]
    toward = sum(s["call"] == s["expected"] for s in changed)
    away = sum(s["cached_call"] == s["expected"] for s in changed)
    print(f"calls changed against the cache: {len(changed)} of {len(sites)} "
          f"({toward} toward the truth, {away} away)")
    if args.list:
        for s in changed:
            print(f"  {s['seed']} {s['level']:8s} {s['type']:14s} E {s['excess']:.2f} "
                  f"spread {s['spread']:.2f} expected {s['expected']}: {s['cached_call']} -> "
                  f"{s['call']} ({s['reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
