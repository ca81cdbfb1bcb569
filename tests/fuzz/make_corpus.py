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

# fuzz_event: user channels ("rec:", "u/") and the payloads jansson's defaults refuse
evb = lambda ch, payload: bytes([len(ch.encode())]) + ch.encode() + payload.encode()
write_extra = lambda target, name, data: open(os.path.join(HERE, "corpus", target, name), "wb").write(
    data if isinstance(data, bytes) else data.encode())
for name, data in [
    ("user-channel", evb("rec:u_42", '{"items":[1,2],"userId":"ignored"}')),
    ("user-channel-note", evb("u/\u00e9:x", '"note"')),
    ("big-integers", evb("ai:job:status", '{"jobId":123456789012345678901234567890,"userId":-7}')),
    ("nul-and-surrogate", evb("ai:job:progress:j", '{"s":"a\\u0000b","t":"\\ud800"}')),
    ("internal", evb("ai:job:__jobwire__:inst:m:1", "")),
]:
    write_extra("fuzz_event", name, data)

write("fuzz_json", [
    '{"jobId":"j1","userId":42,"p":[1,2.5e-3,{"x":null}],"s":"\\u00e9\\ud83d\\ude00"}',
    '[true,false,null,"",{},[],-0,"\\\\\\/"]',
    '{"userId":"u","userId":"v","jobId":{"jobId":1}}',
    ' {"a" : [ 1 , 2 ] , "jobId" : -12345678901234567890 } ',
    '"\\ud800\\u0000"',
    '1e400',
    '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]',
    '{"\\u0000":"x"}',
    b'"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"',
    b'"\xed\xa0\x80"',
])

# fuzz_outq: a program of queue operations (see fuzz_outq.c)
write("fuzz_outq", [
    bytes([0, 0, 0, 1, 0, 8, 4, 4, 4]),
    bytes([7, 0, 0, 0, 1, 0, 0, 1, 0, 4, 4, 4]),
    bytes([7, 1, 6, 200, 0, 0, 0, 4, 0, 1, 6, 100, 0, 0, 4, 4]),
    bytes([7, 2, 7, 3, 0, 12, 1, 13, 2, 14, 0, 0, 1, 1, 4, 0, 0, 4, 4, 4, 6, 0, 0, 3]),
    bytes([7, 0, 0, 8] + [0, 0, 0, 1, 0, 2, 0, 3] * 40 + [4] * 20),
])

# fuzz_resp: max_bytes/16, max_elements, chunk size - 1, then RESP
resp_slots = ("*2\r\n*3\r\n:0\r\n:8191\r\n*3\r\n$8\r\n10.0.0.2\r\n:7001\r\n$2\r\nid\r\n"
              "*4\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7002\r\n$2\r\nid\r\n"
              "*3\r\n$1\r\n?\r\n:7003\r\n$2\r\nid\r\n")
write("fuzz_resp", [
    bytes([255, 63, 255]) + resp_slots.encode(),
    bytes([1, 3, 0]) + resp_slots.encode(),
    bytes([2, 5, 7]) + b"*4\r\n$8\r\npmessage\r\n$8\r\nai:job:*\r\n$15\r\nai:job:status:j\r\n$2\r\n{}\r\n",
    bytes([16, 10, 3]) + b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n",
    bytes([0, 0, 1]) + b"-MOVED 3999 127.0.0.1:6381\r\n:12\r\n*-1\r\n$5\r\nhello\r\n",
    bytes([64, 63, 255]) + b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n",
])
