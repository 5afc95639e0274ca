/**
 * Promise-based client for convoyd's gRPC control plane, over @grpc/grpc-js.
 *
 * The contract is loaded at runtime from the repository's `proto/` directory (no generated
 * code to keep in sync); messages are plain objects with the proto's snake_case field names,
 * enums as their names ("ENDPOINT_STATUS_ACTIVE"), 64-bit integers as strings and `bytes` as
 * Buffers. Every call carries `authorization: Bearer <token>`; every failure is a
 * {@link ConvoydError} naming the gRPC status and, for INVALID_ARGUMENT, the bad fields.
 *
 * @module @convoyd/client
 */

import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";

/** @import * as T from "./index.d.ts" */

export const DEFAULT_TARGET = "127.0.0.1:7400";
export const DEFAULT_DATA_DIR = "./convoyd-data";
export const TOKEN_FILE = "admin.token";
/** The repository's proto/ directory, found from this file: clients/node/ → ../../proto. */
export const DEFAULT_PROTO_DIR = fileURLToPath(new URL("../../proto", import.meta.url));

const STATUS_DETAILS_KEY = "grpc-status-details-bin";
const BAD_REQUEST_TYPE = "google.rpc.BadRequest";
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

// google.rpc.Status and google.rpc.BadRequest come from two .proto files vendored unmodified
// under ./proto/google/rpc (Apache-2.0, from googleapis via googleapis-common-protos, the same
// copies the Python server packs its details with). Vendoring two small, stable files beats
// depending on `google-proto-files` (megabytes of unrelated protos) just to decode one trailer;
// protobufjs, which decodes them, is already here as proto-loader's own dependency.
const RPC_PROTO_DIR = fileURLToPath(new URL("./proto", import.meta.url));

/** @type {{ Status: protobuf.Type, BadRequest: protobuf.Type } | undefined} */
let rpcTypes;

function statusTypes() {
  if (rpcTypes === undefined) {
    const root = new protobuf.Root().loadSync(
      ["status.proto", "error_details.proto"].map((f) => path.join(RPC_PROTO_DIR, "google", "rpc", f)),
      { keepCase: true },
    );
    rpcTypes = {
      Status: root.lookupType("google.rpc.Status"),
      BadRequest: root.lookupType(BAD_REQUEST_TYPE),
    };
  }
  return rpcTypes;
}

/** @type {Map<string, any>} */
const packages = new Map();

/**
 * The `convoyd.v1` package of every `convoyd/v1/*.proto` under `protoDir`, loaded once per dir.
 *
 * @param {string} protoDir
 */
function loadPackage(protoDir) {
  let pkg = packages.get(protoDir);
  if (pkg === undefined) {
    const files = readdirSync(path.join(protoDir, "convoyd", "v1"))
      .filter((name) => name.endsWith(".proto"))
      .sort()
      .map((name) => `convoyd/v1/${name}`);
    const definition = protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs: [protoDir] });
    pkg = /** @type {any} */ (grpc.loadPackageDefinition(definition)).convoyd.v1;
    packages.set(protoDir, pkg);
  }
  return pkg;
}

// --- errors ---------------------------------------------------------------------------------

/** A call failed. `code` is the gRPC status name; `fieldViolations` name bad request fields. */
export class ConvoydError extends Error {
  /**
   * @param {string} code e.g. "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED"
   * @param {string} details the server's message
   * @param {{ field: string, description: string }[]} [fieldViolations]
   * @param {{ cause?: unknown, metadata?: grpc.Metadata }} [extra]
   */
  constructor(code, details, fieldViolations = [], extra = {}) {
    super(`${code}: ${details}`, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "ConvoydError";
    this.code = code;
    this.details = details;
    this.fieldViolations = fieldViolations;
    this.metadata = extra.metadata;
  }
}

/**
 * The ConvoydError for a failed gRPC call, with the google.rpc.BadRequest field violations
 * from the `grpc-status-details-bin` trailer.
 *
 * @param {any} err a grpc-js ServiceError (or anything thrown while calling)
 * @returns {ConvoydError}
 */
export function toConvoydError(err) {
  if (err instanceof ConvoydError) return err;
  if (typeof err?.code !== "number") {
    return new ConvoydError("UNKNOWN", String(err?.message ?? err), [], { cause: err });
  }
  const code = grpc.status[err.code] ?? "UNKNOWN";
  let details = err.details ?? err.message ?? "";
  /** @type {{ field: string, description: string }[]} */
  const violations = [];
  const trailers = /** @type {grpc.Metadata | undefined} */ (err.metadata);
  for (const raw of trailers?.get(STATUS_DETAILS_KEY) ?? []) {
    if (!Buffer.isBuffer(raw)) continue;
    try {
      const { Status, BadRequest } = statusTypes();
      const status = /** @type {any} */ (Status.decode(raw));
      details = status.message || details;
      for (const any of status.details ?? []) {
        if (String(any.type_url).split("/").pop() !== BAD_REQUEST_TYPE) continue;
        const bad = /** @type {any} */ (BadRequest.decode(any.value));
        for (const v of bad.field_violations ?? []) {
          violations.push({ field: v.field, description: v.description });
        }
      }
    } catch {
      // A garbled detail must not hide the error itself.
    }
  }
  return new ConvoydError(code, details, violations, { cause: err, metadata: trailers });
}

// --- conversions and configuration ----------------------------------------------------------

/**
 * A google.protobuf.Duration of `seconds` (fractions kept to the nanosecond).
 *
 * @param {number} seconds
 */
export function duration(seconds) {
  const whole = Math.trunc(seconds);
  return { seconds: String(whole), nanos: Math.round((seconds - whole) * 1e9) };
}

/**
 * A google.protobuf.Timestamp of a Date.
 *
 * @param {Date} when
 */
export function timestamp(when) {
  const ms = when.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1e6 };
}

/**
 * The Date of a google.protobuf.Timestamp as the client returns it (null stays null).
 *
 * @param {{ seconds: string | number, nanos?: number } | null | undefined} ts
 */
export function toDate(ts) {
  if (!ts) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6));
}

/** @param {any} value Date, Timestamp or nothing */
const ts = (value) => (value instanceof Date ? timestamp(value) : (value ?? null));
/** @param {any} value seconds, Duration or nothing */
const dur = (value) => (typeof value === "number" ? duration(value) : (value ?? null));

/**
 * `target`, else `CONVOYD_GRPC_LISTEN` (a wildcard listen host becomes loopback), else the default.
 *
 * @param {string | undefined} target
 * @param {NodeJS.ProcessEnv} [env]
 */
export function resolveTarget(target, env = process.env) {
  if (target) return target;
  const listen = env.CONVOYD_GRPC_LISTEN || DEFAULT_TARGET;
  const colon = listen.lastIndexOf(":");
  if (colon < 0) return listen;
  const host = listen.slice(0, colon);
  const port = listen.slice(colon + 1);
  if (host === "0.0.0.0" || host === "" || host === "*") return `127.0.0.1:${port}`;
  if (host === "[::]") return `[::1]:${port}`;
  return listen;
}

/**
 * `token`, else `CONVOYD_TOKEN`, else `<dataDir>/admin.token`; undefined when none is found.
 * dataDir is the argument, else `CONVOYD_DATA_DIR`, else `./convoyd-data`.
 *
 * @param {string | undefined} token
 * @param {string | undefined} dataDir
 * @param {NodeJS.ProcessEnv} [env]
 */
export function resolveToken(token, dataDir, env = process.env) {
  if (token) return token;
  if (env.CONVOYD_TOKEN) return env.CONVOYD_TOKEN;
  const dir = dataDir || env.CONVOYD_DATA_DIR || DEFAULT_DATA_DIR;
  try {
    return readFileSync(path.join(dir, TOKEN_FILE), "utf8").trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Event payload bytes: Buffer/Uint8Array as they are, a string as UTF-8 (JSON text), anything
 * else as compact JSON.
 *
 * @param {unknown} data
 */
export function encodeData(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === "string") return Buffer.from(data, "utf8");
  const text = JSON.stringify(data);
  if (text === undefined) throw new TypeError("event data must be JSON-serialisable, a string or bytes");
  return Buffer.from(text, "utf8");
}

/** @param {T.CreateEventInput} input */
function eventRequest(input) {
  return {
    endpoint_ids: input.endpoint_ids ?? [],
    owner_id: input.owner_id ?? "",
    event_type: input.event_type,
    data: encodeData(input.data),
    idempotency_key: input.idempotency_key ?? "",
    headers: input.headers ?? {},
  };
}

/**
 * @param {T.ClientOptions["tls"]} tls
 * @returns {grpc.ChannelCredentials}
 */
function channelCredentials(tls) {
  if (!tls) return grpc.credentials.createInsecure();
  if (tls === true) return grpc.credentials.createSsl();
  return grpc.credentials.createSsl(tls.rootCerts ?? null, tls.privateKey ?? null, tls.certChain ?? null);
}

// --- the watch stream -----------------------------------------------------------------------

/**
 * The changes of a WatchDeliveries stream as an async iterator; `cancel()` (or `break` out of
 * `for await`) ends it. Server errors are thrown from the iteration as ConvoydErrors.
 */
export class DeliveryWatch {
  /** @type {grpc.ClientReadableStream<any>} */
  #call;
  #cancelled = false;
  /** @type {AsyncGenerator<any, void, undefined>} */
  #changes;

  /**
   * @param {grpc.ClientReadableStream<any>} call
   * @param {AbortSignal} [signal]
   */
  constructor(call, signal) {
    this.#call = call;
    // Without a listener, an error before anyone iterates (e.g. cancel() straight away) would be
    // an unhandled 'error' event; the iterator below still sees every error.
    call.on("error", () => {});
    this.#changes = this.#iterate();
    if (signal) {
      if (signal.aborted) this.cancel();
      else signal.addEventListener("abort", () => this.cancel(), { once: true });
    }
  }

  async *#iterate() {
    try {
      for await (const change of this.#call) yield change;
    } catch (err) {
      if (this.#cancelled && /** @type {any} */ (err)?.code === grpc.status.CANCELLED) return;
      throw toConvoydError(err);
    } finally {
      this.cancel();
    }
  }

  /** Ends the stream; a pending or later `next()` resolves as done. */
  cancel() {
    if (!this.#cancelled) {
      this.#cancelled = true;
      this.#call.cancel();
    }
  }

  next() {
    return this.#changes.next();
  }

  /** @param {any} [value] */
  return(value) {
    this.cancel(); // unblocks a pending next(), which return() would otherwise queue behind
    return this.#changes.return(value);
  }

  /** @param {any} [err] */
  throw(err) {
    this.cancel();
    return this.#changes.throw(err);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

// --- the client -----------------------------------------------------------------------------

/** One channel to convoyd. Call `close()` when done. */
export class ConvoydClient {
  /** @param {T.ClientOptions} [options] */
  constructor(options = {}) {
    this.target = resolveTarget(options.target);
    this.token = resolveToken(options.token, options.dataDir);
    /** Deadline of each unary call in milliseconds; 0 or null for none. */
    this.timeout = options.timeout === undefined ? 30_000 : options.timeout;
    const pkg = loadPackage(options.protoDir ?? DEFAULT_PROTO_DIR);
    const credentials = options.credentials ?? channelCredentials(options.tls);
    const channelOptions = { "grpc.primary_user_agent": "convoyd-node-client", ...options.channelOptions };
    this.channel = new grpc.Channel(this.target, credentials, channelOptions);
    // One channel (one HTTP/2 connection) shared by the service stubs.
    const stub = (/** @type {any} */ Service) =>
      new Service(this.target, credentials, { channelOverride: this.channel });
    this.endpoints = stub(pkg.EndpointService);
    this.events = stub(pkg.EventService);
    this.deliveries = stub(pkg.DeliveryService);
    this.portal = stub(pkg.PortalService);
    this.cluster = stub(pkg.ClusterService);
  }

  /** Closes the channel; calls in flight are cancelled. */
  close() {
    this.channel.close(); // the stubs' close() would close this same channel
  }

  /** The metadata of one call: the bearer token, when there is one. */
  metadata() {
    const md = new grpc.Metadata();
    if (this.token) md.set("authorization", `Bearer ${this.token}`);
    return md;
  }

  /**
   * @param {any} stub
   * @param {string} method
   * @param {object} request
   * @returns {Promise<any>}
   */
  #unary(stub, method, request) {
    /** @type {grpc.CallOptions} */
    const callOptions = this.timeout ? { deadline: Date.now() + this.timeout } : {};
    return new Promise((resolve, reject) => {
      stub[method](request, this.metadata(), callOptions, (/** @type {any} */ err, /** @type {any} */ res) =>
        err ? reject(toConvoydError(err)) : resolve(res),
      );
    });
  }

  /**
   * @param {(pageToken: string) => Promise<any>} fetch
   * @param {string} field
   */
  async *#pages(fetch, field) {
    let token = "";
    do {
      const page = await fetch(token);
      yield* page[field];
      token = page.next_page_token;
    } while (token);
  }

  // Endpoints

  /**
   * Creates an endpoint; the answer holds the signing secret's value in `secrets[0].value`.
   *
   * @param {T.EndpointInput} endpoint
   * @param {{ secret?: string }} [options] a secret of your own instead of a generated one
   * @returns {Promise<T.Endpoint>}
   */
  createEndpoint(endpoint, { secret = "" } = {}) {
    return this.#unary(this.endpoints, "CreateEndpoint", { endpoint, secret });
  }

  /**
   * @param {string} endpointId
   * @returns {Promise<T.Endpoint>}
   */
  getEndpoint(endpointId) {
    return this.#unary(this.endpoints, "GetEndpoint", { endpoint_id: endpointId });
  }

  /**
   * @param {T.ListEndpointsFilter} [filter]
   * @returns {Promise<T.ListEndpointsResponse>}
   */
  listEndpoints(filter = {}) {
    return this.#unary(this.endpoints, "ListEndpoints", filter);
  }

  /**
   * Every matching endpoint, fetching pages as needed.
   *
   * @param {T.ListEndpointsFilter} [filter]
   * @returns {AsyncGenerator<T.Endpoint, void>}
   */
  iterEndpoints(filter = {}) {
    return this.#pages((page_token) => this.listEndpoints({ ...filter, page_token }), "endpoints");
  }

  /**
   * Replaces the fields of `endpoint` (its `id` set) named in `updateMask`.
   *
   * @param {T.EndpointInput & { id: string }} endpoint
   * @param {readonly string[]} updateMask field paths, e.g. ["name", "http_timeout"]
   * @returns {Promise<T.Endpoint>}
   */
  updateEndpoint(endpoint, updateMask) {
    return this.#unary(this.endpoints, "UpdateEndpoint", { endpoint, update_mask: { paths: [...updateMask] } });
  }

  /**
   * @param {string} endpointId
   * @returns {Promise<void>}
   */
  async deleteEndpoint(endpointId) {
    await this.#unary(this.endpoints, "DeleteEndpoint", { endpoint_id: endpointId });
  }

  /**
   * @param {string} endpointId
   * @param {{ reason?: string }} [options]
   * @returns {Promise<T.Endpoint>}
   */
  pauseEndpoint(endpointId, { reason = "" } = {}) {
    return this.#unary(this.endpoints, "PauseEndpoint", { endpoint_id: endpointId, reason });
  }

  /**
   * @param {string} endpointId
   * @returns {Promise<T.Endpoint>}
   */
  resumeEndpoint(endpointId) {
    return this.#unary(this.endpoints, "ResumeEndpoint", { endpoint_id: endpointId });
  }

  /**
   * @param {string} endpointId
   * @param {{ reason?: string }} [options]
   * @returns {Promise<T.Endpoint>}
   */
  activateEndpoint(endpointId, { reason = "" } = {}) {
    return this.#unary(this.endpoints, "ActivateEndpoint", { endpoint_id: endpointId, reason });
  }

  /**
   * Adds a secret; old ones keep signing for `old_secret_lifetime` (seconds or a Duration).
   *
   * @param {string} endpointId
   * @param {{ secret?: string, old_secret_lifetime?: number | T.DurationInput }} [options]
   * @returns {Promise<T.RotateEndpointSecretResponse>}
   */
  rotateEndpointSecret(endpointId, { secret = "", old_secret_lifetime } = {}) {
    return this.#unary(this.endpoints, "RotateEndpointSecret", {
      endpoint_id: endpointId,
      secret,
      old_secret_lifetime: dur(old_secret_lifetime),
    });
  }

  /**
   * @param {string} endpointId
   * @returns {Promise<T.GetEndpointSecretResponse>}
   */
  getEndpointSecret(endpointId) {
    return this.#unary(this.endpoints, "GetEndpointSecret", { endpoint_id: endpointId });
  }

  // Events

  /**
   * Accepts one event; resolves once it and its deliveries are durable.
   *
   * @param {T.CreateEventInput} input
   * @returns {Promise<T.Event>}
   */
  createEvent(input) {
    return this.#unary(this.events, "CreateEvent", eventRequest(input));
  }

  /**
   * Accepts all the events or none.
   *
   * @param {T.CreateEventInput[]} inputs
   * @returns {Promise<T.BatchCreateEventsResponse>}
   */
  batchCreateEvents(inputs) {
    return this.#unary(this.events, "BatchCreateEvents", { requests: inputs.map(eventRequest) });
  }

  /**
   * @param {string} eventId
   * @returns {Promise<T.Event>}
   */
  getEvent(eventId) {
    return this.#unary(this.events, "GetEvent", { event_id: eventId });
  }

  /**
   * @param {T.ListEventsFilter} [filter]
   * @returns {Promise<T.ListEventsResponse>}
   */
  listEvents(filter = {}) {
    return this.#unary(this.events, "ListEvents", {
      ...filter,
      created_after: ts(filter.created_after),
      created_before: ts(filter.created_before),
    });
  }

  /**
   * @param {T.ListEventsFilter} [filter]
   * @returns {AsyncGenerator<T.Event, void>}
   */
  iterEvents(filter = {}) {
    return this.#pages((page_token) => this.listEvents({ ...filter, page_token }), "events");
  }

  // Deliveries

  /**
   * @param {string} deliveryId
   * @returns {Promise<T.Delivery>}
   */
  getDelivery(deliveryId) {
    return this.#unary(this.deliveries, "GetDelivery", { delivery_id: deliveryId });
  }

  /**
   * @param {T.ListDeliveriesFilter} [filter]
   * @returns {Promise<T.ListDeliveriesResponse>}
   */
  listDeliveries(filter = {}) {
    return this.#unary(this.deliveries, "ListDeliveries", {
      ...filter,
      created_after: ts(filter.created_after),
      created_before: ts(filter.created_before),
    });
  }

  /**
   * @param {T.ListDeliveriesFilter} [filter]
   * @returns {AsyncGenerator<T.Delivery, void>}
   */
  iterDeliveries(filter = {}) {
    return this.#pages((page_token) => this.listDeliveries({ ...filter, page_token }), "deliveries");
  }

  /**
   * @param {string} deliveryId
   * @param {{ page_size?: number, page_token?: string }} [options]
   * @returns {Promise<T.ListDeliveryAttemptsResponse>}
   */
  listDeliveryAttempts(deliveryId, { page_size = 0, page_token = "" } = {}) {
    return this.#unary(this.deliveries, "ListDeliveryAttempts", { delivery_id: deliveryId, page_size, page_token });
  }

  /**
   * @param {string} deliveryId
   * @param {{ page_size?: number }} [options]
   * @returns {AsyncGenerator<T.DeliveryAttempt, void>}
   */
  iterDeliveryAttempts(deliveryId, { page_size = 0 } = {}) {
    return this.#pages((page_token) => this.listDeliveryAttempts(deliveryId, { page_size, page_token }), "attempts");
  }

  /**
   * One more attempt for a FAILURE or DISCARDED delivery.
   *
   * @param {string} deliveryId
   * @returns {Promise<T.Delivery>}
   */
  retryDelivery(deliveryId) {
    return this.#unary(this.deliveries, "RetryDelivery", { delivery_id: deliveryId });
  }

  /**
   * Counts the matches (`dry_run` only counts), then re-queues them in the background.
   *
   * @param {T.BatchRetryDeliveriesFilter} [filter]
   * @returns {Promise<T.BatchRetryDeliveriesResponse>}
   */
  batchRetryDeliveries(filter = {}) {
    return this.#unary(this.deliveries, "BatchRetryDeliveries", {
      ...filter,
      created_after: ts(filter.created_after),
      created_before: ts(filter.created_before),
    });
  }

  /**
   * One more attempt for a delivery that already succeeded.
   *
   * @param {string} deliveryId
   * @returns {Promise<T.Delivery>}
   */
  forceResendDelivery(deliveryId) {
    return this.#unary(this.deliveries, "ForceResendDelivery", { delivery_id: deliveryId });
  }

  /**
   * Delivery and endpoint status changes as they happen, until cancelled. The stream has no
   * deadline; pass `signal` to tie it to an AbortController.
   *
   * @param {T.WatchDeliveriesFilter} [filter]
   * @param {{ signal?: AbortSignal }} [options]
   * @returns {DeliveryWatch}
   */
  watchDeliveries(filter = {}, { signal } = {}) {
    const call = this.deliveries.WatchDeliveries(filter, this.metadata());
    return new DeliveryWatch(call, signal);
  }

  // Portal links

  /**
   * Mints a link; its `url` (which holds the token) is shown only in this answer.
   *
   * @param {T.CreatePortalLinkInput} [input]
   * @returns {Promise<T.PortalLink>}
   */
  createPortalLink(input = {}) {
    return this.#unary(this.portal, "CreatePortalLink", { ...input, lifetime: dur(input.lifetime) });
  }

  /**
   * @param {string} portalLinkId
   * @returns {Promise<T.PortalLink>}
   */
  getPortalLink(portalLinkId) {
    return this.#unary(this.portal, "GetPortalLink", { portal_link_id: portalLinkId });
  }

  /**
   * @param {T.ListPortalLinksFilter} [filter]
   * @returns {Promise<T.ListPortalLinksResponse>}
   */
  listPortalLinks(filter = {}) {
    return this.#unary(this.portal, "ListPortalLinks", filter);
  }

  /**
   * @param {string} portalLinkId
   * @returns {Promise<T.PortalLink>}
   */
  revokePortalLink(portalLinkId) {
    return this.#unary(this.portal, "RevokePortalLink", { portal_link_id: portalLinkId });
  }

  // Cluster

  /**
   * Every registered node (alive ones first, then by node id) and how many shards there are.
   *
   * @returns {Promise<T.ListNodesResponse>}
   */
  listNodes() {
    return this.#unary(this.cluster, "ListNodes", {});
  }
}
