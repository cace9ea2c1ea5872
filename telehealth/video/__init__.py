"""Live video consults: the aiortc media engine, its signaling and the call pages."""
