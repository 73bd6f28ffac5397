"""Media: SDP, codecs, RTP/RTCP, SRTP and DTMF for the audio relay."""
