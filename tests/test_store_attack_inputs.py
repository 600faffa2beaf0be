"""Issue 17, point 13: what Procore or a person hands the program that no real answer holds.

A negative or zero `expires_in` from Procore is warned about, as an enormous one is; a
negative `--company-id` is exit 2. Through the real executable and the fake Procore over HTTP.
"""

from __future__ import annotations

import pytest

from procore_setup.testing import Fault
from helpers.engine import Engine

TOKEN_PATH = ["/oauth/token"]


@pytest.mark.parametrize("life", [-5, 0])
def test_a_zero_or_negative_expires_in_is_warned_about(eng: Engine, life: int) -> None:
    eng.login()
    eng.fake.inject(Fault(paths=TOKEN_PATH, edit=lambda body: dict(body, expires_in=life)))
    r = eng.run("refresh", "--force")
    assert r.returncode == 0, r.stderr
    assert f"warning: 127.0.0.1 gave the new access token a life of {life} s" in r.stderr, r.stderr
    assert "expired already" in r.stderr
    prof = eng.profile()
    assert eng.fake.refresh_token_state(prof["refresh_token"]) == "active"


@pytest.mark.parametrize("value", ["-8675309", "0"])
def test_a_company_id_that_is_no_company_is_exit_2(eng: Engine, value: str) -> None:
    r = eng.run("login", "--plain", "--company-id", value)
    assert r.returncode == 2, r.stderr
    assert "--company-id" in r.stderr and "above 0" in r.stderr
    assert "8675309" not in r.stderr  # argparse's value is never echoed (see cli._Parser)
    assert not eng.config.exists()
