"""The Open Inference Protocol over gRPC: a thin transport in front of the same data plane as
REST (translate the message, call the same service, translate the answer back).

``generated/`` holds the protocol's .proto and the modules protoc makes from it
(``scripts/generate-grpc``); ``server.py`` runs the servicers on their own port in the server's
event loop.
"""
