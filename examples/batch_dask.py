"""Batch recombination on a Dask cluster (here a LocalCluster; use Client("tcp://host:8786") for a real one).

Same as ``cemrecon recombine PATH --out OUT --scheduler ADDRESS``: one job per exam,
run on the cluster's workers through ``Client.get_executor()``; outputs, reruns
and summary.json behave exactly as with the default process pool.

Run as a script: ``python examples/batch_dask.py`` (the ``__main__`` guard is
needed because the cluster starts worker processes).
"""

import tempfile
from pathlib import Path

from distributed import Client, LocalCluster

from cemrecon.phantom import write_exams
from cemrecon.pipeline import run_batch


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="cemrecon-dask-"))
    write_exams(work / "exams", 3, seed=1, scale=0.2)

    # One thread per worker: cemrecon's kernels run single-threaded inside a worker task,
    # so n_workers x 1 thread matches the cores without oversubscription.
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        summary = run_batch([work / "exams"], work / "out", executor=client.get_executor())

    print(summary.executor, summary.counts)
    for rec in summary.pairs:
        print(rec.key, rec.status, rec.outputs[0]["path"] if rec.outputs else rec.error)


if __name__ == "__main__":
    main()
