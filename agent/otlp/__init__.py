"""The OTLP/gRPC receiver: OpenTelemetry SDKs export metrics and logs to the agent (docs/otlp.md)."""
