"""The aiohttp app per listener, app keys, the request gates, the IMDS routes, the
container-credentials sub-app with its own authorization."""
