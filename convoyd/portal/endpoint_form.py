"""The endpoint form of manage links, as HTML: its fields (delivery settings, authentication
and TLS among them) and what was wrong with a posted one (the values: endpoint_values.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from convoyd.core.model import Endpoint, Ordering, SignatureScheme
from convoyd.core.request import REDACTED
from convoyd.core.validation import MASK
from convoyd.portal import credentials, endpoint_values, retry_form
from convoyd.portal.context import DeliveryDefaults
from convoyd.portal.pages import heading
from convoyd.portal.templates import (
    Chrome,
    Html,
    esc,
    hidden_csrf,
    join,
    notice,
    options,
    page,
    render,
)

SCHEMES = (
    (SignatureScheme.STANDARD.value, "Standard Webhooks"),
    (SignatureScheme.CONVOY_SIMPLE.value, "Convoy (simple)"),
    (SignatureScheme.CONVOY_ADVANCED.value, "Convoy (advanced)"),
)
ORDERINGS = (
    (Ordering.CONCURRENT.value, "Concurrent"),
    (Ordering.FIFO.value, "FIFO: one at a time, in order"),
)
KEEP_HINT = f"Never shown: {MASK} stands for the stored value and keeps it."
# Browsers would fill a saved login into a username next to a password field.
NO_FILL = ' autocomplete="off"'


@dataclass
class EndpointForm:
    """The values typed into the endpoint form and what was wrong with them, by field; notes
    say, by field, what to do besides (type a secret again)."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, endpoint: Endpoint) -> EndpointForm:
        return cls(values=endpoint_values.shown_values(endpoint.spec))


def _field(form: EndpointForm, name: str, title: str, control: Html, hint: str = "") -> Html:
    error = form.errors.get(name, "")
    hints = [h for h in (hint, form.notes.get(name, "")) if h]
    return render(
        '<div class="field{bad}"><label for="f-{name}">{title}</label>{control}{hint}{error}</div>',
        bad=Html(" field-error") if error else Html(""),
        name=name,
        title=title,
        control=control,
        hint=join(render('<p class="hint">{h}</p>', h=h) for h in hints),
        error=render('<p class="error" role="alert">{e}</p>', e=error) if error else "",
    )


def _input(form: EndpointForm, name: str, kind: str = "text", extra: str = "") -> Html:
    return render(
        '<input id="f-{name}" name="{name}" type="{kind}" value="{value}"{extra}>',
        name=name,
        kind=kind,
        value=form.values.get(name, ""),
        extra=Html(extra),
    )


def _secret(form: EndpointForm, name: str, title: str) -> Html:
    control = _input(form, name, "password", ' autocomplete="new-password"')
    return _field(form, name, title, control, KEEP_HINT)


def _pem(form: EndpointForm, name: str, title: str, hint: str) -> Html:
    control = render(
        '<textarea id="f-{name}" name="{name}" rows="5" class="mono" spellcheck="false"'
        ' autocomplete="off">{v}</textarea>',
        name=name,
        v=form.values.get(name, ""),
    )
    return _field(form, name, title, control, hint)


def _api_key_fields(f: EndpointForm) -> list[Html]:
    header = _input(f, "api_key_header", extra=NO_FILL)
    return [
        _field(f, "api_key_header", "Header name", header, "e.g. X-Api-Key"),
        _secret(f, "api_key_value", "API key"),
    ]


def _basic_fields(f: EndpointForm) -> list[Html]:
    return [
        _field(f, "basic_username", "Username", _input(f, "basic_username", extra=NO_FILL)),
        _secret(f, "basic_password", "Password"),
    ]


def _oauth2_fields(f: EndpointForm) -> list[Html]:
    client_auth = render(
        '<select id="f-oauth2_client_auth" name="oauth2_client_auth">{o}</select>',
        o=options(credentials.CLIENT_AUTHS, f.values.get("oauth2_client_auth", "")),
    )
    return [
        _field(
            f,
            "oauth2_token_url",
            "Token URL",
            _input(f, "oauth2_token_url", "url"),
            "The authorization server's token endpoint (https).",
        ),
        _field(f, "oauth2_client_id", "Client ID", _input(f, "oauth2_client_id", extra=NO_FILL)),
        _secret(f, "oauth2_client_secret", "Client secret"),
        _field(
            f,
            "oauth2_scopes",
            "Scopes",
            _input(f, "oauth2_scopes"),
            "Space-separated; empty: none asked for.",
        ),
        _field(f, "oauth2_audience", "Audience", _input(f, "oauth2_audience"), "Empty: none."),
        _field(
            f,
            "oauth2_client_auth",
            "Client authentication",
            client_auth,
            "How the client ID and secret go to the token URL.",
        ),
    ]


# Each method's fields; without JavaScript every method shows, and only the chosen one is used.
_METHOD_FIELDS: dict[str, Callable[[EndpointForm], list[Html]]] = {
    "api_key": _api_key_fields,
    "basic": _basic_fields,
    "oauth2": _oauth2_fields,
}


def _authentication(form: EndpointForm) -> Html:
    method = _field(
        form,
        "auth_method",
        "Method",
        render(
            '<select id="f-auth_method" name="auth_method">{o}</select>',
            o=options(credentials.METHODS, form.values.get("auth_method", "none")),
        ),
        "How each request proves itself to your receiver, besides the signature.",
    )
    titles = dict(credentials.METHODS)
    groups = join(
        render(
            '<div class="method" data-auth-method="{m}"><h3>{t}</h3>{fields}</div>',
            m=m,
            t=titles[m],
            fields=join(fields(form)),
        )
        for m, fields in _METHOD_FIELDS.items()
    )
    return render(
        '<fieldset class="group"><legend>Authentication</legend>{method}'
        '<noscript><p class="hint">Only the fields of the chosen method are used.</p></noscript>'
        "{groups}</fieldset>",
        method=method,
        groups=groups,
    )


def _tls(form: EndpointForm) -> Html:
    fields = [
        _pem(
            form,
            "tls_client_certificate_pem",
            "Client certificate",
            "PEM, then any intermediates. Presented on the TLS handshake (mutual TLS); https only.",
        ),
        _pem(
            form,
            "tls_client_key_pem",
            "Client key",
            f"The certificate's unencrypted PEM key. Never shown: {MASK} keeps the stored key.",
        ),
        _pem(
            form,
            "tls_ca_pem",
            "CA certificates",
            "PEM. Only these are trusted for the receiver's certificate; empty: the system's.",
        ),
    ]
    return render('<fieldset class="group"><legend>TLS</legend>{f}</fieldset>', f=join(fields))


def _retry(form: EndpointForm, defaults: DeliveryDefaults) -> Html:
    strategy = _field(
        form,
        "retry_strategy",
        "When a delivery fails, try again",
        render(
            '<select id="f-retry_strategy" name="retry_strategy">{o}</select>',
            o=options(retry_form.STRATEGIES, form.values.get("retry_strategy", "")),
        ),
        f"convoyd's default: {retry_form.policy_text(defaults.retry_policy)}.",
    )
    built_in = retry_form.shown_values(defaults.retry_policy)

    def value(name: str, title: str, hint: str, kind: str = "text", extra: str = "") -> Html:
        control = _input(form, name, kind, f'{extra} placeholder="{esc(built_in[name])}"')
        return _field(form, name, title, control, hint)

    def retries(name: str) -> Html:
        hint = "How many times a failed delivery is tried again."
        return value(name, "Retries", hint, "number", ' min="0"')

    groups = (
        (
            "A schedule of delays",
            [
                value(
                    "retry_delays",
                    "Delays",
                    "The wait before each retry, in order, e.g. 5s, 5m, 30m, 2h: as many"
                    " retries as delays.",
                )
            ],
        ),
        (
            "Exponential backoff",
            [
                retries("retry_exponential_retries"),
                value("retry_initial_interval", "First delay", "e.g. 5s"),
                value(
                    "retry_multiplier",
                    "Growth per retry",
                    "Each delay is the one before times this (1 to 10).",
                    "number",
                    ' min="1" max="10" step="any"',
                ),
                value("retry_max_interval", "Longest delay", "e.g. 10h"),
            ],
        ),
        (
            "The same delay each time",
            [
                retries("retry_linear_retries"),
                value("retry_interval", "Delay", "The wait before every retry, e.g. 1m."),
            ],
        ),
    )
    return render(
        '<fieldset class="group"><legend>Retries</legend>{strategy}{groups}'
        '<p class="hint">Only the chosen way\'s fields are used; an empty one takes the value'
        " shown in it.</p></fieldset>",
        strategy=strategy,
        groups=join(
            render('<div class="method"><h3>{t}</h3>{f}</div>', t=title, f=join(fields))
            for title, fields in groups
        ),
    )


def _headers(form: EndpointForm) -> Html:
    control = render(
        '<textarea id="f-headers" name="headers" rows="3" class="mono" spellcheck="false"'
        ' autocomplete="off" placeholder="X-Tenant: acme">{v}</textarea>',
        v=form.values.get("headers", ""),
    )
    return _field(
        form,
        "headers",
        "Custom headers",
        control,
        "One per line, Name: value; sent with every request. A value that looks like a"
        f" credential shows as {REDACTED}: leave it so to keep the stored value.",
    )


def endpoint_form_page(
    chrome: Chrome,
    form: EndpointForm,
    *,
    action: str,
    title: str,
    ask_owner: bool,
    defaults: DeliveryDefaults,
) -> Html:
    fields = [
        _field(form, "name", "Name", _input(form, "name")),
        _field(form, "url", "URL", _input(form, "url", "url", " required")),
        _field(
            form,
            "description",
            "Description",
            render(
                '<textarea id="f-description" name="description" rows="3">{v}</textarea>',
                v=form.values.get("description", ""),
            ),
        ),
        _field(
            form,
            "event_types",
            "Event types",
            _input(form, "event_types"),
            "Comma-separated, * as a wildcard (order.*); empty: every type.",
        ),
        _field(
            form,
            "rate_limit",
            "Rate limit",
            _input(form, "rate_limit", "number", ' min="0"'),
            "Most requests per second; 0: no limit.",
        ),
        _field(
            form,
            "http_timeout",
            "HTTP timeout (seconds)",
            _input(
                form,
                "http_timeout",
                "number",
                f' min="1" step="any" placeholder="{defaults.http_timeout:g}"',
            ),
            f"How long convoyd waits for your receiver's answer. Empty: convoyd's default,"
            f" {defaults.http_timeout:g} s.",
        ),
        _field(
            form,
            "scheme",
            "Signature scheme",
            render(
                '<select id="f-scheme" name="scheme">{o}</select>',
                o=options(SCHEMES, form.values.get("scheme", SCHEMES[0][0])),
            ),
        ),
        _field(
            form,
            "ordering",
            "Ordering",
            render(
                '<select id="f-ordering" name="ordering">{o}</select>',
                o=options(ORDERINGS, form.values.get("ordering", ORDERINGS[0][0])),
            ),
            "FIFO delivers in the order events were accepted, one at a time: a delivery that"
            " keeps failing holds back the ones behind it until it succeeds or fails for good.",
        ),
        _headers(form),
        _retry(form, defaults),
        _authentication(form),
        _tls(form),
    ]
    if ask_owner:
        fields.insert(0, _field(form, "owner_id", "Owner", _input(form, "owner_id")))
    problems = join(notice(text, "error") for text in form.general)
    body = render(
        '{head}{problems}<form class="card form" method="post" action="{action}">{csrf}'
        '{fields}<div class="form-actions"><button class="btn btn-primary" type="submit">Save'
        '</button><a class="btn btn-quiet" href="{back}">Cancel</a></div></form>',
        head=heading(title),
        problems=problems,
        action=action,
        csrf=hidden_csrf(chrome),
        fields=join(fields),
        back=action.removesuffix("/edit") if action.endswith("/edit") else "/portal/",
    )
    return page(title, body, chrome, active="endpoints")
