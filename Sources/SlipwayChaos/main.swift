// The chaos run (issue 5): to be written.
print("slipway-chaos: not written yet")
