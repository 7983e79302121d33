"""The request path per listener (app), its listening socket and connections on aiohttp's HTTP
parser (site, connection, wire), the request gates, the peer gate, the IMDS routes, the
container-credentials channel with its own authorization."""
