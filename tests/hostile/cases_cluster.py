"""`afford sweep --scheduler` (issue 15, item 3; decide/cluster.py): a malformed Dask address or a missing dask
extra is one line and exit 2, refused before any model is traced or any host contacted. The unreachable and
silent schedulers (which wait out a connect timeout) are in tests/test_cluster.py."""

from __future__ import annotations

from hostile.harness import Case

TV = "torchvision:resnet18"

CASES = [
    Case("cluster_unknown_scheme", ["sweep", TV, "--scheduler", "foo://host:8786"], 2,
         r"--scheduler 'foo://host:8786' is not a Dask scheduler address.*unknown address scheme 'foo'"),
    Case("cluster_no_port", ["sweep", TV, "--scheduler", "tcp://host"], 2,
         r"--scheduler 'tcp://host' is not a Dask scheduler address.*port"),
    Case("cluster_empty", ["sweep", TV, "--scheduler", " "], 2, r"--scheduler '' is not a Dask scheduler address"),
    Case("cluster_missing_extra", ["sweep", TV, "--scheduler", "local"], 2,
         r"needs the dask extra \(distributed is not installed\): pip install 'afford\[dask\]'",
         hide=("distributed", "dask")),
    Case("cluster_bad_jobs_before_connecting", ["sweep", TV, "--scheduler", "tcp://h:1", "--jobs", "0"], 2,
         r"--jobs must be a positive integer"),
]
