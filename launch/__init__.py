"""The sweep system: specs, expansion, the results store, backends and the CLI."""
