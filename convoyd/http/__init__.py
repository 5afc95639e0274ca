"""The HTTP listener: the aiohttp app with /healthz and /metrics, and the portal mounted on it."""
