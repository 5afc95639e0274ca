"""Delivery: the engine that schedules attempts and the sender that makes them over HTTP."""
