"""Generated from proto/convoyd/v1 by scripts/gen_protos.py. Do not edit."""
