"""Render benchmarks/results.jsonl as the table in benchmarks/RESULTS.md."""

import json
from pathlib import Path

HERE = Path(__file__).parent


def _shown(value):
    """A float to four significant figures; anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else value


def read_results() -> list[dict]:
    """Every record of ``results.jsonl``, in the order they were appended."""
    return [json.loads(line) for line in (HERE / "results.jsonl").read_text().splitlines() if line.strip()]


def results_markdown(rows: list[dict]) -> str:
    """The records as a Markdown page: a section per benchmark, in the order they were first run, with
    one table row per record (RESULTS.md and the docs site's page)."""
    lines = [
        "# Benchmark results",
        "",
        "Rendered from `results.jsonl` by `benchmarks/render.py`; every figure comes from a recorded run.",
        "Budgets, subsets and the other settings of each run are in its `settings` in `results.jsonl`.",
    ]
    for benchmark in dict.fromkeys(r["benchmark"] for r in rows):
        lines += [
            "",
            f"## {benchmark}",
            "",
            "| model | data | metric | value | published or peer figure | run: device, wall s, date, commit"
            " |",
            "|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["benchmark"] == benchmark):
            ref = r["reference"]
            figure = "–" if ref.get("value") is None else _shown(ref["value"])
            shown = f"{figure} ({ref['source']})" if ref.get("source") else figure
            run = f"{r['device']}, {r.get('wall_s', '–')} s, {r['date']}, {r['commit']}"
            lines.append(
                f"| {r['model']} | {r['dataset']} ({r['split']}) | {r['metric']} | {_shown(r['value'])} | "
                f"{shown} | {run} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    (HERE / "RESULTS.md").write_text(results_markdown(read_results()))


if __name__ == "__main__":
    main()
