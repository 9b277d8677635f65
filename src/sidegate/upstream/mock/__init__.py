"""The built-in `mock` provider: the deterministic model (`model`), its replies in each API format's
wire shape (`render`) and the requests it refuses as the real provider would (`validate`)."""
