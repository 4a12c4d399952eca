"""Login sessions (Sensu Go's access and refresh tokens), /auth's credentials, and /health's
pure parts: time is a parameter, so expiry is tested to the second."""

from __future__ import annotations

import base64
import json

import pytest

from pipeline.backend.api.health import StoreHealth, health_body, health_timeout, member_id
from pipeline.backend.keys import ADMIN, DIGESTS_KEPT, INGEST, ApiKeys, digest, new_key
from pipeline.backend.sessions import Lifetimes, SessionRefused, Sessions, parse_lifetime
from pipeline.model.apikey import StoredKey


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    loaded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return loaded


def test_a_login_gives_sensu_go_tokens_that_expire_as_configured() -> None:
    sessions = Sessions(Lifetimes(access=300, refresh=43200))
    tokens = sessions.open("ops", ADMIN, now=1000.0)
    assert set(tokens) == {"access_token", "expires_at", "refresh_token"}
    assert tokens["expires_at"] == 1300
    assert tokens["refresh_token"]
    assert tokens["refresh_token"] != tokens["access_token"]
    assert claims(tokens["access_token"])["sub"] == "ops"  # sensuctl reads the user from the token
    assert claims(tokens["refresh_token"])["exp"] == 1000 + 43200
    assert sessions.role_of(tokens["access_token"], 1299.0) == ADMIN
    assert sessions.role_of(tokens["access_token"], 1300.0) is None  # expired
    assert sessions.role_of(tokens["refresh_token"], 1000.0) is None  # a refresh token is no bearer token
    assert sessions.role_of("forged", 1000.0) is None


def test_a_refresh_gives_a_new_pair_and_spends_the_refresh_token() -> None:
    sessions = Sessions(Lifetimes(access=300, refresh=3600))
    first = sessions.open("ops", ADMIN, now=0.0)
    second = sessions.refresh(first["access_token"], first["refresh_token"], now=400.0)  # with an expired access token
    assert second["expires_at"] == 700
    assert second["refresh_token"] != first["refresh_token"]
    assert sessions.role_of(second["access_token"], 401.0) == ADMIN
    assert claims(second["refresh_token"])["exp"] == 400 + 3600  # the session lasts 12 h from its last refresh
    with pytest.raises(SessionRefused) as spent:
        sessions.refresh(second["access_token"], first["refresh_token"], now=500.0)
    assert spent.value.reason == "refresh_token"
    assert sessions.role_of(second["access_token"], 501.0) is None  # reuse of a spent token closed the session
    assert len(sessions) == 0


def test_a_refresh_past_the_refresh_lifetime_is_refused() -> None:
    sessions = Sessions(Lifetimes(access=300, refresh=3600))
    tokens = sessions.open("ops", ADMIN, now=0.0)
    with pytest.raises(SessionRefused) as late:
        sessions.refresh(tokens["access_token"], tokens["refresh_token"], now=3600.0)
    assert late.value.reason == "refresh_expired"
    with pytest.raises(SessionRefused) as unknown:
        sessions.refresh("nobody's", tokens["refresh_token"], now=10.0)
    assert unknown.value.reason == "bearer_token"


def test_a_logout_ends_the_access_and_the_refresh_token() -> None:
    sessions = Sessions()
    mine, theirs = sessions.open("ops", ADMIN, now=0.0), sessions.open("ops", ADMIN, now=0.0)
    with pytest.raises(SessionRefused):
        sessions.close(mine["access_token"], theirs["refresh_token"])  # another session's refresh token
    assert sessions.close(mine["access_token"], mine["refresh_token"]) == "ops"
    assert sessions.role_of(mine["access_token"], 1.0) is None
    with pytest.raises(SessionRefused):
        sessions.refresh(mine["access_token"], mine["refresh_token"], now=1.0)
    assert sessions.role_of(theirs["access_token"], 1.0) == ADMIN  # the user's other session goes on


def test_sessions_are_bounded_and_ended_ones_forgotten() -> None:
    sessions = Sessions(Lifetimes(access=10, refresh=100), max_sessions=3)
    oldest = sessions.open("a", ADMIN, now=0.0)
    for _ in range(3):
        sessions.open("b", ADMIN, now=1.0)
    assert len(sessions) == 3
    assert sessions.role_of(oldest["access_token"], 2.0) is None  # the oldest made room
    assert sessions.evicted == 1  # counted, for pipeline_auth_sessions_evicted
    sessions.open("c", ADMIN, now=101.0)  # the others' refresh tokens ran out: forgotten
    assert len(sessions) == 1
    assert sessions.evicted == 1  # an ended session is forgotten, not evicted


def test_credentials_for_auth_and_auth_test() -> None:
    keys = ApiKeys.of([], [], [("ops", "s3cret")], Sessions(Lifetimes(access=2)))
    keys.wall_clock = lambda: 100.0
    assert keys.user_of(basic("ops", "s3cret")) == ("ops", ADMIN)
    assert keys.user_of(basic("ops", "wrong")) is None
    assert keys.user_of(basic("nobody", "")) is None
    assert keys.user_of("Basic !!notbase64") is None
    assert keys.user_of("", {"username": "ops", "password": "s3cret"}) == ("ops", ADMIN)
    tokens = keys.login(basic("ops", "s3cret"))
    assert tokens is not None
    assert tokens["expires_at"] == 102  # the lifetimes given (an empty Sessions is still the one given)
    assert keys.role_of(f"Bearer {tokens['access_token']}") == ADMIN
    assert keys.role_of(f"Bearer {tokens['refresh_token']}") is None


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300), ("720m", 43200), ("12h", 43200), ("1h30m", 5400)])
def test_lifetimes_are_go_durations(text: str, seconds: float) -> None:
    assert parse_lifetime(text, 30 * 86400) == seconds


@pytest.mark.parametrize("text", ["", "5", "0s", "5 m", "-5m", "25h", "five"])
def test_lifetimes_out_of_range_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected a duration from 1s to 24h"):
        parse_lifetime(text, 86400)


def test_health_is_sensu_go_s_shape_with_pipeline_s_facts() -> None:
    body = health_body("backend1", StoreHealth("sqlite", "", 0.001), ready=True)
    member = member_id("backend1")
    assert body == {
        "Alarms": None,
        "ClusterHealth": [
            {"MemberID": member, "MemberIDHex": f"{member:x}", "Name": "backend1", "Err": "", "Healthy": True}
        ],
        "Header": {"cluster_id": member, "member_id": member},
        "pipeline": {
            "version": body["pipeline"]["version"],
            "ready": True,
            "store": {"kind": "sqlite", "healthy": True, "error": "", "seconds": 0.001},
        },
    }
    failed = health_body("backend1", StoreHealth("sqlite", "disk I/O error", 3.0), ready=False)
    assert failed["ClusterHealth"][0]["Err"] == "disk I/O error"
    assert failed["ClusterHealth"][0]["Healthy"] is False
    assert 0 < member < 2**64


def test_health_timeout_parameter() -> None:
    assert health_timeout({}) == 3  # Sensu Go's default
    assert health_timeout({"timeout": "3"}) == 3  # what sensuctl sends
    for params, message in [
        ({"timeout": "0"}, "timeout: expected whole seconds from 1 to 30"),
        ({"timeout": "31"}, "timeout: "),
        ({"timeout": "1.5"}, "timeout: "),
        ({"timeot": "3"}, "timeot: unknown parameter"),
    ]:
        with pytest.raises(ValueError, match=message):
            health_timeout(params)


def test_a_new_api_key_is_taken_by_the_command_line_as_a_value() -> None:
    """`pipeline event list --api-key KEY`: argparse takes a value beginning with "-" for an
    option, so no generated key may begin with one (URL-safe base64 did, once in 64)."""
    from pipeline.cli.main import build_parser

    parser, _ = build_parser("event")
    for _ in range(500):
        key = new_key()
        assert len(key) == 64
        assert not key.startswith("-")
        assert parser.parse_args(["event", "list", "--api-key", key]).api_key == key


def test_a_key_is_looked_up_afresh_each_time_and_the_digests_kept_stay_bounded() -> None:
    """Digests are remembered, never roles: a stored key deleted is refused at once, and keys
    guessed by the thousand keep no more than DIGESTS_KEPT digests."""
    keys = ApiKeys.of(["admin-key"], ["ingest-key"])
    stored = StoredKey(id="k1", name="ci", role=ADMIN, digest=digest("stored-key"), created=0)
    keys.stored = {stored.digest: stored}
    assert [keys.role_of("Key admin-key"), keys.role_of("Key stored-key")] == [ADMIN, ADMIN]
    assert keys.role_of("Key ingest-key") == INGEST
    keys.stored = {}  # deleted (the backend refreshes ``stored``)
    assert keys.role_of("Key stored-key") is None
    for n in range(3 * DIGESTS_KEPT):
        assert keys.role_of(f"Key guess-{n}") is None
    assert len(keys._digests) <= DIGESTS_KEPT
    assert keys.role_of("Key admin-key") == ADMIN


def test_the_front_is_allowed_to_take_a_post_exactly_where_the_gate_lets_it_through() -> None:
    """The front process asks ``may_post_events`` (pipeline/backend/front.py); a yes where the
    gate would refuse would answer 201 to a request the backend answers 401, 403 or 404."""
    from prometheus_client import CollectorRegistry

    from pipeline.backend.auth_http import may_post_events
    from pipeline.backend.throttle import AuthGuard
    from pipeline.metrics import BackendMetrics

    keys = ApiKeys.of(["admin-key"], ["ingest-key"], viewer=["viewer-key"])
    clock = [0.0]
    guard = AuthGuard(BackendMetrics.create(CollectorRegistry()), clock=lambda: clock[0])
    may = may_post_events(keys, guard, lambda namespace: namespace == "default")
    assert may("Key admin-key", "default", "10.0.0.1")
    assert may("Key ingest-key", "default", "10.0.0.1")
    assert not may("Key viewer-key", "default", "10.0.0.1")  # 403 from the gate
    assert not may("Key guessed", "default", "10.0.0.1")  # 401
    assert not may("", "default", "10.0.0.1")  # 401
    assert not may("Key admin-key", "nowhere", "10.0.0.1")  # 404
    while not guard.throttle.failed("10.0.0.2", clock[0]):
        pass  # wrong credentials from there until it is throttled: 429 for any key
    assert not may("Key admin-key", "default", "10.0.0.2")
    assert may("Key admin-key", "default", "10.0.0.1")
