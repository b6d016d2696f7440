"""The intake side of the emulator: decode, limit, validate and record submitted telemetry."""
