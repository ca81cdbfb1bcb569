// The installable package web/ (jobwire-client): the generated CommonJS build is current and
// works through the "require" condition, the ES module through "import", and the declarations
// type-check (tsc, strict, skipLibCheck false) without the DOM lib (React Native) and with it.
// tests/web/package.json links the package (file:../../web), so the tests resolve it by name,
// through its "exports", as an application would.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const TESTS = join(HERE, "..");
const WEB = join(TESTS, "..", "..", "web");
const TSC = join(TESTS, "node_modules", "typescript", "bin", "tsc");

test("package.json: name, version, licence, exports with import/require and types, files present", () => {
  const pkg = JSON.parse(readFileSync(join(WEB, "package.json"), "utf8"));
  assert.equal(pkg.name, "jobwire-client");
  assert.equal(pkg.version, "0.1.0");
  assert.equal(pkg.license, "MIT");
  assert.equal(pkg.type, "module");
  const root = pkg.exports["."];
  assert.deepEqual(root.import, { types: "./jobwire.d.ts", default: "./jobwire.js" });
  assert.deepEqual(root.require, { types: "./jobwire.d.cts", default: "./jobwire.cjs" });
  assert.equal(pkg.types, "./jobwire.d.ts");
  assert.deepEqual(pkg.dependencies ?? {}, {}, "the library has no dependencies");
  for (const f of pkg.files) assert.ok(existsSync(join(WEB, f)), `${f} is in the package`);
});

test("jobwire.cjs and jobwire.d.cts are generated from the current jobwire.js and jobwire.d.ts", async () => {
  const { toCommonJs } = await import(join(WEB, "tools", "build-cjs.mjs"));
  await run(process.execPath, [join(WEB, "tools", "build-cjs.mjs"), "--check"]).catch((err) => {
    assert.fail(`out of date: ${err.stderr}`);
  });
  // The converter refuses what it cannot convert instead of producing a broken build.
  assert.throws(() => toCommonJs('export { a };\nexport default a;\n'), /cannot convert/);
  assert.throws(() => toCommonJs('import x from "y";\nexport const a = 1;\nexport default a;\n'), /cannot convert/);
  assert.match(toCommonJs("export const a = 1;\nexport default a;\n"), /exports\.a = a;\nexports\.default = a;/);
});

test("require('jobwire-client') loads the CommonJS build; import() the ES module; same API", async () => {
  const require = createRequire(join(TESTS, "package.json"));
  assert.equal(require.resolve("jobwire-client"), join(WEB, "jobwire.cjs"));
  const cjs = require("jobwire-client");
  const esm = await import("jobwire-client");
  assert.deepEqual(Object.keys(cjs).filter((k) => k !== "__esModule").sort(), Object.keys(esm).sort());
  assert.equal(cjs.default, cjs.JobwireClient);
  assert.equal(cjs.compareEventIds("0a0b0c0d-2", "0a0b0c0d-10"), -1);
});

test("a CommonJS program uses the client end to end (fake socket)", async () => {
  // A separate process, as a CommonJS application: require only, no ESM loader involved.
  const program = `
    "use strict";
    const { JobwireClient } = require("jobwire-client");
    const sent = [];
    class WS {
      constructor(url) { this.url = url; WS.last = this; }
      send(d) { sent.push(JSON.parse(d)); }
      close() {}
    }
    const c = new JobwireClient({ url: "ws://x/ws", WebSocket: WS, devUser: "alice", pingIntervalMs: 0 });
    c.connect();
    c.subscribe({ scope: "user" });
    setTimeout(() => {
      WS.last.onopen({});
      const rx = (m) => WS.last.onmessage({ data: JSON.stringify(m) });
      rx({ type: "welcome", protocol: 1, connectionId: "c1", userId: "alice", admin: false, epoch: "0a0b0c0d" });
      rx({ type: "ack", id: sent[0].id, op: "subscribe", scope: "user", snapshots: 0 });
      rx({ type: "event", kind: "progress", jobId: "j1", userId: "alice", channel: "ai:job:progress:j1",
           payload: { status: "processing", progress: 42 }, eventId: "0a0b0c0d-7", seq: 1 });
      const j = c.jobs.get("j1");
      console.log(JSON.stringify({ url: WS.last.url, sub: sent[0].scope, progress: j.progress,
                                   last: c.lastEventId, state: c.state, synced: c.synced }));
      c.close();
    }, 5);
  `;
  const { stdout } = await run(process.execPath, ["-e", program], { cwd: TESTS });
  assert.deepEqual(JSON.parse(stdout), { url: "ws://x/ws?user=alice", sub: "user", progress: 42,
    last: "0a0b0c0d-7", state: "live", synced: true });
});

/** Runs tsc on one project; returns the files it checked. Fails the test with tsc's output. */
async function tsc(project) {
  try {
    const { stdout } = await run(process.execPath, [TSC, "-p", join(TESTS, "types", project), "--listFilesOnly"], { cwd: TESTS });
    await run(process.execPath, [TSC, "-p", join(TESTS, "types", project)], { cwd: TESTS });
    return stdout.split("\n").filter(Boolean);
  } catch (err) {
    assert.fail(`tsc -p ${project} failed:\n${err.stdout}${err.stderr}`);
  }
}

test("tsc: declarations, ESM/CJS consumers and the React example compile without the DOM lib", async () => {
  const files = await tsc("tsconfig.nodom.json");
  for (const f of ["web/jobwire.d.ts", "web/jobwire.d.cts", "types/consumer.mts", "types/consumer.cts",
                   "web/examples/useJobwire.tsx"]) {
    assert.ok(files.some((p) => p.endsWith(f)), `${f} was checked`);
  }
  assert.ok(!files.some((p) => p.endsWith("lib.dom.d.ts")), "no DOM lib");
});

test("tsc: the same with the DOM lib, and the browser's WebSocket class fits the option", async () => {
  const files = await tsc("tsconfig.dom.json");
  assert.ok(files.some((p) => p.endsWith("lib.dom.d.ts")));
  assert.ok(files.some((p) => p.endsWith("types/consumer-dom.mts")));
});
