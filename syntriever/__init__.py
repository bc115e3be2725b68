"""Syntriever: train dense retrievers from synthetic data made by black-box LLMs.

Kim & Baek, "Syntriever: How to Train Your Retriever with Synthetic Data from LLMs",
NAACL Findings 2025 (arXiv 2502.03824). The package holds the library; the stage scripts at the
repository root are thin command-line wrappers over it.
"""

__version__ = "0.1.0"
