/**
 * Types of @convoyd/client, written by hand from proto/convoyd/v1/*.proto.
 *
 * Messages are plain objects as @grpc/proto-loader makes them with keepCase, longs: String,
 * enums: String, defaults: true and oneofs: true: snake_case fields, enum values as their
 * names, 64-bit integers as strings, `bytes` as Buffers, unset message fields as null, and
 * each oneof also named by a field holding the name of the member that is set.
 */

import type * as grpc from "@grpc/grpc-js";

export * from "./webhooks.js";
export * as webhooks from "./webhooks.js";

// --- well-known types -----------------------------------------------------------------------

export interface Timestamp {
  seconds: string;
  nanos: number;
}

export interface Duration {
  seconds: string;
  nanos: number;
}

/** Request-side Duration: seconds may be a number. */
export interface DurationInput {
  seconds: string | number;
  nanos?: number;
}

/** Request-side Timestamp: a Date or a Timestamp. */
export type TimestampInput = Date | { seconds: string | number; nanos?: number };

// --- convoyd.v1 -----------------------------------------------------------------------------

export type EndpointStatus =
  | "ENDPOINT_STATUS_UNSPECIFIED"
  | "ENDPOINT_STATUS_ACTIVE"
  | "ENDPOINT_STATUS_INACTIVE"
  | "ENDPOINT_STATUS_PAUSED"
  | "ENDPOINT_STATUS_PENDING";

export type SignatureSchemeName =
  | "SIGNATURE_SCHEME_UNSPECIFIED"
  | "SIGNATURE_SCHEME_STANDARD"
  | "SIGNATURE_SCHEME_CONVOY_SIMPLE"
  | "SIGNATURE_SCHEME_CONVOY_ADVANCED";

export type SignatureHashName = "SIGNATURE_HASH_UNSPECIFIED" | "SIGNATURE_HASH_SHA256" | "SIGNATURE_HASH_SHA512";

export type SignatureEncodingName =
  | "SIGNATURE_ENCODING_UNSPECIFIED"
  | "SIGNATURE_ENCODING_HEX"
  | "SIGNATURE_ENCODING_BASE64";

/**
 * How an endpoint's deliveries go out. UNSPECIFIED: concurrently (the default). FIFO: one at a
 * time in the order the events were accepted; a failing delivery holds the ones behind it.
 */
export type Ordering = "ORDERING_UNSPECIFIED" | "ORDERING_FIFO";

export type CircuitBreakerState =
  | "CIRCUIT_BREAKER_STATE_UNSPECIFIED"
  | "CIRCUIT_BREAKER_STATE_CLOSED"
  | "CIRCUIT_BREAKER_STATE_OPEN"
  | "CIRCUIT_BREAKER_STATE_HALF_OPEN";

export type DeliveryStatus =
  | "DELIVERY_STATUS_UNSPECIFIED"
  | "DELIVERY_STATUS_SCHEDULED"
  | "DELIVERY_STATUS_PROCESSING"
  | "DELIVERY_STATUS_SUCCESS"
  | "DELIVERY_STATUS_RETRY"
  | "DELIVERY_STATUS_FAILURE"
  | "DELIVERY_STATUS_DISCARDED";

export type AttemptResult =
  | "ATTEMPT_RESULT_UNSPECIFIED"
  | "ATTEMPT_RESULT_SUCCESS"
  | "ATTEMPT_RESULT_HTTP_ERROR"
  | "ATTEMPT_RESULT_NETWORK_ERROR"
  | "ATTEMPT_RESULT_TIMEOUT"
  | "ATTEMPT_RESULT_BLOCKED";

export type PortalLinkKind = "PORTAL_LINK_KIND_UNSPECIFIED" | "PORTAL_LINK_KIND_ONE_TIME" | "PORTAL_LINK_KIND_LONG_LIVED";

export interface SignatureConfig {
  scheme: SignatureSchemeName;
  hash: SignatureHashName;
  encoding: SignatureEncodingName;
}

export interface EndpointSecret {
  id: string;
  created_at: Timestamp | null;
  expires_at: Timestamp | null;
  /** Only in CreateEndpoint, RotateEndpointSecret and GetEndpointSecret answers. */
  value: string;
}

export interface ApiKeyAuthentication {
  header_name: string;
  /** Write-only: reads show "********"; sent back with the same header_name, it keeps the stored key. */
  header_value: string;
}

export type OAuth2ClientAuthenticationName =
  | "CLIENT_AUTHENTICATION_UNSPECIFIED"
  | "CLIENT_AUTHENTICATION_BASIC"
  | "CLIENT_AUTHENTICATION_BODY";

/** A bearer token from the OAuth2 client-credentials grant (RFC 6749 §4.4), fetched and cached by convoyd. */
export interface OAuth2ClientCredentials {
  /** https (http only to a loopback address). */
  token_url: string;
  client_id: string;
  /** Write-only: reads show "********"; sent back with the same token_url and client_id, it keeps the stored secret. */
  client_secret: string;
  /** Sent space-separated as `scope`; empty: none. */
  scopes: string[];
  /** Sent as `audience`; empty: none. */
  audience: string;
  /** How convoyd authenticates to the token URL; UNSPECIFIED means BASIC. */
  client_authentication: OAuth2ClientAuthenticationName;
}

/** HTTP basic authentication (RFC 7617) on every request. */
export interface BasicAuthentication {
  /** Must not contain ":". */
  username: string;
  /** Write-only: reads show "********"; sent back with the same username, it keeps the stored password. */
  password: string;
}

/**
 * How convoyd proves who it is to the receiver: one method at a time, `method` naming the
 * member that is set. No method (`{}`): no authentication; sent in an update, it removes it.
 */
export type EndpointAuthentication =
  | { method: "api_key"; api_key: ApiKeyAuthentication }
  | { method: "oauth2"; oauth2: OAuth2ClientCredentials }
  | { method: "basic"; basic: BasicAuthentication }
  | { method?: undefined };

/** Mutual TLS and a private CA for an https endpoint; goes with any authentication method. */
export interface EndpointTls {
  /** PEM: the client certificate, then any intermediates. Given together with client_key_pem. */
  client_certificate_pem: string;
  /**
   * PEM, unencrypted. Write-only: reads show "********"; sent back, it keeps the stored key for
   * the same certificate, or for a renewed one the stored key belongs to.
   */
  client_key_pem: string;
  /** PEM: the only CA certificates trusted for the receiver; empty: the system's store. */
  ca_pem: string;
  /** Output only: when the client certificate expires. */
  client_certificate_not_after: Timestamp | null;
}

export interface ExponentialRetry {
  initial_interval: Duration | null;
  max_interval: Duration | null;
  multiplier: number;
  max_retries: number;
}

export interface LinearRetry {
  interval: Duration | null;
  max_retries: number;
}

export interface ScheduleRetry {
  delays: Duration[];
}

export interface RetryPolicy {
  exponential?: ExponentialRetry | null;
  linear?: LinearRetry | null;
  schedule?: ScheduleRetry | null;
  strategy?: "exponential" | "linear" | "schedule";
  jitter?: number;
}

export interface CircuitBreakerStatus {
  state: CircuitBreakerState;
  failure_rate: number;
  window_attempts: number;
  consecutive_trips: number;
  next_probe_at: Timestamp | null;
}

/** Output only: what a FIFO endpoint's queue waits behind. */
export interface FifoQueue {
  /** The oldest pending delivery: being tried, or waiting for its next retry. */
  head_delivery_id: string;
  /** Pending deliveries waiting behind the head. */
  waiting: number;
}

export interface Endpoint {
  id: string;
  name: string;
  description: string;
  url: string;
  owner_id: string;
  event_types: string[];
  status: EndpointStatus;
  status_reason: string;
  status_changed_at: Timestamp | null;
  http_timeout: Duration | null;
  rate_limit: number;
  rate_limit_duration: Duration | null;
  retry_policy: RetryPolicy | null;
  signature: SignatureConfig | null;
  secrets: EndpointSecret[];
  authentication: EndpointAuthentication | null;
  headers: Record<string, string>;
  content_type: string;
  max_concurrency: number;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
  circuit_breaker: CircuitBreakerStatus | null;
  /** Mutual TLS and a private CA; needs an https url. */
  tls: EndpointTls | null;
  /** FIFO: one delivery at a time, in acceptance order; a change applies from the next delivery that starts. */
  ordering: Ordering;
  /** Output only: set for a FIFO endpoint with a pending delivery at the head, else null. */
  fifo: FifoQueue | null;
}

type DeepPartialInput<T> = {
  [K in keyof T]?: T[K] extends Duration | null
    ? DurationInput | null
    : T[K] extends Timestamp | null
      ? TimestampInput | null
      : T[K] extends (infer U)[]
        ? U extends object
          ? DeepPartialInput<U>[]
          : U[]
        : T[K] extends object | null
          ? DeepPartialInput<NonNullable<T[K]>> | null
          : T[K];
};

/** What CreateEndpoint and UpdateEndpoint take: any subset of the fields. */
export type EndpointInput = DeepPartialInput<Endpoint>;

export interface ListEndpointsFilter {
  owner_id?: string;
  status?: EndpointStatus;
  page_size?: number;
  page_token?: string;
}

export interface ListEndpointsResponse {
  endpoints: Endpoint[];
  next_page_token: string;
}

export interface RotateEndpointSecretResponse {
  endpoint: Endpoint | null;
  secret: EndpointSecret | null;
}

export interface GetEndpointSecretResponse {
  secrets: EndpointSecret[];
}

export interface Event {
  id: string;
  event_type: string;
  data: Buffer;
  idempotency_key: string;
  endpoint_ids: string[];
  owner_id: string;
  headers: Record<string, string>;
  created_at: Timestamp | null;
  delivery_count: number;
}

export interface CreateEventInput {
  event_type: string;
  /** A Buffer/Uint8Array is sent as is, a string as UTF-8, anything else as compact JSON. */
  data: unknown;
  endpoint_ids?: string[];
  /** Fan-out: every endpoint of this owner (instead of endpoint_ids). */
  owner_id?: string;
  idempotency_key?: string;
  headers?: Record<string, string>;
}

export interface BatchCreateEventsResponse {
  events: Event[];
}

export interface ListEventsFilter {
  event_type?: string;
  owner_id?: string;
  endpoint_id?: string;
  created_after?: TimestampInput;
  created_before?: TimestampInput;
  page_size?: number;
  page_token?: string;
}

export interface ListEventsResponse {
  events: Event[];
  next_page_token: string;
}

export interface Header {
  name: string;
  value: string;
}

export interface Delivery {
  id: string;
  event_id: string;
  endpoint_id: string;
  owner_id: string;
  event_type: string;
  status: DeliveryStatus;
  status_reason: string;
  attempt_count: number;
  next_attempt_at: Timestamp | null;
  last_attempt_at: Timestamp | null;
  last_http_status: number;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
}

export interface DeliveryAttempt {
  id: string;
  delivery_id: string;
  number: number;
  result: AttemptResult;
  started_at: Timestamp | null;
  duration: Duration | null;
  request_url: string;
  request_headers: Header[];
  response_status: number;
  response_headers: Header[];
  response_body: Buffer;
  response_body_truncated: boolean;
  error: string;
  remote_address: string;
}

export interface ListDeliveriesFilter {
  event_id?: string;
  endpoint_id?: string;
  owner_id?: string;
  statuses?: DeliveryStatus[];
  created_after?: TimestampInput;
  created_before?: TimestampInput;
  page_size?: number;
  page_token?: string;
}

export interface ListDeliveriesResponse {
  deliveries: Delivery[];
  next_page_token: string;
}

export interface ListDeliveryAttemptsResponse {
  attempts: DeliveryAttempt[];
  next_page_token: string;
}

export interface BatchRetryDeliveriesFilter {
  endpoint_id?: string;
  owner_id?: string;
  event_id?: string;
  statuses?: DeliveryStatus[];
  created_after?: TimestampInput;
  created_before?: TimestampInput;
  dry_run?: boolean;
}

export interface BatchRetryDeliveriesResponse {
  queued_count: number;
}

export interface WatchDeliveriesFilter {
  endpoint_id?: string;
  owner_id?: string;
  statuses?: DeliveryStatus[];
}

export interface EndpointStatusChange {
  endpoint_id: string;
  owner_id: string;
  previous_status: EndpointStatus;
  status: EndpointStatus;
  reason: string;
  changed_at: Timestamp | null;
}

/** One change on a WatchDeliveries stream: `change` names the member that is set. */
export interface WatchDeliveriesResponse {
  delivery?: Delivery | null;
  endpoint_status_change?: EndpointStatusChange | null;
  change: "delivery" | "endpoint_status_change";
}

export interface PortalLink {
  id: string;
  name: string;
  owner_id: string;
  endpoint_ids: string[];
  all_owners: boolean;
  can_manage_endpoints: boolean;
  kind: PortalLinkKind;
  created_at: Timestamp | null;
  expires_at: Timestamp | null;
  revoked_at: Timestamp | null;
  used_at: Timestamp | null;
  url: string;
}

export interface CreatePortalLinkInput {
  name?: string;
  owner_id?: string;
  endpoint_ids?: string[];
  all_owners?: boolean;
  can_manage_endpoints?: boolean;
  kind?: PortalLinkKind;
  /** Seconds, or a Duration. */
  lifetime?: number | DurationInput;
}

export interface ListPortalLinksFilter {
  owner_id?: string;
  show_inactive?: boolean;
  page_size?: number;
  page_token?: string;
}

export interface ListPortalLinksResponse {
  portal_links: PortalLink[];
  next_page_token: string;
}

/** One convoyd process of the deployment ("local" alone on the SQLite store). */
export interface Node {
  node_id: string;
  grpc_address: string;
  http_address: string;
  shards: number;
  started_at: Timestamp | null;
  heartbeat_at: Timestamp | null;
  version: string;
  alive: boolean;
}

export interface ListNodesResponse {
  nodes: Node[];
  /** 0 on the SQLite store. */
  total_shards: number;
}

// --- the client -----------------------------------------------------------------------------

export interface TlsOptions {
  /** PEM CA bundle; default: the system roots. */
  rootCerts?: Buffer | null;
  /** PEM client key and certificate chain, for mutual TLS. */
  privateKey?: Buffer | null;
  certChain?: Buffer | null;
}

export interface ClientOptions {
  /** host:port; default CONVOYD_GRPC_LISTEN (a wildcard host becomes loopback), else 127.0.0.1:7400. */
  target?: string;
  /** Bearer token; default CONVOYD_TOKEN, else the contents of <dataDir>/admin.token. */
  token?: string;
  /** Where admin.token is looked for; default CONVOYD_DATA_DIR, else ./convoyd-data. */
  dataDir?: string;
  /** true for TLS with the system roots, or explicit PEM material; default plaintext. */
  tls?: boolean | TlsOptions;
  /** Channel credentials to use instead of `tls`. */
  credentials?: grpc.ChannelCredentials;
  /** Directory holding convoyd/v1/*.proto; default the repository's proto/ (../../proto). */
  protoDir?: string;
  /** Deadline of each unary call in milliseconds; default 30000; 0 or null for none. */
  timeout?: number | null;
  /** Extra grpc-js channel options. */
  channelOptions?: grpc.ChannelOptions;
}

export interface FieldViolation {
  field: string;
  description: string;
}

/** A call failed. */
export class ConvoydError extends Error {
  constructor(
    code: string,
    details: string,
    fieldViolations?: FieldViolation[],
    extra?: { cause?: unknown; metadata?: grpc.Metadata },
  );
  /** The gRPC status name: "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", ... */
  code: string;
  /** The server's message. */
  details: string;
  /** From the google.rpc.BadRequest detail; empty unless the request had bad fields. */
  fieldViolations: FieldViolation[];
  /** The call's trailing metadata, when the server answered. */
  metadata?: grpc.Metadata;
}

/** A WatchDeliveries stream: iterate it with `for await`; `cancel()` or `break` ends it. */
export class DeliveryWatch implements AsyncIterableIterator<WatchDeliveriesResponse> {
  cancel(): void;
  next(): Promise<IteratorResult<WatchDeliveriesResponse, void>>;
  return(value?: unknown): Promise<IteratorResult<WatchDeliveriesResponse, void>>;
  throw(err?: unknown): Promise<IteratorResult<WatchDeliveriesResponse, void>>;
  [Symbol.asyncIterator](): DeliveryWatch;
}

/** One channel to convoyd; every method rejects with a ConvoydError. Call close() when done. */
export class ConvoydClient {
  constructor(options?: ClientOptions);
  readonly target: string;
  readonly token: string | undefined;
  timeout: number | null;
  readonly channel: grpc.Channel;
  close(): void;
  metadata(): grpc.Metadata;

  createEndpoint(endpoint: EndpointInput, options?: { secret?: string }): Promise<Endpoint>;
  getEndpoint(endpointId: string): Promise<Endpoint>;
  listEndpoints(filter?: ListEndpointsFilter): Promise<ListEndpointsResponse>;
  iterEndpoints(filter?: Omit<ListEndpointsFilter, "page_token">): AsyncGenerator<Endpoint, void>;
  updateEndpoint(endpoint: EndpointInput & { id: string }, updateMask: readonly string[]): Promise<Endpoint>;
  deleteEndpoint(endpointId: string): Promise<void>;
  pauseEndpoint(endpointId: string, options?: { reason?: string }): Promise<Endpoint>;
  resumeEndpoint(endpointId: string): Promise<Endpoint>;
  activateEndpoint(endpointId: string, options?: { reason?: string }): Promise<Endpoint>;
  rotateEndpointSecret(
    endpointId: string,
    options?: { secret?: string; old_secret_lifetime?: number | DurationInput },
  ): Promise<RotateEndpointSecretResponse>;
  getEndpointSecret(endpointId: string): Promise<GetEndpointSecretResponse>;

  createEvent(input: CreateEventInput): Promise<Event>;
  batchCreateEvents(inputs: CreateEventInput[]): Promise<BatchCreateEventsResponse>;
  getEvent(eventId: string): Promise<Event>;
  listEvents(filter?: ListEventsFilter): Promise<ListEventsResponse>;
  iterEvents(filter?: Omit<ListEventsFilter, "page_token">): AsyncGenerator<Event, void>;

  getDelivery(deliveryId: string): Promise<Delivery>;
  listDeliveries(filter?: ListDeliveriesFilter): Promise<ListDeliveriesResponse>;
  iterDeliveries(filter?: Omit<ListDeliveriesFilter, "page_token">): AsyncGenerator<Delivery, void>;
  listDeliveryAttempts(
    deliveryId: string,
    options?: { page_size?: number; page_token?: string },
  ): Promise<ListDeliveryAttemptsResponse>;
  iterDeliveryAttempts(deliveryId: string, options?: { page_size?: number }): AsyncGenerator<DeliveryAttempt, void>;
  retryDelivery(deliveryId: string): Promise<Delivery>;
  batchRetryDeliveries(filter?: BatchRetryDeliveriesFilter): Promise<BatchRetryDeliveriesResponse>;
  forceResendDelivery(deliveryId: string): Promise<Delivery>;
  watchDeliveries(filter?: WatchDeliveriesFilter, options?: { signal?: AbortSignal }): DeliveryWatch;

  createPortalLink(input?: CreatePortalLinkInput): Promise<PortalLink>;
  getPortalLink(portalLinkId: string): Promise<PortalLink>;
  listPortalLinks(filter?: ListPortalLinksFilter): Promise<ListPortalLinksResponse>;
  revokePortalLink(portalLinkId: string): Promise<PortalLink>;

  listNodes(): Promise<ListNodesResponse>;
}

// --- helpers --------------------------------------------------------------------------------

export const DEFAULT_TARGET: string;
export const DEFAULT_DATA_DIR: string;
export const DEFAULT_PROTO_DIR: string;
export const TOKEN_FILE: string;

/** A Duration of `seconds` (fractions kept to the nanosecond). */
export function duration(seconds: number): Duration;
/** A Timestamp of a Date. */
export function timestamp(when: Date): Timestamp;
/** The Date of a Timestamp; null for null. */
export function toDate(ts: { seconds: string | number; nanos?: number } | null | undefined): Date | null;
/** Event payload bytes, as createEvent encodes `data`. */
export function encodeData(data: unknown): Buffer;
/** The ConvoydError for a failed gRPC call. */
export function toConvoydError(err: unknown): ConvoydError;
export function resolveTarget(target?: string, env?: NodeJS.ProcessEnv): string;
export function resolveToken(token?: string, dataDir?: string, env?: NodeJS.ProcessEnv): string | undefined;
