"""Quickstart: pair, recombine and write one CEM exam with the public API.

Run it as a script (``python examples/quickstart.py``) or cell by cell (``# %%``
markers) in an editor or notebook.  It uses the built-in physics phantom, so it
needs no data; point ``read_exams`` at your own export folder instead.
"""

# %% A small synthetic CEM exam: LE/HE DICOM of both breasts, CC and MLO (+ ground truth)
import tempfile
from pathlib import Path

import numpy as np
import pydicom

from cemrecon import read_exams, recombine, recombine_pair
from cemrecon.phantom import write_exams

work = Path(tempfile.mkdtemp(prefix="cemrecon-quickstart-"))
write_exams(work / "exam", 1, seed=0, scale=0.25)
print("phantom exam in", work / "exam")

# %% Find the LE/HE pairs; every file gets a role, excluded files a reason
result = read_exams(work / "exam")
for pair in result.pairs:
    print(pair.key, "|", Path(pair.le.path).name, "+", Path(pair.he.path).name)
print(len(result.excluded), "files excluded, e.g.:", result.excluded[0].path, "-", result.excluded[0].reason)

# %% Recombine one pair: RC = ln HE - w ln LE (float32, ln units; iodine lowers RC)
pair = result.pairs[0]
rc = recombine(pair)
print("RC", rc.dtype, rc.shape)
res = recombine_pair(pair)  # the same, plus the weight used and provenance
print("weight used:", np.mean(res.weight))

# %% Check against the phantom's truth: RC falls where the iodine is
truth = np.load(work / "exam" / Path(pair.le.path).parent.parent.name / "truth" / f"{pair.laterality}_{pair.view}.npz")
iodine = truth["iodine_mg_cm2"]
breast = truth["breast_mask"].astype(bool)
high = breast & (iodine > np.percentile(iodine[breast], 99))
low = breast & (iodine <= np.percentile(iodine[breast], 50))
print(f"mean RC where iodine is highest: {rc[high].mean():.4f}, where lowest: {rc[low].mean():.4f} "
      "(physics.md: about -0.016 ln per mg I/cm^2)")

# %% Write it as a derived DICOM image (DM For Presentation, iodine bright, mapping recorded)
from cemrecon.io.write import decode_pixels, write_rc

written = write_rc(work / "rc.dcm", res.rc, pair.le.header, pair.he.header, weight=float(np.mean(res.weight)))
ds = pydicom.dcmread(written.path)
print(ds.SeriesDescription, "|", ds.DerivationDescription[:80], "...")
print("max |decoded - RC| =", np.abs(decode_pixels(ds) - res.rc).max(), "<= step/2 =", written.mapping.step / 2)

# %% The whole batch, as `cemrecon recombine` runs it (reruns skip finished pairs)
from cemrecon.pipeline import run_batch

summary = run_batch([work / "exam"], work / "out", workers=1)
print(summary.counts, "->", summary.path)
