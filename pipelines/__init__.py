"""Pipeline definition, compilation and one runner per environment (local, Vertex AI, Kubeflow)."""
