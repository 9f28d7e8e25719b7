// Vitest global setup that brings the Unicity stack up with the unicity-infra CLI.
//
//   E2E_LOCAL_AGGREGATOR=1   relay, aggregator and faucet, all local
//   E2E_LOCAL_INFRA=1        relay and faucet; the aggregator stays public
//   E2E_LOCAL_INFRA_NO_FAUCET=1   with E2E_LOCAL_INFRA: the relay only
//   E2E_LOCAL_INFRA_WIPE=1   start from empty volumes and remove them at teardown
//
// When a parent process already exported the stack's variables and the relay
// responds, the stack is reused and left running at teardown. Plain ESM with
// Node's standard library only; wire it with `globalSetup` in vitest's config.

import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

const CLI = process.env.UNICITY_INFRA_CLI || "unicity-infra";
const STACK = process.env.UNICITY_INFRA_STACK || "e2e";
const CLI_TIMEOUT_MS = Number(process.env.E2E_LOCAL_INFRA_TIMEOUT_MS || 15 * 60 * 1000);

let started = null;

function wanted(env) {
  if (env.E2E_LOCAL_AGGREGATOR === "1") return ["relay", "aggregator", "faucet"];
  if (env.E2E_LOCAL_INFRA === "1") return env.E2E_LOCAL_INFRA_NO_FAUCET === "1" ? ["relay"] : ["relay", "faucet"];
  return [];
}

// The variables whose presence means a parent process owns the stack.
function ownedByParent(env, services) {
  const needed = { relay: "SPHERE_NOSTR_RELAYS", faucet: "E2E_LOCAL_FAUCET_PUBKEY", aggregator: "SPHERE_AGGREGATOR_URL" };
  return services.every((service) => Boolean(env[needed[service]]));
}

async function cli(args) {
  try {
    return await run(CLI, ["--stack", STACK, ...args], { timeout: CLI_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const detail = (error.stderr || error.message || "").trim();
    const wrapped = new Error(`unicity-infra ${args.join(" ")} failed (exit ${error.code}):\n${detail}`);
    wrapped.exitCode = error.code;
    throw wrapped;
  }
}

// Checks that a relay URL inherited from a parent really responds; stale variables
// from a stopped stack would otherwise send every test to nothing.
async function assertRelayAnswers(relayUrl) {
  const httpUrl = relayUrl.replace(/^ws/, "http");
  try {
    const response = await fetch(httpUrl, { headers: { Accept: "application/nostr+json" }, signal: AbortSignal.timeout(5000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  } catch (error) {
    throw new Error(`SPHERE_NOSTR_RELAYS=${relayUrl} is set but the relay does not respond (${error.message}); ` +
      "unset the variables or start the stack again");
  }
}

export async function setup() {
  const services = wanted(process.env);
  if (services.length === 0) return;

  if (ownedByParent(process.env, services)) {
    await assertRelayAnswers(process.env.SPHERE_NOSTR_RELAYS);
    return;
  }

  const wipe = process.env.E2E_LOCAL_INFRA_WIPE === "1";
  const extra = (process.env.E2E_UNICITY_INFRA_UP_ARGS || "").split(/\s+/).filter(Boolean);
  started = { services, wipe };
  try {
    if (wipe) await cli(["down", "--wipe", "--yes"]);
    await cli(["up", ...services, "--json", ...extra]);
    const { stdout } = await cli(["env", "--format", "json"]);
    Object.assign(process.env, JSON.parse(stdout));
  } catch (error) {
    // Leave nothing running that this setup started; report the CLI's message,
    // which names the failed service and shows its last log lines.
    started = null;
    await cli(["down", ...(wipe ? ["--wipe", "--yes"] : [])]).catch(() => {});
    throw error;
  }
}

export async function teardown() {
  if (!started) return;
  const { wipe } = started;
  started = null;
  await cli(["down", ...(wipe ? ["--wipe", "--yes"] : [])]);
}
