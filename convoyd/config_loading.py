"""Reading configuration: the TOML file, CONVOYD_* env merged over it, values coerced to fields.

Generic over the dataclasses it fills; convoyd/settings.py defines them and calls load_layers.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from convoyd.errors import ConfigError

MAX_CONFIG_BYTES = 1024 * 1024  # a configuration file is a few kB; /dev/zero is not one


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to a short prefix: error messages never echo much of bad input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _encodable(text: str) -> bool:
    """False for strings with lone surrogates: bytes of the environment or argv that were
    not UTF-8 (Python decodes them with surrogateescape)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """A TOML value or an env string as the field's type; ConfigError naming ``where``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value in ("", None):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    if isinstance(value, str) and not _encodable(value):
        raise ConfigError(f"{where}: is not valid UTF-8 (got {shown(value)})")
    if isinstance(value, list) and not all(
        _encodable(item) for item in value if isinstance(item, str)
    ):
        raise ConfigError(f"{where}: is not valid UTF-8")
    convert = _to_str_tuple if origin is tuple else _CONVERTERS.get(hint)
    if convert is None:
        raise ConfigError(f"{where}: unsupported setting type {hint}")
    try:
        return convert(value)
    except ValueError as exc:
        # int('1' * 5000) says so in a long sentence; one short line is enough.
        reason = str(exc) if len(str(exc)) <= 60 else "not a number"
        raise ConfigError(f"{where}: {reason} (got {shown(value)})") from None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ValueError("expected true or false")


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected an integer")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a number")
    return float(value)


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _to_path(value: Any) -> Path:
    if not isinstance(value, str):
        raise ValueError("expected a path string")
    return Path(value)


def _to_str_tuple(value: Any) -> tuple[str, ...]:
    """A TOML list of strings, or an env string of comma-separated items."""
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected a list of strings")
    return tuple(items)


# How each scalar field type is read from a TOML value or an env string; ValueError if it cannot.
_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
    Path: _to_path,
}


def _build(
    cls: type[Any],
    values: Mapping[str, Any],
    prefix: str,
    source: str,
    origins: Mapping[str, str] | None = None,
    sections: Collection[str] = (),
    built: Mapping[str, Any] | None = None,
) -> Any:
    """``cls`` from ``values``; ``origins`` names where a key came from when not ``source``
    (the file): the environment variable or the flag. Keys in ``sections`` are skipped;
    ``built`` gives fields already made (the sections, so checks across them can run)."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key {prefix}{shown(unknown[0])[1:-1]}")
    kwargs = {}
    for name, value in values.items():
        if name in sections:
            continue
        origin = (origins or {}).get(prefix + name, source)
        kwargs[name] = _coerce(value, hints[name], f"{origin}: {prefix}{name}")
    kwargs.update(built or {})
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if prefix and not str(exc).startswith(prefix):  # e.g. BreakerConfig names no section
            raise ConfigError(f"{prefix}{exc}") from None
        raise


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``; ConfigError, in one line, for every way it can be bad."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}: not UTF-8 text (bad byte on line {line})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; True when it cannot be told (reading it then says why)."""
    try:
        return path.exists()
    except OSError:
        return True


def load_layers(
    top: type[Any],
    sections: Mapping[str, type[Any]],
    path: Path | None,
    *,
    env: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None,
    default_path: Path,
) -> Any:
    """``top`` (with a dataclass of ``sections`` in each of its section fields) from the TOML
    file (``path``, else $CONVOYD_CONFIG, else ``default_path`` if it exists), the CONVOYD_*
    variables of ``env`` over it, and ``overrides`` (flags) over both.
    """
    env = dict(os.environ) if env is None else env
    config_path = _config_path(path, env, default_path)
    source = str(config_path) if config_path else "defaults"
    doc = _read_toml(config_path) if config_path is not None else {}
    for section in sections:
        if section in doc and not isinstance(doc[section], dict):
            raise ConfigError(f"{source}: {section} must be a [{section}] table")
    origins: dict[str, str] = {}  # dotted key -> the variable or flag it came from
    _merge_env(doc, env, origins, top, sections)
    for key, value in (overrides or {}).items():
        if value is not None:
            doc[key] = value
            origins[key] = f"--{key.replace('_', '-')}"
    built = {
        name: _build(cls, doc.get(name, {}), f"{name}.", source, origins)
        for name, cls in sections.items()
    }
    rest = {k: v for k, v in doc.items() if k not in sections}
    return _build(top, rest, "", source, origins, sections, built)


def _config_path(path: Path | None, env: Mapping[str, str], default: Path) -> Path | None:
    """``path``, else $CONVOYD_CONFIG, else ``default`` if it exists, else None."""
    explicit = path or (Path(env["CONVOYD_CONFIG"]) if env.get("CONVOYD_CONFIG") else None)
    return explicit or (default if _exists(default) else None)


def _merge_env(
    doc: dict[str, Any],
    env: Mapping[str, str],
    origins: dict[str, str],
    top: type[Any],
    sections: Mapping[str, type[Any]],
) -> None:
    """Put the CONVOYD_* variables of ``env`` into ``doc``: CONVOYD_<KEY> for top-level keys,
    CONVOYD_<SECTION>_<KEY> inside sections; ConfigError for a variable naming no setting."""
    env_source = "environment"
    top_fields = {f.name for f in dataclasses.fields(top)}
    for key, value in env.items():
        if not key.startswith("CONVOYD_") or key in ("CONVOYD_CONFIG", "CONVOYD_TOKEN"):
            continue
        name = key[len("CONVOYD_") :].lower()
        in_section = [s for s in sections if name.startswith(s + "_")]
        if in_section:
            section = in_section[0]
            sub = name[len(section) + 1 :]
            if sub not in {f.name for f in dataclasses.fields(sections[section])}:
                raise ConfigError(f"{env_source}: unknown variable {shown(key)[1:-1]}")
            doc.setdefault(section, {})[sub] = value
            origins[f"{section}.{sub}"] = f"{env_source} {key}"
        elif name in top_fields and name not in sections:
            doc[name] = value
            origins[name] = f"{env_source} {key}"
        else:
            raise ConfigError(f"{env_source}: unknown variable {shown(key)[1:-1]}")
