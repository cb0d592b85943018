"""Token endpoint, token auth, login throttling."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("ops", password="ops-pass-123")


def test_token_endpoint_issues_a_working_token(operator, caplog):
    client = APIClient()
    with caplog.at_level(logging.DEBUG):
        resp = client.post(
            "/api/v1/auth/token", {"username": "ops", "password": "ops-pass-123"}, format="json"
        )
    assert resp.status_code == 200
    token = resp.json()["token"]
    assert token not in caplog.text  # never in a log line
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/orders").status_code == 200


def test_token_endpoint_bad_credentials_is_400(operator):
    resp = APIClient().post("/api/v1/auth/token", {"username": "ops", "password": "wrong"})
    assert resp.status_code == 400
    assert "token" not in resp.json()
    resp = APIClient().post("/api/v1/auth/token", {"username": "ops"})
    assert resp.status_code == 400 and "password" in resp.json()


def test_invalid_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token deadbeef")
    assert client.get("/api/v1/orders").status_code in (401, 403)


def test_token_logins_are_throttled(operator):
    from autotrader_site.permissions import LoginThrottle

    saved = LoginThrottle.THROTTLE_RATES
    LoginThrottle.THROTTLE_RATES = {**saved, "login": "3/min"}
    try:
        client = APIClient()
        codes = [
            client.post("/api/v1/auth/token", {"username": "ops", "password": "x"}).status_code
            for _ in range(4)
        ]
        good = client.post("/api/v1/auth/token", {"username": "ops", "password": "ops-pass-123"})
    finally:
        LoginThrottle.THROTTLE_RATES = saved
    assert codes == [400, 400, 400, 429]
    assert good.status_code == 429


def test_admin_login_is_throttled(operator, client):
    from autotrader_site.permissions import LoginThrottle

    saved = LoginThrottle.THROTTLE_RATES
    LoginThrottle.THROTTLE_RATES = {**saved, "login": "2/min"}
    try:
        codes = [
            client.post("/admin/login/", {"username": "ops", "password": "bad"}).status_code
            for _ in range(3)
        ]
    finally:
        LoginThrottle.THROTTLE_RATES = saved
    assert codes == [200, 200, 429]


def test_browsable_api_login_works(operator, client):
    resp = client.post("/api-auth/login/", {"username": "ops", "password": "ops-pass-123"})
    assert resp.status_code == 302
    assert client.get("/api/v1/orders", HTTP_ACCEPT="application/json").status_code == 200
