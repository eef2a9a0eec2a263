"""Pictures made from the run store: latent animations, weight masks, and the GIF writer."""
