"""One line per config mistake, from pydantic's validation errors."""

from __future__ import annotations

from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

#
# pydantic reports a value that fits no member of a union once per member, each under a label
# ('list[int]', 'function-after[_ordered(), IntRange]', ...): 2-30 lines for one mistake. The
# formatter walks the model's annotations beside each error's location, so it knows where a union
# is, drops those labels and says in one line what was given and what the key allows.

_TYPE_ERRORS = {"literal_error", "enum", "is_instance_of", "int_from_float", "none_required"}
_NOUNS = {int: "integer", float: "number", str: "string", bool: "true/false value"}


def _unwrap(tp: Any) -> Any:
    """`tp` without Annotated[...] metadata and without `| None`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType) and len(_members(tp)) == 1:
            tp = _members(tp)[0]
        else:
            return tp


def _members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not type(None)]


def _union(tp: Any) -> list[Any] | None:
    """The alternatives when `tp` is a union pydantic labels branch by branch (2+ non-null)."""
    tp = _unwrap(tp)
    return _members(tp) if get_origin(tp) in (Union, UnionType) else None


def _step(tp: Any, item: str | int) -> Any:
    """The annotation at `item` inside `tp` (a model's key, a mapping's value, a list's item)."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return next(
            (f.annotation for name, f in tp.model_fields.items() if item in (name, f.alias)),
            None,
        )
    args = get_args(tp)
    if get_origin(tp) is dict and len(args) == 2:
        return args[1]
    if get_origin(tp) in (list, set, frozenset) and args:
        return args[0]
    if get_origin(tp) is tuple and args:
        if args[-1] is Ellipsis or not isinstance(item, int):
            return args[0]
        return args[item] if item < len(args) else None
    return None


def _keys(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _either(words: list[str]) -> str:
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


def _describe(tp: Any) -> str:
    """What a key of annotation `tp` accepts, in words: 'an integer', "'int' or 'float'"."""
    tp = _unwrap(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return _either([repr(a) for a in args])
    if origin in (Union, UnionType):
        return _either([_describe(a) for a in _members(tp)])
    if tp in _NOUNS:
        noun = _NOUNS[tp]
        return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
    if origin in (list, set, frozenset, tuple):
        inner = _unwrap(args[0]) if args else None
        count = f"{len(args)} " if origin is tuple and Ellipsis not in args else ""
        return f"a list of {count}{_NOUNS[inner]}s" if inner in _NOUNS else "a list"
    if origin is dict:
        return "a mapping"
    if keys := _keys(tp):
        return f"a mapping with keys {', '.join(keys)}"
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_type_error(err: Any) -> bool:
    kind = err["type"]
    return kind in _TYPE_ERRORS or kind.endswith(("_type", "_parsing"))


def _problem(path: str, err: Any, tp: Any, parent: Any) -> str:
    """One line for one error that is not a failed union."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        allowed = _keys(parent)
        return f"{path}: unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return f"{path}: missing" + (f" (required: {_describe(tp)})" if tp is not None else "")
    if kind in ("value_error", "assertion_error"):  # the project's validators word these
        return f"{path}: {msg.removeprefix('Value error, ').removeprefix('Assertion failed, ')}"
    given = f"got {_shown(err.get('input'))}"
    if _is_type_error(err) and tp is not None:
        return f"{path}: {given}; allowed: {_describe(tp)}"
    if msg.startswith("Input should be "):
        return f"{path}: {given}; allowed: {msg.removeprefix('Input should be ')}"
    return f"{path}: {given}; {msg[:1].lower()}{msg[1:]}"


def _problems(tp: Any, loc: tuple, errors: list[tuple[tuple, Any]], parent: Any = None) -> list:
    """One line per problem among `errors` (each with its location relative to `loc`)."""
    path = ".".join(str(p) for p in loc) or "(top)"
    members = _union(tp)
    if members is not None and errors and all(rel for rel, _ in errors):
        branches: dict[Any, list[tuple[tuple, Any]]] = {}
        for rel, err in errors:  # the first item is the branch's label, branches in order
            branches.setdefault(rel[0], []).append((rel[1:], err))
        typed = dict(zip(branches, members, strict=False)) if len(branches) == len(members) else {}
        # a branch whose every error is a type error is a shape the value does not have
        fitting = [b for b, errs in branches.items() if not all(_is_type_error(e) for _, e in errs)]
        if len(fitting) == 1:
            return _problems(typed.get(fitting[0]), loc, branches[fitting[0]], parent)
        given = next((e["input"] for rel, e in errors if len(rel) == 1), None)
        shown = f"got {_shown(given)}; " if given is not None else ""
        return [f"{path}: {shown}allowed: {_describe(tp)}"]
    out = [_problem(path, err, tp, parent) for rel, err in errors if not rel]
    nested: dict[Any, list[tuple[tuple, Any]]] = {}
    for rel, err in errors:
        if rel:
            nested.setdefault(rel[0], []).append((rel[1:], err))
    for item, errs in nested.items():
        out += _problems(_step(tp, item), (*loc, item), errs, tp)
    return out


def describe_errors(model: type[BaseModel], exc: ValidationError) -> list[str]:
    """`exc` (from validating `model`) as one line per problem: the key's dotted path, what was
    given and what is allowed."""
    return _problems(model, (), [(tuple(e["loc"]), e) for e in exc.errors()])


def format_errors(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    return "\n".join(f"{path}: {line}" for line in describe_errors(model, exc))
