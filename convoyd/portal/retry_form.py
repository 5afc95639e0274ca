"""An endpoint's retry policy as the portal holds it: the form's fields, the values a policy
fills them with, the policy they post, and the sentence the endpoint's page says it in.

Durations are typed as seconds or with a unit (``5s``, ``5m``, ``2h``, ``1d``); an empty field
takes the value of convoyd's built-in policy for that strategy. The jitter is not on the form: an
edit keeps the stored one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from convoyd.core.model import RetryPolicy, RetryStrategy
from convoyd.errors import FieldViolation

STRATEGIES = (
    ("", "convoyd's default"),
    (RetryStrategy.SCHEDULE.value, "A schedule of delays"),
    (RetryStrategy.EXPONENTIAL.value, "Exponential backoff"),
    (RetryStrategy.LINEAR.value, "The same delay each time"),
)
FIELDS = (
    *("retry_strategy", "retry_delays", "retry_exponential_retries", "retry_initial_interval"),
    *("retry_multiplier", "retry_max_interval", "retry_linear_retries", "retry_interval"),
)
# The form field that shows a violation of an API field (list indexes dropped).
FIELD_OF = {
    "retry_policy": "retry_strategy",
    "retry_policy.jitter": "retry_strategy",
    "retry_policy.schedule.delays": "retry_delays",
    "retry_policy.exponential.initial_interval": "retry_initial_interval",
    "retry_policy.exponential.multiplier": "retry_multiplier",
    "retry_policy.exponential.max_interval": "retry_max_interval",
    "retry_policy.exponential.max_retries": "retry_exponential_retries",
    "retry_policy.linear.interval": "retry_interval",
    "retry_policy.linear.max_retries": "retry_linear_retries",
}
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d)?\s*", re.IGNORECASE)
_BUILT_IN = RetryPolicy()
_WORDS = {"s": "s", "m": "min", "h": "h", "d": "d"}


def parse_duration(text: str) -> float | None:
    """Seconds of ``5``, ``5s``, ``5m``, ``2h`` or ``1d``; None when it is none of them."""
    found = _DURATION.fullmatch(text)
    if found is None:
        return None
    return float(found[1]) * _UNITS[(found[2] or "").lower()]


def duration_value(seconds: float) -> str:
    """A duration as the form takes it back (``5s``, ``30m``, ``2h``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def duration_text(seconds: float) -> str:
    """A duration in words: "5 s", "30 min", "2 h", "1 d"."""
    value = duration_value(seconds)
    number, unit = value[:-1], value[-1]
    return f"{number} {_WORDS[unit]}"


def shown_values(policy: RetryPolicy | None) -> dict[str, str]:
    """The form's retry fields for ``policy`` (None: the default; the fields stay empty)."""
    if policy is None:
        return dict.fromkeys(FIELDS, "")
    return {
        "retry_strategy": policy.strategy.value,
        "retry_delays": ", ".join(duration_value(d) for d in policy.delays),
        "retry_exponential_retries": str(policy.max_retries),
        "retry_linear_retries": str(policy.max_retries),
        "retry_initial_interval": duration_value(policy.initial_interval),
        "retry_multiplier": f"{policy.multiplier:g}",
        "retry_max_interval": duration_value(policy.max_interval),
        "retry_interval": duration_value(policy.interval),
    }


def _durations(text: str, field: str, bad: list[FieldViolation]) -> tuple[float, ...] | None:
    out: list[float] = []
    for part in text.replace(",", " ").split():
        seconds = parse_duration(part)
        if seconds is None:
            bad.append(FieldViolation(field, f"{part!r} is not a duration (like 30s, 5m, 2h)"))
            return None
        out.append(seconds)
    return tuple(out)


def _number(
    text: str, field: str, kind: type[float] | type[int], bad: list[FieldViolation]
) -> float | None:
    try:
        value = kind(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        what = "a whole number" if kind is int else "a number"
        bad.append(FieldViolation(field, f"must be {what}"))
        return None
    return value


# For each strategy: (form field, RetryPolicy attribute, API field, how it is read).
_READS: dict[RetryStrategy, tuple[tuple[str, str, str, str], ...]] = {
    RetryStrategy.SCHEDULE: (("retry_delays", "delays", "schedule.delays", "durations"),),
    RetryStrategy.EXPONENTIAL: (
        ("retry_exponential_retries", "max_retries", "exponential.max_retries", "int"),
        ("retry_initial_interval", "initial_interval", "exponential.initial_interval", "duration"),
        ("retry_multiplier", "multiplier", "exponential.multiplier", "float"),
        ("retry_max_interval", "max_interval", "exponential.max_interval", "duration"),
    ),
    RetryStrategy.LINEAR: (
        ("retry_linear_retries", "max_retries", "linear.max_retries", "int"),
        ("retry_interval", "interval", "linear.interval", "duration"),
    ),
}


def _read(text: str, field: str, how: str, bad: list[FieldViolation]) -> object | None:
    if how == "durations":
        return _durations(text, field, bad)
    if how == "duration":
        seconds = parse_duration(text)
        if seconds is None:
            bad.append(FieldViolation(field, "is not a duration (like 30s, 5m, 2h)"))
        return seconds
    return _number(text, field, int if how == "int" else float, bad)


def spec_value(
    values: Mapping[str, str], stored: RetryPolicy | None
) -> tuple[RetryPolicy | None, list[FieldViolation]]:
    """The posted retry policy (None: the default), and what is not even a number or a
    duration; the service checks the rest (ranges) and names the API field. Only the chosen
    strategy's fields are read; an empty one keeps the stored (or built-in) value."""
    choice = values.get("retry_strategy", "")
    if not choice:
        return None, []
    try:
        strategy = RetryStrategy(choice)
    except ValueError:
        return None, [FieldViolation("retry_policy", "is not a retry strategy")]
    bad: list[FieldViolation] = []
    changes: dict[str, object] = {"strategy": strategy}
    for name, attribute, api, how in _READS[strategy]:
        text = values.get(name, "").strip()
        if text:
            value = _read(text, f"retry_policy.{api}", how, bad)
            if value is not None:
                changes[attribute] = value
    return dataclasses.replace(stored or _BUILT_IN, **changes), bad  # type: ignore[arg-type]


def _count(policy: RetryPolicy) -> int:
    if policy.strategy is RetryStrategy.SCHEDULE:
        return len(policy.delays)
    return policy.max_retries


def policy_text(policy: RetryPolicy) -> str:
    """What a policy does, in words."""
    count = _count(policy)
    if count == 0:
        return "no retries: one attempt only"
    retries = f"{count} retr{'y' if count == 1 else 'ies'}"
    if policy.strategy is RetryStrategy.SCHEDULE:
        text = f"{retries}, after {', '.join(duration_text(d) for d in policy.delays)}"
    elif policy.strategy is RetryStrategy.EXPONENTIAL:
        text = (
            f"{retries}, the first after {duration_text(policy.initial_interval)}, each next"
            f" delay times {policy.multiplier:g}, at most {duration_text(policy.max_interval)}"
        )
    else:
        text = f"{retries}, {duration_text(policy.interval)} apart"
    if policy.jitter:
        text += f"; each delay varies by up to ±{policy.jitter * 50:g} %"
    return text


def summary(policy: RetryPolicy | None, default: RetryPolicy) -> str:
    """The endpoint's policy as its page says it: its own, or convoyd's default."""
    if policy is None:
        return f"{policy_text(default)} (convoyd's default)"
    return policy_text(policy)
