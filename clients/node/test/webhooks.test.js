// Receiver-side verification against signatures made by convoyd's Python signer.
//
// The literal signatures below and every case in vectors.json were computed once with
// convoyd/core/signing.py and checked with convoyd/webhooks.py (see gen_vectors.py), so a
// webhooks.js that drifts from the Python rules fails here.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";

import {
  InvalidSignatureError,
  MalformedHeaderError,
  MissingHeaderError,
  TimestampError,
  WebhookVerificationError,
  verify,
} from "../webhooks.js";

const BODY = Buffer.from('{"type":"invoice.paid","data":{"id":"in_1","amount":4200,"note":"café"}}', "utf8");
const TAMPERED = Buffer.from(BODY.toString("utf8").replace("4200", "4201"), "utf8");
const MSG_ID = "msg_2b9Vq0aXh3";
const TS = 1700000000;
const OLD = "whsec_b29vb29vb29vb29vb29vb29vb29vb29vb29vb29vb28="; // base64 of 32 × "o"
const NEW = "whsec_bm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm4="; // base64 of 32 × "n"
const STRANGER = "whsec_eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg="; // base64 of 32 × "x"
const C_OLD = "convoy-secret-old-0123456789";
const C_NEW = "convoy-secret-new-0123456789";

// signing.signature_headers(..., [NEW, OLD], MSG_ID, TS, BODY): newest secret first.
const STANDARD_BOTH = {
  "webhook-id": MSG_ID,
  "webhook-timestamp": String(TS),
  "webhook-signature":
    "v1,VKzImFx2p0ilnLyawWu79A4I2mN1C8fXqv4quYGtFDE= v1,TSV+L+l4D20/eelU1M9Ccolp76KwgDT3n8MDRi0HgXI=",
};
const SIMPLE_SHA256_HEX = {
  "X-Convoy-Signature": "474a6f59b1e9f464a6309c4b2b9db59f3b8a0e7380381330ecf6716884321a66",
};
const SIMPLE_SHA512_BASE64 = {
  "X-Convoy-Signature": "I8F2hbWL8AvZ655gfW4aJUxtMxUgGBLurjM3QqycoJgEZK3Q3xqj0mx5bMUvoSNEQMmEaekatX8ZICZIGOdhsg==",
};
const ADVANCED_SHA256_HEX_BOTH = {
  "X-Convoy-Signature":
    "t=1700000000," +
    "v1=f42730175b4765f9864a66a6693747d0dbcaa8c1689e678112a75fffc47b1f8a," +
    "v1=e8736ff828026b6b714e2bd61c1f8f6edad599e87ef8112c1e32483af1c98140",
};
const ADVANCED_SHA512_BASE64 = {
  "X-Convoy-Signature":
    "t=1700000000,v1=DWdnRFFVlGNz4rfodNfqcHW6gssctyLw0hhx1btGMaRKLY2HTQAfjU+3oyEFtsT8ULjsUe3SChf7+hzRFqpINw==",
};

describe("STANDARD", () => {
  it("accepts the Python signer's signature with either secret of a rotation", () => {
    verify(BODY, STANDARD_BOTH, NEW, { now: TS });
    verify(BODY, STANDARD_BOTH, [OLD], { now: TS });
    verify(BODY, STANDARD_BOTH, [STRANGER, OLD], { now: TS });
  });

  it("takes the body as a string, and headers as a Headers or a Map", () => {
    verify(BODY.toString("utf8"), new Headers(STANDARD_BOTH), NEW, { now: TS });
    verify(new Uint8Array(BODY), new Map(Object.entries(STANDARD_BOTH)), NEW, { now: TS });
  });

  it("rejects a tampered body and a wrong secret", () => {
    assert.throws(() => verify(TAMPERED, STANDARD_BOTH, NEW, { now: TS }), InvalidSignatureError);
    assert.throws(() => verify(BODY, STANDARD_BOTH, [STRANGER], { now: TS }), InvalidSignatureError);
  });

  it("rejects a timestamp outside the tolerance, either way", () => {
    verify(BODY, STANDARD_BOTH, NEW, { now: TS + 300 });
    assert.throws(() => verify(BODY, STANDARD_BOTH, NEW, { now: TS + 301 }), TimestampError);
    assert.throws(() => verify(BODY, STANDARD_BOTH, NEW, { now: TS - 301 }), TimestampError);
    assert.throws(() => verify(BODY, STANDARD_BOTH, NEW, { now: TS + 61, tolerance: 60 }), TimestampError);
    // The default "now" is the clock: a 2023 timestamp is far too old today.
    assert.throws(() => verify(BODY, STANDARD_BOTH, NEW), /webhook-timestamp is more than 300s in the past/);
  });

  it("names a missing header", () => {
    const { "webhook-signature": _, ...unsigned } = STANDARD_BOTH;
    assert.throws(() => verify(BODY, unsigned, NEW, { now: TS }), {
      name: "MissingHeaderError",
      message: "missing header webhook-signature",
    });
  });

  it("is a configuration error, not a verification error, to pass no usable secret", () => {
    for (const secrets of [[], ["whsec_!!!!"], ["whsec_"]]) {
      assert.throws(
        () => verify(BODY, STANDARD_BOTH, secrets, { now: TS }),
        (err) => err instanceof Error && !(err instanceof WebhookVerificationError),
      );
    }
  });
});

describe("CONVOY_SIMPLE", () => {
  it("accepts hex SHA256 and base64 SHA512, with no timestamp to check", () => {
    verify(BODY, SIMPLE_SHA256_HEX, C_OLD, { scheme: "CONVOY_SIMPLE", now: TS + 86400 });
    verify(BODY, SIMPLE_SHA512_BASE64, [C_NEW, C_OLD], {
      scheme: "CONVOY_SIMPLE",
      hash: "SHA512",
      encoding: "BASE64",
    });
  });

  it("rejects a tampered body, a wrong secret and a wrong hash", () => {
    const simple = { scheme: "CONVOY_SIMPLE" };
    assert.throws(() => verify(TAMPERED, SIMPLE_SHA256_HEX, C_OLD, simple), InvalidSignatureError);
    assert.throws(() => verify(BODY, SIMPLE_SHA256_HEX, C_NEW, simple), InvalidSignatureError);
    assert.throws(
      () => verify(BODY, SIMPLE_SHA256_HEX, C_OLD, { ...simple, hash: "SHA512" }),
      InvalidSignatureError,
    );
    assert.throws(
      () => verify(BODY, SIMPLE_SHA512_BASE64, C_OLD, { ...simple, hash: "SHA512", encoding: "HEX" }),
      MalformedHeaderError,
    );
  });
});

describe("CONVOY_ADVANCED", () => {
  it("accepts every secret of a rotation, spelled as the proto enum names too", () => {
    verify(BODY, ADVANCED_SHA256_HEX_BOTH, C_NEW, { scheme: "CONVOY_ADVANCED", now: TS });
    // What endpoint.signature looks like when it comes from the client.
    const signature = {
      scheme: "SIGNATURE_SCHEME_CONVOY_ADVANCED",
      hash: "SIGNATURE_HASH_SHA256",
      encoding: "SIGNATURE_ENCODING_HEX",
    };
    verify(BODY, ADVANCED_SHA256_HEX_BOTH, [C_OLD], { ...signature, now: TS });
    verify(BODY, ADVANCED_SHA512_BASE64, [C_OLD, C_NEW], {
      scheme: "convoy_advanced",
      hash: "sha512",
      encoding: "base64",
      now: TS,
    });
  });

  it("rejects a tampered body, a wrong secret and an old timestamp", () => {
    const advanced = { scheme: "CONVOY_ADVANCED", now: TS };
    assert.throws(() => verify(TAMPERED, ADVANCED_SHA256_HEX_BOTH, C_OLD, advanced), InvalidSignatureError);
    assert.throws(() => verify(BODY, ADVANCED_SHA256_HEX_BOTH, "x".repeat(28), advanced), InvalidSignatureError);
    assert.throws(
      () => verify(BODY, ADVANCED_SHA256_HEX_BOTH, C_OLD, { ...advanced, now: TS + 301 }),
      TimestampError,
    );
    assert.throws(() => verify(BODY, {}, C_OLD, advanced), MissingHeaderError);
  });

  it("refuses an unknown scheme", () => {
    assert.throws(() => verify(BODY, ADVANCED_SHA256_HEX_BOTH, C_OLD, { scheme: "CONVOY" }), TypeError);
  });
});

describe("agrees with convoyd/webhooks.py on every recorded case", () => {
  const cases = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url), "utf8"));
  assert.ok(cases.length > 40);
  for (const c of cases) {
    it(`${c.name} → ${c.expect}`, () => {
      const run = () =>
        verify(Buffer.from(c.body, "utf8"), c.headers, c.secrets, {
          scheme: c.scheme,
          hash: c.hash,
          encoding: c.encoding,
          tolerance: c.tolerance,
          now: c.now,
        });
      if (c.expect === "ok") {
        run();
      } else if (c.expect === "Error") {
        assert.throws(run, (err) => err instanceof Error && !(err instanceof WebhookVerificationError));
      } else {
        assert.throws(run, (err) => err instanceof WebhookVerificationError && err.name === c.expect);
      }
    });
  }
});
