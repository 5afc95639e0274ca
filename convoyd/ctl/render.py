"""How convoyctl shows protobuf messages: key: value blocks and tables, or JSON for tools."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, TextIO, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from convoyd.core.validation import MAX_JSON_DEPTH, nested_deeper_than

_LEAF_MESSAGES = ("google.protobuf.Timestamp", "google.protobuf.Duration")

Page = TypeVar("Page", bound=Message)


def enum_label(enum: EnumDescriptor, number: int) -> str:
    """ENDPOINT_STATUS_ACTIVE → 'active'; SIGNATURE_SCHEME_CONVOY_SIMPLE → 'convoy-simple'."""
    names = [v.name for v in enum.values]
    prefix = names[0][: names[0].rfind("_") + 1] if names else ""
    while prefix and not all(n.startswith(prefix) for n in names):
        prefix = prefix[: prefix[:-1].rfind("_") + 1]
    value = enum.values_by_number.get(number)
    name = value.name if value is not None else str(number)
    return name.removeprefix(prefix).lower().replace("_", "-")


def render_bytes(data: bytes) -> str:
    """JSON payloads as JSON text; other text escaped onto one line; anything else as base64."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(base64) {base64.b64encode(data).decode('ascii')}"
    try:
        if nested_deeper_than(text, MAX_JSON_DEPTH):  # json recurses once per level
            raise ValueError("too deep to re-encode")
        return json.dumps(json.loads(text), ensure_ascii=False)
    except (ValueError, RecursionError):
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def pretty_json(data: bytes) -> str:
    """A JSON payload indented for reading; anything else as ``render_bytes`` shows it."""
    try:
        text = data.decode("utf-8")
        if nested_deeper_than(text, MAX_JSON_DEPTH):  # json recurses once per level
            return render_bytes(data)
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError too
        return render_bytes(data)


def render_value(field: FieldDescriptor, value: Any) -> str:
    """One scalar, enum, Timestamp or Duration value of ``field`` as text."""
    if field.enum_type is not None:
        return enum_label(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return render_bytes(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    kind = field.message_type.full_name if field.message_type is not None else ""
    if kind == "google.protobuf.Timestamp":
        when = value.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
        return str(when).replace("+00:00", "Z")
    if kind == "google.protobuf.Duration":
        return f"{value.ToTimedelta().total_seconds():g}s"
    return str(value)


def field_text(msg: Message, name: str) -> str:
    """The value of ``msg``'s field ``name`` as text ("" when a message field is unset)."""
    field = cast(FieldDescriptor, msg.DESCRIPTOR.fields_by_name[name])
    if field.message_type is not None and not msg.HasField(name):
        return ""
    return render_value(field, getattr(msg, name))


def _is_leaf(field: FieldDescriptor) -> bool:
    return field.message_type is None or field.message_type.full_name in _LEAF_MESSAGES


def flatten(msg: Message, prefix: str = "") -> list[tuple[str, str]]:
    """The set fields of ``msg`` as (dotted key, text) rows, in field order."""
    rows: list[tuple[str, str]] = []
    for field, value in msg.ListFields():
        key = prefix + field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for k in sorted(value):
                if _is_leaf(value_field):
                    rows.append((f"{key}.{k}", render_value(value_field, value[k])))
                else:
                    rows += flatten(value[k], f"{key}.{k}.")
        elif field.is_repeated and _is_leaf(field):
            rows.append((key, ", ".join(render_value(field, v) for v in value)))
        elif field.is_repeated:
            for i, item in enumerate(value):
                rows += flatten(item, f"{key}[{i}].") or [(f"{key}[{i}]", "-")]
        elif _is_leaf(field):
            rows.append((key, render_value(field, value)))
        else:
            rows += flatten(value, key + ".") or [(key, "-")]
    return rows


def format_block(msg: Message) -> str:
    """``key: value`` lines with the values aligned."""
    rows = flatten(msg)
    width = max((len(k) for k, _ in rows), default=0) + 1
    return "\n".join(f"{key + ':':<{width}} {value}" for key, value in rows)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns left-aligned to their widest cell, two spaces apart, no trailing blanks."""
    table = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


# A table column: its title and how to get a cell's text from a message.
Column = tuple[str, Callable[[Any], str]]


def column(title: str, field: str, *, empty: str = "") -> Column:
    """A column showing ``field`` (enums as labels, timestamps as ISO), ``empty`` when unset."""
    return (title, lambda msg: field_text(msg, field) or empty)


def to_dict(msg: Message) -> dict[str, Any]:
    """``msg`` in the proto JSON mapping with its default options, as ``buf curl`` prints it:
    lowerCamelCase names, enum values by name, unset fields left out (docs/cli.md)."""
    return json_format.MessageToDict(msg)


@dataclass(slots=True, kw_only=True)
class Output:
    """Where results go, and how: text for people, or JSON (an object per resource, a list for
    listings). Notes and hints always go to ``err`` so that ``out`` stays parseable."""

    as_json: bool
    out: TextIO
    err: TextIO

    def resource(self, msg: Message) -> None:
        text = json.dumps(to_dict(msg), indent=2) if self.as_json else format_block(msg)
        print(text, file=self.out)

    def listing(self, msgs: Iterable[Message], columns: Sequence[Column]) -> None:
        if self.as_json:
            print(json.dumps([to_dict(m) for m in msgs], indent=2), file=self.out)
            return
        rows = [[get(m) for _, get in columns] for m in msgs]
        print(format_table([title for title, _ in columns], rows), file=self.out)

    async def pages(
        self,
        fetch: Callable[[str], Awaitable[Page]],
        items: Callable[[Page], Iterable[Message]],
        columns: Sequence[Column],
        *,
        page_token: str = "",
        follow: bool = False,
    ) -> None:
        """One listing of the page at ``page_token`` (``follow``: of it and every later page);
        a note tells how to continue when more is left."""
        found: list[Message] = []
        while True:
            page = await fetch(page_token)
            found.extend(items(page))
            page_token = cast(str, getattr(page, "next_page_token", ""))
            if not (follow and page_token):
                break
        self.listing(found, columns)
        if page_token:
            self.note(f"more: --page-token {page_token} (or --all)")

    def stream(self, text: str, msg: Message) -> None:
        """One line of a live feed (``msg`` as compact JSON), flushed at once for pipes."""
        line = json.dumps(to_dict(msg), separators=(",", ":")) if self.as_json else text
        print(line, file=self.out, flush=True)

    def result(self, text: str, data: Any) -> None:
        """A result that is no resource: ``text`` for people, ``data`` as JSON."""
        print(json.dumps(data) if self.as_json else text, file=self.out)

    def line(self, text: str) -> None:
        """Extra human-readable output; on stderr in JSON mode."""
        print(text, file=self.err if self.as_json else self.out)

    def note(self, text: str) -> None:
        print(f"note: {text}", file=self.err)

    def warning(self, text: str) -> None:
        """Something the user should act on; on stderr in both modes."""
        print(f"warning: {text}", file=self.err)
