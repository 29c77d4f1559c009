"""End to end from phantom DICOM files: reader pair -> recombine_pair (headers drive the weight)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cemrecon import recombine, recombine_pair


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    from cemrecon.io.read import read_exams
    from cemrecon.phantom import write_exams

    out = tmp_path_factory.mktemp("exam")
    truths = write_exams(out, 1, seed=1, scale=0.1)
    read = read_exams([out])
    assert read.pairs, "the phantom exam must pair"
    return truths[0], read.pairs


def test_pair_from_dicom_uses_its_own_headers(exam):
    from cemrecon.physics import Beam
    from cemrecon.weights import physics_weight

    truth, pairs = exam
    pair = pairs[0]
    res = recombine_pair(pair)
    truth_json = json.loads(
        (truth.directory / "truth" / f"{pair.laterality.value}_{pair.view.value}.json").read_text()
    )
    exp = truth_json["exposure"]
    le_beam = Beam(exp["LE"]["anode"], exp["LE"]["filter_material"], exp["LE"]["filter_mm"], exp["LE"]["kvp"])
    he_beam = Beam(exp["HE"]["anode"], exp["HE"]["filter_material"], exp["HE"]["filter_mm"], exp["HE"]["kvp"])
    # the weight comes from the DICOM beams and Body Part Thickness (rounded to 0.5 mm)
    expected_w = physics_weight(le_beam, he_beam, exp["compressed_thickness_mm"])
    assert res.weight_mode == "physics"
    assert res.weight == pytest.approx(expected_w, abs=1e-3)  # header thickness has 0.01 mm digits
    # the dark offset comes from the phantom's private tag
    assert res.provenance["dark_offset_le_dn"] == exp["dark_offset_dn"]
    assert res.provenance["sources"]["le"] == str(pair.le.path)
    le_px, he_px = pair.load()
    assert_array_equal(res.rc, recombine(le_px, he_px, weight=res.weight, dark_offset=exp["dark_offset_dn"]))
    assert res.rc.dtype == np.float32 and res.rc.shape == le_px.shape
    assert np.all(np.isfinite(res.rc))


def test_paths_and_pair_give_the_same_rc(exam):
    _, pairs = exam
    pair = pairs[-1]
    from_paths = recombine(str(pair.le.path), str(pair.he.path))
    assert_allclose(from_paths, recombine(pair), rtol=0, atol=0)
