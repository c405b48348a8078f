"""Declared, checked configuration sections: frozen dataclasses whose fields carry their rules.

    @dataclass(frozen=True)
    class TrainConfig(Section):
        epochs: int = setting(ge=1)
        lr: float = setting(gt=0, doc="SGD learning rate")
        schedule: str = setting("step", names=lambda: SCHEDULES)

A field's type annotation, default and rules (bounds, allowed names, a pattern) are
declared once; ``parse(cls, data)`` builds a section from plain data (YAML, JSON, a
store row) and reports every problem at once - its path, the bad value and what is
allowed - and constructing a section directly checks the same rules (numbers are
coerced as YAML users expect: ``1`` is a valid float, ``"1e-4"`` too). Cross-field
rules and derived defaults live in each section's ``resolve()``.

Why not pydantic: ``prernn`` must import where only torch is installed (a GPU node
without a package index, see benchmarks/gpu.py); this module needs nothing but the
standard library, and its messages follow pydantic's wording.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from dataclasses import MISSING
from typing import Any, Callable, ClassVar, Iterable, NamedTuple

NOT_SET = object()


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a field allows besides its type. ``names``: a callable giving the allowed names
    (a registry, looked up when checked, so registries may fill in late). ``before``: the
    value every trial implicitly had before this field existed (see ``identity``).
    ``identifying=False``: how a trial runs, not what it computes (e.g. data-loader workers):
    never part of its identity."""

    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    min_len: int | None = None
    pattern: str | None = None
    names: Callable[[], Any] | None = None
    doc: str = ""
    before: Any = NOT_SET
    identifying: bool = True


def setting(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, **rule) -> Any:
    """A dataclass field with its rule; ``factory`` for mutable defaults (lists)."""
    kw = {"default_factory": factory} if factory is not None else {"default": default}
    return dataclasses.field(metadata={"rule": Rule(**rule)}, **kw)


class Problem(NamedTuple):
    loc: tuple  # path of keys and list indices from the parsed document's root
    msg: str
    input: Any = NOT_SET  # the offending value (NOT_SET: none to show, e.g. a missing key)
    kind: str = "value"  # value | missing | unknown | model (about the section as a whole)

    @property
    def text(self) -> str:
        """The message with the bad value, without the path."""
        return self.msg if self.input is NOT_SET or self.kind != "value" else f"{self.msg} (got {self.input!r})"

    def __str__(self) -> str:
        return f"{'.'.join(map(str, self.loc)) or '(top level)'}: {self.text}"


class ConfigError(ValueError):
    """Every problem found in a configuration, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(map(str, self.problems)))


# keys that were renamed: an old spec is told the new name
RENAMED = {"array_parallelism": "max_running"}


def unknown_key(key: object, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    msg = f"unknown key {key!r}; allowed: {', '.join(allowed)}"
    if RENAMED.get(str(key)) in allowed:
        return f"{msg} ({key!r} was renamed {RENAMED[str(key)]!r})"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f"{msg} (did you mean {close[0]!r}?)" if close else msg


def _sub(problems: list[Problem], prefix: tuple) -> list[Problem]:
    return [p._replace(loc=prefix + p.loc) for p in problems]


class Section:
    """Base of every configuration section: fields are checked (and numbers coerced) when
    an instance is made, then ``resolve`` applies the section's cross-field rules."""

    EXTRA_KEYS: ClassVar[tuple[str, ...]] = ()  # keys handled before parsing (named in 'allowed' lists)

    def __post_init__(self) -> None:
        problems = []
        for f, ann in fields_of(type(self)):
            value, found = _convert(getattr(self, f.name), ann, (f.name,))
            found += _check_rule(value, f.metadata.get("rule"), (f.name,)) if not found else []
            problems += found
            if not found and value is not getattr(self, f.name):
                object.__setattr__(self, f.name, value)
        if not problems:
            try:
                problems = list(self.resolve() or ())
            except ConfigError as e:
                problems = e.problems
        if problems:
            raise ConfigError(problems)

    def resolve(self) -> list[Problem] | None:
        """Cross-field rules; may fill derived defaults with ``self._set``. Returns problems."""
        return None

    def _set(self, **values) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def to_dict(self) -> dict:
        return to_dict(self)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@functools.cache
def fields_of(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """(field, resolved type annotation) for each dataclass field of ``cls``."""
    hints = typing.get_type_hints(cls)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Section)


def section_in(annotation: Any) -> type | None:
    """The section type inside an annotation such as ``PretrainConfig | None``."""
    for a in typing.get_args(annotation) or (annotation,):
        if is_section(a):
            return a
    return None


def parse(cls: type, data: Any, loc: tuple = ()) -> Any:
    """Build section ``cls`` from plain data; raise ConfigError listing every problem."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError([Problem(loc, "Input should be a valid dictionary", data)])
    fields = {f.name: (f, ann) for f, ann in fields_of(cls)}
    problems = [Problem(loc + (k,), unknown_key(k, [*fields, *cls.EXTRA_KEYS]), k, "unknown")
                for k in data if k not in fields]
    kwargs = {}
    for name, (f, ann) in fields.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(Problem(loc + (name,), "required, but missing", kind="missing"))
            continue
        value, found = _convert(data[name], ann, loc + (name,))  # nested sections are parsed here
        problems += found or _check_rule(value, f.metadata.get("rule"), loc + (name,))
        kwargs[name] = value
    if problems:  # (cross-field rules run only on fields that are fine on their own)
        raise ConfigError(problems)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(_sub(e.problems, loc)) from None


def to_dict(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) of a section, recursively."""
    if isinstance(obj, Section):
        return {f.name: to_dict(getattr(obj, f.name)) for f, _ in fields_of(type(obj))}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def identity(obj: Any, data: Any = NOT_SET) -> Any:
    """``to_dict`` of a section (or of plain ``data`` read as section type ``obj``) without
    the fields added after trial ids were first fixed that hold what every earlier trial
    implicitly had (``setting(before=...)``, a value or a callable of the section's data)
    or do not apply (None), and without fields that change how a trial runs but not its
    numbers (``identifying=False``): adding a field leaves the content-addressed ids of
    existing trials unchanged."""
    cls, data = (obj, data) if data is not NOT_SET else (type(obj), to_dict(obj))
    if not is_section(cls) or not isinstance(data, dict):
        return data
    out = {}
    for f, ann in fields_of(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        rule = f.metadata.get("rule")
        if rule is not None and not rule.identifying:
            continue
        before = rule.before if rule is not None else NOT_SET
        if before is not NOT_SET:
            if callable(before):
                before = before(data)
            if value is None or (value == before and type(value) is type(before)):
                continue
        nested = section_in(ann)
        out[f.name] = identity(nested, value) if nested is not None else value
    return out


# ------------------------------------------------------------------ checking one value


def describe(annotation: Any) -> str:
    """'a valid integer', "'a' or 'b'" ... for messages."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return _or([repr(a) for a in args])
    if origin in (typing.Union, types.UnionType):
        return _or([describe(a) for a in args])
    if annotation is type(None):
        return "None"
    if is_section(annotation) or origin is dict:
        return "a valid dictionary"
    if origin is list:
        return "a valid list"
    return {bool: "a valid boolean", int: "a valid integer", float: "a valid number", str: "a valid string"}.get(
        annotation, f"a {getattr(annotation, '__name__', annotation)}")


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


_INT = re.compile(r"^[+-]?\d+$")


def _convert(value: Any, ann: Any, loc: tuple) -> tuple[Any, list[Problem]]:
    """(value coerced to ``ann``, problems). Lax where YAML users expect it: an integral
    float or a numeric string is an int, an int or a numeric string is a float."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is Any:
        return value, []
    if origin in (typing.Union, types.UnionType):
        deeper = []
        for a in sorted(args, key=lambda a: not _exact(value, a)):  # an exact match wins
            out, problems = _convert(value, a, loc)
            if not problems:
                return out, []
            if all(len(p.loc) > len(loc) or p.kind == "model" for p in problems):
                deeper = deeper or problems  # this arm took the value's shape: its own problems say more
        return value, deeper or [Problem(loc, f"Input should be {describe(ann)}", value)]
    if origin is typing.Literal:
        ok = any(value == a and type(value) is type(a) for a in args)
        return value, [] if ok else [Problem(loc, f"Input should be {describe(ann)}", value)]
    if ann is type(None):
        return value, [] if value is None else [Problem(loc, "Input should be None", value)]
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return value, [Problem(loc, "Input should be a valid list", value)]
        out, problems = [], []
        for i, v in enumerate(value):
            v, found = _convert(v, args[0] if args else Any, loc + (i,))
            out.append(v)
            problems += found
        return out, problems
    if origin is dict:
        if not isinstance(value, dict):
            return value, [Problem(loc, "Input should be a valid dictionary", value)]
        out, problems = {}, []
        for k, v in value.items():
            v, found = _convert(v, args[1] if args else Any, loc + (k,))
            out[k] = v
            problems += found
        return out, problems
    if is_section(ann):
        if isinstance(value, ann):
            return value, []
        try:
            return parse(ann, value, loc), []
        except ConfigError as e:
            return value, e.problems
    return _scalar(value, ann, loc)


def _exact(value: Any, ann: Any) -> bool:
    if typing.get_origin(ann) is typing.Literal:
        return value in typing.get_args(ann)
    return type(value) is ann or (ann is type(None) and value is None)


def _scalar(value: Any, ann: Any, loc: tuple) -> tuple[Any, list[Problem]]:
    bad = [Problem(loc, f"Input should be {describe(ann)}", value)]
    if ann is bool:
        return value, [] if isinstance(value, bool) else bad
    if ann is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, []
        if isinstance(value, float) and value.is_integer():
            return int(value), []
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value), []
        if isinstance(value, float):
            return value, [Problem(loc, "Input should be a valid integer, got a number with a fractional part", value)]
        if isinstance(value, str):
            return value, [Problem(loc, "Input should be a valid integer, unable to parse string as an integer", value)]
        return value, bad
    if ann is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), []
        if isinstance(value, str):
            try:
                return float(value), []
            except ValueError:
                return value, [Problem(loc, "Input should be a valid number, unable to parse string as a number", value)]
        return value, bad
    if ann is str:
        return value, [] if isinstance(value, str) else bad
    return value, [] if isinstance(value, ann) else bad


def _check_rule(value: Any, rule: Rule | None, loc: tuple) -> list[Problem]:
    if rule is None or value is None:
        return []
    for bound, op, words in (("ge", float.__ge__, "greater than or equal to"), ("gt", float.__gt__, "greater than"),
                             ("lt", float.__lt__, "less than")):
        limit = getattr(rule, bound)
        if limit is not None and isinstance(value, (int, float)) and not op(float(value), float(limit)):
            return [Problem(loc, f"Input should be {words} {limit:g}", value)]
    if rule.min_len is not None and len(value) < rule.min_len:
        return [Problem(loc, f"List should have at least {rule.min_len} item{'s' * (rule.min_len != 1)} "
                             f"after validation, not {len(value)}", value)]
    if rule.pattern is not None and not re.search(rule.pattern, value):
        return [Problem(loc, f"String should match pattern '{rule.pattern}'", value)]
    if rule.names is not None:
        names = rule.names()
        if hasattr(names, "kind"):  # a registry: its own message lists the known names and the closest
            try:
                names[value]
            except KeyError as e:
                return [Problem(loc, str(e), value, "model")]
        elif value not in names:
            return [Problem(loc, f"Input should be {_or([repr(n) for n in names])}", value)]
    return []
