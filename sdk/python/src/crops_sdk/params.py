"""decode_params: strict decoding of a plugin's params object (the YAML's
``params``), the Python mirror of sdk.DecodeParams: unknown fields and wrong
types are errors that name the field; absent fields keep their defaults;
a ``validate()`` method runs last."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ParamsError(ValueError):
    """A params object that does not fit the plugin's params type."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check(name: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        for a in args:
            try:
                return _check(name, a, value)
            except ParamsError:
                continue
        raise ParamsError(f'params: field "{name}": expected {" or ".join(_type_name(a) for a in args)}, '
                          f"got JSON {json.dumps(value)}")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (elem,) = typing.get_args(tp) or (Any,)
        if isinstance(value, list):
            return [_check(f"{name}[{i}]", elem, v) for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, vt = typing.get_args(tp) or (str, Any)
            return {k: _check(f"{name}.{k}", vt, v) for k, v in value.items()}
    elif tp is Any:
        return value
    else:
        raise ParamsError(f'params: field "{name}": unsupported field type {tp!r} in the params dataclass')
    raise ParamsError(f'params: field "{name}": expected {_type_name(tp)}, got JSON {json.dumps(value)}')


def decode_params(raw: bytes | str | None, cls: type[T]) -> T:
    """Decode raw (JSON) into a new instance of the dataclass cls, strictly."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"decode_params: {cls!r} is not a dataclass")
    obj: dict[str, Any] = {}
    text = raw.decode() if isinstance(raw, bytes) else (raw or "")
    if text.strip() and text.strip() != "null":
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise ParamsError(f"params: not valid JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise ParamsError(f"params: expected a JSON object, got {json.dumps(parsed)[:80]}")
        obj = parsed
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in fields:
            raise ParamsError(f'params: unknown field "{key}" (known: {", ".join(sorted(fields)) or "none"})')
        kwargs[key] = _check(key, hints[key], value)
    try:
        out = cls(**kwargs)
    except TypeError as e:
        raise ParamsError(f"params: {e}") from None
    validate = getattr(out, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise ParamsError(f"params: {e}") from None
    return out
