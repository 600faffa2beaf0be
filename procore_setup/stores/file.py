"""The credentials file: an owner-only TOML file on the local disk, behind the Store protocol.

What it guarantees: the directory 0700 and the file 0600 from their first byte; only a
regular file of this user is read, and never more than MAX_FILE_BYTES; every save is a temp
file, fsync, rename, fsync of the directory; one process at a time holds the lock beside the
file; a save refuses to overwrite a file that changed since it was read; comments a person
wrote survive (tomlfile); and when no new file can be made after Procore issued a pair, the
last resort writes over the old file's own blocks.

It sits on the headless fast path (`token`, `status`, a no-op `refresh`): standard library
only at module level; tomli_w/tomlkit only to write, platformdirs only when no path was given,
cryptography only for an encrypted file. Platform specifics are in `filesystem`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from typing import Any, Iterator

from .. import filesystem as fs
from ..errors import (
    CredentialsFileError,
    FileTooBig,
    LockTimeout,
    NotConfigured,
    StoreConflict,
    StoreWriteError,
    UsageError,
)
from ..hints import program, shell_quote
from ..profile import Credentials, biggest_entry, check_document, fix_by_login
from .base import DEFAULT_LOCK_TIMEOUT, StoreAddress, StoreCommon

FILE_NAME = "credentials.toml"
MAX_FILE_BYTES = 1 << 20  # a credentials file is a few KB; anything this big is not ours
# A save may grow a file into the last SAVE_ROOM bytes below MAX_FILE_BYTES only from a file
# below that line: so the save of a new pair, which follows the in-flight mark's save, always
# fits (two tokens at their cap, encrypted, are ~44 KB), and the next refresh is refused before
# it sends anything.
SAVE_ROOM = 64 << 10


def platform_default_path() -> str:
    """The user config directory's credentials file (~/.config/procore-setup/credentials.toml on Linux)."""
    from platformdirs import user_config_path  # only when no path was given

    return str(user_config_path("procore-setup", appauthor=False) / FILE_NAME)


def _render(doc: Credentials) -> bytes:
    """The file's bytes for `doc`, keeping any comment a person wrote into its old bytes."""
    from ..tomlfile import render

    return render(doc.to_toml_dict(), doc.revision or b"")



class FileStore(StoreCommon):
    """The credentials file on the local disk, with a lock file beside it.

    `path` None: the user config directory's file. `named_by_env`: the path came from
    $PROCORE_SETUP_CONFIG, so the commands that hints print name it with --config (cron jobs
    often run without that variable). Built by `stores.open_store`.
    """

    locks_can_be_lost = False  # flock dies with its process only
    driver_name = None  # standard library only

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
                 named_by_env: bool = False) -> None:
        self.lock_timeout = lock_timeout
        self._named_by_env = named_by_env
        given = os.fspath(path) if path is not None else platform_default_path()
        if not given.strip():
            raise UsageError("The credentials path is empty.", hint="Give --config PATH a file path.")
        self.given_path = os.path.abspath(os.path.expanduser(given))
        # Work on the real file when the path is a symlink (dotfile managers): replacing
        # the link by a regular file would break the user's set-up.
        self.path = os.path.realpath(self.given_path)
        self.dir = os.path.dirname(self.path)
        self.lock_path = self.path + ".lock"
        # The commands a hint prints name the file with --config unless it is the default one
        # (a path from $PROCORE_SETUP_CONFIG is named too: cron jobs often run without it).
        self.address = StoreAddress(kind="file", option="config", where=self.path,
                                    flag_implied=not named_by_env and self._at_default(path), mode_path=self.path)

    def __repr__(self) -> str:
        return f"FileStore({self.path!r})"

    def _at_default(self, given: object) -> bool:
        """Whether this is the user config directory's file. platformdirs is imported only when the
        path could be it (`procore-setup/credentials.toml`): `token` with a path pays nothing."""
        if given is not None and (os.path.basename(self.path) != FILE_NAME or
                                  os.path.basename(self.dir) != "procore-setup"):
            return False
        try:
            return self.path == platform_default_path()
        except Exception:  # noqa: BLE001 - no config dir to compare with: name the file
            return False

    def exists(self) -> bool:
        return os.path.lexists(self.given_path)

    # -- what `store init` and `store move` ask of a store's kind ---------------------------
    def init(self) -> str:
        raise UsageError("`store init` is for a shared store; a credentials file needs no set-up.",
                         hint=f"Name the store: {program()} --store postgresql://USER@HOST/DB store init")

    def schema_sql(self) -> str:
        return self.init()  # nothing to print either: the same refusal

    def same_place(self, other: object) -> bool:
        """The same file through any link (a file that does not exist yet is no other's)."""
        if not isinstance(other, FileStore):
            return False
        if self.path == other.path:
            return True
        try:
            return os.path.samefile(self.path, other.path)
        except OSError:
            return False

    # -- reading -------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        """The file's bytes after the ownership and permission checks ssh would make.

        Only a regular file is read, and no more than 64 KiB past MAX_FILE_BYTES: `--config`
        pointing at a FIFO, a device or a /proc file must fail at once, not hang or read
        gigabytes (/proc/self/pagemap says it has 0 bytes).
        """
        path = self.path
        self._check_link()
        with contextlib.suppress(OSError):  # a missing file is reported by the open below
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                raise self._not_regular(st)  # without opening it: opening a device can have effects
        try:
            fd = fs.open_to_read(path)
        except FileNotFoundError:
            if os.path.islink(self.given_path):
                raise CredentialsFileError(
                    f"{self.given_path} is a symlink to {path}, which does not exist.",
                    hint="Fix or remove the link.",
                ) from None
            raise NotConfigured(
                f"No credentials file at {path}.",
                hint=f"Set one up with: {program()}{self.address.cli_flag()} (or `login --plain` on a plain terminal).",
            ) from None
        except IsADirectoryError:
            raise CredentialsFileError(
                f"{path} is a directory, not a credentials file.", hint="Point --config at a file."
            ) from None
        except PermissionError:
            raise CredentialsFileError(
                f"{path}: permission denied.", hint="Run as the user who owns it, or fix its owner."
            ) from None
        except OSError as exc:
            raise CredentialsFileError(f"{path}: cannot open: {exc.strerror}.") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise CredentialsFileError(
                    f"{path} is a directory, not a credentials file.", hint="Point --config at a file."
                )
            if not stat.S_ISREG(st.st_mode):
                raise self._not_regular(st)
            self._check_owner_and_mode(st)
            if st.st_size > MAX_FILE_BYTES:
                raise self._too_big(f"{st.st_size} bytes")
            # O_NONBLOCK stays set: a regular file ignores it, while a pseudo-file that calls
            # itself regular (/proc/kmsg) would otherwise block the read forever.
            # Whole 64 KiB reads (some pseudo-files refuse odd sizes), stopping once past the cap.
            chunks, total = [], 0
            while total <= MAX_FILE_BYTES:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    raise CredentialsFileError(
                        f"{path} cannot be read without waiting, so it is not a credentials file.",
                        hint="Point --config at a regular file.",
                    ) from None
                except OSError as exc:
                    raise CredentialsFileError(f"{path}: cannot read: {exc.strerror}.") from None
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            if total > MAX_FILE_BYTES:
                raise self._too_big(f"more than {MAX_FILE_BYTES} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _not_regular(self, st: os.stat_result) -> CredentialsFileError:
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        return CredentialsFileError(f"{self.path} is {kind}, not a credentials file.",
                                    hint="Point --config at a regular file.")

    def _too_big(self, size: str) -> CredentialsFileError:
        return CredentialsFileError(f"{self.path} is {size}: far too big for a credentials file.",
                                    hint="Check that --config points at the right file.")

    def _check_link(self) -> None:
        """A symlink at the given path must be the user's own (or root's): in a directory others
        can write to, someone else's link would point us at a file of their choosing."""
        try:
            st = os.lstat(self.given_path)
        except OSError:
            return
        if fs.link_owned_by_stranger(st):
            raise CredentialsFileError(
                f"{self.given_path} is a symlink owned by another user (uid {st.st_uid}); refusing to follow it.",
                hint="Remove the link, or point --config at the file itself."
                + _shared_note(os.path.dirname(self.given_path)),
            )

    def _described(self) -> str:
        """The file as the user named it: the path given, and where it leads if that is a link."""
        if self.given_path != self.path:
            return f"{self.given_path} (a symlink to {self.path})"
        return self.path

    def _check_owner_and_mode(self, st: os.stat_result) -> None:
        path = self.path
        if fs.owned_by_someone_else(st):
            raise CredentialsFileError(
                f"{self._described()} is owned by another user (uid {st.st_uid}); refusing to use it.",
                hint="A credentials file must belong to the user who runs procore-setup."
                + _shared_note(self.dir),
            )
        if fs.open_to_others(st):
            if self.given_path != path:
                # chmod follows the link: say where it leads, so nobody runs `chmod 600 /etc/passwd` blind
                hint = (f"If {path} really is your credentials file, fix it with: chmod 600 {shell_quote(path)}; "
                        f"if not, fix the link {shell_quote(self.given_path)}.")
            else:
                hint = f"Fix it with: chmod 600 {shell_quote(path)}"
            raise CredentialsFileError(
                f"Permissions {fs.mode_of(st)} for {self._described()} are too open: "
                "group and others must have no access to a file of secrets.",
                hint=hint,
            )

    def load(self) -> Credentials:
        """Read and check the file. Never writes; the file is left as it is on any error."""
        data = self.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialsFileError(
                f"{self.path} is not UTF-8 text, so it is not a credentials file.", hint=fix_by_login()
            ) from None
        if not text.strip():
            raise CredentialsFileError(f"{self.path} is empty.", hint=fix_by_login())
        import tomllib  # here, not at the top: the wizard's first run has no file to read

        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message names the line and column, never the value
            raise CredentialsFileError(f"{self.path} does not parse as TOML: {exc}.", hint=fix_by_login()) from None
        except RecursionError:  # tomllib recurses into nested arrays: a thousand `[` exhaust it
            raise CredentialsFileError(
                f"{self.path} holds values nested thousands of levels deep, which no credentials file does.",
                hint=fix_by_login(),
            ) from None
        check_document(raw, self)
        return Credentials(raw, store=self, revision=data)

    def load_or_new(self) -> Credentials:
        """The document, or an empty one when there is no file yet (other errors propagate)."""
        if not os.path.lexists(self.given_path):
            return Credentials(store=self)
        return self.load()

    # -- writing -------------------------------------------------------------------
    def ensure_dir(self) -> None:
        """Create the directory owner-only (0700) if it does not exist."""
        if os.path.isdir(self.dir):
            st = os.stat(self.dir)
            if fs.writable_by_others(st):
                raise CredentialsFileError(
                    f"The directory {self.dir} is writable by group or others, so someone else "
                    "could replace the credentials file.",
                    hint=f"Fix it with: chmod go-w {shell_quote(self.dir)}",
                )
            return
        try:
            fs.make_private_dirs(self.dir)  # every missing level 0700, not just the last
        except OSError as exc:
            raise CredentialsFileError(f"Cannot create the directory {self.dir}: {exc.strerror}.") from None

    def save(self, doc: Credentials) -> None:
        """Atomically replace the file with `doc`: temp file 0600, fsync, rename, fsync dir.

        Refused (FileTooBig, the file left as it was) when the new bytes would be more than
        this program reads back: a file it writes must never be one it then refuses forever.
        """
        payload = _render(doc)
        previous = doc.revision or b""
        limit = MAX_FILE_BYTES if len(previous) <= MAX_FILE_BYTES - SAVE_ROOM else MAX_FILE_BYTES - SAVE_ROOM
        if len(payload) > limit:
            raise FileTooBig(
                f"Not saved: {self.path} would grow to {len(payload)} bytes, more than the {limit} a credentials "
                "file may have (this program would refuse to read it back).",
                hint=f"The file was left as it was. Its biggest entry is {biggest_entry(doc)}: remove that "
                "from the file, then try again.",
            )
        if payload == doc.revision:
            return  # nothing changed: no rewrite (and no new mtime for the file)
        self._check_not_stale(doc)
        self.write_bytes(payload)
        doc.revision = payload

    def _check_not_stale(self, doc: Credentials) -> None:
        """Refuse to overwrite a file that is no longer the one `doc` was read from: under the
        lock nothing else writes it, so it can only be a person's edit or a process that ignores
        the lock, and their content must not be lost to ours."""
        try:
            current: bytes | None = self.read_bytes()
        except NotConfigured:
            current = None
        if current != doc.revision:
            raise StoreConflict(
                f"{self.path} changed while this command was working with it (edited by hand, or written "
                "by a process that does not take the lock); it was not overwritten.",
                hint="Run the command again. Nothing was changed by this run.",
            )

    def restore(self, doc: Credentials, revision: Any) -> bool:
        """Put back what the store held at `revision` (from `doc.revision` earlier), byte for byte:
        after a refresh that certainly did nothing at Procore. Not over a file that changed since
        `doc` was last saved (a hand edit): that is left as it is (False), mark and all."""
        try:
            self._check_not_stale(doc)
        except StoreConflict:
            return False
        self.write_bytes(revision)
        doc.revision = revision
        return True

    def check_writable(self) -> None:
        """Raise (exit 6) now if a save would be refused: before a login sends its single-use
        code, so that a grant is never issued into a store that cannot take it."""
        with self.lock():  # the directory (made 0700 if missing) and the lock file, checked
            if self.exists():
                self.load()

    def save_last_resort(self, doc: Credentials) -> str:
        """Last resort for a pair Procore has just issued, when `save` keeps failing.

        The pair is the only live refresh token now (the stored one is spent), so it is kept
        whatever the file holds: a file that changed since it was read (a hand edit, which the
        lock cannot stop) is replaced atomically all the same; when no new file can be made at
        all (disk full, quota, no inodes), `doc` is written over the existing file's own blocks,
        which is not atomic. Refused (OSError) when even those blocks are too small. Returns how
        it wrote, for the warning.
        """
        payload = _render(doc)
        # the directory refused (opened to others) or no new file can be made: in place, below
        with contextlib.suppress(CredentialsFileError):
            self.write_bytes(payload)
            doc.revision = payload
            return f"by replacing {self.path}, whatever it held"
        fd = fs.open_to_overwrite(self.path)
        try:
            st = os.fstat(fd)  # the file this handle writes, not whatever the path names by now
            if not stat.S_ISREG(st.st_mode) or fs.open_to_others(st) or fs.owned_by_someone_else(st):
                raise OSError(errno.EPERM, f"{self.path} is no longer an owner-only file of this user")
            if st.st_blocks * 512 < len(payload):
                raise OSError(errno.ENOSPC, "the file's own blocks cannot hold the new content")
            view, offset = memoryview(payload), 0
            while offset < len(payload):
                offset += os.pwrite(fd, view[offset:], offset)
            os.ftruncate(fd, len(payload))
            os.fsync(fd)
        finally:
            os.close(fd)
        doc.revision = payload
        return f"by writing over {self.path} in place: a new file could not be made"

    def write_bytes(self, payload: bytes) -> None:
        """Atomically replace the file's content with `payload`, owner-only from the first byte."""
        self.ensure_dir()
        tmp = os.path.join(self.dir, f".{os.path.basename(self.path)}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            fd = fs.create_private(tmp)
            try:
                try:
                    view = memoryview(payload)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:  # a full disk, a quota, a read-only or failing file system
            raise StoreWriteError(self.path, exc.strerror or str(exc)) from None
        # The rename is done: a directory that cannot be synced (EIO on a failing disk) must not
        # make a save that happened look like one that did not (the caller would retry on bytes
        # that are already in place). The next save syncs it again.
        with contextlib.suppress(OSError):
            fs.fsync_dir(self.dir)
        self._sweep_stale_temps()

    def _sweep_stale_temps(self) -> None:
        """Remove temp files left by writers that were killed (SIGKILL, OOM) before their rename.

        They are owner-only, but hold secrets and would pile up. A temp file is stale when the
        process named in it no longer exists.
        """
        prefix = f".{os.path.basename(self.path)}."
        try:
            names = os.listdir(self.dir)
        except OSError:
            return
        for name in names:
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid = name[len(prefix):].split(".", 1)[0]
            if not pid.isdigit() or int(pid) == os.getpid() or fs.process_alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                full = os.path.join(self.dir, name)
                if not fs.owned_by_someone_else(os.lstat(full)):  # in a shared directory, only ever our own
                    os.unlink(full)

    # -- locking -------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the exclusive lock beside the file, waiting at most `timeout` seconds."""
        if timeout is None:
            timeout = self.lock_timeout
        self.ensure_dir()
        fd = self._open_lock()
        try:
            deadline = time.monotonic() + timeout
            delay = 0.005
            while True:
                if fs.try_lock(fd):
                    break
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"Another procore-setup process has held the lock on {self.path} for "
                        f"more than {timeout:g} s.",
                        hint="It may be hung on the network; try again later. Nothing was changed. "
                        f"(Lock file: {self.lock_path})",
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            try:
                yield
            finally:
                fs.unlock(fd)
        finally:
            os.close(fd)

    def _open_lock(self) -> int:
        """The lock file, opened without following a link, and only if it is the user's own
        regular file that nobody else can open: in a directory others can write to (a sticky one
        like /tmp passes ensure_dir), another user could plant a link there (root would then create
        the file it points to) or hold a flock on a lock file of theirs and block every refresh."""
        lock = self.lock_path
        try:
            fd = fs.open_lock_file(lock)
        except OSError as exc:
            if os.path.islink(lock):
                raise self._bad_lock("is a symbolic link", _rm(lock)) from None
            if isinstance(exc, PermissionError):
                with contextlib.suppress(OSError):
                    st = os.lstat(lock)
                    if fs.owned_by_someone_else(st):
                        raise self._bad_lock(f"is owned by another user (uid {st.st_uid})", _FOREIGN_LOCK) from None
            raise StoreWriteError(lock, exc.strerror or str(exc)) from None  # no inode left, a read-only fs
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise self._bad_lock("is not a regular file", _rm(lock))
            if fs.owned_by_someone_else(st):
                raise self._bad_lock(f"is owned by another user (uid {st.st_uid})", _FOREIGN_LOCK)
            if fs.open_to_others(st):
                raise self._bad_lock(f"has permissions {fs.mode_of(st)}, so others can open it "
                                     "(and hold the lock)", _rm(lock))
            if st.st_nlink != 1:
                raise self._bad_lock("has other hard links", _rm(lock))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _bad_lock(self, problem: str, fix: str) -> CredentialsFileError:
        return CredentialsFileError(
            f"The lock file {self.lock_path} {problem}: another user could block every refresh, so it is "
            "not used. Nothing was changed.",
            hint=fix + _shared_note(self.dir),
        )



_FOREIGN_LOCK = ("It holds nothing, so its owner (or root) can remove it; or keep the credentials file in a "
                 "directory only you can write to.")


def _rm(lock: str) -> str:
    return f"It holds nothing and is made again when needed; remove it with: rm -- {shell_quote(lock)}"


def _shared_note(directory: str) -> str:
    """A sentence for hints when `directory` can be written by others (a sticky one like /tmp
    passes the directory check, but anyone there can plant files), else ''."""
    try:
        st = os.stat(directory)
    except OSError:
        return ""
    if not fs.shared_dir(st):
        return ""
    return (f" The directory {directory} can be written by others (mode {fs.mode_of(st)}), so "
            "anyone can put files there: keep the credentials file in a directory only you can write to, "
            "e.g. ~/.config/procore-setup (mkdir -m 700), and give --config its path.")
