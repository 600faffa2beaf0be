"""`procore-setup store init` and `store move`: setting up a shared store, and moving profiles
between stores so that exactly one live copy of each token chain remains.

A move holds both stores' locks (taken in a fixed order, so two moves in opposite directions
cannot deadlock) and goes in three saves, each atomic:

1. the destination gets a copy marked `moving_from` (not live: nothing refreshes it);
2. the source replaces the profile by a tombstone naming the destination (from now on a job
   still pointing at the source fails with exit 3, names the new store, and sends nothing);
3. the destination's copy loses its mark and becomes the live one.

A run killed between 1 and 2 leaves the source live and a marked copy that says to run the
move again; between 2 and 3, a tombstone and a marked copy, which the next `store move`
finishes. At no point are two copies live, and at no point is there none that can be finished.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from .checks import shown
from .encryption import Outcome
from .errors import NotConfigured, UsageError
from .hints import shell_quote, store_flag
from .profile import Credentials, Profile

if TYPE_CHECKING:
    from .stores.base import Store

MOVING_FROM = "moving_from"


def run_init(store: Store, *, print_sql: bool = False) -> Outcome:
    """Create the shared store's schema (or print its SQL for a role that may)."""
    out = Outcome()
    sql = getattr(store, "schema_sql", None)
    if sql is None:
        kind = type(store).__name__
        if kind == "FileStore":
            raise UsageError("`store init` is for a shared store; a credentials file needs no set-up.",
                             hint="Name the store: procore-setup --store postgresql://USER@HOST/DB store init")
    if print_sql:
        if sql is None:
            out.say(f"-- {store.describe()} needs no schema: its keys are made on first use.")
        else:
            out.say(sql().rstrip())
        return out
    out.say(store.init())  # type: ignore[attr-defined]
    return out


def run_move(source: Store, destination: Store, name: str | None, *, interactive: bool = False) -> Outcome:
    """Move profile `name` (None: every profile) from `source` to `destination`."""
    src_where, dst_where = source.locator()[1], destination.locator()[1]
    if src_where == dst_where:
        raise UsageError(f"The profiles are in {shown(source.describe(), 200)} already.",
                         hint="Give --to another store.")
    out = Outcome()
    first, second = sorted((source, destination), key=lambda s: s.locator()[1])
    with first.lock(), second.lock():
        src = source.load()
        source.open_secrets(src, interactive=interactive)
        dst = destination.load_or_new()
        destination.open_secrets(dst, interactive=interactive)
        names = _names(src, dst, name, src_where)
        unfinished = [n for n in names if n in src.moved]  # step 2 done, step 3 not: finish it
        fresh = [n for n in names if n not in src.moved]
        for n in fresh:
            _check_free(dst, n, src_where, destination)
        if fresh:
            # 1. the copies, not live yet
            for n in fresh:
                prof = src.get(n)
                copy = Profile(n, dict(prof.data))
                copy.data[MOVING_FROM] = src_where
                dst.add(copy)
            if name is None and src.raw.get("default_profile") and not dst.raw.get("default_profile"):
                dst.default_profile = src.raw["default_profile"]
            destination.save(dst)
            # 2. the tombstones: from here on the source hands out nothing for these profiles
            try:
                for n in fresh:
                    src.mark_moved(n, dst_where)
                source.save(src)
            except BaseException:
                with contextlib.suppress(Exception):  # the source is still live: drop the copies
                    for n in fresh:
                        dst.remove(n)
                    destination.save(dst)
                raise
        # 3. the copies become the live ones
        for n in names:
            dst.profiles[n].data.pop(MOVING_FROM, None)
        destination.save(dst)
    moved = ", ".join(repr(n) for n in names)
    out.say(f"Moved {'profile' if len(names) == 1 else 'profiles'} {moved} from {source.describe()} to "
            f"{destination.describe()}" + (" (finishing an earlier move)" if unfinished and not fresh else "") + ".")
    out.say(f"{source.describe()} keeps a tombstone: a job still pointing at it fails (exit 3), names the new "
            "store, and refreshes nothing.")
    flag = store_flag(dst_where)
    out.say(f"Point the jobs at the new store: procore-setup{flag} token"
            + (f" --profile {shell_quote(names[0])}" if len(names) == 1 else "")
            + (f"  (or set PROCORE_SETUP_STORE={shell_quote(dst_where)})" if "://" in dst_where else ""))
    if src.encrypted and not dst.encrypted:
        out.warnings.append(f"{source.describe()} was encrypted, and {destination.describe()} is not: encrypt it "
                            f"with: procore-setup{flag} encrypt")
    return out


def _names(src: Credentials, dst: Credentials, name: str | None, src_where: str) -> list[str]:
    """The profiles to move: the one named (or the default), or all; each checked usable."""
    def unfinished(n: str) -> bool:
        copy = dst.profiles.get(n)
        return n in src.moved and copy is not None and copy.data.get(MOVING_FROM) == src_where

    if name is None:
        names = sorted(src.profiles) + sorted(n for n in src.moved if unfinished(n))
        if not names:
            if src.moved:
                raise src.moved_error(sorted(src.moved)[0])
            raise NotConfigured(f"{src.where} holds no profiles to move.")
    else:
        if unfinished(name):
            return [name]
        names = [src.resolve_name(name)]
        if names[0] in src.moved and unfinished(names[0]):
            return names
    for n in names:
        if not unfinished(n):
            src.get(n)  # moved already, a copy of an unfinished move, or a damaged profile: say so now
    return names


def _check_free(dst: Credentials, name: str, src_where: str, destination: Store) -> None:
    have = dst.profiles.get(name)
    if have is None or have.data.get(MOVING_FROM) == src_where:
        return  # free, or the copy an earlier, interrupted move of this very profile left
    raise UsageError(
        f"{destination.describe()} already has a profile {shown(name, 64)!r}; nothing was moved.",
        hint=f"Remove or rename it there first, or move another profile.",
    )
