"""The token: minting (plugin side) and verifying (server side)."""
