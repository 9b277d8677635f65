"""OpenTelemetry traces: the request and attempt spans, their content attributes, and the exporter set-up."""
