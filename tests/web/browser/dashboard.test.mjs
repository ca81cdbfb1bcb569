// Browser tests of the dashboard (web/) served by the real jobwire, in Debian's chromium.
// Each test starts its own redis-server and jobwire (dev_auth) on free ports and is bounded by
// a 30 s timeout; waits are conditions on the page (waitForSelector), never bare sleeps.
// Screenshots: tests/artifacts/web/*.png. Run: node --test tests/web/browser/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  launchBrowser, screenshot, row, newSecret, signJwt, withStack as withStackIn, ready, followed, WAIT,
} from "./harness.mjs";

const TEST_MS = 30_000;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});
const withStack = (name, body, overrides) => withStackIn(browser, name, body, overrides);

test("(a) the page shows a job's progress live until it reaches 100% and completes", { timeout: TEST_MS }, async () => {
  await withStack("a-progress", async ({ redis, open }) => {
    const page = await open("user=alice");
    await ready(page);
    assert.equal(await page.textContent("#link"), "live");

    await redis.jobUpdate("job_a1", "alice", { status: "processing", progress: 40, message: "generating itinerary" });
    await page.waitForSelector(row("job_a1", { status: "processing", progress: 40 }), WAIT);
    assert.equal(await page.textContent(`${row("job_a1")} .msg`), "generating itinerary");
    assert.equal(await page.textContent(`${row("job_a1")} .pct`), "40%");

    await redis.runJob("job_a1", "alice", [50, 60, 70, 80, 90, 100]);
    await page.waitForSelector(row("job_a1", { status: "completed", progress: 100 }), WAIT);
    assert.equal(await page.textContent(`${row("job_a1")} .pct`), "100%");
    const width = await page.$eval(`${row("job_a1")} .meter > span`, (el) => el.style.width);
    assert.equal(width, "100%");
    assert.equal(await page.textContent('.count[data-kind="completed"] b'), "1");

    // A failing job shows its error.
    await redis.jobUpdate("job_a2", "alice", { status: "processing", progress: 20 });
    await redis.jobUpdate("job_a2", "alice", { status: "failed", progress: 20, kind: "error", error: "model timeout" });
    await page.waitForSelector(row("job_a2", { status: "failed" }), WAIT);
    assert.equal(await page.textContent(`${row("job_a2")} .msg`), "model timeout");
    await screenshot(page, "a-progress-alice");
  });
});

test("(b) a second user's page never shows the first user's job; the admin view shows both", { timeout: TEST_MS }, async () => {
  await withStack("b-isolation", async ({ redis, open }) => {
    const alice = await open("user=alice");
    const bob = await open("user=bob");
    const ops = await open("user=ops&admin=1");
    await Promise.all([ready(alice), ready(bob), ready(ops, "all")]);

    // Alice's job runs from start to finish, then bob's marker job starts. Events reach a
    // connection in publish order, so once bob's page shows the marker, anything of alice's
    // that could have leaked to it would already be on it.
    await redis.runJob("job_alice_secret", "alice");
    await redis.jobUpdate("job_bob_marker", "bob", { status: "processing", progress: 50 });

    await bob.waitForSelector(row("job_bob_marker", { progress: 50 }), WAIT);
    await alice.waitForSelector(row("job_alice_secret", { status: "completed", progress: 100 }), WAIT);
    await ops.waitForSelector(row("job_bob_marker"), WAIT);
    await ops.waitForSelector(row("job_alice_secret", { status: "completed" }), WAIT);

    assert.equal(await bob.locator(row("job_alice_secret")).count(), 0, "bob sees alice's job");
    assert.ok(!(await bob.textContent("body")).includes("job_alice_secret"));
    assert.equal(await alice.locator(row("job_bob_marker")).count(), 0, "alice sees bob's job");
    // The admin view names each job's user.
    assert.equal(await ops.textContent(`${row("job_alice_secret")} .user`), "alice");
    assert.equal(await ops.textContent(`${row("job_bob_marker")} .user`), "bob");
    assert.ok(await ops.isVisible(`${row("job_bob_marker")} .user`), "the user column shows for admins");

    // Watching alice's job id by hand from bob's page is refused, and still shows nothing.
    await bob.fill("#watch-id", "job_alice_secret");
    await bob.click('#watch button[type="submit"]');
    await bob.waitForSelector('#notice[data-level="error"]', WAIT);
    assert.equal(await bob.locator(row("job_alice_secret", { status: "completed" })).count(), 0);

    await screenshot(bob, "b-isolation-bob");
    await screenshot(alice, "b-isolation-alice");
    await screenshot(ops, "b-isolation-admin");
  });
});

test("(c) jobwire restarts: the page reconnects by itself and shows the state it missed", { timeout: TEST_MS }, async () => {
  await withStack("c-restart", async ({ redis, jobwire, open }) => {
    const page = await open("user=alice");
    await ready(page);
    await redis.jobUpdate("job_c1", "alice", { status: "processing", progress: 30, message: "searching places" });
    await page.waitForSelector(row("job_c1", { status: "processing", progress: 30 }), WAIT);

    // jobwire goes away; the page notices and starts backing off.
    await jobwire.kill();
    await page.waitForSelector('#link[data-state="reconnecting"], #link[data-state="connecting"]', WAIT);
    await page.waitForFunction(() => /reconnecting|connecting/.test(document.querySelector("#link").textContent), null, WAIT);
    // What the page shows can no longer be confirmed: the row says so.
    await page.waitForSelector(row("job_c1", { stale: "true" }), WAIT);
    await screenshot(page, "c-restart-down");

    // Meanwhile the job finishes: its state is in Redis, but its event reaches nobody.
    await redis.jobUpdate("job_c1", "alice", { status: "completed", progress: 100, kind: "complete", message: "done" });

    // Same port, same config: the page comes back on its own and the snapshot of the
    // resubscribed job shows what it missed.
    await jobwire.start();
    await page.waitForSelector('#link[data-state="live"]', { timeout: 15_000 });
    await page.waitForSelector(row("job_c1", { status: "completed", progress: 100, stale: "false" }), WAIT);
    assert.equal(await page.textContent(`${row("job_c1")} .pct`), "100%");

    // And live events flow again on the new connection.
    await redis.jobUpdate("job_c2", "alice", { status: "processing", progress: 70 });
    await page.waitForSelector(row("job_c2", { progress: 70 }), WAIT);
    await screenshot(page, "c-restart-recovered");
  });
});

test("(d) Redis goes away: the page says paused, then catches up when it is back", { timeout: TEST_MS }, async () => {
  await withStack("d-redis-outage", async ({ redis, open }) => {
    const page = await open("user=alice");
    await ready(page);
    await page.evaluate(() => {
      window.__snapshots = [];
      window.jobwire.addEventListener("snapshot", (e) => window.__snapshots.push(e.detail));
    });
    await redis.jobUpdate("job_d1", "alice", { status: "processing", progress: 10 });
    await page.waitForSelector(row("job_d1", { progress: 10 }), WAIT);
    await followed(page, "job_d1");

    await redis.kill();
    await page.waitForSelector('#link[data-state="paused"]', WAIT);
    assert.equal(await page.textContent("#link"), "paused: redis unavailable");
    await screenshot(page, "d-redis-paused");

    // Redis comes back (empty: it kept nothing), but with a password jobwire does not have,
    // so jobwire stays cut off while the job finishes: its event reaches nobody.
    await redis.start({ password: "not-for-jobwire" });
    await redis.jobUpdate("job_d1", "alice", { status: "completed", progress: 100, kind: "complete" });
    assert.equal(await page.getAttribute("#link", "data-state"), "paused");

    // The password goes: jobwire resubscribes, says "live", and the fresh snapshot it sends
    // for the job brings the missed state to the page.
    await redis.setPassword(null);
    await page.waitForSelector('#link[data-state="live"]', { timeout: 15_000 });
    try {
      await page.waitForSelector(row("job_d1", { status: "completed", progress: 100 }), WAIT);
    } catch (err) {
      err.message += "\nsnapshots the page got: " + JSON.stringify(await page.evaluate(() => window.__snapshots));
      throw err;
    }
    await screenshot(page, "d-redis-recovered");
  });
});

test("(e) with JWT: ?token= goes in the auth message, never in the WebSocket URL", { timeout: TEST_MS }, async () => {
  const secret = newSecret();
  await withStack("e-jwt", async ({ redis, jobwire, open }) => {
    const token = signJwt({ sub: "alice", exp: Math.floor(Date.now() / 1000) + 600 }, secret);
    const sockets = [];
    const frames = [];
    browser.once("page", (p) => p.on("websocket", (ws) => {
      sockets.push(ws.url());
      ws.on("framesent", (f) => frames.push(String(f.payload)));
    }));
    const page = await open(`token=${encodeURIComponent(token)}`);
    await ready(page);
    assert.equal(await page.textContent("#who"), "user alice");
    assert.ok(sockets.length >= 1 && sockets.every((u) => !u.includes(token) && !u.includes("token=")),
      `the WebSocket URL carries no token: ${sockets}`);
    assert.deepEqual(JSON.parse(frames[0]), { type: "auth", id: "auth", token });
    // The page drops the token from its own address too.
    assert.ok(!(await page.evaluate(() => location.href)).includes(token));

    await redis.jobUpdate("job_e1", "alice", { status: "processing", progress: 60 });
    await page.waitForSelector(row("job_e1", { progress: 60 }), WAIT);
    assert.ok(!jobwire.logTail(400).includes(token), "the token is not in jobwire's log");
    await screenshot(page, "e-jwt-alice");
  }, { dev_auth: null, jwt_secret: secret });
});
