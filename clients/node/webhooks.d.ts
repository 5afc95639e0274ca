/** Receiver-side verification of convoyd's webhook signatures (see webhooks.js). */

/** Scheme names as convoyd's Python package spells them, or as the proto enum does. */
export type SignatureScheme =
  | "STANDARD"
  | "CONVOY_SIMPLE"
  | "CONVOY_ADVANCED"
  | "standard"
  | "convoy_simple"
  | "convoy_advanced"
  | "SIGNATURE_SCHEME_UNSPECIFIED"
  | "SIGNATURE_SCHEME_STANDARD"
  | "SIGNATURE_SCHEME_CONVOY_SIMPLE"
  | "SIGNATURE_SCHEME_CONVOY_ADVANCED";

export type SignatureHash =
  | "SHA256"
  | "SHA512"
  | "sha256"
  | "sha512"
  | "SIGNATURE_HASH_UNSPECIFIED"
  | "SIGNATURE_HASH_SHA256"
  | "SIGNATURE_HASH_SHA512";

export type SignatureEncoding =
  | "HEX"
  | "BASE64"
  | "hex"
  | "base64"
  | "SIGNATURE_ENCODING_UNSPECIFIED"
  | "SIGNATURE_ENCODING_HEX"
  | "SIGNATURE_ENCODING_BASE64";

/** node:http's `req.headers`, a fetch `Headers`, a `Map`, or a plain object. */
export type HeadersLike =
  | Record<string, string | string[] | undefined>
  | { entries(): Iterable<[string, string]> };

export interface VerifyOptions {
  /** The endpoint's scheme; default STANDARD. `endpoint.signature` from the client fits as is. */
  scheme?: SignatureScheme;
  /** The Convoy schemes' HMAC hash; default SHA256 (STANDARD is always SHA256). */
  hash?: SignatureHash;
  /** The Convoy schemes' signature encoding; default HEX (STANDARD is always base64). */
  encoding?: SignatureEncoding;
  /** How far, in seconds, the signed timestamp may be from `now` either way; default 300. */
  tolerance?: number;
  /** The current Unix time in seconds; default `Date.now() / 1000`. */
  now?: number;
}

/**
 * Throws unless `body` and `headers` were signed with one of `secrets`. Verification failures
 * are {@link WebhookVerificationError}s; a receiver-side configuration mistake (no secret, a
 * STANDARD secret that is not base64) is a plain `Error`.
 */
export function verify(
  body: Buffer | Uint8Array | string,
  headers: HeadersLike,
  secrets: string | readonly string[],
  options?: VerifyOptions,
): void;

/** The request cannot be trusted. Answer it with 4xx and do not act on it. */
export class WebhookVerificationError extends Error {}
/** A header the scheme requires is absent or empty. */
export class MissingHeaderError extends WebhookVerificationError {}
/** A signature or timestamp header is present but cannot be parsed. */
export class MalformedHeaderError extends WebhookVerificationError {}
/** The signed timestamp is further from now than the tolerance (too old or in the future). */
export class TimestampError extends WebhookVerificationError {}
/** No signature in the request matches any of the given secrets. */
export class InvalidSignatureError extends WebhookVerificationError {}
