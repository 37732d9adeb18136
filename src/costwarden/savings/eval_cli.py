"""``costwarden eval <name>``: the offline evaluations of the savings engine.

Each evaluation registers one entry in ``EVALUATIONS``: a function adding its arguments to its
own sub-parser and a function running it (returning the exit status). Adding an evaluation is
one line here and nothing in ``cli.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from costwarden.savings.semantic import eval_cmd as semantic_eval_cmd
from costwarden.savings.trimming import eval_cmd as trimming_eval_cmd

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

EVALUATIONS: dict[str, tuple[str, AddArguments, Run]] = {
    "semantic-cache": (
        "semantic cache hit / false-hit rates on STS-B",
        semantic_eval_cmd.add_arguments,
        semantic_eval_cmd.run,
    ),
    "trimming": (
        "RAG context trimming on SciFact",
        trimming_eval_cmd.add_arguments,
        trimming_eval_cmd.run,
    ),
}


def add_eval_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``eval`` and one sub-command per registered evaluation to the CLI's sub-parsers."""
    parser = sub.add_parser("eval", help="offline evaluations of the savings engine")
    evals = parser.add_subparsers(dest="eval_name", required=True)
    for name, (help_text, add_arguments, _) in EVALUATIONS.items():
        add_arguments(evals.add_parser(name, help=help_text, parents=[common]))


def eval_command(args: argparse.Namespace) -> int:
    _, _, run = EVALUATIONS[args.eval_name]
    return run(args)
