"""A fake Kubernetes API server (aiohttp), the one stand-in the node agent's tests use because no
real one can run here. It does what the real one does for the calls the agent makes: TokenReview
of RS256 ServiceAccount tokens it signs itself (audiences, expiry by an injected clock, bound pod
and node, deleted pods), pods listed and watched by field selector with resourceVersions, a pod
read by name, and bearer authentication of the caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes import ISSUED, FakeClock

ISSUER = "https://kubernetes.default.svc.cluster.local"
#: What the API server reviews against when a TokenReview names no audience.
API_AUDIENCES = [ISSUER]


@dataclass
class FakeCluster:
    clock: FakeClock
    #: The agent's own bearer token (its ServiceAccount's); anything else gets 401.
    agent_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: Whether TokenReview reports the bound node in `extra` (Kubernetes ≥ 1.30 does).
    node_in_extra: bool = True
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid → pod
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    version: int = 100
    #: Held clear to let pod lists answer; cleared, lists wait (a slow API server at boot).
    lists_open: asyncio.Event = field(default_factory=asyncio.Event)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lists_open.set()
        ISSUED.add(self.agent_token)

    # -- the objects ------------------------------------------------------------------------
    async def add_pod(
        self, namespace: str, name: str, node: str, ip: str, sa: str = "default"
    ) -> dict[str, Any]:
        uid = str(uuid.uuid4())
        self.version += 1
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "resourceVersion": str(self.version),
            },
            "spec": {
                "nodeName": node,
                "serviceAccountName": sa,
                "containers": [{"name": "app", "image": "x"}],
            },
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.0.0.1"},
        }
        self.pods[uid] = pod
        await self._event("ADDED", pod)
        return pod

    async def delete_pod(self, pod: dict[str, Any]) -> None:
        self.pods.pop(pod["metadata"]["uid"], None)
        self.version += 1
        gone = json.loads(json.dumps(pod))
        gone["metadata"]["resourceVersion"] = str(self.version)
        await self._event("DELETED", gone)

    async def close(self) -> None:
        """End every watch now (the server is going away)."""
        self.stopping = True
        async with self.changed:
            self.changed.notify_all()

    async def _event(self, kind: str, pod: dict[str, Any]) -> None:
        self.events.append((self.version, kind, pod))
        async with self.changed:
            self.changed.notify_all()

    def token(
        self,
        pod: dict[str, Any],
        *,
        audience: str = "imds-proxy",
        lifetime: int = 3600,
        node: str | None = None,
    ) -> str:
        """A projected ServiceAccount token bound to `pod` (and its node, or `node`), as kubelet
        asks the API server to mint it. Registered with the log leak check."""
        meta, spec = pod["metadata"], pod["spec"]
        now = int(self.clock().timestamp())
        claims = {
            "iss": ISSUER,
            "aud": [audience],
            "sub": f"system:serviceaccount:{meta['namespace']}:{spec['serviceAccountName']}",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": meta["namespace"],
                "node": {
                    "name": node or spec["nodeName"],
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, node or spec["nodeName"])),
                },
                "pod": {"name": meta["name"], "uid": meta["uid"]},
                "serviceaccount": {"name": spec["serviceAccountName"], "uid": str(uuid.uuid4())},
            },
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "fake"})
        ISSUED.add(token)
        return token

    # -- TokenReview --------------------------------------------------------------------------
    def review(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """The status the API server's ServiceAccount authenticator gives."""
        wanted = audiences or API_AUDIENCES
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                audience=wanted,
                issuer=ISSUER,
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidAudienceError:
            return {
                "authenticated": False,
                "error": "[invalid bearer token, token audiences "
                f"{wanted} is invalid for the target audiences]",
            }
        except jwt.PyJWTError as e:
            return {"authenticated": False, "error": f"[invalid bearer token, {e}]"}
        if self.clock().timestamp() >= claims["exp"]:
            return {
                "authenticated": False,
                "error": "[invalid bearer token, service account token has expired]",
            }
        k8s = claims["kubernetes.io"]
        pod = self.pods.get(k8s["pod"]["uid"])
        if pod is None or pod["metadata"]["name"] != k8s["pod"]["name"]:
            return {
                "authenticated": False,
                "error": f'[invalid bearer token, pod "{k8s["pod"]["name"]}" not found]',
            }
        aud = [a for a in claims["aud"] if a in wanted]
        extra = {
            "authentication.kubernetes.io/credential-id": [f"JTI={claims['jti']}"],
            "authentication.kubernetes.io/pod-name": [k8s["pod"]["name"]],
            "authentication.kubernetes.io/pod-uid": [k8s["pod"]["uid"]],
        }
        if self.node_in_extra:
            extra["authentication.kubernetes.io/node-name"] = [k8s["node"]["name"]]
            extra["authentication.kubernetes.io/node-uid"] = [k8s["node"]["uid"]]
        return {
            "authenticated": True,
            "user": {
                "username": claims["sub"],
                "uid": k8s["serviceaccount"]["uid"],
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{k8s['namespace']}",
                    "system:authenticated",
                ],
                "extra": extra,
            },
            "audiences": aud,
        }

    # -- HTTP ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        @web.middleware
        async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {self.agent_token}":
                return _status(401, "Unauthorized", "Unauthorized")
            return await handler(request)

        app = web.Application(middlewares=[authenticate])
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self._tokenreview)
        app.router.add_get("/api/v1/pods", self._pods)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", self._pod)
        return app

    async def _tokenreview(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("kind") != "TokenReview" or not isinstance(body.get("spec"), dict):
            return _status(400, "BadRequest", "expected a TokenReview")
        spec = body["spec"]
        status = self.review(str(spec.get("token") or ""), list(spec.get("audiences") or []))
        self.reviews.append(spec)
        doc = {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
        return web.json_response(doc, status=201)

    def _selected(self, request: web.Request, pod: dict[str, Any]) -> bool:
        selector = request.query.get("fieldSelector", "")
        if not selector:
            return True
        key, _, value = selector.partition("=")
        if key != "spec.nodeName":
            raise web.HTTPBadRequest(text="field label not supported")
        return bool(pod["spec"].get("nodeName") == value)

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") in ("true", "1", "True"):
            return await self._watch(request)
        await self.lists_open.wait()
        items = [p for p in self.pods.values() if self._selected(request, p)]
        return web.json_response(
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }
        )

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.version)
        if self.events and since < self.events[0][0] - 1:
            return _status(410, "Expired", "too old resource version")
        timeout = min(float(request.query.get("timeoutSeconds") or 30), 30.0)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not self.stopping:
            for version, kind, pod in [e for e in self.events if e[0] > since]:
                since = version
                if self._selected(request, pod):
                    try:
                        await response.write(json.dumps({"type": kind, "object": pod}).encode() + b"\n")
                    except ConnectionError:
                        return response  # the agent hung up
            async with self.changed:
                try:
                    await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - loop.time()))
                except TimeoutError:
                    break
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _pod(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        for pod in self.pods.values():
            if pod["metadata"]["namespace"] == ns and pod["metadata"]["name"] == name:
                return web.json_response(pod)
        return _status(404, "NotFound", f'pods "{name}" not found')


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status=code,
    )


def kubeconfig(server: str, token: str) -> dict[str, Any]:
    """A kubeconfig for the agent's own ServiceAccount token at `server` (plain HTTP, loopback)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "agent"}}],
        "current-context": "fake",
    }
