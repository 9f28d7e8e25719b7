// node --test for global-setup.mjs against the real unicity-infra CLI and Docker.
// Most tests start only the relay (E2E_LOCAL_INFRA_NO_FAUCET=1), on a free loopback port,
// in a stack of its own that is removed at the end. One starts the whole stack.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { promisify } from "node:util";

const run = promisify(execFile);
const STACK = `node-${process.pid}`;
process.env.UNICITY_INFRA_STACK = STACK;
const CLI = process.env.UNICITY_INFRA_CLI || "unicity-infra";
const { setup, teardown } = await import("./global-setup.mjs");

const HARNESS_KEYS = ["E2E_LOCAL_INFRA", "E2E_LOCAL_INFRA_NO_FAUCET", "E2E_LOCAL_INFRA_WIPE", "E2E_LOCAL_AGGREGATOR",
  "E2E_UNICITY_INFRA_UP_ARGS", "SPHERE_NOSTR_RELAYS", "UNICITY_NOSTR_RELAYS", "E2E_LOCAL_FAUCET_PUBKEY"];

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function resetEnv(overrides) {
  for (const key of HARNESS_KEYS) delete process.env[key];
  Object.assign(process.env, overrides);
}

async function cli(...args) {
  const { stdout } = await run(CLI, ["--stack", STACK, ...args], { timeout: 600000 });
  return stdout;
}

async function containers() {
  return JSON.parse(await cli("status", "--json")).containers;
}

async function volumes() {
  const { stdout } = await run("docker", ["volume", "ls", "-q", "--filter", `label=org.unicity.infra.stack=${STACK}`]);
  return stdout.split("\n").filter(Boolean);
}

async function relayAnswers(url) {
  try {
    const response = await fetch(url.replace(/^ws/, "http"), {
      headers: { Accept: "application/nostr+json" }, signal: AbortSignal.timeout(3000),
    });
    return response.ok;
  } catch {
    return false;
  }
}

after(async () => {
  resetEnv({});
  await cli("down", "--wipe", "--wipe-certificates").catch(() => {});
});

test("setup boots the relay, exports its variables, teardown stops it", async () => {
  const port = await freePort();
  resetEnv({ E2E_LOCAL_INFRA: "1", E2E_LOCAL_INFRA_NO_FAUCET: "1", E2E_UNICITY_INFRA_UP_ARGS: `--relay-port ${port}` });

  await setup();

  assert.equal(process.env.SPHERE_NOSTR_RELAYS, `ws://127.0.0.1:${port}`);
  assert.ok(await relayAnswers(process.env.SPHERE_NOSTR_RELAYS));
  await teardown();
  assert.deepEqual(await containers(), []);
  assert.equal(await relayAnswers(`ws://127.0.0.1:${port}`), false);
});

test("setup reuses a stack a parent booted and teardown leaves it running", async () => {
  const port = await freePort();
  await cli("up", "relay", "--relay-port", String(port));
  resetEnv({ E2E_LOCAL_INFRA: "1", E2E_LOCAL_INFRA_NO_FAUCET: "1", SPHERE_NOSTR_RELAYS: `ws://127.0.0.1:${port}` });

  await setup();
  await teardown();

  const running = await containers();
  assert.equal(running.length, 1);
  assert.equal(running[0].state, "running");
  await cli("down");
});

test("setup rejects stale variables whose relay does not answer", async () => {
  resetEnv({ E2E_LOCAL_INFRA: "1", E2E_LOCAL_INFRA_NO_FAUCET: "1", SPHERE_NOSTR_RELAYS: "ws://127.0.0.1:1" });

  await assert.rejects(setup(), /SPHERE_NOSTR_RELAYS=ws:\/\/127\.0\.0\.1:1 is set but the relay does not respond/);
});

test("a failing setup names the service, shows its logs and leaves nothing running", async () => {
  const port = await freePort();
  resetEnv({ E2E_LOCAL_INFRA: "1", E2E_LOCAL_INFRA_NO_FAUCET: "1",
    // Docker's first health check comes one interval (2 s) after the start, so 1.5 s always
    // times out, and by then the supervisor has usually logged its start.
    E2E_UNICITY_INFRA_UP_ARGS: `--relay-port ${port} --timeout 1.5` });

  await assert.rejects(setup(), (error) => {
    assert.match(error.message, /service relay/);
    assert.match(error.message, new RegExp(`unicity-${STACK}-relay`));
    assert.match(error.message, /log lines follow|has written no log lines yet/);
    return true;
  });
  assert.deepEqual(await containers(), []);
  await teardown();
});

test("wipe starts empty and removes the volumes at teardown", async () => {
  const port = await freePort();
  resetEnv({ E2E_LOCAL_INFRA: "1", E2E_LOCAL_INFRA_NO_FAUCET: "1", E2E_LOCAL_INFRA_WIPE: "1",
    E2E_UNICITY_INFRA_UP_ARGS: `--relay-port ${port}` });

  await setup();
  assert.ok((await volumes()).some((name) => name.endsWith("-relay-data")));
  await teardown();

  assert.equal((await volumes()).some((name) => name.endsWith("-relay-data")), false);
});

// Needs images for the aggregator's components. The Python runner passes the test stand-ins in
// UNICITY_INFRA_IMAGE_OVERRIDES.
test("wipe with the aggregator removes its genesis without a terminal to confirm on", {
  skip: !process.env.UNICITY_INFRA_IMAGE_OVERRIDES && "UNICITY_INFRA_IMAGE_OVERRIDES is not set",
}, async () => {
  const [relay, aggregator, faucet] = [await freePort(), await freePort(), await freePort()];
  resetEnv({ E2E_LOCAL_AGGREGATOR: "1", E2E_LOCAL_INFRA_WIPE: "1",
    E2E_UNICITY_INFRA_UP_ARGS: `--relay-port ${relay} --aggregator-port ${aggregator} --faucet-port ${faucet}` });

  await setup();
  assert.ok((await volumes()).some((name) => name.endsWith("-aggregator-genesis")));
  await teardown();

  assert.equal((await volumes()).some((name) => name.endsWith("-aggregator-genesis")), false);
  assert.deepEqual(await containers(), []);
});

test("nothing happens without E2E_LOCAL_INFRA or E2E_LOCAL_AGGREGATOR", async () => {
  resetEnv({});

  await setup();
  await teardown();

  assert.equal(process.env.SPHERE_NOSTR_RELAYS, undefined);
});
