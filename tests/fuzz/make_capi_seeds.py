#!/usr/bin/env python3
"""Writes the seed programs of fuzz_capi (corpus/capi/seed-*) in the byte encoding that
fuzz_capi.cpp's Program reads: an opcode byte, then each argument in order. Rerun it after
changing that encoding: python3 tests/fuzz/make_capi_seeds.py"""
import os
import struct

OPS = {name: i for i, name in enumerate(
    "malloc free record_stream get_stats set_budget get_budget empty_cache step_begin step_end "
    "register region use tensor_free plan_action offload offload_async offload_done copy_back "
    "note_seconds note_other_bytes note_peak set_link following prefetch_due prefetch "
    "wait_ready synchronize shutdown".split())}

NULL_STREAM = b"\x03"
GARBAGE_STREAM = b"\x02" + struct.pack("<Q", 0xdeadbeef)
DEVICE0 = b"\x01"


def size(n):  # size_arg
    if n < 0:
        return b"\x04" + struct.pack("<q", n)
    if n < 256:
        return bytes([0, n])
    if n < 65536:
        return b"\x01" + struct.pack("<H", n)
    if n < 8 << 20:
        return b"\x02" + struct.pack("<I", n)
    return b"\x04" + struct.pack("<Q", n & (2**64 - 1))


def double(x):  # double_arg
    return b"\x05" + struct.pack("<d", x)


def tid(i):  # id_arg: the i-th id returned so far
    return bytes([3, i])


def raw_id(v):
    return b"\x00" + struct.pack("<q", v)


class P:
    def __init__(self):
        self.b = b""

    def op(self, name, *args):
        self.b += bytes([OPS[name]]) + b"".join(args)
        return self

    def malloc(self, n, stream=NULL_STREAM, device=DEVICE0):
        return self.op("malloc", size(n), device, stream)

    def free(self, i, n=None):  # block i, its own size unless n
        return self.op("free", b"\x00", bytes([i]),
                       b"\x01" if n is None else b"\x00" + size(n), DEVICE0, NULL_STREAM)

    def register(self, nbytes, on_block=False):
        return self.op("register", struct.pack("<I", nbytes - 1), b"\x01", b"\x01",
                       b"\x00" if on_block else b"\x01", NULL_STREAM)

    def region(self, outs, ins, seconds):
        return self.op("region", bytes([len(outs), len(ins)]),
                       b"".join(tid(i) for i in outs), b"".join(tid(i) for i in ins),
                       b"\x00", double(seconds))

    def step(self, base, n=4, nbytes=60000, regions=True, queries=False, offload=False):
        """A step of n tensors, each (with regions: made by a region from the previous) used
        twice. With queries it asks the plan about each tensor and for the copies back due;
        with offload it offloads each tensor after its first use and prefetches it back before
        the second (neither is a point of the step: the program stays the plan's)."""
        self.op("step_begin")
        for k in range(n):
            self.register(nbytes)
            if k and regions:
                self.region([base + k], [base + k - 1], 0.001)
            self.op("use", tid(base + k))
            if queries:
                self.op("plan_action", b"\x00", tid(base + k)).op("following")
            if offload:
                self.op("offload" if k % 2 else "offload_async", tid(base + k), NULL_STREAM)
            self.op("note_seconds", double(0.002))
        for k in reversed(range(n)):
            self.op("prefetch_due", bytes([8, 1]))
            if offload:
                self.op("offload_done", tid(base + k), b"\x01")
                self.op("prefetch", tid(base + k), b"\x01", b"\x01", NULL_STREAM)
                self.op("wait_ready", tid(base + k), NULL_STREAM)
            self.op("use", tid(base + k))
            self.op("tensor_free", tid(base + k))
            self.op("note_seconds", double(0.002))
        return self.op("step_end", b"\x01")


def write(name, p):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "capi",
                        "seed-" + name)
    with open(path, "wb") as f:
        f.write(p.b)


# Allocation, stats and the budget, as PyTorch's pluggable allocator calls them.
p = P().malloc(1 << 20).malloc(100).op("get_stats", b"\x01").op("record_stream", b"\x00",
                                                                  bytes([0]), NULL_STREAM)
p.free(1).free(0).op("empty_cache").op("get_budget").op("set_budget", size(16 << 20))
p.malloc(4 << 20).op("get_stats", b"\x01").op("synchronize", NULL_STREAM)
write("alloc-free", p)

# Arguments every call must refuse with a message.
p = P().malloc(-1).malloc(2**63 - 1).malloc(1 << 30).malloc(64, device=b"\x00\x07\x00\x00\x00")
p.malloc(64, stream=GARBAGE_STREAM).malloc(256)
p.free(0, 255).op("free", b"\x01", b"\x05\x02" + struct.pack("<Q", 0x1000), size(64), DEVICE0,
                  NULL_STREAM)
p.op("free", b"\x01", b"\x04\x00" + struct.pack("<I", 8), size(248), DEVICE0, NULL_STREAM)
p.free(0).free(0)  # a double free
p.op("record_stream", b"\x05\x00", NULL_STREAM).op("record_stream", b"\x05\x02" +
                                                   struct.pack("<Q", 0x1234), GARBAGE_STREAM)
p.op("set_budget", size(0)).op("set_budget", size(2**64 - 1)).op("get_stats", b"\x00")
p.op("synchronize", GARBAGE_STREAM).op("empty_cache").op("get_budget")
write("bad-arguments", p)

# Steps observed, then planned and followed: plan_action, offloads, copies back, prefetches.
p = P().op("set_budget", size(150000)).op("set_link", b"\x02" + struct.pack("<I", 1000000),
                                          b"\x02" + struct.pack("<I", 1000000))
p.step(0)
p.op("step_begin")
for k in range(4):
    p.register(60000)
    if k:
        p.region([4 + k], [4 + k - 1], 0.001)
    p.op("plan_action", b"\x00", tid(4 + k)).op("use", tid(4 + k))
    p.op("offload", tid(4 + k), NULL_STREAM) if k % 2 else p.op("offload_async", tid(4 + k),
                                                                  NULL_STREAM)
p.op("following").op("note_other_bytes", size(1000)).op("note_seconds", double(0.01))
p.op("offload_done", tid(5), b"\x01").op("offload_done", tid(4), b"\x00")
p.op("prefetch_due", bytes([8, 1]))
p.op("copy_back", tid(7), b"\x01", b"\x01", NULL_STREAM).op("use", tid(7))
p.op("prefetch", tid(6), b"\x01", b"\x01", NULL_STREAM).op("wait_ready", tid(6), NULL_STREAM)
p.op("synchronize", NULL_STREAM).op("use", tid(6))
p.op("note_peak", size(1 << 20)).op("step_end", b"\x01")
p.step(8)
write("plan-steps", p)

# The same step three times: observed, then planned and followed (recomputes), with the
# plan's answers asked for.
p = P().op("set_budget", size(150000))
p.step(0).step(4, queries=True).step(8, queries=True)
write("followed-steps-recompute", p)

# No regions, a link rate: the plan offloads; the steps carry offloads and prefetches out.
p = P().op("set_budget", size(200000)).op("set_link", b"\x02" + struct.pack("<I", 1000000),
                                          b"\x02" + struct.pack("<I", 1000000))
p.step(0, regions=False).step(4, regions=False, queries=True, offload=True)
p.step(8, regions=False, queries=True, offload=True).op("set_budget", size(100000))
p.step(12, regions=False, queries=True, offload=True)
write("followed-steps-offload", p)

# Tensors on memento_malloc blocks: offloads mark the block, copies back into blocks.
p = P().op("set_link", b"\x02" + struct.pack("<I", 100000), b"\x02" + struct.pack("<I", 100000))
for _ in range(6):
    p.malloc(65536)
p.op("step_begin")
for k in range(3):
    p.register(65536, on_block=True).op("use", tid(k))
p.op("offload", tid(0), NULL_STREAM).op("offload_async", tid(1), NULL_STREAM)
p.op("offload_done", tid(1), b"\x01")
p.op("copy_back", tid(0), b"\x01", b"\x00", NULL_STREAM)
p.op("prefetch", tid(1), b"\x01", b"\x00", NULL_STREAM).op("tensor_free", tid(1))
p.op("wait_ready", tid(1), NULL_STREAM).op("empty_cache").op("step_end", b"\x00")
p.op("step_begin").op("offload", tid(2), NULL_STREAM).op("step_end", b"\x01")
write("tensors-on-blocks", p)

# The planning API used wrongly: out of a step, stale and unknown ids, bad regions, NaNs.
p = P().op("use", tid(0)).op("step_end", b"\x01").op("note_seconds", double(1.0))
p.op("step_begin").op("step_begin").register(1000).register(1000)
p.op("register", struct.pack("<I", 0), b"\x00", b"\x01", b"\x01", NULL_STREAM)  # 0 bytes
p.op("register", struct.pack("<I", 9), b"\x01", b"\x00", NULL_STREAM)  # NULL
p.op("region", b"\x00\x00", b"\x00", double(0))
p.op("region", b"\x01\x01", tid(0), tid(0), b"\x00", double(0))
p.op("region", b"\x01\x01", tid(0), tid(1), b"\x03", double(0))
p.op("region", b"\x01\x00", tid(0), b"\x00", double(float("nan")))
p.op("region", b"\x01\x00", tid(0), b"\x00", double(-1.0))
p.op("region", b"\x01\x00", tid(0), b"\x00", double(float("inf")))
p.op("use", raw_id(-5)).op("use", raw_id(1 << 40)).op("tensor_free", tid(0))
p.op("use", tid(0)).op("tensor_free", tid(0)).op("offload", tid(0), NULL_STREAM)
p.op("offload_done", tid(1), b"\x00").op("copy_back", tid(1), b"\x00", NULL_STREAM)
p.op("prefetch", tid(1), b"\x00", NULL_STREAM).op("plan_action", b"\x01", tid(1))
p.op("note_seconds", double(float("nan"))).op("note_seconds", double(-2.0))
p.op("set_link", double(float("inf")), double(1e9)).op("set_link", double(0), double(1e9))
p.op("set_link", double(1e-300), double(5e-324)).op("prefetch_due", b"\x04\x00")
p.op("offload", tid(1), GARBAGE_STREAM).op("step_end", b"\x01").op("use", tid(1))
p.op("step_begin").op("use", tid(1)).op("shutdown").op("step_end", b"\x01")
write("misuse", p)
