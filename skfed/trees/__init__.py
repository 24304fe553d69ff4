"""Histogram gradient-boosting arithmetic shared by the federated families.

Pure numpy: it knows nothing of parties, transport or encryption. Vertical
SecureBoost and horizontal histogram boosting build their protocols on it.
"""
