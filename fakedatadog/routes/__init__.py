"""HTTP routes, one module per kind of host, plus the control plane under `/_emulator/`."""
