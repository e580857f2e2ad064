"""aiortc adapters: ICE settings, the gate's seam in the receiver, tracks, and the per-participant peer."""
