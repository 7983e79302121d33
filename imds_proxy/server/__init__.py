"""The aiohttp app per listener, app keys, the request gates, the peer gate, the token replies'
hop limit, the IMDS routes, the container-credentials sub-app with its own authorization."""
