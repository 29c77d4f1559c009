"""The public namespace: lazy, small, and stable whatever the import order."""

from __future__ import annotations

import subprocess
import sys

import cemrecon


def test_public_names_resolve_to_what_they_say():
    import cemrecon.recombination  # noqa: F401  (a submodule import must not shadow the function)
    from cemrecon import recombine, recombine_pair

    assert callable(recombine) and recombine.__name__ == "recombine"
    assert recombine_pair.__name__ == "recombine_pair"
    for name in cemrecon.__all__:
        assert getattr(cemrecon, name) is not None, name


def test_import_is_lazy():
    # `import cemrecon` must not pull in numba (compiles on first use) or the physics tables
    code = "import sys, cemrecon; print('numba' in sys.modules, 'cemrecon.physics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cemrecon.nope  # noqa: B018


def test_recombine_and_iodine_map_take_inputs_the_same_way(tmp_path):
    import numpy as np
    import pytest

    from cemrecon import DicomReadError, iodine_map, recombine

    for fn in (recombine, iodine_map):
        with pytest.raises(TypeError, match="le must be a numpy array, a pydicom Dataset, a DICOM path"):
            fn(object(), np.ones((4, 4), np.uint16))
        with pytest.raises(TypeError, match="he is required unless le is a Pair"):
            fn(np.ones((4, 4), np.uint16))
        missing = tmp_path / "missing.dcm"
        with pytest.raises(DicomReadError, match="missing.dcm: cannot read le as DICOM"):
            fn(missing, missing)
