"""Cryptographic building blocks. Crypto knows nothing of learning; import from submodules."""
