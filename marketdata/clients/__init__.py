"""Provider clients: Tradier market data, Polygon REST, shared HTTP retry plumbing."""
