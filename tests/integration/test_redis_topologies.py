"""TLS, Redis Cluster and Sentinel against real redis-server processes (docs/REDIS.md)."""

import asyncio
import os
import re
import subprocess
import time

import pytest
import redis

from conftest import WAIT, Jobwire, RedisServer, async_test, wait_for
from redis_topologies import Cluster, Sentinels, make_pki, tls_server


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def start_jw(tmp_path, server, ready=True, **settings):
    jw = Jobwire(tmp_path, server, settings)
    jw.start(wait_ready=ready)
    return jw


async def expect_flow(jw, publish, job="job_t", timeout=WAIT):
    """An admin client sees an event that `publish(channel, payload)` sends."""
    ops = await jw.client("ops", admin=True)
    await ops.subscribe(scope="all")
    publish(f"ai:job:status:{job}", f'{{"jobId":"{job}","userId":"u","status":"x"}}')
    ev = await ops.expect_event(timeout)
    assert ev["jobId"] == job
    return ops


async def expect_flow_again(ops, publish, job, budget):
    """Publishes until one event arrives (publications during an outage are lost)."""
    deadline = time.monotonic() + budget
    while True:
        try:
            publish(f"ai:job:status:{job}", f'{{"jobId":"{job}","userId":"u"}}')
        except Exception:  # noqa: BLE001 - that node may be the one going away
            pass
        try:
            ev = await ops.expect_event(0.3)
            assert ev["jobId"] == job
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def refused(jw, needle):
    """jobwire stays up, never subscribes, and logs the reason."""
    wait_for(lambda: needle in jw.read_log(), what=f"{needle!r} in the jobwire log")
    jw.check_alive()
    assert jw.get("/readyz")[0] != 200
    assert "subscribed to" not in jw.read_log()


def tls_settings(pki, server, **extra):
    s = dict(redis_host="127.0.0.1", redis_port=server.port, redis_tls=True,
             redis_tls_ca_file=pki["ca.pem"], reconnect_initial_ms=50, reconnect_max_ms=500)
    s.update(extra)
    return s


# --------------------------------------------------------------------------------------------- TLS

@async_test
async def test_tls_good_ca_events_flow(tmp_path, pki):
    server = tls_server(tmp_path, pki)
    try:
        jw = start_jw(tmp_path, server, **tls_settings(pki, server, redis_tls_server_name="localhost"))
        await expect_flow(jw, lambda ch, p: server.client().publish(ch, p))
        jw.stop()
    finally:
        server.stop()


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name", "missing_client_cert"])
def test_tls_refused(tmp_path, pki, case):
    server = tls_server(tmp_path, pki, auth_clients="yes" if case == "missing_client_cert" else "no")
    try:
        extra = {"wrong_ca": dict(redis_tls_ca_file=pki["other-ca.pem"]),
                 "wrong_name": dict(redis_tls_server_name="wrong.example.com"),
                 "missing_client_cert": {}}[case]
        jw = start_jw(tmp_path, server, ready=False, **tls_settings(pki, server, **extra))
        needle = {"wrong_ca": "certificate verify failed",
                  "wrong_name": "certificate verify failed",
                  "missing_client_cert": "reconnecting in"}[case]
        refused(jw, needle)
        line = next(ln for ln in jw.read_log().splitlines() if needle in ln)
        print(f"{case}: {line}")
        if case == "missing_client_cert":
            assert re.search(r"certificate required|alert|unexpected eof|closed|reset by peer", line), line
        jw.stop()
    finally:
        server.stop()


@async_test
async def test_tls_client_cert_and_password(tmp_path, pki):
    server = tls_server(tmp_path, pki, auth_clients="yes", password="s3cret-tls")
    try:
        jw = start_jw(tmp_path, server, **tls_settings(
            pki, server, redis_url=f"rediss://:s3cret-tls@127.0.0.1:{server.port}",
            redis_tls=False, redis_tls_cert_file=pki["client.pem"],
            redis_tls_key_file=pki["client.key"]))
        await expect_flow(jw, lambda ch, p: server.client().publish(ch, p))
        assert "s3cret-tls" not in jw.read_log()
        jw.stop()
    finally:
        server.stop()


def test_tls_bad_ca_file_stops_startup(tmp_path, pki):
    bad = os.path.join(str(tmp_path), "not-a-ca.pem")
    with open(bad, "w") as f:
        f.write("not a certificate\n")
    server = RedisServer(tmp_path)  # never started: jobwire must stop before connecting
    jw = Jobwire(tmp_path, server, dict(redis_tls=True, redis_tls_ca_file=bad))
    out = subprocess.run([jw.bin, "--config", jw.config], capture_output=True, text=True,
                         timeout=WAIT)
    assert out.returncode != 0
    assert bad in out.stdout + out.stderr, out.stdout + out.stderr


# --------------------------------------------------------------------------------- reconnect time

@pytest.mark.jwconfig(redis_ping_interval_ms=1000, redis_read_timeout_ms=1000)
@async_test
async def test_reconnect_time_after_restart(jw, redis_server):
    """Default backoff: from redis-server accepting again to the first event delivered."""
    ops = await expect_flow(jw, jw.publish)
    redis_server.kill9()
    await asyncio.sleep(1.5)  # jobwire notices and backs off (a few attempts)
    redis_server.start()
    t0 = time.monotonic()
    jw.reset_publisher()
    await expect_flow_again(ops, jw.publish, "job_back", 15)
    print(f"\nreconnect: first event {1000 * (time.monotonic() - t0):.0f} ms after "
          f"redis-server was back")


# ------------------------------------------------------------------------------------- cluster

def run_cluster_routing(cluster, seeds):
    """tests/unit/test_redis_cluster's routing test (HGET in many slots, transactions)."""
    port = cluster.nodes[0].port
    for k in "abcdefgh":
        subprocess.run(["redis-cli", "-c", "-p", str(port), "HSET", f"ai:job:{k}", "userId",
                        f"ai:job:{k}"], check=True, stdout=subprocess.DEVNULL, timeout=WAIT)
    exe = os.path.join(os.path.dirname(os.path.abspath(Jobwire.__init__.__globals__["jobwire_bin"]())),
                       "tests", "unit", "test_redis_cluster")
    out = subprocess.run([exe], env=dict(os.environ, JW_TEST_CLUSTER_NODES=seeds),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SKIPPED" not in out.stdout, out.stdout + out.stderr


@async_test
async def test_cluster_failover_of_subscribed_node(tmp_path):
    cluster = Cluster(tmp_path).start()
    try:
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in cluster.nodes[:3])
        jw = start_jw(tmp_path, cluster.nodes[0], redis_cluster_nodes=seeds,
                      reconnect_initial_ms=100, reconnect_max_ms=1000,
                      redis_ping_interval_ms=1000, redis_read_timeout_ms=1000)
        ops = await jw.client("ops", admin=True)
        await ops.subscribe(scope="all")
        for i, node in enumerate(cluster.nodes):  # a publication on any node reaches jobwire
            with node.client() as c:
                c.publish(f"ai:job:status:job_n{i}", f'{{"jobId":"job_n{i}","userId":"u"}}')
            assert (await ops.expect_event())["jobId"] == f"job_n{i}"
        run_cluster_routing(cluster, seeds)
        sub_re = r"subscribed to \d+ pattern\(s\) on redis 127\.0\.0\.1:(\d+)"
        m = re.findall(sub_re, jw.read_log())
        victim = next(n for n in cluster.nodes if n.port == int(m[-1]))
        victim.kill9()
        t0 = time.monotonic()
        other = next(n for n in cluster.nodes if n is not victim)
        await expect_flow_again(ops, lambda ch, p: other.client().publish(ch, p), "job_after", 20)
        assert int(re.findall(sub_re, jw.read_log())[-1]) != victim.port
        
        print(f"\ncluster: events again {1000 * (time.monotonic() - t0):.0f} ms after kill -9 "
              f"of the subscribed node {victim.port}")
        jw.stop()
    finally:
        cluster.stop()


# ------------------------------------------------------------------------------------ sentinel

@async_test
async def test_sentinel_discovery_and_forced_failover(tmp_path):
    st = Sentinels(tmp_path).start()
    jw = None
    try:
        jw = start_jw(tmp_path, st.master,
                      redis_sentinels=",".join(f"127.0.0.1:{s.port}" for s in st.sentinels),
                      redis_sentinel_master=st.name, reconnect_initial_ms=100,
                      reconnect_max_ms=1000)
        ops = await expect_flow(jw, lambda ch, p: st.master.client().publish(ch, p))
        assert f"on redis 127.0.0.1:{st.master.port}" in jw.read_log()
        def failover():
            # A sentinel refuses (NOGOODSLAVE) until it has read the replica's INFO itself.
            with st.sentinels[0].client() as c:
                try:
                    return c.execute_command("SENTINEL", "FAILOVER", st.name)
                except redis.exceptions.ResponseError as e:
                    if "NOGOODSLAVE" not in str(e):
                        raise
                    return False
        wait_for(failover, timeout=15, interval=0.2, what="sentinel accepts the failover")
        wait_for(lambda: st.master_addr()[1] == st.replica.port, timeout=15,
                 what="the sentinels name the replica as master")
        wait_for(lambda: f"on redis 127.0.0.1:{st.replica.port}" in jw.read_log(), timeout=15,
                 what="jobwire subscribed on the new master")
        new = st.replica
        await expect_flow_again(ops, lambda ch, p: new.client().publish(ch, p), "job_new", 10)
        with new.client() as c:
            names = c.execute_command("CLIENT", "LIST").decode()
        assert "cmd=psubscribe" in names or "psub=1" in names, names
    finally:
        if jw is not None:
            jw.stop()
        st.stop()
