"""What aegis.auth costs per token check, against PyJWT and joserfc, and per request.

One run measures, side by side, verifications per second of one access token with the same
claim checks (signature with the algorithm bound to the key, ``exp``/``nbf``/``iat`` with 30 s
leeway, ``iss``, ``aud``, required ``exp iat sub jti iss aud typ`` and ``typ == "access"``):

- ``aegis``: ``await TokenService.verify(token)`` — a token seen before is served from the
  bounded cache of verified tokens (expiry, key retirement still checked);
- ``aegis+store``: the same with a ``MemoryTokenStore`` revocation check on every call;
- ``aegis cold``: ``cache_size=0``, every call parses and checks the signature;
- ``pyjwt``: ``jwt.decode`` with the key object prepared once (the bytes secret for HS256);
- ``joserfc``: ``jwt.decode`` with an imported key, then ``JWTClaimsRegistry.validate``;
- ``fastapi-users``: ``JWTStrategy.read_token`` (PyJWT with the PEM key, checking only the
  signature, ``exp`` and ``aud``) with an in-memory user manager;

for HS256, ES256 and EdDSA. Then a hello-world Starlette route called in-process
(``app(scope, receive, send)``), bare vs behind ``AuthMiddleware`` with a valid EdDSA bearer
token (the token check's share of a request). Times are CPU time (``process_time``), best of
interleaved rounds.

With Redis (``--redis-url``), revocation (see ``_auth_revocation.py``): a cached token through
the middleware's path with no store, ``MemoryTokenStore``, ``ReplicatedTokenStore`` (from
memory) and ``RedisTokenStore`` (an ``MGET`` per request); and how long a revocation written in
this process takes to be refused by a ``ReplicatedTokenStore`` in another process.

Usage: .venv/bin/python benchmarks/auth_verify.py [--calls 20000] [--rounds 5]
       [--redis-url redis://127.0.0.1:6379/0] [--trials 500]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import jwt
from _auth_revocation import nowait_rates, percentiles, propagation
from _results import Results, add_json_argument, figure
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OctKey, OKPKey
from joserfc.jwt import ClaimsOption
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from aegis.auth import AuthMiddleware, JWTKey, KeySet, MemoryTokenStore, TokenService

# joserfc warns that "EdDSA" is superseded by "Ed25519" (RFC 9864); it is measured anyway.
warnings.filterwarnings("ignore", message="EdDSA is deprecated")
ISSUER, AUDIENCE = "https://users.example", "users-api"
REQUIRED = ["exp", "iat", "sub", "jti", "iss", "aud", "typ"]
Check = Callable[[], Awaitable[object]]


def pem(key: JWTKey) -> bytes:
    """The private key as PKCS#8 PEM, for joserfc's import."""
    from cryptography.hazmat.primitives import serialization

    material: Any = key.signing_material()
    return bytes(
        material.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def public_pem(key: JWTKey) -> str:
    """The public key as SubjectPublicKeyInfo PEM, for fastapi-users' ``public_key``."""
    from cryptography.hazmat.primitives import serialization

    material: Any = key.signing_material()
    return str(
        material.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def checks_for(algorithm: str) -> dict[str, Check]:
    """The contenders verifying one token signed with ``algorithm``."""
    secret = b"s" * 64
    key = JWTKey.hmac("k1", secret) if algorithm == "HS256" else JWTKey.generate("k1", algorithm)
    keys = KeySet([key])
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE}
    warm = TokenService(keys, **options)
    stored = TokenService(keys, store=MemoryTokenStore(), **options)
    cold = TokenService(keys, cache_size=0, **options)
    token = warm.issue_access_token("user-1", roles=["user"], scopes=["profile"])

    pyjwt_key: Any = secret if algorithm == "HS256" else jwt.PyJWK(key.public_jwk()).key

    async def pyjwt_decode() -> object:
        claims = jwt.decode(
            token,
            pyjwt_key,
            algorithms=[algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=30,
            options={"require": REQUIRED},
        )
        if claims["typ"] != "access":
            raise ValueError("not an access token")
        return claims

    if algorithm == "HS256":
        jose_key: Any = OctKey.import_key(secret)
    elif algorithm == "ES256":
        jose_key = ECKey.import_key(pem(key))
    else:
        jose_key = OKPKey.import_key(pem(key))
    essential: ClaimsOption = {"essential": True}
    registry = jose_jwt.JWTClaimsRegistry(
        leeway=30,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        typ={"essential": True, "value": "access"},
        exp=essential,
        iat=essential,
        sub=essential,
        jti=essential,
    )

    from fastapi_users.authentication import JWTStrategy  # peer

    if algorithm == "HS256":
        strategy: Any = JWTStrategy(secret.decode(), 900, [AUDIENCE])
    else:
        strategy = JWTStrategy(pem(key).decode(), 900, [AUDIENCE], algorithm, public_pem(key))

    class Users:
        """The user manager fastapi-users asks for the token's user: a dict lookup."""

        users: ClassVar[dict[str, dict[str, str]]] = {"user-1": {"id": "user-1"}}

        def parse_id(self, value: str) -> str:
            return value

        async def get(self, user_id: str) -> dict[str, str]:
            return self.users[user_id]

    users: Any = Users()

    async def fastapi_users_read() -> object:
        found = await strategy.read_token(token, users)
        if found is None:
            raise ValueError("fastapi-users refused the token")
        return found

    async def joserfc_decode() -> object:
        decoded = jose_jwt.decode(token, jose_key, algorithms=[algorithm])
        registry.validate(decoded.claims)
        return decoded.claims

    return {
        "aegis": lambda: warm.verify(token),
        "aegis+store": lambda: stored.verify(token),
        "aegis cold": lambda: cold.verify(token),
        "pyjwt": pyjwt_decode,
        "joserfc": joserfc_decode,
        "fastapi-users": fastapi_users_read,
    }


async def timed(check: Check, calls: int) -> float:
    """CPU seconds per call of ``check`` over ``calls`` calls."""
    await check()
    started = time.process_time()
    for _ in range(calls):
        await check()
    return (time.process_time() - started) / calls


async def best_of(contenders: dict[str, Check], calls: int, rounds: int) -> dict[str, float]:
    """Best per-call time of each contender over interleaved rounds."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, check in contenders.items():
            best[name] = min(best[name], await timed(check, calls))
    return best


def request_check(app: ASGIApp, headers: list[tuple[bytes, bytes]]) -> Check:
    """One in-process GET /hello through ``app``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hello",
        "raw_path": b"/hello",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"answered {message['status']}")

    async def call() -> object:
        await app(dict(scope), receive, send)
        return None

    return call


def middleware_checks() -> dict[str, Check]:
    """Hello world bare, and behind AuthMiddleware with a valid token."""

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    tokens = TokenService(
        KeySet([JWTKey.generate("k1", "EdDSA")]), issuer=ISSUER, audience=AUDIENCE
    )
    token = tokens.issue_access_token("user-1", roles=["user"])
    bare = Starlette(routes=[Route("/hello", hello)])
    guarded = Starlette(
        routes=[Route("/hello", hello)], middleware=[Middleware(AuthMiddleware, tokens=tokens)]
    )
    header = [(b"authorization", f"Bearer {token}".encode())]
    return {"bare": request_check(bare, header), "auth": request_check(guarded, header)}


async def main() -> None:
    """Run every measurement and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="'' to skip")
    parser.add_argument("--trials", type=int, default=500, help="revocations propagated")
    add_json_argument(parser)
    args = parser.parse_args()
    results = Results(
        "aegis-auth",
        "auth_verify",
        ["pyjwt", "joserfc", "fastapi-users", "cryptography", "starlette"],
    )
    print(f"verifications/s (CPU), best of {args.rounds} rounds x {args.calls} calls")
    print(
        f"{'alg':<7}"
        + "".join(f"{name:>14}" for name in checks_for("HS256"))
        + "   aegis/pyjwt aegis/joserfc cold/pyjwt"
    )
    for algorithm in ("HS256", "ES256", "EdDSA"):
        calls = args.calls if algorithm == "HS256" else args.calls // 4
        best = await best_of(checks_for(algorithm), calls, args.rounds)
        rates = {name: 1 / seconds for name, seconds in best.items()}
        print(
            f"{algorithm:<7}"
            + "".join(f"{rate:>14,.0f}" for rate in rates.values())
            + f"   {rates['aegis'] / rates['pyjwt']:>10.1f}x"
            + f" {rates['aegis'] / rates['joserfc']:>12.1f}x"
            + f" {rates['aegis cold'] / rates['pyjwt']:>10.2f}x"
        )
        for label, what in (("aegis", "token seen before, cached"), ("aegis cold", "no cache")):
            results.case(
                f"verify {algorithm} ({what})",
                "verifications/s",
                aegis=figure(label, rates[label]),
                raw=figure("PyJWT", rates["pyjwt"]),
                peers=[
                    figure("joserfc", rates["joserfc"]),
                    figure("fastapi-users JWTStrategy", rates["fastapi-users"]),
                ],
            )
    best = await best_of(middleware_checks(), args.calls, args.rounds)
    added = best["auth"] - best["bare"]
    print(
        f"hello world in-process: bare {best['bare'] * 1e6:.1f} µs/req, with AuthMiddleware "
        f"{best['auth'] * 1e6:.1f} µs/req: token check {added * 1e6:.1f} µs = "
        f"{added / best['auth']:.0%} of the authenticated request "
        f"(throughput {best['bare'] / best['auth']:.2f}x of bare)"
    )
    results.case(
        "hello world behind AuthMiddleware (EdDSA)",
        "CPU µs/req",
        aegis=figure("AuthMiddleware", best["auth"] * 1e6),
        raw=figure("bare Starlette", best["bare"] * 1e6),
        higher_is_better=False,
    )
    if args.redis_url:
        await revocation(results, args.redis_url, args.calls, args.rounds, args.trials)
    results.write(args.json)


async def revocation(results: Results, url: str, calls: int, rounds: int, trials: int) -> None:
    """The hot path with each revocation store, and the propagation time between processes."""
    rates = await nowait_rates(url, calls, rounds)
    print(
        "cached EdDSA token, the middleware's path, verifications/s (CPU): "
        + ", ".join(f"{name} {rate:,.0f}" for name, rate in rates.items())
        + f"; replica/no store {rates['ReplicatedTokenStore'] / rates['no store']:.2f}x"
    )
    results.case(
        "verify EdDSA, cached, revocation checked from memory (ReplicatedTokenStore)",
        "verifications/s",
        aegis=figure("ReplicatedTokenStore", rates["ReplicatedTokenStore"]),
        raw=figure("no store", rates["no store"]),
        peers=[
            figure("MemoryTokenStore", rates["MemoryTokenStore"]),
            figure("RedisTokenStore (MGET per request)", rates["RedisTokenStore"]),
        ],
        goal=">= 0.5x no store",
    )
    delays = percentiles(await propagation(url, trials))
    print(
        f"revocation propagation to another process, {trials} trials: "
        + ", ".join(f"{name} {value:.2f} ms" for name, value in delays.items())
    )
    results.table(
        f"Revocation propagation: revoke() in one process until a ReplicatedTokenStore in "
        f"another refuses the token ({trials} trials, goal <= 1 s)",
        ["p50 ms", "p90 ms", "p99 ms", "max ms"],
        [[f"{value:.2f}" for value in delays.values()]],
    )


if __name__ == "__main__":
    asyncio.run(main())
