"""Calls: the B2BUA joining a SIP leg and a WebRTC leg through media bridges."""
