"""Small helpers shared by the stage scripts.

Every script ends with ``run(main)``: an expected error (:class:`~syntriever.errors.UserError`:
bad data, a step not run yet, a wrong flag) is printed as one line ``error: <message>`` on stderr
and the script exits with status 1. ``--debug`` on the command line or ``SYNTRIEVER_DEBUG=1``
keeps the traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from syntriever import provenance
from syntriever.errors import UserError
from syntriever.llm.config import CONCURRENCY, LLMConfig, add_llm_args, config_from_args
from syntriever.llm.secrets import redact
from syntriever.names import is_teacher, teacher_choices, top_k_error
from syntriever.precision import PRECISIONS

if TYPE_CHECKING:
    from syntriever.training import TrainSettings

TRAIN_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "max_seq_length", "max_steps",
               "seed", "bf16")


DEBUG_ENV = "SYNTRIEVER_DEBUG"
NESTED_ENV = "SYNTRIEVER_NESTED"  # the pid of the running script, seen by the scripts it starts


def debugging() -> bool:
    """True when expected errors should keep their traceback (``SYNTRIEVER_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def command_line(argv: list[str] | None = None) -> str:
    """The running script's command line, as a user would type it again, API keys redacted
    (the repository's scripts by their path in it: ``provenance.command_line``)."""
    argv = sys.argv if argv is None else argv
    return provenance.command_line(argv) or redact("python " + shlex.join(argv))


def error_line(err: BaseException, argv: list[str] | None = None) -> str:
    """``error: <message>`` on one line, API keys redacted; a message that names no command to
    run gets the script's own command line, to run again once the cause is fixed."""
    message = " ".join(str(err).split()) or type(err).__name__
    if "python " not in message and "`" not in message:
        message += f"; once fixed, run again: {command_line(argv)}"
    return redact(f"error: {message}")


def run(main: Callable[[], Any]) -> None:
    """Run a script's ``main``; expected errors end it with one line on stderr and status 1.

    ``--debug`` (taken out of ``sys.argv`` here, so any script accepts it) or
    ``SYNTRIEVER_DEBUG=1`` re-raises them with their traceback; the flag is passed on to the
    scripts a pipeline starts through the environment."""
    if "--debug" in sys.argv[1:]:
        sys.argv.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    # started by another script (its pid in the mark), which reports Ctrl-C itself
    before = os.environ.get(NESTED_ENV)
    nested = before == str(os.getppid())
    os.environ[NESTED_ENV] = str(os.getpid())
    try:
        main()
    except UserError as err:
        if debugging():
            raise
        logging.shutdown()
        print(error_line(err), file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback, from the outermost script only
        if debugging():
            raise
        logging.shutdown()
        if not nested:
            print(f"interrupted; results already written are kept (LLM answers are reused, training "
                  f"starts over); run again: {command_line()}", file=sys.stderr, flush=True)
        sys.exit(128 + signal.SIGINT)
    finally:
        if before is None:
            os.environ.pop(NESTED_ENV, None)
        else:
            os.environ[NESTED_ENV] = before


def teacher_name(text: str) -> str:
    """argparse type: a stage-2 teacher (syntriever/teachers.py)."""
    if not is_teacher(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a teacher; use one of {teacher_choices()}")
    return text


def teacher_list(text: str) -> list[str]:
    """argparse type: stage-2 teachers separated by commas, each a :func:`teacher_name`."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no teacher in {text!r}; use {teacher_choices()}")
    return [teacher_name(t) for t in names]


def check_top_k(parser: argparse.ArgumentParser, teachers: list[str], top_k: int | None) -> None:
    """``parser.error`` for the first of ``teachers`` that cannot teach over every pair of the top
    ``top_k``, or for a ``top_k`` below 2 (:func:`syntriever.names.top_k_error`); nothing when
    ``top_k`` is None."""
    for teacher in teachers:
        if (problem := top_k_error(teacher, top_k)) is not None:
            parser.error(problem)


def add_pairs_from(parser: argparse.ArgumentParser) -> None:
    """``--pairs-from MODEL``: the stage-1 model whose retrieval file and judge answers give the
    stage-2 pairs (default: the MODEL argument)."""
    parser.add_argument("--pairs-from", default=None, metavar="MODEL",
                        help="stage-1 model whose retrieval file and judge answers give the pairs "
                        "(default: MODEL)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, 1)


def pair_top_k(text: str) -> int:
    """argparse type: how many top passages to compare pairwise (>= 2: one pair at least)."""
    return _number(text, int, 2)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    return _number(text, float, 0.0, strict=True)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(text, float, 0.0)


def _number(text: str, kind: type, low: float, strict: bool = False) -> Any:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        bound = f"{'' if kind is int else 'a finite number '}{'above' if strict else 'at least'} {low:g}"
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr with timestamps; keep third-party libraries quiet."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    noisy_loggers = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "urllib3",
                     "sentence_transformers", "datasets")
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # SIGTERM (kill, CI timeouts) unwinds like Ctrl-C, so context managers stop servers and
    # close files; results already written are kept either way.
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # background jobs ignore Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def add_train_args(parser: argparse.ArgumentParser, paper: str) -> None:
    """Optimiser flags; unset ones take the paper's values on GPU, CPU defaults otherwise.

    ``paper`` states the stage's paper settings in the help text."""
    group = parser.add_argument_group(f"training (paper: {paper})")
    group.add_argument("--paper", action="store_true", help="use the paper's settings even on CPU")
    group.add_argument("--epochs", type=positive_float, default=None)
    group.add_argument("--batch-size", type=positive_int, default=None)
    group.add_argument("--lr", type=positive_float, default=None)
    group.add_argument("--weight-decay", type=non_negative_float, default=None)
    group.add_argument("--warmup-steps", type=non_negative_int, default=None)
    group.add_argument("--max-seq-length", type=positive_int, default=None)
    group.add_argument("--max-steps", type=positive_int, default=None)
    group.add_argument("--seed", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a saved model of this name although it was trained with other data "
                        "or settings (by default that is refused; a retrain with the same ones replaces it)")
    group.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                       help="bfloat16 mixed precision (CPU: worth it only with avx512_bf16/amx_bf16); "
                       "default on for a CPU with them (same dev nDCG@10 as fp32, 1.57x faster), fp32 on "
                       "other CPUs, fp16 on a GPU")


def add_search_args(
    parser: argparse.ArgumentParser, precision: str = "auto", precision_why: str = ""
) -> None:
    """Encoding and dense search flags (see :func:`syntriever.retrieval.dense_search`);
    ``precision`` is the default of ``--precision``, ``precision_why`` says why in its help."""
    from syntriever.retrieval import INDEXES, SHARD_ABOVE, SHARD_SIZE  # imported late: it pulls in torch

    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--max-seq-length", type=positive_int, default=None)
    parser.add_argument("--precision", choices=PRECISIONS, default=precision,
                        help=f"encoding precision (default {precision}{precision_why}); auto: bf16 "
                        "autocast on a CPU with native bfloat16 (avx512_bf16 or amx_bf16), else fp32; "
                        "--devices always encodes in fp32")
    parser.add_argument("--no-cache", action="store_true",
                        help="re-encode the corpus (and refresh its cache)")
    group = parser.add_argument_group("dense search (large corpora)")
    group.add_argument("--index", choices=INDEXES, default="exact",
                       help="exact: torch top-k (default); faiss: FAISS IndexFlatIP, same ranking")
    group.add_argument("--devices", type=_device_list, default=None, metavar="DEV,DEV",
                       help="encode in one process per device, e.g. cuda:0,cuda:1 or cpu,cpu")
    group.add_argument("--shard-size", type=positive_int, default=None, metavar="N",
                       help=f"encode and cache the corpus in memory-mapped shards of N passages "
                       f"(default {SHARD_SIZE:,} with --index faiss or above {SHARD_ABOVE:,} passages)")


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`add_search_args` flags as keyword arguments of ``dense_search``."""
    return {"index": args.index, "devices": args.devices, "shard_size": args.shard_size,
            "precision": args.precision}


def _device_list(text: str) -> list[str]:
    import torch  # imported late: only for --devices

    devices = [d.strip() for d in text.split(",") if d.strip()]
    if not devices:
        raise argparse.ArgumentTypeError("give devices separated by commas, e.g. cuda:0,cuda:1")
    for name in devices:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise argparse.ArgumentTypeError(f"{name!r} is not a device (e.g. cpu, cuda:0)") from None
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{name}: this machine has {torch.cuda.device_count()} CUDA "
                                             "devices")
    return devices


def settings_from_args(args: argparse.Namespace, stage: int = 1) -> TrainSettings:
    """:class:`~syntriever.training.TrainSettings` of training ``stage`` from the
    :func:`add_train_args` flags and the profile's values (see ``TrainSettings.for_device``)."""
    from syntriever.training import TrainSettings  # imported late: it pulls in torch

    settings = TrainSettings.for_device(args.paper, stage, **{k: getattr(args, k) for k in TRAIN_FLAGS})
    if args.warmup_steps is not None:  # given steps replace the profile's warm-up ratio
        settings.warmup_ratio = None
    return settings


def parse_llm_cli(
    parser: argparse.ArgumentParser,
    *,
    default_concurrency: int = CONCURRENCY,
    local_concurrency: int | None = None,
    local_model: str | None = None,
) -> tuple[argparse.Namespace, LLMConfig]:
    """Add the ``--llm-*`` flags, parse the command line, set up logging; return the arguments
    and the resolved :class:`LLMConfig` (the start of every LLM stage script)."""
    add_llm_args(parser, default_concurrency=default_concurrency, local_concurrency=local_concurrency,
                 local_model=local_model)
    args = parser.parse_args()
    setup_logging()
    return args, config_from_args(args)
