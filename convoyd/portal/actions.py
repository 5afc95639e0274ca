"""The portal's POST handlers: the same service calls as the gRPC API, inside the link's scope.

Each action checks the scope (404 outside it) and, for endpoint management, the link's right
to manage (403). A refused state change shows the service's own message on the page.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from convoyd.core.model import (
    Endpoint,
    EndpointSpec,
    EventInput,
    Ordering,
    SignatureConfig,
    SignatureScheme,
)
from convoyd.core.states import Trigger
from convoyd.errors import (
    FailedPreconditionError,
    FieldViolation,
    ResourceExhaustedError,
    ValidationError,
)
from convoyd.portal import credentials, endpoint_form, forms, pages, scope, views
from convoyd.portal.context import services, viewer
from convoyd.portal.security import require_manage
from convoyd.portal.templates import respond
from convoyd.store.base import DeliveryQuery

TEST_EVENT_TYPE = "convoyd.test"
OVERLAP_CHOICES = frozenset(value for value, _ in pages.OVERLAPS)
FORM_FIELDS = (
    *("owner_id", "name", "url", "description", "event_types", "rate_limit"),
    *("http_timeout", "scheme", "ordering", *credentials.FIELDS),
)
# Where a violation of a spec field is shown on the form (by its first name, or its path
# without list indexes).
FIELD_OF = {"signature": "scheme", "rate_limit_duration": "rate_limit", **credentials.FIELD_OF}


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def _form(request: web.Request) -> dict[str, str]:
    posted = await request.post()
    return {
        k: credentials.posted(k, v) for k in FORM_FIELDS if isinstance(v := posted.get(k, ""), str)
    }


async def retry_delivery(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    found, _ = await scope.delivery(svc, who.link, request.match_info["delivery_id"])
    try:
        await svc.deliveries.retry(found.id)
    except FailedPreconditionError as exc:
        message = forms.error_notice(str(exc))
        return await views.show_delivery(request, found.id, message=message, status=409)
    return see_other(f"{pages.delivery_href(found.id)}?done=retried")


async def batch_retry(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    found = await scope.endpoint(svc, who.link, request.match_info["endpoint_id"])
    await svc.deliveries.batch_retry(DeliveryQuery(endpoint_ids=(found.id,)), dry_run=False)
    return see_other(f"{pages.endpoint_href(found.id)}?done=batch")


async def _managed(request: web.Request) -> Endpoint:
    who = require_manage(request)
    return await scope.endpoint(services(request), who.link, request.match_info["endpoint_id"])


async def _change_status(request: web.Request, trigger: Trigger, done: str) -> web.StreamResponse:
    found = await _managed(request)
    try:
        await services(request).endpoints.change_status(found.id, trigger, f"{done} in the portal")
    except FailedPreconditionError as exc:
        message = forms.error_notice(str(exc))
        return await views.show_endpoint(request, found, message=message, status=409)
    return see_other(f"{pages.endpoint_href(found.id)}?done={done}")


async def pause(request: web.Request) -> web.StreamResponse:
    return await _change_status(request, Trigger.PAUSE, "paused")


async def resume(request: web.Request) -> web.StreamResponse:
    return await _change_status(request, Trigger.RESUME, "resumed")


async def rotate_secret(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    svc = services(request)
    overlap = (await request.post()).get("overlap", "")
    if overlap not in OVERLAP_CHOICES:
        message = forms.error_notice("Choose how long the old secret keeps signing.")
        return await views.show_endpoint(request, found, message=message, status=400)
    try:
        endpoint, secret = await svc.endpoints.rotate_secret(
            found.id, old_secret_lifetime=float(str(overlap))
        )
    except (ResourceExhaustedError, FailedPreconditionError) as exc:
        message = forms.error_notice(str(exc))
        return await views.show_endpoint(request, found, message=message, status=409)
    body = forms.secrets_page(
        viewer(request).chrome,
        endpoint,
        [secret],
        title="Secret rotated",
        intro="The new secret signs from now on. Add it to your receiver.",
        previous=[s for s in endpoint.secrets if s.id != secret.id],
        now=svc.clock(),
    )
    return respond(body)


async def reveal_secret(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    svc = services(request)
    live = await svc.endpoints.live_secrets(found.id)
    body = forms.secrets_page(
        viewer(request).chrome,
        found,
        live,
        title="Signing secret",
        intro="Your receiver verifies each webhook's signature with these secrets.",
        now=svc.clock(),
    )
    return respond(body)


async def send_test_event(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    svc = services(request)
    payload = {
        "type": TEST_EVENT_TYPE,
        "message": "A test event sent from the webhook portal.",
        "endpoint_id": found.id,
        "sent_at": datetime.fromtimestamp(svc.clock(), UTC).isoformat(timespec="seconds"),
    }
    (event,) = await svc.events.create(
        [
            EventInput(
                endpoint_ids=(found.id,),
                event_type=TEST_EVENT_TYPE,
                data=json.dumps(payload).encode(),
            )
        ]
    )
    done = "test" if event.delivery_count else "test-skipped"
    return see_other(f"{pages.endpoint_href(found.id)}?done={done}")


def _spec_values(values: dict[str, str]) -> tuple[dict[str, Any], list[FieldViolation]]:
    """The form's values as EndpointSpec fields, and the ones that are not even numbers."""
    bad: list[FieldViolation] = []
    out: dict[str, Any] = {
        "name": values.get("name", ""),
        "url": values.get("url", ""),
        "description": values.get("description", ""),
        "event_types": tuple(
            t for t in values.get("event_types", "").replace(",", " ").split() if t
        ),
    }
    try:
        out["rate_limit"] = int(values.get("rate_limit") or 0)
    except ValueError:
        bad.append(FieldViolation("rate_limit", "must be a whole number"))
    timeout = values.get("http_timeout", "")
    try:
        out["http_timeout"] = float(timeout) if timeout else None
    except ValueError:
        bad.append(FieldViolation("http_timeout", "must be a number of seconds"))
    try:
        out["scheme"] = SignatureScheme(values.get("scheme") or SignatureScheme.STANDARD.value)
    except ValueError:
        bad.append(FieldViolation("signature.scheme", "is not a signature scheme"))
    try:
        out["ordering"] = Ordering(values.get("ordering") or Ordering.CONCURRENT.value)
    except ValueError:
        bad.append(FieldViolation("ordering", "is not an ordering (concurrent or fifo)"))
    proofs, wrong = credentials.spec_values(values)
    return out | proofs, bad + wrong


def _with_errors(values: dict[str, str], exc: ValidationError) -> endpoint_form.EndpointForm:
    shown, notes = credentials.without_typed_secrets(values)
    form = endpoint_form.EndpointForm(values=shown, notes=notes)
    for v in exc.violations:
        path = re.sub(r"\[[^]]*\]", "", v.field)
        head = path.split(".")[0]
        name = FIELD_OF.get(path) or FIELD_OF.get(head, head)
        if name in FORM_FIELDS:
            earlier = form.errors.get(name)
            form.errors[name] = f"{earlier}; {v.description}" if earlier else v.description
        else:
            form.general.append(str(v.field) + ": " + v.description)
    return form


async def create_endpoint(request: web.Request) -> web.StreamResponse:
    views.creatable(request)
    who, svc = viewer(request), services(request)
    values = await _form(request)
    owner = values.get("owner_id", "") if who.link.all_owners else who.link.owner_id
    fields, bad = _spec_values(values)
    try:
        if bad:
            raise ValidationError(bad)
        scheme = fields.pop("scheme")
        spec = EndpointSpec(owner_id=owner, signature=SignatureConfig(scheme=scheme), **fields)
        created = await svc.endpoints.create(spec)
    except ValidationError as exc:
        form = _with_errors(values, exc)
        body = endpoint_form.endpoint_form_page(
            who.chrome,
            form,
            action="/portal/endpoints/new",
            title="New endpoint",
            ask_owner=who.link.all_owners,
        )
        return respond(body, 400)
    body = forms.secrets_page(
        who.chrome,
        created,
        created.secrets,
        title="Endpoint created",
        intro="Webhooks to this endpoint are signed with this secret. Add it to your receiver.",
        now=svc.clock(),
    )
    return respond(body)


async def update_endpoint(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    who, svc = viewer(request), services(request)
    values = await _form(request)
    fields, bad = _spec_values(values)
    try:
        if bad:
            raise ValidationError(bad)
        scheme = fields.pop("scheme")
        fields["signature"] = dataclasses.replace(found.spec.signature, scheme=scheme)
        # The form shows masks for the stored secrets: what it showed, posted back unchanged,
        # is no change (the stored values differ from the masks, so compare the form's views).
        as_shown, _ = credentials.spec_values(
            credentials.normalized(credentials.shown_values(found.spec))
        )
        changes = {
            k: v
            for k, v in fields.items()
            if (as_shown[k] != v if k in as_shown else getattr(found.spec, k) != v)
        }
        if changes:
            await svc.endpoints.update(found.id, changes)
    except ValidationError as exc:
        body = endpoint_form.endpoint_form_page(
            who.chrome,
            _with_errors(values, exc),
            action=f"{pages.endpoint_href(found.id)}/edit",
            title=f"Edit {pages.label(found)}",
            ask_owner=False,
        )
        return respond(body, 400)
    return see_other(f"{pages.endpoint_href(found.id)}?done=updated")
