"""mediamute: a local media-plane simulator of server-side mute in a WebRTC group call."""

__version__ = "0.1.0"
