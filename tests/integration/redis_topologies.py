"""Fixtures for the Redis topologies of docs/REDIS.md: TLS servers with a test CA, a Redis
Cluster (3 masters + 3 replicas) and Sentinel (1 master, 1 replica, 3 sentinels), all real
processes on free loopback ports, stopped (by PID) at teardown."""

import os
import signal
import subprocess

import redis

from conftest import WAIT, free_port, tail, terminate, wait_for

REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_pki(d):
    """ca.pem/ca.key, server.pem/.key (SAN DNS:localhost, IP:127.0.0.1), client.pem/.key, and an
    unrelated other-ca.pem. Returns {name: path}."""
    os.makedirs(d, exist_ok=True)
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
                "-out", f"{ca}.pem", "-days", "2", "-subj", f"/CN=jobwire test {ca}", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "san.ext"), ("client", "client.ext")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return {n: os.path.join(d, n) for n in ("ca.pem", "other-ca.pem", "server.pem", "server.key",
                                            "client.pem", "client.key")}


class Proc:
    """One redis-server (or sentinel) process with its own dir and log."""

    def __init__(self, workdir, name, args, port, password=None, tls=None):
        self.dir = os.path.join(str(workdir), name)
        os.makedirs(self.dir, exist_ok=True)
        self.name, self.args, self.port, self.password, self.tls = name, args, port, password, tls
        self.log = os.path.join(self.dir, "redis.log")
        self.proc = None

    def start(self, wait=True):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([REDIS_SERVER] + self.args + ["--dir", self.dir],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        if wait:
            wait_for(self.ping, what=f"{self.name} PING on port {self.port}")
        return self

    def client(self):
        kw = {}
        if self.tls:
            kw = dict(ssl=True, ssl_ca_certs=self.tls["ca.pem"], ssl_certfile=self.tls["client.pem"],
                      ssl_keyfile=self.tls["client.key"])
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=5, socket_connect_timeout=5, **kw)

    def ping(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{tail(self.log)}")
        with self.client() as c:
            return c.ping()

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=WAIT)

    def stop(self):
        terminate(self.proc)


BASE = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]


def tls_server(workdir, pki, auth_clients="no", password=None):
    port = free_port()
    args = BASE + ["--port", "0", "--tls-port", str(port), "--tls-cert-file", pki["server.pem"],
                   "--tls-key-file", pki["server.key"], "--tls-ca-cert-file", pki["ca.pem"],
                   "--tls-auth-clients", auth_clients]
    if password:
        args += ["--requirepass", password]
    return Proc(workdir, f"tls-{port}", args, port, password, tls=pki).start()


class Cluster:
    def __init__(self, workdir, n=6):
        self.nodes = []
        for _ in range(n):
            port = free_port()
            args = BASE + ["--port", str(port), "--cluster-enabled", "yes",
                           "--cluster-port", str(free_port()),  # not port + 10000: may be > 65535
                           "--cluster-config-file", f"nodes-{port}.conf",
                           "--cluster-node-timeout", "1000"]
            self.nodes.append(Proc(workdir, f"cluster-{port}", args, port))

    def start(self):
        for n in self.nodes:
            n.start()
        subprocess.run(["redis-cli", "--cluster", "create"]
                       + [f"127.0.0.1:{n.port}" for n in self.nodes]
                       + ["--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                       timeout=30)
        wait_for(self.ok, timeout=20, what="cluster_state:ok on every node")
        return self

    def ok(self):
        for n in self.nodes:
            if n.proc.poll() is not None:
                continue
            with n.client() as c:
                if c.execute_command("CLUSTER", "INFO").decode().find("cluster_state:ok") < 0:
                    return False
        return True

    def stop(self):
        for n in self.nodes:
            n.stop()


class Sentinels:
    def __init__(self, workdir, master_name="jwmaster"):
        self.name = master_name
        mport, rport = free_port(), free_port()
        self.master = Proc(workdir, f"master-{mport}", BASE + ["--port", str(mport)], mport)
        self.replica = Proc(workdir, f"replica-{rport}",
                            BASE + ["--port", str(rport), "--replicaof", "127.0.0.1", str(mport)],
                            rport)
        self.sentinels = []
        for _ in range(3):
            port = free_port()
            d = os.path.join(str(workdir), f"sentinel-{port}")
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
                        f"sentinel monitor {master_name} 127.0.0.1 {mport} 2\n"
                        f"sentinel down-after-milliseconds {master_name} 1000\n"
                        f"sentinel failover-timeout {master_name} 3000\n")
            p = Proc(workdir, f"sentinel-{port}", [conf, "--sentinel"], port)
            self.sentinels.append(p)

    def start(self):
        self.master.start()
        self.replica.start()
        wait_for(lambda: self.replica.client().info("replication")["master_link_status"] == "up",
                 what="replica in sync")
        for s in self.sentinels:
            s.start()
        wait_for(lambda: all(s.client().execute_command(
            "SENTINEL", "replicas", self.name) for s in self.sentinels), timeout=15,
            what="sentinels know the replica")
        return self

    def master_addr(self):
        with self.sentinels[0].client() as c:
            host, port = c.execute_command("SENTINEL", "get-master-addr-by-name", self.name)
        return host.decode(), int(port)

    def node_at(self, port):
        return self.master if self.master.port == port else self.replica

    def stop(self):
        for p in self.sentinels + [self.replica, self.master]:
            p.stop()


# ------------------------------------------------------------------------------------------------
# Production-like topologies: TLS only, passwords, certificates that name only a DNS name (the
# nodes are announced as 127.0.0.1, as Azure's clustered caches announce addresses that the
# certificate does not name).

PROD_NAME = "redis.test"


def make_dns_only_cert(pki, name=PROD_NAME):
    """A server certificate signed by pki's CA whose only SAN is DNS:name (no IP SAN).
    Adds "dns-server.pem"/"dns-server.key" to pki (a dict from make_pki) and returns it."""
    d = os.path.dirname(pki["ca.pem"])
    stem = "dns-server"
    with open(os.path.join(d, f"{stem}.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{stem}.key", "-out",
            f"{stem}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{stem}.pem", "-days", "2", "-extfile", f"{stem}.ext",
            cwd=d)
    pki = dict(pki)
    pki["dns-server.pem"] = os.path.join(d, f"{stem}.pem")
    pki["dns-server.key"] = os.path.join(d, f"{stem}.key")
    return pki


def tls_only_args(pki, port, password):
    """redis-server arguments: no plain port, TLS on `port` with the DNS-only certificate,
    TLS for replication and the cluster bus, requirepass and masterauth."""
    return ["--port", "0", "--tls-port", str(port),
            "--tls-cert-file", pki["dns-server.pem"], "--tls-key-file", pki["dns-server.key"],
            "--tls-ca-cert-file", pki["ca.pem"], "--tls-auth-clients", "no",
            "--tls-replication", "yes", "--requirepass", password, "--masterauth", password]


class ProdCluster:
    """3 masters + 3 replicas, TLS only (`port 0`, `tls-port`, `tls-cluster yes`,
    `tls-replication yes`), `requirepass` + `masterauth`, certificates naming only
    DNS:redis.test while CLUSTER SLOTS announces 127.0.0.1; a short cluster-node-timeout so
    that failovers take a few seconds."""

    def __init__(self, workdir, pki, password, node_timeout_ms=1500):
        self.pki, self.password = pki, password
        self.nodes = []
        for _ in range(6):
            port = free_port()
            args = BASE + tls_only_args(pki, port, password) + [
                "--tls-cluster", "yes", "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(node_timeout_ms),
                "--cluster-announce-ip", "127.0.0.1",
                "--cluster-replica-validity-factor", "0",  # any replica may take over
                "--appendonly", "no"]
            self.nodes.append(Proc(workdir, f"pcluster-{port}", args, port, password, tls=pki))

    def cli(self, *args, timeout=30):
        return subprocess.run(
            ["redis-cli", "--tls", "--cacert", self.pki["ca.pem"], "--sni", PROD_NAME,
             "-a", self.password, "--no-auth-warning", *args],
            check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)

    def start(self):
        try:
            for n in self.nodes:
                n.start()
            self.cli("--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
                     "--cluster-replicas", "1", "--cluster-yes")
            wait_for(self.ok, timeout=30, what="cluster_state:ok on every node")
            wait_for(self.replicas_in_sync, timeout=30, what="every replica in sync")
        except Exception:
            self.stop()
            raise
        return self

    def alive(self):
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def ok(self):
        """Every live node says cluster_state:ok and serves every slot from a live master (right
        after a kill -9 the state is still ok until the failure is detected: not a recovery)."""
        live = {n.port for n in self.alive()}
        for n in self.alive():
            with n.client() as c:
                if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO").decode():
                    return False
                if any(int(master[1]) not in live
                       for _, _, master, *_ in c.execute_command("CLUSTER", "SLOTS")):
                    return False
        return True

    def replicas_in_sync(self):
        for n in self.alive():
            with n.client() as c:
                info = c.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
        return True

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def node_id(self, n):
        with n.client() as c:
            return c.execute_command("CLUSTER", "MYID").decode()

    def role(self, n):
        with n.client() as c:
            return c.info("replication")["role"]

    def keyslot(self, key):
        with self.alive()[0].client() as c:
            return int(c.execute_command("CLUSTER", "KEYSLOT", key))

    def slot_owner(self, slot):
        """The live master serving `slot`, as the live nodes agree."""
        with self.alive()[0].client() as c:
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return self.node(int(master[1]))
        raise AssertionError(f"slot {slot} is served by no node")

    def masters(self):
        return [n for n in self.alive() if self.role(n) == "master"]

    def replica_of(self, master):
        mid = self.node_id(master)
        for n in self.alive():
            with n.client() as c:
                line = next(ln for ln in c.execute_command("CLUSTER", "NODES").decode().splitlines()
                            if "myself" in ln)
            if line.split()[3] == mid:
                return n
        raise AssertionError(f"no replica of {master.name}")

    def client_for(self, key):
        """A client of the master that serves `key` now."""
        return self.slot_owner(self.keyslot(key)).client()

    def stop(self):
        for n in self.nodes:
            n.stop()


class ProdSentinels:
    """1 master + 1 replica + 3 sentinels, everything TLS only with the DNS-only certificate;
    a password on the data nodes (`requirepass`, `masterauth`) and another on the sentinels
    (`requirepass`, `sentinel sentinel-pass`, `sentinel auth-pass`)."""

    def __init__(self, workdir, pki, password, sentinel_password, master_name="jwprod"):
        self.name, self.pki = master_name, pki
        self.password, self.sentinel_password = password, sentinel_password
        mport, rport = free_port(), free_port()
        self.master = Proc(workdir, f"pmaster-{mport}", BASE + tls_only_args(pki, mport, password),
                           mport, password, tls=pki)
        self.replica = Proc(workdir, f"preplica-{rport}",
                            BASE + tls_only_args(pki, rport, password)
                            + ["--replicaof", "127.0.0.1", str(mport)], rport, password, tls=pki)
        self.sentinels = []
        for _ in range(3):
            port = free_port()
            d = os.path.join(str(workdir), f"psentinel-{port}")
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port 0\ntls-port {port}\nbind 127.0.0.1\ndaemonize no\n"
                        f"tls-cert-file {pki['dns-server.pem']}\n"
                        f"tls-key-file {pki['dns-server.key']}\n"
                        f"tls-ca-cert-file {pki['ca.pem']}\n"
                        "tls-auth-clients no\ntls-replication yes\n"
                        f"requirepass \"{sentinel_password}\"\n"
                        f"sentinel sentinel-pass \"{sentinel_password}\"\n"
                        f"sentinel monitor {master_name} 127.0.0.1 {mport} 2\n"
                        f"sentinel auth-pass {master_name} \"{password}\"\n"
                        f"sentinel down-after-milliseconds {master_name} 1000\n"
                        f"sentinel failover-timeout {master_name} 3000\n")
            self.sentinels.append(Proc(workdir, f"psentinel-{port}", [conf, "--sentinel"], port,
                                       sentinel_password, tls=pki))

    def start(self):
        try:
            self.master.start()
            self.replica.start()
            wait_for(lambda: self.replica.client().info("replication")["master_link_status"]
                     == "up", timeout=15, what="replica in sync")
            for s in self.sentinels:
                s.start()
            wait_for(lambda: all(s.client().execute_command("SENTINEL", "replicas", self.name)
                                 for s in self.sentinels), timeout=20,
                     what="sentinels know the replica")
            wait_for(lambda: all(int(dict(zip(*[iter(s.client().execute_command(
                "SENTINEL", "master", self.name))] * 2)).get(b"num-other-sentinels", 0)) >= 2
                for s in self.sentinels), timeout=20, what="sentinels know each other")
        except Exception:
            self.stop()
            raise
        return self

    def master_addr(self):
        for s in self.sentinels:
            if s.proc.poll() is None:
                with s.client() as c:
                    host, port = c.execute_command("SENTINEL", "get-master-addr-by-name",
                                                   self.name)
                return host.decode(), int(port)
        raise AssertionError("no sentinel left")

    def node_at(self, port):
        return self.master if self.master.port == port else self.replica

    def stop(self):
        for p in self.sentinels + [self.replica, self.master]:
            p.stop()
