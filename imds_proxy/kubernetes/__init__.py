"""The node agent (`imds-proxy node-agent`): per-pod roles on any Kubernetes cluster, each pod
proven by its projected ServiceAccount token (TokenReview), never by its IP alone. The only
package that imports kubernetes_asyncio."""
