"""HTML building blocks: escaping by construction, the page layout, badges, tables, times.

Every value put into markup goes through ``esc`` unless it is already ``Html`` (built here
from constant templates), so escaping cannot be forgotten: autoescape by construction.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web


class Html(str):
    """Text that is already markup: inserted as it is; any other value is escaped."""

    __slots__ = ()


EMPTY = Html("")


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape(str(value), quote=True))


def render(template: str, **values: object) -> Html:
    """``template`` (a constant) with each ``{name}`` replaced by the escaped value."""
    return Html(template.format(**{name: esc(value) for name, value in values.items()}))


def join(parts: Iterable[object], sep: str = "") -> Html:
    return Html(sep.join(esc(p) for p in parts))


def url(path: str, **query: object) -> str:
    """A path with the query parameters that have a value (escaped when inserted)."""
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urllib.parse.urlencode(params)}" if params else path


def when(ts: float | None, empty: str = "—") -> Html:
    """A time in UTC, labelled so (every time the portal shows is UTC, as its filters are);
    portal.js adds the viewer's own local time as a tooltip."""
    if ts is None:
        return esc(empty)
    moment = datetime.fromtimestamp(ts, UTC)
    return render(
        '<time datetime="{iso}">{text}</time>',
        iso=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        text=moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def badge(status: str) -> Html:
    return render(
        '<span class="badge badge-{kind}">{label}</span>',
        kind=status.lower(),
        label=status.upper().replace("_", " "),
    )


def link(href: str, text: object, cls: str = "") -> Html:
    if cls:
        return render('<a class="{cls}" href="{href}">{text}</a>', cls=cls, href=href, text=text)
    return render('<a href="{href}">{text}</a>', href=href, text=text)


def clock_time(ts: float, now: float) -> Html:
    """A moment near ``now`` as a person says it: "19:43 UTC", with the date when it is not
    today's (UTC)."""
    moment, today = datetime.fromtimestamp(ts, UTC), datetime.fromtimestamp(now, UTC)
    text = moment.strftime("%H:%M UTC" if moment.date() == today.date() else "%Y-%m-%d %H:%M UTC")
    return render(
        '<time datetime="{iso}">{text}</time>',
        iso=moment.isoformat(timespec="seconds").replace("+00:00", "Z"),
        text=text,
    )


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], cls: str = "") -> Html:
    """A table in a scroll container; each cell carries its column's name (``data-label``),
    which phones show beside the value when a ``stacked`` table lays rows out as cards."""
    names = list(headers)
    head = join(render("<th>{h}</th>", h=h) for h in names)
    body = join(
        render(
            "<tr>{cells}</tr>",
            cells=join(
                render('<td data-label="{n}">{c}</td>', n=n, c=c)
                for n, c in zip(names, row, strict=True)
            ),
        )
        for row in rows
    )
    return render(
        '<div class="table-wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        "<tbody>{body}</tbody></table></div>",
        cls=cls,
        head=head,
        body=body,
    )


def options(choices: Iterable[tuple[str, str]], selected: str) -> Html:
    """``<option>`` elements of (value, text) pairs, the ``selected`` value chosen."""
    return join(
        render(
            '<option value="{v}"{sel}>{t}</option>',
            v=value,
            t=text,
            sel=Html(" selected") if value == selected else Html(""),
        )
        for value, text in choices
    )


def details(items: Iterable[tuple[str, object]]) -> Html:
    """A definition list of label → value."""
    rows = join(render("<dt>{k}</dt><dd>{v}</dd>", k=k, v=v) for k, v in items)
    return render('<dl class="details">{rows}</dl>', rows=rows)


def empty_state(title: str, text: object, action: Html = EMPTY) -> Html:
    return render(
        '<div class="empty"><p class="empty-title">{title}</p><p>{text}</p>{action}</div>',
        title=title,
        text=text,
        action=action,
    )


def card(title: str, body: object, cls: str = "") -> Html:
    return render(
        '<section class="card {cls}"><h2>{title}</h2>{body}</section>',
        cls=cls,
        title=title,
        body=body,
    )


def notice(text: object, kind: str = "ok") -> Html:
    role = "alert" if kind == "error" else "status"
    return render(
        '<div class="notice notice-{kind}" role="{role}">{text}</div>',
        kind=kind,
        role=role,
        text=text,
    )


def mono(text: object) -> Html:
    return render('<code class="mono">{t}</code>', t=text)


def copy_button(target_id: str, what: str = "") -> Html:
    """A button that copies the text of the element ``target_id``; hidden until portal.js
    shows it (without script the text is there to select by hand)."""
    return render(
        '<button type="button" class="btn btn-small btn-copy" data-copy="{t}"'
        ' aria-label="Copy {w}" hidden>Copy</button>',
        t=target_id,
        w=what or "to the clipboard",
    )


def copyable(text: str, element_id: str, *, what: str = "", cls: str = "mono") -> Html:
    """``text`` in a code element with a copy button beside it."""
    return render(
        '<span class="copyable"><code class="{cls}" id="{id}">{t}</code>{b}</span>',
        cls=cls,
        id=element_id,
        t=text,
        b=copy_button(element_id, what),
    )


@dataclass(frozen=True, slots=True)
class Chrome:
    """What the page frame shows about the viewer: scope, rights, the form token."""

    scope: str
    can_manage: bool
    csrf: str


def hidden_csrf(chrome: Chrome) -> Html:
    return render('<input type="hidden" name="csrf" value="{v}">', v=chrome.csrf)


def post_button(
    chrome: Chrome,
    action: str,
    label: str,
    *,
    cls: str = "btn",
    fields: Mapping[str, str] | None = None,
) -> Html:
    """A one-button form (every state change is a POST with the session's CSRF token)."""
    hidden = join(
        render('<input type="hidden" name="{k}" value="{v}">', k=k, v=v)
        for k, v in (fields or {}).items()
    )
    return render(
        '<form class="inline" method="post" action="{action}">{csrf}{hidden}'
        '<button type="submit" class="{cls}">{label}</button></form>',
        action=action,
        csrf=hidden_csrf(chrome),
        hidden=hidden,
        cls=cls,
        label=label,
    )


NAV = (("endpoints", "/portal/", "Endpoints"), ("deliveries", "/portal/deliveries", "Deliveries"))

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} · Webhooks</title>
<link rel="stylesheet" href="/portal/static/portal.css">
<script src="/portal/static/portal.js" defer></script>
</head>
<body>
<header class="topbar"><div class="topbar-inner">
<a class="brand" href="/portal/"><span class="brand-mark" aria-hidden="true"></span>Webhooks</a>
{nav}
{who}
</div></header>
<main class="container">
{notice}
{body}
</main>
<footer class="footer">Times are in UTC · Webhook delivery by convoyd</footer>
</body>
</html>
"""


def page(
    title: str,
    body: Html,
    chrome: Chrome | None,
    *,
    active: str = "",
    message: Html = EMPTY,
) -> Html:
    if chrome is None:
        nav, who = Html(""), Html("")
    else:
        nav = render(
            '<nav class="nav">{links}</nav>',
            links=join(
                link(href, label, "active" if key == active else "") for key, href, label in NAV
            ),
        )
        rights = "can manage endpoints" if chrome.can_manage else "view and retry"
        who = render(
            '<div class="who"><span class="scope" title="{rights}">{scope}</span>{out}</div>',
            rights=rights,
            scope=chrome.scope,
            out=post_button(chrome, "/portal/logout", "Sign out", cls="btn btn-quiet btn-small"),
        )
    return render(_PAGE, title=title, nav=nav, who=who, notice=message, body=body)


def respond(body: Html, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def message_page(
    title: str, text: str, chrome: Chrome | None, *, status: int, hint: str = ""
) -> web.Response:
    """A page that only says something (not found, refused, session ended)."""
    body = render(
        '<div class="message"><h1>{title}</h1><p>{text}</p>{hint}</div>',
        title=title,
        text=text,
        hint=render('<p class="muted">{h}</p>', h=hint) if hint else Html(""),
    )
    return respond(page(title, body, chrome), status)
