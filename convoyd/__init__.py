"""convoyd: a webhook delivery daemon with a gRPC control plane and an embedded durable store."""

__version__ = "0.1.0"
