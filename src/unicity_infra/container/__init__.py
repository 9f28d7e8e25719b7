"""Code that runs inside the service images, on the image's python3.

Everything under this package imports only the standard library and itself.
"""
