/**
 * @convoyd/client: the gRPC control-plane client and receiver-side signature verification.
 *
 * Receivers that only verify webhooks can import "@convoyd/client/webhooks", which loads no gRPC.
 *
 * @module @convoyd/client
 */

export {
  ConvoydClient,
  ConvoydError,
  DEFAULT_DATA_DIR,
  DEFAULT_PROTO_DIR,
  DEFAULT_TARGET,
  DeliveryWatch,
  TOKEN_FILE,
  duration,
  encodeData,
  resolveTarget,
  resolveToken,
  timestamp,
  toConvoydError,
  toDate,
} from "./client.js";
export * as webhooks from "./webhooks.js";
export {
  InvalidSignatureError,
  MalformedHeaderError,
  MissingHeaderError,
  TimestampError,
  WebhookVerificationError,
  verify,
} from "./webhooks.js";
