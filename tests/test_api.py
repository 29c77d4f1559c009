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
