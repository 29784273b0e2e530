"""The checks every front door runs on an operation's input, from the operation's own JSON
Schema (the subset the catalogue uses): so a wrong field is the same 400, naming the same
field with the same words, whether it came to POST /webhook, a REST route or a tool call.

Supported: type (one or a list), enum, maxLength, minimum/maximum, properties,
additionalProperties (false or a schema), required, items, oneOf (of differently typed
alternatives) and anyOf of `required` lists ("send one of these"). A null is "not given"
(models often send explicit nulls) except where the schema allows null itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.web.errors import invalid

Schema = Mapping[str, Any]

_KIND = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}
_EXPECTED = {
    "string": "a string",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def kind(value: Any) -> str:
    return _KIND.get(type(value), type(value).__name__)


def check(schema: Schema, value: Any, field: str = "") -> None:
    """Raise the 400 (`invalid`) of the first thing in `value` that `schema` refuses."""
    if "oneOf" in schema:
        _one_of(schema, value, field)
        return
    types = schema.get("type")
    if types is not None and not _has_type(value, types):
        raise invalid(field, f"expected {_expected(types)}, got {kind(value)}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(c) for c in schema["enum"])
        raise invalid(field, f"expected one of {choices}, got {_short(value)}")
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        raise invalid(field, f"longer than {schema['maxLength']} characters")
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise invalid(field, f"must be between {lo} and {hi}")
    if isinstance(value, Mapping):
        _object(schema, value, field)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(schema["items"], item, f"{field}[{i}]")


def _object(schema: Schema, value: Mapping[str, Any], field: str) -> None:
    properties: Mapping[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        where = f"{field}.{key}" if field else key
        sub = properties.get(key)
        if sub is None:
            if extra is False:
                problem = "unknown key" if field else "unknown field"
                if not properties:
                    raise invalid(where, f"{problem}; this operation takes no fields")
                raise invalid(where, f"{problem}; expected one of {', '.join(properties)}")
            if isinstance(extra, Mapping):
                check(extra, item, f"{field}[{key!r}]")
            continue
        if item is None and not _has_type(None, sub.get("type", ())):
            continue  # null = not given
        check(sub, item, where)
    for key in schema.get("required", ()):
        if value.get(key) is None:
            raise invalid(f"{field}.{key}" if field else key, "missing")
    alternatives = schema.get("anyOf")
    if alternatives and not any(
        all(value.get(k) is not None for k in alt.get("required", ())) for alt in alternatives
    ):
        names = [alt["required"][0] for alt in alternatives]
        first = f"{field}.{names[0]}" if field else names[0]
        raise invalid(first, "missing: send " + " or ".join(repr(n) for n in names))


def _one_of(schema: Schema, value: Any, field: str) -> None:
    options: list[Schema] = list(schema["oneOf"])
    for option in options:
        if _has_type(value, option.get("type", ())):
            check(option, value, field)
            return
    wanted = " or ".join(_expected(o.get("type", "")) for o in options)
    raise invalid(field, f"expected {wanted}, got {kind(value)}")


def _has_type(value: Any, types: str | list[str] | tuple[str, ...]) -> bool:
    names = [types] if isinstance(types, str) else list(types)
    return any(_is(value, name) for name in names)


def _is(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list)
    return name == "null" and value is None


def _expected(types: str | list[str] | tuple[str, ...]) -> str:
    names = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    return " or ".join(_EXPECTED.get(n, n) for n in names)


def from_query(
    schema: Schema, query: Mapping[str, list[str]], given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A GET operation's input from its query string (and `given`: the path's parameters),
    each value read as its schema's type (`limit=5` is the integer 5), empty ones as not
    given, defaults filled in, then checked like any input."""
    properties: Mapping[str, Schema] = schema.get("properties", {})
    args: dict[str, Any] = dict(given or {})
    for name, values in query.items():
        sub = properties.get(name)
        if sub is None or name in args:
            continue  # a query string may carry more (cache busters, the dashboard's)
        if sub.get("type") == "array":  # repeated, or comma-separated
            args[name] = [v for value in values for v in value.split(",") if v]
            continue
        if len(values) > 1:
            raise invalid(name, "given more than once")
        args[name] = _read(name, sub, values[0])
    for name, sub in properties.items():
        if name not in args and "default" in sub:
            args[name] = sub["default"]
    check(schema, args)
    return args


def _read(name: str, schema: Schema, text: str) -> Any:
    types = schema.get("type")
    if text == "" and types != "string":
        return schema.get("default")
    if types == "integer":
        try:
            return int(text)
        except ValueError:
            raise invalid(name, f"expected an integer, got {text[:40]!r}") from None
    if types == "boolean":
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no", ""):
            return False
        raise invalid(name, f"expected true or false, got {text[:40]!r}")
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
