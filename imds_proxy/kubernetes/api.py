"""The API server, through kubernetes_asyncio: TokenReview, this node's pods (list and watch)
and one pod by name. Answers come back as plain JSON dicts; every other module sees only these."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from imds_proxy.kubernetes.pods import WatchExpired

#: A TokenReview or a pod lookup that takes longer than this fails the request (the SDK retries);
#: SDKs give the container endpoint a few seconds in all.
REQUEST_TIMEOUT = 5


class ApiError(Exception):
    """The API server could not answer (down, forbidden to us, timed out); never the caller's fault."""


async def _json(response: Any) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(await response.read())
        return doc
    finally:
        response.release()


class KubeApi:
    """One ApiClient for the agent's life (its own token re-read by the in-cluster loader)."""

    def __init__(self, kubeconfig: Path | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._client: client.ApiClient | None = None

    async def __aenter__(self) -> KubeApi:
        configuration = client.Configuration()
        try:
            if self._kubeconfig is not None:
                await config.load_kube_config(
                    str(self._kubeconfig), client_configuration=configuration, persist_config=False
                )
            else:
                config.load_incluster_config(client_configuration=configuration)
        except (config.ConfigException, OSError) as e:
            where = self._kubeconfig or "the in-cluster service account (KUBERNETES_SERVICE_HOST)"
            raise ApiError(f"cannot configure the Kubernetes client from {where}: {e}") from None
        self._client = client.ApiClient(configuration)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def _api(self) -> client.ApiClient:
        assert self._client is not None, "use KubeApi as an async context manager"
        return self._client

    async def review(self, token: str, audiences: list[str]) -> dict[str, Any]:
        """POST a TokenReview; its status (authenticated, user, audiences, error)."""
        body = client.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=client.V1TokenReviewSpec(token=token, audiences=audiences),
        )
        try:
            response = await client.AuthenticationV1Api(self._api).create_token_review(
                body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            doc = await _json(response)
        except ApiException as e:
            raise ApiError(f"TokenReview failed: {e.status} {e.reason}") from None
        except (OSError, TimeoutError, ValueError) as e:
            raise ApiError(f"TokenReview failed: {type(e).__name__} {e}") from None
        status: dict[str, Any] = doc.get("status") or {}
        return status

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod, or None when it does not exist."""
        try:
            response = await client.CoreV1Api(self._api).read_namespaced_pod(
                name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            return await _json(response)
        except ApiException as e:
            if e.status == 404:
                return None
            raise ApiError(f"reading pod {namespace}/{name} failed: {e.status} {e.reason}") from None
        except (OSError, TimeoutError, ValueError) as e:
            raise ApiError(f"reading pod {namespace}/{name} failed: {type(e).__name__} {e}") from None

    async def list_pods(self, node: str) -> tuple[list[dict[str, Any]], str]:
        """This node's pods and the list's resourceVersion (to watch from)."""
        response = await client.CoreV1Api(self._api).list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={node}", _preload_content=False, _request_timeout=30
        )
        doc = await _json(response)
        return list(doc.get("items") or []), str((doc.get("metadata") or {}).get("resourceVersion") or "")

    async def watch_pods(
        self, node: str, resource_version: str, server_timeout: int
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Watch events (type, the raw object) from `resource_version` until the server ends the
        watch; WatchExpired when that version is too old (410)."""
        stream = watch.Watch()
        core = client.CoreV1Api(self._api)
        try:
            async for event in stream.stream(
                core.list_pod_for_all_namespaces,
                field_selector=f"spec.nodeName={node}",
                resource_version=resource_version,
                timeout_seconds=server_timeout,
                allow_watch_bookmarks=True,
            ):
                yield str(event["type"]), dict(event["raw_object"])
        except ApiException as e:
            if e.status == 410:
                raise WatchExpired() from None
            raise
        finally:
            await stream.close()
