"""A validator for the subset of JSON Schema the contract's schemas use (type, enum, minimum/maximum,
minLength/maxLength/pattern, minItems/maxItems, prefixItems, items, required, properties,
additionalProperties), compiled once per schema into nested closures. Pure Python.

Why compiled: the bridge validates every message of the fleet; walking the schema dictionaries for every
value (a dozen lookups per node) was most of its CPU per message. A compiled check does only the tests its
schema node has, and a plain valid integer, number or string is accepted by one test. The error path is
built only when a value fails: each container adds its part (``.key``, ``[i]``, ``[i:title]`` for a titled
prefix item) as the error passes through it.

:func:`validator` returns ``check(value)``, which raises :class:`Invalid` (reason and path) or returns None.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

Check = Callable[[Any], None]


def _is_number(v: Any) -> bool:
    """A finite JSON number. An integer too large for a float is not one here: it would overflow the first
    float arithmetic (math.isfinite raised OverflowError out of the bridge's message callback before)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        try:
            return math.isfinite(v)
        except OverflowError:
            return False
    return isinstance(v, float) and math.isfinite(v)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "null": lambda v: v is None,
}
_SCALAR_KEYS = {"type", "minimum", "maximum", "minLength", "maxLength", "pattern", "description", "title"}
_VALUE_KEYS = {"enum", "minimum", "maximum", "minLength", "maxLength", "pattern"}


class Invalid(Exception):
    """A value does not match; :meth:`path` says where (``.key``, ``[i]`` parts), ``reason`` what is wrong."""

    def __init__(self, reason: str, part: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.parts = [part] if part else []     # innermost first

    def path(self) -> str:
        return "".join(reversed(self.parts))


_CACHE: dict[int, tuple[dict, Check]] = {}


def python_pattern(pattern: str) -> str:
    """A JSON Schema ``pattern`` (ECMA-262) for Python's ``re.search``. The one difference that matters here: a
    final ``$`` matches only at the end of an ECMA string, but also before a final newline in Python, so that
    ``"person\\n"`` would pass a pattern that forbids control characters; ``\\Z`` is the end in Python."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + "\\Z"
    return pattern


def validator(schema: dict) -> Check:
    """The compiled check of ``schema`` (compiled on first use; the schema must not change afterwards)."""
    hit = _CACHE.get(id(schema))
    if hit is None:
        hit = _CACHE[id(schema)] = (schema, _compile(schema))     # the schema is kept: its id stays unique
    return hit[1]


def _compile(s: dict) -> Check:
    # An array or object node with no other value keyword: its container step checks the type itself.
    own = s.get("type") if s.get("type") in ("array", "object") and not _VALUE_KEYS & set(s) else None
    steps = [step for step in (None if own else _type(s), _enum(s), _range(s), _string(s),
                               _array(s, own == "array"), _object(s, own == "object")) if step]
    if len(steps) == 1:
        full = steps[0]
    else:
        def full(v: Any) -> None:
            for step in steps:
                step(v)
    return _scalar(s, full) or full


def _scalar(s: dict, full: Check) -> Check | None:
    """For the commonest nodes (an integer, number or string with bounds): accept a plain valid value at once;
    anything else goes through ``full``, which accepts it or names the failure."""
    kind = s.get("type")
    if kind not in ("integer", "number", "string") or not set(s) <= _SCALAR_KEYS:
        return None
    if kind == "string":
        shortest, longest = s.get("minLength", 0), s.get("maxLength", math.inf)
        if "pattern" in s:
            search = re.compile(python_pattern(s["pattern"])).search

            def check_named(v: Any) -> None:
                if v.__class__ is not str or not shortest <= len(v) <= longest or search(v) is None:
                    full(v)
            return check_named

        def check_string(v: Any) -> None:
            if v.__class__ is not str or not shortest <= len(v) <= longest:
                full(v)
        return check_string
    lo, hi = s.get("minimum", -math.inf), s.get("maximum", math.inf)
    if kind == "integer":
        def check_integer(v: Any) -> None:
            if v.__class__ is not int or not lo <= v <= hi:
                full(v)
        return check_integer
    finite = math.isfinite

    def check_number(v: Any) -> None:       # an int in a number field takes the full path (its size check)
        if v.__class__ is not float or not lo <= v <= hi or not finite(v):
            full(v)
    return check_number


def _type_error(expected: str, v: Any) -> Invalid:
    return Invalid(f"expected {expected}, got {type(v).__name__} {v!r:.60}")


def _type(s: dict) -> Check | None:
    if "type" not in s:
        return None
    names = s["type"] if isinstance(s["type"], list) else [s["type"]]
    preds = [_TYPES[t] for t in names]
    expected = " or ".join(names)

    def check(v: Any) -> None:
        for pred in preds:
            if pred(v):
                return
        raise _type_error(expected, v)
    return check


def _enum(s: dict) -> Check | None:
    if "enum" not in s:
        return None
    allowed = s["enum"]

    def check(v: Any) -> None:
        if v not in allowed:
            raise Invalid(f"{v!r:.60} is not one of {allowed}")
    return check


def _range(s: dict) -> Check | None:
    lo, hi = s.get("minimum"), s.get("maximum")
    if lo is None and hi is None:
        return None

    def check(v: Any) -> None:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if lo is not None and v < lo:
                raise Invalid(f"{v} is below the minimum {lo}")
            if hi is not None and v > hi:
                raise Invalid(f"{v} is above the maximum {hi}")
    return check


def _string(s: dict) -> Check | None:
    shortest, longest, pattern = s.get("minLength", 0), s.get("maxLength"), s.get("pattern")
    if not shortest and longest is None and pattern is None:
        return None
    search = re.compile(python_pattern(pattern)).search if pattern is not None else None

    def check(v: Any) -> None:
        if isinstance(v, str):
            if len(v) < shortest:
                raise Invalid(f"string shorter than {shortest}")
            if longest is not None and len(v) > longest:
                raise Invalid(f"string longer than {longest}")
            if search is not None and not search(v):
                raise Invalid(f"{v!r:.60} does not match {pattern}{_explain(pattern, v)}")
    return check


def _explain(pattern: str, v: str) -> str:
    """What a name pattern refuses, said in words (the pattern itself is unreadable to most)."""
    bad = [c for c in v if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0xd800 <= ord(c) <= 0xdfff or c in "/+#"]
    if not bad or "/+#" not in pattern:
        return ""
    return (f" (it holds {', '.join(sorted({repr(c) for c in bad}))}: names may not hold control characters, "
            "NUL, lone surrogates or the MQTT topic characters / + #)")


def _array(s: dict, typed: bool) -> Check | None:
    """Length, prefix items, further items; ``typed``: a value that is not a list is an error (else not checked)."""
    if not typed and not any(k in s for k in ("minItems", "maxItems", "prefixItems", "items")):
        return None
    fewest, most = s.get("minItems", 0), s.get("maxItems")
    prefix = [(validator(sub), f"[{i}:{sub['title']}]" if "title" in sub else f"[{i}]")
              for i, sub in enumerate(s.get("prefixItems", []))]
    n_prefix = len(prefix)
    closed = s.get("items", True) is False
    rest = validator(s["items"]) if isinstance(s.get("items"), dict) else None

    def check(v: Any) -> None:
        if not isinstance(v, list):
            if typed:
                raise _type_error("array", v)
            return
        if len(v) < fewest:
            raise Invalid(f"needs at least {fewest} items, has {len(v)}")
        if most is not None and len(v) > most:
            raise Invalid(f"at most {most} items, has {len(v)}")
        for item, (sub, part) in zip(v, prefix):
            try:
                sub(item)
            except Invalid as exc:
                exc.parts.append(part)
                raise
        if closed and len(v) > n_prefix:
            raise Invalid(f"at most {n_prefix} items, has {len(v)}")
        if rest is not None:
            for i in range(n_prefix, len(v)):
                try:
                    rest(v[i])
                except Invalid as exc:
                    exc.parts.append(f"[{i}]")
                    raise
    return check


def _object(s: dict, typed: bool) -> Check | None:
    """Required and allowed keys, each property's value; ``typed``: a value that is not a dict is an error."""
    if s.get("type") != "object":
        return None
    props = {key: validator(sub) for key, sub in s.get("properties", {}).items()}
    required = list(s.get("required", []))
    closed = s.get("additionalProperties", True) is False
    extra = s.get("additionalProperties")
    other = validator(extra) if isinstance(extra, dict) else None     # the schema of every further property
    allowed = ", ".join(sorted(props))

    def check(v: Any) -> None:
        if not isinstance(v, dict):
            if typed:
                raise _type_error("object", v)
            return
        for key in required:
            if key not in v:
                raise Invalid("required field is missing", f".{key}")
        for key, item in v.items():
            sub = props.get(key)
            if sub is not None:
                try:
                    sub(item)
                except Invalid as exc:
                    exc.parts.append(f".{key}")
                    raise
            elif closed:
                raise Invalid(f"unknown field (allowed: {allowed})", f".{key}")
            elif other is not None:
                try:
                    other(item)
                except Invalid as exc:
                    exc.parts.append(f".{key}")
                    raise
    return check
