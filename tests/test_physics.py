"""Known-answer tests of cemrecon.physics: materials, spectra, forward model, noise, dose, scatter.

Reference numbers are from shared/reference/physics.md ("computed" with spekpy 2.5.4 and
xraylib 4.3.0, the libraries installed here).
"""

from __future__ import annotations

import numpy as np
import pytest

from cemrecon.errors import PhysicsError
from cemrecon.physics import (
    Beam,
    SignalModel,
    add_scatter,
    aec_mas,
    he_beam_for_thickness,
    le_beam_for_thickness,
    mass_atten_cm2_g,
    mean_glandular_dose_mGy,
    mu_linear_cm,
    sample_signal,
    spectrum,
)

# --------------------------------------------------------------------------- materials

# physics.md section 2, "Attenuation (computed)": linear mu in 1/cm, iodine mu/rho in cm^2/g
_ATTEN_TABLE = """
17.5 .672 1.071 1.149 30.37 12.76 .905 36.4
20 .510 .781 .837 20.73 8.76 .680 25.4
25 .350 .497 .531 11.00 4.73 .459 13.9
30 .279 .372 .395 6.63 2.91 .361 8.56
33.0 .255 .329 .349 5.13 2.28 .327 6.64
33.3 .253 .325 .345 5.01 2.23 .324 35.5
35 .242 .308 .326 4.39 1.98 .310 31.2
38 .228 .283 .299 3.55 1.63 .290 25.2
40 .220 .270 .285 3.12 1.45 .280 22.1
45 .206 .247 .260 2.35 1.12 .260 16.3
"""
_COLUMNS = ["adipose", "glandular", "skin", "hydroxyapatite", "calcium_oxalate", "pmma", "iodine"]


def _table_cases():
    for line in _ATTEN_TABLE.strip().splitlines():
        energy, *values = line.split()
        for material, text in zip(_COLUMNS, values):
            decimals = len(text.split(".")[1]) if "." in text else 0
            yield pytest.param(float(energy), material, float(text), decimals, id=f"{material}-{energy}")


@pytest.mark.parametrize("energy_keV, material, expected, decimals", list(_table_cases()))
def test_attenuation_matches_reference_table(energy_keV, material, expected, decimals):
    # The table was computed with the same xraylib (CS_Total, mixture rule) and the same
    # compositions, so the only difference is its printed rounding: half a unit in the last
    # digit.  We allow 0.6 units (room for float summation order), i.e. 0.03-0.25 %.
    if material == "iodine":
        value = mass_atten_cm2_g("iodine", [energy_keV])[0]
    else:
        value = mu_linear_cm(material, [energy_keV])[0]
    assert abs(value - expected) <= 0.6 * 10.0**-decimals


@pytest.mark.parametrize("energy_keV, nist", [(15.0, 1.374), (20.0, 0.5503), (30.0, 0.1557), (40.0, 0.06947)])
def test_energy_absorption_matches_nist_water(energy_keV, nist):
    # NIST (Hubbell & Seltzer) mu_en/rho of liquid water in cm^2/g.  Our approximation
    # mu_pe + mu_incoh * E / m_e c^2 is first order in E / m_e c^2: it overestimates the
    # Compton energy transfer by ~(E / m_e c^2) relative, 2-3 % of mu_en at 40 keV where
    # Compton is a third of it; 3 % tolerance.  (xraylib 4.3's CS_Energy gives 0.38 at
    # 20 keV, 30 % low, which is why it is not used.)
    from cemrecon.physics.materials import Material, mass_energy_absorption_cm2_g

    water = Material.from_fractions("water", {"H": 0.111894, "O": 0.888106}, 1.0)
    assert mass_energy_absorption_cm2_g(water, [energy_keV])[0] == pytest.approx(nist, rel=0.03)


def test_materials_reject_unknown_and_accept_scalars():
    with pytest.raises(PhysicsError, match="unknown material 'bone'.*adipose"):
        mu_linear_cm("bone", [20.0])
    with pytest.raises(PhysicsError, match="energies_keV"):
        mu_linear_cm("adipose", [0.5])
    assert np.shape(mu_linear_cm("adipose", 20.0)) == (1,)
    assert mu_linear_cm("adipose", np.array([[20.0, 30.0]])).shape == (1, 2)


# --------------------------------------------------------------------------- beams


def test_beam_validation_and_dicom_terms():
    beam = Beam.from_dicom_terms(49, "RHODIUM", "COPPER", 0.3)
    assert beam == Beam("Rh", "Cu", 0.3, 49.0)
    assert hash(beam) == hash(Beam("Rh", "Cu", 0.3, 49))
    assert Beam.from_dicom_terms("29", "rhodium", "Silver", "0.03") == Beam("Rh", "Ag", 0.03, 29)
    assert Beam.from_dicom_terms(30, "TUNGSTEN", "ALUMINIUM", 0.7).filter_material == "Al"
    assert Beam.from_dicom_terms(30, "W", "ALUMINUM", 0.7).anode == "W"
    with pytest.raises(PhysicsError, match="anode 'Cu'"):
        Beam("Cu", "Rh", 0.025, 30)
    with pytest.raises(PhysicsError, match="filter_material 'LEAD'"):
        Beam("Rh", "LEAD", 0.025, 30)
    with pytest.raises(PhysicsError, match="LEAD.*accepted"):
        Beam.from_dicom_terms(30, "RHODIUM", "LEAD", 0.025)
    with pytest.raises(PhysicsError, match="kvp=80.0 outside"):
        Beam("W", "Rh", 0.05, 80)
    with pytest.raises(PhysicsError, match="filter_mm=-0.1"):
        Beam("W", "Rh", -0.1, 30)
    with pytest.raises(PhysicsError, match="must be numbers"):
        Beam("W", "Rh", 0.05, "high")


def test_spectrum_cached_readonly_and_air_kerma_matches_spekpy():
    import spekpy

    beam = Beam("Rh", "Rh", 0.025, 31)
    s = spectrum(beam, paddle_pmma_mm=0.0, cover_mm=0.0)
    assert spectrum(beam, paddle_pmma_mm=0.0, cover_mm=0.0) is s
    assert not s.fluence_per_mm2_per_mAs.flags.writeable
    spek = spekpy.Spek(kvp=31, th=12, targ="Rh", dk=0.5, z=65.0)
    spek.filter("Be", 1.0)
    spek.filter("Rh", 0.025)
    # our air mu_en (photoelectric + first-order Compton transfer) is within ~1 % of NIST's
    # table at 10-50 keV; spekpy uses tabulated mu_en: allow 3 %.
    assert s.air_kerma_uGy_per_mAs == pytest.approx(spek.get_kerma(), rel=0.03)
    # fluence: spekpy's photons per cm^2 -> per mm^2, same bins (dropped bins are empty)
    assert s.fluence_per_mm2_per_mAs.sum() == pytest.approx(spek.get_flu() / 100.0, rel=1e-9)
    # physics.md: HVL 0.37 mm Al for Rh/Rh 31 (no paddle): same spekpy model
    assert spek.get_hvl1() == pytest.approx(0.37, abs=0.005)
    # the paddle and cover only remove photons, the low-energy ones most
    full = spectrum(beam)
    assert full.fluence_per_mm2_per_mAs.sum() < s.fluence_per_mm2_per_mAs.sum()
    assert full.mean_energy_keV > s.mean_energy_keV


# ---------------------------------------------------------------- forward model (known answer)


def _independent_slab_moments(anode, filt, filt_mm, kvp, paths, mas, pixel_mm):
    """Plain spekpy + xraylib + numpy sum, written from the documented model, not the module.

    Model: spekpy default physics, 12 deg anode, 1 mm Be, SID 650 mm, 0.5 keV bins; 2.5 mm
    PMMA paddle (1.19 g/cm^3), 1 mm carbon cover (1.55 g/cm^3); CsI 0.2 mm at 4.51 g/cm^3,
    photoelectric absorption, deposited energy = E.
    """
    import spekpy
    import xraylib

    spek = spekpy.Spek(kvp=kvp, th=12, targ=anode, dk=0.5, z=65.0)
    spek.filter("Be", 1.0)
    spek.filter(filt, filt_mm)
    energies, per_bin_cm2 = spek.get_spectrum(diff=False)
    photons = per_bin_cm2 / 100.0 * pixel_mm**2 * mas

    def mixture(fractions, density, fn=xraylib.CS_Total):
        total = sum(fractions.values())
        return np.array([
            density * sum(w / total * fn(xraylib.SymbolToAtomicNumber(el), float(e)) for el, w in fractions.items())
            for e in energies
        ])

    mu = {
        "adipose": mixture({"H": 0.112, "C": 0.619, "N": 0.017, "O": 0.251, "P": 0.001}, 0.93),
        "glandular": mixture({"H": 0.102, "C": 0.184, "N": 0.032, "O": 0.677, "P": 0.005}, 1.04),
        "skin": mixture({"H": 0.100, "C": 0.204, "N": 0.042, "O": 0.645, "Na": 0.002, "P": 0.001,
                         "S": 0.002, "Cl": 0.003, "K": 0.001}, 1.09),
        "iodine": mixture({"I": 1.0}, 1e-3),  # cm^2/mg
    }
    # xraylib's own atomic weights (as its CompoundParser uses; they differ from IUPAC's in
    # the 4th digit, which moves the signal by ~5e-6)
    h, c, o, ca, p, i, cs = (xraylib.AtomicWeight(xraylib.SymbolToAtomicNumber(el))
                             for el in ("H", "C", "O", "Ca", "P", "I", "Cs"))
    ha_mass = 10 * ca + 6 * p + 26 * o + 2 * h
    mu["hydroxyapatite"] = mixture({"Ca": 10 * ca / ha_mass, "P": 6 * p / ha_mass, "O": 26 * o / ha_mass,
                                    "H": 2 * h / ha_mass}, 3.16)
    pmma_mass = 5 * c + 8 * h + 2 * o
    paddle = mixture({"C": 5 * c / pmma_mass, "H": 8 * h / pmma_mass, "O": 2 * o / pmma_mass}, 1.19)
    cover = mixture({"C": 1.0}, 1.55)
    csi_pe = mixture({"Cs": cs / (cs + i), "I": i / (cs + i)}, 4.51, fn=xraylib.CS_Photo)
    eta = 1.0 - np.exp(-csi_pe * 0.02)
    transmission = np.exp(-paddle * 0.25 - cover * 0.1 - sum(mu[k] * v for k, v in paths.items()))
    # absorbed photons per bin are Poisson(N T eta), each depositing E
    mean = float(np.sum(photons * transmission * eta * energies))
    second = float(np.sum(photons * transmission * eta * energies**2))
    return mean, second


@pytest.mark.parametrize("beam_args", [("Rh", "Ag", 0.03, 29), ("Rh", "Cu", 0.3, 47), ("W", "Rh", 0.05, 29)])
def test_uniform_slab_matches_independent_spectral_integral(beam_args):
    paths = {"skin": 0.3, "adipose": 2.35, "glandular": 2.35, "iodine": 1.5, "hydroxyapatite": 0.01}
    mas, pixel_mm = 37.0, 0.1
    expected_mean, expected_second = _independent_slab_moments(*beam_args, paths, mas, pixel_mm)
    model = SignalModel(Beam(*beam_args), pixel_mm=pixel_mm)
    # (a) every material spatially varying (numba kernel path), (b) all scalars (folded path)
    arrays = {k: np.full((3, 5), v) for k, v in paths.items()}
    for p in (arrays, paths):
        mean, second = model.moments(p, mas)
        # 1e-6: the model drops bins carrying < 1e-8 of the open-field signal; the rest is
        # float round-off.  A wrong unit, bin width or material would be off by >> 1e-3.
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-6)
        np.testing.assert_allclose(second, expected_second, rtol=1e-6)


def _numpy_oracle(model, paths, mas):
    shape = np.broadcast_shapes(*(np.shape(v) for v in paths.values()), np.shape(mas))
    s = np.zeros(shape + (len(model.energies_keV),))
    for k, v in paths.items():
        s = s + np.asarray(v, dtype=np.float64)[..., None] * model.attenuation(k)
    tr = np.exp(-s)
    a1 = model.photons_per_mAs * model.absorbed_keV
    mas = np.asarray(mas, dtype=np.float64)
    return (tr * a1).sum(-1) * mas, (tr * a1 * model.energies_keV).sum(-1) * mas


def test_kernel_matches_numpy_oracle_with_broadcasting_and_dtypes():
    rng = np.random.default_rng(1)
    model = SignalModel(he_beam_for_thickness(60.0), pixel_mm=0.07)
    paths = {
        "adipose": rng.uniform(0, 5, (6, 1)),
        "glandular": rng.uniform(0, 5, (1, 9)),
        "skin": 0.3,
        "hydroxyapatite": rng.uniform(0, 0.05, (6, 9)).astype(np.float32),
        "iodine": rng.uniform(0, 4, (6, 9)),
        "muscle": np.zeros((1, 1)),
        "calcium_oxalate": rng.uniform(0, 0.02, (6, 9))[:, ::-1],  # non-contiguous view
    }
    before = {k: np.array(v, copy=True) for k, v in paths.items()}
    mas = rng.uniform(10, 100, (6, 1))
    mean, second = model.moments(paths, mas)
    ref_mean, ref_second = _numpy_oracle(model, paths, mas)
    assert mean.shape == second.shape == (6, 9)
    assert mean.dtype == second.dtype == np.float64
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(second, ref_second, rtol=1e-12)
    for k, v in paths.items():
        np.testing.assert_array_equal(v, before[k])


def test_inline_exp_matches_numpy():
    import numba

    from cemrecon.physics._kernels import _exp_neg

    @numba.njit(cache=False)
    def evaluate(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = _exp_neg(x[i])
        return out

    rng = np.random.default_rng(4)
    x = np.concatenate([np.linspace(0.0, 700.0, 200_001), rng.uniform(0.0, 30.0, 100_000), [0.0, 1e-300]])
    # Cody-Waite reduction + degree-12 polynomial: truncation 2e-16, rounding of the
    # reduction a few ulp of x (up to 700): 1e-13 relative
    np.testing.assert_allclose(evaluate(x), np.exp(-x), rtol=1e-13, atol=0)
    # beyond 700 it flushes to exp(-700) ~ 1e-304, harmless against any real signal
    assert evaluate(np.array([750.0, 1e300]))[0] < 1e-300


def test_kernel_chunking(monkeypatch):
    # a 1-D input spanning several kernel chunks (chunk size shrunk so the test stays fast,
    # also under NUMBA_DISABLE_JIT=1)
    from cemrecon.physics import signal

    monkeypatch.setattr(signal, "_CHUNK", 1000)
    rng = np.random.default_rng(2)
    model = SignalModel(he_beam_for_thickness(60.0))
    long_paths = {"adipose": rng.uniform(0, 6, 2501), "glandular": 1.0, "iodine": rng.uniform(0, 3, 2501)}
    mean, second = model.moments(long_paths, 2.0)
    ref_mean, ref_second = _numpy_oracle(model, long_paths, 2.0)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12)
    np.testing.assert_allclose(second, ref_second, rtol=1e-12)


def test_worker_threads_use_the_serial_kernel_with_identical_results():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    model = SignalModel(le_beam_for_thickness(40.0))
    paths = {"adipose": rng.uniform(0, 4, (40, 30)), "glandular": rng.uniform(0, 4, (40, 30))}
    main_mean, main_second = model.moments(paths, 3.0)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: model.moments(paths, 3.0), range(3)))
    for mean, second in results:
        np.testing.assert_array_equal(mean, main_mean)
        np.testing.assert_array_equal(second, main_second)


def test_moments_validation():
    model = SignalModel(le_beam_for_thickness(50.0))
    with pytest.raises(PhysicsError, match="paths key 'bone'"):
        model.moments({"bone": 1.0})
    with pytest.raises(ValueError, match=r"paths\['adipose'\] must be finite and >= 0"):
        model.moments({"adipose": np.array([1.0, -0.1])})
    with pytest.raises(ValueError, match="must be finite"):
        model.moments({"adipose": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match="broadcastable"):
        model.moments({"adipose": np.ones(3), "glandular": np.ones(4)})
    with pytest.raises(TypeError, match="mapping"):
        model.moments([("adipose", 1.0)])
    with pytest.raises(PhysicsError, match="pixel_mm"):
        SignalModel(le_beam_for_thickness(50.0), pixel_mm=0.0)
    # no object: the open-field signal, proportional to mAs and pixel area
    open_mean, _ = model.moments({}, 2.0)
    small = SignalModel(le_beam_for_thickness(50.0), pixel_mm=0.05)
    assert float(small.moments({}, 2.0)[0]) == pytest.approx(float(open_mean) / 4, rel=1e-12)


# --------------------------------------------------------------------------- noise


@pytest.mark.parametrize("thickness_mm", [30.0, 70.0])
def test_sample_signal_has_compound_poisson_mean_and_variance(thickness_mm):
    rng = np.random.default_rng(7)
    le = le_beam_for_thickness(thickness_mm)
    model = SignalModel(le)
    paths = {"skin": 0.3, "adipose": np.full((256, 256), (thickness_mm - 3) / 20), "glandular": (thickness_mm - 3) / 20}
    mean, second = model.moments(paths, aec_mas(le, thickness_mm))
    noisy = sample_signal(mean, second, rng)
    n = noisy.size
    # sampling error of a variance from n = 65536 near-Gaussian values: sqrt(2/n) = 0.55 %;
    # 5 % is 9 standard errors (the brief's tolerance).  Plain Poisson in keV (var = mean)
    # would be off by a factor ~20-30 (the mean absorbed energy per photon).
    assert noisy.var(ddof=1) == pytest.approx(second.mean(), rel=0.05)
    assert abs(noisy.mean() - mean.mean()) < 5 * np.sqrt(second.mean() / n)
    assert noisy.dtype == np.float64 and noisy.shape == mean.shape
    # equivalent quanta are fewer than absorbed photons (Cauchy-Schwarz; equality only for a
    # monoenergetic beam): catches a second moment built from the wrong per-photon energy
    absorbed_photons = np.sum(model.photons_per_mAs * model.absorbed_keV / model.energies_keV
                              * model.spectral_transmission({k: float(np.mean(v)) for k, v in paths.items()}))
    n_eq = mean.mean() ** 2 / second.mean()
    assert n_eq < absorbed_photons * aec_mas(le, thickness_mm)


def test_sample_signal_edge_cases():
    out = sample_signal(np.array([0.0, 100.0]), np.array([0.0, 2000.0]), 0)
    assert out[0] == 0.0 and out[1] % 20.0 == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        sample_signal(np.array([-1.0]), np.array([1.0]), 0)


# --------------------------------------------------------------------------- dose and AEC


@pytest.mark.parametrize(
    "beam_args, reference_ratio",
    [(("Rh", "Rh", 0.025, 31), 0.183), (("Rh", "Ag", 0.03, 32), 0.201),
     (("Rh", "Cu", 0.3, 45), 0.450), (("Rh", "Cu", 0.3, 49), 0.467)],
)
def test_mgd_to_kerma_ratio_matches_reference_with_its_mu_en(monkeypatch, beam_args, reference_ratio):
    """physics.md's primary-only MGD/K at 5 cm, 50 % glandular.

    That table's air kerma is ~30 % below spekpy's (79.0 vs ~103 uGy/mAs for Rh/Rh 31
    behind 2.5 mm PMMA): it used xraylib's CS_Energy for mu_en, which is low (air at 20 keV:
    0.36 vs NIST 0.54 cm^2/g).  With that mu_en substituted, our dose formula must give its
    ratio to within 3 % (rounding of the ratio 0.3 %, plus unknown geometry details such as
    the inverse-square through the breast).  With our NIST-like mu_en the HE ratios are ~6 %
    higher, which is the mu_en difference, not the dose model.
    """
    import xraylib

    from cemrecon.physics import acquisition, spectra
    from cemrecon.physics.materials import _mix

    beam = Beam(*beam_args)
    ours = mean_glandular_dose_mGy(beam, 50.0, 1.0) / (
        acquisition.incident_air_kerma_uGy_per_mAs(beam, 50.0) / 1000.0)
    assert ours == pytest.approx(reference_ratio, rel=0.10)

    def cs_energy(material, energies_keV):
        return _mix(material, energies_keV, xraylib.CS_Energy)

    monkeypatch.setattr("cemrecon.physics.materials.mass_energy_absorption_cm2_g", cs_energy)
    spectra._spectrum_cached.cache_clear()
    try:
        theirs = mean_glandular_dose_mGy(beam, 50.0, 1.0) / (
            acquisition.incident_air_kerma_uGy_per_mAs(beam, 50.0) / 1000.0)
    finally:
        monkeypatch.undo()
        spectra._spectrum_cached.cache_clear()
    assert theirs == pytest.approx(reference_ratio, rel=0.03)


def test_acquisition_rules_and_aec():
    assert le_beam_for_thickness(20.0) == Beam("Rh", "Ag", 0.03, 26)
    assert le_beam_for_thickness(90.0) == Beam("Rh", "Ag", 0.03, 33)
    assert le_beam_for_thickness(120.0).kvp == 33 and le_beam_for_thickness(10.0).kvp == 26
    assert he_beam_for_thickness(20.0) == Beam("Rh", "Cu", 0.3, 45)
    assert he_beam_for_thickness(90.0) == Beam("Rh", "Cu", 0.3, 49)
    kv = [le_beam_for_thickness(t).kvp for t in range(20, 91, 5)]
    assert kv == sorted(kv)
    with pytest.raises(PhysicsError, match="thickness_mm"):
        le_beam_for_thickness(-5.0)
    # physics.md section 3: at 5 cm about LE 1.3 mGy + HE 0.5 mGy
    le, he = le_beam_for_thickness(50.0), he_beam_for_thickness(50.0)
    assert mean_glandular_dose_mGy(le, 50.0, aec_mas(le, 50.0)) == pytest.approx(1.3, rel=1e-9)
    assert mean_glandular_dose_mGy(he, 50.0, aec_mas(he, 50.0)) == pytest.approx(0.5, rel=1e-9)
    assert aec_mas(le, 50.0, target_mgd_mGy=2.6) == pytest.approx(2 * aec_mas(le, 50.0))
    # thicker breasts need more mAs (more attenuation and a higher dose target)
    assert aec_mas(le_beam_for_thickness(80.0), 80.0) > aec_mas(le, 50.0)
    with pytest.raises(PhysicsError, match="target_mgd_mGy"):
        aec_mas(le, 50.0, target_mgd_mGy=-1.0)
    with pytest.raises(PhysicsError, match="not both"):
        aec_mas(le, 50.0, target_mgd_mGy=1.0, target_signal_keV=1e5)
    # detector-driven AEC: the slab signal at that mAs is the target
    from cemrecon.physics import slab_paths

    mas = aec_mas(le, 50.0, target_signal_keV=2.0e5)
    mean, _ = SignalModel(le).moments(slab_paths(50.0, 0.5), mas)
    assert float(mean) == pytest.approx(2.0e5, rel=1e-9)


# --------------------------------------------------------------------------- scatter


def test_scatter_uniform_breast_and_spill():
    primary = np.full((300, 200), 50.0)
    primary[:, 150:] = 1000.0  # direct beam outside the breast
    mask = np.zeros(primary.shape, dtype=bool)
    mask[:, :150] = True
    before = primary.copy()
    out = add_scatter(primary, spr=0.4, pixel_mm=0.5, kernel_fwhm_mm=30.0, mask=mask)
    np.testing.assert_array_equal(primary, before)
    # normalised inside the mask: a uniform breast gets exactly SPR x P up to its edge
    np.testing.assert_allclose(out[:, :150], 70.0, rtol=1e-9)
    # outside: the breast's scatter spills over (about half at the edge) and decays
    spill = out[150, 150:] - 1000.0
    assert 0.4 * 50 * 0.3 < spill[0] < 0.4 * 50 * 0.7
    assert spill[-1] < spill[0]
    # no mask: uniform image -> (1 + SPR) P; SPR map accepted
    np.testing.assert_allclose(add_scatter(np.full((40, 40), 10.0), spr=np.full((40, 40), 0.2), pixel_mm=1.0), 12.0)
    with pytest.raises(ValueError, match="mask shape"):
        add_scatter(primary, spr=0.3, pixel_mm=0.5, mask=mask[:10])


def test_scatter_reduces_contrast_of_a_small_detail():
    primary = np.full((200, 200), 100.0)
    primary[95:105, 95:105] = 80.0
    out = add_scatter(primary, spr=0.5, pixel_mm=0.2)
    contrast_primary = 1 - 80.0 / 100.0
    contrast_out = 1 - out[100, 100] / out[10, 10]
    # a detail much smaller than the kernel: contrast falls by 1 / (1 + SPR)
    assert contrast_out == pytest.approx(contrast_primary / 1.5, rel=0.02)
