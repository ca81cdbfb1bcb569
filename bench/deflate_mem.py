#!/usr/bin/python3
"""RSS of jobwire per connection with and without permessage-deflate (1000 clients, each got
10 events of ~1.4 KB). Usage: deflate_mem.py PORT PID REDIS_PORT"""
import asyncio, json, sys, websockets, redis
port, pid, rport = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
async def client(i, ready, go):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?user=u{i}", max_queue=None)
    await ws.recv()
    await ws.send(json.dumps({"type": "subscribe", "id": "s", "scope": "user"}))
    while json.loads(await ws.recv())["type"] != "ack":
        pass
    ready.append(ws)
    return ws
async def main():
    n = 1000
    before = rss()
    ready = []
    socks = await asyncio.gather(*(client(i, ready, None) for i in range(n)))
    r = redis.Redis(port=rport)
    for k in range(10):
        for i in range(n):
            r.publish(f"ai:job:progress:j{i}", json.dumps({"jobId": f"j{i}", "userId": f"u{i}", "k": k, "text": "processing step " * 80}))
    for ws in socks:
        for k in range(10):
            await ws.recv()
    after = rss()
    print(f"{n} clients: RSS {before} kB -> {after} kB, {(after - before) / n:.2f} kB per connection")
    for ws in socks:
        await ws.close()
asyncio.run(main())
