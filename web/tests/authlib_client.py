"""otpgate as an OpenID Connect provider for Python's authlib, as a confidential client that
authenticates with client_secret_basic: discovery, authorization with PKCE (S256) and a nonce,
the phone sign-in as the sign-in page runs it (send through the JSON API, the demo inbox, the check
at /oidc/login with the page's CSRF token), the code exchange, the ID token verified against the
JWKS, UserInfo, refresh, revocation; and a wrong secret refused with invalid_client.

Run: python web/tests/authlib_client.py [path/to/otpgate]   (default target/debug/otpgate)
Needs: pip install authlib requests (see .ci/run). Starts its own otpgate on a free loopback port.
"""

import html
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "srv"
SECRET = "authlib-s3cr3t-0123456789-abcdefghijklmnop"
REDIRECT = "https://srv.example.com/callback"
PHONE = "+14155550188"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_otpgate(binary, workdir):
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = Path(workdir) / "otpgate.toml"
    config.write_text(
        f"""
[oidc]
issuer = "{issuer}"

[[oidc.clients]]
id = "{CLIENT_ID}"
name = "Example server app"
kind = "confidential"
secret = "{SECRET}"
redirect_uris = ["{REDIRECT}"]
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPGATE_") or k.startswith("OTPGATE_TEST_")}
    env.setdefault("RUST_LOG", "warn")
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"otpgate exited early: {proc.stderr.read().decode()}")
        try:
            if requests.get(f"{issuer}/healthz", timeout=1).ok:
                return proc, issuer
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("otpgate did not answer /healthz within 30 s")


def meta(page, name):
    m = re.search(rf'<meta name="{re.escape(name)}" content="([^"]*)">', page)
    assert m, f"no {name} on the sign-in page"
    return html.unescape(m.group(1))


def sign_in_on_the_page(issuer, authorization_url):
    """What the browser does: open the authorization URL (the sign-in page), send a code through
    the JSON API, read it from the demo inbox, and post the check to /oidc/login. Answers where
    the page sends the browser: the redirect URI with the code."""
    browser = requests.Session()
    page = browser.get(authorization_url, allow_redirects=False)
    assert page.status_code == 200, page.text
    assert browser.post(f"{issuer}/v1/verifications", json={"phone": PHONE}).status_code == 201
    messages = browser.get(f"{issuer}/dev/inbox", params={"phone": PHONE}).json()["messages"]
    login = browser.post(
        f"{issuer}/oidc/login",
        json={
            "phone": PHONE,
            "code": messages[0]["code"],
            "authorization": meta(page.text, "otpgate-oidc-request"),
            "csrf_token": meta(page.text, "otpgate-oidc-csrf"),
        },
        headers={"Origin": issuer},
    )
    assert login.status_code == 200, login.text
    return login.json()["redirect_to"]


def main():
    binary = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else str(ROOT / "target" / "debug" / "otpgate")
    with tempfile.TemporaryDirectory(prefix="otpgate-authlib-") as workdir:
        proc, issuer = start_otpgate(binary, workdir)
        try:
            run(issuer)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("authlib: ok")


def run(issuer):
    metadata = requests.get(f"{issuer}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == issuer
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]

    def session(secret):
        return OAuth2Session(
            client_id=CLIENT_ID,
            client_secret=secret,
            scope="openid phone offline_access",
            redirect_uri=REDIRECT,
            token_endpoint_auth_method="client_secret_basic",
            code_challenge_method="S256",
        )

    # A wrong secret: invalid_client (and the code is not spent by it).
    client = session("not-the-secret-0123456789-abcdefghijklm")
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = client.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    callback = sign_in_on_the_page(issuer, url)
    try:
        client.fetch_token(metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier)
        raise AssertionError("a wrong client secret was accepted")
    except OAuthError as e:
        assert e.error == "invalid_client", e

    client = session(SECRET)
    client.state = state
    token = client.fetch_token(metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier)
    assert token["token_type"] == "Bearer"

    keys = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"]).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_options={
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": CLIENT_ID},
            "nonce": {"essential": True, "value": nonce},
            "sub": {"essential": True},
        },
    )
    claims.validate()
    assert claims["phone_number"] == PHONE and claims["amr"] == ["sms"], claims

    info = client.get(metadata["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"] and info["phone_number"] == PHONE, info

    refreshed = client.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]

    revoked = client.revoke_token(
        metadata["revocation_endpoint"], token=refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200, revoked.text
    try:
        client.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
        raise AssertionError("a revoked refresh token still worked")
    except OAuthError as e:
        assert e.error == "invalid_grant", e


if __name__ == "__main__":
    main()
