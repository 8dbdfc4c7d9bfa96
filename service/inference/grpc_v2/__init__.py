"""The Open Inference Protocol v2 over gRPC (KServe's GRPCInferenceService) on FUSEBOX_GRPC_PORT."""
