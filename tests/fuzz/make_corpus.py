#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/<target>/ (small, real inputs). Re-run after a
protocol change; the fuzzers only read the files. HS256 seeds use the secret and clock of
fuzz_token.c, so they verify and the fuzzer reaches the claim checks."""
import base64, hashlib, hmac, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"jobwire-fuzz-secret-0123456789abcdef"
EXP = 1700003600


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(header, claims, key=SECRET, sig=None):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    if sig is None:
        sig = b64(hmac.new(key, f"{h}.{p}".encode(), hashlib.sha256).digest())
    return f"{h}.{p}.{sig}"


def write(target, items):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(items):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, f"seed{i:02d}"), "wb") as f:
            f.write(data)


base = {"sub": "user_1", "exp": EXP, "aud": "jobwire"}
write("fuzz_token", [
    token({"alg": "HS256", "typ": "JWT"}, base),
    token({"alg": "HS256"}, dict(base, roles=["user", "admin"], jti="t-1")),
    token({"alg": "HS256"}, dict(base, roles="admin", nbf=1699999000, iss="https://id")),
    token({"alg": "HS256"}, dict(base, aud=["x", "jobwire"])),
    token({"alg": "HS256"}, dict(base, exp=1600000000)),
    token({"alg": "HS256"}, {"sub": "user_1"}),
    token({"alg": "HS256", "kid": "k1"}, base),
    token({"alg": "none"}, base, sig=""),
    token({"alg": "RS256", "kid": "k1"}, base, sig=b64(b"\x01" * 256)),
    token({"alg": "ES256"}, base, sig=b64(b"\x02" * 64)),
    token({"alg": "HS256", "crit": ["exp"]}, base),
    "eyJhbGciOiJIUzI1NiJ9.e30.",
    "a.b.c",
])

write("fuzz_protocol", [
    '{"type":"subscribe","id":"1","jobs":["job_123456"],"kinds":["progress","complete","error"]}',
    '{"type":"subscribe","id":"2","scope":"user"}',
    '{"type":"subscribe","id":3,"scope":"all"}',
    '{"type":"unsubscribe","id":"3","jobs":["job_123456","job_2"]}',
    '{"type":"unsubscribe","scope":"user"}',
    '{"type":"ping","id":"4"}',
    '{"type":"ping"}',
    '{"type":"subscribe","jobs":[],"scope":"user"}',
    '{"type":"subscribe","jobs":["a\\u0001b"]}',
    '{"type":"subscribe","jobs":["j"],"kinds":["nope"]}',
    '{"type":"auth","token":"x.y.z"}',
    '[1,2,3]',
    '{"type":',
])

ev = lambda ch, payload: bytes([len(ch)]) + ch.encode() + payload.encode()
write("fuzz_event", [
    ev("ai:job:progress:job_1", '{"userId":"u1","progress":45}'),
    ev("ai:job:status:job_1", '{"eventType":"job_status_update","jobId":"job_1","userId":"u1","status":"processing"}'),
    ev("ai:job:complete:job:with:colons", '{"userId":7,"result":{"url":"x"}}'),
    ev("ai:job:error:job_9", '{"userId":"u2","error":"boom"}'),
    ev("ai:job:status", '{"jobId":"job_3","userId":"u3","status":"queued"}'),
    ev("ai:job:status", '{"jobId":42}'),
    ev("ai:job:custom:job_4", '{"userId":"u4"}'),
    ev("ai:job:progress:job_5", 'not json'),
    ev("other:channel", '{"userId":"u1"}'),
    ev("ai:job:progress:", '{"userId":"u1"}'),
    ev("ai:job:progress:job_6", '{"userId":""}'),
    ev("ai:job:progress:job_7", '[1,2]'),
])
