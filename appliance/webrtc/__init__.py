"""The browser leg of a call: one aiortc RTCPeerConnection (ICE, DTLS-SRTP, SCTP)."""
