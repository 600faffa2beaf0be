"""Run a command with the kernel keyring's system calls refused, as a container's seccomp profile does.

    python tests/helpers/no_keyctl.py COMMAND [ARGS...]

Installs a seccomp filter that answers add_key(2), request_key(2) and keyctl(2) with EPERM
(what Docker's default profile does), then executes the command in this process, so the
real executable runs where the keyring cannot be had. Exit 97 if the filter cannot be set.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

# (audit arch, add_key, request_key, keyctl)
ARCHES = {"x86_64": (0xC000003E, 248, 249, 250), "aarch64": (0xC00000B7, 217, 218, 219)}
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
LD_W_ABS, JEQ_K, RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO, EPERM = 0x7FFF0000, 0x00050000, 1


def install() -> bool:
    arch = ARCHES.get(os.uname().machine)
    if arch is None:
        return False
    audit, add_key, request_key, keyctl = arch

    def ins(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    program = b"".join([
        ins(LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        ins(JEQ_K, 0, 4, audit),  # another arch: allow
        ins(LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        ins(JEQ_K, 3, 0, add_key),
        ins(JEQ_K, 2, 0, request_key),
        ins(JEQ_K, 1, 0, keyctl),
        ins(RET_K, 0, 0, RET_ALLOW),
        ins(RET_K, 0, 0, RET_ERRNO | EPERM),
    ])
    buf = ctypes.create_string_buffer(program, len(program))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return False
    return libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) == 0


if __name__ == "__main__":
    if not install():
        sys.exit(97)
    os.execv(sys.argv[1], sys.argv[1:])
