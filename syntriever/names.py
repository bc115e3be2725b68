"""Names and folders of the models this project trains.

A trained model is named after its encoder and what trained it, and saved in
``output/<name>-<dataset>`` (:func:`model_dir`):

- stage 1: ``<encoder>-sft`` (:func:`stage1_name`); its ablations add a suffix per part turned
  off or option added (``-sft-nocot``, ``-sft-nosyn``, ``-sft-noverify``, ``-sft-neg<filter>``,
  ``-sft-pull<W>``, ``-sft-negrelated``, ``-sft-thenlab<E>``; :func:`stage1_suffix`); labelled
  pairs only:
  ``<encoder>-labelled``; synthetic data of a prompt version or LLM other than the profiles'
  defaults (:data:`DEFAULT_PROMPT_VERSION`, :data:`UNTAGGED_LLMS`) then add ``-<version>`` and
  ``-<llm>`` (:func:`data_tag`, e.g. ``minilm-sft-v2-qwen1.5b``);
- stage 2: the stage-1 name with ``-sft`` replaced by ``-final`` (other stage-1 names:
  ``-final`` appended), plus ``-<teacher>`` for a teacher other than the judge
  (``-oracle``, ``-identity``, ``-judge-confident``, ``-judge-retriever``, ``-oracle-judge``; the
  controls ``-judge-checkable``, ``-identity-checkable``, ``-oracle-flip-judge``,
  ``-oracle-flip-identity``, ``-oracle-flip-<P>pct``, ``-judge-retriever-checkable``; the query
  likelihood's ``-likelihood``, ``-likelihood-retriever``, ``-likelihood-checkable``,
  ``-likelihood-retriever-checkable``; labels where they decide, an LLM teacher elsewhere:
  ``-oracle-judge-retriever``, ``-oracle-likelihood-retriever``) and
  ``-bt`` for the Bradley-Terry ablation (:func:`final_name`);
- trained without the dev queries (split ``train-nodev``): any of these plus ``-nodev``.

:func:`train_command` reads a name back into the command that trains the model (None for a name
given with ``--output-name``).
"""

from __future__ import annotations

import re
from pathlib import Path

from syntriever.data import TRAIN_NODEV, check_limit
from syntriever.paths import check_name, file_safe, model_tag, output_root
from syntriever.profiles import EMBEDDED_LLM, REMOTE_LLM, SEED
from syntriever.prompts import PROMPT_VERSION as DEFAULT_PROMPT_VERSION

SFT, FINAL, LABELLED, NODEV = "sft", "final", "labelled", "nodev"
NO_COT, NO_SYNTHETIC, NO_VERIFY = "nocot", "nosyn", "noverify"
PASSAGE_QUERIES = "pq"  # labelled pairs plus LLM queries for corpus passages (-labelled-pq<N>)
THEN_LABELLED = "thenlab"  # stage 1 followed by epochs on the labelled pairs alone (-thenlab<E>)
PL_LOSS, BT_LOSS = "pl", "bt"  # stage 2's own loss (unnamed) and the paper's ablation
STAGE2_LOSSES = (PL_LOSS, BT_LOSS)
DEFAULT_TEACHER = "judge"  # stage 2's own teacher (syntriever.teachers); others name the model
TEACHERS = (DEFAULT_TEACHER, "judge-confident", "oracle", "identity", "judge-retriever", "oracle-judge",
            "judge-checkable", "identity-checkable", "oracle-flip-judge", "oracle-flip-identity",
            "judge-retriever-checkable", "likelihood", "likelihood-retriever", "likelihood-checkable",
            "likelihood-retriever-checkable", "oracle-judge-retriever", "oracle-likelihood-retriever")
# teachers that decide a pair without the pairwise judge's answer (labels, the retrieval order, the
# query likelihood's pointwise scores): they can train on any pair of the top K (--top-k)
TOP_K_TEACHERS = ("oracle", "identity", *(t for t in TEACHERS if "likelihood" in t))
# and a family of controls beside them: the oracle with P% of its triples turned round (0 < P <= 50)
_FLIP_PERCENT = re.compile(r"oracle-flip-(?P<pct>\d+(?:\.\d+)?)pct")
NEGATIVE_FILTERS = ("copies", "coverage", "judge")  # see syntriever.stage1.keep_negative
# Where a query's hard negative comes from: the LLM's "irrelevant" passage (the paper), or the
# synthetic positive of the most similar other training query (syntriever.stage1.related_negatives)
NEGATIVE_SOURCES = ("synthetic", "related")
# Synthesis LLMs a stage-1 name does not spell out: each profile's default (embedded, paper)
UNTAGGED_LLMS = (EMBEDDED_LLM["synthesis"], REMOTE_LLM)
_MARKERS = {SFT, FINAL, LABELLED, NODEV}  # name parts an encoder or LLM tag never holds


def flip_percent(teacher: str) -> float | None:
    """P of an ``oracle-flip-<P>pct`` teacher (written as ``f"{P:g}"``, 0 < P <= 50), else None."""
    match = _FLIP_PERCENT.fullmatch(teacher)
    pct = float(match["pct"]) if match else None
    return pct if pct is not None and 0 < pct <= 50 and teacher == f"oracle-flip-{pct:g}pct" else None


def is_teacher(name: str) -> bool:
    """Whether ``name`` is a stage-2 teacher: one of :data:`TEACHERS` or ``oracle-flip-<P>pct``."""
    return name in TEACHERS or flip_percent(name) is not None


def teacher_choices() -> str:
    """The teachers a command accepts, for its help and its refusals."""
    return f"{', '.join(TEACHERS)} or oracle-flip-<P>pct (0 < P <= 50)"


def negative_filter_suffix(criterion: str) -> str:
    """``neg<criterion>``: the suffix of a stage-1 model trained with filtered negatives."""
    return f"neg{criterion}"


def stage1_suffix(
    use_cot: bool = True, use_synthetic: bool = True, use_verification: bool = True,
    negative_filter: str | None = None, labelled_weight: float = 0.0, negative_source: str = "synthetic",
    then_labelled: float = 0.0,
) -> str:
    """``sft``, ``sft-nocot``, ``sft-nosyn``, ``sft-noverify``, ``sft-negcopies``, ``sft-pull0.5``,
    ``sft-negrelated``, ``sft-thenlab3`` (combined in this order), ``labelled`` without any
    synthetic data."""
    if not (use_cot or use_synthetic):
        return LABELLED
    parts = [SFT]
    parts += [NO_COT] if not use_cot else []
    parts += [NO_SYNTHETIC] if not use_synthetic else []
    parts += [NO_VERIFY] if use_synthetic and not use_verification else []
    parts += [negative_filter_suffix(negative_filter)] if negative_filter else []
    parts += [f"pull{labelled_weight:g}"] if labelled_weight else []
    parts += [negative_filter_suffix(negative_source)] if negative_source != "synthetic" else []
    parts += [f"{THEN_LABELLED}{then_labelled:g}"] if then_labelled else []
    return "-".join(parts)


def data_tag(llm_model: str | None = None, prompt_version: str | None = None) -> str:
    """``-<version>-<llm>``: the synthetic data of a stage-1 model, each part only when it is not
    the default (prompt :data:`DEFAULT_PROMPT_VERSION`; LLM one of :data:`UNTAGGED_LLMS`)."""
    parts = [prompt_version] if prompt_version and prompt_version != DEFAULT_PROMPT_VERSION else []
    parts += [model_tag(llm_model)] if llm_model and llm_model not in UNTAGGED_LLMS else []
    return "".join(f"-{part}" for part in parts)


def stage1_name(
    encoder: str, suffix: str = SFT, *, nodev: bool = False, llm_model: str | None = None,
    prompt_version: str | None = None,
) -> str:
    """``<encoder>-<suffix>[-<version>][-<llm>][-nodev]``, e.g. ``minilm-sft``,
    ``minilm-sft-nocot``, ``minilm-labelled`` (no synthetic data, no data tag),
    ``minilm-sft-v2-qwen1.5b``."""
    data = "" if suffix == LABELLED else data_tag(llm_model, prompt_version)
    return f"{file_safe(encoder)}-{suffix}{data}" + (f"-{NODEV}" if nodev else "")


def seed_suffix(seed: int | None) -> str:
    """``-seed<N>`` for a training seed other than the default (``SEED``, which names nothing)."""
    return "" if seed in (None, SEED) else f"-seed{seed}"


def judge_suffix(judge: str) -> str:
    """``-<judge tag>`` for a report over another judge's pairs than the embedded one's (none)."""
    return "" if judge == EMBEDDED_LLM["judge"] else f"-{model_tag(judge)}"


def top_k_suffix(top_k: int | None) -> str:
    """``-top<K>`` for a stage 2 over every pair of the top K (None: the judged pairs, no suffix)."""
    return "" if top_k is None else f"-top{top_k}"


def top_k_error(teacher: str, top_k: int | None) -> str | None:
    """Why ``--top-k top_k`` cannot go with ``teacher`` (None: it can, or no --top-k)."""
    if top_k is None:
        return None
    if teacher not in TOP_K_TEACHERS:
        return (f"--top-k needs a teacher that decides a pair without the pairwise judge's answer (one "
                f"of {', '.join(TOP_K_TEACHERS)}), not {teacher!r}: the judge answered only the pairs it "
                "compared")
    return None if top_k >= 2 else f"--top-k must be at least 2 to form a pair, not {top_k}"


def final_name(
    stage1_model: str, loss: str = PL_LOSS, teacher: str = DEFAULT_TEACHER, *, nodev: bool = False,
    seed: int | None = None, top_k: int | None = None,
) -> str:
    """minilm-sft -> minilm-final (pl, judge), minilm-final-bt (bt), minilm-final-oracle
    (oracle teacher); ``nodev`` (stage 2 on train-nodev): minilm-sft-nodev -> minilm-final-nodev;
    ``seed`` (another training seed than the default, which names no model): minilm-final-seed7;
    ``top_k`` (a teacher of ``TOP_K_TEACHERS`` over every pair of the top K, not the judged
    pairs): minilm-final-likelihood-top5."""
    base = without_nodev(file_safe(stage1_model)).removesuffix(f"-{SFT}")
    return (f"{base}-{FINAL}" + ("" if teacher == DEFAULT_TEACHER else f"-{teacher}")
            + top_k_suffix(top_k)
            + ("" if loss == PL_LOSS else f"-{loss}") + seed_suffix(seed)
            + (f"-{NODEV}" if nodev else ""))


def without_nodev(name: str) -> str:
    """The name of the same kind of model trained on all train queries."""
    return name.removesuffix(f"-{NODEV}")


def name_split(name: str) -> str:
    """The split a model of this name trained on: ``train-nodev`` for a ``-nodev`` name, else ``train``."""
    return TRAIN_NODEV if file_safe(name).endswith(f"-{NODEV}") else "train"


def is_project_name(name: str) -> bool:
    """Whether ``name`` holds a marker word of this project's model names (``sft``, ``final``,
    ``labelled``, ``nodev``): a trained model's name, never a hub id."""
    return bool(_MARKERS & set(name.split("-")))


def _plain(part: str | None) -> bool:
    """Whether ``part`` can be an encoder or LLM tag of a default name (no marker word in it)."""
    return bool(part) and not is_project_name(str(part))


_FLOAT = r"\d+(?:\.\d+)?(?:e[+-]\d+)?"  # a float as f"{w:g}" writes it
_STAGE1 = re.compile(
    rf"(?P<encoder>.+?)-{SFT}(?P<nocot>-{NO_COT})?(?P<nosyn>-{NO_SYNTHETIC})?(?P<noverify>-{NO_VERIFY})?"
    rf"(?:-neg(?P<filter>{'|'.join(NEGATIVE_FILTERS)}))?(?:-pull(?P<pull>{_FLOAT}))?"
    rf"(?:-neg(?P<source>{'|'.join(NEGATIVE_SOURCES[1:])}))?(?:-{THEN_LABELLED}(?P<thenlab>{_FLOAT}))?"
    rf"(?:-(?P<version>v\d+))?(?:-(?P<llm>.+))?"
)
# a part of a name that is one of the options' tags, or a tag of --output-name habits (-L256, -bf16,
# -6ep, -seed7), never part of an LLM's tag: such a name is not the default name of any LLM's data
_OPTION_PART = re.compile(rf"{NO_COT}|{NO_SYNTHETIC}|{NO_VERIFY}|neg\w+|pull{_FLOAT}|{THEN_LABELLED}{_FLOAT}"
                          r"|L\d+|bf16|fp32|\d+ep|seed\d+")
_STAGE2 = re.compile(
    rf"(?P<base>.+)-{FINAL}(?:-(?P<teacher>{'|'.join(TEACHERS[1:])}|{_FLIP_PERCENT.pattern}))?"
    rf"(?:-top(?P<topk>[0-9]+))?(?:-(?P<loss>{'|'.join(STAGE2_LOSSES[1:])}))?(?:-seed(?P<seed>[0-9]+))?"
)


def has_passage_queries(name: str) -> bool:
    """Whether ``name`` carries the ``-pq<N>`` part that ``--passage-queries`` models must have."""
    return re.search(rf"-{PASSAGE_QUERIES}\d+(?:-|$)", name) is not None


def stage1_args(name: str) -> list[str] | None:
    """The ``train_stage1.py`` arguments whose default output name is ``name``
    (``minilm-sft-nocot-nodev`` -> ``minilm --no-cot --train-split train-nodev``; the dataset
    left out), or None for a name the script never gives by default."""
    core, nodev = without_nodev(name), name.endswith(f"-{NODEV}")
    if has_passage_queries(core):  # --passage-queries needs --output-name: never a default name
        return None
    split = ["--train-split", TRAIN_NODEV] if nodev else []
    if core.endswith(f"-{LABELLED}"):
        encoder = core.removesuffix(f"-{LABELLED}")
        args = [encoder.replace("__", "/"), "--labelled-only", *split]
        return args if _plain(encoder) and stage1_name(args[0], LABELLED, nodev=nodev) == name else None
    match = _STAGE1.fullmatch(core)
    llm_parts = (match["llm"] or "").split("-") if match else []
    if not match or not _plain(match["encoder"]) or (match["llm"] and not _plain(match["llm"])) or any(
            _OPTION_PART.fullmatch(part) for part in llm_parts):
        return None
    weight = float(match["pull"]) if match["pull"] else 0.0
    source = match["source"] or NEGATIVE_SOURCES[0]
    switches = {"--no-cot": "nocot", "--no-synthetic": "nosyn", "--no-verify": "noverify"}
    options = {"--filter-negatives": "filter", "--labelled-weight": "pull", "--negatives": "source",
               "--then-labelled": "thenlab", "--prompt-version": "version", "--llm-model": "llm"}
    args = [match["encoder"].replace("__", "/")]
    args += [flag for flag, group in switches.items() if match[group]]
    args += [part for flag, group in options.items() if match[group] for part in (flag, match[group])]
    suffix = stage1_suffix(not match["nocot"], not match["nosyn"], not match["noverify"], match["filter"],
                           weight, source, float(match["thenlab"] or 0.0))
    again = stage1_name(args[0], suffix, nodev=nodev, llm_model=match["llm"], prompt_version=match["version"])
    return [*args, *split] if again == name else None


def stage2_args(name: str) -> list[str] | None:
    """The ``train_stage2.py`` arguments whose default output name is ``name``
    (``minilm-final-oracle`` -> ``minilm-sft --teacher oracle``; the dataset left out), or None."""
    nodev = name.endswith(f"-{NODEV}")
    match = _STAGE2.fullmatch(without_nodev(name))
    if not match:
        return None
    base = match["base"] if stage1_args(match["base"]) else f"{match['base']}-{SFT}"
    stage1 = base + (f"-{NODEV}" if nodev else "")
    teacher, loss = match["teacher"] or DEFAULT_TEACHER, match["loss"] or PL_LOSS
    seed = None if match["seed"] is None else int(match["seed"])
    top_k = None if match["topk"] is None else int(match["topk"])
    if (not is_teacher(teacher) or top_k_error(teacher, top_k) or stage1_args(stage1) is None
            or final_name(stage1, loss, teacher, nodev=nodev, seed=seed, top_k=top_k) != name):
        return None
    return [stage1, *(["--teacher", teacher] if match["teacher"] else []),
            *(["--top-k", str(top_k)] if top_k is not None else []),
            *(["--loss", loss] if match["loss"] else []),
            *(["--seed", str(seed)] if seed is not None else [])]


def train_command(name: str, dataset: str) -> str | None:
    """The command that trains the model this project names ``name`` on ``dataset``
    (``minilm-sft`` -> ``python train_stage1.py minilm scifact``); None for names the training
    scripts never give by default (``--output-name``)."""
    for script, args in (("train_stage2.py", stage2_args(name)), ("train_stage1.py", stage1_args(name))):
        if args is not None:
            return " ".join(["python", script, args[0], dataset, *args[1:]])
    return None


def model_dir(name: str, dataset: str) -> Path:
    """``output/<name>-<dataset>``: where the model ``name`` trained on ``dataset`` is saved."""
    return output_root() / f"{check_name(name, 'model')}-{check_name(dataset)}"


def limited_name(name: str, limit: int | None) -> str:
    """``<stem>.limit<N>.jsonl`` for a run over the first ``limit`` queries: a partial run writes
    its own file and never replaces the complete one."""
    check_limit(limit)
    return name if limit is None else name.replace(".jsonl", f".limit{limit}.jsonl")
