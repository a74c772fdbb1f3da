"""Modules generated from grpc_predict_v2.proto by scripts/generate-grpc: never edit them."""
