"""TLS for endpoints with TLS settings: the client certificate presented on the handshake
(mutual TLS) and the CA that alone is trusted for the receiver.

An ``SSLContext`` cannot be pickled, so the request carries the PEM texts (:class:`TlsMaterial`)
and the process that makes the connection (a sender worker, or the daemon with
``sender_workers = 0``) builds the context there. :class:`TlsContexts` keeps one context per
material: aiohttp's connection key includes the ssl object, so a new context per attempt would
open a new connection (and a full handshake) for every attempt instead of reusing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass

from convoyd.core.model import EndpointTls

# Distinct TLS settings in use are about as many as mTLS endpoints; the bound only stops a
# pathological number of them from holding contexts (each a few hundred KiB with a CA store).
MAX_CONTEXTS = 256


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """What a sender needs to build an endpoint's SSLContext: PEM texts, "" when not set."""

    certificate_pem: str
    key_pem: str
    ca_pem: str
    #: sha256 of the three texts: the context cache's key (so it never holds the key as one).
    digest: str

    def fields(self) -> tuple[str, str, str, str]:
        """The plain tuple that crosses to a sender worker (see convoyd.delivery.frames)."""
        return (self.certificate_pem, self.key_pem, self.ca_pem, self.digest)


@functools.lru_cache(maxsize=1024)
def material_for(tls: EndpointTls) -> TlsMaterial | None:
    """The material of an endpoint's TLS settings; None when they set nothing the handshake
    uses. Cached per settings object (hashing it hashes four strings whose hashes Python keeps),
    so an attempt does not hash the PEM again."""
    cert, key, ca = tls.client_certificate_pem, tls.client_key_pem, tls.ca_pem
    if not (cert or ca):
        return None
    h = hashlib.sha256()
    for text in (cert, key, ca):
        data = text.encode("utf-8", "replace")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return TlsMaterial(certificate_pem=cert, key_pem=key, ca_pem=ca, digest=h.hexdigest())


def build_context(material: TlsMaterial) -> ssl.SSLContext:
    """A verifying client context: trusting only ``ca_pem`` when set (else the system store),
    presenting the client certificate when set. Blocking: loading the system store reads files."""
    if material.ca_pem:
        # With cadata given, create_default_context loads no system certificates.
        context = ssl.create_default_context(cadata=material.ca_pem)
    else:
        context = ssl.create_default_context()
    if material.certificate_pem:
        _load_chain(context, f"{material.certificate_pem.rstrip()}\n{material.key_pem}")
    context.set_alpn_protocols(("http/1.1",))  # what aiohttp's own default context offers
    return context


def _load_chain(context: ssl.SSLContext, pem: str) -> None:
    """``load_cert_chain`` reads only files. The key goes to an anonymous memory file
    (memfd_create, read back through /proc/self/fd): it never has a name in any file system,
    so no other process can open it and nothing is left behind if convoyd dies mid-way. Where
    memfd or /proc is missing, a 0600 temporary file (mkstemp's mode) is removed at once."""
    data = pem.encode("utf-8", "replace")
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("convoyd-client-certificate", os.MFD_CLOEXEC)
        try:
            _write_all(fd, data)
            with contextlib.suppress(FileNotFoundError):  # no /proc: the temporary file then
                context.load_cert_chain(f"/proc/self/fd/{fd}")
                return
        finally:
            os.close(fd)
    fd, path = tempfile.mkstemp(prefix="convoyd-", suffix=".pem")
    try:
        _write_all(fd, data)
        os.close(fd)
        fd = -1
        context.load_cert_chain(path)
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class TlsContexts:
    """One SSLContext per TLS material, at most MAX_CONTEXTS of them (the oldest go first)."""

    def __init__(self) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}

    async def get(self, material: TlsMaterial) -> ssl.SSLContext:
        """The context for ``material``, built in a thread the first time (loading a CA store
        takes milliseconds the event loop must not stall for). Attempts that miss together
        may each build one; the first stored is the one every attempt uses."""
        context = self._contexts.get(material.digest)
        if context is not None:
            return context
        built = await asyncio.to_thread(build_context, material)
        context = self._contexts.get(material.digest)
        if context is not None:
            return context
        if len(self._contexts) >= MAX_CONTEXTS:
            # An evicted context's keep-alive connections stay in aiohttp's pool until idle.
            del self._contexts[next(iter(self._contexts))]
        self._contexts[material.digest] = built
        return built
