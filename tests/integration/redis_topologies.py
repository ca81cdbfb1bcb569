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
