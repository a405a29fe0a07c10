// The benchmark's bare forwarder (issue 6): to be written.
print("bench-forwarder: not written yet")
