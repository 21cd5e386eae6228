"""Command-line options made from config dataclasses: one ``--field-name`` per field, its type,
choices and help taken from the dataclass (annotations, ``Literal`` choices, the ``Args:`` section
of its docstring), so a new config field is a new option with no second list to keep in step.

Example:
    >>> import argparse
    >>> from ternlib.config import TernaryConfig
    >>> p = argparse.ArgumentParser()
    >>> add_dataclass_options(p, TernaryConfig, include=("beta", "packing"))
    >>> args = p.parse_args(["--beta", "1.5"])
    >>> dataclass_values(args, TernaryConfig)
    {'beta': 1.5}
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any, Iterable

_ARG_LINE = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*): (.*)$")


def field_help(cls: type) -> dict[str, str]:
    """``{field: text}`` from the ``Args:`` section of ``cls``'s docstring (Google style)."""
    doc = inspect.getdoc(cls) or ""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return out
    indent, name = None, None
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section
        m = _ARG_LINE.match(line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent, name = len(m.group(1)), m.group(2)
            out[name] = m.group(3).strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return {k: " ".join(v.replace("``", "").split()) for k, v in out.items()}


def parse_weights(text: str) -> dict[str, float]:
    """``"a=1,b=0.5,c"`` -> ``{"a": 1.0, "b": 0.5, "c": 1.0}`` (the form of dict-valued options)."""
    out = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w) if w else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"cannot read the weight in {part!r}; write e.g. a=1,b=0.5") from None
    return out


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_options(parser: argparse.ArgumentParser | Any, cls: type, *, include: Iterable[str] | None = None,
                          exclude: Iterable[str] = (), aliases: dict[str, list[str]] | None = None,
                          help_overrides: dict[str, str] | None = None) -> None:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (all default to ``None``: unset).

    ``include`` / ``exclude`` choose fields; ``aliases`` adds other spellings of an option (kept for
    older command lines); ``help_overrides`` replaces a field's help where the command means more.
    Options of one dataclass land in their own argument group, titled by the class name.
    """
    hints = typing.get_type_hints(cls)
    helps = {**field_help(cls), **(help_overrides or {})}
    group = parser.add_argument_group(f"{cls.__name__} options")
    chosen = [f for f in dataclasses.fields(cls)
              if (include is None or f.name in include) and f.name not in set(exclude) and f.init]
    for f in chosen:
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        names = [_option(f.name), *(aliases or {}).get(f.name, [])]
        text = helps.get(f.name, "")
        kw: dict[str, Any] = {"dest": f.name, "default": None,
                              "help": (text + " " if text else "") + f"(default: {_show(default)})"}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Union or type(tp).__name__ == "UnionType":  # X | None
            tp = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(tp), typing.get_args(tp)
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kw["choices"] = list(args)
            kw["type"] = type(args[0])
        elif tp in (int, float, str):
            kw["type"] = tp
        elif origin is tuple or tp is tuple:
            kw["nargs"] = "+"
            item = args[0] if args else str
            if typing.get_origin(item) is typing.Literal:
                kw["choices"], item = list(typing.get_args(item)), type(typing.get_args(item)[0])
            kw["type"] = item
        elif origin is dict or tp is dict:
            kw["type"] = parse_weights
            kw["metavar"] = "NAME=W,..."
        else:
            raise TypeError(f"no command-line form for {cls.__name__}.{f.name}: {tp!r}")
        group.add_argument(*names, **kw)


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={w:g}" for k, w in v.items()) or "none"
    if isinstance(v, tuple):
        return " ".join(map(str, v))
    return str(v)


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (those left unset are not in the dict)."""
    out = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out


def add_threads(parser: argparse.ArgumentParser, what: str = "torch") -> None:
    """``--threads N``: CPU threads (0: the library's default); :func:`ternlib.cli.main` applies it."""
    parser.add_argument("--threads", type=int, default=0, help=f"{what} CPU threads (0: torch's default)")
