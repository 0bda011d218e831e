//! smolvm microVMs: preflight, argv builders and the operations `sandbox` and `--in-vm` use.
