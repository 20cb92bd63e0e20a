"""`afford sweep` and `afford compare --jobs` (issue 15, item 3): a bad worker count, axis value or output path is
one line and exit 2, refused before any model is traced."""

from __future__ import annotations

from pathlib import Path

from hostile.harness import Case

TV = "torchvision:resnet18"


def _existing_csv(tmp: Path) -> None:
    """A CSV file already at the output path."""
    (tmp / "out.csv").write_text("keep me\n")


CASES = [
    Case("sweep_jobs_zero", ["sweep", TV, "--jobs", "0"], 2, r"--jobs must be a positive integer.*got 0"),
    Case("sweep_jobs_negative", ["sweep", TV, "--jobs", "-3"], 2, r"--jobs must be a positive integer"),
    Case("sweep_jobs_word", ["sweep", TV, "--jobs", "many"], 2, r"--jobs.*valid integer"),
    Case("sweep_jobs_huge", ["sweep", TV, "--jobs", "100000"], 2, r"--jobs must be a positive integer of at most"),
    Case("sweep_compare_jobs_zero", ["compare", TV, "torchvision:alexnet", "--jobs", "0"], 2,
         r"--jobs must be a positive integer"),
    Case("sweep_batch_word", ["sweep", TV, "--batch-size", "1,x"], 2, r"--batch-size 'x' is not a whole number"),
    Case("sweep_batch_zero", ["sweep", TV, "--batch-size", "0,8"], 2, r"--batch-size must be a positive integer"),
    Case("sweep_batch_empty", ["sweep", TV, "--batch-size", ","], 2, r"--batch-size needs at least one value"),
    Case("sweep_unknown_hardware", ["sweep", TV, "--hardware", "a100-80gb,h99"], 2, r"unknown hardware 'h99'"),
    Case("sweep_bad_precision", ["sweep", TV, "--precision", "bf16-mixed,fp12"], 2, r"precision.*fp12"),
    Case("sweep_budget_not_taken", ["sweep", TV, "--budget-usd", "10"], 2, r"no such option.*--budget-usd"),
    Case("sweep_csv_exists", ["sweep", TV, "--csv", "{tmp}/out.csv"], 2, r"exists; pass --force",
         setup=_existing_csv),
    Case("sweep_csv_no_folder", ["sweep", TV, "--csv", "{tmp}/nowhere/out.csv"], 2, r"folder .* does not exist"),
    Case("sweep_csv_is_folder", ["sweep", TV, "--csv", "{tmp}", "--force"], 2, r"not a file afford can write"),
    Case("sweep_parquet_no_pyarrow", ["sweep", TV, "--parquet", "{tmp}/out.parquet"], 2,
         r"needs the parquet extra \(pyarrow is not installed\): pip install 'afford\[parquet\]'", hide=("pyarrow",)),
    Case("sweep_bad_train_samples", ["sweep", TV, "--train-samples", "-5"], 2, r"--train-samples"),
]
