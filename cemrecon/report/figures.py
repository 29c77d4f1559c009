"""Per-view PNG: LE and iodine side by side, ROIs drawn with their enhancement calls.

matplotlib (extra ``[report]``) is imported lazily; a bare :class:`matplotlib.figure.Figure` is
drawn on the Agg canvas (no pyplot state, no display needed); the figure is written atomically.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from cemrecon._fileio import atomic_write

__all__ = ["roi_label", "view_figure_name", "write_view_figure"]

#: Colour of each call on the figure.
CALL_COLOURS = {"enhancement": "red", "no_enhancement": "lime", "indeterminate": "orange"}


def roi_label(roi) -> str:
    """Text drawn by an ROI: the call, the type when enhancing, and why when indeterminate
    (``indeterminate: bpe texture``) or when judged against the breast instead of the ring."""
    label = roi.enhancement + (f" ({roi.type})" if roi.type else "")
    reason = getattr(roi, "reason", None)
    if roi.enhancement == "indeterminate" and reason:
        label += ": " + reason.replace("_", " ")
    elif reason == "above_breast_background":
        label += ", vs breast"
    return label


def view_figure_name(study_uid: str | None, laterality: str | None, view: str | None,
                     acquisition_index: int) -> str:
    """File name of a view's PNG: ``<study_uid>_<lat>_<view>_<index>.png`` (safe characters only)."""
    parts = [study_uid or "view", laterality or "U", view or "U", str(int(acquisition_index))]
    return re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(parts)) + ".png"


def _display_range(img: np.ndarray, mask: np.ndarray | None) -> tuple[float, float]:
    v = img[mask] if mask is not None and mask.any() else img[np.isfinite(img)]
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def write_view_figure(analysis: Any, path: str | os.PathLike, *, dpi: int = 100,
                      max_pixels: int = 1200) -> Path:
    """Draw one :class:`cemrecon.quantify.ViewAnalysis` to a PNG at ``path``.

    Parameters
    ----------
    analysis : ViewAnalysis
    path : path-like
        Output file (written atomically).
    dpi : int, optional
    max_pixels : int, optional
        Images are shown downsampled to at most this many rows (display only).
    """
    # a bare Figure renders through the Agg canvas: no pyplot, no global backend switch, no display
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    le = np.asarray(analysis.le, dtype=np.float64)
    step = max(1, int(np.ceil(le.shape[0] / max_pixels)))
    seg = analysis.segmentation
    mask = seg.breast_mask
    att = -np.log(np.maximum(le, 1.0))
    iod = np.asarray(analysis.iodine_rel_mg_cm2, dtype=np.float64)
    fig = Figure(figsize=(11, 6.5))
    axes = fig.subplots(1, 2)
    lo, hi = _display_range(att, mask)
    axes[0].imshow(att[::step, ::step], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(0, le.shape[1], le.shape[0], 0))
    axes[0].set_title("LE (attenuation)")
    # colour range from the interior: the thickness roll-off rim carries a residual (physics.md
    # section 1) that would otherwise set the scale and flatten the enhancement
    inner = mask & (seg.distance_mm >= seg.rolloff_mm)
    inner = inner if inner.sum() >= 100 else mask
    ilo, ihi = -0.5, max(1.5, float(np.nanpercentile(iod[inner], 99.5)) if inner.any() else 1.5)
    im = axes[1].imshow(np.where(mask, iod, np.nan)[::step, ::step], cmap="magma", vmin=ilo,
                        vmax=ihi, interpolation="nearest", extent=(0, le.shape[1], le.shape[0], 0))
    axes[1].set_title("iodine above local baseline (mg/cm$^2$)")
    fig.colorbar(im, ax=axes[1], fraction=0.04)
    for ax in axes:
        for roi in analysis.rois:
            r0, c0, r1, c1 = roi.bbox
            colour = CALL_COLOURS.get(roi.enhancement, "cyan")
            ax.add_patch(Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, edgecolor=colour,
                                   linewidth=1.2, linestyle="-" if roi.source == "detected" else "--"))
            ax.text(c0, max(0, r0 - 5), roi_label(roi), color=colour, fontsize=7, va="bottom")
        ax.set_xticks([])
        ax.set_yticks([])
    b = analysis.bpe
    fig.suptitle(f"{analysis.laterality or '?'} {analysis.view or '?'}  -  BPE {b.category} "
                 f"({100 * b.enhancing_fraction:.0f} % of FGT enhancing, mean "
                 f"{b.mean_fgt_iodine_mg_cm2:.2f} mg/cm$^2$)  -  {len(analysis.rois)} ROI(s)")
    return atomic_write(path, lambda fh: fig.savefig(fh, dpi=dpi, format="png"), what="figure")
