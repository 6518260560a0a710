#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/seed-*.

Run from anywhere: `python3 fuzz/make_seeds.py`. The input formats are described at the top of
each fuzz_targets/<target>.rs; the seeds are small, readable op sequences that reach the
interesting states (full queue, close, owner died, unrecoverable, ...) so the fuzzer starts
from there.
"""

import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def u32(x):
    return struct.pack("<I", x & 0xFFFFFFFF)


def u64(x):
    return struct.pack("<Q", x & 0xFFFFFFFFFFFFFFFF)


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))


# ----------------------------------------------------------------------------------------
# open_hostile_segment: [kind, payload, mode, param, file bytes..., 16 op bytes]
T = "open_hostile_segment"
TYPES = [(0, 0, "value_u64"), (0, 1, "value_u8x3"), (1, 0, "array_u32"), (1, 1, "array_f64"),
         (2, 0, "queue_u64"), (2, 1, "queue_u8x16")]
LOCK_OPS = bytes([1, 1, 2, 1, 0, 3, 1, 2, 0, 1, 1, 0, 2, 3, 0, 1])
QUEUE_OPS = bytes([0, 0, 2, 7, 8, 4, 1, 3, 5, 6, 9, 2, 3, 0, 10, 11])
for kind, payload, label in TYPES:
    ops = QUEUE_OPS if kind == 2 else LOCK_OPS
    # mode 2, nothing written over: the untouched template segment.
    write(T, f"{label}-template", [kind, payload, 2, 0] + list(ops))
    # mode 3: the template header with an all-zero rest (fresh participant table and body).
    write(T, f"{label}-header-zero-body", [kind, payload, 3, 0] + [0] * 700 + list(ops))
# mode 2: scribbles on the template at a few offsets (init state, participants, body start).
write(T, "queue_u64-bad-init-state", [2, 0, 2, 1] + list(u32(0)) + list(QUEUE_OPS))
write(T, "value_u64-participant-taken", [0, 0, 2, 32] + list(u64((1 << 32) | 1)) + list(LOCK_OPS))
write(T, "value_u64-lock-word-self", [0, 0, 2, 48] + list(u64(1 << 10)) + list(LOCK_OPS))
# mode 6 (2 | 4, open_or_create): a published header forged to say 0 elements, with body and
# total sizes made consistent with that (4 participant records: body at 384; a Value<u64>
# body of 0 elements is its 64-byte lock line); and a published queue whose init state a
# peer reset to EMPTY.
write(T, "value_u64-ooc-zero-count", [0, 0, 6, 7] + list(u64(0) + u64(256) + u64(384) + u64(64) + u64(448))
      + list(LOCK_OPS))
write(T, "array_u32-ooc-zero-count", [1, 0, 6, 7] + list(u64(0) + u64(256) + u64(384) + u64(64) + u64(448))
      + list(LOCK_OPS))
write(T, "queue_u64-ooc-zero-capacity", [2, 0, 6, 7] + list(u64(0)) + list(QUEUE_OPS))
write(T, "queue_u64-ooc-init-state-empty", [2, 0, 6, 1] + list(u32(0)) + list(QUEUE_OPS))
# mode 1: a header prefix only, then garbage; mode 0: garbage alone.
write(T, "array_u32-prefix-only", [1, 0, 1, 40] + [0xA5] * 300 + list(LOCK_OPS))
write(T, "raw-garbage", [2, 0, 0, 0] + list(b"SHMPROC\x01") + [0x5A] * 250 + list(QUEUE_OPS))
# The synchronisation primitives (kind 4..7): the template, the template header over a zero
# body, and the template with its state line (body start, 4 participant records: offset 384)
# overwritten with all-ones words.
SYNC_OPS = {
    "semaphore": bytes([0, 0, 1, 3, 2, 4, 0, 6, 2, 2, 5, 0, 1, 3, 4, 6]),
    "bounded_semaphore": bytes([2, 0, 4, 2, 0, 0, 0, 1, 3, 6, 2, 2, 5, 0, 0, 0]),
    "event": bytes([0, 2, 3, 1, 2, 4, 0, 1, 0, 3, 1, 2, 4, 0, 0, 0]),
    "condition_lock": bytes([0, 3, 4, 5, 6, 1, 9, 2, 3, 0, 0, 0, 0, 0, 0, 0]),
    "barrier": bytes([0, 2, 1, 0, 2, 4, 0, 3, 2, 0, 0, 0, 0, 0, 0, 0]),
    "rlock": LOCK_OPS,
    "lock": LOCK_OPS,
    "condition_value": bytes([3, 0, 1, 200, 4, 6, 2, 5, 0, 0, 0, 0, 0, 0, 0, 0]),
}
for i, (label, ops) in enumerate(SYNC_OPS.items()):
    kind, payload = 4 + i // 2, i % 2
    write(T, f"{label}-template", [kind, payload, 2, 0] + list(ops))
    write(T, f"{label}-header-zero-body", [kind, payload, 3, 0] + [0] * 700 + list(ops))
    write(T, f"{label}-state-ones", [kind, payload, 2, 48] + [0xFF] * 64 + list(ops))

# ----------------------------------------------------------------------------------------
# queue_ops_vs_model: [cap, handles, op...], op = handle << 4 | code
T = "queue_ops_vs_model"
TRY_PUT, PUT0, PUT1, TRY_GET, GET0, GET1, CLOSE, DONE, JOIN0, JOIN1, OBS, REOPEN = range(12)


def op(h, code):
    return (h << 4) | code


# fill to full, Full, drain, task_done each, join
write(T, "fill-drain-join", [3, 1] + [op(0, TRY_PUT)] * 4 + [op(1, PUT0), op(0, OBS)]
      + [op(1, TRY_GET)] * 4 + [op(1, GET0), op(0, JOIN0)] + [op(1, DONE)] * 5 + [op(0, JOIN1), op(2, OBS)])
# close semantics: puts fail Closed, gets drain, then Closed
write(T, "close-drain", [7, 2, op(0, TRY_PUT), op(1, PUT1), op(2, CLOSE), op(0, TRY_PUT), op(1, PUT0),
                         op(0, OBS), op(2, TRY_GET), op(1, GET1), op(0, GET0), op(1, TRY_GET), op(0, OBS)])
# in_hand per handle, TooManyTaskDone, join waits for the holder, drop-and-reopen forgets it
write(T, "in-hand-reopen", [1, 2, op(0, PUT0), op(1, GET0), op(0, DONE), op(2, JOIN0), op(1, OBS),
                            op(1, REOPEN), 0, op(2, JOIN1), op(1, DONE), op(0, OBS)])
# open_or_create on an existing queue keeps its capacity
write(T, "open-or-create", [0, 0, op(0, TRY_PUT), op(1, REOPEN), 1, op(1, OBS), op(1, TRY_PUT),
                            op(0, REOPEN), 1, op(0, TRY_GET), op(0, OBS)])
# wrap-around: many put/get pairs on a small ring
write(T, "wrap-around", [1, 1] + [op(0, TRY_PUT), op(0, TRY_PUT), op(1, TRY_GET), op(1, DONE)] * 12
      + [op(0, OBS), op(1, TRY_GET), op(1, JOIN0)])
# timeouts on empty and full
write(T, "timeouts", [0, 0, op(0, GET1), op(1, PUT1), op(0, PUT1), op(1, GET1), op(0, JOIN1), op(1, OBS)])

# ----------------------------------------------------------------------------------------
# hostile_peer: [participants, cap, array len, op...]
T = "hostile_peer"
SECOND = 0x10
legit = [3, 0, 0, 0, 0, 0, 0, 0, 1,        # try_put 1
         4 | SECOND] + list(u64(2)) + [2, # put_timeout(2) on the second handle, 3 ms
        5, 0, 0, 0, 0, 0, 0, 0, 0,        # try_get
        7] + list(u64(0)) + [             # task_done
        7] + list(u64(1)) + [0,           # join_timeout 1 ms
        8] + list(u64(0)) + [             # len / is_empty / is_full
        9] + list(u64(2)) + [             # value try_lock, write + flush
        10 | SECOND] + list(u64(1)) + [0, # value lock_timeout on the second handle
        12] + list(u32(7)) + [1,          # array try_lock, set
        13 | SECOND] + list(u32(3)) + [0, 0]  # array lock_timeout, g[0] = x
write(T, "legit-only", [0, 3, 4] + legit)
# scribble the queue's control block (tail/head), the lock words, the participant records
H = lambda x: list(struct.pack("<H", x))
# (participants byte 0: 2 records, so every body starts at 256 + 64 = 320.)
# the queue's tail word
write(T, "scribble-queue-tail", [0, 3, 2, 2, 0] + H(320 // 8) + list(u64(5)) + legit)
# the value's lock word := token (record 0, generation 1): held by the live creator
write(T, "scribble-value-lock", [0, 1, 1, 2, 1] + H(320 // 8) + list(u64(1 << 10)) + legit)
# 16 bytes of 0xFF over the array's participant records, then reopen its second handle
write(T, "scribble-participants", [0, 7, 8, 0, 2] + H(256) + [15] + [0xFF] * 16 + legit + [15, 2])
# zero the queue's init state and the value's layout version, then reopen both
write(T, "scribble-header-then-reopen", [0, 0, 0, 0, 0] + H(8) + [3, 0, 0, 0, 0, 15, 0,
                                        0, 1] + H(12) + [3, 9, 0, 0, 0, 15, 1] + legit)
# a FULL slot word of a later lap in the queue's first slot
write(T, "scribble-slots", [0, 1, 1, 2, 0] + H((320 + 384) // 8) + list(u64(0x2A)) + legit)
# The synchronisation primitives (op bit 0x20; files: semaphore, event, barrier, rlock,
# condition, each body at 320 with 2 participant records).
SYNC = 0x20
sync_legit = [SYNC | 3, 0,                 # semaphore try_acquire (creator: kept)
              SYNC | 3 | SECOND, 1, 0,     # acquire_timeout on the second handle, 1 ms
              SYNC | 3, 2, SYNC | 3, 3,    # release; give the kept permit back
              SYNC | 3, 0, SYNC | 3, 4,    # take one and forget it
              SYNC | 5, 0,                 # event set
              SYNC | 5 | SECOND, 2, 0,     # wait_timeout on the second handle
              SYNC | 5, 3, SYNC | 5, 1,    # wait (set: returns at once); clear
              SYNC | 7, 0, 0,              # barrier wait_timeout alone: breaks it
              SYNC | 7 | SECOND, 2,        # reset
              SYNC | 9, 2,                 # rlock try_lock, nested lock, mark_consistent
              SYNC | 9 | SECOND, 1, 0,     # lock_timeout on the second handle
              SYNC | 11, 0, SYNC | 11, 3, 0,           # condition notify_one; wait_timeout
              SYNC | 11 | SECOND, 4, 0, SYNC | 11, 5,  # wait_timeout_while(true); wait_while(false)
              SYNC | 13, 1]                # reopen the second event handle
write(T, "sync-legit", [0, 3, 4] + sync_legit)
# all-ones over each primitive's state word, then the legitimate ops and a reopen of each
ones = []
for sel in range(5):
    ones += [SYNC | 2, sel] + H(320 // 8) + list(u64(-1))
write(T, "sync-state-ones", [0, 3, 4] + ones + sync_legit + [SYNC | 13, 0, SYNC | 13, 2, SYNC | 13, 3, SYNC | 13, 4])
# the rlock's lock word := the creator's token (held by a live owner), the semaphore's word a
# tagged claim on record 1
write(T, "sync-scribble-lock-and-tag", [0, 3, 4, SYNC | 2, 3] + H(320 // 8) + list(u64(1 << 10))
      + [SYNC | 2, 0] + H(320 // 8) + list(u64(1 | 1 << 32 | 1 << 42 | 5 << 45)) + sync_legit)

# ----------------------------------------------------------------------------------------
# value_array_ops: [nv, na, alen, v_init (16), a_fill (4), op...]
T = "value_array_ops"
HDR = [0, 0, 3] + list(u64(11)) + list(u64(22)) + list(u32(5))


def v(h, code):
    return (h << 5) | code


def a(h, code):
    return 0x80 | (h << 5) | code


# value: lock, write, flush, contention from the other handle, die, owner died, repair
write(T, "value-die-repair", HDR + [v(0, 0), v(0, 7)] + list(u64(1)) + list(u64(2)) + [v(0, 9), v(0, 7)]
      + list(u64(3)) + list(u64(4)) + [v(1, 0), v(1, 1), v(1, 2), v(0, 12), v(1, 3), v(0, 6), v(0, 13),
                                       v(0, 10), v(0, 11), v(1, 4), v(0, 14), v(0, 4)])
# value: owner died declined -> unrecoverable for everyone
write(T, "value-unrecoverable", HDR + [v(0, 3), v(0, 8), v(0, 12), v(1, 4), v(0, 11), v(1, 0), v(1, 5)]
      + list(u64(9)) + list(u64(9)) + [v(1, 2)])
# value: store/load, guard drop writes back only when changed
write(T, "value-store-load", HDR + [v(0, 5)] + list(u64(7)) + list(u64(8)) + [v(1, 4), v(1, 0), v(1, 6),
                                                                              v(1, 11), v(0, 14), v(0, 4)])
# array: set, index write, flush, die without snapshot, owner died, repair, to_vec
write(T, "array-die-repair", HDR + [a(0, 0), a(0, 6), 1] + list(u32(77)) + [a(1, 0), a(1, 2), a(0, 15), 0,
                                    a(1, 1), a(1, 5), 1, a(1, 8), 2] + list(u32(99)) + [a(1, 13), 0, a(1, 14), 0,
                                                                                         a(0, 17), a(0, 4)])
# array: snapshot semantics (get vs g[i] after a DerefMut write), write_from / read_into
write(T, "array-snapshot", HDR + [a(0, 3), a(0, 8), 0] + list(u32(1)) + [a(0, 5), 0, a(0, 7), 0, a(0, 11), 1, 2]
      + list(u32(4)) + list(u32(5)) + [a(0, 10), 0, a(0, 9), 0, a(0, 12), 0, a(0, 16), 0, a(0, 14), 0, a(1, 4)])
# array: declined recovery, reopen handles
write(T, "array-unrecoverable-reopen", HDR + [a(0, 0), a(0, 15), 0, a(1, 3), a(1, 14), 0, a(0, 17), a(0, 0),
                                              a(1, 4), v(0, 14), v(0, 0), v(1, 2)])
# ----------------------------------------------------------------------------------------
# message_slots: [cap, max, preamble, op...], op = variant << 6 | ring << 4 | code
T = "message_slots"
BQ, MQ, P01, P10 = range(4)
CELL, LENW, ANY, WORD, CTRL, SEND, SEND2, RECV, RECV2, RECV3, OBS, CLOSE, TASKS = range(13)
MAXES = [0, 3, 8, 16, 24, 40, 56, 57, 64, 100, 120, 248]
M40, M56, M57, M8 = MAXES.index(40), MAXES.index(56), MAXES.index(57), MAXES.index(8)


def mop(ring, code, variant=0):
    return (variant << 6) | (ring << 4) | code


def send_bytes(ring, n, pattern=0x10, variant=0):
    # payload_bytes: [len, pattern (even: generated)], then the timeout byte
    return [mop(ring, SEND, variant), n, pattern & 0xFE, 1]


def send_rec(ring, a, b, variant=0):
    # payload_rec: [a, b], then the timeout byte
    return [mop(ring, SEND, variant), a, b, 1]


def recv(ring, variant=0):
    # [timeout, buffer size]
    return [mop(ring, RECV, variant), 1, 2]


def len_word(ring, cell, how, *rest):
    return [mop(ring, LENW), cell, how] + list(rest)


def cell_bytes(ring, cell, within, data):
    return [mop(ring, CELL), cell, within, len(data) - 1] + list(data)


ALL_RECV = [b for r in (BQ, MQ, P01, P10) for b in recv(r, 1)]
# Clean traffic on every ring: fill, observe, drain, observe.
write(T, "legit-all-rings", [2, M40, 2] + [mop(r, OBS) for r in range(4)] + ALL_RECV + ALL_RECV
      + send_bytes(BQ, 12) + send_rec(MQ, 5, 9) + send_rec(P01, 4, 2) + send_bytes(P10, 30, 0x22, 1)
      + [mop(r, OBS) for r in range(4)] + ALL_RECV + ALL_RECV)
# A length word just over the maximum on the first queued message of each ring: Corrupted,
# then the second message arrives intact.
write(T, "len-over-max", [2, M56, 2] + [b for r in range(4) for b in len_word(r, 0, 2, 0)]
      + ALL_RECV + ALL_RECV + [mop(r, OBS) for r in range(4)] + ALL_RECV)
# Huge length words (u64::MAX, a raw high word) on both cells.
write(T, "len-huge", [1, M8, 1] + len_word(BQ, 0, 3, 0) + len_word(MQ, 0, 0) + list(u64(1 << 63))
      + len_word(P01, 0, 3, 7) + len_word(P10, 0, 0) + list(u64(0xFFFF_FFFF)) + ALL_RECV + ALL_RECV)
# Smaller length words (truncating messages) and garbage bytes in the message bodies of the
# typed queue and the pipe: Decode errors, then clean messages.
write(T, "short-len-and-garbage", [3, M57, 3] + len_word(MQ, 0, 1, 1) + len_word(P01, 1, 1, 0)
      + cell_bytes(MQ, 1, 8, [0xFF] * 8) + cell_bytes(P10, 0, 9, [0x80] * 16)
      + cell_bytes(BQ, 2, 8, b"scribbled!") + ALL_RECV + ALL_RECV + ALL_RECV + ALL_RECV)
# Raw bytes into the typed queue (variant 3) and typed receives of raw pipe messages.
write(T, "raw-into-typed", [2, M40, 0] + send_bytes(MQ, 3, 0xFE, 3) + send_bytes(MQ, 0, 0, 3)
      + send_rec(MQ, 1, 1) + recv(MQ, 0) + recv(MQ, 0) + recv(MQ, 3) + send_bytes(P10, 5, 0x44, 1)
      + recv(P10, 0) + [mop(P10, OBS)])
# Scribbles in control blocks and slot words (rings turn inexact), then traffic.
write(T, "control-and-slots", [3, 4, 2] + [mop(BQ, CTRL), 0, 0] + list(u64(5))
      + [mop(MQ, CTRL), 8, 0] + list(u64(2)) + [mop(P01, CTRL), 48, 0] + list(u64(0x2A))
      + [mop(P10, CTRL), 16, 0] + list(u64(1)) + ALL_RECV + ALL_RECV
      + send_bytes(BQ, 3) + send_rec(MQ, 2, 2) + send_rec(P01, 1, 1) + ALL_RECV)
# Two writes into the pipe's participant records (end 0 may then see end 1 as gone), then
# close the byte queue, drop pipe end 1, and drain both.
write(T, "pipe-meta-then-drop", [2, M40, 2] + [mop(P01, WORD)] + list(struct.pack("<H", 320 // 8))
      + list(u64(1 << 33)) + [mop(P01, ANY)] + list(struct.pack("<H", 260)) + [7] + [0xFF] * 8
      + [mop(P10, OBS)] + recv(P10, 2) + [mop(P01, CLOSE), 0, mop(BQ, CLOSE), 0] + send_bytes(BQ, 4)
      + send_rec(P01, 3, 3) + recv(P10, 1) + recv(P10, 1) + recv(P10, 0) + recv(BQ, 2) + recv(BQ, 0)
      + recv(BQ, 0) + [mop(BQ, OBS), mop(P10, OBS), mop(BQ, TASKS), 1, mop(MQ, TASKS), 0])
# max_message_size 0: only empty byte messages fit.
write(T, "max-zero", [0, 0, 1] + send_bytes(BQ, 0) + send_bytes(BQ, 1) + send_rec(MQ, 0, 0)
      + len_word(BQ, 0, 2, 0) + ALL_RECV + ALL_RECV)


# ----------------------------------------------------------------------------------------
# job_frames: [key: 16, mode, last: u64, ...] (see fuzz_targets/job_frames.rs)
T = "job_frames"
KEY = list(b"0123456789abcdef")


def frame_spec(pod, size, id_, tramp, func, delta, items, mutations, cut):
    out = [pod, size] + list(u64(id_) + u64(tramp) + u64(func)) + [delta, len(items)]
    for it in items:
        out += [len(it)] + list(it)
    out += [len(mutations)]
    for at, xor in mutations:
        out += list(struct.pack("<H", at)) + [xor]
    return out + list(struct.pack("<H", cut))


# Sequence numbers are `last >> 2`: last = 4 means the child accepted frame 1.
ARGS = [b"\x07", b"\x03abc"]
write(T, "task-untouched", KEY + [1] + list(u64(4)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 0, ARGS, [], 0))
write(T, "pod-untouched", KEY + [1] + list(u64(4)) + frame_spec(1, 8, 4, 0x1000, 0x2000, 0, [bytes(16)], [], 0))
# The function offset (bytes 41..49) moved by 1, 5 and 16; the trampoline's (33..41) by 1.
for label, at, xor in [("func+1", 41, 1), ("func+5", 41, 5), ("func+16", 41, 16), ("tramp+1", 33, 1),
                       ("mac", 9, 0x80), ("seq", 1, 1), ("kind", 0, 5)]:
    write(T, f"task-{label}", KEY + [1] + list(u64(4)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 0, ARGS, [(at, xor)], 0))
write(T, "pod-item-size", KEY + [1] + list(u64(4)) + frame_spec(1, 8, 4, 0x1000, 0x2000, 0, [bytes(16)], [(53, 1)], 0))
# Arguments rewritten (accepted: they are not authenticated) and an item length that
# overruns the frame (malformed).
write(T, "task-args", KEY + [1] + list(u64(4)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 0, ARGS, [(57, 0x80)], 0))
write(T, "task-item-length", KEY + [1] + list(u64(4)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 0, ARGS, [(53, 9)], 0))
write(T, "task-truncated", KEY + [1] + list(u64(4)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 0, ARGS, [], 40))
write(T, "task-replay", KEY + [2] + list(u64(12)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 1, ARGS, [], 0))
write(T, "task-other-key", KEY + [3] + list(u64(4)) + frame_spec(0, 0, 3, 0x1000, 0x2000, 0, ARGS, [], 0))
write(T, "raw-short", KEY + [0] + list(u64(0)) + [2] + [0] * 20)

print("seeds written under", ROOT)
