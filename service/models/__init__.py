"""Source models: trained single-task ONNX models that users upload for fusion."""
