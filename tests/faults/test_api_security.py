"""API and security under fuzzing, per role: schemathesis over /api/schema/ with every check
as anonymous, read-only and trading users. Asserted: no server error, no write without the
permission (neither a 2xx answer to an unsafe method nor a changed row), no secret in any
answer. Conformance findings of the other checks are counted and printed, not asserted (the
schema is the API helper's). Plus `manage.py check --deploy` with production settings."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from tests.faults.sizes import FULL, size

ROOT = Path(__file__).resolve().parents[2]
SAFE = {"GET", "HEAD", "OPTIONS"}
# POSTs that compute and store nothing (documented: any logged-in user may call them).
PREVIEWS = {
    "/api/v1/trade/dryrun",
    "/api/v1/bracket/preview",
    "/api/v1/risk/preview",
    "/api/v1/signals/preview",
}
SENTINELS = {
    "TRADIER_ACCESS_TOKEN": "SENTINELtradier0123456789",
    "POLYGON_API_KEY": "SENTINELpolygon0123456789",
    "POLYGON_WS_KEY": "SENTINELpolygonws012345",
    "POLYGON_FLATFILES_SECRET_KEY": "SENTINELflatfiles0123456",
    "ALERT_WEBHOOK_URL": "https://hooks.example.com/SENTINELwebhook012345",
}
CONFORMANCE: Counter = Counter()  # (finding, method path) -> count, from the fuzz tests
EXERCISED: Counter = Counter()  # fuzz cases run in this session, by caller
# Conformance findings the fuzzing as an anonymous or read-only caller is expected to produce,
# and why they are not defects. Anything else fails the report below.
EXPECTED_FINDINGS = {
    # schema-valid writes answered 401/403: these callers lack can_trade (what the tests check)
    "RejectedPositiveData",
    # seen (33 times) on POST /api/v1/trade/dryrun answered 200 to the read-only user: a preview
    # any logged-in user may call (PREVIEWS); that anonymous callers are refused there is
    # asserted by the anonymous fuzz test. Outside the previews it fails below.
    "IgnoredAuth",
}
# Open conformance defects, known and reported (22:25 UTC, to the lead / helper D): the setups
# API answers 403 with a content type its schema does not declare, and POST /setups/validate
# answers 400 with a body that does not match its schema. Listed so that any NEW finding
# fails; remove an entry when it is fixed.
KNOWN_OPEN = {
    ("UndefinedContentType", "POST /api/v1/setups/{name}/backtest"),
    ("UndefinedContentType", "POST /api/v1/setups/{name}/enable"),
    ("UndefinedContentType", "POST /api/v1/setups/{name}/live"),
    ("JsonSchemaError", "POST /api/v1/setups/validate"),
}

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
# Inside make test only the unsafe methods (the write-permission property); full mode: all.
FUZZED = schema if FULL else schema.include(method=["POST", "PUT", "PATCH", "DELETE"])


@pytest.fixture(autouse=True)
def _keep_test_connection():
    """The WSGI app must not close the test transaction's connection after each request."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _secrets(settings):
    for name, value in SENTINELS.items():
        setattr(settings, name, value)


def _token(django_user_model, username: str, *, trade: bool) -> str:
    from django.contrib.auth.models import Permission
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user(username, password=f"{username}-pass-1")
    if trade:
        user.user_permissions.add(Permission.objects.get(codename="can_trade"))
    return Token.objects.create(user=user).key


@pytest.fixture
def reader_headers(django_user_model):
    return {"Authorization": f"Token {_token(django_user_model, 'reader', trade=False)}"}


@pytest.fixture
def trader_headers(django_user_model):
    return {"Authorization": f"Token {_token(django_user_model, 'trader', trade=True)}"}


def _ledger_counts() -> tuple:
    from risk.models import SymbolOverride, TradingState, TradingStateChange
    from trading.models import AuditEvent, Order, Trade

    return tuple(
        m.objects.count()
        for m in (Order, Trade, AuditEvent, TradingStateChange, SymbolOverride, TradingState)
    )


def _exercise(case, headers: dict, *, may_write: bool) -> None:
    EXERCISED["authenticated" if headers else "anonymous"] += 1
    before = _ledger_counts()
    response = case.call(headers=headers)
    text = response.text
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code}"
    for name, value in SENTINELS.items():
        assert value not in text, f"{case.method} {case.path} returned {name}"
    if not may_write and case.method.upper() not in SAFE:
        preview = case.path.rstrip("/") in PREVIEWS and "Authorization" in headers
        ok = 200 <= response.status_code < 300 and not preview
        assert not ok, (
            f"{case.method} {case.path} answered {response.status_code} without can_trade"
        )
        assert _ledger_counts() == before, f"{case.method} {case.path} changed the ledger"
    try:
        case.validate_response(response)
    except BaseException as exc:  # conformance findings (a FailureGroup) are figures here
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        for sub in getattr(exc, "exceptions", [exc]):
            CONFORMANCE[
                (type(sub).__name__, f"{case.method} {case.path}", response.status_code)
            ] += 1


FUZZ = settings(
    max_examples=int(os.environ.get("FAULTS_API_EXAMPLES") or size(1, 50)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.mark.slow
@pytest.mark.django_db
@FUZZED.parametrize()
@FUZZ
def test_anonymous_cannot_write_and_never_sees_a_server_error(case):
    _exercise(case, {}, may_write=False)


@pytest.mark.slow
@pytest.mark.django_db
@FUZZED.parametrize()
@FUZZ
def test_read_only_user_cannot_write(case, reader_headers):
    _exercise(case, reader_headers, may_write=False)


@pytest.mark.slow
@pytest.mark.skipif(
    not FULL,
    reason="full mode only (make faults); the API helper's schemathesis "
    "test fuzzes as a superuser inside make test",
)
@pytest.mark.django_db
@FUZZED.parametrize()
@FUZZ
def test_trading_user_never_sees_a_server_error_or_a_secret(case, trader_headers):
    _exercise(case, trader_headers, may_write=True)


def _deploy_check(**env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings():
    production = {
        "DJANGO_SECURE": "1",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "trader.example.com",
    }
    result = _deploy_check(**production)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the check bites: without the hardening it complains
    lax = _deploy_check(DJANGO_DEBUG="1", DJANGO_SECRET_KEY="short")
    assert lax.returncode != 0


def test_zz_conformance_findings_are_reported():
    """Reports what the schemathesis conformance checks found in the fuzz tests above (this
    module's last test) and fails on any finding that is not an expected, explained one, or on
    a 2xx among them (a conformance finding on a successful answer is never expected here)."""
    if not EXERCISED:
        pytest.skip("the fuzz tests did not run in this session")
    print("schemathesis conformance findings:", dict(CONFORMANCE), "cases:", dict(EXERCISED))
    unexpected = {
        k: n
        for k, n in CONFORMANCE.items()
        if k[0] not in EXPECTED_FINDINGS and (k[0], k[1]) not in KNOWN_OPEN
    }
    assert not unexpected, f"unexpected conformance findings: {unexpected}"
    # a successful answer with a finding is only expected where a reader may succeed
    successes = {
        k: n
        for k, n in CONFORMANCE.items()
        if 200 <= k[2] < 300 and k[1].split(" ", 1)[1].rstrip("/") not in PREVIEWS
    }
    assert not successes, f"findings on successful answers outside the previews: {successes}"
