#!/usr/bin/env python3
"""Persistent reservations through the Linux PR ioctls (linux/pr.h), stdlib only.

prclient.py FILE register OLD NEW [FLAGS]
prclient.py FILE reserve KEY TYPE [FLAGS]
prclient.py FILE release KEY TYPE [FLAGS]
prclient.py FILE preempt|preempt-abort OLD NEW TYPE [FLAGS]
prclient.py FILE clear KEY [FLAGS]
prclient.py FILE read-reservation
prclient.py FILE read-keys NUM_KEYS

Prints "ret N" (the ioctl's return value: 0, or a positive PR_STS_* status)
plus any output fields, or "errno NAME" when the ioctl fails.
"""
import errno
import fcntl
import os
import struct
import sys


def _ioc(direction, nr, size):
    return direction << 30 | size << 16 | ord("p") << 8 | nr


W, R = 1, 2
IOC = {
    "register": (_ioc(W, 200, 24), "<QQII"),
    "reserve": (_ioc(W, 201, 16), "<QII"),
    "release": (_ioc(W, 202, 16), "<QII"),
    "preempt": (_ioc(W, 203, 24), "<QQII"),
    "preempt-abort": (_ioc(W, 204, 24), "<QQII"),
    "clear": (_ioc(W, 205, 16), "<QII"),
    "read-keys": (_ioc(W | R, 206, 16), "<IIQ"),
    "read-reservation": (_ioc(R, 207, 16), "<QII"),
}


def main(argv):
    path, op, args = argv[1], argv[2], [int(a, 0) for a in argv[3:]]
    req, fmt = IOC[op]
    fields = {
        "register": lambda: (args[0], args[1], args[2] if len(args) > 2 else 0, 0),
        "reserve": lambda: (args[0], args[1], args[2] if len(args) > 2 else 0),
        "release": lambda: (args[0], args[1], args[2] if len(args) > 2 else 0),
        "preempt": lambda: (args[0], args[1], args[2], args[3] if len(args) > 3 else 0),
        "preempt-abort": lambda: (args[0], args[1], args[2], args[3] if len(args) > 3 else 0),
        "clear": lambda: (args[0], args[1] if len(args) > 1 else 0, 0),
        "read-keys": lambda: (0, args[0], 0),
        "read-reservation": lambda: (0, 0, 0),
    }[op]()
    buf = bytearray(struct.pack(fmt, *fields))
    flags = os.O_RDONLY if op.startswith("read") else os.O_RDWR
    try:
        fd = os.open(path, flags)
    except OSError as e:
        print("open errno", errno.errorcode.get(e.errno, e.errno))
        return 0
    try:
        ret = fcntl.ioctl(fd, req, buf, True)
    except OSError as e:
        print("errno", errno.errorcode.get(e.errno, e.errno))
        return 0
    finally:
        os.close(fd)
    out = ""
    if op == "read-reservation":
        key, gen, typ = struct.unpack(fmt, buf)
        out = " key 0x%x generation %d type %d" % (key, gen, typ)
    elif op == "read-keys":
        gen, num, _ = struct.unpack(fmt, buf)
        out = " generation %d num_keys %d" % (gen, num)
    print("ret %d%s" % (ret, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
