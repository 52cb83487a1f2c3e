"""Run ``pplgen demo`` and record its test figures in benchmarks/results.jsonl.

    python benchmarks/demo.py [--out DIR]

One JSON line per figure (DESIGN.md's format), with the published or peer figure beside it where one
exists. Run ``python benchmarks/render.py`` afterwards to refresh RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import record

from pplgen.demo import DEMO, run_demo

# PacGAN (Lin et al. 2018), 2D-ring, the plain GAN with their architecture: quoted from the paper's
# table as the comparison. No peer figure exists for the binarised scikit-learn digits.
REFERENCES = {
    ("gan", "modes"): {"value": 6.3, "source": "PacGAN (Lin et al. 2018) Table 3, 2D-ring, GAN"},
    ("gan", "hq_percent"): {"value": 98.2, "source": "PacGAN (Lin et al. 2018) Table 3, 2D-ring, GAN"},
    ("gan", "reverse_kl"): {"value": 0.45, "source": "PacGAN (Lin et al. 2018) Table 3, 2D-ring, GAN"},
}
NO_REFERENCE = {"value": None, "source": "no published figure for binarised scikit-learn digits"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="pplgen-demo")
    args = parser.parse_args()
    began = time.perf_counter()
    rows = run_demo(Path(args.out))
    wall = time.perf_counter() - began
    settings = {job.model: {k: v for k, v in vars(job).items() if k != "model"} for job in DEMO}
    metrics = {
        "nats": "nll_nats",
        "bits_per_dim": "bits_per_dim",
        "modes": "modes",
        "hq_percent": "hq_percent",
        "reverse_kl": "reverse_kl",
    }
    for row in rows:
        for key, metric in metrics.items():
            if key in row:
                record(
                    "demo",
                    row["model"],
                    row["data"],
                    row["split"],
                    metric,
                    row[key],
                    REFERENCES.get((row["model"], key), NO_REFERENCE),
                    wall,
                    {
                        **settings[row["model"]],
                        "estimator": row.get("estimator", "sample metric, 2500 samples"),
                    },
                )


if __name__ == "__main__":
    main()
