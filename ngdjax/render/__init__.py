"""Differentiable rendering with nvdiffrast's semantics: one API (backend.get_renderer), a pure-JAX
backend and nvdiffrast through DLPack; see README.md in this folder for the conventions."""
