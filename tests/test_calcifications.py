"""Calcification specks and BI-RADS grouping (cemrecon.quantify.calcifications).

The failure these tests guard against (issue 6, full-scale phantoms, seeds 7000-7005): clusters of
calcium-oxalate specks in thick dense breasts were missed because most of their specks reach only
z = 4-6 on the speck filter, so fewer than 5 passed the k_sigma = 6 threshold the clustering used.
The fix lets specks above ``k_member`` (now 4.5) count towards a cluster seeded by a speck above
``k_sigma``, which then needs 5 sigma of summed contrast above z = 5 over its 5 strongest specks
(the cluster evidence).  Images here are small synthetic ones with white noise of a known level, so the
expected speck z follows from the filter alone (no phantom run).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.stats import binom, norm

from cemrecon.quantify.calcifications import (
    Speck,
    cluster_specks,
    detect_calcifications,
)

PX_MM = 0.1
SIGMA_LN = 0.02  # white noise of ln(LE) per pixel
SIGMA_PX = (0.5, 1.0)  # the detector's DoG (detect_specks default)


def _dog_gains() -> tuple[float, float]:
    """(noise gain, one-pixel-speck peak gain) of the DoG, from its impulse response k.

    White noise of sd s gives a DoG response of sd ``s * sqrt(sum k^2)``; a one-pixel speck of
    attenuation c gives ``c * k(0)`` at its pixel, the maximum of its response (the neighbours
    respond with k(1) < 0), so its measured peak z is N(z0, 1) with z0 = c k(0) / (s |k|).
    """
    delta = np.zeros((31, 31))
    delta[15, 15] = 1.0
    k = ndi.gaussian_filter(delta, SIGMA_PX[0]) - ndi.gaussian_filter(delta, SIGMA_PX[1])
    assert k[15, 15] == k.max()
    return float(np.sqrt((k ** 2).sum())), float(k[15, 15])


def _speck(r, c, z):
    return Speck(row=float(r), col=float(c), area_px=9, diameter_mm=0.3, contrast=float(z))


# ----------------------------------------------------------------------------- grouping rule
def test_faint_members_join_a_seeded_group_only():
    """Deterministic rule check: 2 seeds (z 8) + 4 faint (z 5.5) within 1 cm make one 6-speck
    cluster; with one seed, or with no seed, there is none; a faint speck more than 1 cm from
    every seed core stays out."""
    seeds = [_speck(100, 100, 8.0), _speck(130, 110, 8.0)]
    faint = [_speck(110, 90, 5.5), _speck(95, 120, 5.5), _speck(120, 130, 5.5),
             _speck(140, 95, 5.5)]
    far = [_speck(100, 300, 5.5)]  # 20 mm away
    kw = {"pixel_mm": PX_MM, "shape": (400, 400), "k_seed": 6.0, "min_seeds": 2}
    cl = cluster_specks(seeds + faint + far, **kw)
    assert len(cl) == 1
    assert cl[0].n_calcifications == 6
    assert all(s.col < 200 for s in cl[0].specks)
    # one seed is not enough (a single strong background response must not collect faint ones)
    assert cluster_specks(seeds[:1] + faint, **kw) == []
    # without seeds nothing is reported, however many faint specks
    assert cluster_specks(faint + [_speck(105, 105, 5.5), _speck(115, 115, 5.5)], **kw) == []
    # the old rule (every speck a seed, k_seed=None) with only the seeds: 2 < 5, no cluster
    assert cluster_specks(seeds, pixel_mm=PX_MM, shape=(400, 400)) == []


def test_cluster_evidence_rule():
    """Deterministic check of the evidence test (evidence_floor 5, min_evidence 5): the sum of
    z - 5 over a group's 5 strongest specks.  A real cluster with one faint member (z 7.4 / 7.3 /
    5.8 / 5.4 / 4.6, the pattern of a missed development cluster: evidence 2.4 + 2.3 + 0.8 + 0.4 =
    5.9) is reported with one seed; a background-like group of 5-6 responses at z 5-6.3 (evidence
    1.3 + 0.7 + 0.6 + 0.1 = 2.7) is not, however many such specks it has among its 5 strongest."""
    kw = {"pixel_mm": PX_MM, "shape": (400, 400), "k_seed": 6.0, "min_seeds": 1,
          "evidence_floor": 5.0, "min_evidence": 5.0}
    pos = [(100, 100), (110, 120), (125, 95), (130, 130), (105, 140)]
    real = [_speck(r, c, z) for (r, c), z in zip(pos, (7.4, 7.3, 5.8, 5.4, 4.6))]
    cl = cluster_specks(real, **kw)
    assert len(cl) == 1 and cl[0].n_calcifications == 5
    assert cl[0].evidence == pytest.approx(5.9)
    background = [_speck(r, c, z) for (r, c), z in zip(pos, (6.3, 5.7, 5.6, 5.1, 5.0))]
    assert cluster_specks(background, **kw) == []
    # the same group passes a lower evidence bar, and without the test (floor None) it is a cluster
    assert len(cluster_specks(background, **{**kw, "min_evidence": 2.5})) == 1
    assert len(cluster_specks(background, **{**kw, "evidence_floor": None})) == 1
    # only the 5 strongest count: with two more specks at z 5.5 and 5.3 the 5 strongest are
    # 7.4 / 7.3 / 5.8 / 5.5 / 5.4 (evidence 6.4; summed over all seven it would be 6.7)
    seven = real + [_speck(140, 110, 5.5), _speck(95, 110, 5.3)]
    assert cluster_specks(seven, **kw)[0].evidence == pytest.approx(6.4)


def test_roi_is_drawn_around_the_specks_that_carry_evidence():
    """Faint members (below the floor) count towards the group but do not widen its ROI or its
    extent: 4 specks at z 8 within 3 mm and a z 4.7 member 9 mm away make one 5-speck cluster
    whose box (2 mm margin) ends before the faint member."""
    strong = [_speck(100, 100, 8.0), _speck(100, 130, 8.0), _speck(120, 100, 8.0),
              _speck(120, 130, 8.0)]
    faint = _speck(190, 115, 4.7)
    kw = {"pixel_mm": PX_MM, "shape": (400, 400), "k_seed": 6.0, "evidence_floor": 5.0,
          "min_evidence": 5.0, "roi_margin_mm": 2.0}
    (cl,) = cluster_specks(strong + [faint], **kw)
    assert cl.n_calcifications == 5 and faint in cl.specks
    r0, c0, r1, c1 = cl.bbox
    assert r0 <= 100 and r1 > 120 and r1 < 190  # 120 + 1.5 px speck radius + 20 px margin + 1
    assert cl.extent_mm == pytest.approx(3.0)
    # without the floor the faint member widens both
    (wide,) = cluster_specks(strong + [faint], **{**kw, "evidence_floor": None})
    assert wide.bbox[2] > 190 and wide.extent_mm == pytest.approx(9.0)


def test_isolated_member_does_not_stretch_the_extent():
    """A tight cluster (6 specks at z 8 within 4 mm, 2 mm apart) picks up a background response
    (z 5.5) 9 mm from its nearest speck, within the 1 cm reach of a core speck: it counts as a
    member, but with outlier_mm = 5 it stays out of the ROI and the extent (4 mm, not 13 mm)."""
    tight = [_speck(100 + 20 * (i // 3), 100 + 20 * (i % 3), 8.0) for i in range(6)]
    stray = _speck(120, 230, 5.5)  # 9 mm right of the speck at (120, 140)
    kw = {"pixel_mm": PX_MM, "shape": (400, 400), "k_seed": 6.0, "evidence_floor": 5.0,
          "min_evidence": 5.0}
    (cl,) = cluster_specks(tight + [stray], **kw, outlier_mm=5.0)
    assert cl.n_calcifications == 7 and stray in cl.specks
    assert cl.extent_mm == pytest.approx(4.0)
    assert cl.bbox[3] < 230
    (wide,) = cluster_specks(tight + [stray], **kw)
    assert wide.extent_mm == pytest.approx(13.0) and wide.bbox[3] > 230


def test_wide_group_is_cut_into_grouped_parts():
    """Two tight clusters (6 specks at z 8 within 2 mm) 23 mm apart, joined by two bridging
    specks 7.7 mm apart (each within 1 cm of the other and of one cluster, so all are core
    specks), form one 23 mm group: one ``regional`` cluster without the cut; with it, two
    clusters, each <= 2 cm across and holding one of the tight clusters, neither regional."""
    def tight(c0):
        return [_speck(100 + 10 * (i // 3), c0 + 10 * (i % 3), 8.0) for i in range(6)]

    a, b = tight(90), tight(320)  # columns 90-110 and 320-340
    bridges = [_speck(105, 177, 8.0), _speck(105, 253, 8.0)]
    kw = {"pixel_mm": PX_MM, "shape": (400, 500), "k_seed": 6.0, "evidence_floor": 5.0,
          "min_evidence": 5.0}
    (whole,) = cluster_specks(a + b + bridges, **kw)
    assert whole.regional and whole.n_calcifications == 14
    parts = cluster_specks(a + b + bridges, **kw, split_regional=True)
    assert len(parts) == 2 and not any(p.regional for p in parts)
    # each tight cluster lies whole in one part (the bridges join either side: both cuts are
    # <= 2 cm), and every speck is in one part
    assert sum(p.n_calcifications for p in parts) == 14
    assert sorted(sum(s in p.specks for s in a) for p in parts) == [0, 6]
    assert sorted(sum(s in p.specks for s in b) for p in parts) == [0, 6]
    # a wide group none of whose parts passes stays one regional cluster: 6 specks 4.4 mm apart
    # on a 22 mm line (every speck a seed), z 9 at both ends and 5.2 between: the whole group's
    # evidence is 4 + 4 + 3 x 0.2 = 8.6 >= 8, but a part <= 2 cm holds one end at most (<= 4.8)
    line = [_speck(100, 100 + 44 * i, z) for i, z in enumerate((9.0, 5.2, 5.2, 5.2, 5.2, 9.0))]
    kw_line = {"pixel_mm": PX_MM, "shape": (400, 500), "evidence_floor": 5.0, "min_evidence": 8.0}
    (wide,) = cluster_specks(line, **kw_line, split_regional=True)
    assert wide.regional and wide.n_calcifications == 6
    assert wide.evidence == pytest.approx(8.6)


def test_group_wider_than_1cm_reach_is_split():
    """Two 5-speck seed groups 25 mm apart are two clusters, each within 2 cm."""
    a = [_speck(100 + 10 * i, 100, 9.0) for i in range(5)]
    b = [_speck(100 + 10 * i, 350, 9.0) for i in range(5)]
    cl = cluster_specks(a + b, pixel_mm=PX_MM, shape=(400, 500), k_seed=6.0, min_seeds=2)
    assert len(cl) == 2
    assert all(c.n_calcifications == 5 and not c.regional for c in cl)


# ----------------------------------------------------------------------------- end to end
N_FAINT = 40
Z_FAINT = 4.5  # oxalate-like: the missed phantom clusters' specks had median z 4.5
Z_SEED = 10.0


def _cluster_image(n_seeds: int):
    """LE with white ln-noise and a cluster of ``n_seeds`` strong + 40 faint one-pixel specks.

    Faint specks have an expected peak z of 4.5 (like the oxalate specks of the missed phantom
    clusters, median z 4.5), seeds z 10; all on a 7 x 7 grid of 1.2 mm pitch (7.2 mm across, so
    every speck is within 1 cm of the central seeds).
    """
    rng = np.random.default_rng(20261201)
    n = 300
    a = rng.normal(0.0, SIGMA_LN, (n, n))
    g_noise, g_peak = _dog_gains()
    grid = [(114 + 12 * i, 114 + 12 * j) for i in range(7) for j in range(7)]
    grid.sort(key=lambda rc: (rc[0] - 150) ** 2 + (rc[1] - 150) ** 2)  # seeds at the centre
    zs = [Z_SEED] * n_seeds + [Z_FAINT] * N_FAINT
    pos = grid[:len(zs)]
    for (r, c), z in zip(pos, zs):
        a[r, c] += z * SIGMA_LN * g_noise / g_peak
    le = 3000.0 * np.exp(-a)
    return le, pos, zs


@pytest.fixture(scope="module")
def faint_cluster_image():
    return _cluster_image(2)


def test_faint_cluster_detected(faint_cluster_image):
    """The cluster is found at k_sigma = 6 (the analyze default) through its faint members.

    Tolerance: a one-pixel speck's measured peak z is N(z0, 1) (see _dog_gains; the MAD noise
    estimate of the 3 mm blocks, ~900 pixels, carries ~4 % error, and the specks themselves raise
    it by ~1 %: allow z0 - 0.2).  A faint speck then passes k_member = 4.5 with p = Phi(-0.2) =
    0.42; the cluster needs 3 of the 40 besides the 2 seeds (z 10 < 6 has probability 3e-5):
    P(fail) = P(Binomial(40, 0.42) < 3) ~ 1e-7.  Its evidence is at least the two seeds' z - 5,
    N(9.6, 1.4), below 5 with probability 5e-4.  The old rule (every speck >= 6) would need 3
    faint specks >= 6, p = Phi(-1.5) = 0.07 each, i.e. it finds such a cluster only ~50 % of the
    time; that it cannot count a faint speck is what the member check shows.
    """
    le, pos, _ = faint_cluster_image
    p_member = norm.sf(4.5, loc=Z_FAINT - 0.2)
    assert binom.cdf(2, N_FAINT, p_member) < 1e-6  # the stated failure probabilities hold
    assert norm.cdf(5.0, loc=2 * (Z_SEED - 0.2) - 10.0, scale=np.sqrt(2)) < 1e-3
    res = detect_calcifications(le, np.ones(le.shape, bool), pixel_mm=PX_MM, k_sigma=6.0)
    assert len(res.clusters) == 1
    cl = res.clusters[0]
    assert cl.n_calcifications >= 5
    # faint members (4.5 <= z < 6) are counted: P(none of 40) = (1 - 0.35)^40 ~ 3e-8
    assert any(4.5 <= s.contrast < 6.0 for s in cl.specks)
    assert cl.evidence >= 5.0
    r0, c0, r1, c1 = cl.bbox
    for r, c in pos[:2]:  # the seeds lie in the box
        assert r0 <= r < r1 and c0 <= c < c1
    # every speck reported is a seed or a cluster member
    members = set(cl.specks)
    assert all(s.contrast >= 6.0 or s in members for s in res.specks)
    # the pixel mask holds the reported specks and nothing else
    _, nlab = ndi.label(res.mask, structure=np.ones((3, 3), bool))
    assert nlab == len(res.specks)


def test_one_strong_speck_alone_is_not_a_cluster():
    """One seed (z0 10, evidence ~5 by itself) among white noise collects no members: a noise
    pixel reaches z >= 4.5 with probability 3.4e-6, ~0.1 expected within its 1 cm reach, so 4 more
    (P ~ 4e-6) never happen; the 5-speck count, not the evidence, rejects it.  With the 40 faint
    specks (z0 4.5) around one seed the evidence rule decides: every reported cluster then holds
    a seed and 5 sigma of evidence, and a faint speck is reported only inside a cluster."""
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, SIGMA_LN, (300, 300))
    g_noise, g_peak = _dog_gains()
    a[150, 150] += 10.0 * SIGMA_LN * g_noise / g_peak
    res = detect_calcifications(3000.0 * np.exp(-a), np.ones(a.shape, bool), pixel_mm=PX_MM,
                                k_sigma=6.0)
    assert res.clusters == ()
    assert all(s.contrast >= 6.0 for s in res.specks)
    le, _, _ = _cluster_image(1)
    res = detect_calcifications(le, np.ones(le.shape, bool), pixel_mm=PX_MM, k_sigma=6.0)
    for cl in res.clusters:
        z = sorted((s.contrast for s in cl.specks), reverse=True)
        assert z[0] >= 6.0
        assert sum(max(v - 5.0, 0.0) for v in z[:5]) == pytest.approx(cl.evidence)
        assert cl.evidence >= 5.0
    members = {s for cl in res.clusters for s in cl.specks}
    assert all(s.contrast >= 6.0 or s in members for s in res.specks)
    # with k_member = None (the old rule) no speck below 6 is ever reported
    old = detect_calcifications(le, np.ones(le.shape, bool), pixel_mm=PX_MM, k_sigma=6.0,
                                k_member=None)
    assert all(s.contrast >= 6.0 for s in old.specks)


def test_no_cluster_in_pure_noise():
    """White noise only, 100 cm^2 at 0.1 mm: a z >= 5 response has probability ~3e-7 per pixel
    (~0.3 per image), so 5 within 1 cm (a false cluster) has probability << 1e-6."""
    rng = np.random.default_rng(7)
    le = 3000.0 * np.exp(-rng.normal(0.0, SIGMA_LN, (1000, 1000)))
    res = detect_calcifications(le, np.ones(le.shape, bool), pixel_mm=PX_MM, k_sigma=6.0)
    assert res.clusters == ()
    assert len(res.specks) <= 3  # Poisson(0.3) > 3 has probability ~3e-4


def test_k_member_above_k_sigma_rejected():
    le = np.full((64, 64), 3000.0)
    with pytest.raises(ValueError, match="k_member"):
        detect_calcifications(le, np.ones(le.shape, bool), pixel_mm=PX_MM, k_sigma=5.0,
                              k_member=6.0)


def test_noise_scale_invariance():
    """The threshold follows the local noise: doubling noise and speck contrast together leaves
    the detection unchanged (z is a ratio).  Five one-pixel specks at z0 = 12 (P(z < 6) = 1e-9)
    within 5 mm make one 5-speck cluster at either noise level."""
    g_noise, g_peak = _dog_gains()
    found = []
    for scale in (1.0, 2.0):
        rng = np.random.default_rng(3)
        a = rng.normal(0.0, SIGMA_LN * scale, (200, 200))
        for r, c in [(80, 80), (95, 100), (110, 85), (90, 120), (120, 110)]:
            a[r, c] += 12.0 * SIGMA_LN * scale * g_noise / g_peak
        res = detect_calcifications(3000.0 * np.exp(-a), np.ones(a.shape, bool), pixel_mm=PX_MM,
                                    k_sigma=6.0)
        found.append([c.n_calcifications for c in res.clusters])
    assert found[0] == found[1] == [5]


# ----------------------------------------------------------------------------- speck shape tests
def test_fine_linear_cast_is_a_speck_but_a_long_line_is_not():
    """Fine linear calcifications (BI-RADS 4C) are duct casts <= 0.5 mm wide and up to a few mm
    long; edges and vessels run for centimetres.  A 2 mm one-pixel-wide cast counts as one speck
    (it was dropped by the former 1.5 mm length limit), a 4 mm line of the same contrast does not
    (> max_length_mm = 2.5 mm).  Contrast z0 = 12 per pixel: P(a line pixel below the 5 sigma
    threshold) ~ 1e-12, so both lines are fully above threshold and only the length test decides."""
    from cemrecon.quantify.calcifications import detect_specks

    g_noise, g_peak = _dog_gains()
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, SIGMA_LN, (200, 200))
    amp = 12.0 * SIGMA_LN * g_noise / g_peak
    a[60, 80:100] += amp  # 2.0 mm cast
    a[140, 60:100] += amp  # 4.0 mm line
    specks, _ = detect_specks(3000.0 * np.exp(-a), np.ones(a.shape, bool), pixel_mm=PX_MM)
    near_cast = [s for s in specks if abs(s.row - 60) <= 2 and 78 <= s.col <= 101]
    near_line = [s for s in specks if abs(s.row - 140) <= 2 and 58 <= s.col <= 101]
    assert len(near_cast) == 1
    assert near_line == []
