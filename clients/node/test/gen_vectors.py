"""Writes test/vectors.json: what convoyd's Python signer and verifier make of a set of requests.

The Node tests replay every case through webhooks.js and expect the same outcome, so the two
verifiers cannot drift apart unnoticed. The JSON is committed; regenerate it only when the
Python rules change, from the repository root:

    .venv/bin/python clients/node/test/gen_vectors.py
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from convoyd import webhooks
from convoyd.core import signing
from convoyd.core.model import SignatureConfig, SignatureEncoding, SignatureHash, SignatureScheme

STD, SIMPLE, ADV = (
    SignatureScheme.STANDARD,
    SignatureScheme.CONVOY_SIMPLE,
    SignatureScheme.CONVOY_ADVANCED,
)
H256, H512 = SignatureHash.SHA256, SignatureHash.SHA512
HEX, B64 = SignatureEncoding.HEX, SignatureEncoding.BASE64

BODY = '{"type":"invoice.paid","data":{"id":"in_1","amount":4200,"note":"café"}}'
TAMPERED = BODY.replace("4200", "4201")
MSG_ID = "msg_2b9Vq0aXh3"
TS = 1_700_000_000
OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
STRANGER = "whsec_" + base64.b64encode(b"x" * 32).decode()
C_OLD = "convoy-secret-old-0123456789"
C_NEW = "convoy-secret-new-0123456789"


def sign(
    scheme: SignatureScheme,
    secrets: list[str],
    hash_: SignatureHash = H256,
    encoding: SignatureEncoding = HEX,
    ts: int = TS,
) -> dict[str, str]:
    config = SignatureConfig(scheme=scheme, hash=hash_, encoding=encoding)
    keys = [signing.secret_key(scheme, s) for s in secrets]
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(ts)}
    headers.update(signing.signature_headers(config, keys, MSG_ID, ts, BODY.encode()))
    return headers


def std_sig(headers: dict[str, str]) -> str:
    return headers["webhook-signature"]


def convoy_sig(headers: dict[str, str]) -> str:
    return headers["X-Convoy-Signature"]


STD_BOTH = sign(STD, [NEW, OLD])
STD_NEW = sign(STD, [NEW])
ADV_BOTH = sign(ADV, [C_NEW, C_OLD])
ADV_SIGS = convoy_sig(ADV_BOTH).split(",")[1:]  # ["v1=...", "v1=..."]
SIMPLE_HEX = sign(SIMPLE, [C_OLD])
SIMPLE_B64_512 = sign(SIMPLE, [C_OLD], H512, B64)
ADV_B64_512 = sign(ADV, [C_NEW], H512, B64)
# A timestamp with a leading zero: valid digits, and signed exactly as written.
ZERO_TS = "0" + str(TS)
ZERO_SIGNED = f"{MSG_ID}.{ZERO_TS}.".encode() + BODY.encode()
ZERO_SIG = base64.b64encode(
    hmac.digest(signing.secret_key(STD, NEW), ZERO_SIGNED, hashlib.sha256)
).decode()


def with_std(sig: str, **over: str) -> dict[str, str]:
    return {**STD_NEW, "webhook-signature": sig, **over}


def convoy(value: str) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": str(TS), "X-Convoy-Signature": value}


CASES: list[dict[str, Any]] = [
    # STANDARD
    {"name": "standard: one secret", "headers": STD_NEW, "secrets": [NEW]},
    {"name": "standard: rotation, holds the new", "headers": STD_BOTH, "secrets": NEW},
    {"name": "standard: rotation, holds the old", "headers": STD_BOTH, "secrets": [OLD]},
    {"name": "standard: several candidates", "headers": STD_NEW, "secrets": [STRANGER, NEW]},
    {"name": "standard: tampered body", "headers": STD_BOTH, "secrets": [NEW], "body": TAMPERED},
    {"name": "standard: wrong secret", "headers": STD_BOTH, "secrets": [STRANGER]},
    {"name": "standard: at the tolerance", "headers": STD_NEW, "secrets": [NEW], "now": TS + 300},
    {"name": "standard: too old", "headers": STD_NEW, "secrets": [NEW], "now": TS + 300.5},
    {"name": "standard: too new", "headers": STD_NEW, "secrets": [NEW], "now": TS - 301},
    {
        "name": "standard: custom tolerance",
        "headers": STD_NEW,
        "secrets": [NEW],
        "now": TS + 10,
        "tolerance": 5,
    },
    {
        "name": "standard: missing id",
        "headers": {k: v for k, v in STD_NEW.items() if k != "webhook-id"},
        "secrets": [NEW],
    },
    {
        "name": "standard: blank signature",
        "headers": with_std(" \t "),
        "secrets": [NEW],
    },
    {
        "name": "standard: names in any case",
        "headers": {k.upper(): v for k, v in STD_NEW.items()},
        "secrets": [NEW],
    },
    {
        "name": "standard: signed timestamp text",
        "headers": with_std("v1," + ZERO_SIG, **{"webhook-timestamp": ZERO_TS}),
        "secrets": [NEW],
    },
    {
        "name": "standard: plus-signed timestamp",
        "headers": {**STD_NEW, "webhook-timestamp": "+" + str(TS)},
        "secrets": [NEW],
    },
    {
        "name": "standard: spaced timestamp",
        "headers": {**STD_NEW, "webhook-timestamp": " " + str(TS)},
        "secrets": [NEW],
    },
    {
        "name": "standard: fractional timestamp",
        "headers": {**STD_NEW, "webhook-timestamp": str(TS) + ".5"},
        "secrets": [NEW],
    },
    {"name": "standard: entry without comma", "headers": with_std("v1"), "secrets": [NEW]},
    {"name": "standard: empty signature", "headers": with_std("v1,"), "secrets": [NEW]},
    {"name": "standard: not base64", "headers": with_std("v1,***"), "secrets": [NEW]},
    {
        "name": "standard: url-safe base64",
        "headers": with_std(std_sig(STD_BOTH).replace("+", "-").replace("/", "_")),
        "secrets": [OLD],
    },
    {"name": "standard: only other versions", "headers": with_std("v1a,abcd"), "secrets": [NEW]},
    {
        "name": "standard: other versions skipped",
        "headers": with_std("v2,abcd   " + std_sig(STD_NEW) + " "),
        "secrets": [NEW],
    },
    {
        "name": "standard: secret without prefix",
        "headers": STD_NEW,
        "secrets": [NEW.removeprefix("whsec_")],
    },
    {
        "name": "standard: secret without padding",
        "headers": STD_NEW,
        "secrets": [NEW.rstrip("=")],
    },
    {"name": "standard: secret not base64", "headers": STD_NEW, "secrets": ["whsec_!!!!"]},
    {"name": "standard: empty secret", "headers": STD_NEW, "secrets": ["whsec_"]},
    {"name": "standard: no secrets", "headers": STD_NEW, "secrets": []},
    # CONVOY_SIMPLE
    {
        "name": "simple: sha256 hex",
        "headers": SIMPLE_HEX,
        "secrets": [C_OLD],
        "scheme": SIMPLE,
    },
    {
        "name": "simple: uppercase hex and spaces",
        "headers": convoy("  " + convoy_sig(SIMPLE_HEX).upper() + " "),
        "secrets": [C_OLD],
        "scheme": SIMPLE,
    },
    {
        "name": "simple: sha512 base64",
        "headers": SIMPLE_B64_512,
        "secrets": [C_NEW, C_OLD],
        "scheme": SIMPLE,
        "hash": H512,
        "encoding": B64,
    },
    {
        "name": "simple: no timestamp check",
        "headers": SIMPLE_HEX,
        "secrets": [C_OLD],
        "scheme": SIMPLE,
        "now": TS + 86_400,
    },
    {
        "name": "simple: wrong encoding",
        "headers": SIMPLE_B64_512,
        "secrets": [C_OLD],
        "scheme": SIMPLE,
        "hash": H512,
        "encoding": HEX,
    },
    {
        "name": "simple: wrong hash",
        "headers": SIMPLE_HEX,
        "secrets": [C_OLD],
        "scheme": SIMPLE,
        "hash": H512,
    },
    {
        "name": "simple: odd-length hex",
        "headers": convoy(convoy_sig(SIMPLE_HEX)[1:]),
        "secrets": [C_OLD],
        "scheme": SIMPLE,
    },
    {
        "name": "simple: tampered body",
        "headers": SIMPLE_HEX,
        "secrets": [C_OLD],
        "scheme": SIMPLE,
        "body": TAMPERED,
    },
    {"name": "simple: wrong secret", "headers": SIMPLE_HEX, "secrets": [C_NEW], "scheme": SIMPLE},
    {
        "name": "simple: missing header",
        "headers": {"webhook-id": MSG_ID},
        "secrets": [C_OLD],
        "scheme": SIMPLE,
    },
    # CONVOY_ADVANCED
    {"name": "advanced: holds the new", "headers": ADV_BOTH, "secrets": C_NEW, "scheme": ADV},
    {"name": "advanced: holds the old", "headers": ADV_BOTH, "secrets": [C_OLD], "scheme": ADV},
    {
        "name": "advanced: sha512 base64",
        "headers": ADV_B64_512,
        "secrets": [C_NEW],
        "scheme": ADV,
        "hash": H512,
        "encoding": B64,
    },
    {
        "name": "advanced: t last, spaces, unknown keys",
        "headers": convoy(" x=1, " + ADV_SIGS[1] + " , t=" + str(TS)),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: other version numbers",
        "headers": convoy("t=" + str(TS) + "," + ADV_SIGS[1].replace("v1=", "v7=")),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: two t",
        "headers": convoy(convoy_sig(ADV_BOTH) + ",t=" + str(TS)),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: no t",
        "headers": convoy(",".join(ADV_SIGS)),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: no signature",
        "headers": convoy("t=" + str(TS)),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: empty value",
        "headers": convoy("t=," + ADV_SIGS[0]),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: spaced key",
        "headers": convoy("t =" + str(TS) + "," + ADV_SIGS[0]),
        "secrets": [C_OLD],
        "scheme": ADV,
    },
    {
        "name": "advanced: too old",
        "headers": ADV_BOTH,
        "secrets": [C_OLD],
        "scheme": ADV,
        "now": TS + 301,
    },
    {
        "name": "advanced: tampered body",
        "headers": ADV_BOTH,
        "secrets": [C_OLD],
        "scheme": ADV,
        "body": TAMPERED,
    },
    {
        "name": "advanced: wrong secret",
        "headers": ADV_BOTH,
        "secrets": ["convoy-secret-xxx-0123456789"],
        "scheme": ADV,
    },
]


def outcome(case: dict[str, Any]) -> str:
    try:
        webhooks.verify(
            case.get("body", BODY).encode(),
            case["headers"],
            case["secrets"],
            scheme=case.get("scheme", STD),
            hash=case.get("hash", H256),
            encoding=case.get("encoding", HEX),
            tolerance=case.get("tolerance", 300.0),
            now=case.get("now", TS),
        )
    except webhooks.WebhookVerificationError as exc:
        return type(exc).__name__
    except ValueError:
        return "Error"  # a receiver-side configuration mistake
    return "ok"


def main() -> None:
    out = []
    for case in CASES:
        row = {"name": case["name"], "body": case.get("body", BODY)}
        row.update({k: v for k, v in case.items() if k not in ("name", "body")})
        for key in ("scheme", "hash", "encoding"):
            if key in row:
                row[key] = row[key].name
        row["now"] = case.get("now", TS)
        row["expect"] = outcome(case)
        out.append(row)
    path = Path(__file__).with_name("vectors.json")
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(out)} cases to {path}")


if __name__ == "__main__":
    main()
