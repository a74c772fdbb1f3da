"""Tensor encodings every transport shares: V2 datatypes and raw tensor bytes."""
