"""The `encrypt`, `decrypt` and `passphrase` commands: a store's secrets encrypted, decrypted, rekeyed.

Each command works in one transaction of the store (lock, read again, change, one atomic
save; nothing written if it fails) and returns an `Outcome` that the front-end prints.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .crypto import Cipher, derive_key, table_params, verify_key, new_encryption_table
from .errors import CredentialsFileError, UsageError
from . import hints
from .transaction import transaction
from .passphrase import (
    ENV_NEW_PASSPHRASE,
    ENV_PASSPHRASE,
    _cipher_and_source,
    _find_passphrase,
    _prompt_new,
    _Source,
    forget_key,
    open_secrets,
    unlock_with,
    keyring_passphrase,
    keyring_store,
    run_passphrase_command,
    shown_command,
)

from .stores.base import readable_by

if TYPE_CHECKING:
    from .profile import Credentials
    from .settings import Unlock
    from .stores.base import Store


@dataclass
class Outcome:
    """What a command did, for the front-end to show: lines for stdout, warnings for stderr."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)


# -- the encrypt and decrypt commands -----------------------------------------------------------------

def encrypt_document(doc: Credentials, passphrase: str, *, passphrase_command: str | None = None) -> None:
    """Mark a plain document encrypted under `passphrase`; its secrets are encrypted when it is saved.

    For front-ends (the wizard's Saved screen) as well as `procore-setup encrypt`. The caller
    saves it with `store.save(doc)` under the lock.
    """
    if doc.encrypted:
        raise UsageError(f"{doc.where} is encrypted already.")
    if not passphrase:
        raise UsageError("The passphrase cannot be empty. Nothing was changed.")
    table, cipher = new_encryption_table(passphrase, passphrase_command=passphrase_command)
    doc.raw["encryption"] = table
    doc.cipher = cipher


def run_encrypt(store: Store, *, passphrase_command: str | None = None, interactive: bool = False,
                keyring: bool = False) -> Outcome:
    """`procore-setup encrypt`: encrypt the secrets of the store, atomically, under the lock.

    On a store encrypted already, a new --passphrase-command is checked against the
    passphrase and stored, and --keyring stores the passphrase in the OS keyring; anything
    else is left as it is.
    """
    if passphrase_command is not None and not passphrase_command.strip():
        raise UsageError("--passphrase-command is empty.")
    out = Outcome()
    where = store.address.describe()
    with transaction(store, secrets=False) as doc:
        if doc.encrypted:
            if keyring:
                _keyring_for_encrypted(store, doc, passphrase_command, interactive, out)
                if not passphrase_command:
                    return out
            _set_command(store, doc, passphrase_command, out)
            return out
        source = _find_passphrase(where, passphrase_command, interactive=interactive, new=True)
        out.warnings += _short_warning(source.passphrase)
        if keyring:  # before the store changes: if the keyring cannot take it, nothing is changed
            _store_in_keyring(store, source.passphrase)
        count = _encrypt(doc, source.passphrase, passphrase_command, check_command=source.kind != "command",
                         label=source.label)
    out.say(f"{where}: {count} secret(s) encrypted with the passphrase from {source.label}.")
    if keyring:
        out.say("The passphrase is in the OS keyring (service procore-setup, user = the file's path): "
                "runs of this user that can reach the keyring need nothing more.")
    elif passphrase_command:
        out.say("Unattended runs will get the passphrase from the stored command.")
    else:
        out.say(f"Scripts and cron jobs need the passphrase: set {ENV_PASSPHRASE}, store a command with "
                "`encrypt --passphrase-command CMD`, or keep it in the OS keyring with `encrypt --keyring`.")
    return out


def encrypt_file(store: Store, passphrase: str, *, passphrase_command: str | None = None) -> int:
    """Encrypt the secrets of a plain store under `passphrase`, atomically under the lock.

    For front-ends that ask for the passphrase themselves (the wizard's Saved screen).
    Returns how many secrets were encrypted.
    """
    with transaction(store, secrets=False) as doc:
        if doc.encrypted:
            raise UsageError(f"{store.address.describe()} is encrypted already.")
        return _encrypt(doc, passphrase, passphrase_command, check_command=True, label="the wizard")


def _encrypt(doc: Credentials, passphrase: str, passphrase_command: str | None, *,
             check_command: bool, label: str) -> int:
    """Mark `doc` encrypted (the transaction's save encrypts its secrets); how many there are."""
    if passphrase_command and check_command:
        # The command is stored for unattended runs: it had better print this very passphrase.
        shown = _unless_it_prints(passphrase_command, doc.where, passphrase)
        if shown is not None:
            raise CredentialsFileError(
                f"The passphrase command `{shown}` does not print the passphrase given in {label}, "
                f"so unattended runs could not open {doc.where}.",
                hint="Nothing was changed. Make them agree, or give only one of them.",
            )
    encrypt_document(doc, passphrase, passphrase_command=passphrase_command)
    return _secret_count(doc)


def _unless_it_prints(command: str, path: str, passphrase: str, *also_hidden: str) -> str | None:
    """Run a passphrase command that is to be stored: None if it prints `passphrase`, else the
    command as a message may show it (whatever it printed, and the passphrases, blotted out)."""
    printed = run_passphrase_command(command, path)
    if hmac.compare_digest(printed.encode(), passphrase.encode()):
        return None
    return shown_command(command, printed, passphrase, *also_hidden)


def _store_in_keyring(store: Store, passphrase: str) -> None:
    """Put the passphrase of `store` in the OS keyring and read it back, or raise (exit 6)."""
    why = keyring_store(store.address.key_id(), passphrase)
    if why is None:
        back, why = keyring_passphrase(store.address.key_id())
        if back is not None and hmac.compare_digest(back.encode(), passphrase.encode()):
            return
        why = why or "it gives back a different value"
    raise CredentialsFileError(
        f"Cannot keep the passphrase of {store.address.describe()} in the OS keyring: {why}.",
        hint="Nothing was changed. The keyring needs the extra (pip install 'procore-setup[keyring]') and a "
        "working backend; or leave out --keyring and give the passphrase another way.",
    )


def _keyring_for_encrypted(store: Store, doc: Credentials, command: str | None, interactive: bool,
                           out: Outcome) -> None:
    """`encrypt --keyring` on a store encrypted already: check the passphrase, then keep it in the keyring."""
    _, source = _cipher_and_source(doc, interactive=interactive, passphrase_command=command, use_cache=False)
    assert source is not None
    if source.kind == "keyring":
        out.say(f"{store.address.describe()}: the OS keyring holds its passphrase already; nothing to do.")
        return
    _store_in_keyring(store, source.passphrase)
    out.say(f"{store.address.describe()}: its passphrase (from {source.label}) is now in the OS keyring.")


def _set_command(store: Store, doc: Credentials, command: str | None, out: Outcome) -> None:
    where = store.address.describe()
    table = doc.encryption or {}
    if not command or command == table.get("passphrase_command"):
        out.say(f"{where}: the secrets are encrypted already; nothing to do.")
        out.say(f"To change the passphrase: {hints.command(store, 'passphrase')}")
        return
    # The new command must open the store, or cron would be locked out.
    printed = run_passphrase_command(command, where)
    salt, n, r, p = table_params(where, table)
    if not verify_key(Cipher(derive_key(printed, salt, n, r, p)), table):
        raise CredentialsFileError(
            f"The passphrase command `{shown_command(command, printed)}` does not print the passphrase of "
            f"{where}.",
            hint="Nothing was changed.",
        )
    table["passphrase_command"] = command  # the secrets stay the stored ciphertexts: no cipher needed
    out.say(f"{where}: passphrase command stored for unattended runs.")


def run_change_passphrase(store: Store, *, passphrase_command: str | None = None,
                          new_passphrase_command: str | None = None, interactive: bool = False) -> Outcome:
    """`procore-setup passphrase`: encrypt the secrets again under a new passphrase, in one atomic
    rewrite under the lock (the store is never plain, not even for a moment).

    The old passphrase comes from the usual sources; the new one from --new-passphrase-command
    (then stored for unattended runs), $PROCORE_SETUP_NEW_PASSPHRASE, or a prompt on a terminal.
    A stored passphrase command that would print the old passphrase is refused, or cron would
    be locked out; a keyring entry that gave the old passphrase is updated first, and a keyring
    that cannot take the new one leaves everything as it was.
    """
    if new_passphrase_command is not None and not new_passphrase_command.strip():
        raise UsageError("--new-passphrase-command is empty.")
    out = Outcome()
    where = store.address.describe()
    keyring_changed_from: str | None = None  # the old passphrase, once the keyring holds the new one
    try:
        with transaction(store, secrets=False) as doc:
            table = doc.encryption
            if table is None:
                raise UsageError(f"{where}: the secrets are not encrypted, so there is no passphrase to change.",
                                 hint=f"To encrypt them: {hints.command(store, 'encrypt')}")
            # the key this process may know is not enough: the new passphrase is compared to the old
            cipher, old = _cipher_and_source(doc, interactive=interactive, passphrase_command=passphrase_command,
                                             use_cache=False)
            assert old is not None
            stored_cmd = table.get("passphrase_command")  # a string: _cipher_and_source checked it
            unlock_with(doc, cipher)  # a value it cannot open stays as it is, still refused
            doc.check_seals()  # under the old key: a new one must not vouch for someone else's change
            new = _new_passphrase(where, new_passphrase_command, interactive=interactive)
            if hmac.compare_digest(new.passphrase.encode(), old.passphrase.encode()):
                raise UsageError(
                    f"The new passphrase (from {new.label}) is the same as the old one. Nothing was changed.")
            out.warnings += _short_warning(new.passphrase)
            keep_cmd = new_passphrase_command or stored_cmd
            if keep_cmd and not new_passphrase_command:
                shown = _unless_it_prints(keep_cmd, where, new.passphrase, old.passphrase)
                if shown is not None:
                    raise CredentialsFileError(
                        f"The passphrase command stored in {where} (`{shown}`) does not print the new "
                        "passphrase, so unattended runs would be locked out.",
                        hint="Nothing was changed. Give the command that prints the new passphrase with "
                        "--new-passphrase-command CMD, or make the stored command print the new passphrase "
                        f"first and give the old one in {ENV_PASSPHRASE} or at the prompt.",
                    )
            fresh, doc.cipher = new_encryption_table(new.passphrase, passphrase_command=keep_cmd)
            for key, value in table.items():  # keys a newer version wrote survive, as everywhere
                if key not in fresh and key != "passphrase_command":
                    fresh[key] = value
            doc.raw["encryption"] = fresh
            old_table = table
            if old.kind == "keyring":
                # The keyring entry first (checked by reading it back): if it cannot take the new
                # passphrase, runs that rely on it would be locked out, so nothing is changed.
                _store_in_keyring(store, new.passphrase)
                keyring_changed_from = old.passphrase
            count = _secret_count(doc)
    except BaseException:
        if keyring_changed_from is not None:
            keyring_store(store.address.key_id(), keyring_changed_from)  # the store kept the old one: so does the keyring
        raise
    forget_key(doc, old_table)  # saved: the old key opens nothing now, and is cached nowhere
    out.say(f"{where}: passphrase changed; {count} secret(s) encrypted again under the new one "
            f"(from {new.label}), with a new salt.")
    if new_passphrase_command:
        out.say("Unattended runs will get the passphrase from the new stored command.")
    elif keep_cmd:
        out.say("The stored passphrase command prints the new passphrase: unattended runs are unaffected.")
    if old.kind == "keyring":
        out.say("The OS keyring entry now holds the new passphrase.")
    elif old.kind == "env":
        out.say(f"Jobs that set {ENV_PASSPHRASE} need the new passphrase now.")
    return out


def _new_passphrase(path: str, command: str | None, *, interactive: bool) -> _Source:
    """The new passphrase of `procore-setup passphrase`, from its own sources."""
    env = os.environ.get(ENV_NEW_PASSPHRASE)
    if env is not None and not env:
        raise UsageError(f"{ENV_NEW_PASSPHRASE} is set but empty. Nothing was changed.")
    if command:
        printed = run_passphrase_command(command, path)
        label = f"the new passphrase command `{shown_command(command, printed)}`"
        if env is not None and not hmac.compare_digest(env.encode(), printed.encode()):
            raise UsageError(f"{ENV_NEW_PASSPHRASE} and {label} give different passphrases. Nothing was changed.",
                             hint="Give only one of them, or make them agree.")
        return _Source("command", label, printed)
    if env is not None:
        return _Source("env", f"${ENV_NEW_PASSPHRASE}", env)
    if interactive:
        return _Source("prompt", "the prompt", _prompt_new(path))
    raise UsageError(
        f"No new passphrase for {path}: stdin is not a terminal, so none can be asked for.",
        hint=f"Give it in {ENV_NEW_PASSPHRASE}, or with --new-passphrase-command CMD, or run on a terminal. "
        "Nothing was changed.",
    )


def run_decrypt(store: Store, unlock: Unlock) -> Outcome:
    """`procore-setup decrypt`: store the secrets unencrypted again, atomically, under the lock.
    `unlock`: this run's passphrase sources."""
    out = Outcome()
    where = store.address.describe()
    with transaction(store, secrets=False) as doc:
        if not doc.encrypted:
            out.say(f"{where}: the secrets are not encrypted; nothing to do.")
            return out
        open_secrets(doc, unlock, strict=True)
        doc.check_seals()  # a plain store has no seals: it must not take in someone else's change unseen
        table = doc.raw.pop("encryption", None)
        doc.cipher = None
    forget_key(doc, table)
    out.say(f"{where}: secrets stored unencrypted again ({_kept(store)}).")
    return out


def _kept(store: Store) -> str:
    mode = readable_by(store.address)
    return f"the file stays owner-only, mode {mode}" if mode == "0600" else f"permissions: {mode}"


def _secret_count(doc: Credentials) -> int:
    from .profile import SECRET_FIELDS

    return sum(1 for prof in doc.profiles.values() for f in SECRET_FIELDS if prof.data.get(f))


def _short_warning(passphrase: str) -> list[str]:
    if len(passphrase) < 8:
        return ["warning: a passphrase shorter than 8 characters is easy to guess from a copy of the file."]
    return []
