"""Benchmark: `procore-setup token` on an encrypted credentials file against a plain one.

Two files with a valid token each (no refresh), one plain and one encrypted (passphrase
in PROCORE_SETUP_PASSPHRASE), timed as subprocesses in the same run, interleaved: the plain
file, the encrypted one as it is run (the derived key in the kernel keyring's key cache,
where the machine allows it), and the encrypted one with the cache off
(PROCORE_SETUP_KEY_CACHE=0: scrypt on every run). The script prints the medians, the
differences and ratios against the plain file (target for the cached run: 1.5x or less),
whether the cache could be used here, and the cost of the scrypt key derivation alone.

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
from _common import EXE, clean_env, difference, header, login, timed  # noqa: E402

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
        off_env = dict(enc_env, PROCORE_SETUP_KEY_CACHE="0")
        runs = {"plain": ([EXE, "token"], plain_env), "cached": ([EXE, "token"], enc_env),
                "off": ([EXE, "token"], off_env)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(3):  # warm-up (the page cache; and the first encrypted run fills the key cache)
            for cmd in runs.values():
                timed(*cmd)
        for _ in range(args.runs):  # interleaved, so load on the machine hits all three alike
            for kind, cmd in runs.items():
                times[kind].append(timed(*cmd))
        refreshes = fake.counts["token:refresh_token"]
        cache_used = _cache_holds(enc_env["PROCORE_SETUP_CONFIG"])

    kdf = []
    for _ in range(max(5, args.runs // 3)):
        start = time.perf_counter()
        crypto.derive_key(PASSPHRASE, os.urandom(crypto.SALT_BYTES))
        kdf.append(time.perf_counter() - start)

    mp, me, mo = (statistics.median(times[k]) for k in ("plain", "cached", "off"))
    mk = statistics.median(kdf)
    mib = 128 * crypto.SCRYPT_N * crypto.SCRYPT_R / 2**20
    print(header(args.runs))
    print(f"procore-setup token, plain file:                      median {mp * 1000:.1f} ms")
    print(f"procore-setup token, encrypted file (key cache {'used' if cache_used else 'NOT available'}): "
          f"median {me * 1000:.1f} ms")
    print(f"procore-setup token, encrypted, PROCORE_SETUP_KEY_CACHE=0: median {mo * 1000:.1f} ms")
    print(f"encrypted against plain: {difference(mp, me)} (target <= 1.50x)")
    print(f"key cache off against plain: {difference(mp, mo)}; refreshes during the run: {refreshes}")
    print(f"scrypt alone (n=2**{crypto.SCRYPT_N.bit_length() - 1}, r={crypto.SCRYPT_R}, p={crypto.SCRYPT_P}, "
          f"{mib:.0f} MiB): median {mk * 1000:.1f} ms")
    return 0


def _cache_holds(config: str) -> bool:
    """Whether the key cache holds the key of the encrypted file (it is not where keyctl is refused)."""
    import tomllib

    from procore_setup import keycache

    with open(config, "rb") as f:
        table = tomllib.load(f)["encryption"]
    salt, n, r, p = crypto.table_params(config, table)
    return keycache.lookup(keycache.name(os.path.realpath(config), salt, n, r, p)) is not None


if __name__ == "__main__":
    raise SystemExit(main())
