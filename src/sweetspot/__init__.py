"""sweetspot: DPO preference data from on-policy samples, built the sweet-spot way."""

__version__ = "0.1.0"
