"""Export the stack ``up`` runs as files other tools apply: a compose file or Kubernetes manifests.

``stack`` plans the services exactly as ``up`` does; ``compose`` and
``kubernetes`` translate those plans; ``output`` writes the result.
Nothing here talks to Docker.
"""
