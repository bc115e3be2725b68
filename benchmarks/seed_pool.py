"""Benchmark: one option over several training seeds, each seed against the model it started from.

    python benchmarks/seed_pool.py NAME RESULT:BASE_RESULT [RESULT:BASE_RESULT ...]

Each argument pairs an evaluate.py result file of the option at one seed (e.g. a stage-2 model)
with the result file of the model it is compared with at that seed (e.g. the stage-1 model it was
trained from; same split and queries). Writes benchmarks/results/seed_pool-NAME.json: per seed the
paired bootstrap of nDCG@10 (delta, 95% CI, p), and the mean over seeds of each query's difference
with its 95% bootstrap CI and p (syntriever.metrics.seed_mean_difference): seeds averaged first,
then queries resampled. A base that differs across seeds (a retrained model) is allowed: each
seed is compared with its own.

--by-train-overlap also pools the seeds separately over the queries that share a relevant passage
with a query of the split the option's models trained on (train-nodev for a ``-nodev`` name, else
train) and over the rest: a model trained on the training queries' passages can help the first
group by lifting those very passages, which says nothing of queries about other passages.
--by-passage-queries FILE (with --by-train-overlap) splits each group again by whether a relevant
passage of the query has a synthetic query in FILE (a ``*_passage_queries.*.jsonl`` of
datasets/parse_passage_queries.py): whether training on passage queries helps the queries whose
passages it covered. The report records the command that made it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from syntriever.cli import run, setup_logging
from syntriever.data import Qrels, load_dataset, split_qrels
from syntriever.errors import UserError
from syntriever.jsonl import read_json, write_json
from syntriever.metrics import difference_x100, paired_bootstrap, seed_mean_difference
from syntriever.names import name_split
from syntriever.passage_queries import load_passage_queries
from syntriever.paths import InvalidName, check_name, dataset_dir, portable
from syntriever.result_files import HEADLINE, validate_result

ROOT = Path(__file__).resolve().parents[1]
MIN_QUERIES = 2  # a group with fewer is reported without a bootstrap


def load_result(path: Path) -> dict[str, Any]:
    """One evaluate.py result file, checked like every result file, with its per-query nDCG@10."""
    again = "`python evaluate.py MODEL DATASET --split SPLIT`"
    if not path.is_file():
        raise UserError(f"{path}: result file not found; make it with {again}")
    record = read_json(path, f"evaluate the model again with {again}")
    validate_result(record, str(path))
    if HEADLINE not in record.get("per_query", {}):
        raise UserError(f"{path}: no per-query {HEADLINE}; evaluate the model again with {again}")
    return record


def with_relevant_in(evaluated: Qrels, doc_ids: set[str]) -> set[str]:
    """The evaluated queries with a relevant passage in ``doc_ids``."""
    return {q for q, docs in evaluated.items()
            if any(score > 0 and doc in doc_ids for doc, score in docs.items())}


def sharing_train_passages(evaluated: Qrels, trained: Qrels) -> set[str]:
    """The evaluated queries with a relevant passage that is also relevant to a trained query."""
    return with_relevant_in(evaluated, {doc for docs in trained.values()
                                        for doc, score in docs.items() if score > 0})


def pooled(mean: dict[str, float], scores: tuple[dict[str, float], dict[str, float]] | None = None
           ) -> dict[str, object]:
    """The per-query means over seeds (:func:`seed_mean_difference`), bootstrapped against zero;
    with ``scores`` (the option's and the base's per-query means over seeds) their means too."""
    row: dict[str, object] = {"queries": len(mean)}
    if scores:
        for key, values in zip(("option", "base"), scores, strict=True):
            row[key] = round(100 * sum(values[q] for q in mean) / len(mean), 2)
    if len(mean) < MIN_QUERIES:  # one query resamples to itself: no interval, no p
        return {**row, "delta": round(100 * sum(mean.values()) / len(mean), 2), "ci95": None, "p_value": None}
    return {**row, **difference_x100(paired_bootstrap(mean, dict.fromkeys(mean, 0.0)))}


def seed_means(values: list[tuple[dict[str, float], dict[str, float]]]
               ) -> tuple[dict[str, float], dict[str, float]]:
    """The option's and the base's per-query nDCG@10 (``values``: one pair per seed), each
    averaged over the seeds."""
    option, base = ({q: sum(pair[side][q] for pair in values) / len(values) for q in values[0][side]}
                    for side in (0, 1))
    return option, base


def by_train_overlap(records: list[tuple[dict[str, Any], dict[str, Any]]], mean: dict[str, float],
                     scores: tuple[dict[str, float], dict[str, float]],
                     passage_queries: Path | None = None) -> dict[str, object]:
    """The mean over seeds pooled separately over the queries that share a relevant passage with
    a query of the split the option's models trained on (:func:`sharing_train_passages`) and over
    the rest; with ``passage_queries`` (a passage-query file) each group also split by whether a
    relevant passage has a query in it. ``records``: the (option, base) result records per seed;
    ``scores``: their :func:`seed_means`. Every record must be of one dataset and split, every
    option model of one training split (read from its name)."""
    evaluated_on = {(r["dataset"], r["split"]) for pair in records for r in pair}
    trained_on = {name_split(result["model"]) for result, _ in records}
    if len(evaluated_on) != 1 or len(trained_on) != 1:
        raise UserError(f"--by-train-overlap: the result files are of {sorted(evaluated_on)} and their "
                        f"models trained on {sorted(trained_on)}; give files of one dataset, split and "
                        "training split")
    (dataset, split), trained_split = evaluated_on.pop(), trained_on.pop()
    folder = dataset_dir(dataset)
    evaluated, qrels_file = split_qrels(folder, split)
    trained, _ = split_qrels(folder, trained_split)
    if unknown := sorted(set(mean) - set(evaluated)):
        raise UserError(f"{qrels_file}: no qrels for {len(unknown)} queries of the result files "
                        f"(e.g. {unknown[0]}); were they evaluated on another version of {dataset}?")
    sharing = sharing_train_passages(evaluated, trained)
    groups = {"sharing": {q: d for q, d in mean.items() if q in sharing},
              "not_sharing": {q: d for q, d in mean.items() if q not in sharing}}
    rule = {"rule": f"a relevant passage of the query is also relevant to a query of {trained_split}"}
    if passage_queries is not None:
        pairs = load_passage_queries(passage_queries, load_dataset(dataset, trained_split))
        hit = with_relevant_in(evaluated, {doc for _, doc in pairs})
        rule["covered_rule"] = f"a relevant passage of the query has a query in {portable(passage_queries)}"
        groups |= {f"{name}_{tag}": {q: d for q, d in part.items() if (q in hit) == is_hit}
                   for name, part in list(groups.items()) for tag, is_hit in (("covered", True),
                                                                              ("not_covered", False))}
    return {**rule, **{name: pooled(part, scores) for name, part in groups.items() if part}}


def summary(part: dict[str, Any]) -> str:
    """A pooled difference as text: delta, 95% CI (or "[no CI]" for one query) and p."""
    ci = f"[{part['ci95'][0]:+.2f}, {part['ci95'][1]:+.2f}]" if part["ci95"] else "[no CI]"
    return f"{part['delta']:+.2f} {ci} p={part['p_value']}"


def report_name(text: str) -> str:
    """argparse type: a plain file name part (no path separators, no '..')."""
    try:
        return check_name(text, "report")
    except InvalidName as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("name", type=report_name,
                        help="names the output file: benchmarks/results/seed_pool-NAME.json")
    parser.add_argument("pairs", nargs="+", metavar="RESULT:BASE_RESULT")
    parser.add_argument("--by-train-overlap", action="store_true",
                        help="also pool over the queries sharing a relevant passage with the training "
                             "queries, and over the rest")
    parser.add_argument("--by-passage-queries", type=Path, metavar="JSONL",
                        help="with --by-train-overlap: split each group again by whether a relevant "
                             "passage has a synthetic query in this passage-query file")
    args = parser.parse_args()
    setup_logging()
    if args.by_passage_queries and not args.by_train_overlap:
        raise UserError("--by-passage-queries splits the --by-train-overlap groups: give both")
    files = []
    for pair in args.pairs:
        if pair.count(":") != 1 or not all(pair.split(":")):
            raise UserError(f"{pair!r}: give RESULT:BASE_RESULT, two result files joined by ':'")
        files.append(tuple(Path(part).resolve() for part in pair.split(":")))
    records = [(load_result(a), load_result(b)) for a, b in files]
    for (a, b), (path_a, path_b) in zip(records, files, strict=True):
        if (a["dataset"], a["split"]) != (b["dataset"], b["split"]):
            raise UserError(f"{path_a} is of {a['dataset']} {a['split']}, {path_b} of {b['dataset']} "
                            f"{b['split']}: pair results of the same dataset and split")
    values = [(a["per_query"][HEADLINE], b["per_query"][HEADLINE]) for a, b in records]
    try:
        mean = seed_mean_difference(values)
        scores = seed_means(values)
    except ValueError as err:
        raise UserError(f"{err}: the result files must be of the same split and queries") from None
    report = {
        "command": shlex.join(["python", "benchmarks/seed_pool.py", *sys.argv[1:]]),
        "metric": f"{HEADLINE} x 100; paired bootstrap (10,000 resamples of queries)",
        "seeds": [{"result": portable(a), "base": portable(b), **difference_x100(paired_bootstrap(*v))}
                  for (a, b), v in zip(files, values, strict=True)],
        "mean_over_seeds": {"seeds": len(values), **pooled(mean, scores)},
    }
    if args.by_train_overlap:
        report["by_train_overlap"] = by_train_overlap(records, mean, scores, args.by_passage_queries)
    out = ROOT / "benchmarks" / "results" / f"seed_pool-{args.name}.json"
    write_json(out, report)
    overall = report["mean_over_seeds"]
    print(f"{args.name}: mean over {overall['seeds']} seeds {summary(overall)}")
    for name, part in report.get("by_train_overlap", {}).items():
        if not name.endswith("rule"):
            print(f"  {name} ({part['queries']} queries, {part['option']:.2f} vs {part['base']:.2f}): "
                  f"{summary(part)}")
    print(out)


if __name__ == "__main__":
    run(main)
