"""Worker Monitor HTTP gateway: JSON over the suite's gRPC services, derived from their protos."""
