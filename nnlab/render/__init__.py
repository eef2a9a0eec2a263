"""What nnlab shows from the run store: latent animations (animate, sources, panels),
weight masks, the decoder's views (decode), the metrics and sweep plots (metrics,
sweepplot), the HTML page (report), the TensorBoard export (export), the summary as text
(tables), and the GIF and PNG writer (gif) with the shared colours (style)."""
