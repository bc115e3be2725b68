"""Benchmark: one option over several training seeds, each seed against the model it started from.

    python benchmarks/seed_pool.py NAME RESULT:BASE_RESULT [RESULT:BASE_RESULT ...]

Each argument pairs an evaluate.py result file of the option at one seed (e.g. a stage-2 model)
with the result file of the model it is compared with at that seed (e.g. the stage-1 model it was
trained from; same split and queries). Writes benchmarks/results/seed_pool-NAME.json: per seed the
paired bootstrap of nDCG@10 (delta, 95% CI, p), and the mean over seeds of each query's difference
with its 95% bootstrap CI and p (syntriever.metrics.seed_mean_difference): seeds averaged first,
then queries resampled. A base that differs across seeds (a retrained model) is allowed: each
seed is compared with its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from syntriever.cli import run, setup_logging
from syntriever.errors import UserError
from syntriever.jsonl import read_json, write_json
from syntriever.metrics import difference_x100, paired_bootstrap, seed_mean_difference
from syntriever.paths import portable
from syntriever.result_files import HEADLINE, validate_result

ROOT = Path(__file__).resolve().parents[1]


def per_query(path: Path) -> dict[str, float]:
    """nDCG@10 per query of one evaluate.py result file (checked like every result file)."""
    again = "`python evaluate.py MODEL DATASET --split SPLIT`"
    if not path.is_file():
        raise UserError(f"{path}: result file not found; make it with {again}")
    record = read_json(path, f"evaluate the model again with {again}")
    validate_result(record, str(path))
    if HEADLINE not in record.get("per_query", {}):
        raise UserError(f"{path}: no per-query {HEADLINE}; evaluate the model again with {again}")
    return record["per_query"][HEADLINE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("name", help="names the output file: benchmarks/results/seed_pool-NAME.json")
    parser.add_argument("pairs", nargs="+", metavar="RESULT:BASE_RESULT")
    args = parser.parse_args()
    setup_logging()
    files = []
    for pair in args.pairs:
        if pair.count(":") != 1:
            raise UserError(f"{pair!r}: give RESULT:BASE_RESULT, two result files joined by ':'")
        files.append(tuple(Path(part).resolve() for part in pair.split(":")))
    values = [(per_query(a), per_query(b)) for a, b in files]
    try:
        mean = seed_mean_difference(values)
    except ValueError as err:
        raise UserError(f"{err}: the result files must be of the same split and queries") from None
    report = {
        "metric": f"{HEADLINE} x 100; paired bootstrap (10,000 resamples of queries)",
        "seeds": [{"result": portable(a), "base": portable(b), **difference_x100(paired_bootstrap(*v))}
                  for (a, b), v in zip(files, values, strict=True)],
        "mean_over_seeds": {"seeds": len(values), "queries": len(mean),
                            **difference_x100(paired_bootstrap(mean, dict.fromkeys(mean, 0.0)))},
    }
    out = ROOT / "benchmarks" / "results" / f"seed_pool-{args.name}.json"
    write_json(out, report)
    pooled = report["mean_over_seeds"]
    print(f"{args.name}: mean over {pooled['seeds']} seeds {pooled['delta']:+.2f} "
          f"[{pooled['ci95'][0]:+.2f}, {pooled['ci95'][1]:+.2f}] p={pooled['p_value']}")
    print(out)


if __name__ == "__main__":
    run(main)
