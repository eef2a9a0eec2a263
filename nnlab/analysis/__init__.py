"""Numbers computed from a recording: latent metrics, densities, and their cache in the run."""
