"""The agent's Local service: apps on this host send records, the agent ships them."""
