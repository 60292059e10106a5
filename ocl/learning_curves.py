"""A training run's learning curves (losses and validation metrics by step) as one PNG.

    python -m ocl.learning_curves runs/clevrer_sim_small [--out curves.png]

Reads the run's CSV log (`OUTPUT/csv/metrics.csv`, written by `ocl.train`).
"""

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSSES = (
    "train/reconstruction", "train/preheat", "train/slot_contrast", "train/mask_prediction",
    "train/mask_entropy",
)
METRICS = (
    "val/ari", "val/fg_ari", "val/mbo", "val/miou", "val/kept", "val/background",
    "val/background_claimed",
)


def read_log(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every logged column as (step, value) pairs, in step order; a step logged twice keeps its
    later value."""
    path = run / "csv" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no CSV log at {path}")
    by_step: dict[str, dict[int, float]] = {}
    with open(path) as rows:
        for row in csv.DictReader(rows):
            for key, value in row.items():
                if key not in ("epoch", "step") and value:
                    by_step.setdefault(key, {})[int(row["step"])] = float(value)
    return {key: sorted(values.items()) for key, values in by_step.items()}


def plot_learning_curves(run: str | Path, out: str | Path | None = None) -> Path:
    """Losses (log scale) on the left, validation metrics on the right; returns the PNG path."""
    run = Path(run)
    series = read_log(run)
    out = Path(out) if out else run / "learning_curves.png"
    figure, (losses, metrics) = plt.subplots(1, 2, figsize=(11, 4))
    for name in LOSSES:
        if name in series:
            steps, values = zip(*series[name], strict=True)
            losses.plot(steps, values, label=name.split("/")[1])
    losses.set(yscale="log", xlabel="step", title="training losses (weighted)")
    losses.legend()
    for name in METRICS:
        if name in series:
            steps, values = zip(*series[name], strict=True)
            metrics.plot(steps, values, marker="o", label=name.split("/")[1])
    metrics.set(xlabel="step", ylim=(0, 1), title="validation object discovery")
    metrics.legend()
    figure.suptitle(run.name)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the training run's output_dir")
    parser.add_argument("--out", help="PNG path (default: RUN/learning_curves.png)")
    args = parser.parse_args(argv)
    print(f"wrote {plot_learning_curves(args.run, args.out)}")


if __name__ == "__main__":
    main()
