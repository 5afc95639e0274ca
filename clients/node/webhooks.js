/**
 * Verify, on the receiving side, that a webhook request really comes from convoyd.
 *
 * The same rules as the Python `convoyd/webhooks.py` (which mirrors the signer in
 * `convoyd/core/signing.py`), check for check and in the same order, so a request passes here
 * exactly when it passes there. Call {@link verify} with the raw request body (the exact bytes,
 * never re-serialised JSON), the request headers and the secret(s) you hold; trust the request
 * only if nothing is thrown.
 *
 * Schemes (pick the one the endpoint is configured with):
 *
 * - `STANDARD` (default): Standard Webhooks, headers `webhook-id`, `webhook-timestamp` and
 *   `webhook-signature: v1,<base64> v1,<base64>`, HMAC-SHA256 over `${id}.${timestamp}.` + body.
 *   Secrets are `whsec_<base64>` (the prefix may be omitted); the key is the decoded base64.
 * - `CONVOY_ADVANCED`: `X-Convoy-Signature: t=<timestamp>,v1=<sig>,...`, HMAC(hash) over
 *   `${timestamp},` + body, signatures in `encoding`. The secret string itself is the key.
 * - `CONVOY_SIMPLE`: `X-Convoy-Signature: <sig>`, HMAC(hash) over the body alone. It carries
 *   **no timestamp**, so a captured request can be replayed at any time; prefer the other two.
 *
 * This module needs nothing but `node:crypto`: a receiver does not load gRPC.
 *
 * @module @convoyd/client/webhooks
 */

import { createHmac, timingSafeEqual } from "node:crypto";

/** The request cannot be trusted. Answer it with 4xx and do not act on it. */
export class WebhookVerificationError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** A header the scheme requires is absent or empty. */
export class MissingHeaderError extends WebhookVerificationError {}

/** A signature or timestamp header is present but cannot be parsed. */
export class MalformedHeaderError extends WebhookVerificationError {}

/** The signed timestamp is further from now than the tolerance (too old or in the future). */
export class TimestampError extends WebhookVerificationError {}

/** No signature in the request matches any of the given secrets. */
export class InvalidSignatureError extends WebhookVerificationError {}

/** @typedef {"STANDARD" | "CONVOY_SIMPLE" | "CONVOY_ADVANCED"} SignatureScheme */
/** @typedef {"SHA256" | "SHA512"} SignatureHash */
/** @typedef {"HEX" | "BASE64"} SignatureEncoding */

const STANDARD_PREFIX = "whsec_";
const SCHEMES = ["STANDARD", "CONVOY_SIMPLE", "CONVOY_ADVANCED"];
const HASHES = { SHA256: "sha256", SHA512: "sha512" };
const ENCODINGS = ["HEX", "BASE64"];

// Unix seconds as ASCII digits only (Python: re.fullmatch(r"[0-9]{1,15}")); 15 digits stay
// below 2**53, so Number() is exact.
const TIMESTAMP = /^[0-9]{1,15}$/;
// Convoy numbers signature versions v1..vN when a project has several hash/encoding pairs;
// each is a full HMAC with the same secret, so any of them may vouch for the request.
const CONVOY_VERSION = /^v[0-9]+$/;
// Python's str.split()/str.strip() whitespace, so headers split exactly as the Python verifier
// splits them (JavaScript's \s differs: it lacks \x1c-\x1f and \x85, and adds \ufeff).
const WS = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS_RUN = new RegExp(`[${WS}]+`);
const WS_EDGES = new RegExp(`^[${WS}]+|[${WS}]+$`, "g");
// Python's binascii.a2b_base64(strict_mode=True) and a2b_hex: Buffer.from() is lenient (skips
// junk, accepts URL-safe letters, stops at the first bad hex digit), so validate first.
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const STRICT_HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** @param {string} s */
const pyStrip = (s) => s.replace(WS_EDGES, "");

/**
 * Normalises "standard", "STANDARD" or the proto enum name "SIGNATURE_SCHEME_STANDARD" (what the
 * client returns in `endpoint.signature`); UNSPECIFIED means the server default.
 *
 * @param {unknown} value
 * @param {string} protoPrefix
 * @param {readonly string[]} allowed
 * @param {string} fallback
 * @param {string} what
 */
function enumName(value, protoPrefix, allowed, fallback, what) {
  if (value === undefined || value === null) return fallback;
  let name = String(value).toUpperCase();
  if (name.startsWith(protoPrefix)) name = name.slice(protoPrefix.length);
  if (name === "UNSPECIFIED") return fallback;
  if (!allowed.includes(name)) throw new TypeError(`unknown signature ${what} ${JSON.stringify(value)}`);
  return name;
}

/**
 * Header lookup by lowercased name; accepts node:http's `req.headers`, a fetch `Headers`, a
 * `Map` or a plain object. As in the Python verifier, when names repeat the last one wins.
 *
 * @param {import("./webhooks.d.ts").HeadersLike} headers
 * @returns {Map<string, string>}
 */
function lowerHeaders(headers) {
  /** @type {Map<string, string>} */
  const out = new Map();
  /** @type {Iterable<[string, unknown]>} */
  const entries =
    typeof (/** @type {any} */ (headers).entries) === "function"
      ? /** @type {any} */ (headers).entries()
      : Object.entries(headers);
  for (const [name, value] of entries) {
    if (value === undefined || value === null) continue;
    // node:http joins most repeated headers with ", "; arrays only come from set-cookie-like ones.
    out.set(String(name).toLowerCase(), Array.isArray(value) ? value.join(", ") : String(value));
  }
  return out;
}

/**
 * Check that `body` and `headers` were signed by convoyd with one of `secrets`.
 *
 * @param {Buffer | Uint8Array | string} body the raw request body, byte for byte as received
 *   (a string is taken as UTF-8).
 * @param {import("./webhooks.d.ts").HeadersLike} headers the request headers; names are matched
 *   case-insensitively.
 * @param {string | readonly string[]} secrets one secret or several candidates (e.g. old and new
 *   during a rotation); the request passes when ANY candidate matches ANY signature it carries.
 * @param {import("./webhooks.d.ts").VerifyOptions} [options]
 * @returns {void}
 * @throws {MissingHeaderError | MalformedHeaderError | TimestampError | InvalidSignatureError}
 *   all subclasses of {@link WebhookVerificationError}.
 * @throws {Error} no secret was given, or a STANDARD secret is not base64 (a configuration
 *   mistake on the receiving side, not a bad request) — deliberately NOT a
 *   WebhookVerificationError.
 */
export function verify(body, headers, secrets, options = {}) {
  const scheme = enumName(options.scheme, "SIGNATURE_SCHEME_", SCHEMES, "STANDARD", "scheme");
  const hash = enumName(options.hash, "SIGNATURE_HASH_", Object.keys(HASHES), "SHA256", "hash");
  const encoding = enumName(options.encoding, "SIGNATURE_ENCODING_", ENCODINGS, "HEX", "encoding");
  const tolerance = options.tolerance ?? 300;
  const now = options.now ?? Date.now() / 1000;

  const candidates = typeof secrets === "string" ? [secrets] : [...secrets];
  if (candidates.length === 0) throw new Error("no secret given");
  const payload = typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
  const lowered = lowerHeaders(headers);

  /** @type {Buffer[]} */
  let received;
  /** @type {Buffer[]} */
  let expected;
  if (scheme === "STANDARD") {
    const keys = candidates.map(standardKey);
    const msgId = requireHeader(lowered, "webhook-id");
    const rawTs = requireHeader(lowered, "webhook-timestamp");
    const header = requireHeader(lowered, "webhook-signature");
    checkTimestamp(rawTs, "webhook-timestamp", now, tolerance);
    received = parseStandard(header);
    // The timestamp is signed as the sender wrote it, so sign the header text, not a number.
    const signed = Buffer.concat([Buffer.from(`${msgId}.${rawTs}.`, "utf8"), payload]);
    expected = keys.map((key) => hmac("sha256", key, signed));
  } else {
    const keys = candidates.map((secret) => Buffer.from(secret, "utf8"));
    const header = requireHeader(lowered, "X-Convoy-Signature");
    /** @type {Buffer} */
    let signed;
    if (scheme === "CONVOY_SIMPLE") {
      received = [decode(pyStrip(header), encoding)];
      signed = payload;
    } else {
      const [rawTs, rawSigs] = parseAdvanced(header);
      checkTimestamp(rawTs, "X-Convoy-Signature t", now, tolerance);
      received = rawSigs.map((sig) => decode(sig, encoding));
      signed = Buffer.concat([Buffer.from(`${rawTs},`, "utf8"), payload]);
    }
    expected = keys.map((key) => hmac(HASHES[/** @type {SignatureHash} */ (hash)], key, signed));
  }

  let matched = false;
  for (const want of expected) {
    for (const got of received) {
      // No early exit: the time taken must not depend on which pair matched. The lengths are
      // public (they follow from the hash), and timingSafeEqual throws when they differ.
      matched = (want.length === got.length && timingSafeEqual(want, got)) || matched;
    }
  }
  if (!matched) throw new InvalidSignatureError("no signature matches the given secret(s)");
}

/**
 * @param {string} algorithm
 * @param {Buffer} key
 * @param {Buffer} data
 */
function hmac(algorithm, key, data) {
  return createHmac(algorithm, key).update(data).digest();
}

/**
 * @param {Map<string, string>} lowered
 * @param {string} name
 */
function requireHeader(lowered, name) {
  const value = lowered.get(name.toLowerCase()) ?? "";
  if (pyStrip(value) === "") throw new MissingHeaderError(`missing header ${name}`);
  return value;
}

/** @param {string} secret */
function standardKey(secret) {
  const b64 = secret.startsWith(STANDARD_PREFIX) ? secret.slice(STANDARD_PREFIX.length) : secret;
  // Padding may be missing, as the standardwebhooks libraries allow.
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  if (!STRICT_BASE64.test(padded)) throw new Error("a STANDARD secret must be whsec_<base64> or base64");
  const key = Buffer.from(padded, "base64");
  if (key.length === 0) throw new Error("a STANDARD secret must not be empty");
  return key;
}

/**
 * @param {string} raw
 * @param {string} name
 * @param {number} now
 * @param {number} tolerance
 */
function checkTimestamp(raw, name, now, tolerance) {
  if (!TIMESTAMP.test(raw)) throw new MalformedHeaderError(`${name} is not a Unix time in seconds`);
  const ts = Number(raw);
  if (ts < now - tolerance) throw new TimestampError(`${name} is more than ${tolerance}s in the past`);
  if (ts > now + tolerance) throw new TimestampError(`${name} is more than ${tolerance}s in the future`);
}

/**
 * The decoded `v1` signatures of a `webhook-signature` header.
 *
 * @param {string} header
 */
function parseStandard(header) {
  /** @type {Buffer[]} */
  const out = [];
  for (const entry of pyStrip(header).split(WS_RUN)) {
    if (entry === "") continue; // only for an all-whitespace header, which requireHeader() refuses
    const comma = entry.indexOf(",");
    const version = comma < 0 ? entry : entry.slice(0, comma);
    const sig = comma < 0 ? "" : entry.slice(comma + 1);
    if (comma < 0 || !version || !sig) {
      throw new MalformedHeaderError("webhook-signature entries must be <version>,<signature>");
    }
    // Other versions (v1a: asymmetric) are not convoyd's; skip them, as the spec asks.
    if (version === "v1") out.push(decode(sig, "BASE64"));
  }
  if (out.length === 0) throw new InvalidSignatureError("webhook-signature carries no v1 signature");
  return out;
}

/**
 * The `t=` value and the signatures of an advanced `X-Convoy-Signature` header. Parsed by key,
 * not by position, like Convoy's own verifiers: `t` need not come first.
 *
 * @param {string} header
 * @returns {[string, string[]]}
 */
function parseAdvanced(header) {
  /** @type {string | undefined} */
  let timestamp;
  /** @type {string[]} */
  const sigs = [];
  for (const item of header.split(",")) {
    const stripped = pyStrip(item);
    const eq = stripped.indexOf("=");
    const key = eq < 0 ? stripped : stripped.slice(0, eq);
    const value = eq < 0 ? "" : stripped.slice(eq + 1);
    if (eq < 0 || !value) throw new MalformedHeaderError("X-Convoy-Signature entries must be <key>=<value>");
    if (key === "t") {
      if (timestamp !== undefined) throw new MalformedHeaderError("X-Convoy-Signature has more than one t=");
      timestamp = value;
    } else if (CONVOY_VERSION.test(key)) {
      sigs.push(value);
    }
  }
  if (timestamp === undefined) throw new MalformedHeaderError("X-Convoy-Signature has no t= timestamp");
  if (sigs.length === 0) throw new MalformedHeaderError("X-Convoy-Signature has no v1= signature");
  return [timestamp, sigs];
}

/**
 * @param {string} sig
 * @param {string} encoding "HEX" or "BASE64"
 */
function decode(sig, encoding) {
  const valid = encoding === "HEX" ? STRICT_HEX.test(sig) : STRICT_BASE64.test(sig);
  if (!valid) throw new MalformedHeaderError(`a signature is not valid ${encoding.toLowerCase()}`);
  return Buffer.from(sig, encoding === "HEX" ? "hex" : "base64");
}
