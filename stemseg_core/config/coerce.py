"""Coercion of YAML/CLI values to the field types of the schema's dataclasses.

Strings that hold a map or a list (a node parameter such as ``"{car: 0.8, pedestrian: 0.85}"``,
a ``--set`` value) are read by :func:`parse_flat_mapping` / :func:`parse_flat_list`, not by a
YAML parser: these settings only ever hold flat ``{name: number}`` maps and lists of numbers or
names, and whoever can set a node parameter (any process on the DDS domain) must not be able to
nest brackets until the parser recurses out of the stack, expand an alias bomb or send a
megabyte. Input is refused over :data:`MAX_TEXT_CHARS` before it is read; nothing but flat
items is accepted; every error is a :class:`ConfigError` quoting at most :data:`QUOTE_CHARS`
characters of the value (:func:`short_repr`).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import re
import reprlib
import types
import typing
from typing import Any

from stemseg_core.errors import ConfigError

#: Longest map / list string read (4 kB: hundreds of class names); longer is refused unread.
MAX_TEXT_CHARS = 4096
#: Characters of a value that error messages quote.
QUOTE_CHARS = 60

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 8, 8, 8, 8
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = QUOTE_CHARS, QUOTE_CHARS, 40


def short_repr(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, built without the whole repr of a
    long string or a deep structure (a 1 MB value costs nothing here); a cut string says its
    length."""
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that fails (or recurses) still gives a message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit + 20 else text[:limit] + "..."


#: A number as YAML/JSON write it (no nan/inf, no hex, no underscores).
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")
#: What a bare (unquoted) name may not contain: YAML's flow and special characters.
_NOT_IN_NAME = set(",:{}[]#&*!|>'\"%@`\\") | {chr(c) for c in range(32)} | {"\x7f"}
_EXAMPLE_MAP = "{car: 0.8, pedestrian: 0.85}"


def _bounded(text: Any, what: str, example: str) -> str:
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected a string like {example}, got "
                          f"{type(text).__name__} {short_repr(text)}")
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigError(f"{what}: the value is {len(text)} characters long, at most "
                          f"{MAX_TEXT_CHARS} are read (a flat list or map like {example}): "
                          f"{short_repr(text)}")
    return text.strip()


def _unwrap(text: str, open_: str, close: str, what: str, example: str) -> str:
    """The inside of ``open_ ... close`` (or the text as it is without them)."""
    if text.startswith(open_):
        if not text.endswith(close):
            raise ConfigError(f"{what}: {short_repr(text)} opens {open_!r} but does not end "
                              f"with {close!r}; expected a flat value like {example}")
        return text[1:-1]
    return text


def _items(inner: str, what: str, text: str, example: str) -> list[str]:
    """Items separated by commas or new lines; empty ones (a trailing comma) dropped."""
    found = [t.strip() for t in re.split(r"[,\n]", inner)]
    for t in found:
        for bad in "{}[]":
            if bad in t and not (t[:1] in "'\"" and len(t) > 1 and t[-1] == t[0]):
                raise ConfigError(f"{what}: nested {bad!r} in {short_repr(text)}; only a flat "
                                  f"value like {example} is accepted")
    return [t for t in found if t]


def _scalar(item: str, what: str, text: str, example: str, *, name: bool) -> str | int | float:
    """A quoted or bare name, or a number (``name``: a map key, always a string)."""
    if len(item) >= 2 and item[0] in "'\"" and item[-1] == item[0]:
        inner = item[1:-1]
        if item[0] in inner or "\\" in inner or any(ord(c) < 32 for c in inner):
            raise ConfigError(f"{what}: quoted item {short_repr(item)} in {short_repr(text)} "
                              f"holds a quote, a backslash or a control character")
        return inner if name else _number_or_name(inner)
    bad = sorted(set(item) & _NOT_IN_NAME)
    if bad or not item:
        why = ("YAML anchors/aliases/tags are not accepted" if set(bad) & set("&*!")
               else f"it contains {''.join(bad)!r}" if bad else "it is empty")
        raise ConfigError(f"{what}: {short_repr(item)} in {short_repr(text)} is not a plain "
                          f"name or number ({why}); expected a flat value like {example}")
    return item if name else _number_or_name(item)


def _number_or_name(item: str) -> str | int | float:
    if _INTEGER.fullmatch(item):
        return int(item)
    if _NUMBER.fullmatch(item):
        return float(item)
    return item


def parse_flat_mapping(text: str, what: str) -> dict[str, int | float]:
    """``"{car: 0.8, pedestrian: 0.85}"`` -> ``{"car": 0.8, "pedestrian": 0.85}``.

    Accepts the flat YAML/JSON forms of such a map: braces optional, items separated by commas
    or new lines, keys bare or quoted (``'car'``, ``"car"``), values integers or decimal
    numbers (``80``, ``0.8``, ``.5``, ``1e-3``); ``""`` and ``"{}"`` give ``{}``. Anything else
    (nesting, anchors/aliases, repeated keys, a value that is not a finite number, more than
    :data:`MAX_TEXT_CHARS` characters) raises :class:`ConfigError` naming ``what`` (e.g.
    ``"parameter 'min_mask_area_per_class'"``) and quoting at most a short prefix of ``text``.
    """
    example = _EXAMPLE_MAP
    text = _bounded(text, what, example)
    inner = _unwrap(text, "{", "}", what, example)
    out: dict[str, int | float] = {}
    for item in _items(inner, what, text, example):
        key, sep, value = _split_pair(item)
        if not sep:
            raise ConfigError(f"{what}: {short_repr(item)} in {short_repr(text)} is not a "
                              f"'name: number' pair; expected a map like {example}")
        name = _scalar(key.strip(), what, text, example, name=True)
        number = _scalar(value.strip(), what, text, example, name=False)
        if isinstance(number, str) or not math.isfinite(number):
            raise ConfigError(f"{what}: the value of {short_repr(name)} is "
                              f"{short_repr(value.strip())}, not a number; expected a map like "
                              f"{example}")
        if name in out:
            raise ConfigError(f"{what}: {short_repr(name)} is given twice in "
                              f"{short_repr(text)}")
        out[name] = number
    return out


def _split_pair(item: str) -> tuple[str, str, str]:
    """``key: value`` split at the colon after the key (a quoted key may hold colons)."""
    if item[:1] in "'\"":
        end = item.find(item[0], 1)
        if end > 0:
            key, sep, rest = item[end + 1:].partition(":")
            return item[:end + 1] + key, sep, rest
    return item.partition(":")


def parse_flat_list(text: str, what: str) -> list[str | int | float]:
    """``"[car, pedestrian]"``, ``"car,pedestrian"`` or ``"[32, 32, 64, 64]"`` -> a list of
    names (str) and numbers (int or float). Brackets optional, items separated by commas (or
    new lines), bare or quoted; ``""`` and ``"[]"`` give ``[]``. Nesting, anchors/aliases and
    text over :data:`MAX_TEXT_CHARS` raise :class:`ConfigError` (as
    :func:`parse_flat_mapping`)."""
    example = "[car, pedestrian] or [32, 64]"
    text = _bounded(text, what, example)
    inner = _unwrap(text, "[", "]", what, example)
    return [_scalar(item, what, text, example, name=False)
            for item in _items(inner, what, text, example)]


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML/CLI value to the field type `tp`, or raise ConfigError naming `key`."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: null is not allowed (expected {getattr(tp, '__name__', tp)})")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got "
                              f"{short_repr(value)}")
        return build(tp, value, key)
    origin = typing.get_origin(tp)
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp)
        if isinstance(value, str):
            value = parse_flat_mapping(value, key)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping like {{name: value}}, got "
                              f"{short_repr(value)}")
        return {coerce(k, key_tp, f"{key} (a key)"): coerce(v, val_tp, f"{key}.{k}")
                for k, v in value.items()}
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = parse_flat_list(value, key)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {short_repr(value)}")
        return [coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true or false, got {short_repr(value)}")
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)  # also numpy integers, exact however large
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{key}: expected an integer, got {short_repr(value)}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {short_repr(value)}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {short_repr(value)}")
        return str(value)
    return value


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{key}'.{hint} "
                              f"Allowed here: {', '.join(names)}")
        kwargs[k] = coerce(v, hints[k], key)
    return cls(**kwargs)
