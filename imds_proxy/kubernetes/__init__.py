"""The node agent (`imds-proxy node-agent`): the API adapter (the only importer of
kubernetes_asyncio), TokenReview and its cache, the pod watch, the policy file, the identity
gate, per-pod sessions in the engine, the agent's run time."""
