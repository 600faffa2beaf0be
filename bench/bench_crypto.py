"""Benchmark: `procore-setup token` on an encrypted credentials file against a plain one.

Two files with a valid token each (no refresh), one plain and one encrypted (passphrase
in PROCORE_SETUP_PASSPHRASE), timed as subprocesses in the same run, interleaved; the
script prints the medians, their difference and ratio, and the cost of the scrypt key
derivation alone, which is what the difference should be made of.

    .venv/bin/python bench/bench_crypto.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from procore_setup import crypto
from procore_setup.testing import FakeProcore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import EXE, clean_env, difference, header, interleaved, login, timed  # noqa: E402

PASSPHRASE = "bench passphrase, long enough"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    base = clean_env()
    with FakeProcore() as fake, tempfile.TemporaryDirectory() as tmp:
        plain_env = dict(base, PROCORE_SETUP_CONFIG=os.path.join(tmp, "plain", "credentials.toml"))
        enc_env = dict(base, PROCORE_SETUP_CONFIG=os.path.join(tmp, "enc", "credentials.toml"),
                       PROCORE_SETUP_PASSPHRASE=PASSPHRASE)
        login(fake, plain_env)
        login(fake, enc_env)
        timed([EXE, "encrypt"], enc_env)
        plain, enc = interleaved(([EXE, "token"], plain_env), ([EXE, "token"], enc_env), args.runs)
        refreshes = fake.counts["token:refresh_token"]

    kdf = []
    for _ in range(max(5, args.runs // 3)):
        start = time.perf_counter()
        crypto.derive_key(PASSPHRASE, os.urandom(crypto.SALT_BYTES))
        kdf.append(time.perf_counter() - start)

    mp, me, mk = statistics.median(plain), statistics.median(enc), statistics.median(kdf)
    mib = 128 * crypto.SCRYPT_N * crypto.SCRYPT_R / 2**20
    print(header(args.runs))
    print(f"procore-setup token, plain file:      median {mp * 1000:.1f} ms")
    print(f"procore-setup token, encrypted file:  median {me * 1000:.1f} ms")
    print(f"{difference(mp, me)}; refreshes during the run: {refreshes}")
    print(f"scrypt alone (n=2**{crypto.SCRYPT_N.bit_length() - 1}, r={crypto.SCRYPT_R}, p={crypto.SCRYPT_P}, "
          f"{mib:.0f} MiB): median {mk * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
