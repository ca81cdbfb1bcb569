"""jobwire against the Redis topologies production runs: a TLS-only, password-protected Redis
Cluster (3 masters + 3 replicas, `tls-cluster`, `tls-replication`, certificates that name only
DNS:redis.test while the nodes announce 127.0.0.1, as Azure's clustered caches do) and a
TLS-only, password-protected Sentinel deployment, through failovers, kill -9 and a slot
migration.

After each disruption the same promises are checked (`check_service`), each within a deadline:
live events flow again; alice's subscribe of her job gets a snapshot with the job's state as
Redis holds it now (a hash written after the disruption; not `unavailable`, not null); bob's
subscribe of alice's job is refused with `forbidden`; a job whose state is only the JSON string
`ai:job:status:{id}` gets its snapshot and its owner check too; /readyz is 200; and every
`unavailable` snapshot on the way was counted in /metrics. The same checks run before the
disruption, so a failure says whether the disruption caused it.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import time

import pytest
import redis

from conftest import WAIT, Jobwire, daemon_env, jobwire_bin, wait_for, write_config
from redis_topologies import (PROD_NAME, ProdCluster, ProdSentinels, make_dns_only_cert, make_pki,
                              tls_server)

PASSWORD = "prod-pa55/word+x"
SENTINEL_PASSWORD = "sentinel-pa55/word"
RECOVERY_S = 15.0  # a disruption must be behind us within this (failover included)
JOB_HASH, JOB_STRING = "prod-hash-1", "prod-string-1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_dns_only_cert(make_pki(str(tmp_path_factory.mktemp("pki"))))


def tls_settings(pki, **extra):
    s = dict(redis_tls=True, redis_tls_ca_file=pki["ca.pem"], redis_tls_server_name=PROD_NAME,
             redis_password=PASSWORD, reconnect_initial_ms=100, reconnect_max_ms=1000,
             redis_connect_timeout_ms=1000, redis_read_timeout_ms=1000,
             redis_ping_interval_ms=1000, probe_interval_ms=500, probe_timeout_ms=3000,
             log_level="info")
    s.update(extra)
    return s


def async_run(coro, bound=170):
    async def bounded():
        return await asyncio.wait_for(coro, bound)
    return asyncio.run(bounded())


# ------------------------------------------------------------------------------- cluster access

def cluster_write(cluster, fn, what):
    """Runs fn(client of the master serving the key) until it succeeds (the slot may be moving
    or its master failing over)."""
    def attempt():
        try:
            return fn(cluster) or True
        except (redis.exceptions.RedisError, OSError, AssertionError, StopIteration):
            return False
    wait_for(attempt, timeout=RECOVERY_S, interval=0.1, what=what)


def publish_any(nodes, channel, payload):
    for n in nodes:
        if n.proc is not None and n.proc.poll() is None:
            try:
                with n.client() as c:
                    c.publish(channel, payload)
                return True
            except (redis.exceptions.RedisError, OSError):
                continue
    return False


# ------------------------------------------------------------------------------------ the checks

class Service:
    """The client side of the checks: an admin watching every event, and what was seen."""

    def __init__(self, jw, nodes, set_state):
        self.jw, self.nodes, self.set_state = jw, nodes, set_state
        self.n = 0
        self.ops = None

    async def start(self):
        self.ops = await self.jw.client("ops", admin=True, name="ops")
        await self.ops.subscribe(scope="all")

    async def live_delivery(self, budget):
        """Publishes (on any live node) until the admin gets the event; seconds it took, or
        None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < budget:
            self.n += 1
            job = f"live-{self.n}"
            publish_any(self.nodes(), f"ai:job:status:{job}",
                        json.dumps({"jobId": job, "userId": "u", "n": self.n}))
            try:
                while True:
                    ev = await self.ops.expect_event(0.3)
                    if ev["jobId"] == job:
                        return time.monotonic() - t0
            except AssertionError:
                continue
        return None

    async def snapshot(self, user, job):
        """One fresh connection's subscribe of `job`: (reply, snapshot or None)."""
        c = await self.jw.client(user, name=f"{user}-{job}")
        try:
            r = await c.request({"type": "subscribe", "jobs": [job]})
            snap = await c.expect_snapshot() if r["type"] == "ack" else None
            return r, snap, c
        except AssertionError as e:
            return {"type": "timeout", "error": str(e)}, None, c


async def check_service(svc, label, budget=RECOVERY_S):
    """The promises after `label`; returns a list of what broke (empty: all kept)."""
    jw = svc.jw
    problems = []
    t0 = time.monotonic()
    took = await svc.live_delivery(budget)
    if took is None:
        problems.append(f"{label}: no event published on a live node reached the admin within "
                        f"{budget:.0f} s")
    else:
        print(f"{label}: live events again after {took * 1000:.0f} ms")

    # the hash job: state written now, read by alice's subscribe (polling until correct)
    progress = str(int(time.monotonic() * 1000) % 100000)
    try:
        svc.set_state(JOB_HASH, progress)
    except AssertionError as e:
        problems.append(f"{label}: the test could not write the job's state: {e}")
        return problems
    seen = []
    ok = False
    deadline = time.monotonic() + budget
    unavailable_before = jw.metric("jobwire_snapshots_total", result="unavailable")
    unavailable_seen = 0
    while time.monotonic() < deadline:
        r, snap, c = await svc.snapshot("alice", JOB_HASH)
        await c.close()
        seen.append(snap if snap is not None else r)
        if snap is not None and snap.get("unavailable"):
            unavailable_seen += 1
        if (snap is not None and snap.get("source") == "hash" and not snap.get("unavailable")
                and (snap.get("state") or {}).get("progress") == progress
                and snap.get("userId") == "alice"):
            ok = True
            break
        await asyncio.sleep(0.2)  # poll interval of the deadline loop above
    if ok:
        print(f"{label}: alice's snapshot correct after {len(seen)} attempt(s), "
              f"{time.monotonic() - t0:.1f} s")
    else:
        problems.append(
            f"{label}: alice's subscribe of her job {JOB_HASH!r} (hash ai:job:{JOB_HASH} = "
            f"{{userId: alice, progress: {progress}}}) never got a correct snapshot within "
            f"{budget:.0f} s; {len(seen)} attempts, the last ones got {seen[-3:]}")
    counted = jw.metric("jobwire_snapshots_total", result="unavailable") - unavailable_before
    if counted < unavailable_seen:
        problems.append(f"{label}: {unavailable_seen} snapshot(s) came back unavailable but "
                        f"jobwire_snapshots_total{{result=\"unavailable\"}} grew by {counted:g} "
                        f"(the trouble is not reported)")

    # bob may not have alice's job: the owner check must be made now that Redis answers
    r, snap, bob = await svc.snapshot("bob", JOB_HASH)
    if r.get("type") != "error" or r.get("code") != "forbidden":
        problems.append(f"{label}: OWNER CHECK BYPASS: bob's subscribe of alice's job "
                        f"{JOB_HASH!r} (hash, userId alice) answered {r}, snapshot {snap}"
                        + ("" if ok else " (jobwire still cannot read the job: the documented "
                           "fail-open while Redis cannot answer, which here does not end)"))
        if r.get("type") == "ack":  # at least no event of alice's may reach him
            svc.n += 1
            publish_any(svc.nodes(), f"ai:job:progress:{JOB_HASH}",
                        json.dumps({"jobId": JOB_HASH, "userId": "alice", "secret": svc.n}))
            await bob.subscribe(jobs=["bob-marker"])
            await bob.expect_snapshot()
            try:
                await bob.expect_marker_first(lambda: publish_any(
                    svc.nodes(), "ai:job:status:bob-marker",
                    json.dumps({"jobId": "bob-marker", "userId": "bob"})), "bob-marker")
            except AssertionError as e:
                problems.append(f"{label}: LEAK: alice's event reached bob: {e}")
    await bob.close()

    # the job whose state is only the JSON string ai:job:status:{id}
    r, snap, c = await svc.snapshot("alice", JOB_STRING)
    await c.close()
    if not (snap is not None and snap.get("source") == "string"
            and (snap.get("state") or {}).get("userId") == "alice"):
        problems.append(f"{label}: alice's subscribe of {JOB_STRING!r} (state only in the JSON "
                        f"string ai:job:status:{JOB_STRING}) got {r} and snapshot {snap}, "
                        f"expected source 'string' with the stored state")
    r, snap, c = await svc.snapshot("bob", JOB_STRING)
    await c.close()
    if r.get("type") != "error" or r.get("code") != "forbidden":
        problems.append(f"{label}: OWNER CHECK BYPASS: bob's subscribe of alice's job "
                        f"{JOB_STRING!r} (JSON string state naming alice) answered {r}, "
                        f"snapshot {snap}")

    try:
        jw.wait_status("/readyz", 200, timeout=max(1.0, deadline - time.monotonic()))
    except AssertionError as e:
        problems.append(f"{label}: /readyz not 200: {str(e).splitlines()[0]}")
    return problems


def report(problems, jw):
    if problems:
        lines = [ln for ln in open(jw.log, errors="replace").read().splitlines()
                 if "session:" not in ln]
        raise AssertionError("promises broken:\n  " + "\n  ".join(problems)
                             + "\n--- jobwire log (without session lines) ---\n"
                             + "\n".join(lines[-40:]))


# ------------------------------------------------------------------------------------- cluster

class ClusterCase:
    """A started ProdCluster, jobwire connected to it, alice's two jobs in Redis."""

    def __init__(self, tmp_path, pki):
        self.cluster = ProdCluster(tmp_path, pki, PASSWORD).start()
        self.jw = None
        try:
            masters = self.cluster.masters()
            seeds = ",".join(f"127.0.0.1:{n.port}" for n in masters)
            self.jw = Jobwire(tmp_path, masters[0], tls_settings(pki, redis_cluster_nodes=seeds))
            self.write_string()
            self.set_state(JOB_HASH, "1")
            self.jw.start()
        except Exception:
            self.stop()
            raise
        self.svc = Service(self.jw, self.cluster.alive, self.set_state)

    def write_string(self):
        key = f"ai:job:status:{JOB_STRING}"
        state = json.dumps({"jobId": JOB_STRING, "userId": "alice", "status": "queued"})
        cluster_write(self.cluster, lambda cl: cl.client_for(key).set(key, state),
                      f"SET {key}")

    def set_state(self, job, progress):
        key = f"ai:job:{job}"
        fields = {"userId": "alice", "status": "processing", "progress": progress}

        def write(cl):
            with cl.client_for(key) as c:
                try:
                    return c.hset(key, mapping=fields) or True
                except redis.exceptions.ResponseError as e:
                    if not str(e).startswith("ASK "):
                        raise
                    port = int(str(e).split()[2].rsplit(":", 1)[1])  # ASK slot host:port
            with cl.node(port).client() as c:  # ASKING and the command on one connection
                pipe = c.pipeline(transaction=False)
                pipe.execute_command("ASKING")
                pipe.hset(key, mapping=fields)
                pipe.execute()
            return True
        cluster_write(self.cluster, write, f"HSET {key}")

    def hash_slot(self):
        return self.cluster.keyslot(f"ai:job:{JOB_HASH}")

    def subscribed_node(self):
        """The node that holds jobwire's PSUBSCRIBE (PUBSUB NUMPAT is per node)."""
        def find():
            for n in self.cluster.alive():
                with n.client() as c:
                    if int(c.execute_command("PUBSUB", "NUMPAT")) > 0:
                        return n
            return None
        return wait_for(find, what="the node holding jobwire's subscription")

    def wait_cluster_ok(self, what):
        wait_for(self.cluster.ok, timeout=RECOVERY_S, interval=0.1,
                 what=f"cluster_state:ok after {what}")

    def stop(self):
        try:
            if self.jw is not None:
                self.jw.stop()
        finally:
            self.cluster.stop()


@pytest.fixture
def cluster_case(tmp_path, pki):
    case = ClusterCase(tmp_path, pki)
    try:
        yield case
    finally:
        case.stop()


def test_cluster_planned_failover_of_the_jobs_shard(cluster_case):
    case = cluster_case

    async def body():
        await case.svc.start()
        problems = await check_service(case.svc, "before the failover")
        owner = case.cluster.slot_owner(case.hash_slot())
        replica = case.cluster.replica_of(owner)
        with replica.client() as c:
            c.execute_command("CLUSTER", "FAILOVER")
        wait_for(lambda: case.cluster.role(replica) == "master"
                 and case.cluster.role(owner) == "slave", timeout=RECOVERY_S,
                 what="the replica promoted by CLUSTER FAILOVER")
        case.wait_cluster_ok("CLUSTER FAILOVER")
        problems += await check_service(
            case.svc, f"after CLUSTER FAILOVER of the job's shard ({owner.port} -> "
                      f"{replica.port})")
        return problems
    report(async_run(body()), case.jw)


def test_cluster_kill9_of_the_subscribed_master(cluster_case):
    case = cluster_case

    async def body():
        await case.svc.start()
        problems = await check_service(case.svc, "before the kill")
        victim = case.subscribed_node()
        role = case.cluster.role(victim)
        victim.kill9()
        case.wait_cluster_ok(f"kill -9 of {victim.port}")
        problems += await check_service(
            case.svc, f"after kill -9 of the node holding the subscription ({role} "
                      f"{victim.port})")
        return problems
    report(async_run(body()), case.jw)


def test_cluster_kill9_of_another_master(cluster_case):
    case = cluster_case

    async def body():
        await case.svc.start()
        problems = await check_service(case.svc, "before the kill")
        subscribed = case.subscribed_node()
        owner = case.cluster.slot_owner(case.hash_slot())
        candidates = [m for m in case.cluster.masters() if m is not subscribed]
        victim = owner if owner in candidates else candidates[0]
        victim.kill9()
        case.wait_cluster_ok(f"kill -9 of {victim.port}")
        problems += await check_service(
            case.svc, f"after kill -9 of master {victim.port} (not the subscribed node"
                      f"{'; it served the job' if victim is owner else ''})")
        return problems
    report(async_run(body()), case.jw)


def test_cluster_slot_migration_of_the_jobs_slot(cluster_case):
    case = cluster_case
    cl = case.cluster

    async def body():
        await case.svc.start()
        problems = await check_service(case.svc, "before the migration")
        slot = case.hash_slot()
        src = cl.slot_owner(slot)
        dst = next(m for m in cl.masters() if m is not src)
        src_id, dst_id = cl.node_id(src), cl.node_id(dst)
        with dst.client() as c:
            c.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        with src.client() as c:
            c.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            keys = c.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            assert keys, f"no key in slot {slot} on {src.port}"
            c.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "AUTH", PASSWORD,
                              "KEYS", *keys)
        # keys moved, slot not yet reassigned: the source answers -ASK for them
        problems += await check_service(
            case.svc, f"during the migration of slot {slot} ({src.port} MIGRATING -> "
                      f"{dst.port} IMPORTING, keys moved: -ASK)", budget=5)
        for n in cl.masters():
            with n.client() as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        wait_for(lambda: cl.slot_owner(slot) is dst, what=f"slot {slot} served by {dst.port}")
        problems += await check_service(
            case.svc, f"after the migration of slot {slot} from {src.port} to {dst.port} "
                      f"(-MOVED)")
        return problems
    report(async_run(body()), case.jw)


# ------------------------------------------------------------------------------------ sentinel

@pytest.fixture
def sentinel_case(tmp_path, pki):
    st = ProdSentinels(tmp_path, pki, PASSWORD, SENTINEL_PASSWORD).start()
    jw = None
    try:
        with st.master.client() as c:
            c.hset(f"ai:job:{JOB_HASH}", mapping={"userId": "alice", "progress": "1"})
            c.set(f"ai:job:status:{JOB_STRING}",
                  json.dumps({"jobId": JOB_STRING, "userId": "alice", "status": "queued"}))
        # a backoff wait would be obvious: the first delay is up to 10 s, then 20, 30 s
        jw = Jobwire(tmp_path, st.master, tls_settings(
            pki, redis_sentinels=",".join(f"127.0.0.1:{s.port}" for s in st.sentinels),
            redis_sentinel_master=st.name, redis_sentinel_password=SENTINEL_PASSWORD,
            reconnect_initial_ms=10000, reconnect_max_ms=30000, reconnect_multiplier=2.0))
        jw.start()
        yield st, jw
    finally:
        try:
            if jw is not None:
                jw.stop()
        finally:
            st.stop()


def test_sentinel_kill9_of_the_master_follows_switch_master_at_once(sentinel_case):
    st, jw = sentinel_case
    old = st.master

    def nodes():
        host, port = st.master_addr()
        return [st.node_at(port)]

    def set_state(job, progress):
        def attempt():
            try:
                with nodes()[0].client() as c:
                    c.hset(f"ai:job:{job}", mapping={"userId": "alice", "progress": progress})
                return True
            except (redis.exceptions.RedisError, OSError):
                return False
        wait_for(attempt, timeout=RECOVERY_S, interval=0.1, what=f"HSET ai:job:{job}")

    async def body():
        svc = Service(jw, nodes, set_state)
        await svc.start()
        problems = await check_service(svc, "before the kill")
        watcher = st.sentinels[1].client().pubsub()
        watcher.subscribe("+switch-master")
        wait_for(lambda: watcher.get_message(timeout=0.1), what="+switch-master subscription")
        old.kill9()
        t_kill = time.monotonic()

        def switched():
            m = watcher.get_message(timeout=0.1)
            return m is not None and m.get("type") == "message"
        wait_for(switched, timeout=30, interval=0.0, what="+switch-master from the sentinels")
        t_switch = time.monotonic()
        watcher.close()
        # from +switch-master to the first event delivered again
        took = None
        svc.n += 1
        while time.monotonic() - t_switch < 20:
            job = f"after-switch-{svc.n}"
            publish_any([st.replica], f"ai:job:status:{job}", json.dumps({"jobId": job,
                                                                          "userId": "u"}))
            try:
                ev = await svc.ops.expect_event(0.05)
                if ev["jobId"].startswith("after-switch-"):
                    took = time.monotonic() - t_switch
                    break
            except AssertionError:
                svc.n += 1
        print(f"sentinel: +switch-master {1000 * (t_switch - t_kill):.0f} ms after kill -9; "
              f"first event {('%.0f ms' % (1000 * took)) if took is not None else 'never'} "
              f"after +switch-master (reconnect_initial_ms 10000, reconnect_max_ms 30000)")
        if took is None or took > 2.5:
            problems.append(
                f"after kill -9 of the master: the first event reached the client "
                f"{'never (20 s)' if took is None else f'{took * 1000:.0f} ms'} after "
                f"+switch-master; jobwire must follow +switch-master at once (~0.2 s; 2.5 s "
                f"allowed), not after its reconnect backoff (up to 10-30 s here)")
        problems += await check_service(svc, "after kill -9 of the sentinel master")
        return problems
    report(async_run(body()), jw)


# ------------------------------------------------------------------------------ passwords

def run_until_ready_or_exit(tmp_path, server, settings, env=None, budget=10.0):
    """Starts jobwire; ("exited", rc, log) or ("ready", proc, log) or ("stuck", proc, log)."""
    cfg = write_config(os.path.join(str(tmp_path), "jw.conf"), settings)
    log = os.path.join(str(tmp_path), "jw.log")
    with open(log, "ab") as f:
        proc = subprocess.Popen([jobwire_bin(), "--config", cfg], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=subprocess.STDOUT,
                                env=dict(daemon_env(), **(env or {})))
    port = settings["listen_port"]
    from conftest import http_get
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited", proc, open(log, errors="replace").read()
        try:
            if http_get(port, "/readyz", timeout=1)[0] == 200:
                return "ready", proc, open(log, errors="replace").read()
        except OSError:
            pass
        time.sleep(0.05)  # poll interval of the deadline loop
    return "stuck", proc, open(log, errors="replace").read()


def stop_proc(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=WAIT)


def base_settings(pki, server):
    from conftest import free_port
    return {"listen_address": "127.0.0.1", "listen_port": free_port(), "dev_auth": True,
            "web_root": '""', "redis_tls": True, "redis_tls_ca_file": pki["ca.pem"],
            "redis_host": "127.0.0.1", "redis_port": server.port,
            "reconnect_initial_ms": 100, "reconnect_max_ms": 500}


def events_flow(port, server):
    """An admin receives an event published on `server` (a plain check through the binary)."""
    from conftest import ws_connect, ws_url

    async def go():
        ws = await ws_connect(ws_url(port, "ops", True))
        try:
            await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "id": "1", "scope": "all"}))
            await asyncio.wait_for(ws.recv(), WAIT)
            with server.client() as c:
                c.publish("ai:job:status:pw", json.dumps({"jobId": "pw", "userId": "u"}))
            msg = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            return msg.get("type") == "event" and msg.get("jobId") == "pw"
        finally:
            await ws.close()
    return asyncio.run(go())


@pytest.mark.parametrize("form", ["url-unencoded-slash", "url-percent-encoded", "REDIS_PASSWORD"])
def test_password_with_slash(tmp_path, pki, form):
    """A password with '/' (Azure access keys contain '/' and '+'): in the URL unencoded it must
    work or be refused with a message naming the problem; percent-encoded in the URL and in
    REDIS_PASSWORD it must work. The password never appears in the log."""
    secret = "pa/ss+w0rd"
    server = tls_server(tmp_path, pki, password=secret)
    proc = None
    try:
        settings = base_settings(pki, server)
        env = {}
        if form == "url-unencoded-slash":
            settings["redis_url"] = f"rediss://:{secret}@127.0.0.1:{server.port}"
        elif form == "url-percent-encoded":
            settings["redis_url"] = (f"rediss://:{secret.replace('/', '%2F').replace('+', '%2B')}"
                                     f"@127.0.0.1:{server.port}")
        else:
            env["REDIS_PASSWORD"] = secret
        state, proc, log = run_until_ready_or_exit(tmp_path, server, settings, env)
        assert secret not in log, f"the password appears in the log:\n{log[-2000:]}"
        if state == "exited":
            assert form == "url-unencoded-slash", \
                f"{form}: jobwire refused to start (exit {proc.returncode}):\n{log[-2000:]}"
            assert proc.returncode != 0
            assert re.search(r"%2F|percent|slash|'/'|\"/\"|unencoded|encode", log, re.I), \
                f"refused, but the message does not name the problem ('/' must be written " \
                f"%2F):\n{log[-2000:]}"
            return
        assert state == "ready", (
            f"{form}: jobwire neither became ready within 10 s nor refused the setting "
            f"(a password with '/' must work or be refused with a clear message):\n"
            f"{log[-2000:]}")
        assert events_flow(settings["listen_port"], server), f"{form}: no event delivered"
    finally:
        if proc is not None:
            stop_proc(proc)
        server.stop()
