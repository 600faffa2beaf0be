"""`procore-setup store move`: moving profiles between stores so that exactly one live copy of
each token chain remains.

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
import math
import sys
import time
from typing import TYPE_CHECKING

from .checks import shown
from .encryption import Outcome
from .passphrase import open_secrets
from .errors import NotConfigured, ProcoreSetupError, TemporaryFailure, UsageError
from .hints import program, shell_quote, store_flag
from .profile import Credentials, Profile, env_hint
from .settings import UNATTENDED, Unlock

if TYPE_CHECKING:
    from .stores.base import ManagedStore, Store

MOVING_FROM = "moving_from"


def run_move(source: ManagedStore, destination: ManagedStore, name: str | None, *,
             unlock: Unlock = UNATTENDED) -> Outcome:
    """Move profile `name` (None: every profile) from `source` to `destination`.

    `unlock`: this run's passphrase sources, for the secrets of both stores. How long a refresh in
    flight on the source may still be running is the holder's to say, in its mark
    (_check_not_in_flight): this run's HTTP timeout plays no part."""
    src_where, dst_where = source.address.locator()[1], destination.address.locator()[1]
    if same_store(source, destination):
        # Before any lock: the second lock of one store is never granted to the holder of the first.
        spelt = "" if src_where == dst_where else f" ({shown(source.address.describe(), 200)}, spelt another way)"
        raise UsageError(f"{shown(destination.address.describe(), 200)} is the store the profiles are in already{spelt}; "
                         "nothing was moved.", hint="Give --to another store.")
    out = Outcome()
    # The passphrase first, outside the locks: a prompt must not hold both stores' locks while a
    # person types (every job on both stores would wait). The keys are cached for the re-read below.
    open_secrets(source.load(), unlock)
    open_secrets(destination.load_or_new(), unlock)
    first, second = sorted((source, destination), key=lambda s: s.address.locator()[1])
    with first.lock(), second.lock():
        src = source.load()
        open_secrets(src, unlock.unattended())  # the cached key (or the environment's): never a prompt under the locks
        dst = destination.load_or_new()
        open_secrets(dst, unlock.unattended())
        names = _names(src, dst, name, src_where)
        unfinished = [n for n in names if n in src.moved]  # step 2 done, step 3 not: finish it
        fresh = [n for n in names if n not in src.moved]
        for n in fresh:
            _check_free(dst, n, src_where, destination)
            _check_not_in_flight(source, src.get(n))
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
            except BaseException as exc:
                _after_failed_tombstones(source, destination, dst, fresh, name, exc)
                # it returns only when the source holds every tombstone: the save's answer was lost
        # 3. the copies become the live ones: only those still marked as this move's
        for n in names:
            have = dst.profiles.get(n)
            if have is None or have.data.get(MOVING_FROM) != src_where:
                raise _not_the_copy(destination, n)
            have.data.pop(MOVING_FROM, None)
        destination.save(dst)
    moved = ", ".join(repr(n) for n in names)
    out.say(f"Moved {'profile' if len(names) == 1 else 'profiles'} {moved} from {source.address.describe()} to "
            f"{destination.address.describe()}" + (" (finishing an earlier move)" if unfinished and not fresh else "") + ".")
    out.say(f"{source.address.describe()} keeps a tombstone: a job still pointing at it fails (exit 3), names the new "
            "store, and refreshes nothing.")
    flag = store_flag(dst_where)
    out.say(f"Point the jobs at the new store: {program()}{flag} token"
            + (f" --profile {shell_quote(names[0])}" if len(names) == 1 else "")
            + env_hint(source.address.option == "config", dst_where))
    if src.encrypted and not dst.encrypted:
        out.warnings.append(f"{source.address.describe()} was encrypted, and {destination.address.describe()} is not: encrypt it "
                            f"with: {program()}{flag} encrypt")
    return out


# -- a refresh in flight on the source --------------------------------------------------------------

def _check_not_in_flight(source: Store, prof: Profile) -> None:
    """Refuse (exit 5, nothing changed) to move a profile whose refresh may still be running.

    On a store whose locks can be lost (a dropped lock connection, a lease that ran out), the
    holder of an in-flight mark may be alive without the lock: its answer would still be saved
    into the source after the move, a second live copy of the chain. Such a request cannot run
    past the holder's whole budget (written into its mark; oauth.holder_time_left, as refresh
    waits for it), counted from the mark; a mark from a dead process blocks the move only that
    long. This run's own HTTP timeout plays no part.
    """
    started = prof.refresh_started_at
    if started is None or not source.locks_can_be_lost:
        return
    from .oauth import holder_time_left

    left = holder_time_left(started, prof.refresh_budget, prof.refresh_step, refused=False)
    if left > 0:
        raise TemporaryFailure(
            f"Profile {shown(prof.name, 64)!r} in {source.address.describe()} has a refresh in flight (started "
            f"{started.isoformat()}): a process that lost the store's lock may still save its answer there. "
            "Nothing was moved.",
            hint=f"A refresh is in flight; try again in {math.ceil(left)} s.",
        )


# -- a tombstone save that failed ------------------------------------------------------------------

REREAD_DELAYS = (0.0, 0.5, 1.0, 2.0)  # bounded: the save itself has retried for a while already


def _after_failed_tombstones(source: Store, destination: Store, dst: Credentials, fresh: list[str],
                             name: str | None, exc: BaseException) -> None:
    """The save of the tombstones (step 2) raised, or was interrupted: it may still have committed
    (its answer was lost). Read the source again to know: the copies are removed only if the
    source still holds every profile live; they stay marked (never live) otherwise, and the next
    `store move` finishes. Returns only when the source holds every tombstone and `exc` is an
    error (then the move goes on to its last step); raises otherwise."""
    src_where, dst_where = source.address.locator()[1], destination.address.locator()[1]
    state = _source_state(source, fresh, dst_where)
    if state == "live":
        with contextlib.suppress(Exception):  # the source is still live: drop the copies
            for n in fresh:
                dst.remove(n)
            destination.save(dst)
        raise exc
    if state == "moved" and isinstance(exc, Exception):
        return
    finish = (program() + store_flag(src_where) + " store move --to " + shell_quote(dst_where)
              + (" --profile " + shell_quote(fresh[0]) if name is not None else " --all"))
    what = "holds the tombstones" if state == "moved" else "could not be read again to know whether it holds them"
    text = (f"The move from {source.address.describe()} to {destination.address.describe()} stopped after the tombstones were "
            f"sent: {source.address.describe()} {what}. The copies in {destination.address.describe()} are kept, marked as not live, "
            "so nothing is lost.")
    hint = f"Finish the move with: {finish}  (it finishes what is half done, or moves again)"
    if isinstance(exc, KeyboardInterrupt):
        sys.stderr.write(f"procore-setup: {text}\n{hint}\n")
        raise exc
    err = TemporaryFailure(text, hint=hint)
    if isinstance(exc, ProcoreSetupError):  # what stopped the save, in its own words, once; its hint gives way to this one
        err = err.given(note=exc.message)
    raise err from None


def _source_state(source: Store, fresh: list[str], dst_where: str) -> str:
    """"live" (the source holds every profile of `fresh`, none tombstoned), "moved" (it holds every
    tombstone, naming the destination), or "unknown" (neither, or it cannot be read)."""
    for delay in REREAD_DELAYS:
        time.sleep(delay)
        try:
            doc = source.load()
        except Exception:  # noqa: BLE001 - still unreachable: try again, then say so
            continue
        if all(n in doc.profiles and n not in doc.moved for n in fresh):
            return "live"
        if all(n not in doc.profiles and (doc.moved.get(n) or {}).get("to") == dst_where for n in fresh):
            return "moved"
        return "unknown"
    return "unknown"


def _not_the_copy(destination: Store, name: str) -> UsageError:
    return UsageError(
        f"{destination.address.describe()} holds a profile {shown(name, 64)!r} that is not the copy this move made (someone "
        "logged in there since): it was not overwritten, and nothing was moved.",
        hint="Keep that profile (it is live), or remove it there and run the move again.",
    )


# -- the same store, spelt twice ---------------------------------------------------------------------

def same_store(a: ManagedStore, b: ManagedStore) -> bool:
    """Whether two stores are one, however each is spelt (each store kind tells its own spellings
    apart: see ManagedStore.same_place). Without this a move onto its own store waited on its own
    lock for the whole timeout."""
    return a.address.locator() == b.address.locator() or a.same_place(b)


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
        f"{destination.address.describe()} already has a profile {shown(name, 64)!r}; nothing was moved.",
        hint=f"Remove or rename it there first, or move another profile.",
    )
