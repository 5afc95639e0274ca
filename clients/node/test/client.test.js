// The client against the real daemon: `python -m convoyd.cli serve` on loopback port 0, a
// node:http webhook receiver on loopback port 0, and nothing else on the network.
//
// The Python interpreter is $CONVOYD_PYTHON (`make node-test` sets it), else the repository's
// .venv/bin/python.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { ConvoydClient, ConvoydError } from "../index.js";
import { InvalidSignatureError, verify } from "../webhooks.js";

const NODE_DIR = fileURLToPath(new URL("..", import.meta.url));
const REPO_DIR = path.resolve(NODE_DIR, "../..");
const PYTHON = process.env.CONVOYD_PYTHON || path.resolve(NODE_DIR, "../../.venv/bin/python");
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 20_000;
const DELIVERY_TIMEOUT_MS = 15_000;

/**
 * Rejects when `promise` takes longer than `ms`.
 *
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
async function within(promise, ms, what) {
  const ac = new AbortController();
  const timeout = sleep(ms, undefined, { signal: ac.signal }).then(() => {
    throw new Error(`timed out after ${ms} ms waiting for ${what}`);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    ac.abort();
    timeout.catch(() => {});
  }
}

/** The real `convoyd serve`, configured through CONVOYD_* variables only. */
class Daemon {
  constructor() {
    this.tmp = mkdtempSync(path.join(os.tmpdir(), "convoyd-node-"));
    this.dataDir = path.join(this.tmp, "data");
    this.logPath = path.join(this.tmp, "daemon.log");
    /** @type {import("node:child_process").ChildProcess | undefined} */
    this.proc = undefined;
  }

  log() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  async start() {
    assert.ok(existsSync(PYTHON), `no Python at ${PYTHON}: run \`make node-test\` or set CONVOYD_PYTHON`);
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CONVOYD_")));
    Object.assign(env, {
      CONVOYD_DATA_DIR: this.dataDir,
      CONVOYD_GRPC_LISTEN: "127.0.0.1:0",
      CONVOYD_HTTP_LISTEN: "127.0.0.1:0",
      CONVOYD_DELIVERY_ALLOW_CIDRS: "127.0.0.0/8",
    });
    const log = openSync(this.logPath, "w");
    this.proc = spawn(PYTHON, ["-m", "convoyd.cli", "serve"], { cwd: REPO_DIR, env, stdio: ["ignore", log, log] });
    /** @type {number | null} */
    let exitCode = null;
    this.proc.on("exit", (code, signal) => {
      exitCode = code ?? (signal ? -1 : 0);
    });
    // A daemon on port 0 reports the ports it got in <data_dir>/run.json once it serves.
    const runFile = path.join(this.dataDir, "run.json");
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!existsSync(runFile)) {
      if (exitCode !== null) throw new Error(`convoyd exited early (${exitCode}):\n${this.log()}`);
      if (Date.now() > deadline) throw new Error(`convoyd did not start within ${START_TIMEOUT_MS} ms:\n${this.log()}`);
      await sleep(25);
    }
    const run = JSON.parse(readFileSync(runFile, "utf8"));
    this.grpc = /** @type {string} */ (run.grpc);
    this.token = readFileSync(path.join(this.dataDir, "admin.token"), "utf8").trim();
  }

  async stop() {
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGTERM");
      try {
        await within(exited, STOP_TIMEOUT_MS, "convoyd to stop");
      } catch {
        proc.kill("SIGKILL");
        await exited;
      }
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

/** A webhook receiver on 127.0.0.1:0 that keeps every request and answers 204. */
class Receiver {
  constructor() {
    /** @type {{ headers: http.IncomingHttpHeaders, body: Buffer, url: string | undefined }[]} */
    this.requests = [];
    /** @type {(() => void)[]} */
    this.waiters = [];
    this.server = http.createServer((req, res) => {
      /** @type {Buffer[]} */
      const chunks = [];
      req.on("data", (chunk) => chunks.push(chunk));
      req.on("end", () => {
        this.requests.push({ headers: req.headers, body: Buffer.concat(chunks), url: req.url });
        res.writeHead(204).end();
        for (const wake of this.waiters.splice(0)) wake();
      });
    });
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", () => resolve(undefined)));
    const address = /** @type {import("node:net").AddressInfo} */ (this.server.address());
    this.url = `http://127.0.0.1:${address.port}/hooks`;
  }

  /** @param {number} count */
  async waitFor(count) {
    while (this.requests.length < count) {
      await within(new Promise((resolve) => this.waiters.push(() => resolve(undefined))), DELIVERY_TIMEOUT_MS, `request #${count}`);
    }
    return this.requests[count - 1];
  }

  close() {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve(undefined)));
  }
}

/**
 * @param {import("../index.js").DeliveryWatch} watch
 * @param {string} status
 */
async function nextWithStatus(watch, status) {
  for await (const change of watch) {
    if (change.change === "delivery" && change.delivery?.status === status) return change.delivery;
  }
  throw new Error(`the watch ended before a delivery reached ${status}`);
}

/**
 * @param {Promise<unknown>} promise
 * @param {string} code
 */
async function rejectsWith(promise, code) {
  /** @type {ConvoydError | undefined} */
  let caught;
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ConvoydError, `expected a ConvoydError, got ${err}`);
    assert.equal(err.code, code, err.message);
    caught = err;
    return true;
  });
  return /** @type {ConvoydError} */ (caught);
}

/**
 * A self-signed client certificate and its key, made with the openssl CLI in `dir`.
 *
 * @param {string} dir
 */
function clientCertificate(dir) {
  const [cert, key] = [path.join(dir, "client.crt"), path.join(dir, "client.key")];
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
      "-subj", "/CN=node-client", "-keyout", key, "-out", cert],
    { stdio: "ignore" },
  );
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
}

describe("ConvoydClient against `convoyd serve`", { timeout: 120_000 }, () => {
  const daemon = new Daemon();
  const receiver = new Receiver();
  /** @type {ConvoydClient} */
  let client;

  before(async () => {
    await receiver.start();
    await daemon.start();
    client = new ConvoydClient({ target: daemon.grpc, token: daemon.token, timeout: 10_000 });
  });

  after(async () => {
    client?.close();
    await receiver.close();
    await daemon.stop();
  });

  it("delivers a signed event, streams its status, and lists it", { timeout: 60_000 }, async () => {
    const endpoint = await client.createEndpoint({ url: receiver.url, owner_id: "node-test", name: "node" });
    assert.match(endpoint.id, /^ep_/);
    assert.equal(endpoint.status, "ENDPOINT_STATUS_ACTIVE");
    const secret = endpoint.secrets[0].value;
    assert.match(secret, /^whsec_/);

    const watch = client.watchDeliveries({ endpoint_id: endpoint.id });
    try {
      const success = nextWithStatus(watch, "DELIVERY_STATUS_SUCCESS");
      success.catch(() => {}); // awaited below; keeps an early failure from going unhandled
      // The server subscribes when it starts handling the call, which sends no reply first.
      await sleep(500);

      const data = { order: "o_1", total: 4200, note: "café ✓" };
      const event = await client.createEvent({ event_type: "order.created", data, endpoint_ids: [endpoint.id] });
      assert.match(event.id, /^ev_/);
      assert.equal(event.delivery_count, 1);
      assert.deepEqual(JSON.parse(event.data.toString("utf8")), data);

      const request = await receiver.waitFor(1);
      assert.deepEqual(request.body, Buffer.from(JSON.stringify(data), "utf8"));
      assert.equal(request.headers["content-type"], "application/json");
      verify(request.body, request.headers, secret, { ...endpoint.signature });
      verify(request.body, request.headers, ["whsec_" + Buffer.alloc(32, 1).toString("base64"), secret]);
      assert.throws(
        () => verify(Buffer.concat([request.body, Buffer.from(" ")]), request.headers, secret),
        InvalidSignatureError,
      );

      const delivered = await within(success, DELIVERY_TIMEOUT_MS, "DELIVERY_STATUS_SUCCESS on the watch");
      assert.equal(delivered.event_id, event.id);
      assert.equal(delivered.endpoint_id, endpoint.id);
      // Receivers deduplicate on webhook-id, which is the delivery id.
      assert.equal(request.headers["webhook-id"], delivered.id);

      const listed = await client.listDeliveries({ endpoint_id: endpoint.id });
      assert.deepEqual(
        listed.deliveries.map((d) => [d.id, d.status]),
        [[delivered.id, "DELIVERY_STATUS_SUCCESS"]],
      );
      const { attempts } = await client.listDeliveryAttempts(delivered.id);
      assert.equal(attempts.length, 1);
      assert.equal(attempts[0].response_status, 204);
      assert.equal(attempts[0].result, "ATTEMPT_RESULT_SUCCESS");
      assert.equal((await client.getDelivery(delivered.id)).status, "DELIVERY_STATUS_SUCCESS");
    } finally {
      watch.cancel();
    }
    // A cancelled watch ends quietly.
    assert.deepEqual(await watch.next(), { value: undefined, done: true });
  });

  it("signs with the old and the new secret after a rotation", { timeout: 60_000 }, async () => {
    const endpoint = await client.createEndpoint({ url: receiver.url, owner_id: "node-rotation" });
    const old = endpoint.secrets[0].value;
    const rotated = await client.rotateEndpointSecret(endpoint.id, { old_secret_lifetime: 3600 });
    const fresh = rotated.secret?.value ?? "";
    assert.match(fresh, /^whsec_/);
    assert.notEqual(fresh, old);
    const before = receiver.requests.length;
    await client.createEvent({ event_type: "order.paid", data: "{\"raw\":true}", endpoint_ids: [endpoint.id] });
    const request = await receiver.waitFor(before + 1);
    assert.equal(request.body.toString("utf8"), "{\"raw\":true}");
    verify(request.body, request.headers, fresh);
    verify(request.body, request.headers, old);
  });

  it("updates, pauses, resumes, lists and deletes endpoints", async () => {
    const endpoint = await client.createEndpoint({ url: "https://example.com/h", owner_id: "node-crud" });
    const updated = await client.updateEndpoint(
      { id: endpoint.id, name: "renamed", http_timeout: { seconds: 5 } },
      ["name", "http_timeout"],
    );
    assert.equal(updated.name, "renamed");
    assert.equal(updated.http_timeout?.seconds, "5");
    assert.equal((await client.pauseEndpoint(endpoint.id, { reason: "maintenance" })).status, "ENDPOINT_STATUS_PAUSED");
    await rejectsWith(client.pauseEndpoint(endpoint.id), "FAILED_PRECONDITION");
    assert.equal((await client.resumeEndpoint(endpoint.id)).status, "ENDPOINT_STATUS_ACTIVE");
    const { endpoints } = await client.listEndpoints({ owner_id: "node-crud" });
    assert.deepEqual(endpoints.map((e) => e.id), [endpoint.id]);
    await client.deleteEndpoint(endpoint.id);
    await rejectsWith(client.getEndpoint(endpoint.id), "NOT_FOUND");
  });

  it("sets each authentication method and TLS; write-only values read back masked", async () => {
    const password = "node-basic-" + "p".repeat(20);
    const clientSecret = "node-oauth2-" + "s".repeat(20);
    const { cert, key } = clientCertificate(daemon.tmp);
    const keyLine = key.split("\n")[1];
    const basic = await client.createEndpoint({
      url: receiver.url,
      owner_id: "node-auth",
      authentication: { basic: { username: "bob", password } },
    });
    assert.equal(basic.authentication?.method, "basic");
    assert.deepEqual(basic.authentication, { method: "basic", basic: { username: "bob", password: "********" } });
    // Read, modify, write back: the masked password keeps the stored one, as a delivery shows.
    const read = await client.getEndpoint(basic.id);
    await client.updateEndpoint({ ...read, name: "renamed" }, ["name", "authentication"]);
    const before = receiver.requests.length;
    await client.createEvent({ event_type: "auth.test", data: {}, endpoint_ids: [basic.id] });
    const request = await receiver.waitFor(before + 1);
    assert.equal(request.headers.authorization, "Basic " + Buffer.from(`bob:${password}`).toString("base64"));

    const mtls = await client.createEndpoint({
      url: "https://hooks.invalid/node",
      owner_id: "node-auth",
      authentication: {
        oauth2: {
          token_url: "https://auth.invalid/token",
          client_id: "node",
          client_secret: clientSecret,
          scopes: ["hooks:write", "read"],
          client_authentication: "CLIENT_AUTHENTICATION_BODY",
        },
      },
      tls: { client_certificate_pem: cert, client_key_pem: key },
    });
    const oauth2 = mtls.authentication?.method === "oauth2" ? mtls.authentication.oauth2 : undefined;
    assert.deepEqual(oauth2, {
      token_url: "https://auth.invalid/token",
      client_id: "node",
      client_secret: "********",
      scopes: ["hooks:write", "read"],
      audience: "",
      client_authentication: "CLIENT_AUTHENTICATION_BODY",
    });
    assert.equal(mtls.tls?.client_certificate_pem, cert);
    assert.equal(mtls.tls?.client_key_pem, "********");
    assert.equal(mtls.tls?.ca_pem, "");
    const notAfter = Number(mtls.tls?.client_certificate_not_after?.seconds);
    assert.ok(notAfter > Date.now() / 1000 + 86_400, `not after ${notAfter}`);
    // The masked secret goes only to the token URL and client id it was given for.
    const moved = await rejectsWith(
      client.updateEndpoint(
        { id: mtls.id, authentication: { oauth2: { ...oauth2, client_id: "other" } } },
        ["authentication"],
      ),
      "INVALID_ARGUMENT",
    );
    assert.ok(
      moved.fieldViolations.some((v) => v.field === "authentication.oauth2.client_secret"),
      JSON.stringify(moved.fieldViolations),
    );

    const { endpoints } = await client.listEndpoints({ owner_id: "node-auth" });
    const seen = JSON.stringify([basic, read, mtls, endpoints, await client.getEndpoint(mtls.id)]);
    for (const secret of [password, clientSecret, keyLine]) assert.ok(!seen.includes(secret));

    // An empty method and empty TLS settings remove both.
    const cleared = await client.updateEndpoint({ id: mtls.id, authentication: {}, tls: {} }, ["authentication", "tls"]);
    assert.equal(cleared.authentication, null);
    assert.equal(cleared.tls, null);
  });

  it("lists this daemon as the only node, with no shards", async () => {
    const { nodes, total_shards } = await client.listNodes();
    assert.equal(total_shards, 0);
    assert.equal(nodes.length, 1);
    const [node] = nodes;
    assert.equal(node.node_id, "local");
    assert.equal(node.grpc_address, daemon.grpc);
    assert.equal(node.shards, 0);
    assert.equal(node.alive, true);
    assert.ok(Number(node.heartbeat_at?.seconds) >= Number(node.started_at?.seconds));
    const wrong = new ConvoydClient({ target: daemon.grpc, token: "cvd_not-a-token" });
    try {
      await rejectsWith(wrong.listNodes(), "UNAUTHENTICATED");
    } finally {
      wrong.close();
    }
  });

  it("names the bad fields of an invalid request", async () => {
    const err = await rejectsWith(
      client.createEndpoint({ url: "ftp://example.com/h", owner_id: "node-test" }),
      "INVALID_ARGUMENT",
    );
    assert.ok(
      err.fieldViolations.some((v) => v.field === "url" && v.description.length > 0),
      JSON.stringify(err.fieldViolations),
    );
    assert.match(err.details, /url/);
  });

  it("is UNAUTHENTICATED without a token or with a wrong one, unary and streaming", async () => {
    const saved = process.env.CONVOYD_TOKEN;
    delete process.env.CONVOYD_TOKEN;
    // An empty data dir: no admin.token to fall back on.
    const anonymous = new ConvoydClient({ target: daemon.grpc, dataDir: path.join(daemon.tmp, "empty") });
    const wrong = new ConvoydClient({ target: daemon.grpc, token: "cvd_not-a-token" });
    try {
      assert.equal(anonymous.token, undefined);
      await rejectsWith(anonymous.listEndpoints(), "UNAUTHENTICATED");
      await rejectsWith(wrong.listEndpoints(), "UNAUTHENTICATED");
      const watch = anonymous.watchDeliveries({});
      await rejectsWith(within(watch.next(), 10_000, "the watch to fail"), "UNAUTHENTICATED");
    } finally {
      anonymous.close();
      wrong.close();
      if (saved !== undefined) process.env.CONVOYD_TOKEN = saved;
    }
  });
});
