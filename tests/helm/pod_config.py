#!/usr/bin/python3
"""Runs a rendered chart's jobwire.conf through `jobwire --check-config` as the pod would see it.

    pod_config.py RENDERED.yaml WORKDIR PKI_DIR JOBWIRE_BIN

From the rendered Deployment it lays out every Secret/ConfigMap volume the jobwire container
mounts under WORKDIR/root (the items of each volume become files), checks that every path the
configuration or the environment names (redis_tls_*_file, redis_tls_ca_dir, jwt_public_keys,
jwt_secret_file and their JOBWIRE_* variables) is one of those mounted files or directories,
fills them with real PEM material from PKI_DIR (ca.pem, client.pem, client.key, public.pem),
rewrites the paths into WORKDIR/root and runs the binary with the container's environment
(secretKeyRef values replaced by dummies). Then, as a self-test, it removes one referenced TLS
file and expects --check-config to fail naming it. Prints "ok ..." / "FAIL ..." lines; exit 1
on a FAIL.
"""
import os
import shutil
import subprocess
import sys

import yaml

rendered, work, pki, binary = sys.argv[1:5]
failed = False


def check(name, cond, detail=""):
    global failed
    print(("ok   " if cond else "FAIL ") + name)
    if not cond:
        failed = True
        for line in str(detail).splitlines()[:20]:
            print("    " + line)


docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
dep = next(d for d in docs if d["kind"] == "Deployment")
conf_text = next(d["data"]["jobwire.conf"] for d in docs
                 if d["kind"] == "ConfigMap" and "jobwire.conf" in d.get("data", {}))
pod = dep["spec"]["template"]["spec"]
container = next(c for c in pod["containers"] if c["name"] == "jobwire")
volumes = {v["name"]: v for v in pod.get("volumes", [])}
conf_path = container["args"][container["args"].index("--config") + 1]

shutil.rmtree(work, ignore_errors=True)
root = os.path.join(work, "root")
os.makedirs(root)
host = lambda p: root + p  # noqa: E731

# Mounted files and directories, as the kubelet would lay them out.
mounted_files, mounted_dirs = {}, {}
for m in container.get("volumeMounts", []):
    vol = volumes.get(m["name"], {})
    if m["mountPath"] == conf_path:
        continue
    src = vol.get("secret") or vol.get("configMap")
    mounted_dirs[m["mountPath"]] = m["name"]
    os.makedirs(host(m["mountPath"]), exist_ok=True)
    for item in (src or {}).get("items", []):
        path = os.path.join(m["mountPath"], item["path"])
        mounted_files[path] = m["name"]
        with open(host(path), "w") as f:
            f.write("unused\n")

# Path-valued settings in the file and the environment.
PEM = {"redis_tls_ca_file": "ca.pem", "redis_tls_cert_file": "client.pem",
       "redis_tls_key_file": "client.key", "jwt_public_keys": "public.pem",
       "jwt_secret_file": None, "redis_tls_ca_dir": "DIR"}
conf = {}
lines = []
for line in conf_text.splitlines():
    parts = line.split(None, 1)
    if parts and not line.startswith("#"):
        conf[parts[0]] = parts[1] if len(parts) > 1 else ""
    lines.append(line)

env = {"PATH": "/usr/bin:/bin"}
env_paths = {}
for e in container.get("env", []) or []:
    if "value" in e:
        env[e["name"]] = e["value"]
    elif "secretKeyRef" in e.get("valueFrom", {}):
        env[e["name"]] = "dummy-" + "x" * 48  # long enough for an HS256 secret
for name, key in (("JOBWIRE_JWT_PUBLIC_KEYS", "jwt_public_keys"), ("JOBWIRE_JWT_SECRET_FILE", "jwt_secret_file"),
                  ("JOBWIRE_REDIS_TLS_CA_FILE", "redis_tls_ca_file"), ("JOBWIRE_REDIS_TLS_CERT_FILE", "redis_tls_cert_file"),
                  ("JOBWIRE_REDIS_TLS_KEY_FILE", "redis_tls_key_file"), ("JOBWIRE_REDIS_TLS_CA_DIR", "redis_tls_ca_dir")):
    if env.get(name):
        env_paths[name] = key


def paths_of(key, value):
    value = value.strip('"')
    if not value:
        return []
    if key == "jwt_public_keys":
        return [item.split("=", 1)[-1].strip() for item in value.split(",") if item.strip()]
    return [value]


references = []  # (where, key, path)
for key in PEM:
    for p in paths_of(key, conf.get(key, "")):
        references.append(("jobwire.conf " + key, key, p))
for name, key in env_paths.items():
    for p in paths_of(key, env[name]):
        references.append(("env " + name, key, p))

for where, key, p in references:
    if PEM[key] == "DIR":
        check(f"{where} {p} is a mounted directory", p in mounted_dirs, sorted(mounted_dirs))
        if p in mounted_dirs:
            shutil.copy(os.path.join(pki, "ca.pem"), host(os.path.join(p, "extra-ca.pem")))
    else:
        check(f"{where} {p} is a mounted file", p in mounted_files, sorted(mounted_files))
        if p in mounted_files:
            src = PEM[key]
            if src:
                shutil.copy(os.path.join(pki, src), host(p))
            else:
                with open(host(p), "w") as f:
                    f.write("s" * 48 + "\n")


def rewrite(key, value):
    """The value of a path-valued setting with each path moved under the temporary root."""
    value = value.strip('"')
    if key == "jwt_public_keys":
        items = []
        for item in value.split(","):
            kid, sep, path = item.strip().rpartition("=")
            items.append(kid + sep + host(path))
        return ",".join(items)
    return host(value) if value else value


out = []
for line in lines:
    parts = line.split(None, 1)
    if parts and not line.startswith("#") and parts[0] in PEM and len(parts) > 1 and parts[1] != '""':
        line = parts[0] + " " + rewrite(parts[0], parts[1])
    out.append(line)
os.makedirs(os.path.dirname(host(conf_path)), exist_ok=True)
with open(host(conf_path), "w") as f:
    f.write("\n".join(out) + "\n")
for name, key in env_paths.items():
    env[name] = rewrite(key, env[name])


def run():
    return subprocess.run([binary, "--check-config", "--config", host(conf_path)], env=env,
                          capture_output=True, text=True, timeout=30)


r = run()
check(f"rendered jobwire.conf passes --check-config with the pod's environment and mounts "
      f"({len(references)} mounted paths)", r.returncode == 0 and "configuration ok" in r.stdout,
      r.stderr or r.stdout)
for where, key, p in references:
    if where.startswith("jobwire.conf") and PEM[key] not in (None, "DIR"):
        check(f"--check-config shows {key} at the mounted file", f"{key} {host(p)}" in r.stdout, r.stdout)

# Self-test: a missing mounted TLS file must stop --check-config, naming the path.
tls = [(w, k, p) for w, k, p in references if k.startswith("redis_tls_") and PEM[k] != "DIR"]
if tls:
    _, key, p = tls[0]
    os.rename(host(p), host(p) + ".away")
    r = run()
    os.rename(host(p) + ".away", host(p))
    check(f"--check-config fails when {p} is missing (self-test)",
          r.returncode != 0 and host(p) in (r.stderr + r.stdout), r.stderr or r.stdout)
sys.exit(1 if failed else 0)
