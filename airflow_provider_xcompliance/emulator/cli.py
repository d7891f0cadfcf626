"""The ``xcompliance-emulator`` options, derived from :class:`EmulatorConfig` so the two never drift."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_xcompliance.emulator.config import EmulatorConfig

_METAVARS: dict[type, str] = {int: "N", float: "SECONDS", Path: "PATH"}


def _option_fields() -> Iterator[tuple[dataclasses.Field[Any], type]]:
    hints = typing.get_type_hints(EmulatorConfig)
    for field in dataclasses.fields(EmulatorConfig):
        if "help" not in field.metadata:
            continue  # not an option (the injectable clock)
        kind = hints[field.name]
        if isinstance(kind, types.UnionType):  # "int | None" and friends: the non-None member
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        yield field, kind


def _flag(field: dataclasses.Field[Any]) -> str:
    return "--" + field.name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xcompliance-emulator",
        description="A local X API v2 batch compliance service (jobs, signed upload/download URLs, faults).",
    )
    for field, kind in _option_fields():
        help_text = field.metadata["help"]
        if kind is bool:
            parser.add_argument(_flag(field), action="store_true", default=argparse.SUPPRESS, help=help_text)
            continue
        if field.default is not dataclasses.MISSING and field.default is not None:
            help_text += f" (default: {field.default})"
        parser.add_argument(
            _flag(field),
            type=kind,
            default=argparse.SUPPRESS,  # absent options keep the config's defaults
            choices=field.metadata["choices"],
            help=help_text,
            metavar=None if field.metadata["choices"] else _METAVARS.get(kind, field.name.upper()),
        )
    return parser


def config_from_args(argv: list[str] | None = None) -> EmulatorConfig:
    return EmulatorConfig(**vars(build_parser().parse_args(argv)))


def args_from_config(config: EmulatorConfig) -> list[str]:
    """Command-line arguments that rebuild ``config`` in another process (token always included)."""
    args: list[str] = []
    for field, kind in _option_fields():
        value = getattr(config, field.name)
        if field.name != "token" and value == field.default:
            continue
        if kind is bool:
            args.append(_flag(field))
        else:
            args += [_flag(field), str(value)]
    return args
