"""Command-line flags generated from a calculator's pydantic input model.

Every scalar field ``foo_bar`` becomes ``--foo-bar``; a nested model field ``api`` adds
``--api-<field>`` flags; tuple/list fields take comma-separated values. Absent flags are left
out of the result, so a scenario file's value stands unless a flag overrides it. Fields that
only make sense in a file (a list of models) get no flag.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

_DEST = "plan_in_"


def _parts(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _nested(annotation: Any) -> type[BaseModel] | None:
    for part in _parts(annotation):
        if isinstance(part, type) and issubclass(part, BaseModel):
            return part
    return None


def _kind(annotation: Any) -> str:
    """'text' (one value), 'list' (comma-separated) or 'skip' (file only)."""
    parts = _parts(annotation)
    if str in parts or any(get_origin(p) is typing.Literal for p in parts):
        return "text"
    for part in parts:
        if get_origin(part) in (tuple, list):
            inner = [a for a in get_args(part) if a is not Ellipsis]
            return "skip" if any(_nested(a) for a in inner) else "list"
    return "text"


def add_model_flags(
    parser: argparse.ArgumentParser, model: type[BaseModel], prefix: str = ""
) -> None:
    for name, field in model.model_fields.items():
        nested = _nested(field.annotation)
        kind = _kind(field.annotation)
        if kind == "skip":
            continue
        if nested is not None and get_origin(field.annotation) not in (tuple, list):
            add_model_flags(parser, nested, f"{prefix}{name}_")
            continue
        flag = "--" + f"{prefix}{name}".replace("_", "-")
        text = field.description or ""
        if kind == "list":
            text = f"{text} (comma-separated)".strip()
        parser.add_argument(flag, dest=f"{_DEST}{prefix}{name}", default=None, help=text or None)


def flag_values(
    args: argparse.Namespace, model: type[BaseModel], prefix: str = ""
) -> dict[str, Any]:
    """The flags given on the command line, as a (nested) dict of the model's fields."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        nested = _nested(field.annotation)
        kind = _kind(field.annotation)
        if kind == "skip":
            continue
        if nested is not None and get_origin(field.annotation) not in (tuple, list):
            inner = flag_values(args, nested, f"{prefix}{name}_")
            if inner:
                out[name] = inner
            continue
        value = getattr(args, f"{_DEST}{prefix}{name}", None)
        if value is None:
            continue
        out[name] = [v.strip() for v in value.split(",") if v.strip()] if kind == "list" else value
    return out
