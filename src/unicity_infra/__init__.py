"""unicity-infra: build, run and check the Unicity development stack.

This module stays free of imports: the container images copy the package root
together with ``container/`` and run it on the image's own python3.
"""

__version__ = "0.1.0"
