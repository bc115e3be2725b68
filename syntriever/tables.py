"""The report of a dataset's results: the paper's reference numbers, Markdown tables and charts.

:func:`write_table` turns a dataset's result files (:mod:`syntriever.result_files`) into
``results/<dataset>/README.md`` and ``results/<dataset>/ndcg10.png``.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .data import headline_split
from .jsonl import DataError, write_bytes
from .metrics import bootstrap_ci, paired_bootstrap
from .names import FINAL, LABELLED, NO_COT, NO_SYNTHETIC, NO_VERIFY, PASSAGE_QUERIES, SFT, without_nodev
from .result_files import HEADLINE, check_comparable, load_result_files, precision_note, results_dir

logger = logging.getLogger(__name__)

TABLE_METRICS = ("NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10", "NDCG@100", "Recall@100", "MRR@10")
CHART_NAME = "ndcg10.png"
TABLE_NAME = "README.md"

# Paper row names (Kim & Baek 2025, Tables 1 and 3).
BM25 = "BM25"
E5_FT = "E5 fine-tuned (no synthetic data)"
SYNTRIEVER = "Syntriever (E5)"
COT_ONLY = "+CoT query (stage 1 ablation)"
SYN_ONLY = "+synthetic passages (stage 1 ablation)"
STAGE1 = "stage 1, both (Table 3)"
BT = "Bradley-Terry instead of partial PL"
NOVERIFY_FINAL = "self-verification off (full pipeline)"
NOVERIFY_SFT = "self-verification off (stage 1; not in paper)"
NEGFILTER_SFT = "stage 1, filtered synthetic negatives (not in paper)"
ZERO_SHOT = "zero-shot (not in paper)"
THEN_LABELLED_SFT = "stage 1, then labelled epochs (not in paper)"
COT_ONLY_THEN = "+CoT query, then labelled epochs (stage 1 ablation; not in paper)"
SYN_ONLY_THEN = "+synthetic passages, then labelled epochs (stage 1 ablation; not in paper)"
NOVERIFY_THEN = "self-verification off, then labelled epochs (stage 1; not in paper)"
STAGE2_OTHER = "stage 2, other teacher (control; not in paper)"
STAGE2_LIKELIHOOD = "stage 2, query-likelihood teacher (not in paper)"
PASSAGE_QUERIES_SFT = "labelled pairs + LLM queries for corpus passages (not in paper)"

# nDCG@10 x 100 reported in the paper, per dataset and row. Table 1 gives BM25, E5 fine-tuned and
# Syntriever for all seven datasets; Table 3 gives the ablation rows (its base row equals E5_FT and
# its last row equals SYNTRIEVER).
PAPER_NDCG10: dict[str, dict[str, float]] = {
    "msmarco": {BM25: 22.8, E5_FT: 42.4, SYNTRIEVER: 50.3},
    "hotpotqa": {BM25: 60.1, E5_FT: 63.4, SYNTRIEVER: 70.2},
    "fiqa": {BM25: 23.5, E5_FT: 37.9, SYNTRIEVER: 41.9, BT: 35.7},
    "scifact": {
        BM25: 66.5,
        E5_FT: 73.7,
        SYNTRIEVER: 80.5,
        COT_ONLY: 76.7,
        SYN_ONLY: 77.3,
        STAGE1: 78.9,
        NOVERIFY_FINAL: 79.7,
        BT: 79.8,
    },
    "nfcorpus": {
        BM25: 32.5,
        E5_FT: 35.8,
        SYNTRIEVER: 43.3,
        COT_ONLY: 40.2,
        SYN_ONLY: 40.8,
        STAGE1: 41.4,
        BT: 36.1,
    },
    "nq": {BM25: 32.9, E5_FT: 49.3, SYNTRIEVER: 52.1},
    "fever": {BM25: 75.3, E5_FT: 57.1, SYNTRIEVER: 60.3},
}

# Our model names -> (pipeline group, paper row). First matching pattern wins (fnmatch on the
# lower-cased model name), so specific patterns come before general ones. The group sets the row
# order in tables: 0 BM25, 1 zero-shot, 2 labelled pairs only, 3 stage-1 ablations, 4 stage 1,
# 5 stage 2 and its variants; names matching nothing go last, alphabetically.
MODEL_ROWS: list[tuple[str, int, str]] = [
    ("bm25", 0, BM25),
    ("minilm", 1, ZERO_SHOT),
    ("e5", 1, ZERO_SHOT),
    ("contriever", 1, ZERO_SHOT),
    # stage 2 first: its names hold the stage-1 name (e.g. minilm-labelled-L256-final-oracle)
    (f"*-{FINAL}", 5, SYNTRIEVER),
    (f"*-{FINAL}-bt", 5, BT),
    (f"*-{FINAL}-{NO_VERIFY}", 5, NOVERIFY_FINAL),
    (f"*-{FINAL}-likelihood*", 5, STAGE2_LIKELIHOOD),  # stage2/score_likelihood.py's teachers
    (f"*-{FINAL}-*", 5, STAGE2_OTHER),
    (f"*-{LABELLED}-{PASSAGE_QUERIES}*", 4, PASSAGE_QUERIES_SFT),  # --passage-queries
    (f"*-{LABELLED}", 2, E5_FT),
    (f"*-{LABELLED}-*", 2, E5_FT),  # with other settings, e.g. minilm-labelled-L256-6ep
    ("*-sup", 2, E5_FT),
    (f"*-{SFT}*-then*-{PASSAGE_QUERIES}*", 4, f"stage 1, then {PASSAGE_QUERIES_SFT}"),
    # ablations of a --then-labelled stage 1: the tag right after -sft or -sft-L<max length>
    *((f"*-{SFT}{length}-{tag}-*then*", 3, row) for tag, row in
      ((NO_SYNTHETIC, COT_ONLY_THEN), (NO_COT, SYN_ONLY_THEN), (NO_VERIFY, NOVERIFY_THEN))
      for length in ("", "-l[0-9][0-9][0-9]")),
    (f"*-{SFT}*-then*", 4, THEN_LABELLED_SFT),  # --then-labelled (-thenlabE)
    (f"*-{SFT}-{NO_SYNTHETIC}", 3, COT_ONLY),
    (f"*-{SFT}-{NO_COT}", 3, SYN_ONLY),
    (f"*-{SFT}-{NO_VERIFY}", 3, NOVERIFY_SFT),
    (f"*-{SFT}-neg*", 3, NEGFILTER_SFT),
    (f"*-{SFT}", 4, STAGE1),
    # the paper's loss at another max length (-L256)
    *((f"*-{SFT}-l[0-9][0-9][0-9]{bf16}", 4, STAGE1) for bf16 in ("", "-bf16")),
]
UNKNOWN_GROUP = 99


def _match(model: str) -> tuple[int, int, str] | None:
    name = without_nodev(model.lower())  # dev-split experiments name the same rows
    for index, (pattern, group, row) in enumerate(MODEL_ROWS):
        if fnmatch.fnmatchcase(name, pattern):
            return group, index, row
    return None


def paper_row(model: str) -> str | None:
    """Name of the paper row our ``model`` reproduces, or None for names we do not know."""
    hit = _match(model)
    return hit[2] if hit else None


def paper_ndcg10(dataset: str, model: str) -> float | None:
    """The paper's nDCG@10 x 100 for the row matching ``model`` on ``dataset``, if reported."""
    row = paper_row(model)
    return PAPER_NDCG10.get(dataset.lower(), {}).get(row) if row else None


def pipeline_key(model: str) -> tuple[int, int, str]:
    """Sort key placing models in pipeline order; unknown names last, alphabetically."""
    hit = _match(model)
    if hit is None:
        return UNKNOWN_GROUP, 0, model.lower()
    return hit[0], hit[1], model.lower()


# ----------------------------------------------------------------------------- tables


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def _per_query(record: Mapping[str, Any], metric: str = HEADLINE) -> dict[str, float] | None:
    values = record.get("per_query", {}).get(metric)
    return dict(values) if values else None


def _ci(record: Mapping[str, Any], n_resamples: int, seed: int) -> tuple[float, float] | None:
    values = _per_query(record)
    if values is None:
        return None
    _, low, high = bootstrap_ci(values, n_resamples, seed=seed)
    return low, high


def _paired(
    a: Mapping[str, Any], b: Mapping[str, Any], n_resamples: int, seed: int, metric: str = HEADLINE
) -> dict[str, Any] | None:
    """Paired bootstrap a - b, or None (logged) when per-query values are missing or differ."""
    va, vb = _per_query(a, metric), _per_query(b, metric)
    if va is None or vb is None:
        return None
    try:
        return paired_bootstrap(va, vb, n_resamples=n_resamples, seed=seed)
    except ValueError as err:
        logger.warning("no paired test %s vs %s: %s", a["model"], b["model"], err)
        return None


def sort_results(results: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Results in pipeline order (see :data:`MODEL_ROWS`)."""
    return sorted(results, key=lambda r: pipeline_key(r["model"]))


def markdown_table(
    dataset: str, results: Sequence[Mapping[str, Any]], baseline: str | None = None, *,
    n_resamples: int = 10000, seed: int = 0,
) -> str:
    """Markdown table of ``results`` (x100, one decimal) in pipeline order.

    NDCG@10 carries its 95% percentile-bootstrap CI over queries. ``paper nDCG@10`` is the paper's
    number for the matching row (``-`` if none); only on the dataset's headline split (the paper
    reports test numbers, which a dev-split row must not sit beside). With ``baseline`` (a model
    name present in ``results``) a column gives the paired-bootstrap difference in NDCG@10, its CI
    and p-value.
    """
    rows = sort_results(results)
    models = [r["model"] for r in rows]
    base = None
    if baseline is not None:
        base = next((r for r in rows if r["model"] == baseline), None)
        if base is None:
            raise DataError(f"--baseline {baseline!r}: no result of that model among {dataset}'s {len(rows)}")
    with_paper = all(r.get("split") == headline_split(dataset) for r in rows)
    paper_columns = ["paper nDCG@10", "paper row"] if with_paper else []
    header = ["model", "queries", *TABLE_METRICS, *paper_columns]
    if base is not None:
        header.append(f"Δ vs {baseline}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for record in rows:
        metrics = record["metrics"]
        cells = [f"`{record['model']}`", str(record.get("num_queries", "-"))]
        for name in TABLE_METRICS:
            cell = _pct(metrics.get(name))
            if name == HEADLINE:
                ci = _ci(record, n_resamples, seed)
                if ci is not None:
                    cell += f" [{_pct(ci[0])}, {_pct(ci[1])}]"
            cells.append(cell)
        if with_paper:
            paper = paper_ndcg10(dataset, record["model"])
            cells.append("-" if paper is None else f"{paper:.1f}")
            cells.append(paper_row(record["model"]) or "-")
        if base is not None:
            if record is base:
                cells.append("(baseline)")
            else:
                test = _paired(record, base, n_resamples, seed)
                cells.append("-" if test is None else _diff_cell(test))
        lines.append("| " + " | ".join(cells) + " |")
    splits = sorted({str(r.get("split", "?")) for r in rows})
    lines.append("")
    lines.append(
        f"{dataset}, split {'/'.join(splits)}; {len(models)} models. Metrics x100; NDCG@10 with "
        f"a 95% percentile bootstrap CI over queries ({n_resamples} resamples, seed {seed})."
    )
    if base is not None:
        lines.append(
            f"Δ: paired bootstrap of per-query NDCG@10 (row − `{baseline}`), 95% CI and "
            "two-sided p-value (shift method)."
        )
    lines += [note] if (note := precision_note(rows)) else []
    return "\n".join(lines) + "\n"


def _diff_cell(test: Mapping[str, Any]) -> str:
    d, lo, hi = (100 * test[k] for k in ("mean_diff", "ci_low", "ci_high"))
    return f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}] {_p(test['p_value'])}"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def paired_table(
    results: Sequence[Mapping[str, Any]],
    metric: str = HEADLINE,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
) -> str:
    """Markdown list of paired-bootstrap tests of ``metric`` between every pair of rows.

    Each line gives the difference (later row − earlier row in pipeline order, x100), its 95% CI,
    the p-value and the Holm-adjusted p-value over all pairs shown.
    """
    rows = sort_results(results)
    tests: list[tuple[str, str, dict[str, Any] | None]] = []
    for earlier, later in itertools.combinations(rows, 2):
        test = _paired(later, earlier, n_resamples, seed, metric)
        tests.append((later["model"], earlier["model"], test))
    done = [t for _, _, t in tests if t is not None]
    adjusted = iter(holm([t["p_value"] for t in done]))
    lines = [
        f"| A | B | Δ {metric} (A − B) | 95% CI | p | p (Holm) |",
        "|---|---|---|---|---|---|",
    ]
    for a, b, test in tests:
        if test is None:
            lines.append(f"| `{a}` | `{b}` | - | - | - | - |")
            continue
        d, lo, hi = (100 * test[k] for k in ("mean_diff", "ci_low", "ci_high"))
        lines.append(
            f"| `{a}` | `{b}` | {d:+.1f} | [{lo:+.1f}, {hi:+.1f}] | {test['p_value']:.4f} "
            f"| {next(adjusted):.4f} |"
        )
    if not tests:
        lines.append("| - | - | - | - | - | - |")
    lines.append("")
    lines.append(
        f"Paired bootstrap over queries ({n_resamples} resamples, seed {seed}), two-sided shift-"
        f"method p-values; the smallest reportable p is 1/{n_resamples + 1} = "
        f"{1 / (n_resamples + 1):.4f}. Holm adjusts for the {len(done)} comparisons."
    )
    lines += [note] if (note := precision_note(rows)) else []
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- output files


def bar_chart(
    dataset: str,
    results: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
) -> Path:
    """PNG bar chart of NDCG@10 x100 with 95% CI error bars; paper values as hollow diamonds."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = sort_results(results)
    if not rows:
        raise ValueError(f"no results to plot for {dataset}")
    names = [r["model"] for r in rows]
    heights = [100 * r["metrics"][HEADLINE] for r in rows]
    below, above = [], []
    for record, height in zip(rows, heights, strict=True):
        ci = _ci(record, n_resamples, seed)
        low, high = (100 * ci[0], 100 * ci[1]) if ci else (height, height)
        below.append(max(0.0, height - low))
        above.append(max(0.0, high - height))
    paper = [(i, paper_ndcg10(dataset, n)) for i, n in enumerate(names)]
    paper = [(i, v) for i, v in paper if v is not None]

    fig = Figure(figsize=(max(4.0, 0.9 * len(rows) + 2.0), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = list(range(len(rows)))
    ax.bar(xs, heights, yerr=[below, above], capsize=4, color="#4c72b0", label="ours (95% CI)")
    if paper:
        ax.scatter([i for i, _ in paper], [v for _, v in paper], marker="D", s=60, facecolors="none",
                   edgecolors="#c44e52", linewidths=1.8, zorder=3, label="paper")
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("nDCG@10 x100")
    ax.set_title(f"{dataset}: nDCG@10")
    top = max(
        [*heights, *(h + a for h, a in zip(heights, above, strict=True)), *(v for _, v in paper)]
    )
    ax.set_ylim(0, min(100.0, top * 1.15 + 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    out = Path(path)
    write_bytes(out, buffer.getvalue())
    logger.info("wrote %s", out)
    return out


def reproduction_commands(dataset: str, results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The data command, then each row's recorded commands in table order, each once; a row
    whose result file records none gets a comment saying so."""
    lines = [f"python datasets/download.py {dataset}"]
    for record in sort_results(results):
        lines += record.get("commands") or [f"# {record['model']}: no command recorded in its result file"]
    return list(dict.fromkeys(lines))


def write_table(
    dataset: str,
    root: Path | None = None,
    *,
    baseline: str | None = None,
    n_resamples: int = 10000,
    seed: int = 0,
    split: str | None = None,
    allow_mixed: bool = False,
) -> Path:
    """Write ``README.md`` (chart embedded, and the commands that produced the results,
    :func:`reproduction_commands`) and ``ndcg10.png`` in :func:`results_dir`; return the README path.
    Results of different splits or query counts are refused unless ``allow_mixed``."""
    folder = results_dir(dataset, root, split)
    files = load_result_files(dataset, root, split)
    if not files:
        raise DataError(f"{folder}: no result files")
    if not allow_mixed:
        check_comparable(files)
    results = [record for _, record in files]
    if note := precision_note(results):
        logger.warning("%s: %s", folder, note)
    text = "\n".join(
        [
            f"# {dataset}" + (f" ({split} split)" if folder != results_dir(dataset, root) else ""),
            "",
            markdown_table(dataset, results, baseline, n_resamples=n_resamples, seed=seed),
            f"![]({CHART_NAME})",
            "",
            "## Paired tests (NDCG@10)",
            "",
            paired_table(results, n_resamples=n_resamples, seed=seed),
        ]
    )
    text += (
        "\n## Commands that produced these results\n\n"
        "Each result file records the command lines behind its row (LLM steps, training, evaluation), "
        "upstream first; each is listed once.\n\n```bash\n"
        + "\n".join(reproduction_commands(dataset, results)) + "\n```\n"
    )
    md = folder / TABLE_NAME
    bar_chart(dataset, results, folder / CHART_NAME, n_resamples=n_resamples, seed=seed)
    write_bytes(md, text.encode("utf-8"))
    logger.info("wrote %s", md)
    return md
