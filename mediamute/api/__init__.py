"""The HTTP layer: Graph-shaped routes, WHIP, extensions, error envelope."""
