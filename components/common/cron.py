"""Cron expressions as KFP's scheduler reads them, and the conversion from standard cron.

KFP parses a recurring run's cron with robfig/cron v1 `cron.Parse` (API server and scheduled
workflow controller), whose fields are **seconds** minute hour day-of-month month [day-of-week],
evaluated in UTC. A standard 5-field cron such as `0 3 * * 1` (Mondays 03:00) therefore means
"second 0, minute 3, every hour, in January" to KFP. So:

- `validate_cron` accepts the project's two spellings: 5 fields (standard: minute hour
  day-of-month month day-of-week) or 6 fields (KFP's, with seconds first);
- `to_kfp_cron` turns either into the 6-field form KFP must receive (a 5-field one gets second 0);
- `robfig_parse_errors` is what KFP itself accepts (5 or 6 fields with seconds first, or a
  descriptor such as `@daily`); the KFP stand-in server uses it.
"""

from __future__ import annotations

import re

# (name, low, high, names) per field, in robfig order
_SECOND = ("second", 0, 59, None)
_MINUTE = ("minute", 0, 59, None)
_HOUR = ("hour", 0, 23, None)
_DOM = ("day of month", 1, 31, None)
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_MONTH = ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)})
_DOW = ("day of week", 0, 6, {d: i for i, d in enumerate(_DAYS)})
_STANDARD = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)
_KFP = (_SECOND, *_STANDARD)
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_EVERY = re.compile(r"^@every\s+(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


class CronError(ValueError):
    """A cron expression KFP would refuse or misread."""


def _value(text: str, field: tuple) -> int:
    name, low, high, names = field
    key = text.lower()
    if names and key in names:
        return names[key]
    if not text.isdigit():
        raise CronError(f"{name}: {text!r} is not a number")
    number = int(text)
    if not low <= number <= high:
        raise CronError(f"{name}: {number} is outside {low}-{high}")
    return number


def _field_errors(text: str, field: tuple) -> list[str]:
    errors = []
    for part in text.split(","):
        span, _, step = part.partition("/")
        try:
            if step and (not step.isdigit() or int(step) == 0):
                raise CronError(f"{field[0]}: step {step!r} must be a positive number")
            if span in ("*", "?"):
                continue
            lo, dash, hi = span.partition("-")
            first = _value(lo, field)
            if dash and _value(hi, field) < first:
                raise CronError(f"{field[0]}: range {span!r} runs backwards")
        except CronError as exc:
            errors.append(str(exc))
    return errors


def _fields_errors(fields: list[str], layout: tuple) -> list[str]:
    return [
        e for text, field in zip(fields, layout, strict=False) for e in _field_errors(text, field)
    ]


def validate_cron(expr: str) -> str:
    """`expr` normalised to single spaces if it has 5 (standard) or 6 (KFP, seconds first) valid
    fields; `CronError` naming the field otherwise."""
    fields = str(expr).split()
    if len(fields) not in (5, 6):
        raise CronError(
            f"cron {expr!r} has {len(fields)} fields: expected 5 (minute hour day-of-month month "
            "day-of-week) or 6 (KFP's form, seconds first)"
        )
    errors = _fields_errors(fields, _STANDARD if len(fields) == 5 else _KFP)
    if errors:
        raise CronError(f"cron {expr!r}: " + "; ".join(errors))
    return " ".join(fields)


def to_kfp_cron(expr: str) -> str:
    """The 6-field cron KFP reads as meant: a standard 5-field expression runs at second 0."""
    normal = validate_cron(expr)
    return normal if len(normal.split()) == 6 else f"0 {normal}"


def robfig_parse_errors(expr: str) -> list[str]:
    """Why robfig/cron v1 `cron.Parse` (what KFP runs) would refuse `expr` (empty: accepted)."""
    text = str(expr).strip()
    if text.startswith("@"):
        return [] if text in _DESCRIPTORS or _EVERY.match(text) else [f"unrecognized {text!r}"]
    fields = text.split()
    if len(fields) not in (5, 6):  # seconds first; day of week optional
        return [f"expected 5 to 6 fields, found {len(fields)}: {text!r}"]
    return _fields_errors(fields, _KFP)
