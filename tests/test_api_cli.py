"""`procore-setup api`, run as the real executable against the fake Procore over HTTP.

Each test logs a profile in (a fresh credentials file in a temporary directory), then calls the
API the way a script would: paths, fields, pagination, errors, retries, rate limits, 401s. The
assertions are on what the user sees (stdout, stderr, exit code) and on what the fake saw (how
many requests, how many over the limit, how many projects a POST created): never on durations.
Every output is checked for secrets (`eng`).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from procore_setup.testing import FakeProcore, Fault
from helpers.cli import EXE
from helpers.engine import FIRST_COMPANY, SECOND_COMPANY, Engine, mode_of

PROJECTS = "/rest/v1.0/projects"
V2 = f"/rest/v2.0/companies/{FIRST_COMPANY}/projects"


def project_ids(n: int, company: int = FIRST_COMPANY) -> list[int]:
    """The ids the fake's first n projects of a company have, in order."""
    return [company * 10 + 1, company * 10 + 2, *[5_000_000_000 + i for i in range(2, n)]][:n]


@pytest.fixture
def api(eng: Engine) -> Engine:
    eng.login()
    eng.fake.reset_stats()
    return eng


# -- plain calls ---------------------------------------------------------------------------

def test_get_prints_the_body_as_it_came(api: Engine) -> None:
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"id":4242,"login":"pat@example.com","name":"Pat Builder"}'  # not re-indented
    assert r.stderr == ""
    assert api.fake.counts["me"] == 1


def test_the_profiles_company_goes_in_the_header_and_company_overrides_it(api: Engine) -> None:
    r = api.run("api", PROJECTS)
    assert r.returncode == 0, r.stderr
    assert [p["company"]["id"] for p in json.loads(r.stdout)] == [FIRST_COMPANY] * 2
    r = api.run("api", PROJECTS, "--company", str(SECOND_COMPANY))
    assert r.returncode == 0, r.stderr
    # 562949953421313 is past 32 bits (and past a double's exact integers when multiplied): kept exact
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(2, SECOND_COMPANY)


def test_include_prints_the_status_line_and_headers_first(api: Engine) -> None:
    r = api.run("api", "-i", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 200 OK"
    assert "X-Rate-Limit-Remaining: " in head and "Content-Type: application/json" in head
    assert json.loads(body)["login"] == "pat@example.com"


def test_head_prints_the_headers_and_no_body(api: Engine) -> None:
    r = api.run("api", "-X", "HEAD", "-i", PROJECTS)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 200 OK") and "Total: 2" in head and body == ""


def test_fields_make_the_query_of_a_get(api: Engine) -> None:
    api.fake.project_count = 30
    r = api.run("api", "-X", "GET", PROJECTS, "-F", "per_page=5", "-f", "page=3")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(15)[10:15]


def test_post_fields_make_a_nested_json_body_and_create_one_record(api: Engine) -> None:
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=Tower 7", "-F", "project[project_number]=42",
                "--company", str(SECOND_COMPANY))
    assert r.returncode == 0, r.stderr
    made = api.fake.created_projects(SECOND_COMPANY)
    assert [(p["name"], p["project_number"]) for p in made] == [("Tower 7", 42)]  # -F: a number, not "42"
    assert json.loads(r.stdout)["id"] == made[0]["id"]
    assert api.fake.counts["projects_created"] == 1


def test_fields_without_a_method_mean_post(api: Engine) -> None:
    r = api.run("api", PROJECTS, "-f", "project[name]=Implied")
    assert r.returncode == 0, r.stderr
    assert [p["name"] for p in api.fake.created_projects(FIRST_COMPANY)] == ["Implied"]


def test_input_file_is_sent_as_it_is(api: Engine, tmp_path: Path) -> None:
    body = tmp_path / "project.json"
    body.write_text('{"project": {"name": "From a file", "project_number": "F-1"}}')
    r = api.run("api", "-X", "POST", PROJECTS, "--input", str(body))
    assert r.returncode == 0, r.stderr
    assert [p["name"] for p in api.fake.created_projects(FIRST_COMPANY)] == ["From a file"]
    r = api.run("api", "-X", "POST", PROJECTS, "--input", "-", input='{"project": {"name": "From stdin"}}')
    assert r.returncode == 0, r.stderr
    assert [p["name"] for p in api.fake.created_projects(FIRST_COMPANY)] == ["From a file", "From stdin"]


def test_typed_field_from_a_file(api: Engine, tmp_path: Path) -> None:
    (tmp_path / "name.txt").write_text("Named in a file")
    r = api.run("api", "-X", "POST", PROJECTS, "-F", f"project[name]=@{tmp_path / 'name.txt'}")
    assert r.returncode == 0, r.stderr
    assert [p["name"] for p in api.fake.created_projects(FIRST_COMPANY)] == ["Named in a file"]


@pytest.mark.parametrize("args, words", [
    (["-f", "noequals"], "KEY=VALUE"),
    (["-f", "a[b=1"], "field name"),
    (["--company", "12ab"], "--company"),
    (["-H", "no colon"], "Name: value"),
    (["-X", "POST", "--paginate"], "--paginate"),
    (["--input", "/nonexistent/body.json"], "Cannot read"),
])
def test_bad_command_lines_are_usage_errors_that_send_nothing(api: Engine, args: list[str], words: str) -> None:
    r = api.run("api", PROJECTS, *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr
    assert api.fake.counts["api_requests"] == 0


def test_an_encrypted_file_works_with_its_passphrase(api: Engine) -> None:
    passphrase = {"PROCORE_SETUP_PASSPHRASE": "correct horse battery staple"}
    r = api.run("encrypt", env=passphrase)
    assert r.returncode == 0, r.stderr
    r = api.run("api", "/rest/v1.0/me", env=passphrase)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == 4242
    # no passphrase, and the key cache off (else this user's cached key opens it: test_key_cache.py)
    r = api.run("api", "/rest/v1.0/me", env={"PROCORE_SETUP_KEY_CACHE": "0"})
    assert r.returncode == 6 and api.fake.counts["me"] == 1  # no passphrase: nothing sent


# -- the token stays home --------------------------------------------------------------------

def test_an_absolute_url_on_another_host_is_refused_before_anything_is_sent(api: Engine) -> None:
    with FakeProcore() as other:
        r = api.run("api", f"{other.url}/rest/v1.0/me")
        assert r.returncode == 2
        assert "not the profile's API host" in r.stderr
        assert other.counts["requests"] == 0
    assert api.fake.counts["api_requests"] == 0


def test_an_absolute_url_on_the_api_host_is_accepted(api: Engine) -> None:
    r = api.run("api", f"{api.fake.url}/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == 4242


# -- errors ----------------------------------------------------------------------------------

def test_a_4xx_exits_7_with_procores_error_text_and_the_body_on_stdout(api: Engine) -> None:
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=")
    assert r.returncode == 7
    assert json.loads(r.stdout)["errors"] == {"name": ["can't be blank"]}
    assert r.stderr.count("\n") == 1
    assert "422" in r.stderr and "project[name] can't be blank" in r.stderr
    assert api.fake.counts["projects_created"] == 0


def test_a_hostile_error_text_is_cleaned_and_capped(api: Engine) -> None:
    api.fake.inject(Fault(status=403, paths=PROJECTS,
                          body={"error_description": "\x1b]52;c;ZXZpbA==\x07\x1b[2J" + "x" * 5000}))
    r = api.run("api", PROJECTS)
    assert r.returncode == 7
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
    assert "\\x1b" in r.stderr and len(r.stderr) < 600


def test_a_401_is_refreshed_once_and_retried(api: Engine) -> None:
    api.fake.expire_access_tokens()  # the file still says the token is good: only the API knows
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    assert api.fake.counts["refresh_ok"] == 1
    assert api.fake.counts["status_401"] == 1
    assert api.fake.access_token_valid(api.profile()["access_token"])


def test_a_token_that_dies_while_pages_are_in_flight_is_refreshed_once(api: Engine) -> None:
    api.fake.project_count = 1000
    api.fake.latency = 0.02
    api.fake.inject(Fault(hook=api.fake.expire_access_tokens, paths=PROJECTS))  # after the first page
    r = api.run("api", PROJECTS, "--paginate", "-F", "per_page=100")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(1000)
    c = api.fake.counts
    assert c["refresh_ok"] == 1  # four pages refused at once, one refresh under the lock
    assert c["status_401"] >= 1


def test_a_401_that_survives_the_refresh_exits_4_with_the_login_command(api: Engine) -> None:
    api.fake.inject(Fault(status=401, times=2, paths="/rest/v1.0/me"))
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 4
    assert "401" in r.stderr and "procore-setup" in r.stderr and "login --profile default" in r.stderr
    assert api.fake.counts["refresh_ok"] == 1  # refreshed once, not twice
    assert api.fake.counts["me"] == 0  # both attempts were refused


# -- retries -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [{"status": 502}, {"status": 504}, {"status": 503, "retry_after": 0},
                                   {"drop": True}])
def test_a_get_is_retried_on_gateway_errors_and_lost_answers(api: Engine, fault: dict) -> None:
    api.fake.inject(Fault(paths="/rest/v1.0/me", times=2, **fault))
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == 4242
    assert api.fake.counts["api_requests"] == 3


def test_a_get_that_keeps_failing_exits_5_naming_the_status(api: Engine) -> None:
    api.fake.inject(Fault(status=502, paths="/rest/v1.0/me", times=20))
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 5
    assert "502" in r.stderr
    assert api.fake.counts["api_requests"] == 5  # the first attempt and 4 retries: bounded
    assert json.loads(r.stdout)["error"] == "bad_gateway"  # the body is still on stdout


def test_a_post_whose_answer_was_lost_is_never_sent_again(api: Engine) -> None:
    api.fake.inject(Fault(drop=True, consume=True, paths=PROJECTS))  # Procore creates it; the answer is lost
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=Once")
    assert r.returncode == 5
    assert "may have" in r.stderr and "not sent again" in r.stderr
    assert api.fake.counts["api_requests"] == 1
    assert [p["name"] for p in api.fake.created_projects(FIRST_COMPANY)] == ["Once"]


def test_a_post_after_a_502_is_not_sent_again(api: Engine) -> None:
    api.fake.inject(Fault(status=502, consume=True, paths=PROJECTS))
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=Once")
    assert r.returncode == 5
    assert "502" in r.stderr and "not sent again" in r.stderr
    assert api.fake.counts["projects_created"] == 1 and api.fake.counts["api_requests"] == 1


def test_a_post_refused_with_503_or_429_is_sent_again(api: Engine) -> None:
    api.fake.inject(Fault(status=503, retry_after=0, paths=PROJECTS))
    api.fake.inject(Fault(status=429, retry_after=0, paths=PROJECTS))
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=Third time")
    assert r.returncode == 0, r.stderr
    assert api.fake.counts["api_requests"] == 3
    assert [p["name"] for p in api.fake.created_projects(FIRST_COMPANY)] == ["Third time"]


def test_connection_refused_is_retried_then_exit_5_saying_nothing_was_sent(api: Engine) -> None:
    url = api.fake.url
    api.fake.stop()
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=Nowhere")
    assert r.returncode == 5
    assert "nothing was sent" in r.stderr and url.split("//")[1].split(":")[0] in r.stderr


# -- pagination --------------------------------------------------------------------------------

def test_paginate_merges_every_page_in_order_each_once(api: Engine) -> None:
    api.fake.project_count = 2345
    api.fake.latency = 0.02  # so pages overlap
    r = api.run("api", PROJECTS, "--paginate", "-F", "per_page=100")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert [p["id"] for p in items] == project_ids(2345)
    c = api.fake.counts
    assert c["projects"] == 24  # each page once
    assert 2 <= c["api_in_flight_max"] <= 4  # side by side, a few at a time


def test_a_slow_page_does_not_change_the_order(api: Engine) -> None:
    api.fake.project_count = 500
    api.fake.inject(Fault(edit=lambda body: body, paths=PROJECTS))  # the first page goes as usual
    api.fake.inject(Fault(hang=0.5, paths=PROJECTS))  # one of the pages fetched side by side is slow
    r = api.run("api", PROJECTS, "--paginate", "-F", "per_page=50")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(500)
    assert api.fake.counts["projects"] == 10


def test_requests_in_flight_stay_within_remaining(api: Engine) -> None:
    api.fake.project_count = 120
    api.fake.latency = 0.05
    api.fake.set_rate_limit(3, 1)  # never more than 3 a second: 4 side by side would be one too many
    api.fake.reset_stats()
    r = api.run("api", PROJECTS, "--paginate", "-F", "per_page=10")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(120)
    c = api.fake.counts
    assert c["rate_limited"] == 0 and c["projects"] == 12
    assert c["api_in_flight_max"] <= 3


def test_paginate_asks_for_big_pages(api: Engine) -> None:
    api.fake.project_count = 2345
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 2345
    assert api.fake.counts["projects"] == 3  # per_page 1000, not 100


def test_paginate_a_v2_list_merges_its_data_arrays(api: Engine) -> None:
    api.fake.project_count = 250
    r = api.run("api", V2, "--paginate")
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert [p["id"] for p in items] == [str(i) for i in project_ids(250)]  # v2: string ids
    assert api.fake.counts["v2_projects"] == 3  # 100 a page, the most v2 gives


def test_paginate_a_v2_list_side_by_side_from_its_last_link(api: Engine) -> None:
    api.fake.project_count = 1000
    api.fake.latency = 0.03
    r = api.run("api", V2, "--ndjson")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == [str(i) for i in project_ids(1000)]
    c = api.fake.counts
    assert c["v2_projects"] == 10 and 2 <= c["api_in_flight_max"] <= 4  # no Total: the `last` link says 10


def test_a_total_that_lies_does_not_send_it_on_forever(api: Engine) -> None:
    api.fake.inject(Fault(status=200, body=[{"id": 1}, {"id": 2}], paths=PROJECTS,
                          headers=[("Total", "100000000"), ("Per-Page", "2")]))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"id": 1}, {"id": 2}]
    assert api.fake.counts["api_requests"] <= 5  # the first page, and at most the 4 in flight


def test_a_next_link_that_loops_back_ends_the_list(api: Engine) -> None:
    loop = f'<{api.fake.url}{PROJECTS}?page=1>; rel="next"'
    api.fake.inject(Fault(status=200, body=[{"id": 1}], paths=PROJECTS, times=50, headers=[("Link", loop)]))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"id": 1}]
    assert api.fake.counts["api_requests"] == 2


def test_a_next_link_to_another_host_is_not_followed(api: Engine) -> None:
    with FakeProcore() as other:
        api.fake.inject(Fault(status=200, body=[{"id": 1}], paths=PROJECTS,
                              headers=[("Link", f'<{other.url}{PROJECTS}?page=2>; rel="next"')]))
        r = api.run("api", PROJECTS, "--paginate")
        # the server's fault, not the user's: exit 5 naming the other host (not 2 with "give a path")
        assert r.returncode == 5, r.stderr
        assert "next page on another host" in r.stderr and other.url.split("//")[1] in r.stderr
        assert "Give a path" not in r.stderr
        assert other.counts["requests"] == 0


def test_paginate_refused_on_its_first_page_still_prints_the_body(api: Engine) -> None:
    r = api.run("api", "/rest/v1.0/nothing", "--paginate")
    assert r.returncode == 7
    assert json.loads(r.stdout) == {"error": "not found"}
    assert "404" in r.stderr


def test_a_page_that_inflates_past_the_cap_is_refused(api: Engine) -> None:
    api.fake.inject(Fault(gzip_bomb=200 << 20, paths=PROJECTS))  # 200 MiB of zeros in a few hundred KB
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 5
    assert "more than 16 MiB" in r.stderr and r.stdout == ""


def test_paginate_an_endpoint_that_does_not_paginate(api: Engine) -> None:
    r = api.run("api", "/rest/v1.0/me", "--paginate")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"id": 4242, "login": "pat@example.com", "name": "Pat Builder"}]


def test_ndjson_prints_one_compact_item_a_line(api: Engine) -> None:
    api.fake.project_count = 1500
    r = api.run("api", PROJECTS, "--ndjson")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1500 and all(" " not in line.split('"name"')[0] for line in lines)
    assert [json.loads(line)["id"] for line in lines] == project_ids(1500)


def test_paginate_from_a_page_past_the_end_is_an_empty_array(api: Engine) -> None:
    api.fake.project_count = 300
    r = api.run("api", PROJECTS, "--paginate", "-F", "per_page=100", "-F", "page=9")
    assert r.returncode == 0
    assert json.loads(r.stdout) == []


# -- rate limits ---------------------------------------------------------------------------------

def test_pages_stay_within_the_rate_limit(api: Engine) -> None:
    api.fake.project_count = 300
    api.fake.set_rate_limit(10, 1)
    api.fake.reset_stats()
    r = api.run("api", PROJECTS, "--paginate", "-F", "per_page=10")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(300)
    assert api.fake.counts["rate_limited"] == 0  # never sent while over the limit
    assert api.fake.counts["projects"] == 30


def test_a_429_is_waited_out_then_the_request_goes_on(api: Engine) -> None:
    api.fake.inject(Fault(status=429, retry_after=1, paths="/rest/v1.0/me"))
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    assert api.fake.counts["api_requests"] == 2


def test_a_rate_limit_past_max_wait_exits_5_saying_when_it_resets(api: Engine) -> None:
    api.fake.inject(Fault(status=429, retry_after=600, paths="/rest/v1.0/me"))
    r = api.run("api", "/rest/v1.0/me", "--max-wait", "5")
    assert r.returncode == 5
    assert "resets at" in r.stderr and "--max-wait" in r.stderr
    assert api.fake.counts["api_requests"] == 1  # nothing sent after the 429


def test_a_429_is_shared_with_the_profiles_other_processes(api: Engine) -> None:
    api.fake.inject(Fault(status=429, retry_after=600, paths="/rest/v1.0/me"))
    r = api.run("api", "/rest/v1.0/me", "--max-wait", "0")
    assert r.returncode == 5
    shared = api.config.with_name(api.config.name + ".ratelimit")
    assert mode_of(shared) == 0o600
    # another process, later: it knows the limit has not reset, and sends nothing
    r = api.run("api", PROJECTS, "--max-wait", "1")
    assert r.returncode == 5 and "resets at" in r.stderr
    assert api.fake.counts["api_requests"] == 1


def test_four_processes_under_one_limit_collect_few_429s(api: Engine) -> None:
    api.fake.project_count = 600
    api.fake.set_rate_limit(20, 2)
    api.fake.reset_stats()
    procs = [api.popen("api", PROJECTS, "--paginate", "-F", "per_page=30") for _ in range(4)]
    results = [api.collect(p, timeout=120) for p in procs]
    for r in results:
        assert r.returncode == 0, r.stderr
        assert [p["id"] for p in json.loads(r.stdout)] == project_ids(600)
    assert api.fake.counts["rate_limited"] <= 4, api.fake.counts


# -- a person at a terminal ---------------------------------------------------------------------

def _run_on_a_terminal(api: Engine, *args: str) -> str:
    """Run with stdout on a pseudo-terminal (a real tty, as a person's shell has); its output."""
    main, child = pty.openpty()
    proc = subprocess.Popen([EXE, *args], stdin=subprocess.DEVNULL, stdout=child, stderr=subprocess.PIPE,
                            env=api.env(), close_fds=True)
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(main)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    text = out.decode("utf-8").replace("\r\n", "\n")
    api.check(subprocess.CompletedProcess(proc.args, 0, text, err.decode()))
    return text


def test_on_a_terminal_json_is_indented_and_cannot_drive_it(api: Engine) -> None:
    evil = "Pat \x1b[2J\x1b]0;owned\x07\u202eesrever\u009b31m"
    api.fake.inject(Fault(paths="/rest/v1.0/me", edit=lambda body: {**body, "name": evil}))
    text = _run_on_a_terminal(api, "api", "/rest/v1.0/me")
    for bad in ("\x1b", "\x07", "\u202e", "\u009b"):
        assert bad not in text
    assert '\n  "name": "Pat \\u001b[2J' in text
    assert json.loads(text)["name"] == evil  # escaped, not lost: the JSON still says the same


def test_on_a_terminal_paginate_is_indented_json(api: Engine) -> None:
    api.fake.project_count = 3
    text = _run_on_a_terminal(api, "api", PROJECTS, "--paginate")
    assert text.startswith("[\n  {\n    \"id\": ")
    assert [p["id"] for p in json.loads(text)] == project_ids(3)


# -- the newcomer, the pipe ---------------------------------------------------------------------

def test_demo_runs_against_a_built_in_fake(eng: Engine) -> None:
    r = eng.run("api", "--demo", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 250
    assert "fake Procore" in r.stderr
    assert not eng.config.exists()  # the user's own file is not touched


def test_a_reader_that_stops_early_is_not_an_error(api: Engine) -> None:
    api.fake.project_count = 20000
    proc = subprocess.Popen([EXE, "api", PROJECTS, "--ndjson"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=api.env())
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert json.loads(first)["id"] == FIRST_COMPANY * 10 + 1
    assert proc.returncode == 0, err
    assert err == b""


def test_a_server_error_after_a_post_is_one_line_saying_it_may_have_been_applied(api: Engine) -> None:
    api.fake.inject(Fault(status=500, consume=True, paths=PROJECTS))
    r = api.run("api", "-X", "POST", PROJECTS, "-f", "project[name]=Maybe")
    assert r.returncode == 5
    assert r.stderr.count("\n") == 1 and "500" in r.stderr and "may have applied it" in r.stderr
    assert api.fake.counts["projects_created"] == 1 and api.fake.counts["api_requests"] == 1


def test_a_429_is_shared_by_the_processes_of_a_shared_store_on_one_host(eng: Engine, redis_store_url: str,
                                                                       tmp_path: Path) -> None:
    from procore_setup.flow import SetupFlow
    from procore_setup.stores import open_store

    flow = SetupFlow(open_store(store=redis_store_url), "default")
    flow.load_existing()
    flow.set_environment("custom", eng.fake.url, eng.fake.url)
    flow.set_client(eng.fake.client_id, eng.fake.client_secret)
    flow.start_authorization()
    flow.exchange(eng.fake.issue_code())
    flow.verify()
    flow.choose_company(FIRST_COMPANY)
    flow.save()
    eng.fake.reset_stats()
    cache = tmp_path / "cache"
    env = {k: v for k, v in eng.env().items() if k != "PROCORE_SETUP_CONFIG"}
    env.update(PROCORE_SETUP_STORE=redis_store_url, XDG_CACHE_HOME=str(cache))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return eng.check(subprocess.run([EXE, *args], capture_output=True, text=True, env=env,
                                        stdin=subprocess.DEVNULL, timeout=60))

    eng.fake.inject(Fault(status=429, retry_after=600, paths="/rest/v1.0/me"))
    r = run("api", "/rest/v1.0/me", "--max-wait", "0")
    assert r.returncode == 5, r.stderr
    r = run("api", PROJECTS, "--max-wait", "1")
    assert r.returncode == 5 and "resets at" in r.stderr
    assert eng.fake.counts["api_requests"] == 1  # the second process sent nothing
    files = list((cache / "procore-setup").iterdir())
    assert len(files) == 1 and mode_of(files[0]) == 0o600
    assert "redis" not in files[0].name  # named by a hash: the store's address (and password) stay out


# -- hostile and odd answers (the review of the first version) -------------------------------

def test_paginate_a_v1_list_without_pagination_headers_is_one_page(api: Engine) -> None:
    # Procore's docs: an endpoint that does not paginate sends no Link/Total, and ignores `page`.
    # A full page of id-less items is not a reason to ask for page 2, 3, 4... forever.
    codes = [{"name": f"cc{i}", "code": i} for i in range(1000)]
    api.fake.inject(Fault(status=200, body=codes, paths=PROJECTS, times=20))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == codes
    assert api.fake.counts["api_requests"] == 1


def test_paginate_a_v2_list_stops_when_a_page_repeats_the_one_before(api: Engine) -> None:
    # v2 without Link/Total: a full page is followed by a guess at the next; a server that ignores
    # `page` answers the same bytes again, which ends the list.
    data = [{"name": f"x{i}"} for i in range(100)]
    api.fake.inject(Fault(status=200, body={"data": data}, paths=V2, times=20))
    r = api.run("api", V2, "--paginate")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == data
    assert api.fake.counts["api_requests"] == 2


def test_paginate_keeps_items_of_one_page_that_share_an_id(api: Engine) -> None:
    roles = [{"id": 7, "role": "architect"}, {"id": 7, "role": "engineer"}, {"id": 8, "role": "owner"}]
    api.fake.inject(Fault(status=200, body=roles, paths=PROJECTS, times=2))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == roles
    r = api.run("api", PROJECTS, "--ndjson")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line) for line in r.stdout.splitlines()] == roles


def _state_file(api: Engine) -> Path:
    return Path(str(api.config) + ".ratelimit")


@pytest.mark.parametrize("fault", ["reset-in-ms", "huge-retry-after"])
def test_a_nonsense_reset_is_not_stored_for_later_runs(api: Engine, fault: str) -> None:
    if fault == "reset-in-ms":
        api.fake.inject(Fault(status=200, body={"id": 1}, paths="/rest/v1.0/me", headers=[
                  ("X-Rate-Limit-Remaining", "0"), ("X-Rate-Limit-Reset", str(int(time.time() * 1000)))]))
    else:
        api.fake.inject(Fault(status=429, retry_after="99999999999", paths="/rest/v1.0/me"))
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    stored = json.loads(_state_file(api).read_text()).get("default", {})
    assert stored.get("until", 0) < time.time() + 3700 and stored.get("reset", 0) < time.time() + 3700
    r = api.run("api", "/rest/v1.0/me", "--max-wait", "60")  # the profile is not blocked for hours
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == 4242


def test_a_wait_stored_by_an_earlier_run_names_the_state_file(api: Engine) -> None:
    state = _state_file(api)
    state.write_text(json.dumps({"default": {"until": time.time() + 600}}))
    os.chmod(state, 0o600)
    r = api.run("api", "/rest/v1.0/me", "--max-wait", "1")
    assert r.returncode == 5
    assert str(state) in r.stderr and "delete that file" in r.stderr
    assert api.fake.counts["api_requests"] == 0
    # a wait longer than any window of Procore's (an older version stored two hours) is ignored
    state.write_text(json.dumps({"default": {"until": time.time() + 7000}}))
    r = api.run("api", "/rest/v1.0/me", "--max-wait", "1")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("reset", ["past", "junk", "missing", "milliseconds"])
def test_none_left_without_a_usable_reset_still_waits(api: Engine, reset: str) -> None:
    now = int(time.time())
    headers = [("X-Rate-Limit-Remaining", "0"), ("Link", f'<{api.fake.url}{PROJECTS}?page=2>; rel="next"')]
    value = {"past": str(now - 100), "junk": "soon", "missing": None, "milliseconds": str(now * 1000)}[reset]
    if value is not None:
        headers.append(("X-Rate-Limit-Reset", value))
    api.fake.inject(Fault(status=200, body=[{"id": 1}], paths=PROJECTS, headers=headers))
    # --max-wait 0: any wait at all shows as exit 5 before the next page goes
    r = api.run("api", PROJECTS, "--paginate", "--max-wait", "0")
    assert r.returncode == 5, r.stderr
    assert "no requests left" in r.stderr
    assert api.fake.counts["api_requests"] == 1


def test_a_fifo_at_the_state_file_path_does_not_hang_the_run(api: Engine) -> None:
    os.mkfifo(_state_file(api), 0o600)
    r = api.run("api", "/rest/v1.0/me", timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == 4242
    assert r.stderr.count("cannot use the rate-limit file") == 1 and "not a regular file" in r.stderr


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to give a file away")
def test_a_state_file_of_another_user_is_left_alone(api: Engine) -> None:
    state = _state_file(api)
    state.write_text("{}")
    os.chmod(state, 0o666)
    os.chown(state, 65534, 65534)
    r = api.run("api", "/rest/v1.0/me")
    assert r.returncode == 0, r.stderr
    assert "owned by another user" in r.stderr
    st = os.stat(state)
    assert (st.st_uid, st.st_mode & 0o777, state.read_text()) == (65534, 0o666, "{}")


def test_deeply_nested_json_gets_the_documented_exit_codes(api: Engine) -> None:
    deep = "[" * 200_000
    api.fake.inject(Fault(status=422, body=deep, content_type="application/json", paths=PROJECTS))
    r = api.run("api", PROJECTS)
    assert r.returncode == 7, r.stderr
    assert "422" in r.stderr and "Recursion" not in r.stderr and r.stdout == deep
    api.fake.inject(Fault(status=200, body=deep, content_type="application/json", paths=PROJECTS))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 5, r.stderr
    assert "not JSON that can be read" in r.stderr and "Recursion" not in r.stderr
    api.fake.inject(Fault(status=200, body=deep, content_type="application/json", paths=PROJECTS))
    assert _run_on_a_terminal(api, "api", PROJECTS).startswith("[[[[")  # as it is, exit 0


@pytest.mark.parametrize("items, words", [
    (6 << 20, "more than 16 MiB"),  # 18 MiB of `{},`
    (60_000, "more than the 50000 items"),  # small, but more items than a page may hold
])
def test_a_page_too_big_to_parse_is_refused(api: Engine, items: int, words: str) -> None:
    body = b"[" + b"{}," * items + b"{}]"
    api.fake.inject(Fault(status=200, body=body, content_type="application/json", paths=PROJECTS))
    r = api.run("api", PROJECTS, "--ndjson")
    assert r.returncode == 5
    assert words in r.stderr and r.stdout == ""


@pytest.mark.parametrize("paginate", [False, True])
def test_a_redirect_is_an_error_naming_where_it_points(api: Engine, paginate: bool) -> None:
    api.fake.inject(Fault(status=302, body="", paths=PROJECTS, headers=[("Location", "https://elsewhere.example:8443/x")]))
    r = api.run("api", PROJECTS, *(["--paginate"] if paginate else []))
    assert r.returncode == 5, r.stderr
    assert "302" in r.stderr and "redirect to elsewhere.example" in r.stderr
    assert api.fake.counts["api_requests"] == 1


def test_a_redirect_to_a_location_that_is_not_a_url_is_an_error(api: Engine) -> None:
    api.fake.inject(Fault(status=302, body="", paths=PROJECTS, times=2,
                          headers=[("Location", "https://elsewhere.example:8443/\x1b[31mx")]))
    for args in ([], ["--paginate"]):
        r = api.run("api", PROJECTS, *args)
        assert r.returncode == 5, r.stderr
        assert "could not be read" in r.stderr and "\x1b" not in r.stderr and "internal error" not in r.stderr


def test_a_path_with_two_leading_slashes_is_refused(api: Engine) -> None:
    r = api.run("api", "//127.0.0.1:9/rest/v1.0/me")
    assert r.returncode == 2
    assert "two slashes" in r.stderr
    assert api.fake.counts["api_requests"] == 0


def test_a_page_whose_body_breaks_off_is_asked_for_again(api: Engine) -> None:
    api.fake.project_count = 30
    api.fake.inject(Fault(cut=True, paths=PROJECTS, times=2))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 0, r.stderr
    assert [p["id"] for p in json.loads(r.stdout)] == project_ids(30)
    assert api.fake.counts["api_requests"] == 3


def test_a_page_whose_body_keeps_breaking_off_exits_5(api: Engine) -> None:
    api.fake.inject(Fault(cut=True, paths=PROJECTS, times=50))
    r = api.run("api", PROJECTS, "--paginate")
    assert r.returncode == 5
    assert "broke off" in r.stderr
    assert api.fake.counts["api_requests"] == 5  # the first try and 4 more, as other retries
