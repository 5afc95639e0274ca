"""The portal's POST handlers: the same service calls as the gRPC API, inside the link's scope.

Each action checks the scope (404 outside it) and, for endpoint management, the link's right
to manage (403), then answers 303 See Other to a page that shows what happened once
(post/redirect/get, convoyd.portal.flash): a refusal of the service in its own words too. Only
an endpoint form with mistakes answers with itself (400) to be put right: nothing was done, so
sending it again repeats nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime

from aiohttp import web

from convoyd.core.model import DeliveryStatus, Endpoint, EndpointSpec, EventInput, SignatureConfig
from convoyd.core.states import Trigger
from convoyd.errors import FailedPreconditionError, ResourceExhaustedError, ValidationError
from convoyd.portal import (
    credentials,
    endpoint_form,
    endpoint_values,
    flash,
    pages,
    pages_endpoint,
    scope,
    views,
)
from convoyd.portal.context import services, viewer
from convoyd.portal.flash import Flash
from convoyd.portal.security import require_manage
from convoyd.portal.templates import respond
from convoyd.store.base import DeliveryQuery

OVERLAP_CHOICES = frozenset(value for value, _ in pages_endpoint.OVERLAPS)


def _refused(request: web.Request, path: str, exc: Exception) -> web.Response:
    return flash.redirect(request, Flash(text=str(exc), path=path, kind="error"))


async def retry_delivery(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    found, _ = await scope.delivery(svc, who.link, request.match_info["delivery_id"])
    path = pages.delivery_href(found.id)
    try:
        await svc.deliveries.retry(found.id)
    except FailedPreconditionError as exc:
        return _refused(request, path, exc)
    text = "Retry queued: the delivery gets one more attempt now."
    if found.status is DeliveryStatus.RETRY:
        text = "Retry queued: the delivery's next try is now; its later tries keep their schedule."
    return flash.redirect(request, Flash(text=text, path=path))


async def resend_delivery(request: web.Request) -> web.StreamResponse:
    """A delivery that succeeded, sent once more (ForceResendDelivery)."""
    who, svc = viewer(request), services(request)
    found, _ = await scope.delivery(svc, who.link, request.match_info["delivery_id"])
    path = pages.delivery_href(found.id)
    try:
        await svc.deliveries.force_resend(found.id)
    except FailedPreconditionError as exc:
        return _refused(request, path, exc)
    text = "Resend queued: the delivery is sent once more now, as a new attempt."
    return flash.redirect(request, Flash(text=text, path=path))


async def batch_retry(request: web.Request) -> web.StreamResponse:
    who, svc = viewer(request), services(request)
    found = await scope.endpoint(svc, who.link, request.match_info["endpoint_id"])
    count = await svc.deliveries.batch_retry(DeliveryQuery(endpoint_ids=(found.id,)), dry_run=False)
    path = pages.endpoint_href(found.id)
    if not count:
        return flash.redirect(
            request, Flash(text="Nothing to retry: no failed deliveries.", path=path, kind="warn")
        )
    noun = "delivery" if count == 1 else "deliveries"
    text = f"Retry queued for {count} failed or discarded {noun}: they are being sent again."
    return flash.redirect(request, Flash(text=text, path=path))


async def _managed(request: web.Request) -> Endpoint:
    who = require_manage(request)
    return await scope.endpoint(services(request), who.link, request.match_info["endpoint_id"])


STATUS_DONE = {
    Trigger.PAUSE: "Endpoint paused: new events are recorded but not sent until you resume it.",
    Trigger.RESUME: "Endpoint resumed: deliveries flow again.",
}


async def _change_status(request: web.Request, trigger: Trigger, done: str) -> web.StreamResponse:
    found = await _managed(request)
    path = pages.endpoint_href(found.id)
    try:
        await services(request).endpoints.change_status(found.id, trigger, f"{done} in the portal")
    except FailedPreconditionError as exc:
        return _refused(request, path, exc)
    return flash.redirect(request, Flash(text=STATUS_DONE[trigger], path=path))


async def pause(request: web.Request) -> web.StreamResponse:
    return await _change_status(request, Trigger.PAUSE, "paused")


async def resume(request: web.Request) -> web.StreamResponse:
    return await _change_status(request, Trigger.RESUME, "resumed")


async def rotate_secret(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    svc = services(request)
    path = pages.endpoint_href(found.id)
    overlap = (await request.post()).get("overlap", "")
    if overlap not in OVERLAP_CHOICES:
        text = "Choose how long the old secret keeps signing."
        return flash.redirect(request, Flash(text=text, path=path, kind="error"))
    try:
        _, secret = await svc.endpoints.rotate_secret(
            found.id, old_secret_lifetime=float(str(overlap))
        )
    except (ResourceExhaustedError, FailedPreconditionError) as exc:
        return _refused(request, path, exc)
    text = "Secret rotated: the new secret signs from now on. Add it to your receiver."
    return flash.redirect(
        request, Flash(text=text, path=path, secret_ids=(secret.id,), new_secret=True)
    )


async def reveal_secret(request: web.Request) -> web.StreamResponse:
    """The live secrets' values, on the endpoint's page this once (never in a URL)."""
    found = await _managed(request)
    live = await services(request).endpoints.live_secrets(found.id)
    return flash.redirect(
        request,
        Flash(
            text="The signing secrets' values are shown below, on this page load only.",
            path=pages.endpoint_href(found.id),
            kind="info",
            secret_ids=tuple(s.id for s in live),
        ),
    )


def _test_payload(event_type: str, endpoint_id: str, now: float) -> bytes:
    return json.dumps(
        {
            "type": event_type,
            "test": True,
            "message": "A test event sent from the webhook portal.",
            "endpoint_id": endpoint_id,
            "sent_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        }
    ).encode()


async def send_test_event(request: web.Request) -> web.StreamResponse:
    """A test event of a type the endpoint subscribes to, to that endpoint only; when it is
    not sent (no delivery, or a discarded one), the result is a warning that says why."""
    found = await _managed(request)
    svc = services(request)
    path = pages.endpoint_href(found.id)
    chosen = (await request.post()).get("event_type", pages_endpoint.TEST_EVENT_TYPE)
    if chosen not in pages_endpoint.test_event_types(found.spec.event_types):
        types = ", ".join(found.spec.event_types)
        text = f"Choose an event type this endpoint subscribes to ({types})."
        return flash.redirect(request, Flash(text=text, path=path, kind="error"))
    event_type = str(chosen)
    (event,) = await svc.events.create(
        [
            EventInput(
                endpoint_ids=(found.id,),
                event_type=event_type,
                data=_test_payload(event_type, found.id, svc.clock()),
            )
        ]
    )
    made = await svc.deliveries.list(DeliveryQuery(event_id=event.id), page_size=1)
    if not made.items:
        text = f"No test delivery: this endpoint does not subscribe to {event_type} events."
        return flash.redirect(request, Flash(text=text, path=path, kind="warn"))
    delivery = made.items[0]
    href = pages.delivery_href(delivery.id)
    if delivery.status is DeliveryStatus.DISCARDED:
        text = (
            f"Test event {event_type} recorded but not sent: the endpoint is"
            f" {found.status.value}. Its delivery can be retried once it is active."
        )
        return flash.redirect(
            request, Flash(text=text, path=path, kind="warn", href=href, href_text="See it")
        )
    text = f"Test event {event_type} sent."
    return flash.redirect(
        request, Flash(text=text, path=path, href=href, href_text="Follow its delivery")
    )


def _with_errors(values: dict[str, str], exc: ValidationError) -> endpoint_form.EndpointForm:
    shown, notes = credentials.without_typed_secrets(values)
    form = endpoint_form.EndpointForm(values=shown, notes=notes)
    for v in exc.violations:
        path = re.sub(r"\[[^]]*\]", "", v.field)
        head = path.split(".")[0]
        fields = endpoint_values.FIELD_OF
        name = fields.get(path) or fields.get(head, head)
        if name in endpoint_values.FORM_FIELDS:
            earlier = form.errors.get(name)
            form.errors[name] = f"{earlier}; {v.description}" if earlier else v.description
        else:
            form.general.append(str(v.field) + ": " + v.description)
    return form


async def create_endpoint(request: web.Request) -> web.StreamResponse:
    views.creatable(request)
    who, svc = viewer(request), services(request)
    values = await endpoint_values.posted(request)
    owner = values.get("owner_id", "") if who.link.all_owners else who.link.owner_id
    fields, bad = endpoint_values.spec_values(values)
    try:
        if bad:
            raise ValidationError(bad)
        scheme = fields.pop("scheme")
        spec = EndpointSpec(owner_id=owner, signature=SignatureConfig(scheme=scheme), **fields)
        created = await svc.endpoints.create(spec)
    except ValidationError as exc:
        body = endpoint_form.endpoint_form_page(
            who.chrome,
            _with_errors(values, exc),
            action="/portal/endpoints/new",
            title="New endpoint",
            ask_owner=who.link.all_owners,
            defaults=svc.delivery_defaults(),
        )
        return respond(body, 400)
    text = "Endpoint created. Webhooks to it are signed with the secret below."
    return flash.redirect(
        request,
        Flash(
            text=text,
            path=pages.endpoint_href(created.id),
            secret_ids=(created.secrets[0].id,),
            new_secret=True,
        ),
    )


async def update_endpoint(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    who, svc = viewer(request), services(request)
    values = await endpoint_values.posted(request)
    fields, bad = endpoint_values.spec_values(values, found.spec.retry_policy)
    try:
        if bad:
            raise ValidationError(bad)
        scheme = fields.pop("scheme")
        fields["signature"] = dataclasses.replace(found.spec.signature, scheme=scheme)
        changes = endpoint_values.changed_fields(found.spec, fields)
        if changes:
            await svc.endpoints.update(found.id, changes)
    except ValidationError as exc:
        body = endpoint_form.endpoint_form_page(
            who.chrome,
            _with_errors(values, exc),
            action=f"{pages.endpoint_href(found.id)}/edit",
            title=f"Edit {pages.label(found)}",
            ask_owner=False,
            defaults=svc.delivery_defaults(),
        )
        return respond(body, 400)
    path = pages.endpoint_href(found.id)
    if not changes:
        return flash.redirect(request, Flash(text="Nothing changed.", path=path, kind="info"))
    return flash.redirect(request, Flash(text="Endpoint saved.", path=path))


async def delete_endpoint(request: web.Request) -> web.StreamResponse:
    found = await _managed(request)
    await services(request).endpoints.delete(found.id)
    text = f"Endpoint {pages.label(found)} deleted, with its deliveries."
    return flash.redirect(request, Flash(text=text, path="/portal/"))
