"""LE/HE pairing: group by study, breast and view, match by acquisition time.

Rules (``shared/reference/dicom.md`` section 6):

* Candidates are grouped by Study Instance UID + laterality + view.
* An LE and an HE are *compatible* only if they share Rows/Columns and Imager Pixel
  Spacing, the Frame of Reference UID when both have one, and Patient Orientation and
  Field of View origin/rotation/flip when both state them; and if their acquisition
  times are at most ``max_gap_s`` apart.
* Compatible candidates are matched greedily, closest acquisition times first, so a
  late-phase repeat of a view (minutes later) becomes its own pair with
  ``acquisition_index`` 1, 2, ... in LE acquisition order.
* An image left over is reported with the reason; it is never forced into a pair.

This module knows nothing of files or DICOM parsing: it works on
:class:`cemrecon.io.read.SourceImage` objects (duck-typed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from cemrecon.io.enums import Laterality, View

if TYPE_CHECKING:  # pragma: no cover
    from cemrecon.io.read import SourceImage

__all__ = ["Pair", "Exam", "pair_images"]

logger = logging.getLogger(__name__)

# Imager Pixel Spacing must agree to this relative tolerance (DS values are written with
# at most 16 characters, so the same spacing may differ in the last digits).
_SPACING_RTOL = 1e-4
_VIEW_ORDER = {v: i for i, v in enumerate(View)}
_LAT_ORDER = {Laterality.R: 0, Laterality.L: 1}


@dataclass(eq=False)
class Pair:
    """One LE/HE pair of a study, breast and view.

    Attributes
    ----------
    study_uid : str
    laterality : Laterality
    view : View
    acquisition_index : int
        0 for the first pair of this study/breast/view in acquisition order, 1 for a
        repeat (e.g. a late-phase view), ...
    le, he : SourceImage
    """

    study_uid: str
    laterality: Laterality
    view: View
    acquisition_index: int
    le: SourceImage
    he: SourceImage

    @property
    def key(self) -> str:
        """``"<study_uid>/<laterality>/<view>/<acquisition_index>"``, unique within a read."""
        return f"{self.study_uid}/{self.laterality.value}/{self.view.value}/{self.acquisition_index}"

    @property
    def gap_s(self) -> float | None:
        """HE acquisition time minus LE acquisition time in seconds (None if unknown)."""
        return _gap_s(self.le, self.he)

    def load(self, *, parallel: bool = False, executor: Executor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Decode LE and HE pixel data.

        Parameters
        ----------
        parallel : bool
            Decode LE and HE in two threads.  Off by default: measured with
            pylibjpeg-openjpeg 2.6, pylibjpeg-libjpeg 2.5 and pyjpegls 1.5, the JPEG 2000,
            JPEG and JPEG-LS decoders hold the GIL (no ``PyEval_SaveThread`` in their
            extension modules; a Python thread runs at ~20 % speed during a decode), so
            threads only add overhead; uncompressed and RLE decodes take milliseconds.
        executor : concurrent.futures.Executor, optional
            Decode LE and HE as two tasks of this executor, e.g. a long-lived
            ``ProcessPoolExecutor`` shared by many pairs: the way to decode the two
            JPEG 2000 files of a pair on two cores.

        Returns
        -------
        (le_pixels, he_pixels) : tuple of numpy.ndarray
            ``uint16`` arrays of identical shape, checked against the scanned headers.
        """
        if executor is not None:
            from cemrecon.io.pixels import decode_pixels

            futures = [
                executor.submit(
                    decode_pixels, img.path, rows=img.meta.rows, columns=img.meta.columns, bits_stored=img.meta.bits_stored
                )
                for img in (self.le, self.he)
            ]
            le, he = (f.result() for f in futures)
        elif parallel:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="cemrecon-load") as pool:
                fut_le = pool.submit(self.le.read_pixels)
                fut_he = pool.submit(self.he.read_pixels)
                le, he = fut_le.result(), fut_he.result()
        else:
            le, he = self.le.read_pixels(), self.he.read_pixels()
        if le.shape != he.shape:  # headers agreed at pairing time; the files may have changed since
            from cemrecon.errors import PairingError

            raise PairingError(f"{self.key}: LE {self.le.path} is {le.shape} but HE {self.he.path} is {he.shape}")
        return le, he

    def __repr__(self) -> str:
        return f"Pair({self.key!r}, le={str(self.le.path)!r}, he={str(self.he.path)!r})"


@dataclass(eq=False)
class Exam:
    """All pairs of one study (Study Instance UID), in laterality / view / index order."""

    study_uid: str
    pairs: list[Pair] = field(default_factory=list)

    @property
    def patient_id(self) -> str | None:
        return str(self.pairs[0].le.header.get("PatientID", "")) or None if self.pairs else None

    def __repr__(self) -> str:
        return f"Exam({self.study_uid!r}, {len(self.pairs)} pairs)"


def _gap_s(le: SourceImage, he: SourceImage) -> float | None:
    t_le, t_he = le.meta.acquisition_datetime, he.meta.acquisition_datetime
    if t_le is None or t_he is None:
        return None
    return (t_he - t_le).total_seconds()


def _incompatibility(le: SourceImage, he: SourceImage, max_gap_s: float) -> str | None:
    """Why this LE and HE cannot be a pair (one neutral sentence naming both), or None."""
    who = f"LE {le.path.name} / HE {he.path.name}"
    if le.frame_of_reference_uid and he.frame_of_reference_uid and le.frame_of_reference_uid != he.frame_of_reference_uid:
        return f"{who}: different Frame of Reference UIDs"
    if (le.meta.rows, le.meta.columns) != (he.meta.rows, he.meta.columns):
        return f"{who}: matrix {le.meta.rows}x{le.meta.columns} vs {he.meta.rows}x{he.meta.columns}"
    sp_le, sp_he = le.meta.pixel_spacing_mm, he.meta.pixel_spacing_mm
    if (sp_le is None) != (sp_he is None) or (
        sp_le is not None and not np.allclose(sp_le, sp_he, rtol=_SPACING_RTOL, atol=0.0)
    ):
        return f"{who}: pixel spacing {sp_le} vs {sp_he} mm"
    if le.patient_orientation and he.patient_orientation and le.patient_orientation != he.patient_orientation:
        return f"{who}: Patient Orientation {'/'.join(le.patient_orientation)} vs {'/'.join(he.patient_orientation)}"
    if le.field_of_view and he.field_of_view:
        for name, a, b in zip(("origin", "rotation", "horizontal flip"), le.field_of_view, he.field_of_view):
            if a is not None and b is not None and a != b:
                return f"{who}: field-of-view {name} {a} vs {b}"
    gap = _gap_s(le, he)
    if gap is not None and abs(gap) > max_gap_s:
        return f"{who}: acquired {gap:+.0f} s apart (more than {max_gap_s:g} s: another compression)"
    return None


def pair_images(
    les: Sequence[SourceImage],
    hes: Sequence[SourceImage],
    *,
    warn_gap_s: float,
    max_gap_s: float,
    report: Callable[[SourceImage, str], None] | None = None,
) -> tuple[list[Pair], dict[SourceImage, str]]:
    """Pair LE with HE images.

    Parameters
    ----------
    les, hes : sequence of SourceImage
        Candidates (raw, For Processing, one per SOP Instance UID), each with
        ``study_uid``, ``laterality`` and ``view`` set.
    warn_gap_s : float
        A pair whose LE-HE gap exceeds this is passed to ``report``.
    max_gap_s : float
        Never pair images further apart than this.
    report : callable, optional
        ``report(image, message)`` for inconsistencies of accepted pairs.

    Returns
    -------
    pairs : list of Pair
        Sorted by study, laterality (R, L), view and acquisition index.
    unpaired : dict
        ``SourceImage -> reason`` for every candidate left without a partner.
    """
    groups: dict[tuple[str, Laterality, View], tuple[list[SourceImage], list[SourceImage]]] = {}
    for img in les:
        groups.setdefault((img.study_uid, img.laterality, img.view), ([], []))[0].append(img)
    for img in hes:
        groups.setdefault((img.study_uid, img.laterality, img.view), ([], []))[1].append(img)

    pairs: list[Pair] = []
    unpaired: dict[SourceImage, str] = {}
    for (study, lat, view), (g_le, g_he) in groups.items():
        where = f"study {study}, {lat} {view}"
        if not g_he:
            for le in g_le:
                unpaired[le] = f"orphan LE: no HE in {where}"
            continue
        if not g_le:
            for he in g_he:
                unpaired[he] = f"orphan HE: no LE in {where}"
            continue
        untimed = [img for img in (*g_le, *g_he) if img.meta.acquisition_datetime is None]
        if untimed and (len(g_le) > 1 or len(g_he) > 1):
            for img in (*g_le, *g_he):
                unpaired[img] = (
                    f"ambiguous: {len(g_le)} LE and {len(g_he)} HE in {where} and "
                    f"{len(untimed)} without acquisition time"
                )
            continue
        candidates: list[tuple[float, int, int]] = []
        why_le: dict[int, list[str]] = {i: [] for i in range(len(g_le))}
        why_he: dict[int, list[str]] = {j: [] for j in range(len(g_he))}
        for i, le in enumerate(g_le):
            for j, he in enumerate(g_he):
                why = _incompatibility(le, he, max_gap_s)
                if why is None:
                    gap = _gap_s(le, he)
                    candidates.append((abs(gap) if gap is not None else 0.0, i, j))
                else:
                    why_le[i].append(why)
                    why_he[j].append(why)
        candidates.sort()
        le_used: dict[int, int] = {}
        he_used: set[int] = set()
        for _, i, j in candidates:
            if i in le_used or j in he_used:
                continue
            le_used[i] = j
            he_used.add(j)
        matched = sorted(le_used.items(), key=lambda ij: (_time_key(g_le[ij[0]]), str(g_le[ij[0]].path)))
        for index, (i, j) in enumerate(matched):
            pair = Pair(study, lat, view, index, g_le[i], g_he[j])
            pairs.append(pair)
            gap = pair.gap_s
            if report is not None:
                if gap is None:
                    report(pair.le, f"{pair.key}: no acquisition time; paired as the only LE and HE of {where}")
                elif abs(gap) > warn_gap_s:
                    report(pair.le, f"{pair.key}: long LE-HE gap of {gap:+.1f} s (expected <= {warn_gap_s:g} s)")
        for i, le in enumerate(g_le):
            if i not in le_used:
                unpaired[le] = _leftover_reason("LE", "HE", where, why_le[i])
        for j, he in enumerate(g_he):
            if j not in he_used:
                unpaired[he] = _leftover_reason("HE", "LE", where, why_he[j])
    pairs.sort(key=lambda p: (p.study_uid, _LAT_ORDER.get(p.laterality, 9), _VIEW_ORDER.get(p.view, 99), p.acquisition_index))
    return pairs, unpaired


def _time_key(img: SourceImage) -> float:
    t = img.meta.acquisition_datetime
    return t.timestamp() if t is not None else 0.0


def _leftover_reason(kind: str, other: str, where: str, why: list[str]) -> str:
    if why:
        return f"orphan {kind}: no compatible {other} in {where} ({'; '.join(why[:3])})"
    return f"orphan {kind}: every compatible {other} in {where} is paired with a closer {kind}"
